/* perf_switch: mode and job switch figures of the real hashflopd against the lab pool
 * (hashflop-pool), both on 127.0.0.1 with ephemeral ports. Over N repetitions (HF_PERF_REPS,
 * default 20) of idle -> mining -> idle by operator-signed instructions it collects the node's
 * own switch timeline (last_switch.phases_ms), the client's view (POST sent -> GET /v1/status
 * shows the mode running), the restart latency (mining.run.start_to_first_work_ms and
 * start_to_first_accepted_ms), the job switch latency after each clean job the pool is told to
 * send (mining.job_switch.last_ms) and the mining drain (from the node's "mining: drained in"
 * line: /v1/status stops showing mining.last_drain once the switch has left mining). It
 * prints p50, p95 and max per figure with the machine's CPU and load (plain lines on stdout:
 * meson runs it without --tap, which would send a worker's output to /dev/null) and writes
 * them with every sample to <build root>/perf/switch.json.
 *
 * Invariants: it fails only on functional failures (a switch that does not happen or is not ok,
 * a daemon that dies or exits non-zero, an HTTP error, a first share or job switch that never
 * comes within its deadline, the session not closed in idle, the JSON not written); no figure
 * is compared with a number. Every wait is a poll with a deadline.
 * Threading: one Criterion test, one thread.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_cpu.h"
#include "hf_file.h"
#include "hf_testnode.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 30000
#define DEFAULT_REPS 20   /* nearest-rank p95 differs from the max from 20 samples on */
#define MAX_REPS 64
#define JOBS_PER_REP 2
#define MAX_SAMPLES (MAX_REPS * JOBS_PER_REP)
#define DIFF "0.0005"     /* about 2.1M hashes a share: a first share within a second or two */

/* The figures, in the order of the table. */
enum {
	F_IM_QUEUED, F_IM_DRAIN, F_IM_RELEASE, F_IM_START, F_IM_TOTAL, F_IM_CLIENT,
	F_FIRST_WORK, F_FIRST_ACCEPTED, F_JOB_SWITCH,
	F_MI_QUEUED, F_MI_DRAIN, F_MI_RELEASE, F_MI_START, F_MI_TOTAL, F_MI_CLIENT,
	F_DRAIN_HASH_STOP, F_DRAIN_FLUSH, F_DRAIN_CLOSE, F_DRAIN_TOTAL,
	F_COUNT
};

static const struct {
	const char *name;
	const char *source;
} figures[F_COUNT] = {
	[F_IM_QUEUED] = { "idle_to_mining.queued_ms", "last_switch.phases_ms.queued" },
	[F_IM_DRAIN] = { "idle_to_mining.drain_ms", "last_switch.phases_ms.drain" },
	[F_IM_RELEASE] = { "idle_to_mining.release_ms", "last_switch.phases_ms.release" },
	[F_IM_START] = { "idle_to_mining.start_ms", "last_switch.phases_ms.start" },
	[F_IM_TOTAL] = { "idle_to_mining.total_ms", "last_switch.phases_ms.total" },
	[F_IM_CLIENT] = { "idle_to_mining.client_ms", "client: POST sent -> status shows running" },
	[F_FIRST_WORK] = { "mining.start_to_first_work_ms", "mining.run.start_to_first_work_ms" },
	[F_FIRST_ACCEPTED] = { "mining.start_to_first_accepted_ms",
			       "mining.run.start_to_first_accepted_ms" },
	[F_JOB_SWITCH] = { "mining.job_switch_ms", "mining.job_switch.last_ms after a clean job" },
	[F_MI_QUEUED] = { "mining_to_idle.queued_ms", "last_switch.phases_ms.queued" },
	[F_MI_DRAIN] = { "mining_to_idle.drain_ms", "last_switch.phases_ms.drain" },
	[F_MI_RELEASE] = { "mining_to_idle.release_ms", "last_switch.phases_ms.release" },
	[F_MI_START] = { "mining_to_idle.start_ms", "last_switch.phases_ms.start" },
	[F_MI_TOTAL] = { "mining_to_idle.total_ms", "last_switch.phases_ms.total" },
	[F_MI_CLIENT] = { "mining_to_idle.client_ms", "client: POST sent -> status shows running" },
	[F_DRAIN_HASH_STOP] = { "drain.hash_stop_ms", "log: hashing stopped in" },
	[F_DRAIN_FLUSH] = { "drain.flush_ms", "log: flush" },
	[F_DRAIN_CLOSE] = { "drain.close_ms", "log: close" },
	[F_DRAIN_TOTAL] = { "drain.total_ms", "log: mining: drained in" },
};

typedef struct series {
	double v[MAX_SAMPLES];
	size_t n;
} series;

typedef struct perf {
	series s[F_COUNT];
	unsigned reps;
	unsigned pending_answers;   /* instructions answered "pending" (switch outlived apply wait) */
	unsigned drains_unanswered; /* shares left unanswered by the drains */
	json_t *mining;             /* backend, device, threads, final job_switch (from status) */
} perf;

static void add(perf *pf, int f, double v)
{
	if (pf->s[f].n < MAX_SAMPLES)
		pf->s[f].v[pf->s[f].n++] = v;
}

static unsigned reps_from_env(void)
{
	const char *e = getenv("HF_PERF_REPS");
	char *end = NULL;
	long n;

	if (!e || !*e)
		return DEFAULT_REPS;
	n = strtol(e, &end, 10);
	cr_assert(*end == '\0' && n >= 1 && n <= MAX_REPS, "HF_PERF_REPS=\"%s\": expected a "
		  "whole number from 1 to %d", e, MAX_REPS);
	return (unsigned)n;
}

static uint64_t switch_seq(const hf_testnode *n)
{
	json_t *j = hf_testnode_get(n, "/v1/status");
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "last_switch"),
								    "seq"));
	json_decref(j);
	return seq;
}

static const char *str0(const json_t *s)
{
	const char *v = json_string_value(s);
	return v ? v : "";
}

/* Polls (every 2 ms) until the node runs `mode` after a switch newer than seq; that status. */
static json_t *wait_running(const hf_testnode *n, const char *mode, uint64_t seq)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;

	for (;;) {
		json_t *j = hf_testnode_get(n, "/v1/status");
		const json_t *ls = json_object_get(j, "last_switch");
		if ((uint64_t)json_integer_value(json_object_get(ls, "seq")) > seq &&
		    strcmp(str0(json_object_get(j, "phase")), "running") == 0 &&
		    strcmp(str0(json_object_get(j, "mode")), mode) == 0)
			return j;
		cr_assert_lt(hf_mono_ms(), end, "the switch to %s did not happen: %s; log:\n%s", mode,
			     json_dumps(j, 0), hf_test_read_file(n->log));
		json_decref(j);
		hf_sleep_ms(2);
	}
}

/* Instructs `mode` (from `from`), waits until it runs, checks the switch record and adds its
 * phases and the client's view to the six figures from `base`. Returns the status. */
static json_t *switch_to(perf *pf, hf_testnode *n, const char *from, const char *mode,
			 const char *extra, int base)
{
	static const char *const phases[] = { "queued", "drain", "release", "start", "total" };
	hf_test_reply *r = malloc(sizeof *r);
	char url[128];
	uint64_t seq = switch_seq(n);
	char *env = hf_testnode_instruction(n, mode, extra);

	cr_assert_not_null(r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/instruction", n->port);
	uint64_t t0 = hf_mono_us();
	cr_assert(hf_test_http("POST", url, env, strlen(env), r), "POST %s failed; log:\n%s", url,
		  hf_test_read_file(n->log));
	cr_assert_eq(r->status, 200, "instruction %s: HTTP %ld: %s", mode, r->status, r->body);
	if (strstr(r->body, "\"pending\":true"))
		pf->pending_answers++;
	else
		cr_assert(strstr(r->body, "\"applied\":true"), "instruction %s: %s", mode, r->body);
	json_t *j = wait_running(n, mode, seq);
	add(pf, base + 5, (double)(hf_mono_us() - t0) / 1000.0);
	const json_t *ls = json_object_get(j, "last_switch");
	cr_assert(json_is_true(json_object_get(ls, "ok")), "switch to %s failed: %s", mode,
		  json_dumps(ls, 0));
	cr_assert_str_eq(str0(json_object_get(ls, "from")), from, "%s", json_dumps(ls, 0));
	cr_assert_str_eq(str0(json_object_get(ls, "to")), mode, "%s", json_dumps(ls, 0));
	const json_t *ph = json_object_get(ls, "phases_ms");
	for (int i = 0; i < 5; i++) {
		const json_t *v = json_object_get(ph, phases[i]);
		cr_assert(json_is_integer(v), "phases_ms.%s missing: %s", phases[i], json_dumps(ls, 0));
		add(pf, base + i, (double)json_integer_value(v));
	}
	free(env);
	free(r);
	return j;
}

/* The restart latency of the run that just started: waits for its first accepted share. */
static void first_share(perf *pf, const hf_testnode *n)
{
	json_t *j = hf_testnode_wait_mining(n, "run.start_to_first_accepted_ms", 1, WAIT_MS);
	const json_t *m = json_object_get(j, "mining");

	cr_assert_str_eq(str0(json_object_get(m, "state")), "mining", "%s", json_dumps(m, 0));
	add(pf, F_FIRST_WORK, hf_testnode_num(m, "run.start_to_first_work_ms"));
	add(pf, F_FIRST_ACCEPTED, hf_testnode_num(m, "run.start_to_first_accepted_ms"));
	json_decref(j);
}

/* JOBS_PER_REP clean jobs from the pool, each waited for until it reached every thread. */
static void job_switches(perf *pf, const hf_testpool *p, const hf_testnode *n)
{
	for (int k = 0; k < JOBS_PER_REP; k++) {
		json_t *j = hf_testnode_get(n, "/v1/status");
		double count = hf_testnode_num(json_object_get(j, "mining"), "job_switch.count");
		json_decref(j);
		cr_assert_geq(count, 0, "no mining.job_switch.count in mining mode");
		hf_testpool_fault(p, "new_block");
		j = hf_testnode_wait_mining(n, "job_switch.count", count + 1, WAIT_MS);
		add(pf, F_JOB_SWITCH, hf_testnode_num(json_object_get(j, "mining"), "job_switch.last_ms"));
		json_decref(pf->mining);
		pf->mining = json_pack("{s:O?, s:O?, s:O?, s:O?}",
			"backend", json_object_get(json_object_get(j, "mining"), "backend"),
			"device", json_object_get(json_object_get(j, "mining"), "device"),
			"threads", json_object_get(json_object_get(j, "mining"), "threads"),
			"job_switch", json_object_get(json_object_get(j, "mining"), "job_switch"));
		json_decref(j);
	}
}

/* The rep-th drain's line in the node's log (written before the switch record, so already
 * there; polled for all the same), and the pool's view: the session is closed. */
static void drain_figures(perf *pf, const hf_testpool *p, const hf_testnode *n, unsigned rep)
{
	hf_testnode_drain d;
	uint64_t end = hf_mono_ms() + WAIT_MS;

	while (!hf_testnode_drain_line(n, rep, &d)) {
		cr_assert_lt(hf_mono_ms(), end, "no drain line #%u in the log:\n%s", rep + 1,
			     hf_test_read_file(n->log));
		hf_sleep_ms(10);
	}
	add(pf, F_DRAIN_HASH_STOP, (double)d.hash_stop_ms);
	add(pf, F_DRAIN_FLUSH, (double)d.flush_ms);
	add(pf, F_DRAIN_CLOSE, (double)d.close_ms);
	add(pf, F_DRAIN_TOTAL, (double)d.total_ms);
	pf->drains_unanswered += (unsigned)d.unanswered;
	while (hf_testpool_stat(p, "clients", NULL) != 0) {
		cr_assert_lt(hf_mono_ms(), end, "idle, but the pool still has a session");
		hf_sleep_ms(10);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0 < q <= 1) of a sorted series. */
static double pct(const series *s, double q)
{
	size_t k = (size_t)ceil(q * (double)s->n);
	return s->v[(k ? k : 1) - 1];
}

static void cpu_model(char *out, size_t sz)
{
	char *info = hf_test_read_file("/proc/cpuinfo");
	const char *at = info ? strstr(info, "model name") : NULL;
	const char *colon = at ? strchr(at, ':') : NULL;

	hf_strlcpy(out, "unknown", sz);
	if (colon) {
		colon += strspn(colon + 1, " \t") + 1;
		snprintf(out, sz, "%.*s", (int)strcspn(colon, "\n"), colon);
	}
	free(info);
}

static json_t *machine_json(void)
{
	char model[256], load[128] = "?", a[32], b[32], c[32];
	hf_cpu_features f;
	char *la = hf_test_read_file("/proc/loadavg");

	cpu_model(model, sizeof model);
	hf_cpu_detect(&f);
	if (la && sscanf(la, "%31s %31s %31s", a, b, c) == 3)   /* the 1, 5 and 15 min averages */
		snprintf(load, sizeof load, "%s %s %s", a, b, c);
	free(la);
	return json_pack("{s:s, s:i, s:{s:b, s:b, s:b}, s:s}", "cpu", model,
			 "cores", (int)sysconf(_SC_NPROCESSORS_ONLN), "features", "sha", f.sha,
			 "avx2", f.avx2, "avx512f", f.avx512f, "loadavg", load);
}

/* Sorts every series, prints the table and returns the figures as JSON. */
static json_t *report(perf *pf, const json_t *machine)
{
	json_t *figs = json_object();

	printf("perf_switch: %u repetitions of idle -> mining -> idle, %d clean jobs each; "
		"%s, %lld cores, load %s; %s build%s%s\n", pf->reps, JOBS_PER_REP,
		str0(json_object_get(machine, "cpu")),
		(long long)json_integer_value(json_object_get(machine, "cores")),
		str0(json_object_get(machine, "loadavg")), HF_PERF_BUILDTYPE,
		HF_PERF_SANITIZE[0] && strcmp(HF_PERF_SANITIZE, "none") ? ", sanitize=" : "",
		HF_PERF_SANITIZE[0] && strcmp(HF_PERF_SANITIZE, "none") ? HF_PERF_SANITIZE : "");
	printf("%-34s %4s %9s %9s %9s\n", "figure (ms)", "n", "p50", "p95", "max");
	for (int f = 0; f < F_COUNT; f++) {
		series *s = &pf->s[f];
		json_t *samples = json_array();
		cr_assert_gt(s->n, 0, "no samples of %s", figures[f].name);
		for (size_t i = 0; i < s->n; i++)   /* in the order measured */
			json_array_append_new(samples, json_real(s->v[i]));
		qsort(s->v, s->n, sizeof s->v[0], cmp_double);
		printf("%-34s %4zu %9.3f %9.3f %9.3f\n", figures[f].name, s->n, pct(s, 0.5),
			pct(s, 0.95), s->v[s->n - 1]);
		json_object_set_new(figs, figures[f].name, json_pack("{s:s, s:I, s:f, s:f, s:f, s:o}",
			"source", figures[f].source, "n", (json_int_t)s->n, "p50", pct(s, 0.5),
			"p95", pct(s, 0.95), "max", s->v[s->n - 1], "samples", samples));
	}
	const json_t *js = json_object_get(pf->mining, "job_switch");
	printf("node's own job_switch over the run: count %lld, avg %.3f ms, max %.3f ms; "
		"%u answer(s) pending, %u share(s) unanswered at drains\n",
		(long long)json_integer_value(json_object_get(js, "count")),
		json_number_value(json_object_get(js, "avg_ms")),
		json_number_value(json_object_get(js, "max_ms")), pf->pending_answers,
		pf->drains_unanswered);
	return figs;
}

static void write_json(perf *pf, json_t *machine, json_t *figs)
{
	char dir[1024], path[1100];
	hf_errbuf eb;

	hf_errbuf_clear(&eb);
	snprintf(dir, sizeof dir, "%s/perf", hf_test_build_root());
	snprintf(path, sizeof path, "%s/switch.json", dir);
	json_t *doc = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}, s:I, s:o, s:i, s:i, s:s, s:o?, "
				"s:i, s:i, s:o}",
		"format", 1, "program", "perf_switch", "version", HF_TEST_VERSION,
		"build", "buildtype", HF_PERF_BUILDTYPE, "sanitize", HF_PERF_SANITIZE,
		"wall_ms", (json_int_t)hf_wall_ms(), "machine", machine, "repetitions", (int)pf->reps,
		"clean_jobs_per_repetition", JOBS_PER_REP, "pool_difficulty", DIFF,
		"mining", json_incref(pf->mining), "pending_answers", (int)pf->pending_answers,
		"drains_unanswered", (int)pf->drains_unanswered, "figures", figs);
	cr_assert_not_null(doc);
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	cr_assert_eq(hf_mkdir_p(dir, 0755, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_file_write_atomic(path, text, strlen(text), 0644, &eb), 0, "%s", eb.msg);
	printf("figures written to %s\n", path);
	fflush(stdout);   /* the Criterion worker may leave without flushing */
	free(text);
	json_decref(doc);
}

Test(perf, switch_figures, .timeout = 150)
{
	hf_testpool p = { 0 };
	hf_testnode n;
	perf *pf = calloc(1, sizeof *pf);
	char extra[512];

	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(pf);
	pf->reps = reps_from_env();
	hf_testpool_start(&p, "perf-pool", 0, DIFF, NULL, WAIT_MS);
	hf_testnode_init(&n, "perf-node", "idle", "{\"status_interval_s\": 1}", 10000);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mode(&n, "idle", 0, WAIT_MS));
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.perf\",\"pass\":\"x\"}]}", p.port);
	for (unsigned rep = 0; rep < pf->reps; rep++) {
		json_decref(switch_to(pf, &n, "idle", "mining", extra, F_IM_QUEUED));
		first_share(pf, &n);
		job_switches(pf, &p, &n);
		json_t *j = switch_to(pf, &n, "mining", "idle", NULL, F_MI_QUEUED);
		cr_assert_null(json_object_get(j, "mining"), "idle shows no mining section");
		json_decref(j);
		drain_figures(pf, &p, &n, rep);
	}
	hf_testnode_stop(&n);
	json_t *machine = machine_json();
	write_json(pf, machine, report(pf, machine));
	hf_testnode_fini(&n);
	hf_testpool_free(&p, WAIT_MS, true);
	json_decref(pf->mining);
	free(pf);
}
