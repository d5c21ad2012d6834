/* hf_stratum_conn: TCP/TLS transport with deadlines for the Stratum driver and the lab pool.
 *
 * Deadlines: a connect's deadline covers the name lookup, the TCP connect and the TLS
 * handshake; a write's covers every byte (plain send() or SSL_write with WANT_READ/WANT_WRITE)
 * on a non-blocking socket; closing never waits (one non-blocking SSL_shutdown). A name lookup
 * runs getaddrinfo() on a detached resolver thread that the caller waits for with poll() on
 * an eventfd, the deadline and the cancel fd; a caller that gives up leaves, and the thread
 * frees the lookup when getaddrinfo() finally returns (the lookup is reference-counted, so
 * neither side touches it after letting go). Numeric addresses skip the thread.
 * Failure: every call returns an HF_E* code with detail (peer, errno text or the OpenSSL
 * error); a failed connect or handshake leaves nothing open; a write that fails or runs out
 * of time leaves the connection broken (later writes fail, close skips close_notify).
 * Threading: one owner per connection; resolver threads share only their own lookup and the
 * atomic count of running lookups.
 */
#include "hf_stratum_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_util.h"

/* Abandoned lookups still inside getaddrinfo() (a hung resolver) are capped: past this many,
 * connects to host names fail at once with HF_EBUSY until some return. */
#define RESOLVE_MAX_RUNNING 16

struct hf_stratum_conn {
	int fd;
	int cancel_fd; /* writes give up with HF_ECANCELED once readable; -1: none */
	bool broken;   /* a write failed or timed out, or TLS had a fatal error */
	SSL_CTX *ctx;  /* owned (client side) or NULL */
	SSL *ssl;
};

static atomic_int resolves_running; /* resolver threads that have not finished yet */

int hf_stratum_url_parse(const char *url, hf_stratum_url *out, hf_errbuf *eb)
{
	static const struct { const char *prefix; bool tls; } schemes[] = {
		{ "stratum+tcp://", false }, { "stratum+ssl://", true },
		{ "stratum+tls://", true }, { "tcp://", false }, { "ssl://", true },
		{ "tls://", true },
	};
	const char *rest = url;
	char hp[300];
	size_t n;

	if (!url)
		return hf_fail(eb, HF_EINVAL, "pool url: missing");
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < HF_ARRAY_SIZE(schemes); i++) {
		size_t pl = strlen(schemes[i].prefix);
		if (strncmp(url, schemes[i].prefix, pl) == 0) {
			rest = url + pl;
			out->tls = schemes[i].tls;
			break;
		}
	}
	if (rest == url && strstr(url, "://"))
		return hf_fail(eb, HF_EINVAL, "pool url \"%.200s\": unknown scheme (expected "
			       "stratum+tcp://, stratum+ssl:// or stratum+tls://)", url);
	if (!hf_strlcpy(hp, rest, sizeof hp))
		return hf_fail(eb, HF_EINVAL, "pool url: too long");
	n = strlen(hp);
	if (n && hp[n - 1] == '/')
		hp[n - 1] = '\0';
	if (!hf_parse_hostport(hp, out->host, sizeof out->host, &out->port) || !out->host[0] ||
	    out->port == 0)
		return hf_fail(eb, HF_EINVAL, "pool url \"%.200s\": expected HOST:PORT with a port "
			       "from 1 to 65535", url);
	return 0;
}

static int tls_error(hf_errbuf *eb, const char *what)
{
	char msg[256] = "";
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, msg, sizeof msg);
	ERR_clear_error();
	return hf_fail(eb, HF_ENET, "%s: %s", what, msg[0] ? msg : "failed");
}

static void set_sockopts(int fd)
{
	int one = 1, idle = 30, intvl = 10, cnt = 3;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Waits for events on fd until the deadline; HF_ECANCELED when cancel_fd (>= 0) becomes
 * readable first. */
static int wait_fd2(int fd, short events, uint64_t deadline, int cancel_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = events },
			       { .fd = cancel_fd, .events = POLLIN } };
	uint64_t now = hf_mono_ms();
	int rc;

	if (now >= deadline)
		return HF_ETIMEOUT;
	rc = poll(p, cancel_fd >= 0 ? 2 : 1, (int)(deadline - now));
	if (rc == 0)
		return HF_ETIMEOUT;
	if (rc < 0)
		return errno == EINTR ? 0 : HF_EIO;
	if (cancel_fd >= 0 && p[1].revents)
		return HF_ECANCELED;
	return 0;
}

/* ---- name lookup with a deadline ---- */

typedef struct resolve_job {
	pthread_mutex_t mu;
	int refs;             /* 2 while both the caller and the thread hold it; last one frees */
	int efd;              /* eventfd, signalled once getaddrinfo() returned */
	int rc, err;          /* getaddrinfo()'s result and errno (for EAI_SYSTEM) */
	struct addrinfo *res; /* the job's until the caller takes it */
	char host[sizeof ((hf_stratum_url *)0)->host];
	char port[8];
} resolve_job;

static void resolve_unref(resolve_job *j)
{
	bool last;

	pthread_mutex_lock(&j->mu);
	last = --j->refs == 0;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	close(j->efd);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void *resolve_main(void *arg)
{
	resolve_job *j = arg;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	uint64_t one = 1;
	ssize_t w;
	int rc, err;

	rc = getaddrinfo(j->host, j->port, &hints, &res);
	err = errno;
	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->err = err;
	j->res = res;
	pthread_mutex_unlock(&j->mu);
	w = write(j->efd, &one, sizeof one);
	(void)w;
	resolve_unref(j);
	atomic_fetch_sub(&resolves_running, 1); /* last: the job is gone (or the caller's) */
	return NULL;
}

/* Starts the detached resolver thread with every signal blocked (they belong to the
 * program's own threads). */
static int resolve_spawn(resolve_job *j)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t th;
	int rc;

	if (pthread_attr_init(&attr))
		return ENOMEM;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&th, &attr, resolve_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc;
}

/* Waits for the job until the deadline or cancel_fd; 0 when it is done. */
static int resolve_wait(const resolve_job *j, uint64_t deadline, int cancel_fd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = j->efd, .events = POLLIN },
				       { .fd = cancel_fd, .events = POLLIN } };
		uint64_t now = hf_mono_ms();
		int rc;

		if (now >= deadline)
			return HF_ETIMEOUT;
		rc = poll(p, cancel_fd >= 0 ? 2 : 1, (int)(deadline - now));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return HF_EIO;
		if (p[0].revents)
			return 0;
		if (cancel_fd >= 0 && p[1].revents)
			return HF_ECANCELED;
	}
}

/* getaddrinfo() for url within the deadline; *out is the caller's to freeaddrinfo(). */
static int resolve(const hf_stratum_url *url, uint64_t deadline, int cancel_fd,
		   struct addrinfo **out, hf_errbuf *eb)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	resolve_job *j;
	char port[8];
	int rc;

	snprintf(port, sizeof port, "%u", url->port);
	rc = getaddrinfo(url->host, port, &hints, out);
	if (rc == 0)
		return 0;
	if (rc != EAI_NONAME)
		return hf_fail(eb, HF_ENET, "resolve %s: %s", url->host, gai_strerror(rc));
	if (atomic_fetch_add(&resolves_running, 1) >= RESOLVE_MAX_RUNNING) {
		atomic_fetch_sub(&resolves_running, 1);
		return hf_fail(eb, HF_EBUSY, "resolve %s: %d earlier lookups have not returned "
			       "yet (resolver not answering)", url->host, RESOLVE_MAX_RUNNING);
	}
	j = calloc(1, sizeof *j);
	if (!j || (j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		atomic_fetch_sub(&resolves_running, 1);
		free(j);
		return hf_fail(eb, HF_ENOMEM, "resolve %s: out of memory or descriptors",
			       url->host);
	}
	pthread_mutex_init(&j->mu, NULL);
	j->refs = 2;
	hf_strlcpy(j->host, url->host, sizeof j->host);
	memcpy(j->port, port, sizeof port);
	rc = resolve_spawn(j);
	if (rc) {
		atomic_fetch_sub(&resolves_running, 1);
		j->refs = 1;
		resolve_unref(j);
		return hf_fail(eb, HF_ENOMEM, "resolve %s: resolver thread: %s", url->host,
			       strerror(rc));
	}
	rc = resolve_wait(j, deadline, cancel_fd);
	if (rc == 0) {
		pthread_mutex_lock(&j->mu);
		*out = j->res;
		j->res = NULL;
		rc = j->rc;
		if (rc)
			rc = hf_fail(eb, HF_ENET, "resolve %s: %s", url->host,
				     rc == EAI_SYSTEM ? strerror(j->err) : gai_strerror(rc));
		pthread_mutex_unlock(&j->mu);
	} else {
		rc = hf_fail(eb, rc, "resolve %s: %s", url->host,
			     rc == HF_ETIMEOUT ? "timed out" : rc == HF_ECANCELED ? "canceled"
							     : "poll failed");
	}
	resolve_unref(j); /* if the thread is still in getaddrinfo(), it frees the job later */
	return rc;
}

int hf_stratum_conn_resolves_running(void)
{
	return atomic_load(&resolves_running);
}

static int tcp_connect(const hf_stratum_url *url, uint64_t deadline, int cancel_fd, int *out,
		       hf_errbuf *eb)
{
	struct addrinfo *res = NULL, *ai;
	int rc, fd = -1, err = 0;

	rc = resolve(url, deadline, cancel_fd, &res, eb);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		socklen_t len = sizeof err;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		set_sockopts(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (err == EINPROGRESS) {
			while ((rc = wait_fd2(fd, POLLOUT, deadline, cancel_fd)) == 0) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				if (poll(&p, 1, 0) == 1)
					break;
			}
			if (rc == HF_ETIMEOUT || rc == HF_ECANCELED) {
				close(fd);
				freeaddrinfo(res);
				return hf_fail(eb, rc, "connect %s:%u: %s", url->host, url->port,
					       rc == HF_ETIMEOUT ? "timed out" : "canceled");
			}
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err == 0)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return hf_fail(eb, HF_ENET, "connect %s:%u: %s", url->host, url->port,
			       strerror(err ? err : ECONNREFUSED));
	*out = fd;
	return 0;
}

/* Drives SSL_connect/SSL_accept to completion or the deadline. */
static int handshake(hf_stratum_conn *c, bool server, uint64_t deadline, int cancel_fd,
		     hf_errbuf *eb)
{
	for (;;) {
		int r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl), e, rc;
		if (r == 1)
			return 0;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			rc = wait_fd2(c->fd, POLLIN, deadline, cancel_fd);
		else if (e == SSL_ERROR_WANT_WRITE)
			rc = wait_fd2(c->fd, POLLOUT, deadline, cancel_fd);
		else {
			long v = server ? X509_V_OK : SSL_get_verify_result(c->ssl);
			if (v != X509_V_OK) {
				ERR_clear_error();
				return hf_fail(eb, HF_ENET, "TLS certificate verification failed: %s",
					       X509_verify_cert_error_string(v));
			}
			return tls_error(eb, "TLS handshake");
		}
		if (rc == HF_ETIMEOUT)
			return hf_fail(eb, HF_ETIMEOUT, "TLS handshake: timed out");
		if (rc == HF_ECANCELED)
			return hf_fail(eb, HF_ECANCELED, "TLS handshake: canceled");
		if (rc)
			return hf_fail(eb, HF_ENET, "TLS handshake: poll failed");
	}
}

static int tls_client_setup(hf_stratum_conn *c, const hf_stratum_url *url,
			    const hf_stratum_tls_opts *tls, hf_errbuf *eb)
{
	unsigned char addr[16];
	bool is_ip = inet_pton(AF_INET, url->host, addr) == 1 ||
		     inet_pton(AF_INET6, url->host, addr) == 1;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx)
		return tls_error(eb, "TLS context");
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	if (!tls || !tls->insecure) {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (tls && tls->ca_file) {
			if (SSL_CTX_load_verify_locations(c->ctx, tls->ca_file, NULL) != 1)
				return tls_error(eb, "TLS CA file");
		} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
			return tls_error(eb, "TLS default CA paths");
		}
	}
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return tls_error(eb, "TLS session");
	if (!is_ip)
		SSL_set_tlsext_host_name(c->ssl, url->host);
	if (!tls || !tls->insecure) {
		X509_VERIFY_PARAM *p = SSL_get0_param(c->ssl);
		if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, url->host)
			   : X509_VERIFY_PARAM_set1_host(p, url->host, 0)) != 1)
			return tls_error(eb, "TLS host check");
	}
	return 0;
}

int hf_stratum_conn_connect(const hf_stratum_url *url, const hf_stratum_tls_opts *tls,
			    uint64_t timeout_ms, hf_stratum_conn **out, hf_errbuf *eb)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	hf_stratum_conn *c = calloc(1, sizeof *c);
	int cancel_fd = tls && tls->cancel_fd ? *tls->cancel_fd : -1;
	int rc;

	if (!c)
		return hf_fail(eb, HF_ENOMEM, "connection: out of memory");
	c->fd = -1;
	c->cancel_fd = cancel_fd;
	rc = tcp_connect(url, deadline, cancel_fd, &c->fd, eb);
	if (rc)
		goto fail;
	if (url->tls) {
		rc = tls_client_setup(c, url, tls, eb);
		if (rc == 0)
			rc = handshake(c, false, deadline, cancel_fd, eb);
		if (rc) {
			hf_fail_prefix(eb, rc, "%s:%u", url->host, url->port);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	hf_stratum_conn_free(c);
	return rc;
}

int hf_stratum_tls_server_ctx(const char *cert_file, const char *key_file, void **out,
			      hf_errbuf *eb)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return tls_error(eb, "TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		SSL_CTX_free(ctx);
		return tls_error(eb, "TLS certificate");
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return tls_error(eb, "TLS private key");
	}
	*out = ctx;
	return 0;
}

void hf_stratum_tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

int hf_stratum_conn_accept(int fd, void *tls_ctx, uint64_t timeout_ms, hf_stratum_conn **out,
			   hf_errbuf *eb)
{
	hf_stratum_conn *c = calloc(1, sizeof *c);
	int rc;

	if (!c) {
		close(fd);
		return hf_fail(eb, HF_ENOMEM, "connection: out of memory");
	}
	c->fd = fd;
	c->cancel_fd = -1;
	set_sockopts(fd);
	if (tls_ctx) {
		c->ssl = SSL_new(tls_ctx);
		if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
			rc = tls_error(eb, "TLS session");
			goto fail;
		}
		rc = handshake(c, true, hf_mono_ms() + timeout_ms, -1, eb);
		if (rc)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	hf_stratum_conn_free(c);
	return rc;
}

int hf_stratum_conn_fd(const hf_stratum_conn *c)
{
	return c->fd;
}

bool hf_stratum_conn_pending(const hf_stratum_conn *c)
{
	return c->ssl && SSL_pending(c->ssl) > 0;
}

int hf_stratum_conn_read(hf_stratum_conn *c, void *buf, size_t cap, size_t *n, hf_errbuf *eb)
{
	*n = 0;
	if (c->ssl) {
		size_t got = 0;
		int e;
		if (SSL_read_ex(c->ssl, buf, cap, &got) == 1) {
			*n = got;
			return 0;
		}
		e = SSL_get_error(c->ssl, 0);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return HF_EBUSY;
		if (e == SSL_ERROR_ZERO_RETURN) {
			ERR_clear_error();
			return hf_fail(eb, HF_EIO, "connection closed by peer");
		}
		c->broken = true; /* SSL_ERROR_SYSCALL or _SSL: no SSL_shutdown() after these */
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			return hf_fail(eb, HF_EIO, "connection closed by peer");
		return tls_error(eb, "TLS read");
	}
	for (;;) {
		ssize_t r = recv(c->fd, buf, cap, 0);
		if (r > 0) {
			*n = (size_t)r;
			return 0;
		}
		if (r == 0)
			return hf_fail(eb, HF_EIO, "connection closed by peer");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return HF_EBUSY;
		return hf_fail(eb, HF_ENET, "recv: %s", strerror(errno));
	}
}

/* One attempt at writing: 0 with *done bytes taken (0 when blocked, *want says on what). */
static int write_some(hf_stratum_conn *c, const char *p, size_t len, size_t *done, short *want,
		      hf_errbuf *eb)
{
	*done = 0;
	*want = POLLOUT;
	if (c->ssl) {
		int e;
		if (SSL_write_ex(c->ssl, p, len, done) == 1)
			return 0;
		e = SSL_get_error(c->ssl, 0);
		if (e == SSL_ERROR_WANT_READ)
			*want = POLLIN;
		else if (e != SSL_ERROR_WANT_WRITE)
			return tls_error(eb, "TLS write");
		return 0;
	}
	for (;;) {
		ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
		if (w >= 0) {
			*done = (size_t)w;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return hf_fail(eb, HF_ENET, "send: %s", strerror(errno));
	}
}

int hf_stratum_conn_write_all(hf_stratum_conn *c, const void *buf, size_t len,
			      uint64_t timeout_ms, hf_errbuf *eb)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	const char *p = buf;
	size_t total = len;
	int rc = 0;

	if (c->broken && len)
		return hf_fail(eb, HF_ESTATE, "send: connection unusable after a failed write");
	while (len) {
		size_t done;
		short want;
		rc = write_some(c, p, len, &done, &want, eb);
		if (rc)
			break;
		if (done) {
			p += done;
			len -= done;
			continue;
		}
		/* Blocked: SSL_write must be retried with the same buffer, so no shortcuts. */
		rc = wait_fd2(c->fd, want, deadline, c->cancel_fd);
		if (rc == HF_ETIMEOUT || rc == HF_ECANCELED) {
			rc = hf_fail(eb, rc, "send: %s after %zu of %zu bytes (%llu ms)",
				     rc == HF_ETIMEOUT ? "timed out" : "canceled", total - len, total,
				     (unsigned long long)timeout_ms);
			break;
		}
		if (rc) {
			rc = hf_fail(eb, HF_ENET, "send: poll failed");
			break;
		}
	}
	if (rc)
		c->broken = true; /* part of a line (or a TLS record) may be out: close it */
	return rc;
}

void hf_stratum_conn_free(hf_stratum_conn *c)
{
	if (!c)
		return;
	if (c->ssl) {
		/* One non-blocking attempt at close_notify: a peer that never reads costs nothing
		 * here, and after a fatal error or a cut-off record there is nothing clean to say. */
		if (!c->broken && SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
	free(c);
}
