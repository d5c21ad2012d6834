/* Tests of hf_infer_req: an OIP request checked against a model's graph (every input present
 * and known, FP32, shape [n, per-sample dims], one n for all inputs, n within max_batch_size,
 * requested outputs known), its items gathered into and scattered out of a batch at its
 * offset, and its response (JSON, binary with Inference-Header-Content-Length, id echoed).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hf_infer_priv.h"
#include "st_testutil.h"

/* Two inputs a, b [-1, 2]; y = a + b; z = relu(y); outputs y and z. */
static const char *graph =
	"{\"version\":1,\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[-1,2]},"
	"{\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
	"\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,2]},"
	"{\"name\":\"z\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
	"\"ops\":[{\"op\":\"add\",\"inputs\":[\"a\",\"b\"],\"outputs\":[\"y\"]},"
	"{\"op\":\"relu\",\"inputs\":[\"y\"],\"outputs\":[\"z\"]}]}";

static uint8_t *img;
static hf_st *st;
static hf_graph *g;
static hf_model model;
static hf_infer_slot slot;

static void setup(void)
{
	static const float one = 1;
	st_spec ts[] = { { "unused", 1, { 1 }, &one, NULL } };
	size_t len;
	hf_errbuf eb;

	img = st_build(ts, 1, graph, &len);
	cr_assert_not_null(img);
	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_graph_new(st, &g, &eb), 0, "%s", eb.msg);
	memset(&model, 0, sizeof model);
	strcpy(model.name, "adder");
	model.loaded = true;
	model.graph = g;
	model.cfg.max_batch_size = 4;
	memset(&slot, 0, sizeof slot);
	slot.m = &model;
}

static void teardown(void)
{
	hf_graph_free(g);
	hf_st_free(st);
	free(img);
}

TestSuite(infer_req, .init = setup, .fini = teardown);

/* Parses body into a new request and binds it; returns the bind's result. */
static int bind(const char *body, hf_ireq **out, hf_errbuf *eb)
{
	hf_ireq *q = calloc(1, sizeof *q);
	cr_assert_not_null(q);
	int r = hf_oip_parse_request(body, strlen(body), NULL, NULL, &q->req, eb);
	cr_assert_eq(r, 0, "parse %s: %s", body, eb->msg);
	r = hf_ireq_bind(q, &slot, eb);
	*out = q;
	return r;
}

static void refused(const char *body, const char *want)
{
	hf_ireq *q;
	hf_errbuf eb;
	int r = bind(body, &q, &eb);
	cr_expect_eq(r, 400, "%s: bound (%d)", body, r);
	cr_expect(strstr(eb.msg, want), "%s: \"%s\" lacks \"%s\"", body, eb.msg, want);
	hf_ireq_free(q);
}

#define A(shape, data) "{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":" shape ",\"data\":" data "}"
#define B(shape, data) "{\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":" shape ",\"data\":" data "}"

Test(infer_req, each_mismatch_is_a_400_naming_it)
{
	refused("{\"inputs\":[" A("[1,2]", "[1,2]") "]}", "missing input \"b\"");
	refused("{\"inputs\":[" A("[1,2]", "[1,2]") "," B("[1,2]", "[1,2]") ","
		"{\"name\":\"c\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[1,2]}]}",
		"unknown input \"c\"");
	refused("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[1,2],\"data\":[1,2]},"
		B("[1,2]", "[1,2]") "]}", "input \"a\": datatype FP64, expected FP32");
	refused("{\"inputs\":[" A("[1,3]", "[1,2,3]") "," B("[1,2]", "[1,2]") "]}",
		"input \"a\": shape [1, 3], expected [-1, 2]");
	refused("{\"inputs\":[" A("[1,2,1]", "[1,2]") "," B("[1,2]", "[1,2]") "]}",
		"input \"a\": shape [1, 2, 1], expected [-1, 2]");
	refused("{\"inputs\":[" A("[2]", "[1,2]") "," B("[1,2]", "[1,2]") "]}",
		"input \"a\": shape [2], expected [-1, 2]");
	refused("{\"inputs\":[" A("[0,2]", "[]") "," B("[0,2]", "[]") "]}",
		"the batch dimension must be at least 1");
	refused("{\"inputs\":[" A("[2,2]", "[1,2,3,4]") "," B("[1,2]", "[1,2]") "]}",
		"input \"b\": batch dimension 1, but \"a\" has 2");
	refused("{\"inputs\":[" A("[5,2]", "[1,2,3,4,5,6,7,8,9,10]") ","
		B("[5,2]", "[1,2,3,4,5,6,7,8,9,10]") "]}",
		"a batch of 5 items is more than the model's max_batch_size 4");
	refused("{\"inputs\":[" A("[1,2]", "[1,2]") "," B("[1,2]", "[1,2]") "],"
		"\"outputs\":[{\"name\":\"logits\"}]}", "unknown output \"logits\"");
}

Test(infer_req, gather_scatter_at_the_offset_and_respond)
{
	hf_ireq *q;
	hf_errbuf eb;
	/* b before a: the map follows the graph's order, not the request's. */
	int r = bind("{\"id\":\"r-7\",\"inputs\":[" B("[2,2]", "[10,20,30,40]") ","
		     A("[2,2]", "[[1,-2],[3,-400]]") "]}", &q, &eb);
	cr_assert_eq(r, 0, "%s", eb.msg);
	cr_assert_eq(q->n, 2);
	cr_assert_eq(q->br.items, 2);
	cr_assert_eq(q->br.user, q);
	cr_assert_eq(q->nout, 2, "every output when none is asked for");
	cr_assert_eq(q->in_map[0], 1);
	cr_assert_eq(q->in_map[1], 0);
	cr_assert_eq(hf_ireq_input(q, 0)[3], -400);

	/* In a batch of 3 at offset 1. */
	float in[6] = { -1, -1, 0, 0, 0, 0 }, y[6], z[6];
	q->br.offset = 1;
	hf_ireq_gather(q, 0, in);
	cr_assert_eq(in[0], -1, "wrote before its offset");
	cr_assert_eq(in[2], 1);
	cr_assert_eq(in[5], -400);
	for (int i = 0; i < 6; i++) {
		y[i] = (float)i;
		z[i] = (float)(100 + i);
	}
	hf_ireq_scatter(q, 0, y);
	hf_ireq_scatter(q, 1, z);
	cr_assert_eq(q->out_data[0][0], 2);
	cr_assert_eq(q->out_data[0][3], 5);
	cr_assert_eq(q->out_data[1][0], 102);

	hf_http_resp resp;
	hf_http_resp_init(&resp);
	hf_ireq_response(q, &resp);
	cr_assert_eq(resp.status, 200);
	cr_assert_str_eq(resp.content_type, "application/json");
	json_t *j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	cr_assert_not_null(j, "%s", resp.body.data);
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_name")), "adder");
	cr_assert_str_eq(json_string_value(json_object_get(j, "model_version")), "1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "r-7");
	json_t *o1 = json_array_get(json_object_get(j, "outputs"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(o1, "name")), "z");
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(o1, "shape"), 0)), 2);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(o1, "shape"), 1)), 2);
	cr_assert_eq(json_number_value(json_array_get(json_object_get(o1, "data"), 3)), 105);
	json_decref(j);
	hf_http_resp_clear(&resp);
	hf_ireq_free(q);
}

Test(infer_req, a_binary_output_asked_for_by_name)
{
	hf_ireq *q;
	hf_errbuf eb;
	int r = bind("{\"inputs\":[" A("[1,2]", "[1,2]") "," B("[1,2]", "[3,4]") "],"
		     "\"outputs\":[{\"name\":\"z\",\"parameters\":{\"binary_data\":true}}]}", &q, &eb);
	cr_assert_eq(r, 0, "%s", eb.msg);
	cr_assert_eq(q->nout, 1);
	cr_assert_eq(q->out_value[0], 1);
	cr_assert(q->out_binary[0]);
	float z[2] = { 4, 6 }, y[2] = { -1, -1 };
	hf_ireq_scatter(q, 0, y); /* not asked for: ignored */
	hf_ireq_scatter(q, 1, z);
	hf_http_resp resp;
	hf_http_resp_init(&resp);
	hf_ireq_response(q, &resp);
	cr_assert_eq(resp.status, 200);
	cr_assert_str_eq(resp.content_type, "application/octet-stream");
	cr_assert_eq(resp.nheaders, 1);
	cr_assert_str_eq(resp.hdr_name[0], "Inference-Header-Content-Length");
	size_t jl = strtoul(resp.hdr_value[0], NULL, 10);
	cr_assert_eq(resp.body.len, jl + 8);
	float got[2];
	memcpy(got, resp.body.data + jl, 8);
	cr_assert_eq(got[0], 4);
	cr_assert_eq(got[1], 6);
	cr_assert(strstr(resp.body.data, "\"binary_data_size\":8") ||
		  strstr(resp.body.data, "\"binary_data_size\": 8"), "%.*s", (int)jl, resp.body.data);
	hf_http_resp_clear(&resp);
	hf_ireq_free(q);
}
