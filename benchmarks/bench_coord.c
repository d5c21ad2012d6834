/* bench_coord: `hashflop-bench coord`, the coordinator's scale benchmark: N simulated nodes on
 * loopback against a real hashflop-coord, each long-polling its instruction and reporting like
 * hashflopd, and the figures the issue asks for:
 *   - fan-out: for each of D fleet-wide decisions, the time from the POST's first byte to each
 *     node holding its envelope (p50 / p99 / max over every node and decision), for operator
 *     relays (a "*" envelope signed by two operator keys, POST /v1/fleet/instruction) and for
 *     the coordinator's own decisions (POST /v1/decisions {"node": "*"}: one envelope per node,
 *     signed by the coordinator), after one unmeasured warm-up relay;
 *   - coordinator RSS per node: VmRSS with the nodes registered and none connected, then with
 *     every polling node holding a poll;
 *   - CPU per report: the coordinator's utime+stime over a report-only phase / reports answered,
 *     at the configured interval and saturated (every report connection back to back), which
 *     also gives the reports per second sustained;
 *   - the client's own CPU (it shares the machine with the coordinator).
 * The coordinator is started from the build tree (or --coord-bin) in a temporary directory made
 * by bench_coord_setup.c, or is one already running (--url, on a --dir made with --prepare).
 * Each polling node costs one descriptor on each side, so RLIMIT_NOFILE bounds the nodes that
 * can poll at once; registered nodes past that bound still report, and still count for the
 * coordinator's own decisions (it signs one envelope per registered node).
 * Threading: the caller's thread (the epoll loop in bench_coord_fleet.c); the coordinator is a
 * child process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_coord.h"
#include "bench_coord_setup.h"
#include "hf_bench.h"
#include "hf_httpd.h"
#include "hf_instr.h"
#include "hf_util.h"
#include "hf_version.h"

#define FLEET_ID "bench"
#define MAX_DECISIONS 1000
#define FD_RESERVE 64          /* descriptors kept for everything but connections, per side */
#define FANOUT_DEADLINE_MS 60000
#define QUIET_CPU_SHARE 0.3    /* the coordinator counts as quiet below this share of a core */

typedef struct copts {
	unsigned nodes, addresses, decisions, report_conns, wait_s, threads, max_connecting;
	double interval_s, seconds;
	const char *coord_bin, *url, *json, *dir;
	bool pin, keep, prepare, no_relay, no_api;
	pid_t coord_pid;
} copts;

typedef struct fan {
	const char *name;
	unsigned done_decisions;
	uint64_t count, expected;
	uint32_t *lat;           /* decisions x polling */
	double answer_ms[MAX_DECISIONS], p50_ms[MAX_DECISIONS], p99_ms[MAX_DECISIONS],
		max_ms[MAX_DECISIONS];
	double coord_cpu_ms[MAX_DECISIONS], client_cpu_ms[MAX_DECISIONS];
	unsigned got[MAX_DECISIONS];
	char skipped[256];
	int bad_status;
	char bad_body[200];
} fan;

typedef struct bench {
	copts o;
	bc_setup s;
	bc_fleet *f;
	unsigned polling;
	pid_t coord;             /* the process sampled (ours or --coord-pid; -1: none) */
	uint64_t last_issued;
	char err[1024];
} bench;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench coord [options]\n"
		"Simulates N nodes on loopback (one epoll loop) against a real hashflop-coord: each\n"
		"long-polls its instruction and reports like hashflopd. Measures fan-out of fleet-wide\n"
		"decisions (p50/p99/max), coordinator RSS per node, CPU per report, reports/s.\n\n"
		"  -n, --nodes N             registered nodes (10000)\n"
		"      --coord-bin PATH      the hashflop-coord to start (default: the build tree's)\n"
		"      --url URL             use a coordinator already running on --dir (see --prepare)\n"
		"      --coord-pid PID       with --url: the process to sample for RSS and CPU\n"
		"      --dir DIR             state directory (kept); default a temporary one\n"
		"      --prepare             write --dir (keys, coord.json, nodes) and exit\n"
		"      --keep                keep the temporary directory\n"
		"  -a, --addresses K         source addresses 127.0.0.1..K (one per 25,000 conns, >= 2)\n"
		"      --reports-per-node-s S  each node reports every S seconds (10)\n"
		"      --report-conns R      kept-alive connections the reports share (16)\n"
		"  -d, --decisions D         fleet-wide decisions measured per kind (5)\n"
		"  -s, --seconds S           length of each report phase (10)\n"
		"      --wait-s W            the long polls' wait= (60)\n"
		"      --threads T           the coordinator's limits.threads (2)\n"
		"      --pin                 coordinator on CPU 0, this client on CPU 1\n"
		"      --kinds LIST          decisions measured: relay,api (both)\n"
		"      --json FILE           write the figures as JSON\n"
		"  -h, --help                this help\n");
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	if (!hf_parse_u64(s, min, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

static bool parse_pos(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		return false;
	*out = v;
	return true;
}

enum { O_BIN = 1000, O_URL, O_PID, O_DIR, O_PREP, O_KEEP, O_RPN, O_RCONN, O_WAIT, O_THR, O_PIN,
       O_JSON, O_KINDS };

static int parse_opts(int argc, char **argv, copts *o)
{
	static const struct option lo[] = {
		{ "nodes", required_argument, NULL, 'n' }, { "coord-bin", required_argument, NULL, O_BIN },
		{ "url", required_argument, NULL, O_URL }, { "coord-pid", required_argument, NULL, O_PID },
		{ "dir", required_argument, NULL, O_DIR }, { "prepare", no_argument, NULL, O_PREP },
		{ "keep", no_argument, NULL, O_KEEP }, { "addresses", required_argument, NULL, 'a' },
		{ "reports-per-node-s", required_argument, NULL, O_RPN },
		{ "report-conns", required_argument, NULL, O_RCONN },
		{ "decisions", required_argument, NULL, 'd' }, { "seconds", required_argument, NULL, 's' },
		{ "wait-s", required_argument, NULL, O_WAIT }, { "threads", required_argument, NULL, O_THR },
		{ "pin", no_argument, NULL, O_PIN }, { "json", required_argument, NULL, O_JSON },
		{ "kinds", required_argument, NULL, O_KINDS },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	unsigned pid = 0;
	int c;
	*o = (copts){ .nodes = 10000, .decisions = 5, .report_conns = 16, .wait_s = 60, .threads = 2,
		      .interval_s = 10, .seconds = 10, .max_connecting = 256, .coord_pid = -1 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:a:d:s:h", lo, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'n': ok = parse_uint(optarg, 1, 10000000, &o->nodes); break;
		case 'a': ok = parse_uint(optarg, 1, 254, &o->addresses); break;
		case 'd': ok = parse_uint(optarg, 1, MAX_DECISIONS, &o->decisions); break;
		case 's': ok = parse_pos(optarg, &o->seconds); break;
		case O_BIN: o->coord_bin = optarg; break;
		case O_URL: o->url = optarg; break;
		case O_PID: ok = parse_uint(optarg, 1, INT_MAX, &pid); o->coord_pid = (pid_t)pid; break;
		case O_DIR: o->dir = optarg; break;
		case O_PREP: o->prepare = true; break;
		case O_KEEP: o->keep = true; break;
		case O_RPN: ok = parse_pos(optarg, &o->interval_s) && o->interval_s >= 0.01; break;
		case O_RCONN: ok = parse_uint(optarg, 1, 4096, &o->report_conns); break;
		case O_WAIT: ok = parse_uint(optarg, 1, 3600, &o->wait_s); break;
		case O_THR: ok = parse_uint(optarg, 1, 64, &o->threads); break;
		case O_PIN: o->pin = true; break;
		case O_JSON: o->json = optarg; break;
		case O_KINDS:
			o->no_relay = !strstr(optarg, "relay");
			o->no_api = !strstr(optarg, "api");
			ok = strspn(optarg, "relaypi,") == strlen(optarg) && !(o->no_relay && o->no_api);
			break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "hashflop-bench coord: unknown option or missing value: %s\n",
				argv[optind - 1]);
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "hashflop-bench coord: bad value \"%s\" for %s\n", optarg,
				argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-bench coord: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if ((o->url || o->prepare) && !o->dir) {
		fprintf(stderr, "hashflop-bench coord: --url and --prepare need --dir\n");
		return -1;
	}
	if (o->url && o->coord_bin) {
		fprintf(stderr, "hashflop-bench coord: --url and --coord-bin exclude each other\n");
		return -1;
	}
	return 0;
}

/* <build root>/runtime/coord/hashflop-coord, or hashflop-coord beside this program. */
static void default_coord_bin(char *out, size_t sz)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		snprintf(out, sz, "hashflop-coord");
		return;
	}
	exe[n] = '\0';
	char *d = dirname(exe);
	size_t l = strlen(d);
	if (l >= 11 && strcmp(d + l - 11, "/benchmarks") == 0) {
		d[l - 11] = '\0';
		snprintf(out, sz, "%s/runtime/coord/hashflop-coord", d);
	} else {
		snprintf(out, sz, "%s/hashflop-coord", d);
	}
}

static double client_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static bool sample(const bench *b, bc_proc *p)
{
	memset(p, 0, sizeof *p);
	return b->coord > 0 && bc_proc_sample(b->coord, p);
}

/* Drives the loop until the coordinator is quiet (below QUIET_CPU_SHARE of a core over 100 ms)
 * and every polling node has its poll outstanding, or max_ms passed. */
static int settle(bench *b, uint64_t max_ms)
{
	uint64_t end = hf_mono_ms() + max_ms;
	bc_proc p0, p1;
	bool have = sample(b, &p0);
	for (;;) {
		int rc = bc_fleet_run(b->f, 100, BC_UNTIL_DEADLINE, b->err, sizeof b->err);
		if (rc < 0)
			return rc;
		bc_fleet_stats st;
		bc_fleet_stats_get(b->f, &st);
		bool polls = st.polls_outstanding >= b->polling;
		bool quiet = true;
		if (have && sample(b, &p1)) {
			quiet = p1.cpu_s - p0.cpu_s < QUIET_CPU_SHARE * 0.1;
			p0 = p1;
		}
		if ((polls && quiet) || hf_mono_ms() >= end)
			return 0;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorted copy's p50, p99 and max in ms over the received entries (UINT32_MAX: missing). */
static unsigned pctl(const uint32_t *lat, size_t n, double *p50, double *p99, double *max)
{
	uint32_t *v = malloc((n ? n : 1) * sizeof *v);
	size_t k = 0;
	for (size_t i = 0; v && i < n; i++)
		if (lat[i] != UINT32_MAX)
			v[k++] = lat[i];
	*p50 = *p99 = *max = 0;
	if (v && k) {
		qsort(v, k, sizeof *v, cmp_u32);
		*p50 = v[(k - 1) * 50 / 100] / 1000.0;
		*p99 = v[(k - 1) * 99 / 100] / 1000.0;
		*max = v[k - 1] / 1000.0;
	}
	free(v);
	return (unsigned)k;
}

static const char *mode_of(unsigned k)
{
	return k % 2 ? "idle" : "mining";
}

/* The body and path of decision k of its kind. */
static int decision_body(bench *b, bool relay, unsigned k, char **body, const char **path)
{
	json_t *mining = NULL;
	if (strcmp(mode_of(k), "mining") == 0)
		mining = json_pack("{s:[{s:s, s:s}]}", "pools", "url", "stratum+tcp://127.0.0.1:3333",
				   "user", "bench.worker");
	if (!relay) {
		json_t *j = json_pack("{s:s, s:s, s:{s:s, s:i}, s:i}", "node", "*", "mode", mode_of(k),
				      "reason", "bench", "coord", "decision", (int)k, "ttl_s", 600);
		if (mining)
			json_object_set_new(j, "mining", mining);
		*body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		*path = "/v1/decisions";
		return *body ? 0 : HF_ENOMEM;
	}
	uint64_t now = hf_wall_ms(), floor = bc_fleet_max_held(b->f);
	uint64_t issued = now;
	if (issued <= floor)
		issued = floor + 1;
	if (issued <= b->last_issued)
		issued = b->last_issued + 1;
	b->last_issued = issued;
	json_t *p = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:{s:s, s:i}}", "v", 1, "fleet",
			      FLEET_ID, "node", "*", "issued_ms", (json_int_t)issued, "expires_ms",
			      (json_int_t)(issued + 600000), "mode", mode_of(k), "reason", "bench",
			      "coord", "decision", (int)k);
	if (mining)
		json_object_set_new(p, "mining", mining);
	char *payload = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	hf_errbuf eb;
	int rc = payload ? hf_instr_sign(payload, strlen(payload), b->s.ops, 2, body, &eb) : HF_ENOMEM;
	free(payload);
	if (rc < 0)
		snprintf(b->err, sizeof b->err, "signing the relay: %s", eb.msg);
	*path = "/v1/fleet/instruction";
	return rc;
}

/* One decision: POST, then every polling node's receipt. 1: done (maybe with missing nodes),
 * 0: refused (fan->skipped or bad_status set), < 0: the loop failed. */
static int one_decision(bench *b, fan *fn, bool relay, unsigned k, uint32_t *lat)
{
	char *body = NULL;
	const char *path;
	uint64_t t0, at;
	int st;
	const char *rb;
	size_t rl;

	if (settle(b, 5000) < 0 || decision_body(b, relay, k, &body, &path) < 0) {
		free(body);
		return -1;
	}
	uint64_t floor = bc_fleet_max_held(b->f);
	bc_proc p0, p1;
	bool have = sample(b, &p0);
	double c0 = client_cpu_s();
	int rc = bc_fleet_admin_post(b->f, path, body, b->s.admin_token, &t0, b->err, sizeof b->err);
	free(body);
	if (rc < 0)
		return rc;
	bc_fleet_track(b->f, floor, t0, lat);
	/* the answer first: a refusal means nothing will arrive */
	rc = bc_fleet_run(b->f, FANOUT_DEADLINE_MS, BC_UNTIL_ADMIN, b->err, sizeof b->err);
	if (rc < 0)
		return rc;
	if (!bc_fleet_admin_result(b->f, &st, &rb, &rl, &at)) {
		snprintf(fn->skipped, sizeof fn->skipped, "no answer to POST %s in %d s", path,
			 FANOUT_DEADLINE_MS / 1000);
		return 0;
	}
	if (st != 200) {
		fn->bad_status = st;
		snprintf(fn->bad_body, sizeof fn->bad_body, "%.*s", (int)(rl < 150 ? rl : 150), rb);
		if (st == 404 || st == 405 || st == 501)
			snprintf(fn->skipped, sizeof fn->skipped, "POST %s answered %d: %s", path, st,
				 fn->bad_body);
		bc_fleet_track(b->f, 0, 0, NULL);
		return 0;
	}
	if (k < MAX_DECISIONS)
		fn->answer_ms[k] = (double)(at - t0) / 1000.0;
	uint64_t left = FANOUT_DEADLINE_MS - (hf_mono_us() - t0) / 1000;
	rc = bc_fleet_run(b->f, left > FANOUT_DEADLINE_MS ? 0 : left, BC_UNTIL_TRACKED, b->err,
			  sizeof b->err);
	fn->got[k] = bc_fleet_tracked_done(b->f);
	bc_fleet_track(b->f, 0, 0, NULL);
	fn->client_cpu_ms[k] = (client_cpu_s() - c0) * 1000;
	fn->coord_cpu_ms[k] = have && sample(b, &p1) ? (p1.cpu_s - p0.cpu_s) * 1000 : -1;
	return rc < 0 ? rc : 1;
}

/* D decisions of one kind (after a warm-up relay when warm). */
static int fanout(bench *b, fan *fn, bool relay)
{
	unsigned D = b->o.decisions;
	fn->name = relay ? "relay" : "api";
	fn->lat = malloc((size_t)D * b->polling * sizeof *fn->lat);
	if (!fn->lat)
		return HF_ENOMEM;
	for (unsigned k = 0; k < D; k++) {
		uint32_t *lat = fn->lat + (size_t)k * b->polling;
		int rc = one_decision(b, fn, relay, k, lat);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			for (size_t i = 0; i < (size_t)(D - k) * b->polling; i++)
				lat[i] = UINT32_MAX;
			break;
		}
		fn->done_decisions++;
		fn->count += fn->got[k];
		pctl(lat, b->polling, &fn->p50_ms[k], &fn->p99_ms[k], &fn->max_ms[k]);
		printf("  %-5s decision %u: %u/%u nodes, POST answered in %.1f ms, p50 %.1f ms, "
		       "p99 %.1f ms, max %.1f ms; CPU coordinator %.0f ms, client %.0f ms\n", fn->name,
		       k + 1, fn->got[k], b->polling, fn->answer_ms[k], fn->p50_ms[k], fn->p99_ms[k],
		       fn->max_ms[k], fn->coord_cpu_ms[k], fn->client_cpu_ms[k]);
		fflush(stdout);
	}
	fn->expected = (uint64_t)D * b->polling;
	return 0;
}

static json_t *fan_json(const bench *b, const fan *fn)
{
	if (fn->skipped[0] && fn->done_decisions == 0)
		return json_pack("{s:s, s:i}", "skipped", fn->skipped, "status", fn->bad_status);
	double p50, p99, max;
	pctl(fn->lat, (size_t)fn->done_decisions * b->polling, &p50, &p99, &max);
	json_t *per = json_array();
	for (unsigned k = 0; k < fn->done_decisions; k++)
		json_array_append_new(per, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "nodes",
						     (int)fn->got[k], "answer_ms", fn->answer_ms[k],
						     "p50_ms", fn->p50_ms[k], "p99_ms", fn->p99_ms[k],
						     "max_ms", fn->max_ms[k], "coord_cpu_ms",
						     fn->coord_cpu_ms[k], "client_cpu_ms",
						     fn->client_cpu_ms[k]));
	json_t *j = json_pack("{s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:o}", "decisions",
			      (int)fn->done_decisions, "count", (json_int_t)fn->count, "expected",
			      (json_int_t)fn->expected, "missing", (json_int_t)(fn->expected - fn->count),
			      "p50_ms", p50, "p99_ms", p99, "max_ms", max, "per_decision", per);
	if (fn->skipped[0])
		json_object_set_new(j, "stopped", json_string(fn->skipped));
	return j;
}

/* A report-only phase: offered/answered rates, the coordinator's CPU per report. */
static json_t *report_phase(bench *b, bc_report_mode mode)
{
	bc_proc p0, p1;
	bc_fleet_stats s0, s1;
	if (settle(b, 5000) < 0)
		return NULL;
	bool have = sample(b, &p0);
	double c0 = client_cpu_s();
	bc_fleet_stats_get(b->f, &s0);
	bc_fleet_set_reports(b->f, mode, b->o.interval_s);
	uint64_t t0 = hf_mono_us();
	if (bc_fleet_run(b->f, (uint64_t)(b->o.seconds * 1000), BC_UNTIL_DEADLINE, b->err,
			 sizeof b->err) < 0)
		return NULL;
	double secs = (double)(hf_mono_us() - t0) / 1e6;
	bc_fleet_stats_get(b->f, &s1);
	have = have && sample(b, &p1);
	double c1 = client_cpu_s();
	bc_fleet_set_reports(b->f, BC_REPORTS_INTERVAL, b->o.interval_s);
	uint64_t ok = s1.reports_ok - s0.reports_ok;
	double ccpu = have ? p1.cpu_s - p0.cpu_s : -1;
	json_t *j = json_pack("{s:s, s:f, s:I, s:I, s:I, s:f, s:f, s:f}", "mode",
			      mode == BC_REPORTS_SATURATE ? "saturated" : "interval", "seconds", secs,
			      "answered", (json_int_t)ok, "refused",
			      (json_int_t)(s1.reports_other - s0.reports_other), "late",
			      (json_int_t)(s1.reports_late - s0.reports_late), "answered_per_s",
			      ok / secs, "client_cpu_s", c1 - c0, "client_cpu_share", (c1 - c0) / secs);
	if (mode == BC_REPORTS_INTERVAL)
		json_object_set_new(j, "offered_per_s", json_real(b->s.nodes / b->o.interval_s));
	if (have) {
		json_object_set_new(j, "coord_cpu_s", json_real(ccpu));
		json_object_set_new(j, "coord_cpu_share", json_real(ccpu / secs));
		json_object_set_new(j, "coord_cpu_per_report_us", json_real(ok ? ccpu / ok * 1e6 : 0));
	}
	printf("  reports %-9s %.0f/s answered (%llu refused, %llu late) over %.1f s; coordinator "
	       "%.2f cores, %.1f us CPU per report; client %.2f cores\n",
	       mode == BC_REPORTS_SATURATE ? "saturated" : "interval", ok / secs,
	       (unsigned long long)(s1.reports_other - s0.reports_other),
	       (unsigned long long)(s1.reports_late - s0.reports_late), secs,
	       have ? ccpu / secs : -1.0, have && ok ? ccpu / ok * 1e6 : -1.0, (c1 - c0) / secs);
	fflush(stdout);
	return j;
}

static void pin_self(bench *b, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, "hashflop-bench coord: cannot pin to CPU %d: %s\n", cpu,
			strerror(errno));
	(void)b;
}

/* Descriptors decide how many nodes can hold a poll at once (one each, on both sides). */
static void size_fleet(bench *b, uint64_t fd_limit)
{
	uint64_t avail = fd_limit > FD_RESERVE + b->o.report_conns + 16 ?
				 fd_limit - FD_RESERVE - b->o.report_conns - 2 : 16;
	b->polling = b->o.nodes < avail ? b->o.nodes : (unsigned)avail;
	if (b->o.addresses == 0) {
		unsigned total = b->polling + b->o.report_conns + 1;
		b->o.addresses = total / 25000 + 1;
		if (b->o.addresses < 2)
			b->o.addresses = 2;
	}
	if (b->polling < b->o.nodes)
		printf("  note: RLIMIT_NOFILE is %llu here (the hard limit), so %u of the %u nodes hold "
		       "a long poll (one descriptor each, on both sides); all %u report\n",
		       (unsigned long long)fd_limit, b->polling, b->o.nodes, b->o.nodes);
}

static int start(bench *b, uint64_t fd_limit)
{
	char bin[PATH_MAX];
	unsigned maxc = b->polling + b->o.report_conns + 16;
	if (maxc > fd_limit - 32)
		maxc = (unsigned)(fd_limit - 32);
	bc_setup_opts so = { .dir = b->o.dir, .keep = b->o.keep, .fleet_id = FLEET_ID,
			     .nodes = b->o.nodes, .max_connections = maxc < 1024 ? 1024 : maxc,
			     .threads = b->o.threads,
			     .report_interval_s = b->o.interval_s < 1 ? 1 :
						  (unsigned)lround(b->o.interval_s) };
	if (b->o.url) {
		if (bc_setup_load(&b->s, b->o.dir, b->o.nodes, b->err, sizeof b->err) < 0)
			return -1;
		b->coord = b->o.coord_pid;
		return 0;
	}
	if (bc_setup_prepare(&b->s, &so, b->err, sizeof b->err) < 0)
		return -1;
	printf("  %u nodes registered in %.2f s (%s)\n", b->o.nodes, b->s.register_s, b->s.dir);
	if (b->o.prepare)
		return 0;
	if (b->o.coord_bin)
		snprintf(bin, sizeof bin, "%s", b->o.coord_bin);
	else
		default_coord_bin(bin, sizeof bin);
	if (access(bin, X_OK) != 0) {
		snprintf(b->err, sizeof b->err, "no hashflop-coord at %s (--coord-bin PATH)", bin);
		return -1;
	}
	if (bc_setup_start(&b->s, bin, b->o.pin ? 0 : -1, 120000, b->err, sizeof b->err) < 0)
		return -1;
	b->coord = b->s.pid;
	printf("  hashflop-coord up in %.2f s on port %u\n", b->s.start_s, b->s.port);
	return 0;
}

static int server_addr(bench *b, struct sockaddr_in *a)
{
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &a->sin_addr);
	if (!b->o.url) {
		a->sin_port = htons(b->s.port);
		return 0;
	}
	char host[256];
	uint16_t port;
	const char *u = b->o.url;
	if (strncmp(u, "http://", 7) == 0)
		u += 7;
	char hp[300];
	snprintf(hp, sizeof hp, "%s", u);
	char *slash = strchr(hp, '/');
	if (slash)
		*slash = '\0';
	if (!hf_parse_hostport(hp, host, sizeof host, &port) ||
	    inet_pton(AF_INET, host, &a->sin_addr) != 1) {
		snprintf(b->err, sizeof b->err, "--url %s: expected http://IPv4:PORT", b->o.url);
		return -1;
	}
	a->sin_port = htons(port);
	return 0;
}

static int connect_fleet(bench *b, json_t *out)
{
	bc_fleet_opts fo = { .nodes = b->o.nodes, .polling = b->polling,
			     .addresses = b->o.addresses, .report_conns = b->o.report_conns,
			     .wait_s = b->o.wait_s, .max_connecting = b->o.max_connecting,
			     .fleet_id = FLEET_ID, .version = HF_VERSION, .ids = b->s.ids,
			     .tokens = b->s.tokens };
	if (server_addr(b, &fo.server) < 0 || bc_fleet_new(&fo, &b->f, b->err, sizeof b->err) < 0)
		return -1;
	bc_proc p0 = { 0 }, p1 = { 0 };
	bool have = sample(b, &p0);
	double c0 = client_cpu_s();
	uint64_t t0 = hf_mono_us();
	bc_fleet_connect_all(b->f);
	uint64_t limit = 60000 + (uint64_t)b->polling / 2;
	int rc = bc_fleet_run(b->f, limit, BC_UNTIL_POLLS_SENT, b->err, sizeof b->err);
	double secs = (double)(hf_mono_us() - t0) / 1e6;
	if (rc < 0)
		return rc;
	bc_fleet_stats st;
	bc_fleet_stats_get(b->f, &st);
	if (rc == 0) {
		snprintf(b->err, sizeof b->err, "only %u of %u nodes connected and polling after %.0f s "
			 "(%llu connect errors; last status %d: %s)", st.polls_outstanding, b->polling,
			 secs, (unsigned long long)st.connect_errors, st.last_bad_status,
			 st.last_bad_body);
		return -1;
	}
	bc_fleet_set_reports(b->f, BC_REPORTS_INTERVAL, b->o.interval_s);
	if (settle(b, 10000) < 0)
		return -1;
	have = have && sample(b, &p1);
	printf("  %u nodes polling after %.2f s over %u source addresses; coordinator RSS %.1f -> "
	       "%.1f MiB (%.2f KiB per polling node); client %.2f s CPU\n", b->polling, secs,
	       b->o.addresses, p0.rss_kib / 1024.0, p1.rss_kib / 1024.0,
	       b->polling ? ((double)p1.rss_kib - (double)p0.rss_kib) / b->polling : 0.0,
	       client_cpu_s() - c0);
	fflush(stdout);
	json_object_set_new(out, "connect_s", json_real(secs));
	if (have)
		json_object_set_new(out, "rss", json_pack("{s:I, s:I, s:f, s:f}", "registered_kib",
				(json_int_t)p0.rss_kib, "polling_kib", (json_int_t)p1.rss_kib,
				"per_polling_node_kib",
				((double)p1.rss_kib - (double)p0.rss_kib) / b->polling,
				"per_registered_node_kib", (double)p1.rss_kib / b->o.nodes));
	return 0;
}

static json_t *errors_json(const bench *b)
{
	bc_fleet_stats st;
	bc_fleet_stats_get(b->f, &st);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:s}", "polls_sent",
			 (json_int_t)st.polls_sent, "polls_200", (json_int_t)st.polls_200, "polls_204",
			 (json_int_t)st.polls_204, "polls_other", (json_int_t)st.polls_other,
			 "poll_reconnects", (json_int_t)st.poll_reconnects, "report_resends",
			 (json_int_t)st.report_resends, "reports_refused",
			 (json_int_t)st.reports_other, "connect_errors", (json_int_t)st.connect_errors,
			 "io_errors", (json_int_t)st.io_errors, "parse_errors",
			 (json_int_t)st.parse_errors, "last_bad_status", st.last_bad_status,
			 "last_bad_body", st.last_bad_body);
}

/* Everything after the fleet is up; fills out. 0, or -1 with b->err. */
static int measure(bench *b, json_t *out, fan *relay, fan *api)
{
	double c0 = client_cpu_s();
	printf("  warm-up relay\n");
	fan warm = { 0 };
	uint32_t *wl = malloc((size_t)b->polling * sizeof *wl);
	int rc = wl ? one_decision(b, &warm, true, 0, wl) : HF_ENOMEM;
	free(wl);
	if (rc <= 0) {
		snprintf(b->err, sizeof b->err, "the warm-up relay failed: %s (status %d: %s)",
			 warm.skipped[0] ? warm.skipped : b->err, warm.bad_status, warm.bad_body);
		return -1;
	}
	if (warm.got[0] < b->polling)
		printf("  note: %u of %u nodes got the warm-up relay\n", warm.got[0], b->polling);
	if (b->o.no_relay)
		snprintf(relay->skipped, sizeof relay->skipped, "not measured (--kinds)");
	if (b->o.no_api)
		snprintf(api->skipped, sizeof api->skipped, "not measured (--kinds)");
	if ((!b->o.no_relay && fanout(b, relay, true) < 0) ||
	    (!b->o.no_api && fanout(b, api, false) < 0))
		return -1;
	if (api->skipped[0])
		printf("  api decisions: %s\n", api->skipped);
	json_object_set_new(out, "fanout", json_pack("{s:o, s:o}", "relay", fan_json(b, relay), "api",
						     fan_json(b, api)));
	json_t *ri = report_phase(b, BC_REPORTS_INTERVAL);
	json_t *rs = ri ? report_phase(b, BC_REPORTS_SATURATE) : NULL;
	if (!ri || !rs) {
		json_decref(ri);
		return -1;
	}
	json_object_set_new(out, "reports", json_pack("{s:o, s:o}", "interval", ri, "saturated", rs));
	bc_proc p;
	if (sample(b, &p))
		json_object_set_new(out, "coord_end", json_pack("{s:I, s:f, s:i}", "rss_kib",
				    (json_int_t)p.rss_kib, "cpu_s", p.cpu_s, "threads",
				    (int)p.threads));
	json_object_set_new(out, "client_cpu_s", json_real(client_cpu_s() - c0));
	json_object_set_new(out, "errors", errors_json(b));
	return 0;
}

static json_t *config_json(const bench *b, uint64_t fd_limit)
{
	return json_pack("{s:i, s:i, s:i, s:i, s:f, s:i, s:f, s:i, s:i, s:b, s:I, s:i, s:s}", "nodes",
			 (int)b->o.nodes, "polling_nodes", (int)b->polling, "addresses",
			 (int)b->o.addresses, "report_conns", (int)b->o.report_conns,
			 "report_interval_s", b->o.interval_s, "decisions", (int)b->o.decisions,
			 "seconds", b->o.seconds, "wait_s", (int)b->o.wait_s, "coord_threads",
			 (int)b->o.threads, "pin", b->o.pin, "fd_limit", (json_int_t)fd_limit, "cpus",
			 (int)sysconf(_SC_NPROCESSORS_ONLN), "version", HF_VERSION);
}

/* Whether the run is complete: every polling node got every envelope, nothing refused. */
static bool complete(const bench *b, const fan *relay, const fan *api)
{
	bc_fleet_stats st;
	bc_fleet_stats_get(b->f, &st);
	bool ok = st.polls_other == 0 && st.reports_other == 0 && st.parse_errors == 0;
	if (!b->o.no_relay)
		ok = ok && relay->expected > 0 && relay->count == relay->expected;
	if (!b->o.no_api)
		ok = ok && api->expected > 0 && api->count == api->expected;
	return ok;
}

static int run(bench *b, json_t *out)
{
	uint64_t before = 0, after = 0;
	if (hf_httpd_raise_fd_limit(&before, &after) < 0)
		after = 1024;
	size_fleet(b, after);
	int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (b->o.pin && cpus < 2) {
		printf("  note: --pin needs 2 CPUs; not pinning\n");
		b->o.pin = false;
	}
	json_object_set_new(out, "config", config_json(b, after));
	if (start(b, after) < 0)
		return -1;
	if (b->o.prepare) {
		printf("  prepared %s: start `hashflop-coord --config %s`, then run with --url\n",
		       b->s.dir, b->s.config);
		return 0;
	}
	if (b->o.pin)
		pin_self(b, 1);
	json_object_set_new(out, "setup", json_pack("{s:f, s:f}", "register_s", b->s.register_s,
						    "coord_start_s", b->s.start_s));
	if (connect_fleet(b, out) < 0)
		return -1;
	fan *relay = calloc(1, sizeof *relay), *api = calloc(1, sizeof *api);
	int rc = relay && api ? measure(b, out, relay, api) : -1;
	if (rc == 0) {
		bool ok = complete(b, relay, api);
		json_t *fr = json_object_get(json_object_get(out, "fanout"), "relay");
		double p99 = json_real_value(json_object_get(fr, "p99_ms"));
		json_object_set_new(out, "bar", json_pack("{s:i, s:f, s:b, s:b}", "nodes", 10000,
				    "p99_ms", 1000.0, "met", b->polling >= 10000 && p99 < 1000.0,
				    "complete", ok));
		if (!ok) {
			snprintf(b->err, sizeof b->err, "incomplete: relay %llu of %llu envelopes, api %llu "
				 "of %llu (see \"errors\")", (unsigned long long)relay->count,
				 (unsigned long long)relay->expected, (unsigned long long)api->count,
				 (unsigned long long)api->expected);
			rc = 1;
		}
	}
	if (relay)
		free(relay->lat);
	if (api)
		free(api->lat);
	free(relay);
	free(api);
	return rc;
}

int hf_bench_coord_main(int argc, char **argv)
{
	bench b = { .coord = -1 };
	if (parse_opts(argc, argv, &b.o) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	json_t *out = json_pack("{s:s}", "bench", "coord");
	printf("hashflop-bench coord: %u nodes\n", b.o.nodes);
	int rc = run(&b, out);
	bc_fleet_free(b.f);
	b.f = NULL;
	if (!b.o.url && !b.o.prepare && b.s.pid > 0 && bc_setup_stop(&b.s, 20000) != 0 && rc == 0) {
		snprintf(b.err, sizeof b.err, "hashflop-coord did not exit cleanly (see %s)", b.s.log);
		rc = 1;
	}
	if (rc != 0) {
		fprintf(stderr, "hashflop-bench coord: %s%s%s\n", b.err, b.s.dir[0] ? "; kept " : "",
			b.s.dir);
		json_object_set_new(out, "error", json_string(b.err));
	}
	if (b.o.json && json_dump_file(out, b.o.json, JSON_INDENT(2)) != 0) {
		fprintf(stderr, "hashflop-bench coord: cannot write %s\n", b.o.json);
		rc = rc ? rc : 1;
	}
	json_decref(out);
	bc_setup_free(&b.s, rc == 0);
	return rc < 0 ? 1 : rc;
}
