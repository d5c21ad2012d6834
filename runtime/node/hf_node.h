/* hf_node: one running hashflopd: config, state dir lock, persisted desired state, the mode
 * machine and the local API, wired together.
 *
 * Start-up order: lock the state dir (one daemon per state dir) -> load the persisted desired
 * mode (corrupt files are moved aside, never trusted) -> open the power source (power.*) ->
 * start the mode machine in that mode -> start the telemetry sampler -> start the API -> write <state_dir>/api.json with the bound address. Shutdown runs it backwards
 * and drains the current mode within the configured drain timeout.
 * Threading: hf_node_new/free on the main thread; status, metrics and instructions from any
 * thread.
 */
#ifndef HF_NODE_H
#define HF_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hf_buf.h"
#include "hf_error.h"
#include "hf_instr.h"
#include "hf_mode.h"
#include "hf_node_config.h"
#include "hf_power.h"
#include "hf_telemetry.h"

typedef struct hf_node hf_node;

/* Takes ownership of nothing: cfg must outlive the node. Logs what it restores. */
int hf_node_new(const hf_node_config *cfg, hf_node **out, hf_errbuf *eb);
/* The bound API port. */
uint16_t hf_node_api_port(const hf_node *n);
/* The mode machine's watchdog bounds (hf_modes_opts): a start may build OpenCL programs (a
 * minute and more on PoCL); release and health return within seconds; the grace is added to
 * every bound and to the drain timeout. */
#define HF_NODE_START_BOUND_MS 300000
#define HF_NODE_CALLBACK_BOUND_MS 5000
#define HF_NODE_WATCHDOG_GRACE_MS 5000
/* Waits up to timeout_ms until the mode machine has acted on the desired state (the restored
 * mode's first start attempt has finished, running or failed and retried); false on timeout. */
bool hf_node_wait_settled(hf_node *n, uint64_t timeout_ms);
/* The mode machine's watchdog verdict (hf_modes_watchdog): true while healthy. */
bool hf_node_watchdog(hf_node *n, char *why, size_t whysz);
/* One line for systemd's STATUS=: "running mining", or what is starting, retrying or
 * restarting and why (size bufsz). */
void hf_node_status_line(hf_node *n, char *buf, size_t bufsz);
/* What became of a submitted instruction. */
typedef enum hf_instr_result {
	HF_INSTR_ACCEPTED = 0, /* verified, persisted, made the desired state */
	HF_INSTR_NOOP,         /* the same envelope as the last accepted one: nothing to do */
	HF_INSTR_REFUSED,      /* refused by verification or policy: see why */
	HF_INSTR_NO_TRUST,     /* the node has no usable trust file: every instruction is refused */
	HF_INSTR_FAILED,       /* accepted but not persisted (disk): the node keeps its mode */
} hf_instr_result;

typedef struct hf_instr_outcome {
	hf_instr_result result;
	hf_instr_refusal why;     /* with HF_INSTR_REFUSED */
	char detail[HF_ERRBUF_SIZE]; /* cleaned text */
	hf_mode mode;             /* with HF_INSTR_ACCEPTED */
	uint64_t issued_ms;
	bool automatic;
	bool mode_available;      /* false: accepted, but this build has no worker for mode */
	/* With HF_INSTR_ACCEPTED and a wait: */
	bool applied;             /* the mode runs with the instruction's parameters */
	bool pending;             /* the switch was still running at the deadline */
	char error[HF_ERRBUF_SIZE]; /* why it is not applied (a failed start: retried), cleaned */
	/* With HF_INSTR_ACCEPTED and HF_INSTR_NOOP: the machine after the wait */
	bool converged;
} hf_instr_outcome;

/* Verifies an envelope from source ("local" or "coordinator"); when accepted, persists it
 * (anti-replay state, desired mode, audit copy) before making it the desired state, then waits
 * up to wait_ms (0: no wait) for the switch to finish: applied, failed (error) or pending.
 * Serialised: two instructions are never verified against the same last_issued_ms (the wait
 * happens outside that lock). Logs the outcome. */
void hf_node_submit_instruction(hf_node *n, const char *envelope, size_t len, const char *source,
				uint64_t wait_ms, hf_instr_outcome *out);
/* hf_node_submit_instruction in two halves, for a caller that must not block while the switch
 * runs (the local API defers its answer): verifies and applies without waiting; true when the
 * instruction was accepted and made the desired state, *ticket naming that request. */
bool hf_node_submit_instruction_nowait(hf_node *n, const char *envelope, size_t len,
				       const char *source, hf_instr_outcome *out, hf_modes_ticket *ticket);
/* Waits up to wait_ms (0: only looks) for the switch of an instruction accepted with ticket and
 * fills applied, pending, error and converged. */
void hf_node_instruction_finish(hf_node *n, const hf_modes_ticket *t, uint64_t wait_ms,
				hf_instr_outcome *out);
/* issued_ms of the last accepted instruction (0: none). */
uint64_t hf_node_last_issued_ms(hf_node *n);
const hf_node_config *hf_node_config_of(const hf_node *n);

/* The node's power source (opened at start from node.json's power section; lives as long as
 * the node), or NULL when none could be opened. */
hf_power *hf_node_power(hf_node *n);
/* The latest power and efficiency snapshot (all zero, samples 0, without a power source). */
void hf_node_telemetry(hf_node *n, hf_telemetry_snapshot *out);
/* The document behind GET /v1/status (new reference). */
json_t *hf_node_status_json(hf_node *n);
/* The text behind GET /metrics. */
void hf_node_metrics(hf_node *n, hf_buf *b);
/* Drains, persists, stops the API, unlocks. NULL accepted. */
void hf_node_free(hf_node *n);

#endif
