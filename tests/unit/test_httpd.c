/* Unit tests for hf_httpd: routing with captures, 404/405/413, bodies, queries, bind errors,
 * unclean paths; connection caps (total, per address, file descriptors), the absolute header
 * deadline, a slowloris beside a normal client; deferred requests (thousands completed from
 * another thread, clients leaving while deferred, shutdown with requests pending); HTTPS with
 * a self-signed certificate made at test time (openssl CLI), fetched with a CA file. A real
 * libmicrohttpd server queried with libcurl and raw sockets on 127.0.0.1 (and 127.0.0.2, also
 * local on Linux, for a second client address). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_httpd.h"
#include "hf_testnet.h"
#include "hf_testproc.h"
#include "hf_util.h"

typedef hf_test_reply reply;

static void request(uint16_t port, const char *method, const char *path, const char *body,
		    size_t body_len, reply *r)
{
	char url[4096];
	cr_assert_lt((size_t)snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path), sizeof url);
	cr_assert(hf_test_http(method, url, body, body_len, r));
}

static void h_item(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	const char *q = hf_http_query(req, "after");
	hf_http_resp_json(resp, 200, json_pack("{s:s, s:s, s:s?, s:i}", "a", req->params[0],
						"b", req->params[1], "after", q, "n", (int)req->nparams));
}

static void h_echo(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	resp->status = 201;
	resp->content_type = "application/octet-stream";
	hf_buf_append(&resp->body, req->body, req->body_len);
	hf_http_resp_header(resp, "Retry-After", "5");
}

static void h_silent(void *ctx, const hf_http_req *req, hf_http_resp *resp) { }

/* ---- the owner of deferred requests: a table the handler fills, completed from elsewhere ---- */

#define OWNER_MAX 4096

typedef struct owner owner;
typedef struct slot {
	owner *o;
	hf_http_pending *p; /* NULL once completed or gone */
	int id;
	int gone_calls;
} slot;

struct owner {
	pthread_mutex_t lock;
	slot slots[OWNER_MAX];
	int nslots;
	int gone;            /* gone() calls */
	int gone_cancelled;  /* their complete() returned HF_ECANCELED */
	int defer_refused;   /* hf_http_defer() returned NULL */
	int errors;          /* what a server thread saw go wrong (asserted by the test) */
};

static void on_gone(void *arg, hf_http_pending *p)
{
	slot *s = arg;
	owner *o = s->o;
	bool mine;

	pthread_mutex_lock(&o->lock);
	s->gone_calls++;
	o->gone++;
	mine = s->p == p;
	if (mine)
		s->p = NULL;
	pthread_mutex_unlock(&o->lock);
	if (mine && hf_http_pending_complete(p, NULL) == HF_ECANCELED) {
		pthread_mutex_lock(&o->lock);
		o->gone_cancelled++;
		pthread_mutex_unlock(&o->lock);
	}
}

/* GET /v1/poll?id=N: answered later by the test; ?now=1 completes at once from the handler. */
static void h_poll(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	owner *o = ctx;
	const char *id = hf_http_query(req, "id");
	hf_http_pending *p;
	slot *s;

	pthread_mutex_lock(&o->lock);
	if (o->nslots >= OWNER_MAX) {
		pthread_mutex_unlock(&o->lock);
		hf_http_resp_error(resp, 503, "table full");
		return;
	}
	s = &o->slots[o->nslots++];
	s->o = o;
	s->id = id ? atoi(id) : -1;
	p = hf_http_defer(req, on_gone, s);
	if (!p) {
		o->defer_refused++;
		pthread_mutex_unlock(&o->lock);
		hf_http_resp_error(resp, 503, "cannot defer");
		return;
	}
	if (hf_http_defer(req, NULL, NULL))
		o->errors++; /* a second deferral of one request must be refused */
	hf_http_resp_error(resp, 200, "discarded: the request was deferred");
	if (hf_http_query(req, "now")) {
		pthread_mutex_unlock(&o->lock);
		int rc = hf_http_pending_complete_json(p, 202, json_pack("{s:i}", "id", s->id));
		pthread_mutex_lock(&o->lock);
		o->errors += rc != 0;
		pthread_mutex_unlock(&o->lock);
		return;
	}
	s->p = p;
	pthread_mutex_unlock(&o->lock);
}

/* Completes every slot still held; returns how many complete() calls returned 0 (*cancelled:
 * how many HF_ECANCELED; anything else counts in o->errors). Any thread. */
static int owner_complete_all(owner *o, int *cancelled)
{
	int ok = 0, other = 0;
	*cancelled = 0;
	for (int i = 0; i < OWNER_MAX; i++) {
		hf_http_pending *p;
		int id;
		pthread_mutex_lock(&o->lock);
		p = i < o->nslots ? o->slots[i].p : NULL;
		o->slots[i].p = NULL;
		id = o->slots[i].id;
		pthread_mutex_unlock(&o->lock);
		if (!p)
			continue;
		int rc = hf_http_pending_complete_json(p, 200, json_pack("{s:i}", "id", id));
		if (rc == 0)
			ok++;
		else if (rc == HF_ECANCELED)
			(*cancelled)++;
		else
			other++;
	}
	pthread_mutex_lock(&o->lock);
	o->errors += other;
	pthread_mutex_unlock(&o->lock);
	return ok;
}

typedef struct completer {
	owner *o;
	int ok, cancelled;
	uint64_t us;
} completer;

static void *complete_main(void *arg)
{
	completer *c = arg;
	uint64_t t0 = hf_mono_us();
	c->ok = owner_complete_all(c->o, &c->cancelled);
	c->us = hf_mono_us() - t0;
	return NULL;
}

static const hf_http_route routes[] = {
	{ "GET", "/v1/things/*/parts/*", h_item },
	{ "POST", "/v1/echo", h_echo },
	{ "PUT", "/v1/echo", h_echo },
	{ "GET", "/v1/silent", h_silent },
	{ "GET", "/v1/poll", h_poll },
};

static hf_httpd *start_opts(hf_httpd_opts *o, void *ctx)
{
	hf_httpd *h;
	hf_errbuf eb;
	o->host = "127.0.0.1";
	if (!o->max_body)
		o->max_body = 1024;
	cr_assert_eq(hf_httpd_new(o, routes, HF_ARRAY_SIZE(routes), ctx, &h, &eb), 0, "%s", eb.msg);
	cr_assert_gt(hf_httpd_port(h), 0);
	return h;
}

static hf_httpd *start(void)
{
	hf_httpd_opts o = { .port = 0 };
	return start_opts(&o, NULL);
}

/* ---- raw clients ---- */

typedef enum { ST_CONNS, ST_DEFERRED, ST_GONE, ST_REFUSED, ST_HDR_TIMEOUTS } stat_kind;

static uint64_t stat_of(hf_httpd *h, stat_kind k)
{
	hf_httpd_stats st;
	hf_httpd_get_stats(h, &st);
	switch (k) {
	case ST_CONNS: return st.connections;
	case ST_DEFERRED: return st.deferred;
	case ST_GONE: return st.deferred_gone_total;
	case ST_REFUSED: return st.refused_total;
	case ST_HDR_TIMEOUTS: return st.header_timeouts_total;
	}
	return 0;
}

/* Waits until the statistic equals want; false on timeout. */
static bool wait_stat(hf_httpd *h, stat_kind k, uint64_t want, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	while (stat_of(h, k) != want) {
		if (hf_mono_ms() >= deadline)
			return false;
		hf_sleep_ms(5);
	}
	return true;
}

static bool wait_int(pthread_mutex_t *lock, const int *v, int want, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	for (;;) {
		pthread_mutex_lock(lock);
		int cur = *v;
		pthread_mutex_unlock(lock);
		if (cur == want)
			return true;
		if (hf_mono_ms() >= deadline)
			return false;
		hf_sleep_ms(5);
	}
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* n sockets from src, each holding half a request; asserts they connected. */
static void slowloris(int *fds, int n, const char *src, uint16_t port)
{
	for (int i = 0; i < n; i++) {
		fds[i] = hf_test_raw_connect(src, port);
		cr_assert_geq(fds[i], 0, "connection %d from %s: %s", i, src ? src : "any", strerror(errno));
		cr_assert(hf_test_send_str(fds[i], "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\nX-Slow: "));
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- routing and errors (the behaviour before issue 11, kept) ---- */

Test(httpd, captures_and_query)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/v1/things/t1/parts/p-2?after=17", NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"a\":\"t1\",\"b\":\"p-2\",\"after\":\"17\",\"n\":2}\n");
	request(hf_httpd_port(h), "GET", "/v1/things/t1/parts", NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	request(hf_httpd_port(h), "GET", "/v1/things//parts/x", NULL, 0, &r);
	cr_assert_eq(r.status, 404, "an empty segment must not match *");
	hf_httpd_free(h);
}

Test(httpd, not_found_and_method_not_allowed)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/nowhere", NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "{\"error\":\"no such path: /nowhere\"}\n");
	request(hf_httpd_port(h), "GET", "/v1/echo", NULL, 0, &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.headers, "Allow: POST, PUT"), "%s", r.headers);
	cr_assert(strstr(r.body, "method GET not allowed on /v1/echo"));
	hf_httpd_free(h);
}

Test(httpd, bodies_and_cap)
{
	hf_httpd *h = start();
	reply r;
	char big[2048];
	memset(big, 'x', sizeof big);
	request(hf_httpd_port(h), "POST", "/v1/echo", "a\0b", 3, &r);
	cr_assert_eq(r.status, 201);
	cr_assert_eq(r.len, 3);
	cr_assert_eq(memcmp(r.body, "a\0b", 3), 0);
	cr_assert(strstr(r.headers, "Retry-After: 5"));
	request(hf_httpd_port(h), "POST", "/v1/echo", big, 1024, &r);
	cr_assert_eq(r.status, 201);
	cr_assert_eq(r.len, 1024);
	request(hf_httpd_port(h), "POST", "/v1/echo", big, 1025, &r);
	cr_assert_eq(r.status, 413);
	cr_assert(strstr(r.body, "over the limit of 1024 bytes"));
	hf_httpd_free(h);
}

Test(httpd, handler_without_response_is_a_500)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/v1/silent", NULL, 0, &r);
	cr_assert_eq(r.status, 500);
	hf_httpd_free(h);
}

Test(httpd, bind_errors)
{
	hf_httpd_opts o = { .host = "localhost", .port = 0 };
	hf_httpd *h, *h2;
	hf_errbuf eb;
	cr_assert_eq(hf_httpd_new(&o, routes, 1, NULL, &h, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "not a numeric"));
	h = start();
	o.host = "127.0.0.1";
	o.port = hf_httpd_port(h);
	cr_assert_eq(hf_httpd_new(&o, routes, 1, NULL, &h2, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "cannot listen"));
	o.port = 0;
	o.threads = HF_HTTPD_MAX_THREADS + 1;
	cr_assert_eq(hf_httpd_new(&o, routes, 1, NULL, &h2, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "threads: expected 1 to 64, got 65"), "%s", eb.msg);
	hf_httpd_free(h);
	hf_httpd_free(NULL);
}

Test(httpd, epoll_and_the_options_in_force)
{
	hf_httpd_opts o = { .max_conns = 300, .threads = 3 };
	hf_httpd *h = start_opts(&o, NULL);
	hf_httpd_stats st;
	reply r;
	hf_httpd_get_stats(h, &st);
	cr_assert(st.epoll, "libmicrohttpd on Linux runs epoll");
	cr_assert_eq(hf_httpd_max_conns(h), 300);
	for (int i = 0; i < 6; i++) {
		request(hf_httpd_port(h), "GET", "/v1/things/a/parts/b", NULL, 0, &r);
		cr_assert_eq(r.status, 200);
	}
	cr_assert(wait_stat(h, ST_CONNS, 0, 5000), "curl's connections were closed");
	hf_httpd_free(h);
}

/* Paths and methods are outside text: a path that is not clean UTF-8 answers 400 with valid
 * JSON, never a 500 (json_pack refuses invalid UTF-8), and a quoted method is cleaned. */
Test(httpd, unclean_paths_and_methods)
{
	hf_httpd *h = start();
	uint16_t port = hf_httpd_port(h);
	char resp[8192];
	reply r;
	json_t *j;

	request(port, "GET", "/v1/%FF%FE/x", NULL, 0, &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", r.body);
	cr_assert(strstr(json_string_value(json_object_get(j, "error")), "not valid UTF-8"), "%s", r.body);
	cr_assert(strstr(r.body, "/v1/?\?/x"), "%s", r.body);
	json_decref(j);
	request(port, "GET", "/v1/a%0A%1B[31mb", NULL, 0, &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "/v1/a??[31mb"), "%s", r.body);
	request(port, "GET", "/v1/a%C2%85b", NULL, 0, &r); /* U+0085, a C1 control */
	cr_assert_eq(r.status, 400, "%s", r.body);
	request(port, "GET", "/v1/things/%C3%A9t%C3%A9/parts/x", NULL, 0, &r); /* "été": clean */
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"a\":\"\xc3\xa9t\xc3\xa9\""), "%s", r.body);
	request(port, "GET", "/nowhere/%C3%A9", NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "{\"error\":\"no such path: /nowhere/\xc3\xa9\"}\n");
	/* A long path is quoted cut, on a character boundary. */
	char longp[2048] = "/x";
	for (int i = 0; i < 300; i++)
		strcat(longp, "%C3%A9");
	request(port, "GET", longp, NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_not_null((j = json_loads(r.body, 0, NULL)), "%s", r.body);
	cr_assert(strstr(r.body, "...\"}"), "%s", r.body);
	json_decref(j);
	/* Methods: an unknown one answers 405 naming it; bytes outside ASCII never make a 500. */
	request(port, "FROB", "/v1/echo", NULL, 0, &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.body, "method FROB not allowed on /v1/echo"), "%s", r.body);
	int fd = hf_test_raw_connect(NULL, port);
	cr_assert_geq(fd, 0);
	cr_assert(hf_test_send_str(fd, "G\xff\x01T /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
	cr_assert_geq(hf_test_read_to_close(fd, resp, sizeof resp, 5000), 0);
	close(fd);
	int st = hf_test_raw_status(resp);
	cr_assert(st == 400 || st == 405 || st == 501, "status %d: %s", st, resp);
	if (st == 405) {
		const char *body = strstr(resp, "\r\n\r\n");
		cr_assert_not_null(body);
		cr_assert_not_null((j = json_loads(body + 4, 0, NULL)), "%s", resp);
		cr_assert(strstr(body, "method G??T not allowed"), "%s", body);
		json_decref(j);
	}
	hf_httpd_free(h);
}

/* ---- connection caps ---- */

Test(httpd, connection_cap_refuses_at_once)
{
	hf_httpd_opts o = { .max_conns = 8, .threads = 1, .header_timeout_s = 60 };
	hf_httpd *h = start_opts(&o, NULL);
	uint16_t port = hf_httpd_port(h);
	int fds[8], extra;
	char resp[4096];
	reply r;

	slowloris(fds, 8, NULL, port);
	cr_assert(wait_stat(h, ST_CONNS, 8, 5000), "8 held connections");
	/* A ninth is accepted and closed at once: no response, no hang. */
	extra = hf_test_raw_connect(NULL, port);
	cr_assert_geq(extra, 0);
	hf_test_send_str(extra, "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_geq(hf_test_read_to_close(extra, resp, sizeof resp, 5000), 0, "the ninth connection was not closed");
	cr_assert_eq(hf_test_raw_status(resp), -1, "over the cap, yet answered: %s", resp);
	close(extra);
	cr_assert_geq(stat_of(h, ST_REFUSED), 1);
	/* One slot frees: served again. */
	close(fds[0]);
	fds[0] = -1;
	cr_assert(wait_stat(h, ST_CONNS, 7, 5000));
	request(port, "GET", "/v1/things/a/parts/b", NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	close_all(fds, 8);
	hf_httpd_free(h);
}

Test(httpd, per_client_cap_spares_other_addresses)
{
	hf_httpd_opts o = { .max_conns_per_ip = 4, .header_timeout_s = 60 };
	hf_httpd *h = start_opts(&o, NULL);
	uint16_t port = hf_httpd_port(h);
	int fds[4], fd;
	char resp[4096];
	reply r;

	slowloris(fds, 4, "127.0.0.2", port);
	cr_assert(wait_stat(h, ST_CONNS, 4, 5000));
	fd = hf_test_raw_connect("127.0.0.2", port);
	cr_assert_geq(fd, 0);
	hf_test_send_str(fd, "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_geq(hf_test_read_to_close(fd, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), -1, "a fifth connection from 127.0.0.2 was answered: %s", resp);
	close(fd);
	request(port, "GET", "/v1/things/a/parts/b", NULL, 0, &r); /* from 127.0.0.1 */
	cr_assert_eq(r.status, 200);
	close(fds[0]);
	fds[0] = -1;
	cr_assert(wait_stat(h, ST_CONNS, 3, 5000));
	fd = hf_test_raw_connect("127.0.0.2", port);
	cr_assert_geq(fd, 0);
	hf_test_send_str(fd, "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	cr_assert_geq(hf_test_read_to_close(fd, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), 200, "%s", resp);
	close(fd);
	close_all(fds, 4);
	hf_httpd_free(h);
}

/* The process's descriptor limit caps the connections, and running out of descriptors anyway
 * (taken by someone else) stops accepting without a crash until they come back. */
Test(httpd, file_descriptor_limit)
{
	struct rlimit rl, low;
	hf_httpd_opts o = { .max_conns = 1000, .threads = 1, .header_timeout_s = 60 };
	hf_errbuf eb;
	hf_httpd *h;
	char resp[4096];
	int held, late, spare[4096], nspare = 0;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = hf_test_fds_of(getpid()) + 10;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	o.host = "127.0.0.1";
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), NULL, &h, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "file descriptor limit (RLIMIT_NOFILE) leaves"), "%s", eb.msg);
	low.rlim_cur = hf_test_fds_of(getpid()) + 200;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	h = start_opts(&o, NULL);
	cr_assert_lt(hf_httpd_max_conns(h), 200, "cap %u", hf_httpd_max_conns(h));
	cr_assert_geq(hf_httpd_max_conns(h), 4);

	held = hf_test_raw_connect(NULL, hf_httpd_port(h));
	cr_assert_geq(held, 0);
	cr_assert(hf_test_send_str(held, "GET / HTTP/1.1\r\n"));
	cr_assert(wait_stat(h, ST_CONNS, 1, 5000));
	late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(late, 0);
	while (nspare < (int)HF_ARRAY_SIZE(spare) && (spare[nspare] = dup(late)) >= 0)
		nspare++;
	cr_assert_eq(errno, EMFILE, "the descriptors ran out (%d taken)", nspare);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(hf_httpd_port(h)) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	cr_assert_eq(connect(late, (struct sockaddr *)&a, sizeof a), 0, "the kernel queues it");
	cr_assert(hf_test_send_str(late, "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
	struct pollfd pf = { .fd = late, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 300), 0, "answered without a descriptor to accept it on?");
	close_all(spare, nspare);
	close(held);
	cr_assert_geq(hf_test_read_to_close(late, resp, sizeof resp, 10000), 0, "never served once descriptors were back");
	cr_assert_eq(hf_test_raw_status(resp), 200, "%s", resp);
	close(late);
	hf_httpd_free(h);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

Test(httpd, raise_fd_limit)
{
	struct rlimit rl, low;
	uint64_t before, after;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 256;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(hf_httpd_raise_fd_limit(&before, &after), 0);
	cr_assert_eq(before, 256);
	uint64_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > HF_HTTPD_FD_LIMIT_CAP ? HF_HTTPD_FD_LIMIT_CAP
											    : rl.rlim_max;
	cr_assert_eq(after, want);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(low.rlim_cur, want);
	cr_assert_eq(hf_httpd_raise_fd_limit(&before, &after), 0);
	cr_assert_eq(before, after, "already raised: unchanged");
}

/* ---- the header deadline ---- */

/* header_timeout_s is a deadline, not an idle timeout: a client trickling a header line every
 * 200 ms is cut off after 1 s like a silent one; a kept-alive connection gets the same
 * deadline for its next request; a request whose headers come in time is served. */
Test(httpd, header_deadline_is_absolute)
{
	hf_httpd_opts o = { .header_timeout_s = 1, .timeout_s = 60 };
	hf_httpd *h = start_opts(&o, NULL);
	uint16_t port = hf_httpd_port(h);
	int trickle, silent, kept, ok;
	char resp[4096];
	uint64_t t0 = hf_mono_ms(), closed_at = 0;

	trickle = hf_test_raw_connect(NULL, port);
	silent = hf_test_raw_connect(NULL, port);
	cr_assert(trickle >= 0 && silent >= 0);
	cr_assert(hf_test_send_str(silent, "GET /v1/things/a/parts/b HTTP/1.1\r\n"));
	cr_assert(hf_test_send_str(trickle, "GET /v1/things/a/parts/b HTTP/1.1\r\n"));
	while (hf_mono_ms() - t0 < 10000) {
		struct pollfd pf = { .fd = trickle, .events = POLLIN };
		if (poll(&pf, 1, 200) > 0 || !hf_test_send_str(trickle, "X-Slow: 1\r\n")) {
			closed_at = hf_mono_ms();
			break;
		}
	}
	cr_assert_gt(closed_at, 0, "a trickling client kept its connection for 10 s");
	cr_assert_geq(closed_at - t0, 900, "closed after %llu ms, before the deadline",
		      (unsigned long long)(closed_at - t0));
	cr_assert_geq(hf_test_read_to_close(trickle, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), -1, "%s", resp);
	cr_assert_geq(hf_test_read_to_close(silent, resp, sizeof resp, 5000), 0, "the silent one too");
	close(trickle);
	close(silent);
	cr_assert(wait_stat(h, ST_HDR_TIMEOUTS, 2, 5000));

	/* Kept alive after a response: the next request's headers get the deadline too. */
	kept = hf_test_raw_connect(NULL, port);
	cr_assert_geq(kept, 0);
	cr_assert(hf_test_send_str(kept, "GET /v1/things/a/parts/b HTTP/1.1\r\nHost: x\r\n\r\n"));
	t0 = hf_mono_ms();
	cr_assert_geq(hf_test_read_to_close(kept, resp, sizeof resp, 10000), 0, "an idle kept-alive connection stayed open");
	cr_assert_eq(hf_test_raw_status(resp), 200, "%s", resp);
	cr_assert_geq(hf_mono_ms() - t0, 900);
	close(kept);
	cr_assert(wait_stat(h, ST_HDR_TIMEOUTS, 3, 5000));

	/* Headers in two parts, well within the deadline: served. */
	ok = hf_test_raw_connect(NULL, port);
	cr_assert(hf_test_send_str(ok, "GET /v1/things/a/parts/b HTTP/1.1\r\n"));
	struct pollfd pf = { .fd = ok, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 100), 0);
	cr_assert(hf_test_send_str(ok, "Host: x\r\nConnection: close\r\n\r\n"));
	cr_assert_geq(hf_test_read_to_close(ok, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), 200, "%s", resp);
	close(ok);
	hf_httpd_free(h);
}

/* ---- slow clients beside a normal one ---- */

/* 1,000 connections from 127.0.0.2 each hold half a request (a slowloris) while a normal
 * client on 127.0.0.1 keeps getting answers. The bound asserted is "not starved": every request
 * answered, none near the 60 s the slowloris could hold a slot; the figures are logged. */
Test(httpd, slowloris_does_not_starve_a_normal_client, .timeout = 100)
{
	int n = hf_test_conns_that_fit(1000, 2), *fds = calloc(1000, sizeof *fds);
	hf_httpd_opts o = { .max_conns = (unsigned)n + 64, .header_timeout_s = 60 };
	hf_httpd *h = start_opts(&o, NULL);
	uint16_t port = hf_httpd_port(h);
	uint64_t lat[50];
	reply r;

	cr_assert_geq(n, 100, "too few descriptors for a meaningful test");
	slowloris(fds, n, "127.0.0.2", port);
	cr_assert(wait_stat(h, ST_CONNS, (uint64_t)n, 20000), "%d held connections (have %llu)", n,
		  (unsigned long long)stat_of(h, ST_CONNS));
	for (int i = 0; i < 50; i++) {
		uint64_t t0 = hf_mono_us();
		request(port, "GET", "/v1/things/a/parts/b", NULL, 0, &r);
		lat[i] = hf_mono_us() - t0;
		cr_assert_eq(r.status, 200);
	}
	cr_assert_eq(stat_of(h, ST_CONNS) >= (uint64_t)n, true, "the slowloris connections are still held");
	qsort(lat, 50, sizeof lat[0], cmp_u64);
	cr_log_info("slowloris of %d: normal GETs median %.2f ms, p90 %.2f ms, max %.2f ms", n,
		    lat[25] / 1000.0, lat[45] / 1000.0, lat[49] / 1000.0);
	fprintf(stderr, "slowloris of %d: normal GETs median %.2f ms, p90 %.2f ms, max %.2f ms\n", n,
		lat[25] / 1000.0, lat[45] / 1000.0, lat[49] / 1000.0);
	cr_assert_lt(lat[49], 10000000ull, "a normal request waited %llu ms", (unsigned long long)lat[49] / 1000);
	close_all(fds, n);
	cr_assert(wait_stat(h, ST_CONNS, 0, 20000));
	free(fds);
	hf_httpd_free(h);
}

/* ---- deferred requests ---- */

static int poll_requests(int *fds, int n, uint16_t port, const char *extra)
{
	char req[256];
	for (int i = 0; i < n; i++) {
		fds[i] = hf_test_raw_connect(NULL, port);
		if (fds[i] < 0)
			return i;
		snprintf(req, sizeof req, "GET /v1/poll?id=%d%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i,
			 extra);
		if (!hf_test_send_str(fds[i], req))
			return i;
	}
	return n;
}

static owner *owner_new(void)
{
	owner *o = calloc(1, sizeof *o);
	pthread_mutex_init(&o->lock, NULL);
	return o;
}

/* Thousands of waiting requests, no thread each, answered from another thread; each client
 * gets its own answer. */
Test(httpd, deferred_thousands_completed_from_another_thread, .timeout = 100)
{
	int n = hf_test_conns_that_fit(3000, 2), *fds = calloc(3000, sizeof *fds);
	owner *o = owner_new();
	hf_httpd_opts o_ = { .max_conns = (unsigned)n + 64 };
	hf_httpd *h = start_opts(&o_, o);
	completer c = { .o = o };
	pthread_t th;
	char resp[4096], want[64];

	cr_assert_geq(n, 100);
	cr_assert_eq(poll_requests(fds, n, hf_httpd_port(h), ""), n);
	cr_assert(wait_stat(h, ST_DEFERRED, (uint64_t)n, 30000), "%d deferred (have %llu)", n,
		  (unsigned long long)stat_of(h, ST_DEFERRED));
	/* Nothing answered yet. */
	struct pollfd pf = { .fd = fds[0], .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 0), 0);
	cr_assert_eq(pthread_create(&th, NULL, complete_main, &c), 0);
	pthread_join(th, NULL);
	cr_assert_eq(c.ok, n);
	cr_assert_eq(c.cancelled, 0);
	fprintf(stderr, "%d deferred requests completed from another thread in %.2f ms (%.2f us each)\n", n,
		c.us / 1000.0, (double)c.us / n);
	for (int i = 0; i < n; i++) {
		cr_assert_geq(hf_test_read_to_close(fds[i], resp, sizeof resp, 10000), 0, "request %d unanswered", i);
		cr_assert_eq(hf_test_raw_status(resp), 200, "%d: %s", i, resp);
		snprintf(want, sizeof want, "{\"id\":%d}", i);
		cr_assert(strstr(resp, want), "%d got: %s", i, resp);
	}
	close_all(fds, n);
	cr_assert_eq(stat_of(h, ST_DEFERRED), 0);
	cr_assert_eq(o->gone, 0);
	/* Completed from the handler itself, before it returns. */
	int fd = hf_test_raw_connect(NULL, hf_httpd_port(h));
	cr_assert(hf_test_send_str(fd, "GET /v1/poll?id=7&now=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
	cr_assert_geq(hf_test_read_to_close(fd, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), 202, "%s", resp);
	cr_assert(strstr(resp, "{\"id\":7}"), "%s", resp);
	close(fd);
	hf_httpd_free(h);
	cr_assert_eq(o->errors, 0);
	free(fds);
	free(o);
}

/* Clients that leave while deferred (a close and a reset): the owner is told once each, its
 * complete() of those returns HF_ECANCELED, the others are still answered. */
Test(httpd, deferred_clients_that_disconnect)
{
	enum { N = 300 };
	int fds[N];
	owner *o = owner_new();
	hf_httpd_opts o_ = { .threads = 3 };
	hf_httpd *h = start_opts(&o_, o);
	int left = 0, ok, cancelled;
	char resp[4096];

	cr_assert_eq(poll_requests(fds, N, hf_httpd_port(h), ""), N);
	cr_assert(wait_stat(h, ST_DEFERRED, N, 20000));
	for (int i = 0; i < N; i += 3) {
		if (i % 2) {
			struct linger l = { 1, 0 }; /* a reset */
			setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
		}
		close(fds[i]);
		fds[i] = -1;
		left++;
	}
	cr_assert(wait_int(&o->lock, &o->gone, left, 10000), "gone() %d times, %d clients left", o->gone, left);
	cr_assert(wait_stat(h, ST_GONE, (uint64_t)left, 5000));
	cr_assert(wait_stat(h, ST_DEFERRED, (uint64_t)(N - left), 5000));
	/* gone() counts its call first and its complete() after: wait for the last of them. */
	cr_assert(wait_int(&o->lock, &o->gone_cancelled, left, 5000),
		  "released in gone() %d, %d clients left", o->gone_cancelled, left);
	ok = owner_complete_all(o, &cancelled);
	cr_assert_eq(ok, N - left);
	cr_assert_eq(cancelled, 0);
	cr_assert_eq(o->nslots, N);
	for (int i = 0; i < N; i++) /* slots fill in arrival order; id is the client's index */
		cr_assert_eq(o->slots[i].gone_calls, o->slots[i].id % 3 == 0, "client %d: gone() %d times",
			     o->slots[i].id, o->slots[i].gone_calls);
	for (int i = 0; i < N; i++) {
		if (fds[i] < 0)
			continue;
		cr_assert_geq(hf_test_read_to_close(fds[i], resp, sizeof resp, 10000), 0);
		cr_assert_eq(hf_test_raw_status(resp), 200, "%d: %s", i, resp);
	}
	close_all(fds, N);
	cr_assert(wait_stat(h, ST_CONNS, 0, 5000), "every connection was closed");
	hf_httpd_free(h);
	cr_assert_eq(o->errors, 0);
	free(o);
}

/* Stopping with requests still deferred: each is answered 503, its owner told; the handles stay
 * valid until the owner's complete() (after hf_httpd_free returned), which says HF_ECANCELED. */
Test(httpd, shutdown_with_deferred_requests)
{
	enum { N = 200 };
	int fds[N], cancelled;
	owner *o = owner_new();
	hf_httpd_opts o_ = { .port = 0 };
	hf_httpd *h = start_opts(&o_, o);
	hf_http_pending *kept[N];
	char resp[4096];
	uint64_t t0;

	cr_assert_eq(poll_requests(fds, N, hf_httpd_port(h), ""), N);
	cr_assert(wait_stat(h, ST_DEFERRED, N, 20000));
	/* The owner keeps the handles through the shutdown: gone() must not find them. */
	pthread_mutex_lock(&o->lock);
	for (int i = 0; i < N; i++) {
		kept[i] = o->slots[i].p;
		o->slots[i].p = NULL;
	}
	pthread_mutex_unlock(&o->lock);
	t0 = hf_mono_ms();
	hf_httpd_free(h);
	cr_assert_lt(hf_mono_ms() - t0, 30000, "hf_httpd_free hung");
	cr_assert_eq(o->gone, N, "gone() for each deferred request");
	cr_assert_eq(o->gone_cancelled, 0);
	for (int i = 0; i < N; i++) {
		cr_assert_geq(hf_test_read_to_close(fds[i], resp, sizeof resp, 5000), 0);
		cr_assert_eq(hf_test_raw_status(resp), 503, "%d: %s", i, resp);
		cr_assert(strstr(resp, "Retry-After: 5"), "%s", resp);
		cr_assert(strstr(resp, "{\"error\":\"server shutting down\"}"), "%s", resp);
	}
	cancelled = 0;
	for (int i = 0; i < N; i++)
		cancelled += hf_http_pending_complete_json(kept[i], 200, json_pack("{s:i}", "id", i)) == HF_ECANCELED;
	cr_assert_eq(cancelled, N);
	close_all(fds, N);
	free(o);
}

/* Completions from one thread racing clients that leave: every handle is released exactly once
 * (by the owner or in gone()), a client that stays gets its answer, nothing is left behind. */
Test(httpd, deferred_completions_race_disconnects)
{
	enum { N = 600 };
	int fds[N], left = 0;
	owner *o = owner_new();
	hf_httpd_opts o_ = { .threads = 2 };
	hf_httpd *h = start_opts(&o_, o);
	completer c = { .o = o };
	pthread_t th;
	char resp[4096];

	cr_assert_eq(poll_requests(fds, N, hf_httpd_port(h), ""), N);
	cr_assert(wait_stat(h, ST_DEFERRED, N, 20000));
	cr_assert_eq(pthread_create(&th, NULL, complete_main, &c), 0);
	for (int i = 0; i < N; i += 2) {
		close(fds[i]);
		fds[i] = -1;
		left++;
	}
	pthread_join(th, NULL);
	cr_assert(wait_stat(h, ST_DEFERRED, 0, 5000));
	/* Each handle: completed by the owner (0 or HF_ECANCELED) or released in gone(). A request
	 * stops being deferred before its gone() has called complete(), so wait for the gone()
	 * calls still finishing (the count only ever falls short, never passes N). */
	(void)wait_int(&o->lock, &o->gone_cancelled, N - c.ok - c.cancelled, 5000);
	pthread_mutex_lock(&o->lock);
	int gone = o->gone, gone_cancelled = o->gone_cancelled;
	pthread_mutex_unlock(&o->lock);
	cr_assert_eq(c.ok + c.cancelled + gone_cancelled, N, "ok %d, cancelled %d, released in gone %d",
		     c.ok, c.cancelled, gone_cancelled);
	cr_assert_leq(gone, left);
	for (int i = 1; i < N; i += 2) {
		cr_assert_geq(hf_test_read_to_close(fds[i], resp, sizeof resp, 10000), 0);
		cr_assert_eq(hf_test_raw_status(resp), 200, "%d: %s", i, resp);
	}
	close_all(fds, N);
	cr_assert(wait_stat(h, ST_CONNS, 0, 5000));
	hf_httpd_free(h);
	cr_assert_eq(o->errors, 0);
	fprintf(stderr, "race: %d completed, %d cancelled at complete(), %d released in gone()\n", c.ok, c.cancelled,
		gone_cancelled);
	free(o);
}

/* ---- TLS ---- */

static size_t tls_body(char *p, size_t sz, size_t n, void *arg)
{
	reply *r = arg;
	size_t len = sz * n;
	if (r->len + len >= sizeof r->body)
		return 0;
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

/* GET url with ca (NULL: the system's CAs): the curl code, the status and body in r. */
static CURLcode tls_get(const char *url, const char *ca, reply *r)
{
	CURL *c = curl_easy_init();
	CURLcode cc;

	memset(r, 0, sizeof *r);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tls_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	return cc;
}

Test(httpd, tls_with_a_certificate_and_key)
{
	hf_test_tls t;
	hf_httpd_stats st;
	char url[256];
	reply r;
	hf_httpd *h;

	cr_assert(hf_httpd_tls_supported(), "Debian's libmicrohttpd is built with GnuTLS");
	cr_assert(hf_test_tls_make(&t, "httpd_tls"), "openssl req failed");
	hf_httpd_opts o = { .tls_cert_pem = t.cert_pem, .tls_key_pem = t.key_pem };
	h = start_opts(&o, NULL);
	hf_httpd_get_stats(h, &st);
	cr_assert(st.tls);
	snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/things/a/parts/b?after=7", hf_httpd_port(h));
	cr_assert_eq(tls_get(url, t.cert, &r), CURLE_OK);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"after\":\"7\""), "%s", r.body);
	/* A CA file that does not list the issuer: refused by the client; plain HTTP to the TLS
	 * port: no HTTP answer. */
	cr_assert_neq(tls_get(url, NULL, &r), CURLE_OK, "a client without the CA trusted the server");
	snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/things/a/parts/b", hf_httpd_port(h));
	cr_assert(tls_get(url, NULL, &r) != CURLE_OK || r.status != 200, "plain HTTP answered 200");
	hf_httpd_free(h);
	hf_test_tls_free(&t);
}

Test(httpd, tls_option_errors)
{
	hf_test_tls t;
	hf_errbuf eb;
	hf_httpd *h = NULL;

	cr_assert(hf_test_tls_make(&t, "httpd_tls"), "openssl req failed");
	hf_httpd_opts o = { .host = "127.0.0.1", .tls_cert_pem = t.cert_pem };
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), NULL, &h, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "both"), "%s", eb.msg);
	o.tls_key_pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), NULL, &h, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "TLS"), "%s", eb.msg);
	cr_assert_null(h);
	hf_test_tls_free(&t);
}
