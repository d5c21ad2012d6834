/* hf_httpd: a small HTTP/1.1 server on libmicrohttpd with a route table, JSON errors, limits that
 * hold under slow or hostile clients, and deferred responses for long polls.
 *
 * Routes match on path segments; a "*" segment matches one non-empty segment and is captured
 * into req->params. A path matching no route answers 404, a path matching only under another
 * method answers 405 with an Allow header; both with a JSON body {"error": "..."}. A path that
 * is not valid UTF-8 or holds a control character (after percent-decoding) answers 400 before
 * routing, so handlers and captures only ever see clean text; a method or path quoted in an
 * error message is quoted through hf_text_clean(). Request bodies over max_body answer 413
 * without reaching a handler.
 *
 * Connections cost a file descriptor and libmicrohttpd's per-connection memory pool (32 KiB,
 * mostly untouched), never a thread: libmicrohttpd's epoll event loop (poll where epoll is
 * missing) runs on a small pool of server threads (opts.threads), each serving its share of the
 * connections. Limits:
 * - max_conns: connections open at once. One more is accepted and closed at once, without a
 *   response (refused_total counts them); during simultaneous accepts on several server threads
 *   the count can pass the cap by at most threads - 1. hf_httpd_new() lowers the cap to what
 *   the process's RLIMIT_NOFILE leaves free (hf_httpd_max_conns() tells the cap in force).
 * - max_conns_per_ip: connections from one client address (0: no cap); one more is closed at
 *   once. All loopback clients share 127.0.0.1 (or ::1).
 * - header_timeout_s: an absolute deadline. A connection whose request line and headers have
 *   not all arrived header_timeout_s after it was accepted (or, on a kept-alive connection,
 *   after its previous response was sent) is shut down, however slowly it trickles bytes
 *   (header_timeouts_total counts them); a watcher thread wakes when the first deadline is due.
 * - timeout_s: an idle timeout (libmicrohttpd's): a connection on which nothing was received
 *   or sent for timeout_s is closed, in any phase (a stalled body upload, a client that stops
 *   reading its response). It is not a deadline: a client that sends or reads one byte per
 *   timeout_s keeps its connection. A deferred request never times out here (its owner decides
 *   how long a poll waits).
 * Out of file descriptors anyway (the rest of the process holding them): accept() fails and
 * libmicrohttpd stops accepting on that server thread until one of its connections closes;
 * clients wait in the listen backlog. Nothing crashes, nothing is answered wrongly. (A server
 * thread that hits this with no connection of its own retries accept() in a busy loop until a
 * descriptor frees up; the fd cap above keeps the server's own connections from causing it.)
 *
 * Deferred responses (long polls, slow work): a handler calls hf_http_defer() and returns with
 * resp untouched; the connection is parked (suspended in libmicrohttpd: no thread, no timeout)
 * until some thread calls hf_http_pending_complete() with the response. Each side is O(1)
 * (a list link, an epoll registration); libmicrohttpd walks its suspended list once per wake-up
 * of a server thread, shared by all completions batched into that wake-up. A parked request
 * can end in three ways, exactly one of which happens:
 * - the owner completes it: the response is sent; complete() returns 0;
 * - its client disconnects (hang-up or reset seen on the socket; a client that half-closes its
 *   sending side counts as gone): the connection is closed, gone(arg, p) is called once, and
 *   complete() returns HF_ECANCELED;
 * - the server stops (hf_httpd_free): it is answered 503 {"error": "server shutting down"}
 *   with Retry-After, gone(arg, p) is called once, and complete() returns HF_ECANCELED.
 * The handle stays valid until the owner calls hf_http_pending_complete() on it, exactly once,
 * in every case (also after gone, also after hf_httpd_free returned): that call releases it.
 * gone() may run while the owner's own complete() of the same handle is in progress or has
 * just returned HF_ECANCELED, so an owner looks p up in its own table under its own lock and
 * ignores a handle it no longer holds; the handle is valid for the whole gone() call.
 *
 * Threading: hf_httpd_new()/hf_httpd_free() from one owning thread; handlers run concurrently
 * on the server threads (whatever ctx points at must be safe for that), and a handler that
 * blocks stalls every connection of its server thread, so a long wait uses hf_http_defer();
 * hf_http_defer() only inside a handler, on its own request, at most once; the
 * hf_http_pending_* calls from any thread, without any hf_httpd lock held by the caller (the
 * owner may hold its own locks); gone() runs on the server's watcher thread, or on the thread
 * inside hf_httpd_free(), with no hf_httpd lock held, so hf_httpd_free() must not be called
 * holding a lock that gone() takes; hf_httpd_get_stats()/hf_httpd_max_conns()/hf_httpd_port()
 * from any thread while the server exists.
 */
#ifndef HF_HTTPD_H
#define HF_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

#define HF_HTTP_MAX_PARAMS 4
#define HF_HTTP_MAX_HEADERS 4

/* Defaults for zero fields of hf_httpd_opts. */
#define HF_HTTPD_DEFAULT_MAX_CONNS 1024u
#define HF_HTTPD_DEFAULT_TIMEOUT_S 30u
#define HF_HTTPD_DEFAULT_HEADER_TIMEOUT_S 10u
#define HF_HTTPD_DEFAULT_THREADS 2u
#define HF_HTTPD_MAX_THREADS 64u
/* hf_httpd_raise_fd_limit() never raises the soft limit past this (some libraries walk every
 * descriptor number up to the limit). */
#define HF_HTTPD_FD_LIMIT_CAP (1u << 20)

typedef struct hf_httpd hf_httpd;
typedef struct hf_http_pending hf_http_pending;

typedef struct hf_http_req {
	const char *method;
	const char *path;   /* percent-decoded, valid UTF-8, no control characters */
	const char *params[HF_HTTP_MAX_PARAMS];
	size_t nparams;
	const char *body; /* NUL-terminated; body_len bytes (may contain NULs) */
	size_t body_len;
	void *conn;       /* opaque; for hf_http_query() / hf_http_header() */
	void *state;      /* opaque; hf_httpd's own (for hf_http_defer()) */
} hf_http_req;

typedef struct hf_http_resp {
	int status;
	const char *content_type; /* a static string; NULL: application/json */
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
	unsigned max_conns; /* connections open at once (0: HF_HTTPD_DEFAULT_MAX_CONNS) */
	unsigned timeout_s; /* idle timeout of a connection (0: HF_HTTPD_DEFAULT_TIMEOUT_S) */
	unsigned max_conns_per_ip; /* connections from one client address (0: no cap) */
	unsigned header_timeout_s; /* deadline for the request headers (0: ..._HEADER_TIMEOUT_S) */
	unsigned threads;   /* server threads, 1 to HF_HTTPD_MAX_THREADS (0: ..._THREADS) */
	/* HTTPS: the certificate (chain) and its private key, PEM texts (not paths); both NULL:
	 * plain HTTP. HF_EUNSUPPORTED when libmicrohttpd was built without TLS (GnuTLS);
	 * HF_ECONFIG when only one is given; HF_EIO when libmicrohttpd refuses the pair. */
	const char *tls_cert_pem;
	const char *tls_key_pem;
} hf_httpd_opts;

typedef struct hf_httpd_stats {
	uint64_t connections;           /* open now */
	uint64_t deferred;              /* deferred requests waiting now */
	uint64_t refused_total;         /* connections closed at accept: over max_conns */
	uint64_t header_timeouts_total; /* connections shut down by the header deadline */
	uint64_t deferred_gone_total;   /* deferred requests whose client left while waiting */
	bool epoll;                     /* the event loop is epoll (else poll) */
	bool tls;                       /* serving HTTPS */
} hf_httpd_stats;

/* Starts serving routes (copied by pointer: the table must outlive the server). HF_ECONFIG for
 * a bad address or option, or when RLIMIT_NOFILE leaves no descriptor for connections; HF_EIO
 * when the address cannot be bound. */
int hf_httpd_new(const hf_httpd_opts *opts, const hf_http_route *routes, size_t nroutes,
		 void *ctx, hf_httpd **out, hf_errbuf *eb);
/* The bound port (the ephemeral one when opts.port was 0). */
uint16_t hf_httpd_port(const hf_httpd *h);
/* The connection cap in force (opts.max_conns, or lower if RLIMIT_NOFILE leaves fewer fds). */
unsigned hf_httpd_max_conns(const hf_httpd *h);
void hf_httpd_get_stats(hf_httpd *h, hf_httpd_stats *st);
/* Refuses new deferrals, answers every deferred request 503 (gone() called for each), waits
 * up to 2 s for those answers to be sent, stops accepting, waits for running handlers to
 * return, closes every connection, frees. NULL accepted. */
void hf_httpd_free(hf_httpd *h);

/* true when this libmicrohttpd can serve HTTPS (built with GnuTLS). */
bool hf_httpd_tls_supported(void);

/* Raises this process's soft RLIMIT_NOFILE to its hard limit (at most HF_HTTPD_FD_LIMIT_CAP);
 * *before and *after get the soft limit before and after. HF_EIO if the limit cannot be read
 * or set. Call it once at program start, before threads open descriptors. */
int hf_httpd_raise_fd_limit(uint64_t *before, uint64_t *after);

/* Query-string argument or NULL (percent-decoded; raw bytes: clean before echoing). */
const char *hf_http_query(const hf_http_req *req, const char *key);
/* Request header or NULL (raw bytes: clean before echoing). */
const char *hf_http_header(const hf_http_req *req, const char *name);

/* Response helpers. A response built outside a handler starts with hf_http_resp_init(). */
void hf_http_resp_init(hf_http_resp *resp);
/* Frees the body and re-initialises resp. */
void hf_http_resp_clear(hf_http_resp *resp);
void hf_http_resp_header(hf_http_resp *resp, const char *name, const char *value);
/* Serialises j (reference stolen) as the body with status. */
void hf_http_resp_json(hf_http_resp *resp, int status, json_t *j);
/* {"error": message} with status (the message is cleaned: valid UTF-8, no control characters). */
void hf_http_resp_error(hf_http_resp *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Called at most once per deferred request when its client left or the server stops; see the
 * contract above. */
typedef void (*hf_http_gone_fn)(void *arg, hf_http_pending *p);

/* Inside a handler: answer this request later. Returns the handle the owner completes (the
 * handler then leaves resp alone: whatever it holds is discarded), or NULL when the request
 * cannot be deferred (the server is stopping, out of memory, deferred twice): the handler then
 * answers now, e.g. 503. gone may be NULL. */
hf_http_pending *hf_http_defer(const hf_http_req *req, hf_http_gone_fn gone, void *arg);
/* From any thread, exactly once per handle: answers with resp (its content is taken and resp
 * re-initialised; NULL or status 0: a 500) and releases the handle. 0 when the answer was
 * queued; HF_ECANCELED when the request was already gone (client left, server stopping) and the
 * answer is discarded; HF_ENOMEM when no memory was left to hold the answer (the connection is
 * then closed). */
int hf_http_pending_complete(hf_http_pending *p, hf_http_resp *resp);
/* hf_http_pending_complete() with the JSON j (reference stolen) and status. */
int hf_http_pending_complete_json(hf_http_pending *p, int status, json_t *j);

#endif
