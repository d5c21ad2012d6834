/* perf_coord_store: figures of the coordinator's record (hf_coord_store on SQLite): reports per
 * second sustained from two putting threads over 10,000 nodes (HF_PERF_NODES), decision_add and
 * floor_set latency alone and under that report load, one decision_add_many for a fleet-wide
 * decision, and the database's size per node (1,000 nodes and 2 s under the sanitizers).
 * Plain lines on stdout and <build root>/perf/coord_store.json.
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
#include <stdbool.h>
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
	/* Pre-built report text (report_put_text, what the coordinator has: the request body): the
	 * figure is the store's; report_put adds one json_dumps (dumps_us in the output). */
	json_t *rj = sample_report(0, 0);
	char *r = json_dumps(rj, JSON_COMPACT);
	size_t rlen = strlen(r);
	json_decref(rj);
	while (!*l->stop && l->rc == 0) {
		for (unsigned n = l->first; n < l->nodes && !*l->stop; n += l->step) {
			snprintf(id, sizeof id, "rig-%05u", n);
			l->rc = hf_coord_store_report_put_text(l->s, id, hf_wall_ms(), r, rlen, &eb);
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
	free(r);
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

/* n single decision_add calls (each then a floor_set one higher): their latencies in ms. */
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
		/* a raise that writes (the same value as decision_add's would change nothing) */
		cr_assert_eq(hf_coord_store_floor_set(s, ++*issued, &eb), 0, "%s", eb.msg);
		fu[i] = hf_mono_us() - t1;
		du[i] = t1 - t0;
	}
	*dl = latency(du, n);
	*fl = latency(fu, n);
	free(du);
	free(fu);
}

struct figs {
	unsigned nodes, secs, decisions;
	double node_add_ms;
	double rps, put_cpu_us, cpu_us, run_s, last_batch_ms;
	uint64_t written, batches;
	double paced_rps;
	struct lat d_idle, f_idle, d_load, f_load;
	double many_ms, cur_ms;
	size_t ncur;
	long long db_bytes;
	double load1;
	size_t rep_len;
	double dumps_us;
};

static void add_nodes(hf_coord_store *s, struct figs *f)
{
	hf_errbuf eb;
	uint64_t t0 = hf_mono_us();
	for (unsigned i = 0; i < f->nodes; i++) {
		hf_coord_node_rec n;
		memset(&n, 0, sizeof n);
		snprintf(n.id, sizeof n.id, "rig-%05u", i);
		memset(n.token_hash, 'b', 64);
		n.added_ms = hf_wall_ms();
		cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), 0, "%s", eb.msg);
	}
	f->node_add_ms = (double)(hf_mono_us() - t0) / 1000.0 / f->nodes;
}

static void start_load(struct load *l, pthread_t *t, hf_coord_store *s, unsigned nodes,
		       unsigned rate, volatile int *stop)
{
	*stop = 0;
	for (int i = 0; i < 2; i++) {
		l[i] = (struct load){ .s = s, .nodes = nodes, .first = (unsigned)i, .step = 2,
				      .stop = stop, .rate = rate / 2 };
		cr_assert_eq(pthread_create(&t[i], NULL, reporter, &l[i]), 0);
	}
}

static uint64_t stop_load(struct load *l, pthread_t *t, hf_coord_store *s, volatile int *stop)
{
	hf_errbuf eb;
	uint64_t puts = 0;
	*stop = 1;
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(l[i].rc, 0, "reporter %d: %s", i, hf_strerror(l[i].rc));
		puts += l[i].puts;
	}
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	return puts;
}

/* Reports as fast as two threads can put them; the queue cap makes the put rate the commit
 * rate. */
static void saturate(hf_coord_store *s, struct figs *f)
{
	volatile int stop = 0;
	struct load l[2];
	pthread_t t[2];
	hf_coord_store_stats st0, st1;

	hf_coord_store_stats_get(s, &st0);
	uint64_t t0 = hf_mono_us(), pc0 = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	start_load(l, t, s, f->nodes, 0, &stop);
	while (hf_mono_us() < t0 + (uint64_t)f->secs * 1000000)
		hf_sleep_ms(50);
	uint64_t puts = stop_load(l, t, s, &stop);
	uint64_t el_us = hf_mono_us() - t0, pcpu = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - pc0;
	hf_coord_store_stats_get(s, &st1);
	cr_assert_eq(st1.entries_lost + st1.entries_dropped, 0);
	f->written = st1.entries_written - st0.entries_written;
	cr_assert_eq(f->written, puts);
	f->batches = st1.batches - st0.batches;
	f->last_batch_ms = (double)st1.last_batch_us / 1000.0;
	f->run_s = (double)el_us / 1e6;
	f->rps = (double)f->written / f->run_s;
	f->put_cpu_us = (double)(l[0].cpu_ns + l[1].cpu_ns) / 1000.0 / (double)puts;
	f->cpu_us = (double)pcpu / 1000.0 / (double)f->written;
}

/* Decisions while reports arrive at HF_PERF_RATE (10,000/s): the fleet-scale load. */
static void decide_under_load(hf_coord_store *s, uint64_t *issued, struct figs *f)
{
	volatile int stop = 0;
	struct load l[2];
	pthread_t t[2];
	uint64_t t0 = hf_mono_us();

	start_load(l, t, s, f->nodes, env_u("HF_PERF_RATE", 10000), &stop);
	hf_sleep_ms(1500); /* into the steady state (a first batch committed) */
	decide(s, 2 * f->decisions, issued, &f->d_load, &f->f_load);
	double el_s = (double)(hf_mono_us() - t0) / 1e6;
	f->paced_rps = (double)stop_load(l, t, s, &stop) / el_s;
}

/* A fleet-wide decision: one envelope per node in one transaction; then what a restart reads. */
static void fleet_decision(hf_coord_store *s, uint64_t *issued, struct figs *f)
{
	hf_coord_decision_rec *many = calloc(f->nodes, sizeof *many), *cur;
	char env[900];
	hf_errbuf eb;

	memset(env, 'e', sizeof env - 1);
	env[sizeof env - 1] = '\0';
	for (unsigned i = 0; i < f->nodes; i++) {
		snprintf(many[i].node, sizeof many[i].node, "rig-%05u", i);
		many[i].issued_ms = ++*issued;
		many[i].expires_ms = *issued + 600000;
		strcpy(many[i].mode, "idle");
		many[i].authority = HF_COORD_BY_COORDINATOR;
		strcpy(many[i].source, "api");
		memset(many[i].payload_sha256, 'c', 64);
		many[i].envelope = env;
	}
	uint64_t m0 = hf_mono_us();
	cr_assert_eq(hf_coord_store_decision_add_many(s, many, f->nodes, &eb), 0, "%s", eb.msg);
	f->many_ms = (double)(hf_mono_us() - m0) / 1000.0;
	free(many);
	uint64_t c0 = hf_mono_us();
	cr_assert_eq(hf_coord_store_decision_current(s, &cur, &f->ncur, &eb), 0, "%s", eb.msg);
	f->cur_ms = (double)(hf_mono_us() - c0) / 1000.0;
	for (size_t i = 0; i < f->ncur; i++)
		hf_coord_decision_rec_clear(&cur[i]);
	free(cur);
}

static void print_lat(const char *what, const struct lat *l)
{
	printf("  %-23s p50 %.2f  p99 %.2f  max %.2f ms\n", what, l->p50, l->p99, l->max);
}

static json_t *lat_json(const struct lat *l)
{
	return json_pack("{s:f, s:f, s:f}", "p50", l->p50, "p99", l->p99, "max", l->max);
}

static void report(const struct figs *f, bool san)
{
	printf("perf_coord_store: %u nodes, %u s of reports (%zu B JSON each), flush every 1000 ms; "
	       "%s build%s%s, %ld CPUs, load average %.2f\n", f->nodes, f->secs, f->rep_len,
	       HF_PERF_BUILDTYPE, san ? ", sanitizers " : "", san ? HF_PERF_SANITIZE : "",
	       sysconf(_SC_NPROCESSORS_ONLN), f->load1);
	printf("  node_add                %.2f ms each (one commit each)\n", f->node_add_ms);
	printf("  reports committed       %.0f /s (%llu in %.1f s, %llu batches, last %.1f ms)\n",
	       f->rps, (unsigned long long)f->written, f->run_s, (unsigned long long)f->batches,
	       f->last_batch_ms);
	printf("  report_put_text         %.2f us CPU each in the caller; process %.2f us CPU per "
	       "report (report_put: + %.2f us for its json_dumps)\n", f->put_cpu_us, f->cpu_us,
	       f->dumps_us);
	print_lat("decision_add idle", &f->d_idle);
	print_lat("floor_set idle", &f->f_idle);
	printf("  paced load              %.0f reports/s offered during the decisions below\n",
	       f->paced_rps);
	print_lat("decision_add under load", &f->d_load);
	print_lat("floor_set under load", &f->f_load);
	printf("  decision_add_many       %u decisions in %.1f ms\n", f->nodes, f->many_ms);
	printf("  decision_current        %zu rows in %.1f ms\n", f->ncur, f->cur_ms);
	printf("  database                %.1f MiB (%.0f B per node)\n",
	       (double)f->db_bytes / 1048576.0, (double)f->db_bytes / f->nodes);

	char jpath[700];
	snprintf(jpath, sizeof jpath, "%s/coord_store.json", dir);
	json_t *j = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:f, s:f, s:f,"
			      " s:I, s:f, s:s}",
		"nodes", (json_int_t)f->nodes, "seconds", (json_int_t)f->secs,
		"node_add_ms", f->node_add_ms, "reports_per_s", f->rps,
		"report_put_text_cpu_us", f->put_cpu_us, "cpu_us_per_report", f->cpu_us,
		"decision_add_idle_ms", lat_json(&f->d_idle), "floor_set_idle_ms",
		lat_json(&f->f_idle), "decision_add_load_ms", lat_json(&f->d_load),
		"floor_set_load_ms", lat_json(&f->f_load), "paced_reports_per_s", f->paced_rps,
		"decision_add_many_ms", f->many_ms, "decision_current_ms", f->cur_ms,
		"db_bytes", (json_int_t)f->db_bytes, "load_average", f->load1,
		"sanitize", HF_PERF_SANITIZE);
	cr_assert_not_null(j);
	json_object_set_new(j, "json_dumps_us", json_real(f->dumps_us));
	cr_assert_eq(json_dump_file(j, jpath, JSON_INDENT(2)), 0);
	json_decref(j);
}

static void remove_db(void)
{
	char side[700];
	unlink(dbpath);
	snprintf(side, sizeof side, "%s-wal", dbpath);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", dbpath);
	unlink(side);
}

Test(perf, coord_store, .timeout = 300)
{
	/* Under the sanitizers the figures mean nothing: a smaller run that still checks it works. */
	bool san = strcmp(HF_PERF_SANITIZE, "none") != 0;
	struct figs f = { .nodes = env_u("HF_PERF_NODES", san ? 1000 : 10000),
			  .secs = env_u("HF_PERF_SECONDS", san ? 2 : 5),
			  .decisions = san ? 40 : 200 };
	hf_coord_store_opts o = { .report_flush_ms = 1000 };
	hf_coord_store *s = NULL;
	uint64_t issued = hf_wall_ms();
	hf_errbuf eb;
	struct stat sb;

	snprintf(dir, sizeof dir, "%s/perf", getenv("HF_BUILD_ROOT") ? getenv("HF_BUILD_ROOT") : ".");
	cr_assert_eq(hf_mkdir_p(dir, 0755, &eb), 0, "%s", eb.msg);
	snprintf(dbpath, sizeof dbpath, "%s/coord_store_perf.db", dir);
	remove_db();
	o.path = dbpath;
	cr_assert_eq(hf_coord_store_open_sqlite(&o, &s, &eb), 0, "%s", eb.msg);
	add_nodes(s, &f);
	decide(s, f.decisions, &issued, &f.d_idle, &f.f_idle);
	saturate(s, &f);
	decide_under_load(s, &issued, &f);
	fleet_decision(s, &issued, &f);
	hf_coord_store_free(s);
	cr_assert_eq(stat(dbpath, &sb), 0);
	f.db_bytes = (long long)sb.st_size;

	json_t *sr = sample_report(0, 0);
	uint64_t c0 = hf_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	for (int i = 0; i < 1000; i++) {
		char *stext = json_dumps(sr, JSON_COMPACT);
		f.rep_len = strlen(stext);
		free(stext);
	}
	f.dumps_us = (double)(hf_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1000.0 / 1000.0;
	json_decref(sr);
	FILE *la = fopen("/proc/loadavg", "r");
	if (la) {
		if (fscanf(la, "%lf", &f.load1) != 1)
			f.load1 = 0;
		fclose(la);
	}
	report(&f, san);
	remove_db();
}
