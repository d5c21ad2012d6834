/* hf_httpd: a small HTTP/1.1 server on libmicrohttpd with a route table and JSON errors.
 *
 * Routes match on path segments; a "*" segment matches one non-empty segment and is captured
 * into req->params. A path matching no route answers 404, a path matching only under another
 * method answers 405 with an Allow header; both with a JSON body {"error": "..."}. Request
 * bodies over max_body answer 413 without reaching a handler. Handlers run on the connection's
 * own thread and fill an hf_http_resp.
 * Threading: hf_httpd_new()/hf_httpd_free() from one thread; handlers run concurrently on
 * server threads, so whatever ctx points at must be safe for that.
 */
#ifndef HF_HTTPD_H
#define HF_HTTPD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

#define HF_HTTP_MAX_PARAMS 4
#define HF_HTTP_MAX_HEADERS 4

typedef struct hf_httpd hf_httpd;

typedef struct hf_http_req {
	const char *method;
	const char *path;
	const char *params[HF_HTTP_MAX_PARAMS];
	size_t nparams;
	const char *body; /* NUL-terminated; body_len bytes (may contain NULs) */
	size_t body_len;
	void *conn;       /* opaque; for hf_http_query() / hf_http_header() */
} hf_http_req;

typedef struct hf_http_resp {
	int status;
	const char *content_type;
	hf_buf body;
	char hdr_name[HF_HTTP_MAX_HEADERS][48];
	char hdr_value[HF_HTTP_MAX_HEADERS][160];
	size_t nheaders;
} hf_http_resp;

typedef void (*hf_http_handler)(void *ctx, const hf_http_req *req, hf_http_resp *resp);

typedef struct hf_http_route {
	const char *method; /* "GET", "POST", ... */
	const char *pattern; /* "/v1/status", "/v2/models/x/infer" */
	hf_http_handler fn;
} hf_http_route;

typedef struct hf_httpd_opts {
	const char *host;   /* numeric address to bind: "127.0.0.1", "::1", "0.0.0.0" */
	uint16_t port;      /* 0: an ephemeral port, see hf_httpd_port() */
	size_t max_body;    /* request body cap in bytes (0: 1 MiB) */
	unsigned max_conns; /* concurrent connections (0: 64) */
	unsigned timeout_s; /* idle connection timeout (0: 30) */
} hf_httpd_opts;

/* Starts serving routes (copied by pointer: the table must outlive the server). */
int hf_httpd_new(const hf_httpd_opts *opts, const hf_http_route *routes, size_t nroutes,
		 void *ctx, hf_httpd **out, hf_errbuf *eb);
/* The bound port (the ephemeral one when opts.port was 0). */
uint16_t hf_httpd_port(const hf_httpd *h);
/* Stops accepting, waits for handlers to return, frees. NULL accepted. */
void hf_httpd_free(hf_httpd *h);

/* Query-string argument or NULL. */
const char *hf_http_query(const hf_http_req *req, const char *key);
/* Request header or NULL. */
const char *hf_http_header(const hf_http_req *req, const char *name);

/* Response helpers. */
void hf_http_resp_header(hf_http_resp *resp, const char *name, const char *value);
/* Serialises j (reference stolen) as the body with status. */
void hf_http_resp_json(hf_http_resp *resp, int status, json_t *j);
/* {"error": message} with status. */
void hf_http_resp_error(hf_http_resp *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
