/* hf_exec_lower: turns a validated hf_graph into the executor's steps (kernel launches with
 * their buffers bound), fusing where it pays unless opts.no_fusion.
 *
 * Lowering (fused): reshape and flatten alias their input's buffer (no kernel). A linear starts
 * a chain: each following op that reads only the previous value, where that value has no other
 * reader and is no model output, joins it: activations (up to HF_NN_MAX_ACTS per layer) into
 * the layer's epilogue, the next small linear as a new layer, a softmax as the chain's end.
 * A chain whose activations fit the device's local memory (two rows of the widest layer
 * written there) is one hf_nn_chain launch; otherwise each layer is its own launch (the
 * kernel reads its input and writes its output in global memory, no local memory). A large
 * linear (K * N > LINEAR_CHAIN_MAX or K > 8192) runs on the GEMM engine (prepacked weights,
 * one plan per batch bucket) followed by one hf_nn_eltwise for bias, a residual add and
 * activations. An add, or a run of activations, is one hf_nn_eltwise; softmax and layernorm one
 * row kernel each.
 * Lowering (no_fusion): every op is its own kernel: linear on the GEMM engine plus a bias
 * kernel, every activation, add, softmax and layernorm one launch.
 * Invariants: steps run in list order on an in-order queue; a step reads only buffers written
 * by earlier steps or the model inputs; rows past the batch in a bucket-sized GEMM are
 * computed and never read.
 * Threading: as hf_exec.h.
 */
#include "hf_exec_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

#define LINEAR_CHAIN_MAX (1u << 22) /* weights of a linear the chain kernel takes */
#define LINEAR_CHAIN_MAX_K 8192
#define MAXZ(a, b) ((a) > (b) ? (a) : (b))

typedef struct chain_layer {
	const hf_graph_op *op;
	int acts;
	int out;                 /* the value after its activations */
} chain_layer;

static bool is_act(hf_op_kind k)
{
	return k == HF_OP_RELU || k == HF_OP_GELU || k == HF_OP_TANH || k == HF_OP_SIGMOID;
}

static int act_code(const hf_graph_op *op)
{
	switch (op->kind) {
	case HF_OP_RELU: return HF_NN_ACT_RELU;
	case HF_OP_GELU: return op->gelu_tanh ? HF_NN_ACT_GELU_TANH : HF_NN_ACT_GELU;
	case HF_OP_TANH: return HF_NN_ACT_TANH;
	case HF_OP_SIGMOID: return HF_NN_ACT_SIGMOID;
	default: return HF_NN_ACT_NONE;
	}
}

static const char *act_name(int code)
{
	static const char *const names[] = { "", "relu", "gelu", "gelu-tanh", "tanh", "sigmoid" };
	return code > 0 && code < (int)HF_ARRAY_SIZE(names) ? names[code] : "?";
}

static void desc_add(hf_exec *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void desc_add(hf_exec *e, const char *fmt, ...)
{
	size_t len = strlen(e->desc);
	va_list ap;
	va_start(ap, fmt);
	if (len + 1 < sizeof e->desc)
		vsnprintf(e->desc + len, sizeof e->desc - len, fmt, ap);
	va_end(ap);
}

static void acts_text(int acts, char *out, size_t sz)
{
	out[0] = '\0';
	for (int i = 0; i < HF_NN_MAX_ACTS && (acts & 15); i++, acts >>= 4) {
		size_t l = strlen(out);
		snprintf(out + l, sz - l, "+%s", act_name(acts & 15));
	}
}

static hf_exec_step *new_step(hf_exec *e, hf_exec_step_kind kind, hf_errbuf *eb)
{
	if (e->nsteps == e->steps_cap) {
		size_t cap = e->steps_cap ? e->steps_cap * 2 : 16;
		hf_exec_step *n = realloc(e->steps, cap * sizeof *n);
		if (!n) {
			hf_fail(eb, HF_ENOMEM, "executor steps");
			return NULL;
		}
		e->steps = n;
		e->steps_cap = cap;
	}
	hf_exec_step *s = &e->steps[e->nsteps++];
	memset(s, 0, sizeof *s);
	s->kind = kind;
	return s;
}

static int make_kernel(hf_exec *e, cl_program prog, const char *name, hf_exec_step *s,
		       hf_errbuf *eb)
{
	cl_int st;
	(void)e;
	s->k = clCreateKernel(prog, name, &st);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "clCreateKernel %s: %s", name, hf_cl_strerror(st));
	return 0;
}

#define SETARG(k, i, v)                                                                     \
	do {                                                                                 \
		if (st == CL_SUCCESS)                                                        \
			st = clSetKernelArg((k), (i), sizeof(v), &(v));                      \
	} while (0)

/* The buffer of value v, allocated (max_batch items) on first use. */
static int value_buf(hf_exec *e, int v, cl_mem *out, hf_errbuf *eb)
{
	if (!e->vbuf[v]) {
		const hf_graph_value *val = hf_graph_value_at(e->g, (size_t)v);
		uint64_t bytes = (uint64_t)e->max_batch * val->per_sample * sizeof(float);
		const hf_cl_device_info *dev = hf_cl_info(e->cl);
		if (bytes > dev->max_alloc_bytes || bytes > SIZE_MAX)
			return hf_fail(eb, HF_ETOOBIG, "value \"%s\": %llu bytes for a batch of %zu "
				       "exceed the device's largest buffer (%llu bytes)", val->name,
				       (unsigned long long)bytes, e->max_batch,
				       (unsigned long long)dev->max_alloc_bytes);
		int r = hf_exec_alloc(e, (size_t)bytes, NULL, &e->vbuf[v], eb);
		if (r)
			return hf_fail_prefix(eb, r, "value \"%s\"", val->name);
	}
	*out = e->vbuf[v];
	return 0;
}

/* A tensor as FP32 on the device (bias, layernorm parameters), padded with zeros to count. */
static int upload_f32(hf_exec *e, const hf_st_tensor *t, size_t count, cl_mem *out,
		      hf_errbuf *eb)
{
	float *h = calloc(count ? count : 1, sizeof *h);
	if (!h)
		return hf_fail(eb, HF_ENOMEM, "tensor \"%s\"", t->name);
	hf_st_read_f32(t, h);
	int r = hf_exec_alloc(e, (count ? count : 1) * sizeof *h, h, out, eb);
	free(h);
	return r;
}

static size_t rows_per_sample(const hf_exec *e, int v, size_t n)
{
	const hf_graph_value *val = hf_graph_value_at(e->g, (size_t)v);
	return n ? (size_t)(val->per_sample / n) : 1;
}

static size_t last_dim(const hf_exec *e, int v)
{
	const hf_graph_value *val = hf_graph_value_at(e->g, (size_t)v);
	return (size_t)val->shape[val->ndim - 1];
}

/* y = acts(x + x2 + bias), x2 and bias optional (-1 / NULL). */
static int emit_eltwise(hf_exec *e, int x, int x2, const hf_st_tensor *bias, cl_mem bias_buf,
			int acts, int y, hf_errbuf *eb)
{
	hf_exec_step *s = new_step(e, HF_XS_ELTWISE, eb);
	if (!s)
		return HF_ENOMEM;
	cl_mem bx, bx2, bb = bias_buf, by;
	int r;
	s->n = last_dim(e, y);
	s->rps = rows_per_sample(e, y, s->n);
	if ((r = value_buf(e, x, &bx, eb)) || (r = value_buf(e, y, &by, eb)))
		return r;
	bx2 = bx;
	if (x2 >= 0 && (r = value_buf(e, x2, &bx2, eb)))
		return r;
	if (bias && !bb && (r = upload_f32(e, bias, s->n, &bb, eb)))
		return r;
	if ((r = make_kernel(e, e->ops_prog, "hf_nn_eltwise", s, eb)))
		return r;
	cl_int st = CL_SUCCESS;
	int n = (int)s->n, hx2 = x2 >= 0, hb = bb != NULL;
	if (!bb)
		bb = bx;
	SETARG(s->k, 1, n); SETARG(s->k, 2, bx); SETARG(s->k, 3, bx2); SETARG(s->k, 4, hx2);
	SETARG(s->k, 5, bb); SETARG(s->k, 6, hb); SETARG(s->k, 7, acts); SETARG(s->k, 8, by);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "eltwise arguments: %s", hf_cl_strerror(st));
	char at[64];
	acts_text(acts, at, sizeof at);
	desc_add(e, "%s%s x%zu, ", hb ? (hx2 ? "bias+add" : "bias") : (hx2 ? "add" : "eltwise"),
		 at, s->n);
	return 0;
}

static int emit_rows(hf_exec *e, const hf_graph_op *op, hf_errbuf *eb)
{
	bool sm = op->kind == HF_OP_SOFTMAX;
	hf_exec_step *s = new_step(e, sm ? HF_XS_SOFTMAX : HF_XS_LAYERNORM, eb);
	if (!s)
		return HF_ENOMEM;
	cl_mem bx, by, bw = NULL, bb = NULL;
	int r, x = op->inputs[0], y = op->outputs[0];
	s->n = last_dim(e, y);
	s->rps = rows_per_sample(e, y, s->n);
	if ((r = value_buf(e, x, &bx, eb)) || (r = value_buf(e, y, &by, eb)))
		return r;
	if ((r = make_kernel(e, e->ops_prog, sm ? "hf_nn_softmax" : "hf_nn_layernorm", s, eb)))
		return r;
	cl_int st = CL_SUCCESS;
	int n = (int)s->n;
	if (sm) {
		SETARG(s->k, 1, n); SETARG(s->k, 2, bx); SETARG(s->k, 3, by);
	} else {
		if (op->weight && (r = upload_f32(e, op->weight, s->n, &bw, eb)))
			return r;
		if (op->bias && (r = upload_f32(e, op->bias, s->n, &bb, eb)))
			return r;
		int hw = bw != NULL, hb = bb != NULL;
		float eps = op->eps;
		if (!bw)
			bw = bx;
		if (!bb)
			bb = bx;
		SETARG(s->k, 1, n); SETARG(s->k, 2, bx); SETARG(s->k, 3, bw); SETARG(s->k, 4, hw);
		SETARG(s->k, 5, bb); SETARG(s->k, 6, hb); SETARG(s->k, 7, eps);
		SETARG(s->k, 8, by);
	}
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "%s arguments: %s", hf_op_name(op->kind),
			       hf_cl_strerror(st));
	desc_add(e, "%s x%zu, ", hf_op_name(op->kind), s->n);
	return 0;
}

/* A GEMM plan: the engine's choice, else (when the device refuses its parameters, e.g. a
 * local-memory block larger than the device's) the other families in turn; the first
 * refusal is the one reported when none fits. */
static int gemm_plan(hf_exec *e, const hf_gemm_shape *sh, hf_gemm_plan **out, hf_errbuf *eb)
{
	static const hf_gemm_family others[] = { HF_GEMM_PACKED, HF_GEMM_TILED, HF_GEMM_DIRECT };
	int r = hf_gemm_plan_new(e->cl, sh, NULL, out, eb);
	if (r != HF_EINVAL)
		return r;
	hf_errbuf first, ignored;
	if (eb)
		first = *eb;
	for (size_t i = 0; i < HF_ARRAY_SIZE(others); i++) {
		hf_gemm_params p = { .family = others[i] };
		if (hf_gemm_plan_new(e->cl, sh, &p, out, &ignored) == 0)
			return 0;
	}
	if (eb)
		*eb = first;
	return r;
}

/* The linear on the GEMM engine, writing value y (its bias and epilogue come after). */
static int emit_gemm(hf_exec *e, const hf_graph_op *op, int y, hf_errbuf *eb)
{
	hf_exec_step *s = new_step(e, HF_XS_GEMM, eb);
	if (!s)
		return HF_ENOMEM;
	s->linear = true;
	const hf_st_tensor *w = op->weight;
	bool half = w->dtype == HF_ST_F16;
	int r;
	s->n = (size_t)op->out_features;
	s->kdim = (size_t)op->in_features;
	s->rps = rows_per_sample(e, y, s->n);
	if ((r = value_buf(e, op->inputs[0], &s->a, eb)) || (r = value_buf(e, y, &s->c, eb)))
		return r;
	if ((r = hf_exec_alloc(e, (size_t)w->nbytes, w->data, &s->w, eb)))
		return hf_fail_prefix(eb, r, "weight \"%s\"", w->name);
	for (size_t b = 0; b < e->nbuckets; b++) {
		hf_gemm_shape sh = { .m = e->buckets[b] * s->rps, .n = s->n,
				     .k = (size_t)op->in_features, .trans_b = true,
				     .b_type = half ? HF_GEMM_B_F16 : HF_GEMM_B_F32 };
		if ((r = gemm_plan(e, &sh, &s->plans[b], eb)) ||
		    (r = hf_gemm_prepack_b(s->plans[b], s->w, eb)))
			return hf_fail_prefix(eb, r, "linear \"%s\" %llux%llu (batch %zu)",
					      w->name, (unsigned long long)op->in_features,
					      (unsigned long long)op->out_features, e->buckets[b]);
		e->dev_bytes += hf_gemm_plan_workspace(s->plans[b]);
	}
	char prm[128];
	hf_gemm_params_describe(hf_gemm_plan_params(s->plans[e->nbuckets - 1]), prm, sizeof prm);
	desc_add(e, "linear%s %llux%llu (gemm %s), ", half ? "(f16)" : "",
		 (unsigned long long)op->in_features, (unsigned long long)op->out_features, prm);
	return 0;
}

static bool chain_eligible(const hf_graph_op *op)
{
	return op->in_features <= LINEAR_CHAIN_MAX_K &&
	       op->in_features * op->out_features <= LINEAR_CHAIN_MAX;
}

static int chain_program(hf_exec *e, bool half, cl_program *out, hf_errbuf *eb)
{
	if (!e->chain_prog[half]) {
		int r = hf_nn_build(e->cl, HF_NN_CHAIN, &e->cp, half, &e->chain_prog[half], eb);
		if (r)
			return r;
	}
	*out = e->chain_prog[half];
	return 0;
}

/* Packs the layers' weights and biases and writes their descriptor table. */
static int chain_tables(hf_exec *e, const chain_layer *L, size_t n, bool half,
			hf_exec_step *s, cl_mem *dw, cl_mem *db, cl_mem *dd, hf_errbuf *eb)
{
	size_t wcount = 0, bcount = 0, esz = half ? 2 : 4;
	int r = 0;
	for (size_t l = 0; l < n; l++) {
		wcount += hf_nn_packed_count(&e->cp, L[l].op->out_features, L[l].op->in_features);
		bcount += hf_nn_padded_cols(&e->cp, L[l].op->out_features);
	}
	if (wcount >= (1u << 31) || bcount >= (1u << 31))
		return hf_fail(eb, HF_ETOOBIG, "chain weights over 2^31 elements");
	unsigned char *wh = calloc(wcount ? wcount : 1, esz);
	float *bh = calloc(bcount ? bcount : 1, sizeof *bh);
	int *dh = calloc(n * HF_NN_DESC_INTS, sizeof *dh);
	if (!wh || !bh || !dh) {
		r = hf_fail(eb, HF_ENOMEM, "chain tables");
		goto free_host;
	}
	size_t wo = 0, bo = 0;
	for (size_t l = 0; l < n; l++) {
		const hf_graph_op *op = L[l].op;
		size_t K = (size_t)op->in_features, N = (size_t)op->out_features;
		int *d = dh + l * HF_NN_DESC_INTS;
		hf_nn_pack_weights(&e->cp, op->weight->data, op->weight->dtype == HF_ST_F16, N, K,
				   wh + wo * esz, half);
		d[0] = (int)K;
		d[1] = (int)N;
		d[2] = (int)wo;
		d[3] = -1;
		if (op->bias) {
			hf_st_read_f32(op->bias, bh + bo);
			d[3] = (int)bo;
		}
		d[4] = L[l].acts;
		d[5] = (int)hf_nn_panel_width(&e->cp, N);
		wo += hf_nn_packed_count(&e->cp, N, K);
		bo += hf_nn_padded_cols(&e->cp, N);
		size_t np = hf_nn_padded_cols(&e->cp, N) / ((size_t)e->cp.vw * e->cp.nv);
		if (l == 0 || np > s->npan)
			s->npan = np;
	}
	if ((r = hf_exec_alloc(e, (wcount ? wcount : 1) * esz, wh, dw, eb)) ||
	    (r = hf_exec_alloc(e, (bcount ? bcount : 1) * sizeof *bh, bh, db, eb)) ||
	    (r = hf_exec_alloc(e, n * HF_NN_DESC_INTS * sizeof *dh, dh, dd, eb)))
		goto free_host;
free_host:
	free(wh);
	free(bh);
	free(dh);
	return r;
}

/* One hf_nn_chain launch over layers L[0..n) (softmax_last: then softmax), from value x to
 * value y. */
static int emit_chain(hf_exec *e, const chain_layer *L, size_t n, bool softmax_last, int x,
		      int y, hf_errbuf *eb)
{
	bool half = true;
	for (size_t l = 0; l < n; l++)
		half = half && L[l].op->weight->dtype == HF_ST_F16;
	hf_exec_step *s = new_step(e, HF_XS_CHAIN, eb);
	if (!s)
		return HF_ENOMEM;
	s->linear = true;
	s->nlayers = n;
	s->softmax_last = softmax_last;
	s->ls = e->cp.ls;
	s->n = (size_t)L[0].op->in_features;
	s->rps = rows_per_sample(e, x, s->n);
	for (size_t l = 0; l < n; l++)
		if (l + 1 < n || softmax_last)
			s->maxn_local = MAXZ(s->maxn_local, (size_t)L[l].op->out_features);
	size_t per_row = 2 * s->maxn_local * sizeof(float);
	s->rb_max = per_row ? e->local_avail / per_row : 64;
	if (s->rb_max > 64)
		s->rb_max = 64;
	cl_program prog;
	cl_mem bx, by, dw, db, dd;
	int r;
	if ((r = value_buf(e, x, &bx, eb)) || (r = value_buf(e, y, &by, eb)) ||
	    (r = chain_program(e, half, &prog, eb)) ||
	    (r = make_kernel(e, prog, "hf_nn_chain", s, eb)) ||
	    (r = chain_tables(e, L, n, half, s, &dw, &db, &dd, eb)))
		return r;
	cl_int st = CL_SUCCESS;
	int nl = (int)n, ldx = (int)s->n, ldy = (int)L[n - 1].op->out_features, sl = softmax_last;
	SETARG(s->k, 1, nl); SETARG(s->k, 2, dd); SETARG(s->k, 3, bx); SETARG(s->k, 4, ldx);
	SETARG(s->k, 5, dw); SETARG(s->k, 6, db); SETARG(s->k, 7, by); SETARG(s->k, 8, ldy);
	SETARG(s->k, 11, sl);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "chain arguments: %s", hf_cl_strerror(st));
	desc_add(e, "%s[", n > 1 ? "chain" : "fused");
	for (size_t l = 0; l < n; l++) {
		char at[64];
		acts_text(L[l].acts, at, sizeof at);
		desc_add(e, "linear%s%s %llux%llu%s", L[l].op->bias ? "+bias" : "", at,
			 (unsigned long long)L[l].op->in_features,
			 (unsigned long long)L[l].op->out_features, l + 1 < n ? ", " : "");
	}
	char prm[96];
	hf_nn_chain_describe(&e->cp, half, prm, sizeof prm);
	desc_add(e, "%s] (%s, rows/group <= %zu), ", softmax_last ? "+softmax" : "", prm,
		 s->rb_max);
	return 0;
}

/* The chain L[0..n) from x, as one launch when its activations fit local memory, else a
 * launch per layer (and the softmax on its own when even one row does not fit). */
static int lower_chain(hf_exec *e, const chain_layer *L, size_t n, bool softmax_last, int x,
		       int y, hf_errbuf *eb)
{
	size_t maxn = 0;
	for (size_t l = 0; l < n; l++)
		if (l + 1 < n || softmax_last)
			maxn = MAXZ(maxn, (size_t)L[l].op->out_features);
	if (2 * maxn * sizeof(float) <= e->local_avail)
		return emit_chain(e, L, n, softmax_last, x, y, eb);
	int r, in = x;
	for (size_t l = 0; l < n; l++) {
		bool last = l + 1 == n;
		size_t ln = (size_t)L[l].op->out_features;
		bool sm = last && softmax_last && 2 * ln * sizeof(float) <= e->local_avail;
		int out = last && (sm || !softmax_last) ? y : L[l].out;
		if ((r = emit_chain(e, &L[l], 1, sm, in, out, eb)))
			return r;
		in = out;
	}
	if (softmax_last && in != y) {
		hf_graph_op sm = { .kind = HF_OP_SOFTMAX, .ninputs = 1, .noutputs = 1,
				   .inputs = { in, -1 }, .outputs = { y }, .axis = -1 };
		return emit_rows(e, &sm, eb);
	}
	return 0;
}

/* Readers of each value (+1 for a model output). */
static int *count_uses(const hf_graph *g)
{
	int *uses = calloc(hf_graph_nvalues(g) + 1, sizeof *uses);
	if (!uses)
		return NULL;
	for (size_t i = 0; i < hf_graph_nops(g); i++) {
		const hf_graph_op *op = hf_graph_op_at(g, i);
		for (size_t j = 0; j < op->ninputs; j++)
			uses[op->inputs[j]]++;
	}
	for (size_t i = 0; i < hf_graph_noutputs(g); i++)
		uses[hf_graph_output(g, i)->value]++;
	return uses;
}

/* Whether op j (if it exists) reads only value v, v's only reader. */
static bool reads_only(const hf_graph *g, const int *uses, size_t j, int v)
{
	if (j >= hf_graph_nops(g))
		return false;
	const hf_graph_op *op = hf_graph_op_at(g, j);
	return op->ninputs == 1 && op->inputs[0] == v && uses[v] == 1;
}

/* Absorbs up to max activations following op *j that read cur; returns their list. */
static int take_acts(const hf_graph *g, const int *uses, size_t *j, int *cur, int max)
{
	int acts = 0;
	for (int na = 0; na < max && reads_only(g, uses, *j, *cur) &&
			 is_act(hf_graph_op_at(g, *j)->kind); na++) {
		const hf_graph_op *op = hf_graph_op_at(g, *j);
		acts |= act_code(op) << (4 * na);
		*cur = op->outputs[0];
		(*j)++;
	}
	return acts;
}

/* Fused: a linear at op i and whatever joins it (see the top); returns the next op. */
static int lower_linear_fused(hf_exec *e, const int *uses, size_t i, size_t *next,
			      hf_errbuf *eb)
{
	const hf_graph *g = e->g;
	const hf_graph_op *op = hf_graph_op_at(g, i);
	int cur = op->outputs[0], x = op->inputs[0], r;
	size_t j = i + 1;
	if (!chain_eligible(op)) {
		/* GEMM engine, then bias, a residual add and activations in one eltwise. */
		int x2 = -1;
		int acts = take_acts(g, uses, &j, &cur, HF_NN_MAX_ACTS);
		if (!acts && j < hf_graph_nops(g) && hf_graph_op_at(g, j)->kind == HF_OP_ADD &&
		    uses[cur] == 1) {
			const hf_graph_op *add = hf_graph_op_at(g, j);
			int other = add->inputs[0] == cur ? add->inputs[1] : add->inputs[0];
			if ((add->inputs[0] == cur) != (add->inputs[1] == cur)) {
				x2 = other;
				cur = add->outputs[0];
				j++;
				acts = take_acts(g, uses, &j, &cur, HF_NN_MAX_ACTS);
			}
		}
		*next = j;
		if ((r = emit_gemm(e, op, cur, eb)))
			return r;
		if (!op->bias && x2 < 0 && !acts)
			return 0;
		return emit_eltwise(e, cur, x2, op->bias, NULL, acts, cur, eb);
	}
	chain_layer L[HF_EXEC_CHAIN_MAX_LAYERS];
	size_t n = 0;
	bool sm = false;
	for (;;) {
		L[n].op = op;
		L[n].acts = take_acts(g, uses, &j, &cur, HF_NN_MAX_ACTS);
		L[n].out = cur;
		n++;
		if (n < HF_EXEC_CHAIN_MAX_LAYERS && reads_only(g, uses, j, cur) &&
		    hf_graph_op_at(g, j)->kind == HF_OP_LINEAR &&
		    chain_eligible(hf_graph_op_at(g, j))) {
			op = hf_graph_op_at(g, j++);
			cur = op->outputs[0];
			continue;
		}
		break;
	}
	if (reads_only(g, uses, j, cur) && hf_graph_op_at(g, j)->kind == HF_OP_SOFTMAX) {
		sm = true;
		cur = hf_graph_op_at(g, j++)->outputs[0];
	}
	*next = j;
	return lower_chain(e, L, n, sm, x, cur, eb);
}

static int alias(hf_exec *e, const hf_graph_op *op, hf_errbuf *eb)
{
	cl_mem b;
	int r = value_buf(e, op->inputs[0], &b, eb);
	if (!r)
		e->vbuf[op->outputs[0]] = b;
	return r;
}

static int lower_op(hf_exec *e, const int *uses, size_t i, size_t *next, hf_errbuf *eb)
{
	const hf_graph *g = e->g;
	const hf_graph_op *op = hf_graph_op_at(g, i);
	bool fuse = !e->opts.no_fusion;
	int y = op->outputs[0], r;
	*next = i + 1;
	switch (op->kind) {
	case HF_OP_RESHAPE:
	case HF_OP_FLATTEN:
		return alias(e, op, eb);
	case HF_OP_LINEAR:
		if (fuse)
			return lower_linear_fused(e, uses, i, next, eb);
		if ((r = emit_gemm(e, op, y, eb)))
			return r;
		return op->bias ? emit_eltwise(e, y, -1, op->bias, NULL, 0, y, eb) : 0;
	case HF_OP_SOFTMAX:
	case HF_OP_LAYERNORM:
		return emit_rows(e, op, eb);
	case HF_OP_ADD:
	case HF_OP_RELU:
	case HF_OP_GELU:
	case HF_OP_TANH:
	case HF_OP_SIGMOID: {
		bool add = op->kind == HF_OP_ADD;
		int acts = add ? 0 : act_code(op), cur = y;
		size_t j = i + 1;
		if (fuse)
			acts |= take_acts(g, uses, &j, &cur, HF_NN_MAX_ACTS - !add) << (add ? 0 : 4);
		*next = j;
		return emit_eltwise(e, op->inputs[0], add ? op->inputs[1] : -1, NULL, NULL, acts,
				    cur, eb);
	}
	default:
		return hf_fail(eb, HF_EUNSUPPORTED, "ops[%zu] (%s): not supported by the executor",
			       i, hf_op_name(op->kind));
	}
}

int hf_exec_lower(hf_exec *e, hf_errbuf *eb)
{
	const hf_graph *g = e->g;
	int *uses = count_uses(g), r = 0;
	if (!uses)
		return hf_fail(eb, HF_ENOMEM, "executor use counts");
	for (size_t i = 0; i < hf_graph_ninputs(g); i++) {
		cl_mem b;
		if ((r = value_buf(e, hf_graph_input(g, i)->value, &b, eb)))
			goto free_uses;
	}
	for (size_t i = 0, next; i < hf_graph_nops(g); i = next) {
		if ((r = lower_op(e, uses, i, &next, eb))) {
			const hf_graph_op *op = hf_graph_op_at(g, i);
			r = hf_fail_prefix(eb, r, "ops[%zu] (%s)", i, hf_op_name(op->kind));
			goto free_uses;
		}
	}
	for (size_t i = 0; i < hf_graph_noutputs(g); i++) {
		cl_mem b;
		if ((r = value_buf(e, hf_graph_output(g, i)->value, &b, eb)))
			goto free_uses;
	}
	size_t len = strlen(e->desc);
	if (len >= 2 && e->desc[len - 2] == ',')
		e->desc[len - 2] = '\0';
free_uses:
	free(uses);
	return r;
}
