/* hf_coord_feedsrv: the feed server: serves a market series (hf_coord_series) over HTTP in the
 * shapes the feeds read (hf_coord_feed.h), its clock running at a chosen speed, for demos and
 * tests (`hashflop-coord feed-server`).
 *
 * The clock: series time = start + (wall time since the server started) * speed, where start is
 * the first row's time unless opts.start_ms says otherwise. The row served is the last one with
 * time <= series time. Without loop the clock stops at the last row's time and reports done;
 * with loop it wraps after the last row has been served for one step (period = last - first +
 * step) and counts laps.
 *
 * Paths (GET, and HEAD; any other method 405, any other path 404, both {"error": "..."}), each
 * from the row served now (time = the row's time in Unix seconds):
 *   /api/v1/prices                 {"time": T, "USD": btc_usd}
 *   /api/v1/mining/hashrate/3d     {"currentHashrate": difficulty * 2^32 / 600,
 *                                   "currentDifficulty": difficulty}
 *   /api/blocks/tip/height         height (text/plain, as mempool.space answers)
 *   /api/v1/mining/reward-stats/144 {"startBlock": height - 143, "endBlock": height,
 *                                   "totalReward": "SATS", "totalFee": "SATS", "totalTx": "N"}:
 *                                   decimal strings; totalFee = 144 * round(fees_btc * 1e8),
 *                                   totalReward = totalFee + 144 * the subsidy at height (sats),
 *                                   totalTx = 144 * 3000 (a constant: series carry no counts)
 *   /hashflop/v1/power             {"time": T, "usd_kwh": power_usd_kwh}
 *   /hashflop/v1/inference         {"time": T, "price": inference_price,
 *                                   "demand": inference_demand}
 *   /hashflop/v1/clock             {"series_time": S, "series_time_ms": MS, "row": I,
 *                                   "rows": N, "row_time": T, "speed": X, "done": bool,
 *                                   "loop": bool, "laps": L, "step_s": STEP,
 *                                   "first_time": T0, "last_time": TN}
 * Numbers are JSON reals printed so that they read back exactly (jansson's %.17g).
 *
 * Invariants: the series and the options are fixed once the server runs (nothing mutable is
 * shared with the handlers but the monotonic clock); a response is built from one position of
 * the clock, so a body never mixes two rows.
 * Threading: hf_coord_feedsrv_new()/free() from one owning thread; the handlers run on the
 * hf_httpd server threads; hf_coord_feedsrv_port()/position() from any thread while the server
 * exists. hf_coord_feedsrv_pos_at() and hf_coord_feedsrv_feeds_json() are pure and reentrant.
 */
#ifndef HF_COORD_FEEDSRV_H
#define HF_COORD_FEEDSRV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_coord_series.h"
#include "hf_error.h"

#define HF_COORD_FEEDSRV_SPEED_MAX 1e9
/* The reward-stats window and the transactions a block is said to carry. */
#define HF_COORD_FEEDSRV_BLOCKS 144u
#define HF_COORD_FEEDSRV_TX_PER_BLOCK 3000u

typedef struct hf_coord_feedsrv_clock {
	uint64_t start_ms;  /* series time at wall elapsed 0; 0: the first row's time */
	double speed;       /* series ms per wall ms, > 0 and <= HF_COORD_FEEDSRV_SPEED_MAX */
	bool loop;          /* wrap at the end instead of stopping */
} hf_coord_feedsrv_clock;

typedef struct hf_coord_feedsrv_pos {
	uint64_t series_ms; /* the series time */
	size_t row;         /* the row served */
	bool done;          /* not looping and the last row's time was reached */
	uint64_t laps;      /* looping: how many times the series wrapped */
} hf_coord_feedsrv_pos;

/* Where the clock stands elapsed_ms wall ms after the start (s has at least one row; c->start_ms
 * within [first, last] or 0). */
void hf_coord_feedsrv_pos_at(const hf_coord_series *s, const hf_coord_feedsrv_clock *c,
			     uint64_t elapsed_ms, hf_coord_feedsrv_pos *out);

/* The body of path for pos (a new JSON value; for the tip height a JSON integer, which the
 * server sends as text/plain); NULL with HF_ENOTFOUND for a path it does not serve. */
json_t *hf_coord_feedsrv_body(const hf_coord_series *s, const hf_coord_feedsrv_clock *c,
			      const hf_coord_feedsrv_pos *pos, const char *path);

/* The "feeds" section of profit.json that points every feed at a feed server at base_url
 * ("http://127.0.0.1:PORT", no trailing slash needed), each refreshed every refresh_s seconds
 * (max_age_s and timeout_s left to the feeds' defaults); "allow_plain_http": true is added when
 * base_url is http:// to a host that is not loopback. NULL with HF_EINVAL in eb for a base_url
 * that is not http(s)://HOST[:PORT][/PREFIX] or too long, or refresh_s 0. */
json_t *hf_coord_feedsrv_feeds_json(const char *base_url, unsigned refresh_s, hf_errbuf *eb);

typedef struct hf_coord_feedsrv_opts {
	const char *host;   /* numeric address to bind ("127.0.0.1") */
	uint16_t port;      /* 0: ephemeral (hf_coord_feedsrv_port()) */
	hf_coord_feedsrv_clock clock;
} hf_coord_feedsrv_opts;

typedef struct hf_coord_feedsrv hf_coord_feedsrv;

/* Starts serving s (borrowed: it must outlive the server; at least one row) with the clock
 * starting now. HF_EINVAL for an empty series, a speed out of range or a start outside the
 * series; hf_httpd_new()'s errors for the address. */
int hf_coord_feedsrv_new(const hf_coord_series *s, const hf_coord_feedsrv_opts *opts,
			 hf_coord_feedsrv **out, hf_errbuf *eb);
uint16_t hf_coord_feedsrv_port(const hf_coord_feedsrv *f);
/* The clock's position now. */
void hf_coord_feedsrv_position(const hf_coord_feedsrv *f, hf_coord_feedsrv_pos *out);
/* Requests answered so far (any status). */
uint64_t hf_coord_feedsrv_requests(const hf_coord_feedsrv *f);
/* Stops serving and frees (NULL accepted). */
void hf_coord_feedsrv_free(hf_coord_feedsrv *f);

#endif
