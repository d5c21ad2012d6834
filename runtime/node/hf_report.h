/* hf_report: the node's reports to its coordinator: a thread that POSTs node report v1 (the
 * contract: runtime/coord/README.md) to {coordinator_url}/v1/nodes/{node_id}/report with
 * `Authorization: Bearer TOKEN`, every interval_s and at once when something worth reporting
 * changes.
 *
 * Triggers: hf_report_notify() (the node calls it when it accepts an instruction) wakes the
 * thread at once; besides, the thread compares the node's hf_report_state (mode, desired mode,
 * phase, converged, applied issued_ms) every check_ms and treats a difference as a change, so
 * the mode machine's own steps (a switch finishing, a failed start, a health failure) are
 * reported within check_ms without the machine knowing about reports. A burst of changes is
 * coalesced: the report goes out coalesce_ms after the first change it carries (and never less
 * than min_gap_ms after the previous report), built from the state at that moment. At most one
 * report is in flight; a change seen while one is in flight is sent after it.
 * The coordinator's answer {"next_report_s": N} (1..3600) replaces interval_s from then on.
 * Errors (an HTTP status other than 2xx, a network or TLS failure, an answer over 16 KiB, a
 * body over max_body) back off like hf_control: exponentially with +-25% jitter from
 * min(500 ms, retry_max_ms) up to retry_max_ms, changes included (a failing coordinator is not
 * hammered); a success starts the backoff over. A 401 is logged once, clearly ("coordinator
 * refused the node's token"), until a report succeeds again; other errors are logged at every
 * failed attempt. TLS peers are always verified (ca_file adds a CA bundle). Text from the
 * coordinator is cleaned (hf_text_clean) before it is logged or stored. The token is never
 * logged or shown.
 * Threading: one reporter thread owned by the hf_report; the callbacks run on it, never under
 * the hf_report's lock; notify, status and metrics from any thread.
 */
#ifndef HF_REPORT_H
#define HF_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

typedef struct hf_report hf_report;

/* Tokens are 16..256 printable ASCII characters (no spaces): `hashflop-coord node add` prints
 * 64 hex digits. */
#define HF_REPORT_TOKEN_MIN 16
#define HF_REPORT_TOKEN_MAX 256
#define HF_REPORT_DEFAULT_MAX_BODY (64u << 10)

/* What makes a report go out at once when it changes. */
typedef struct hf_report_state {
	int mode, desired_mode, phase; /* hf_mode, hf_mode, hf_mode_phase values */
	bool converged;
	uint64_t applied_issued_ms;
} hf_report_state;

typedef struct hf_report_ops {
	void *ctx;
	/* The report document numbered seq (1, 2, ...): a new reference, or NULL to skip this
	 * one (counted as an error: "the node could not build its report"). */
	json_t *(*build)(void *ctx, uint64_t seq);
	/* The current state (cheap: called every check_ms). */
	void (*state)(void *ctx, hf_report_state *out);
} hf_report_ops;

typedef struct hf_report_opts {
	const char *coordinator_url; /* http:// or https:// base URL (copied) */
	const char *node_id;         /* (copied) */
	const char *ca_file;         /* NULL or "" = the system store (copied) */
	const char *token;           /* the node's bearer token (copied; required) */
	uint64_t interval_s;         /* 1..3600 until the coordinator names another */
	uint64_t retry_max_ms;       /* backoff ceiling (>= 1) */
	size_t max_body;             /* report body cap (0: HF_REPORT_DEFAULT_MAX_BODY) */
	unsigned check_ms;           /* state comparison period (0: 50) */
	unsigned coalesce_ms;        /* wait after a change for the rest of its burst (0: 20) */
	unsigned min_gap_ms;         /* least time between two reports (0: 100) */
} hf_report_opts;

/* Reads a token file: one line (a final "\n" or "\r\n" is dropped) of HF_REPORT_TOKEN_MIN to
 * HF_REPORT_TOKEN_MAX characters from '!' to '~'. HF_ENOTFOUND when the file does not exist,
 * HF_EIO when it cannot be read, HF_EPARSE when its content is not a token; the message names
 * the file and what is wrong, never the content. *world_readable tells whether others may read
 * the file (may be NULL). */
int hf_report_token_load(const char *path, char *out, size_t outsz, bool *world_readable,
			 hf_errbuf *eb);

/* Starts the reporter; the first report goes out at once. The ops table is copied; ops->ctx
 * must outlive the hf_report. */
int hf_report_start(const hf_report_opts *opts, const hf_report_ops *ops, hf_report **out,
		    hf_errbuf *eb);
/* Something worth reporting changed: report soon (coalesced, see above). Any thread. */
void hf_report_notify(hf_report *r);
/* Adds "reports" (sent and answered 2xx), "report_errors", "last_report_ms" (wall clock of the
 * last success; 0 none), "last_report_error" (or null), "report_interval_s" (in force),
 * "report_backoff_ms" (0: not backing off) to obj. */
void hf_report_status(hf_report *r, json_t *obj);
/* hashflop_control_reports_total, hashflop_control_report_errors_total,
 * hashflop_control_report_last_success_seconds. */
void hf_report_metrics(hf_report *r, hf_buf *b);
/* Stops the reporter (a report in flight is cut short within about a second), frees. NULL
 * accepted. */
void hf_report_free(hf_report *r);

#endif
