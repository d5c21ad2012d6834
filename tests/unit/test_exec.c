/* Unit tests for hf_exec: the graph on an OpenCL device against the CPU reference
 * (hf_graph_ref_run) on random weights and inputs: every op alone, fused and unfused; MLP
 * chains (the fused one-launch path) at every batch size from 1 to max, odd ones included;
 * FP16 weights; chains broken by a value read twice or served as an output; a model whose
 * activations do not fit the device's local memory (sized from the device's own limit); a
 * linear large enough for the GEMM engine with a fused residual epilogue; multi-dimensional
 * values; batch bounds; statistics with profiling; the committed Fashion-MNIST model against
 * torch's probabilities on the real test images.
 * The device is HF_TEST_CL_DEVICE or "auto" (PoCL in CI, a GPU in benchmarks/gpu-check.sh);
 * limits come from that device. With no OpenCL platform or device at all the tests are
 * reported skipped; any other failure fails them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hf_exec.h"
#include "hf_graph.h"
#include "hf_safetensors.h"

static hf_cl *cl;
static char cache[512];

static const char *test_device(void)
{
	const char *d = getenv("HF_TEST_CL_DEVICE");
	return d && *d ? d : "auto";
}

__attribute__((constructor)) static void cl_env(void)
{
	hf_cl_env_init(NULL, NULL);
}

static void open_with(bool profiling)
{
	hf_errbuf eb;
	size_t n = 0;
	int r = hf_cl_list(NULL, 0, &n, &eb);
	cr_assert_eq(r, 0, "hf_cl_list: %s: %s", hf_strerror(r), eb.msg);
	if (n == 0)
		cr_skip_test("no OpenCL platform or device on this machine: hf_exec was NOT tested");
	const char *root = getenv("HF_BUILD_ROOT");
	snprintf(cache, sizeof cache, "%s/exec-test-cache", root ? root : "/tmp");
	hf_cl_opts o = { .cache_dir = cache, .profiling = profiling };
	r = hf_cl_open(test_device(), &o, &cl, &eb);
	cr_assert_eq(r, 0, "device \"%s\": %s: %s", test_device(), hf_strerror(r), eb.msg);
}

static void open_device(void) { open_with(false); }
static void open_profiling(void) { open_with(true); }

static void close_device(void)
{
	hf_cl_free(cl);
	cl = NULL;
}

/* ---- random numbers, FP16 ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) & 0xffff) / 32768.0f - 1.0f;
}

/* binary16 of f by truncation (normal range; tiny values to zero): any half will do, the
 * reference and the device read the same stored bits. */
static uint16_t to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	int e = (int)((x >> 23) & 0xff) - 127;
	if (e < -14)
		return sign;
	return sign | (uint16_t)(((e + 15) << 10) | ((x >> 13) & 0x3ff));
}

/* ---- an in-memory safetensors file of random tensors ---- */

#define MAX_T 32

typedef struct tensor_spec {
	char name[64];
	bool half;
	size_t ndim;
	size_t shape[2];
	unsigned char *data;
	size_t bytes;
} tensor_spec;

typedef struct model {
	tensor_spec t[MAX_T];
	size_t nt;
	unsigned char *file;
	hf_st *st;
	hf_graph *g;
} model;

/* A random tensor [d0] (d1 == 0) or [d0, d1], values scaled by scale. */
static void add_tensor(model *m, const char *name, bool half, size_t d0, size_t d1, float scale)
{
	cr_assert_lt(m->nt, MAX_T);
	tensor_spec *t = &m->t[m->nt++];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->half = half;
	t->ndim = d1 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	size_t count = d0 * (d1 ? d1 : 1), es = half ? 2 : 4;
	t->bytes = count * es;
	t->data = malloc(t->bytes ? t->bytes : 1);
	cr_assert_not_null(t->data);
	for (size_t i = 0; i < count; i++) {
		float v = frand() * scale;
		if (half) {
			uint16_t h = to_half(v);
			memcpy(t->data + 2 * i, &h, 2);
		} else {
			memcpy(t->data + 4 * i, &v, 4);
		}
	}
}

/* nn.Linear-like weight [out, in] and bias [out] named P.weight / P.bias. */
static void add_linear(model *m, const char *p, bool half, size_t in, size_t out, bool bias)
{
	char n[64];
	float s = 1.0f / sqrtf((float)in);
	snprintf(n, sizeof n, "%s.weight", p);
	add_tensor(m, n, half, out, in, s);
	if (bias) {
		snprintf(n, sizeof n, "%s.bias", p);
		add_tensor(m, n, half, out, 0, s);
	}
}

/* Serialises the tensors, parses them and the graph. */
static void build(model *m, const char *graph_json)
{
	size_t hcap = 64 + 160 * m->nt, hl = 0, off = 0, data = 0;
	char *h = malloc(hcap);
	cr_assert_not_null(h);
	hl += (size_t)snprintf(h + hl, hcap - hl, "{");
	for (size_t i = 0; i < m->nt; i++) {
		tensor_spec *t = &m->t[i];
		char shape[64];
		if (t->ndim == 1)
			snprintf(shape, sizeof shape, "[%zu]", t->shape[0]);
		else
			snprintf(shape, sizeof shape, "[%zu, %zu]", t->shape[0], t->shape[1]);
		hl += (size_t)snprintf(h + hl, hcap - hl,
				       "%s\"%s\": {\"dtype\": \"%s\", \"shape\": %s, "
				       "\"data_offsets\": [%zu, %zu]}",
				       i ? ", " : "", t->name, t->half ? "F16" : "F32", shape, off,
				       off + t->bytes);
		off += t->bytes;
	}
	hl += (size_t)snprintf(h + hl, hcap - hl, "}");
	cr_assert_lt(hl, hcap);
	data = off;
	m->file = malloc(8 + hl + data + 1);
	cr_assert_not_null(m->file);
	uint64_t n = hl;
	for (int i = 0; i < 8; i++)
		m->file[i] = (unsigned char)(n >> (8 * i));
	memcpy(m->file + 8, h, hl);
	free(h);
	off = 8 + hl;
	for (size_t i = 0; i < m->nt; i++) {
		memcpy(m->file + off, m->t[i].data, m->t[i].bytes);
		off += m->t[i].bytes;
	}
	hf_errbuf eb;
	int r = hf_st_parse(m->file, off, NULL, &m->st, &eb);
	cr_assert_eq(r, 0, "hf_st_parse: %s", eb.msg);
	r = hf_graph_new_json(m->st, graph_json, strlen(graph_json), &m->g, &eb);
	cr_assert_eq(r, 0, "hf_graph_new_json: %s\n%s", eb.msg, graph_json);
}

static void model_free(model *m)
{
	hf_graph_free(m->g);
	hf_st_free(m->st);
	free(m->file);
	for (size_t i = 0; i < m->nt; i++)
		free(m->t[i].data);
	memset(m, 0, sizeof *m);
}

/* ---- running and comparing ---- */

static bool nonfinite; /* check_runs puts NaN and infinities into the inputs */

static size_t value_size(const hf_graph *g, int v)
{
	return (size_t)hf_graph_value_at(g, (size_t)v)->per_sample;
}

/* Runs batches 1..max_batch with random inputs on the executor and the reference; every
 * output element within 1e-4 relative (1e-5 absolute near zero). Returns the executor's
 * launches per run. */
static size_t check_runs(const hf_graph *g, const hf_exec_opts *o, const char *what,
			 const char *expect_in_desc)
{
	hf_errbuf eb;
	hf_exec *e = NULL;
	int r = hf_exec_new(cl, g, o, &e, &eb);
	cr_assert_eq(r, 0, "%s: hf_exec_new: %s: %s", what, hf_strerror(r), eb.msg);
	const char *desc = hf_exec_describe(e);
	if (expect_in_desc)
		cr_assert_not_null(strstr(desc, expect_in_desc), "%s: lowering \"%s\" lacks \"%s\"",
				   what, desc, expect_in_desc);
	size_t mb = hf_exec_max_batch(e), ni = hf_graph_ninputs(g), no = hf_graph_noutputs(g);
	float *in[HF_GRAPH_MAX_IO], *got[HF_GRAPH_MAX_IO], *want[HF_GRAPH_MAX_IO];
	for (size_t i = 0; i < ni; i++) {
		in[i] = malloc(mb * value_size(g, hf_graph_input(g, i)->value) * sizeof(float));
		cr_assert_not_null(in[i]);
	}
	for (size_t j = 0; j < no; j++) {
		size_t n = mb * value_size(g, hf_graph_output(g, j)->value);
		got[j] = malloc(n * sizeof(float));
		want[j] = malloc(n * sizeof(float));
		cr_assert(got[j] && want[j]);
	}
	for (size_t b = 1; b <= mb; b++) {
		for (size_t i = 0; i < ni; i++) {
			size_t n = b * value_size(g, hf_graph_input(g, i)->value);
			for (size_t k = 0; k < n; k++)
				in[i][k] = 2.0f * frand();
			/* Non-finite inputs are allowed and propagate: one NaN, +Inf or -Inf in
			 * some samples when the test asks for them. */
			for (size_t k = 0; nonfinite && k < n; k += 7 * n / b / 3 + 1)
				in[i][k] = (k / 7) % 3 == 0 ? NAN : (k / 7) % 3 == 1 ? INFINITY : -INFINITY;
		}
		r = hf_graph_ref_run(g, b, (const float *const *)in, want, &eb);
		cr_assert_eq(r, 0, "%s: reference: %s", what, eb.msg);
		for (size_t j = 0; j < no; j++)
			memset(got[j], 0xff, b * value_size(g, hf_graph_output(g, j)->value) * 4);
		r = hf_exec_run(e, b, (const float *const *)in, got, &eb);
		cr_assert_eq(r, 0, "%s: batch %zu: %s: %s", what, b, hf_strerror(r), eb.msg);
		for (size_t j = 0; j < no; j++) {
			size_t n = b * value_size(g, hf_graph_output(g, j)->value);
			for (size_t k = 0; k < n; k++) {
				if (isnan(want[j][k]) || isinf(want[j][k])) {
					cr_assert(isnan(want[j][k]) ? isnan(got[j][k]) :
						  got[j][k] == want[j][k],
						  "%s (%s): batch %zu output %zu element %zu: %g, "
						  "reference %g", what, o->no_fusion ? "no_fusion" :
						  "fused", b, j, k, got[j][k], want[j][k]);
					continue;
				}
				float d = fabsf(got[j][k] - want[j][k]);
				cr_assert(d <= 1e-4f * fabsf(want[j][k]) + 1e-5f,
					  "%s (%s): batch %zu output %zu element %zu: %.7g, reference "
					  "%.7g\nlowering: %s", what, o->no_fusion ? "no_fusion" : "fused",
					  b, j, k, got[j][k], want[j][k], desc);
			}
		}
	}
	size_t launches = hf_exec_launches_per_run(e);
	hf_exec_stats st;
	hf_exec_get_stats(e, &st);
	cr_assert_eq(st.runs, mb, "%s: %llu runs counted", what, (unsigned long long)st.runs);
	cr_assert_eq(st.samples, mb * (mb + 1) / 2);
	for (size_t i = 0; i < ni; i++)
		free(in[i]);
	for (size_t j = 0; j < no; j++) {
		free(got[j]);
		free(want[j]);
	}
	hf_exec_free(e);
	return launches;
}

/* Both lowerings; returns the fused one's launches per run. */
static size_t check_both(const hf_graph *g, size_t max_batch, const char *what,
			 const char *fused_desc)
{
	hf_exec_opts o = { .max_batch = max_batch, .no_fusion = true };
	check_runs(g, &o, what, NULL);
	o.no_fusion = false;
	return check_runs(g, &o, what, fused_desc);
}

/* ---- every op alone ---- */

TestSuite(exec, .init = open_device, .fini = close_device, .timeout = 300);

static void one_op(const char *op_json, size_t in, size_t out, const char *what)
{
	model m = { 0 };
	add_linear(&m, "fc", false, in, out, true);
	add_linear(&m, "fch", true, in, out, true);
	add_tensor(&m, "ln.weight", false, in, 0, 1.0f);
	add_tensor(&m, "ln.bias", false, in, 0, 1.0f);
	char g[2048];
	snprintf(g, sizeof g,
		 "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		 "\"shape\": [-1, %zu]}, {\"name\": \"x2\", \"datatype\": \"FP32\", \"shape\": [-1, "
		 "%zu]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", \"shape\": [-1, "
		 "%zu]}], \"ops\": [%s]}", in, in, out, op_json);
	build(&m, g);
	check_both(m.g, 7, what, NULL);
	model_free(&m);
}

#define OP1(kind, extra) "{\"op\": \"" kind "\", \"inputs\": [\"x\"], \"outputs\": [\"y\"]" extra "}"

Test(exec, linear_alone)
{
	one_op(OP1("linear", ", \"weight\": \"fc.weight\", \"bias\": \"fc.bias\""), 37, 19,
	       "linear+bias");
	one_op(OP1("linear", ", \"weight\": \"fc.weight\""), 37, 19, "linear");
	one_op(OP1("linear", ", \"weight\": \"fch.weight\", \"bias\": \"fch.bias\""), 37, 19,
	       "linear f16");
	one_op(OP1("linear", ", \"weight\": \"fc.weight\", \"bias\": \"fc.bias\""), 1, 1,
	       "linear 1x1");
	/* K over the chain kernel's k-block, N not a multiple of its panel width */
	one_op(OP1("linear", ", \"weight\": \"fc.weight\", \"bias\": \"fc.bias\""), 600, 19,
	       "linear 600x19");
}

Test(exec, activations_alone)
{
	one_op(OP1("relu", ""), 33, 33, "relu");
	one_op(OP1("gelu", ""), 33, 33, "gelu");
	one_op(OP1("gelu", ", \"approximate\": \"tanh\""), 33, 33, "gelu tanh");
	one_op(OP1("tanh", ""), 33, 33, "tanh");
	one_op(OP1("sigmoid", ""), 33, 33, "sigmoid");
}

Test(exec, rows_and_shapes_alone)
{
	one_op(OP1("softmax", ""), 21, 21, "softmax");
	one_op(OP1("softmax", ", \"axis\": -1"), 1, 1, "softmax of 1");
	one_op(OP1("layernorm", ", \"weight\": \"ln.weight\", \"bias\": \"ln.bias\""), 45, 45,
	       "layernorm");
	one_op(OP1("layernorm", ", \"eps\": 0.001"), 45, 45, "layernorm without parameters");
	one_op("{\"op\": \"add\", \"inputs\": [\"x\", \"x2\"], \"outputs\": [\"y\"]}", 29, 29,
	       "add");
	one_op(OP1("flatten", ""), 12, 12, "flatten");
	one_op(OP1("reshape", ", \"shape\": [-1, 12]"), 12, 12, "reshape");
}

/* ---- chains ---- */

static const char *mlp_json =
	"{\"version\": 1, \"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": "
	"[-1, 784]}], \"outputs\": [{\"name\": \"probs\", \"datatype\": \"FP32\", \"shape\": [-1, "
	"10]}], \"ops\": ["
	"{\"op\": \"linear\", \"inputs\": [\"input\"], \"outputs\": [\"h1\"], \"weight\": "
	"\"fc1.weight\", \"bias\": \"fc1.bias\"},"
	"{\"op\": \"relu\", \"inputs\": [\"h1\"], \"outputs\": [\"a1\"]},"
	"{\"op\": \"linear\", \"inputs\": [\"a1\"], \"outputs\": [\"h2\"], \"weight\": "
	"\"fc2.weight\", \"bias\": \"fc2.bias\"},"
	"{\"op\": \"relu\", \"inputs\": [\"h2\"], \"outputs\": [\"a2\"]},"
	"{\"op\": \"linear\", \"inputs\": [\"a2\"], \"outputs\": [\"h3\"], \"weight\": "
	"\"fc3.weight\", \"bias\": \"fc3.bias\"},"
	"{\"op\": \"softmax\", \"inputs\": [\"h3\"], \"outputs\": [\"probs\"]}]}";

static void mlp(bool half)
{
	model m = { 0 };
	add_linear(&m, "fc1", half, 784, 256, true);
	add_linear(&m, "fc2", half, 256, 128, true);
	add_linear(&m, "fc3", half, 128, 10, true);
	build(&m, mlp_json);
	size_t l = check_both(m.g, 40, half ? "mlp f16" : "mlp", "chain[");
	cr_assert_eq(l, 1, "the fused MLP takes %zu launches, expected 1", l);
	model_free(&m);
}

Test(exec, mlp_one_launch) { mlp(false); }
Test(exec, mlp_f16_weights) { mlp(true); }

/* h1 is read twice (a residual and a model output): the chain must break there. */
Test(exec, chain_breaks_at_shared_values)
{
	model m = { 0 };
	add_linear(&m, "a", false, 24, 16, true);
	add_linear(&m, "b", false, 16, 16, false);
	add_linear(&m, "c", false, 16, 5, true);
	build(&m, "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 24]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 5]}, {\"name\": \"h1\", \"datatype\": \"FP32\", \"shape\": [-1, "
		  "16]}], \"ops\": ["
		  "{\"op\": \"linear\", \"inputs\": [\"x\"], \"outputs\": [\"h0\"], \"weight\": "
		  "\"a.weight\", \"bias\": \"a.bias\"},"
		  "{\"op\": \"gelu\", \"inputs\": [\"h0\"], \"outputs\": [\"h1\"]},"
		  "{\"op\": \"linear\", \"inputs\": [\"h1\"], \"outputs\": [\"h2\"], \"weight\": "
		  "\"b.weight\"},"
		  "{\"op\": \"add\", \"inputs\": [\"h2\", \"h1\"], \"outputs\": [\"h3\"]},"
		  "{\"op\": \"tanh\", \"inputs\": [\"h3\"], \"outputs\": [\"h4\"]},"
		  "{\"op\": \"sigmoid\", \"inputs\": [\"h4\"], \"outputs\": [\"h5\"]},"
		  "{\"op\": \"layernorm\", \"inputs\": [\"h5\"], \"outputs\": [\"h6\"]},"
		  "{\"op\": \"linear\", \"inputs\": [\"h6\"], \"outputs\": [\"h7\"], \"weight\": "
		  "\"c.weight\", \"bias\": \"c.bias\"},"
		  "{\"op\": \"relu\", \"inputs\": [\"h7\"], \"outputs\": [\"h8\"]},"
		  "{\"op\": \"sigmoid\", \"inputs\": [\"h8\"], \"outputs\": [\"y\"]}]}");
	size_t l = check_both(m.g, 13, "shared values", NULL);
	/* linear+gelu, linear, add+tanh+sigmoid, layernorm, linear+relu+sigmoid */
	cr_assert_eq(l, 5, "fused launches %zu, expected 5", l);
	model_free(&m);
}

/* A hidden layer one float too wide for two rows of it in the device's local memory: the
 * chain cannot stay in local memory and runs layer by layer; still exact. */
Test(exec, chain_over_local_memory)
{
	const hf_cl_device_info *dev = hf_cl_info(cl);
	size_t h = (size_t)(dev->local_mem_bytes / 8) + 1;
	model m = { 0 };
	add_linear(&m, "fc1", false, 3, h, true);
	add_linear(&m, "fc2", false, h, 4, true);
	char g[2048];
	snprintf(g, sizeof g,
		 "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		 "\"shape\": [-1, 3]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", "
		 "\"shape\": [-1, 4]}], \"ops\": ["
		 "{\"op\": \"linear\", \"inputs\": [\"x\"], \"outputs\": [\"h\"], \"weight\": "
		 "\"fc1.weight\", \"bias\": \"fc1.bias\"},"
		 "{\"op\": \"relu\", \"inputs\": [\"h\"], \"outputs\": [\"a\"]},"
		 "{\"op\": \"linear\", \"inputs\": [\"a\"], \"outputs\": [\"z\"], \"weight\": "
		 "\"fc2.weight\", \"bias\": \"fc2.bias\"},"
		 "{\"op\": \"softmax\", \"inputs\": [\"z\"], \"outputs\": [\"y\"]}]}");
	build(&m, g);
	size_t l = check_both(m.g, 5, "over local memory", NULL);
	cr_assert_gt(l, 1, "a chain with a %zu-wide hidden layer cannot be one launch on a device "
		     "with %llu bytes of local memory", h,
		     (unsigned long long)dev->local_mem_bytes);
	model_free(&m);
}

/* A linear too large for the chain kernel: the GEMM engine, then bias + residual + relu in
 * one epilogue kernel. */
Test(exec, large_linear_on_gemm_engine)
{
	model m = { 0 };
	add_linear(&m, "big", false, 2048, 2049, true);
	add_linear(&m, "proj", false, 2048, 2049, false);
	build(&m, "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 2048]}], \"outputs\": [{\"name\": \"y\", \"datatype\": "
		  "\"FP32\", \"shape\": [-1, 2049]}], \"ops\": ["
		  "{\"op\": \"linear\", \"inputs\": [\"x\"], \"outputs\": [\"r\"], \"weight\": "
		  "\"proj.weight\"},"
		  "{\"op\": \"linear\", \"inputs\": [\"x\"], \"outputs\": [\"h\"], \"weight\": "
		  "\"big.weight\", \"bias\": \"big.bias\"},"
		  "{\"op\": \"add\", \"inputs\": [\"h\", \"r\"], \"outputs\": [\"s\"]},"
		  "{\"op\": \"relu\", \"inputs\": [\"s\"], \"outputs\": [\"y\"]}]}");
	hf_exec_opts o = { .max_batch = 5 };
	check_runs(m.g, &o, "large linear", "bias+add+relu");
	model_free(&m);
}

/* Values of more than two dimensions: linear over the last one, then flatten and softmax. */
Test(exec, multi_dimensional_values)
{
	model m = { 0 };
	add_linear(&m, "fc", false, 8, 5, true);
	build(&m, "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 24]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 15]}], \"ops\": ["
		  "{\"op\": \"reshape\", \"inputs\": [\"x\"], \"outputs\": [\"x3\"], \"shape\": "
		  "[-1, 3, 8]},"
		  "{\"op\": \"linear\", \"inputs\": [\"x3\"], \"outputs\": [\"h\"], \"weight\": "
		  "\"fc.weight\", \"bias\": \"fc.bias\"},"
		  "{\"op\": \"softmax\", \"inputs\": [\"h\"], \"outputs\": [\"p\"]},"
		  "{\"op\": \"flatten\", \"inputs\": [\"p\"], \"outputs\": [\"y\"]}]}");
	size_t l = check_both(m.g, 9, "multi-dimensional", "+softmax");
	cr_assert_eq(l, 1);
	model_free(&m);
}

/* NaN and infinities in the inputs come out where the reference puts them (a NaN through relu
 * stays NaN, a row with one turns softmax to NaN). */
Test(exec, non_finite_inputs_propagate)
{
	model m = { 0 };
	add_linear(&m, "fc1", false, 784, 256, true);
	add_linear(&m, "fc2", false, 256, 128, true);
	add_linear(&m, "fc3", false, 128, 10, true);
	build(&m, mlp_json);
	nonfinite = true;
	check_both(m.g, 9, "mlp, non-finite inputs", "chain[");
	model_free(&m);
	one_op(OP1("relu", ""), 33, 33, "relu, non-finite inputs");
	one_op(OP1("softmax", ""), 21, 21, "softmax, non-finite inputs");
	one_op("{\"op\": \"add\", \"inputs\": [\"x\", \"x2\"], \"outputs\": [\"y\"]}", 29, 29,
	       "add, non-finite inputs");
	nonfinite = false;
}

/* ---- bounds and statistics ---- */

Test(exec, batch_bounds)
{
	model m = { 0 };
	add_linear(&m, "fc", false, 4, 3, true);
	build(&m, "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 4]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 3]}], \"ops\": [{\"op\": \"linear\", \"inputs\": [\"x\"], "
		  "\"outputs\": [\"y\"], \"weight\": \"fc.weight\", \"bias\": \"fc.bias\"}]}");
	hf_exec_opts o = { .max_batch = 3, .no_warmup = true };
	hf_exec *e = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_exec_new(cl, m.g, &o, &e, &eb), 0, "%s", eb.msg);
	float x[16] = { 0 }, y[16];
	const float *in[1] = { x };
	float *out[1] = { y };
	cr_assert_eq(hf_exec_run(e, 0, in, out, &eb), HF_EINVAL);
	cr_assert_eq(hf_exec_run(e, 4, in, out, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "1..3"), "%s", eb.msg);
	cr_assert_eq(hf_exec_run(e, 3, in, out, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_exec_max_batch(e), 3);
	cr_assert_gt(hf_exec_device_bytes(e), 0);
	hf_exec_free(e);
	hf_exec_opts d = { 0 }; /* max_batch 0 means 1 */
	cr_assert_eq(hf_exec_new(cl, m.g, &d, &e, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_exec_max_batch(e), 1);
	hf_exec_free(e);
	model_free(&m);
}

Test(exec, stats_with_profiling, .init = open_profiling, .fini = close_device)
{
	model m = { 0 };
	add_linear(&m, "fc1", false, 784, 256, true);
	add_linear(&m, "fc2", false, 256, 128, true);
	add_linear(&m, "fc3", false, 128, 10, true);
	build(&m, mlp_json);
	for (int nf = 0; nf < 2; nf++) {
		hf_exec_opts o = { .max_batch = 8, .no_fusion = nf };
		hf_exec *e = NULL;
		hf_errbuf eb;
		cr_assert_eq(hf_exec_new(cl, m.g, &o, &e, &eb), 0, "%s", eb.msg);
		hf_exec_stats st;
		hf_exec_get_stats(e, &st);
		cr_assert_eq(st.runs, 0, "warm-up runs are not counted");
		float *x = calloc(8 * 784, sizeof *x), *y = calloc(8 * 10, sizeof *y);
		const float *in[1] = { x };
		float *out[1] = { y };
		for (int i = 0; i < 3; i++)
			cr_assert_eq(hf_exec_run(e, 8, in, out, &eb), 0, "%s", eb.msg);
		hf_exec_get_stats(e, &st);
		cr_assert_eq(st.runs, 3);
		cr_assert_eq(st.samples, 24);
		cr_assert_eq(st.launches, 3 * hf_exec_launches_per_run(e));
		cr_assert_gt(st.gemm_ns, 0, "profiling gives the linear layers' device time");
		cr_assert_gt(st.wall_ns, 0);
		if (nf)
			cr_assert_gt(st.other_ns, 0, "bias, relu and softmax kernels are timed");
		else
			cr_assert_eq(hf_exec_launches_per_run(e), 1);
		for (int r = 0; r < 8; r++) {
			float sum = 0.0f;
			for (int k = 0; k < 10; k++)
				sum += y[r * 10 + k];
			cr_assert_float_eq(sum, 1.0f, 1e-5f, "row %d of the softmax sums to %g", r,
					   sum);
		}
		free(x);
		free(y);
		hf_exec_free(e);
	}
	model_free(&m);
}

/* The chain kernel with the parameters other devices get (GPUs: work-groups of many
 * work-items over rows of W^T; AVX-512: 8 x 32 tiles) and odd ones (a work-group size of 7,
 * a k-block that does not divide K), so every variant is checked on whatever device runs the
 * tests (FP16 weights with the GPU's). */
Test(exec, chain_kernel_variants)
{
	static const char *const specs[] = { "vw=4 nv=1 mr=4 ls=64 rows", "vw=16 nv=2 mr=8",
					     "vw=4 nv=4 mr=3 ls=7 kc=100 rows", "vw=8 nv=1 mr=1 kc=64" };
	for (int half = 0; half < 2; half++) {
		model m = { 0 };
		add_linear(&m, "fc1", half, 784, 256, true);
		add_linear(&m, "fc2", half, 256, 128, true);
		add_linear(&m, "fc3", half, 128, 10, true);
		build(&m, mlp_json);
		for (size_t i = 0; i < (half ? 1 : sizeof specs / sizeof specs[0]); i++) {
			hf_exec_opts o = { .max_batch = 19, .chain_kernel = specs[i] };
			char what[96];
			snprintf(what, sizeof what, "mlp%s with %s", half ? " f16" : "", specs[i]);
			size_t l = check_runs(m.g, &o, what, "chain[");
			cr_assert_eq(l, 1);
		}
		model_free(&m);
	}
	hf_exec_opts bad = { .chain_kernel = "vw=5" }, unknown = { .chain_kernel = "zz=1" };
	model m = { 0 };
	add_linear(&m, "fc", false, 4, 3, true);
	build(&m, "{\"version\": 1, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 4]}], \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", "
		  "\"shape\": [-1, 3]}], \"ops\": [{\"op\": \"linear\", \"inputs\": [\"x\"], "
		  "\"outputs\": [\"y\"], \"weight\": \"fc.weight\", \"bias\": \"fc.bias\"}]}");
	hf_exec *e = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_exec_new(cl, m.g, &bad, &e, &eb), HF_EINVAL);
	cr_assert_null(e);
	cr_assert_eq(hf_exec_new(cl, m.g, &unknown, &e, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "zz"), "%s", eb.msg);
	model_free(&m);
}

/* The committed Fashion-MNIST model on the 10,000 test images (Debian's dataset-fashion-mnist)
 * against torch's probabilities (tests/data/fashion-mnist/expected.safetensors): every
 * probability within 1e-4, both lowerings, batches of up to 128 and an odd tail. */
static unsigned char *read_gz(const char *path, size_t want)
{
	gzFile f = gzopen(path, "rb");
	cr_assert_not_null(f, "%s: cannot open (install dataset-fashion-mnist)", path);
	unsigned char *buf = malloc(want);
	cr_assert_not_null(buf);
	int n = gzread(f, buf, (unsigned)want);
	gzclose(f);
	cr_assert_eq(n, (int)want, "%s: %d bytes, expected %zu", path, n, want);
	return buf;
}

Test(exec, fashion_mnist_matches_torch)
{
	const char *root = getenv("HF_SOURCE_ROOT");
	char path[1024];
	hf_errbuf eb;
	hf_st *st = NULL, *ex = NULL;
	hf_graph *g = NULL;
	snprintf(path, sizeof path, "%s/runtime/infer/models/fashion-mnist/model.safetensors",
		 root ? root : ".");
	cr_assert_eq(hf_st_open(path, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_graph_new(st, &g, &eb), 0, "%s", eb.msg);
	snprintf(path, sizeof path, "%s/tests/data/fashion-mnist/expected.safetensors",
		 root ? root : ".");
	cr_assert_eq(hf_st_open(path, NULL, &ex, &eb), 0, "%s", eb.msg);
	const hf_st_tensor *probs = hf_st_find(ex, "probs");
	cr_assert(probs && probs->count == 100000, "expected.safetensors: no probs [10000, 10]");
	float *want = malloc(100000 * sizeof *want), *got = malloc(100000 * sizeof *got);
	float *x = malloc((size_t)10000 * 784 * sizeof *x);
	cr_assert(want && got && x);
	hf_st_read_f32(probs, want);
	unsigned char *img = read_gz("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
				     16 + (size_t)10000 * 784);
	for (size_t i = 0; i < (size_t)10000 * 784; i++)
		x[i] = (float)img[16 + i] / 255.0f;
	free(img);
	for (int nf = 0; nf < 2; nf++) {
		hf_exec_opts o = { .max_batch = 128, .no_fusion = nf };
		hf_exec *e = NULL;
		cr_assert_eq(hf_exec_new(cl, g, &o, &e, &eb), 0, "%s", eb.msg);
		size_t agree = 0;
		for (size_t at = 0; at < 10000;) {
			size_t b = 10000 - at < 128 ? 10000 - at : (at / 128) % 2 ? 128 : 97;
			const float *in[1] = { x + at * 784 };
			float *out[1] = { got + at * 10 };
			cr_assert_eq(hf_exec_run(e, b, in, out, &eb), 0, "%s", eb.msg);
			at += b;
		}
		for (size_t i = 0; i < 10000; i++) {
			size_t bg = 0, bw = 0;
			for (size_t k = 0; k < 10; k++) {
				float d = fabsf(got[i * 10 + k] - want[i * 10 + k]);
				cr_assert(d <= 1e-4f, "%s: image %zu class %zu: %g, torch %g",
					  nf ? "no_fusion" : "fused", i, k, got[i * 10 + k],
					  want[i * 10 + k]);
				bg = got[i * 10 + k] > got[i * 10 + bg] ? k : bg;
				bw = want[i * 10 + k] > want[i * 10 + bw] ? k : bw;
			}
			agree += bg == bw;
		}
		cr_assert_geq(agree, 9990, "top-1 agrees with torch on %zu of 10000", agree);
		hf_exec_free(e);
	}
	free(want);
	free(got);
	free(x);
	hf_graph_free(g);
	hf_st_free(ex);
	hf_st_free(st);
}
