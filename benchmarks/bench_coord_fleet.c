/* bench_coord_fleet: N simulated nodes of `hashflop-bench coord` on one epoll loop: each polling
 * node keeps one kept-alive connection holding GET /v1/nodes/{id}/instruction?after=&wait= with
 * its bearer token (re-polling at once after each answer, like hashflopd's control channel),
 * reports (node report v1) go over a small pool of kept-alive connections on a schedule, and one
 * admin connection carries the decisions being measured.
 *
 * Invariants: connections are spread round-robin over the source addresses 127.0.0.1..K (bound
 * before connect with IP_BIND_ADDRESS_NO_PORT, so each address has its own ephemeral ports);
 * at most max_connecting connects are in flight; a connection has at most one request
 * outstanding; a poll lost to a closed connection is re-sent on a new one (counted); a response
 * is capped (bench_coord_http.c) and a malformed one closes its connection (counted).
 * Threading: one thread drives a bc_fleet (bc_fleet_run); nothing is shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_coord.h"
#include "hf_error.h"
#include "hf_instr.h"
#include "hf_text.h"
#include "hf_util.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define IN_CAP_MAX (BC_HTTP_HEAD_MAX + BC_HTTP_BODY_MAX + 64)
#define READ_CHUNK 65536
#define RETRY_MS 200
#define MAX_EVENTS 1024
#define REPORT_LATE_US 1000000u

enum { K_POLL, K_REPORT, K_ADMIN };
enum { S_CLOSED, S_QUEUED, S_CONNECTING, S_IDLE, S_BUSY, S_DELAY };

typedef struct conn {
	int fd;
	uint8_t kind, state;
	bool want_out;     /* EPOLLOUT registered */
	bool resend;       /* report: re-send node's report once reconnected */
	bool resend_used;  /* report: this report was re-sent already */
	uint16_t src;
	uint32_t node;     /* poll: its node; report: the node whose report is in flight */
	char *out;         /* unsent request bytes (malloc'ed) or NULL */
	uint32_t out_off, out_len;
	char *in;          /* a partial response (malloc'ed) or NULL */
	uint32_t in_len, in_cap;
	uint64_t retry_at_ms;
} conn;

typedef struct node {
	uint64_t held;     /* issued_ms of the newest envelope held */
	uint64_t seq;      /* reports sent */
	bool tracked;      /* counted for the tracked decision */
} node;

struct bc_fleet {
	bc_fleet_opts o;
	int ep;
	conn *c;           /* polling poll conns, then report_conns, then the admin conn */
	unsigned nconn, admin;
	node *n;
	uint32_t *cq;      /* connect queue (ring of conn indices) */
	unsigned cq_head, cq_len, connecting;
	uint32_t *delayed; /* conns in S_DELAY */
	unsigned ndelayed;
	uint32_t *idle_rep; /* report conns in S_IDLE */
	unsigned nidle_rep;
	char *rbuf, *scratch, *payload;
	bc_fleet_stats st;
	/* reports */
	bc_report_mode rmode;
	double interval_s;
	uint64_t rep_t0_us, rep_issued; /* schedule start, reports taken since */
	/* tracking */
	uint64_t track_floor, track_t0;
	uint32_t *lat;
	unsigned track_done;
	/* admin */
	bool admin_done;
	uint64_t admin_at_us;
	int admin_status;
	char *admin_body;
	size_t admin_len;
};

static void set_err(char *err, size_t sz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t sz, const char *fmt, ...)
{
	va_list ap;
	if (!err || !sz)
		return;
	va_start(ap, fmt);
	vsnprintf(err, sz, fmt, ap);
	va_end(ap);
}

static void ep_set(bc_fleet *f, conn *c, unsigned idx, bool out, bool add)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = idx };
	if (!add && c->want_out == out)
		return;
	epoll_ctl(f->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = out;
}

static void conn_reset(bc_fleet *f, conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		if (c->kind == K_POLL && c->state != S_CONNECTING && f->st.polling_connected)
			f->st.polling_connected--;
	}
	if (c->state == S_CONNECTING && f->connecting)
		f->connecting--;
	c->fd = -1;
	free(c->out);
	free(c->in);
	c->out = c->in = NULL;
	c->out_off = c->out_len = c->in_len = c->in_cap = 0;
	c->want_out = false;
	c->state = S_CLOSED;
}

static void queue_connect(bc_fleet *f, unsigned idx)
{
	unsigned cap = f->nconn;
	f->cq[(f->cq_head + f->cq_len) % cap] = idx;
	f->cq_len++;
	f->c[idx].state = S_QUEUED;
}

static void delay_conn(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	conn_reset(f, c);
	c->state = S_DELAY;
	c->retry_at_ms = hf_mono_ms() + RETRY_MS;
	f->delayed[f->ndelayed++] = idx;
}

static int start_connect(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	struct sockaddr_in src = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(0x7f000001u + c->src) };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0 ||
	    (connect(c->fd, (struct sockaddr *)&f->o.server, sizeof f->o.server) != 0 &&
	     errno != EINPROGRESS)) {
		int e = -errno;
		close(c->fd);
		c->fd = -1;
		return e;
	}
	c->state = S_CONNECTING;
	f->connecting++;
	ep_set(f, c, idx, true, true);
	return 0;
}

static void pump_connects(bc_fleet *f)
{
	while (f->cq_len > 0 && f->connecting < f->o.max_connecting) {
		unsigned idx = f->cq[f->cq_head];
		f->cq_head = (f->cq_head + 1) % f->nconn;
		f->cq_len--;
		if (start_connect(f, idx) < 0) {
			f->st.connect_errors++;
			delay_conn(f, idx);
		}
	}
}

/* Sends what it can of req; the rest waits for EPOLLOUT. false when the connection failed. */
static bool conn_send(bc_fleet *f, unsigned idx, const char *req, size_t len)
{
	conn *c = &f->c[idx];
	ssize_t w;
	do
		w = send(c->fd, req, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN)
		return false;
	c->state = S_BUSY;
	if (w < 0)
		w = 0;
	if ((size_t)w == len)
		return true;
	c->out = malloc(len - (size_t)w);
	if (!c->out)
		return false;
	memcpy(c->out, req + w, len - (size_t)w);
	c->out_off = 0;
	c->out_len = (uint32_t)(len - (size_t)w);
	ep_set(f, c, idx, true, false);
	return true;
}

static void conn_failed(bc_fleet *f, unsigned idx);

static void send_poll(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	char req[512];
	int n = snprintf(req, sizeof req,
			 "GET /v1/nodes/%s/instruction?after=%llu&wait=%u HTTP/1.1\r\n"
			 "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
			 f->o.ids[c->node], (unsigned long long)f->n[c->node].held, f->o.wait_s,
			 f->o.tokens[c->node]);
	if (!conn_send(f, idx, req, (size_t)n)) {
		conn_failed(f, idx);
		return;
	}
	f->st.polls_sent++;
	f->st.polls_outstanding++;
}

static void send_report(bc_fleet *f, unsigned idx, unsigned nd)
{
	conn *c = &f->c[idx];
	node *n = &f->n[nd];
	char body[1024], req[1536];
	n->seq++;
	int bl = snprintf(body, sizeof body,
			  "{\"v\":1,\"node\":\"%s\",\"fleet\":\"%s\",\"wall_ms\":%llu,\"seq\":%llu,"
			  "\"version\":\"%s\",\"applied_issued_ms\":%llu,\"mode\":\"mining\","
			  "\"desired_mode\":\"mining\",\"phase\":\"running\",\"converged\":true,"
			  "\"convergence\":\"converged\",\"hashrate_hs\":%u000000,\"flops\":0,"
			  "\"inferences_per_s\":0,\"power\":{\"watts\":%u.5,\"joules_total\":%llu,"
			  "\"source\":\"estimate\",\"boundary\":\"node\",\"estimated\":true,"
			  "\"window_s\":60,\"window_watts\":%u.25,\"mh_per_j\":%u.125,"
			  "\"gflop_per_j\":null,\"inferences_per_j\":null},\"last_switch\":null}",
			  f->o.ids[nd], f->o.fleet_id, (unsigned long long)hf_wall_ms(),
			  (unsigned long long)n->seq, f->o.version, (unsigned long long)n->held,
			  1000u + nd % 977u, 3000u + nd % 500u,
			  (unsigned long long)(n->seq * 32500u), 3000u + nd % 500u, 300u + nd % 17u);
	int rl = snprintf(req, sizeof req,
			  "POST /v1/nodes/%s/report HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			  "Content-Length: %d\r\n\r\n%s",
			  f->o.ids[nd], f->o.tokens[nd], bl, body);
	c->node = nd;
	if (!conn_send(f, idx, req, (size_t)rl)) {
		conn_failed(f, idx);
		return;
	}
	f->st.reports_sent++;
}

/* The next report due (or any, saturating), onto idle report connections. */
static void pump_reports(bc_fleet *f)
{
	if (f->rmode == BC_REPORTS_OFF || f->o.nodes == 0)
		return;
	uint64_t now = hf_mono_us();
	while (f->nidle_rep > 0) {
		if (f->rmode == BC_REPORTS_INTERVAL) {
			double per_us = f->interval_s * 1e6 / f->o.nodes;
			uint64_t due_us = f->rep_t0_us + (uint64_t)((double)f->rep_issued * per_us);
			if (due_us > now)
				return;
			if (now - due_us > REPORT_LATE_US)
				f->st.reports_late++;
		}
		unsigned idx = f->idle_rep[--f->nidle_rep];
		unsigned nd = (unsigned)(f->rep_issued++ % f->o.nodes);
		send_report(f, idx, nd);
	}
}

static void conn_ready(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	c->state = S_IDLE;
	if (c->kind == K_POLL) {
		f->st.polling_connected++;
		send_poll(f, idx);
	} else if (c->kind == K_REPORT && c->resend) {
		c->resend = false;
		send_report(f, idx, c->node);
	} else if (c->kind == K_REPORT) {
		f->idle_rep[f->nidle_rep++] = idx;
	}
}

/* A connection closed or failed: a poll is re-sent on a new connection, and so is a report
 * that got no answer byte yet (once: the server may close an idle kept-alive connection just as
 * a request leaves, as curl also assumes); a report that fails again is lost (counted); the
 * admin request fails. */
static void conn_failed(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	bool busy = c->state == S_BUSY;
	if (c->kind == K_POLL && busy && f->st.polls_outstanding)
		f->st.polls_outstanding--;
	if (c->kind == K_REPORT && busy) {
		if (!c->in && !c->resend_used) {
			c->resend = c->resend_used = true;
			f->st.report_resends++;
		} else {
			f->st.reports_other++;
			c->resend_used = false;
		}
	}
	if (c->kind == K_REPORT && c->state == S_IDLE) {
		for (unsigned i = 0; i < f->nidle_rep; i++)
			if (f->idle_rep[i] == idx) {
				f->idle_rep[i] = f->idle_rep[--f->nidle_rep];
				break;
			}
	}
	if (c->kind == K_ADMIN) {
		conn_reset(f, c);
		if (busy) {
			f->admin_done = true;
			f->admin_at_us = hf_mono_us();
			f->admin_status = 0;
			f->admin_len = 0;
		}
		return;
	}
	if (c->kind == K_POLL && busy)
		f->st.poll_reconnects++;
	conn_reset(f, c);
	queue_connect(f, idx);
}

/* issued_ms of an envelope {"payload": B64URL(...), ...}; 0 when it has none. */
static uint64_t envelope_issued(bc_fleet *f, const char *body, size_t len)
{
	const char *k = memmem(body, len, "\"payload\"", 9);
	if (!k)
		return 0;
	const char *q = memchr(k + 9, '"', len - (size_t)(k + 9 - body));
	if (!q)
		return 0;
	const char *e = memchr(q + 1, '"', len - (size_t)(q + 1 - body));
	size_t plen;
	if (!e || !hf_b64url_decode(q + 1, (size_t)(e - q - 1), (uint8_t *)f->payload,
				    HF_INSTR_MAX_ENVELOPE, &plen))
		return 0;
	f->payload[plen] = '\0';
	const char *v = strstr(f->payload, "\"issued_ms\":");
	return v ? strtoull(v + 12, NULL, 10) : 0;
}

static void note_bad(bc_fleet *f, int status, const char *body, size_t len)
{
	f->st.last_bad_status = status;
	hf_text_clean(f->st.last_bad_body, sizeof f->st.last_bad_body, body,
		      len < 150 ? len : 150);
}

static void on_poll_answer(bc_fleet *f, unsigned idx, const bc_http_resp *r)
{
	conn *c = &f->c[idx];
	node *n = &f->n[c->node];
	if (f->st.polls_outstanding)
		f->st.polls_outstanding--;
	c->state = S_IDLE;
	if (r->status == 200) {
		f->st.polls_200++;
		uint64_t iss = envelope_issued(f, r->body, r->body_len);
		if (iss == 0) {
			f->st.parse_errors++;
		} else if (iss > n->held) {
			n->held = iss;
			if (f->lat && iss > f->track_floor && !n->tracked) {
				uint64_t d = hf_mono_us() - f->track_t0;
				f->lat[c->node] = d > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)d;
				n->tracked = true;
				f->track_done++;
			}
		}
	} else if (r->status == 204) {
		f->st.polls_204++;
	} else {
		f->st.polls_other++;
		note_bad(f, r->status, r->body, r->body_len);
		delay_conn(f, idx); /* a refusal or a 503: retry a little later */
		return;
	}
	if (r->close)
		conn_failed(f, idx);
	else
		send_poll(f, idx);
}

static void on_answer(bc_fleet *f, unsigned idx, const bc_http_resp *r)
{
	conn *c = &f->c[idx];
	if (c->kind == K_POLL) {
		on_poll_answer(f, idx, r);
		return;
	}
	c->state = S_IDLE;
	if (c->kind == K_REPORT) {
		c->resend_used = false;
		if (r->status == 200) {
			f->st.reports_ok++;
		} else {
			f->st.reports_other++;
			note_bad(f, r->status, r->body, r->body_len);
		}
		if (r->close)
			conn_failed(f, idx);
		else
			f->idle_rep[f->nidle_rep++] = idx;
		return;
	}
	free(f->admin_body);
	f->admin_body = malloc(r->body_len + 1);
	if (f->admin_body) {
		memcpy(f->admin_body, r->body, r->body_len);
		f->admin_body[r->body_len] = '\0';
	}
	f->admin_len = f->admin_body ? r->body_len : 0;
	f->admin_status = r->status;
	f->admin_done = true;
	f->admin_at_us = hf_mono_us();
	if (r->close)
		conn_reset(f, c);
}

/* Parses every complete response in buf; the bytes consumed, or -1 when the connection must
 * go (malformed, or an answer nobody asked for). */
static ssize_t parse_all(bc_fleet *f, unsigned idx, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		conn *c = &f->c[idx];
		bc_http_resp r;
		ssize_t n = bc_http_parse(buf + off, len - off, f->scratch, &r);
		if (n == 0)
			break;
		if (n < 0 || c->state != S_BUSY) {
			f->st.parse_errors++;
			return -1;
		}
		off += (size_t)n;
		int fd = c->fd;
		on_answer(f, idx, &r);
		if (f->c[idx].fd != fd)
			return (ssize_t)len; /* closed or replaced: the rest belongs to the old one */
	}
	return (ssize_t)off;
}

static void on_readable(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	ssize_t got;
	do
		got = recv(c->fd, f->rbuf, READ_CHUNK, MSG_DONTWAIT);
	while (got < 0 && errno == EINTR);
	if (got < 0 && errno == EAGAIN)
		return;
	if (got <= 0) {
		if (got < 0)
			f->st.io_errors++;
		conn_failed(f, idx);
		return;
	}
	if (!c->in) {
		ssize_t used = parse_all(f, idx, f->rbuf, (size_t)got);
		if (used < 0) {
			conn_failed(f, idx);
			return;
		}
		c = &f->c[idx];
		if ((size_t)used == (size_t)got || c->fd < 0)
			return;
		size_t rest = (size_t)got - (size_t)used;
		c->in_cap = rest < 4096 ? 4096 : (uint32_t)rest;
		c->in = malloc(c->in_cap);
		if (!c->in) {
			conn_failed(f, idx);
			return;
		}
		memcpy(c->in, f->rbuf + used, rest);
		c->in_len = (uint32_t)rest;
		return;
	}
	if (c->in_len + (size_t)got > IN_CAP_MAX) {
		f->st.parse_errors++;
		conn_failed(f, idx);
		return;
	}
	if (c->in_len + (size_t)got > c->in_cap) {
		size_t cap = (size_t)c->in_cap * 2;
		while (cap < c->in_len + (size_t)got)
			cap *= 2;
		char *p = realloc(c->in, cap);
		if (!p) {
			conn_failed(f, idx);
			return;
		}
		c->in = p;
		c->in_cap = (uint32_t)cap;
	}
	memcpy(c->in + c->in_len, f->rbuf, (size_t)got);
	c->in_len += (uint32_t)got;
	char *in = c->in;
	c->in = NULL; /* parse_all may close c; we own the buffer meanwhile */
	size_t inlen = c->in_len;
	c->in_len = 0;
	ssize_t used = parse_all(f, idx, in, inlen);
	c = &f->c[idx];
	if (used < 0) {
		free(in);
		conn_failed(f, idx);
		return;
	}
	if ((size_t)used < inlen && c->fd >= 0) {
		memmove(in, in + used, inlen - (size_t)used);
		c->in = in;
		c->in_len = (uint32_t)(inlen - (size_t)used);
		return;
	}
	free(in);
	c->in_cap = 0;
}

static void on_writable(bc_fleet *f, unsigned idx)
{
	conn *c = &f->c[idx];
	if (c->state == S_CONNECTING) {
		int e = 0;
		socklen_t l = sizeof e;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
		if (e != 0) {
			f->st.connect_errors++;
			delay_conn(f, idx); /* conn_reset counts it out of connecting */
			return;
		}
		f->connecting--;
		ep_set(f, c, idx, false, false);
		conn_ready(f, idx);
		return;
	}
	if (!c->out) {
		ep_set(f, c, idx, false, false);
		return;
	}
	ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (w < 0) {
		f->st.io_errors++;
		conn_failed(f, idx);
		return;
	}
	c->out_off += (uint32_t)w;
	if (c->out_off == c->out_len) {
		free(c->out);
		c->out = NULL;
		ep_set(f, c, idx, false, false);
	}
}

static void retry_delayed(bc_fleet *f)
{
	uint64_t now = hf_mono_ms();
	for (unsigned i = 0; i < f->ndelayed;) {
		unsigned idx = f->delayed[i];
		if (f->c[idx].retry_at_ms > now) {
			i++;
			continue;
		}
		f->delayed[i] = f->delayed[--f->ndelayed];
		if (f->c[idx].kind == K_ADMIN)
			f->c[idx].state = S_CLOSED;
		else
			queue_connect(f, idx);
	}
}

static bool until_holds(const bc_fleet *f, bc_until until)
{
	switch (until) {
	case BC_UNTIL_ADMIN:
		return f->admin_done;
	case BC_UNTIL_TRACKED:
		return f->track_done >= f->o.polling;
	case BC_UNTIL_POLLS_SENT:
		return f->st.polling_connected >= f->o.polling &&
		       f->st.polls_outstanding >= f->o.polling;
	default:
		return false;
	}
}

int bc_fleet_run(bc_fleet *f, uint64_t ms, bc_until until, char *err, size_t errsz)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t end = hf_mono_ms() + ms;

	for (;;) {
		retry_delayed(f);
		pump_connects(f);
		pump_reports(f);
		if (until != BC_UNTIL_DEADLINE && until_holds(f, until))
			return 1;
		uint64_t now = hf_mono_ms();
		if (now >= end)
			return 0;
		int tmo = (int)(end - now);
		if (f->rmode != BC_REPORTS_OFF && tmo > 2)
			tmo = 2;
		if (f->ndelayed && tmo > RETRY_MS / 4)
			tmo = RETRY_MS / 4;
		int n = epoll_wait(f->ep, ev, MAX_EVENTS, tmo);
		if (n < 0 && errno != EINTR) {
			set_err(err, errsz, "epoll_wait: %s", strerror(errno));
			return HF_EIO;
		}
		for (int i = 0; i < n; i++) {
			unsigned idx = ev[i].data.u32;
			conn *c = &f->c[idx];
			if (c->fd < 0)
				continue;
			if (ev[i].events & (EPOLLOUT | EPOLLERR))
				on_writable(f, idx);
			if (f->c[idx].fd >= 0 && f->c[idx].state != S_CONNECTING &&
			    (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(f, idx);
		}
	}
}

void bc_fleet_connect_all(bc_fleet *f)
{
	for (unsigned i = 0; i < f->admin; i++)
		if (f->c[i].state == S_CLOSED)
			queue_connect(f, i);
}

void bc_fleet_set_reports(bc_fleet *f, bc_report_mode mode, double interval_s)
{
	f->rmode = mode;
	f->interval_s = interval_s > 0 ? interval_s : 10;
	f->rep_t0_us = hf_mono_us();
	f->rep_issued = 0;
}

void bc_fleet_stats_get(const bc_fleet *f, bc_fleet_stats *st)
{
	*st = f->st;
}

void bc_fleet_track(bc_fleet *f, uint64_t floor_issued_ms, uint64_t t0_us, uint32_t *lat_us)
{
	f->track_floor = floor_issued_ms;
	f->track_t0 = t0_us;
	f->lat = lat_us;
	f->track_done = 0;
	for (unsigned i = 0; i < f->o.polling; i++) {
		f->n[i].tracked = false;
		if (lat_us)
			lat_us[i] = UINT32_MAX;
	}
}

unsigned bc_fleet_tracked_done(const bc_fleet *f)
{
	return f->track_done;
}

uint64_t bc_fleet_max_held(const bc_fleet *f)
{
	uint64_t m = 0;
	for (unsigned i = 0; i < f->o.polling; i++)
		if (f->n[i].held > m)
			m = f->n[i].held;
	return m;
}

static int admin_connect(bc_fleet *f, conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&f->o.server, sizeof f->o.server) != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	c->state = S_IDLE;
	ep_set(f, c, f->admin, false, true);
	return 0;
}

int bc_fleet_admin_post(bc_fleet *f, const char *path, const char *body, const char *admin_token,
			uint64_t *t0_us, char *err, size_t errsz)
{
	conn *c = &f->c[f->admin];
	size_t blen = strlen(body), cap = blen + 1024;
	char *req = malloc(cap);

	if (!req)
		return HF_ENOMEM;
	if (c->fd >= 0)
		conn_reset(f, c); /* a fresh connection each time: an idle one may be closing */
	if (admin_connect(f, c) < 0) {
		free(req);
		set_err(err, errsz, "cannot connect to the coordinator: %s", strerror(errno));
		return HF_ENET;
	}
	int hl = snprintf(req, cap,
			  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n%s%s%s\r\n",
			  path, blen, admin_token ? "Authorization: Bearer " : "",
			  admin_token ? admin_token : "", admin_token ? "\r\n" : "");
	memcpy(req + hl, body, blen);
	f->admin_done = false;
	*t0_us = hf_mono_us();
	bool ok = conn_send(f, f->admin, req, (size_t)hl + blen);
	free(req);
	if (!ok) {
		conn_reset(f, c);
		set_err(err, errsz, "cannot send to the coordinator: %s", strerror(errno));
		return HF_ENET;
	}
	return 0;
}

bool bc_fleet_admin_result(const bc_fleet *f, int *status, const char **body, size_t *len,
			   uint64_t *at_us)
{
	if (!f->admin_done)
		return false;
	*at_us = f->admin_at_us;
	*status = f->admin_status;
	*body = f->admin_body ? f->admin_body : "";
	*len = f->admin_len;
	return true;
}

int bc_fleet_new(const bc_fleet_opts *o, bc_fleet **out, char *err, size_t errsz)
{
	bc_fleet *f = calloc(1, sizeof *f);
	*out = NULL;
	if (!f)
		return HF_ENOMEM;
	f->o = *o;
	if (f->o.addresses == 0)
		f->o.addresses = 1;
	if (f->o.max_connecting == 0)
		f->o.max_connecting = 256;
	f->nconn = o->polling + o->report_conns + 1;
	f->admin = f->nconn - 1;
	f->ep = epoll_create1(EPOLL_CLOEXEC);
	f->c = calloc(f->nconn, sizeof *f->c);
	f->n = calloc(o->nodes ? o->nodes : 1, sizeof *f->n);
	f->cq = calloc(f->nconn, sizeof *f->cq);
	f->delayed = calloc(f->nconn, sizeof *f->delayed);
	f->idle_rep = calloc(o->report_conns + 1, sizeof *f->idle_rep);
	f->rbuf = malloc(READ_CHUNK);
	f->scratch = malloc(BC_HTTP_BODY_MAX);
	f->payload = malloc(HF_INSTR_MAX_ENVELOPE + 1);
	if (f->ep < 0 || !f->c || !f->n || !f->cq || !f->delayed || !f->idle_rep || !f->rbuf ||
	    !f->scratch || !f->payload) {
		set_err(err, errsz, "%s", "out of memory or descriptors for the fleet");
		bc_fleet_free(f);
		return HF_ENOMEM;
	}
	for (unsigned i = 0; i < f->nconn; i++) {
		conn *c = &f->c[i];
		c->fd = -1;
		c->kind = i < o->polling ? K_POLL : i < f->admin ? K_REPORT : K_ADMIN;
		c->node = i < o->polling ? i : 0;
		c->src = (uint16_t)(i % f->o.addresses);
	}
	*out = f;
	return 0;
}

void bc_fleet_free(bc_fleet *f)
{
	if (!f)
		return;
	for (unsigned i = 0; f->c && i < f->nconn; i++) {
		if (f->c[i].fd >= 0)
			close(f->c[i].fd);
		free(f->c[i].out);
		free(f->c[i].in);
	}
	if (f->ep >= 0)
		close(f->ep);
	free(f->c);
	free(f->n);
	free(f->cq);
	free(f->delayed);
	free(f->idle_rep);
	free(f->rbuf);
	free(f->scratch);
	free(f->payload);
	free(f->admin_body);
	free(f);
}
