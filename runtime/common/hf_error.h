/* hf_error: the project's one error enum, hf_strerror() and the caller-provided error buffer.
 *
 * Invariants: every action returns 0 or one negative HF_E* code below. The enum only grows:
 * a code, once released, keeps its number and meaning. Detail (which field, which peer, which
 * errno) goes into an hf_errbuf the caller owns; functions accept a NULL errbuf.
 * Threading: everything here is reentrant; an hf_errbuf belongs to the caller's thread.
 */
#ifndef HF_ERROR_H
#define HF_ERROR_H

#include <stddef.h>

enum hf_err {
	HF_OK = 0,
	HF_EINVAL = -1,      /* invalid argument from the caller */
	HF_ENOMEM = -2,      /* allocation failed */
	HF_EIO = -3,         /* file or socket I/O failed */
	HF_ECONFIG = -4,     /* configuration refused (detail names the field) */
	HF_ETOOBIG = -5,     /* size or length over its cap */
	HF_EPARSE = -6,      /* malformed input (JSON, protocol line, file format) */
	HF_ENOTFOUND = -7,   /* file, key, device or route does not exist */
	HF_ESTATE = -8,      /* operation not allowed in the current state */
	HF_EUNSUPPORTED = -9, /* not supported by this build, CPU or device */
	HF_ETIMEOUT = -10,   /* a deadline passed */
	HF_ENET = -11,       /* network failure (connect, resolve, TLS) */
	HF_EPROTO = -12,     /* peer broke the protocol */
	HF_ECRYPTO = -13,    /* key or signature failure */
	HF_EREFUSED = -14,   /* refused by policy (trust, replay, expiry, role) */
	HF_EBUSY = -15,      /* resource busy; try again later */
	HF_ECL = -16,        /* OpenCL call failed */
	HF_ECANCELED = -17,  /* stopped on request (drain, shutdown) */
	HF_ERANGE = -18,     /* value out of range */
};

/* Short, stable, lower-case text for an HF_E* code; "unknown error" for anything else. */
const char *hf_strerror(int code);

#define HF_ERRBUF_SIZE 512

/* Detail for the last failure; msg is always NUL-terminated (empty when no detail). */
typedef struct hf_errbuf {
	char msg[HF_ERRBUF_SIZE];
} hf_errbuf;

/* Clears eb (NULL accepted). */
void hf_errbuf_clear(hf_errbuf *eb);

/* Formats detail into eb (NULL accepted) and returns code, so a caller can write
 * `return hf_fail(eb, HF_ECONFIG, "api.port: expected ...")`. */
int hf_fail(hf_errbuf *eb, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the detail already in eb (NULL accepted); returns code. */
int hf_fail_prefix(hf_errbuf *eb, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
