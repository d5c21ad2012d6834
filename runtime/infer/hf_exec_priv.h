/* hf_exec_priv: the executor's internal types, shared by hf_exec.c (object, runs, stats) and
 * hf_exec_lower.c (the lowering of a graph into steps). Not part of the API.
 *
 * Invariants: a step is one or more kernel launches enqueued back to back; every cl_mem the
 * executor creates is in mems[] (released once at free), vbuf[] only borrows them; a value
 * inside a fused chain has no buffer (vbuf NULL).
 * Threading: as hf_exec.h.
 */
#ifndef HF_EXEC_PRIV_H
#define HF_EXEC_PRIV_H

#include "hf_exec.h"
#include "hf_gemm.h"
#include "hf_nn.h"

#define HF_EXEC_MAX_BUCKETS 24
#define HF_EXEC_CHAIN_MAX_LAYERS 64

typedef enum hf_exec_step_kind {
	HF_XS_GEMM = 0,   /* a linear on the GEMM engine (one plan per batch bucket) */
	HF_XS_ELTWISE,    /* bias / residual / activations (hf_nn_eltwise) */
	HF_XS_SOFTMAX,
	HF_XS_LAYERNORM,
	HF_XS_CHAIN,      /* linear layers with their epilogues in one launch (hf_nn_chain) */
} hf_exec_step_kind;

typedef struct hf_exec_step {
	hf_exec_step_kind kind;
	bool linear;             /* device time counts as GEMM time */
	cl_kernel k;
	size_t rps;              /* rows per batch item (per_sample / row length) */
	size_t n;                /* row length (elements per row) */
	/* HF_XS_GEMM */
	hf_gemm_plan *plans[HF_EXEC_MAX_BUCKETS];
	cl_mem a, w, c;
	size_t kdim;             /* K */
	/* HF_XS_CHAIN */
	size_t nlayers, maxn_local, rb_max, npan;
	bool softmax_last;
	size_t ls;
} hf_exec_step;

struct hf_exec {
	hf_cl *cl;
	const hf_graph *g;
	hf_exec_opts opts;
	size_t max_batch, nbuckets, buckets[HF_EXEC_MAX_BUCKETS];
	unsigned cus;
	bool gpu, profiling;
	cl_program ops_prog, chain_prog[2]; /* [w_half] */
	hf_nn_chain_params cp;
	size_t local_avail;      /* bytes of local memory a chain may use */
	cl_mem *vbuf;            /* per value */
	cl_mem *mems;
	size_t nmems, mems_cap;
	hf_exec_step *steps;
	size_t nsteps, steps_cap;
	uint64_t dev_bytes;
	char desc[4096];
	hf_exec_stats st;
	cl_event *evs;           /* 2 per step, profiling runs only */
};

/* hf_exec_lower.c: fills e->steps, e->vbuf (and e->mems) from e->g. */
int hf_exec_lower(hf_exec *e, hf_errbuf *eb);
/* A device buffer of bytes (copied from host when not NULL), kept in e->mems. */
int hf_exec_alloc(hf_exec *e, size_t bytes, const void *host, cl_mem *out, hf_errbuf *eb);
/* Index of the smallest bucket holding batch. */
size_t hf_exec_bucket(const hf_exec *e, size_t batch);
/* Kernel launches one run of step s makes at bucket bi. */
size_t hf_exec_step_launches(const hf_exec *e, const hf_exec_step *s, size_t bi);

#endif
