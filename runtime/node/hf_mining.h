/* hf_mining: the mining mode worker of hashflopd: SHA-256d kernels (CPU threads or one OpenCL
 * device) fed by the Stratum driver, with accounting, supervision and a bounded drain.
 *
 * A run (start -> drain -> release) owns: the Stratum driver (pools with failover/failback), a
 * supervisor thread (publishes each new work to the hashing threads, samples hash rates,
 * restarts a hashing thread whose scan failed (the OpenCL device reopened) within
 * mining.restart_max restarts per restart_window_ms, replaces a stalled CPU thread, notices
 * the loss of every pool, steps the power target, logs a status line), N hashing threads over disjoint nonce ranges
 * (extranonce2 and version bits rolled when a range is exhausted), and a submit thread (found
 * nonce -> local check -> driver queue), so hashing never waits on the network. Every share
 * is tracked by a share ledger (hf_share_ledger.h) from found to answered or dropped with a
 * reason; a drain waits only for shares really in flight. Once the restart budget is spent
 * the run is failed: status says "failed" with last_error and the health callback returns the
 * error, so the mode machine can restart or report the mode. Counters live as long as the
 * worker object; rates, threads and pools per run. With mining.power_target_w the supervisor
 * holds the node's power at the target (active threads and a duty cycle, or an NVML board
 * limit for an OpenCL GPU: hf_mining_power.c, the controller in hf_power_target.h).
 * Threading: hf_mining_new/free on the node's owner thread; the worker callbacks follow
 * hf_mode.h (start/drain/release/health on the switcher thread; status/metrics from any
 * thread).
 */
#ifndef HF_MINING_H
#define HF_MINING_H

#include <jansson.h>

#include "hf_error.h"
#include "hf_mode.h"
#include "hf_power.h"

typedef struct hf_mining hf_mining;

/* section: node.json's `mining` object (NULL: defaults, no pools); state_dir for the OpenCL
 * program cache default; power (borrowed, may be NULL; must outlive the worker) is the node's
 * power source, which mining.power_target_w is held with: a start with a target and no source
 * fails with HF_ECONFIG saying so. */
int hf_mining_new(const json_t *section, const char *state_dir, hf_power *power, hf_mining **out,
		  hf_errbuf *eb);
/* Fills *w with the callbacks for hf_modes_register(). */
void hf_mining_worker(hf_mining *m, hf_mode_worker *w);
/* NULL accepted; the run must have been drained and released (hf_modes_free does that). */
void hf_mining_free(hf_mining *m);

#endif
