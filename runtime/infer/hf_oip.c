/* hf_oip: Open Inference Protocol (KServe v2) REST request parser and response writer, with
 * Triton's binary tensor data extension; sans-I/O.
 *
 * Invariants: a request is parsed in two passes over one jansson tree (the JSON part, at most
 * max_json bytes): the first checks every field and sizes every input (caps before any
 * allocation sized by the peer), the second takes the binary inputs from the bytes after the
 * JSON, in input order, which must be used exactly. On any failure the request is left empty
 * and eb names the field ("inputs[1] \"x\".shape[0]: ..."); every outside string quoted in a
 * message has passed hf_text_clean. Number conversions never overflow: a JSON real beyond the
 * float range becomes +-inf (IEEE round to nearest, as a float cast on IEEE hardware does,
 * without the cast's undefined behaviour), integers convert with one rounding.
 * The response is written by hand (no jansson tree for the data arrays): strings cleaned and
 * escaped, floats with 9 significant digits (round-trips; a digit loop, not snprintf), -0 as
 * "-0.0" (a JSON parser reads "-0" as integer 0), non-finite as "NaN", "Inf", "-Inf".
 * Threading: reentrant; no state.
 */
#include "hf_oip.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_text.h"

static const struct {
	const char *name;
	size_t size; /* bytes per element in the binary form; 0: BYTES (length-prefixed) */
} dtypes[HF_OIP_DTYPE_COUNT] = {
	[HF_OIP_BOOL] = { "BOOL", 1 },     [HF_OIP_UINT8] = { "UINT8", 1 },
	[HF_OIP_UINT16] = { "UINT16", 2 }, [HF_OIP_UINT32] = { "UINT32", 4 },
	[HF_OIP_UINT64] = { "UINT64", 8 }, [HF_OIP_INT8] = { "INT8", 1 },
	[HF_OIP_INT16] = { "INT16", 2 },   [HF_OIP_INT32] = { "INT32", 4 },
	[HF_OIP_INT64] = { "INT64", 8 },   [HF_OIP_FP16] = { "FP16", 2 },
	[HF_OIP_FP32] = { "FP32", 4 },     [HF_OIP_FP64] = { "FP64", 8 },
	[HF_OIP_BYTES] = { "BYTES", 0 },
};

const char *hf_oip_dtype_name(hf_oip_dtype d)
{
	return (unsigned)d < HF_OIP_DTYPE_COUNT ? dtypes[d].name : "?";
}

bool hf_oip_dtype_parse(const char *s, hf_oip_dtype *out)
{
	for (int i = 0; s && i < HF_OIP_DTYPE_COUNT; i++) {
		if (strcmp(s, dtypes[i].name) == 0) {
			if (out)
				*out = (hf_oip_dtype)i;
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------- request ---- */

/* Per input, what only the parser needs. */
typedef struct in_extra {
	bool binary;
	uint64_t bin_size;
} in_extra;

typedef struct pctx {
	hf_oip_limits lim;
	hf_errbuf *eb;
	uint64_t total;       /* elements of the inputs so far */
} pctx;

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Refuses a key of obj not in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *allowed, const char *where,
		      const char *list, hf_errbuf *eb)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		size_t i = 0;
		char clean[64];
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (allowed[i])
			continue;
		hf_text_clean(clean, sizeof clean, k, strlen(k));
		return hf_fail(eb, HF_EPARSE, "%s: unknown key \"%s\" (allowed: %s)", where, clean,
			       list);
	}
	return 0;
}

/* A $parameters object: string, number or boolean values only. */
static int check_params(const json_t *p, const char *where, hf_errbuf *eb)
{
	const char *k;
	json_t *v;

	if (!json_is_object(p))
		return hf_fail(eb, HF_EPARSE, "%s.parameters: expected an object, got %s", where,
			       jtype(p));
	json_object_foreach((json_t *)p, k, v) {
		char clean[64];
		if (json_is_string(v) || json_is_number(v) || json_is_boolean(v))
			continue;
		hf_text_clean(clean, sizeof clean, k, strlen(k));
		return hf_fail(eb, HF_EPARSE, "%s.parameters.%s: expected a string, number or "
			       "boolean, got %s", where, clean, jtype(v));
	}
	return 0;
}

/* A tensor name: a non-empty string of at most HF_OIP_MAX_NAME - 1 bytes, no control
 * characters (jansson has already refused invalid UTF-8 and NUL). */
static int parse_name(const json_t *v, char *out, const char *where, hf_errbuf *eb)
{
	size_t n;

	if (!v)
		return hf_fail(eb, HF_EPARSE, "%s: \"name\" is missing", where);
	if (!json_is_string(v))
		return hf_fail(eb, HF_EPARSE, "%s.name: expected a string, got %s", where, jtype(v));
	n = json_string_length(v);
	if (n == 0)
		return hf_fail(eb, HF_EPARSE, "%s.name: empty", where);
	if (n >= HF_OIP_MAX_NAME)
		return hf_fail(eb, HF_EPARSE, "%s.name: %zu bytes, longer than %d", where, n,
			       HF_OIP_MAX_NAME - 1);
	hf_text_clean(out, HF_OIP_MAX_NAME, json_string_value(v), n);
	if (memcmp(out, json_string_value(v), n) != 0 || out[n] != '\0')
		return hf_fail(eb, HF_EPARSE, "%s.name: contains control characters (\"%s\")",
			       where, out);
	return 0;
}

static int parse_shape(const json_t *v, hf_oip_tensor *t, pctx *c, const char *where)
{
	bool zero = false;
	uint64_t count = 1;
	size_t i;
	json_t *d;

	if (!v)
		return hf_fail(c->eb, HF_EPARSE, "%s: \"shape\" is missing", where);
	if (!json_is_array(v))
		return hf_fail(c->eb, HF_EPARSE, "%s.shape: expected a list, got %s", where,
			       jtype(v));
	if (json_array_size(v) > HF_OIP_MAX_DIMS)
		return hf_fail(c->eb, HF_ETOOBIG, "%s.shape: %zu dimensions, more than %d", where,
			       json_array_size(v), HF_OIP_MAX_DIMS);
	json_array_foreach(v, i, d) {
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return hf_fail(c->eb, HF_EPARSE, "%s.shape[%zu]: expected a non-negative "
				       "integer, got %s", where, i,
				       json_is_integer(d) ? "a negative one" : jtype(d));
		t->shape[i] = (int64_t)json_integer_value(d);
		zero = zero || t->shape[i] == 0;
	}
	t->ndim = json_array_size(v);
	/* A zero dimension makes any product 0; otherwise multiply against the cap, which
	 * also keeps the product from overflowing. */
	for (i = 0; !zero && i < t->ndim; i++) {
		uint64_t dim = (uint64_t)t->shape[i];
		if (count > c->lim.max_elements / dim)
			return hf_fail(c->eb, HF_ETOOBIG, "%s.shape: more than %" PRIu64
				       " elements (the cap per tensor)", where, c->lim.max_elements);
		count *= dim;
	}
	t->count = zero ? 0 : count;
	if (t->count > c->lim.max_total - c->total)
		return hf_fail(c->eb, HF_ETOOBIG, "%s.shape: the inputs hold more than %" PRIu64
			       " elements (the cap per request)", where, c->lim.max_total);
	c->total += t->count;
	return 0;
}

/* A JSON number or one of the non-finite spellings, as a double (integers: see leaf). */
static bool special_float(const char *s, float *out)
{
	if (strcmp(s, "NaN") == 0)
		*out = NAN;
	else if (strcmp(s, "Inf") == 0 || strcmp(s, "Infinity") == 0)
		*out = INFINITY;
	else if (strcmp(s, "-Inf") == 0 || strcmp(s, "-Infinity") == 0)
		*out = -INFINITY;
	else
		return false;
	return true;
}

/* double to float, rounding to nearest: beyond FLT_MAX + half an ulp (2^128 - 2^103) is inf,
 * between FLT_MAX and that is FLT_MAX (a plain cast of either is undefined behaviour in C). */
static float to_float(double d)
{
	if (fabs(d) > FLT_MAX)
		return fabs(d) >= 0x1.ffffffp+127 ? copysignf(INFINITY, (float)(d < 0 ? -1 : 1))
			: copysignf(FLT_MAX, (float)(d < 0 ? -1 : 1));
	return (float)d;
}

/* Checks (and for FP32 decodes into *f) one element; NULL or what was wrong. */
static const char *leaf(const json_t *v, hf_oip_dtype dt, float *f)
{
	static const int64_t imin[] = { [HF_OIP_INT8] = INT8_MIN, [HF_OIP_INT16] = INT16_MIN,
		[HF_OIP_INT32] = INT32_MIN, [HF_OIP_INT64] = INT64_MIN };
	static const int64_t imax[] = { [HF_OIP_UINT8] = UINT8_MAX, [HF_OIP_UINT16] = UINT16_MAX,
		[HF_OIP_UINT32] = UINT32_MAX, [HF_OIP_UINT64] = INT64_MAX,
		[HF_OIP_INT8] = INT8_MAX, [HF_OIP_INT16] = INT16_MAX, [HF_OIP_INT32] = INT32_MAX,
		[HF_OIP_INT64] = INT64_MAX };
	float dummy;

	switch (dt) {
	case HF_OIP_BOOL:
		return json_is_boolean(v) ? NULL : "expected a boolean";
	case HF_OIP_BYTES:
		return json_is_string(v) ? NULL : "expected a string";
	case HF_OIP_FP16: case HF_OIP_FP32: case HF_OIP_FP64:
		f = f ? f : &dummy;
		if (json_is_integer(v))
			*f = (float)json_integer_value(v); /* one rounding, not two via double */
		else if (json_is_real(v))
			*f = to_float(json_real_value(v));
		else if (!json_is_string(v) || !special_float(json_string_value(v), f))
			return "expected a number (or \"NaN\", \"Inf\", \"-Inf\", \"Infinity\", "
				"\"-Infinity\")";
		return NULL;
	default: {
		bool is_unsigned = dt <= HF_OIP_UINT64;
		json_int_t x;
		if (!json_is_integer(v))
			return "expected an integer";
		x = json_integer_value(v);
		if (x < (is_unsigned ? 0 : imin[dt]) || x > imax[dt])
			return is_unsigned && x < 0 ? "negative for an unsigned type"
				: "out of the datatype's range";
		return NULL;
	}
	}
}

/* Walking "data" in row-major order, flat or nested along the shape. */
typedef struct walk {
	const hf_oip_tensor *t;
	float *dst;                   /* FP32: where element i goes */
	uint64_t next;                /* row-major index of the next element */
	size_t idx[HF_OIP_MAX_DIMS];  /* list indices down to the current one */
	const char *where;
	hf_errbuf *eb;
} walk;

/* "data[1][2]" for the first depth + 1 indices. */
static void idx_path(const walk *w, size_t depth, char *out, size_t outsz)
{
	size_t n = (size_t)snprintf(out, outsz, "data");
	for (size_t i = 0; i <= depth && n < outsz; i++)
		n += (size_t)snprintf(out + n, outsz - n, "[%zu]", w->idx[i]);
}

static int walk_leaf(walk *w, const json_t *v, size_t depth)
{
	const char *why;
	char p[8 * 24];

	if (json_is_array(v)) {
		idx_path(w, depth, p, sizeof p);
		return hf_fail(w->eb, HF_EPARSE, "%s.%s: a list where shape [%zu dims] has an "
			       "element (nesting must follow the shape, or data be flat)", w->where,
			       p, w->t->ndim);
	}
	why = leaf(v, w->t->dtype, w->dst ? &w->dst[w->next] : NULL);
	if (why) {
		idx_path(w, depth, p, sizeof p);
		return hf_fail(w->eb, HF_EPARSE, "%s.%s (element %" PRIu64 "): %s for %s, got %s",
			       w->where, p, w->next, why, dtypes[w->t->dtype].name, jtype(v));
	}
	w->next++;
	return 0;
}

static int walk_nested(walk *w, const json_t *arr, size_t depth)
{
	size_t n = json_array_size(arr);
	char p[8 * 24];
	int r;

	if ((uint64_t)n != (uint64_t)w->t->shape[depth]) {
		if (depth == 0)
			snprintf(p, sizeof p, "data");
		else
			idx_path(w, depth - 1, p, sizeof p);
		return hf_fail(w->eb, HF_EPARSE, "%s.%s: %zu elements where shape dimension %zu "
			       "is %" PRId64, w->where, p, n, depth, w->t->shape[depth]);
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_array_get(arr, i);
		w->idx[depth] = i;
		if (depth + 1 == w->t->ndim) {
			r = walk_leaf(w, v, depth);
		} else if (!json_is_array(v)) {
			idx_path(w, depth, p, sizeof p);
			return hf_fail(w->eb, HF_EPARSE, "%s.%s: expected a list (dimension %zu of "
				       "the shape), got %s", w->where, p, depth + 1, jtype(v));
		} else {
			r = walk_nested(w, v, depth + 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* "data": a flat list of count elements, or (2+ dims) lists nested exactly as the shape. */
static int parse_data(const json_t *data, hf_oip_tensor *t, const char *where, hf_errbuf *eb)
{
	walk w = { .t = t, .dst = t->data, .where = where, .eb = eb };
	size_t n;
	int r;

	if (!json_is_array(data))
		return hf_fail(eb, HF_EPARSE, "%s.data: expected a list, got %s", where,
			       jtype(data));
	n = json_array_size(data);
	if (t->ndim >= 2 && n > 0 && json_is_array(json_array_get(data, 0))) {
		r = walk_nested(&w, data, 0);
	} else {
		if ((uint64_t)n != t->count)
			return hf_fail(eb, HF_EPARSE, "%s.data: %zu elements where the shape holds %"
				       PRIu64 " (data is flat, or nested exactly as the shape)",
				       where, n, t->count);
		r = 0;
		for (size_t i = 0; i < n && r == 0; i++) {
			w.idx[0] = i;
			r = walk_leaf(&w, json_array_get(data, i), 0);
		}
	}
	return r;
}

/* parameters.binary_data_size: how many bytes the input takes after the JSON. */
static int parse_binary_size(const json_t *p, hf_oip_tensor *t, in_extra *x,
			     const char *where, hf_errbuf *eb)
{
	const json_t *s = p ? json_object_get(p, "binary_data_size") : NULL;
	uint64_t esz = dtypes[t->dtype].size;

	if (!s)
		return 0;
	if (!json_is_integer(s) || json_integer_value(s) < 0)
		return hf_fail(eb, HF_EPARSE, "%s.parameters.binary_data_size: expected a "
			       "non-negative integer, got %s", where,
			       json_is_integer(s) ? "a negative one" : jtype(s));
	x->binary = true;
	x->bin_size = (uint64_t)json_integer_value(s);
	if (esz == 0) {
		if (t->count > x->bin_size / 4)
			return hf_fail(eb, HF_EPARSE, "%s.parameters.binary_data_size: %" PRIu64
				       " bytes cannot hold %" PRIu64 " BYTES elements (4 bytes of "
				       "length each at least)", where, x->bin_size, t->count);
		return 0;
	}
	if (t->count > UINT64_MAX / esz || x->bin_size != t->count * esz)
		return hf_fail(eb, HF_EPARSE, "%s.parameters.binary_data_size: %" PRIu64 " bytes "
			       "where %" PRIu64 " %s elements take %" PRIu64, where, x->bin_size,
			       t->count, dtypes[t->dtype].name,
			       t->count <= UINT64_MAX / esz ? t->count * esz : UINT64_MAX);
	return 0;
}

static int parse_input(const json_t *in, size_t i, hf_oip_tensor *t, in_extra *x, pctx *c)
{
	static const char *const keys[] = { "name", "shape", "datatype", "parameters", "data",
		NULL };
	const json_t *dt, *p, *data;
	char where[32 + HF_OIP_MAX_NAME];
	char clean[32];
	int r;

	snprintf(where, sizeof where, "inputs[%zu]", i);
	if (!json_is_object(in))
		return hf_fail(c->eb, HF_EPARSE, "%s: expected an object, got %s", where,
			       jtype(in));
	if ((r = check_keys(in, keys, where, "name, shape, datatype, parameters, data",
			    c->eb)) < 0 ||
	    (r = parse_name(json_object_get(in, "name"), t->name, where, c->eb)) < 0)
		return r;
	snprintf(where, sizeof where, "inputs[%zu] \"%s\"", i, t->name);
	dt = json_object_get(in, "datatype");
	if (!dt)
		return hf_fail(c->eb, HF_EPARSE, "%s: \"datatype\" is missing", where);
	if (!json_is_string(dt))
		return hf_fail(c->eb, HF_EPARSE, "%s.datatype: expected a string, got %s", where,
			       jtype(dt));
	if (!hf_oip_dtype_parse(json_string_value(dt), &t->dtype)) {
		hf_text_clean(clean, sizeof clean, json_string_value(dt), json_string_length(dt));
		return hf_fail(c->eb, HF_EPARSE, "%s.datatype: unknown \"%s\" (expected BOOL, "
			       "UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, "
			       "FP32, FP64 or BYTES)", where, clean);
	}
	if ((r = parse_shape(json_object_get(in, "shape"), t, c, where)) < 0)
		return r;
	p = json_object_get(in, "parameters");
	if (p && ((r = check_params(p, where, c->eb)) < 0 ||
		  (r = parse_binary_size(p, t, x, where, c->eb)) < 0))
		return r;
	data = json_object_get(in, "data");
	if (data && x->binary)
		return hf_fail(c->eb, HF_EPARSE, "%s: both \"data\" and "
			       "parameters.binary_data_size (one or the other)", where);
	if (!data && !x->binary)
		return hf_fail(c->eb, HF_EPARSE, "%s: no \"data\" and no "
			       "parameters.binary_data_size", where);
	t->binary = x->binary;
	if (t->dtype == HF_OIP_FP32) {
		/* count <= max_total, checked; at least one float so data is never NULL */
		if (t->count > SIZE_MAX / sizeof(float))
			return hf_fail(c->eb, HF_ETOOBIG, "%s: too many elements", where);
		t->data = malloc((t->count ? (size_t)t->count : 1) * sizeof(float));
		if (!t->data)
			return hf_fail(c->eb, HF_ENOMEM, "%s: %" PRIu64 " floats", where, t->count);
	}
	return data ? parse_data(data, t, where, c->eb) : 0;
}

static int parse_inputs(const json_t *v, hf_oip_request *req, in_extra **xs, pctx *c)
{
	size_t n;
	int r;

	if (!v)
		return hf_fail(c->eb, HF_EPARSE, "request: \"inputs\" is missing");
	if (!json_is_array(v))
		return hf_fail(c->eb, HF_EPARSE, "inputs: expected a list, got %s", jtype(v));
	n = json_array_size(v);
	if (n == 0)
		return hf_fail(c->eb, HF_EPARSE, "inputs: empty (at least one input)");
	if (n > c->lim.max_tensors)
		return hf_fail(c->eb, HF_ETOOBIG, "inputs: %zu inputs, more than %zu", n,
			       c->lim.max_tensors);
	req->inputs = calloc(n, sizeof *req->inputs);
	*xs = calloc(n, sizeof **xs);
	if (!req->inputs || !*xs)
		return hf_fail(c->eb, HF_ENOMEM, "inputs: %zu inputs", n);
	for (size_t i = 0; i < n; i++) {
		req->ninputs = i + 1; /* so clear() frees a half-parsed input's data */
		if ((r = parse_input(json_array_get(v, i), i, &req->inputs[i], &(*xs)[i], c)) < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->inputs[j].name, req->inputs[i].name) == 0)
				return hf_fail(c->eb, HF_EPARSE, "inputs[%zu]: \"%s\" again (also "
					       "inputs[%zu])", i, req->inputs[i].name, j);
	}
	return 0;
}

static int parse_output(const json_t *o, size_t i, hf_oip_output_req *out, bool dflt,
			hf_errbuf *eb)
{
	static const char *const keys[] = { "name", "parameters", NULL };
	char where[32 + HF_OIP_MAX_NAME];
	const json_t *p, *b;
	int r;

	snprintf(where, sizeof where, "outputs[%zu]", i);
	if (!json_is_object(o))
		return hf_fail(eb, HF_EPARSE, "%s: expected an object, got %s", where, jtype(o));
	if ((r = check_keys(o, keys, where, "name, parameters", eb)) < 0 ||
	    (r = parse_name(json_object_get(o, "name"), out->name, where, eb)) < 0)
		return r;
	snprintf(where, sizeof where, "outputs[%zu] \"%s\"", i, out->name);
	out->binary = dflt;
	p = json_object_get(o, "parameters");
	if (!p)
		return 0;
	if ((r = check_params(p, where, eb)) < 0)
		return r;
	b = json_object_get(p, "binary_data");
	if (b && !json_is_boolean(b))
		return hf_fail(eb, HF_EPARSE, "%s.parameters.binary_data: expected a boolean, "
			       "got %s", where, jtype(b));
	if (b)
		out->binary = json_is_true(b);
	return 0;
}

static int parse_outputs(const json_t *v, hf_oip_request *req, pctx *c)
{
	size_t n;
	int r;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return hf_fail(c->eb, HF_EPARSE, "outputs: expected a list, got %s", jtype(v));
	n = json_array_size(v);
	if (n == 0)
		return hf_fail(c->eb, HF_EPARSE, "outputs: empty (leave \"outputs\" out to get "
			       "every output)");
	if (n > c->lim.max_tensors)
		return hf_fail(c->eb, HF_ETOOBIG, "outputs: %zu outputs, more than %zu", n,
			       c->lim.max_tensors);
	req->outputs = calloc(n, sizeof *req->outputs);
	if (!req->outputs)
		return hf_fail(c->eb, HF_ENOMEM, "outputs: %zu outputs", n);
	req->noutputs = n;
	for (size_t i = 0; i < n; i++) {
		if ((r = parse_output(json_array_get(v, i), i, &req->outputs[i], req->binary_output,
				      c->eb)) < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->outputs[j].name, req->outputs[i].name) == 0)
				return hf_fail(c->eb, HF_EPARSE, "outputs[%zu]: \"%s\" again (also "
					       "outputs[%zu])", i, req->outputs[i].name, j);
	}
	return 0;
}

static int parse_top(const json_t *root, hf_oip_request *req, in_extra **xs, pctx *c)
{
	static const char *const keys[] = { "id", "parameters", "inputs", "outputs", NULL };
	const json_t *id, *p;
	int r;

	if (!json_is_object(root))
		return hf_fail(c->eb, HF_EPARSE, "request: expected a JSON object, got %s",
			       jtype(root));
	if ((r = check_keys(root, keys, "request", "id, parameters, inputs, outputs", c->eb)) < 0)
		return r;
	id = json_object_get(root, "id");
	if (id) {
		if (!json_is_string(id))
			return hf_fail(c->eb, HF_EPARSE, "id: expected a string, got %s", jtype(id));
		if (json_string_length(id) >= HF_OIP_MAX_ID)
			return hf_fail(c->eb, HF_ETOOBIG, "id: %zu bytes, longer than %d",
				       json_string_length(id), HF_OIP_MAX_ID - 1);
		hf_text_clean(req->id, sizeof req->id, json_string_value(id),
			      json_string_length(id));
		req->has_id = true;
	}
	p = json_object_get(root, "parameters");
	if (p) {
		const json_t *b;
		if ((r = check_params(p, "request", c->eb)) < 0)
			return r;
		b = json_object_get(p, "binary_data_output");
		if (b && !json_is_boolean(b))
			return hf_fail(c->eb, HF_EPARSE, "request.parameters.binary_data_output: "
				       "expected a boolean, got %s", jtype(b));
		req->binary_output = json_is_true(b);
		req->parameters = json_incref((json_t *)p);
	}
	if ((r = parse_inputs(json_object_get(root, "inputs"), req, xs, c)) < 0)
		return r;
	return parse_outputs(json_object_get(root, "outputs"), req, c);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One binary input's bytes: FP32 decoded, BOOL 0/1 and BYTES framing checked. */
static int take_binary(hf_oip_tensor *t, size_t i, const uint8_t *p, uint64_t size,
		       hf_errbuf *eb)
{
	if (t->dtype == HF_OIP_FP32) {
		for (uint64_t k = 0; k < t->count; k++) {
			uint32_t u = rd32(p + 4 * k);
			memcpy(&t->data[k], &u, sizeof u);
		}
	} else if (t->dtype == HF_OIP_BOOL) {
		for (uint64_t k = 0; k < size; k++)
			if (p[k] > 1)
				return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary BOOL "
					       "element %" PRIu64 " is %u (0 or 1)", i, t->name, k,
					       p[k]);
	} else if (t->dtype == HF_OIP_BYTES) {
		uint64_t off = 0;
		for (uint64_t k = 0; k < t->count; k++) {
			uint32_t n;
			if (size - off < 4)
				return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary BYTES "
					       "element %" PRIu64 ": its 4-byte length runs past "
					       "binary_data_size %" PRIu64, i, t->name, k, size);
			n = rd32(p + off);
			off += 4;
			if (size - off < n)
				return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary BYTES "
					       "element %" PRIu64 ": %" PRIu32 " bytes run past "
					       "binary_data_size %" PRIu64, i, t->name, k, n, size);
			off += n;
		}
		if (off != size)
			return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary BYTES: %" PRIu64
				       " elements take %" PRIu64 " bytes of binary_data_size %" PRIu64,
				       i, t->name, t->count, off, size);
	}
	return 0;
}

/* The bytes after the JSON: the binary inputs in order, using them exactly. */
static int parse_binary(hf_oip_request *req, const in_extra *xs, const uint8_t *p,
			size_t rest, bool have_header, hf_errbuf *eb)
{
	uint64_t off = 0;
	bool any = false;
	int r;

	for (size_t i = 0; i < req->ninputs; i++) {
		if (!xs[i].binary)
			continue;
		any = true;
		if (xs[i].bin_size > rest - off) {
			if (!have_header)
				return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary_data_size "
					       "without an Inference-Header-Content-Length header",
					       i, req->inputs[i].name);
			return hf_fail(eb, HF_EPARSE, "inputs[%zu] \"%s\": binary_data_size %" PRIu64
				       " runs past the body (%" PRIu64 " bytes left of %zu after "
				       "the JSON)", i, req->inputs[i].name, xs[i].bin_size,
				       rest - off, rest);
		}
		if ((r = take_binary(&req->inputs[i], i, p + off, xs[i].bin_size, eb)) < 0)
			return r;
		off += xs[i].bin_size;
	}
	if (off != rest)
		return hf_fail(eb, HF_EPARSE, "body: %zu bytes after the JSON, but the binary "
			       "inputs' binary_data_size add up to %" PRIu64 "%s", rest, off,
			       any ? "" : " (no input has binary_data_size)");
	return 0;
}

/* Inference-Header-Content-Length: decimal digits only (no sign, no spaces), at most len. */
static int parse_header_len(const char *s, size_t len, size_t *out, hf_errbuf *eb)
{
	bool over = false;
	uint64_t v = 0;
	size_t i;
	char clean[24];

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		over = over || v > (UINT64_MAX - d) / 10;
		v = over ? UINT64_MAX : v * 10 + d;
	}
	if (i == 0 || s[i] != '\0') {
		hf_text_clean(clean, sizeof clean, s, strlen(s));
		return hf_fail(eb, HF_EPARSE, "Inference-Header-Content-Length: expected a decimal "
			       "byte count, got \"%s\"", clean);
	}
	if (over || v > len)
		return hf_fail(eb, HF_EPARSE, "Inference-Header-Content-Length %s%" PRIu64 " is past "
			       "the end of the %zu-byte body", over ? "over " : "", v, len);
	*out = (size_t)v;
	return 0;
}

int hf_oip_parse_request(const void *body, size_t len, const char *header_len,
			 const hf_oip_limits *lim, hf_oip_request *req, hf_errbuf *eb)
{
	const uint8_t *bytes = body ? body : (const void *)"";
	pctx c = { .eb = eb };
	in_extra *xs = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	size_t jlen = len;
	int r;

	if (!req)
		return hf_fail(eb, HF_EINVAL, "hf_oip_parse_request: no request");
	memset(req, 0, sizeof *req);
	if (!body && len)
		return hf_fail(eb, HF_EINVAL, "hf_oip_parse_request: no body");
	c.lim.max_tensors = lim && lim->max_tensors ? lim->max_tensors : HF_OIP_DEFAULT_MAX_TENSORS;
	c.lim.max_elements = lim && lim->max_elements ? lim->max_elements
		: HF_OIP_DEFAULT_MAX_ELEMENTS;
	c.lim.max_total = lim && lim->max_total ? lim->max_total : HF_OIP_DEFAULT_MAX_TOTAL;
	c.lim.max_json = lim && lim->max_json ? lim->max_json : HF_OIP_DEFAULT_MAX_JSON;
	if (header_len && (r = parse_header_len(header_len, len, &jlen, eb)) < 0)
		return r;
	if (jlen > c.lim.max_json)
		return hf_fail(eb, HF_ETOOBIG, "body: %zu bytes of JSON, more than %zu", jlen,
			       c.lim.max_json);
	root = json_loadb((const char *)bytes, jlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		char clean[sizeof jerr.text];
		hf_text_clean(clean, sizeof clean, jerr.text, strlen(jerr.text));
		return hf_fail(eb, HF_EPARSE, "JSON: %s (line %d, column %d, byte %d)", clean,
			       jerr.line, jerr.column, jerr.position);
	}
	r = parse_top(root, req, &xs, &c);
	json_decref(root);
	if (r == 0)
		r = parse_binary(req, xs, bytes + jlen, len - jlen,
				 header_len != NULL, eb);
	free(xs);
	if (r < 0)
		hf_oip_request_clear(req);
	return r;
}

void hf_oip_request_clear(hf_oip_request *req)
{
	if (!req)
		return;
	for (size_t i = 0; req->inputs && i < req->ninputs; i++)
		free(req->inputs[i].data);
	free(req->inputs);
	free(req->outputs);
	json_decref(req->parameters);
	memset(req, 0, sizeof *req);
}

/* --------------------------------------------------------------- response ---- */

/* Writes through a local chunk so each float costs one snprintf and no hf_buf call. */
typedef struct wr {
	hf_buf *b;
	int err;
	size_t n;
	char chunk[8192];
} wr;

static void w_flush(wr *w)
{
	if (w->n && !w->err)
		w->err = hf_buf_append(w->b, w->chunk, w->n);
	w->n = 0;
}

static void w_put(wr *w, const char *s, size_t n)
{
	if (n > sizeof w->chunk - w->n) {
		w_flush(w);
		if (n > sizeof w->chunk) {
			if (!w->err)
				w->err = hf_buf_append(w->b, s, n);
			return;
		}
	}
	memcpy(w->chunk + w->n, s, n);
	w->n += n;
}

static void w_lit(wr *w, const char *s)
{
	w_put(w, s, strlen(s));
}

/* A JSON string: cleaned (valid UTF-8, no control characters), '"' and '\\' escaped. */
static void w_str(wr *w, const char *s)
{
	size_t n = strlen(s), from = 0;
	char *c = malloc(n + 1);

	if (!c) {
		w->err = w->err ? w->err : HF_ENOMEM;
		return;
	}
	hf_text_clean(c, n + 1, s, n);
	n = strlen(c);
	w_put(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (c[i] != '"' && c[i] != '\\')
			continue;
		w_put(w, c + from, i - from);
		w_put(w, c[i] == '"' ? "\\\"" : "\\\\", 2);
		from = i + 1;
	}
	w_put(w, c + from, n - from);
	w_put(w, "\"", 1);
	free(c);
}

/* 10^k for k = POW10_MIN..53 (literals, so each is correctly rounded): the scales that bring
 * every non-zero finite float to 9 integer digits. */
#define POW10_MIN (-30)
static const double pow10_tab[] = {
	1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23,
	1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15,
	1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7,
	1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1,
	1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
	1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25,
	1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33,
	1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41,
	1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49,
	1e50, 1e51, 1e52, 1e53,
};

/* A non-zero finite float as at most 9 significant digits into out (32 bytes); the length.
 * 9 digits round-trip: the error, at most half a unit in the 9th digit (5e-9 relative, plus
 * 2e-16 for the scaling in double) is under half a float ulp (3e-8 relative), so the nearest
 * float to the text is f; a parser's decimal-to-double-to-float double rounding cannot cross
 * a float midpoint that far away. Faster than snprintf("%.9g") and immune to LC_NUMERIC. */
static size_t fmt_float(float f, char *out)
{
	double d = fabs((double)f);
	int e = (int)floor(log10(d));
	uint64_t u = 0;
	char dig[9];
	size_t o = 0, nd = 9;

	for (int tries = 0; tries < 3; tries++) {
		int k = 8 - e - POW10_MIN;
		if (k < 0 || k >= (int)(sizeof pow10_tab / sizeof pow10_tab[0]))
			return (size_t)snprintf(out, 32, "%.9e", (double)f); /* not reached */
		u = (uint64_t)(d * pow10_tab[k] + 0.5);
		if (u >= 1000000000u)
			e++;
		else if (u < 100000000u)
			e--;
		else
			break;
	}
	for (int i = 8; i >= 0; i--, u /= 10)
		dig[i] = (char)('0' + u % 10);
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	if (f < 0)
		out[o++] = '-';
	if (e >= 0 && e < 9) {          /* 123.456, 1000 */
		for (size_t i = 0; i < (size_t)e + 1; i++)
			out[o++] = i < nd ? dig[i] : '0';
		if (nd > (size_t)e + 1) {
			out[o++] = '.';
			for (size_t i = (size_t)e + 1; i < nd; i++)
				out[o++] = dig[i];
		}
	} else if (e < 0 && e >= -5) {  /* 0.00123 */
		out[o++] = '0';
		out[o++] = '.';
		for (int i = 0; i < -e - 1; i++)
			out[o++] = '0';
		for (size_t i = 0; i < nd; i++)
			out[o++] = dig[i];
	} else {                        /* 1.5e-45, 3.40282347e38 */
		out[o++] = dig[0];
		if (nd > 1) {
			out[o++] = '.';
			for (size_t i = 1; i < nd; i++)
				out[o++] = dig[i];
		}
		o += (size_t)snprintf(out + o, 32 - o, "e%d", e);
	}
	return o;
}

static void w_float(wr *w, float f)
{
	char tmp[32];

	if (isnan(f))
		w_lit(w, "\"NaN\"");
	else if (isinf(f))
		w_lit(w, f < 0 ? "\"-Inf\"" : "\"Inf\"");
	else if (f == 0)
		w_lit(w, signbit(f) ? "-0.0" : "0"); /* "-0" would parse as the integer 0 */
	else
		w_put(w, tmp, fmt_float(f, tmp));
}

/* The element count of an output, or -1 for a caller error. */
static int out_count(const hf_oip_out_tensor *o, size_t *count)
{
	uint64_t c = 1;

	if (!o->name || (o->ndim && !o->shape) || o->ndim > HF_OIP_MAX_DIMS)
		return -1;
	for (size_t d = 0; d < o->ndim; d++) {
		if (o->shape[d] < 0)
			return -1;
		if (o->shape[d] == 0)
			c = 0;
		else if (c > SIZE_MAX / sizeof(float) / (uint64_t)o->shape[d])
			return -1;
		else
			c *= (uint64_t)o->shape[d];
	}
	if (c && !o->data)
		return -1;
	*count = (size_t)c;
	return 0;
}

static void w_output(wr *w, const hf_oip_out_tensor *o, size_t count)
{
	char tmp[48];

	w_lit(w, "{\"name\":");
	w_str(w, o->name);
	w_lit(w, ",\"datatype\":\"FP32\",\"shape\":[");
	for (size_t d = 0; d < o->ndim; d++) {
		int n = snprintf(tmp, sizeof tmp, "%s%" PRId64, d ? "," : "", o->shape[d]);
		w_put(w, tmp, (size_t)n);
	}
	if (o->binary) {
		int n = snprintf(tmp, sizeof tmp, "],\"parameters\":{\"binary_data_size\":%zu}}",
				 count * sizeof(float));
		w_put(w, tmp, (size_t)n);
		return;
	}
	w_lit(w, "],\"data\":[");
	for (size_t k = 0; k < count && !w->err; k++) {
		if (k)
			w_put(w, ",", 1);
		w_float(w, o->data[k]);
	}
	w_lit(w, "]}");
}

static void w_binary(wr *w, const float *data, size_t count)
{
	for (size_t k = 0; k < count && !w->err; k++) {
		uint32_t u;
		char le[4];
		memcpy(&u, &data[k], sizeof u);
		le[0] = (char)(u & 0xff);
		le[1] = (char)(u >> 8 & 0xff);
		le[2] = (char)(u >> 16 & 0xff);
		le[3] = (char)(u >> 24);
		w_put(w, le, 4);
	}
}

int hf_oip_build_response(const char *model_name, const char *model_version, const char *id,
			  const hf_oip_out_tensor *outs, size_t n, hf_buf *out, size_t *json_len,
			  hf_errbuf *eb)
{
	size_t start, count = 0;
	bool failed;
	wr *w;

	if (!model_name || !out || (n && !outs))
		return hf_fail(eb, HF_EINVAL, "hf_oip_build_response: missing argument");
	for (size_t i = 0; i < n; i++)
		if (out_count(&outs[i], &count) < 0)
			return hf_fail(eb, HF_EINVAL, "hf_oip_build_response: outputs[%zu]: no "
				       "name, a negative dimension, no data or too many elements",
				       i);
	w = malloc(sizeof *w);
	if (!w)
		return hf_fail(eb, HF_ENOMEM, "hf_oip_build_response");
	w->b = out;
	w->err = 0;
	w->n = 0;
	start = out->len;
	failed = out->failed;
	w_lit(w, "{\"model_name\":");
	w_str(w, model_name);
	if (model_version) {
		w_lit(w, ",\"model_version\":");
		w_str(w, model_version);
	}
	if (id) {
		w_lit(w, ",\"id\":");
		w_str(w, id);
	}
	w_lit(w, ",\"outputs\":[");
	for (size_t i = 0; i < n && !w->err; i++) {
		if (i)
			w_put(w, ",", 1);
		out_count(&outs[i], &count);
		w_output(w, &outs[i], count);
	}
	w_lit(w, "]}");
	w_flush(w);
	if (json_len && !w->err)
		*json_len = out->len - start;
	for (size_t i = 0; i < n && !w->err; i++) {
		if (!outs[i].binary)
			continue;
		out_count(&outs[i], &count);
		w_binary(w, outs[i].data, count);
	}
	w_flush(w);
	if (w->err) {
		int r = w->err;
		free(w);
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		out->failed = failed;
		return hf_fail(eb, r, "hf_oip_build_response: the body does not fit (%s)",
			       hf_strerror(r));
	}
	free(w);
	return 0;
}
