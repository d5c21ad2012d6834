/* Unit tests for hf_gemm: every kernel family against a plain C reference (double accumulation)
 * and against OpenBLAS on awkward shapes, transposes, alpha/beta combinations, beta = 0 with NaN
 * in C, FP16 weights, leading dimensions, K = 0, parameter validation, the device's limits and
 * the tuning database.
 * Uses one program per family and B type (6 in all) through a cache in the build directory, so
 * PoCL compiles each once per build tree.
 * The device is HF_TEST_CL_DEVICE or "auto" (PoCL in CI, a GPU in benchmarks/gpu-check.sh):
 * every limit (local memory, work-group size) and every automatic choice (which depends on the
 * device type) is taken from that device, never assumed. With no OpenCL platform or device at
 * all the device tests are reported skipped; any other failure fails them. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_gemm.h"
#include "hf_util.h"

static hf_cl *cl;
static char cache[512];

/* The device under test: HF_TEST_CL_DEVICE (an hf_cl selector; benchmarks/gpu-check.sh sets
 * "nvidia"), else "auto" (PoCL on CI). */
static const char *test_device(void)
{
	const char *d = getenv("HF_TEST_CL_DEVICE");
	return d && *d ? d : "auto";
}

/* PoCL's environment, set before Criterion (or anything else) starts a thread: a constructor
 * runs before main, and every test process inherits the runner's environment. */
__attribute__((constructor)) static void cl_env(void)
{
	hf_cl_env_init(NULL, NULL);
}

/* Skips when the machine has no OpenCL platform or device at all; a chosen device that is
 * missing, or any other failure, fails. */
static void open_device(void)
{
	hf_errbuf eb;
	size_t n = 0;
	int r = hf_cl_list(NULL, 0, &n, &eb);
	cr_assert_eq(r, 0, "hf_cl_list: %s: %s", hf_strerror(r), eb.msg);
	if (n == 0)
		cr_skip_test("no OpenCL platform or device on this machine: hf_gemm was NOT tested");
	const char *root = getenv("HF_BUILD_ROOT");
	snprintf(cache, sizeof cache, "%s/gemm-test-cache", root ? root : "/tmp");
	hf_cl_opts o = { .cache_dir = cache };
	r = hf_cl_open(test_device(), &o, &cl, &eb);
	cr_assert_eq(r, 0, "device \"%s\": %s: %s", test_device(), hf_strerror(r), eb.msg);
}

static void close_device(void)
{
	hf_cl_free(cl);
	cl = NULL;
}

/* ---- host helpers ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) & 0xffff) / 32768.0f - 1.0f;
}

/* IEEE binary16 from float, round to nearest even (normal and subnormal results, no NaN). */
static uint16_t to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	float a = fabsf(f);
	if (a >= 65520.0f)
		return sign | 0x7c00;
	if (a < 6.103515625e-05f) { /* subnormal: units of 2^-24 */
		float q = rintf(a * 16777216.0f);
		return sign | (uint16_t)q;
	}
	int e;
	float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
	float q = rintf(m * 2048.0f); /* 11 significant bits */
	if (q >= 2048.0f) {
		q /= 2.0f;
		e++;
	}
	return sign | (uint16_t)(((e + 14) << 10) | ((uint16_t)q & 0x3ff));
}

static float from_half(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), e - 25);
	return (h & 0x8000) ? -v : v;
}

typedef struct gcase {
	size_t m, n, k;
	bool ta, tb, half;
	float alpha, beta;
	size_t lda, ldb, ldc; /* 0 = dense */
} gcase;

/* Runs one case with the given parameters (NULL: the plan's own choice) and checks it. */
static void check_case(const gcase *g, const hf_gemm_params *prm)
{
	size_t m = g->m, n = g->n, k = g->k;
	size_t lda = g->lda ? g->lda : (g->ta ? m : k), ldb = g->ldb ? g->ldb : (g->tb ? k : n);
	size_t ldc = g->ldc ? g->ldc : n;
	size_t na = (g->ta ? k : m) * lda, nb = (g->tb ? n : k) * ldb, nc = m * ldc;
	float *a = malloc((na + 1) * 4), *b = malloc((nb + 1) * 4), *c = malloc((nc + 1) * 4);
	float *out = malloc((nc + 1) * 4);
	uint16_t *bh = malloc((nb + 1) * 2);
	hf_errbuf eb;
	cl_int st;
	for (size_t i = 0; i < na; i++)
		a[i] = frand();
	for (size_t i = 0; i < nb; i++) {
		b[i] = frand();
		bh[i] = to_half(b[i]);
		if (g->half)
			b[i] = from_half(bh[i]); /* the reference sees the stored weights */
	}
	for (size_t i = 0; i < nc; i++)
		c[i] = g->beta == 0.0f ? NAN : frand();

	hf_gemm_shape s = { .m = m, .n = n, .k = k, .trans_a = g->ta, .trans_b = g->tb,
			    .b_type = g->half ? HF_GEMM_B_F16 : HF_GEMM_B_F32,
			    .lda = g->lda, .ldb = g->ldb, .ldc = g->ldc };
	hf_gemm_plan *plan;
	cr_assert_eq(hf_gemm_plan_new(cl, &s, prm, &plan, &eb), 0, "%s", eb.msg);
	cl_context ctx = hf_cl_context(cl);
	cl_mem ma = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (na + 1) * 4, a,
				   &st);
	cl_mem mb = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
				   (nb + 1) * (g->half ? 2 : 4), g->half ? (void *)bh : (void *)b,
				   &st);
	cl_mem mc = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, (nc + 1) * 4, c,
				   &st);
	cr_assert(ma && mb && mc);
	cr_assert_eq(hf_gemm_run(plan, g->alpha, ma, mb, g->beta, mc, &eb), 0, "%s", eb.msg);
	cr_assert_eq(clEnqueueReadBuffer(hf_cl_queue(cl), mc, CL_TRUE, 0, nc * 4, out, 0, NULL,
					 NULL), CL_SUCCESS);
	char desc[128];
	hf_gemm_params_describe(hf_gemm_plan_params(plan), desc, sizeof desc);

	for (size_t i = 0; i < m; i++) {
		for (size_t j = 0; j < ldc; j++) {
			float got = out[i * ldc + j];
			if (j >= n) { /* padding columns of C are never written */
				cr_assert(memcmp(&got, &c[i * ldc + j], 4) == 0,
					  "C padding written at (%zu,%zu)", i, j);
				continue;
			}
			double acc = 0.0, mag = 0.0;
			for (size_t p = 0; p < k; p++) {
				double x = a[g->ta ? p * lda + i : i * lda + p];
				double y = b[g->tb ? j * ldb + p : p * ldb + j];
				acc += x * y;
				mag += fabs(x * y);
			}
			double want = g->alpha * acc;
			if (g->beta != 0.0f)
				want += (double)g->beta * c[i * ldc + j];
			double tol = 1e-5 + 4.0 * FLT_EPSILON * (double)(k + 2) *
					    (fabs(g->alpha) * mag + fabs(g->beta) * 1.0);
			cr_assert(fabs(got - want) <= tol,
				  "%s M=%zu N=%zu K=%zu ta=%d tb=%d half=%d alpha=%g beta=%g: "
				  "C[%zu][%zu] = %.7g, want %.7g", desc, m, n, k, g->ta, g->tb,
				  g->half, g->alpha, g->beta, i, j, got, want);
		}
	}
	clReleaseMemObject(ma);
	clReleaseMemObject(mb);
	clReleaseMemObject(mc);
	hf_gemm_plan_free(plan);
	free(a);
	free(b);
	free(c);
	free(out);
	free(bh);
}

/* Shapes {M, N, K}: 1, 7, 63, 65, 257 and 1000 in each position, edges in every direction. */
static const size_t shapes[][3] = {
	{ 1, 1, 1 }, { 7, 7, 7 }, { 63, 65, 7 }, { 65, 63, 257 }, { 1, 257, 65 },
	{ 7, 1000, 63 }, { 257, 7, 65 }, { 5, 1, 1000 }, { 1000, 65, 7 }, { 13, 17, 1 },
	{ 33, 48, 129 }, /* N a multiple of the panel width: PACKED reads B in place */
};

/* Forced parameters for the family sweeps: small blocks so that every loop runs several
 * times on these shapes (k-ranges with B packed per range, k-chunks and tiles in PACKED,
 * k-blocks, row passes and k-splits in
 * GEMV); one program per family and B type. */
static const hf_gemm_params sweep_packed = { .family = HF_GEMM_PACKED, .vw = 8, .mr = 5, .nv = 2,
					      .tm = 2, .ku = 2, .pk = 16, .kc = 16, .kl = 20 };
static const hf_gemm_params sweep_gemv = { .family = HF_GEMM_GEMV, .vw = 8, .nv = 2, .mb = 3,
					    .jb = 3, .kb = 16 };
static const hf_gemm_params sweep_direct = { .family = HF_GEMM_DIRECT };
/* A 9 x 8 tile of C per 4 x 3 work-group and k-tiles of 5: neither block copy divides evenly
 * among the 12 work-items, so the guarded loads run too. */
static const hf_gemm_params sweep_tiled = { .family = HF_GEMM_TILED, .lx = 4, .ly = 3, .wm = 3,
					     .wn = 2, .kc = 5 };
/* 128-bit local reads: 8 x 32 tiles of 2 x 4 work-items, blocks of 4 rows and columns. */
static const hf_gemm_params sweep_tiled4 = { .family = HF_GEMM_TILED, .lx = 4, .ly = 2, .wm = 4,
					      .wn = 8, .kc = 6, .vw = 4 };

static void sweep_with(const hf_gemm_params *prm, bool half)
{
	hf_gemm_family fam = prm->family;
	static const float ab[][2] = { { 1.0f, 0.0f }, { -0.5f, 1.0f }, { 2.0f, -1.5f } };
	unsigned t = 0;
	for (size_t i = 0; i < HF_ARRAY_SIZE(shapes); i++) {
		for (unsigned tr = 0; tr < 4; tr++, t++) {
			gcase g = { shapes[i][0], shapes[i][1], shapes[i][2], tr & 1, tr >> 1, half,
				    ab[t % 3][0], ab[t % 3][1], 0, 0, 0 };
			if (fam == HF_GEMM_GEMV && g.ta && g.tb && g.m > 1)
				g.ta = false; /* gemv(t) needs contiguous rows of op(A) */
			check_case(&g, prm);
		}
	}
}

#define SUITE .init = open_device, .fini = close_device

static void sweep(hf_gemm_family fam, bool half)
{
	sweep_with(fam == HF_GEMM_PACKED ? &sweep_packed :
		   fam == HF_GEMM_GEMV	 ? &sweep_gemv :
		   fam == HF_GEMM_TILED	 ? &sweep_tiled :
					   &sweep_direct,
		   half);
}

Test(gemm, packed_family, SUITE) { sweep(HF_GEMM_PACKED, false); }
Test(gemm, gemv_family, SUITE) { sweep(HF_GEMM_GEMV, false); }
Test(gemm, direct_family, SUITE) { sweep(HF_GEMM_DIRECT, false); }
Test(gemm, packed_family_fp16_weights, SUITE) { sweep(HF_GEMM_PACKED, true); }
Test(gemm, gemv_family_fp16_weights, SUITE) { sweep(HF_GEMM_GEMV, true); }
Test(gemm, direct_family_fp16_weights, SUITE) { sweep(HF_GEMM_DIRECT, true); }
Test(gemm, tiled_family, SUITE) { sweep(HF_GEMM_TILED, false); }
Test(gemm, tiled_family_fp16_weights, SUITE) { sweep(HF_GEMM_TILED, true); }
Test(gemm, tiled_family_vector_local_reads, SUITE) { sweep_with(&sweep_tiled4, false); }

/* Bytes of local memory a TILED plan declares (as[KC][TILE_M + PAD], bs[KC][TILE_N + PAD] in
 * gemm_tiled.cl, PAD 4 with vw = 4 and 1 otherwise): the number the plan compares with the
 * device's. */
static uint64_t tiled_local_bytes(const hf_gemm_params *q)
{
	return (uint64_t)q->kc * (q->ly * q->wm + q->lx * q->wn + (q->vw == 4 ? 8 : 2)) * 4;
}

/* The GPU defaults (128 x 128 tiles of 16 x 16 work-groups, and the small-M shape) run on any
 * device: same kernel, same results. A device whose work-groups are smaller gets the same
 * defaults fitted to its own limit. */
Test(gemm, tiled_gpu_defaults_are_correct, SUITE)
{
	hf_cl_device_info gpu = *hf_cl_info(cl);
	gpu.is_gpu = true;
	gpu.max_work_group_size = 1024;
	hf_gemm_shape big = { .m = 300, .n = 200, .k = 50 }, small = { .m = 5, .n = 700, .k = 90 };
	hf_gemm_params pb, ps;
	hf_gemm_default_params(&gpu, &big, &pb);
	hf_gemm_default_params(&gpu, &small, &ps);
	cr_assert_eq(pb.family, HF_GEMM_TILED);
	cr_assert(pb.lx == 16 && pb.ly == 16 && pb.wm == 8 && pb.wn == 8 && pb.kc == 16 &&
		  pb.vw == 4);
	cr_assert_eq(ps.family, HF_GEMM_TILED);
	cr_assert(ps.ly == 8 && ps.wm == 1, "small M: rows of work-items cover M (ly %u)", ps.ly);
	cr_assert_str_eq(hf_gemm_shape_class(&gpu, &big), "tiled");
	cr_assert_str_eq(hf_gemm_shape_class(&gpu, &small), "tiled-small");
	big.b_type = HF_GEMM_B_F16;
	cr_assert_str_eq(hf_gemm_shape_class(&gpu, &big), "tiled-f16");
	/* A device with smaller work-groups gets the same tile shape, fitted. */
	hf_gemm_params fit;
	gpu.max_work_group_size = 64;
	hf_gemm_default_params(&gpu, &big, &fit);
	cr_assert_leq(fit.lx * fit.ly, 64);
	cr_assert(fit.wm == 8 && fit.wn == 8 && fit.kc == 16);
	/* One run of the big tile (its program is the costliest to compile on PoCL) as this
	 * device takes it: the GPU defaults, fitted when its work-groups are smaller; the small-M
	 * shape is the same kernel with other constants, which the sweeps cover. */
	const hf_cl_device_info *dev = hf_cl_info(cl);
	hf_gemm_params run = pb;
	if (dev->max_work_group_size < (size_t)pb.lx * pb.ly) {
		gpu.max_work_group_size = dev->max_work_group_size;
		hf_gemm_default_params(&gpu, &big, &run);
		cr_log_info("work-groups up to %zu here: the %u x %u defaults run as %u x %u",
			    dev->max_work_group_size, pb.lx, pb.ly, run.lx, run.ly);
	}
	cr_assert_leq((size_t)run.lx * run.ly, dev->max_work_group_size);
	gcase g1 = { 300, 200, 50, false, true, false, 1.5f, 0.0f, 0, 0, 0 };
	if (tiled_local_bytes(&run) > dev->local_mem_bytes) { /* not a full-profile device */
		hf_gemm_plan *plan;
		hf_errbuf eb;
		hf_gemm_shape gs = { .m = 300, .n = 200, .k = 50, .trans_b = true };
		cr_assert_eq(hf_gemm_plan_new(cl, &gs, &run, &plan, &eb), HF_EINVAL);
		cr_assert_not_null(strstr(eb.msg, "local memory"), "%s", eb.msg);
		cr_skip_test("%llu B of local memory cannot hold the GPU tile (%llu B): refused, "
			     "not run", (unsigned long long)dev->local_mem_bytes,
			     (unsigned long long)tiled_local_bytes(&run));
	}
	check_case(&g1, &run);
}

/* The AVX-512 defaults (8 x 32 micro-tiles, 16 accumulators of 16 floats) run on any device,
 * with or without AVX-512: same kernels, other constants. */
Test(gemm, avx512_defaults_are_correct, SUITE)
{
	hf_cl_device_info wide = *hf_cl_info(cl);
	wide.is_gpu = false;
	snprintf(wide.name, sizeof wide.name, "pthread-skylake-avx512-Intel Xeon");
	hf_gemm_shape big = { .m = 70, .n = 90, .k = 300 }, one = { .m = 1, .n = 600, .k = 70 };
	hf_gemm_params pb, p1;
	hf_gemm_default_params(&wide, &big, &pb);
	hf_gemm_default_params(&wide, &one, &p1);
	cr_assert(pb.family == HF_GEMM_PACKED && pb.mr == 8 && pb.nv == 2 && pb.vw == 16);
	cr_assert(p1.family == HF_GEMM_GEMV && p1.nv == 4 && p1.vw == 16);
	gcase g1 = { 70, 90, 300, false, false, false, 1.0f, 0.5f, 0, 0, 0 };
	gcase g2 = { 70, 90, 300, true, true, true, -1.0f, 0.0f, 0, 0, 0 };
	gcase g3 = { 1, 600, 70, false, false, false, 2.0f, 1.0f, 0, 0, 0 };
	check_case(&g1, &pb);
	check_case(&g2, &pb);
	check_case(&g3, &p1);
}

Test(gemm, parameter_strings_round_trip)
{
	hf_gemm_params p, q;
	hf_errbuf eb;
	char d[128];
	cr_assert_eq(hf_gemm_params_parse("tiled lx=16,ly=8 wm=4 wn=2 kc=32", &p, &eb), 0, "%s",
		     eb.msg);
	cr_assert(p.family == HF_GEMM_TILED && p.lx == 16 && p.ly == 8 && p.wm == 4 &&
		  p.wn == 2 && p.kc == 32 && p.vw == 0);
	hf_gemm_params_describe(&p, d, sizeof d);
	cr_assert_eq(hf_gemm_params_parse(d, &q, &eb), 0, "%s", eb.msg);
	cr_assert(memcmp(&p, &q, sizeof p) == 0, "%s", d);
	hf_gemm_params pk = { .family = HF_GEMM_PACKED, .vw = 16, .mr = 6, .nv = 1, .tm = 8,
			      .ku = 1, .pk = 64, .kc = 128, .kl = 256 };
	hf_gemm_params_describe(&pk, d, sizeof d);
	cr_assert_eq(hf_gemm_params_parse(d, &q, &eb), 0, "%s", eb.msg);
	cr_assert(memcmp(&pk, &q, sizeof pk) == 0, "%s", d);
	cr_assert_eq(hf_gemm_params_parse("blocked vw=4", &p, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "blocked"), "%s", eb.msg);
	cr_assert_eq(hf_gemm_params_parse("gemv vw", &p, &eb), HF_EINVAL);
	cr_assert_eq(hf_gemm_params_parse("gemv zz=1", &p, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "zz"), "%s", eb.msg);
	cr_assert_eq(hf_gemm_params_parse("gemv mb=17", &p, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "mb"), "%s", eb.msg);
	cr_assert_eq(hf_gemm_params_parse("", &p, &eb), HF_EINVAL);
}

Test(gemm, automatic_choice_and_strides, SUITE)
{
	hf_gemm_shape big = { .m = 200, .n = 300, .k = 100 };
	hf_gemm_shape vec = { .m = 1, .n = 4096, .k = 4096, .trans_b = true };
	hf_gemm_shape tiny = { .m = 3, .n = 5, .k = 7 };
	cr_assert_str_eq(hf_gemm_shape_class(NULL, &big), "packed");
	cr_assert_str_eq(hf_gemm_shape_class(NULL, &vec), "gemv");
	cr_assert_str_eq(hf_gemm_shape_class(NULL, &tiny), "direct");
	vec.b_type = HF_GEMM_B_F16;
	cr_assert_str_eq(hf_gemm_shape_class(NULL, &vec), "gemv-f16");

	/* Leading dimensions wider than the rows; padding of C stays untouched. */
	gcase g1 = { 70, 40, 33, false, false, false, 1.0f, 0.5f, 40, 45, 47 };
	gcase g2 = { 70, 40, 33, true, true, false, 1.0f, 0.0f, 75, 36, 41 };
	gcase g3 = { 2, 40, 33, false, true, true, 1.0f, 1.0f, 35, 34, 44 };
	check_case(&g1, &sweep_packed);
	check_case(&g2, &sweep_packed);
	check_case(&g3, &sweep_gemv);
	/* K = 0: C = beta * C. */
	gcase g4 = { 9, 11, 0, false, false, false, 1.0f, 2.0f, 0, 0, 0 };
	check_case(&g4, NULL);
	/* Row streaming (M <= 2, B not transposed) with K split three ways (partial sums and the
	 * reduce launch), odd rows per pass and column slices, and a strided C. */
	hf_gemm_params split = sweep_gemv; /* K splits are a launch argument: same program */
	split.ks = 3;
	gcase g5 = { 2, 300, 97, false, false, false, -1.0f, 0.5f, 0, 0, 310 };
	check_case(&g5, &split);
	split.ks = 2;
	gcase g6 = { 1, 1000, 63, true, false, true, 2.0f, 0.0f, 0, 0, 0 };
	check_case(&g6, &split);
}

/* One case against OpenBLAS's sgemm: same inputs, same op() flags, alpha and beta (beta = 0:
 * C starts as NaN, which must not reach the result). */
static void check_openblas(const hf_gemm_params *prm, size_t m, size_t n, size_t k, bool ta,
			   bool tb, float alpha, float beta)
{
	float *a = malloc((m * k + 1) * 4), *b = malloc((k * n + 1) * 4);
	float *c = malloc((m * n + 1) * 4), *ref = malloc((m * n + 1) * 4);
	hf_errbuf eb;
	cl_int st;
	for (size_t i = 0; i < m * k; i++)
		a[i] = frand();
	for (size_t i = 0; i < k * n; i++)
		b[i] = frand();
	for (size_t i = 0; i < m * n; i++)
		ref[i] = c[i] = beta == 0.0f ? NAN : frand();
	if (beta == 0.0f)
		for (size_t i = 0; i < m * n; i++)
			ref[i] = 0.0f; /* OpenBLAS may read C with beta = 0; ours must not */
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		    (int)m, (int)n, (int)k, alpha, a, ta ? (int)m : (int)k, b, tb ? (int)k : (int)n,
		    beta, ref, (int)n);
	hf_gemm_shape s = { .m = m, .n = n, .k = k, .trans_a = ta, .trans_b = tb };
	hf_gemm_plan *plan;
	cr_assert_eq(hf_gemm_plan_new(cl, &s, prm, &plan, &eb), 0, "%s", eb.msg);
	cl_mem ma = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, (m * k + 1) * 4, a, &st);
	cl_mem mb = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, (k * n + 1) * 4, b, &st);
	cl_mem mc = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, (m * n + 1) * 4, c, &st);
	cr_assert(ma && mb && mc);
	cr_assert_eq(hf_gemm_run(plan, alpha, ma, mb, beta, mc, &eb), 0, "%s", eb.msg);
	clEnqueueReadBuffer(hf_cl_queue(cl), mc, CL_TRUE, 0, m * n * 4, c, 0, NULL, NULL);
	char desc[128];
	hf_gemm_params_describe(hf_gemm_plan_params(plan), desc, sizeof desc);
	for (size_t i = 0; i < m * n; i++)
		cr_assert(fabsf(c[i] - ref[i]) <= 1e-4f * (1.0f + fabsf(ref[i])),
			  "%s M=%zu N=%zu K=%zu ta=%d tb=%d alpha=%g beta=%g: C[%zu] = %g, "
			  "OpenBLAS %g", desc, m, n, k, ta, tb, alpha, beta, i, c[i], ref[i]);
	clReleaseMemObject(ma);
	clReleaseMemObject(mb);
	clReleaseMemObject(mc);
	hf_gemm_plan_free(plan);
	free(a);
	free(b);
	free(c);
	free(ref);
}

/* Every family (the sweeps' programs, and the plan's own choice) against OpenBLAS on random
 * matrices of awkward shapes, every transpose, two alpha/beta pairs (the sweeps above cover the
 * other awkward sizes against the double-precision reference). */
Test(gemm, against_openblas, SUITE)
{
	const hf_gemm_params *fams[] = { NULL, &sweep_packed, &sweep_gemv, &sweep_direct,
					 &sweep_tiled, &sweep_tiled4 };
	static const size_t shapes_ob[][3] = { { 96, 130, 257 }, { 1, 1000, 65 }, { 7, 63, 1000 } };
	for (size_t f = 0; f < HF_ARRAY_SIZE(fams); f++)
		for (size_t i = 0; i < HF_ARRAY_SIZE(shapes_ob); i++)
			for (unsigned t = 0; t < 4; t++) {
				bool ta = t & 1, tb = t >> 1;
				size_t m = shapes_ob[i][0];
				if (fams[f] == &sweep_gemv && ta && tb && m > 1)
					continue; /* gemv(t) needs contiguous rows of op(A) */
				check_openblas(fams[f], m, shapes_ob[i][1], shapes_ob[i][2], ta, tb,
					       (t & 1) ? 0.75f : -1.5f, (i + t) % 2 ? 0.25f : 0.0f);
			}
}

Test(gemm, prepacked_weights_are_reused, SUITE)
{
	/* B (N x K, transposed, FP16) packed once; runs with b = NULL use the packed copy. */
	size_t m = 70, n = 40, k = 33;
	float *a = malloc(m * k * 4), *c = malloc(m * n * 4);
	uint16_t *bh = malloc(n * k * 2);
	hf_errbuf eb;
	cl_int st;
	for (size_t i = 0; i < m * k; i++)
		a[i] = frand();
	for (size_t i = 0; i < n * k; i++)
		bh[i] = to_half(frand());
	hf_gemm_shape s = { .m = m, .n = n, .k = k, .trans_b = true, .b_type = HF_GEMM_B_F16 };
	hf_gemm_plan *plan;
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &sweep_packed, &plan, &eb), 0, "%s", eb.msg);
	cl_mem ma = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, m * k * 4, a, &st);
	cl_mem mb = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, n * k * 2, bh, &st);
	cl_mem mc = clCreateBuffer(hf_cl_context(cl), CL_MEM_READ_WRITE, m * n * 4, NULL, &st);
	cr_assert_eq(hf_gemm_prepack_b(plan, mb, &eb), 0, "%s", eb.msg);
	clReleaseMemObject(mb); /* the plan no longer needs it */
	for (int rep = 0; rep < 2; rep++) {
		cr_assert_eq(hf_gemm_run(plan, 1.0f, ma, NULL, 0.0f, mc, &eb), 0, "%s", eb.msg);
		clEnqueueReadBuffer(hf_cl_queue(cl), mc, CL_TRUE, 0, m * n * 4, c, 0, NULL, NULL);
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < n; j++) {
				double want = 0;
				for (size_t p = 0; p < k; p++)
					want += (double)a[i * k + p] * from_half(bh[j * k + p]);
				cr_assert(fabs(c[i * n + j] - want) < 1e-4, "C[%zu][%zu] %g vs %g", i,
					  j, c[i * n + j], want);
			}
	}
	clReleaseMemObject(ma);
	clReleaseMemObject(mc);
	hf_gemm_plan_free(plan);
	free(a);
	free(c);
	free(bh);
}

Test(gemm, fp16_weights_track_fp32, SUITE)
{
	/* The same weights stored as FP16 give results within FP16 rounding of FP32 storage. */
	size_t m = 3, n = 64, k = 128;
	float *a = malloc(m * k * 4), *b = malloc(n * k * 4), *c32 = malloc(m * n * 4),
	      *c16 = malloc(m * n * 4);
	uint16_t *bh = malloc(n * k * 2);
	hf_errbuf eb;
	cl_int st;
	for (size_t i = 0; i < m * k; i++)
		a[i] = frand();
	for (size_t i = 0; i < n * k; i++) {
		b[i] = frand();
		bh[i] = to_half(b[i]);
	}
	for (int h = 0; h < 2; h++) {
		hf_gemm_shape s = { .m = m, .n = n, .k = k, .trans_b = true,
				    .b_type = h ? HF_GEMM_B_F16 : HF_GEMM_B_F32 };
		hf_gemm_plan *plan;
		cr_assert_eq(hf_gemm_plan_new(cl, &s, &sweep_gemv, &plan, &eb), 0, "%s", eb.msg);
		cl_mem ma = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR, m * k * 4, a,
					   &st);
		cl_mem mb = clCreateBuffer(hf_cl_context(cl), CL_MEM_COPY_HOST_PTR,
					   n * k * (h ? 2 : 4), h ? (void *)bh : (void *)b, &st);
		cl_mem mc = clCreateBuffer(hf_cl_context(cl), CL_MEM_READ_WRITE, m * n * 4, NULL,
					   &st);
		cr_assert_eq(hf_gemm_run(plan, 1.0f, ma, mb, 0.0f, mc, &eb), 0, "%s", eb.msg);
		clEnqueueReadBuffer(hf_cl_queue(cl), mc, CL_TRUE, 0, m * n * 4, h ? c16 : c32, 0,
				    NULL, NULL);
		clReleaseMemObject(ma);
		clReleaseMemObject(mb);
		clReleaseMemObject(mc);
		hf_gemm_plan_free(plan);
	}
	for (size_t i = 0; i < m * n; i++)
		cr_assert(fabsf(c16[i] - c32[i]) <= 2e-2f, "C[%zu]: fp16 %g vs fp32 %g", i, c16[i],
			  c32[i]);
	free(a);
	free(b);
	free(c32);
	free(c16);
	free(bh);
}

Test(gemm, half_conversion_helper_is_exact_on_known_values)
{
	cr_assert_eq(to_half(1.0f), 0x3c00);
	cr_assert_eq(to_half(-2.0f), 0xc000);
	cr_assert_eq(to_half(0.5f), 0x3800);
	cr_assert_eq(to_half(65504.0f), 0x7bff);
	cr_assert_eq(to_half(5.9604645e-08f), 0x0001);
	cr_assert_float_eq(from_half(0x3555), 0.333251953125f, 0.0f);
}

Test(gemm, bad_shapes_and_parameters_are_refused, SUITE)
{
	hf_gemm_plan *plan = (hf_gemm_plan *)1;
	hf_errbuf eb;
	hf_gemm_shape s = { .m = 8, .n = 8, .k = 8, .lda = 4 };
	cr_assert_eq(hf_gemm_plan_new(cl, &s, NULL, &plan, &eb), HF_EINVAL);
	cr_assert_null(plan);
	cr_assert_not_null(strstr(eb.msg, "leading dimension"), "%s", eb.msg);
	s.lda = 0;
	s.m = (size_t)1 << 33;
	cr_assert_eq(hf_gemm_plan_new(cl, &s, NULL, &plan, &eb), HF_ERANGE);
	s.m = 8;
	hf_gemm_params bad = { .family = HF_GEMM_PACKED, .vw = 3 };
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &bad, &plan, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "vw"), "%s", eb.msg);
	hf_gemm_params fam = { .family = (hf_gemm_family)9 };
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &fam, &plan, &eb), HF_EINVAL);
	hf_gemm_params rows = { .family = HF_GEMM_GEMV, .kb = 64 };
	hf_gemm_shape one = { .m = 1, .n = 8, .k = 8 };
	cr_assert_eq(hf_gemm_plan_new(cl, &one, &rows, &plan, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "kb"), "%s", eb.msg);
	hf_gemm_params odd = { .family = HF_GEMM_TILED, .wm = 3, .wn = 4, .vw = 4 };
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &odd, &plan, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "multiples of 4"), "%s", eb.msg);
	hf_gemm_params wide = { .family = HF_GEMM_TILED, .lx = 64, .ly = 32 };
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &wide, &plan, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "lx*ly"), "%s", eb.msg);
	hf_gemm_plan_free(NULL);
}

/* Asserts that the plan refuses prm on shape s for its local memory, naming what it needs (need,
 * computed here from the kernel's declarations) and what the device has. */
static void assert_local_refused(const hf_gemm_shape *s, const hf_gemm_params *prm,
				 uint64_t need)
{
	hf_gemm_plan *plan = (hf_gemm_plan *)1;
	hf_errbuf eb;
	char desc[128], want[160];
	uint64_t have = hf_cl_info(cl)->local_mem_bytes;
	hf_gemm_params_describe(prm, desc, sizeof desc);
	cr_assert_gt(need, have, "%s: the test's own arithmetic", desc);
	cr_assert_eq(hf_gemm_plan_new(cl, s, prm, &plan, &eb), HF_EINVAL, "%s needs %llu B of %llu: %s",
		     desc, (unsigned long long)need, (unsigned long long)have, eb.msg);
	cr_assert_null(plan);
	snprintf(want, sizeof want, "need %llu bytes of local memory, the device has %llu",
		 (unsigned long long)need, (unsigned long long)have);
	cr_assert_not_null(strstr(eb.msg, want), "%s: \"%s\" expected in: %s", desc, want, eb.msg);
}

/* The local-memory limit is the device's own (CL_DEVICE_LOCAL_MEM_SIZE: 512 KiB on PoCL on a
 * Zen 3, more on a Zen 4, 48 KiB on NVIDIA GPUs...): for each family, the smallest blocking
 * that needs more than the device reports is refused with both numbers, and the largest that
 * fits runs and computes the right result. A family whose parameter ranges cannot exceed this
 * device's local memory is said so in the log. */
Test(gemm, local_memory_limit_is_the_devices, SUITE)
{
	const hf_cl_device_info *dev = hf_cl_info(cl);
	uint64_t have = dev->local_mem_bytes;
	size_t wg = dev->max_work_group_size;
	unsigned refused = 0;
	hf_gemm_shape s = { .m = 8, .n = 8, .k = 8 };
	cr_assert_gt(have, 0);
	cr_log_info("%s: %llu B of local memory, work-groups up to %zu", dev->name,
		    (unsigned long long)have, wg);

	/* TILED: one column of ly work-items of 16 x 16 blocks, vw = 4 (no alignment gaps):
	 * (16 ly + 24) * 4 bytes per row of the k-tile. */
	unsigned ly = (unsigned)(wg < 256 ? wg : 256);
	hf_gemm_params t = { .family = HF_GEMM_TILED, .lx = 1, .ly = ly, .wm = 16, .wn = 16,
			     .vw = 4, .kc = 1 };
	uint64_t row = tiled_local_bytes(&t);
	if (have / row + 1 <= 256) {
		t.kc = (unsigned)(have / row + 1);
		assert_local_refused(&s, &t, tiled_local_bytes(&t));
		refused++;
	} else {
		cr_log_info("tiled: kc <= 256 with %u work-items cannot exceed %llu B", ly,
			    (unsigned long long)have);
	}

	/* GEMV (B not transposed, M > 2): KB rows of JB * NV * VW floats, 8 KiB per row here. */
	hf_gemm_params g = { .family = HF_GEMM_GEMV, .vw = 16, .nv = 8, .jb = 16, .mb = 1, .ks = 1 };
	uint64_t grow = (uint64_t)g.jb * g.nv * g.vw * 4;
	cr_assert_leq(have / grow + 1, 65536, "a device with more than 512 MiB of local memory");
	g.kb = (unsigned)(have / grow + 1);
	assert_local_refused(&s, &g, g.kb * grow);
	refused++;

	/* PACKED: a KC x NR chunk of B, 512 bytes per row here. */
	hf_gemm_params pk = { .family = HF_GEMM_PACKED, .vw = 16, .nv = 8, .mr = 1, .tm = 1,
			      .ku = 1, .pk = 64, .kl = 65536 };
	uint64_t prow = (uint64_t)pk.nv * pk.vw * 4;
	if (have / prow + 1 <= 1024) {
		pk.kc = (unsigned)(have / prow + 1);
		assert_local_refused(&s, &pk, pk.kc * prow);
		refused++;
	} else {
		cr_log_info("packed: kc <= 1024 cannot exceed %llu B", (unsigned long long)have);
	}
	cr_assert_geq(refused, 1);

	/* The largest GEMV block that fits (exactly the device's size when it divides evenly) is
	 * accepted and computes the right result over several blocks; so does the largest PACKED
	 * chunk of a one-vector panel (cheaper to compile than 8 vectors: 64 KiB at most, the
	 * whole of a GPU's local memory). */
	g.kb = (unsigned)(have / grow);
	if (g.kb >= 1) {
		gcase gc = { 5, 300, 3 * g.kb + 7, false, false, false, 1.0f, 0.5f, 0, 0, 0 };
		cr_log_info("gemv kb=%u: %llu B of local memory", g.kb,
			    (unsigned long long)(g.kb * grow));
		check_case(&gc, &g);
	}
	pk.nv = 1;
	prow = (uint64_t)pk.nv * pk.vw * 4;
	pk.kc = (unsigned)(have / prow < 1024 ? have / prow : 1024);
	gcase pc = { 9, 260, 2 * pk.kc + 5, false, false, false, -1.0f, 0.0f, 0, 0, 0 };
	cr_log_info("packed kc=%u: %llu B of local memory", pk.kc,
		    (unsigned long long)(pk.kc * prow));
	check_case(&pc, &pk);
}

/* The work-group limit is the device's own (CL_DEVICE_MAX_WORK_GROUP_SIZE: 1024 on NVIDIA,
 * 4096 on PoCL unless POCL_MAX_WORK_GROUP_SIZE says less), within the family's own cap of 1024
 * work-items: the smallest TILED work-group past the lower of the two is refused, naming the
 * limit it broke (both when they are equal). */
Test(gemm, work_group_limit_is_the_devices, SUITE)
{
	size_t wg = hf_cl_info(cl)->max_work_group_size;
	hf_gemm_shape s = { .m = 8, .n = 8, .k = 8 };
	hf_gemm_plan *plan = (hf_gemm_plan *)1;
	hf_errbuf eb;
	char want[96];
	cr_assert_gt(wg, 0);
	size_t limit = wg < 1024 ? wg : 1024;
	/* A small lx x ly past the limit, with lx, ly <= 256. */
	unsigned lx = (unsigned)(limit + 1 < 256 ? limit + 1 : 256);
	unsigned ly = (unsigned)((limit + 1 + lx - 1) / lx);
	hf_gemm_params big = { .family = HF_GEMM_TILED, .lx = lx, .ly = ly, .wm = 1, .wn = 1,
			       .kc = 1, .vw = 1 };
	cr_assert_gt((size_t)lx * ly, limit);
	cr_assert_eq(hf_gemm_plan_new(cl, &s, &big, &plan, &eb), HF_EINVAL, "%u x %u on %zu: %s",
		     lx, ly, wg, eb.msg);
	cr_assert_null(plan);
	if (wg < 1024)
		snprintf(want, sizeof want, "work-group of %u x %u exceeds the device's %zu "
			 "work-items", lx, ly, wg);
	else
		snprintf(want, sizeof want, "lx*ly <= 1024");
	cr_assert_not_null(strstr(eb.msg, want), "\"%s\" expected in: %s", want, eb.msg);
	cr_log_info("work-groups up to %zu here: %u x %u refused (%s)", wg, lx, ly, want);
}

/* Shape classes are the device's (on a GPU every shape is "tiled" or "tiled-small"), so the
 * entries below are keyed by what hf_gemm_shape_class answers for this device. */
Test(gemm, tuning_database_round_trip_and_use, SUITE)
{
	char dir[] = "/tmp/hf-gemm-tune-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	hf_errbuf eb;
	hf_gemm_params got, want = { .family = HF_GEMM_DIRECT, .wm = 2, .ku = 2 };
	const hf_cl_device_info *dev = hf_cl_info(cl);
	cr_assert_eq(hf_gemm_tuning_lookup(dir, dev, "direct", &got, &eb), HF_ENOTFOUND);
	cr_assert_eq(hf_gemm_tuning_store(dir, dev, "direct", &want, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_gemm_tuning_lookup(dir, dev, "direct", &got, &eb), 0, "%s", eb.msg);
	cr_assert_eq(got.family, HF_GEMM_DIRECT);
	cr_assert_eq(got.wm, 2);
	cr_assert_eq(got.ku, 2);
	cr_assert_eq(hf_gemm_tuning_lookup(dir, dev, "packed", &got, &eb), HF_ENOTFOUND);

	/* A plan on a handle whose cache holds the entry for its shape class runs with it. */
	hf_cl *tcl;
	hf_cl_opts o = { .cache_dir = dir };
	cr_assert_eq(hf_cl_open(test_device(), &o, &tcl, &eb), 0, "%s", eb.msg);
	hf_gemm_shape s = { .m = 3, .n = 5, .k = 7 };
	const char *cls = hf_gemm_shape_class(dev, &s);
	cr_assert_str_eq(cls, dev->is_gpu ? "tiled-small" : "direct");
	cr_assert_eq(hf_gemm_tuning_store(dir, dev, cls, &want, &eb), 0, "%s", eb.msg);
	hf_gemm_plan *plan;
	cr_assert_eq(hf_gemm_plan_new(tcl, &s, NULL, &plan, &eb), 0, "%s", eb.msg);
	cr_assert(hf_gemm_plan_tuned(plan), "no entry used for class %s", cls);
	cr_assert_eq(hf_gemm_plan_params(plan)->family, HF_GEMM_DIRECT);
	cr_assert_eq(hf_gemm_plan_params(plan)->wm, 2);
	hf_gemm_plan_free(plan);

	/* Another family may win a class; a tiled entry keeps its fields. An entry whose family
	 * cannot run the shape (gemv with both transposes for M > 1) is ignored. */
	hf_gemm_params tw = { .family = HF_GEMM_TILED, .lx = 4, .ly = 2, .wm = 2, .wn = 3, .kc = 8 };
	hf_gemm_shape big = { .m = 100, .n = 90, .k = 80 };
	cls = hf_gemm_shape_class(dev, &big);
	cr_assert_str_eq(cls, dev->is_gpu ? "tiled" : "packed");
	cr_assert_eq(hf_gemm_tuning_store(dir, dev, cls, &tw, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_gemm_plan_new(tcl, &big, NULL, &plan, &eb), 0, "%s", eb.msg);
	cr_assert(hf_gemm_plan_tuned(plan));
	const hf_gemm_params *pp = hf_gemm_plan_params(plan);
	cr_assert(pp->family == HF_GEMM_TILED && pp->lx == 4 && pp->ly == 2 && pp->wn == 3 &&
		  pp->kc == 8);
	hf_gemm_plan_free(plan);
	hf_gemm_params gv = { .family = HF_GEMM_GEMV };
	hf_gemm_shape tt = { .m = 4, .n = 900, .k = 40, .trans_a = true, .trans_b = true };
	cls = hf_gemm_shape_class(dev, &tt);
	cr_assert_str_eq(cls, dev->is_gpu ? "tiled-small" : "packed");
	cr_assert_eq(hf_gemm_tuning_store(dir, dev, cls, &gv, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_gemm_plan_new(tcl, &tt, NULL, &plan, &eb), 0, "%s", eb.msg);
	cr_assert_not(hf_gemm_plan_tuned(plan));
	cr_assert_eq(hf_gemm_plan_params(plan)->family, hf_gemm_auto_family(dev, &tt));
	cr_assert_eq(hf_gemm_plan_params(plan)->family, dev->is_gpu ? HF_GEMM_TILED : HF_GEMM_PACKED);
	hf_gemm_plan_free(plan);
	hf_cl_free(tcl);

	/* An entry with an out-of-range value is refused with its path. */
	char path[600];
	snprintf(path, sizeof path, "%s/gemm-tuning.json", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"version\":1,\"entries\":{\"%s|%s|direct\":{\"family\":\"direct\","
		   "\"wm\":99}}}", dev->name, dev->driver_version);
	fclose(f);
	cr_assert_eq(hf_gemm_tuning_lookup(dir, dev, "direct", &got, &eb), HF_ECONFIG);
	cr_assert_not_null(strstr(eb.msg, "wm"), "%s", eb.msg);
	unlink(path);
	char pocl[600];
	snprintf(pocl, sizeof pocl, "%s", dir);
	/* The handle's program cache entries live in dir too: remove them. */
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pocl);
	cr_assert_eq(system(cmd), 0);
}
