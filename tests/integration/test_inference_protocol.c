/* Integration tests: the Open Inference Protocol over real HTTP against hashflopd in inference
 * mode (switched there by a signed instruction): server and model metadata, readiness, id and
 * requested outputs, nested data; every malformed request answered with its status and a clear
 * {"error"} (unknown model 404; wrong shape, datatype, size, name, malformed JSON, a lying
 * binary_data_size or header length, negative or overflowing shapes, duplicate tensor names
 * 400; a body over the cap 413; a full queue 503 with Retry-After) while the node keeps serving
 * correct answers; NaN and Inf inputs accepted and propagated; a model that fails to load
 * reported while the good one serves. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_testinfer.h"
#include "hf_testnet.h"
#include "hf_testnode.h"
#include "hf_util.h"

#define WAIT_MS 60000
#define REQ_MS 60000

typedef hf_testnode node;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

typedef struct expected {
	float *x, *probs;
	size_t n;
} expected;

static void expected_load(expected *e)
{
	char path[1024];
	int64_t shape[8];
	size_t nd, cnt;

	e->x = hf_ti_fmnist_images(&e->n);
	hf_ti_expected_path(path, sizeof path);
	e->probs = hf_ti_st_f32(path, "probs", shape, &nd, &cnt);
	cr_assert(nd == 2 && shape[0] == (int64_t)e->n && shape[1] == HF_TI_OUT);
}

static void expected_free(expected *e)
{
	free(e->x);
	free(e->probs);
}

static int serve(node *n, const char *name, const char *extra, const char *model_config)
{
	hf_ti_node_init(n, name, "idle", NULL, extra, 30000);
	if (model_config)
		hf_ti_model_config(n, HF_TI_MODEL, model_config);
	hf_testnode_trust(n);
	hf_testnode_start(n, NULL);
	int port = hf_ti_port(n);
	hf_ti_switch(n, "inference", hf_ti_seq(n), NULL);
	return port;
}

static long get(int port, const char *path, hf_ti_reply *r)
{
	char url[256];

	hf_ti_url(url, sizeof url, port, path);
	cr_assert(hf_ti_http("GET", url, NULL, NULL, 0, 10000, r), "GET %s: %s", path, r->error);
	return r->status;
}

static json_t *get_json(int port, const char *path, long want)
{
	hf_ti_reply r = { 0 };
	long st = get(port, path, &r);

	cr_assert_eq(st, want, "GET %s: %ld %s", path, st, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "GET %s: not JSON: %s", path, r.body);
	hf_ti_reply_clear(&r);
	return j;
}

/* Image i through a JSON request; its probabilities must match torch's. */
static void expect_correct(int port, const expected *e, size_t i)
{
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	float got[HF_TI_OUT];
	char why[512];
	size_t len;
	char *b = hf_ti_json_body(e->x + i * HF_TI_IN, 1, HF_TI_IN, NULL, false, &len);

	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, 0, REQ_MS, &r), "%s", r.error);
	cr_assert(hf_ti_parse_probs(&r, 1, got, why, sizeof why), "%s", why);
	for (int k = 0; k < HF_TI_OUT; k++)
		cr_assert_leq(fabs((double)got[k] - (double)e->probs[i * HF_TI_OUT + k]), 1e-4, "image %zu", i);
	free(b);
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
}

/* Case-insensitive: does s contain any of the '|'-separated words? */
static bool mentions(const char *s, const char *words)
{
	char w[128];

	for (const char *p = words; *p;) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		snprintf(w, sizeof w, "%.*s", (int)n, p);
		for (const char *q = s; *q; q++)
			if (strncasecmp(q, w, n) == 0)
				return true;
		p += n + (bar ? 1 : 0);
	}
	return false;
}

/* POSTs body (binary when json_len) to model's infer: status `want` (or `alt` when not 0) and
 * a JSON {"error": "..."} that mentions one of words. */
static void expect_error(int port, const char *model, const void *body, size_t len, size_t json_len,
			 long want, long alt, const char *words, const char *what)
{
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	char err[1024];

	cr_assert(hf_ti_post_infer(c, port, model, body, len, json_len, REQ_MS, &r), "%s: %s", what, r.error);
	cr_assert(r.status == want || (alt && r.status == alt), "%s: HTTP %ld (expected %ld): %s", what,
		  r.status, want, r.body);
	cr_assert_not_null(hf_ti_error_text(&r, err, sizeof err), "%s: not {\"error\"}: %s", what, r.body);
	cr_assert(mentions(err, words), "%s: the error does not say what is wrong (%s): %s", what, words, err);
	fprintf(stderr, "# %s -> %ld %s\n", what, r.status, err);
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
}

static void expect_json_error(int port, const char *body, long want, const char *words, const char *what)
{
	expect_error(port, HF_TI_MODEL, body, strlen(body), 0, want, 0, words, what);
}

/* "[v,v,...]" of n copies of v (malloc'ed). */
static char *values(size_t n, const char *v)
{
	size_t vl = strlen(v);
	char *s = malloc(n * (vl + 1) + 3), *p = s;

	cr_assert_not_null(s);
	*p++ = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		memcpy(p, v, vl);
		p += vl;
	}
	*p++ = ']';
	*p = '\0';
	return s;
}

static char *input_json(const char *name, const char *shape, const char *dtype, const char *data)
{
	char *s;

	cr_assert_geq(asprintf(&s, "{\"name\":\"%s\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s}", name,
			       shape, dtype, data), 0);
	return s;
}

static char *request(const char *inputs, const char *tail)
{
	char *s;

	cr_assert_geq(asprintf(&s, "{\"inputs\":[%s]%s}", inputs, tail ? tail : ""), 0);
	return s;
}

Test(inference_protocol, metadata_readiness_and_request_features, .init = setup, .timeout = 900)
{
	expected e = { 0 };
	node n;

	expected_load(&e);
	int port = serve(&n, "oip-meta", NULL, NULL);

	json_t *j = get_json(port, "/v2", 200);
	char *d = json_dumps(j, JSON_COMPACT);
	fprintf(stderr, "# GET /v2: %s\n", d);
	cr_assert_not_null(json_string_value(json_object_get(j, "name")), "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(j, "version")), HF_TEST_VERSION, "%s", d);
	cr_assert(json_is_array(json_object_get(j, "extensions")), "%s", d);
	bool binext = false;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "extensions"), i, v)
		binext |= strstr(json_string_value(v) ? json_string_value(v) : "", "binary") != NULL;
	cr_assert(binext, "the binary tensor data extension is not listed: %s", d);
	free(d);
	json_decref(j);

	j = get_json(port, "/v2/models/" HF_TI_MODEL, 200);
	d = json_dumps(j, JSON_COMPACT);
	fprintf(stderr, "# GET /v2/models/%s: %s\n", HF_TI_MODEL, d);
	cr_assert_str_eq(json_string_value(json_object_get(j, "name")), HF_TI_MODEL, "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(j, "platform")), "hashflop", "%s", d);
	json_t *in = json_array_get(json_object_get(j, "inputs"), 0);
	json_t *out = json_array_get(json_object_get(j, "outputs"), 0);
	cr_assert_eq(json_array_size(json_object_get(j, "inputs")), 1, "%s", d);
	cr_assert_eq(json_array_size(json_object_get(j, "outputs")), 1, "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(in, "name")), "input", "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(in, "datatype")), "FP32", "%s", d);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(in, "shape"), 0)), -1, "%s", d);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(in, "shape"), 1)), HF_TI_IN, "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(out, "name")), "probs", "%s", d);
	cr_assert_str_eq(json_string_value(json_object_get(out, "datatype")), "FP32", "%s", d);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(out, "shape"), 0)), -1, "%s", d);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(out, "shape"), 1)), HF_TI_OUT, "%s", d);
	free(d);
	json_decref(j);
	/* Also under /versions/V/ (any version: the model has one). */
	hf_ti_reply r = { 0 };
	cr_assert_eq(get(port, "/v2/models/" HF_TI_MODEL "/ready", &r), 200, "%s", r.body);
	cr_assert_eq(get(port, "/v2/health/ready", &r), 200, "%s", r.body);
	cr_assert_eq(get(port, "/v2/health/live", &r), 200, "%s", r.body);

	/* Unknown model: 404 with {"error"} on metadata, ready and infer; unknown route 404. */
	char err[512];
	cr_assert_eq(get(port, "/v2/models/no-such-model", &r), 404, "%s", r.body);
	cr_assert_not_null(hf_ti_error_text(&r, err, sizeof err), "%s", r.body);
	cr_assert(mentions(err, "no-such-model|not found|unknown"), "%s", err);
	cr_assert_eq(get(port, "/v2/models/no-such-model/ready", &r), 404, "%s", r.body);
	cr_assert_eq(get(port, "/v2/no-such-thing", &r), 404, "%s", r.body);
	hf_ti_reply_clear(&r);
	char *data = values(HF_TI_IN, "0.5"), *inp = input_json("input", "[1,784]", "FP32", data);
	char *ok_body = request(inp, NULL);
	expect_json_error(port, "{}", 400, "inputs", "no inputs");
	expect_error(port, "no-such-model", ok_body, strlen(ok_body), 0, 404, 0, "no-such-model|not found|unknown",
		     "unknown model");

	/* id echoed, nested data following the shape, outputs by name, request parameters. */
	hf_ti_client *c = hf_ti_client_new();
	char *nested = malloc(40000), *p = nested;
	p += sprintf(p, "{\"id\":\"req-42\",\"parameters\":{\"note\":\"x\"},\"inputs\":[{\"name\":\"input\","
			"\"shape\":[2,784],\"datatype\":\"FP32\",\"data\":[");
	for (size_t row = 0; row < 2; row++) {
		p += sprintf(p, "%s[", row ? "," : "");
		for (size_t k = 0; k < HF_TI_IN; k++)
			p += sprintf(p, "%s%.9g", k ? "," : "", (double)e.x[(7 + row) * HF_TI_IN + k]);
		p += sprintf(p, "]");
	}
	sprintf(p, "]}],\"outputs\":[{\"name\":\"probs\"}]}");
	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, nested, strlen(nested), 0, REQ_MS, &r), "%s", r.error);
	float got[2 * HF_TI_OUT];
	char why[512];
	cr_assert(hf_ti_parse_probs(&r, 2, got, why, sizeof why), "%s", why);
	for (int k = 0; k < 2 * HF_TI_OUT; k++)
		cr_assert_leq(fabs((double)got[k] - (double)e.probs[7 * HF_TI_OUT + k]), 1e-4);
	j = json_loads(r.body, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "req-42", "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_name")), HF_TI_MODEL, "%s", r.body);
	json_decref(j);
	free(nested);
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);

	/* The versions path answers like the plain one. */
	char *vb = request(inp, NULL);
	char url[256];
	hf_ti_url(url, sizeof url, port, "/v2/models/" HF_TI_MODEL "/versions/1/infer");
	const char *hj[] = { "Content-Type: application/json", NULL };
	cr_assert(hf_ti_http("POST", url, hj, vb, strlen(vb), REQ_MS, &r), "%s", r.error);
	cr_assert_eq(r.status, 200, "%s", r.body);
	hf_ti_reply_clear(&r);
	free(vb);
	free(ok_body);
	free(inp);
	free(data);
	expect_correct(port, &e, 0);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}

/* Every malformed request: its status, a clear error, and the node serving correctly after. */
Test(inference_protocol, malformed_requests_get_clear_errors, .init = setup, .timeout = 900)
{
	expected e = { 0 };
	node n;
	char *s, *in1, *in2, *data = values(HF_TI_IN, "0.25"), *d783 = values(783, "0.25");

	expected_load(&e);
	int port = serve(&n, "oip-errors", NULL, NULL);

	expect_json_error(port, "{\"inputs\": [", 400, "json|line|column|parse", "truncated JSON");
	expect_json_error(port, "{\"inputs\": [1, 2,]}", 400, "json|line|column|parse|input", "bad JSON");
	expect_json_error(port, "[1,2,3]", 400, "object|json|inputs", "not an object");
	expect_json_error(port, "", 400, "json|empty|body|inputs", "empty body");
	expect_json_error(port, "{\"inputs\": 5}", 400, "inputs", "inputs not an array");

	in1 = input_json("input", "[1,783]", "FP32", d783);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "shape|783|784", "wrong shape [1, 783]");
	free(s), free(in1);
	in1 = input_json("input", "[784]", "FP32", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "shape|dim|rank", "wrong rank [784]");
	free(s), free(in1);
	in1 = input_json("input", "[1,784]", "FP64", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "datatype|FP64|FP32", "wrong datatype FP64");
	free(s), free(in1);
	in1 = input_json("input", "[1,784]", "FLOAT", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "datatype|FLOAT", "unknown datatype FLOAT");
	free(s), free(in1);
	in1 = input_json("input", "[2,784]", "FP32", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "data|element|count|size|shape", "784 values for [2, 784]");
	free(s), free(in1);
	char *strdata;
	cr_assert_geq(asprintf(&strdata, "[\"x\",%s", d783 + 1), 0);
	in1 = input_json("input", "[1,784]", "FP32", strdata);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "data|number|string|x", "a string among 784 FP32 values");
	free(s), free(in1), free(strdata);
	in1 = input_json("image", "[1,784]", "FP32", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "image|input", "unknown input name");
	free(s), free(in1);
	in1 = input_json("input", "[-1,784]", "FP32", data);
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "shape|negative|-1", "negative shape [-1, 784]");
	free(s), free(in1);
	in1 = input_json("input", "[4294967296,4294967296,4294967296]", "FP32", "[]");
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "shape|overflow|large|element", "overflowing shape");
	free(s), free(in1);
	in1 = input_json("input", "[9223372036854775807,784]", "FP32", "[]");
	s = request(in1, NULL);
	expect_json_error(port, s, 400, "shape|overflow|large|element", "overflowing shape (INT64_MAX)");
	free(s), free(in1);
	in1 = input_json("input", "[1,784]", "FP32", data);
	in2 = input_json("input", "[1,784]", "FP32", data);
	char *two;
	cr_assert_geq(asprintf(&two, "%s,%s", in1, in2), 0);
	s = request(two, NULL);
	expect_json_error(port, s, 400, "duplicate|input", "duplicate input names");
	free(s);
	s = request(in1, ",\"outputs\":[{\"name\":\"probs\"},{\"name\":\"probs\"}]");
	expect_json_error(port, s, 400, "duplicate|output", "duplicate output names");
	free(s);
	s = request(in1, ",\"outputs\":[{\"name\":\"logits\"}]");
	expect_json_error(port, s, 400, "logits|output", "unknown output name");
	free(s), free(two), free(in2);
	s = request(in1, ",\"id\":5");
	expect_json_error(port, s, 400, "id", "id not a string");
	free(s), free(in1);

	/* Binary extension: sizes that do not add up. */
	size_t len, jl;
	char *b = hf_ti_binary_body(e.x, 1, HF_TI_IN, false, &len, &jl);
	expect_error(port, HF_TI_MODEL, b, len - 100, jl, 400, 0, "binary|size|byte", "binary body 100 bytes short");
	char *longer = malloc(len + 64);
	memcpy(longer, b, len);
	memset(longer + len, 0, 64);
	expect_error(port, HF_TI_MODEL, longer, len + 64, jl, 400, 0, "binary|size|byte", "binary body 64 bytes long");
	free(longer);
	expect_error(port, HF_TI_MODEL, b, len, len + 10, 400, 0, "header|length|body",
		     "Inference-Header-Content-Length past the body");
	expect_error(port, HF_TI_MODEL, b, len, jl - 3, 400, 0, "json|line|column|parse|header",
		     "Inference-Header-Content-Length inside the JSON");
	free(b);
	/* More items than the model's max_batch_size (64 in its config.json). */
	b = hf_ti_binary_body(e.x, 65, HF_TI_IN, false, &len, &jl);
	expect_error(port, HF_TI_MODEL, b, len, jl, 400, 0, "max_batch_size|batch", "65 items, max_batch_size 64");
	free(b);
	/* binary_data_size that lies about the shape (and a body that matches the lie). */
	char lie[512];
	int ll = snprintf(lie, sizeof lie, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
				       "\"parameters\":{\"binary_data_size\":3132}}]}");
	char *lb = calloc(1, (size_t)ll + 3132);
	memcpy(lb, lie, (size_t)ll);
	expect_error(port, HF_TI_MODEL, lb, (size_t)ll + 3132, (size_t)ll, 400, 0, "binary|size|byte|shape",
		     "binary_data_size 3132 for [1, 784] FP32");
	free(lb);
	/* A non-numeric header length. */
	{
		hf_ti_reply r = { 0 };
		char url[256];
		const char *h[] = { "Inference-Header-Content-Length: 12abc", NULL };
		hf_ti_url(url, sizeof url, port, "/v2/models/" HF_TI_MODEL "/infer");
		cr_assert(hf_ti_http("POST", url, h, "{}", 2, REQ_MS, &r), "%s", r.error);
		cr_assert_eq(r.status, 400, "%s", r.body);
		hf_ti_reply_clear(&r);
	}
	free(data);
	free(d783);
	/* Still alive and correct. */
	expect_correct(port, &e, 3);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(json_string_value(json_object_get(st, "mode")), "inference");
	json_decref(st);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}

/* NaN and Inf inputs are allowed and propagate to that row's outputs only. */
Test(inference_protocol, nan_and_inf_inputs_are_accepted_and_propagated, .init = setup, .timeout = 900)
{
	expected e = { 0 };
	node n;
	hf_ti_reply r = { 0 };
	float x[3 * HF_TI_IN], got[3 * HF_TI_OUT];
	char why[512];

	expected_load(&e);
	int port = serve(&n, "oip-nan", NULL, NULL);
	memcpy(x, e.x + 20 * HF_TI_IN, sizeof x);
	x[HF_TI_IN + 100] = NAN;
	x[2 * HF_TI_IN + 200] = INFINITY;
	for (int pass = 0; pass < 2; pass++) {   /* binary outputs, then JSON ("NaN" strings) */
		hf_ti_client *c = hf_ti_client_new();
		size_t len, jl;
		void *b = hf_ti_binary_body(x, 3, HF_TI_IN, pass == 0, &len, &jl);
		cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, REQ_MS, &r), "%s", r.error);
		cr_assert(hf_ti_parse_probs(&r, 3, got, why, sizeof why), "pass %d: %s", pass, why);
		for (int k = 0; k < HF_TI_OUT; k++)
			cr_assert_leq(fabs((double)got[k] - (double)e.probs[20 * HF_TI_OUT + k]), 1e-4,
				      "the finite row is unaffected");
		for (int row = 1; row < 3; row++) {
			int nonfinite = 0;
			for (int k = 0; k < HF_TI_OUT; k++)
				nonfinite += !isfinite(got[row * HF_TI_OUT + k]);
			cr_assert_gt(nonfinite, 0, "pass %d: row %d (%s input) has finite outputs only: %.300s", pass,
				     row, row == 1 ? "NaN" : "Inf", r.body);
		}
		free(b);
		hf_ti_client_free(c);
	}
	/* In JSON, as the strings the protocol uses. */
	char *rest = values(HF_TI_IN - 1, "0.5"), *data, *in, *s;
	cr_assert_geq(asprintf(&data, "[\"NaN\",%s", rest + 1), 0);
	free(rest);
	in = input_json("input", "[1,784]", "FP32", data);
	s = request(in, NULL);
	hf_ti_client *c = hf_ti_client_new();
	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, s, strlen(s), 0, REQ_MS, &r), "%s", r.error);
	cr_assert(hf_ti_parse_probs(&r, 1, got, why, sizeof why), "%s (request %.80s)", why, s);
	cr_assert(isnan(got[0]) || !isfinite(got[0]), "%.300s", r.body);
	cr_assert(strstr(r.body, "\"NaN\""), "non-finite outputs are written as \"NaN\": %.300s", r.body);
	hf_ti_client_free(c);
	hf_ti_reply_clear(&r);
	free(s), free(in), free(data);
	expect_correct(port, &e, 4);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}

/* A raw request on a fresh connection; the response's status (-1: none in time). */
static int raw_status(int port, const char *head, const void *body, size_t blen, hf_ti_reply *r)
{
	int fd = hf_test_raw_connect(NULL, (uint16_t)port);
	size_t cap = 1 << 20, off;
	char *buf = malloc(cap);

	cr_assert_geq(fd, 0);
	cr_assert_not_null(buf);
	cr_assert(hf_test_send_str(fd, head));
	/* The server may answer (and close) before taking the whole body: stop sending then. */
	for (size_t sent = 0; body && sent < blen;) {
		size_t k = blen - sent < 65536 ? blen - sent : 65536;
		ssize_t w = send(fd, (const char *)body + sent, k, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		struct pollfd pf = { .fd = fd, .events = POLLIN | POLLOUT };
		if (poll(&pf, 1, 10000) <= 0 || (pf.revents & (POLLIN | POLLHUP | POLLERR)))
			break;
	}
	ssize_t n = hf_ti_raw_response(fd, buf, cap, 30000, &off);
	int st = n > 0 && hf_ti_reply_from_raw(buf, (size_t)n, off, r) ? (int)r->status : -1;
	close(fd);
	free(buf);
	return st;
}

/* max_body_mb 1: a body over it is 413 with {"error"} (with a Content-Length, or sent chunked),
 * one under it is served. */
Test(inference_protocol, body_over_the_cap_is_413, .init = setup, .timeout = 900)
{
	expected e = { 0 };
	node n;
	hf_ti_reply r = { 0 };
	char head[512], err[512];

	expected_load(&e);
	int port = serve(&n, "oip-cap", "\"max_body_mb\": 1", "{\"max_batch_size\": 512}");
	/* Sent: 400 images in binary (1.25 MB). */
	size_t len, jl;
	void *b = hf_ti_binary_body(e.x, 400, HF_TI_IN, true, &len, &jl);
	snprintf(head, sizeof head, "POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\n"
		 "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n"
		 "Content-Length: %zu\r\n\r\n", HF_TI_MODEL, jl, len);
	int st = raw_status(port, head, b, len, &r);
	cr_assert_eq(st, 413, "1.25 MB body: %d %s", st, r.body);
	cr_assert_not_null(hf_ti_error_text(&r, err, sizeof err), "%s", r.body);
	fprintf(stderr, "# 1.25 MB body -> 413 %s\n", err);
	/* Chunked, 1.25 MB in 64 KiB chunks. */
	size_t clen = 0;
	char *chunked = malloc(len + 4096);
	for (size_t off = 0; off < len; off += 65536) {
		size_t k = len - off < 65536 ? len - off : 65536;
		clen += (size_t)sprintf(chunked + clen, "%zx\r\n", k);
		memcpy(chunked + clen, (char *)b + off, k);
		clen += k;
		clen += (size_t)sprintf(chunked + clen, "\r\n");
	}
	clen += (size_t)sprintf(chunked + clen, "0\r\n\r\n");
	snprintf(head, sizeof head, "POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\n"
		 "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n", HF_TI_MODEL, jl);
	st = raw_status(port, head, chunked, clen, &r);
	cr_assert_eq(st, 413, "chunked 1.25 MB body: %d %s", st, r.body);
	free(chunked);
	free(b);
	/* Under the cap: 300 images (0.94 MB) are served. */
	hf_ti_client *c = hf_ti_client_new();
	float *got = malloc(300 * HF_TI_OUT * sizeof *got);
	char why[512];
	b = hf_ti_binary_body(e.x, 300, HF_TI_IN, true, &len, &jl);
	cr_assert_lt(len, 1u << 20);
	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, REQ_MS, &r), "%s", r.error);
	cr_assert(hf_ti_parse_probs(&r, 300, got, why, sizeof why), "%s", why);
	for (size_t k = 0; k < 300 * HF_TI_OUT; k++)
		cr_assert_leq(fabs((double)got[k] - (double)e.probs[k]), 1e-4);
	free(got);
	free(b);
	hf_ti_client_free(c);
	hf_ti_reply_clear(&r);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}

/* A tiny queue (max_queue 2) with a long batching delay: of many concurrent requests, those
 * past the queue are refused 503 with Retry-After and {"error"}; the admitted ones are
 * answered correctly. */
typedef struct qrun {
	const expected *e;
	int port;
	pthread_barrier_t go;
	atomic_uint ok, full, bad;
	char why[512];
} qrun;

static void *q_client(void *arg)
{
	qrun *q = arg;
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	size_t len, jl;
	void *b = hf_ti_binary_body(q->e->x + 30 * HF_TI_IN, 1, HF_TI_IN, true, &len, &jl);
	float got[HF_TI_OUT];
	char why[256], ra[32], err[256];

	pthread_barrier_wait(&q->go);
	if (!hf_ti_post_infer(c, q->port, HF_TI_MODEL, b, len, jl, REQ_MS, &r)) {
		snprintf(q->why, sizeof q->why, "transfer: %s", r.error);
		atomic_fetch_add(&q->bad, 1);
	} else if (r.status == 503) {
		if (hf_ti_header(&r, "Retry-After", ra, sizeof ra) && atoi(ra) > 0 &&
		    hf_ti_error_text(&r, err, sizeof err))
			atomic_fetch_add(&q->full, 1);
		else
			atomic_fetch_add(&q->bad, 1);
	} else if (hf_ti_parse_probs(&r, 1, got, why, sizeof why) &&
		   fabs((double)got[0] - (double)q->e->probs[30 * HF_TI_OUT]) <= 1e-4) {
		atomic_fetch_add(&q->ok, 1);
	} else {
		snprintf(q->why, sizeof q->why, "%ld %s", r.status, why);
		atomic_fetch_add(&q->bad, 1);
	}
	free(b);
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
	return NULL;
}

Test(inference_protocol, full_queue_is_503_with_retry_after, .init = setup, .timeout = 900)
{
	enum { CLIENTS = 24 };
	expected e = { 0 };
	node n;
	qrun q = { 0 };
	pthread_t th[CLIENTS];

	expected_load(&e);
	int port = serve(&n, "oip-queue", "\"threads\": 8",
			 "{\"max_batch_size\": 64, \"max_queue_delay_us\": 1000000, \"max_queue\": 2}");
	q.e = &e;
	q.port = port;
	pthread_barrier_init(&q.go, NULL, CLIENTS);
	for (int i = 0; i < CLIENTS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, q_client, &q), 0);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&q.go);
	fprintf(stderr, "# max_queue 2, %d concurrent requests: %u served, %u refused 503\n", CLIENTS,
		atomic_load(&q.ok), atomic_load(&q.full));
	cr_assert_eq(atomic_load(&q.bad), 0, "%s", q.why);
	cr_assert_gt(atomic_load(&q.full), 0, "no request was refused by a queue of 2");
	cr_assert_gt(atomic_load(&q.ok), 0, "no request was served");
	cr_assert_eq(atomic_load(&q.ok) + atomic_load(&q.full), CLIENTS);
	expect_correct(port, &e, 9);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}

/* A model that fails to load (a truncated safetensors file beside the good model) is reported
 * (its ready 503 with the reason, /v1/status "failed" with it, infer 503) and never crashes the
 * node: the good model serves. */
Test(inference_protocol, a_broken_model_is_reported_and_the_others_serve, .init = setup, .timeout = 900)
{
	expected e = { 0 };
	node n;
	char path[2048];
	hf_ti_reply r = { 0 };

	expected_load(&e);
	hf_ti_node_init(&n, "oip-broken", "idle", NULL, NULL, 30000);
	snprintf(path, sizeof path, "%s/models/broken", n.dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/models/broken/model.safetensors", n.dir);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite("\x40\0\0\0\0\0\0\0{\"w\":{\"dtype\":\"F32\",\"shape\":[4]", 1, 36, f);   /* cut short */
	fclose(f);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	int port = hf_ti_port(&n);
	hf_ti_switch(&n, "inference", hf_ti_seq(&n), NULL);

	cr_assert_eq(get(port, "/v2/models/broken/ready", &r), 503, "%s", r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert(json_is_false(json_object_get(j, "ready")), "%s", r.body);
	const char *why = json_string_value(json_object_get(j, "reason"));
	cr_assert(why && strstr(why, "model.safetensors"), "the reason names the file: %s", r.body);
	fprintf(stderr, "# broken model: ready 503, reason: %s\n", why);
	json_decref(j);
	char *in = input_json("input", "[1,784]", "FP32", "[]"), *s = request(in, NULL);
	hf_ti_client *c = hf_ti_client_new();
	cr_assert(hf_ti_post_infer(c, port, "broken", s, strlen(s), 0, REQ_MS, &r), "%s", r.error);
	cr_assert_eq(r.status, 503, "infer on a broken model: %ld %s", r.status, r.body);
	hf_ti_client_free(c);
	free(s), free(in);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	size_t i;
	json_t *m;
	bool seen = false;
	json_array_foreach(json_object_get(json_object_get(st, "inference"), "models"), i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		if (name && strcmp(name, "broken") == 0) {
			seen = true;
			cr_assert_str_eq(json_string_value(json_object_get(m, "state")), "failed");
			cr_assert_str_neq(json_string_value(json_object_get(m, "reason")), "");
		}
	}
	cr_assert(seen, "the broken model is not in /v1/status");
	json_decref(st);
	cr_assert_eq(get(port, "/v2/models/" HF_TI_MODEL "/ready", &r), 200, "%s", r.body);
	hf_ti_reply_clear(&r);
	expect_correct(port, &e, 12);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	expected_free(&e);
}
