/* Integration tests: hashflopd in mining mode against real hashflop-pool processes on
 * 127.0.0.1 (ephemeral ports): accepted shares with the CPU backend (with extranonce2 and
 * version rolling) and the OpenCL backend (PoCL), clean_jobs without stale submissions, pool
 * death -> failover -> failback, client.reconnect, no pool without spinning, the drain under
 * load, status and metrics, and an idle -> mining -> idle switch by signed instruction.
 * Every wait has a deadline. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_instr.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define DIFF "0.001"      /* about 4.3M hashes a share: a few a second on 2 shared cores */
#define WAIT_MS 30000

typedef hf_test_reply reply;

typedef struct node {
	hf_testproc *proc;
	char *dir;
	char cfg[1024], log[1024], state[1024], trust[1024];
	int port;
	hf_key *op;
} node;

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

static json_t *get_json(int port, const char *path)
{
	char url[256];
	reply *r = malloc(sizeof *r);
	json_t *j;

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	cr_assert(hf_test_http("GET", url, NULL, 0, r), "GET %s", url);
	j = json_loads(r->body, 0, NULL);
	cr_assert(j, "GET %s: %s", url, r->body);
	free(r);
	return j;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* Writes node.json with `mining` (a JSON object text, or NULL) and the given initial mode. */
static void node_init(node *n, const char *name, const char *initial, const char *mining)
{
	char *text = malloc(16384);

	memset(n, 0, sizeof *n);
	n->dir = hf_test_tmpdir(name);
	snprintf(n->cfg, sizeof n->cfg, "%s/node.json", n->dir);
	snprintf(n->log, sizeof n->log, "%s/hashflopd.log", n->dir);
	snprintf(n->state, sizeof n->state, "%s/state", n->dir);
	snprintf(n->trust, sizeof n->trust, "%s/trust.json", n->dir);
	snprintf(text, 16384,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"modes\": {\"initial\": \"%s\", \"drain_timeout_ms\": 5000},\n"
		 " \"control\": {\"trust_file\": \"%s\"}%s%s}\n",
		 n->state, initial, n->trust, mining ? ",\n \"mining\": " : "", mining ? mining : "");
	write_file(n->cfg, text);
	free(text);
}

static void node_start(node *n)
{
	char err[2048];

	n->proc = hf_test_start_hashflopd(n->cfg, n->log, n->state, WAIT_MS, &n->port, err, sizeof err);
	cr_assert(n->proc, "%s; log:\n%s", err, hf_test_read_file(n->log));
}

static void node_stop(node *n)
{
	int st = hf_testproc_stop(n->proc, SIGTERM, WAIT_MS);

	n->proc = NULL;
	cr_assert_neq(st, -1);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; log:\n%s", st,
		  hf_test_read_file(n->log));
}

static void node_fini(node *n)
{
	hf_testproc_free(n->proc);
	hf_key_free(n->op);
	free(n->dir);
}

/* A number in /v1/status under "mining" by a dotted path ("shares.accepted"). */
static double mnum(const json_t *status, const char *path)
{
	char buf[128], *save = NULL;
	const json_t *v = json_object_get(status, "mining");

	hf_strlcpy(buf, path, sizeof buf);
	for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	return v ? json_number_value(v) : -1;
}

static const char *mstr(const json_t *status, const char *key)
{
	return json_string_value(json_object_get(json_object_get(status, "mining"), key));
}

/* Polls /v1/status until mining.<path> >= want; returns the last status (caller frees). */
static json_t *wait_mining(node *n, const char *path, double want, uint64_t timeout_ms)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = get_json(n->port, "/v1/status");
		if (mnum(j, path) >= want || hf_mono_ms() > end)
			break;
		hf_sleep_ms(50);
	}
	cr_assert_geq(mnum(j, path), want, "mining.%s stayed below %g; log:\n%s", path, want,
		      hf_test_read_file(n->log));
	return j;
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
	node_start(&n);
	json_decref(wait_mining(&n, "shares.accepted", 3, WAIT_MS));
	json_t *j = wait_mining(&n, "hashes_total", 1, WAIT_MS);   /* sampled once a second */
	cr_assert_str_eq(json_string_value(json_object_get(j, "mode")), "mining");
	cr_assert_str_eq(mstr(j, "state"), "mining");
	cr_assert_str_eq(mstr(j, "backend"), "cpu");
	cr_assert_eq(mnum(j, "threads"), 2);
	cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "mining"), "per_thread")), 2);
	cr_assert_gt(mnum(j, "hashrate.10s"), 1e5, "hash rate");
	cr_assert_lt(mnum(j, "hashrate.10s"), 1e10, "hash rate");
	cr_assert_gt(mnum(j, "hashrate.15m"), 0);
	cr_assert_gt(mnum(j, "hashes_per_cpu_second"), 1e5);
	cr_assert_gt(mnum(j, "job_switch.version_rolls"), 0, "version bits rolled");
	cr_assert_gt(mnum(j, "job_switch.extranonce2_rolls"), 2, "extranonce2 rolled");
	cr_assert_eq(mnum(j, "shares.rejected"), 0);
	cr_assert_eq(mnum(j, "shares.hw_errors"), 0);
	cr_assert_gt(mnum(j, "shares.best_difficulty"), 0.001);
	cr_assert_eq(mnum(j, "difficulty"), 0.001);
	cr_assert_geq(mnum(j, "latency_ms.count"), 1);
	cr_assert_lt(mnum(j, "latency_ms.max"), 5000);
	cr_assert_eq(mnum(j, "pool.index"), 0);
	cr_assert(json_is_true(json_object_get(json_object_get(json_object_get(j, "mining"), "pool"), "connected")));
	cr_assert_gt(mnum(j, "pool.uptime_s"), 0);
	double fw = mnum(j, "run.start_to_first_work_ms"), fa = mnum(j, "run.start_to_first_accepted_ms");
	fprintf(stderr, "# restart latency: first work %.0f ms, first accepted share %.0f ms; %.1f MH/s (10 s)\n",
		fw, fa, mnum(j, "hashrate.10s") / 1e6);
	cr_assert_gt(fw, 0);
	cr_assert_geq(fa, fw);
	cr_assert_lt(fw, 10000);
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
	cr_assert(hf_test_wait_log(n.log, "mining: accepted ", 5000), "30 s status line (1 s here)");
	cr_assert(hf_test_wait_log(n.log, " · diff 0.001 · pool 1/1", 5000));
	node_stop(&n);
	cr_assert(hf_test_wait_log(n.log, "mining: drained in ", 100));
	node_fini(&n);
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
	node_start(&n);
	json_decref(wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	for (int i = 0; i < 8; i++) {
		hf_testpool_fault(&p, "new_block");
		hf_sleep_ms(150);
	}
	json_t *j = wait_mining(&n, "job_switch.count", 9, WAIT_MS);
	double acc = mnum(j, "shares.accepted");
	json_decref(j);
	j = wait_mining(&n, "shares.accepted", acc + 2, WAIT_MS);
	double avg = mnum(j, "job_switch.avg_ms"), max = mnum(j, "job_switch.max_ms");
	fprintf(stderr, "# job switch latency: avg %.3f ms, max %.3f ms over %.0f switches\n", avg, max,
		    mnum(j, "job_switch.count"));
	cr_assert_lt(avg, 10.0, "a job switch reaches every thread in well under 10 ms (avg %.3f)", avg);
	cr_assert_lt(max, 100.0, "max %.3f ms", max);
	json_decref(j);
	long long pool_stale = hf_testpool_stat(&p, "rejects", "Stale");
	j = wait_mining(&n, "shares.rejected", (double)pool_stale, 5000);
	fprintf(stderr, "# stale: %lld rejected by the pool (crossed its notify), %.0f dropped locally\n",
		    pool_stale, mnum(j, "shares.stale"));
	cr_assert_eq(mnum(j, "shares.known_stale_sent"), 0, "nothing known stale was sent");
	cr_assert_eq(mnum(j, "shares.rejected_by_reason.Stale") < 0 ? 0 : mnum(j, "shares.rejected_by_reason.Stale"),
		     (double)pool_stale);
	cr_assert_leq(pool_stale, 8, "at most one crossing per new block");
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), pool_stale, "no other rejects");
	json_decref(j);
	node_stop(&n);
	node_fini(&n);
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
	node_start(&n);
	json_decref(wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	cr_assert_geq(hf_testpool_stat(&a, "accepted", NULL), 1);

	hf_testpool_kill(&a);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;
	do {
		json_decref(j);
		hf_sleep_ms(50);
		j = get_json(n.port, "/v1/status");
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
		j = get_json(n.port, "/v1/status");
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
	node_stop(&n);
	node_fini(&n);
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
	node_start(&n);
	json_t *j = wait_mining(&n, "shares.accepted", 1, WAIT_MS);
	double acc = mnum(j, "shares.accepted");
	json_decref(j);
	cr_assert_eq(hf_testpool_stat(&p, "connections", NULL), 1);
	hf_testpool_fault(&p, "reconnect");
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&p, "connections", NULL) < 2 && hf_mono_ms() < end)
		hf_sleep_ms(50);
	cr_assert_geq(hf_testpool_stat(&p, "connections", NULL), 2, "the node reconnected");
	json_decref(wait_mining(&n, "shares.accepted", acc + 2, WAIT_MS));
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), 0);
	node_stop(&n);
	node_fini(&n);
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
	node_start(&n);
	cr_assert(hf_test_wait_log(n.log, "mining: no pool (1 configured", 15000));
	json_t *j = get_json(n.port, "/v1/status");
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
	node_stop(&n);
	node_fini(&n);
}

static void trust_init(node *n)
{
	char *pem;

	cr_assert_eq(hf_key_generate(&n->op, NULL), 0);
	cr_assert_eq(hf_key_public_pem(n->op, &pem, NULL), 0);
	json_t *t = json_pack("{s:[{s:s, s:s}], s:i}", "keys", "role", "operator", "public_key_pem",
			      pem, "fleet_threshold", 1);
	cr_assert_eq(json_dump_file(t, n->trust, 0), 0);
	json_decref(t);
	free(pem);
}

static void instruct(node *n, const char *mode, const char *extra)
{
	static uint64_t last;
	char payload[4096], url[128];
	hf_key *keys[1] = { n->op };
	uint64_t now = hf_wall_ms();
	reply *r = malloc(sizeof *r);
	char *env;

	if (now <= last)
		now = last + 1;
	last = now;
	snprintf(payload, sizeof payload,
		 "{\"v\":1,\"fleet\":\"lab\",\"node\":\"n1\",\"issued_ms\":%llu,\"expires_ms\":%llu,"
		 "\"mode\":\"%s\"%s}", (unsigned long long)now, (unsigned long long)(now + 60000), mode,
		 extra ? extra : "");
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, 1, &env, NULL), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/instruction", n->port);
	cr_assert(hf_test_http("POST", url, env, strlen(env), r));
	cr_assert_eq(r->status, 200, "%s", r->body);
	cr_assert(strstr(r->body, "\"applied\":true"), "%s", r->body);
	free(env);
	free(r);
}

static json_t *wait_mode(node *n, const char *mode, uint64_t after_seq)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = get_json(n->port, "/v1/status");
		json_t *ls = json_object_get(j, "last_switch");
		if ((uint64_t)json_integer_value(json_object_get(ls, "seq")) > after_seq &&
		    strcmp(json_string_value(json_object_get(j, "phase")), "running") == 0 &&
		    strcmp(json_string_value(json_object_get(j, "mode")), mode) == 0)
			return j;
		cr_assert_lt(hf_mono_ms(), end, "mode %s not reached: %s", mode, json_dumps(j, 0));
		hf_sleep_ms(20);
	}
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
	trust_init(&n);
	node_start(&n);
	json_decref(wait_mode(&n, "idle", 0));
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.instr\",\"pass\":\"x\"}]}", p.port);
	instruct(&n, "mining", extra);
	json_t *j = wait_mode(&n, "mining", 1);
	json_t *ls = json_object_get(j, "last_switch");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "from")), "idle");
	cr_assert(json_is_true(json_object_get(ls, "ok")), "%s", json_dumps(ls, 0));
	json_decref(j);
	json_decref(wait_mining(&n, "shares.accepted", 2, WAIT_MS));

	instruct(&n, "idle", NULL);
	j = wait_mode(&n, "idle", 2);
	ls = json_object_get(j, "last_switch");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "from")), "mining");
	cr_assert_str_eq(json_string_value(json_object_get(ls, "to")), "idle");
	cr_assert(json_is_true(json_object_get(ls, "ok")), "%s", json_dumps(ls, 0));
	json_t *ph = json_object_get(ls, "phases_ms");
	long long drain = json_integer_value(json_object_get(ph, "drain"));
	fprintf(stderr, "# mining -> idle: drain %lld ms, release %lld ms, total %lld ms\n", drain,
		    json_integer_value(json_object_get(ph, "release")),
		    json_integer_value(json_object_get(ph, "total")));
	cr_assert_lt(drain, 5000, "drained before the deadline");
	cr_assert_null(json_object_get(j, "mining"), "idle shows no mining section");
	json_decref(j);
	cr_assert(hf_test_wait_log(n.log, "hashing stopped in ", 1000));
	char *log = hf_test_read_file(n.log);
	const char *at = strstr(log, "hashing stopped in ");
	int stop_ms = atoi(at + strlen("hashing stopped in "));
	fprintf(stderr, "# hashing stopped in %d ms\n", stop_ms);
	cr_assert_lt(stop_ms, 100, "hashing stops within 100 ms (%d)", stop_ms);
	free(log);
	/* Idle really is idle: the pool sees the session closed. */
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&p, "clients", NULL) != 0 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_eq(hf_testpool_stat(&p, "clients", NULL), 0, "session closed");
	node_stop(&n);
	node_fini(&n);
	pool_free(&p);
}

/* The OpenCL backend (PoCL in CI) with a small batch. Skipped where hashflopd has no OpenCL
 * device (the start fails and the node falls back to idle). */
Test(mining, opencl_shares_accepted, .init = setup, .timeout = 180)
{
	pool p = { 0 };
	node n;
	char url[128], extra[512];
	const char *urls[] = { url };

	pool_start(&p, "mining-cl-pool", 0, "0.0002");
	url_of(url, sizeof url, p.port);
	/* Cold caches (PoCL's and the program cache): the first launch compiles for a while, which
	 * the stall detector (stall_ms 150) must report and then see recover. */
	char *cache = hf_test_tmpdir("mining-cl-cache"), pocl[1100];
	snprintf(extra, sizeof extra, "\"backend\": \"opencl\", \"stall_ms\": 150, \"opencl\": "
		 "{\"batch\": 16384, \"cache_dir\": \"%s/cl\"}", cache);
	snprintf(pocl, sizeof pocl, "%s/pocl", cache);
	free(cache);
	char *mj = mining_json(urls, 1, extra);
	node_init(&n, "mining-cl", "mining", mj);
	free(mj);
	char *old_pocl = getenv("POCL_CACHE_DIR") ? strdup(getenv("POCL_CACHE_DIR")) : NULL;
	setenv("POCL_CACHE_DIR", pocl, 1);
	node_start(&n);
	if (old_pocl)
		setenv("POCL_CACHE_DIR", old_pocl, 1);
	free(old_pocl);
	uint64_t end = hf_mono_ms() + 60000;
	json_t *j = NULL;
	for (;;) {
		json_decref(j);
		j = get_json(n.port, "/v1/status");
		const char *mode = json_string_value(json_object_get(j, "mode"));
		if (strcmp(mode, "idle") == 0 && json_is_false(json_object_get(json_object_get(j, "last_switch"), "ok"))) {
			char *why = json_dumps(json_object_get(j, "last_switch"), 0);
			json_decref(j);
			node_stop(&n);
			node_fini(&n);
			pool_free(&p);
			cr_skip_test("no OpenCL device for hashflopd: %s", why);
		}
		if ((mnum(j, "shares.accepted") >= 2 && mnum(j, "hashes_total") > 0) || hf_mono_ms() > end)
			break;
		hf_sleep_ms(100);
	}
	cr_assert_geq(mnum(j, "shares.accepted"), 2, "log:\n%s", hf_test_read_file(n.log));
	cr_assert_str_eq(mstr(j, "backend"), "opencl");
	cr_assert(strstr(mstr(j, "device"), "opencl"), "%s", mstr(j, "device"));
	cr_assert_gt(mnum(j, "hashrate.10s"), 0);
	cr_assert_eq(mnum(j, "shares.hw_errors"), 0);
	fprintf(stderr, "# opencl: %.2f MH/s (10 s), first work %.0f ms, first accepted %.0f ms, stalls %.0f\n",
		mnum(j, "hashrate.10s") / 1e6, mnum(j, "run.start_to_first_work_ms"),
		mnum(j, "run.start_to_first_accepted_ms"), mnum(j, "thread_stalls"));
	cr_assert_geq(mnum(j, "thread_stalls"), 1, "the cold first launch was seen as a stall");
	json_decref(j);
	cr_assert(hf_test_wait_log(n.log, "mining: hashing thread 0 stalled (no progress for ", 1000));
	cr_assert(hf_test_wait_log(n.log, "mining: hashing thread 0 is making progress again", 3000));
	cr_assert_eq(hf_testpool_stat(&p, "rejected", NULL), 0);
	node_stop(&n);
	cr_assert(hf_test_wait_log(n.log, "mining: drained in ", 100));
	node_fini(&n);
	pool_free(&p);
}
