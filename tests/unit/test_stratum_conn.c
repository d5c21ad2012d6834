/* Unit tests for hf_stratum_conn: stratum URL parsing, connection failures, and deadlines
 * against real peers on 127.0.0.1: a name lookup stuck inside glibc's resolver, a TCP or TLS
 * peer that never reads (writes end with HF_ETIMEOUT at the deadline, close does not wait),
 * and writes abandoned through the cancel fd. Deadlines are asserted with wide margins
 * (deadline 500 ms: at least 450 ms, under 5 s). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_stratum_conn.h"
#include "hf_teststall.h"
#include "hf_util.h"

#define DEADLINE_MS 500
#define EARLY_MS 50      /* poll() and the ms clock may round a little early */
#define MARGIN_MS 5000   /* "returned at the deadline", however loaded the machine */
#define BIG (8u << 20)   /* more than any socket buffers hold */

Test(stratum_conn, url_schemes)
{
	hf_stratum_url u;
	hf_errbuf eb;

	cr_assert_eq(hf_stratum_url_parse("stratum+tcp://pool.example:3333", &u, &eb), 0);
	cr_assert_str_eq(u.host, "pool.example");
	cr_assert_eq(u.port, 3333);
	cr_assert_not(u.tls);
	cr_assert_eq(hf_stratum_url_parse("stratum+ssl://pool.example:443", &u, &eb), 0);
	cr_assert(u.tls);
	cr_assert_eq(hf_stratum_url_parse("stratum+tls://[::1]:3334/", &u, &eb), 0);
	cr_assert(u.tls);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 3334);
	cr_assert_eq(hf_stratum_url_parse("127.0.0.1:3333", &u, &eb), 0);
	cr_assert_not(u.tls);
}

Test(stratum_conn, url_refused)
{
	hf_stratum_url u;
	hf_errbuf eb;
	static const char *bad[] = {
		"http://pool:80", "stratum+tcp://pool", "stratum+tcp://pool:0",
		"stratum+tcp://pool:65536", "stratum+tcp://:3333", "stratum+udp://pool:3333", "",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(hf_stratum_url_parse(bad[i], &u, &eb), HF_EINVAL, "%s", bad[i]);
		cr_assert(eb.msg[0]);
	}
	cr_assert_eq(hf_stratum_url_parse(NULL, &u, &eb), HF_EINVAL);
}

Test(stratum_conn, refused_connect_reports_the_peer)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	hf_stratum_url u = { .tls = false };
	hf_stratum_conn *c = NULL;
	hf_errbuf eb;

	/* Bind a port and close it again: nobody listens there now. */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	strcpy(u.host, "127.0.0.1");
	u.port = ntohs(sa.sin_port);
	cr_assert_eq(hf_stratum_conn_connect(&u, NULL, 2000, &c, &eb), HF_ENET);
	cr_assert_null(c);
	cr_assert(strstr(eb.msg, "127.0.0.1"), "%s", eb.msg);
	hf_stratum_conn_free(NULL);
}

/* ---- a name lookup that never answers, inside the real resolver (hf_teststall.h) ---- */

Test(stratum_conn, lookup_that_never_answers_ends_at_the_deadline, .timeout = 60)
{
	hf_stratum_url u = { .port = 3333 };
	hf_stratum_conn *c = NULL;
	hf_errbuf eb = { { 0 } };
	uint64_t t0, el;
	hf_teststall st;
	int rc;

	hf_teststall_setup(&st);
	strcpy(u.host, "hashflopstall");
	t0 = hf_mono_ms();
	rc = hf_stratum_conn_connect(&u, NULL, DEADLINE_MS, &c, &eb);
	el = hf_mono_ms() - t0;
	if (rc != HF_ETIMEOUT && !hf_teststall_caught(&st, 0))
		cr_skip_test("this resolver does not read HOSTALIASES (%d: %s)", rc, eb.msg);
	cr_assert_eq(rc, HF_ETIMEOUT, "%s", eb.msg);
	cr_assert_null(c);
	cr_assert(strstr(eb.msg, "resolve hashflopstall: timed out"), "%s", eb.msg);
	cr_assert_geq(el, DEADLINE_MS - EARLY_MS, "gave up after %llu ms", (unsigned long long)el);
	cr_assert_lt(el, MARGIN_MS, "took %llu ms", (unsigned long long)el);
	/* It really was stuck in getaddrinfo(), and that lookup is still there. */
	cr_assert(hf_teststall_caught(&st, MARGIN_MS), "the lookup never reached the resolver");
	cr_assert_eq(hf_stratum_conn_resolves_running(), 1);
	hf_teststall_release(&st); /* the abandoned lookup ends later and frees itself (ASan watches) */
}

Test(stratum_conn, stuck_lookups_are_canceled_and_capped, .timeout = 60)
{
	hf_stratum_url u = { .port = 3333 };
	hf_stratum_tls_opts o = { 0 };
	hf_stratum_conn *c = NULL;
	hf_errbuf eb = { { 0 } };
	int cancel[2], rc, i;
	uint64_t t0;
	hf_teststall st;
	char b = 1;

	hf_teststall_setup(&st);
	strcpy(u.host, "hashflopstall");
	cr_assert_eq(pipe(cancel), 0);
	cr_assert_eq(write(cancel[1], &b, 1), 1); /* canceled from the start */
	o.cancel_fd = &cancel[0];
	t0 = hf_mono_ms();
	rc = hf_stratum_conn_connect(&u, &o, 60000, &c, &eb);
	cr_assert_eq(rc, HF_ECANCELED, "%d: %s", rc, eb.msg);
	cr_assert(strstr(eb.msg, "resolve hashflopstall: canceled"), "%s", eb.msg);
	cr_assert_lt(hf_mono_ms() - t0, MARGIN_MS);
	if (!hf_teststall_caught(&st, MARGIN_MS))
		cr_skip_test("this resolver does not read HOSTALIASES");
	/* Abandoned lookups pile up to the cap; past it connects fail at once. */
	for (i = 1; i < 16; i++)
		cr_assert_eq(hf_stratum_conn_connect(&u, &o, 60000, &c, &eb), HF_ECANCELED, "%s",
			     eb.msg);
	cr_assert_eq(hf_stratum_conn_resolves_running(), 16);
	cr_assert_eq(hf_stratum_conn_connect(&u, &o, 60000, &c, &eb), HF_EBUSY);
	cr_assert(strstr(eb.msg, "have not returned"), "%s", eb.msg);
	/* A numeric address needs no lookup, so the cap does not block it. */
	strcpy(u.host, "127.0.0.1");
	u.port = 1;
	rc = hf_stratum_conn_connect(&u, NULL, 2000, &c, &eb);
	cr_assert(rc == HF_ENET || rc == HF_ETIMEOUT, "%d: %s", rc, eb.msg);
	hf_teststall_release(&st);
	strcpy(u.host, "hashflopstall");
	rc = hf_stratum_conn_connect(&u, NULL, 20000, &c, &eb);
	cr_assert_neq(rc, HF_EBUSY, "the cap is released with the lookups");
	cr_assert_null(c);
	close(cancel[0]);
	close(cancel[1]);
}

/* ---- peers that never read ---- */

/* A listener on 127.0.0.1 with a small receive buffer (inherited by accepted sockets). */
static int listen_small(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void url_local(hf_stratum_url *u, uint16_t port, bool tls)
{
	memset(u, 0, sizeof *u);
	strcpy(u->host, "127.0.0.1");
	u->port = port;
	u->tls = tls;
}

static void small_sndbuf(hf_stratum_conn *c)
{
	int small = 4096;

	setsockopt(hf_stratum_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

/* Writes BIG bytes to a peer that never reads: HF_ETIMEOUT at the deadline, then the
 * connection refuses further writes and closes at once. */
static void write_times_out(hf_stratum_conn *c)
{
	char *big = calloc(1, BIG);
	hf_errbuf eb = { { 0 } };
	uint64_t t0, el;
	int rc;

	cr_assert(big);
	t0 = hf_mono_ms();
	rc = hf_stratum_conn_write_all(c, big, BIG, DEADLINE_MS, &eb);
	el = hf_mono_ms() - t0;
	cr_assert_eq(rc, HF_ETIMEOUT, "%d: %s", rc, eb.msg);
	cr_assert(strstr(eb.msg, "send: timed out after"), "%s", eb.msg);
	cr_assert_geq(el, DEADLINE_MS - EARLY_MS, "gave up after %llu ms", (unsigned long long)el);
	cr_assert_lt(el, MARGIN_MS, "took %llu ms", (unsigned long long)el);
	cr_assert_eq(hf_stratum_conn_write_all(c, "x", 1, DEADLINE_MS, &eb), HF_ESTATE);
	t0 = hf_mono_ms();
	hf_stratum_conn_free(c);
	cr_assert_lt(hf_mono_ms() - t0, MARGIN_MS, "close waited for the peer");
	free(big);
}

Test(stratum_conn, tcp_write_to_a_peer_that_never_reads_times_out, .timeout = 60)
{
	hf_stratum_url u;
	hf_stratum_conn *c = NULL;
	hf_errbuf eb = { { 0 } };
	uint16_t port;
	int lfd = listen_small(&port), afd;

	url_local(&u, port, false);
	cr_assert_eq(hf_stratum_conn_connect(&u, NULL, 5000, &c, &eb), 0, "%s", eb.msg);
	afd = accept(lfd, NULL, NULL); /* accepted, never read */
	cr_assert_geq(afd, 0);
	small_sndbuf(c);
	write_times_out(c);
	close(afd);
	close(lfd);
}

Test(stratum_conn, blocked_write_gives_up_on_cancel, .timeout = 60)
{
	hf_stratum_url u;
	hf_stratum_tls_opts o = { 0 };
	hf_stratum_conn *c = NULL;
	hf_errbuf eb = { { 0 } };
	char *big = calloc(1, BIG), b = 1;
	uint16_t port;
	int lfd = listen_small(&port), afd, cancel[2];
	uint64_t t0;

	cr_assert(big);
	cr_assert_eq(pipe(cancel), 0);
	o.cancel_fd = &cancel[0];
	url_local(&u, port, false);
	cr_assert_eq(hf_stratum_conn_connect(&u, &o, 5000, &c, &eb), 0, "%s", eb.msg);
	afd = accept(lfd, NULL, NULL);
	cr_assert_geq(afd, 0);
	cr_assert_eq(write(cancel[1], &b, 1), 1);
	t0 = hf_mono_ms();
	cr_assert_eq(hf_stratum_conn_write_all(c, big, BIG, 60000, &eb), HF_ECANCELED, "%s",
		     eb.msg);
	cr_assert(strstr(eb.msg, "send: canceled"), "%s", eb.msg);
	cr_assert_lt(hf_mono_ms() - t0, MARGIN_MS, "the write waited out its deadline");
	hf_stratum_conn_free(c);
	close(afd);
	close(lfd);
	close(cancel[0]);
	close(cancel[1]);
	free(big);
}

/* ---- TLS: a server that completes the handshake, then never reads ---- */

typedef struct tls_peer {
	int lfd;
	void *ctx;
	int done[2];    /* the test writes here when the server may go */
	int hs_rc;
	pthread_t th;
	char dir[64];
} tls_peer;

static void *tls_peer_main(void *arg)
{
	tls_peer *p = arg;
	hf_stratum_conn *c = NULL;
	int fd = accept(p->lfd, NULL, NULL);
	char b;

	p->hs_rc = fd < 0 ? HF_EIO : hf_stratum_conn_accept(fd, p->ctx, 10000, &c, NULL);
	if (read(p->done[0], &b, 1) < 0) /* blocks until the test is done; never reads c */
		b = 0;
	hf_stratum_conn_free(c);
	return NULL;
}

static void tls_peer_start(tls_peer *p, uint16_t *port)
{
	char cmd[512], cert[128], key[128];
	hf_errbuf eb = { { 0 } };

	strcpy(p->dir, "/tmp/hf-tlspeer-XXXXXX");
	cr_assert(mkdtemp(p->dir));
	snprintf(cmd, sizeof cmd, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt "
		 "ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.pem "
		 "-subj /CN=127.0.0.1 -days 2 >/dev/null 2>&1", p->dir);
	cr_assert_eq(system(cmd), 0, "openssl CLI could not make a certificate");
	snprintf(cert, sizeof cert, "%s/srv.pem", p->dir);
	snprintf(key, sizeof key, "%s/srv.key", p->dir);
	cr_assert_eq(hf_stratum_tls_server_ctx(cert, key, &p->ctx, &eb), 0, "%s", eb.msg);
	cr_assert_eq(pipe(p->done), 0);
	p->lfd = listen_small(port);
	cr_assert_eq(pthread_create(&p->th, NULL, tls_peer_main, p), 0);
}

static void tls_peer_stop(tls_peer *p)
{
	char b = 1, cmd[128];

	cr_assert_eq(write(p->done[1], &b, 1), 1);
	pthread_join(p->th, NULL);
	cr_assert_eq(p->hs_rc, 0, "server handshake");
	hf_stratum_tls_ctx_free(p->ctx);
	close(p->lfd);
	close(p->done[0]);
	close(p->done[1]);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
	cr_assert_eq(system(cmd), 0);
}

static hf_stratum_conn *tls_connect(uint16_t port)
{
	hf_stratum_tls_opts o = { .insecure = true };
	hf_stratum_url u;
	hf_stratum_conn *c = NULL;
	hf_errbuf eb = { { 0 } };

	url_local(&u, port, true);
	cr_assert_eq(hf_stratum_conn_connect(&u, &o, 10000, &c, &eb), 0, "%s", eb.msg);
	return c;
}

Test(stratum_conn, tls_write_to_a_peer_that_never_reads_times_out, .timeout = 60)
{
	tls_peer p = { 0 };
	uint16_t port;
	hf_stratum_conn *c;

	signal(SIGPIPE, SIG_IGN);
	tls_peer_start(&p, &port);
	c = tls_connect(port);
	small_sndbuf(c);
	write_times_out(c);
	tls_peer_stop(&p);
}

/* An intact TLS session whose socket is full (the peer never reads): closing tries
 * close_notify once and returns; it never waits for the peer. */
Test(stratum_conn, tls_close_with_a_full_socket_does_not_wait, .timeout = 60)
{
	tls_peer p = { 0 };
	static char junk[65536];
	uint16_t port;
	hf_stratum_conn *c;
	uint64_t t0;
	size_t sent = 0;

	signal(SIGPIPE, SIG_IGN);
	tls_peer_start(&p, &port);
	c = tls_connect(port);
	small_sndbuf(c);
	for (;;) { /* fill the socket under OpenSSL's feet: the peer will never read it */
		ssize_t w = send(hf_stratum_conn_fd(c), junk, sizeof junk, MSG_NOSIGNAL);
		if (w < 0) {
			cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR,
				  "%s", strerror(errno));
			if (errno != EINTR)
				break;
			continue;
		}
		sent += (size_t)w;
	}
	cr_assert_gt(sent, 0);
	t0 = hf_mono_ms();
	hf_stratum_conn_free(c);
	cr_assert_lt(hf_mono_ms() - t0, MARGIN_MS, "close waited for the peer");
	tls_peer_stop(&p);
}
