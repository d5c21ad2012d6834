/* Unit tests for hf_oip (OIP v2 request parser and response writer): every error path of the
 * header comment, flat and nested data, binary inputs (unaligned, non-finite, mixed with JSON),
 * lying sizes, the header length, shapes, names, the id, the caps; the writer's output parsed
 * back with jansson and with the parser, floats round-tripping bit for bit. */
#include <criterion/criterion.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_buf.h"
#include "hf_oip.h"

static hf_errbuf eb;

/* The whole body is JSON (no header). */
static int parse(const char *json, const hf_oip_limits *lim, hf_oip_request *req)
{
	hf_errbuf_clear(&eb);
	return hf_oip_parse_request(json, strlen(json), NULL, lim, req, &eb);
}

/* pad bytes of filler, then json, then bin; the header is the JSON's length as text. */
static int parse_bin(const char *json, const void *bin, size_t binlen, const hf_oip_limits *lim,
		     hf_oip_request *req)
{
	size_t jl = strlen(json);
	char *body = malloc(jl + binlen + 1);
	char hdr[32];
	int r;

	cr_assert(body);
	memcpy(body, json, jl);
	if (binlen)
		memcpy(body + jl, bin, binlen);
	snprintf(hdr, sizeof hdr, "%zu", jl);
	hf_errbuf_clear(&eb);
	r = hf_oip_parse_request(body, jl + binlen, hdr, lim, req, &eb);
	free(body);
	return r;
}

static bool req_empty(const hf_oip_request *r)
{
	static const hf_oip_request zero;
	return memcmp(r, &zero, sizeof zero) == 0;
}

/* Parsing fails with code and a message containing want; the request is left empty. */
static void refused_lim(const char *json, const hf_oip_limits *lim, int code, const char *want)
{
	hf_oip_request req;
	int r = parse(json, lim, &req);
	cr_assert_eq(r, code, "%s: got %d (%s), want %d", json, r, eb.msg, code);
	cr_assert(strstr(eb.msg, want), "message \"%s\" lacks \"%s\"", eb.msg, want);
	cr_assert(req_empty(&req));
	hf_oip_request_clear(&req);
}

static void refused(const char *json, int code, const char *want)
{
	refused_lim(json, NULL, code, want);
}

static void refused_bin(const char *json, const void *bin, size_t binlen, const char *want)
{
	hf_oip_request req;
	int r = parse_bin(json, bin, binlen, NULL, &req);
	cr_assert_eq(r, HF_EPARSE, "%s: got %d (%s)", json, r, eb.msg);
	cr_assert(strstr(eb.msg, want), "message \"%s\" lacks \"%s\"", eb.msg, want);
	cr_assert(req_empty(&req));
}

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

#define IN1(shape, dt, data) "{\"inputs\":[{\"name\":\"x\",\"shape\":" shape ",\"datatype\":\"" \
	dt "\",\"data\":" data "}]}"
#define BIN1(shape, dt, size) "{\"inputs\":[{\"name\":\"x\",\"shape\":" shape ",\"datatype\":\"" \
	dt "\",\"parameters\":{\"binary_data_size\":" size "}}]}"

/* ---------------------------------------------------------------- dtypes ---- */

Test(oip_dtype, names_round_trip_and_parse_is_exact)
{
	for (int i = 0; i < HF_OIP_DTYPE_COUNT; i++) {
		hf_oip_dtype d;
		cr_assert(hf_oip_dtype_parse(hf_oip_dtype_name((hf_oip_dtype)i), &d));
		cr_assert_eq((int)d, i);
	}
	cr_assert_str_eq(hf_oip_dtype_name(HF_OIP_FP32), "FP32");
	cr_assert_str_eq(hf_oip_dtype_name(HF_OIP_BYTES), "BYTES");
	cr_assert(!hf_oip_dtype_parse("fp32", NULL));
	cr_assert(!hf_oip_dtype_parse("FP32 ", NULL));
	cr_assert(!hf_oip_dtype_parse("", NULL));
	cr_assert(!hf_oip_dtype_parse("FLOAT32", NULL));
	cr_assert(!hf_oip_dtype_parse(NULL, NULL));
}

/* ------------------------------------------------------------ JSON data ---- */

Test(oip_parse, flat_fp32_with_id_and_outputs)
{
	hf_oip_request req;
	const char *j = "{\"id\":\"42\",\"inputs\":[{\"name\":\"input0\",\"shape\":[2,2],"
		"\"datatype\":\"FP32\",\"data\":[1,2.5,-3e-2,4]}],\"outputs\":[{\"name\":\"out\"}]}";

	cr_assert_eq(parse(j, NULL, &req), 0, "%s", eb.msg);
	cr_assert(req.has_id);
	cr_assert_str_eq(req.id, "42");
	cr_assert_eq(req.ninputs, 1);
	cr_assert_str_eq(req.inputs[0].name, "input0");
	cr_assert_eq(req.inputs[0].dtype, HF_OIP_FP32);
	cr_assert_eq(req.inputs[0].ndim, 2);
	cr_assert_eq(req.inputs[0].shape[0], 2);
	cr_assert_eq(req.inputs[0].shape[1], 2);
	cr_assert_eq(req.inputs[0].count, 4);
	cr_assert(!req.inputs[0].binary);
	cr_assert_eq(req.inputs[0].data[0], 1.0f);
	cr_assert_eq(req.inputs[0].data[1], 2.5f);
	cr_assert_eq(req.inputs[0].data[2], -3e-2f);
	cr_assert_eq(req.inputs[0].data[3], 4.0f);
	cr_assert_eq(req.noutputs, 1);
	cr_assert_str_eq(req.outputs[0].name, "out");
	cr_assert(!req.outputs[0].binary);
	cr_assert(!req.binary_output);
	cr_assert_null(req.parameters);
	hf_oip_request_clear(&req);
	cr_assert(req_empty(&req));
	hf_oip_request_clear(&req); /* twice is fine */
}

Test(oip_parse, no_id_no_outputs)
{
	hf_oip_request req;
	cr_assert_eq(parse(IN1("[1]", "FP32", "[7]"), NULL, &req), 0, "%s", eb.msg);
	cr_assert(!req.has_id);
	cr_assert_str_eq(req.id, "");
	cr_assert_eq(req.noutputs, 0);
	cr_assert_null(req.outputs);
	hf_oip_request_clear(&req);
}

Test(oip_parse, nested_data_follows_shape)
{
	hf_oip_request req;
	cr_assert_eq(parse(IN1("[2,3]", "FP32", "[[1,2,3],[4,5,6]]"), NULL, &req), 0, "%s",
		     eb.msg);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(req.inputs[0].data[i], (float)(i + 1));
	hf_oip_request_clear(&req);
	cr_assert_eq(parse(IN1("[2,1,2]", "FP32", "[[[1,2]],[[3,4]]]"), NULL, &req), 0, "%s",
		     eb.msg);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(req.inputs[0].data[i], (float)(i + 1));
	hf_oip_request_clear(&req);
	/* the same shape, flat */
	cr_assert_eq(parse(IN1("[2,1,2]", "FP32", "[1,2,3,4]"), NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.inputs[0].data[3], 4.0f);
	hf_oip_request_clear(&req);
}

Test(oip_parse, nesting_that_does_not_follow_the_shape)
{
	refused(IN1("[2,3]", "FP32", "[[1,2,3],[4,5]]"), HF_EPARSE,
		"data[1]: 2 elements where shape dimension 1 is 3");
	refused(IN1("[2,3]", "FP32", "[[1,2,3]]"), HF_EPARSE,
		"data: 1 elements where shape dimension 0 is 2");
	refused(IN1("[2,3]", "FP32", "[[1,2,3],4]"), HF_EPARSE,
		"data[1]: expected a list (dimension 1 of the shape), got an integer");
	refused(IN1("[2,2]", "FP32", "[[1,2],[3,[4]]]"), HF_EPARSE, "data[1][1]: a list where");
	refused(IN1("[4]", "FP32", "[1,2,[3],4]"), HF_EPARSE, "data[2]: a list where");
	refused(IN1("[2,2]", "FP32", "[1,2,3,[4]]"), HF_EPARSE, "data[3]: a list where");
	refused(IN1("[2,3]", "FP32", "[1,2,3,4]"), HF_EPARSE,
		"data: 4 elements where the shape holds 6");
	refused(IN1("[2,3]", "FP32", "[1,2,3,4,5,6,7]"), HF_EPARSE,
		"data: 7 elements where the shape holds 6");
	refused(IN1("[3]", "FP32", "[]"), HF_EPARSE, "data: 0 elements where the shape holds 3");
	refused(IN1("[1]", "FP32", "{}"), HF_EPARSE, "x\".data: expected a list, got an object");
	refused(IN1("[1]", "FP32", "1"), HF_EPARSE, "data: expected a list, got an integer");
}

Test(oip_parse, zero_dimensions_and_scalars)
{
	hf_oip_request req;
	cr_assert_eq(parse(IN1("[2,0]", "FP32", "[]"), NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.inputs[0].count, 0);
	cr_assert_not_null(req.inputs[0].data);
	hf_oip_request_clear(&req);
	cr_assert_eq(parse(IN1("[2,0]", "FP32", "[[],[]]"), NULL, &req), 0, "%s", eb.msg);
	hf_oip_request_clear(&req);
	refused(IN1("[2,0]", "FP32", "[[],[1]]"), HF_EPARSE, "data[1]: 1 elements where");
	/* a zero dimension makes any product 0, even of dims that overflow together */
	cr_assert_eq(parse(IN1("[4611686018427387904,4611686018427387904,0]", "FP32", "[]"), NULL,
			   &req), 0, "%s", eb.msg);
	cr_assert_eq(req.inputs[0].count, 0);
	hf_oip_request_clear(&req);
	/* a scalar: shape [], one element */
	cr_assert_eq(parse(IN1("[]", "FP32", "[3.5]"), NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.inputs[0].ndim, 0);
	cr_assert_eq(req.inputs[0].count, 1);
	cr_assert_eq(req.inputs[0].data[0], 3.5f);
	hf_oip_request_clear(&req);
	refused(IN1("[]", "FP32", "[1,2]"), HF_EPARSE, "2 elements where the shape holds 1");
}

Test(oip_parse, non_finite_spellings)
{
	hf_oip_request req;
	cr_assert_eq(parse(IN1("[5]", "FP32", "[\"NaN\",\"Inf\",\"-Inf\",\"Infinity\",\"-Infinity\"]"),
			   NULL, &req), 0, "%s", eb.msg);
	cr_assert(isnan(req.inputs[0].data[0]));
	cr_assert(isinf(req.inputs[0].data[1]) && req.inputs[0].data[1] > 0);
	cr_assert(isinf(req.inputs[0].data[2]) && req.inputs[0].data[2] < 0);
	cr_assert(isinf(req.inputs[0].data[3]) && req.inputs[0].data[3] > 0);
	cr_assert(isinf(req.inputs[0].data[4]) && req.inputs[0].data[4] < 0);
	hf_oip_request_clear(&req);
	refused(IN1("[2]", "FP32", "[1,\"nan\"]"), HF_EPARSE,
		"data[1] (element 1): expected a number (or \"NaN\"");
	refused(IN1("[2]", "FP32", "[1,\"1.5\"]"), HF_EPARSE, "got a string");
	refused(IN1("[2]", "FP32", "[1,\"+Inf\"]"), HF_EPARSE, "got a string");
}

Test(oip_parse, fp32_element_types_refused_with_index)
{
	refused(IN1("[2,2]", "FP32", "[[1,2],[true,4]]"), HF_EPARSE,
		"inputs[0] \"x\".data[1][0] (element 2): expected a number");
	refused(IN1("[2,2]", "FP32", "[[1,2],[true,4]]"), HF_EPARSE, "for FP32, got a boolean");
	refused(IN1("[3]", "FP32", "[1,2,null]"), HF_EPARSE, "data[2] (element 2)");
	refused(IN1("[3]", "FP32", "[1,2,null]"), HF_EPARSE, "got null");
	refused(IN1("[3]", "FP32", "[{},2,3]"), HF_EPARSE, "data[0] (element 0)");
	refused(IN1("[3]", "FP32", "[false,2,3]"), HF_EPARSE, "got a boolean");
}

Test(oip_parse, number_conversion_edges)
{
	hf_oip_request req;
	/* beyond the float range: +-inf as IEEE rounding gives; just past FLT_MAX (below the
	 * rounding midpoint 2^128 - 2^103) rounds to FLT_MAX; integers round once */
	cr_assert_eq(parse(IN1("[8]", "FP32", "[1e39,-1e300,3.4028235e38,3.40282356e38,"
			       "3.4028236e38,-3.40282356e38,9007199791611905,16777217]"), NULL,
			   &req), 0, "%s", eb.msg);
	cr_assert(isinf(req.inputs[0].data[0]) && req.inputs[0].data[0] > 0);
	cr_assert(isinf(req.inputs[0].data[1]) && req.inputs[0].data[1] < 0);
	cr_assert_eq(req.inputs[0].data[2], FLT_MAX);
	cr_assert_eq(req.inputs[0].data[3], FLT_MAX);
	cr_assert(isinf(req.inputs[0].data[4]));
	cr_assert_eq(req.inputs[0].data[5], -FLT_MAX);
	/* 2^53 + 2^29 + 1: through a double it would tie down to 2^53; once rounded, 2^53 + 2^30 */
	cr_assert_eq(req.inputs[0].data[6], 9007200328482816.0f);
	cr_assert_eq(req.inputs[0].data[7], 16777216.0f);
	hf_oip_request_clear(&req);
	/* exactly the midpoint 2^128 - 2^103 ties to even: inf; the double below it: FLT_MAX */
	cr_assert_eq(parse(IN1("[2]", "FP32", "[3.4028235677973366e38,-3.4028235677973362e38]"),
			   NULL, &req), 0, "%s", eb.msg);
	cr_assert(isinf(req.inputs[0].data[0]));
	cr_assert_eq(req.inputs[0].data[1], -FLT_MAX);
	hf_oip_request_clear(&req);
	/* underflow to subnormals and to 0 */
	cr_assert_eq(parse(IN1("[3]", "FP32", "[1.401298464324817e-45,1e-50,-1e-50]"), NULL, &req),
		     0, "%s", eb.msg);
	cr_assert_eq(bits(req.inputs[0].data[0]), 1u);
	cr_assert_eq(bits(req.inputs[0].data[1]), 0u);
	cr_assert_eq(bits(req.inputs[0].data[2]), 0x80000000u);
	hf_oip_request_clear(&req);
	/* a real JSON cannot hold as a double is refused by the JSON parser */
	refused(IN1("[1]", "FP32", "[1e400]"), HF_EPARSE, "JSON: real number overflow");
}

Test(oip_parse, other_datatypes_are_checked_not_decoded)
{
	hf_oip_request req;
	const char *j = "{\"inputs\":["
		"{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]},"
		"{\"name\":\"u8\",\"shape\":[2],\"datatype\":\"UINT8\",\"data\":[0,255]},"
		"{\"name\":\"i8\",\"shape\":[2],\"datatype\":\"INT8\",\"data\":[-128,127]},"
		"{\"name\":\"u64\",\"shape\":[1],\"datatype\":\"UINT64\",\"data\":[9223372036854775807]},"
		"{\"name\":\"i64\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[-9223372036854775808]},"
		"{\"name\":\"f16\",\"shape\":[2],\"datatype\":\"FP16\",\"data\":[1.5,\"NaN\"]},"
		"{\"name\":\"f64\",\"shape\":[1,2],\"datatype\":\"FP64\",\"data\":[[1e300,2]]},"
		"{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"a\",\"\"]}]}";

	cr_assert_eq(parse(j, NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.ninputs, 8);
	for (size_t i = 0; i < req.ninputs; i++)
		cr_assert_null(req.inputs[i].data, "%s", req.inputs[i].name);
	cr_assert_eq(req.inputs[0].dtype, HF_OIP_BOOL);
	cr_assert_eq(req.inputs[6].count, 2);
	cr_assert_eq(req.inputs[7].dtype, HF_OIP_BYTES);
	hf_oip_request_clear(&req);

	refused(IN1("[2]", "BOOL", "[true,1]"), HF_EPARSE, "data[1] (element 1): expected a boolean");
	refused(IN1("[1]", "UINT8", "[256]"), HF_EPARSE, "out of the datatype's range");
	refused(IN1("[1]", "UINT32", "[-1]"), HF_EPARSE, "negative for an unsigned type");
	refused(IN1("[1]", "INT8", "[-129]"), HF_EPARSE, "out of the datatype's range");
	refused(IN1("[1]", "INT16", "[32768]"), HF_EPARSE, "out of the datatype's range");
	refused(IN1("[1]", "INT32", "[1.5]"), HF_EPARSE, "expected an integer for INT32");
	refused(IN1("[1]", "BYTES", "[1]"), HF_EPARSE, "expected a string for BYTES");
	refused(IN1("[1]", "FP64", "[true]"), HF_EPARSE, "for FP64, got a boolean");
	refused(IN1("[3]", "INT32", "[1,2]"), HF_EPARSE, "2 elements where the shape holds 3");
}

/* --------------------------------------------------------------- shapes ---- */

Test(oip_parse, shapes)
{
	hf_oip_limits lim = { .max_elements = 100, .max_total = 150 };

	refused(IN1("[2,-1]", "FP32", "[]"), HF_EPARSE,
		"inputs[0] \"x\".shape[1]: expected a non-negative integer, got a negative one");
	refused(IN1("[1.0]", "FP32", "[1]"), HF_EPARSE, "shape[0]: expected a non-negative "
		"integer, got a real number");
	refused(IN1("[\"2\"]", "FP32", "[1,2]"), HF_EPARSE, "got a string");
	refused(IN1("4", "FP32", "[1]"), HF_EPARSE, "shape: expected a list, got an integer");
	refused(IN1("[1,1,1,1,1,1,1,1,1]", "FP32", "[1]"), HF_ETOOBIG,
		"shape: 9 dimensions, more than 8");
	refused(IN1("[4611686018427387904,4611686018427387904]", "FP32", "[]"), HF_ETOOBIG,
		"elements (the cap per tensor)");
	refused(IN1("[9223372036854775807,9223372036854775807,9223372036854775807]", "FP32", "[]"),
		HF_ETOOBIG, "the cap per tensor");
	refused(IN1("[4096,4097]", "FP32", "[]"), HF_ETOOBIG, "more than 16777216 elements");
	refused(IN1("[99999999999999999999]", "FP32", "[]"), HF_EPARSE, "JSON: too big integer");
	/* caps from the limits, at and past their edge */
	refused_lim(IN1("[101]", "UINT8", "[]"), &lim, HF_ETOOBIG, "more than 100 elements");
	refused_lim("{\"inputs\":[{\"name\":\"a\",\"shape\":[100],\"datatype\":\"BOOL\","
		    "\"parameters\":{\"binary_data_size\":100}},{\"name\":\"b\",\"shape\":[51],"
		    "\"datatype\":\"BOOL\",\"data\":[]}]}", &lim, HF_ETOOBIG,
		    "inputs[1] \"b\".shape: the inputs hold more than 150 elements");
	{
		hf_oip_request req;
		char body[1000];
		int n = snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"a\",\"shape\":[10,10],"
				 "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":400}},"
				 "{\"name\":\"b\",\"shape\":[50],\"datatype\":\"BOOL\","
				 "\"parameters\":{\"binary_data_size\":50}}]}");
		char *full = calloc(1, (size_t)n + 450);
		char hdr[16];
		memcpy(full, body, (size_t)n);
		snprintf(hdr, sizeof hdr, "%d", n);
		cr_assert_eq(hf_oip_parse_request(full, (size_t)n + 450, hdr, &lim, &req, &eb), 0,
			     "%s", eb.msg);
		cr_assert_eq(req.inputs[0].count + req.inputs[1].count, 150);
		hf_oip_request_clear(&req);
		free(full);
	}
}

/* ---------------------------------------------------- fields and names ---- */

Test(oip_parse, malformed_json_reports_line_and_column)
{
	refused("{\n  \"inputs\": [,]\n}", HF_EPARSE, "(line 2, column");
	refused("", HF_EPARSE, "JSON:");
	refused("{\"inputs\":[]} x", HF_EPARSE, "JSON: end of file expected");
	refused("{\"id\":\"a\",\"id\":\"b\",\"inputs\":[]}", HF_EPARSE, "JSON: duplicate object key");
	refused("{\"inputs\":[{\"name\":\"x\",\"name\":\"y\"}]}", HF_EPARSE, "duplicate object key");
	refused("[1]", HF_EPARSE, "request: expected a JSON object, got a list");
	refused("\"s\"", HF_EPARSE, "JSON: '[' or '{' expected");
	refused("{\"inputs\":[{\"name\":\"a\\u0000b\"}]}", HF_EPARSE, "JSON:");
}

Test(oip_parse, unknown_keys_are_refused)
{
	refused("{\"inputs\":[],\"model_name\":\"m\"}", HF_EPARSE,
		"request: unknown key \"model_name\" (allowed: id, parameters, inputs, outputs)");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
		"\"contents\":{}}]}", HF_EPARSE, "inputs[0]: unknown key \"contents\" (allowed: "
		"name, shape, datatype, parameters, data)");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[{\"name\":\"y\",\"classification\":3}]}", HF_EPARSE,
		"outputs[0]: unknown key \"classification\" (allowed: name, parameters)");
	/* the key is cleaned before it is quoted */
	refused("{\"inputs\":[],\"a\\u001bb\":1}", HF_EPARSE, "unknown key \"a?b\"");
}

Test(oip_parse, missing_and_mistyped_fields)
{
	refused("{}", HF_EPARSE, "request: \"inputs\" is missing");
	refused("{\"inputs\":{}}", HF_EPARSE, "inputs: expected a list, got an object");
	refused("{\"inputs\":[]}", HF_EPARSE, "inputs: empty");
	refused("{\"inputs\":[1]}", HF_EPARSE, "inputs[0]: expected an object, got an integer");
	refused("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", HF_EPARSE,
		"inputs[0]: \"name\" is missing");
	refused("{\"inputs\":[{\"name\":5,\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
		HF_EPARSE, "inputs[0].name: expected a string, got an integer");
	refused("{\"inputs\":[{\"name\":\"\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
		HF_EPARSE, "inputs[0].name: empty");
	refused("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}", HF_EPARSE,
		"inputs[0] \"x\": \"shape\" is missing");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}", HF_EPARSE,
		"inputs[0] \"x\": \"datatype\" is missing");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":32,\"data\":[1]}]}",
		HF_EPARSE, "datatype: expected a string, got an integer");
	refused(IN1("[1]", "FP33", "[1]"), HF_EPARSE, "datatype: unknown \"FP33\" (expected BOOL");
	refused(IN1("[1]", "fp32", "[1]"), HF_EPARSE, "datatype: unknown \"fp32\"");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}", HF_EPARSE,
		"inputs[0] \"x\": no \"data\" and no parameters.binary_data_size");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
		"\"parameters\":{\"binary_data_size\":4}}]}", HF_EPARSE,
		"inputs[0] \"x\": both \"data\" and parameters.binary_data_size");
	refused("{\"id\":7,\"inputs\":[]}", HF_EPARSE, "id: expected a string, got an integer");
	refused("{\"id\":null,\"inputs\":[]}", HF_EPARSE, "id: expected a string, got null");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":{}}", HF_EPARSE, "outputs: expected a list, got an object");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[]}", HF_EPARSE, "outputs: empty");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[\"y\"]}", HF_EPARSE, "outputs[0]: expected an object, got a string");
	refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[{\"parameters\":{}}]}", HF_EPARSE, "outputs[0]: \"name\" is missing");
}

Test(oip_parse, names)
{
	hf_oip_request req;
	char j[512], name[80];

	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(j, sizeof j, IN1("[1]", "FP32", "[1]"));
	snprintf(j, sizeof j, "{\"inputs\":[{\"name\":\"%s\",\"shape\":[1],\"datatype\":\"FP32\","
		 "\"data\":[1]}]}", name);
	cr_assert_eq(parse(j, NULL, &req), 0, "%s", eb.msg);
	cr_assert_str_eq(req.inputs[0].name, name);
	hf_oip_request_clear(&req);
	strcat(name, "n");
	snprintf(j, sizeof j, "{\"inputs\":[{\"name\":\"%s\",\"shape\":[1],\"datatype\":\"FP32\","
		 "\"data\":[1]}]}", name);
	refused(j, HF_EPARSE, "inputs[0].name: 64 bytes, longer than 63");
	refused("{\"inputs\":[{\"name\":\"a\\nb\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
		HF_EPARSE, "inputs[0].name: contains control characters (\"a?b\")");
	refused("{\"inputs\":[{\"name\":\"a\\u0085b\",\"shape\":[1],\"datatype\":\"FP32\","
		"\"data\":[1]}]}", HF_EPARSE, "contains control characters");
	/* UTF-8 names are fine */
	cr_assert_eq(parse("{\"inputs\":[{\"name\":\"\xc3\xa9t\xc3\xa9\",\"shape\":[1],\"datatype\":"
			   "\"FP32\",\"data\":[1]}]}", NULL, &req), 0, "%s", eb.msg);
	cr_assert_str_eq(req.inputs[0].name, "\xc3\xa9t\xc3\xa9");
	hf_oip_request_clear(&req);
}

Test(oip_parse, duplicate_names_refused)
{
	refused("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
		"{\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
		"{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[1]}]}", HF_EPARSE,
		"inputs[2]: \"a\" again (also inputs[0])");
	refused("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[{\"name\":\"y\"},{\"name\":\"y\",\"parameters\":{\"binary_data\":true}}]}",
		HF_EPARSE, "outputs[1]: \"y\" again (also outputs[0])");
}

Test(oip_parse, tensor_count_caps)
{
	hf_oip_limits lim = { .max_tensors = 2 };
	const char *three = "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\","
		"\"data\":[1]},{\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
		"{\"name\":\"c\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}";
	const char *outs = "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\","
		"\"data\":[1]}],\"outputs\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}";
	hf_oip_request req;

	refused_lim(three, &lim, HF_ETOOBIG, "inputs: 3 inputs, more than 2");
	refused_lim(outs, &lim, HF_ETOOBIG, "outputs: 3 outputs, more than 2");
	cr_assert_eq(parse(three, NULL, &req), 0, "%s", eb.msg); /* default: 16 */
	hf_oip_request_clear(&req);
	cr_assert_eq(parse(outs, NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.noutputs, 3);
	hf_oip_request_clear(&req);
}

Test(oip_parse, json_size_cap)
{
	hf_oip_limits lim = { .max_json = 100 };
	char j[200];
	hf_oip_request req;
	size_t n;

	snprintf(j, sizeof j, IN1("[1]", "FP32", "[1]"));
	n = strlen(j);
	memset(j + n, ' ', 100 - n);
	j[100] = '\0';
	cr_assert_eq(parse(j, &lim, &req), 0, "%s", eb.msg);
	hf_oip_request_clear(&req);
	strcat(j, " ");
	refused_lim(j, &lim, HF_ETOOBIG, "body: 101 bytes of JSON, more than 100");
}

Test(oip_parse, parameters)
{
	hf_oip_request req;
	const char *j = "{\"parameters\":{\"binary_data_output\":true,\"priority\":3,\"tag\":\"t\"},"
		"\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
		"\"parameters\":{\"note\":\"x\"}}],\"outputs\":[{\"name\":\"p\"},{\"name\":\"q\","
		"\"parameters\":{\"binary_data\":false}},{\"name\":\"r\",\"parameters\":{}}]}";

	cr_assert_eq(parse(j, NULL, &req), 0, "%s", eb.msg);
	cr_assert(req.binary_output);
	cr_assert_not_null(req.parameters);
	cr_assert_eq(json_integer_value(json_object_get(req.parameters, "priority")), 3);
	cr_assert(req.outputs[0].binary);
	cr_assert(!req.outputs[1].binary);
	cr_assert(req.outputs[2].binary);
	hf_oip_request_clear(&req);

	cr_assert_eq(parse("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\","
			   "\"data\":[1]}],\"outputs\":[{\"name\":\"p\",\"parameters\":"
			   "{\"binary_data\":true}},{\"name\":\"q\"}]}", NULL, &req), 0, "%s", eb.msg);
	cr_assert(!req.binary_output);
	cr_assert(req.outputs[0].binary);
	cr_assert(!req.outputs[1].binary);
	hf_oip_request_clear(&req);

	refused("{\"parameters\":[],\"inputs\":[]}", HF_EPARSE,
		"request.parameters: expected an object, got a list");
	refused("{\"parameters\":{\"a\":{}},\"inputs\":[]}", HF_EPARSE,
		"request.parameters.a: expected a string, number or boolean, got an object");
	refused("{\"parameters\":{\"a\":null},\"inputs\":[]}", HF_EPARSE, "got null");
	refused("{\"parameters\":{\"binary_data_output\":1},\"inputs\":[]}", HF_EPARSE,
		"request.parameters.binary_data_output: expected a boolean, got an integer");
	refused("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
		"\"parameters\":5}]}", HF_EPARSE, "inputs[0] \"a\".parameters: expected an object");
	refused("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
		"\"outputs\":[{\"name\":\"p\",\"parameters\":{\"binary_data\":\"yes\"}}]}", HF_EPARSE,
		"outputs[0] \"p\".parameters.binary_data: expected a boolean, got a string");
	refused(BIN1("[1]", "FP32", "-4"), HF_EPARSE, "binary_data_size: expected a non-negative "
		"integer, got a negative one");
	refused(BIN1("[1]", "FP32", "4.0"), HF_EPARSE, "got a real number");
	refused(BIN1("[1]", "FP32", "\"4\""), HF_EPARSE, "got a string");
}

Test(oip_parse, id_echo_cleaned_and_capped)
{
	hf_oip_request req;
	char j[1024], id[300];

	cr_assert_eq(parse("{\"id\":\"a\\u0001b\\nc\\u0085d\\u001b[31m\xc3\xa9\",\"inputs\":"
			   "[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
			   NULL, &req), 0, "%s", eb.msg);
	cr_assert(req.has_id);
	cr_assert_str_eq(req.id, "a?b?c?d?[31m\xc3\xa9");
	hf_oip_request_clear(&req);
	cr_assert_eq(parse("{\"id\":\"\",\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":"
			   "\"FP32\",\"data\":[1]}]}", NULL, &req), 0, "%s", eb.msg);
	cr_assert(req.has_id);
	cr_assert_str_eq(req.id, "");
	hf_oip_request_clear(&req);
	for (size_t n = 254; n <= 256; n++) {
		memset(id, 'i', n);
		id[n] = '\0';
		snprintf(j, sizeof j, "{\"id\":\"%s\",\"inputs\":[{\"name\":\"x\",\"shape\":[1],"
			 "\"datatype\":\"FP32\",\"data\":[1]}]}", id);
		if (n < HF_OIP_MAX_ID) {
			cr_assert_eq(parse(j, NULL, &req), 0, "%s", eb.msg);
			cr_assert_str_eq(req.id, id);
			hf_oip_request_clear(&req);
		} else {
			refused(j, HF_ETOOBIG, "id: 256 bytes, longer than 255");
		}
	}
}

/* --------------------------------------------------------------- binary ---- */

Test(oip_binary, fp32_bits_exact_at_unaligned_offsets)
{
	/* NaN with a payload, -NaN, Inf, -Inf, -0, the smallest and largest subnormal, FLT_MAX */
	static const uint32_t v[] = { 0x7fc12345u, 0xffc00001u, 0x7f800000u, 0xff800000u,
		0x80000000u, 0x00000001u, 0x007fffffu, 0x7f7fffffu };
	uint8_t bin[sizeof v];
	char j[256];

	for (size_t i = 0; i < 8; i++) {
		bin[4 * i] = (uint8_t)v[i];
		bin[4 * i + 1] = (uint8_t)(v[i] >> 8);
		bin[4 * i + 2] = (uint8_t)(v[i] >> 16);
		bin[4 * i + 3] = (uint8_t)(v[i] >> 24);
	}
	/* JSON lengths of every residue mod 4, so the binary part starts at every alignment */
	for (int pad = 0; pad < 4; pad++) {
		hf_oip_request req;
		int n = snprintf(j, sizeof j, BIN1("[2,4]", "FP32", "32"));
		memset(j + n, ' ', (size_t)pad);
		j[n + pad] = '\0';
		cr_assert_eq(parse_bin(j, bin, sizeof bin, NULL, &req), 0, "%s", eb.msg);
		cr_assert(req.inputs[0].binary);
		cr_assert_eq(req.inputs[0].count, 8);
		for (size_t i = 0; i < 8; i++)
			cr_assert_eq(bits(req.inputs[0].data[i]), v[i], "pad %d element %zu", pad, i);
		hf_oip_request_clear(&req);
	}
}

Test(oip_binary, mixed_json_and_binary_in_input_order)
{
	const char *j = "{\"inputs\":["
		"{\"name\":\"u\",\"shape\":[3],\"datatype\":\"UINT8\",\"parameters\":{\"binary_data_size\":3}},"
		"{\"name\":\"j\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[0.5,\"-Inf\"]},"
		"{\"name\":\"f\",\"shape\":[1,2],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":8}},"
		"{\"name\":\"e\",\"shape\":[0],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":0}},"
		"{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"parameters\":{\"binary_data_size\":2}}]}";
	const uint8_t bin[] = { 7, 8, 9, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x80, 0x7f, 1, 0 };
	hf_oip_request req;

	cr_assert_eq(parse_bin(j, bin, sizeof bin, NULL, &req), 0, "%s", eb.msg);
	cr_assert_eq(req.ninputs, 5);
	cr_assert(req.inputs[0].binary);
	cr_assert_null(req.inputs[0].data);
	cr_assert(!req.inputs[1].binary);
	cr_assert_eq(req.inputs[1].data[0], 0.5f);
	cr_assert(isinf(req.inputs[1].data[1]));
	cr_assert(req.inputs[2].binary);
	cr_assert_eq(req.inputs[2].data[0], 1.5f);
	cr_assert(isinf(req.inputs[2].data[1]));
	cr_assert_eq(req.inputs[3].count, 0);
	cr_assert(req.inputs[4].binary);
	hf_oip_request_clear(&req);
}

Test(oip_binary, lying_sizes)
{
	uint8_t bin[64] = { 0 };

	/* binary_data_size against the shape */
	refused_bin(BIN1("[2]", "FP32", "12"), bin, 12, "binary_data_size: 12 bytes where 2 FP32 "
		    "elements take 8");
	refused_bin(BIN1("[2]", "FP32", "4"), bin, 4, "4 bytes where 2 FP32 elements take 8");
	refused_bin(BIN1("[2]", "INT64", "8"), bin, 8, "8 bytes where 2 INT64 elements take 16");
	/* sizes against the body */
	refused_bin(BIN1("[2]", "FP32", "8"), bin, 4, "binary_data_size 8 runs past the body "
		    "(4 bytes left of 4 after the JSON)");
	refused_bin(BIN1("[2]", "FP32", "8"), bin, 9, "body: 9 bytes after the JSON, but the "
		    "binary inputs' binary_data_size add up to 8");
	refused_bin(IN1("[1]", "FP32", "[1]"), bin, 4, "body: 4 bytes after the JSON, but the "
		    "binary inputs' binary_data_size add up to 0 (no input has binary_data_size)");
	refused_bin("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":"
		    "{\"binary_data_size\":4}},{\"name\":\"b\",\"shape\":[2],\"datatype\":\"FP32\","
		    "\"parameters\":{\"binary_data_size\":8}}]}", bin, 10,
		    "inputs[1] \"b\": binary_data_size 8 runs past the body (6 bytes left of 10");
	refused_bin("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":"
		    "{\"binary_data_size\":4}},{\"name\":\"b\",\"shape\":[2],\"datatype\":\"FP32\","
		    "\"parameters\":{\"binary_data_size\":8}}]}", bin, 13, "13 bytes after the JSON, "
		    "but the binary inputs' binary_data_size add up to 12");
	/* a huge size is compared without overflow */
	refused_bin(BIN1("[1]", "BYTES", "9223372036854775807"), bin, 8, "runs past the body");
	/* binary data without the header: the whole body is JSON */
	refused(BIN1("[1]", "FP32", "4"), HF_EPARSE,
		"binary_data_size without an Inference-Header-Content-Length header");
	/* BOOL bytes are 0 or 1 */
	bin[1] = 2;
	refused_bin(BIN1("[3]", "BOOL", "3"), bin, 3, "binary BOOL element 1 is 2 (0 or 1)");
}

Test(oip_binary, bytes_framing)
{
	hf_oip_request req;
	const uint8_t ok[] = { 3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 1, 0, 0, 0, 'z' };
	const uint8_t past[] = { 3, 0, 0, 0, 'a', 'b', 'c', 9, 0, 0, 0, 'z' };
	const uint8_t cut[] = { 3, 0, 0, 0, 'a', 'b', 'c', 1, 0 };
	const uint8_t extra[] = { 1, 0, 0, 0, 'a', 1, 0, 0, 0, 'b', 'c', 'd' };
	const uint8_t big[] = { 1, 0, 0, 0, 'a', 0xff, 0xff, 0xff, 0xff, 'b' };

	cr_assert_eq(parse_bin(BIN1("[3]", "BYTES", "16"), ok, sizeof ok, NULL, &req), 0, "%s",
		     eb.msg);
	cr_assert_null(req.inputs[0].data);
	cr_assert_eq(req.inputs[0].count, 3);
	hf_oip_request_clear(&req);
	refused_bin(BIN1("[2]", "BYTES", "12"), past, sizeof past,
		    "binary BYTES element 1: 9 bytes run past binary_data_size 12");
	refused_bin(BIN1("[2]", "BYTES", "9"), cut, sizeof cut,
		    "binary BYTES element 1: its 4-byte length runs past binary_data_size 9");
	refused_bin(BIN1("[2]", "BYTES", "12"), extra, sizeof extra,
		    "binary BYTES: 2 elements take 10 bytes of binary_data_size 12");
	refused_bin(BIN1("[2]", "BYTES", "10"), big, sizeof big,
		    "4294967295 bytes run past binary_data_size 10");
	refused_bin(BIN1("[3]", "BYTES", "11"), ok, 11, "11 bytes cannot hold 3 BYTES elements");
}

Test(oip_binary, header_length)
{
	const char *j = BIN1("[1]", "FP32", "4");
	size_t jl = strlen(j);
	char *body = malloc(jl + 4), hdr[64];
	static const char *const bad[] = { "", "abc", "-1", "+5", " 5", "5 ", "5x", "0x10",
		"1e3", "\xc3\xa9" };
	hf_oip_request req;

	memcpy(body, j, jl);
	memset(body + jl, 0, 4);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(hf_oip_parse_request(body, jl + 4, bad[i], NULL, &req, &eb), HF_EPARSE,
			     "\"%s\"", bad[i]);
		cr_assert(strstr(eb.msg, "Inference-Header-Content-Length: expected a decimal byte "
				 "count"), "%s", eb.msg);
		cr_assert(req_empty(&req));
	}
	/* a control character in the value is cleaned before it is quoted */
	hf_oip_parse_request(body, jl + 4, "1\n2", NULL, &req, &eb);
	cr_assert(strstr(eb.msg, "got \"1?2\""), "%s", eb.msg);
	snprintf(hdr, sizeof hdr, "%zu", jl + 5);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, hdr, NULL, &req, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "is past the end of the"), "%s", eb.msg);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, "99999999999999999999999", NULL, &req,
					  &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "Inference-Header-Content-Length over 18446744073709551615 is "
			 "past the end"), "%s", eb.msg);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, "18446744073709551615", NULL, &req, &eb),
		     HF_EPARSE);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, "0", NULL, &req, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "JSON:"), "%s", eb.msg);
	/* the header short of the JSON: the JSON is cut */
	snprintf(hdr, sizeof hdr, "%zu", jl - 1);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, hdr, NULL, &req, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "JSON:"), "%s", eb.msg);
	/* leading zeros are digits too */
	snprintf(hdr, sizeof hdr, "000%zu", jl);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, hdr, NULL, &req, &eb), 0, "%s", eb.msg);
	hf_oip_request_clear(&req);
	/* the header equal to the body: no binary part, which an input then lacks */
	snprintf(hdr, sizeof hdr, "%zu", jl + 4);
	cr_assert_eq(hf_oip_parse_request(body, jl + 4, hdr, NULL, &req, &eb), HF_EPARSE);
	free(body);
	/* a JSON-only body with the header equal to its length is fine */
	j = IN1("[1]", "FP32", "[1]");
	snprintf(hdr, sizeof hdr, "%zu", strlen(j));
	cr_assert_eq(hf_oip_parse_request(j, strlen(j), hdr, NULL, &req, &eb), 0, "%s", eb.msg);
	hf_oip_request_clear(&req);
}

Test(oip_parse, bad_arguments)
{
	hf_oip_request req;
	cr_assert_eq(hf_oip_parse_request(NULL, 5, NULL, NULL, &req, &eb), HF_EINVAL);
	cr_assert_eq(hf_oip_parse_request("{}", 2, NULL, NULL, NULL, &eb), HF_EINVAL);
	cr_assert_eq(hf_oip_parse_request(NULL, 0, NULL, NULL, &req, NULL), HF_EPARSE);
	hf_oip_request_clear(NULL);
}

/* ------------------------------------------------------------- response ---- */

static json_t *load(const char *s, size_t n)
{
	json_error_t jerr;
	json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(j, "%s at %d: %.*s", jerr.text, jerr.position, (int)n, s);
	return j;
}

/* A JSON element back as a float: the way a client reads it. */
static float jfloat(const json_t *v)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strcmp(s, "NaN") == 0)
			return NAN;
		if (strcmp(s, "Inf") == 0)
			return INFINITY;
		cr_assert_str_eq(s, "-Inf");
		return -INFINITY;
	}
	return json_is_integer(v) ? (float)json_integer_value(v) : (float)json_real_value(v);
}

Test(oip_response, json_outputs_parse_back)
{
	const int64_t s1[] = { 2, 3 }, s2[] = { 4 };
	const float d1[] = { 1, -2.5f, 0.1f, 1e-40f, -0.0f, 3.4028235e38f };
	const float d2[] = { NAN, INFINITY, -INFINITY, 0 };
	const hf_oip_out_tensor outs[] = {
		{ .name = "probs", .ndim = 2, .shape = s1, .data = d1 },
		{ .name = "q\"u\\o\nte", .ndim = 1, .shape = s2, .data = d2 },
	};
	hf_buf b;
	size_t jl = 0;
	json_t *j, *o;

	hf_buf_init(&b, 0);
	cr_assert_eq(hf_oip_build_response("fashion-mnist", "1", "req-7", outs, 2, &b, &jl, &eb),
		     0, "%s", eb.msg);
	cr_assert_eq(jl, b.len);
	j = load(b.data, b.len);
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_name")), "fashion-mnist");
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_version")), "1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "req-7");
	cr_assert_eq(json_object_size(j), 4);
	cr_assert_eq(json_array_size(json_object_get(j, "outputs")), 2);
	o = json_array_get(json_object_get(j, "outputs"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "probs");
	cr_assert_str_eq(json_string_value(json_object_get(o, "datatype")), "FP32");
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(o, "shape"), 0)), 2);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(o, "shape"), 1)), 3);
	cr_assert_null(json_object_get(o, "parameters"));
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(bits(jfloat(json_array_get(json_object_get(o, "data"), i))),
			     bits(d1[i]), "element %zu", i);
	o = json_array_get(json_object_get(j, "outputs"), 1);
	/* quotes and backslashes escaped; a control character cleaned to '?' */
	cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "q\"u\\o?te");
	cr_assert(isnan(jfloat(json_array_get(json_object_get(o, "data"), 0))));
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "data"), 1)), "Inf");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "data"), 2)), "-Inf");
	json_decref(j);
	cr_assert(strstr(b.data, "-0.0,"), "%s", b.data); /* not "-0", which parses as integer 0 */
	hf_buf_free(&b);
}

Test(oip_response, version_and_id_left_out_when_null)
{
	const float d[] = { 1 };
	const hf_oip_out_tensor out = { .name = "y", .ndim = 0, .shape = NULL, .data = d };
	hf_buf b;
	size_t jl;
	json_t *j;

	hf_buf_init(&b, 0);
	cr_assert_eq(hf_oip_build_response("m\x01\xff", NULL, NULL, &out, 1, &b, &jl, &eb), 0);
	j = load(b.data, jl);
	cr_assert_null(json_object_get(j, "model_version"));
	cr_assert_null(json_object_get(j, "id"));
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_name")), "m??");
	cr_assert_eq(json_array_size(json_object_get(json_array_get(json_object_get(j, "outputs"),
								    0), "shape")), 0);
	json_decref(j);
	hf_buf_reset(&b);
	cr_assert_eq(hf_oip_build_response("m", NULL, "", NULL, 0, &b, &jl, &eb), 0);
	cr_assert_str_eq(b.data, "{\"model_name\":\"m\",\"id\":\"\",\"outputs\":[]}");
	hf_buf_free(&b);
}

Test(oip_response, binary_outputs_after_json_in_order)
{
	const int64_t s1[] = { 1, 2 }, s2[] = { 3 }, s3[] = { 2 };
	const float d1[] = { 1.5f, -0.0f }, d2[] = { 7, 8, 9 }, d3[] = { NAN, 1e-45f };
	const hf_oip_out_tensor outs[] = {
		{ .name = "a", .ndim = 2, .shape = s1, .data = d1, .binary = true },
		{ .name = "b", .ndim = 1, .shape = s2, .data = d2, .binary = false },
		{ .name = "c", .ndim = 1, .shape = s3, .data = d3, .binary = true },
	};
	hf_buf b;
	size_t jl = 0, start;
	json_t *j, *o;
	const uint8_t *p;

	hf_buf_init(&b, 0);
	hf_buf_append(&b, "HTTP-prefix", 11); /* appended: json_len counts from here */
	start = b.len;
	cr_assert_eq(hf_oip_build_response("m", NULL, "i", outs, 3, &b, &jl, &eb), 0, "%s",
		     eb.msg);
	cr_assert_eq(b.len - start, jl + 8 + 8);
	j = load(b.data + start, jl);
	o = json_array_get(json_object_get(j, "outputs"), 0);
	cr_assert_null(json_object_get(o, "data"));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "parameters"),
							"binary_data_size")), 8);
	o = json_array_get(json_object_get(j, "outputs"), 1);
	cr_assert_null(json_object_get(o, "parameters"));
	cr_assert_eq(json_array_size(json_object_get(o, "data")), 3);
	o = json_array_get(json_object_get(j, "outputs"), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "parameters"),
							"binary_data_size")), 8);
	json_decref(j);
	p = (const uint8_t *)b.data + start + jl;
	for (int k = 0; k < 4; k++) {
		const float *src = k < 2 ? &d1[k] : &d3[k - 2];
		uint32_t u = (uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 |
			(uint32_t)p[4 * k + 2] << 16 | (uint32_t)p[4 * k + 3] << 24;
		cr_assert_eq(u, bits(*src), "float %d", k);
	}
	hf_buf_free(&b);
}

Test(oip_response, caller_errors_and_cap_leave_buffer_as_it_was)
{
	const int64_t neg[] = { 2, -1 }, big[] = { 1000 };
	const float d[1000] = { 0 };
	hf_oip_out_tensor o = { .name = "y", .ndim = 2, .shape = neg, .data = d };
	hf_buf b;
	size_t jl = 12345;

	hf_buf_init(&b, 1024);
	hf_buf_append(&b, "keep", 4);
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &o, 1, &b, &jl, &eb), HF_EINVAL);
	o = (hf_oip_out_tensor){ .name = NULL, .ndim = 1, .shape = big, .data = d };
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &o, 1, &b, &jl, &eb), HF_EINVAL);
	o = (hf_oip_out_tensor){ .name = "y", .ndim = 1, .shape = big, .data = NULL };
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &o, 1, &b, &jl, &eb), HF_EINVAL);
	cr_assert_eq(hf_oip_build_response(NULL, NULL, NULL, NULL, 0, &b, &jl, &eb), HF_EINVAL);
	/* 1000 zeros in JSON (~2 KB) do not fit 1 KiB */
	o = (hf_oip_out_tensor){ .name = "y", .ndim = 1, .shape = big, .data = d };
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &o, 1, &b, &jl, &eb), HF_ETOOBIG);
	cr_assert_eq(b.len, 4);
	cr_assert_str_eq(b.data, "keep");
	cr_assert(!b.failed);
	cr_assert_eq(jl, 12345);
	/* binary: the JSON fits, the 4000 bytes after it do not */
	o.binary = true;
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &o, 1, &b, &jl, &eb), HF_ETOOBIG);
	cr_assert_str_eq(b.data, "keep");
	hf_buf_free(&b);
}

/* Floats written by the response writer, read back by jansson and by the request parser. */
static void round_trip(const float *v, size_t n)
{
	const int64_t shape[] = { (int64_t)n };
	const hf_oip_out_tensor out = { .name = "x", .ndim = 1, .shape = shape, .data = v };
	hf_buf b, req_json;
	size_t jl;
	const char *data;
	hf_oip_request req;
	json_t *j, *arr;

	hf_buf_init(&b, 0);
	hf_buf_init(&req_json, 0);
	cr_assert_eq(hf_oip_build_response("m", NULL, NULL, &out, 1, &b, &jl, &eb), 0);
	j = load(b.data, jl);
	arr = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
	cr_assert_eq(json_array_size(arr), n);
	for (size_t i = 0; i < n; i++) {
		float f = jfloat(json_array_get(arr, i));
		if (isnan(v[i]))
			cr_assert(isnan(f));
		else
			cr_assert_eq(bits(f), bits(v[i]), "jansson: %08x read back as %08x",
				     bits(v[i]), bits(f));
	}
	json_decref(j);
	/* the same text as a request's data */
	data = strstr(b.data, "\"data\":");
	cr_assert_not_null(data);
	hf_buf_printf(&req_json, "{\"inputs\":[{\"name\":\"x\",\"shape\":[%zu],\"datatype\":"
		      "\"FP32\",%.*s}]}", n, (int)(b.data + jl - 3 - data), data);
	cr_assert_eq(parse(req_json.data, NULL, &req), 0, "%s", eb.msg);
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			cr_assert(isnan(req.inputs[0].data[i]));
		else
			cr_assert_eq(bits(req.inputs[0].data[i]), bits(v[i]), "parser: %08x read "
				     "back as %08x", bits(v[i]), bits(req.inputs[0].data[i]));
	}
	hf_oip_request_clear(&req);
	hf_buf_free(&b);
	hf_buf_free(&req_json);
}

Test(oip_response, floats_round_trip_bit_exactly)
{
	static const uint32_t edge[] = { 0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u,
		0x00000002u, 0x007fffffu, 0x807fffffu, 0x00800000u, 0x80800000u, 0x00800001u,
		0x7f7fffffu, 0xff7fffffu, 0x7f7ffffeu, 0x3f800000u, 0xbf800000u, 0x3f800001u,
		0x3f7fffffu, 0x3dcccccdu, 0x40490fdbu, 0x4b800000u, 0x4b800001u, 0x4b7fffffu,
		0x5f000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x33800000u, 0x2f800000u };
	enum { N = 100000 };
	float *v = malloc(N * sizeof *v);
	uint32_t x = 0x2545f491u;
	size_t n = sizeof edge / sizeof edge[0];

	for (size_t i = 0; i < n; i++)
		v[i] = from_bits(edge[i]);
	round_trip(v, n);
	/* random bit patterns: every exponent, subnormals included */
	for (size_t i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		v[i] = from_bits(x);
	}
	round_trip(v, N);
	/* every subnormal step near the bottom and every float around 1 and 2^24 */
	for (size_t i = 0; i < 4096; i++) {
		v[i] = from_bits((uint32_t)i);
		v[4096 + i] = from_bits(0x3f800000u - 2048 + (uint32_t)i);
		v[8192 + i] = from_bits(0x4b800000u - 2048 + (uint32_t)i);
	}
	round_trip(v, 3 * 4096);
	free(v);
}

Test(oip_response, ten_thousand_elements)
{
	enum { N = 10000 };
	const int64_t shape[] = { 1000, 10 };
	float *v = malloc(N * sizeof *v);
	hf_oip_out_tensor out = { .name = "probs", .ndim = 2, .shape = shape, .data = v };
	hf_buf b;
	size_t jl;
	json_t *j, *arr;

	for (int i = 0; i < N; i++)
		v[i] = (float)i / 7.0f;
	hf_buf_init(&b, 0);
	cr_assert_eq(hf_oip_build_response("m", NULL, "x", &out, 1, &b, &jl, &eb), 0);
	j = load(b.data, jl);
	arr = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
	cr_assert_eq(json_array_size(arr), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(jfloat(json_array_get(arr, (size_t)i)), v[i]);
	json_decref(j);
	hf_buf_reset(&b);
	out.binary = true;
	cr_assert_eq(hf_oip_build_response("m", NULL, "x", &out, 1, &b, &jl, &eb), 0);
	cr_assert_eq(b.len, jl + 4 * N);
	for (int i = 0; i < N; i++) {
		const uint8_t *p = (const uint8_t *)b.data + jl + 4 * i;
		cr_assert_eq((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			     (uint32_t)p[3] << 24, bits(v[i]));
	}
	hf_buf_free(&b);
	free(v);
}
