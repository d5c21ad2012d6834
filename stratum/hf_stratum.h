/* hf_stratum: the sans-I/O Stratum v1 client core. Fed bytes, it yields typed events; asked to
 * act, it appends request lines to an output buffer. It never touches a socket or a clock.
 *
 * Invariants: input is split into '\n'-terminated lines (a trailing '\r' is dropped, empty
 * lines are skipped); a line longer than max_line is discarded up to its newline and reported
 * once as an HF_STRATUM_EV_ERROR with HF_ETOOBIG. Every line that is not valid JSON-RPC, or
 * whose fields are missing or of the wrong type, becomes one HF_STRATUM_EV_ERROR event and a
 * counter; the core's state is unchanged by it. Responses are matched to requests by id (at
 * most HF_STRATUM_MAX_PENDING outstanding; the oldest is forgotten beyond that).
 * mining.ping and client.get_version are answered by the core itself (bytes appear in the
 * output buffer); unknown methods with an id get a JSON-RPC error reply. Event text (err_msg,
 * text) is cleaned with hf_text_clean(): control characters and invalid UTF-8 become '?', so
 * it may be logged or stored as is; a job id, which must go back to the pool byte for byte,
 * is refused (EV_ERROR) when it holds a control character.
 * Threading: one owner; no globals, so separate cores may live on separate threads.
 */
#ifndef HF_STRATUM_H
#define HF_STRATUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_stratum_job.h"

#define HF_STRATUM_MAX_LINE_DEFAULT (64u * 1024u)
#define HF_STRATUM_MAX_PENDING 256
#define HF_STRATUM_SESSION_MAX 128
#define HF_STRATUM_TEXT_MAX 512
#define HF_STRATUM_HOST_MAX 256

typedef struct hf_stratum hf_stratum;

typedef enum hf_stratum_ev_type {
	HF_STRATUM_EV_NONE = 0,
	HF_STRATUM_EV_SUBSCRIBED,   /* ok; extranonce1, en2_size, session_id (or error) */
	HF_STRATUM_EV_AUTHORIZED,   /* ok (false: refused, reason in err_*) */
	HF_STRATUM_EV_CONFIGURED,   /* ok = version rolling granted; version_mask */
	HF_STRATUM_EV_NOTIFY,       /* job (owned by the event) */
	HF_STRATUM_EV_DIFFICULTY,   /* difficulty */
	HF_STRATUM_EV_EXTRANONCE,   /* extranonce1, en2_size (mining.set_extranonce) */
	HF_STRATUM_EV_VERSION_MASK, /* version_mask (mining.set_version_mask) */
	HF_STRATUM_EV_RECONNECT,    /* host ("" = same), port (0 = same), wait_s */
	HF_STRATUM_EV_MESSAGE,      /* text (client.show_message) */
	HF_STRATUM_EV_SUBMIT_RESULT, /* id, ok; on reject err_code and err_msg (the reason) */
	HF_STRATUM_EV_RESULT,       /* id, ok: any other request (extranonce.subscribe, ...) */
	HF_STRATUM_EV_ERROR,        /* a bad line: err (HF_E*), text (detail) */
} hf_stratum_ev_type;

typedef struct hf_stratum_event {
	hf_stratum_ev_type type;
	uint64_t id;          /* request id for results */
	bool ok;
	int err;              /* HF_EPARSE/HF_EPROTO/HF_ETOOBIG for EV_ERROR */
	int64_t err_code;     /* pool's error code (21, 22, 23, ...), 0 if none */
	char err_msg[HF_STRATUM_TEXT_MAX]; /* pool's reason ("Stale", "Duplicate", ...) */
	uint8_t extranonce1[HF_STRATUM_EN1_MAX];
	size_t extranonce1_len;
	unsigned en2_size;
	char session_id[HF_STRATUM_SESSION_MAX];
	double difficulty;
	uint32_t version_mask;
	hf_stratum_job job;   /* EV_NOTIFY only; freed by hf_stratum_event_clear() */
	char host[HF_STRATUM_HOST_MAX];
	uint16_t port;
	unsigned wait_s;
	char text[HF_STRATUM_TEXT_MAX];
} hf_stratum_event;

typedef struct hf_stratum_opts {
	const char *user_agent; /* "hashflop/0.1.0" if NULL */
	size_t max_line;        /* 0: HF_STRATUM_MAX_LINE_DEFAULT */
	size_t max_events;      /* queued events cap (0: 4096); beyond it the oldest notify-free
	                         * events are kept and new ones dropped with a counter */
} hf_stratum_opts;

typedef struct hf_stratum_counters {
	uint64_t lines;          /* complete lines processed */
	uint64_t bad_lines;      /* malformed JSON or wrong shapes */
	uint64_t oversize_lines; /* lines over max_line */
	uint64_t unknown_methods;
	uint64_t unmatched_responses;
	uint64_t dropped_events;
} hf_stratum_counters;

/* Submission arguments; version_bits is sent only when has_version_bits. */
typedef struct hf_stratum_submit_args {
	const char *worker;
	const char *job_id;
	const uint8_t *en2;
	size_t en2_len;
	uint32_t ntime;
	uint32_t nonce;
	bool has_version_bits;
	uint32_t version_bits;
} hf_stratum_submit_args;

hf_stratum *hf_stratum_new(const hf_stratum_opts *opts);
void hf_stratum_free(hf_stratum *s);

/* Starts a new connection: drops partial input, queued output, pending requests and queued
 * events; keeps the last session id (for resumption) and counters. */
void hf_stratum_reset(hf_stratum *s);

/* Feeds received bytes (any split). Returns 0, or HF_ENOMEM; bad input is reported as events,
 * never as a failure. */
int hf_stratum_feed(hf_stratum *s, const void *data, size_t len);

/* Pops the next event into *ev (which the caller later passes to hf_stratum_event_clear()).
 * False when none is queued. */
bool hf_stratum_next_event(hf_stratum *s, hf_stratum_event *ev);
void hf_stratum_event_clear(hf_stratum_event *ev);

/* Requests: each appends one line to the output and stores its id in *id (NULL accepted). */
int hf_stratum_subscribe(hf_stratum *s, bool resume, uint64_t *id);
int hf_stratum_authorize(hf_stratum *s, const char *user, const char *pass, uint64_t *id);
int hf_stratum_configure(hf_stratum *s, uint32_t mask, unsigned min_bit_count, uint64_t *id);
int hf_stratum_extranonce_subscribe(hf_stratum *s, uint64_t *id);
int hf_stratum_suggest_difficulty(hf_stratum *s, double diff, uint64_t *id);
int hf_stratum_submit(hf_stratum *s, const hf_stratum_submit_args *a, uint64_t *id);

/* Bytes waiting to be sent; after sending n of them call hf_stratum_out_consume(). */
const char *hf_stratum_out(const hf_stratum *s, size_t *len);
void hf_stratum_out_consume(hf_stratum *s, size_t n);

/* Session id from the last successful subscribe ("" if none); used by resume. */
const char *hf_stratum_session_id(const hf_stratum *s);
void hf_stratum_set_session_id(hf_stratum *s, const char *id);

void hf_stratum_counters_get(const hf_stratum *s, hf_stratum_counters *out);

#endif
