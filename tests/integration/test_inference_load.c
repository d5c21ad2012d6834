/* Integration tests: hashflopd's inference listener with 1,000 concurrent client connections:
 * slow ones (half-sent headers, bodies stalled half-way) from 127.0.0.2 held open while 200
 * keep-alive clients from 127.0.0.3 send rounds of infer requests all at once and a libcurl
 * client keeps being answered; then the slow ones finish their requests and are answered too,
 * and the daemon gives every descriptor back once the clients close.
 * Raw sockets (hf_testnet) so the test speaks below an HTTP client; RLIMIT_NOFILE raised first
 * (the daemon inherits it). Every wait has a deadline; latencies are printed, not asserted. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_testinfer.h"
#include "hf_testnet.h"
#include "hf_testnode.h"
#include "hf_util.h"

#define WAIT_MS 120000

typedef hf_testnode node;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A keep-alive connection with one request in flight at a time. */
typedef struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	bool done;
} conn;

/* Reads what is there; true once a whole response (headers + Content-Length body) is in. */
static bool conn_poll_read(conn *c, size_t *body_off, bool *failed)
{
	for (;;) {
		if (c->len + 65536 > c->cap) {
			c->cap = c->cap ? c->cap * 2 : 1 << 17;
			c->buf = realloc(c->buf, c->cap);
			cr_assert_not_null(c->buf);
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - 1 - c->len, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			*failed = true;
			return false;
		}
		c->len += (size_t)r;
	}
	c->buf[c->len] = '\0';
	char *eoh = strstr(c->buf, "\r\n\r\n");
	if (!eoh)
		return false;
	*body_off = (size_t)(eoh + 4 - c->buf);
	const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
	if (!cl || cl > eoh) {
		*failed = true;
		return false;
	}
	return c->len >= *body_off + strtoull(cl + 17, NULL, 10);
}

/* Sends req on every connection at once and collects every response (poll); each must be a
 * 200 with the expected probabilities. Returns the slowest exchange in microseconds. */
static uint64_t round_trip(conn *cs, int nc, const char *req, size_t rlen, const float *want)
{
	uint64_t t0 = hf_mono_us(), end = hf_mono_ms() + WAIT_MS;
	int left = nc;
	struct pollfd *pf = calloc((size_t)nc, sizeof *pf);

	cr_assert_not_null(pf);
	for (int i = 0; i < nc; i++) {
		cs[i].len = 0;
		cs[i].done = false;
		size_t sent = 0;
		while (sent < rlen) {
			ssize_t w = send(cs[i].fd, req + sent, rlen - sent, MSG_NOSIGNAL);
			cr_assert_gt(w, 0, "keep-alive connection %d: send: %s", i, strerror(errno));
			sent += (size_t)w;
		}
	}
	while (left > 0) {
		int np = 0;
		for (int i = 0; i < nc; i++)
			if (!cs[i].done)
				pf[np++] = (struct pollfd){ .fd = cs[i].fd, .events = POLLIN };
		cr_assert_lt(hf_mono_ms(), end, "%d keep-alive responses missing", left);
		if (poll(pf, (nfds_t)np, 1000) <= 0)
			continue;
		for (int i = 0; i < nc; i++) {
			size_t off;
			bool failed = false;
			if (cs[i].done || !conn_poll_read(&cs[i], &off, &failed)) {
				cr_assert(!failed, "keep-alive connection %d closed or malformed: %.200s", i,
					  cs[i].buf ? cs[i].buf : "");
				continue;
			}
			hf_ti_reply r = { 0 };
			float got[HF_TI_OUT];
			char why[256];
			cr_assert(hf_ti_reply_from_raw(cs[i].buf, cs[i].len, off, &r));
			cr_assert(hf_ti_parse_probs(&r, 1, got, why, sizeof why), "connection %d: %s", i, why);
			for (int k = 0; k < HF_TI_OUT; k++)
				cr_assert_leq(fabs((double)got[k] - (double)want[k]), 1e-4);
			hf_ti_reply_clear(&r);
			cs[i].done = true;
			left--;
		}
	}
	free(pf);
	return hf_mono_us() - t0;
}

/* Connections open on the inference listener: the node's own gauge (hashflop_infer_connections
 * on the node API's /metrics, so the scrape is not one of them); -1 when it cannot be read. */
static long held(const node *n)
{
	char url[128];
	hf_ti_reply r = { 0 };
	long v = -1;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->port);
	if (hf_ti_http("GET", url, NULL, NULL, 0, 10000, &r) && r.status == 200)
		v = (long)hf_ti_metric_sum(r.body, "hashflop_infer_connections", NULL);
	hf_ti_reply_clear(&r);
	return v;
}

Test(inference_load, thousand_connections_slow_ones_included, .init = setup, .timeout = 900)
{
	enum { WANT = 1000, FAST = 200, REQS = 50 };
	node n;
	float *x;
	size_t nimg;
	char path[1024];
	int64_t shape[8];
	size_t nd, cnt;

	int total = hf_test_conns_that_fit(WANT, 1);
	cr_assert_geq(total, 300, "too few descriptors for a meaningful test");
	int fast = total / 5, slow = total - fast;
	x = hf_ti_fmnist_images(&nimg);
	hf_ti_expected_path(path, sizeof path);
	float *probs = hf_ti_st_f32(path, "probs", shape, &nd, &cnt);
	hf_ti_node_init(&n, "infer-load", "idle", NULL,
			"\"max_connections\": 1500, \"max_connections_per_client\": 0, "
			"\"header_timeout_s\": 300, \"timeout_s\": 300", 30000);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	int port = hf_ti_port(&n);
	hf_ti_switch(&n, "inference", hf_ti_seq(&n), NULL);
	unsigned base = hf_test_fds_of(hf_testproc_pid(n.proc));

	/* Slow clients: half of them stop inside the headers, half inside the body. */
	size_t rlen;
	char *req = hf_ti_raw_infer(x + 11 * HF_TI_IN, 1, true, &rlen);
	cr_assert_not_null(req);
	size_t head_len = (size_t)(strstr(req, "\r\n\r\n") + 4 - req);
	int *sfd = calloc((size_t)slow, sizeof *sfd);
	size_t *cut = calloc((size_t)slow, sizeof *cut);
	for (int i = 0; i < slow; i++) {
		sfd[i] = hf_test_raw_connect("127.0.0.2", (uint16_t)port);
		cr_assert_geq(sfd[i], 0, "slow connection %d: %s", i, strerror(errno));
		cut[i] = i % 2 ? head_len / 2 : head_len + (rlen - head_len) / 2;
		cr_assert_eq(send(sfd[i], req, cut[i], MSG_NOSIGNAL), (ssize_t)cut[i]);
	}
	/* Fast keep-alive clients, connected and idle between rounds. */
	conn *cs = calloc((size_t)fast, sizeof *cs);
	for (int i = 0; i < fast; i++) {
		cs[i].fd = hf_test_raw_connect("127.0.0.3", (uint16_t)port);
		cr_assert_geq(cs[i].fd, 0, "keep-alive connection %d: %s", i, strerror(errno));
	}
	uint64_t end = hf_mono_ms() + WAIT_MS;
	long h;
	while ((h = held(&n)) < total && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_geq(h, total, "hashflopd holds %ld of the %d connections", h, total);
	fprintf(stderr, "# %d connections held (%d slow, %d keep-alive)\n", total, slow, fast);

	/* Rounds of requests on every keep-alive connection at once, and a normal client. */
	uint64_t worst[3];
	for (int round = 0; round < 3; round++)
		worst[round] = round_trip(cs, fast, req, rlen, probs + 11 * HF_TI_OUT);
	uint64_t lat[REQS];
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	for (int i = 0; i < REQS; i++) {
		size_t len, jl;
		float got[HF_TI_OUT];
		char why[256];
		void *b = hf_ti_binary_body(x + (size_t)i * HF_TI_IN, 1, HF_TI_IN, false, &len, &jl);
		uint64_t t0 = hf_mono_us();
		cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, 60000, &r), "%s", r.error);
		lat[i] = hf_mono_us() - t0;
		cr_assert(hf_ti_parse_probs(&r, 1, got, why, sizeof why), "request %d: %s", i, why);
		for (int k = 0; k < HF_TI_OUT; k++)
			cr_assert_leq(fabs((double)got[k] - (double)probs[(size_t)i * HF_TI_OUT + k]), 1e-4);
		free(b);
	}
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
	qsort(lat, REQS, sizeof lat[0], cmp_u64);
	fprintf(stderr, "# with %d connections held: %d concurrent keep-alive requests, slowest %.1f / %.1f / "
		"%.1f ms per round; a normal client: median %.2f ms, p90 %.2f ms, max %.2f ms\n", total, fast,
		worst[0] / 1000.0, worst[1] / 1000.0, worst[2] / 1000.0, lat[REQS / 2] / 1000.0,
		lat[REQS * 9 / 10] / 1000.0, lat[REQS - 1] / 1000.0);
	cr_assert_geq(held(&n), total, "slow connections were dropped while held");

	/* The slow clients finish: every one is answered correctly. */
	size_t cap = 1 << 16, off;
	char *buf = malloc(cap);
	for (int i = 0; i < slow; i++) {
		size_t sent = cut[i];
		while (sent < rlen) {
			ssize_t w = send(sfd[i], req + sent, rlen - sent, MSG_NOSIGNAL);
			cr_assert_gt(w, 0, "slow connection %d was closed: %s", i, strerror(errno));
			sent += (size_t)w;
		}
	}
	for (int i = 0; i < slow; i++) {
		ssize_t got = hf_ti_raw_response(sfd[i], buf, cap, 60000, &off);
		cr_assert_gt(got, 0, "slow connection %d: no response", i);
		cr_assert(hf_ti_reply_from_raw(buf, (size_t)got, off, &r));
		float p[HF_TI_OUT];
		char why[256];
		cr_assert(hf_ti_parse_probs(&r, 1, p, why, sizeof why), "slow connection %d: %s", i, why);
		for (int k = 0; k < HF_TI_OUT; k++)
			cr_assert_leq(fabs((double)p[k] - (double)probs[11 * HF_TI_OUT + k]), 1e-4);
		hf_ti_reply_clear(&r);
	}
	free(buf);
	for (int i = 0; i < slow; i++)
		close(sfd[i]);
	for (int i = 0; i < fast; i++) {
		close(cs[i].fd);
		free(cs[i].buf);
	}
	/* Every connection and descriptor comes back. */
	end = hf_mono_ms() + WAIT_MS;
	while ((h = held(&n)) > 0 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_eq(h, 0, "the listener still counts %ld connections", h);
	long fds;
	while ((fds = (long)hf_test_fds_of(hf_testproc_pid(n.proc)) - (long)base) > 5 && hf_mono_ms() < end)
		hf_sleep_ms(20);
	cr_assert_leq(fds, 5, "hashflopd holds %ld descriptors more than before the load", fds);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(json_string_value(json_object_get(st, "mode")), "inference");
	json_decref(st);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	free(sfd);
	free(cut);
	free(cs);
	free(req);
	free(x);
	free(probs);
}
