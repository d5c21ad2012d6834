/* hf_gemm: plans (family choice, parameters, programs, workspace, warm-up) and launches.
 *
 * Invariants: a plan's kernels, workspace and launch sizes are fixed at creation for one shape;
 * hf_gemm_run only binds the caller's buffers and enqueues. Parameters are validated before any
 * program is built (so a bad tuning entry is refused, not compiled). The kernel sources are
 * embedded at build time (gemm_*.cl -> hf_gemm_cl.h) and each file's contract sits at its top.
 * Threading: see hf_gemm.h.
 */
#include "hf_gemm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_file.h"
#include "hf_gemm_cl.h"
#include "hf_util.h"

#define MAX_KERNELS 3
#define DIRECT_MAX_WORK (1u << 15) /* M*N*K at or below this: the direct family */
#define GEMV_MAX_M 48

struct hf_gemm_plan {
	hf_cl *cl;
	hf_gemm_shape s;
	hf_gemm_params prm;
	bool tuned;
	cl_program prog;
	cl_kernel k[MAX_KERNELS];
	size_t gsz[MAX_KERNELS][2], lsz[MAX_KERNELS][2];
	unsigned nk;
	cl_mem ap, bp;      /* workspace: packed panels (PACKED), partial sums in ap (GEMV) */
	cl_mem bfull;       /* PACKED with ranged_b: all of op(B), packed by hf_gemm_prepack_b */
	size_t workspace;
	int lda, ldb, ldc;  /* resolved leading dimensions */
	bool direct_b;      /* PACKED: the micro-kernel reads B in place (hf_pack_b skipped) */
	bool ranged_b;      /* PACKED: B packed one k-range (KL rows) at a time into bp */
	bool prepacked_b;   /* PACKED: bp holds op(B) from hf_gemm_prepack_b (hf_pack_b skipped) */
	int nx;             /* GEMV rows variant: column slices */
};

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t round_up(size_t a, size_t b) { return ceil_div(a, b) * b; }

static bool is_avx512_cpu(const hf_cl_device_info *dev)
{
	static const char *const tags[] = { "avx512", "skylake-avx", "cascadelake", "cooperlake",
					    "icelake", "tigerlake", "rocketlake", "sapphirerapids",
					    "emeraldrapids", "graniterapids", "znver4", "znver5" };
	for (size_t i = 0; i < HF_ARRAY_SIZE(tags); i++)
		if (strstr(dev->name, tags[i]))
			return true;
	return false;
}

hf_gemm_family hf_gemm_auto_family(const hf_cl_device_info *dev, const hf_gemm_shape *s)
{
	if (dev && dev->is_gpu)
		return HF_GEMM_TILED;
	if ((double)s->m * (double)s->n * (double)s->k <= DIRECT_MAX_WORK)
		return HF_GEMM_DIRECT;
	/* hf_gemv_t needs contiguous rows of op(A): with trans_a that holds only for M == 1. */
	if (s->m <= GEMV_MAX_M && !(s->trans_b && s->trans_a && s->m > 1))
		return HF_GEMM_GEMV;
	return HF_GEMM_PACKED;
}

const char *hf_gemm_shape_class(const hf_cl_device_info *dev, const hf_gemm_shape *s)
{
	bool h = s->b_type == HF_GEMM_B_F16;
	switch (hf_gemm_auto_family(dev, s)) {
	case HF_GEMM_DIRECT: return h ? "direct-f16" : "direct";
	case HF_GEMM_GEMV: return h ? "gemv-f16" : "gemv";
	case HF_GEMM_TILED:
		if (s->m <= GEMV_MAX_M)
			return h ? "tiled-small-f16" : "tiled-small";
		return h ? "tiled-f16" : "tiled";
	default: return h ? "packed-f16" : "packed";
	}
}

/* Built-in defaults, measured with PoCL 3.1 on a 2-core AVX2 EPYC (see kernels/gemm/README.md):
 * 6 x 16 micro-tiles (12 ymm accumulators) for PACKED; GEMV register blocks sized by M. AVX-512
 * CPUs get 8 x 32 tiles (16 zmm accumulators, the shape of OpenBLAS's SkylakeX kernel). GPUs get
 * TILED with 16 x 16 work-groups of 8 x 8 register blocks (128 x 128 tiles of C, 64
 * accumulators per work-item, k-tiles of 16: the usual shape for NVIDIA SMs with 64 K
 * registers), and 1-row-per-work-item tiles for small M. The AVX-512 and GPU defaults have
 * not been measured (see kernels/gemm/README.md). */
static void fill_defaults(const hf_cl_device_info *dev, const hf_gemm_shape *s,
			  hf_gemm_params *p)
{
	bool gpu = dev && dev->is_gpu, wide = dev && is_avx512_cpu(dev);
	size_t m = s->m;
	switch (p->family) {
	case HF_GEMM_PACKED:
		if (!p->vw) p->vw = gpu ? 4 : 16;
		if (!p->mr) p->mr = gpu ? 4 : wide ? 8 : 6;
		if (!p->nv) p->nv = gpu || !wide ? 1 : 2;
		/* Up to 32 tiles of A (M <= 192 with mr = 6) go in one strip, so B streams once. */
		if (!p->tm) {
			size_t npan = ceil_div(m, p->mr);
			p->tm = gpu ? 1 : npan <= 16 ? 16 : npan <= 32 ? 32 : 8;
		}
		if (!p->ku) p->ku = gpu ? 4 : 1;
		if (!p->pk) p->pk = 64;
		if (!p->kc) p->kc = gpu ? 64 : 256;
		if (!p->kl) p->kl = gpu ? 65536 : 256;
		break;
	case HF_GEMM_GEMV:
		if (!p->vw) p->vw = gpu ? 4 : (s->trans_b && m == 1) ? 8 : 16;
		/* M > 2: two rows of two 16-wide vectors per pass (measured best for M = 8 to
		 * 48 with either B layout, 0.8-2.4x OpenBLAS). */
		if (!p->nv) p->nv = gpu ? 1 : m <= 2 ? 8 / (wide ? 2 : 1) : 2;
		if (!p->mb) p->mb = m <= 2 ? (unsigned)(m ? m : 1) : 2;
		/* Rows variant (B not transposed, M <= 2): jb = column slices per compute unit, kb =
		 * rows of B streamed together (measured: one slice per CU and 8 rows; more slices
		 * shorten the sequential runs the prefetchers need). */
		if (!p->jb) p->jb = !s->trans_b && m <= 2 ? 1 : 4;
		if (!p->kb) p->kb = !s->trans_b && m <= 2 ? 8 : 64;
		break;
	case HF_GEMM_TILED: {
		bool small = m <= GEMV_MAX_M;
		unsigned ly = 1;
		while (small && ly < 8 && ly < m)
			ly *= 2;
		unsigned lx = small ? 64 : 16;
		if (!small)
			ly = 16;
		/* A device with smaller work-groups: fit the default shape (a caller's or a tuning
		 * entry's lx and ly are kept, and refused by the plan if too large). */
		size_t maxwg = dev && dev->max_work_group_size ? dev->max_work_group_size : 256;
		while ((size_t)lx * ly > maxwg && ly > 1)
			ly /= 2;
		while ((size_t)lx * ly > maxwg && lx > 1)
			lx /= 2;
		if (!p->lx) p->lx = lx;
		if (!p->ly) p->ly = ly;
		if (!p->wm) p->wm = small ? 1 : 8;
		if (!p->wn) p->wn = small ? 2 : 8;
		if (!p->kc) p->kc = small ? 32 : 16;
		/* 128-bit local reads where the blocks allow them (8 x 8 as 2 x 2 blocks of 4). */
		if (!p->vw) p->vw = p->wm % 4 == 0 && p->wn % 4 == 0 ? 4 : 1;
		break;
	}
	case HF_GEMM_DIRECT:
	default:
		if (!p->wm) p->wm = 4;
		if (!p->ku) p->ku = 4;
		break;
	}
}

void hf_gemm_default_params(const hf_cl_device_info *dev, const hf_gemm_shape *s,
			    hf_gemm_params *out)
{
	memset(out, 0, sizeof *out);
	out->family = hf_gemm_auto_family(dev, s);
	fill_defaults(dev, s, out);
}

static bool in(unsigned v, unsigned lo, unsigned hi) { return v >= lo && v <= hi; }

static int check_params(const hf_gemm_params *p, const hf_gemm_shape *s, hf_errbuf *eb)
{
	bool vw_ok = p->vw == 4 || p->vw == 8 || p->vw == 16;
	switch (p->family) {
	case HF_GEMM_PACKED:
		if (!vw_ok || !in(p->mr, 1, 16) || !in(p->nv, 1, 8) || !in(p->tm, 1, 64) ||
		    !in(p->ku, 1, 16) || !in(p->pk, 1, 4096) || !in(p->kc, 1, 1024) ||
		    !in(p->kl, 1, 65536))
			return hf_fail(eb, HF_EINVAL, "packed parameters out of range (vw 4|8|16, "
				       "mr 1-16, nv 1-8, tm 1-64, ku 1-16, pk 1-4096, kc 1-1024, kl 1-65536)");
		return 0;
	case HF_GEMM_GEMV:
		if (!vw_ok || !in(p->nv, 1, 8) || !in(p->mb, 1, 16) || !in(p->jb, 1, 16) ||
		    !in(p->kb, 1, 65536) || p->ks > 64)
			return hf_fail(eb, HF_EINVAL, "gemv parameters out of range (vw 4|8|16, "
				       "nv 1-8, mb 1-16, jb 1-16, kb 1-65536, ks 0-64)");
		if (s->trans_b && s->trans_a && s->m > 1)
			return hf_fail(eb, HF_EINVAL, "gemv with trans_b needs rows of op(A) "
				       "contiguous (trans_a only with M = 1)");
		if (!s->trans_b && s->m <= 2 && p->kb > 32)
			return hf_fail(eb, HF_EINVAL, "gemv rows of B streamed together (kb) must be "
				       "1-32 for M <= 2");
		return 0;
	case HF_GEMM_DIRECT:
		if (!in(p->wm, 1, 16) || !in(p->ku, 1, 16))
			return hf_fail(eb, HF_EINVAL, "direct parameters out of range (wm 1-16, "
				       "ku 1-16)");
		return 0;
	case HF_GEMM_TILED:
		if (!in(p->lx, 1, 256) || !in(p->ly, 1, 256) || !in(p->wm, 1, 16) ||
		    !in(p->wn, 1, 16) || !in(p->kc, 1, 256) || p->lx * p->ly > 1024 ||
		    (p->vw != 1 && p->vw != 4))
			return hf_fail(eb, HF_EINVAL, "tiled parameters out of range (lx, ly 1-256 "
				       "with lx*ly <= 1024, wm, wn 1-16, kc 1-256, vw 1|4)");
		if (p->vw == 4 && (p->wm % 4 || p->wn % 4))
			return hf_fail(eb, HF_EINVAL, "tiled vw=4 needs wm and wn multiples of 4 "
				       "(got wm=%u wn=%u)", p->wm, p->wn);
		return 0;
	default:
		return hf_fail(eb, HF_EINVAL, "unknown kernel family %d", (int)p->family);
	}
}

char *hf_gemm_params_describe(const hf_gemm_params *p, char *out, size_t sz)
{
	switch (p->family) {
	case HF_GEMM_PACKED:
		snprintf(out, sz, "packed vw=%u mr=%u nv=%u tm=%u kc=%u kl=%u ku=%u pk=%u", p->vw,
			 p->mr, p->nv, p->tm, p->kc, p->kl, p->ku, p->pk);
		break;
	case HF_GEMM_GEMV:
		snprintf(out, sz, "gemv vw=%u nv=%u mb=%u jb=%u kb=%u ks=%u", p->vw, p->nv, p->mb,
			 p->jb, p->kb, p->ks);
		break;
	case HF_GEMM_DIRECT:
		snprintf(out, sz, "direct wm=%u ku=%u", p->wm, p->ku);
		break;
	case HF_GEMM_TILED:
		snprintf(out, sz, "tiled lx=%u ly=%u wm=%u wn=%u kc=%u vw=%u", p->lx, p->ly, p->wm,
			 p->wn, p->kc, p->vw);
		break;
	default:
		snprintf(out, sz, "auto");
	}
	return out;
}

static const char *const family_names[] = { "auto", "packed", "gemv", "direct", "tiled", NULL };

/* The named fields of hf_gemm_params, for parsing and the tuning database. */
#define PARAM_FIELDS(X)                                                                     \
	X(vw, 16) X(mr, 16) X(nv, 8) X(tm, 64) X(ku, 16) X(pk, 4096) X(mb, 16) X(jb, 16)    \
	X(wm, 16) X(kc, 1024) X(kb, 65536) X(ks, 64) X(kl, 65536) X(lx, 256) X(ly, 256)    \
	X(wn, 16)
#define COUNT_FIELD(name, max) +1

int hf_gemm_params_parse(const char *spec, hf_gemm_params *out, hf_errbuf *eb)
{
	char buf[256], *save = NULL;
	memset(out, 0, sizeof *out);
	if (!spec || !hf_strlcpy(buf, spec, sizeof buf))
		return hf_fail(eb, HF_EINVAL, "kernel parameters: empty or longer than %zu bytes",
			       sizeof buf - 1);
	char *w = strtok_r(buf, " ,", &save);
	int fam = -1;
	for (int i = 1; w && family_names[i]; i++)
		if (strcmp(w, family_names[i]) == 0)
			fam = i;
	if (fam < 0)
		return hf_fail(eb, HF_EINVAL, "kernel parameters: \"%s\" is not a family "
			       "(packed, gemv, direct, tiled)", w ? w : "");
	out->family = (hf_gemm_family)fam;
	while ((w = strtok_r(NULL, " ,", &save))) {
		char *eq = strchr(w, '=');
		uint64_t v;
		bool known = false;
		if (!eq)
			return hf_fail(eb, HF_EINVAL, "kernel parameters: \"%s\" is not name=value", w);
		*eq = '\0';
#define PARSE_FIELD(name, max)                                                              \
		if (strcmp(w, #name) == 0) {                                                \
			if (!hf_parse_u64(eq + 1, 0, max, &v))                               \
				return hf_fail(eb, HF_EINVAL, "kernel parameters: " #name     \
					       " must be 0-%u, got \"%s\"", max, eq + 1);      \
			out->name = (unsigned)v;                                            \
			known = true;                                                       \
		}
		PARAM_FIELDS(PARSE_FIELD)
#undef PARSE_FIELD
		if (!known)
			return hf_fail(eb, HF_EINVAL, "kernel parameters: unknown field \"%s\"", w);
	}
	return 0;
}

/* Resolves and checks leading dimensions; everything must fit the kernels' int arithmetic. */
static int check_shape(hf_gemm_plan *p, hf_errbuf *eb)
{
	const hf_gemm_shape *s = &p->s;
	size_t acols = s->trans_a ? s->m : s->k, bcols = s->trans_b ? s->k : s->n;
	size_t lda = s->lda ? s->lda : acols, ldb = s->ldb ? s->ldb : bcols;
	size_t ldc = s->ldc ? s->ldc : s->n;
	if (s->b_type != HF_GEMM_B_F32 && s->b_type != HF_GEMM_B_F16)
		return hf_fail(eb, HF_EINVAL, "unknown B storage type %d", (int)s->b_type);
	if (s->m > INT_MAX || s->n > INT_MAX || s->k > INT_MAX || lda > INT_MAX ||
	    ldb > INT_MAX || ldc > INT_MAX)
		return hf_fail(eb, HF_ERANGE, "GEMM sizes must fit in 31 bits");
	if (lda < acols || ldb < bcols || ldc < s->n)
		return hf_fail(eb, HF_EINVAL, "leading dimension smaller than the row "
			       "(lda %zu/%zu, ldb %zu/%zu, ldc %zu/%zu)", lda, acols, ldb, bcols,
			       ldc, s->n);
	p->lda = (int)lda;
	p->ldb = (int)ldb;
	p->ldc = (int)ldc;
	return 0;
}

static int build_program(hf_gemm_plan *p, hf_errbuf *eb)
{
	const hf_gemm_params *q = &p->prm;
	const char *src;
	char opts[256];
	int n;
	switch (q->family) {
	case HF_GEMM_PACKED:
		src = gemm_packed_cl_src;
		n = snprintf(opts, sizeof opts, "-DVW=%u -DMR=%u -DNV=%u -DTM=%u -DKC=%u -DKU=%u "
			     "-DPK=%u", q->vw, q->mr, q->nv, q->tm, q->kc, q->ku, q->pk);
		break;
	case HF_GEMM_GEMV:
		src = gemm_gemv_cl_src;
		n = snprintf(opts, sizeof opts, "-DVW=%u -DNV=%u -DMB=%u -DJB=%u -DKB=%u", q->vw,
			     q->nv, q->mb, q->jb, q->kb);
		break;
	case HF_GEMM_TILED:
		src = gemm_tiled_cl_src;
		n = snprintf(opts, sizeof opts, "-DLX=%u -DLY=%u -DWM=%u -DWN=%u -DKC=%u -DVL=%u%s%s",
			     q->lx, q->ly, q->wm, q->wn, q->kc, q->vw, p->s.trans_a ? " -DTA" : "",
			     p->s.trans_b ? " -DTB" : "");
		break;
	default:
		src = gemm_direct_cl_src;
		n = snprintf(opts, sizeof opts, "-DWM=%u -DKU=%u", q->wm, q->ku);
		break;
	}
	if (p->s.b_type == HF_GEMM_B_F16)
		snprintf(opts + n, sizeof opts - (size_t)n, " -DB_HALF");
	/* One program: the shared prelude (gemm_common.cl), then the family. */
	size_t lc = gemm_common_cl_src_len, lf = strlen(src);
	char *full = malloc(lc + lf + 2);
	if (!full)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	memcpy(full, gemm_common_cl_src, lc);
	full[lc] = '\n';
	memcpy(full + lc + 1, src, lf + 1);
	int r = hf_cl_build(p->cl, full, lc + 1 + lf, opts, &p->prog, NULL, eb);
	free(full);
	if (r)
		return hf_fail_prefix(eb, r, "gemm %s", opts);
	return 0;
}

static int add_kernel(hf_gemm_plan *p, const char *name, size_t g0, size_t g1, size_t l0,
		      size_t l1, hf_errbuf *eb)
{
	cl_int st;
	unsigned i = p->nk;
	p->k[i] = clCreateKernel(p->prog, name, &st);
	if (!p->k[i])
		return hf_fail(eb, HF_ECL, "clCreateKernel %s: %s", name, hf_cl_strerror(st));
	p->lsz[i][0] = l0;
	p->lsz[i][1] = l1;
	p->gsz[i][0] = round_up(g0 ? g0 : 1, l0);
	p->gsz[i][1] = round_up(g1 ? g1 : 1, l1);
	p->nk++;
	return 0;
}

static int alloc_ws(hf_gemm_plan *p, size_t bytes, cl_mem *out, hf_errbuf *eb)
{
	cl_int st;
	*out = clCreateBuffer(hf_cl_context(p->cl), CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL,
			      &st);
	if (!*out)
		return hf_fail(eb, HF_ECL, "workspace of %zu bytes: %s", bytes,
			       hf_cl_strerror(st));
	p->workspace += bytes;
	return 0;
}

/* GEMV with B not transposed and one or two rows: stream whole rows of B (hf_gemv_rows). */
static bool rows_variant(const hf_gemm_shape *s)
{
	return !s->trans_b && s->m <= 2;
}

static int make_kernels(hf_gemm_plan *p, hf_errbuf *eb)
{
	const hf_gemm_params *q = &p->prm;
	size_t m = p->s.m, n = p->s.n, k = p->s.k;
	int r;
	if (q->family == HF_GEMM_PACKED) {
		size_t nr = (size_t)q->nv * q->vw, pa = ceil_div(m, q->mr), pb = ceil_div(n, nr);
		size_t kc = ceil_div(k, q->pk);
		/* Reading B in place saves a copy of B per call; it needs whole panels and a row
		 * stride that is not a multiple of 2 KiB (which would map a panel's rows onto a few
		 * cache sets). */
		p->direct_b = !p->s.trans_b && p->s.b_type == HF_GEMM_B_F32 && n % nr == 0 &&
			      p->ldb % 512 != 0;
		/* Otherwise B is packed on every call: one k-range at a time when there are
		 * several, into a workspace of KL rows that stays in the last-level cache while
		 * the micro-kernel reads it back (all of B would go to memory and back). */
		p->ranged_b = !p->direct_b && k > q->kl;
		size_t brows = p->ranged_b ? q->kl : k;
		if ((r = alloc_ws(p, pa * q->mr * k * sizeof(float), &p->ap, eb)) ||
		    (r = alloc_ws(p, p->direct_b ? 0 : pb * nr * brows * sizeof(float), &p->bp,
				  eb)) ||
		    (r = add_kernel(p, "hf_pack_a", pa, kc, 1, 1, eb)) ||
		    (r = add_kernel(p, "hf_pack_b", pb, ceil_div(brows, q->pk), 1, 1, eb)) ||
		    (r = add_kernel(p, "hf_gemm_packed", pb, ceil_div(pa, q->tm), 1, 1, eb)))
			return r;
		return 0;
	}
	if (q->family == HF_GEMM_GEMV) {
		size_t slices = ceil_div(n, (size_t)q->nv * q->vw);
		if (p->s.trans_b)
			return add_kernel(p, "hf_gemv_t", ceil_div(n, q->jb), 1, 1, 1, eb);
		if (rows_variant(&p->s)) {
			/* JB column slices per compute unit in all, shared among the k-splits. */
			unsigned cu = hf_cl_info(p->cl)->compute_units;
			size_t nx = ceil_div((size_t)q->jb * (cu ? cu : 1), q->ks);
			size_t maxnx = ceil_div(n ? n : 1, 16);
			p->nx = (int)(nx < maxnx ? nx : maxnx);
			r = add_kernel(p, "hf_gemv_rows", (size_t)p->nx, q->ks, 1, 1, eb);
		}
		else
			r = add_kernel(p, "hf_gemv_n", ceil_div(slices, q->jb), q->ks, 1, 1, eb);
		if (r)
			return r;
		if (q->ks > 1 &&
		    ((r = alloc_ws(p, ((size_t)q->ks * m * round_up(n, 1024) + 512) * sizeof(float),
				   &p->ap, eb)) ||
		     (r = add_kernel(p, "hf_gemv_reduce", slices, m, 1, 1, eb))))
			return r;
		return 0;
	}
	if (q->family == HF_GEMM_TILED)
		return add_kernel(p, "hf_gemm_tiled", ceil_div(n, (size_t)q->lx * q->wn) * q->lx,
				  ceil_div(m, (size_t)q->ly * q->wm) * q->ly, q->lx, q->ly, eb);
	return add_kernel(p, "hf_gemm_direct", n, ceil_div(m, q->wm), 1, 1, eb);
}

#define ARG(kern, idx, v)                                                                   \
	do {                                                                                \
		if (st == CL_SUCCESS)                                                       \
			st = clSetKernelArg((kern), (idx), sizeof(v), &(v));                \
	} while (0)

static cl_int launch(hf_gemm_plan *p, unsigned i, const size_t *gsz)
{
	return clEnqueueNDRangeKernel(hf_cl_queue(p->cl), p->k[i], 2, NULL, gsz, p->lsz[i], 0,
				      NULL, NULL);
}

/* PACKED: packs A, then per k-range of KL (one range when K <= KL, and for the warm-up) packs
 * that range of B when B is packed per range and runs the micro-kernel over it. B whole is
 * packed before the first range when it is packed per call but not per range; not at all when
 * it is read in place or was prepacked. */
static int enqueue_packed(hf_gemm_plan *p, int m, int n, int k, float alpha, float beta,
			  cl_mem a, cl_mem b, cl_mem c, bool warm, hf_errbuf *eb)
{
	cl_int st = CL_SUCCESS;
	const hf_gemm_shape *s = &p->s;
	cl_kernel ka = p->k[0], kb = p->k[1], kg = p->k[2];
	int ars = s->trans_a ? 1 : p->lda, acs = s->trans_a ? p->lda : 1;
	int brs = s->trans_b ? 1 : p->ldb, bcs = s->trans_b ? p->ldb : 1;
	int nr = (int)(p->prm.nv * p->prm.vw), kl = (int)p->prm.kl, zero = 0;
	bool prepacked = p->prepacked_b && !warm, ranged = p->ranged_b && !prepacked;
	bool pack = warm || (!p->direct_b && !prepacked);
	cl_mem bsrc = p->direct_b && !warm ? b : prepacked && p->bfull ? p->bfull : p->bp;
	int bps = p->direct_b ? nr : (ranged ? kl : k) * nr, bstride = p->direct_b ? p->ldb : nr;
	ARG(ka, 0, m); ARG(ka, 1, k); ARG(ka, 2, a); ARG(ka, 3, ars); ARG(ka, 4, acs);
	ARG(ka, 5, p->ap);
	ARG(kb, 0, n); ARG(kb, 1, k); ARG(kb, 2, b); ARG(kb, 3, brs); ARG(kb, 4, bcs);
	ARG(kb, 5, p->bp); ARG(kb, 6, zero);
	ARG(kg, 0, m); ARG(kg, 1, n); ARG(kg, 2, k); ARG(kg, 3, alpha); ARG(kg, 4, beta);
	ARG(kg, 5, p->ap); ARG(kg, 6, bsrc); ARG(kg, 7, c); ARG(kg, 8, p->ldc);
	ARG(kg, 11, bps); ARG(kg, 12, bstride);
	if (st == CL_SUCCESS)
		st = launch(p, 0, warm ? p->lsz[0] : p->gsz[0]);
	if (st == CL_SUCCESS && pack && !ranged)
		st = launch(p, 1, warm ? p->lsz[1] : p->gsz[1]);
	for (int k0 = 0; st == CL_SUCCESS && k0 < (k > 0 ? k : 1); k0 += kl) {
		int k1 = k0 + kl < k ? k0 + kl : k, rows = k1 - k0, bk0 = ranged ? k0 : 0;
		if (ranged) {
			/* Panels of this range are rows * NR apart (the last range is shorter). */
			bps = rows * nr;
			ARG(kb, 1, rows); ARG(kb, 6, k0); ARG(kg, 11, bps);
			if (st == CL_SUCCESS)
				st = launch(p, 1, warm ? p->lsz[1] : p->gsz[1]);
		}
		ARG(kg, 9, k0); ARG(kg, 10, k1); ARG(kg, 13, bk0);
		if (st == CL_SUCCESS)
			st = launch(p, 2, warm ? p->lsz[2] : p->gsz[2]);
	}
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "enqueueing the packed kernels: %s", hf_cl_strerror(st));
	return 0;
}

/* Binds the arguments of every kernel for (m, n, k) and enqueues them. m = n = k = 0 is the
 * warm-up: the kernels run their prologue and store nothing. */
static int enqueue(hf_gemm_plan *p, int m, int n, int k, float alpha, float beta, cl_mem a,
		   cl_mem b, cl_mem c, bool warm, hf_errbuf *eb)
{
	cl_int st = CL_SUCCESS;
	const hf_gemm_shape *s = &p->s;
	int ars = s->trans_a ? 1 : p->lda, acs = s->trans_a ? p->lda : 1;
	int brs = s->trans_b ? 1 : p->ldb, bcs = s->trans_b ? p->ldb : 1;
	int ldc = p->ldc;
	if (p->prm.family == HF_GEMM_PACKED)
		return enqueue_packed(p, m, n, k, alpha, beta, a, b, c, warm, eb);
	if (p->prm.family == HF_GEMM_GEMV) {
		cl_kernel kv = p->k[0];
		cl_mem w = p->ap ? p->ap : c;
		int ks = (int)p->prm.ks;
		ARG(kv, 0, m); ARG(kv, 1, n); ARG(kv, 2, k); ARG(kv, 3, alpha); ARG(kv, 4, beta);
		ARG(kv, 5, a); ARG(kv, 6, ars); ARG(kv, 7, acs); ARG(kv, 8, b); ARG(kv, 9, p->ldb);
		ARG(kv, 10, c); ARG(kv, 11, ldc);
		if (!s->trans_b) {
			ARG(kv, 12, w); ARG(kv, 13, ks);
		}
		if (rows_variant(s))
			ARG(kv, 14, p->nx);
		if (p->nk > 1) {
			cl_kernel kr = p->k[1];
			ARG(kr, 0, m); ARG(kr, 1, n); ARG(kr, 2, ks); ARG(kr, 3, alpha);
			ARG(kr, 4, beta); ARG(kr, 5, w); ARG(kr, 6, c); ARG(kr, 7, ldc);
		}
	} else if (p->prm.family == HF_GEMM_TILED) {
		cl_kernel kt = p->k[0];
		ARG(kt, 0, m); ARG(kt, 1, n); ARG(kt, 2, k); ARG(kt, 3, alpha); ARG(kt, 4, beta);
		ARG(kt, 5, a); ARG(kt, 6, p->lda); ARG(kt, 7, b); ARG(kt, 8, p->ldb); ARG(kt, 9, c);
		ARG(kt, 10, ldc);
	} else {
		cl_kernel kd = p->k[0];
		ARG(kd, 0, m); ARG(kd, 1, n); ARG(kd, 2, k); ARG(kd, 3, alpha); ARG(kd, 4, beta);
		ARG(kd, 5, a); ARG(kd, 6, ars); ARG(kd, 7, acs); ARG(kd, 8, b); ARG(kd, 9, brs);
		ARG(kd, 10, bcs); ARG(kd, 11, c); ARG(kd, 12, ldc);
	}
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "clSetKernelArg: %s", hf_cl_strerror(st));
	for (unsigned i = 0; i < p->nk; i++) {
		st = launch(p, i, warm ? p->lsz[i] : p->gsz[i]);
		if (st != CL_SUCCESS)
			return hf_fail(eb, HF_ECL, "clEnqueueNDRangeKernel (kernel %u): %s", i,
				       hf_cl_strerror(st));
	}
	return 0;
}
#undef ARG

/* One launch of every kernel with an empty problem: compiles the machine code for the local
 * size the real calls use (PoCL JIT-compiles per local size at first launch). */
static int warm_up(hf_gemm_plan *p, hf_errbuf *eb)
{
	cl_int st;
	cl_mem dummy = clCreateBuffer(hf_cl_context(p->cl), CL_MEM_READ_WRITE, 64, NULL, &st);
	if (!dummy)
		return hf_fail(eb, HF_ECL, "warm-up buffer: %s", hf_cl_strerror(st));
	int r = enqueue(p, 0, 0, 0, 1.0f, 0.0f, dummy, dummy, dummy, true, eb);
	if (r == 0 && (st = clFinish(hf_cl_queue(p->cl))) != CL_SUCCESS)
		r = hf_fail(eb, HF_ECL, "warm-up: %s", hf_cl_strerror(st));
	clReleaseMemObject(dummy);
	return r;
}

/* The local-memory blocks must fit the device's, and a TILED work-group its largest one. */
static int check_device_limits(const hf_gemm_plan *p, hf_errbuf *eb)
{
	const hf_gemm_params *q = &p->prm;
	const hf_cl_device_info *dev = hf_cl_info(p->cl);
	uint64_t have = dev->local_mem_bytes, need = 0;
	if (q->family == HF_GEMM_PACKED)
		need = (uint64_t)q->kc * q->nv * q->vw * sizeof(float);
	else if (q->family == HF_GEMM_GEMV)
		need = (uint64_t)q->kb * q->jb * q->nv * q->vw * sizeof(float);
	else if (q->family == HF_GEMM_TILED)
		need = (uint64_t)q->kc * (q->ly * q->wm + q->lx * q->wn + (q->vw == 4 ? 8 : 2)) *
		       sizeof(float);
	if (have && need > have)
		return hf_fail(eb, HF_EINVAL, "parameters need %llu bytes of local memory, the "
			       "device has %llu", (unsigned long long)need, (unsigned long long)have);
	if (q->family == HF_GEMM_TILED && dev->max_work_group_size &&
	    (size_t)q->lx * q->ly > dev->max_work_group_size)
		return hf_fail(eb, HF_EINVAL, "work-group of %u x %u exceeds the device's %zu "
			       "work-items", q->lx, q->ly, dev->max_work_group_size);
	return 0;
}

/* The tuning database's entry for this device and shape class, if there is one and its family
 * can run this shape (gemv with both transposes cannot for M > 1); zero fields take defaults. */
static bool tuned_params(const hf_cl_device_info *dev, const char *dir, const hf_gemm_shape *s,
			 hf_gemm_params *out)
{
	hf_gemm_params t;
	if (hf_gemm_tuning_lookup(dir, dev, hf_gemm_shape_class(dev, s), &t, NULL) != 0 ||
	    t.family == HF_GEMM_AUTO)
		return false;
	fill_defaults(dev, s, &t);
	if (check_params(&t, s, NULL) != 0)
		return false;
	*out = t;
	return true;
}

static void choose_params(hf_gemm_plan *p, const hf_gemm_params *given)
{
	const hf_cl_device_info *dev = hf_cl_info(p->cl);
	const char *dir = hf_cl_cache_dir(p->cl);
	if (given) {
		p->prm = *given;
		if (p->prm.family == HF_GEMM_AUTO)
			p->prm.family = hf_gemm_auto_family(dev, &p->s);
	} else if (dir && tuned_params(dev, dir, &p->s, &p->prm)) {
		p->tuned = true;
	} else {
		memset(&p->prm, 0, sizeof p->prm);
		p->prm.family = hf_gemm_auto_family(dev, &p->s);
	}
	fill_defaults(dev, &p->s, &p->prm);
	if (p->prm.family == HF_GEMM_GEMV) {
		/* No point computing clamped rows: a default pass never covers more rows than C
		 * has (a caller's explicit mb is kept). */
		if ((!given || !given->mb) && p->s.m >= 1 && p->prm.mb > p->s.m)
			p->prm.mb = (unsigned)p->s.m;
		if (p->prm.ks == 0 && rows_variant(&p->s)) {
			/* Row streaming over column slices writes C directly: no k-split. */
			p->prm.ks = 1;
		} else if (p->prm.ks == 0) {
			/* Split K only when the column slices alone cannot keep the device busy. */
			size_t slices = ceil_div(p->s.n, (size_t)p->prm.nv * p->prm.vw * p->prm.jb);
			size_t want = slices >= 128 ? 1 : ceil_div(256, slices);
			size_t maxk = ceil_div(p->s.k ? p->s.k : 1, 64);
			p->prm.ks = (unsigned)(want < maxk ? want : maxk);
			if (p->prm.ks > 64)
				p->prm.ks = 64;
			if (p->prm.ks < 1 || p->s.trans_b)
				p->prm.ks = 1;
		}
	}
}

int hf_gemm_plan_new(hf_cl *cl, const hf_gemm_shape *s, const hf_gemm_params *params,
		     hf_gemm_plan **out, hf_errbuf *eb)
{
	hf_gemm_plan *p;
	int r;
	*out = NULL;
	if (!cl || !s)
		return hf_fail(eb, HF_EINVAL, "hf_gemm_plan_new: no device or shape");
	p = calloc(1, sizeof *p);
	if (!p)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	p->cl = cl;
	p->s = *s;
	if ((r = check_shape(p, eb)))
		goto fail;
	choose_params(p, params);
	if ((r = check_params(&p->prm, s, eb)) || (r = check_device_limits(p, eb)))
		goto fail;
	if ((r = build_program(p, eb)) || (r = make_kernels(p, eb)) || (r = warm_up(p, eb)))
		goto fail;
	*out = p;
	return 0;
fail:
	hf_gemm_plan_free(p);
	return r;
}

void hf_gemm_plan_free(hf_gemm_plan *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nk; i++)
		clReleaseKernel(p->k[i]);
	if (p->ap)
		clReleaseMemObject(p->ap);
	if (p->bp)
		clReleaseMemObject(p->bp);
	if (p->bfull)
		clReleaseMemObject(p->bfull);
	if (p->prog)
		clReleaseProgram(p->prog);
	free(p);
}

int hf_gemm_prepack_b(hf_gemm_plan *p, cl_mem b, hf_errbuf *eb)
{
	cl_int st;
	int n = (int)p->s.n, k = (int)p->s.k;
	int brs = p->s.trans_b ? 1 : p->ldb, bcs = p->s.trans_b ? p->ldb : 1;
	if (!b)
		return hf_fail(eb, HF_EINVAL, "hf_gemm_prepack_b: no buffer");
	if (p->prm.family != HF_GEMM_PACKED || p->direct_b || n == 0 || k == 0)
		return 0; /* this plan reads B in place on every call anyway */
	cl_kernel kb = p->k[1];
	cl_mem dst = p->bp;
	int zero = 0;
	size_t nr = (size_t)p->prm.nv * p->prm.vw;
	size_t gsz[2] = { p->gsz[1][0], round_up(ceil_div((size_t)k, p->prm.pk), p->lsz[1][1]) };
	if (p->ranged_b && !p->bfull) {
		/* The per-call workspace holds one k-range: all of B needs its own buffer. */
		int r = alloc_ws(p, ceil_div(p->s.n, nr) * nr * (size_t)k * sizeof(float),
				 &p->bfull, eb);
		if (r)
			return r;
	}
	if (p->bfull)
		dst = p->bfull;
	st = clSetKernelArg(kb, 0, sizeof n, &n);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 1, sizeof k, &k);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 2, sizeof b, &b);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 3, sizeof brs, &brs);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 4, sizeof bcs, &bcs);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 5, sizeof dst, &dst);
	if (st == CL_SUCCESS) st = clSetKernelArg(kb, 6, sizeof zero, &zero);
	if (st == CL_SUCCESS)
		st = clEnqueueNDRangeKernel(hf_cl_queue(p->cl), kb, 2, NULL, gsz, p->lsz[1], 0,
					    NULL, NULL);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "prepacking B: %s", hf_cl_strerror(st));
	p->prepacked_b = true;
	return 0;
}

int hf_gemm_run(hf_gemm_plan *p, float alpha, cl_mem a, cl_mem b, float beta, cl_mem c,
		hf_errbuf *eb)
{
	if (p && p->prepacked_b && !b)
		b = c; /* not read: the packed copy is */
	if (!p || !c || ((!a || !b) && p->s.k > 0))
		return hf_fail(eb, HF_EINVAL, "hf_gemm_run: missing plan or buffer");
	if (p->s.m == 0 || p->s.n == 0)
		return 0;
	if (!a || !b) /* K == 0 without A or B: C = beta * C still runs; bind C in their place */
		a = b = c;
	return enqueue(p, (int)p->s.m, (int)p->s.n, (int)p->s.k, alpha, beta, a, b, c, false,
		       eb);
}

const hf_gemm_params *hf_gemm_plan_params(const hf_gemm_plan *p) { return &p->prm; }
bool hf_gemm_plan_tuned(const hf_gemm_plan *p) { return p->tuned; }
size_t hf_gemm_plan_workspace(const hf_gemm_plan *p) { return p->workspace; }

/* ---- tuning database ---- */

static void tuning_path(const char *dir, char *out, size_t sz)
{
	snprintf(out, sz, "%s/gemm-tuning.json", dir);
}

static void tuning_key(const hf_cl_device_info *dev, const char *cls, char *out, size_t sz)
{
	snprintf(out, sz, "%s|%s|%s", dev->name, dev->driver_version, cls);
}

int hf_gemm_tuning_lookup(const char *cache_dir, const hf_cl_device_info *dev,
			  const char *shape_class, hf_gemm_params *out, hf_errbuf *eb)
{
	char path[PATH_MAX], key[512];
	json_t *root = NULL;
	int fam = 0, r;
	tuning_path(cache_dir, path, sizeof path);
	if ((r = hf_cfg_load_file(path, 1u << 20, &root, eb)))
		return r;
	tuning_key(dev, shape_class, key, sizeof key);
	const json_t *entries = json_object_get(root, "entries");
	const json_t *e = json_is_object(entries) ? json_object_get(entries, key) : NULL;
	if (!json_is_object(e)) {
		r = hf_fail(eb, HF_ENOTFOUND, "%s: no entry for %s", path, key);
		goto free_root;
	}
	enum { NFIELDS = 0 PARAM_FIELDS(COUNT_FIELD) };
	uint64_t v[NFIELDS] = { 0 };
	hf_cfg_field fields[1 + NFIELDS] = {
		{ "family", HF_CFG_ENUM, true, &fam, 0, 0, 0, family_names, NULL },
	};
	size_t nf = 1;
#define TABLE_FIELD(name, max)                                                              \
	fields[nf] = (hf_cfg_field){ #name, HF_CFG_UINT, false, &v[nf - 1], 0, 0, max, NULL, NULL }; \
	nf++;
	PARAM_FIELDS(TABLE_FIELD)
#undef TABLE_FIELD
	char jpath[600];
	snprintf(jpath, sizeof jpath, "entries.%s", key);
	if ((r = hf_cfg_read(e, jpath, fields, nf, eb)))
		goto free_root;
	memset(out, 0, sizeof *out);
	out->family = (hf_gemm_family)fam;
	nf = 0;
#define COPY_FIELD(name, max) out->name = (unsigned)v[nf++];
	PARAM_FIELDS(COPY_FIELD)
#undef COPY_FIELD
free_root:
	json_decref(root);
	return r;
}

int hf_gemm_tuning_store(const char *cache_dir, const hf_cl_device_info *dev,
			 const char *shape_class, const hf_gemm_params *prm, hf_errbuf *eb)
{
	char path[PATH_MAX], key[512];
	json_t *root = NULL, *entries, *e;
	int r;
	tuning_path(cache_dir, path, sizeof path);
	if (hf_cfg_load_file(path, 1u << 20, &root, NULL) != 0 || !json_is_object(root)) {
		json_decref(root);
		root = json_object();
	}
	json_object_set_new(root, "version", json_integer(1));
	entries = json_object_get(root, "entries");
	if (!json_is_object(entries)) {
		entries = json_object();
		json_object_set_new(root, "entries", entries);
	}
	tuning_key(dev, shape_class, key, sizeof key);
	e = json_pack("{s:s}", "family", family_names[prm->family]);
	if (!e) {
		json_decref(root);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
#define STORE_FIELD(name, max)                                                              \
	if (prm->name)                                                                      \
		json_object_set_new(e, #name, json_integer(prm->name));
	PARAM_FIELDS(STORE_FIELD)
#undef STORE_FIELD
	json_object_set_new(entries, key, e);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (!text)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	r = hf_mkdir_p(cache_dir, 0755, eb);
	if (r == 0)
		r = hf_file_write_atomic(path, text, strlen(text), 0644, eb);
	free(text);
	return r;
}
