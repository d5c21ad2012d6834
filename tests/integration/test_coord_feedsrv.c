/* Integration tests: the real `hashflop-coord feed-server` on 127.0.0.1 (ephemeral port, port
 * file) serving a small series: every path's JSON is the row the clock (/hashflop/v1/clock)
 * says, the clock advances at the speed (bounds bracketing the test's own clock reads, never a
 * threshold on how fast the machine is), it stops and reports done at the end, --loop wraps,
 * --start/--start-row, HEAD, 404 and 405 answers, --print-feeds yields a feeds section that
 * the coordinator's parser takes and whose feeds read the served row back, bad arguments and a bad series
 * exit 2 with a message naming the problem, SIGTERM exits 0. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hf_coord_feed.h"
#include "hf_testproc.h"

#define WAIT_MS 20000
#define ROWS 8
#define STEP_S 60
#define T0 1713571200 /* 2024-04-20T00:00:00Z */

typedef struct row {
	long long t;
	double btc, diff, fees;
	long long height;
	double power, price, demand;
} row;

/* Each column differs from row to row so a body from the wrong row cannot pass. */
static void row_values(int i, row *r)
{
	r->t = T0 + (long long)i * STEP_S;
	r->btc = 60000.25 + 1000 * i;
	r->diff = 8.8e13 + 1e11 * i;
	r->fees = 0.123456789 + 0.01 * i;
	r->height = 840000 + i;
	r->power = 0.04 + 0.005 * i;
	r->price = 0.002 + 0.0001 * i;
	r->demand = 100 + 7 * i;
}

typedef struct srv {
	char *dir;
	char series[512], log[512], port_file[512];
	hf_testproc *proc;
	int port;
} srv;

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static void write_series(const char *path, int rows)
{
	FILE *f = fopen(path, "w");
	row r;

	cr_assert_not_null(f, "cannot write %s", path);
	fprintf(f, "# a small test series\n"
		   "time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,"
		   "inference_demand\n");
	for (int i = 0; i < rows; i++) {
		row_values(i, &r);
		fprintf(f, "%lld,%.17g,%.17g,%.17g,%lld,%.17g,%.17g,%.17g\n", r.t, r.btc, r.diff,
			r.fees, r.height, r.power, r.price, r.demand);
	}
	fclose(f);
}

static const char *coord_bin(void)
{
	static char path[1024];
	snprintf(path, sizeof path, "%s/runtime/coord/hashflop-coord", hf_test_build_root());
	return path;
}

static void srv_init(srv *s, const char *name)
{
	memset(s, 0, sizeof *s);
	s->dir = hf_test_tmpdir(name);
	cr_assert_not_null(s->dir);
	snprintf(s->series, sizeof s->series, "%s/series.csv", s->dir);
	snprintf(s->log, sizeof s->log, "%s/feed-server.log", s->dir);
	snprintf(s->port_file, sizeof s->port_file, "%s/port", s->dir);
	write_series(s->series, ROWS);
}

/* Starts the feed server with extra arguments (NULL-terminated) and waits for its port file. */
static void srv_start(srv *s, const char *const *extra)
{
	const char *argv[32] = { coord_bin(), "feed-server", "--series", s->series, "--port-file",
				 s->port_file };
	size_t n = 6;
	char *text;

	for (; extra && *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	unlink(s->port_file);
	s->proc = hf_testproc_start(argv, s->log);
	cr_assert_not_null(s->proc, "cannot start %s", coord_bin());
	/* written atomically (temporary file, rename): complete once it exists */
	cr_assert(hf_test_wait_file(s->port_file, WAIT_MS), "no port file (see %s)", s->log);
	text = hf_test_read_file(s->port_file);
	cr_assert_not_null(text);
	s->port = atoi(text);
	free(text);
	cr_assert(s->port > 0 && s->port < 65536, "port file holds %d", s->port);
}

static void srv_stop(srv *s)
{
	int st = hf_testproc_stop(s->proc, SIGTERM, WAIT_MS);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "feed-server did not exit 0 on SIGTERM (status %d, see %s)", st, s->log);
	s->proc = NULL;
	free(s->dir);
}

typedef struct reply {
	long status;
	char body[8192];
	size_t len;
	char ctype[128];
} reply;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	reply *r = arg;
	size_t k = sz * n;
	if (r->len + k >= sizeof r->body)
		return 0;
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

static void http(const srv *s, const char *method, const char *path, reply *r)
{
	char url[256];
	CURL *c = curl_easy_init();
	const char *ct = NULL;
	CURLcode cc;

	memset(r, 0, sizeof *r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	cc = curl_easy_perform(c);
	cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	if (ct)
		snprintf(r->ctype, sizeof r->ctype, "%s", ct);
	curl_easy_cleanup(c);
}

/* GET path, 200, a JSON document (any JSON value). */
static json_t *get_json(const srv *s, const char *path)
{
	reply r;
	json_error_t je;
	json_t *j;

	http(s, "GET", path, &r);
	cr_assert_eq(r.status, 200, "GET %s: HTTP %ld: %s", path, r.status, r.body);
	j = json_loads(r.body, JSON_DECODE_ANY, &je);
	cr_assert_not_null(j, "GET %s: not JSON (%s): %s", path, je.text, r.body);
	return j;
}

static long long jint(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "%s: not an integer in %s", key, json_dumps(o, 0));
	return (long long)json_integer_value(v);
}

static double jnum(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	cr_assert(json_is_number(v), "%s: not a number in %s", key, json_dumps(o, 0));
	return json_number_value(v);
}

static const char *jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	cr_assert(json_is_string(v), "%s: not a string in %s", key, json_dumps(o, 0));
	return json_string_value(v);
}

typedef struct clk {
	long long series_ms, row, rows, laps;
	bool done, loop;
	double speed;
} clk;

static void get_clock(const srv *s, clk *c)
{
	json_t *j = get_json(s, "/hashflop/v1/clock");
	c->series_ms = jint(j, "series_time_ms");
	cr_assert_eq(jint(j, "series_time"), c->series_ms / 1000);
	c->row = jint(j, "row");
	c->rows = jint(j, "rows");
	c->laps = jint(j, "laps");
	c->speed = jnum(j, "speed");
	cr_assert(json_is_boolean(json_object_get(j, "done")));
	c->done = json_is_true(json_object_get(j, "done"));
	c->loop = json_is_true(json_object_get(j, "loop"));
	cr_assert_eq(c->rows, ROWS);
	cr_assert_eq(jint(j, "step_s"), STEP_S);
	cr_assert_eq(jint(j, "first_time"), T0);
	cr_assert_eq(jint(j, "last_time"), T0 + (ROWS - 1) * STEP_S);
	/* the row served is the last one at or before the series time */
	cr_assert(c->row >= 0 && c->row < ROWS);
	cr_assert_eq(jint(j, "row_time"), T0 + c->row * STEP_S);
	cr_assert_leq((T0 + c->row * STEP_S) * 1000LL, c->series_ms);
	if (c->row + 1 < ROWS)
		cr_assert_lt(c->series_ms, (T0 + (c->row + 1) * STEP_S) * 1000LL);
	json_decref(j);
}

/* Asserts one path's body against row i. */
static void check_path(const srv *s, const char *path, int i)
{
	row r;
	json_t *j = get_json(s, path);
	char want[64];

	row_values(i, &r);
	if (strcmp(path, "/api/v1/prices") == 0) {
		cr_assert_eq(jint(j, "time"), r.t);
		cr_assert_eq(jnum(j, "USD"), r.btc, "USD %.17g, row %d has %.17g", jnum(j, "USD"), i,
			     r.btc);
	} else if (strcmp(path, "/api/v1/mining/hashrate/3d") == 0) {
		cr_assert_eq(jnum(j, "currentDifficulty"), r.diff);
		cr_assert_float_eq(jnum(j, "currentHashrate"), r.diff * 4294967296.0 / 600,
				   1e-9 * r.diff * 4294967296.0 / 600);
	} else if (strcmp(path, "/api/blocks/tip/height") == 0) {
		cr_assert(json_is_integer(j));
		cr_assert_eq(json_integer_value(j), r.height);
	} else if (strcmp(path, "/api/v1/mining/reward-stats/144") == 0) {
		long long fee = llround(r.fees * 1e8) * 144;
		long long sub = 144LL * (5000000000LL >> (r.height / 210000));
		cr_assert_eq(jint(j, "endBlock"), r.height);
		cr_assert_eq(jint(j, "startBlock"), r.height - 143);
		snprintf(want, sizeof want, "%lld", fee);
		cr_assert_str_eq(jstr(j, "totalFee"), want);
		snprintf(want, sizeof want, "%lld", fee + sub);
		cr_assert_str_eq(jstr(j, "totalReward"), want);
		cr_assert_str_eq(jstr(j, "totalTx"), "432000");
	} else if (strcmp(path, "/hashflop/v1/power") == 0) {
		cr_assert_eq(jint(j, "time"), r.t);
		cr_assert_eq(jnum(j, "usd_kwh"), r.power);
	} else if (strcmp(path, "/hashflop/v1/inference") == 0) {
		cr_assert_eq(jint(j, "time"), r.t);
		cr_assert_eq(jnum(j, "price"), r.price);
		cr_assert_eq(jnum(j, "demand"), r.demand);
	} else {
		cr_assert_fail("unknown path %s", path);
	}
	json_decref(j);
}

static const char *const paths[] = {
	"/api/v1/prices", "/api/v1/mining/hashrate/3d", "/api/blocks/tip/height",
	"/api/v1/mining/reward-stats/144", "/hashflop/v1/power", "/hashflop/v1/inference",
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A clock that barely moves (--start-row pins the row): every path is that row, exactly. */
Test(coord_feedsrv, every_path_is_the_row_at_start_row)
{
	const char *extra[] = { "--start-row", "5", "--speed", "0.000001", NULL };
	srv s;
	clk c;
	reply r;

	srv_init(&s, "feedsrv-paths");
	srv_start(&s, extra);
	get_clock(&s, &c);
	cr_assert_eq(c.row, 5);
	cr_assert_eq(c.series_ms, (T0 + 5 * STEP_S) * 1000LL);
	cr_assert_not(c.done);
	cr_assert_eq(c.speed, 0.000001);
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		check_path(&s, paths[i], 5);
	http(&s, "GET", "/api/blocks/tip/height", &r);
	cr_assert(strncmp(r.ctype, "text/plain", 10) == 0, "tip height content type %s", r.ctype);
	cr_assert_str_eq(r.body, "840005");
	http(&s, "HEAD", "/api/v1/prices", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);
	http(&s, "GET", "/api/v1/nothing-here", &r);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(r.body, "\"error\""), "404 body %s", r.body);
	http(&s, "POST", "/api/v1/prices", &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.body, "\"error\""), "405 body %s", r.body);
	http(&s, "DELETE", "/hashflop/v1/clock", &r);
	cr_assert_eq(r.status, 405);
	srv_stop(&s);
}

Test(coord_feedsrv, start_time_and_row_zero)
{
	const char *extra[] = { "--start", "2024-04-20T00:02:30Z", "--speed", "0.000001", NULL };
	srv s;
	clk c;

	srv_init(&s, "feedsrv-start");
	srv_start(&s, extra);
	get_clock(&s, &c);
	/* 00:02:30 lies between row 2 (00:02) and row 3 (00:03): row 2 is served */
	cr_assert_eq(c.row, 2);
	cr_assert_geq(c.series_ms, (T0 + 150) * 1000LL);
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		check_path(&s, paths[i], 2);
	srv_stop(&s);
}

/* The clock runs: a path read between two clock reads showing the same row is that row; the
 * series time moves by speed * the wall time between reads (bracketed by the test's clock). */
Test(coord_feedsrv, advances_at_the_speed)
{
	const char *extra[] = { "--speed", "60", NULL }; /* a row a second */
	uint64_t a0, a1, b0, b1, deadline = mono_ms() + WAIT_MS;
	long long lo, hi;
	srv s;
	clk c1, c2, ca, cb;
	size_t checked = 0;

	srv_init(&s, "feedsrv-speed");
	srv_start(&s, extra);
	while (checked < 3 * (sizeof paths / sizeof *paths)) {
		cr_assert_lt(mono_ms(), deadline, "checked only %zu bodies", checked);
		get_clock(&s, &c1);
		if (c1.done)
			break;
		reply r;
		json_t *j;
		size_t k = checked % (sizeof paths / sizeof *paths);
		http(&s, "GET", paths[k], &r);
		get_clock(&s, &c2);
		if (c1.row != c2.row)
			continue; /* the row changed in between: no claim */
		j = json_loads(r.body, JSON_DECODE_ANY, NULL);
		cr_assert_not_null(j);
		json_decref(j);
		check_path(&s, paths[k], (int)c1.row);
		checked++;
	}
	a0 = mono_ms();
	get_clock(&s, &ca);
	a1 = mono_ms();
	/* wait on the condition: two more rows served */
	do {
		cr_assert_lt(mono_ms(), deadline, "the clock did not advance two rows");
		usleep(20000);
		b0 = mono_ms();
		get_clock(&s, &cb);
		b1 = mono_ms();
	} while (!cb.done && cb.row < ca.row + 2);
	/* the server's own ms clock and the truncation to ms add at most 2 ms each way */
	lo = (long long)((double)(b0 > a1 + 2 ? b0 - a1 - 2 : 0) * 60) - 1;
	hi = (long long)((double)(b1 - a0 + 2) * 60) + 1;
	cr_assert_leq(cb.series_ms - ca.series_ms, hi,
		      "series moved %lld ms in at most %llu wall ms at speed 60",
		      cb.series_ms - ca.series_ms, (unsigned long long)(b1 - a0));
	if (!cb.done) /* (done: the clock stopped at the end, the lower bound does not apply) */
		cr_assert_geq(cb.series_ms - ca.series_ms, lo,
			      "series moved %lld ms in at least %llu wall ms at speed 60",
			      cb.series_ms - ca.series_ms, (unsigned long long)(b0 - a1));
	srv_stop(&s);
}

Test(coord_feedsrv, stops_and_reports_done)
{
	const char *extra[] = { "--speed", "3000", "--start-row", "3", NULL }; /* 4 rows in 80 ms */
	uint64_t deadline = mono_ms() + WAIT_MS;
	srv s;
	clk c;

	srv_init(&s, "feedsrv-done");
	srv_start(&s, extra);
	do {
		cr_assert_lt(mono_ms(), deadline, "never done");
		usleep(10000);
		get_clock(&s, &c);
	} while (!c.done);
	cr_assert_eq(c.row, ROWS - 1);
	cr_assert_eq(c.series_ms, (T0 + (ROWS - 1) * STEP_S) * 1000LL);
	cr_assert_not(c.loop);
	cr_assert(hf_test_wait_log(s.log, "series done", WAIT_MS), "no 'series done' log");
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		check_path(&s, paths[i], ROWS - 1);
	get_clock(&s, &c); /* it stays there */
	cr_assert(c.done);
	cr_assert_eq(c.series_ms, (T0 + (ROWS - 1) * STEP_S) * 1000LL);
	srv_stop(&s);
}

Test(coord_feedsrv, loop_wraps)
{
	const char *extra[] = { "--speed", "600", "--loop", NULL }; /* a lap (8 min) in 0.8 s */
	const long long period_ms = ROWS * STEP_S * 1000LL;
	uint64_t deadline = mono_ms() + WAIT_MS;
	long long unwrapped = 0, prev = 0;
	bool wrapped_back = false;
	srv s;
	clk c;

	srv_init(&s, "feedsrv-loop");
	srv_start(&s, extra);
	do {
		cr_assert_lt(mono_ms(), deadline, "never wrapped twice");
		usleep(5000);
		get_clock(&s, &c);
		cr_assert_not(c.done);
		cr_assert(c.loop);
		/* within [first, last + step): the last row is served for one step, then row 0 */
		cr_assert_geq(c.series_ms, T0 * 1000LL);
		cr_assert_lt(c.series_ms, T0 * 1000LL + period_ms);
		/* laps * period + the time into the lap never goes back */
		unwrapped = c.laps * period_ms + (c.series_ms - T0 * 1000LL);
		cr_assert_geq(unwrapped, prev, "the looping clock went back");
		wrapped_back |= c.series_ms < T0 * 1000LL + (prev % period_ms);
		prev = unwrapped;
	} while (c.laps < 2);
	cr_assert(wrapped_back, "the series time never went back to an earlier row");
	srv_stop(&s);
}

/* Runs feed-server with argv (NULL-terminated after the command) to its exit; the status and
 * what it printed. */
static int run_cmd(const char *dir, const char *const *args, char **out)
{
	const char *argv[32] = { coord_bin(), "feed-server" };
	char log[512];
	size_t n = 2;
	int st;
	hf_testproc *p;

	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	snprintf(log, sizeof log, "%s/cmd-%d.log", dir, rand());
	p = hf_testproc_start(argv, log);
	cr_assert_not_null(p);
	cr_assert(hf_testproc_wait_exit(p, WAIT_MS, &st), "feed-server did not exit");
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	if (!*out)
		*out = strdup("");
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_usage_error(const char *dir, const char *const *args, const char *needle)
{
	char *out;
	int rc = run_cmd(dir, args, &out);
	cr_assert_eq(rc, 2, "%s ...: exit %d, expected 2: %s", args[0] ? args[0] : "", rc, out);
	cr_assert(strstr(out, needle), "expected \"%s\" in: %s", needle, out);
	free(out);
}

Test(coord_feedsrv, bad_arguments_exit_2)
{
	char *out;
	srv s;

	srv_init(&s, "feedsrv-args");
	{
		const char *a[] = { "--help", NULL };
		cr_assert_eq(run_cmd(s.dir, a, &out), 0, "--help: %s", out);
		cr_assert(strstr(out, "Usage: hashflop-coord feed-server --series FILE.csv"), "%s", out);
		free(out);
	}
	{ const char *a[] = { NULL }; expect_usage_error(s.dir, a, "--series FILE.csv is required"); }
	{ const char *a[] = { "--series", s.series, "--speed", "0", NULL };
	  expect_usage_error(s.dir, a, "--speed \"0\": expected"); }
	{ const char *a[] = { "--series", s.series, "--speed", "fast", NULL };
	  expect_usage_error(s.dir, a, "--speed \"fast\""); }
	{ const char *a[] = { "--series", s.series, "--speed", "nan", NULL };
	  expect_usage_error(s.dir, a, "--speed \"nan\""); }
	{ const char *a[] = { "--series", s.series, "--listen", "localhost", NULL };
	  expect_usage_error(s.dir, a, "--listen \"localhost\""); }
	{ const char *a[] = { "--series", s.series, "--start-row", "8", NULL };
	  expect_usage_error(s.dir, a, "from 0 to 7"); }
	{ const char *a[] = { "--series", s.series, "--start", "2024-04-19T23:59:59Z", NULL };
	  expect_usage_error(s.dir, a, "from 2024-04-20T00:00:00Z to 2024-04-20T00:07:00Z"); }
	{ const char *a[] = { "--series", s.series, "--start", "2024-02-30T00:00:00Z", NULL };
	  expect_usage_error(s.dir, a, "--start \"2024-02-30T00:00:00Z\""); }
	{ const char *a[] = { "--series", s.series, "--start", "1", "--start-row", "1", NULL };
	  expect_usage_error(s.dir, a, "exclude each other"); }
	{ const char *a[] = { "--series", s.series, "--bogus", NULL };
	  expect_usage_error(s.dir, a, "unknown option \"--bogus\""); }
	{ const char *a[] = { "--series", NULL }; expect_usage_error(s.dir, a, "--series needs a value"); }
	{ const char *a[] = { "--series", s.series, "extra", NULL };
	  expect_usage_error(s.dir, a, "unexpected argument \"extra\""); }
	{ const char *a[] = { "--print-feeds", "ftp://127.0.0.1:1", NULL };
	  expect_usage_error(s.dir, a, "expected http://HOST"); }
	{ const char *a[] = { "--print-feeds", "http://127.0.0.1:1", "--series", s.series, NULL };
	  expect_usage_error(s.dir, a, "--print-feeds takes only --refresh-s"); }
	{ const char *a[] = { "--print-feeds", "http://127.0.0.1:1", "--refresh-s", "0", NULL };
	  expect_usage_error(s.dir, a, "--refresh-s \"0\""); }
	{ const char *a[] = { "--series", s.series, "--refresh-s", "3", NULL };
	  expect_usage_error(s.dir, a, "--refresh-s goes with --print-feeds"); }
	free(s.dir);
}

Test(coord_feedsrv, bad_series_exits_2_naming_the_line)
{
	char path[600], missing[600];
	srv s;

	srv_init(&s, "feedsrv-badseries");
	snprintf(path, sizeof path, "%s/bad.csv", s.dir);
	write_text(path, "# comment\n"
			 "time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,"
			 "inference_demand\n"
			 "1713571200,60000,8.8e13,0.1,840000,0.05,0.002,100\n"
			 "1713571260,abc,8.8e13,0.1,840001,0.05,0.002,100\n");
	{ const char *a[] = { "--series", path, NULL }; expect_usage_error(s.dir, a, "bad.csv:4"); }
	snprintf(missing, sizeof missing, "%s/none.csv", s.dir);
	{ const char *a[] = { "--series", missing, NULL }; expect_usage_error(s.dir, a, "none.csv"); }
	free(s.dir);
}

/* --print-feeds URL against a running server: the output parses as a "feeds" section
 * (hf_coord_feeds_spec_parse, the coordinator's own parser), every feed's URL is on the server,
 * and what the feeds code reads from each answer (hf_coord_feed_observe: pointer, scale,
 * decimal strings) is the served row's figure. */
Test(coord_feedsrv, print_feeds_reads_the_row_back)
{
	const char *extra[] = { "--start-row", "4", "--speed", "0.000001", NULL };
	static const hf_coord_feed_id ids[] = {
		HF_FEED_BTC_USD, HF_FEED_DIFFICULTY, HF_FEED_FEES_BTC, HF_FEED_HEIGHT, HF_FEED_POWER,
		HF_FEED_INFER_PRICE, HF_FEED_INFER_DEMAND,
	};
	char url[128], *out;
	hf_coord_feeds_spec spec;
	hf_coord_market m;
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_errbuf eb;
	uint64_t now = (uint64_t)time(NULL) * 1000;
	srv s;
	row r;
	json_t *feeds;

	srv_init(&s, "feedsrv-print");
	srv_start(&s, extra);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port); /* the trailing / is dropped */
	{
		const char *a[] = { "--print-feeds", url, "--refresh-s", "1", NULL };
		cr_assert_eq(run_cmd(s.dir, a, &out), 0, "--print-feeds failed: %s", out);
	}
	feeds = json_loads(out, 0, NULL);
	cr_assert(json_is_object(feeds), "not a JSON object: %s", out);
	cr_assert_null(json_object_get(feeds, "allow_plain_http"), "loopback needs no plain http");
	cr_assert_eq(hf_coord_feeds_spec_parse(feeds, &spec, &eb), 0, "%s: %s", eb.msg, out);
	memset(st, 0, sizeof st);
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
		const hf_coord_feed_spec *f = &spec.feed[ids[i]];
		reply rp;
		cr_assert_eq(f->kind, HF_FEED_URL, "feed %s is not a URL", hf_coord_feed_name(ids[i]));
		cr_assert_eq(f->refresh_s, 1);
		cr_assert(strncmp(f->url, url, strlen(url) - 1) == 0 && f->url[strlen(url) - 1] == '/' &&
			  f->url[strlen(url)] != '/', "feed %s url %s not on %s",
			  hf_coord_feed_name(ids[i]), f->url, url);
		http(&s, "GET", f->url + strlen(url) - 1, &rp);
		cr_assert_eq(hf_coord_feed_observe(f, &st[ids[i]], now, NULL, rp.status, rp.body,
						   rp.len), 0, "feed %s: %s", hf_coord_feed_name(ids[i]),
			     st[ids[i]].why);
	}
	cr_assert_eq(spec.feed[HF_FEED_SUBSIDY_BTC].kind, HF_FEED_NONE, "subsidy comes from height");
	hf_coord_feeds_market_of(&spec, st, now, &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	row_values(4, &r);
	cr_assert_eq(m.btc_usd, r.btc);
	cr_assert_eq(m.difficulty, r.diff);
	cr_assert_float_eq(m.fees_btc, llround(r.fees * 1e8) * 1e-8, 1e-15);
	cr_assert_eq(m.subsidy_btc, 3.125);
	cr_assert_eq(m.power_usd_kwh, r.power);
	cr_assert_eq(m.infer_price, r.price);
	cr_assert_eq(m.infer_demand, r.demand);
	json_decref(feeds);
	free(out);
	{
		const char *a[] = { "--print-feeds", "http://10.1.2.3:8490", NULL };
		cr_assert_eq(run_cmd(s.dir, a, &out), 0, "--print-feeds failed: %s", out);
		feeds = json_loads(out, 0, NULL);
		cr_assert(json_is_true(json_object_get(feeds, "allow_plain_http")),
			  "plain http to 10.1.2.3 needs allow_plain_http: %s", out);
		cr_assert_eq(hf_coord_feeds_spec_parse(feeds, &spec, &eb), 0, "%s: %s", eb.msg, out);
		cr_assert_eq(spec.feed[HF_FEED_BTC_USD].refresh_s, 2);
		json_decref(feeds);
		free(out);
	}
	srv_stop(&s);
}

/* Runs a program to its exit (output to log); true when it exited 0. */
static bool run_prog(const char *const *argv, const char *log)
{
	int st;
	hf_testproc *p = hf_testproc_start(argv, log);

	cr_assert_not_null(p, "cannot start %s", argv[0]);
	cr_assert(hf_testproc_wait_exit(p, WAIT_MS, &st), "%s did not exit", argv[0]);
	hf_testproc_free(p);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The feed server drives a real coordinator: a profit.json whose feeds section is
 * --print-feeds' output, one registered node (it never reports: the policy uses its class
 * figures and initial_mode idle) of a class for which mining pays at the served row. The
 * policy's decision records the served row as its market, exactly, and `hashflopctl decisions`
 * prints it with its margins and why. */
Test(coord_feedsrv, drives_a_coordinator_policy, .timeout = 120)
{
	const char *extra[] = { "--start-row", "3", "--speed", "0.000001", NULL };
	char ctl[1024], coordx[1024], url[128], key[600], ckey[600], trust[600], profit[600];
	char cfg[600], db[600], port_file[600], clog[600], plog[600], feedsf[600], path[64];
	char *out, *feeds_text;
	uint64_t deadline;
	hf_testproc *coord;
	json_t *d = NULL, *dec = NULL, *reason, *market;
	srv s;
	row r;
	int cport = 0, st;

	srv_init(&s, "feedsrv-coord");
	srv_start(&s, extra);
	snprintf(ctl, sizeof ctl, "%s/runtime/ctl/hashflopctl", hf_test_build_root());
	snprintf(coordx, sizeof coordx, "%s", coord_bin());
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
#define P(buf, name) snprintf(buf, sizeof buf, "%s/" name, s.dir)
	P(key, "op.pem"); P(ckey, "coord.pem"); P(trust, "trust.json"); P(profit, "profit.json");
	P(cfg, "coord.json"); P(db, "db/coord.db"); P(port_file, "coord.port");
	P(clog, "coord.log"); P(plog, "progs.log"); P(feedsf, "feeds.json");
#undef P
	{
		const char *a[] = { ctl, "keygen", "--out", ckey, NULL };
		cr_assert(run_prog(a, plog), "keygen (see %s)", plog);
		const char *b[] = { ctl, "keygen", "--out", key, NULL };
		cr_assert(run_prog(b, plog), "keygen (see %s)", plog);
		char pub[620];
		snprintf(pub, sizeof pub, "%s/op.pub.pem", s.dir);
		const char *c[] = { ctl, "trust-add", "--trust", trust, "--role", "operator", "--pub",
				    pub, "--name", "op", NULL };
		cr_assert(run_prog(c, plog), "trust-add (see %s)", plog);
	}
	{
		const char *a[] = { "--print-feeds", url, "--refresh-s", "1", NULL };
		cr_assert_eq(run_cmd(s.dir, a, &feeds_text), 0, "--print-feeds: %s", feeds_text);
	}
	{
		FILE *f = fopen(profit, "w");
		cr_assert_not_null(f);
		fprintf(f, "{\"feeds\": %s,\n"
			   " \"policy\": {\"evaluate_s\": 1, \"enter_evaluations\": 1, \"min_dwell_s\": 0},\n"
			   " \"classes\": {\"asic\": {\"hashrate_hs\": 1e15, \"mining_watts\": 3000,\n"
			   "   \"inferences_per_s\": 0, \"inference_watts\": 0, \"idle_watts\": 10,\n"
			   "   \"switch_s\": 1}},\n"
			   " \"nodes\": [{\"id\": \"n1\", \"class\": \"asic\"}],\n"
			   " \"mining\": {\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:3333\",\n"
			   "   \"user\": \"u\", \"pass\": \"x\"}]},\n"
			   " \"initial_mode\": \"idle\"}\n", feeds_text);
		fclose(f);
		free(feeds_text);
	}
	{
		FILE *f = fopen(cfg, "w");
		cr_assert_not_null(f);
		fprintf(f, "{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"127.0.0.1\", \"port\": 0,"
			   " \"port_file\": \"%s\"}, \"signing_key\": \"%s\", \"trust_file\": \"%s\","
			   " \"database\": \"%s\", \"profit_file\": \"%s\"}\n", port_file, ckey, trust,
			db, profit);
		fclose(f);
		const char *a[] = { coordx, "--config", cfg, "node", "add", "n1", NULL };
		cr_assert(run_prog(a, plog), "node add (see %s)", plog);
	}
	{
		const char *a[] = { coordx, "--config", cfg, NULL };
		coord = hf_testproc_start(a, clog);
		cr_assert_not_null(coord);
		cr_assert(hf_test_wait_file(port_file, WAIT_MS), "no coord port file (see %s)", clog);
		out = hf_test_read_file(port_file); /* written atomically: complete once it exists */
		cr_assert_not_null(out);
		cport = atoi(out);
		free(out);
	}
	/* wait on the condition: the policy's first decision for n1 */
	deadline = mono_ms() + WAIT_MS;
	for (;;) {
		hf_test_reply *rp = malloc(sizeof *rp);
		char u[160];
		cr_assert_not_null(rp);
		snprintf(u, sizeof u, "http://127.0.0.1:%d/v1/decisions", cport);
		if (hf_test_http("GET", u, NULL, 0, rp) && rp->status == 200) {
			json_decref(d);
			d = json_loads(rp->body, 0, NULL);
			dec = json_array_get(json_object_get(d, "decisions"), 0);
		}
		free(rp);
		if (dec)
			break;
		cr_assert_lt(mono_ms(), deadline, "no policy decision (see %s)", clog);
		usleep(50000);
	}
	cr_assert_str_eq(jstr(dec, "source"), "policy");
	cr_assert_str_eq(jstr(dec, "node"), "n1");
	cr_assert_str_eq(jstr(dec, "mode"), "mining");
	reason = json_object_get(dec, "reason");
	cr_assert_str_eq(jstr(reason, "from"), "idle");
	cr_assert_gt(jnum(json_object_get(reason, "margins"), "mining"), 0);
	market = json_object_get(reason, "market");
	row_values(3, &r);
	cr_assert_eq(jnum(market, "btc_usd"), r.btc, "the decision's market is not row 3");
	cr_assert_eq(jnum(market, "difficulty"), r.diff);
	cr_assert_eq(jnum(market, "power_usd_kwh"), r.power);
	cr_assert_float_eq(jnum(market, "fees_btc"), llround(r.fees * 1e8) * 1e-8, 1e-15);
	cr_assert_eq(jnum(market, "subsidy_btc"), 3.125);
	/* hashflopctl decisions: the row, then from -> to (rule), the margins and the why */
	{
		char cu[64], log[600];
		snprintf(cu, sizeof cu, "http://127.0.0.1:%d", cport);
		snprintf(log, sizeof log, "%s/decisions.out", s.dir);
		const char *a[] = { ctl, "decisions", "--coordinator", cu, NULL };
		cr_assert(run_prog(a, log), "hashflopctl decisions (see %s)", log);
		out = hf_test_read_file(log);
		cr_assert_not_null(out);
		snprintf(path, sizeof path, "idle -> mining (%s): idle ", jstr(reason, "rule"));
		cr_assert(strstr(out, path), "no policy line \"%s\" in:\n%s", path, out);
		cr_assert(strstr(out, " USD/h; "), "no margins in:\n%s", out);
		cr_assert(strstr(out, "mining +"), "no mining margin in:\n%s", out);
		free(out);
	}
	json_decref(d);
	st = hf_testproc_stop(coord, SIGTERM, WAIT_MS);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "coordinator exit %d", st);
	srv_stop(&s);
}
