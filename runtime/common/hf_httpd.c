/* hf_httpd: libmicrohttpd glue: routes, JSON errors, body cap, connection limits, an absolute
 * header deadline and deferred (suspended) requests.
 *
 * Invariants: every request gets exactly one response or a closed connection; a handler that
 * leaves status 0 produces a 500. Memory per connection is bounded by max_body plus
 * libmicrohttpd's pool. A deferred request (hf_http_pending) is in h->waiting exactly while its
 * state is P_WAITING, and its connection is suspended in libmicrohttpd exactly then; leaving
 * P_WAITING (under p->mu, once) removes its socket from h->efd and then resumes the connection,
 * so libmicrohttpd never sees a resume without a suspend, never stops with a connection
 * suspended, and p->conn is never touched after the resume. A pending is freed when its last
 * reference goes: the owner's (hf_http_pending_complete), the request's (on_completed) and,
 * while registered in h->efd, the watcher's (dropped on the watcher thread between two
 * epoll_wait batches, so a stale event never meets freed memory).
 * Lock order: p->mu, then h->lock, then libmicrohttpd's own; libmicrohttpd calls back into this
 * file without holding its locks.
 * Threading: libmicrohttpd's server threads run handlers and the callbacks here; one watcher
 * thread per server reaps header deadlines and notices deferred clients that hang up; any
 * thread may complete a pending.
 */
#include "hf_httpd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_text.h"
#include "hf_util.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

#define SEG_MAX 256
#define QUOTE_MAX 160        /* bytes of a path or method quoted in an error message */
#define FD_RESERVE 64u       /* descriptors left to the rest of the process */
#define MIN_CONNS 4u         /* fewer free descriptors than this: refuse to start */
#define STOP_GRACE_MS 2000   /* hf_httpd_free waits this long for the 503s to be sent */
#define WATCH_EVENTS 128

/* A connection as tracked here (libmicrohttpd's socket context). */
typedef struct conn_sock {
	struct conn_sock *prev, *next; /* h->hdr list while its headers are awaited */
	uint64_t deadline_ms;
	int fd;
	bool in_hdr;
	bool reaped; /* shut down by the header deadline */
} conn_sock;

enum { P_WAITING, P_DONE, P_GONE };

struct hf_http_pending {
	pthread_mutex_t mu;
	atomic_int refs;
	int state;                    /* under mu */
	bool watched;                 /* registered in h->efd (under mu) */
	hf_httpd *h;                  /* valid while P_WAITING */
	struct MHD_Connection *conn;  /* valid while P_WAITING */
	int fd;
	hf_http_resp *resp;           /* the answer once no longer waiting; NULL: close */
	hf_http_gone_fn gone;
	void *arg;
	hf_http_pending *prev, *next; /* h->waiting, under h->lock */
	hf_http_pending *rel_next;    /* h->release, under h->lock */
	hf_http_pending *stop_next;   /* hf_httpd_free's detached list */
};

/* One request (libmicrohttpd's con_cls). */
typedef struct conn_state {
	hf_httpd *h;
	hf_buf body;
	bool too_big;
	hf_http_pending *pending; /* the request's reference */
} conn_state;

struct hf_httpd {
	struct MHD_Daemon *mhd;
	const hf_http_route *routes;
	size_t nroutes;
	void *ctx;
	size_t max_body;
	unsigned max_conns;
	uint64_t header_timeout_ms;
	uint16_t port;
	bool epoll;
	bool tls;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* ndeferred fell to 0 */
	conn_sock *hdr_head, *hdr_tail; /* by deadline: appended with now + the same timeout */
	hf_http_pending *waiting;
	hf_http_pending *release; /* watcher references to drop on the watcher thread */
	unsigned nconns, nwaiting, ndeferred;
	bool stopping;
	uint64_t refused, header_timeouts, gone_total;
	int efd;    /* epoll: sockets of deferred requests, for hang-ups; wakefd */
	int wakefd; /* eventfd: wakes the watcher to stop */
	atomic_bool stop_watcher;
	pthread_t watcher;
	bool watcher_started;
};

/* ---- responses ---- */

void hf_http_resp_init(hf_http_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	hf_buf_init(&resp->body, 0);
}

void hf_http_resp_clear(hf_http_resp *resp)
{
	hf_buf_free(&resp->body);
	hf_http_resp_init(resp);
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
	hf_text_clean_inplace(msg);
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

/* ---- routing ---- */

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

/* Valid UTF-8 without C0/C1 control characters or DEL. */
static bool text_clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);

	if (!hf_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f || (u[i] == 0xc2 && i + 1 < n && u[i + 1] < 0xa0))
			return false;
	}
	return true;
}

/* src cleaned for an error message; cut on a character boundary, with "...", past dstsz. */
static void quote(char *dst, size_t dstsz, const char *src)
{
	if (!hf_text_clean(dst, dstsz - 3, src, strlen(src)))
		strcat(dst, "...");
}

static void dispatch(hf_httpd *h, hf_http_req *req, hf_http_resp *resp)
{
	char caps[HF_HTTP_MAX_PARAMS][SEG_MAX];
	char allow[128] = "", qpath[QUOTE_MAX], qmethod[40];
	conn_state *cs = req->state;
	size_t ncaps;
	bool path_known = false;
	const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;

	quote(qpath, sizeof qpath, req->path);
	if (!text_clean(req->path)) {
		hf_http_resp_error(resp, 400, "request path is not valid UTF-8 or holds control characters: %s",
				   qpath);
		return;
	}
	for (size_t i = 0; i < h->nroutes; i++) {
		if (!route_match(h->routes[i].pattern, req->path, caps, &ncaps))
			continue;
		if (strcmp(h->routes[i].method, method) == 0) {
			for (size_t k = 0; k < ncaps; k++)
				req->params[k] = caps[k];
			req->nparams = ncaps;
			h->routes[i].fn(h->ctx, req, resp);
			if (!cs->pending && resp->status == 0)
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
		quote(qmethod, sizeof qmethod, req->method);
		hf_http_resp_header(resp, "Allow", allow);
		hf_http_resp_error(resp, 405, "method %s not allowed on %s (allowed: %s)", qmethod,
				   qpath, allow);
	} else {
		hf_http_resp_error(resp, 404, "no such path: %s", qpath);
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

/* ---- connections: count, cap, header deadline ---- */

static void hdr_remove(hf_httpd *h, conn_sock *s)
{
	if (!s->in_hdr)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		h->hdr_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		h->hdr_tail = s->prev;
	s->prev = s->next = NULL;
	s->in_hdr = false;
}

/* Starts the header deadline of s now (h->lock held). */
static void hdr_arm(hf_httpd *h, conn_sock *s)
{
	if (s->in_hdr || s->reaped)
		return;
	s->deadline_ms = hf_mono_ms() + h->header_timeout_ms;
	s->prev = h->hdr_tail;
	s->next = NULL;
	if (h->hdr_tail)
		h->hdr_tail->next = s;
	else
		h->hdr_head = s;
	h->hdr_tail = s;
	s->in_hdr = true;
}

static conn_sock *sock_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static mhd_result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	hf_httpd *h = cls;
	bool ok;

	(void)addr;
	(void)addrlen;
	pthread_mutex_lock(&h->lock);
	ok = h->nconns < h->max_conns;
	if (!ok)
		h->refused++;
	pthread_mutex_unlock(&h->lock);
	return ok ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	hf_httpd *h = cls;
	conn_sock *s;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		s = calloc(1, sizeof *s);
		if (s)
			s->fd = ci ? ci->connect_fd : -1;
		if (s && s->fd < 0) {
			free(s);
			s = NULL;
		}
		*socket_context = s;
		pthread_mutex_lock(&h->lock);
		h->nconns++;
		if (s)
			hdr_arm(h, s);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	/* Closed: libmicrohttpd closes the descriptor after this returns, so once s is out of the
	 * list under the lock the watcher can no longer shut it down. */
	s = *socket_context;
	pthread_mutex_lock(&h->lock);
	h->nconns--;
	if (s)
		hdr_remove(h, s);
	pthread_mutex_unlock(&h->lock);
	free(s);
	*socket_context = NULL;
}

/* The headers are in: the deadline no longer applies. false if it had already passed. */
static bool headers_done(hf_httpd *h, struct MHD_Connection *conn)
{
	conn_sock *s = sock_of(conn);
	bool ok = true;

	if (!s)
		return true;
	pthread_mutex_lock(&h->lock);
	if (s->reaped)
		ok = false;
	hdr_remove(h, s);
	pthread_mutex_unlock(&h->lock);
	return ok;
}

/* Shuts down connections past their header deadline; returns ms until the next one is due. */
static int reap_headers(hf_httpd *h)
{
	uint64_t now = hf_mono_ms(), wait = h->header_timeout_ms;

	pthread_mutex_lock(&h->lock);
	while (h->hdr_head && h->hdr_head->deadline_ms <= now) {
		conn_sock *s = h->hdr_head;
		shutdown(s->fd, SHUT_RDWR);
		s->reaped = true;
		hdr_remove(h, s);
		h->header_timeouts++;
	}
	if (h->hdr_head)
		wait = h->hdr_head->deadline_ms - now;
	pthread_mutex_unlock(&h->lock);
	return (int)(wait > INT_MAX ? INT_MAX : wait);
}

/* ---- deferred requests ---- */

static void pending_unref(hf_http_pending *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&p->mu);
	if (p->resp) {
		hf_http_resp_clear(p->resp);
		free(p->resp);
	}
	free(p);
}

/* Takes p out of h->waiting (h->lock held). */
static void waiting_remove(hf_httpd *h, hf_http_pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else if (h->waiting == p)
		h->waiting = p->next;
	else
		return; /* not listed (detached by hf_httpd_free) */
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	h->nwaiting--;
}

/* Leaves P_WAITING for state with answer r (NULL: close) and resumes the connection. p->mu
 * held. Returns whether the caller now holds the watcher's reference (on_watcher: it drops
 * it itself; otherwise it was queued for the watcher). */
static bool leave_waiting(hf_http_pending *p, int state, hf_http_resp *r, bool on_watcher)
{
	hf_httpd *h = p->h;
	bool watch_ref = false;

	p->state = state;
	p->resp = r;
	pthread_mutex_lock(&h->lock);
	waiting_remove(h, p);
	if (on_watcher)
		h->gone_total++; /* the watcher only ever sees clients leave */
	if (p->watched) {
		epoll_ctl(h->efd, EPOLL_CTL_DEL, p->fd, NULL);
		p->watched = false;
		if (on_watcher) {
			watch_ref = true;
		} else {
			p->rel_next = h->release;
			h->release = p;
		}
	}
	pthread_mutex_unlock(&h->lock);
	MHD_resume_connection(p->conn);
	p->conn = NULL;
	p->h = NULL;
	return watch_ref;
}

hf_http_pending *hf_http_defer(const hf_http_req *req, hf_http_gone_fn gone, void *arg)
{
	conn_state *cs = req->state;
	const union MHD_ConnectionInfo *ci;
	struct epoll_event ev = { .events = EPOLLRDHUP };
	hf_http_pending *p;
	hf_httpd *h;

	if (!cs || cs->pending)
		return NULL;
	h = cs->h;
	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci || !(p = calloc(1, sizeof *p)))
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	atomic_init(&p->refs, 3); /* the owner's, the request's, the watcher's */
	p->h = h;
	p->conn = req->conn;
	p->fd = ci->connect_fd;
	p->gone = gone;
	p->arg = arg;
	p->state = P_WAITING;
	ev.data.ptr = p;
	pthread_mutex_lock(&p->mu);
	pthread_mutex_lock(&h->lock);
	if (h->stopping || epoll_ctl(h->efd, EPOLL_CTL_ADD, p->fd, &ev) != 0) {
		pthread_mutex_unlock(&h->lock);
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return NULL;
	}
	p->watched = true;
	MHD_suspend_connection(req->conn);
	p->next = h->waiting;
	if (h->waiting)
		h->waiting->prev = p;
	h->waiting = p;
	h->nwaiting++;
	h->ndeferred++;
	pthread_mutex_unlock(&h->lock);
	cs->pending = p;
	pthread_mutex_unlock(&p->mu);
	return p;
}

int hf_http_pending_complete(hf_http_pending *p, hf_http_resp *resp)
{
	hf_http_resp *r = malloc(sizeof *r);
	int rc = HF_ECANCELED;

	if (r) {
		if (resp) {
			*r = *resp;
			hf_http_resp_init(resp);
		} else {
			hf_http_resp_init(r);
		}
		if (r->status == 0)
			hf_http_resp_error(r, 500, "handler produced no response");
	}
	pthread_mutex_lock(&p->mu);
	if (p->state == P_WAITING) {
		rc = r ? 0 : HF_ENOMEM;
		leave_waiting(p, r ? P_DONE : P_GONE, r, false);
		r = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (r) {
		hf_http_resp_clear(r);
		free(r);
	}
	pending_unref(p);
	return rc;
}

int hf_http_pending_complete_json(hf_http_pending *p, int status, json_t *j)
{
	hf_http_resp r;
	hf_http_resp_init(&r);
	hf_http_resp_json(&r, status, j);
	return hf_http_pending_complete(p, &r);
}

/* The watcher saw a hang-up on p's socket (or a stale event after p left P_WAITING). */
static void client_gone(hf_http_pending *p)
{
	hf_http_gone_fn fn = NULL;
	bool watch_ref = false;

	pthread_mutex_lock(&p->mu);
	if (p->state == P_WAITING) {
		fn = p->gone;
		watch_ref = leave_waiting(p, P_GONE, NULL, true);
	}
	pthread_mutex_unlock(&p->mu);
	if (fn)
		fn(p->arg, p);
	if (watch_ref)
		pending_unref(p);
}

/* The answer of a resumed request: send it, or close when there is none. */
static mhd_result send_deferred(struct MHD_Connection *conn, hf_http_pending *p)
{
	hf_http_resp *r;
	mhd_result ret;

	pthread_mutex_lock(&p->mu);
	r = p->state == P_WAITING ? NULL : p->resp;
	if (r)
		p->resp = NULL;
	pthread_mutex_unlock(&p->mu);
	if (!r)
		return MHD_NO;
	ret = send_resp(conn, r);
	hf_http_resp_clear(r);
	free(r);
	return ret;
}

static void drain_release(hf_httpd *h)
{
	hf_http_pending *p, *next;

	pthread_mutex_lock(&h->lock);
	p = h->release;
	h->release = NULL;
	pthread_mutex_unlock(&h->lock);
	for (; p; p = next) {
		next = p->rel_next;
		pending_unref(p);
	}
}

static void *watch_main(void *arg)
{
	hf_httpd *h = arg;
	struct epoll_event ev[WATCH_EVENTS];

	while (!atomic_load(&h->stop_watcher)) {
		/* Every batch fetched before this point has been handled: the references queued by
		 * threads that took their socket out of efd can go. */
		drain_release(h);
		int n = epoll_wait(h->efd, ev, WATCH_EVENTS, reap_headers(h));
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr)
				client_gone(ev[i].data.ptr);
		}
	}
	drain_release(h);
	return NULL;
}

/* ---- libmicrohttpd callbacks ---- */

static mhd_result answer(hf_httpd *h, struct MHD_Connection *conn, conn_state *cs, const char *url,
			 const char *method)
{
	hf_http_resp resp;
	hf_http_req req;
	mhd_result ret;

	hf_http_resp_init(&resp);
	if (cs->too_big) {
		hf_http_resp_error(&resp, 413, "request body over the limit of %zu bytes", h->max_body);
	} else {
		memset(&req, 0, sizeof req);
		req.method = method;
		req.path = url;
		req.body = cs->body.data ? cs->body.data : "";
		req.body_len = cs->body.len;
		req.conn = conn;
		req.state = cs;
		dispatch(h, &req, &resp);
	}
	if (cs->pending) {
		hf_http_resp_clear(&resp);
		return MHD_YES; /* suspended: answered later */
	}
	ret = send_resp(conn, &resp);
	hf_http_resp_clear(&resp);
	return ret;
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_data_size, void **con_cls)
{
	hf_httpd *h = cls;
	conn_state *cs = *con_cls;

	(void)version;
	if (!cs) {
		if (!headers_done(h, conn))
			return MHD_NO; /* too late: the watcher has shut the socket down */
		cs = calloc(1, sizeof *cs);
		if (!cs)
			return MHD_NO;
		cs->h = h;
		hf_buf_init(&cs->body, h->max_body);
		*con_cls = cs;
		return MHD_YES;
	}
	if (cs->pending)
		return send_deferred(conn, cs->pending);
	if (*upload_data_size > 0) {
		if (!cs->too_big && hf_buf_append(&cs->body, upload_data, *upload_data_size) < 0)
			cs->too_big = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return answer(h, conn, cs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	hf_httpd *h = cls;
	conn_state *cs = *con_cls;
	conn_sock *s = sock_of(conn);

	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && s) {
		/* A kept-alive connection now waits for its next request's headers. */
		pthread_mutex_lock(&h->lock);
		hdr_arm(h, s);
		pthread_mutex_unlock(&h->lock);
	}
	if (!cs)
		return;
	if (cs->pending) {
		/* The pending has left P_WAITING: a suspended connection is neither processed nor
		 * closed by libmicrohttpd, and hf_httpd_free resumes every one before stopping. */
		pthread_mutex_lock(&h->lock);
		if (--h->ndeferred == 0)
			pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pending_unref(cs->pending);
	}
	hf_buf_free(&cs->body);
	free(cs);
	*con_cls = NULL;
}

/* ---- server ---- */

/* Descriptors this process can still open under its soft RLIMIT_NOFILE. */
static uint64_t fds_free(void)
{
	struct rlimit rl;
	uint64_t open = 0;
	DIR *d;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	d = opendir("/proc/self/fd");
	if (d) {
		while (readdir(d))
			open++;
		closedir(d);
		open = open > 3 ? open - 3 : 0; /* ".", ".." and d's own descriptor */
	} else {
		open = 64;
	}
	return rl.rlim_cur > open ? rl.rlim_cur - open : 0;
}

int hf_httpd_raise_fd_limit(uint64_t *before, uint64_t *after)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return HF_EIO;
	*before = *after = rl.rlim_cur;
	want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > HF_HTTPD_FD_LIMIT_CAP ? HF_HTTPD_FD_LIMIT_CAP
										    : rl.rlim_max;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return 0;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return HF_EIO;
	*after = want;
	return 0;
}

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, bool *v6)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	*v6 = false;
	if (host && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return 0;
	}
	if (host && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*v6 = true;
		return 0;
	}
	return HF_ECONFIG;
}

/* Fills h's limits from opts; the connection cap lowered to what RLIMIT_NOFILE leaves. */
static int set_limits(hf_httpd *h, const hf_httpd_opts *opts, unsigned *threads, hf_errbuf *eb)
{
	uint64_t avail, need;

	*threads = opts->threads ? opts->threads : HF_HTTPD_DEFAULT_THREADS;
	if (*threads > HF_HTTPD_MAX_THREADS)
		return hf_fail(eb, HF_ECONFIG, "threads: expected 1 to %u, got %u", HF_HTTPD_MAX_THREADS,
			       *threads);
	h->max_body = opts->max_body ? opts->max_body : (1u << 20);
	h->max_conns = opts->max_conns ? opts->max_conns : HF_HTTPD_DEFAULT_MAX_CONNS;
	h->header_timeout_ms = 1000ull * (opts->header_timeout_s ? opts->header_timeout_s
								  : HF_HTTPD_DEFAULT_HEADER_TIMEOUT_S);
	/* Each server thread holds an epoll and an eventfd; the server a listen socket, an epoll
	 * and an eventfd of its own. */
	need = FD_RESERVE + 2ull * *threads + 3;
	avail = fds_free();
	avail = avail > need ? avail - need : 0;
	if (avail < MIN_CONNS)
		return hf_fail(eb, HF_ECONFIG,
			       "the file descriptor limit (RLIMIT_NOFILE) leaves %llu descriptors for connections "
			       "(at least %u needed): raise it (LimitNOFILE= under systemd, ulimit -n)",
			       (unsigned long long)avail, MIN_CONNS);
	if (avail < h->max_conns)
		h->max_conns = (unsigned)avail;
	return 0;
}

static int start_watcher(hf_httpd *h, hf_errbuf *eb)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	h->efd = epoll_create1(EPOLL_CLOEXEC);
	h->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd < 0 || h->wakefd < 0 || epoll_ctl(h->efd, EPOLL_CTL_ADD, h->wakefd, &ev) != 0)
		return hf_fail(eb, HF_EIO, "cannot create the server's epoll/eventfd: %s", strerror(errno));
	if (pthread_create(&h->watcher, NULL, watch_main, h) != 0)
		return hf_fail(eb, HF_EIO, "cannot start the server's watcher thread");
	h->watcher_started = true;
	return 0;
}

static void stop_watcher(hf_httpd *h)
{
	uint64_t one = 1;

	if (h->watcher_started) {
		atomic_store(&h->stop_watcher, true);
		if (write(h->wakefd, &one, sizeof one) < 0) {
			/* the counter is non-zero already: the watcher wakes anyway */
		}
		pthread_join(h->watcher, NULL);
		h->watcher_started = false;
	}
	drain_release(h);
	if (h->efd >= 0)
		close(h->efd);
	if (h->wakefd >= 0)
		close(h->wakefd);
	h->efd = h->wakefd = -1;
}

static struct MHD_Daemon *start_mhd(hf_httpd *h, const hf_httpd_opts *opts, unsigned threads,
				    struct sockaddr_storage *ss, bool v6)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
	unsigned backlog = h->max_conns < 128 ? 128 : h->max_conns;
	/* libmicrohttpd splits its own cap evenly between server threads and stops accepting on a
	 * full one; the cap here is enforced by on_accept over all threads, so libmicrohttpd's is
	 * set out of the way (each thread could take every connection). */
	uint64_t mhd_cap = (uint64_t)h->max_conns * threads + threads;
	struct MHD_OptionItem o[12];
	size_t n = 0;

	h->epoll = MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES;
	flags |= h->epoll ? MHD_USE_EPOLL : MHD_USE_POLL;
	if (v6)
		flags |= MHD_USE_IPv6;
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, ss };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
					  (intptr_t)(mhd_cap > UINT_MAX ? UINT_MAX : mhd_cap), NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
					  opts->timeout_s ? opts->timeout_s : HF_HTTPD_DEFAULT_TIMEOUT_S, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_BACKLOG_SIZE, backlog, NULL };
	if (opts->max_conns_per_ip)
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
						  opts->max_conns_per_ip, NULL };
	if (threads > 1)
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
	if (h->tls) {
		flags |= MHD_USE_TLS;
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)opts->tls_cert_pem };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)opts->tls_key_pem };
	}
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	return MHD_start_daemon(flags, opts->port, on_accept, h, on_request, h,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
				MHD_OPTION_ARRAY, o, MHD_OPTION_END);
}

int hf_httpd_new(const hf_httpd_opts *opts, const hf_http_route *routes, size_t nroutes,
		 void *ctx, hf_httpd **out, hf_errbuf *eb)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned threads;
	bool v6;
	hf_httpd *h;
	int r;

	*out = NULL;
	if (!opts->tls_cert_pem != !opts->tls_key_pem)
		return hf_fail(eb, HF_ECONFIG, "TLS needs both a certificate and its key");
	if (opts->tls_cert_pem && !hf_httpd_tls_supported())
		return hf_fail(eb, HF_EUNSUPPORTED, "this libmicrohttpd has no TLS support (built "
			       "without GnuTLS)");
	if (parse_addr(opts->host, opts->port, &ss, &v6) < 0)
		return hf_fail(eb, HF_ECONFIG, "listen address \"%s\" is not a numeric IPv4 or IPv6 address",
			       opts->host ? opts->host : "");
	h = calloc(1, sizeof *h);
	if (!h)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	h->routes = routes;
	h->nroutes = nroutes;
	h->ctx = ctx;
	h->efd = h->wakefd = -1;
	h->tls = opts->tls_cert_pem != NULL;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	atomic_init(&h->stop_watcher, false);
	if ((r = set_limits(h, opts, &threads, eb)) < 0 || (r = start_watcher(h, eb)) < 0)
		goto fail;
	h->mhd = start_mhd(h, opts, threads, &ss, v6);
	if (!h->mhd) {
		r = hf_fail(eb, HF_EIO, h->tls ? "cannot listen on %s port %u (address in use or not "
			    "available, or the TLS certificate and key were refused)" :
			    "cannot listen on %s port %u (address in use or not available)",
			    opts->host, opts->port);
		goto fail;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : opts->port;
	*out = h;
	return 0;
fail:
	stop_watcher(h);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return r;
}

bool hf_httpd_tls_supported(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

uint16_t hf_httpd_port(const hf_httpd *h)
{
	return h->port;
}

unsigned hf_httpd_max_conns(const hf_httpd *h)
{
	return h->max_conns;
}

void hf_httpd_get_stats(hf_httpd *h, hf_httpd_stats *st)
{
	pthread_mutex_lock(&h->lock);
	st->connections = h->nconns;
	st->deferred = h->nwaiting;
	st->refused_total = h->refused;
	st->header_timeouts_total = h->header_timeouts;
	st->deferred_gone_total = h->gone_total;
	st->epoll = h->epoll;
	st->tls = h->tls;
	pthread_mutex_unlock(&h->lock);
}

/* Answers every waiting request 503 and tells its owner; new deferrals are refused from now. */
static void stop_waiting(hf_httpd *h)
{
	hf_http_pending *list = NULL, *p, *next;

	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	for (p = h->waiting; p; p = next) {
		next = p->next;
		atomic_fetch_add(&p->refs, 1); /* alive while listed: the request's reference */
		p->prev = p->next = NULL;
		p->stop_next = list;
		list = p;
	}
	h->waiting = NULL;
	h->nwaiting = 0;
	pthread_mutex_unlock(&h->lock);
	for (p = list; p; p = next) {
		hf_http_gone_fn fn = NULL;
		next = p->stop_next;
		pthread_mutex_lock(&p->mu);
		if (p->state == P_WAITING) {
			hf_http_resp *r = malloc(sizeof *r);
			if (r) {
				hf_http_resp_init(r);
				hf_http_resp_header(r, "Retry-After", "5");
				hf_http_resp_error(r, 503, "server shutting down");
			}
			fn = p->gone;
			leave_waiting(p, P_GONE, r, false);
		}
		pthread_mutex_unlock(&p->mu);
		if (fn)
			fn(p->arg, p);
		pending_unref(p);
	}
}

void hf_httpd_free(hf_httpd *h)
{
	struct timespec ts;

	if (!h)
		return;
	stop_waiting(h);
	hf_abstime_after_ms(STOP_GRACE_MS, &ts);
	pthread_mutex_lock(&h->lock);
	while (h->ndeferred > 0) {
		if (pthread_cond_timedwait(&h->cond, &h->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&h->lock);
	MHD_stop_daemon(h->mhd);
	stop_watcher(h);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
