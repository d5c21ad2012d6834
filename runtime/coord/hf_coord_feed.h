/* hf_coord_feed: the market feeds' sans-I/O core: each feed's spec (a URL with a JSON pointer,
 * scale, refresh interval, maximum age and timeout; or a constant; or a time-of-day schedule),
 * strict parsing of the "feeds" section of profit.json, RFC 6901 JSON pointers, what one fetch
 * result does to a feed's state, staleness, the halving schedule, and the market snapshot the
 * policy reads. The fetching itself (libcurl multi) is hf_coord_feeds.
 *
 * Feeds: btc_usd (USD/BTC), difficulty, fees_btc (average fees per block, BTC), height (tip
 * height: the subsidy comes from it by the halving schedule), subsidy_btc (when configured it
 * is used instead of height), power_usd_kwh, inference_price and inference_demand (units:
 * hf_coord_policy's params.unit). Defaults point at the shapes of public APIs:
 *   btc_usd     https://mempool.space/api/v1/prices                  /USD
 *   difficulty  https://mempool.space/api/v1/mining/hashrate/3d      /currentDifficulty
 *   height      https://mempool.space/api/blocks/tip/height          "" (the document: a number)
 *   fees_btc    https://mempool.space/api/v1/mining/reward-stats/144 /totalFee, scale 1e-8/144
 *               (the fees of the last 144 blocks in satoshis, a decimal string, per block in BTC)
 *   power_usd_kwh, inference_price, inference_demand: constants 0.05, 0, 0 (configure them)
 * and the feed server (hashflop-coord feed-server) serves a series in exactly these shapes at
 * the same paths (plus /hashflop/v1/power {"usd_kwh"} and /hashflop/v1/inference {"price",
 * "demand"}).
 *
 * Invariants: a feed's value is used only while fresh: fetched successfully within max_age_s
 * and no failure since; a failure (transport error or timeout, HTTP status other than 2xx, a
 * body over max_body, bad JSON, a pointer that resolves to nothing, a value that is not a
 * number or a decimal string of one, or a scaled value that is not finite or is negative)
 * makes it stale at once, with the reason kept (cleaned, capped) until the next success.
 * Threading: reentrant; every object belongs to its caller.
 */
#ifndef HF_COORD_FEED_H
#define HF_COORD_FEED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_coord_policy.h"
#include "hf_error.h"

typedef enum hf_coord_feed_id {
	HF_FEED_BTC_USD = 0,
	HF_FEED_DIFFICULTY,
	HF_FEED_FEES_BTC,
	HF_FEED_HEIGHT,
	HF_FEED_SUBSIDY_BTC,
	HF_FEED_POWER,
	HF_FEED_INFER_PRICE,
	HF_FEED_INFER_DEMAND,
	HF_FEED_COUNT,
} hf_coord_feed_id;

/* "btc_usd", "difficulty", "fees_btc", "height", "subsidy_btc", "power_usd_kwh",
 * "inference_price", "inference_demand". */
const char *hf_coord_feed_name(hf_coord_feed_id id);

typedef enum hf_coord_feed_kind {
	HF_FEED_NONE = 0,        /* not configured (only subsidy_btc may be: height is used) */
	HF_FEED_URL,
	HF_FEED_CONST,
	HF_FEED_SCHEDULE,
} hf_coord_feed_kind;

#define HF_FEED_URL_MAX 1024
#define HF_FEED_POINTER_MAX 256
#define HF_FEED_SCHEDULE_MAX 48
#define HF_FEED_WHY_MAX 200

typedef struct hf_coord_feed_spec {
	hf_coord_feed_kind kind;
	char url[HF_FEED_URL_MAX + 1];          /* https://, or http:// to a loopback host only
						   (unless allow_plain_http) */
	char pointer[HF_FEED_POINTER_MAX + 1];  /* RFC 6901; "" the whole document */
	double scale;                           /* value = number at pointer * scale (1) */
	unsigned refresh_s;                     /* between fetches (60) */
	unsigned max_age_s;                     /* stale after (10 * refresh_s) */
	unsigned timeout_s;                     /* whole transfer (10), connect within it */
	size_t max_body;                        /* bytes (1 MiB) */
	double value;                           /* HF_FEED_CONST */
	struct hf_coord_feed_slot {
		uint32_t from_s;                /* seconds after local midnight */
		double value;
	} schedule[HF_FEED_SCHEDULE_MAX];       /* HF_FEED_SCHEDULE: sorted by from_s, the
						   first at 0 */
	size_t nschedule;
	int utc_offset_min;                     /* the schedule's local time (0: UTC) */
} hf_coord_feed_spec;

typedef struct hf_coord_feeds_spec {
	hf_coord_feed_spec feed[HF_FEED_COUNT];
	char ca_file[4096];                     /* "" the system's CA store */
	bool allow_plain_http;                  /* http:// to non-loopback hosts */
} hf_coord_feeds_spec;

/* Parses the "feeds" object of profit.json over the defaults (feeds NULL: the defaults). Each
 * feed is {"url", "pointer"?, "scale"?, "refresh_s"?, "max_age_s"?, "timeout_s"?,
 * "max_body"?} or {"value": N} or {"schedule": [{"from": "HH:MM", "value": N}, ...],
 * "utc_offset_min"?}; plus top-level "ca_file" and "allow_plain_http". Strict: eb names the
 * path ("feeds.btc_usd.pointer: must be empty or start with /").
 * A feed named in the section replaces its default whole: a URL feed's omitted fields take the
 * generic defaults (pointer "", scale 1, refresh_s 60, max_age_s 10 * refresh_s, timeout_s 10,
 * max_body 1 MiB), not the default feed's pointer and scale. Ranges: refresh_s 1..86400,
 * max_age_s 1..864000, timeout_s 1..300, max_body 1..64 MiB, scale finite > 0, values finite
 * >= 0, utc_offset_min -720..840, 1..48 schedule slots with "from" strictly increasing and the
 * first "00:00". subsidy_btc may be null (not configured: the default); height may be null
 * only when subsidy_btc is configured. ca_file is "" or an absolute path. A URL is https://,
 * or http:// to a loopback host (127.0.0.0/8, [::1], localhost) unless allow_plain_http;
 * printable ASCII, no credentials (user@host). */
int hf_coord_feeds_spec_parse(const json_t *feeds, hf_coord_feeds_spec *out, hf_errbuf *eb);
/* The defaults alone (what hf_coord_feeds_spec_parse(NULL, ...) gives). */
void hf_coord_feeds_spec_defaults(hf_coord_feeds_spec *s);
/* The checks the parser applies to a whole spec (URLs and the plain-http rule, pointers,
 * ranges, schedules; height may be HF_FEED_NONE only when subsidy_btc is configured), for a
 * spec built in code: 0 or HF_ECONFIG naming the field. */
int hf_coord_feeds_spec_check(const hf_coord_feeds_spec *s, hf_errbuf *eb);
/* The spec as JSON (every default filled in). */
json_t *hf_coord_feeds_spec_json(const hf_coord_feeds_spec *s);

/* RFC 6901: *out (borrowed) is what ptr designates in root ("" is root; "~0" "~1" escapes;
 * array indices are decimal without leading zeros; "-" designates nothing). HF_ENOTFOUND with
 * eb naming the first token that resolves to nothing; HF_EINVAL for a malformed pointer. */
int hf_coord_json_pointer(const json_t *root, const char *ptr, const json_t **out,
			  hf_errbuf *eb);

/* One feed's state, kept by its fetcher. */
typedef struct hf_coord_feed_state {
	bool have;                   /* a good value has been read */
	double value;                /* the last good value (scaled) */
	uint64_t value_ms;           /* wall ms of the fetch that read it */
	bool failing;                /* the last fetch failed: stale until the next success */
	char why[HF_FEED_WHY_MAX];   /* the last failure ("HTTP 503", "bad JSON at byte 3: ...",
				        "pointer /USD: no member \"USD\"", "value is NaN", ...) */
	uint64_t why_ms;
	uint64_t ok_total, fail_total;
	uint64_t last_fetch_ms, next_fetch_ms;
} hf_coord_feed_state;

/* Applies one fetch of a URL feed at now_ms: transport_err non-NULL (a curl error text,
 * "timeout after 10 s") or the HTTP status and body. 0 when it read a value, else the error
 * (HF_EIO transport, HF_EREFUSED HTTP status, HF_ETOOBIG body, HF_EPARSE JSON, HF_ENOTFOUND
 * pointer, HF_ERANGE value) with st->why set. */
int hf_coord_feed_observe(const hf_coord_feed_spec *spec, hf_coord_feed_state *st,
			  uint64_t now_ms, const char *transport_err, long http_status,
			  const char *body, size_t len);

/* The feed's value at now_ms when fresh (true, *v); false with why ("never fetched",
 * "HTTP 503 (since 12 s)", "612 s old (max_age_s 600)", "not configured"). Constants and
 * schedules are always fresh. */
bool hf_coord_feed_value(const hf_coord_feed_spec *spec, const hf_coord_feed_state *st,
			 uint64_t now_ms, double *v, char *why, size_t whylen);

/* The schedule's value at wall now_ms (local time = UTC + utc_offset_min). */
double hf_coord_feed_schedule_at(const hf_coord_feed_spec *spec, uint64_t now_ms);

/* The block subsidy at height, BTC: 50 halved every 210,000 blocks (0 after 64 halvings),
 * exactly as Bitcoin computes it in satoshis (integer shifts), returned in BTC. */
double hf_coord_subsidy_btc(uint64_t height);

/* The market at now_ms from every feed: subsidy from subsidy_btc when configured, else from
 * height. market.stale when any feed is not fresh (every figure enters some mode's margin, so
 * every feed is needed), with stale_why naming each stale feed and why ("btc_usd: HTTP 503;
 * height: never fetched", capped). */
void hf_coord_feeds_market_of(const hf_coord_feeds_spec *spec,
			      const hf_coord_feed_state st[HF_FEED_COUNT], uint64_t now_ms,
			      hf_coord_market *m);

#endif
