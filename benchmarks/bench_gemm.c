/* bench_gemm: `hashflop-bench gemm`: our OpenCL SGEMM side by side with CLBlast (same OpenCL
 * device) and OpenBLAS (1 thread and all threads, best kernel) in one run: GFLOP/s (medians),
 * ratios, correctness against OpenBLAS, first-call latency with a cold and a warm cache, and
 * `--tune` to search kernel parameters per shape class into the tuning database. After the
 * medians, each engine runs a steady-state window per shape (--warmup, then --seconds back to
 * back) whose energy is the difference of two readings of the run's power source: sustained
 * GFLOP/s and GFLOP/J from the same window (bench_energy.h).
 *
 * Threading: single-threaded except inside OpenBLAS and the OpenCL runtime. The first-call
 * measurements run in forked children before the parent touches OpenCL, so each child is a
 * fresh process with its own cache state.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>
#include <dlfcn.h>

#include "bench_energy.h"
#include "hf_bench.h"
#include "hf_cpu.h"
#include "hf_file.h"
#include "hf_gemm.h"
#include "hf_util.h"

#define MAX_SHAPES 32

static const char quick_shapes[] = "512x512x512,1024x1024x1024,1x4096x4096,32x4096x4096";
/* The anchor table (M x K x N), plus M = 1 for the sgemv target. */
static const char full_shapes[] = "512x512x512,1024x1024x1024,2048x2048x2048,4096x4096x4096,"
				  "8x4096x4096,32x4096x4096,128x4096x11008,1x4096x4096";

typedef struct bshape {
	size_t m, k, n;
} bshape;

typedef struct bopts {
	const char *device, *cache_dir;
	bshape shapes[MAX_SHAPES];
	size_t nshapes;
	unsigned reps;
	double budget_s;
	bool trans_b, half, tune, clblast, openblas, first_call, first_call_clblast;
	hf_bench_common c;    /* --seconds (energy windows), --warmup, --json, power */
	bool prepack;
	bool forced;          /* --kernel: every shape runs with these parameters */
	hf_gemm_params kernel;
	double peak_gflops;   /* --peak: the device's FP32 peak, for "% of peak" */
	char cache_buf[PATH_MAX];
	char clblast_why[128]; /* why CLBlast is not run, when it was wanted */
} bopts;

typedef struct bresult {
	bshape s;
	double ours, clblast, ob1, obn, ob_gemv; /* GFLOP/s, 0 = not run */
	double max_err;
	bool ok;
	char params[128];
	bool tuned;
	char note[160];
	hf_bench_window w_ours, w_clblast, w_ob1, w_obn, w_gemv; /* energy windows */
} bresult;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench gemm [options]\n"
		"Times C = A*B (row-major, M x K times K x N) with our OpenCL engine, CLBlast on the\n"
		"same OpenCL device and OpenBLAS (1 thread and all threads), checks our result\n"
		"against OpenBLAS and prints GFLOP/s medians and ratios.\n\n"
		"Options:\n"
		"  -d, --device SEL     OpenCL device: auto (default), P:D, pocl, nvidia, a name part\n"
		"  -s, --shapes LIST    comma-separated MxKxN (default: %s)\n"
		"      --full           the issue's table: %s\n"
		"  -r, --reps N         timed repetitions per engine (median; default 5)\n"
		"      --budget S       stop repeating an engine after S seconds (default 3)\n"
		"      --trans-b        B stored transposed (N x K, the weights layout)\n"
		"      --half           FP16 storage for B in our engine (references stay FP32)\n"
		"      --prepacked-b    pack B once before timing (constant weights), ours only\n"
		"      --cache-dir DIR  program cache and tuning database (default\n"
		"                       $HASHFLOP_CACHE_DIR, else $XDG_CACHE_HOME/hashflop, else\n"
		"                       ~/.cache/hashflop); PoCL's cache goes to DIR/pocl\n"
		"      --no-clblast     skip CLBlast;  --no-openblas  skip OpenBLAS\n"
		"      --no-first-call  skip the cold/warm first-call measurement\n"
		"      --first-call-clblast  also measure CLBlast's first call (slow when cold)\n"
		"      --tune           search kernel parameters for each shape's class and store\n"
		"                       the winners in DIR/gemm-tuning.json\n"
		"      --kernel SPEC    run our engine with these parameters instead of the plan's\n"
		"                       choice, e.g. \"tiled lx=16 ly=16 wm=8 wn=8 kc=16\" (the\n"
		"                       kernel column's format; fields left out take defaults)\n"
		"      --peak GFLOPS    the device's FP32 peak: adds ours as a percentage of it\n"
		"      --seconds S      each engine's energy window per shape (default 1, or\n"
		"                       --budget when shorter), after --warmup S (default a\n"
		"                       quarter of it) not counted\n"
		"      --json           print one JSON document instead of the table\n"
		"      --json FILE      write the run document (windows, time series) to FILE\n"
		"  -h, --help           show this help and exit\n%s\n"
		"OpenBLAS: when OPENBLAS_CORETYPE is unset the benchmark re-executes itself with the\n"
		"best kernel for this CPU (SkylakeX with AVX-512, Haswell with AVX2) and prints the\n"
		"kernel it used (openblas_get_corename). Set OPENBLAS_CORETYPE to force another.\n",
		quick_shapes, full_shapes, hf_bench_common_help);
}

static int parse_shapes(const char *list, bopts *o)
{
	char buf[1024];
	if (!hf_strlcpy(buf, list, sizeof buf))
		return -1;
	o->nshapes = 0;
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned long m, k, n;
		char extra;
		if (o->nshapes == MAX_SHAPES ||
		    sscanf(t, "%lux%lux%lu%c", &m, &k, &n, &extra) != 3 || !m || !k || !n ||
		    m > (1ul << 20) || k > (1ul << 20) || n > (1ul << 20))
			return -1;
		o->shapes[o->nshapes++] = (bshape){ m, k, n };
	}
	return o->nshapes ? 0 : -1;
}


/* A finite number > 0 with nothing after it, else 0. */
static double positive(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	return end != s && *end == '\0' && isfinite(v) && v > 0 ? v : 0;
}

static int parse_args(int argc, char **argv, bopts *o)
{
	enum { O_FULL = 256, O_BUDGET, O_TRANSB, O_HALF, O_CACHE, O_NOCLB, O_NOOB, O_NOFIRST,
	       O_FIRSTCLB, O_TUNE, O_JSON, O_PREPACK, O_KERNEL, O_PEAK, O_SECONDS };
	static const struct option lo[] = {
		{ "device", required_argument, NULL, 'd' }, { "shapes", required_argument, NULL, 's' },
		{ "full", no_argument, NULL, O_FULL }, { "reps", required_argument, NULL, 'r' },
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "trans-b", no_argument, NULL, O_TRANSB }, { "half", no_argument, NULL, O_HALF },
		{ "cache-dir", required_argument, NULL, O_CACHE },
		{ "no-clblast", no_argument, NULL, O_NOCLB },
		{ "no-openblas", no_argument, NULL, O_NOOB },
		{ "no-first-call", no_argument, NULL, O_NOFIRST },
		{ "first-call-clblast", no_argument, NULL, O_FIRSTCLB },
		{ "tune", no_argument, NULL, O_TUNE }, { "json", optional_argument, NULL, O_JSON },
		{ "prepacked-b", no_argument, NULL, O_PREPACK },
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "peak", required_argument, NULL, O_PEAK },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "help", no_argument, NULL, 'h' }, HF_BENCH_COMMON_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;
	bool bad = false;
	*o = (bopts){ .reps = 5, .budget_s = 3.0, .clblast = true, .openblas = true,
		      .first_call = true };
	o->cache_dir = hf_bench_default_cache_dir(o->cache_buf, sizeof o->cache_buf);
	hf_bench_common_init(&o->c);
	parse_shapes(quick_shapes, o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:s:r:h", lo, NULL)) != -1) {
		if (hf_bench_common_option("gemm", c, optarg, &o->c, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		switch (c) {
		case 'd': o->device = optarg; break;
		case 's':
			if (parse_shapes(optarg, o)) {
				fprintf(stderr, "hashflop-bench gemm: --shapes: expected MxKxN[,...] "
						"with sizes 1-1048576, got \"%s\"\n", optarg);
				return 2;
			}
			break;
		case O_FULL: parse_shapes(full_shapes, o); break;
		case 'r':
			if (!hf_parse_u64(optarg, 1, 1000, &v)) {
				fprintf(stderr, "hashflop-bench gemm: --reps: expected 1-1000\n");
				return 2;
			}
			o->reps = (unsigned)v;
			break;
		case O_BUDGET:
			o->budget_s = positive(optarg);
			if (!(o->budget_s > 0)) {
				fprintf(stderr, "hashflop-bench gemm: --budget: expected seconds > 0\n");
				return 2;
			}
			break;
		case O_TRANSB: o->trans_b = true; break;
		case O_HALF: o->half = true; break;
		case O_CACHE: o->cache_dir = optarg; break;
		case O_NOCLB: o->clblast = false; break;
		case O_NOOB: o->openblas = false; break;
		case O_NOFIRST: o->first_call = false; break;
		case O_FIRSTCLB: o->first_call_clblast = true; break;
		case O_TUNE: o->tune = true; break;
		case O_JSON: hf_bench_json_option(argc, argv, optarg, &o->c); break;
		case O_SECONDS:
			if (!hf_bench_parse_seconds("gemm", "--seconds", optarg, &o->c.seconds))
				return 2;
			break;
		case O_PREPACK: o->prepack = true; break;
		case O_KERNEL: {
			hf_errbuf eb;
			if (hf_gemm_params_parse(optarg, &o->kernel, &eb)) {
				fprintf(stderr, "hashflop-bench gemm: --kernel: %s\n", eb.msg);
				return 2;
			}
			o->forced = true;
			break;
		}
		case O_PEAK:
			o->peak_gflops = positive(optarg);
			if (!(o->peak_gflops > 0)) {
				fprintf(stderr, "hashflop-bench gemm: --peak: expected GFLOP/s > 0\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-bench gemm: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (!(o->c.seconds > 0)) /* 1 s, or the engines' --budget when shorter */
		o->c.seconds = o->budget_s < 1 ? o->budget_s : 1;
	if (o->c.warmup < 0)
		o->c.warmup = o->c.seconds / 4;
	return 0;
}

/* Re-executes with the best OpenBLAS kernel for this CPU unless the user chose one. */
void hf_bench_gemm_pick_openblas(char **argv_full)
{
	const char *best = NULL;
	hf_cpu_features cpu;
	if (getenv("OPENBLAS_CORETYPE"))
		return;
	hf_cpu_detect(&cpu);   /* what the CPU has and the OS saves, as our own kernels see it */
	if (cpu.avx512f)
		best = "SkylakeX";
	else if (cpu.avx2)
		best = "Haswell";
	if (!best)
		return;
	setenv("OPENBLAS_CORETYPE", best, 1);
	execv("/proc/self/exe", argv_full);
	/* exec failed: carry on with whatever OpenBLAS picks; the core name is printed anyway. */
}

static double median(double *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double now_s(void) { return (double)hf_mono_us() / 1e6; }

static void fill(float *x, size_t n, unsigned seed)
{
	uint32_t s = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
	}
}

static uint16_t to_half(float f)
{
	uint32_t x, sign, e, m;
	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	e = (x >> 23) & 0xff;
	m = x & 0x7fffff;
	if (e < 103)
		return (uint16_t)sign; /* our inputs are in [-1, 1): flush tiny values */
	if (e < 113) { /* subnormal half */
		m |= 0x800000;
		return (uint16_t)(sign | (m >> (126 - e)));
	}
	uint32_t h = ((e - 112) << 10) | (m >> 13);
	if ((m & 0x1fff) > 0x1000 || ((m & 0x1fff) == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

/* ---- CLBlast, loaded at run time (a reference, never a build dependency) ---- */

/* The values of CLBlast's C API (clblast_c.h, CLBlast 1.x): row-major 101, no transpose 111,
 * transpose 112, success 0. */
typedef int (*clblast_sgemm_fn)(int layout, int ta, int tb, size_t m, size_t n, size_t k,
				float alpha, cl_mem a, size_t aoff, size_t lda, cl_mem b,
				size_t boff, size_t ldb, float beta, cl_mem c, size_t coff,
				size_t ldc, cl_command_queue *q, cl_event *ev);
static clblast_sgemm_fn clblast_sgemm;

static bool load_clblast(char *why, size_t sz)
{
	void *h = dlopen("libclblast.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libclblast.so", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(why, sz, "CLBlast not installed (libclblast1)");
		return false;
	}
	*(void **)&clblast_sgemm = dlsym(h, "CLBlastSgemm");
	if (!clblast_sgemm) {
		snprintf(why, sz, "libclblast has no CLBlastSgemm");
		return false;
	}
	return true; /* the handle stays open for the process */
}

/* ---- engines ---- */

typedef struct bufs {
	float *a, *b, *c, *ref; /* host: A (M x K), B (K x N, or N x K with trans_b), C */
	uint16_t *bh;
	cl_mem da, db, dc, db32;
} bufs;

typedef int (*run_fn)(void *ctx);

/* Median seconds of up to reps runs within the budget (after one untimed warm run). */
static double time_runs(run_fn fn, void *ctx, const bopts *o, int *err)
{
	double t[1000];
	unsigned n = 0;
	double start;
	if ((*err = fn(ctx)))
		return 0;
	start = now_s();
	while (n < o->reps) {
		double t0 = now_s();
		if ((*err = fn(ctx)))
			return 0;
		t[n++] = now_s() - t0;
		if (now_s() - start > o->budget_s)
			break;
	}
	return median(t, n);
}

typedef struct ours_ctx {
	hf_gemm_plan *plan;
	cl_command_queue q;
	cl_mem a, b, c;
} ours_ctx;

static int run_ours(void *p)
{
	ours_ctx *c = p;
	if (hf_gemm_run(c->plan, 1.0f, c->a, c->b, 0.0f, c->c, NULL))
		return -1;
	return clFinish(c->q) == CL_SUCCESS ? 0 : -1;
}

typedef struct clb_ctx {
	bshape s;
	bool tb;
	cl_command_queue q;
	cl_mem a, b, c;
} clb_ctx;

static int run_clblast(void *p)
{
	clb_ctx *c = p;
	cl_event ev = NULL;
	int st = clblast_sgemm(
		101, 111, c->tb ? 112 : 111, c->s.m, c->s.n, c->s.k, 1.0f, c->a,
		0, c->s.k, c->b, 0, c->tb ? c->s.k : c->s.n, 0.0f, c->c, 0, c->s.n, &c->q, &ev);
	if (st != 0)
		return st;
	clWaitForEvents(1, &ev);
	clReleaseEvent(ev);
	return 0;
}

typedef struct ob_ctx {
	bshape s;
	bool tb, gemv;
	int threads;
	const float *a, *b;
	float *c;
} ob_ctx;

static int run_openblas(void *p)
{
	ob_ctx *c = p;
	int ldb = c->tb ? (int)c->s.k : (int)c->s.n;
	if (openblas_get_num_threads() != c->threads)
		openblas_set_num_threads(c->threads);
	if (c->gemv) /* y = x * op(B): row-major B (K x N) is y = B^T x */
		cblas_sgemv(CblasRowMajor, c->tb ? CblasNoTrans : CblasTrans,
			    c->tb ? (int)c->s.n : (int)c->s.k, c->tb ? (int)c->s.k : (int)c->s.n,
			    1.0f, c->b, ldb, c->a, 1, 0.0f, c->c, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans,
			    (int)c->s.m, (int)c->s.n, (int)c->s.k, 1.0f, c->a, (int)c->s.k, c->b,
			    ldb, 0.0f, c->c, (int)c->s.n);
	return 0;
}

static double gflops(const bshape *s, double sec)
{
	return sec > 0 ? 2.0 * (double)s->m * (double)s->n * (double)s->k / sec / 1e9 : 0;
}

static cl_mem dev_buf(hf_cl *cl, size_t bytes, void *host)
{
	cl_int st;
	return clCreateBuffer(hf_cl_context(cl),
			      CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0), bytes, host,
			      &st);
}

static void free_bufs(bufs *b)
{
	if (b->da) clReleaseMemObject(b->da);
	if (b->db) clReleaseMemObject(b->db);
	if (b->db32) clReleaseMemObject(b->db32);
	if (b->dc) clReleaseMemObject(b->dc);
	free(b->a);
	free(b->b);
	free(b->c);
	free(b->ref);
	free(b->bh);
	memset(b, 0, sizeof *b);
}

static int make_bufs(hf_cl *cl, const bshape *s, const bopts *o, bufs *b)
{
	size_t na = s->m * s->k, nb = s->k * s->n, nc = s->m * s->n;
	memset(b, 0, sizeof *b);
	b->a = malloc(na * 4);
	b->b = malloc(nb * 4);
	b->c = malloc(nc * 4);
	b->ref = malloc(nc * 4);
	b->bh = malloc(nb * 2);
	if (!b->a || !b->b || !b->c || !b->ref || !b->bh)
		return -1;
	fill(b->a, na, 1);
	fill(b->b, nb, 2);
	for (size_t i = 0; i < nb; i++)
		b->bh[i] = to_half(b->b[i]);
	b->da = dev_buf(cl, na * 4, b->a);
	b->db32 = dev_buf(cl, nb * 4, b->b);
	b->db = o->half ? dev_buf(cl, nb * 2, b->bh) : NULL;
	b->dc = dev_buf(cl, nc * 4, NULL);
	return b->da && b->db32 && b->dc && (!o->half || b->db) ? 0 : -1;
}

/* ---- one shape ---- */

/* One engine of a shape's comparison: a run function, its context and its timings. */
typedef struct engine {
	run_fn fn;
	void *ctx;
	double *gflops; /* where the median goes */
	const char *name;
	hf_bench_window *win; /* where its energy window goes */
	double t[1000], spent;
	unsigned n;
	int err;
} engine;

/* Times the engines round-robin (one run of each per round, after an untimed warm run of
 * each) until every engine has reps runs or has spent its budget, so that all of them see the
 * same minutes of a shared, noisy machine; each gets the median of its runs. */
static void time_interleaved(engine *e, size_t ne, const bshape *s, const bopts *o)
{
	for (size_t i = 0; i < ne; i++)
		e[i].err = e[i].fn(e[i].ctx);
	for (bool more = true; more;) {
		more = false;
		for (size_t i = 0; i < ne; i++) {
			if (e[i].err || e[i].n >= o->reps || e[i].spent > o->budget_s)
				continue;
			double t0 = now_s();
			if ((e[i].err = e[i].fn(e[i].ctx)))
				continue;
			e[i].t[e[i].n] = now_s() - t0;
			e[i].spent += e[i].t[e[i].n++];
			more = true;
		}
	}
	for (size_t i = 0; i < ne; i++)
		if (!e[i].err && e[i].n)
			*e[i].gflops = gflops(s, median(e[i].t, e[i].n));
}

/* Each engine's energy window: --warmup seconds (at least one run) not counted, then runs back
 * to back for --seconds (at least one); the work is the runs' FLOPs. */
static void energy_windows(engine *e, size_t ne, const bshape *s, const bopts *o,
			   hf_bench_meter *meter)
{
	char shape[48];
	double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
	snprintf(shape, sizeof shape, "%zux%zux%zu", s->m, s->k, s->n);
	for (size_t i = 0; i < ne; i++) {
		if (e[i].err)
			continue;
		hf_bench_phase ph = { .section = "gemm", .impl = e[i].name, .shape = shape,
				      .reference = strcmp(e[i].name, "ours") != 0, .scale = 1e-9,
				      .rate_unit = "GFLOP/s", .eff_unit = "GFLOP/J" };
		hf_bench_phase_warmup(meter, &ph);
		double end = now_s() + o->c.warmup;
		int err;
		do {
			err = e[i].fn(e[i].ctx);
			hf_bench_phase_add(meter, flops);
		} while (!err && now_s() < end);
		hf_bench_phase_measure(meter);
		end = now_s() + o->c.seconds;
		double runs = 0;
		while (!err) {
			if ((err = e[i].fn(e[i].ctx)))
				break;
			runs++;
			hf_bench_phase_add(meter, flops);
			if (now_s() >= end)
				break;
		}
		if (err)
			hf_bench_phase_abort(meter);
		else
			hf_bench_phase_end(meter, runs * flops, e[i].win);
	}
}

/* Without OpenBLAS the correctness check uses a plain loop (slow on big shapes). */
static void plain_reference(const bopts *o, bufs *b, const bshape *s)
{
	for (size_t i = 0; i < s->m; i++)
		for (size_t j = 0; j < s->n; j++) {
			double acc = 0;
			for (size_t p = 0; p < s->k; p++)
				acc += (double)b->a[i * s->k + p] *
				       b->b[o->trans_b ? j * s->k + p : p * s->n + j];
			b->ref[i * s->n + j] = (float)acc;
		}
}

static void bench_shape(hf_cl *cl, const bopts *o, bufs *b, bresult *r, hf_bench_meter *meter)
{
	hf_gemm_shape gs = { .m = r->s.m, .n = r->s.n, .k = r->s.k, .trans_b = o->trans_b,
			     .b_type = o->half ? HF_GEMM_B_F16 : HF_GEMM_B_F32 };
	hf_gemm_plan *plan = NULL;
	hf_errbuf eb;
	engine *e = calloc(5, sizeof *e);
	size_t ne = 0;
	if (!e) {
		snprintf(r->note, sizeof r->note, "out of memory");
		return;
	}
	ours_ctx c = { NULL, hf_cl_queue(cl), b->da, o->half ? b->db : b->db32, b->dc };
	if (hf_gemm_plan_new(cl, &gs, o->forced ? &o->kernel : NULL, &plan, &eb)) {
		snprintf(r->note, sizeof r->note, "ours: %s", eb.msg);
	} else if (o->prepack && hf_gemm_prepack_b(plan, c.b, &eb)) {
		snprintf(r->note, sizeof r->note, "ours: %s", eb.msg);
	} else {
		hf_gemm_params_describe(hf_gemm_plan_params(plan), r->params, sizeof r->params);
		r->tuned = hf_gemm_plan_tuned(plan);
		c.plan = plan;
		e[ne++] = (engine){ .fn = run_ours, .ctx = &c, .gflops = &r->ours, .name = "ours",
				    .win = &r->w_ours };
	}
	ob_ctx ob1 = { r->s, o->trans_b, false, 1, b->a, b->b, b->ref };
	ob_ctx obn = ob1, gv = ob1;
	obn.threads = gv.threads = openblas_get_num_threads();
	gv.gemv = true;
	if (o->openblas) {
		e[ne++] = (engine){ .fn = run_openblas, .ctx = &ob1, .gflops = &r->ob1,
				    .name = "openblas-1t", .win = &r->w_ob1 };
		e[ne++] = (engine){ .fn = run_openblas, .ctx = &obn, .gflops = &r->obn,
				    .name = "openblas", .win = &r->w_obn };
		if (r->s.m == 1)
			e[ne++] = (engine){ .fn = run_openblas, .ctx = &gv, .gflops = &r->ob_gemv,
					    .name = "openblas-sgemv", .win = &r->w_gemv };
	}
	clb_ctx cc = { r->s, o->trans_b, hf_cl_queue(cl), b->da, b->db32, b->dc };
	if (o->clblast)
		e[ne++] = (engine){ .fn = run_clblast, .ctx = &cc, .gflops = &r->clblast,
				    .name = "clblast", .win = &r->w_clblast };
	time_interleaved(e, ne, &r->s, o);
	energy_windows(e, ne, &r->s, o, meter);
	/* CLBlast wrote C last (or not at all): the check needs our result, so run ours once
	 * more; the reference is OpenBLAS's (all threads) output or the plain loop's. */
	if (plan && e[0].err == 0 && run_ours(&c) == 0) {
		clEnqueueReadBuffer(c.q, b->dc, CL_TRUE, 0, r->s.m * r->s.n * 4, b->c, 0, NULL,
				    NULL);
	} else if (plan) {
		snprintf(r->note, sizeof r->note, "ours: run failed");
		r->ours = 0;
	}
	if (o->openblas)
		run_openblas(&obn);
	else
		plain_reference(o, b, &r->s);
	if (o->clblast && e[ne - 1].err)
		snprintf(r->note, sizeof r->note, "CLBlast: status %d", e[ne - 1].err);
	openblas_set_num_threads(obn.threads);
	hf_gemm_plan_free(plan);
	free(e);
}

static void check(const bopts *o, const bufs *b, bresult *r)
{
	/* Elements of A and B are in [-1, 1): |error| scales with sqrt(K) (FP16 B: its rounding). */
	double tol = (o->half ? 2e-3 : 2e-5) * sqrt((double)r->s.k) + 1e-5;
	if (!(r->ours > 0)) { /* our engine did not run (see the note): nothing to compare */
		r->max_err = INFINITY;
		r->ok = false;
		return;
	}
	r->max_err = 0;
	for (size_t i = 0; i < r->s.m * r->s.n; i++) {
		double e = fabs((double)b->c[i] - b->ref[i]);
		if (!(e <= r->max_err))
			r->max_err = isnan(e) ? INFINITY : e;
	}
	r->ok = r->max_err <= tol;
}

/* ---- first call (forked children) ---- */

typedef struct first_call {
	double ours_cold_ms, ours_warm_ms, clb_cold_ms, clb_warm_ms;
	bool ran;
} first_call;

static double child_first_call(const bopts *o, const char *dir, bool clblast)
{
	int fd[2];
	double ms = -1;
	if (pipe(fd))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char pocl[PATH_MAX];
		snprintf(pocl, sizeof pocl, "%s/pocl", dir);
		hf_mkdir_p(pocl, 0755, NULL);
		setenv("POCL_CACHE_DIR", pocl, 1);
		const bshape *s = &o->shapes[0];
		bufs b;
		hf_cl *cl;
		hf_cl_opts co = { .cache_dir = dir };
		double t0 = now_s(), v = -1;
		if (hf_cl_open(o->device, &co, &cl, NULL) == 0) {
			if (make_bufs(cl, s, o, &b) == 0) {
				if (clblast) {
					clb_ctx cc = { *s, o->trans_b, hf_cl_queue(cl), b.da, b.db32,
						       b.dc };
					t0 = now_s();
					if (run_clblast(&cc) == 0)
						v = (now_s() - t0) * 1e3;
				} else {
					hf_gemm_shape gs = { .m = s->m, .n = s->n, .k = s->k,
							     .trans_b = o->trans_b,
							     .b_type = o->half ? HF_GEMM_B_F16 :
										 HF_GEMM_B_F32 };
					hf_gemm_plan *plan;
					t0 = now_s(); /* from plan creation to the result */
					if (hf_gemm_plan_new(cl, &gs,
							     o->forced ? &o->kernel : NULL, &plan,
							     NULL) == 0) {
						ours_ctx c = { plan, hf_cl_queue(cl), b.da,
							       o->half ? b.db : b.db32, b.dc };
						if (run_ours(&c) == 0)
							v = (now_s() - t0) * 1e3;
						hf_gemm_plan_free(plan);
					}
				}
			}
			free_bufs(&b);
			hf_cl_free(cl);
		}
		if (write(fd[1], &v, sizeof v) != sizeof v)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (pid > 0) {
		if (read(fd[0], &ms, sizeof ms) != sizeof ms)
			ms = -1;
		waitpid(pid, NULL, 0);
	}
	close(fd[0]);
	return ms;
}

static void measure_first_call(const bopts *o, first_call *fc)
{
	char dir[] = "/tmp/hashflop-bench-cold-XXXXXX", cmd[128];
	memset(fc, 0, sizeof *fc);
	if (!mkdtemp(dir))
		return;
	fc->ran = true;
	fc->ours_cold_ms = child_first_call(o, dir, false);
	fc->ours_warm_ms = child_first_call(o, dir, false);
	if (o->first_call_clblast && o->clblast) {
		fc->clb_cold_ms = child_first_call(o, dir, true);
		fc->clb_warm_ms = child_first_call(o, dir, true);
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "hashflop-bench gemm: could not remove %s\n", dir);
}

/* ---- tuning ---- */

#define PACKED(VW, MR, NV, TM, KU, KC) \
	{ .family = HF_GEMM_PACKED, .vw = VW, .mr = MR, .nv = NV, .tm = TM, .ku = KU, .pk = 64, .kc = KC }
#define GEMV(VW, NV, MB, JB) { .family = HF_GEMM_GEMV, .vw = VW, .nv = NV, .mb = MB, .jb = JB }
#define DIRECT(WM, KU) { .family = HF_GEMM_DIRECT, .wm = WM, .ku = KU }
#define TILED(LX, LY, WM, WN, KC, VW) \
	{ .family = HF_GEMM_TILED, .lx = LX, .ly = LY, .wm = WM, .wn = WN, .kc = KC, .vw = VW }
static const hf_gemm_params packed_candidates[] = {
	PACKED(16, 6, 1, 4, 2, 256), PACKED(16, 6, 1, 8, 2, 256), PACKED(16, 6, 1, 16, 2, 256),
	PACKED(16, 6, 1, 8, 2, 128), PACKED(16, 6, 1, 8, 2, 512), PACKED(16, 6, 1, 32, 2, 128),
	PACKED(16, 6, 1, 8, 1, 256), PACKED(16, 4, 1, 8, 2, 256), PACKED(8, 6, 2, 8, 2, 256),
	PACKED(16, 8, 2, 8, 1, 128), PACKED(16, 14, 1, 8, 1, 128), /* AVX-512: 16 and 28 zmm */
};
static const hf_gemm_params gemv_candidates[] = {
	GEMV(8, 4, 4, 4), GEMV(8, 2, 4, 2), GEMV(8, 8, 1, 8),
	GEMV(16, 2, 2, 4), GEMV(8, 4, 2, 1), GEMV(4, 4, 4, 4),
};
static const hf_gemm_params direct_candidates[] = { DIRECT(4, 4), DIRECT(1, 1), DIRECT(8, 4) };
/* GPUs: 128 x 128 down to 64 x 64 tiles of C, 16 to 64 accumulators per work-item, 128-bit
 * (vw 4) or scalar local reads. */
static const hf_gemm_params tiled_candidates[] = {
	TILED(16, 16, 8, 8, 16, 4), TILED(16, 16, 8, 8, 16, 1), TILED(16, 16, 8, 8, 8, 4),
	TILED(16, 16, 8, 8, 32, 4), TILED(16, 16, 4, 8, 16, 4), TILED(16, 8, 8, 8, 16, 4),
	TILED(32, 8, 4, 4, 16, 4), TILED(16, 16, 4, 4, 32, 4), TILED(8, 8, 8, 8, 16, 4),
	TILED(16, 16, 6, 6, 16, 1),
};
/* GPUs, M <= 48: one or two rows per work-item, wide rows of work-items. */
static const hf_gemm_params tiled_small_candidates[] = {
	TILED(64, 1, 1, 2, 32, 1), TILED(64, 4, 1, 2, 32, 1), TILED(32, 8, 1, 4, 32, 1),
	TILED(128, 1, 1, 1, 64, 1), TILED(64, 8, 2, 2, 16, 1), TILED(32, 4, 2, 4, 32, 1),
	TILED(16, 4, 4, 4, 32, 4),
};
#undef PACKED
#undef GEMV
#undef DIRECT
#undef TILED

static int tune_shape(hf_cl *cl, const bopts *o, const bshape *s)
{
	hf_gemm_shape gs = { .m = s->m, .n = s->n, .k = s->k, .trans_b = o->trans_b,
			     .b_type = o->half ? HF_GEMM_B_F16 : HF_GEMM_B_F32 };
	const char *cls = hf_gemm_shape_class(hf_cl_info(cl), &gs);
	const hf_gemm_params *cand = packed_candidates;
	size_t nc = HF_ARRAY_SIZE(packed_candidates);
	hf_gemm_params best = { 0 };
	double best_t = INFINITY;
	hf_errbuf eb;
	bufs b;
	char desc[128];
	if (strncmp(cls, "tiled-small", 11) == 0) {
		cand = tiled_small_candidates;
		nc = HF_ARRAY_SIZE(tiled_small_candidates);
	} else if (strncmp(cls, "tiled", 5) == 0) {
		cand = tiled_candidates;
		nc = HF_ARRAY_SIZE(tiled_candidates);
	} else if (strncmp(cls, "gemv", 4) == 0) {
		cand = gemv_candidates;
		nc = HF_ARRAY_SIZE(gemv_candidates);
	} else if (strncmp(cls, "direct", 6) == 0) {
		cand = direct_candidates;
		nc = HF_ARRAY_SIZE(direct_candidates);
	}
	if (make_bufs(cl, s, o, &b)) {
		free_bufs(&b);
		fprintf(stderr, "hashflop-bench gemm: out of memory for %zux%zux%zu\n", s->m, s->k,
			s->n);
		return 1;
	}
	fprintf(stderr, "tuning %zux%zux%zu (class %s, %zu candidates)\n", s->m, s->k, s->n, cls,
		nc);
	for (size_t i = 0; i < nc; i++) {
		hf_gemm_plan *plan;
		int err;
		if (hf_gemm_plan_new(cl, &gs, &cand[i], &plan, &eb)) {
			fprintf(stderr, "  %-44s refused: %s\n",
				hf_gemm_params_describe(&cand[i], desc, sizeof desc), eb.msg);
			continue;
		}
		ours_ctx c = { plan, hf_cl_queue(cl), b.da, o->half ? b.db : b.db32, b.dc };
		double t = time_runs(run_ours, &c, o, &err);
		fprintf(stderr, "  %-44s %8.1f GFLOP/s\n",
			hf_gemm_params_describe(hf_gemm_plan_params(plan), desc, sizeof desc),
			err ? 0 : gflops(s, t));
		if (!err && t < best_t) {
			/* Store the candidate as given: its zero fields stay "chosen from the
			 * shape" (k-splits, rows per pass, tiles per strip) for the whole class. */
			best_t = t;
			best = cand[i];
		}
		hf_gemm_plan_free(plan);
	}
	free_bufs(&b);
	if (!isfinite(best_t))
		return 1;
	if (hf_gemm_tuning_store(o->cache_dir, hf_cl_info(cl), cls, &best, &eb)) {
		fprintf(stderr, "hashflop-bench gemm: %s\n", eb.msg);
		return 1;
	}
	fprintf(stderr, "  winner for %s: %s (stored in %s/gemm-tuning.json)\n", cls,
		hf_gemm_params_describe(&best, desc, sizeof desc), o->cache_dir);
	return 0;
}

/* ---- output ---- */

static double ratio(double a, double b) { return a > 0 && b > 0 ? a / b : 0; }

static void print_table(const bopts *o, const hf_cl_device_info *dev, const bresult *r,
			size_t n, const first_call *fc, const hf_bench_meter *meter)
{
	printf("device: %s [%s] (%s, %s), %u compute units\n", dev->name, dev->selector,
	       dev->platform, dev->driver_version, dev->compute_units);
	if (o->openblas)
		printf("OpenBLAS: kernel %s, %d threads (OPENBLAS_CORETYPE=%s)\n",
		       openblas_get_corename(), openblas_get_num_threads(),
		       getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
	if (o->clblast_why[0])
		printf("CLBlast: %s\n", o->clblast_why);
	printf("B: %s%s%s; GFLOP/s are medians of up to %u runs (%.1f s budget per engine, engines taking turns)\n\n",
	       o->half ? "FP16 storage (ours), FP32 (references)" : "FP32",
	       o->trans_b ? ", transposed" : "", o->prepack ? ", packed once (ours)" : "", o->reps,
	       o->budget_s);
	printf("%-16s %9s %9s %9s %9s %9s %8s %8s %8s %9s  %s\n", "MxKxN", "ours", "CLBlast",
	       "OB 1thr", "OB all", "OB sgemv", "ours/OB", "ours/CLB", "vs gemv", "max err",
	       "check / kernel");
	for (size_t i = 0; i < n; i++) {
		char shape[48];
		snprintf(shape, sizeof shape, "%zux%zux%zu", r[i].s.m, r[i].s.k, r[i].s.n);
		printf("%-16s %9.1f %9.1f %9.1f %9.1f %9.1f %8.2f %8.2f %8.2f %9.2e  %s %s%s%s\n",
		       shape, r[i].ours, r[i].clblast, r[i].ob1, r[i].obn, r[i].ob_gemv,
		       ratio(r[i].ours, r[i].obn), ratio(r[i].ours, r[i].clblast),
		       ratio(r[i].ours, r[i].ob_gemv), r[i].max_err, r[i].ok ? "ok" : "FAIL",
		       r[i].params, r[i].tuned ? " (tuned)" : "", r[i].note[0] ? "" : "");
		if (r[i].note[0])
			printf("%-16s note: %s\n", "", r[i].note);
	}
	if (o->peak_gflops > 0) {
		printf("\nours against the %.0f GFLOP/s FP32 peak:", o->peak_gflops);
		for (size_t i = 0; i < n; i++)
			printf("%s %zux%zux%zu %.1f%%", i ? "," : "", r[i].s.m, r[i].s.k, r[i].s.n,
			       100.0 * r[i].ours / o->peak_gflops);
		printf("\n");
	}
	if (fc->ran) {
		printf("\nfirst call (fresh process, plan creation to result, %zux%zux%zu): ours "
		       "%.1f ms with a cold cache, %.1f ms warm",
		       o->shapes[0].m, o->shapes[0].k, o->shapes[0].n, fc->ours_cold_ms,
		       fc->ours_warm_ms);
		if (fc->clb_cold_ms > 0)
			printf("; CLBlast %.1f ms cold, %.1f ms warm", fc->clb_cold_ms,
			       fc->clb_warm_ms);
		printf("\n");
	}
	printf("0.0 = not run. ours/OB is against OpenBLAS with all threads.\n");
	hf_bench_print_windows(meter, "gemm", stdout);
	printf("(each engine alone for %.2f s after %.2f s of warm-up: sustained GFLOP/s and GFLOP/J "
	       "from the same window)\n", o->c.seconds, o->c.warmup);
}

static json_t *energy_json(const hf_bench_meter *meter, const bresult *r)
{
	json_t *e = json_object();
	json_object_set_new(e, "ours", hf_bench_window_json(meter, &r->w_ours));
	json_object_set_new(e, "clblast", hf_bench_window_json(meter, &r->w_clblast));
	json_object_set_new(e, "openblas_1t", hf_bench_window_json(meter, &r->w_ob1));
	json_object_set_new(e, "openblas", hf_bench_window_json(meter, &r->w_obn));
	json_object_set_new(e, "openblas_sgemv", hf_bench_window_json(meter, &r->w_gemv));
	return e;
}

/* The section (the legacy --json document plus power and energy windows). */
static void fill_json(json_t *root, const bopts *o, const hf_cl_device_info *dev,
		      const bresult *r, size_t n, const first_call *fc,
		      const hf_bench_meter *meter)
{
	json_t *arr = json_array();
	json_object_set_new(root, "device", json_pack("{s:s,s:s,s:s,s:s,s:i}", "selector",
						      dev->selector, "name", dev->name, "platform",
						      dev->platform, "driver", dev->driver_version,
						      "compute_units", (int)dev->compute_units));
	if (o->openblas)
		json_object_set_new(root, "openblas",
				    json_pack("{s:s,s:i}", "core", openblas_get_corename(),
					      "threads", openblas_get_num_threads()));
	json_object_set_new(root, "b_storage", json_string(o->half ? "f16" : "f32"));
	json_object_set_new(root, "trans_b", json_boolean(o->trans_b));
	json_object_set_new(root, "prepacked_b", json_boolean(o->prepack));
	if (o->peak_gflops > 0)
		json_object_set_new(root, "peak_gflops", json_real(o->peak_gflops));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(
			arr, json_pack("{s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b,s:s,s:b,s:s}",
				       "m", (json_int_t)r[i].s.m, "k", (json_int_t)r[i].s.k, "n",
				       (json_int_t)r[i].s.n, "ours_gflops", r[i].ours,
				       "clblast_gflops", r[i].clblast, "openblas_1t_gflops", r[i].ob1,
				       "openblas_gflops", r[i].obn, "openblas_sgemv_gflops",
				       r[i].ob_gemv, "ratio_openblas", ratio(r[i].ours, r[i].obn),
				       "ratio_clblast", ratio(r[i].ours, r[i].clblast),
				       "max_abs_err", isfinite(r[i].max_err) ? r[i].max_err : -1.0,
				       "ok", r[i].ok, "kernel", r[i].params, "tuned", r[i].tuned,
				       "note", r[i].note));
	for (size_t i = 0; o->peak_gflops > 0 && i < n; i++)
		json_object_set_new(json_array_get(arr, i), "fraction_of_peak",
				    json_real(r[i].ours / o->peak_gflops));
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(arr, i);
		json_object_set_new(x, "energy", energy_json(meter, &r[i]));
		json_object_set_new(x, "ours_gflop_per_j", r[i].w_ours.valid ?
				    json_real(r[i].w_ours.per_j) : json_null());
	}
	json_object_set_new(root, "results", arr);
	json_object_set_new(root, "power", hf_bench_meter_power_json(meter));
	json_object_set_new(root, "energy_window_s", json_real(o->c.seconds));
	json_object_set_new(root, "warmup_s", json_real(o->c.warmup));
	if (fc->ran)
		json_object_set_new(root, "first_call_ms",
				    json_pack("{s:f,s:f,s:f,s:f}", "ours_cold", fc->ours_cold_ms,
					      "ours_warm", fc->ours_warm_ms, "clblast_cold",
					      fc->clb_cold_ms, "clblast_warm", fc->clb_warm_ms));
}

typedef struct gemm_ctx {
	bopts *o;
	hf_cl *cl;
	first_call fc;
} gemm_ctx;

static int gemm_body(hf_bench_meter *meter, void *ctx, json_t *section)
{
	gemm_ctx *g = ctx;
	bopts *o = g->o;
	bresult res[MAX_SHAPES];
	int failed = 0;
	for (size_t i = 0; i < o->nshapes; i++) {
		bufs b;
		memset(&res[i], 0, sizeof res[i]);
		res[i].s = o->shapes[i];
		if (make_bufs(g->cl, &o->shapes[i], o, &b)) {
			snprintf(res[i].note, sizeof res[i].note, "out of memory");
			free_bufs(&b);
			failed = 1;
			continue;
		}
		if (!o->c.json_stdout)
			fprintf(stderr, "running %zux%zux%zu ...\n", res[i].s.m, res[i].s.k,
				res[i].s.n);
		bench_shape(g->cl, o, &b, &res[i], meter);
		check(o, &b, &res[i]);
		failed |= !res[i].ok;
		free_bufs(&b);
	}
	fill_json(section, o, hf_cl_info(g->cl), res, o->nshapes, &g->fc, meter);
	if (!o->c.json_stdout)
		print_table(o, hf_cl_info(g->cl), res, o->nshapes, &g->fc, meter);
	return failed;
}

int hf_bench_gemm_run(int argc, char **argv, hf_bench_meter *shared,
		      const hf_bench_common *shared_c, json_t *sections)
{
	bopts o;
	gemm_ctx g = { .o = &o };
	hf_errbuf eb;
	hf_bench_meter *meter = shared;
	int r = parse_args(argc, argv, &o);
	if (r)
		return r == 1 ? 0 : r;
	if (o.openblas && !shared) {
		/* argv is the subcommand's view: argv[-1] is the program name. */
		hf_bench_gemm_pick_openblas(argv - 1);
	}
	if (o.clblast && !load_clblast(o.clblast_why, sizeof o.clblast_why))
		o.clblast = false;
	if (hf_mkdir_p(o.cache_dir, 0755, &eb)) {
		fprintf(stderr, "hashflop-bench gemm: cache dir: %s\n", eb.msg);
		return 1;
	}
	/* Forked children, before this process touches OpenCL (the meter's PCI look-up does). */
	if (o.first_call && !o.tune)
		measure_first_call(&o, &g.fc);
	if (!shared) {
		char pci[32] = "";
		if (o.c.power_kind == HF_POWER_AUTO || o.c.power_kind == HF_POWER_NVML)
			hf_bench_cl_pci_bus_id(o.device, pci, sizeof pci);
		meter = hf_bench_meter_open("gemm", &o.c, pci, o.c.json_stdout ? stderr : stdout);
		if (!meter)
			return o.c.nlimits ? 2 : 1;
	} else {
		o.c.nlimits = shared_c->nlimits;
		memcpy(o.c.limits, shared_c->limits, sizeof o.c.limits);
	}
	hf_cl_opts co = { .cache_dir = o.cache_dir };
	if ((r = hf_cl_open(o.device, &co, &g.cl, &eb))) {
		fprintf(stderr, "hashflop-bench gemm: %s: %s\n", hf_strerror(r), eb.msg);
		if (!shared)
			hf_bench_meter_free(meter);
		return 1;
	}
	if (o.tune) {
		int bad = 0;
		for (size_t i = 0; i < o.nshapes; i++)
			bad |= tune_shape(g.cl, &o, &o.shapes[i]);
		hf_cl_free(g.cl);
		if (!shared)
			hf_bench_meter_free(meter);
		return bad;
	}
	json_t *secs = shared ? sections : json_object();
	int failed = hf_bench_sweep("gemm", meter, &o.c, "gemm", gemm_body, &g, secs);
	hf_cl_free(g.cl);
	if (shared)
		return failed;
	if (o.c.json_stdout) {
		char *s = json_dumps(json_object_get(secs, "gemm"), JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	}
	json_t *doc = hf_bench_meter_document(meter, "gemm", secs);
	if (hf_bench_write_document("gemm", &o.c, doc))
		failed = 1;
	json_decref(doc);
	hf_bench_meter_free(meter);
	return failed;
}

int hf_bench_gemm_main(int argc, char **argv)
{
	return hf_bench_gemm_run(argc, argv, NULL, NULL, NULL);
}
