/* Unit tests: the mining worker's supervision in process (hf_mining with the CPU backend
 * against a real hashflop-pool on 127.0.0.1): a failed scan restarts the hashing thread and
 * hashing resumes; with every scan failing the restarts run out, the health callback returns
 * the failure and the status says "failed" with the reason; a stalled CPU thread is replaced
 * while it hangs and joined when it returns. Faults come from the worker's test hook
 * (HASHFLOP_TEST_FAIL_SCAN / HASHFLOP_TEST_STALL_SCAN, read at start). Every wait has a
 * deadline. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_mining.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 30000

typedef struct rig {
	hf_testpool pool;
	char *dir;
	hf_mining *m;
	hf_mode_worker w;
} rig;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	unsetenv("HASHFLOP_TEST_FAIL_SCAN");
	unsetenv("HASHFLOP_TEST_STALL_SCAN");
}

static void rig_start(rig *r, const char *name, const char *extra)
{
	char text[1024];
	hf_errbuf eb;

	memset(r, 0, sizeof *r);
	hf_testpool_start(&r->pool, name, 0, "0.001", NULL, WAIT_MS);
	r->dir = hf_test_tmpdir(name);
	snprintf(text, sizeof text, "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%u\", "
		 "\"user\": \"bc1qtest.health\"}], \"cpu\": {\"threads\": 1}, \"range_bits\": 20, "
		 "\"status_interval_s\": 3600%s%s}", r->pool.port, extra ? ", " : "", extra ? extra : "");
	json_t *j = json_loads(text, 0, NULL);
	cr_assert_not_null(j, "%s", text);
	cr_assert_eq(hf_mining_new(j, r->dir, NULL, &r->m, &eb), 0, "%s", eb.msg);
	json_decref(j);
	hf_mining_worker(r->m, &r->w);
	cr_assert_not_null(r->w.health, "the worker has a health callback");
	cr_assert_eq(r->w.start(r->w.impl, NULL, &eb), 0, "%s", eb.msg);
}

static void rig_stop(rig *r)
{
	hf_errbuf eb;

	r->w.drain(r->w.impl, hf_mono_ms() + WAIT_MS, &eb);
	r->w.release(r->w.impl);
	hf_mining_free(r->m);
	hf_testpool_free(&r->pool, WAIT_MS, false);
	free(r->dir);
	unsetenv("HASHFLOP_TEST_FAIL_SCAN");
	unsetenv("HASHFLOP_TEST_STALL_SCAN");
}

static json_t *status(rig *r)
{
	json_t *o = json_object();

	r->w.status(r->w.impl, o);
	json_t *mining = json_incref(json_object_get(o, "mining"));
	json_decref(o);
	cr_assert_not_null(mining);
	return mining;
}

static double num(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_number_value(v);
}

static const json_t *thread0(const json_t *st)
{
	return json_array_get(json_object_get(st, "per_thread"), 0);
}

/* Polls the status until cond(status) holds; returns that status (caller frees). */
static json_t *wait_status(rig *r, bool (*cond)(const json_t *, double), double arg,
			   const char *what)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;

	for (;;) {
		json_t *st = status(r);
		if (cond(st, arg))
			return st;
		char *text = json_dumps(st, JSON_COMPACT);
		json_decref(st);
		cr_assert_lt(hf_mono_ms(), end, "%s: %s", what, text);
		free(text);
		hf_sleep_ms(20);
	}
}

static bool restarted(const json_t *st, double n) { return num(thread0(st), "restarts", NULL) >= n; }
static bool hashed_more(const json_t *st, double h) { return num(thread0(st), "hashes", NULL) > h; }
static bool stalled_once(const json_t *st, double n) { return num(st, "thread_stalls", NULL) >= n; }
static bool nothing_pending(const json_t *st, double unused)
{
	return json_is_false(json_object_get(thread0(st), "replaced_running"));
}

Test(mining_health, a_failed_scan_restarts_the_thread_and_hashing_resumes, .init = setup,
     .timeout = 120)
{
	rig r;
	hf_errbuf eb;

	setenv("HASHFLOP_TEST_FAIL_SCAN", "20", 1);
	rig_start(&r, "mining-health-once", "\"restart_backoff_ms\": 10");
	json_t *st = wait_status(&r, restarted, 1, "the failed thread was restarted");
	double h = num(thread0(st), "hashes", NULL);
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "mining");
	json_decref(st);
	st = wait_status(&r, hashed_more, h, "hashing resumed after the restart");
	cr_assert_eq(num(thread0(st), "restarts", NULL), 1, "one failure, one restart");
	cr_assert_eq(num(st, "thread_restarts", NULL), 1);
	cr_assert(json_is_false(json_object_get(thread0(st), "failed")));
	cr_assert_str_eq(json_string_value(json_object_get(st, "last_error")), "");
	json_decref(st);
	cr_assert_eq(r.w.health(r.w.impl, &eb), 0, "healthy after a restart: %s", eb.msg);
	rig_stop(&r);
}

Test(mining_health, restarts_run_out_then_health_and_status_report_the_failure, .init = setup,
     .timeout = 120)
{
	rig r;
	hf_errbuf eb;
	int rc = 0;

	setenv("HASHFLOP_TEST_FAIL_SCAN", "1+", 1);
	rig_start(&r, "mining-health-fail", "\"restart_max\": 2, \"restart_backoff_ms\": 10");
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while ((rc = r.w.health(r.w.impl, &eb)) == 0 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_eq(rc, HF_EIO, "health reports the failure (got %d: %s)", rc, eb.msg);
	cr_assert(strstr(eb.msg, "cpu backend failed 3 times"), "%s", eb.msg);
	cr_assert(strstr(eb.msg, "restart_max 2"), "%s", eb.msg);
	cr_assert(strstr(eb.msg, "test hook HASHFLOP_TEST_FAIL_SCAN"), "the last scan's reason: %s", eb.msg);
	json_t *st = status(&r);
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "failed");
	cr_assert_str_eq(json_string_value(json_object_get(st, "last_error")), eb.msg);
	cr_assert_eq(num(thread0(st), "restarts", NULL), 2, "restart_max restarts, then no more");
	json_decref(st);
	/* The failure is final for this run: it stays failed, and the drain does not hide it. */
	cr_assert_eq(r.w.health(r.w.impl, &eb), HF_EIO);
	cr_assert_eq(r.w.drain(r.w.impl, hf_mono_ms() + WAIT_MS, &eb), 0, "%s", eb.msg);
	st = status(&r);
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "failed");
	json_decref(st);
	r.w.release(r.w.impl);
	/* A new start (what the mode machine does) begins clean. */
	unsetenv("HASHFLOP_TEST_FAIL_SCAN");
	cr_assert_eq(r.w.start(r.w.impl, NULL, &eb), 0, "%s", eb.msg);
	cr_assert_eq(r.w.health(r.w.impl, &eb), 0, "%s", eb.msg);
	st = status(&r);
	cr_assert_str_eq(json_string_value(json_object_get(st, "last_error")), "");
	json_decref(st);
	rig_stop(&r);
}

Test(mining_health, a_stalled_cpu_thread_is_replaced_and_joined_when_it_returns, .init = setup,
     .timeout = 120)
{
	rig r;

	/* The 5th scan hangs 6 s (like a kernel that does not return); stall_ms is 1 s. */
	setenv("HASHFLOP_TEST_STALL_SCAN", "5:6000", 1);
	rig_start(&r, "mining-health-stall", "\"stall_ms\": 1000");
	json_t *st = wait_status(&r, stalled_once, 1, "the hanging scan was seen as a stall");
	json_decref(st);
	st = wait_status(&r, restarted, 1, "a new thread took over the slot");
	double h = num(thread0(st), "hashes", NULL);
	json_decref(st);
	st = wait_status(&r, hashed_more, h, "the new thread hashes");
	json_decref(st);
	st = wait_status(&r, nothing_pending, 0, "the stalled thread returned and was joined");
	/* At least the held scan (a loaded machine may add stalls of its own). */
	cr_assert_geq(num(st, "thread_stalls", NULL), 1);
	cr_assert_geq(num(thread0(st), "restarts", NULL), 1);
	cr_assert_eq(num(st, "threads", NULL), 1, "still one slot");
	json_decref(st);
	rig_stop(&r);
}
