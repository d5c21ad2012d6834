/* Unit tests for hf_report: the node's reporter against a real HTTP coordinator stand-in
 * (hf_httpd on 127.0.0.1, ephemeral port) and a node stand-in whose state the test changes.
 * What is asserted: the bearer token and the body that arrive, reports at start, on notify and
 * on a state change (within generous deadlines: load only delays them), bursts coalesced
 * (counted against a bound that a report per change would exceed tenfold), at most one report
 * in flight, the backoff on errors, a 401 logged once and shown in status, the body cap, the
 * coordinator's next_report_s, and the token file's rules. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_httpd.h"
#include "hf_report.h"
#include "hf_util.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- the node stand-in ---- */
typedef struct node_sim {
	pthread_mutex_t lock;
	hf_report_state st;
	size_t pad;  /* bytes of padding in the body (the cap test) */
	bool fail_build;
} node_sim;

static json_t *sim_build(void *ctx, uint64_t seq)
{
	node_sim *n = ctx;
	pthread_mutex_lock(&n->lock);
	json_t *j = n->fail_build ? NULL : json_pack("{s:i, s:s, s:I, s:i, s:I}", "v", 1, "node", "n1",
						     "seq", (json_int_t)seq, "mode", n->st.mode,
						     "applied_issued_ms",
						     (json_int_t)n->st.applied_issued_ms);
	if (j && n->pad) {
		char *p = malloc(n->pad + 1);
		memset(p, 'x', n->pad);
		p[n->pad] = '\0';
		json_object_set_new(j, "pad", json_string(p));
		free(p);
	}
	pthread_mutex_unlock(&n->lock);
	return j;
}

static void sim_state(void *ctx, hf_report_state *out)
{
	node_sim *n = ctx;
	pthread_mutex_lock(&n->lock);
	*out = n->st;
	pthread_mutex_unlock(&n->lock);
}

/* ---- the coordinator stand-in ---- */
typedef struct coord {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int status;          /* what to answer */
	int next_report_s;   /* 0: not in the answer */
	unsigned hold_ms;    /* hold each request this long (a broadcast releases it) */
	int reports, in_flight, max_in_flight;
	char auth[400], node[64];
	json_t *last;        /* the last body */
} coord;

static void h_report(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	coord *c = ctx;
	const char *auth = hf_http_header(req, "Authorization");
	json_t *body = json_loadb(req->body, req->body_len, 0, NULL);

	pthread_mutex_lock(&c->lock);
	c->reports++;
	if (++c->in_flight > c->max_in_flight)
		c->max_in_flight = c->in_flight;
	hf_strlcpy(c->auth, auth ? auth : "", sizeof c->auth);
	hf_strlcpy(c->node, req->params[0], sizeof c->node);
	json_decref(c->last);
	c->last = body;
	pthread_cond_broadcast(&c->cond);
	if (c->hold_ms) {
		struct timespec ts;
		hf_abstime_after_ms(c->hold_ms, &ts);
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	c->in_flight--;
	int status = c->status, next = c->next_report_s;
	pthread_mutex_unlock(&c->lock);
	if (status == 200 && next)
		hf_http_resp_json(resp, 200, json_pack("{s:s, s:i}", "result", "ok", "next_report_s", next));
	else if (status == 200)
		hf_http_resp_json(resp, 200, json_pack("{s:s}", "result", "ok"));
	else
		hf_http_resp_error(resp, status, "\x1b[31mno\n<0>such token");
}

static const hf_http_route routes[] = {
	{ "POST", "/v1/nodes/*/report", h_report },
};

typedef struct rig {
	coord co;
	node_sim node;
	hf_httpd *httpd;
	hf_report *rep;
	hf_report_opts o;
	char url[128];
} rig;

static void rig_init(rig *r, int status)
{
	hf_httpd_opts o = { .host = "127.0.0.1", .port = 0, .threads = 4 };
	hf_errbuf eb;

	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->co.lock, NULL);
	pthread_cond_init(&r->co.cond, NULL);
	pthread_mutex_init(&r->node.lock, NULL);
	r->co.status = status;
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), &r->co, &r->httpd, &eb), 0,
		     "%s", eb.msg);
	snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/", hf_httpd_port(r->httpd));
	r->o = (hf_report_opts){ .coordinator_url = r->url, .node_id = "n1", .token = TOKEN,
				 .interval_s = 3600, .retry_max_ms = 200 };
}

static void rig_start(rig *r)
{
	hf_report_ops ops = { .ctx = &r->node, .build = sim_build, .state = sim_state };
	hf_errbuf eb;
	cr_assert_eq(hf_report_start(&r->o, &ops, &r->rep, &eb), 0, "%s", eb.msg);
}

static void rig_fini(rig *r)
{
	hf_report_free(r->rep);
	pthread_mutex_lock(&r->co.lock);
	r->co.hold_ms = 0;
	pthread_cond_broadcast(&r->co.cond);
	pthread_mutex_unlock(&r->co.lock);
	hf_httpd_free(r->httpd);
	json_decref(r->co.last);
}

static int reports(rig *r)
{
	pthread_mutex_lock(&r->co.lock);
	int n = r->co.reports;
	pthread_mutex_unlock(&r->co.lock);
	return n;
}

/* Polls (20 s deadline) until the coordinator saw at least n reports. */
static bool wait_reports(rig *r, int n)
{
	uint64_t end = hf_mono_ms() + 20000;
	while (reports(r) < n) {
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(5);
	}
	return true;
}

static json_t *status(rig *r)
{
	json_t *j = json_object();
	hf_report_status(r->rep, j);
	return j;
}

static long long stat_int(rig *r, const char *key)
{
	json_t *j = status(r);
	long long v = (long long)json_integer_value(json_object_get(j, key));
	json_decref(j);
	return v;
}

/* Counts reports over a quiet window of ms: none may arrive (interval 3600 s, no change). */
static int reports_during(rig *r, uint64_t ms)
{
	int p0 = reports(r);
	uint64_t t0 = hf_mono_ms();
	while (hf_mono_ms() - t0 < ms)
		hf_sleep_ms(20);
	return reports(r) - p0;
}

Test(report, first_report_carries_the_token_and_the_body)
{
	rig r;
	rig_init(&r, 200);
	r.node.st.applied_issued_ms = 1234;
	rig_start(&r);
	cr_assert(wait_reports(&r, 1), "no report at start");
	pthread_mutex_lock(&r.co.lock);
	cr_assert_str_eq(r.co.auth, "Bearer " TOKEN);
	cr_assert_str_eq(r.co.node, "n1");
	cr_assert_eq(json_integer_value(json_object_get(r.co.last, "seq")), 1);
	cr_assert_eq(json_integer_value(json_object_get(r.co.last, "applied_issued_ms")), 1234);
	pthread_mutex_unlock(&r.co.lock);
	uint64_t end = hf_mono_ms() + 20000;
	while (stat_int(&r, "reports") < 1 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	json_t *j = status(&r);
	cr_assert_eq(json_integer_value(json_object_get(j, "reports")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "report_errors")), 0);
	cr_assert_gt(json_integer_value(json_object_get(j, "last_report_ms")), 0);
	cr_assert(json_is_null(json_object_get(j, "last_report_error")));
	cr_assert_eq(json_integer_value(json_object_get(j, "report_interval_s")), 3600);
	cr_assert_null(strstr(json_dumps(j, 0), "0123456789abcdef"), "the token is never shown");
	json_decref(j);
	/* Nothing changes and the interval is an hour: no more reports. */
	cr_assert_eq(reports_during(&r, 600), 0);
	hf_buf b;
	hf_buf_init(&b, 0);
	hf_report_metrics(r.rep, &b);
	cr_assert(strstr(b.data, "hashflop_control_reports_total 1\n"), "%s", b.data);
	cr_assert(strstr(b.data, "hashflop_control_report_errors_total 0\n"), "%s", b.data);
	hf_buf_free(&b);
	rig_fini(&r);
}

/* A notify and a change of the state each send a report; a burst of changes is coalesced. */
Test(report, changes_are_reported_at_once_and_bursts_coalesced)
{
	rig r;
	rig_init(&r, 200);
	rig_start(&r);
	cr_assert(wait_reports(&r, 1));
	cr_assert_eq(reports_during(&r, 300), 0);
	hf_report_notify(r.rep);
	cr_assert(wait_reports(&r, 2), "a notify sent no report");
	/* A change of the state alone (the mode machine's own step). */
	pthread_mutex_lock(&r.node.lock);
	r.node.st.phase = 2;
	pthread_mutex_unlock(&r.node.lock);
	cr_assert(wait_reports(&r, 3), "a change of phase sent no report");
	/* 200 changes in a tight loop: a report each would be 200. */
	int before = reports(&r);
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&r.node.lock);
		r.node.st.applied_issued_ms = (uint64_t)i + 1;
		pthread_mutex_unlock(&r.node.lock);
		hf_report_notify(r.rep);
	}
	uint64_t end = hf_mono_ms() + 20000;
	for (;;) {
		pthread_mutex_lock(&r.co.lock);
		long long last = (long long)json_integer_value(json_object_get(r.co.last, "applied_issued_ms"));
		pthread_mutex_unlock(&r.co.lock);
		if (last == 200)
			break;
		cr_assert_lt(hf_mono_ms(), end, "the last change was never reported (%lld)", last);
		hf_sleep_ms(5);
	}
	int burst = reports(&r) - before;
	fprintf(stderr, "# 200 changes -> %d report(s)\n", burst);
	cr_assert_leq(burst, 20, "%d reports for one burst", burst);
	rig_fini(&r);
}

/* A slow coordinator: notifies meanwhile never start a second report in parallel. */
Test(report, at_most_one_report_in_flight)
{
	rig r;
	rig_init(&r, 200);
	r.co.hold_ms = 300;
	r.o.min_gap_ms = 1;
	r.o.coalesce_ms = 1;
	rig_start(&r);
	for (int i = 0; i < 6; i++) {
		cr_assert(wait_reports(&r, i + 1));
		for (int k = 0; k < 20; k++) {
			hf_report_notify(r.rep);
			hf_sleep_ms(2);
		}
	}
	pthread_mutex_lock(&r.co.lock);
	cr_assert_eq(r.co.max_in_flight, 1);
	pthread_mutex_unlock(&r.co.lock);
	rig_fini(&r);
}

/* Capture of this process's stderr (hf_log writes there) into a file. */
typedef struct capture {
	int saved;
	char path[64];
} capture;

static void capture_start(capture *c)
{
	snprintf(c->path, sizeof c->path, "/tmp/hf_test_report_XXXXXX");
	int fd = mkstemp(c->path);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static int capture_count(capture *c, const char *needle)
{
	FILE *f = fopen(c->path, "r");
	char line[2048];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

static void capture_end(capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	unlink(c->path);
}

Test(report, a_refused_token_is_logged_once_shown_and_backed_off)
{
	rig r;
	capture cap;
	rig_init(&r, 401);
	capture_start(&cap);
	rig_start(&r);
	cr_assert(wait_reports(&r, 4), "the reporter gave up after a 401");
	int n = reports_during(&r, 1500);
	/* Backoff from 200 ms (the ceiling): at most ~1500 / 150 + 2 attempts; a hot loop makes
	 * hundreds. */
	cr_assert_leq(n, 2 * (1500 / 150 + 2) + 5, "%d reports in 1.5 s: not backing off", n);
	int logged = capture_count(&cap, "coordinator refused the node's token");
	capture_end(&cap);
	cr_assert_eq(logged, 1, "the 401 was logged %d times", logged);
	json_t *j = status(&r);
	const char *e = json_string_value(json_object_get(j, "last_report_error"));
	cr_assert(e && strstr(e, "coordinator refused the node's token (HTTP 401): "), "%s", e);
	cr_assert(strstr(e, "?[31mno?<0>such token"), "cleaned: %s", e);
	cr_assert_null(strchr(e, '\x1b'));
	cr_assert_gt(json_integer_value(json_object_get(j, "report_errors")), 3);
	cr_assert_eq(json_integer_value(json_object_get(j, "reports")), 0);
	cr_assert_gt(json_integer_value(json_object_get(j, "report_backoff_ms")), 0);
	json_decref(j);
	/* The token is accepted again: reports flow, the error clears. */
	pthread_mutex_lock(&r.co.lock);
	r.co.status = 200;
	pthread_mutex_unlock(&r.co.lock);
	uint64_t end = hf_mono_ms() + 20000;
	while (stat_int(&r, "reports") < 1 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	j = status(&r);
	cr_assert_eq(json_integer_value(json_object_get(j, "reports")), 1);
	cr_assert(json_is_null(json_object_get(j, "last_report_error")));
	cr_assert_eq(json_integer_value(json_object_get(j, "report_backoff_ms")), 0);
	json_decref(j);
	rig_fini(&r);
}

Test(report, server_errors_back_off)
{
	rig r;
	rig_init(&r, 500);
	rig_start(&r);
	cr_assert(wait_reports(&r, 3));
	for (int i = 0; i < 50; i++)
		hf_report_notify(r.rep); /* changes do not cut the backoff short */
	int n = reports_during(&r, 1500);
	cr_assert_leq(n, 2 * (1500 / 150 + 2) + 5, "%d reports in 1.5 s: not backing off", n);
	json_t *j = status(&r);
	const char *e = json_string_value(json_object_get(j, "last_report_error"));
	cr_assert(e && strstr(e, "coordinator refused the report (HTTP 500)"), "%s", e);
	json_decref(j);
	rig_fini(&r);
}

Test(report, a_body_over_the_cap_is_not_sent)
{
	rig r;
	rig_init(&r, 200);
	r.node.pad = 5000;
	r.o.max_body = 4096;
	rig_start(&r);
	uint64_t end = hf_mono_ms() + 20000;
	while (stat_int(&r, "report_errors") < 2 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	cr_assert_eq(reports(&r), 0, "an oversize report reached the coordinator");
	json_t *j = status(&r);
	const char *e = json_string_value(json_object_get(j, "last_report_error"));
	cr_assert(e && strstr(e, "over the 4096-byte cap; not sent"), "%s", e);
	json_decref(j);
	/* Back under the cap: sent. */
	pthread_mutex_lock(&r.node.lock);
	r.node.pad = 0;
	pthread_mutex_unlock(&r.node.lock);
	cr_assert(wait_reports(&r, 1));
	rig_fini(&r);
}

Test(report, the_coordinator_sets_the_interval)
{
	rig r;
	rig_init(&r, 200);
	r.co.next_report_s = 1;
	rig_start(&r);
	/* Interval 3600 s asked; the coordinator says 1 s: reports keep coming without changes. */
	cr_assert(wait_reports(&r, 3), "the coordinator's next_report_s was not followed");
	cr_assert_eq(stat_int(&r, "report_interval_s"), 1);
	rig_fini(&r);
}

Test(report, a_report_the_node_cannot_build_is_an_error)
{
	rig r;
	rig_init(&r, 200);
	r.node.fail_build = true;
	rig_start(&r);
	uint64_t end = hf_mono_ms() + 20000;
	while (stat_int(&r, "report_errors") < 1 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	json_t *j = status(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "last_report_error")),
			 "the node could not build its report");
	json_decref(j);
	cr_assert_eq(reports(&r), 0);
	rig_fini(&r);
}

Test(report, shutdown_interrupts_a_report_in_flight)
{
	rig r;
	rig_init(&r, 200);
	r.co.hold_ms = 15000;
	rig_start(&r);
	cr_assert(wait_reports(&r, 1));
	uint64_t t0 = hf_mono_ms();
	hf_report_free(r.rep);
	r.rep = NULL;
	cr_assert_lt(hf_mono_ms() - t0, 5000);
	rig_fini(&r);
}

Test(report, start_refuses_bad_options)
{
	hf_report_opts o = { .coordinator_url = "http://127.0.0.1:1", .node_id = "n1", .token = TOKEN,
			     .interval_s = 10, .retry_max_ms = 100 };
	hf_report_ops ops = { 0 };
	hf_report *r = (hf_report *)1;
	hf_errbuf eb;
	cr_assert_eq(hf_report_start(&o, &ops, &r, &eb), HF_EINVAL);
	cr_assert_null(r);
	ops = (hf_report_ops){ .build = sim_build, .state = sim_state };
	o.interval_s = 0;
	cr_assert_eq(hf_report_start(&o, &ops, &r, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "outside 1..3600"), "%s", eb.msg);
	o.interval_s = 10;
	o.token = "short";
	cr_assert_eq(hf_report_start(&o, &ops, &r, &eb), HF_EINVAL);
	hf_report_free(NULL);
}

/* ---- the token file ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static int load(const char *dir, const char *text, mode_t mode, char *tok, bool *others,
		hf_errbuf *eb)
{
	char path[256];
	snprintf(path, sizeof path, "%s/token", dir);
	write_file(path, text, mode);
	return hf_report_token_load(path, tok, HF_REPORT_TOKEN_MAX + 1, others, eb);
}

Test(report, token_file_rules)
{
	char dir[] = "/tmp/hf_test_token_XXXXXX", tok[HF_REPORT_TOKEN_MAX + 1], path[256];
	hf_errbuf eb;
	bool others = true;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(load(dir, TOKEN "\n", 0600, tok, &others, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(tok, TOKEN);
	cr_assert_not(others);
	cr_assert_eq(load(dir, "Sixteen-chars-ok\r\n", 0644, tok, &others, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(tok, "Sixteen-chars-ok");
	cr_assert(others, "0644 is readable by others");
	cr_assert_eq(load(dir, "", 0600, tok, NULL, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "empty"), "%s", eb.msg);
	cr_assert_eq(load(dir, "tooshort\n", 0600, tok, NULL, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "8 characters; expected 16 to 256"), "%s", eb.msg);
	cr_assert_eq(load(dir, TOKEN "\nsecond\n", 0600, tok, NULL, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "a second line"), "%s", eb.msg);
	cr_assert_eq(load(dir, "0123456789 abcdef0123\n", 0600, tok, NULL, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "byte 11 is not a printable character"), "%s", eb.msg);
	cr_assert_null(strstr(eb.msg, "0123456789"), "the content is never quoted: %s", eb.msg);
	snprintf(path, sizeof path, "%s/missing", dir);
	cr_assert_eq(hf_report_token_load(path, tok, sizeof tok, NULL, &eb), HF_ENOTFOUND);
	cr_assert(strstr(eb.msg, "does not exist"), "%s", eb.msg);
	cr_assert_eq(hf_report_token_load(dir, tok, sizeof tok, NULL, &eb), HF_EIO, "a directory");
	snprintf(path, sizeof path, "%s/token", dir);
	unlink(path);
	rmdir(dir);
}
