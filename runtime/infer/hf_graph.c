/* hf_graph: the layer graph of a model: strict JSON parsing, shape inference against the
 * safetensors file's tensors, and the CPU reference executor.
 *
 * Invariants: the op table (op_defs) holds one entry per hf_op_kind, in enum order; an entry
 * is all an op needs: its name, how many value inputs and outputs it has, the attribute keys
 * it accepts, and three functions (parse its attributes, infer its output shape and check its
 * weights, run it on the reference). The generic code around it checks the keys, resolves the
 * value names, enforces the caps and the per-sample element cap on every inferred value. A
 * value is defined once, before any op reads it; ops run in list order. After hf_graph_new
 * nothing in the graph changes; weights point into the hf_st given.
 * The reference executor is plain C: FP32 storage, double accumulation in linear and the
 * reductions (softmax, layernorm), elementwise maths in double rounded once to FP32.
 * Threading: an hf_graph is immutable; hf_graph_ref_run may run concurrently on one graph
 * (each call allocates its own buffers).
 */
#include "hf_graph.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_text.h"

#define GRAPH_MAX_JSON (1u << 20)
#define GRAPH_MAX_PER_SAMPLE (1u << 24)
#define OP_MAX_IN (sizeof ((hf_graph_op *)0)->inputs / sizeof(int))
#define OP_MAX_OUT (sizeof ((hf_graph_op *)0)->outputs / sizeof(int))

/* What an op's parse step hands to its infer step besides the hf_graph_op fields. */
typedef struct op_tmp {
	size_t ndim;                      /* reshape: the target shape */
	int64_t shape[HF_GRAPH_MAX_DIMS];
	int64_t axis;                     /* softmax: as written (normalised by infer) */
} op_tmp;

/* One reference run of an op: inputs and output of batch items, weights widened to FP32. */
typedef struct op_run {
	size_t batch;
	const float *in[OP_MAX_IN];
	const hf_graph_value *vin[OP_MAX_IN];
	float *out[OP_MAX_OUT];
	const hf_graph_value *vout[OP_MAX_OUT];
	const float *w, *b;               /* op->weight / op->bias as FP32, or NULL */
} op_run;

typedef struct op_def {
	const char *name;
	size_t nin, nout;                 /* value inputs and outputs (at most OP_MAX_IN/OUT) */
	const char *const *attrs;         /* accepted keys besides op/inputs/outputs; NULL end */
	int (*parse)(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t, hf_errbuf *eb);
	int (*infer)(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
		     hf_graph_value *const *out, hf_errbuf *eb);
	void (*run)(const hf_graph_op *op, const op_run *r);
} op_def;

struct hf_graph {
	size_t nvalues, nops, nin, nout;
	hf_graph_value *values;
	hf_graph_op *ops;
	int *last_use;                    /* per value: the last op reading it (nops: keep) */
	hf_graph_io in[HF_GRAPH_MAX_IO], out[HF_GRAPH_MAX_IO];
	uint64_t flops, weight_bytes;
};

/* A string from the model made safe for an error message. */
typedef struct g_clean {
	char s[80];
} g_clean;

static g_clean clean(const char *s)
{
	g_clean c;
	hf_text_clean(c.s, sizeof c.s, s, strlen(s));
	return c;
}

static const char *fmt_dims(char *buf, size_t sz, const int64_t *d, size_t n)
{
	size_t off = 0;
	int w;

	buf[0] = '\0';
	w = snprintf(buf, sz, "[");
	off = w > 0 ? (size_t)w : 0;
	for (size_t i = 0; i < n && off < sz; i++) {
		w = snprintf(buf + off, sz - off, "%s%lld", i ? ", " : "", (long long)d[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off < sz)
		snprintf(buf + off, sz - off, "]");
	return buf;
}

static const char *fmt_tshape(char *buf, size_t sz, const hf_st_tensor *t)
{
	int64_t d[HF_ST_MAX_DIMS];
	for (size_t i = 0; i < t->ndim; i++)
		d[i] = (int64_t)t->shape[i];
	return fmt_dims(buf, sz, d, t->ndim);
}

/* ---- attribute helpers ---- */

/* key names a tensor of st; absent (or null when optional) leaves *out NULL. */
static int attr_tensor(const hf_st *st, json_t *j, const char *key, bool required,
		       const hf_st_tensor **out, hf_errbuf *eb)
{
	json_t *v = json_object_get(j, key);

	*out = NULL;
	if (!v || (json_is_null(v) && !required)) {
		if (required)
			return hf_fail(eb, HF_EPARSE, "missing \"%s\" (a tensor name)", key);
		return 0;
	}
	if (!json_is_string(v))
		return hf_fail(eb, HF_EPARSE, "%s: expected a tensor name (string)", key);
	*out = hf_st_find(st, json_string_value(v));
	if (!*out)
		return hf_fail(eb, HF_EPARSE, "%s: tensor \"%s\" is not in the file", key,
			       clean(json_string_value(v)).s);
	return 0;
}

static int check_vector(const char *key, const hf_st_tensor *t, uint64_t d, hf_errbuf *eb)
{
	char sh[96];
	if (t && (t->ndim != 1 || t->shape[0] != d))
		return hf_fail(eb, HF_EPARSE, "%s \"%s\" has shape %s, expected [%llu]", key,
			       clean(t->name).s, fmt_tshape(sh, sizeof sh, t), (unsigned long long)d);
	return 0;
}

static void copy_shape(hf_graph_value *out, const hf_graph_value *in)
{
	out->ndim = in->ndim;
	memcpy(out->shape, in->shape, sizeof out->shape);
}

static int need_features(const hf_graph_value *in, hf_errbuf *eb)
{
	if (in->ndim < 2)
		return hf_fail(eb, HF_EPARSE, "inputs[0] \"%s\" has no dim after the batch",
			       clean(in->name).s);
	return 0;
}

/* ---- linear ---- */

static const char *const linear_attrs[] = { "weight", "bias", NULL };

static int linear_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t, hf_errbuf *eb)
{
	int rc = attr_tensor(st, j, "weight", true, &op->weight, eb);
	return rc ? rc : attr_tensor(st, j, "bias", false, &op->bias, eb);
}

static int linear_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
			hf_graph_value *const *out, hf_errbuf *eb)
{
	const hf_st_tensor *w = op->weight;
	uint64_t nin;
	char sh[96];
	int rc = need_features(in[0], eb);

	if (rc)
		return rc;
	nin = (uint64_t)in[0]->shape[in[0]->ndim - 1];
	if (w->ndim != 2 || w->shape[1] != nin || w->shape[0] == 0) {
		if (w->ndim == 2 && w->shape[0] > 0)
			return hf_fail(eb, HF_EPARSE, "weight \"%s\" has shape %s, expected [%llu, "
				       "%llu] for %llu inputs", clean(w->name).s,
				       fmt_tshape(sh, sizeof sh, w), (unsigned long long)w->shape[0],
				       (unsigned long long)nin, (unsigned long long)nin);
		return hf_fail(eb, HF_EPARSE, "weight \"%s\" has shape %s, expected [out, %llu] "
			       "(out >= 1) for %llu inputs", clean(w->name).s,
			       fmt_tshape(sh, sizeof sh, w), (unsigned long long)nin,
			       (unsigned long long)nin);
	}
	if (w->shape[0] > GRAPH_MAX_PER_SAMPLE)
		return hf_fail(eb, HF_ETOOBIG, "weight \"%s\": %llu outputs, at most %u",
			       clean(w->name).s, (unsigned long long)w->shape[0],
			       GRAPH_MAX_PER_SAMPLE);
	rc = check_vector("bias", op->bias, w->shape[0], eb);
	if (rc)
		return rc;
	op->in_features = nin;
	op->out_features = w->shape[0];
	copy_shape(out[0], in[0]);
	out[0]->shape[out[0]->ndim - 1] = (int64_t)w->shape[0];
	return 0;
}

static void linear_run(const hf_graph_op *op, const op_run *r)
{
	size_t nin = op->in_features, nout = op->out_features;
	size_t rows = r->batch * (size_t)(r->vin[0]->per_sample / nin);

	for (size_t i = 0; i < rows; i++) {
		const float *x = r->in[0] + i * nin;
		float *y = r->out[0] + i * nout;
		for (size_t o = 0; o < nout; o++) {
			const float *wr = r->w + o * nin;
			double acc = r->b ? (double)r->b[o] : 0.0;
			for (size_t k = 0; k < nin; k++)
				acc += (double)x[k] * (double)wr[k];
			y[o] = (float)acc;
		}
	}
}

/* ---- elementwise ---- */

static const char *const no_attrs[] = { NULL };
static const char *const gelu_attrs[] = { "approximate", NULL };

static int no_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t, hf_errbuf *eb)
{
	return 0;
}

static int same_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
		      hf_graph_value *const *out, hf_errbuf *eb)
{
	copy_shape(out[0], in[0]);
	return 0;
}

static int gelu_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t, hf_errbuf *eb)
{
	json_t *v = json_object_get(j, "approximate");
	const char *s;

	if (!v)
		return 0;
	s = json_string_value(v);
	if (s && strcmp(s, "none") == 0)
		op->gelu_tanh = false;
	else if (s && strcmp(s, "tanh") == 0)
		op->gelu_tanh = true;
	else
		return hf_fail(eb, HF_EPARSE, "approximate: expected \"none\" or \"tanh\"");
	return 0;
}

#define ELEMENTWISE(fname, expr)                                                  \
	static void fname(const hf_graph_op *op, const op_run *r)                 \
	{                                                                         \
		size_t n = r->batch * (size_t)r->vout[0]->per_sample;                \
		for (size_t i = 0; i < n; i++) {                                  \
			double x = (double)r->in[0][i];                           \
			r->out[0][i] = (float)(expr);                                \
		}                                                                 \
	}

ELEMENTWISE(relu_run, x < 0.0 ? 0.0 : x)
ELEMENTWISE(tanh_run, tanh(x))
ELEMENTWISE(sigmoid_run, 1.0 / (1.0 + exp(-x)))

/* PyTorch's definitions: erf form 0.5 x (1 + erf(x / sqrt 2)); tanh form
 * 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
static void gelu_run(const hf_graph_op *op, const op_run *r)
{
	size_t n = r->batch * (size_t)r->vout[0]->per_sample;
	const double k = sqrt(2.0 / 3.14159265358979323846), rs2 = 1.0 / sqrt(2.0);

	for (size_t i = 0; i < n; i++) {
		double x = (double)r->in[0][i];
		double y = op->gelu_tanh ? 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)))
					 : 0.5 * x * (1.0 + erf(x * rs2));
		r->out[0][i] = (float)y;
	}
}

/* ---- softmax ---- */

static const char *const softmax_attrs[] = { "axis", NULL };

static int softmax_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t,
			 hf_errbuf *eb)
{
	json_t *v = json_object_get(j, "axis");

	t->axis = -1;
	if (v && !json_is_integer(v))
		return hf_fail(eb, HF_EPARSE, "axis: expected an integer");
	if (v)
		t->axis = json_integer_value(v);
	return 0;
}

static int softmax_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
			 hf_graph_value *const *out, hf_errbuf *eb)
{
	int rc = need_features(in[0], eb);

	if (rc)
		return rc;
	if (t->axis != -1 && t->axis != (int64_t)in[0]->ndim - 1)
		return hf_fail(eb, HF_EUNSUPPORTED, "axis: %lld is not supported (only -1, the "
			       "last dim)", (long long)t->axis);
	op->axis = -1;
	copy_shape(out[0], in[0]);
	return 0;
}

static void softmax_run(const hf_graph_op *op, const op_run *r)
{
	size_t d = (size_t)r->vout[0]->shape[r->vout[0]->ndim - 1];
	size_t rows = r->batch * (size_t)(r->vout[0]->per_sample / d);

	for (size_t i = 0; i < rows; i++) {
		const float *x = r->in[0] + i * d;
		float *y = r->out[0] + i * d;
		double m = x[0], sum = 0.0;
		for (size_t k = 1; k < d; k++)
			m = x[k] > m ? x[k] : m;
		for (size_t k = 0; k < d; k++)
			sum += exp((double)x[k] - m);
		for (size_t k = 0; k < d; k++)
			y[k] = (float)(exp((double)x[k] - m) / sum);
	}
}

/* ---- layernorm ---- */

static const char *const layernorm_attrs[] = { "weight", "bias", "eps", NULL };

static int layernorm_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t,
			   hf_errbuf *eb)
{
	json_t *v = json_object_get(j, "eps");
	int rc;

	op->eps = 1e-5f;
	if (v) {
		double e = json_number_value(v);
		if (!json_is_number(v) || !(e > 0.0) || !((float)e > 0.0f) || !isfinite((float)e))
			return hf_fail(eb, HF_EPARSE, "eps: expected a positive number (as FP32)");
		op->eps = (float)e;
	}
	rc = attr_tensor(st, j, "weight", false, &op->weight, eb);
	return rc ? rc : attr_tensor(st, j, "bias", false, &op->bias, eb);
}

static int layernorm_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
			   hf_graph_value *const *out, hf_errbuf *eb)
{
	uint64_t d;
	int rc = need_features(in[0], eb);

	if (rc)
		return rc;
	d = (uint64_t)in[0]->shape[in[0]->ndim - 1];
	rc = check_vector("weight", op->weight, d, eb);
	if (!rc)
		rc = check_vector("bias", op->bias, d, eb);
	if (!rc)
		copy_shape(out[0], in[0]);
	return rc;
}

/* PyTorch's LayerNorm: biased variance, (x - mean) / sqrt(var + eps) * w + b. */
static void layernorm_run(const hf_graph_op *op, const op_run *r)
{
	size_t d = (size_t)r->vout[0]->shape[r->vout[0]->ndim - 1];
	size_t rows = r->batch * (size_t)(r->vout[0]->per_sample / d);

	for (size_t i = 0; i < rows; i++) {
		const float *x = r->in[0] + i * d;
		float *y = r->out[0] + i * d;
		double mean = 0.0, var = 0.0, inv;
		for (size_t k = 0; k < d; k++)
			mean += x[k];
		mean /= (double)d;
		for (size_t k = 0; k < d; k++)
			var += ((double)x[k] - mean) * ((double)x[k] - mean);
		var /= (double)d;
		inv = 1.0 / sqrt(var + (double)op->eps);
		for (size_t k = 0; k < d; k++) {
			double v = ((double)x[k] - mean) * inv;
			if (r->w)
				v *= r->w[k];
			if (r->b)
				v += r->b[k];
			y[k] = (float)v;
		}
	}
}

/* ---- add ---- */

static int add_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
		     hf_graph_value *const *out, hf_errbuf *eb)
{
	char a[128], b[128];

	if (in[0]->ndim != in[1]->ndim ||
	    memcmp(in[0]->shape, in[1]->shape, in[0]->ndim * sizeof in[0]->shape[0]) != 0)
		return hf_fail(eb, HF_EPARSE, "inputs[1] \"%s\" has shape %s, expected %s like "
			       "inputs[0] \"%s\"", clean(in[1]->name).s,
			       fmt_dims(a, sizeof a, in[1]->shape, in[1]->ndim),
			       fmt_dims(b, sizeof b, in[0]->shape, in[0]->ndim),
			       clean(in[0]->name).s);
	copy_shape(out[0], in[0]);
	return 0;
}

static void add_run(const hf_graph_op *op, const op_run *r)
{
	size_t n = r->batch * (size_t)r->vout[0]->per_sample;
	for (size_t i = 0; i < n; i++)
		r->out[0][i] = r->in[0][i] + r->in[1][i];
}

/* ---- reshape, flatten ---- */

static const char *const reshape_attrs[] = { "shape", NULL };

static int parse_dims(json_t *v, const char *what, size_t *ndim, int64_t *shape,
		      hf_errbuf *eb);

static int reshape_parse(const hf_st *st, json_t *j, hf_graph_op *op, op_tmp *t,
			 hf_errbuf *eb)
{
	json_t *v = json_object_get(j, "shape");
	if (!v)
		return hf_fail(eb, HF_EPARSE, "missing \"shape\"");
	return parse_dims(v, "shape", &t->ndim, t->shape, eb);
}

static int reshape_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
			 hf_graph_value *const *out, hf_errbuf *eb)
{
	uint64_t n = 1;
	char sh[128];

	for (size_t i = 1; i < t->ndim; i++)
		n *= (uint64_t)t->shape[i]; /* parse_dims capped the product */
	if (n != in[0]->per_sample)
		return hf_fail(eb, HF_EPARSE, "shape %s has %llu elements per sample, inputs[0] "
			       "\"%s\" has %llu", fmt_dims(sh, sizeof sh, t->shape, t->ndim),
			       (unsigned long long)n, clean(in[0]->name).s,
			       (unsigned long long)in[0]->per_sample);
	out[0]->ndim = t->ndim;
	memcpy(out[0]->shape, t->shape, sizeof out[0]->shape);
	return 0;
}

static int flatten_infer(hf_graph_op *op, const op_tmp *t, const hf_graph_value *const *in,
			 hf_graph_value *const *out, hf_errbuf *eb)
{
	out[0]->ndim = 2;
	out[0]->shape[0] = -1;
	out[0]->shape[1] = (int64_t)in[0]->per_sample;
	return 0;
}

static void copy_run(const hf_graph_op *op, const op_run *r)
{
	memcpy(r->out[0], r->in[0], r->batch * (size_t)r->vout[0]->per_sample * sizeof(float));
}

/* ---- the op table (hf_op_kind order) ---- */

static const op_def op_defs[HF_OP_KIND_COUNT] = {
	[HF_OP_LINEAR] = { "linear", 1, 1, linear_attrs, linear_parse, linear_infer, linear_run },
	[HF_OP_RELU] = { "relu", 1, 1, no_attrs, no_parse, same_infer, relu_run },
	[HF_OP_GELU] = { "gelu", 1, 1, gelu_attrs, gelu_parse, same_infer, gelu_run },
	[HF_OP_TANH] = { "tanh", 1, 1, no_attrs, no_parse, same_infer, tanh_run },
	[HF_OP_SIGMOID] = { "sigmoid", 1, 1, no_attrs, no_parse, same_infer, sigmoid_run },
	[HF_OP_SOFTMAX] = { "softmax", 1, 1, softmax_attrs, softmax_parse, softmax_infer,
			    softmax_run },
	[HF_OP_LAYERNORM] = { "layernorm", 1, 1, layernorm_attrs, layernorm_parse,
			      layernorm_infer, layernorm_run },
	[HF_OP_ADD] = { "add", 2, 1, no_attrs, no_parse, add_infer, add_run },
	[HF_OP_RESHAPE] = { "reshape", 1, 1, reshape_attrs, reshape_parse, reshape_infer,
			    copy_run },
	[HF_OP_FLATTEN] = { "flatten", 1, 1, no_attrs, no_parse, flatten_infer, copy_run },
};

const char *hf_op_name(hf_op_kind k)
{
	return (unsigned)k < HF_OP_KIND_COUNT ? op_defs[k].name : "?";
}

/* ---- generic parsing ---- */

static bool key_in(const char *k, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(k, *list) == 0)
			return true;
	return false;
}

/* Refuses keys of obj outside base and extra (path names obj in the message). */
static int check_keys(json_t *obj, const char *const *base, const char *const *extra,
		      const char *path, hf_errbuf *eb)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		if (key_in(k, base) || key_in(k, extra))
			continue;
		if (!path)
			return hf_fail(eb, HF_EPARSE, "unknown key \"%s\"", clean(k).s);
		return hf_fail(eb, HF_EPARSE, "%s: unknown key \"%s\"", path, clean(k).s);
	}
	return 0;
}

/* A value shape [-1, d1, ...]: 2..HF_GRAPH_MAX_DIMS dims, the batch -1, the others >= 1,
 * at most GRAPH_MAX_PER_SAMPLE elements per sample. */
static int parse_dims(json_t *v, const char *what, size_t *ndim, int64_t *shape,
		      hf_errbuf *eb)
{
	size_t n = json_array_size(v);
	uint64_t per = 1;

	if (!json_is_array(v) || n < 2)
		return hf_fail(eb, HF_EPARSE, "%s: expected an array [-1, d1, ...] (the batch and at "
			       "least one dim)", what);
	if (n > HF_GRAPH_MAX_DIMS)
		return hf_fail(eb, HF_ETOOBIG, "%s: %zu dims, at most %d", what, n,
			       HF_GRAPH_MAX_DIMS);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(v, i);
		json_int_t x = json_integer_value(d);
		if (!json_is_integer(d))
			return hf_fail(eb, HF_EPARSE, "%s[%zu]: expected an integer", what, i);
		if (i == 0 && x != -1)
			return hf_fail(eb, HF_EPARSE, "%s[0]: the batch dim must be -1, not %lld",
				       what, (long long)x);
		if (i > 0 && x < 1)
			return hf_fail(eb, HF_EPARSE, "%s[%zu]: expected a dim >= 1, not %lld "
				       "(only the batch dim is -1)", what, i, (long long)x);
		if (i > 0 && (uint64_t)x > GRAPH_MAX_PER_SAMPLE / per)
			return hf_fail(eb, HF_ETOOBIG, "%s: more than %u elements per sample", what,
				       GRAPH_MAX_PER_SAMPLE);
		if (i > 0)
			per *= (uint64_t)x;
		shape[i] = x;
	}
	*ndim = n;
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	const unsigned char *p = (const unsigned char *)s;

	if (n == 0 || n >= HF_GRAPH_MAX_NAME || !hf_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f ||
		    (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f))
			return false;
	return true;
}

/* Parser state: the graph under construction and a name -> value index map. */
typedef struct gparse {
	hf_graph *g;
	const hf_st *st;
	json_t *names;   /* object: value name -> integer index */
	size_t cap;      /* values allocated */
} gparse;

static int value_find(const gparse *p, const char *name)
{
	json_t *v = json_object_get(p->names, name);
	return v ? (int)json_integer_value(v) : -1;
}

static int value_add(gparse *p, const char *name, const char *path, int producer, int *idx,
		     hf_errbuf *eb)
{
	hf_graph *g = p->g;
	hf_graph_value *v;
	int prev;

	if (!name_ok(name))
		return hf_fail(eb, HF_EPARSE, "%s: \"%s\" is not a name of 1..%d bytes of UTF-8 "
			       "without control characters", path, clean(name).s,
			       HF_GRAPH_MAX_NAME - 1);
	prev = value_find(p, name);
	if (prev >= 0) {
		if (g->values[prev].producer < 0)
			return hf_fail(eb, HF_EPARSE, "%s: \"%s\" is already defined (a model input)",
				       path, clean(name).s);
		return hf_fail(eb, HF_EPARSE, "%s: \"%s\" is already defined (by ops[%d])", path,
			       clean(name).s, g->values[prev].producer);
	}
	if (g->nvalues >= p->cap)
		return hf_fail(eb, HF_ETOOBIG, "%s: more than %zu values", path, p->cap);
	v = &g->values[g->nvalues];
	memset(v, 0, sizeof *v);
	memcpy(v->name, name, strlen(name) + 1);
	v->producer = producer;
	if (json_object_set_new(p->names, name, json_integer((json_int_t)g->nvalues)))
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	*idx = (int)g->nvalues++;
	return 0;
}

static void value_finish(hf_graph_value *v)
{
	v->per_sample = 1;
	for (size_t i = 1; i < v->ndim; i++)
		v->per_sample *= (uint64_t)v->shape[i];
}

static const char *const io_keys[] = { "name", "datatype", "shape", NULL };

/* One entry of "inputs" or "outputs": {"name", "datatype": "FP32", "shape": [-1, ...]}. */
static int parse_io_entry(json_t *e, const char *path, const char **name, size_t *ndim,
			  int64_t *shape, char *dtype, hf_errbuf *eb)
{
	json_t *n = json_object_get(e, "name"), *dt = json_object_get(e, "datatype");
	json_t *sh = json_object_get(e, "shape");
	char what[48];
	int rc;

	if (!json_is_object(e))
		return hf_fail(eb, HF_EPARSE, "%s: expected an object", path);
	rc = check_keys(e, io_keys, NULL, path, eb);
	if (rc)
		return rc;
	if (!json_is_string(n) || !json_is_string(dt) || !sh)
		return hf_fail(eb, HF_EPARSE, "%s: expected \"name\" and \"datatype\" (strings) and "
			       "\"shape\"", path);
	if (strcmp(json_string_value(dt), "FP32") != 0)
		return hf_fail(eb, HF_EUNSUPPORTED, "%s: datatype \"%s\" is not supported (only "
			       "FP32)", path, clean(json_string_value(dt)).s);
	snprintf(what, sizeof what, "%s.shape", path);
	rc = parse_dims(sh, what, ndim, shape, eb);
	if (rc)
		return rc;
	*name = json_string_value(n);
	memcpy(dtype, "FP32", 5);
	return 0;
}

static int parse_inputs(gparse *p, json_t *arr, hf_errbuf *eb)
{
	hf_graph *g = p->g;
	size_t n = json_array_size(arr);

	if (!json_is_array(arr) || n == 0 || n > HF_GRAPH_MAX_IO)
		return hf_fail(eb, json_is_array(arr) && n ? HF_ETOOBIG : HF_EPARSE,
			       "inputs: expected an array of 1..%d entries", HF_GRAPH_MAX_IO);
	for (size_t i = 0; i < n; i++) {
		char path[32];
		const char *name;
		size_t ndim;
		int64_t shape[HF_GRAPH_MAX_DIMS];
		int idx, rc;
		snprintf(path, sizeof path, "inputs[%zu]", i);
		rc = parse_io_entry(json_array_get(arr, i), path, &name, &ndim, shape,
				    g->in[i].datatype, eb);
		if (!rc)
			rc = value_add(p, name, path, -1, &idx, eb);
		if (rc)
			return rc;
		g->values[idx].ndim = ndim;
		memcpy(g->values[idx].shape, shape, sizeof shape);
		value_finish(&g->values[idx]);
		g->in[i].value = idx;
		g->nin++;
	}
	return 0;
}

static int parse_outputs(gparse *p, json_t *arr, hf_errbuf *eb)
{
	hf_graph *g = p->g;
	size_t n = json_array_size(arr);

	if (!json_is_array(arr) || n == 0 || n > HF_GRAPH_MAX_IO)
		return hf_fail(eb, json_is_array(arr) && n ? HF_ETOOBIG : HF_EPARSE,
			       "outputs: expected an array of 1..%d entries", HF_GRAPH_MAX_IO);
	for (size_t i = 0; i < n; i++) {
		char path[32], a[128], b[128];
		const char *name;
		size_t ndim;
		int64_t shape[HF_GRAPH_MAX_DIMS];
		const hf_graph_value *v;
		int idx, rc;
		snprintf(path, sizeof path, "outputs[%zu]", i);
		rc = parse_io_entry(json_array_get(arr, i), path, &name, &ndim, shape,
				    g->out[i].datatype, eb);
		if (rc)
			return rc;
		idx = value_find(p, name);
		if (idx < 0)
			return hf_fail(eb, HF_EPARSE, "%s: \"%s\" is not defined by any op or model "
				       "input", path, clean(name).s);
		for (size_t j = 0; j < i; j++)
			if (g->out[j].value == idx)
				return hf_fail(eb, HF_EPARSE, "%s: \"%s\" is already outputs[%zu]",
					       path, clean(name).s, j);
		v = &g->values[idx];
		if (ndim != v->ndim || memcmp(shape, v->shape, ndim * sizeof shape[0]) != 0)
			return hf_fail(eb, HF_EPARSE, "%s: \"%s\" declared with shape %s, the graph "
				       "makes %s", path, clean(name).s, fmt_dims(a, sizeof a, shape, ndim),
				       fmt_dims(b, sizeof b, v->shape, v->ndim));
		g->out[i].value = idx;
		g->nout++;
	}
	return 0;
}

static const char *const op_base_keys[] = { "op", "inputs", "outputs", NULL };

/* An op's "inputs" or "outputs": an array of exactly want names. */
static int name_list(json_t *j, const char *key, size_t want, const char **names,
		     hf_errbuf *eb)
{
	json_t *arr = json_object_get(j, key);

	if (!json_is_array(arr) || json_array_size(arr) != want)
		return hf_fail(eb, HF_EPARSE, "%s: expected an array of %zu value name%s", key, want,
			       want == 1 ? "" : "s");
	for (size_t i = 0; i < want; i++) {
		names[i] = json_string_value(json_array_get(arr, i));
		if (!names[i])
			return hf_fail(eb, HF_EPARSE, "%s[%zu]: expected a string", key, i);
	}
	return 0;
}

static int op_kind_of(json_t *j, hf_op_kind *kind, hf_errbuf *eb)
{
	const char *s = json_string_value(json_object_get(j, "op"));

	if (!s)
		return hf_fail(eb, HF_EPARSE, "op: expected a string naming the op");
	for (int k = 0; k < HF_OP_KIND_COUNT; k++)
		if (strcmp(op_defs[k].name, s) == 0) {
			*kind = (hf_op_kind)k;
			return 0;
		}
	return hf_fail(eb, HF_EUNSUPPORTED, "op: unknown op \"%s\" (known: linear, relu, gelu, "
		       "tanh, sigmoid, softmax, layernorm, add, reshape, flatten)", clean(s).s);
}

/* ops[i]: kind, keys, value names, attributes, shape inference. Errors lack the prefix. */
static int parse_op(gparse *p, size_t i, json_t *j, hf_graph_op *op, hf_errbuf *eb)
{
	hf_graph *g = p->g;
	const op_def *d = &op_defs[op->kind];
	const char *in[OP_MAX_IN], *out[OP_MAX_OUT];
	const hf_graph_value *vin[OP_MAX_IN];
	hf_graph_value *vout[OP_MAX_OUT];
	op_tmp t = { .axis = -1 };
	int rc, idx;

	rc = check_keys(j, op_base_keys, d->attrs, NULL, eb);
	if (!rc)
		rc = name_list(j, "inputs", d->nin, in, eb);
	if (!rc)
		rc = name_list(j, "outputs", d->nout, out, eb);
	if (rc)
		return rc;
	op->ninputs = d->nin;
	op->noutputs = d->nout;
	for (size_t k = 0; k < d->nin; k++) {
		idx = value_find(p, in[k]);
		if (idx < 0)
			return hf_fail(eb, HF_EPARSE, "inputs[%zu]: \"%s\" is not defined by an "
				       "earlier op or a model input", k, clean(in[k]).s);
		op->inputs[k] = idx;
		vin[k] = &g->values[idx];
	}
	rc = d->parse(p->st, j, op, &t, eb);
	if (rc)
		return rc;
	for (size_t k = 0; k < d->nout; k++) {
		char path[32];
		snprintf(path, sizeof path, "outputs[%zu]", k);
		rc = value_add(p, out[k], path, (int)i, &idx, eb);
		if (rc)
			return rc;
		op->outputs[k] = idx;
		vout[k] = &g->values[idx];
		vout[k]->shape[0] = -1;
	}
	rc = d->infer(op, &t, vin, vout, eb);
	if (rc)
		return rc;
	for (size_t k = 0; k < d->nout; k++) {
		value_finish(vout[k]);
		if (vout[k]->per_sample > GRAPH_MAX_PER_SAMPLE)
			return hf_fail(eb, HF_ETOOBIG, "outputs[%zu] \"%s\": %llu elements per sample, "
				       "at most %u", k, clean(vout[k]->name).s,
				       (unsigned long long)vout[k]->per_sample, GRAPH_MAX_PER_SAMPLE);
	}
	return 0;
}

static int parse_ops(gparse *p, json_t *arr, hf_errbuf *eb)
{
	hf_graph *g = p->g;
	size_t n = json_array_size(arr);

	for (size_t i = 0; i < n; i++) {
		json_t *j = json_array_get(arr, i);
		hf_graph_op *op = &g->ops[i];
		int rc;
		if (!json_is_object(j))
			return hf_fail(eb, HF_EPARSE, "ops[%zu]: expected an object", i);
		rc = op_kind_of(j, &op->kind, eb);
		if (rc)
			return hf_fail_prefix(eb, rc, "ops[%zu]", i);
		rc = parse_op(p, i, j, op, eb);
		if (rc)
			return hf_fail_prefix(eb, rc, "ops[%zu] (%s)", i, op_defs[op->kind].name);
		g->nops++;
	}
	return 0;
}

/* Figures and the last use of each value (for the reference executor's buffers). */
static void graph_finish(hf_graph *g)
{
	for (size_t v = 0; v < g->nvalues; v++)
		g->last_use[v] = -1;
	for (size_t i = 0; i < g->nops; i++) {
		hf_graph_op *op = &g->ops[i];
		const hf_st_tensor *ts[2] = { op->weight, op->bias };
		for (size_t k = 0; k < op->ninputs; k++)
			g->last_use[op->inputs[k]] = (int)i;
		if (op->kind == HF_OP_LINEAR)
			g->flops += 2 * op->in_features * op->out_features *
				(g->values[op->inputs[0]].per_sample / op->in_features);
		for (size_t k = 0; k < 2; k++) {
			bool seen = k == 1 && ts[1] == ts[0];
			for (size_t e = 0; e < i && !seen; e++)
				seen = g->ops[e].weight == ts[k] || g->ops[e].bias == ts[k];
			if (ts[k] && !seen)
				g->weight_bytes += ts[k]->nbytes;
		}
	}
	for (size_t j = 0; j < g->nout; j++)
		g->last_use[g->out[j].value] = (int)g->nops;
}

static const char *const top_keys[] = { "version", "inputs", "outputs", "ops", NULL };

static int parse_graph(gparse *p, json_t *root, hf_errbuf *eb)
{
	hf_graph *g = p->g;
	json_t *ver, *ops;
	size_t nops;
	int rc;

	if (!json_is_object(root))
		return hf_fail(eb, HF_EPARSE, "graph: expected a JSON object");
	rc = check_keys(root, top_keys, NULL, "graph", eb);
	if (rc)
		return rc;
	ver = json_object_get(root, "version");
	if (!json_is_integer(ver))
		return hf_fail(eb, HF_EPARSE, "version: expected the integer 1");
	if (json_integer_value(ver) != 1)
		return hf_fail(eb, HF_EUNSUPPORTED, "version: %lld is not supported (expected 1)",
			       (long long)json_integer_value(ver));
	ops = json_object_get(root, "ops");
	nops = json_array_size(ops);
	if (!json_is_array(ops) || nops == 0)
		return hf_fail(eb, HF_EPARSE, "ops: expected an array of 1..%d ops",
			       HF_GRAPH_MAX_OPS);
	if (nops > HF_GRAPH_MAX_OPS)
		return hf_fail(eb, HF_ETOOBIG, "ops: %zu ops, at most %d", nops, HF_GRAPH_MAX_OPS);
	if (!json_object_get(root, "inputs") || !json_object_get(root, "outputs"))
		return hf_fail(eb, HF_EPARSE, "graph: missing \"%s\"",
			       json_object_get(root, "inputs") ? "outputs" : "inputs");
	p->cap = HF_GRAPH_MAX_IO + nops * OP_MAX_OUT;
	if (p->cap > HF_GRAPH_MAX_VALUES)
		p->cap = HF_GRAPH_MAX_VALUES;
	g->values = calloc(p->cap, sizeof *g->values);
	g->ops = calloc(nops, sizeof *g->ops);
	g->last_use = calloc(p->cap, sizeof *g->last_use);
	p->names = json_object();
	if (!g->values || !g->ops || !g->last_use || !p->names)
		return hf_fail(eb, HF_ENOMEM, "out of memory for %zu ops", nops);
	rc = parse_inputs(p, json_object_get(root, "inputs"), eb);
	if (!rc)
		rc = parse_ops(p, ops, eb);
	if (!rc)
		rc = parse_outputs(p, json_object_get(root, "outputs"), eb);
	if (!rc)
		graph_finish(g);
	return rc;
}

int hf_graph_new_json(const hf_st *st, const char *json, size_t len, hf_graph **out,
		      hf_errbuf *eb)
{
	gparse p = { .st = st };
	json_error_t jerr;
	json_t *root;
	int rc;

	if (!out || (!json && len))
		return hf_fail(eb, HF_EINVAL, "hf_graph_new_json: no text or no result pointer");
	*out = NULL;
	if (len > GRAPH_MAX_JSON)
		return hf_fail(eb, HF_ETOOBIG, "graph: %zu bytes of JSON, at most %u", len,
			       GRAPH_MAX_JSON);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return hf_fail(eb, HF_EPARSE, "graph: not valid JSON: %s (byte %d)",
			       clean(jerr.text).s, jerr.position);
	p.g = calloc(1, sizeof *p.g);
	if (!p.g) {
		rc = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto free_root;
	}
	rc = parse_graph(&p, root, eb);
	if (rc) {
		hf_graph_free(p.g);
		goto free_root;
	}
	*out = p.g;
free_root:
	json_decref(p.names);
	json_decref(root);
	return rc;
}

int hf_graph_new(const hf_st *st, hf_graph **out, hf_errbuf *eb)
{
	const char *s = hf_st_metadata(st, HF_GRAPH_META_KEY);

	if (out)
		*out = NULL;
	if (!s)
		return hf_fail(eb, HF_ENOTFOUND, "no \"%s\" in the file's __metadata__",
			       HF_GRAPH_META_KEY);
	return hf_graph_new_json(st, s, strlen(s), out, eb);
}

void hf_graph_free(hf_graph *g)
{
	if (!g)
		return;
	free(g->values);
	free(g->ops);
	free(g->last_use);
	free(g);
}

size_t hf_graph_nvalues(const hf_graph *g) { return g->nvalues; }
size_t hf_graph_nops(const hf_graph *g) { return g->nops; }
size_t hf_graph_ninputs(const hf_graph *g) { return g->nin; }
size_t hf_graph_noutputs(const hf_graph *g) { return g->nout; }
uint64_t hf_graph_flops_per_sample(const hf_graph *g) { return g->flops; }
uint64_t hf_graph_weight_bytes(const hf_graph *g) { return g->weight_bytes; }

double hf_graph_work_flops_per_sample(const hf_graph *g)
{
	double f = 0;

	for (size_t i = 0; i < g->nops; i++) {
		const hf_graph_op *op = &g->ops[i];
		double out = (double)g->values[op->outputs[0]].per_sample;
		switch (op->kind) {
		case HF_OP_LINEAR: {
			double rows = (double)(g->values[op->inputs[0]].per_sample / op->in_features);
			f += rows * (2.0 * (double)op->in_features * (double)op->out_features +
				     (op->bias ? (double)op->out_features : 0));
			break;
		}
		case HF_OP_RELU:
		case HF_OP_GELU:
		case HF_OP_TANH:
		case HF_OP_SIGMOID:
		case HF_OP_ADD:
			f += out;
			break;
		case HF_OP_SOFTMAX:
			f += HF_GRAPH_SOFTMAX_FLOPS * out;
			break;
		case HF_OP_LAYERNORM:
			f += (HF_GRAPH_LAYERNORM_FLOPS + (op->weight ? 1 : 0) + (op->bias ? 1 : 0)) * out;
			break;
		case HF_OP_RESHAPE:
		case HF_OP_FLATTEN:
		case HF_OP_KIND_COUNT:
			break;
		}
	}
	return f;
}

const hf_graph_value *hf_graph_value_at(const hf_graph *g, size_t i)
{
	return i < g->nvalues ? &g->values[i] : NULL;
}

const hf_graph_op *hf_graph_op_at(const hf_graph *g, size_t i)
{
	return i < g->nops ? &g->ops[i] : NULL;
}

const hf_graph_io *hf_graph_input(const hf_graph *g, size_t i)
{
	return i < g->nin ? &g->in[i] : NULL;
}

const hf_graph_io *hf_graph_output(const hf_graph *g, size_t i)
{
	return i < g->nout ? &g->out[i] : NULL;
}

int hf_graph_find_input(const hf_graph *g, const char *name)
{
	for (size_t i = 0; i < g->nin; i++)
		if (strcmp(g->values[g->in[i].value].name, name) == 0)
			return (int)i;
	return -1;
}

int hf_graph_find_output(const hf_graph *g, const char *name)
{
	for (size_t i = 0; i < g->nout; i++)
		if (strcmp(g->values[g->out[i].value].name, name) == 0)
			return (int)i;
	return -1;
}

/* ---- the reference executor ---- */

/* A weight or bias widened to FP32 (NULL for none); *fail set when memory runs out. */
static float *widen(const hf_st_tensor *t, bool *fail)
{
	float *f;

	if (!t)
		return NULL;
	f = malloc(t->count ? t->count * sizeof *f : 1);
	if (!f) {
		*fail = true;
		return NULL;
	}
	hf_st_read_f32(t, f);
	return f;
}

static int run_op(const hf_graph *g, size_t i, size_t batch, const float **vals,
		  float **owned, hf_errbuf *eb)
{
	const hf_graph_op *op = &g->ops[i];
	op_run r = { .batch = batch };
	bool fail = false;
	float *w = widen(op->weight, &fail), *b = widen(op->bias, &fail);

	for (size_t k = 0; k < op->noutputs; k++) {
		int v = op->outputs[k];
		r.vout[k] = &g->values[v];
		owned[v] = malloc(batch * (size_t)r.vout[k]->per_sample * sizeof(float));
		vals[v] = r.out[k] = owned[v];
		fail = fail || !owned[v];
	}
	if (fail) {
		free(w);
		free(b);
		return hf_fail(eb, HF_ENOMEM, "ops[%zu] (%s): out of memory for a batch of %zu", i,
			       op_defs[op->kind].name, batch);
	}
	for (size_t k = 0; k < op->ninputs; k++) {
		r.in[k] = vals[op->inputs[k]];
		r.vin[k] = &g->values[op->inputs[k]];
	}
	r.w = w;
	r.b = b;
	op_defs[op->kind].run(op, &r);
	free(w);
	free(b);
	/* Intermediate values whose last reader this was are not needed any more. */
	for (size_t k = 0; k < op->ninputs; k++) {
		int v = op->inputs[k];
		if (g->last_use[v] == (int)i && owned[v]) {
			free(owned[v]);
			owned[v] = NULL;
			vals[v] = NULL;
		}
	}
	return 0;
}

int hf_graph_ref_run(const hf_graph *g, size_t batch, const float *const *inputs,
		     float *const *outputs, hf_errbuf *eb)
{
	const float **vals;
	float **owned;
	uint64_t maxper = 1;
	int rc = 0;

	if (!g || !inputs || !outputs)
		return hf_fail(eb, HF_EINVAL, "hf_graph_ref_run: no graph, inputs or outputs");
	if (batch == 0)
		return hf_fail(eb, HF_EINVAL, "batch of 0");
	for (size_t i = 0; i < g->nin; i++)
		if (!inputs[i])
			return hf_fail(eb, HF_EINVAL, "inputs[%zu] is NULL", i);
	for (size_t j = 0; j < g->nout; j++)
		if (!outputs[j])
			return hf_fail(eb, HF_EINVAL, "outputs[%zu] is NULL", j);
	for (size_t v = 0; v < g->nvalues; v++)
		maxper = g->values[v].per_sample > maxper ? g->values[v].per_sample : maxper;
	if (batch > SIZE_MAX / sizeof(float) / maxper)
		return hf_fail(eb, HF_ETOOBIG, "a batch of %zu overflows the buffer sizes", batch);
	vals = calloc(g->nvalues, sizeof *vals);
	owned = calloc(g->nvalues, sizeof *owned);
	if (!vals || !owned) {
		rc = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto free_bufs;
	}
	for (size_t i = 0; i < g->nin; i++)
		vals[g->in[i].value] = inputs[i];
	for (size_t i = 0; i < g->nops && !rc; i++)
		rc = run_op(g, i, batch, vals, owned, eb);
	for (size_t j = 0; j < g->nout && !rc; j++) {
		const hf_graph_value *v = &g->values[g->out[j].value];
		memcpy(outputs[j], vals[g->out[j].value],
		       batch * (size_t)v->per_sample * sizeof(float));
	}
free_bufs:
	for (size_t v = 0; owned && v < g->nvalues; v++)
		free(owned[v]);
	free(owned);
	free(vals);
	return rc;
}
