/* perf_coord_store: figures of the coordinator's record (hf_coord_store on SQLite): reports per
 * second sustained from two putting threads over 10,000 nodes (HF_PERF_NODES), decision_add and
 * floor_set latency alone and under that report load, one decision_add_many for a fleet-wide
 * decision, and the database's size per node. Plain lines on stdout and
 * <build root>/perf/coord_store.json.
 *
 * Invariants: it fails only on functional failures (a store call failing, reports lost or
 * dropped); no figure is compared with a number. The database lives in a temporary directory
 * under the build tree (the disk the coordinator would use, not tmpfs).
 * Threading: one Criterion test; two reporter threads during the load phase.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_coord_store.h"
#include "hf_file.h"
#include "hf_util.h"

static char dir[512];
static char dbpath[600];

static unsigned env_u(const char *name, unsigned def)
{
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? (unsigned)atoi(v) : def;
}

/* A report the size of a real v1 report (about 700 bytes). */
static json_t *sample_report(unsigned node, uint64_t seq)
{
	char id[32];
	snprintf(id, sizeof id, "rig-%05u", node);
	return json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s, s:b, s:s, s:f, s:f,"
			 " s:f, s:{s:f, s:f, s:s, s:s, s:b, s:f, s:f, s:f, s:n, s:n},"
			 " s:{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I}}",
		"v", 1, "node", id, "fleet", "lab", "wall_ms", (json_int_t)hf_wall_ms(),
		"seq", (json_int_t)seq, "version", "0.1.0", "applied_issued_ms",
		(json_int_t)1764600000000, "mode", "mining", "desired_mode", "mining", "phase",
		"running", "converged", 1, "convergence", "converged", "hashrate_hs", 1.25e8,
		"flops", 0.0, "inferences_per_s", 0.0,
		"power", "watts", 231.5, "joules_total", 123456789.0, "source", "rapl", "boundary",
		"package", "estimated", 0, "window_s", 60.0, "window_watts", 230.9, "mh_per_j",
		0.541, "gflop_per_j", "inferences_per_j",
		"last_switch", "seq", (json_int_t)3, "from", "idle", "to", "mining", "trigger",
		"instruction", "total_ms", (json_int_t)412, "drain_ms", (json_int_t)2, "release_ms",
		(json_int_t)1, "start_ms", (json_int_t)409, "result", "ok", "requested_wall_ms",
		(json_int_t)1764600000000);
}

struct load {
	hf_coord_store *s;
	unsigned nodes, first, step;
	unsigned rate;               /* reports/s of this thread; 0: as fast as it can */
	volatile int *stop;
	uint64_t puts;
	uint64_t cpu_ns;
	int rc;
};

static void *reporter(void *p)
{
	struct load *l = p;
	hf_errbuf eb;
	char id[32];
	uint64_t seq = 0, c0 = hf_clock_ns(CLOCK_THREAD_CPUTIME_ID), t0 = hf_mono_us();
	/* Pre-built reports: the figure is the store's, not jansson's packing. */
	json_t *r = sample_report(0, 0);
	while (!*l->stop && l->rc == 0) {
		for (unsigned n = l->first; n < l->nodes && !*l->stop; n += l->step) {
			snprintf(id, sizeof id, "rig-%05u", n);
			l->rc = hf_coord_store_report_put(l->s, id, hf_wall_ms(), r, &eb);
			if (l->rc != 0)
				break;
			l->puts++;
			/* paced: sleep until this put's slot */
			while (l->rate && !*l->stop &&
			       (hf_mono_us() - t0) * l->rate < l->puts * 1000000ull)
				usleep(500);
		}
		seq++;
	}
	json_decref(r);
	l->cpu_ns = hf_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct lat {
	double p50, p99, max;
};

static struct lat latency(uint64_t *us, size_t n)
{
	struct lat l;
	qsort(us, n, sizeof *us, cmp_u64);
	l.p50 = (double)us[n / 2] / 1000.0;
	l.p99 = (double)us[(n * 99) / 100] / 1000.0;
	l.max = (double)us[n - 1] / 1000.0;
	return l;
}

/* n single decision_add calls (each then a floor_set): their latencies in ms. */
static void decide(hf_coord_store *s, size_t n, uint64_t *issued, struct lat *dl, struct lat *fl)
{
	uint64_t *du = calloc(n, sizeof *du), *fu = calloc(n, sizeof *fu);
	char env[900];
	hf_errbuf eb;

	memset(env, 'e', sizeof env - 1);
	env[sizeof env - 1] = '\0';
	for (size_t i = 0; i < n; i++) {
		hf_coord_decision_rec d;
		memset(&d, 0, sizeof d);
		snprintf(d.node, sizeof d.node, "rig-%05zu", i % 100);
		d.issued_ms = ++*issued;
		d.expires_ms = d.issued_ms + 600000;
		strcpy(d.mode, "inference");
		d.authority = HF_COORD_BY_COORDINATOR;
		strcpy(d.source, "api");
		strcpy(d.keyids, "0123456789abcdef");
		memset(d.payload_sha256, 'a', 64);
		d.envelope = env;
		uint64_t t0 = hf_mono_us();
		cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
		uint64_t t1 = hf_mono_us();
		cr_assert_eq(hf_coord_store_floor_set(s, d.issued_ms, &eb), 0, "%s", eb.msg);
		fu[i] = hf_mono_us() - t1;
		du[i] = t1 - t0;
	}
	*dl = latency(du, n);
	*fl = latency(fu, n);
	free(du);
	free(fu);
}

Test(perf, coord_store, .timeout = 300)
{
	unsigned nodes = env_u("HF_PERF_NODES", 10000), secs = env_u("HF_PERF_SECONDS", 5);
	hf_coord_store_opts o = { .report_flush_ms = 1000 };
	hf_coord_store *s = NULL;
	hf_errbuf eb;
	uint64_t issued = hf_wall_ms();
	struct lat d_idle, f_idle, d_load, f_load;

	snprintf(dir, sizeof dir, "%s/perf", getenv("HF_BUILD_ROOT") ? getenv("HF_BUILD_ROOT") : ".");
	cr_assert_eq(hf_mkdir_p(dir, 0755, &eb), 0, "%s", eb.msg);
	snprintf(dbpath, sizeof dbpath, "%s/coord_store_perf.db", dir);
	unlink(dbpath);
	o.path = dbpath;
	cr_assert_eq(hf_coord_store_open_sqlite(&o, &s, &eb), 0, "%s", eb.msg);
	for (unsigned i = 0; i < nodes; i++) {
		hf_coord_node_rec n;
		memset(&n, 0, sizeof n);
		snprintf(n.id, sizeof n.id, "rig-%05u", i);
		memset(n.token_hash, 'b', 64);
		n.added_ms = hf_wall_ms();
		cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), 0, "%s", eb.msg);
	}

	decide(s, 200, &issued, &d_idle, &f_idle);

	/* Reports as fast as two threads can put them; the queue cap makes the put rate the
	 * commit rate. */
	volatile int stop = 0;
	struct load l[2];
	pthread_t t[2];
	hf_coord_store_stats st0, st1;
	hf_coord_store_stats_get(s, &st0);
	uint64_t t0 = hf_mono_us(), pc0 = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < 2; i++) {
		l[i] = (struct load){ .s = s, .nodes = nodes, .first = (unsigned)i, .step = 2,
				      .stop = &stop };
		cr_assert_eq(pthread_create(&t[i], NULL, reporter, &l[i]), 0);
	}
	uint64_t until = t0 + (uint64_t)secs * 1000000;
	while (hf_mono_us() < until)
		hf_sleep_ms(50);
	stop = 1;
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(l[i].rc, 0, "reporter %d: %s", i, hf_strerror(l[i].rc));
	}
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	uint64_t el_us = hf_mono_us() - t0, pcpu = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - pc0;
	hf_coord_store_stats_get(s, &st1);

	/* Decisions while reports arrive at HF_PERF_RATE (10,000/s): the fleet-scale load. */
	unsigned rate = env_u("HF_PERF_RATE", 10000);
	stop = 0;
	for (int i = 0; i < 2; i++) {
		l[i] = (struct load){ .s = s, .nodes = nodes, .first = (unsigned)i, .step = 2,
				      .stop = &stop, .rate = rate / 2 };
		cr_assert_eq(pthread_create(&t[i], NULL, reporter, &l[i]), 0);
	}
	hf_sleep_ms(1500); /* into the steady state (a first batch committed) */
	uint64_t tb = hf_mono_us();
	decide(s, 400, &issued, &d_load, &f_load);
	uint64_t dec_s_us = hf_mono_us() - tb;
	stop = 1;
	uint64_t paced = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(l[i].rc, 0, "reporter %d: %s", i, hf_strerror(l[i].rc));
		paced += l[i].puts;
	}
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	uint64_t written = st1.entries_written - st0.entries_written;
	cr_assert_eq(st1.entries_lost + st1.entries_dropped, 0);
	double rps = (double)written / ((double)el_us / 1e6);
	double put_cpu_us = (double)(l[0].cpu_ns + l[1].cpu_ns) / 1000.0 /
			    (double)(l[0].puts + l[1].puts);
	double cpu_us = (double)pcpu / 1000.0 / (double)written;

	/* A fleet-wide decision: one envelope per node in one transaction. */
	hf_coord_decision_rec *many = calloc(nodes, sizeof *many);
	char env[900];
	memset(env, 'e', sizeof env - 1);
	env[sizeof env - 1] = '\0';
	for (unsigned i = 0; i < nodes; i++) {
		snprintf(many[i].node, sizeof many[i].node, "rig-%05u", i);
		many[i].issued_ms = ++issued;
		many[i].expires_ms = issued + 600000;
		strcpy(many[i].mode, "idle");
		many[i].authority = HF_COORD_BY_COORDINATOR;
		strcpy(many[i].source, "api");
		memset(many[i].payload_sha256, 'c', 64);
		many[i].envelope = env;
	}
	uint64_t m0 = hf_mono_us();
	cr_assert_eq(hf_coord_store_decision_add_many(s, many, nodes, &eb), 0, "%s", eb.msg);
	double many_ms = (double)(hf_mono_us() - m0) / 1000.0;
	free(many);
	hf_coord_decision_rec *cur;
	size_t ncur;
	uint64_t c0 = hf_mono_us();
	cr_assert_eq(hf_coord_store_decision_current(s, &cur, &ncur, &eb), 0, "%s", eb.msg);
	double cur_ms = (double)(hf_mono_us() - c0) / 1000.0;
	for (size_t i = 0; i < ncur; i++)
		hf_coord_decision_rec_clear(&cur[i]);
	free(cur);
	hf_coord_store_free(s);
	struct stat sb;
	cr_assert_eq(stat(dbpath, &sb), 0);

	json_t *sr = sample_report(0, 0);
	char *stext = json_dumps(sr, JSON_COMPACT);
	size_t rep_len = strlen(stext);
	free(stext);
	json_decref(sr);
	printf("perf_coord_store: %u nodes, %u s of reports (%zu B JSON each), flush every %u ms\n",
	       nodes, secs, rep_len, o.report_flush_ms);
	printf("  reports committed       %.0f /s (%llu in %.1f s, %llu batches, last %.1f ms)\n",
	       rps, (unsigned long long)written, (double)el_us / 1e6,
	       (unsigned long long)(st1.batches - st0.batches), (double)st1.last_batch_us / 1000.0);
	printf("  report_put (caller)     %.2f us CPU each; process %.2f us CPU per report\n",
	       put_cpu_us, cpu_us);
	printf("  decision_add idle       p50 %.2f  p99 %.2f  max %.2f ms\n", d_idle.p50, d_idle.p99,
	       d_idle.max);
	printf("  paced load              %.0f reports/s offered during the decisions below\n",
	       (double)paced / ((double)(hf_mono_us() - tb + 1500000) / 1e6));
	(void)dec_s_us;
	printf("  decision_add under load p50 %.2f  p99 %.2f  max %.2f ms\n", d_load.p50, d_load.p99,
	       d_load.max);
	printf("  floor_set idle          p50 %.2f  p99 %.2f  max %.2f ms\n", f_idle.p50, f_idle.p99,
	       f_idle.max);
	printf("  floor_set under load    p50 %.2f  p99 %.2f  max %.2f ms\n", f_load.p50, f_load.p99,
	       f_load.max);
	printf("  decision_add_many       %u decisions in %.1f ms\n", nodes, many_ms);
	printf("  decision_current        %zu rows in %.1f ms\n", ncur, cur_ms);
	printf("  database                %.1f MiB (%.0f B per node)\n",
	       (double)sb.st_size / 1048576.0, (double)sb.st_size / nodes);

	char jpath[700];
	snprintf(jpath, sizeof jpath, "%s/coord_store.json", dir);
	json_t *j = json_pack("{s:I, s:I, s:f, s:f, s:f, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f},"
			      " s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f}, s:f, s:f, s:I}",
		"nodes", (json_int_t)nodes, "seconds", (json_int_t)secs, "reports_per_s", rps,
		"report_put_cpu_us", put_cpu_us, "cpu_us_per_report", cpu_us,
		"decision_add_idle_ms", "p50", d_idle.p50, "p99", d_idle.p99, "max", d_idle.max,
		"decision_add_load_ms", "p50", d_load.p50, "p99", d_load.p99, "max", d_load.max,
		"floor_set_idle_ms", "p50", f_idle.p50, "p99", f_idle.p99, "max", f_idle.max,
		"floor_set_load_ms", "p50", f_load.p50, "p99", f_load.p99, "max", f_load.max,
		"decision_add_many_ms", many_ms, "decision_current_ms", cur_ms,
		"db_bytes", (json_int_t)sb.st_size);
	cr_assert_not_null(j);
	cr_assert_eq(json_dump_file(j, jpath, JSON_INDENT(2)), 0);
	json_decref(j);
	unlink(dbpath);
	char side[700];
	snprintf(side, sizeof side, "%s-wal", dbpath);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", dbpath);
	unlink(side);
}
