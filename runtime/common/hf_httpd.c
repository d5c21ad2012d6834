/* hf_httpd: libmicrohttpd glue: body accumulation with a cap, route matching, JSON errors.
 * Invariants: every request gets exactly one response; a handler that leaves status 0 produces a
 * 500. Memory per connection is bounded by max_body.
 * Threading: libmicrohttpd thread per connection; no shared mutable state here besides MHD's.
 */
#include "hf_httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hf_util.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

struct hf_httpd {
	struct MHD_Daemon *mhd;
	const hf_http_route *routes;
	size_t nroutes;
	void *ctx;
	size_t max_body;
	uint16_t port;
};

typedef struct conn_state {
	hf_buf body;
	bool too_big;
} conn_state;

#define SEG_MAX 256

/* Matches path against pattern, capturing "*" segments into caps (each SEG_MAX bytes). */
static bool route_match(const char *pattern, const char *path, char caps[][SEG_MAX], size_t *ncaps)
{
	*ncaps = 0;
	while (*pattern && *path) {
		if (*pattern != '/' || *path != '/')
			return false;
		pattern++;
		path++;
		const char *pe = strchrnul(pattern, '/');
		const char *se = strchrnul(path, '/');
		size_t pl = (size_t)(pe - pattern), sl = (size_t)(se - path);
		if (pl == 1 && *pattern == '*') {
			if (sl == 0 || sl >= SEG_MAX || *ncaps >= HF_HTTP_MAX_PARAMS)
				return false;
			memcpy(caps[*ncaps], path, sl);
			caps[*ncaps][sl] = '\0';
			(*ncaps)++;
		} else if (pl != sl || memcmp(pattern, path, pl) != 0) {
			return false;
		}
		pattern = pe;
		path = se;
	}
	return *pattern == '\0' && *path == '\0';
}

void hf_http_resp_header(hf_http_resp *resp, const char *name, const char *value)
{
	if (resp->nheaders >= HF_HTTP_MAX_HEADERS)
		return;
	hf_strlcpy(resp->hdr_name[resp->nheaders], name, sizeof resp->hdr_name[0]);
	hf_strlcpy(resp->hdr_value[resp->nheaders], value, sizeof resp->hdr_value[0]);
	resp->nheaders++;
}

void hf_http_resp_json(hf_http_resp *resp, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	hf_buf_reset(&resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	if (s) {
		hf_buf_append(&resp->body, s, strlen(s));
		hf_buf_append(&resp->body, "\n", 1);
		free(s);
	} else {
		resp->status = 500;
		hf_buf_printf(&resp->body, "{\"error\":\"cannot serialise response\"}\n");
	}
	json_decref(j);
}

void hf_http_resp_error(hf_http_resp *resp, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	hf_http_resp_json(resp, status, json_pack("{s:s}", "error", msg));
}

const char *hf_http_query(const hf_http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *hf_http_header(const hf_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static void dispatch(hf_httpd *h, hf_http_req *req, hf_http_resp *resp)
{
	char caps[HF_HTTP_MAX_PARAMS][SEG_MAX];
	char allow[128] = "";
	size_t ncaps;
	bool path_known = false;
	const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;

	for (size_t i = 0; i < h->nroutes; i++) {
		if (!route_match(h->routes[i].pattern, req->path, caps, &ncaps))
			continue;
		if (strcmp(h->routes[i].method, method) == 0) {
			for (size_t k = 0; k < ncaps; k++)
				req->params[k] = caps[k];
			req->nparams = ncaps;
			h->routes[i].fn(h->ctx, req, resp);
			if (resp->status == 0)
				hf_http_resp_error(resp, 500, "handler produced no response");
			return;
		}
		if (!strstr(allow, h->routes[i].method) && strlen(allow) + 12 < sizeof allow) {
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, h->routes[i].method);
		}
		path_known = true;
	}
	if (path_known) {
		hf_http_resp_header(resp, "Allow", allow);
		hf_http_resp_error(resp, 405, "method %s not allowed on %s (allowed: %s)", req->method,
				   req->path, allow);
	} else {
		hf_http_resp_error(resp, 404, "no such path: %s", req->path);
	}
}

static mhd_result send_resp(struct MHD_Connection *conn, hf_http_resp *resp)
{
	struct MHD_Response *r;
	mhd_result ret;
	size_t len;
	char *body = hf_buf_steal(&resp->body, &len);

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", resp->content_type ? resp->content_type : "application/json");
	for (size_t i = 0; i < resp->nheaders; i++)
		MHD_add_response_header(r, resp->hdr_name[i], resp->hdr_value[i]);
	ret = MHD_queue_response(conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_data_size, void **con_cls)
{
	hf_httpd *h = cls;
	conn_state *cs = *con_cls;
	hf_http_resp resp;
	hf_http_req req;
	mhd_result ret;

	if (!cs) {
		cs = calloc(1, sizeof *cs);
		if (!cs)
			return MHD_NO;
		hf_buf_init(&cs->body, h->max_body);
		*con_cls = cs;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!cs->too_big && hf_buf_append(&cs->body, upload_data, *upload_data_size) < 0)
			cs->too_big = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	memset(&resp, 0, sizeof resp);
	hf_buf_init(&resp.body, 0);
	if (cs->too_big) {
		hf_http_resp_error(&resp, 413, "request body over the limit of %zu bytes", h->max_body);
	} else {
		memset(&req, 0, sizeof req);
		req.method = method;
		req.path = url;
		req.body = cs->body.data ? cs->body.data : "";
		req.body_len = cs->body.len;
		req.conn = conn;
		dispatch(h, &req, &resp);
	}
	ret = send_resp(conn, &resp);
	hf_buf_free(&resp.body);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	conn_state *cs = *con_cls;
	if (cs) {
		hf_buf_free(&cs->body);
		free(cs);
		*con_cls = NULL;
	}
}

int hf_httpd_new(const hf_httpd_opts *opts, const hf_http_route *routes, size_t nroutes,
		 void *ctx, hf_httpd **out, hf_errbuf *eb)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	const union MHD_DaemonInfo *info;
	hf_httpd *h;

	*out = NULL;
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, opts->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(opts->port);
	} else if (inet_pton(AF_INET6, opts->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(opts->port);
		flags |= MHD_USE_IPv6;
	} else {
		return hf_fail(eb, HF_ECONFIG, "listen address \"%s\" is not a numeric IPv4 or IPv6 address",
			       opts->host);
	}
	h = calloc(1, sizeof *h);
	if (!h)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	h->routes = routes;
	h->nroutes = nroutes;
	h->ctx = ctx;
	h->max_body = opts->max_body ? opts->max_body : (1u << 20);
	h->mhd = MHD_start_daemon(flags, opts->port, NULL, NULL, on_request, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, opts->max_conns ? opts->max_conns : 64u,
				  MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s ? opts->timeout_s : 30u,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				  MHD_OPTION_END);
	if (!h->mhd) {
		free(h);
		return hf_fail(eb, HF_EIO, "cannot listen on %s port %u (address in use or not available)",
			       opts->host, opts->port);
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : opts->port;
	*out = h;
	return 0;
}

uint16_t hf_httpd_port(const hf_httpd *h)
{
	return h->port;
}

void hf_httpd_free(hf_httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
