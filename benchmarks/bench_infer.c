/* bench_infer: `hashflop-bench infer`: a model's executor throughput and latency per batch size,
 * side by side with PyTorch on the CPU with the same thread count, where the time goes
 * (GEMM share, launches, launch overhead), then the server sections (bench_infer_server.c).
 *
 * Measured in one run, per batch size: our executor (fused lowering, and the one-kernel-per-op
 * lowering for comparison) back to back on random inputs for --seconds: samples/s, p50/p99 of
 * the per-run latency (host: input write, every kernel, output read); then a short profiled
 * pass: device time in linear layers vs other kernels, launches per run, and the host-side
 * overhead per run (wall minus device busy time); an empty launch's round trip. PyTorch runs
 * benchmarks/bench_infer_torch.py under Debian's /usr/bin/python3 with --threads equal to our
 * device's compute units (PoCL: its worker threads; --threads sets POCL_MAX_PTHREAD_COUNT).
 * Energy: every timed loop (ours fused, ours no_fusion, PyTorch's, per batch) is a window of
 * the run's power source after a --warmup not counted (bench_energy.h); PyTorch's window runs
 * from its {"start": B} line to its result line, and its CPU time counts towards an estimate.
 * Threading: the caller's thread only (PyTorch is a child process).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_energy.h"
#include "hf_bench.h"
#include "hf_exec.h"
#include "hf_graph.h"
#include "hf_nn.h"
#include "hf_safetensors.h"
#include "hf_util.h"

#ifndef HF_BENCH_SOURCE_ROOT
#define HF_BENCH_SOURCE_ROOT "."
#endif

#define MAX_BATCHES 16
#define MAX_LAT (1u << 21)

typedef struct iopts {
	const char *model, *device, *bin_dir, *cache_dir;
	hf_bench_common c;
	unsigned threads, clients, switches;
	size_t batches[MAX_BATCHES], nb;
	double seconds;
	bool torch, server, unfused;
	char model_file[PATH_MAX], model_dir[PATH_MAX], model_name[256], cache_buf[PATH_MAX];
} iopts;

typedef struct meas {
	double sps, p50_us, p99_us, mean_us;
	uint64_t runs;
} meas;

typedef struct where {
	double wall_us, busy_us, gemm_share, overhead_us;
	size_t launches;
} where;

typedef struct brow {
	size_t batch;
	meas ours, unfused, torch;
	hf_bench_window w_ours, w_unfused, w_torch;
	where w, wu;
	bool have_torch;
} brow;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench infer --model DIR_OR_FILE [options]\n"
		"Runs a model (model.safetensors with a hashflop.graph) on our OpenCL executor and on\n"
		"PyTorch (CPU, same thread count) per batch size: samples/s, p50/p99 latency, the\n"
		"ratio, and where our time goes; then the node's OIP endpoint and mode switch.\n\n"
		"Options:\n"
		"  -m, --model PATH     a model directory (PATH/model.safetensors) or the file\n"
		"  -d, --device SEL     OpenCL device: auto (default), P:D, pocl, nvidia, a name part\n"
		"  -t, --threads N      PoCL worker threads (POCL_MAX_PTHREAD_COUNT; default: PoCL's,\n"
		"                       one per core); PyTorch gets the device's compute units\n"
		"  -b, --batches LIST   comma-separated batch sizes (default 1,8,32,128)\n"
		"  -s, --seconds S      timed seconds per batch size and engine (default 2), after\n"
		"                       --warmup S (default 0.25, at least 3 runs) not counted\n"
		"      --json FILE      also write the run document (results, windows, series)\n"
		"      --no-torch       skip PyTorch (machines without python3-torch)\n"
		"      --no-unfused     skip the one-kernel-per-op comparison\n"
		"      --no-server      skip the server sections (OIP over loopback, mode switch)\n"
		"      --clients N      concurrent clients of the server throughput run (default 64)\n"
		"      --switches N     mining -> inference switches measured (default 5)\n"
		"      --bin-dir DIR    where hashflopd and hashflop-pool are (default: this\n"
		"                       program's build tree or directory)\n"
		"      --cache-dir DIR  program cache (default $HASHFLOP_CACHE_DIR, else\n"
		"                       $XDG_CACHE_HOME/hashflop, else ~/.cache/hashflop)\n"
		"  -h, --help           show this help and exit\n%s\n"
		"PyTorch: /usr/bin/python3 $HF_SOURCE_ROOT/benchmarks/bench_infer_torch.py (the source\n"
		"tree this program was built from when HF_SOURCE_ROOT is unset), Debian's python3-torch.\n",
		hf_bench_common_help);
}

static int parse_batches(const char *s, iopts *o)
{
	char buf[256];
	if (!hf_strlcpy(buf, s, sizeof buf))
		return -1;
	o->nb = 0;
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (o->nb == MAX_BATCHES || !hf_parse_u64(t, 1, 1u << 16, &v))
			return -1;
		o->batches[o->nb++] = (size_t)v;
	}
	return o->nb ? 0 : -1;
}


static int parse_args(int argc, char **argv, iopts *o)
{
	enum { O_JSON = 256, O_NOTORCH, O_NOSERVER, O_NOUNFUSED, O_CLIENTS, O_SWITCHES, O_BIN,
	       O_CACHE };
	static const struct option lo[] = {
		{ "model", required_argument, NULL, 'm' }, { "device", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "batches", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' }, { "json", required_argument, NULL, O_JSON },
		{ "no-torch", no_argument, NULL, O_NOTORCH },
		{ "no-server", no_argument, NULL, O_NOSERVER },
		{ "no-unfused", no_argument, NULL, O_NOUNFUSED },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "switches", required_argument, NULL, O_SWITCHES },
		{ "bin-dir", required_argument, NULL, O_BIN },
		{ "cache-dir", required_argument, NULL, O_CACHE },
		{ "help", no_argument, NULL, 'h' }, HF_BENCH_COMMON_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	*o = (iopts){ .seconds = 2.0, .torch = true, .server = true, .unfused = true,
		      .clients = 64, .switches = 5 };
	hf_bench_common_init(&o->c);
	bool bad = false;
	o->cache_dir = hf_bench_default_cache_dir(o->cache_buf, sizeof o->cache_buf);
	parse_batches("1,8,32,128", o);
	optind = 1;
	uint64_t v;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "m:d:t:b:s:h", lo, NULL)) != -1) {
		if (c != O_JSON && hf_bench_common_option("infer", c, optarg, &o->c, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'd': o->device = optarg; break;
		case 't':
			if (!hf_parse_u64(optarg, 1, 1024, &v)) {
				fprintf(stderr, "hashflop-bench infer: --threads: expected 1-1024, got "
						"\"%s\"\n", optarg);
				return 2;
			}
			o->threads = (unsigned)v;
			break;
		case 'b':
			if (parse_batches(optarg, o)) {
				fprintf(stderr, "hashflop-bench infer: --batches: expected up to %d "
						"sizes 1-65536 separated by commas, got \"%s\"\n",
					MAX_BATCHES, optarg);
				return 2;
			}
			break;
		case 's':
			o->seconds = strtod(optarg, &end);
			if (end == optarg || *end || !isfinite(o->seconds) || o->seconds <= 0 ||
			    o->seconds > 3600) {
				fprintf(stderr, "hashflop-bench infer: --seconds: expected a number in "
						"(0, 3600], got \"%s\"\n", optarg);
				return 2;
			}
			break;
		case O_JSON: o->c.json_file = optarg; break;
		case O_NOTORCH: o->torch = false; break;
		case O_NOSERVER: o->server = false; break;
		case O_NOUNFUSED: o->unfused = false; break;
		case O_CLIENTS:
		case O_SWITCHES:
			if (!hf_parse_u64(optarg, 1, 4096, &v)) {
				fprintf(stderr, "hashflop-bench infer: --%s: expected 1-4096\n",
					c == O_CLIENTS ? "clients" : "switches");
				return 2;
			}
			*(c == O_CLIENTS ? &o->clients : &o->switches) = (unsigned)v;
			break;
		case O_BIN: o->bin_dir = optarg; break;
		case O_CACHE: o->cache_dir = optarg; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-bench infer: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (!o->model) {
		fprintf(stderr, "hashflop-bench infer: --model is required (see --help)\n");
		return 2;
	}
	if (o->c.warmup < 0)
		o->c.warmup = 0.25;
	return 0;
}

/* model_file, and for the server sections the repository (model_dir) and name. */
static int resolve_model(iopts *o)
{
	struct stat sb;
	if (stat(o->model, &sb) != 0) {
		fprintf(stderr, "hashflop-bench infer: %s: %s\n", o->model, strerror(errno));
		return -1;
	}
	char dir[PATH_MAX];
	if (S_ISDIR(sb.st_mode)) {
		snprintf(o->model_file, sizeof o->model_file, "%s/model.safetensors", o->model);
		hf_strlcpy(dir, o->model, sizeof dir);
	} else {
		hf_strlcpy(o->model_file, o->model, sizeof o->model_file);
		hf_strlcpy(dir, o->model, sizeof dir);
		hf_strlcpy(dir, dirname(dir), sizeof dir);
	}
	char real[PATH_MAX], tmp[PATH_MAX];
	if (!realpath(dir, real))
		hf_strlcpy(real, dir, sizeof real);
	hf_strlcpy(tmp, real, sizeof tmp);
	hf_strlcpy(o->model_name, basename(tmp), sizeof o->model_name);
	hf_strlcpy(tmp, real, sizeof tmp);
	hf_strlcpy(o->model_dir, dirname(tmp), sizeof o->model_dir);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, size_t n, double q)
{
	size_t k = (size_t)ceil(q / 100.0 * (double)n);
	k = k ? k - 1 : 0;
	return (double)s[k < n ? k : n - 1];
}

typedef struct io_bufs {
	float *in[HF_GRAPH_MAX_IO], *out[HF_GRAPH_MAX_IO];
} io_bufs;

static int io_alloc(const hf_graph *g, size_t max_batch, io_bufs *b)
{
	memset(b, 0, sizeof *b);
	uint64_t rng = 0x2545f4914f6cdd1dull;
	for (size_t i = 0; i < hf_graph_ninputs(g); i++) {
		size_t n = max_batch * hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value)->per_sample;
		if (!(b->in[i] = malloc(n * sizeof(float))))
			return -1;
		for (size_t k = 0; k < n; k++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			b->in[i][k] = (float)(rng >> 40) / 16777216.0f; /* [0, 1), like the script */
		}
	}
	for (size_t j = 0; j < hf_graph_noutputs(g); j++) {
		size_t n = max_batch * hf_graph_value_at(g, (size_t)hf_graph_output(g, j)->value)->per_sample;
		if (!(b->out[j] = malloc(n * sizeof(float))))
			return -1;
	}
	return 0;
}

static void io_free(io_bufs *b)
{
	for (size_t i = 0; i < HF_GRAPH_MAX_IO; i++) {
		free(b->in[i]);
		free(b->out[i]);
	}
}

static const hf_bench_phase infer_phase = { .section = "infer", .scale = 1,
					     .rate_unit = "inferences/s",
					     .eff_unit = "inferences/J" };

/* Back-to-back runs of batch for seconds (after a warm-up of --warmup seconds, at least 3
 * runs): the energy window of impl at this batch. */
static int measure(hf_exec *e, size_t batch, const iopts *o, io_bufs *io, uint64_t *lat,
		   meas *m, hf_bench_meter *meter, const char *impl, hf_bench_window *win)
{
	hf_errbuf eb;
	char shape[32];
	double seconds = o->seconds;
	snprintf(shape, sizeof shape, "batch %zu", batch);
	hf_bench_phase ph = infer_phase;
	ph.impl = impl;
	ph.shape = shape;
	hf_bench_phase_warmup(meter, &ph);
	uint64_t warm_end = hf_clock_ns(CLOCK_MONOTONIC) + (uint64_t)(o->c.warmup * 1e9);
	for (int i = 0; i < 3 || hf_clock_ns(CLOCK_MONOTONIC) < warm_end; i++) {
		if (hf_exec_run(e, batch, (const float *const *)io->in, io->out, &eb)) {
			fprintf(stderr, "hashflop-bench infer: batch %zu: %s\n", batch, eb.msg);
			hf_bench_phase_abort(meter);
			return -1;
		}
		hf_bench_phase_add(meter, (double)batch);
	}
	hf_bench_phase_measure(meter);
	uint64_t start = hf_clock_ns(CLOCK_MONOTONIC), end = start + (uint64_t)(seconds * 1e9);
	uint64_t now = start;
	size_t n = 0;
	while ((now < end || n == 0) && n < MAX_LAT) {
		uint64_t t0 = now;
		if (hf_exec_run(e, batch, (const float *const *)io->in, io->out, &eb)) {
			fprintf(stderr, "hashflop-bench infer: batch %zu: %s\n", batch, eb.msg);
			hf_bench_phase_abort(meter);
			return -1;
		}
		hf_bench_phase_add(meter, (double)batch);
		now = hf_clock_ns(CLOCK_MONOTONIC);
		lat[n++] = now - t0;
	}
	hf_bench_phase_end(meter, (double)(n * batch), win);
	double wall = (double)(now - start) / 1e9, sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)lat[i];
	qsort(lat, n, sizeof *lat, cmp_u64);
	m->runs = n;
	m->sps = (double)(n * batch) / wall;
	m->p50_us = pct(lat, n, 50) / 1e3;
	m->p99_us = pct(lat, n, 99) / 1e3;
	m->mean_us = sum / (double)n / 1e3;
	return 0;
}

/* A profiled pass: where the time of a run goes. */
static int profile(hf_exec *e, size_t batch, double seconds, io_bufs *io, where *w)
{
	hf_errbuf eb;
	hf_exec_stats a, b;
	hf_exec_get_stats(e, &a);
	uint64_t end = hf_clock_ns(CLOCK_MONOTONIC) + (uint64_t)(seconds * 1e9);
	int n = 0;
	while (n < 3 || hf_clock_ns(CLOCK_MONOTONIC) < end) {
		if (hf_exec_run(e, batch, (const float *const *)io->in, io->out, &eb)) {
			fprintf(stderr, "hashflop-bench infer: batch %zu (profiled): %s\n", batch,
				eb.msg);
			return -1;
		}
		n++;
	}
	hf_exec_get_stats(e, &b);
	double runs = (double)(b.runs - a.runs), gemm = (double)(b.gemm_ns - a.gemm_ns);
	double other = (double)(b.other_ns - a.other_ns);
	w->wall_us = (double)(b.wall_ns - a.wall_ns) / runs / 1e3;
	w->busy_us = (gemm + other) / runs / 1e3;
	w->gemm_share = gemm + other > 0 ? gemm / (gemm + other) : 0;
	w->launches = (size_t)((double)(b.launches - a.launches) / runs + 0.5);
	return 0;
}

/* The round trip of one empty kernel launch and its wait (clFinish), in microseconds. */
static double launch_roundtrip_us(hf_cl *cl)
{
	hf_errbuf eb;
	cl_program prog;
	if (hf_nn_build(cl, HF_NN_OPS, NULL, false, &prog, &eb))
		return -1;
	cl_int st;
	cl_kernel k = clCreateKernel(prog, "hf_nn_eltwise", &st);
	cl_mem m = clCreateBuffer(hf_cl_context(cl), CL_MEM_READ_WRITE, 64, NULL, &st);
	int zero = 0, one = 1;
	clSetKernelArg(k, 0, sizeof zero, &zero);
	clSetKernelArg(k, 1, sizeof one, &one);
	for (cl_uint i = 2; i <= 8; i++)
		if (i == 2 || i == 3 || i == 5 || i == 8)
			clSetKernelArg(k, i, sizeof m, &m);
		else
			clSetKernelArg(k, i, sizeof zero, &zero);
	size_t g = 1, l = 1;
	double best = -1;
	for (int rep = 0; rep < 5; rep++) {
		uint64_t t0 = hf_clock_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < 200; i++) {
			clEnqueueNDRangeKernel(hf_cl_queue(cl), k, 1, NULL, &g, &l, 0, NULL, NULL);
			clFinish(hf_cl_queue(cl));
		}
		double us = (double)(hf_clock_ns(CLOCK_MONOTONIC) - t0) / 200 / 1e3;
		if (best < 0 || us < best)
			best = us;
	}
	clReleaseMemObject(m);
	clReleaseKernel(k);
	clReleaseProgram(prog);
	return best;
}

/* ---- PyTorch ---- */

/* One line of the script: the markers start the window, a result line ends it. */
static void torch_line(const iopts *o, json_t *j, brow *rows, hf_bench_meter *meter,
		       char *ver, size_t vsz, char *blas, size_t bsz, bool *done)
{
	char shape[32];
	json_t *b = json_object_get(j, "batch");
	if (json_is_integer(json_object_get(j, "warmup"))) {
		snprintf(shape, sizeof shape, "batch %lld",
			 (long long)json_integer_value(json_object_get(j, "warmup")));
		hf_bench_phase ph = infer_phase;
		ph.impl = "torch";
		ph.shape = shape;
		ph.reference = true;
		ph.no_live_rate = true;
		hf_bench_phase_warmup(meter, &ph);
	} else if (json_is_integer(json_object_get(j, "start"))) {
		hf_bench_phase_measure(meter);
	} else if (json_is_integer(b)) {
		for (size_t i = 0; i < o->nb; i++) {
			if ((json_int_t)rows[i].batch != json_integer_value(b))
				continue;
			rows[i].torch.sps = json_number_value(json_object_get(j, "samples_per_s"));
			rows[i].torch.p50_us = json_number_value(json_object_get(j, "p50_us"));
			rows[i].torch.p99_us = json_number_value(json_object_get(j, "p99_us"));
			rows[i].torch.mean_us = json_number_value(json_object_get(j, "mean_us"));
			rows[i].torch.runs = (uint64_t)json_integer_value(json_object_get(j, "runs"));
			rows[i].have_torch = true;
			hf_bench_phase_end(meter, (double)(rows[i].torch.runs * rows[i].batch),
					   &rows[i].w_torch);
		}
	} else if (json_is_true(json_object_get(j, "done"))) {
		const char *v = json_string_value(json_object_get(j, "torch"));
		const char *bs = json_string_value(json_object_get(j, "blas"));
		snprintf(ver, vsz, "%s", v ? v : "?");
		snprintf(blas, bsz, "%s", bs ? bs : "?");
		*done = true;
	}
}

/* Runs the PyTorch script (fork and exec, no shell); fills rows (have_torch, their windows)
 * and the version strings. Its CPU time counts towards an estimated power source. */
static int run_torch(const iopts *o, unsigned threads, brow *rows, char *ver, size_t vsz,
		     char *blas, size_t bsz, hf_bench_meter *meter)
{
	const char *root = getenv("HF_SOURCE_ROOT");
	char script[PATH_MAX], bl[256] = "", th[16], sec[32], warm[32];
	snprintf(script, sizeof script, "%s/benchmarks/bench_infer_torch.py",
		 root && *root ? root : HF_BENCH_SOURCE_ROOT);
	if (access(script, R_OK) != 0) {
		fprintf(stderr, "hashflop-bench infer: %s: %s (set HF_SOURCE_ROOT to the source "
				"tree, or --no-torch)\n", script, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < o->nb; i++) {
		size_t l = strlen(bl);
		snprintf(bl + l, sizeof bl - l, "%s%zu", i ? "," : "", o->batches[i]);
	}
	snprintf(th, sizeof th, "%u", threads);
	snprintf(sec, sizeof sec, "%g", o->seconds);
	snprintf(warm, sizeof warm, "%g", o->c.warmup);
	char *const argv[] = { "/usr/bin/python3", script, "--model", (char *)o->model_file,
			       "--threads", th, "--batches", bl, "--seconds", sec,
			       "--warmup-seconds", warm, "--markers", NULL };
	int fd[2];
	fflush(stdout);
	if (pipe(fd) != 0) {
		fprintf(stderr, "hashflop-bench infer: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execv(argv[0], argv);
		fprintf(stderr, "hashflop-bench infer: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd[1]);
	if (pid < 0) {
		close(fd[0]);
		fprintf(stderr, "hashflop-bench infer: fork: %s\n", strerror(errno));
		return -1;
	}
	hf_bench_meter_set_child(meter, pid);
	FILE *p = fdopen(fd[0], "r");
	char line[4096];
	bool done = false;
	while (p && fgets(line, sizeof line, p)) {
		json_error_t je;
		json_t *j = json_loads(line, 0, &je);
		if (json_is_object(j))
			torch_line(o, j, rows, meter, ver, vsz, blas, bsz, &done);
		json_decref(j);
	}
	if (p)
		fclose(p);
	else
		close(fd[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	hf_bench_meter_set_child(meter, 0);
	hf_bench_phase_abort(meter); /* a window the script left open */
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !done) {
		fprintf(stderr, "hashflop-bench infer: PyTorch run failed (status %d): %s %s\n", st,
			argv[0], script);
		return -1;
	}
	return 0;
}

/* ---- the run ---- */

static int bench_lowering(hf_cl *cl, hf_cl *pcl, const hf_graph *g, const iopts *o,
			  bool no_fusion, size_t maxb, io_bufs *io, uint64_t *lat, brow *rows,
			  json_t *info, hf_bench_meter *meter)
{
	hf_errbuf eb;
	hf_exec_opts eo = { .max_batch = maxb, .no_fusion = no_fusion };
	hf_exec *e = NULL, *pe = NULL;
	uint64_t t0 = hf_clock_ns(CLOCK_MONOTONIC);
	if (hf_exec_new(cl, g, &eo, &e, &eb) || hf_exec_new(pcl, g, &eo, &pe, &eb)) {
		fprintf(stderr, "hashflop-bench infer: executor (%s): %s\n",
			no_fusion ? "no_fusion" : "fused", eb.msg);
		hf_exec_free(e);
		return -1;
	}
	double setup_ms = (double)(hf_clock_ns(CLOCK_MONOTONIC) - t0) / 1e6 / 2;
	printf("%s lowering: %s\n  %zu launches per run, %.1f MiB on the device, set-up and warm-up "
	       "%.0f ms\n", no_fusion ? "no_fusion" : "fused", hf_exec_describe(e),
	       hf_exec_launches_per_run(e), (double)hf_exec_device_bytes(e) / 1048576.0, setup_ms);
	json_object_set_new(info, "lowering", json_string(hf_exec_describe(e)));
	json_object_set_new(info, "launches_per_run", json_integer((json_int_t)hf_exec_launches_per_run(e)));
	json_object_set_new(info, "device_bytes", json_integer((json_int_t)hf_exec_device_bytes(e)));
	json_object_set_new(info, "setup_ms", json_real(setup_ms));
	int r = 0;
	for (size_t i = 0; !r && i < o->nb; i++) {
		meas *m = no_fusion ? &rows[i].unfused : &rows[i].ours;
		where *w = no_fusion ? &rows[i].wu : &rows[i].w;
		r = measure(e, rows[i].batch, o, io, lat, m, meter,
			    no_fusion ? "ours-no-fusion" : "ours",
			    no_fusion ? &rows[i].w_unfused : &rows[i].w_ours);
		if (!r)
			r = profile(pe, rows[i].batch, o->seconds / 4 > 0.5 ? 0.5 : o->seconds / 4,
				    io, w);
		/* Profiling slows the host side down: the overhead is the unprofiled median run
		 * less the profiled device time. */
		w->overhead_us = m->p50_us > w->busy_us ? m->p50_us - w->busy_us : 0;
	}
	hf_exec_free(pe);
	hf_exec_free(e);
	return r;
}

static json_t *meas_json(const meas *m, const hf_bench_meter *meter, const hf_bench_window *w)
{
	json_t *o = json_pack("{s:f, s:f, s:f, s:f, s:I}", "samples_per_s", m->sps, "p50_us",
			      m->p50_us, "p99_us", m->p99_us, "mean_us", m->mean_us, "runs",
			      (json_int_t)m->runs);
	json_object_set_new(o, "energy", hf_bench_window_json(meter, w));
	json_object_set_new(o, "inferences_per_j", w->valid ? json_real(w->per_j) : json_null());
	return o;
}

static json_t *where_json(const where *w)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:I}", "profiled_wall_us", w->wall_us, "device_busy_us",
			 w->busy_us, "gemm_share", w->gemm_share, "overhead_us", w->overhead_us,
			 "launches", (json_int_t)w->launches);
}

static void print_tables(const iopts *o, const brow *rows, double rt_us)
{
	printf("\n%-6s | %12s %9s %9s | %12s %9s %9s | %6s | %12s %6s\n", "batch", "ours/s",
	       "p50 us", "p99 us", "torch/s", "p50 us", "p99 us", "ratio", "unfused/s", "ratio");
	for (size_t i = 0; i < o->nb; i++) {
		const brow *r = &rows[i];
		printf("%-6zu | %12.0f %9.1f %9.1f |", r->batch, r->ours.sps, r->ours.p50_us,
		       r->ours.p99_us);
		if (r->have_torch)
			printf(" %12.0f %9.1f %9.1f | %5.2fx |", r->torch.sps, r->torch.p50_us,
			       r->torch.p99_us, r->ours.sps / r->torch.sps);
		else
			printf(" %12s %9s %9s | %6s |", "-", "-", "-", "-");
		if (o->unfused && r->have_torch)
			printf(" %12.0f %5.2fx\n", r->unfused.sps, r->unfused.sps / r->torch.sps);
		else if (o->unfused)
			printf(" %12.0f %6s\n", r->unfused.sps, "-");
		else
			printf(" %12s %6s\n", "-", "-");
	}
	printf("\nWhere the time of one run goes (ratios above: ours / torch samples/s; device time "
	       "from a profiled pass)\n%-6s %-9s | %8s %9s %9s %7s %11s %13s\n", "batch",
	       "lowering", "launches", "p50 us", "device us", "GEMM %", "overhead us",
	       "per launch us");
	for (size_t i = 0; i < o->nb; i++) {
		for (int u = 0; u < (o->unfused ? 2 : 1); u++) {
			const where *w = u ? &rows[i].wu : &rows[i].w;
			const meas *m = u ? &rows[i].unfused : &rows[i].ours;
			printf("%-6zu %-9s | %8zu %9.1f %9.1f %6.1f%% %11.1f %13.1f\n", rows[i].batch,
			       u ? "no_fusion" : "fused", w->launches, m->p50_us, w->busy_us,
			       100.0 * w->gemm_share, w->overhead_us,
			       w->launches ? w->overhead_us / (double)w->launches : 0);
		}
	}
	printf("(overhead = p50 - device time: input write, output read, launches and the wait; "
	       "GEMM = linear layers with their fused epilogues; an empty launch + clFinish round "
	       "trip takes %.1f us on this device)\n", rt_us);
}

/* The per-batch rows of the report. */
static json_t *rows_json(const iopts *o, const brow *rows, const hf_bench_meter *meter)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < o->nb; i++) {
		json_t *row = json_pack("{s:I, s:o, s:o}", "batch", (json_int_t)rows[i].batch,
					"ours", meas_json(&rows[i].ours, meter, &rows[i].w_ours),
					"where",
					where_json(&rows[i].w));
		if (o->unfused) {
			json_object_set_new(row, "no_fusion",
					    meas_json(&rows[i].unfused, meter, &rows[i].w_unfused));
			json_object_set_new(row, "no_fusion_where", where_json(&rows[i].wu));
		}
		if (rows[i].have_torch) {
			json_object_set_new(row, "torch",
					    meas_json(&rows[i].torch, meter, &rows[i].w_torch));
			json_object_set_new(row, "ratio", json_real(rows[i].ours.sps / rows[i].torch.sps));
		}
		json_array_append_new(arr, row);
	}
	return arr;
}

static void bin_dir_default(char *out, size_t sz)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		snprintf(out, sz, ".");
		return;
	}
	exe[n] = '\0';
	char *d = dirname(exe);
	size_t l = strlen(d);
	if (l >= 11 && strcmp(d + l - 11, "/benchmarks") == 0)
		d[l - 11] = '\0'; /* the build tree: hashflopd is under runtime/node/ */
	snprintf(out, sz, "%s", d);
}

static int run_all(iopts *o, json_t *report, hf_bench_meter *meter)
{
	hf_errbuf eb;
	hf_st *st = NULL;
	hf_graph *g = NULL;
	hf_cl *cl = NULL, *pcl = NULL;
	brow rows[MAX_BATCHES];
	io_bufs io;
	uint64_t *lat = malloc(MAX_LAT * sizeof *lat);
	int r = -1;
	memset(&io, 0, sizeof io);
	memset(rows, 0, sizeof rows);
	if (!lat)
		goto out;
	if (hf_st_open(o->model_file, NULL, &st, &eb) || hf_graph_new(st, &g, &eb)) {
		fprintf(stderr, "hashflop-bench infer: %s: %s\n", o->model_file, eb.msg);
		goto out;
	}
	hf_cl_opts co = { .cache_dir = o->cache_dir }, cpo = { .cache_dir = o->cache_dir,
							      .profiling = true };
	if (hf_cl_open(o->device, &co, &cl, &eb) || hf_cl_open(o->device, &cpo, &pcl, &eb)) {
		fprintf(stderr, "hashflop-bench infer: device \"%s\": %s\n",
			o->device ? o->device : "auto", eb.msg);
		goto out;
	}
	const hf_cl_device_info *dev = hf_cl_info(cl);
	unsigned threads = dev->compute_units;
	size_t maxb = 1;
	for (size_t i = 0; i < o->nb; i++) {
		rows[i].batch = o->batches[i];
		maxb = o->batches[i] > maxb ? o->batches[i] : maxb;
	}
	printf("model %s: %zu ops, %.2f MFLOP per sample, %.2f MiB of weights\n", o->model_file,
	       hf_graph_nops(g), (double)hf_graph_flops_per_sample(g) / 1e6,
	       (double)hf_graph_weight_bytes(g) / 1048576.0);
	printf("device %s (%s, %s), %u compute units; threads: ours %u, torch %u\n", dev->name,
	       dev->platform, dev->driver_version, dev->compute_units, threads, threads);
	if (o->threads && o->threads != threads)
		printf("note: --threads %u asked, the device reports %u compute units (PoCL only "
		       "reads POCL_MAX_PTHREAD_COUNT; other devices keep theirs)\n", o->threads, threads);
	json_object_set_new(report, "model", json_string(o->model_file));
	json_object_set_new(report, "device", json_pack("{s:s, s:s, s:s, s:i, s:b}", "name",
							dev->name, "platform", dev->platform,
							"driver", dev->driver_version, "compute_units",
							(int)dev->compute_units, "gpu", dev->is_gpu));
	json_object_set_new(report, "threads", json_integer(threads));
	json_object_set_new(report, "flops_per_sample",
			    json_integer((json_int_t)hf_graph_flops_per_sample(g)));
	if (io_alloc(g, maxb, &io)) {
		fprintf(stderr, "hashflop-bench infer: out of memory\n");
		goto out;
	}
	json_t *fused = json_object(), *unf = json_object();
	json_object_set_new(report, "fused", fused);
	if (o->unfused)
		json_object_set_new(report, "no_fusion", unf);
	else
		json_decref(unf);
	if (bench_lowering(cl, pcl, g, o, false, maxb, &io, lat, rows, fused, meter) ||
	    (o->unfused && bench_lowering(cl, pcl, g, o, true, maxb, &io, lat, rows, unf, meter)))
		goto out;
	double rt = launch_roundtrip_us(cl);
	json_object_set_new(report, "launch_roundtrip_us", json_real(rt));
	char tv[64] = "", blas[256] = "";
	if (o->torch) {
		hf_cl_free(pcl); /* nothing of ours runs while torch does */
		pcl = NULL;
		if (run_torch(o, threads, rows, tv, sizeof tv, blas, sizeof blas, meter) == 0) {
			printf("torch %s, %u threads, BLAS: %s\n", tv, threads, blas);
			json_object_set_new(report, "torch", json_pack("{s:s, s:s, s:i}", "version",
								       tv, "blas", blas, "threads",
								       (int)threads));
		}
	}
	print_tables(o, rows, rt);
	hf_bench_print_windows(meter, "infer", stdout);
	json_object_set_new(report, "batches", rows_json(o, rows, meter));
	json_object_set_new(report, "power", hf_bench_meter_power_json(meter));
	json_object_set_new(report, "warmup_s", json_real(o->c.warmup));
	r = 0;
out:
	io_free(&io);
	free(lat);
	hf_cl_free(pcl);
	hf_cl_free(cl);
	hf_graph_free(g);
	hf_st_free(st);
	return r;
}

static int infer_body(hf_bench_meter *meter, void *ctx, json_t *report)
{
	iopts *o = ctx;
	int r = run_all(o, report, meter) ? 1 : 0;
	if (!r && o->server) {
		char bin[PATH_MAX];
		bin_dir_default(bin, sizeof bin);
		hf_bench_infer_server_opts so = { .bin_dir = o->bin_dir ? o->bin_dir : bin,
						  .model_dir = o->model_dir, .model = o->model_name,
						  .device = o->device, .clients = o->clients,
						  .seconds = o->seconds, .switches = o->switches };
		printf("\n");
		fflush(stdout);
		if (hf_bench_infer_server(&so, report) != 0) {
			fprintf(stderr, "hashflop-bench infer: the server sections failed\n");
			r = 1;
		}
	}
	return r;
}

int hf_bench_infer_run(int argc, char **argv, hf_bench_meter *shared,
		       const hf_bench_common *shared_c, json_t *sections)
{
	iopts o;
	int r = parse_args(argc, argv, &o);
	if (r)
		return r == 1 ? 0 : r;
	if (resolve_model(&o))
		return 1;
	if (shared) {
		o.c.nlimits = shared_c->nlimits;
		memcpy(o.c.limits, shared_c->limits, sizeof o.c.limits);
		return hf_bench_sweep("infer", shared, &o.c, "infer", infer_body, &o, sections);
	}
	if (o.threads) {
		/* Before the first OpenCL call of the process, which is when PoCL reads it; no
		 * thread exists yet. */
		char t[16];
		snprintf(t, sizeof t, "%u", o.threads);
		setenv("POCL_MAX_PTHREAD_COUNT", t, 1);
	}
	char pci[32] = "";
	if (o.c.power_kind == HF_POWER_AUTO || o.c.power_kind == HF_POWER_NVML)
		hf_bench_cl_pci_bus_id(o.device, pci, sizeof pci);
	hf_bench_meter *meter = hf_bench_meter_open("infer", &o.c, pci, stdout);
	if (!meter)
		return o.c.nlimits ? 2 : 1;
	json_t *secs = json_object();
	r = hf_bench_sweep("infer", meter, &o.c, "infer", infer_body, &o, secs);
	json_t *doc = hf_bench_meter_document(meter, "infer", secs);
	if (hf_bench_write_document("infer", &o.c, doc))
		r = 1;
	json_decref(doc);
	hf_bench_meter_free(meter);
	return r;
}

int hf_bench_infer_main(int argc, char **argv)
{
	return hf_bench_infer_run(argc, argv, NULL, NULL, NULL);
}
