/* bench_hash: `hashflop-bench hash`: SHA-256d scanners side by side in one run (MH/s wall-clock,
 * MH/s per CPU-second of thread time, estimated cycles per nonce, ratio to the reference and to
 * the per-core targets of the kernels issue), and `--scan` to check a real header.
 *
 * Every implementation warms up for --warmup seconds, then runs a --seconds window whose
 * energy is the difference of two readings of the run's power source (bench_energy.h): MH/J
 * next to MH/s.
 *
 * Threading: the benchmark starts N worker threads per implementation, one after another;
 * each worker owns its job copy and counters and measures its own CPU time
 * (CLOCK_THREAD_CPUTIME_ID), so the per-CPU-second figure holds on a shared machine.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_energy.h"
#include "hf_bench.h"
#include "hf_log.h"
#include "hf_sha256d.h"
#include "hf_sha256d_cl.h"
#include "hf_util.h"

#define MAX_THREADS 256

/* Per-core targets (MH/s per CPU-second) from the kernels issue, measured there on an
 * AVX-512 Xeon at 2.6-2.9 GHz against cpuminer-opt and pooler's cpuminer. */
static double target_for(const char *impl)
{
	if (strcmp(impl, "avx512") == 0)
		return 28.0;
	if (strcmp(impl, "shani") == 0)
		return 14.0;
	if (strcmp(impl, "avx2") == 0)
		return 10.5;
	return 0;
}

typedef struct opts {
	const char *impl;       /* NULL: all supported */
	unsigned threads;
	double seconds;
	hf_bench_common c;
	const char *device;     /* OpenCL selector, NULL: no OpenCL run */
	const char *scan_hex;
	uint64_t start, count;
	const char *target_hex;
} opts;

typedef struct measurement {
	const char *name;
	unsigned lanes;
	bool supported;
	uint64_t nonces;
	double wall_s, cpu_s;
	char note[160];
	hf_bench_window win;
} measurement;

static double now_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The CPU clock from /proc/cpuinfo (MHz), 0 when it cannot be read. */
static double cpu_mhz(char *model, size_t modelsz)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	double mhz = 0;
	if (modelsz)
		model[0] = '\0';
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		if (mhz == 0 && strncmp(line, "cpu MHz", 7) == 0)
			mhz = strtod(colon + 1, NULL);
		if (!model[0] && strncmp(line, "model name", 10) == 0) {
			hf_strlcpy(model, colon + 2, modelsz);
			model[strcspn(model, "\n")] = '\0';
		}
	}
	fclose(f);
	return mhz;
}

/* A job like mining gives: a random-looking header and the difficulty-1 target, so hits are
 * rare (about one in 2^32) and the scan runs its early-reject path. */
static void bench_job(hf_sha256d_job *job, unsigned seed)
{
	uint8_t header[80], target[32];
	for (int i = 0; i < 80; i++)
		header[i] = (uint8_t)(i * 37 + seed * 101 + 11);
	hf_sha256d_target_from_bits(0x1d00ffff, target);
	hf_sha256d_job_from_header(job, header, target);
}

typedef struct worker {
	pthread_t tid;
	const hf_sha256d_impl *impl;
	unsigned index;
	hf_bench_meter *meter;
	double warm_end;        /* CLOCK_MONOTONIC seconds: the window starts */
	double deadline;        /* and ends */
	uint64_t nonces;        /* in the window */
	double cpu_s;
	int rc;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	hf_sha256d_job job;
	uint32_t hits[16];
	hf_sha256d_result res;
	uint64_t chunk = w->impl->lanes == 1 ? (1u << 12) : (1u << 16);
	uint32_t start = w->index << 26;

	bench_job(&job, w->index);
	double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), now;
	uint64_t warm_nonces = 0;
	bool warm = w->warm_end > now_s(CLOCK_MONOTONIC);
	do {
		w->rc = w->impl->scan(&job, start, chunk, hits, HF_ARRAY_SIZE(hits), &res);
		if (w->rc)
			break;
		w->nonces += res.scanned;
		hf_bench_phase_add(w->meter, (double)res.scanned);
		start += (uint32_t)res.scanned;
		now = now_s(CLOCK_MONOTONIC);
		if (warm && now >= w->warm_end) { /* the window starts: what came before is out */
			warm = false;
			warm_nonces = w->nonces;
			c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
		}
	} while (now < w->deadline);
	w->nonces -= warm_nonces;
	w->cpu_s = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

static const hf_bench_phase hash_phase = { .section = "hash", .scale = 1e-6,
					    .rate_unit = "MH/s", .eff_unit = "MH/J" };

static int run_cpu(const hf_sha256d_impl *impl, const opts *o, hf_bench_meter *meter,
		   measurement *m)
{
	worker w[MAX_THREADS];
	unsigned started = 0;

	memset(m, 0, sizeof(*m));
	m->name = impl->name;
	m->lanes = impl->lanes;
	m->supported = impl->supported();
	if (!m->supported) {
		snprintf(m->note, sizeof(m->note), "not run: this CPU lacks the features it needs");
		return 0;
	}
	hf_bench_phase ph = hash_phase;
	ph.impl = impl->name;
	ph.reference = strcmp(impl->name, "ref") == 0;
	hf_bench_phase_warmup(meter, &ph);
	double t0 = now_s(CLOCK_MONOTONIC), warm_end = t0 + o->c.warmup;
	for (unsigned i = 0; i < o->threads; i++) {
		w[i] = (worker){ .impl = impl, .index = i, .meter = meter, .warm_end = warm_end,
				 .deadline = warm_end + o->seconds };
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			break;
		started++;
	}
	double left = warm_end - now_s(CLOCK_MONOTONIC);
	if (left > 0)
		hf_sleep_ms((uint64_t)(left * 1e3));
	hf_bench_phase_measure(meter);
	t0 = now_s(CLOCK_MONOTONIC);
	int rc = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		m->nonces += w[i].nonces;
		m->cpu_s += w[i].cpu_s;
		if (w[i].rc)
			rc = w[i].rc;
	}
	m->wall_s = now_s(CLOCK_MONOTONIC) - t0;
	if (started < o->threads || rc) {
		hf_bench_phase_abort(meter);
		return started < o->threads ? hf_fail(NULL, HF_ENOMEM, "thread") : rc;
	}
	hf_bench_phase_end(meter, (double)m->nonces, &m->win);
	return 0;
}

static int run_cl(const opts *o, hf_bench_meter *meter, measurement *m)
{
	hf_sha256d_cl *s = NULL;
	hf_sha256d_cl_opts co = { .device = o->device, .cache_dir = getenv("HASHFLOP_CL_CACHE") };
	hf_errbuf eb;
	hf_sha256d_job job;
	uint32_t hits[16];
	hf_sha256d_result res;

	memset(m, 0, sizeof(*m));
	m->name = "opencl";
	m->lanes = 1;
	int rc = hf_sha256d_cl_new(&co, &s, &eb);
	if (rc) {
		snprintf(m->note, sizeof(m->note), "not run: %s", eb.msg);
		hf_log_warn("opencl: %s", eb.msg);
		return 0;
	}
	m->supported = true;
	snprintf(m->note, sizeof(m->note), "%s%s", hf_sha256d_cl_device(s),
		 hf_sha256d_cl_cache_hit(s) ? " (cached program)" : "");
	bench_job(&job, 0);
	hf_bench_phase ph = hash_phase;
	ph.impl = "opencl";
	hf_bench_phase_warmup(meter, &ph);
	/* warm-up launches (PoCL compiles per local size at the first launch), at least one */
	uint32_t start = 0;
	double warm_end = now_s(CLOCK_MONOTONIC) + o->c.warmup;
	do {
		rc = hf_sha256d_cl_scan(s, &job, start, start ? 1u << 22 : 1u << 16, hits,
					HF_ARRAY_SIZE(hits), &res, &eb);
		hf_bench_phase_add(meter, (double)res.scanned);
		start += (uint32_t)res.scanned;
	} while (rc == 0 && now_s(CLOCK_MONOTONIC) < warm_end);
	hf_bench_phase_measure(meter);
	double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	while (rc == 0 && now_s(CLOCK_MONOTONIC) < t0 + o->seconds) {
		rc = hf_sha256d_cl_scan(s, &job, start, 1u << 22, hits, HF_ARRAY_SIZE(hits), &res,
					&eb);
		m->nonces += res.scanned;
		hf_bench_phase_add(meter, (double)res.scanned);
		start += (uint32_t)res.scanned;
	}
	m->wall_s = now_s(CLOCK_MONOTONIC) - t0;
	m->cpu_s = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if (rc) {
		hf_log_err("opencl: %s: %s", hf_strerror(rc), eb.msg);
		hf_bench_phase_abort(meter);
	} else {
		hf_bench_phase_end(meter, (double)m->nonces, &m->win);
	}
	hf_sha256d_cl_free(s);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench hash [options]\n"
		"       hashflop-bench hash --scan HEADER_HEX [--start N] [--count C] [--target HEX]\n"
		"\n"
		"Benchmarks every SHA-256d scanner this CPU supports side by side, the portable\n"
		"reference included, and prints per implementation: MH/s wall-clock over all threads,\n"
		"MH/s per CPU-second (thread CPU time: holds on a shared machine), estimated cycles\n"
		"per nonce at the clock /proc/cpuinfo reports, the ratio to the reference, and the\n"
		"per-core target of the kernels issue with how far the figure is from it.\n"
		"\n"
		"Options:\n"
		"  --impl NAME       only NAME (and the reference, for the ratio): avx512, shani,\n"
		"                    avx2, ref, or opencl (same as --device auto)\n"
		"  --threads N       worker threads per implementation (default 1)\n"
		"  --seconds S       measured seconds per implementation (default 2), after\n"
		"                    --warmup S (default 0.5) that is not counted\n"
		"  --device SEL      also run the OpenCL kernel on device SEL (hf_cl selector:\n"
		"                    auto, P:D, pocl, nvidia, amd, intel or part of a name);\n"
		"                    with --scan, scan on that device instead of the CPU\n"
		"  --json            one JSON object on stdout instead of the table\n"
		"  --json FILE       also write the run document (windows, time series) to FILE\n"
		"  --scan HEX        scan this 80-byte header (160 hex digits, as serialized) and\n"
		"                    print every nonce whose SHA-256d meets the target, with its hash\n"
		"  --start N         first nonce of --scan (default 0)\n"
		"  --count C         nonces to --scan (default 4294967296, the whole range)\n"
		"  --target HEX      --scan target, 64 hex digits as explorers print it (default:\n"
		"                    the header's own nBits)\n"
		"  -h, --help        show this help and exit\n"
		"%s\n"
		"Environment: HASHFLOP_SHA256D_IMPL forces the implementation --scan uses (default:\n"
		"the best this CPU supports); HASHFLOP_CL_CACHE is the OpenCL program cache dir.\n",
		hf_bench_common_help);
}

static int parse(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
		{ "impl", required_argument, NULL, 'i' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "json", optional_argument, NULL, 'j' },
		{ "scan", required_argument, NULL, 'S' },
		{ "start", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'c' },
		{ "target", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		HF_BENCH_COMMON_LONGOPTS,
		{ 0 },
	};
	uint64_t v;
	int ch;
	bool bad = false;

	*o = (opts){ .threads = 1, .seconds = 2, .count = HF_SHA256D_MAX_COUNT };
	hf_bench_common_init(&o->c);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (hf_bench_common_option("hash", ch, optarg, &o->c, &bad)) {
			if (bad)
				return HF_EINVAL;
			continue;
		}
		switch (ch) {
		case 'i': o->impl = optarg; break;
		case 't':
			if (!hf_parse_u64(optarg, 1, MAX_THREADS, &v))
				return hf_fail(NULL, HF_EINVAL, "--threads");
			o->threads = (unsigned)v;
			break;
		case 's': {
			char *end;
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 3600)) {
				fprintf(stderr, "hashflop-bench hash: --seconds wants 0 < S <= 3600\n");
				return HF_EINVAL;
			}
			break;
		}
		case 'd': o->device = optarg; break;
		case 'j': hf_bench_json_option(argc, argv, optarg, &o->c); break;
		case 'S': o->scan_hex = optarg; break;
		case 'a':
			if (!hf_parse_u64(optarg, 0, UINT32_MAX, &o->start)) {
				fprintf(stderr, "hashflop-bench hash: --start wants 0..4294967295\n");
				return HF_EINVAL;
			}
			break;
		case 'c':
			if (!hf_parse_u64(optarg, 0, HF_SHA256D_MAX_COUNT, &o->count)) {
				fprintf(stderr, "hashflop-bench hash: --count wants 0..4294967296\n");
				return HF_EINVAL;
			}
			break;
		case 'T': o->target_hex = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: return HF_EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-bench hash: unexpected argument \"%s\"\n", argv[optind]);
		return HF_EINVAL;
	}
	if (o->c.warmup < 0)
		o->c.warmup = 0.5;
	if (o->impl && strcmp(o->impl, "opencl") == 0) {
		if (!o->device)
			o->device = "auto";
	} else if (o->impl && !hf_sha256d_impl_find(o->impl)) {
		fprintf(stderr, "hashflop-bench hash: unknown --impl \"%s\" (see --help)\n", o->impl);
		return HF_EINVAL;
	}
	return 0;
}

/* ---- --scan ---- */

static int cmd_scan(const opts *o)
{
	uint8_t header[80], target[32], hash[32];
	char hex[65];
	hf_errbuf eb;
	const hf_sha256d_impl *impl;

	if (!hf_hex_decode(o->scan_hex, strlen(o->scan_hex), header, sizeof(header))) {
		fprintf(stderr, "hashflop-bench hash: --scan wants 160 hex digits (an 80-byte header)\n");
		return 2;
	}
	if (o->target_hex) {
		uint8_t be[32];
		if (!hf_hex_decode(o->target_hex, strlen(o->target_hex), be, sizeof(be))) {
			fprintf(stderr, "hashflop-bench hash: --target wants 64 hex digits\n");
			return 2;
		}
		for (int i = 0; i < 32; i++)
			target[i] = be[31 - i];
	} else {
		uint32_t bits = (uint32_t)header[72] | (uint32_t)header[73] << 8 |
				(uint32_t)header[74] << 16 | (uint32_t)header[75] << 24;
		if (hf_sha256d_target_from_bits(bits, target) != 0) {
			fprintf(stderr, "hashflop-bench hash: the header's nBits %08x is not a valid "
					"target; give --target\n", bits);
			return 2;
		}
	}
	hf_sha256d_cl *cl = NULL;
	const char *impl_name;
	int rc;
	if (o->device) {
		hf_sha256d_cl_opts co = { .device = o->device,
					  .cache_dir = getenv("HASHFLOP_CL_CACHE") };
		rc = hf_sha256d_cl_new(&co, &cl, &eb);
		if (rc) {
			hf_log_err("opencl: %s", eb.msg);
			return 1;
		}
		impl_name = "opencl";
		hf_log_info("sha256d on OpenCL device %s", hf_sha256d_cl_device(cl));
	} else {
		rc = o->impl ? hf_sha256d_choose(o->impl, &impl, &eb)
			     : hf_sha256d_default(&impl, &eb);
		if (rc) {
			hf_log_err("%s", eb.msg);
			return 1;
		}
		impl_name = impl->name;
		hf_log_info("sha256d implementation: %s (%s)", impl->name, impl->summary);
	}

	hf_sha256d_job job;
	hf_sha256d_job_from_header(&job, header, target);
	uint8_t tbe[32];
	for (int i = 0; i < 32; i++)
		tbe[i] = target[31 - i];
	hf_hex_encode(tbe, 32, hex);
	printf("scanning %" PRIu64 " nonces from %" PRIu64 " with %s, target %s\n", o->count,
	       o->start, impl_name, hex);

	uint32_t hits[256];
	hf_sha256d_result res;
	uint32_t next = (uint32_t)o->start;
	uint64_t left = o->count, found = 0;
	double t0 = now_s(CLOCK_MONOTONIC);
	while (left > 0) {
		uint64_t chunk = left < (1u << 24) ? left : (1u << 24);
		if (cl)
			rc = hf_sha256d_cl_scan(cl, &job, next, chunk, hits, HF_ARRAY_SIZE(hits),
						&res, &eb);
		else
			rc = impl->scan(&job, next, chunk, hits, HF_ARRAY_SIZE(hits), &res);
		if (rc) {
			hf_log_err("scan: %s%s%s", hf_strerror(rc), cl ? ": " : "", cl ? eb.msg : "");
			hf_sha256d_cl_free(cl);
			return 1;
		}
		for (size_t i = 0; i < res.n_hits; i++) {
			uint8_t be[32];
			hf_sha256d_job_hash(&job, hits[i], hash);
			for (int k = 0; k < 32; k++)
				be[k] = hash[31 - k];
			hf_hex_encode(be, 32, hex);
			printf("hit nonce %u (0x%08x) hash %s\n", hits[i], hits[i], hex);
		}
		found += res.n_hits;
		next += (uint32_t)res.scanned;
		left -= res.scanned;
	}
	double dt = now_s(CLOCK_MONOTONIC) - t0;
	printf("%" PRIu64 " hit(s) in %" PRIu64 " nonces, %.3f s, %.2f MH/s\n", found, o->count, dt,
	       dt > 0 ? (double)o->count / dt / 1e6 : 0.0);
	hf_sha256d_cl_free(cl);
	return 0;
}

/* ---- the benchmark ---- */

static double mhs(uint64_t n, double s) { return s > 0 ? (double)n / s / 1e6 : 0; }

static void print_table(const measurement *ms, size_t n, const opts *o, double mhz,
			const char *model, const char *chosen, const hf_bench_meter *meter)
{
	double ref_cpu = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ms[i].name, "ref") == 0 && ms[i].nonces)
			ref_cpu = mhs(ms[i].nonces, ms[i].cpu_s);
	printf("SHA-256d scan: %u thread(s), %g s per implementation after %g s of warm-up\n",
	       o->threads, o->seconds, o->c.warmup);
	printf("CPU: %s, %.0f MHz per /proc/cpuinfo; dispatch picks: %s\n", model[0] ? model : "?",
	       mhz, chosen);
	printf("power: %s\n", hf_bench_meter_label(meter));
	printf("%-7s %5s %10s %11s %8s %8s %8s %8s %8s %8s\n", "impl", "lanes", "MH/s wall",
	       "MH/s/CPU-s", "cyc/nonce", "vs ref", "target", "of tgt", "W", "MH/J");
	for (size_t i = 0; i < n; i++) {
		const measurement *m = &ms[i];
		if (!m->nonces) {
			printf("%-7s %5u  %s\n", m->name, m->lanes, m->note);
			continue;
		}
		double per_cpu = mhs(m->nonces, m->cpu_s), tgt = target_for(m->name);
		char cyc[16] = "-", ratio[16] = "-", tg[16] = "-", of[16] = "-";
		if (mhz > 0 && per_cpu > 0)
			snprintf(cyc, sizeof(cyc), "%.0f", mhz / per_cpu);
		if (ref_cpu > 0)
			snprintf(ratio, sizeof(ratio), "%.2fx", per_cpu / ref_cpu);
		if (tgt > 0) {
			snprintf(tg, sizeof(tg), "%.1f", tgt);
			snprintf(of, sizeof(of), "%.0f%%", 100 * per_cpu / tgt);
		}
		char eff[32];
		printf("%-7s %5u %10.2f %11.2f %8s %8s %8s %8s %8.1f %8s%s%s\n", m->name, m->lanes,
		       mhs(m->nonces, m->wall_s), per_cpu, cyc, ratio, tg, of, m->win.watts,
		       hf_bench_fmt_eff(&m->win, eff, sizeof eff), m->note[0] ? "  " : "", m->note);
	}
	printf("MH/s/CPU-s = nonces / thread CPU seconds (per core); target = the kernels issue's\n"
	       "per-core goal, measured there on an AVX-512 Xeon at 2.6-2.9 GHz; W and MH/J from\n"
	       "the same window (power: %s%s).\n", hf_bench_meter_label(meter),
	       hf_bench_meter_estimated(meter) ? ": the watts are a model, not a measurement" : "");
}

/* The section (the legacy --json document, with the power source and each result's window). */
static void fill_json(json_t *root, const measurement *ms, size_t n, const opts *o, double mhz,
		      const char *model, const char *chosen, const hf_bench_meter *meter)
{
	json_t *arr = json_array();
	double ref_cpu = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ms[i].name, "ref") == 0 && ms[i].nonces)
			ref_cpu = mhs(ms[i].nonces, ms[i].cpu_s);
	json_object_set_new(root, "bench", json_string("sha256d"));
	json_object_set_new(root, "threads", json_integer(o->threads));
	json_object_set_new(root, "seconds", json_real(o->seconds));
	json_object_set_new(root, "warmup_s", json_real(o->c.warmup));
	json_object_set_new(root, "power", hf_bench_meter_power_json(meter));
	json_object_set_new(root, "cpu_model", json_string(model));
	json_object_set_new(root, "cpu_mhz", mhz > 0 ? json_real(mhz) : json_null());
	json_object_set_new(root, "dispatch", json_string(chosen));
	for (size_t i = 0; i < n; i++) {
		const measurement *m = &ms[i];
		json_t *r = json_object();
		double per_cpu = mhs(m->nonces, m->cpu_s), tgt = target_for(m->name);
		json_object_set_new(r, "impl", json_string(m->name));
		json_object_set_new(r, "lanes", json_integer(m->lanes));
		json_object_set_new(r, "ran", json_boolean(m->nonces > 0));
		json_object_set_new(r, "note", json_string(m->note));
		json_object_set_new(r, "nonces", json_integer((json_int_t)m->nonces));
		json_object_set_new(r, "wall_s", json_real(m->wall_s));
		json_object_set_new(r, "cpu_s", json_real(m->cpu_s));
		json_object_set_new(r, "mhs_wall", json_real(mhs(m->nonces, m->wall_s)));
		json_object_set_new(r, "mhs_per_cpu_s", json_real(per_cpu));
		json_object_set_new(r, "cycles_per_nonce",
				    mhz > 0 && per_cpu > 0 ? json_real(mhz / per_cpu) : json_null());
		json_object_set_new(r, "ratio_vs_ref",
				    ref_cpu > 0 && per_cpu > 0 ? json_real(per_cpu / ref_cpu)
							       : json_null());
		json_object_set_new(r, "target_mhs_per_cpu_s", tgt > 0 ? json_real(tgt) : json_null());
		json_object_set_new(r, "energy", hf_bench_window_json(meter, &m->win));
		json_object_set_new(r, "mh_per_j", m->win.valid ? json_real(m->win.per_j)
								: json_null());
		json_array_append_new(arr, r);
	}
	json_object_set_new(root, "results", arr);
}

static int hash_body(hf_bench_meter *meter, void *ctx, json_t *section)
{
	const opts *o = ctx;
	measurement ms[16];
	size_t n = 0;
	char model[128];
	hf_errbuf eb;
	const hf_sha256d_impl *chosen = NULL;

	if (hf_sha256d_default(&chosen, &eb) != 0) {
		hf_log_err("%s", eb.msg);
		return 1;
	}
	hf_log_info("sha256d dispatch picks %s (%s)", chosen->name, chosen->summary);
	double mhz = cpu_mhz(model, sizeof(model));
	bool cl_only = o->impl && strcmp(o->impl, "opencl") == 0;
	for (size_t i = 0; i < hf_sha256d_impl_count() && n < HF_ARRAY_SIZE(ms) - 1; i++) {
		const hf_sha256d_impl *impl = hf_sha256d_impl_at(i);
		bool wanted = !o->impl || strcmp(impl->name, o->impl) == 0 ||
			      strcmp(impl->name, "ref") == 0;
		if (!wanted || (cl_only && strcmp(impl->name, "ref") != 0))
			continue;
		int rc = run_cpu(impl, o, meter, &ms[n++]);
		if (rc) {
			hf_log_err("%s: %s", impl->name, hf_strerror(rc));
			return 1;
		}
	}
	if (o->device && run_cl(o, meter, &ms[n++]) != 0)
		return 1;
	fill_json(section, ms, n, o, mhz, model, chosen->name, meter);
	if (!o->c.json_stdout)
		print_table(ms, n, o, mhz, model, chosen->name, meter);
	return 0;
}

int hf_bench_hash_run(int argc, char **argv, hf_bench_meter *shared,
		      const hf_bench_common *shared_c, json_t *sections)
{
	opts o;

	hf_log_init("hashflop-bench", HF_LOG_INFO);
	if (parse(argc, argv, &o) != 0)
		return 2;
	if (o.scan_hex)
		return cmd_scan(&o);
	if (shared) {
		o.c.nlimits = shared_c->nlimits;
		memcpy(o.c.limits, shared_c->limits, sizeof o.c.limits);
		return hf_bench_sweep("hash", shared, &o.c, "hash", hash_body, &o, sections);
	}
	char pci[32] = "";
	if (o.device && (o.c.power_kind == HF_POWER_AUTO || o.c.power_kind == HF_POWER_NVML))
		hf_bench_cl_pci_bus_id(o.device, pci, sizeof pci);
	hf_bench_meter *meter = hf_bench_meter_open("hash", &o.c, pci,
						    o.c.json_stdout ? stderr : stdout);
	if (!meter)
		return o.c.nlimits ? 2 : 1;
	json_t *secs = json_object();
	int rc = hf_bench_sweep("hash", meter, &o.c, "hash", hash_body, &o, secs);
	if (o.c.json_stdout) {
		char *s = json_dumps(json_object_get(secs, "hash"), JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	}
	json_t *doc = hf_bench_meter_document(meter, "hash", secs);
	if (!rc)
		rc = hf_bench_write_document("hash", &o.c, doc);
	json_decref(doc);
	hf_bench_meter_free(meter);
	return rc;
}

int hf_bench_hash_main(int argc, char **argv)
{
	return hf_bench_hash_run(argc, argv, NULL, NULL, NULL);
}
