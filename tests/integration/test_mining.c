/* Integration tests: hashflopd in mining mode against real hashflop-pool processes on
 * 127.0.0.1 (ephemeral ports): accepted shares with the CPU backend (with extranonce2 and
 * version rolling) and the OpenCL backend (PoCL), clean_jobs without stale submissions, pool
 * death -> failover -> failback, client.reconnect, no pool without spinning, the drain under
 * load, status and metrics, an idle -> mining -> idle switch by signed instruction, and the
 * failure paths: a share the pool never answers (the drain does not wait for it once its
 * session is gone), a failing OpenCL scan (backend restarted; with every retry failing the
 * run fails), reject reasons with control characters and cut characters, more reject
 * reasons than the table holds, and a drain that the supervisor must not turn back into
 * mining while the pool flaps. Faults come from the lab pool's admin endpoint and from
 * hashflopd's test hook (HASHFLOP_TEST_FAIL_SCAN / HASHFLOP_TEST_STALL_SCAN).
 * Every wait has a deadline; durations are reported (cr_log_info / "# " lines), never
 * asserted against a number a loaded machine could miss. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_testnode.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define DIFF "0.001"      /* about 4.3M hashes a share: a few a second on 2 shared cores */
#define WAIT_MS 30000

typedef hf_test_reply reply;
typedef hf_testnode node;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

typedef hf_testpool pool;

static void pool_start(pool *p, const char *name, uint16_t port, const char *diff)
{
	hf_testpool_start(p, name, port, diff ? diff : DIFF, NULL, WAIT_MS);
}

static void pool_free(pool *p)
{
	hf_testpool_free(p, WAIT_MS, false);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static void node_init(node *n, const char *name, const char *initial, const char *mining)
{
	hf_testnode_init(n, name, initial, mining, 5000);
}

/* A number in /v1/status under "mining" by a dotted path ("shares.accepted"); -1 if absent. */
static double mnum(const json_t *status, const char *path)
{
	return hf_testnode_num(json_object_get(status, "mining"), path);
}

static const char *mstr(const json_t *status, const char *key)
{
	return json_string_value(json_object_get(json_object_get(status, "mining"), key));
}

/* "" instead of NULL, for messages and comparisons. */
static const char *mstr0(const json_t *status, const char *key)
{
	const char *v = mstr(status, key);
	return v ? v : "";
}

static char *mining_json(const char *const *urls, size_t n, const char *extra)
{
	char *s = malloc(8192);
	size_t len = 0;

	len += (size_t)snprintf(s + len, 8192 - len, "{\"pools\": [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, 8192 - len, "%s{\"url\": \"%s\", \"user\": \"bc1qtest.w%zu\"}",
					i ? ", " : "", urls[i], i + 1);
	snprintf(s + len, 8192 - len, "], \"status_interval_s\": 1%s%s}", extra ? ", " : "",
		 extra ? extra : "");
	return s;
}

static void url_of(char *out, size_t sz, uint16_t port)
{
	snprintf(out, sz, "stratum+tcp://127.0.0.1:%u", port);
}

static bool has_metric(int port, const char *needle)
{
	char url[256];
	reply *r = malloc(sizeof *r);
	bool ok;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
	cr_assert(hf_test_http("GET", url, NULL, 0, r));
	ok = strstr(r->body, needle) != NULL;
	free(r);
	return ok;
}

/* CPU backend with small ranges (so extranonce2 and version bits roll every few ms): shares
 * accepted by a pool that validates each one; status and metrics carry plausible values. */
Test(mining, cpu_shares_accepted_with_rolling_status_and_metrics, .init = setup, .timeout = 120)
{
	pool p = { 0 };
	node n;
	char url[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-cpu-pool", 0, NULL);
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, "\"range_bits\": 16, \"cpu\": {\"threads\": 2, \"affinity\": \"spread\"}");
	node_init(&n, "mining-cpu", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 3, WAIT_MS));
	json_t *j = hf_testnode_wait_mining(&n, "hashes_total", 1, WAIT_MS);   /* sampled once a second */
	cr_assert_str_eq(json_string_value(json_object_get(j, "mode")), "mining");
	cr_assert_str_eq(mstr(j, "state"), "mining");
	cr_assert_str_eq(mstr(j, "backend"), "cpu");
	cr_assert_eq(mnum(j, "threads"), 2);
	cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "mining"), "per_thread")), 2);
	cr_assert_gt(mnum(j, "hashrate.10s"), 0, "hash rate");
	cr_assert_gt(mnum(j, "hashrate.15m"), 0);
	cr_assert_gt(mnum(j, "hashes_per_cpu_second"), 0);
	cr_assert_gt(mnum(j, "job_switch.version_rolls"), 0, "version bits rolled");
	cr_assert_gt(mnum(j, "job_switch.extranonce2_rolls"), 2, "extranonce2 rolled");
	cr_assert_eq(mnum(j, "shares.rejected"), 0);
	cr_assert_eq(mnum(j, "shares.hw_errors"), 0);
	cr_assert_gt(mnum(j, "shares.best_difficulty"), 0.001);
	cr_assert_eq(mnum(j, "difficulty"), 0.001);
	cr_assert_geq(mnum(j, "latency_ms.count"), 1);
	cr_log_info("share latency: max %.0f ms, avg %.1f ms", mnum(j, "latency_ms.max"),
		    mnum(j, "latency_ms.avg"));
	cr_assert_eq(mnum(j, "pool.index"), 0);
	cr_assert(json_is_true(json_object_get(json_object_get(json_object_get(j, "mining"), "pool"), "connected")));
	cr_assert_gt(mnum(j, "pool.uptime_s"), 0);
	double fw = mnum(j, "run.start_to_first_work_ms"), fa = mnum(j, "run.start_to_first_accepted_ms");
	fprintf(stderr, "# restart latency: first work %.0f ms, first accepted share %.0f ms; %.1f MH/s (10 s)\n",
		fw, fa, mnum(j, "hashrate.10s") / 1e6);
	cr_assert_gt(fw, 0);
	cr_assert_geq(fa, fw);
	cr_assert_eq(mnum(j, "shares.in_flight") + mnum(j, "shares.queued") + mnum(j, "shares.accepted") +
		     mnum(j, "shares.rejected") + mnum(j, "shares.dropped"), mnum(j, "shares.found"),
		     "every found share is queued, in flight, answered or dropped");
	cr_assert_eq(mnum(j, "shares.accounting_mismatches"), 0);
	cr_assert_eq(mnum(j, "shares.rejected_by_reason.other"), 0);
	cr_assert_eq(mnum(j, "thread_restarts"), 0);
	cr_assert_str_eq(mstr0(j, "last_error"), "");
	json_decref(j);
	cr_assert_geq(hf_testpool_stat(&p, "accepted", NULL), 3);
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), 0, "the pool accepted every rolled share");
	cr_assert(has_metric(n.port, "hashflop_mining_hashrate_hashes_per_second{window=\"10s\"} "));
	cr_assert(has_metric(n.port, "hashflop_mining_thread_hashrate_hashes_per_second{thread=\"1\",window=\"15m\"} "));
	cr_assert(has_metric(n.port, "# TYPE hashflop_mining_shares_accepted_total counter\n"));
	cr_assert(has_metric(n.port, "hashflop_mining_pool_up{pool=\"1\",url=\"stratum+tcp://127.0.0.1:"));
	cr_assert(has_metric(n.port, "hashflop_mining_job_switch_latency_seconds_count "));
	cr_assert(has_metric(n.port, "hashflop_mining_hashes_per_cpu_second "));
	cr_assert(has_metric(n.port, "hashflop_mining_start_to_first_accepted_seconds "));
	cr_assert(has_metric(n.port, "hashflop_mining_shares_dropped_total{reason=\"session_lost\"} "));
	cr_assert(has_metric(n.port, "hashflop_mining_shares_rejected_total{reason=\"other\"} 0\n"));
	cr_assert(has_metric(n.port, "hashflop_mining_shares_in_flight "));
	cr_assert(has_metric(n.port, "hashflop_mining_thread_restarts_total 0\n"));
	cr_assert(has_metric(n.port, "hashflop_mining_failed 0\n"));
	cr_assert(hf_test_wait_log(n.log, "mining: accepted ", WAIT_MS), "30 s status line (1 s here)");
	cr_assert(hf_test_wait_log(n.log, " · diff 0.001 · pool 1/1", WAIT_MS));
	hf_testnode_stop(&n);
	cr_assert(hf_test_wait_log(n.log, "mining: drained in ", 100));
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* New blocks (clean_jobs) reach every thread within milliseconds; nothing the node knows is
 * stale is sent. The lab pool sends a new block's notify on its next 20 ms tick, so a share
 * sent inside that window crosses the notify and is rejected as Stale through no fault of the
 * node: those are counted by the node (its Stale rejects equal the pool's), never sent after
 * the node saw the clean job (known_stale_sent stays 0). */
Test(mining, clean_jobs_switch_fast_and_nothing_stale_is_sent, .init = setup, .timeout = 120)
{
	pool p = { 0 };
	node n;
	char url[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-clean-pool", 0, "0.0005");
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, NULL);
	node_init(&n, "mining-clean", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_t *j = hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS);
	double switches = mnum(j, "job_switch.count");
	json_decref(j);
	for (int i = 0; i < 8; i++) {
		/* Each new block reaches every thread before the next one is made. */
		hf_testpool_fault(&p, "new_block");
		json_decref(hf_testnode_wait_mining(&n, "job_switch.count", switches + 1, WAIT_MS));
		switches++;
	}
	j = hf_testnode_wait_mining(&n, "job_switch.count", 9, WAIT_MS);
	double acc = mnum(j, "shares.accepted");
	json_decref(j);
	j = hf_testnode_wait_mining(&n, "shares.accepted", acc + 2, WAIT_MS);
	double avg = mnum(j, "job_switch.avg_ms"), max = mnum(j, "job_switch.max_ms");
	/* Reported, not asserted: hashflop-bench measures switch latency; here only that every
	 * switch reached every thread (job_switch.count above) counts. */
	fprintf(stderr, "# job switch latency: avg %.3f ms, max %.3f ms over %.0f switches\n", avg, max,
		    mnum(j, "job_switch.count"));
	cr_log_info("job switch latency: avg %.3f ms, max %.3f ms", avg, max);
	json_decref(j);
	long long pool_stale = hf_testpool_stat(&p, "rejects", "Stale");
	j = hf_testnode_wait_mining(&n, "shares.rejected", (double)pool_stale, 5000);
	fprintf(stderr, "# stale: %lld rejected by the pool (crossed its notify), %.0f dropped locally\n",
		    pool_stale, mnum(j, "shares.stale"));
	cr_assert_eq(mnum(j, "shares.known_stale_sent"), 0, "nothing known stale was sent");
	cr_assert_eq(mnum(j, "shares.rejected_by_reason.Stale") < 0 ? 0 : mnum(j, "shares.rejected_by_reason.Stale"),
		     (double)pool_stale);
	cr_assert_leq(pool_stale, 8, "at most one crossing per new block");
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), pool_stale, "no other rejects");
	json_decref(j);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* The preferred pool dies: shares go to the second; it returns: the node fails back. */
Test(mining, pool_death_failover_and_failback, .init = setup, .timeout = 120)
{
	pool a = { 0 }, b = { 0 };
	node n;
	char ua[128], ub[128];
	const char *urls[] = { ua, ub };

	pool_start(&a, "mining-fo-a", 0, NULL);
	pool_start(&b, "mining-fo-b", 0, NULL);
	uint16_t aport = a.port;
	url_of(ua, sizeof ua, a.port);
	url_of(ub, sizeof ub, b.port);
	char *mj = mining_json(urls, 2, "\"failback_ms\": 1000, \"backoff_max_ms\": 1000");
	node_init(&n, "mining-fo", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	cr_assert_geq(hf_testpool_stat(&a, "accepted", NULL), 1);

	hf_testpool_kill(&a);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;
	do {
		json_decref(j);
		hf_sleep_ms(50);
		j = hf_testnode_get(&n, "/v1/status");
	} while (mnum(j, "pool.index") != 1 && hf_mono_ms() < end);
	cr_assert_eq(mnum(j, "pool.index"), 1, "failover to pool 2");
	json_decref(j);
	end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&b, "accepted", NULL) < 1 && hf_mono_ms() < end)
		hf_sleep_ms(50);
	cr_assert_geq(hf_testpool_stat(&b, "accepted", NULL), 1, "shares accepted by pool 2");

	pool_start(&a, "mining-fo-a", aport, NULL);
	end = hf_mono_ms() + WAIT_MS;
	do {
		j = hf_testnode_get(&n, "/v1/status");
		if (mnum(j, "pool.index") == 0)
			break;
		json_decref(j);
		j = NULL;
		hf_sleep_ms(50);
	} while (hf_mono_ms() < end);
	cr_assert(j, "failback to pool 1");
	json_decref(j);
	end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&a, "accepted", NULL) < 1 && hf_mono_ms() < end)
		hf_sleep_ms(50);
	cr_assert_geq(hf_testpool_stat(&a, "accepted", NULL), 1, "shares accepted by pool 1 again");
	cr_assert(has_metric(n.port, "hashflop_mining_pool_up{pool=\"1\","));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&a);
	pool_free(&b);
}

/* client.reconnect: the node reconnects and keeps getting shares accepted. */
Test(mining, client_reconnect_is_followed, .init = setup, .timeout = 120)
{
	pool p = { 0 };
	node n;
	char url[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-rc-pool", 0, NULL);
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, NULL);
	node_init(&n, "mining-rc", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_t *j = hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS);
	double acc = mnum(j, "shares.accepted");
	json_decref(j);
	cr_assert_eq(hf_testpool_stat(&p, "connections", NULL), 1);
	hf_testpool_fault(&p, "reconnect");
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&p, "connections", NULL) < 2 && hf_mono_ms() < end)
		hf_sleep_ms(50);
	cr_assert_geq(hf_testpool_stat(&p, "connections", NULL), 2, "the node reconnected");
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", acc + 2, WAIT_MS));
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), 0);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* No pool answers: "mining: no pool", backoff, threads asleep (no hashing, no spinning). */
Test(mining, no_pool_reports_and_does_not_spin, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	node n;
	char url[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-nopool", 0, NULL);
	url_of(url, sizeof url, p.port);
	pool_free(&p);    /* the port is closed now */
	char *mj = mining_json(urls, 1, "\"backoff_max_ms\": 1000");
	node_init(&n, "mining-nopool", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	cr_assert(hf_test_wait_log(n.log, "mining: no pool (1 configured", 15000));
	json_t *j = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(mstr(j, "state"), "no_pool");
	cr_assert_eq(mnum(j, "hashes_total"), 0);
	cr_assert_eq(mnum(j, "pool.index"), -1);
	json_decref(j);
	cr_assert(has_metric(n.port, "hashflop_mining_no_pool 1\n"));
	/* The process sleeps: under a second of CPU over two seconds of waiting. */
	char path[64], *stat;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)hf_testproc_pid(n.proc));
	stat = hf_test_read_file(path);
	unsigned long ut0 = 0, st0 = 0, ut1 = 0, st1 = 0;
	cr_assert_eq(sscanf(strrchr(stat, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			    &ut0, &st0), 2);
	free(stat);
	hf_sleep_ms(2000);
	stat = hf_test_read_file(path);
	cr_assert_eq(sscanf(strrchr(stat, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			    &ut1, &st1), 2);
	free(stat);
	long ticks = sysconf(_SC_CLK_TCK);
	cr_assert_lt((double)(ut1 + st1 - ut0 - st0) / (double)ticks, 0.5, "no busy-waiting");
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
}

/* idle -> mining (pools from the instruction) -> idle under load, through POST
 * /v1/instruction; the switch timelines are recorded and the drain is fast. */
Test(mining, instruction_idle_mining_idle_timeline_and_drain_under_load, .init = setup,
     .timeout = 120)
{
	pool p = { 0 };
	node n;
	char extra[512];

	pool_start(&p, "mining-instr-pool", 0, NULL);
	node_init(&n, "mining-instr", "idle", "{\"status_interval_s\": 1}");
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mode(&n, "idle", 0, WAIT_MS));
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.instr\",\"pass\":\"x\"}]}", p.port);
	hf_testnode_instruct(&n, "mining", extra);
	json_t *j = hf_testnode_wait_mode(&n, "mining", 1, WAIT_MS);
	json_t *ls = json_object_get(j, "last_switch");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "from")), "idle");
	cr_assert(json_is_true(json_object_get(ls, "ok")), "%s", json_dumps(ls, 0));
	json_decref(j);
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 2, WAIT_MS));

	hf_testnode_instruct(&n, "idle", NULL);
	j = hf_testnode_wait_mode(&n, "idle", 2, WAIT_MS);
	ls = json_object_get(j, "last_switch");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "from")), "mining");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "to")), "idle");
	cr_assert(json_is_true(json_object_get(ls, "ok")), "%s", json_dumps(ls, 0));
	json_t *ph = json_object_get(ls, "phases_ms");
	long long drain = json_integer_value(json_object_get(ph, "drain"));
	fprintf(stderr, "# mining -> idle: drain %lld ms, release %lld ms, total %lld ms\n", drain,
		    json_integer_value(json_object_get(ph, "release")),
		    json_integer_value(json_object_get(ph, "total")));
	cr_assert_null(json_object_get(j, "mining"), "idle shows no mining section");
	json_decref(j);
	cr_assert(hf_test_wait_log(n.log, "hashing stopped in ", 1000));
	char *log = hf_test_read_file(n.log);
	const char *at = strstr(log, "hashing stopped in ");
	int stop_ms = atoi(at + strlen("hashing stopped in "));
	fprintf(stderr, "# hashing stopped in %d ms\n", stop_ms);
	cr_log_info("hashing stopped in %d ms", stop_ms);
	free(log);
	/* Idle really is idle: the pool sees the session closed. */
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&p, "clients", NULL) != 0 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_eq(hf_testpool_stat(&p, "clients", NULL), 0, "session closed");
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* ---- OpenCL ---- */

/* The program cache shared by the OpenCL tests (PoCL's own cache is POCL_CACHE_DIR from the
 * test environment), so only the first start of a fresh build directory compiles. */
static void opencl_extra(char *out, size_t outsz, const char *more)
{
	char cache[1024];

	snprintf(cache, sizeof cache, "%s/test-tmp", hf_test_build_root());
	mkdir(cache, 0755);
	snprintf(cache, sizeof cache, "%s/test-tmp/mining-cl-cache", hf_test_build_root());
	mkdir(cache, 0755);
	snprintf(out, outsz, "\"backend\": \"opencl\", \"opencl\": {\"batch\": 16384, \"cache_dir\": "
		 "\"%s\"}%s%s", cache, more ? ", " : "", more ? more : "");
}

/* Skips the calling test when there is no OpenCL device at all (and only then). */
static void require_opencl(void)
{
	char why[512];

	if (hf_testnode_opencl_devices(why, sizeof why) == 0)
		cr_skip_test("no OpenCL device on this machine (%s)", why);
}

/* Waits for mining.<path> >= want while the node is in mining mode; a start that failed (the
 * node fell back to idle) fails the test with the recorded reason: with a device present, a
 * compile error or any other start failure is a bug, not a skip. */
static json_t *wait_mining_cl(node *n, const char *path, double want)
{
	uint64_t end = hf_mono_ms() + 90000;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = hf_testnode_get(n, "/v1/status");
		const json_t *ls = json_object_get(j, "last_switch");
		const char *mode = json_string_value(json_object_get(j, "mode"));
		cr_assert(!(mode && strcmp(mode, "idle") == 0 && json_is_false(json_object_get(ls, "ok"))),
			  "the OpenCL mining start failed: %s; log:\n%s", json_dumps(ls, 0),
			  hf_test_read_file(n->log));
		if (mnum(j, path) >= want)
			return j;
		cr_assert_lt(hf_mono_ms(), end, "mining.%s stayed below %g: %s; log:\n%s", path, want,
			     json_dumps(json_object_get(j, "mining"), 0), hf_test_read_file(n->log));
		hf_sleep_ms(50);
	}
}

/* The OpenCL backend (PoCL in CI) with a small batch: shares accepted. The stall detector is
 * exercised by a scan that really hangs (the test hook blocks the 3rd scan call for a second,
 * stall_ms 150), whatever the device's compile speed. */
Test(mining, opencl_shares_accepted_and_a_hanging_scan_is_a_stall, .init = setup, .timeout = 240)
{
	pool p = { 0 };
	node n;
	char url[128], extra[1536];
	const char *urls[] = { url };
	static const char *const env[] = { "HASHFLOP_TEST_STALL_SCAN", "3:1000", NULL };

	require_opencl();
	pool_start(&p, "mining-cl-pool", 0, "0.0002");
	url_of(url, sizeof url, p.port);
	opencl_extra(extra, sizeof extra, "\"stall_ms\": 150");
	char *mj = mining_json(urls, 1, extra);
	node_init(&n, "mining-cl", "mining", mj);
	free(mj);
	hf_testnode_start(&n, env);
	json_t *j = wait_mining_cl(&n, "shares.accepted", 2);
	json_decref(j);
	j = wait_mining_cl(&n, "hashes_total", 1);
	cr_assert_str_eq(mstr(j, "backend"), "opencl");
	cr_assert(strstr(mstr(j, "device"), "opencl"), "%s", mstr(j, "device"));
	cr_assert_gt(mnum(j, "hashrate.10s"), 0);
	cr_assert_eq(mnum(j, "shares.hw_errors"), 0);
	fprintf(stderr, "# opencl: %.2f MH/s (10 s), first work %.0f ms, first accepted %.0f ms, stalls %.0f\n",
		mnum(j, "hashrate.10s") / 1e6, mnum(j, "run.start_to_first_work_ms"),
		mnum(j, "run.start_to_first_accepted_ms"), mnum(j, "thread_stalls"));
	cr_assert_geq(mnum(j, "thread_stalls"), 1, "the hanging scan was seen as a stall");
	cr_assert_eq(mnum(j, "thread_restarts"), 0, "an OpenCL stall is reported, not restarted");
	json_decref(j);
	cr_assert(hf_test_wait_log(n.log, "mining: hashing thread 0 stalled (no progress for ", WAIT_MS));
	cr_assert(hf_test_wait_log(n.log, "mining: hashing thread 0 is making progress again", WAIT_MS));
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), 0);
	hf_testnode_stop(&n);
	cr_assert(hf_test_wait_log(n.log, "mining: drained in ", WAIT_MS));
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* A failing OpenCL scan (test hook): the backend is reopened and mining resumes; when every
 * scan fails, the restarts run out and the run reports failed with the reason. */
Test(mining, opencl_scan_failure_restarts_the_backend_then_fails_the_run, .init = setup,
     .timeout = 240)
{
	pool p = { 0 };
	node n;
	char url[128], extra[1536];
	const char *urls[] = { url };
	static const char *const once[] = { "HASHFLOP_TEST_FAIL_SCAN", "5", NULL };
	static const char *const always[] = { "HASHFLOP_TEST_FAIL_SCAN", "5+", NULL };

	require_opencl();
	pool_start(&p, "mining-clfail-pool", 0, "0.0002");
	url_of(url, sizeof url, p.port);
	opencl_extra(extra, sizeof extra, "\"restart_max\": 2, \"restart_backoff_ms\": 100");
	char *mj = mining_json(urls, 1, extra);

	/* One failure: restarted, hashing again, still healthy. */
	node_init(&n, "mining-clfail-once", "mining", mj);
	hf_testnode_start(&n, once);
	json_t *j = wait_mining_cl(&n, "thread_restarts", 1);
	double h = mnum(j, "hashes_total");
	json_decref(j);
	j = wait_mining_cl(&n, "hashes_total", h + 1);   /* sampled once a second */
	cr_assert_str_eq(mstr(j, "state"), "mining");
	cr_assert_eq(mnum(j, "thread_restarts"), 1);
	cr_assert_str_eq(mstr0(j, "last_error"), "");
	json_decref(j);
	json_decref(wait_mining_cl(&n, "shares.accepted", 1));
	cr_assert(hf_test_wait_log(n.log, "mining: hashing thread 0 restarted (opencl backend)", WAIT_MS));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);

	/* Every scan from the 5th on fails: two restarts, then the run fails. */
	node_init(&n, "mining-clfail-always", "mining", mj);
	hf_testnode_start(&n, always);
	uint64_t end = hf_mono_ms() + 90000;
	j = NULL;
	for (;;) {
		json_decref(j);
		j = hf_testnode_get(&n, "/v1/status");
		if (strcmp(mstr0(j, "state"), "failed") == 0 || hf_mono_ms() > end)
			break;
		hf_sleep_ms(20);
	}
	cr_assert_str_eq(mstr0(j, "state"), "failed", "%s; log:\n%s", json_dumps(j, 0),
			 hf_test_read_file(n.log));
	const char *err = mstr0(j, "last_error");
	cr_assert(strstr(err, "opencl backend failed 3 times"), "%s", err);
	cr_assert(strstr(err, "test hook HASHFLOP_TEST_FAIL_SCAN"), "%s", err);
	cr_assert_eq(mnum(j, "thread_restarts"), 2);
	json_decref(j);
	cr_assert(has_metric(n.port, "hashflop_mining_failed 1\n"));
	cr_assert(hf_test_wait_log(n.log, "mining: failed: opencl backend failed 3 times", WAIT_MS));
	/* The mode machine acts on the worker's health: the failed run is stopped and mining is
	 * restarted with backoff, never left reporting "mining" at 0 H/s. */
	cr_assert(hf_test_wait_log(n.log, "mode: mining failed while running: ", WAIT_MS), "%s",
		  hf_test_read_file(n.log));
	j = hf_testnode_get(&n, "/v1/status");
	const json_t *conv = json_object_get(j, "convergence");
	cr_assert_geq(json_integer_value(json_object_get(conv, "health_failures")), 1, "%s", json_dumps(j, 0));
	json_decref(j);
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {   /* the restarted run fails again the same way: each one is a new run */
		j = hf_testnode_get(&n, "/v1/status");
		bool again = mnum(j, "run.runs") >= 2;
		json_decref(j);
		if (again)
			break;
		cr_assert_lt(hf_mono_ms(), end, "mining was not restarted after its run failed");
		hf_sleep_ms(20);
	}
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	free(mj);
	pool_free(&p);
}

/* ---- share accounting and pool faults ---- */

/* The pool reads a submit and never answers it; the session then ends (the pool drops the
 * connection). That share is reported dropped (session_lost), nothing stays in flight, and a
 * later drain does not wait for it: with a 20 s flush budget it ends far sooner. */
Test(mining, an_unanswered_share_lost_with_its_session_does_not_hold_up_the_drain,
     .init = setup, .timeout = 180)
{
	pool p = { 0 };
	node n;
	char url[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-noanswer-pool", 0, NULL);
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, "\"flush_timeout_ms\": 20000, \"backoff_max_ms\": 1000, "
			       "\"cpu\": {\"threads\": 2}");
	hf_testnode_init(&n, "mining-noanswer", "mining", mj, 60000);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_t *j = hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS);
	json_decref(j);
	hf_testpool_fault(&p, "drop_answer?count=1");
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&p, "answers_dropped", NULL) < 1 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_eq(hf_testpool_stat(&p, "answers_dropped", NULL), 1, "the pool withheld one answer");
	/* Later shares are answered; the withheld one stays in flight. */
	j = hf_testnode_wait_mining(&n, "shares.accepted",
				    (double)hf_testpool_stat(&p, "accepted", NULL) + 2, WAIT_MS);
	cr_assert_geq(mnum(j, "shares.in_flight"), 1, "the unanswered share is in flight");
	cr_assert_eq(mnum(j, "shares.dropped_by_reason.session_lost"), 0);
	json_decref(j);
	/* The session ends: the driver reports what was in flight as lost. */
	hf_testpool_fault(&p, "drop");
	j = hf_testnode_wait_mining(&n, "shares.dropped_by_reason.session_lost", 1, WAIT_MS);
	double acc = mnum(j, "shares.accepted");
	json_decref(j);
	/* reconnected, mining again */
	j = hf_testnode_wait_mining(&n, "shares.accepted", acc + 1, WAIT_MS);
	cr_assert_str_eq(mstr(j, "state"), "mining");
	cr_assert_eq(mnum(j, "shares.accounting_mismatches"), 0);
	cr_assert_eq(mnum(j, "shares.in_flight") + mnum(j, "shares.queued") + mnum(j, "shares.accepted") +
		     mnum(j, "shares.rejected") + mnum(j, "shares.dropped"), mnum(j, "shares.found"));
	json_decref(j);
	cr_assert(has_metric(n.port, "hashflop_mining_shares_dropped_total{reason=\"session_lost\"} "));
	hf_testnode_stop(&n);
	hf_testnode_drain d;
	cr_assert(hf_testnode_drain_line(&n, 0, &d), "log:\n%s", hf_test_read_file(n.log));
	fprintf(stderr, "# drain after a lost answer: %lld ms, %lld unanswered\n", d.total_ms,
		d.unanswered);
	cr_assert_lt(d.total_ms, 10000, "the drain waited for a share nobody can answer (%lld ms of "
		     "a 20 s flush budget)", d.total_ms);
	cr_assert_eq(d.unanswered, 0);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* True when the file has a byte below 0x20 other than a newline, or DEL. */
static bool has_raw_controls(const char *path, char *where, size_t wsz)
{
	char *t = hf_test_read_file(path);
	bool found = false;

	for (const char *c = t; c && *c && !found; c++) {
		if (((unsigned char)*c < 0x20 && *c != '\n') || *c == 0x7f) {
			const char *line = c;
			while (line > t && line[-1] != '\n')
				line--;
			snprintf(where, wsz, "byte 0x%02x in: %.120s", (unsigned char)*c, line);
			found = true;
		}
	}
	free(t);
	return found;
}

/* A reject reason with control characters (a forged log line, an ANSI escape, SOH) and long
 * enough that every cut (the node's 48-byte bucket, its 160-byte log text, the protocol
 * core's 512-byte message) falls inside a three-byte character: /v1/status stays valid JSON
 * (200), the reason appears cleaned, the metric label too, and no log has a raw control
 * character. */
Test(mining, reject_reason_with_control_characters_is_cleaned_everywhere, .init = setup,
     .timeout = 120)
{
	pool p = { 0 };
	node n;
	char url[128], reason[1024], want[64], metric[128];
	const char *urls[] = { url };

	pool_start(&p, "mining-dirty-pool", 0, NULL);
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, NULL);
	node_init(&n, "mining-dirty", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	size_t len = (size_t)snprintf(reason, sizeof reason, "Bad\nshare\x1b[31m\x01%s",
				      "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");   /* 45 bytes */
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(reason + len, sizeof reason - len, "\xe2\x82\xac");
	hf_testpool_fault_args(&p, "reject", json_pack("{s:s, s:i, s:i}", "text", reason, "count", 1,
						       "code", 23));
	snprintf(want, sizeof want, "Bad?share?[31m?%s", "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	json_t *j = hf_testnode_wait_mining(&n, "shares.rejected", 1, WAIT_MS);
	json_decref(j);
	/* The raw body: HTTP 200 and JSON that a strict parser takes. */
	reply *r = malloc(sizeof *r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/status", n.port);
	cr_assert(hf_test_http("GET", url, NULL, 0, r));
	cr_assert_eq(r->status, 200, "%s", r->body);
	j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(j, "valid JSON: %s", r->body);
	free(r);
	const json_t *by = json_object_get(json_object_get(json_object_get(j, "mining"), "shares"),
					   "rejected_by_reason");
	cr_assert_eq(json_integer_value(json_object_get(by, want)), 1, "cleaned reason \"%s\" in %s",
		     want, json_dumps(by, 0));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)by, k, v)
		for (const char *c = k; *c; c++)
			cr_assert((unsigned char)*c >= 0x20 && *c != 0x7f, "raw control in key %s", k);
	json_decref(j);
	snprintf(metric, sizeof metric, "hashflop_mining_shares_rejected_total{reason=\"%s\"} 1\n", want);
	cr_assert(has_metric(n.port, metric), "%s", metric);
	cr_assert(hf_test_wait_log(n.log, "mining: share rejected by pool 1: Bad?share?[31m?yyy", WAIT_MS));
	cr_assert_eq(hf_testpool_stat(&p, "fault_rejects", NULL), 1);
	hf_testnode_stop(&n);
	char where[200];
	cr_assert_not(has_raw_controls(n.log, where, sizeof where), "node log: %s", where);
	cr_assert_not(has_raw_controls(p.log, where, sizeof where), "pool log: %s", where);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* Ten distinct reject reasons: the first eight get their own bucket, the other two are counted
 * as "other" (not under the eighth reason's name). */
Test(mining, reject_reasons_beyond_eight_are_counted_as_other, .init = setup, .timeout = 120)
{
	pool p = { 0 };
	node n;
	char url[128], reason[32];
	const char *urls[] = { url };

	pool_start(&p, "mining-reasons-pool", 0, NULL);
	url_of(url, sizeof url, p.port);
	char *mj = mining_json(urls, 1, NULL);
	node_init(&n, "mining-reasons", "mining", mj);
	free(mj);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	for (int i = 0; i < 10; i++) {
		snprintf(reason, sizeof reason, "Reason %d", i);
		hf_testpool_fault_args(&p, "reject", json_pack("{s:s}", "text", reason));
	}
	json_t *j = hf_testnode_wait_mining(&n, "shares.rejected", 10, WAIT_MS);
	const json_t *by = json_object_get(json_object_get(json_object_get(j, "mining"), "shares"),
					   "rejected_by_reason");
	for (int i = 0; i < 8; i++) {
		snprintf(reason, sizeof reason, "Reason %d", i);
		cr_assert_eq(json_integer_value(json_object_get(by, reason)), 1, "%s: %s", reason,
			     json_dumps(by, 0));
	}
	cr_assert_null(json_object_get(by, "Reason 8"), "%s", json_dumps(by, 0));
	cr_assert_null(json_object_get(by, "Reason 9"));
	cr_assert_eq(json_integer_value(json_object_get(by, "other")), 2, "%s", json_dumps(by, 0));
	cr_assert_eq(mnum(j, "shares.rejected"), 10);
	json_decref(j);
	cr_assert(has_metric(n.port, "hashflop_mining_shares_rejected_total{reason=\"other\"} 2\n"));
	cr_assert(has_metric(n.port, "hashflop_mining_shares_rejected_total{reason=\"Reason 7\"} 1\n"));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* Waits until the hashing thread sits inside a scan the test hook holds (mining with a pool,
 * no progress for a while). */
static void wait_scan_held(node *n)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;
	for (;;) {
		json_decref(j);
		j = hf_testnode_get(n, "/v1/status");
		const json_t *t0 = json_array_get(json_object_get(json_object_get(j, "mining"), "per_thread"), 0);
		if (strcmp(mstr0(j, "state"), "mining") == 0 &&
		    json_integer_value(json_object_get(t0, "last_progress_ms_ago")) >= 300)
			break;
		cr_assert_lt(hf_mono_ms(), end, "the scan was never held: %s", json_dumps(j, 0));
		hf_sleep_ms(20);
	}
	json_decref(j);
}

/* A drain while the pool flaps: the supervisor keeps running until hashing has stopped (here
 * for seconds: the hashing thread is stuck in a scan the test hook holds for 6 s), sees the
 * pool come and go, and must not turn "draining" back into "mining". */
Test(mining, draining_is_never_overwritten_while_the_pool_flaps, .init = setup, .timeout = 180)
{
	pool p = { 0 };
	node n;
	char extra[512];
	static const char *const env[] = { "HASHFLOP_TEST_STALL_SCAN", "200:6000", NULL };

	pool_start(&p, "mining-flap-pool", 0, NULL);
	hf_testnode_init(&n, "mining-flap", "idle",
			 "{\"status_interval_s\": 1, \"cpu\": {\"threads\": 1}, "
			 "\"backoff_max_ms\": 1000}", 60000);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, env);
	json_decref(hf_testnode_wait_mode(&n, "idle", 0, WAIT_MS));
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.flap\",\"pass\":\"x\"}]}", p.port);
	hf_testnode_instruct(&n, "mining", extra);
	json_decref(hf_testnode_wait_mode(&n, "mining", 1, WAIT_MS));
	wait_scan_held(&n);
	hf_testnode_instruct(&n, "idle", NULL);
	bool draining_seen = false, flapped = false;
	int polls = 0, violations = 0;
	char seen[64] = "";
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_t *j = hf_testnode_get(&n, "/v1/status");
		const char *phase = json_string_value(json_object_get(j, "phase"));
		const char *mode = json_string_value(json_object_get(j, "mode"));
		const char *st = mstr0(j, "state");
		polls++;
		if (strcmp(st, "draining") == 0)   /* the worker's own state: its drain began */
			draining_seen = true;
		if (draining_seen && strcmp(st, "mining") == 0 && violations++ == 0)
			snprintf(seen, sizeof seen, "phase %s, state %s", phase ? phase : "?", st);
		if (draining_seen && !flapped) {   /* the pool goes away and comes back mid-drain */
			hf_testpool_fault(&p, "drop");
			flapped = true;
		}
		bool done = mode && strcmp(mode, "idle") == 0 && phase && strcmp(phase, "running") == 0;
		json_decref(j);
		if (done)
			break;
		cr_assert_lt(hf_mono_ms(), end, "the switch to idle did not finish");
		hf_sleep_ms(10);
	}
	cr_log_info("%d status polls during the drain", polls);
	cr_assert(draining_seen, "the drain was observed");
	cr_assert_eq(violations, 0, "state read \"mining\" %d time(s) after the drain began (first: %s)",
		     violations, seen);
	cr_assert(hf_test_wait_log(n.log, "mining: drained in ", WAIT_MS));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}

/* Replaces the first `from` in n's node.json with `to`. */
static void patch_config(node *n, const char *from, const char *to)
{
	char *text = hf_test_read_file(n->cfg), *at = text ? strstr(text, from) : NULL;
	cr_assert_not_null(at, "%s has no %s", n->cfg, from);
	size_t head = (size_t)(at - text), len = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(len);
	snprintf(out, len, "%.*s%s%s", (int)head, text, to, at + strlen(from));
	write_file(n->cfg, out);
	free(out);
	free(text);
}

typedef struct post_job {
	char url[128];
	char *env;
	reply r;
	bool ok;
	atomic_bool done;
} post_job;

static void *post_main(void *arg)
{
	post_job *j = arg;
	j->ok = hf_test_http("POST", j->url, j->env, strlen(j->env), &j->r);
	atomic_store(&j->done, true);
	return NULL;
}

/* An instruction whose switch takes seconds (a drain held by a scan the test hook stalls) is
 * answered when the switch is done, and meanwhile the API, on a single server thread, keeps
 * answering: the waiting answer is deferred, not a blocked handler. */
Test(mining, instruction_answer_waits_without_holding_the_api, .init = setup, .timeout = 180)
{
	pool p = { 0 };
	node n;
	char extra[512];
	static const char *const env[] = { "HASHFLOP_TEST_STALL_SCAN", "100:5000", NULL };

	pool_start(&p, "mining-defer-pool", 0, NULL);
	hf_testnode_init(&n, "mining-defer", "idle", "{\"cpu\": {\"threads\": 1}}", 60000);
	patch_config(&n, "\"port\": 0}", "\"port\": 0, \"threads\": 1}");
	patch_config(&n, "\"drain_timeout_ms\": 60000}", "\"drain_timeout_ms\": 60000, \"apply_wait_ms\": 45000}");
	hf_testnode_trust(&n);
	hf_testnode_start(&n, env);
	json_decref(hf_testnode_wait_mode(&n, "idle", 0, WAIT_MS));
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.defer\",\"pass\":\"x\"}]}", p.port);
	hf_testnode_instruct(&n, "mining", extra);
	json_decref(hf_testnode_wait_mode(&n, "mining", 1, WAIT_MS));
	wait_scan_held(&n);
	uint64_t end;
	json_t *j;

	post_job job = { .env = hf_testnode_instruction(&n, "idle", NULL) };
	pthread_t th;
	snprintf(job.url, sizeof job.url, "http://127.0.0.1:%d/v1/instruction", n.port);
	cr_assert_eq(pthread_create(&th, NULL, post_main, &job), 0);
	int answered_meanwhile = 0;
	end = hf_mono_ms() + WAIT_MS;
	while (!atomic_load(&job.done) && hf_mono_ms() < end) {
		j = hf_testnode_get(&n, "/v1/status");
		const char *phase = json_string_value(json_object_get(j, "phase"));
		if (!atomic_load(&job.done) && phase && strcmp(phase, "draining") == 0)
			answered_meanwhile++;
		json_decref(j);
		hf_sleep_ms(50);
	}
	pthread_join(th, NULL);
	cr_log_info("%d status answers while the instruction's answer waited for the drain",
		    answered_meanwhile);
	cr_assert(job.ok, "the instruction was not answered");
	cr_assert_eq(job.r.status, 200, "%s", job.r.body);
	cr_assert(strstr(job.r.body, "\"applied\":true"), "answered before its switch finished: %s",
		  job.r.body);
	cr_assert_geq(answered_meanwhile, 3, "GET /v1/status was not answered while the instruction "
		      "waited (the answer held the API's only server thread)");
	free(job.env);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	pool_free(&p);
}
