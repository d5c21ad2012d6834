/* hf_control: the node's control channel to a coordinator: a thread that long-polls
 * GET {coordinator_url}/v1/nodes/{node_id}/instruction?after={last_issued_ms}&wait={s}
 * (200 with an envelope, 204 when nothing newer) and hands envelopes to a submit callback.
 *
 * Re-polls at once only after an accepted envelope or a 204 (the coordinator waited). Every
 * other outcome (an envelope refused, a repeat of the current one, one that could not be
 * applied, an HTTP error, a network or TLS failure, a response over 64 KiB) backs off
 * exponentially with +-25% jitter from min(500 ms, retry_max_ms) up to retry_max_ms, so a
 * coordinator serving a bad or expired envelope is not fetched in a loop; an accepted envelope
 * or a 204 starts the backoff over. TLS peers are always verified (ca_file adds a CA bundle).
 * Shutdown interrupts a poll in progress within about a second. Text from the coordinator
 * (error bodies, libcurl messages, submit details) is cleaned (hf_text_clean) before it is
 * logged or stored. With a bearer token, every poll sends `Authorization: Bearer TOKEN` (never
 * logged or shown); a 401 is recorded as "coordinator refused the node's token".
 * Threading: one poller thread owned by the hf_control; the callbacks run on it; status and
 * metrics from any thread.
 */
#ifndef HF_CONTROL_H
#define HF_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

typedef struct hf_control hf_control;

/* What became of an envelope handed to the submit callback. */
typedef enum hf_control_verdict {
	HF_CONTROL_ACCEPTED = 0, /* verified and applied: poll again at once */
	HF_CONTROL_NOOP,         /* the current instruction again */
	HF_CONTROL_REFUSED,      /* refused by verification or policy (or no trust file) */
	HF_CONTROL_FAILED,       /* could not be applied (e.g. not persisted) */
} hf_control_verdict;

typedef struct hf_control_ops {
	void *ctx;
	/* Verifies and applies an envelope (len bytes, NUL-terminated); detail (size detailsz)
	 * gets the reason of a refusal or failure. */
	hf_control_verdict (*submit)(void *ctx, const char *envelope, size_t len, char *detail,
				     size_t detailsz);
	/* issued_ms of the last accepted instruction (0: none), sent as ?after=. */
	uint64_t (*last_issued_ms)(void *ctx);
} hf_control_ops;

typedef struct hf_control_opts {
	const char *coordinator_url; /* http:// or https:// base URL (copied) */
	const char *node_id;         /* (copied) */
	const char *ca_file;         /* NULL or "" = the system store (copied) */
	uint64_t poll_wait_s;        /* long-poll wait asked of the coordinator */
	uint64_t retry_max_ms;       /* backoff ceiling (>= 1) */
	const char *bearer_token;    /* NULL or "" = polls without Authorization (copied) */
} hf_control_opts;

/* Starts the poller. The ops table is copied; ops->ctx must outlive the hf_control. */
int hf_control_start(const hf_control_opts *opts, const hf_control_ops *ops, hf_control **out,
		     hf_errbuf *eb);
/* Adds "coordinator", "connected", "polls", "last_poll_ms", "poll_errors", "last_error",
 * "last_outcome", "outcomes" {outcome: count}, "backoff_ms" to obj. */
void hf_control_status(hf_control *c, json_t *obj);
/* hashflop_control_polls_total, _poll_errors_total, _envelopes_total,
 * _poll_outcomes_total{outcome}, _backoff_seconds, _connected. */
void hf_control_metrics(hf_control *c, hf_buf *b);
/* url with the password of its userinfo, or the whole userinfo when it has no password (a
 * token), replaced by "***" (dst of size dstsz): for logs, status and printed configs. */
void hf_control_mask_url(char *dst, size_t dstsz, const char *url);
/* Stops the poller and frees. NULL accepted. */
void hf_control_free(hf_control *c);

#endif
