/* hf_gemm: OpenCL SGEMM behind a plan API: C = alpha * op(A) * op(B) + beta * C, row-major.
 *
 * A plan is made once per shape (M, N, K, transposes, B storage, leading dimensions) on one
 * hf_cl handle: it picks a kernel family and its parameters (tuned values from the tuning
 * database under the cache directory when present, built-in defaults per device otherwise, or
 * the caller's), builds the program through the hf_cl binary cache, allocates its workspace and
 * makes a warm-up launch of every kernel so the first real call pays no JIT cost.
 *
 * Families: PACKED (register-blocked micro-tiles on packed panels, large shapes on CPUs), GEMV
 * (small M streaming B once, both B layouts, CPUs), DIRECT (no packing, for small or odd shapes
 * on CPUs), TILED (work-groups sharing local-memory tiles, register blocks: GPUs). Every family
 * handles any M, N, K, either transpose, FP32 or FP16 B, and beta == 0 without reading C (GEMV
 * takes both transposes together only for M = 1; the automatic choice never asks it to).
 * Buffers: A is M x K (K x M when trans_a) with row stride lda, B is K x N (N x K when trans_b)
 * with row stride ldb in floats or halves, C is M x N with row stride ldc; a zero leading
 * dimension means "dense". Sizes and strides must fit in 31 bits.
 * Threading: a plan belongs to one thread at a time, like the hf_cl handle it was made on (which
 * must outlive it); hf_gemm_run only enqueues on that handle's queue and returns.
 */
#ifndef HF_GEMM_H
#define HF_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "hf_cl.h"
#include "hf_error.h"

typedef enum hf_gemm_family {
	HF_GEMM_AUTO = 0,
	HF_GEMM_PACKED = 1,
	HF_GEMM_GEMV = 2,
	HF_GEMM_DIRECT = 3,
	HF_GEMM_TILED = 4,
} hf_gemm_family;

typedef enum hf_gemm_btype {
	HF_GEMM_B_F32 = 0,
	HF_GEMM_B_F16 = 1, /* IEEE binary16 storage, FP32 compute */
} hf_gemm_btype;

typedef struct hf_gemm_shape {
	size_t m, n, k;
	bool trans_a, trans_b;
	hf_gemm_btype b_type;
	size_t lda, ldb, ldc; /* 0: dense (K or M for A, N or K for B, N for C) */
} hf_gemm_shape;

/* Kernel parameters; a field a family does not use is ignored (0 picks the default). */
typedef struct hf_gemm_params {
	hf_gemm_family family;
	unsigned vw;  /* vector width: 4, 8 or 16 (PACKED, GEMV); TILED: local reads, 1 or 4 */
	unsigned mr;  /* PACKED: rows per micro-tile (1-16) */
	unsigned nv;  /* PACKED, GEMV(n): vectors per row (1-8); NR = nv * vw columns */
	unsigned tm;  /* PACKED: micro-tiles per work-item (1-64) */
	unsigned ku;  /* PACKED, DIRECT: k-loop unroll (1-16) */
	unsigned pk;  /* PACKED: k rows per packing work-item (1-4096) */
	unsigned mb;  /* GEMV: rows of C per pass over B (1-16) */
	unsigned jb;  /* GEMV: slices of NR per work-item (n), columns per work-item (t), column
		       * slices per compute unit (rows: B not transposed, M <= 2) (1-16) */
	unsigned wm;  /* DIRECT, TILED: rows per work-item (1-16) */
	unsigned kc;  /* PACKED: k-chunk of B copied to local memory (1-1024); TILED: k-tile (1-256) */
	unsigned kl;  /* PACKED: k-range of one launch (1-65536; 65536 = one launch) */
	unsigned kb;  /* GEMV(n): k-block rows whose B block stays in cache (1-65536); rows: rows
		       * of B streamed together (1-32) */
	unsigned ks;  /* GEMV(n): splits of K (1-64; 0 = chosen from the shape) */
	unsigned lx;  /* TILED: work-group width, columns of work-items (1-256) */
	unsigned ly;  /* TILED: work-group height, rows of work-items (1-256) */
	unsigned wn;  /* TILED: columns per work-item (1-16) */
} hf_gemm_params;

typedef struct hf_gemm_plan hf_gemm_plan;

/* The family the plan picks for this shape on this device (dev NULL: a CPU). CPUs: DIRECT for
 * M*N*K <= 32768, GEMV for M <= 48, PACKED above; GPUs: TILED. */
hf_gemm_family hf_gemm_auto_family(const hf_cl_device_info *dev, const hf_gemm_shape *s);

/* The shape class the tuner and the tuning database are keyed by: the automatic family's name
 * ("direct", "gemv", "packed"; on GPUs "tiled" or "tiled-small" for M <= 48), followed by
 * "-f16" for FP16 B. dev NULL: a CPU. */
const char *hf_gemm_shape_class(const hf_cl_device_info *dev, const hf_gemm_shape *s);

/* Parameters a plan would use for this shape on this device without a tuning database. */
void hf_gemm_default_params(const hf_cl_device_info *dev, const hf_gemm_shape *s,
			    hf_gemm_params *out);

/* Makes a plan. params NULL: tuned (tuning database in hf_cl_cache_dir(cl); an entry whose
 * family cannot run this shape is ignored) or defaults; otherwise the given family and
 * parameters (0 fields take defaults). HF_EINVAL on a bad shape
 * or parameter; HF_ECL (with the build log) when the device refuses the kernels. */
int hf_gemm_plan_new(hf_cl *cl, const hf_gemm_shape *s, const hf_gemm_params *params,
		     hf_gemm_plan **out, hf_errbuf *eb);
void hf_gemm_plan_free(hf_gemm_plan *p);

/* Enqueues C = alpha * op(A) * op(B) + beta * C on the plan's queue (in order; returns
 * without waiting). a, b, c must be large enough for the plan's shape and strides. */
int hf_gemm_run(hf_gemm_plan *p, float alpha, cl_mem a, cl_mem b, float beta, cl_mem c,
		hf_errbuf *eb);

/* Packs B once into the plan (weights that stay constant across calls): later hf_gemm_run
 * calls skip packing and ignore their b argument (NULL allowed) until the plan is freed. Call
 * it again after B changes. A no-op (0) for plans that read B in place on every call. */
int hf_gemm_prepack_b(hf_gemm_plan *p, cl_mem b, hf_errbuf *eb);

/* The parameters the plan runs with, and whether they came from the tuning database. */
const hf_gemm_params *hf_gemm_plan_params(const hf_gemm_plan *p);
bool hf_gemm_plan_tuned(const hf_gemm_plan *p);
/* One line such as "packed vw=8 mr=6 nv=2 tm=4 ku=4 pk=64"; returns out. */
char *hf_gemm_params_describe(const hf_gemm_params *prm, char *out, size_t sz);
/* Parses what hf_gemm_params_describe writes: a family name ("packed", "gemv", "direct",
 * "tiled") then name=value fields separated by spaces or commas ("tiled lx=16,ly=16"). Fields
 * left out are 0 (defaults); ranges are checked when a plan is made. HF_EINVAL names the bad
 * word. */
int hf_gemm_params_parse(const char *spec, hf_gemm_params *out, hf_errbuf *eb);
/* Bytes of device workspace the plan holds (packed panels). */
size_t hf_gemm_plan_workspace(const hf_gemm_plan *p);

/* Tuning database: a JSON object {"version":1,"entries":{KEY:{"family":...,...}}} in
 * "<cache_dir>/gemm-tuning.json", KEY = "<device>|<driver>|<shape class>". */
int hf_gemm_tuning_store(const char *cache_dir, const hf_cl_device_info *dev,
			 const char *shape_class, const hf_gemm_params *prm, hf_errbuf *eb);
/* HF_ENOTFOUND when there is no database or no entry for this device and class. */
int hf_gemm_tuning_lookup(const char *cache_dir, const hf_cl_device_info *dev,
			  const char *shape_class, hf_gemm_params *out, hf_errbuf *eb);

#endif
