/* Unit tests for hf_httpd: routing with captures, 404/405/413, bodies, queries, bind errors;
 * a real libmicrohttpd server queried with libcurl on 127.0.0.1. */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_httpd.h"
#include "hf_testproc.h"
#include "hf_util.h"

typedef hf_test_reply reply;

static void request(uint16_t port, const char *method, const char *path, const char *body,
		    size_t body_len, reply *r)
{
	char url[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	cr_assert(hf_test_http(method, url, body, body_len, r));
}

static void h_item(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	const char *q = hf_http_query(req, "after");
	hf_http_resp_json(resp, 200, json_pack("{s:s, s:s, s:s?, s:i}", "a", req->params[0],
						"b", req->params[1], "after", q, "n", (int)req->nparams));
}

static void h_echo(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	resp->status = 201;
	resp->content_type = "application/octet-stream";
	hf_buf_append(&resp->body, req->body, req->body_len);
	hf_http_resp_header(resp, "Retry-After", "5");
}

static void h_silent(void *ctx, const hf_http_req *req, hf_http_resp *resp) { }

static const hf_http_route routes[] = {
	{ "GET", "/v1/things/*/parts/*", h_item },
	{ "POST", "/v1/echo", h_echo },
	{ "PUT", "/v1/echo", h_echo },
	{ "GET", "/v1/silent", h_silent },
};

static hf_httpd *start(void)
{
	hf_httpd_opts o = { .host = "127.0.0.1", .port = 0, .max_body = 1024 };
	hf_httpd *h;
	hf_errbuf eb;
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), NULL, &h, &eb), 0, "%s", eb.msg);
	cr_assert_gt(hf_httpd_port(h), 0);
	return h;
}

Test(httpd, captures_and_query)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/v1/things/t1/parts/p-2?after=17", NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"a\":\"t1\",\"b\":\"p-2\",\"after\":\"17\",\"n\":2}\n");
	request(hf_httpd_port(h), "GET", "/v1/things/t1/parts", NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	request(hf_httpd_port(h), "GET", "/v1/things//parts/x", NULL, 0, &r);
	cr_assert_eq(r.status, 404, "an empty segment must not match *");
	hf_httpd_free(h);
}

Test(httpd, not_found_and_method_not_allowed)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/nowhere", NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "{\"error\":\"no such path: /nowhere\"}\n");
	request(hf_httpd_port(h), "GET", "/v1/echo", NULL, 0, &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.headers, "Allow: POST, PUT"), "%s", r.headers);
	cr_assert(strstr(r.body, "method GET not allowed on /v1/echo"));
	hf_httpd_free(h);
}

Test(httpd, bodies_and_cap)
{
	hf_httpd *h = start();
	reply r;
	char big[2048];
	memset(big, 'x', sizeof big);
	request(hf_httpd_port(h), "POST", "/v1/echo", "a\0b", 3, &r);
	cr_assert_eq(r.status, 201);
	cr_assert_eq(r.len, 3);
	cr_assert_eq(memcmp(r.body, "a\0b", 3), 0);
	cr_assert(strstr(r.headers, "Retry-After: 5"));
	request(hf_httpd_port(h), "POST", "/v1/echo", big, 1024, &r);
	cr_assert_eq(r.status, 201);
	cr_assert_eq(r.len, 1024);
	request(hf_httpd_port(h), "POST", "/v1/echo", big, 1025, &r);
	cr_assert_eq(r.status, 413);
	cr_assert(strstr(r.body, "over the limit of 1024 bytes"));
	hf_httpd_free(h);
}

Test(httpd, handler_without_response_is_a_500)
{
	hf_httpd *h = start();
	reply r;
	request(hf_httpd_port(h), "GET", "/v1/silent", NULL, 0, &r);
	cr_assert_eq(r.status, 500);
	hf_httpd_free(h);
}

Test(httpd, bind_errors)
{
	hf_httpd_opts o = { .host = "localhost", .port = 0 };
	hf_httpd *h, *h2;
	hf_errbuf eb;
	cr_assert_eq(hf_httpd_new(&o, routes, 1, NULL, &h, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "not a numeric"));
	h = start();
	o.host = "127.0.0.1";
	o.port = hf_httpd_port(h);
	cr_assert_eq(hf_httpd_new(&o, routes, 1, NULL, &h2, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "cannot listen"));
	hf_httpd_free(h);
	hf_httpd_free(NULL);
}
