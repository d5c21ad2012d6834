/* hf_stratum_conn: one Stratum transport connection, plain TCP or TLS, client or server side,
 * with deadlines; plus stratum URL parsing.
 *
 * Invariants: the socket is non-blocking; hf_stratum_conn_read() never waits (the caller polls
 * hf_stratum_conn_fd() and must first check hf_stratum_conn_pending() for TLS-buffered bytes);
 * hf_stratum_conn_connect() and hf_stratum_conn_write_all() wait at most until their deadline
 * (the name lookup included), and hf_stratum_conn_free() never waits. TLS clients verify the
 * peer's certificate and host name (or IP address) unless insecure is set explicitly.
 * Threading: one owner per connection; TLS contexts are created per connection. A name
 * lookup runs on a detached resolver thread; a connect that gives up (deadline, cancel) leaves
 * it behind, and it cleans up after itself when getaddrinfo() returns.
 */
#ifndef HF_STRATUM_CONN_H
#define HF_STRATUM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_STRATUM_URL_MAX 512

typedef struct hf_stratum_conn hf_stratum_conn;

typedef struct hf_stratum_url {
	char host[256];
	uint16_t port;
	bool tls;
} hf_stratum_url;

/* Parses stratum+tcp://HOST:PORT, stratum+ssl://..., stratum+tls://... (also [v6]:port; a
 * bare HOST:PORT means TCP). HF_EINVAL with detail otherwise. */
int hf_stratum_url_parse(const char *url, hf_stratum_url *out, hf_errbuf *eb);

typedef struct hf_stratum_tls_opts {
	const char *ca_file;  /* PEM bundle to trust; NULL: the system's default paths */
	bool insecure;        /* skip certificate verification (only when asked) */
	const int *cancel_fd; /* optional: the connect (lookup included) and later writes on the
			       * connection give up with HF_ECANCELED once this fd is readable;
			       * it must stay open for the connection's life */
} hf_stratum_tls_opts;

/* Connects within timeout_ms (name lookup, TCP, TLS handshake), with TCP keepalive and
 * nodelay. HF_ETIMEOUT when the deadline passes in any step ("resolve HOST: timed out",
 * "connect HOST:PORT: timed out", "TLS handshake: timed out"), HF_ECANCELED on cancel_fd,
 * HF_ENET on failures, HF_EBUSY while RESOLVE_MAX_RUNNING (16) abandoned lookups have not
 * returned (a resolver that never answers). Numeric addresses are not looked up. */
int hf_stratum_conn_connect(const hf_stratum_url *url, const hf_stratum_tls_opts *tls,
			    uint64_t timeout_ms, hf_stratum_conn **out, hf_errbuf *eb);

/* Resolver threads still running (lookups whose caller may have given up); for tests and
 * diagnostics. */
int hf_stratum_conn_resolves_running(void);

/* Server side: wraps an accepted fd (taken over; closed on failure). tls_ctx is an SSL_CTX *
 * for a TLS listener or NULL for plain TCP. */
int hf_stratum_conn_accept(int fd, void *tls_ctx, uint64_t timeout_ms, hf_stratum_conn **out,
			   hf_errbuf *eb);

/* A server SSL_CTX from PEM cert chain and key (as void * to keep OpenSSL out of callers). */
int hf_stratum_tls_server_ctx(const char *cert_file, const char *key_file, void **out,
			      hf_errbuf *eb);
void hf_stratum_tls_ctx_free(void *ctx);

int hf_stratum_conn_fd(const hf_stratum_conn *c);
/* True when TLS holds decrypted bytes that poll() cannot see. */
bool hf_stratum_conn_pending(const hf_stratum_conn *c);

/* Reads what is available: 0 with *n > 0; HF_EBUSY when nothing is available now; HF_EIO when
 * the peer closed; HF_ENET on errors. */
int hf_stratum_conn_read(hf_stratum_conn *c, void *buf, size_t cap, size_t *n, hf_errbuf *eb);

/* Writes all len bytes within timeout_ms: HF_ETIMEOUT when the peer does not take them in
 * time (a peer that stops reading), HF_ECANCELED when the connect's cancel_fd becomes readable
 * while blocked, HF_ENET on errors. After any failure the connection is broken (part of a
 * line may have gone out): further writes fail with HF_ESTATE; free it. */
int hf_stratum_conn_write_all(hf_stratum_conn *c, const void *buf, size_t len,
			      uint64_t timeout_ms, hf_errbuf *eb);

/* Closes and frees without waiting: TLS sends close_notify only if the socket takes it at once
 * and the session is intact. NULL accepted. */
void hf_stratum_conn_free(hf_stratum_conn *c);

#endif
