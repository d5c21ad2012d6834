/* Unit tests for hf_graph: parsing and shape inference of every op, the reference executor
 * against hand-computed values (linear, softmax, layernorm, both gelu forms from PyTorch's
 * formulas, ...), a whole MLP from a safetensors file, and every refusal with the words of
 * its error (the op index and kind and the field). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_graph.h"
#include "st_testutil.h"

/* A model under test: the file image, its reader and the graph. */
typedef struct model {
	uint8_t *img;
	hf_st *st;
	hf_graph *g;
	int rc;
	hf_errbuf eb;
} model;

static void model_load(model *m, const st_spec *ts, size_t n, const char *graph)
{
	size_t len;

	memset(m, 0, sizeof *m);
	m->img = st_build(ts, n, graph, &len);
	cr_assert_eq(hf_st_parse(m->img, len, NULL, &m->st, &m->eb), 0, "%s", m->eb.msg);
	m->rc = hf_graph_new(m->st, &m->g, &m->eb);
}

static void model_free(model *m)
{
	hf_graph_free(m->g);
	hf_st_free(m->st);
	free(m->img);
}

/* Expects graph (over tensors ts) to be refused with code and detail containing words. */
static void refused_ts(const st_spec *ts, size_t n, const char *graph, int code,
		       const char *words)
{
	model m;
	model_load(&m, ts, n, graph);
	cr_expect_eq(m.rc, code, "%s\n  rc %d (%s), expected %d", graph, m.rc, m.eb.msg, code);
	cr_expect_null(m.g);
	cr_expect(strstr(m.eb.msg, words) != NULL, "%s\n  detail \"%s\" lacks \"%s\"", graph,
		  m.eb.msg, words);
	model_free(&m);
}

static void refused(const char *graph, int code, const char *words)
{
	refused_ts(NULL, 0, graph, code, words);
}

/* A one-op graph: input x [-1, ...dims], op (with attrs) to y, output y of yshape. */
static char *one_op(const char *xshape, const char *op, const char *attrs, const char *yshape)
{
	static char buf[2048];
	snprintf(buf, sizeof buf, "{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
		 "\"shape\":%s}],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":%s}],"
		 "\"ops\":[{\"op\":\"%s\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]%s%s}]}", xshape,
		 yshape, op, attrs[0] ? "," : "", attrs);
	return buf;
}

/* Runs a one-input one-output graph on batch rows of x into y. */
static void run1(const hf_graph *g, size_t batch, const float *x, float *y)
{
	hf_errbuf eb;
	const float *in[1] = { x };
	float *out[1] = { y };
	cr_assert_eq(hf_graph_ref_run(g, batch, in, out, &eb), 0, "%s", eb.msg);
}

static void expect_close(const float *got, const double *want, size_t n, double tol,
			 const char *what)
{
	for (size_t i = 0; i < n; i++)
		cr_expect(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])),
			  "%s[%zu] = %.9g, expected %.9g", what, i, got[i], want[i]);
}

static const float W23[6] = { 1, 2, 3, 4, 5, 6 }, B2[2] = { 0.5f, -1 };

Test(graph, linear_2x3_with_bias_by_hand)
{
	st_spec ts[] = { { "fc.weight", 2, { 2, 3 }, W23, NULL }, { "fc.bias", 1, { 2 }, B2, NULL } };
	model m;
	/* Rows [1, 0, -1] and [2, 1, 0.5]: W x + b by hand. */
	const float x[6] = { 1, 0, -1, 2, 1, 0.5f };
	const double want[4] = { 1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 1.5 + 0.5, 8 + 5 + 3 - 1 };
	float y[4];

	model_load(&m, ts, 2, one_op("[-1,3]", "linear",
				     "\"weight\":\"fc.weight\",\"bias\":\"fc.bias\"", "[-1,2]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_eq(hf_graph_nops(m.g), 1);
	cr_expect_eq(hf_graph_nvalues(m.g), 2);
	const hf_graph_op *op = hf_graph_op_at(m.g, 0);
	cr_expect_eq(op->kind, HF_OP_LINEAR);
	cr_expect_eq(op->in_features, 3);
	cr_expect_eq(op->out_features, 2);
	cr_expect_eq(op->ninputs, 1);
	cr_expect_eq(op->noutputs, 1);
	cr_expect_eq(op->weight, hf_st_find(m.st, "fc.weight"));
	cr_expect_eq(op->bias, hf_st_find(m.st, "fc.bias"));
	const hf_graph_value *v = hf_graph_value_at(m.g, (size_t)op->outputs[0]);
	cr_expect_str_eq(v->name, "y");
	cr_expect_eq(v->ndim, 2);
	cr_expect_eq(v->shape[0], -1);
	cr_expect_eq(v->shape[1], 2);
	cr_expect_eq(v->per_sample, 2);
	cr_expect_eq(v->producer, 0);
	cr_expect_eq(hf_graph_value_at(m.g, (size_t)op->inputs[0])->producer, -1);
	cr_expect_eq(hf_graph_flops_per_sample(m.g), 12);
	cr_expect_eq(hf_graph_weight_bytes(m.g), 32);
	run1(m.g, 2, x, y);
	expect_close(y, want, 4, 0, "y");
	run1(m.g, 1, x + 3, y);
	expect_close(y, want + 2, 2, 0, "y (batch 1)");
	model_free(&m);
}

Test(graph, linear_f16_weight_no_bias_and_3d_input)
{
	/* F16 [[1, -2], [0.5, 3]] (0x3c00, 0xc000, 0x3800, 0x4200); input [-1, 2, 2]: the linear
	 * maps the last dim of each of the 2 rows per sample. */
	const uint16_t wh[4] = { 0x3c00, 0xc000, 0x3800, 0x4200 };
	st_spec ts[] = { { "w", 2, { 2, 2 }, NULL, wh } };
	const float x[4] = { 1, 1, 2, -1 };
	const double want[4] = { 1 - 2, 0.5 + 3, 2 + 2, 1 - 3 };
	float y[4];
	model m;

	model_load(&m, ts, 1, one_op("[-1,2,2]", "linear", "\"weight\":\"w\",\"bias\":null",
				     "[-1,2,2]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_null(hf_graph_op_at(m.g, 0)->bias);
	cr_expect_eq(hf_graph_flops_per_sample(m.g), 2 * 2 * 2 * 2);
	cr_expect_eq(hf_graph_weight_bytes(m.g), 8);
	run1(m.g, 1, x, y);
	expect_close(y, want, 4, 0, "y");
	model_free(&m);
}

Test(graph, linear_accumulates_in_double)
{
	/* 1e8 + 1 - 1e8 over three inputs: FP32 accumulation gives 0, double gives 1. */
	const float w[3] = { 1, 1, 1 };
	st_spec ts[] = { { "w", 2, { 1, 3 }, w, NULL } };
	const float x[3] = { 1e8f, 1, -1e8f };
	float y;
	model m;

	model_load(&m, ts, 1, one_op("[-1,3]", "linear", "\"weight\":\"w\"", "[-1,1]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	run1(m.g, 1, x, &y);
	cr_expect_eq(y, 1.0f);
	model_free(&m);
}

static void elementwise(const char *op, const char *attrs, const float *x, const double *want,
			size_t n, double tol)
{
	model m;
	float y[16];

	model_load(&m, NULL, 0, one_op("[-1,2]", op, attrs, "[-1,2]"));
	cr_assert_eq(m.rc, 0, "%s: %s", op, m.eb.msg);
	run1(m.g, n / 2, x, y);
	expect_close(y, want, n, tol, op);
	model_free(&m);
}

Test(graph, elementwise_ops_values)
{
	const float x[8] = { -3, -1, -0.5f, 0, 0.5f, 1, 2, 3 };
	/* PyTorch's gelu: 0.5 x (1 + erf(x / sqrt 2)); tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x +
	 * 0.044715 x^3))), evaluated in double. */
	const double gelu[8] = { -0.00404969409489031, -0.15865525393145707,
				 -0.15426876936299344, 0, 0.34573123063700656,
				 0.8413447460685429, 1.9544997361036416, 2.99595030590511 };
	const double gelu_tanh[8] = { -0.0036373920817729943, -0.15880800939172324,
				      -0.15428599017485606, 0, 0.34571400982514394,
				      0.8411919906082768, 1.954597694087775, 2.996362607918227 };
	const double relu[8] = { 0, 0, 0, 0, 0.5, 1, 2, 3 };
	const float xs[6] = { -2, 0, 2, -2, 0.5f, 2 };
	const double sig[6] = { 0.11920292202211755, 0.5, 0.8807970779778823,
				0.11920292202211755, 0.6224593312018546, 0.8807970779778823 };
	const double th[6] = { -0.9640275800758169, 0, 0.9640275800758169,
			       -0.9640275800758169, 0.46211715726000974, 0.9640275800758169 };

	elementwise("gelu", "", x, gelu, 8, 1e-7);
	elementwise("gelu", "\"approximate\":\"none\"", x, gelu, 8, 1e-7);
	elementwise("gelu", "\"approximate\":\"tanh\"", x, gelu_tanh, 8, 1e-7);
	elementwise("relu", "", x, relu, 8, 0);
	elementwise("sigmoid", "", xs, sig, 6, 1e-7);
	elementwise("tanh", "", xs, th, 6, 1e-7);
}

Test(graph, gelu_attribute_recorded)
{
	model m;
	model_load(&m, NULL, 0, one_op("[-1,2]", "gelu", "\"approximate\":\"tanh\"", "[-1,2]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect(hf_graph_op_at(m.g, 0)->gelu_tanh);
	model_free(&m);
	model_load(&m, NULL, 0, one_op("[-1,2]", "gelu", "", "[-1,2]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_not(hf_graph_op_at(m.g, 0)->gelu_tanh);
	model_free(&m);
}

Test(graph, softmax_known_logits_and_stability)
{
	/* softmax([1, 2, 3]) = e^k / (e + e^2 + e^3); shifting by 1000 changes nothing (a naive
	 * exp would overflow to inf/inf). */
	const float x[9] = { 1, 2, 3, 1001, 1002, 1003, -1000, -1000, -1000 };
	const double want[9] = { 0.09003057317038046, 0.24472847105479767, 0.6652409557748219,
				 0.09003057317038046, 0.24472847105479767, 0.6652409557748219,
				 1.0 / 3, 1.0 / 3, 1.0 / 3 };
	float y[9];
	model m;

	model_load(&m, NULL, 0, one_op("[-1,3]", "softmax", "", "[-1,3]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_eq(hf_graph_op_at(m.g, 0)->axis, -1);
	run1(m.g, 3, x, y);
	expect_close(y, want, 9, 1e-7, "softmax");
	model_free(&m);
	/* axis 1 of a 2-D value is the last dim too. */
	model_load(&m, NULL, 0, one_op("[-1,3]", "softmax", "\"axis\":1", "[-1,3]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_eq(hf_graph_op_at(m.g, 0)->axis, -1);
	model_free(&m);
}

Test(graph, layernorm_biased_variance)
{
	/* [1, 2, 3, 4]: mean 2.5, biased variance 1.25, eps 1e-5 (PyTorch's default). */
	const float x[4] = { 1, 2, 3, 4 }, w[4] = { 1, 2, 1, 1 }, b[4] = { 0, 0, 1, -1 };
	const double plain[4] = { -1.3416354199689269, -0.447211806656309, 0.447211806656309,
				  1.3416354199689269 };
	double affine[4];
	st_spec ts[] = { { "ln.weight", 1, { 4 }, w, NULL }, { "ln.bias", 1, { 4 }, b, NULL } };
	float y[4];
	model m;

	model_load(&m, ts, 2, one_op("[-1,4]", "layernorm", "", "[-1,4]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_float_eq(hf_graph_op_at(m.g, 0)->eps, 1e-5f, 0);
	run1(m.g, 1, x, y);
	expect_close(y, plain, 4, 1e-7, "layernorm");
	model_free(&m);

	model_load(&m, ts, 2, one_op("[-1,4]", "layernorm",
				     "\"weight\":\"ln.weight\",\"bias\":\"ln.bias\",\"eps\":1e-5",
				     "[-1,4]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	for (int i = 0; i < 4; i++)
		affine[i] = plain[i] * w[i] + b[i];
	run1(m.g, 1, x, y);
	expect_close(y, affine, 4, 1e-7, "layernorm affine");
	model_free(&m);

	/* eps 0.75: 1 / sqrt(1.25 + 0.75) = 1 / sqrt 2. */
	model_load(&m, ts, 2, one_op("[-1,4]", "layernorm", "\"eps\":0.75", "[-1,4]"));
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	run1(m.g, 1, x, y);
	const double e75[4] = { -1.5 / sqrt(2), -0.5 / sqrt(2), 0.5 / sqrt(2), 1.5 / sqrt(2) };
	expect_close(y, e75, 4, 1e-7, "layernorm eps");
	model_free(&m);
}

Test(graph, add_reshape_flatten_shapes_and_values)
{
	const char *g = "{\"version\":1,\"inputs\":[{\"name\":\"img\",\"datatype\":\"FP32\","
			"\"shape\":[-1,2,3]},{\"name\":\"bias\",\"datatype\":\"FP32\",\"shape\":[-1,6]}],"
			"\"outputs\":[{\"name\":\"sum\",\"datatype\":\"FP32\",\"shape\":[-1,3,2]},"
			"{\"name\":\"flat\",\"datatype\":\"FP32\",\"shape\":[-1,6]}],"
			"\"ops\":[{\"op\":\"flatten\",\"inputs\":[\"img\"],\"outputs\":[\"flat\"]},"
			"{\"op\":\"add\",\"inputs\":[\"flat\",\"bias\"],\"outputs\":[\"s6\"]},"
			"{\"op\":\"reshape\",\"inputs\":[\"s6\"],\"outputs\":[\"sum\"],"
			"\"shape\":[-1,3,2]}]}";
	const float img[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
	const float bias[12] = { 10, 10, 10, 10, 10, 10, 1, 1, 1, 1, 1, 1 };
	const float *in[2] = { img, bias };
	float sum[12], flat[12];
	float *out[2] = { sum, flat };
	model m;

	model_load(&m, NULL, 0, g);
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_eq(hf_graph_ninputs(m.g), 2);
	cr_expect_eq(hf_graph_noutputs(m.g), 2);
	cr_expect_eq(hf_graph_find_input(m.g, "bias"), 1);
	cr_expect_eq(hf_graph_find_output(m.g, "flat"), 1);
	cr_expect_eq(hf_graph_find_output(m.g, "s6"), -1);
	cr_expect_eq(hf_graph_find_input(m.g, "sum"), -1);
	cr_expect_str_eq(hf_graph_output(m.g, 0)->datatype, "FP32");
	const hf_graph_value *flatv = hf_graph_value_at(m.g, 2), *sumv;
	cr_expect_str_eq(flatv->name, "flat");
	cr_expect_eq(flatv->ndim, 2);
	cr_expect_eq(flatv->shape[1], 6);
	sumv = hf_graph_value_at(m.g, (size_t)hf_graph_output(m.g, 0)->value);
	cr_expect_eq(sumv->ndim, 3);
	cr_expect_eq(sumv->shape[1], 3);
	cr_expect_eq(sumv->shape[2], 2);
	cr_expect_eq(hf_graph_op_at(m.g, 1)->ninputs, 2);
	cr_expect_eq(hf_graph_flops_per_sample(m.g), 0);
	cr_assert_eq(hf_graph_ref_run(m.g, 2, in, out, &m.eb), 0, "%s", m.eb.msg);
	for (int i = 0; i < 12; i++) {
		cr_expect_eq(flat[i], img[i]);
		cr_expect_eq(sum[i], img[i] + bias[i]);
	}
	model_free(&m);
}

Test(graph, whole_mlp_from_the_file)
{
	/* 2 -> 3 (relu) -> 2 (softmax), by hand: x = [1, 2]:
	 * h = W1 x + b1 = [1*1 + 0*2 + 0, -1*1 + 1*2 + 0, 1*1 + 1*2 - 4] = [1, 1, -1];
	 * relu -> [1, 1, 0]; z = W2 a + b2 = [1 + 1, 1 - 1 + ln 2 ... ] below. */
	const float w1[6] = { 1, 0, -1, 1, 1, 1 }, b1[3] = { 0, 0, -4 };
	const float w2[6] = { 1, 1, 5, 1, -1, 5 }, b2[2] = { 0, 0.6931471805599453f };
	st_spec ts[] = { { "fc1.weight", 2, { 3, 2 }, w1, NULL }, { "fc1.bias", 1, { 3 }, b1, NULL },
			 { "fc2.weight", 2, { 2, 3 }, w2, NULL }, { "fc2.bias", 1, { 2 }, b2, NULL } };
	const char *graph =
		"{\"version\":1,\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
		"\"outputs\":[{\"name\":\"probs\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
		"\"ops\":[{\"op\":\"linear\",\"inputs\":[\"input\"],\"outputs\":[\"h1\"],"
		"\"weight\":\"fc1.weight\",\"bias\":\"fc1.bias\"},"
		"{\"op\":\"relu\",\"inputs\":[\"h1\"],\"outputs\":[\"a1\"]},"
		"{\"op\":\"linear\",\"inputs\":[\"a1\"],\"outputs\":[\"logits\"],"
		"\"weight\":\"fc2.weight\",\"bias\":\"fc2.bias\"},"
		"{\"op\":\"softmax\",\"inputs\":[\"logits\"],\"outputs\":[\"probs\"]}]}";
	/* Sample 0: a = [1, 1, 0], z = [2, ln 2]: p = [e^2, 2] / (e^2 + 2).
	 * Sample 1: x = [0, 0]: h = [0, 0, -4], a = 0, z = [0, ln 2]: p = [1/3, 2/3]. */
	const float x[4] = { 1, 2, 0, 0 };
	const double e2 = exp(2.0);
	const double want[4] = { e2 / (e2 + 2), 2 / (e2 + 2), 1.0 / 3, 2.0 / 3 };
	float y[4];
	model m;

	model_load(&m, ts, 4, graph);
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_expect_eq(hf_graph_nops(m.g), 4);
	cr_expect_eq(hf_graph_nvalues(m.g), 5);
	cr_expect_eq(hf_graph_flops_per_sample(m.g), 2 * (2 * 3 + 3 * 2));
	cr_expect_eq(hf_graph_weight_bytes(m.g), 4 * (6 + 3 + 6 + 2));
	cr_expect_eq(hf_graph_find_input(m.g, "input"), 0);
	cr_expect_eq(hf_graph_find_output(m.g, "probs"), 0);
	run1(m.g, 2, x, y);
	expect_close(y, want, 4, 1e-7, "probs");
	/* Batch 1 of sample 1 gives the same as in the batch of 2. */
	run1(m.g, 1, x + 2, y);
	expect_close(y, want + 2, 2, 1e-7, "probs (batch 1)");
	cr_expect_eq(hf_graph_ref_run(m.g, 0, (const float *const[]){ x }, (float *const[]){ y },
				      &m.eb), HF_EINVAL);
	cr_expect_eq(hf_graph_ref_run(m.g, 1, (const float *const[]){ NULL },
				      (float *const[]){ y }, &m.eb), HF_EINVAL);
	cr_expect(strstr(m.eb.msg, "inputs[0] is NULL"), "%s", m.eb.msg);
	cr_expect_eq(hf_graph_ref_run(m.g, 1, (const float *const[]){ x },
				      (float *const[]){ NULL }, &m.eb), HF_EINVAL);
	model_free(&m);
}

Test(graph, batch_is_any_size)
{
	/* A batch of 1000 through linear+gelu: each row equals the batch-1 result. */
	const float w[4] = { 0.5f, -1, 2, 0.25f };
	st_spec ts[] = { { "w", 2, { 2, 2 }, w, NULL } };
	const char *graph =
		"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
		"\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
		"\"ops\":[{\"op\":\"linear\",\"inputs\":[\"x\"],\"outputs\":[\"h\"],\"weight\":\"w\"},"
		"{\"op\":\"gelu\",\"inputs\":[\"h\"],\"outputs\":[\"y\"]}]}";
	enum { B = 1000 };
	float *x = malloc(2 * B * sizeof *x), *y = malloc(2 * B * sizeof *y), one[2];
	model m;

	for (int i = 0; i < 2 * B; i++)
		x[i] = (float)((i * 37) % 101) / 17.0f - 3;
	model_load(&m, ts, 1, graph);
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	run1(m.g, B, x, y);
	for (int b = 0; b < B; b += 97) {
		run1(m.g, 1, x + 2 * b, one);
		cr_expect_eq(one[0], y[2 * b]);
		cr_expect_eq(one[1], y[2 * b + 1]);
		double h0 = 0.5 * x[2 * b] - x[2 * b + 1];
		cr_expect(fabs(y[2 * b] - 0.5 * h0 * (1 + erf(h0 / sqrt(2)))) < 1e-6);
	}
	free(x);
	free(y);
	model_free(&m);
}

Test(graph, output_may_be_an_input_and_values_unused)
{
	const char *g = "{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
			"\"shape\":[-1,2]}],\"outputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
			"\"shape\":[-1,2]},{\"name\":\"t\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
			"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"dead\"]},"
			"{\"op\":\"tanh\",\"inputs\":[\"x\"],\"outputs\":[\"t\"]}]}";
	const float x[2] = { -1, 0.5f };
	float a[2], t[2];
	const float *in[1] = { x };
	float *out[2] = { a, t };
	model m;

	model_load(&m, NULL, 0, g);
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	cr_assert_eq(hf_graph_ref_run(m.g, 1, in, out, &m.eb), 0, "%s", m.eb.msg);
	cr_expect_eq(a[0], -1.0f);
	cr_expect_eq(a[1], 0.5f);
	cr_expect_float_eq(t[1], (float)tanh(0.5), 1e-7);
	model_free(&m);
}

Test(graph, no_graph_key)
{
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"}}";
	size_t len;
	uint8_t *img = st_image(hdr, NULL, 0, &len);
	hf_st *st;
	hf_graph *g = (hf_graph *)0x1;
	hf_errbuf eb;

	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0);
	cr_expect_eq(hf_graph_new(st, &g, &eb), HF_ENOTFOUND);
	cr_expect_null(g);
	cr_expect(strstr(eb.msg, "no \"hashflop.graph\""), "%s", eb.msg);
	hf_st_free(st);
	free(img);
	hf_graph_free(NULL);
}

#define IN "{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],"
#define OUT(shape) "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":" shape "}],"

Test(graph, refuses_top_level)
{
	refused("{\"version\":1", HF_EPARSE, "graph: not valid JSON");
	refused("[]", HF_EPARSE, "graph: expected a JSON object");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}],"
		"\"extra\":1}", HF_EPARSE, "graph: unknown key \"extra\"");
	refused("{\"version\":2,\"inputs\":[],\"outputs\":[],\"ops\":[]}", HF_EUNSUPPORTED,
		"version: 2 is not supported");
	refused("{\"version\":\"1\",\"inputs\":[],\"outputs\":[],\"ops\":[]}", HF_EPARSE,
		"version: expected the integer 1");
	refused(IN OUT("[-1,3]") "\"ops\":[]}", HF_EPARSE, "ops: expected an array of 1..1024");
	refused("{\"version\":1," OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\"]}]}", HF_EPARSE, "graph: missing \"inputs\"");
	refused(IN "\"outputs\":[]," "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\"]}]}", HF_EPARSE, "outputs: expected an array of 1..16");
	refused("{\"version\":1,\"version\":1}", HF_EPARSE, "duplicate object key");
}

Test(graph, refuses_io_entries)
{
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3]}],"
		OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "inputs[0].shape[0]: the batch dim must be -1, not 1");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1]}],"
		OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "inputs[0].shape: expected an array [-1, d1, ...] (the batch and at least");
	refused(one_op("[-1,6]", "reshape", "\"shape\":[-1]", "[-1,6]"), HF_EPARSE,
		"ops[0] (reshape): shape: expected an array [-1, d1, ...]");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,-1]}],"
		OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "inputs[0].shape[1]: expected a dim >= 1, not -1");
	refused(IN "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[2,3]}],"
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "outputs[0].shape[0]: the batch dim must be -1");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[-1,3]}],"
		OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EUNSUPPORTED, "inputs[0]: datatype \"FP16\" is not supported");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3],"
		"\"dims\":2}]," OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\"]}]}", HF_EPARSE, "inputs[0]: unknown key \"dims\"");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,3]}]," OUT("[-1,3]")
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"inputs[0]: expected \"name\" and \"datatype\"");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
		"\"shape\":[-1,1,1,1,1,1,1,1,1]}]," OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\","
		"\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_ETOOBIG, "inputs[0].shape: 9 dims");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
		"\"shape\":[-1,4096,4097]}]," OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\","
		"\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_ETOOBIG,
		"more than 16777216 elements per sample");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],"
		OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "inputs[0]: \"\" is not a name of 1..63 bytes");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"0123456789012345678901234567890123456789"
		"012345678901234567890123\",\"datatype\":\"FP32\",\"shape\":[-1,3]}]," OUT("[-1,3]")
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"is not a name of 1..63 bytes");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
		"{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3]}]," OUT("[-1,3]")
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"inputs[1]: \"x\" is already defined (a model input)");
}

Test(graph, refuses_outputs)
{
	refused(IN OUT("[-1,4]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "outputs[0]: \"y\" declared with shape [-1, 4], the graph makes [-1, 3]");
	refused(IN OUT("[-1,3,1]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\"]}]}", HF_EPARSE, "declared with shape [-1, 3, 1]");
	refused(IN "\"outputs\":[{\"name\":\"z\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],"
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"outputs[0]: \"z\" is not defined by any op or model input");
	refused(IN "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
		"{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],"
		"\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"outputs[1]: \"y\" is already outputs[0]");
}

Test(graph, refuses_op_structure)
{
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"conv2d\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\"]}]}", HF_EUNSUPPORTED, "ops[0]: op: unknown op \"conv2d\"");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"ops[0]: op: expected a string");
	refused(IN OUT("[-1,3]") "\"ops\":[3]}", HF_EPARSE, "ops[0]: expected an object");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],"
		"\"weight\":\"w\"}]}", HF_EPARSE, "ops[0] (relu): unknown key \"weight\"");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"q\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "ops[0] (relu): inputs[0]: \"q\" is not defined by an earlier op");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"x\"]}]}",
		HF_EPARSE, "ops[0] (relu): outputs[0]: \"x\" is already defined (a model input)");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]},"
		"{\"op\":\"tanh\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"ops[1] (tanh): outputs[0]: \"y\" is already defined (by ops[0])");
	/* Reading a value an op defines later: not defined yet. */
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"h\"],\"outputs\":[\"y\"]},"
		"{\"op\":\"tanh\",\"inputs\":[\"x\"],\"outputs\":[\"h\"]}]}", HF_EPARSE,
		"ops[0] (relu): inputs[0]: \"h\" is not defined");
	/* An op reading its own output. */
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"y\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "ops[0] (relu): inputs[0]: \"y\" is not defined");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"add\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "ops[0] (add): inputs: expected an array of 2 value names");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"y\",\"z\"]}]}", HF_EPARSE,
		"ops[0] (relu): outputs: expected an array of 1 value name");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[1],\"outputs\":[\"y\"]}]}",
		HF_EPARSE, "ops[0] (relu): inputs[0]: expected a string");
	refused(IN OUT("[-1,3]") "\"ops\":[{\"op\":\"relu\",\"inputs\":[\"x\"],"
		"\"outputs\":[\"a\\u0007\"]}]}", HF_EPARSE, "outputs[0]: \"a?\" is not a name");
}

Test(graph, refuses_linear_weights)
{
	static float w[128 * 255], b[129];
	st_spec ts[] = { { "fc2.weight", 2, { 128, 255 }, w, NULL }, { "fc2.bias", 1, { 129 }, b, NULL },
			 { "vec", 1, { 256 }, w, NULL } };
	const char *gin = "{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
			  "\"shape\":[-1,256]}],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\","
			  "\"shape\":[-1,128]}],\"ops\":[{\"op\":\"linear\",\"inputs\":[\"x\"],"
			  "\"outputs\":[\"y\"],";
	char g[1024];

	memset(w, 0, sizeof w);
	memset(b, 0, sizeof b);
	snprintf(g, sizeof g, "%s\"weight\":\"fc2.weight\"}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): weight \"fc2.weight\" has shape "
		   "[128, 255], expected [128, 256] for 256 inputs");
	snprintf(g, sizeof g, "%s\"weight\":\"vec\"}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): weight \"vec\" has shape [256], "
		   "expected [out, 256]");
	snprintf(g, sizeof g, "%s\"weight\":\"nope\"}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): weight: tensor \"nope\" is not in the "
		   "file");
	snprintf(g, sizeof g, "%s\"bias\":\"fc2.bias\"}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): missing \"weight\"");
	snprintf(g, sizeof g, "%s\"weight\":7}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): weight: expected a tensor name");
	snprintf(g, sizeof g, "%s\"weight\":\"fc2.weight\",\"stride\":1}]}", gin);
	refused_ts(ts, 3, g, HF_EPARSE, "ops[0] (linear): unknown key \"stride\"");

	/* The right weight with the wrong bias. */
	static float w2[128 * 256];
	memset(w2, 0, sizeof w2);
	st_spec ts2[] = { { "w", 2, { 128, 256 }, w2, NULL }, { "b", 1, { 129 }, b, NULL } };
	snprintf(g, sizeof g, "%s\"weight\":\"w\",\"bias\":\"b\"}]}", gin);
	refused_ts(ts2, 2, g, HF_EPARSE, "ops[0] (linear): bias \"b\" has shape [129], expected "
		   "[128]");

}

Test(graph, refuses_op_attributes)
{
	const float w3[3] = { 1, 1, 1 }, w4[4] = { 1, 1, 1, 1 };
	st_spec ts[] = { { "ln3", 1, { 3 }, w3, NULL }, { "ln4", 1, { 4 }, w4, NULL } };

	refused(one_op("[-1,3]", "gelu", "\"approximate\":\"fast\"", "[-1,3]"), HF_EPARSE,
		"ops[0] (gelu): approximate: expected \"none\" or \"tanh\"");
	refused(one_op("[-1,3]", "gelu", "\"approximate\":true", "[-1,3]"), HF_EPARSE,
		"approximate: expected");
	refused(one_op("[-1,3]", "softmax", "\"axis\":0", "[-1,3]"), HF_EUNSUPPORTED,
		"ops[0] (softmax): axis: 0 is not supported (only -1, the last dim)");
	refused(one_op("[-1,3]", "softmax", "\"axis\":\"last\"", "[-1,3]"), HF_EPARSE,
		"ops[0] (softmax): axis: expected an integer");
	refused(one_op("[-1,3]", "layernorm", "\"eps\":0", "[-1,3]"), HF_EPARSE,
		"ops[0] (layernorm): eps: expected a positive number");
	refused(one_op("[-1,3]", "layernorm", "\"eps\":-1e-5", "[-1,3]"), HF_EPARSE,
		"eps: expected a positive number");
	refused(one_op("[-1,3]", "layernorm", "\"eps\":1e-300", "[-1,3]"), HF_EPARSE,
		"eps: expected a positive number (as FP32)");
	refused(one_op("[-1,3]", "layernorm", "\"eps\":1e300", "[-1,3]"), HF_EPARSE,
		"eps: expected a positive number (as FP32)");
	refused(one_op("[-1,3]", "layernorm", "\"eps\":\"1e-5\"", "[-1,3]"), HF_EPARSE,
		"eps: expected a positive number");
	refused_ts(ts, 2, one_op("[-1,3]", "layernorm", "\"weight\":\"ln4\"", "[-1,3]"), HF_EPARSE,
		   "ops[0] (layernorm): weight \"ln4\" has shape [4], expected [3]");
	refused_ts(ts, 2, one_op("[-1,3]", "layernorm", "\"weight\":\"ln3\",\"bias\":\"ln4\"",
				 "[-1,3]"), HF_EPARSE, "ops[0] (layernorm): bias \"ln4\" has shape [4]");
	refused(one_op("[-1,2,3]", "reshape", "\"shape\":[-1,7]", "[-1,7]"), HF_EPARSE,
		"ops[0] (reshape): shape [-1, 7] has 7 elements per sample, inputs[0] \"x\" has 6");
	refused(one_op("[-1,2,3]", "reshape", "\"shape\":[3,2]", "[-1,3,2]"), HF_EPARSE,
		"ops[0] (reshape): shape[0]: the batch dim must be -1, not 3");
	refused(one_op("[-1,2,3]", "reshape", "\"shape\":[-1,-1]", "[-1,6]"), HF_EPARSE,
		"ops[0] (reshape): shape[1]: expected a dim >= 1");
	refused(one_op("[-1,2,3]", "reshape", "", "[-1,6]"), HF_EPARSE,
		"ops[0] (reshape): missing \"shape\"");
	refused(one_op("[-1,2,3]", "flatten", "\"start_dim\":1", "[-1,6]"), HF_EPARSE,
		"ops[0] (flatten): unknown key \"start_dim\"");
}

Test(graph, refuses_add_shapes)
{
	refused("{\"version\":1,\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
		"{\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":[-1,4]}]," OUT("[-1,3]")
		"\"ops\":[{\"op\":\"add\",\"inputs\":[\"a\",\"b\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"ops[0] (add): inputs[1] \"b\" has shape [-1, 4], expected [-1, 3] like inputs[0] \"a\"");
	refused("{\"version\":1,\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
		"{\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":[-1,3,1]}]," OUT("[-1,3]")
		"\"ops\":[{\"op\":\"add\",\"inputs\":[\"a\",\"b\"],\"outputs\":[\"y\"]}]}", HF_EPARSE,
		"ops[0] (add): inputs[1] \"b\" has shape [-1, 3, 1]");
}

Test(graph, caps)
{
	/* 1024 relu ops are allowed, 1025 are not; the JSON itself is capped at 1 MiB. */
	size_t cap = 200000, off;
	char *g = malloc(cap);
	model m;

	for (int n = 1024; n <= 1025; n++) {
		off = (size_t)snprintf(g, cap, IN "\"outputs\":[{\"name\":\"v%d\",\"datatype\":"
				       "\"FP32\",\"shape\":[-1,3]}],\"ops\":[", n);
		for (int i = 1; i <= n; i++) {
			char prev[16];
			snprintf(prev, sizeof prev, i > 1 ? "v%d" : "x", i - 1);
			off += (size_t)snprintf(g + off, cap - off, "%s{\"op\":\"relu\",\"inputs\":"
						"[\"%s\"],\"outputs\":[\"v%d\"]}", i > 1 ? "," : "",
						prev, i);
		}
		snprintf(g + off, cap - off, "]}");
		model_load(&m, NULL, 0, g);
		if (n == 1024) {
			cr_expect_eq(m.rc, 0, "%s", m.eb.msg);
			cr_expect_eq(hf_graph_nops(m.g), 1024);
			cr_expect_eq(hf_graph_nvalues(m.g), 1025);
		} else {
			cr_expect_eq(m.rc, HF_ETOOBIG);
			cr_expect(strstr(m.eb.msg, "ops: 1025 ops, at most 1024"), "%s", m.eb.msg);
		}
		model_free(&m);
	}
	free(g);

	/* 1 MiB + 1 bytes of JSON (whitespace padding) is refused before parsing. */
	size_t big = (1u << 20) + 1;
	char *pad = malloc(big + 1);
	hf_graph *gr;
	hf_errbuf eb;
	const char *ok = one_op("[-1,3]", "relu", "", "[-1,3]");
	memset(pad, ' ', big);
	memcpy(pad, ok, strlen(ok));
	cr_expect_eq(hf_graph_new_json(NULL, pad, big, &gr, &eb), HF_ETOOBIG);
	cr_expect(strstr(eb.msg, "graph: 1048577 bytes of JSON, at most 1048576"), "%s", eb.msg);
	cr_expect_eq(hf_graph_new_json(NULL, pad, big - 1, &gr, &eb), 0, "%s", eb.msg);
	hf_graph_free(gr);
	free(pad);

	/* 17 inputs. */
	char many[4096];
	off = (size_t)snprintf(many, sizeof many, "{\"version\":1,\"inputs\":[");
	for (int i = 0; i < 17; i++)
		off += (size_t)snprintf(many + off, sizeof many - off, "%s{\"name\":\"i%d\","
					"\"datatype\":\"FP32\",\"shape\":[-1,1]}", i ? "," : "", i);
	snprintf(many + off, sizeof many - off, "]," OUT("[-1,1]") "\"ops\":[{\"op\":\"relu\","
		 "\"inputs\":[\"i0\"],\"outputs\":[\"y\"]}]}");
	refused(many, HF_ETOOBIG, "inputs: expected an array of 1..16 entries");

	/* A reshape target over the per-sample cap. */
	refused(one_op("[-1,2,3]", "reshape", "\"shape\":[-1,16777216,2]", "[-1,6]"), HF_ETOOBIG,
		"ops[0] (reshape): shape: more than 16777216 elements per sample");
}

/* The FLOPs the node's telemetry counts per item (hf_graph_work_flops_per_sample): every op,
 * by hand. x [-1, 2, 3] -> linear 3->4 with bias (on each of the 2 rows) -> gelu -> layernorm
 * (weight and bias) -> add (residual) -> flatten -> linear 8->5 without bias -> softmax. */
Test(graph, work_flops_count_every_op)
{
	static float w1[12], b1[4], lw[4], lb[4], w2[40];
	st_spec ts[] = { { "w1", 2, { 4, 3 }, w1, NULL }, { "b1", 1, { 4 }, b1, NULL },
			 { "lw", 1, { 4 }, lw, NULL }, { "lb", 1, { 4 }, lb, NULL },
			 { "w2", 2, { 5, 8 }, w2, NULL } };
	const char *graph =
		"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,2,3]}],"
		"\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,5]}],\"ops\":["
		"{\"op\":\"linear\",\"inputs\":[\"x\"],\"outputs\":[\"h\"],\"weight\":\"w1\",\"bias\":\"b1\"},"
		"{\"op\":\"gelu\",\"inputs\":[\"h\"],\"outputs\":[\"g\"]},"
		"{\"op\":\"layernorm\",\"inputs\":[\"g\"],\"outputs\":[\"n\"],\"weight\":\"lw\",\"bias\":\"lb\"},"
		"{\"op\":\"add\",\"inputs\":[\"n\",\"h\"],\"outputs\":[\"r\"]},"
		"{\"op\":\"flatten\",\"inputs\":[\"r\"],\"outputs\":[\"f\"]},"
		"{\"op\":\"linear\",\"inputs\":[\"f\"],\"outputs\":[\"z\"],\"weight\":\"w2\"},"
		"{\"op\":\"softmax\",\"inputs\":[\"z\"],\"outputs\":[\"y\"],\"axis\":-1}]}";
	model m;

	model_load(&m, ts, 5, graph);
	cr_assert_eq(m.rc, 0, "%s", m.eb.msg);
	double want = 2 * (2.0 * 3 * 4 + 4)                 /* linear with bias, 2 rows */
		      + 8                                     /* gelu */
		      + (HF_GRAPH_LAYERNORM_FLOPS + 2) * 8    /* layernorm, weight and bias */
		      + 8                                     /* add */
		      + 0                                     /* flatten */
		      + 2.0 * 8 * 5                           /* linear without bias */
		      + HF_GRAPH_SOFTMAX_FLOPS * 5;           /* softmax */
	cr_expect_eq(hf_graph_work_flops_per_sample(m.g), want);
	/* The multiply-adds alone stay what hf_graph_flops_per_sample says. */
	cr_expect_eq(hf_graph_flops_per_sample(m.g), 2 * (2 * 3 * 4) + 2 * 8 * 5);
	model_free(&m);
}
