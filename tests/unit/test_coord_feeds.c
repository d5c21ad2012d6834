/* Unit tests for hf_coord_feeds, the fetcher, against real servers on 127.0.0.1 (ephemeral
 * ports): hf_httpd serving the mempool.space shapes at their paths, errors, oversize bodies,
 * redirects, HTTPS with a self-signed certificate made at test time (openssl CLI), and a
 * barrier that answers only once every feed's request is waiting (concurrency, checked without
 * timing); raw sockets that accept and never answer (timeouts; free aborts the transfer), that
 * answer garbage, or that refuse. Waits are on rounds (a condition variable) or polls with a
 * deadline; no fixed sleeps, no timing thresholds beyond loose upper bounds. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_coord_feeds.h"
#include "hf_httpd.h"
#include "hf_testproc.h"
#include "hf_text.h"
#include "hf_util.h"

#define WAIT_MS 20000

/* ---- an hf_httpd with a table of answers ---- */

#define MAX_ANS 16
#define MAX_PEND 16

typedef struct answer {
	char path[128];
	int status;
	const char *ctype;
	char *body;
	char location[128];
	bool barrier;     /* defer until `want` requests wait, then answer them all */
} answer;

typedef struct srv {
	hf_httpd *h;
	bool tls;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	answer ans[MAX_ANS];
	size_t nans;
	unsigned hits;
	struct {
		hf_http_pending *p;
		size_t ans;
	} pend[MAX_PEND];
	size_t npend, peak, want;
	bool stop;
	pthread_t releaser;
	bool releaser_on;
} srv;

static void srv_set(srv *s, const char *path, int status, const char *body)
{
	answer *a = NULL;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nans; i++)
		if (strcmp(s->ans[i].path, path) == 0)
			a = &s->ans[i];
	if (!a) {
		cr_assert_lt(s->nans, MAX_ANS);
		a = &s->ans[s->nans++];
		snprintf(a->path, sizeof a->path, "%s", path);
	}
	free(a->body);
	a->body = strdup(body);
	a->status = status;
	a->ctype = strstr(path, "height") ? "text/plain" : "application/json";
	pthread_mutex_unlock(&s->mu);
}

static answer *srv_find(srv *s, const char *path)
{
	for (size_t i = 0; i < s->nans; i++)
		if (strcmp(s->ans[i].path, path) == 0)
			return &s->ans[i];
	return NULL;
}

static void fill(hf_http_resp *resp, const answer *a)
{
	resp->status = a->status;
	resp->content_type = a->ctype;
	if (a->location[0])
		hf_http_resp_header(resp, "Location", a->location);
	hf_buf_append(&resp->body, a->body, strlen(a->body));
}

static void on_request(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	srv *s = ctx;
	answer *a;

	pthread_mutex_lock(&s->mu);
	s->hits++;
	a = srv_find(s, req->path);
	if (!a) {
		pthread_mutex_unlock(&s->mu);
		hf_http_resp_error(resp, 404, "no answer for %s", req->path);
		return;
	}
	if (a->barrier && s->npend < MAX_PEND) {
		hf_http_pending *p = hf_http_defer(req, NULL, NULL);
		if (p) {
			s->pend[s->npend].p = p;
			s->pend[s->npend].ans = (size_t)(a - s->ans);
			s->npend++;
			if (s->npend > s->peak)
				s->peak = s->npend;
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
			return;
		}
	}
	fill(resp, a);
	pthread_mutex_unlock(&s->mu);
}

/* Answers the deferred requests once `want` of them wait at once (or after 15 s, so that a
 * serial fetcher fails the test instead of hanging it). */
static void *releaser_main(void *arg)
{
	srv *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		hf_abstime_after_ms(15000, &ts);
		while (!s->stop && s->npend == 0)
			pthread_cond_wait(&s->cv, &s->mu);
		while (!s->stop && s->npend < s->want)
			if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
				break;
		for (size_t i = 0; i < s->npend; i++) {
			hf_http_resp r;
			hf_http_resp_init(&r);
			fill(&r, &s->ans[s->pend[i].ans]);
			hf_http_pending *p = s->pend[i].p;
			pthread_mutex_unlock(&s->mu);
			hf_http_pending_complete(p, &r);
			pthread_mutex_lock(&s->mu);
		}
		s->npend = 0;
		if (s->stop)
			break;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static const hf_http_route routes[] = {
	{ "GET", "/api/v1/prices", on_request },
	{ "GET", "/api/v1/mining/hashrate/3d", on_request },
	{ "GET", "/api/blocks/tip/height", on_request },
	{ "GET", "/api/v1/mining/reward-stats/144", on_request },
	{ "GET", "/t/*", on_request },
};

static const char *prices = "{\"time\": 1733011200, \"USD\": 97123, \"EUR\": 91000, "
			    "\"GBP\": 76000, \"CAD\": 136000, \"CHF\": 85000, \"AUD\": 150000, "
			    "\"JPY\": 14500000}";
static const char *hashrate = "{\"hashrates\": [{\"timestamp\": 1733011200, \"avgHashrate\": "
			      "7.3e20}], \"difficulty\": [{\"time\": 1733011200, \"height\": "
			      "872000, \"difficulty\": 102289407543323.8, \"adjustment\": 1.01}], "
			      "\"currentHashrate\": 7.4e20, \"currentDifficulty\": "
			      "102289407543323.8}";
static const char *rewards = "{\"startBlock\": 872001, \"endBlock\": 872144, \"totalReward\": "
			     "\"47059846437\", \"totalFee\": \"2059846437\", \"totalTx\": "
			     "\"512345\"}";

static void srv_start_opts(srv *s, const char *cert, const char *key)
{
	hf_httpd_opts o = { .host = "127.0.0.1", .threads = 2, .tls_cert_pem = cert,
			    .tls_key_pem = key };
	hf_errbuf eb;

	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->tls = cert != NULL;
	srv_set(s, "/api/v1/prices", 200, prices);
	srv_set(s, "/api/v1/mining/hashrate/3d", 200, hashrate);
	srv_set(s, "/api/blocks/tip/height", 200, "872144");
	srv_set(s, "/api/v1/mining/reward-stats/144", 200, rewards);
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), s, &s->h, &eb), 0, "%s",
		     eb.msg);
	cr_assert_eq(pthread_create(&s->releaser, NULL, releaser_main, s), 0);
	s->releaser_on = true;
}

static void srv_start(srv *s)
{
	srv_start_opts(s, NULL, NULL);
}

static void srv_url(const srv *s, const char *path, char *out, size_t n)
{
	snprintf(out, n, "%s://127.0.0.1:%u%s", s->tls ? "https" : "http", hf_httpd_port(s->h),
		 path);
}

static void srv_stop(srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->releaser_on)
		pthread_join(s->releaser, NULL);
	hf_httpd_free(s->h);
	for (size_t i = 0; i < s->nans; i++)
		free(s->ans[i].body);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

/* ---- raw sockets ---- */

/* A socket bound to 127.0.0.1 on an ephemeral port; listening (backlog: connections complete
 * in the kernel and are never accepted) or not (connections are refused). */
static int raw_socket(bool listening, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	if (listening)
		cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

typedef struct garbage {
	int fd;
	bool stop;
	pthread_t t;
} garbage;

/* Accepts and answers each connection with bytes that are not HTTP, then closes it. */
static void *garbage_main(void *arg)
{
	garbage *g = arg;
	while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { .fd = g->fd, .events = POLLIN };
		if (poll(&p, 1, 50) != 1)
			continue;
		int c = accept(g->fd, NULL, NULL);
		if (c < 0)
			continue;
		char buf[4096];
		(void)!read(c, buf, sizeof buf);
		(void)!write(c, "\x01\x02 not http at all\r\n\r\n", 22);
		close(c);
	}
	return NULL;
}

/* ---- specs ---- */

/* Every feed a constant except those the test points at URLs. */
static void const_spec(hf_coord_feeds_spec *s)
{
	hf_coord_feeds_spec_defaults(s);
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		memset(&s->feed[i], 0, sizeof s->feed[i]);
		s->feed[i].kind = HF_FEED_CONST;
		s->feed[i].value = 1;
	}
	s->feed[HF_FEED_SUBSIDY_BTC].kind = HF_FEED_NONE;
	s->feed[HF_FEED_HEIGHT].value = 840000;
}

static void url_feed(hf_coord_feeds_spec *s, hf_coord_feed_id id, const char *url,
		     const char *pointer, double scale)
{
	hf_coord_feed_spec *f = &s->feed[id];
	memset(f, 0, sizeof *f);
	f->kind = HF_FEED_URL;
	snprintf(f->url, sizeof f->url, "%s", url);
	snprintf(f->pointer, sizeof f->pointer, "%s", pointer);
	f->scale = scale;
	f->refresh_s = 60;
	f->max_age_s = 600;
	f->timeout_s = 10;
	f->max_body = 1 << 20;
}

/* The defaults (mempool.space's pointers and scales) with the host replaced by s's. */
static void mempool_spec(const srv *s, hf_coord_feeds_spec *spec)
{
	hf_coord_feeds_spec_defaults(spec);
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		hf_coord_feed_spec *f = &spec->feed[i];
		const char *path;
		char url[HF_FEED_URL_MAX + 1];
		if (f->kind != HF_FEED_URL)
			continue;
		path = strstr(f->url, "/api/");
		cr_assert_not_null(path);
		srv_url(s, path, url, sizeof url);
		snprintf(f->url, sizeof f->url, "%s", url);
	}
}

static hf_coord_feeds *start(const hf_coord_feeds_spec *spec)
{
	hf_coord_feeds *f = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_feeds_new(spec, &f, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(f);
	return f;
}

static void first_round(hf_coord_feeds *f)
{
	cr_assert(hf_coord_feeds_wait_round(f, 1, WAIT_MS), "no round within %d ms", WAIT_MS);
}

/* ---- a good fetch of every default shape; /v1/feeds and /metrics ---- */

Test(coord_feeds, fetches_the_mempool_shapes_at_their_paths)
{
	hf_coord_feeds_spec spec;
	hf_coord_market m;
	hf_coord_feed_state st;
	srv s;

	srv_start(&s);
	mempool_spec(&s, &spec);
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	uint64_t now = hf_wall_ms();
	hf_coord_feeds_market(f, now, &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_eq(m.btc_usd, 97123);
	cr_assert_eq(m.difficulty, 102289407543323.8);
	cr_assert_float_eq(m.fees_btc, 20.59846437 / 144, 1e-12);
	cr_assert_eq(m.subsidy_btc, 3.125);
	cr_assert_eq(m.power_usd_kwh, 0.05);
	cr_assert_eq(m.at_ms, now);
	hf_coord_feeds_state(f, HF_FEED_HEIGHT, &st);
	cr_assert(st.have && st.value == 872144 && st.ok_total == 1 && st.fail_total == 0);
	cr_assert_eq(st.next_fetch_ms, st.last_fetch_ms + 60000, "refresh_s after a success");
	cr_assert_eq(hf_coord_feeds_rounds(f), 1);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

Test(coord_feeds, feeds_json_and_metrics)
{
	hf_coord_feeds_spec spec;
	hf_buf b;
	srv s;

	srv_start(&s);
	mempool_spec(&s, &spec);
	srv_set(&s, "/api/v1/prices", 503, "{\"error\": \"down\"}");
	spec.feed[HF_FEED_POWER].kind = HF_FEED_SCHEDULE;
	spec.feed[HF_FEED_POWER].nschedule = 1;
	spec.feed[HF_FEED_POWER].schedule[0].value = 0.07;
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	uint64_t now = hf_wall_ms();
	json_t *j = hf_coord_feeds_json(f, now);
	cr_assert_not_null(j);
	json_t *fs = json_object_get(j, "feeds"), *btc = json_object_get(fs, "btc_usd");
	json_t *h = json_object_get(fs, "height"), *pw = json_object_get(fs, "power_usd_kwh");
	json_t *mk = json_object_get(j, "market");
	cr_assert_null(json_object_get(fs, "subsidy_btc"), "an unconfigured feed is not listed");
	cr_assert_str_eq(json_string_value(json_object_get(btc, "kind")), "url");
	cr_assert(json_is_false(json_object_get(btc, "fresh")));
	cr_assert(json_is_null(json_object_get(btc, "value")));
	cr_assert(json_is_null(json_object_get(btc, "age_s")));
	cr_assert(strstr(json_string_value(json_object_get(btc, "stale_why")), "HTTP 503"));
	cr_assert(strstr(json_string_value(json_object_get(btc, "last_error")),
			 "HTTP 503: {\"error\": \"down\"}"));
	cr_assert_eq(json_integer_value(json_object_get(btc, "fail_total")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(btc, "pointer")), "/USD");
	cr_assert(strstr(json_string_value(json_object_get(btc, "url")), "/api/v1/prices"));
	cr_assert(json_is_true(json_object_get(h, "fresh")));
	cr_assert_eq(json_number_value(json_object_get(h, "value")), 872144);
	cr_assert(json_is_integer(json_object_get(h, "age_s")));
	cr_assert(json_is_null(json_object_get(h, "stale_why")));
	cr_assert(json_is_null(json_object_get(h, "last_error")));
	cr_assert_eq(json_integer_value(json_object_get(h, "ok_total")), 1);
	cr_assert(json_integer_value(json_object_get(h, "next_fetch_ms")) > (json_int_t)now);
	cr_assert_str_eq(json_string_value(json_object_get(pw, "kind")), "schedule");
	cr_assert_eq(json_number_value(json_object_get(pw, "value")), 0.07);
	cr_assert(json_is_true(json_object_get(pw, "fresh")));
	cr_assert_null(json_object_get(pw, "url"));
	cr_assert(json_is_true(json_object_get(mk, "stale")));
	cr_assert(strstr(json_string_value(json_object_get(mk, "stale_why")), "btc_usd: HTTP 503"));
	cr_assert_eq(json_number_value(json_object_get(mk, "subsidy_btc")), 3.125);
	cr_assert_eq(json_integer_value(json_object_get(mk, "at_ms")), (json_int_t)now);
	cr_assert_eq(json_number_value(json_object_get(mk, "power_usd_kwh")), 0.07);
	char *text = json_dumps(j, 0);
	cr_assert_not_null(text);
	free(text);
	json_decref(j);

	hf_buf_init(&b, 0);
	hf_coord_feeds_metrics(f, now, &b);
	cr_assert(strstr(b.data, "# TYPE hashflop_coord_feed_value gauge\n"), "%s", b.data);
	cr_assert(strstr(b.data, "hashflop_coord_feed_value{feed=\"height\"} 872144\n"), "%s", b.data);
	cr_assert_null(strstr(b.data, "hashflop_coord_feed_value{feed=\"btc_usd\"}"),
		       "a feed never read has no value sample");
	cr_assert(strstr(b.data, "hashflop_coord_feed_value{feed=\"power_usd_kwh\"} 0.07\n"));
	cr_assert(strstr(b.data, "hashflop_coord_feed_fresh{feed=\"btc_usd\"} 0\n"));
	cr_assert(strstr(b.data, "hashflop_coord_feed_fresh{feed=\"difficulty\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_coord_feed_fresh{feed=\"inference_demand\"} 1\n"));
	cr_assert(strstr(b.data, "# TYPE hashflop_coord_feed_age_seconds gauge\n"));
	cr_assert(strstr(b.data, "hashflop_coord_feed_age_seconds{feed=\"height\"} "));
	cr_assert(strstr(b.data, "# TYPE hashflop_coord_feed_fetch_total counter\n"));
	cr_assert(strstr(b.data, "hashflop_coord_feed_fetch_total{feed=\"btc_usd\",result=\"ok\"} 0\n"));
	cr_assert(strstr(b.data,
			 "hashflop_coord_feed_fetch_total{feed=\"btc_usd\",result=\"error\"} 1\n"));
	cr_assert(strstr(b.data,
			 "hashflop_coord_feed_fetch_total{feed=\"height\",result=\"ok\"} 1\n"));
	cr_assert_null(strstr(b.data, "subsidy_btc"));
	cr_assert_null(strstr(b.data, "fetch_total{feed=\"power_usd_kwh\""));
	hf_buf_free(&b);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

/* ---- failures, each with its reason ---- */

typedef struct fail_case {
	const char *path, *pointer;
	int status;
	const char *body;
	size_t max_body;
	const char *why;
} fail_case;

static void one_failure(srv *s, const fail_case *c)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	hf_coord_market m;
	char url[256];

	if (c->body)
		srv_set(s, c->path, c->status, c->body);
	const_spec(&spec);
	srv_url(s, c->path, url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, c->pointer, 1);
	if (c->max_body)
		spec.feed[HF_FEED_BTC_USD].max_body = c->max_body;
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && !st.have, "%s: not failing", c->path);
	cr_assert_eq(st.fail_total, 1);
	cr_assert(strstr(st.why, c->why), "%s: \"%s\" lacks \"%s\"", c->path, st.why, c->why);
	cr_assert_eq(st.next_fetch_ms, st.last_fetch_ms + 10000, "retry after min(refresh_s, 10)");
	hf_coord_feeds_market(f, hf_wall_ms(), &m);
	cr_assert(m.stale);
	cr_assert(strncmp(m.stale_why, "btc_usd: ", 9) == 0 && strstr(m.stale_why, c->why), "%s",
		  m.stale_why);
	hf_coord_feeds_free(f);
}

Test(coord_feeds, every_failure_makes_the_feed_stale_with_its_reason)
{
	char big[4096];
	srv s;

	memset(big, ' ', sizeof big);
	memcpy(big, "{\"USD\": 5}", 10);
	big[sizeof big - 1] = '\0';
	const fail_case cases[] = {
		{ "/t/badjson", "/USD", 200, "{\"USD\": 97", 0, "bad JSON at byte " },
		{ "/t/html", "/USD", 200, "<html>oops</html>", 0, "bad JSON at byte 1" },
		{ "/t/pointer", "/USD", 200, "{\"usd\": 1}", 0, "pointer /USD: no member \"USD\"" },
		{ "/t/deep", "/data/3", 200, "{\"data\": [1, 2]}", 0,
		  "pointer /data/3: index 3 out of range" },
		{ "/t/500", "/USD", 500, "{\"error\": \"boom\"}", 0, "HTTP 500" },
		{ "/t/missing", "/USD", 0, NULL, 0, "HTTP 404" },
		{ "/t/nan", "/USD", 200, "{\"USD\": \"NaN\"}", 0, "\"NaN\" is not a decimal number" },
		{ "/t/nanbare", "/USD", 200, "{\"USD\": NaN}", 0, "bad JSON" },
		{ "/t/neg", "/USD", 200, "{\"USD\": -97000}", 0, "value is negative" },
		{ "/t/str", "/USD", 200, "{\"USD\": \"ninety\"}", 0, "not a decimal number" },
		{ "/t/big", "/USD", 200, big, 1000, "body over max_body (1000 bytes)" },
	};

	srv_start(&s);
	for (size_t i = 0; i < HF_ARRAY_SIZE(cases); i++)
		one_failure(&s, &cases[i]);
	srv_stop(&s);
}

Test(coord_feeds, a_redirect_is_not_followed)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	char url[256];
	srv s;

	srv_start(&s);
	srv_set(&s, "/t/moved", 302, "");
	srv_url(&s, "/api/v1/prices", url, sizeof url);
	snprintf(s.ans[s.nans - 1].location, sizeof s.ans[0].location, "%s", url);
	const_spec(&spec);
	srv_url(&s, "/t/moved", url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && strstr(st.why, "HTTP 302"), "%s", st.why);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

Test(coord_feeds, connection_refused_and_garbage)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	garbage g = { 0 };
	uint16_t refused_port, garbage_port;
	int refused_fd = raw_socket(false, &refused_port);
	char url[256];

	g.fd = raw_socket(true, &garbage_port);
	cr_assert_eq(pthread_create(&g.t, NULL, garbage_main, &g), 0);
	const_spec(&spec);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/prices", refused_port);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/prices", garbage_port);
	url_feed(&spec, HF_FEED_DIFFICULTY, url, "/currentDifficulty", 1);
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && strstr(st.why, "onnect"), "%s", st.why);
	hf_coord_feeds_state(f, HF_FEED_DIFFICULTY, &st);
	cr_assert(st.failing && st.fail_total == 1, "garbage accepted: %s", st.why);
	cr_assert(hf_utf8_valid(st.why, strlen(st.why)));
	hf_coord_feeds_free(f);
	__atomic_store_n(&g.stop, true, __ATOMIC_RELEASE);
	pthread_join(g.t, NULL);
	close(g.fd);
	close(refused_fd);
}

/* ---- timeouts, and free during a transfer ---- */

Test(coord_feeds, a_server_that_never_answers_times_out)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	hf_coord_market m;
	uint16_t port;
	int fd = raw_socket(true, &port);
	char url[256];

	const_spec(&spec);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/prices", port);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	spec.feed[HF_FEED_BTC_USD].timeout_s = 1;
	uint64_t t0 = hf_mono_ms();
	hf_coord_feeds *f = start(&spec);
	/* timeout_s + slack for a loaded machine */
	first_round(f);
	uint64_t took = hf_mono_ms() - t0;
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing, "no failure");
	cr_assert(strncmp(st.why, "timeout after 1 s", 17) == 0, "%s", st.why);
	cr_assert_geq(took, 900, "timed out before timeout_s: %llu ms", (unsigned long long)took);
	hf_coord_feeds_market(f, hf_wall_ms(), &m);
	cr_assert(m.stale && strstr(m.stale_why, "btc_usd: timeout after 1 s"), "%s", m.stale_why);
	hf_coord_feeds_free(f);
	close(fd);
}

Test(coord_feeds, free_aborts_a_transfer_in_flight)
{
	hf_coord_feeds_spec spec;
	uint16_t port;
	int fd = raw_socket(true, &port);
	char url[256];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	const_spec(&spec);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/prices", port);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	spec.feed[HF_FEED_BTC_USD].timeout_s = 120;
	hf_coord_feeds *f = start(&spec);
	/* The connection is in the listen backlog: the transfer is in flight. */
	cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "the fetcher did not connect");
	uint64_t t0 = hf_mono_ms();
	hf_coord_feeds_free(f);
	uint64_t took = hf_mono_ms() - t0;
	/* Loose: free must not wait for the 120 s timeout. */
	cr_assert_lt(took, 30000, "free took %llu ms", (unsigned long long)took);
	close(fd);
}

/* ---- staleness by age, recovery, the retry schedule ---- */

Test(coord_feeds, max_age_makes_a_good_value_stale)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	hf_coord_market m;
	char url[256];
	srv s;

	srv_start(&s);
	const_spec(&spec);
	srv_url(&s, "/api/v1/prices", url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	spec.feed[HF_FEED_BTC_USD].refresh_s = 3600;
	spec.feed[HF_FEED_BTC_USD].max_age_s = 1;
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.have && !st.failing);
	hf_coord_feeds_market(f, st.value_ms, &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_eq(m.btc_usd, 97123);
	uint64_t deadline = hf_mono_ms() + WAIT_MS;
	do {
		hf_coord_feeds_market(f, hf_wall_ms(), &m);
		if (m.stale)
			break;
		hf_sleep_ms(20);
	} while (hf_mono_ms() < deadline);
	cr_assert(m.stale, "never went stale");
	cr_assert(strstr(m.stale_why, "btc_usd: ") && strstr(m.stale_why, " s old (max_age_s 1)"),
		  "%s", m.stale_why);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert_eq(st.ok_total, 1, "fetched again before refresh_s");
	pthread_mutex_lock(&s.mu);
	unsigned hits = s.hits;
	pthread_mutex_unlock(&s.mu);
	cr_assert_eq(hits, 1);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

Test(coord_feeds, recovers_after_a_failure)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	hf_coord_market m;
	char url[256];
	srv s;

	srv_start(&s);
	srv_set(&s, "/api/v1/prices", 500, "{}");
	const_spec(&spec);
	srv_url(&s, "/api/v1/prices", url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	spec.feed[HF_FEED_BTC_USD].refresh_s = 1;
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && strstr(st.why, "HTTP 500"));
	cr_assert_eq(st.next_fetch_ms, st.last_fetch_ms + 1000, "retry after min(refresh_s, 10)");
	/* The retry on its own schedule (refresh_s 1), no refresh_now. */
	srv_set(&s, "/api/v1/prices", 200, "{\"USD\": 101000}");
	cr_assert(hf_coord_feeds_wait_round(f, 2, WAIT_MS));
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(!st.failing && st.have && st.value == 101000, "%s", st.why);
	cr_assert_eq(st.ok_total, 1);
	cr_assert_eq(st.fail_total, 1);
	cr_assert_str_eq(st.why, "HTTP 500: {}", "the last error stays for /v1/feeds");
	hf_coord_feeds_market(f, hf_wall_ms(), &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_eq(m.btc_usd, 101000);
	/* And a failure again, then refresh_now. */
	srv_set(&s, "/api/v1/prices", 200, "{\"USD\": \"x\"}");
	uint64_t r = hf_coord_feeds_refresh(f);
	cr_assert(hf_coord_feeds_wait_round(f, r, WAIT_MS));
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && strstr(st.why, "\"x\" is not a decimal number"), "%s", st.why);
	srv_set(&s, "/api/v1/prices", 200, "{\"USD\": 99000.5}");
	r = hf_coord_feeds_refresh(f);
	cr_assert(hf_coord_feeds_wait_round(f, r, WAIT_MS));
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(!st.failing && st.value == 99000.5);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

/* ---- TLS ---- */

Test(coord_feeds, https_is_verified)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	char url[256];
	hf_test_tls t;
	srv s;

	cr_assert(hf_httpd_tls_supported(), "Debian's libmicrohttpd is built with GnuTLS");
	cr_assert(hf_test_tls_make(&t, "coord_feeds_tls"), "openssl req failed");
	srv_start_opts(&s, t.cert_pem, t.key_pem);
	const_spec(&spec);
	srv_url(&s, "/api/v1/prices", url, sizeof url);
	cr_assert(strncmp(url, "https://", 8) == 0);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	/* The certificate's name is 127.0.0.1, not localhost: refused even with the CA. */
	snprintf(url, sizeof url, "https://localhost:%u/api/v1/prices", hf_httpd_port(s.h));
	url_feed(&spec, HF_FEED_DIFFICULTY, url, "/currentDifficulty", 1);

	/* Without the CA: the system's store does not know a self-signed certificate. */
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && !st.have, "a self-signed certificate was trusted");
	cr_assert(strstr(st.why, "certificate"), "%s", st.why);
	hf_coord_feeds_free(f);

	/* With ca_file naming it: verified, read. */
	char *abs = realpath(t.cert, NULL);
	cr_assert_not_null(abs);
	snprintf(spec.ca_file, sizeof spec.ca_file, "%s", abs);
	free(abs);
	f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(!st.failing && st.have && st.value == 97123, "%s", st.why);
	hf_coord_feeds_state(f, HF_FEED_DIFFICULTY, &st);
	cr_assert(st.failing && !st.have, "the host name was not verified");
	cr_assert(strstr(st.why, "localhost") || strstr(st.why, "name"), "%s", st.why);
	hf_coord_feeds_free(f);
	srv_stop(&s);
	hf_test_tls_free(&t);
}

/* ---- spec checks at new ---- */

Test(coord_feeds, new_refuses_what_the_parser_refuses)
{
	hf_coord_feeds_spec spec;
	hf_coord_feeds *f = (hf_coord_feeds *)1;
	hf_errbuf eb;

	const_spec(&spec);
	url_feed(&spec, HF_FEED_BTC_USD, "http://192.0.2.7/api/v1/prices", "/USD", 1);
	cr_assert_eq(hf_coord_feeds_new(&spec, &f, &eb), HF_ECONFIG);
	cr_assert_null(f);
	cr_assert(strstr(eb.msg, "feeds.btc_usd.url: http:// only to a loopback host"), "%s",
		  eb.msg);
	url_feed(&spec, HF_FEED_BTC_USD, "file:///etc/passwd", "", 1);
	cr_assert_eq(hf_coord_feeds_new(&spec, &f, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "feeds.btc_usd.url"), "%s", eb.msg);
}

Test(coord_feeds, no_url_feed_still_completes_rounds)
{
	hf_coord_feeds_spec spec;
	hf_coord_market m;

	const_spec(&spec);
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	uint64_t r = hf_coord_feeds_refresh(f);
	cr_assert(hf_coord_feeds_wait_round(f, r, WAIT_MS));
	hf_coord_feeds_market(f, hf_wall_ms(), &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_eq(m.subsidy_btc, 3.125);
	hf_coord_feeds_free(f);
	hf_coord_feeds_free(NULL);
}

/* ---- concurrency ---- */

Test(coord_feeds, feeds_are_fetched_concurrently)
{
	hf_coord_feeds_spec spec;
	const char *paths[] = { "/t/slow0", "/t/slow1", "/t/slow2", "/t/slow3" };
	const hf_coord_feed_id ids[] = { HF_FEED_BTC_USD, HF_FEED_DIFFICULTY, HF_FEED_FEES_BTC,
					 HF_FEED_INFER_PRICE };
	char url[256];
	srv s;

	srv_start(&s);
	const_spec(&spec);
	for (size_t i = 0; i < 4; i++) {
		srv_set(&s, paths[i], 200, "{\"v\": 42}");
		pthread_mutex_lock(&s.mu);
		srv_find(&s, paths[i])->barrier = true;
		pthread_mutex_unlock(&s.mu);
		srv_url(&s, paths[i], url, sizeof url);
		url_feed(&spec, ids[i], url, "/v", 1);
		spec.feed[ids[i]].timeout_s = 60;
	}
	pthread_mutex_lock(&s.mu);
	s.want = 4;
	pthread_mutex_unlock(&s.mu);
	hf_coord_feeds *f = start(&spec);
	cr_assert(hf_coord_feeds_wait_round(f, 1, 60000));
	/* The server answered only once all four requests were waiting at the same time. */
	pthread_mutex_lock(&s.mu);
	size_t peak = s.peak;
	pthread_mutex_unlock(&s.mu);
	cr_assert_eq(peak, 4, "the requests did not overlap: at most %zu at once", peak);
	for (size_t i = 0; i < 4; i++) {
		hf_coord_feed_state st;
		hf_coord_feeds_state(f, ids[i], &st);
		cr_assert(st.have && st.value == 42, "%s", st.why);
	}
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

/* ---- rounds ---- */

Test(coord_feeds, a_refresh_during_a_round_is_served_by_the_next_one)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	uint16_t port;
	int fd = raw_socket(true, &port);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char url[256];
	srv s;

	srv_start(&s);
	const_spec(&spec);
	srv_url(&s, "/api/v1/prices", url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/never", port);
	url_feed(&spec, HF_FEED_DIFFICULTY, url, "/x", 1);
	spec.feed[HF_FEED_DIFFICULTY].timeout_s = 2;
	hf_coord_feeds *f = start(&spec);
	cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "the fetcher did not connect");
	/* Round 1 cannot end before the 2 s timeout: this refresh is served by round 2. */
	cr_assert_eq(hf_coord_feeds_refresh(f), 2);
	cr_assert(hf_coord_feeds_wait_round(f, 2, WAIT_MS));
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert_eq(st.ok_total, 2, "the refresh did not refetch the good feed");
	hf_coord_feeds_state(f, HF_FEED_DIFFICULTY, &st);
	cr_assert_eq(st.fail_total, 2);
	cr_assert(strstr(st.why, "timeout after 2 s"), "%s", st.why);
	hf_coord_feeds_free(f);
	srv_stop(&s);
	close(fd);
}

Test(coord_feeds, a_body_of_exactly_max_body_is_read)
{
	hf_coord_feeds_spec spec;
	hf_coord_feed_state st;
	char body[2001], url[256];
	srv s;

	memset(body, ' ', sizeof body);
	memcpy(body, "{\"USD\": 5}", 10);
	body[sizeof body - 1] = '\0';
	srv_start(&s);
	srv_set(&s, "/t/exact", 200, body);
	const_spec(&spec);
	srv_url(&s, "/t/exact", url, sizeof url);
	url_feed(&spec, HF_FEED_BTC_USD, url, "/USD", 1);
	spec.feed[HF_FEED_BTC_USD].max_body = 2000;
	hf_coord_feeds *f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.have && !st.failing && st.value == 5, "%s", st.why);
	hf_coord_feeds_free(f);
	/* One byte less room: refused. */
	spec.feed[HF_FEED_BTC_USD].max_body = 1999;
	f = start(&spec);
	first_round(f);
	hf_coord_feeds_state(f, HF_FEED_BTC_USD, &st);
	cr_assert(st.failing && strstr(st.why, "body over max_body (1999 bytes)"), "%s", st.why);
	hf_coord_feeds_free(f);
	srv_stop(&s);
}

Test(coord_feeds, a_ca_file_that_cannot_be_read_is_refused_at_new)
{
	hf_coord_feeds_spec spec;
	hf_coord_feeds *f = NULL;
	hf_errbuf eb;

	const_spec(&spec);
	snprintf(spec.ca_file, sizeof spec.ca_file, "/nonexistent/ca.pem");
	cr_assert_eq(hf_coord_feeds_new(&spec, &f, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "feeds.ca_file: /nonexistent/ca.pem"), "%s", eb.msg);
}
