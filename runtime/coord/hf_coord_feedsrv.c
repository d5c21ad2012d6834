/* hf_coord_feedsrv: the feed server: a market series served over HTTP in the feeds' shapes, its
 * clock running at a chosen speed (the paths and shapes are in hf_coord_feedsrv.h).
 *
 * Invariants: after hf_coord_feedsrv_new() returns, the series, the clock options and the
 * monotonic start are read-only; the only mutable state is the request counter (atomic). Every
 * response is built from one call to the position function, so a body shows one row.
 * Threading: the owner creates and frees; handlers run concurrently on hf_httpd's server
 * threads and only read.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf_coord_feedsrv.h"
#include "hf_httpd.h"
#include "hf_util.h"

/* Past this many series ms of advance the clock stops counting (31 million years: no series
 * gets there; it keeps the double-to-integer conversions defined). */
#define ADVANCE_MAX_MS 1e18

struct hf_coord_feedsrv {
	const hf_coord_series *series;
	hf_coord_feedsrv_clock clock;
	uint64_t t0_mono_ms;
	hf_httpd *httpd;
	atomic_uint_fast64_t requests;
};

/* ---- the clock ---- */

void hf_coord_feedsrv_pos_at(const hf_coord_series *s, const hf_coord_feedsrv_clock *c,
			     uint64_t elapsed_ms, hf_coord_feedsrv_pos *out)
{
	uint64_t first = s->rows[0].t_ms, last = s->rows[s->n - 1].t_ms;
	uint64_t start = c->start_ms ? c->start_ms : first;
	double adv = (double)elapsed_ms * c->speed;

	memset(out, 0, sizeof *out);
	if (!(adv >= 0))
		adv = 0;
	if (adv > ADVANCE_MAX_MS)
		adv = ADVANCE_MAX_MS;
	if (start < first)
		start = first;
	if (!c->loop) {
		if ((double)start + adv >= (double)last) {
			out->series_ms = last;
			out->done = true;
			out->row = s->n - 1;
			return;
		}
		out->series_ms = start + (uint64_t)adv;
	} else {
		uint64_t period = last - first + s->step_ms;
		if (period == 0) {
			out->series_ms = first;
			out->row = 0;
			return;
		}
		double off = (double)(start - first) + adv;
		double laps = floor(off / (double)period);
		double rem = off - laps * (double)period;
		if (rem < 0)
			rem = 0;
		if (rem >= (double)period)
			rem = (double)(period - 1);
		out->laps = (uint64_t)laps;
		out->series_ms = first + (uint64_t)rem;
	}
	out->row = hf_coord_series_index_at(s, out->series_ms);
}

/* ---- bodies ---- */

static uint64_t subsidy_sats(uint64_t height)
{
	uint64_t halvings = height / 210000;
	return halvings >= 64 ? 0 : 5000000000ull >> halvings;
}

/* n * per + add as a decimal string; exact while it fits (always, for real fee levels). */
static json_t *sats_string(double per, uint64_t n, uint64_t add)
{
	char buf[64];

	if (per <= 1e15)
		snprintf(buf, sizeof buf, "%llu",
			 (unsigned long long)((uint64_t)per * n + add));
	else
		snprintf(buf, sizeof buf, "%.0f", per * (double)n + (double)add);
	return json_string(buf);
}

static json_t *reward_stats(const hf_coord_series_row *r)
{
	double fee = round(r->fees_btc * 1e8);
	uint64_t n = HF_COORD_FEEDSRV_BLOCKS;
	char tx[32];

	if (!(fee >= 0))
		fee = 0;
	snprintf(tx, sizeof tx, "%llu",
		 (unsigned long long)HF_COORD_FEEDSRV_BLOCKS * HF_COORD_FEEDSRV_TX_PER_BLOCK);
	return json_pack("{s:I, s:I, s:o, s:o, s:s}",
			 "startBlock", (json_int_t)(r->height >= n - 1 ? r->height - (n - 1) : 0),
			 "endBlock", (json_int_t)r->height,
			 "totalReward", sats_string(fee, n, n * subsidy_sats(r->height)),
			 "totalFee", sats_string(fee, n, 0),
			 "totalTx", tx);
}

static json_t *clock_json(const hf_coord_series *s, const hf_coord_feedsrv_clock *c,
			  const hf_coord_feedsrv_pos *pos)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:b, s:b, s:I, s:I, s:I, s:I}",
			 "series_time", (json_int_t)(pos->series_ms / 1000),
			 "series_time_ms", (json_int_t)pos->series_ms,
			 "row", (json_int_t)pos->row,
			 "rows", (json_int_t)s->n,
			 "row_time", (json_int_t)(s->rows[pos->row].t_ms / 1000),
			 "speed", c->speed,
			 "done", pos->done,
			 "loop", c->loop,
			 "laps", (json_int_t)pos->laps,
			 "step_s", (json_int_t)(s->step_ms / 1000),
			 "first_time", (json_int_t)(s->rows[0].t_ms / 1000),
			 "last_time", (json_int_t)(s->rows[s->n - 1].t_ms / 1000));
}

json_t *hf_coord_feedsrv_body(const hf_coord_series *s, const hf_coord_feedsrv_clock *c,
			      const hf_coord_feedsrv_pos *pos, const char *path)
{
	const hf_coord_series_row *r = &s->rows[pos->row];
	json_int_t t = (json_int_t)(r->t_ms / 1000);

	if (strcmp(path, "/api/v1/prices") == 0)
		return json_pack("{s:I, s:f}", "time", t, "USD", r->btc_usd);
	if (strcmp(path, "/api/v1/mining/hashrate/3d") == 0)
		return json_pack("{s:f, s:f}", "currentHashrate", r->difficulty * 4294967296.0 / 600.0,
				 "currentDifficulty", r->difficulty);
	if (strcmp(path, "/api/blocks/tip/height") == 0)
		return json_integer((json_int_t)r->height);
	if (strcmp(path, "/api/v1/mining/reward-stats/144") == 0)
		return reward_stats(r);
	if (strcmp(path, "/hashflop/v1/power") == 0)
		return json_pack("{s:I, s:f}", "time", t, "usd_kwh", r->power_usd_kwh);
	if (strcmp(path, "/hashflop/v1/inference") == 0)
		return json_pack("{s:I, s:f, s:f}", "time", t, "price", r->inference_price,
				 "demand", r->inference_demand);
	if (strcmp(path, "/hashflop/v1/clock") == 0)
		return clock_json(s, c, pos);
	return NULL;
}

/* ---- the "feeds" section ---- */

static const struct feed_path {
	const char *feed, *path, *pointer;
	double scale;
} feed_paths[] = {
	{ "btc_usd", "/api/v1/prices", "/USD", 1 },
	{ "difficulty", "/api/v1/mining/hashrate/3d", "/currentDifficulty", 1 },
	{ "height", "/api/blocks/tip/height", "", 1 },
	{ "fees_btc", "/api/v1/mining/reward-stats/144", "/totalFee", 1e-8 / 144 },
	{ "power_usd_kwh", "/hashflop/v1/power", "/usd_kwh", 1 },
	{ "inference_price", "/hashflop/v1/inference", "/price", 1 },
	{ "inference_demand", "/hashflop/v1/inference", "/demand", 1 },
};

/* Splits http(s)://HOST[:PORT][/PREFIX] into its parts; false when it is not that. */
static bool url_parts(const char *url, bool *https, char *host, size_t hostsz)
{
	const char *p, *end;
	size_t n;

	if (strncmp(url, "http://", 7) == 0) {
		*https = false;
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		*https = true;
		p = url + 8;
	} else {
		return false;
	}
	if (*p == '[') {
		if (!(end = strchr(p, ']')))
			return false;
		end++;
	} else {
		end = p + strcspn(p, ":/?#");
	}
	n = (size_t)(end - p);
	if (n == 0 || n >= hostsz || (*end && *end != ':' && *end != '/'))
		return false;
	memcpy(host, p, n);
	host[n] = '\0';
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == '"' || *q == '\\' || (unsigned char)*q >= 0x7f ||
		    *q == '?' || *q == '#')
			return false;
	return true;
}

/* As the feeds judge it (hf_coord_feed.c): localhost, 127.0.0.0/8, ::1 (brackets allowed). */
static bool host_loopback(const char *host)
{
	char h[256];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n = strlen(host);

	if (host[0] == '[' && n >= 2 && host[n - 1] == ']' && n - 2 < sizeof h) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		if (inet_pton(AF_INET6, h, &a6) == 1)
			return IN6_IS_ADDR_LOOPBACK(&a6) ||
			       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
		return false;
	}
	if (strcasecmp(host, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

json_t *hf_coord_feedsrv_feeds_json(const char *base_url, unsigned refresh_s, hf_errbuf *eb)
{
	char host[256], base[900], url[1024];
	json_t *feeds;
	bool https;
	size_t n;

	if (!refresh_s) {
		hf_fail(eb, HF_EINVAL, "refresh_s must be at least 1");
		return NULL;
	}
	if (!hf_strlcpy(base, base_url, sizeof base) || !url_parts(base, &https, host, sizeof host)) {
		hf_fail(eb, HF_EINVAL, "\"%.200s\": expected http://HOST[:PORT][/PREFIX] or https://...",
			base_url);
		return NULL;
	}
	n = strlen(base);
	while (n && base[n - 1] == '/')
		base[--n] = '\0';
	if (!(feeds = json_object()))
		goto nomem;
	for (size_t i = 0; i < HF_ARRAY_SIZE(feed_paths); i++) {
		const struct feed_path *f = &feed_paths[i];
		json_t *one;
		snprintf(url, sizeof url, "%s%s", base, f->path);
		one = json_pack("{s:s, s:s, s:I}", "url", url, "pointer", f->pointer, "refresh_s",
				(json_int_t)refresh_s);
		if (one && f->scale != 1 && json_object_set_new(one, "scale", json_real(f->scale)) < 0) {
			json_decref(one);
			one = NULL;
		}
		if (!one || json_object_set_new(feeds, f->feed, one) < 0)
			goto nomem_feeds;
	}
	if (!https && !host_loopback(host) &&
	    json_object_set_new(feeds, "allow_plain_http", json_true()) < 0)
		goto nomem_feeds;
	return feeds;
nomem_feeds:
	json_decref(feeds);
nomem:
	hf_fail(eb, HF_ENOMEM, "out of memory");
	return NULL;
}

/* ---- the server ---- */

static void on_get(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord_feedsrv *f = ctx;
	hf_coord_feedsrv_pos pos;
	json_t *j;

	atomic_fetch_add(&f->requests, 1);
	hf_coord_feedsrv_position(f, &pos);
	hf_http_resp_header(resp, "Cache-Control", "no-store");
	if (!(j = hf_coord_feedsrv_body(f->series, &f->clock, &pos, req->path))) {
		hf_http_resp_error(resp, 500, "cannot build the response");
		return;
	}
	if (json_is_integer(j)) {
		resp->status = 200;
		resp->content_type = "text/plain";
		hf_buf_printf(&resp->body, "%lld", (long long)json_integer_value(j));
		json_decref(j);
		return;
	}
	hf_http_resp_json(resp, 200, j);
}

static const hf_http_route routes[] = {
	{ "GET", "/api/v1/prices", on_get },
	{ "GET", "/api/v1/mining/hashrate/3d", on_get },
	{ "GET", "/api/blocks/tip/height", on_get },
	{ "GET", "/api/v1/mining/reward-stats/144", on_get },
	{ "GET", "/hashflop/v1/power", on_get },
	{ "GET", "/hashflop/v1/inference", on_get },
	{ "GET", "/hashflop/v1/clock", on_get },
};

int hf_coord_feedsrv_new(const hf_coord_series *s, const hf_coord_feedsrv_opts *opts,
			 hf_coord_feedsrv **out, hf_errbuf *eb)
{
	const hf_coord_feedsrv_clock *c = &opts->clock;
	hf_httpd_opts ho = { .host = opts->host ? opts->host : "127.0.0.1", .port = opts->port,
			     .max_body = 4096, .max_conns = 256 };
	hf_coord_feedsrv *f;
	int r;

	*out = NULL;
	if (!s || s->n == 0)
		return hf_fail(eb, HF_EINVAL, "the series has no rows");
	if (!(c->speed > 0) || c->speed > HF_COORD_FEEDSRV_SPEED_MAX)
		return hf_fail(eb, HF_EINVAL, "speed %g: expected a number above 0, at most %g",
			       c->speed, HF_COORD_FEEDSRV_SPEED_MAX);
	if (c->start_ms && (c->start_ms < s->rows[0].t_ms || c->start_ms > s->rows[s->n - 1].t_ms))
		return hf_fail(eb, HF_EINVAL, "start %llu ms: outside the series (%llu to %llu ms)",
			       (unsigned long long)c->start_ms, (unsigned long long)s->rows[0].t_ms,
			       (unsigned long long)s->rows[s->n - 1].t_ms);
	if (!(f = calloc(1, sizeof *f)))
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	f->series = s;
	f->clock = *c;
	atomic_init(&f->requests, 0);
	f->t0_mono_ms = hf_mono_ms();
	if ((r = hf_httpd_new(&ho, routes, HF_ARRAY_SIZE(routes), f, &f->httpd, eb)) < 0) {
		free(f);
		return r;
	}
	*out = f;
	return 0;
}

uint16_t hf_coord_feedsrv_port(const hf_coord_feedsrv *f)
{
	return hf_httpd_port(f->httpd);
}

void hf_coord_feedsrv_position(const hf_coord_feedsrv *f, hf_coord_feedsrv_pos *out)
{
	hf_coord_feedsrv_pos_at(f->series, &f->clock, hf_mono_ms() - f->t0_mono_ms, out);
}

uint64_t hf_coord_feedsrv_requests(const hf_coord_feedsrv *f)
{
	return atomic_load(&((hf_coord_feedsrv *)f)->requests);
}

void hf_coord_feedsrv_free(hf_coord_feedsrv *f)
{
	if (!f)
		return;
	hf_httpd_free(f->httpd);
	free(f);
}
