/* hf_mining_retry: the restart budget of the mining backend: at most `max` restarts within
 * any `window_ms`, each after an exponential backoff, after which the failure is final.
 *
 * Invariants: a failure at time t counts for [t, t + window_ms); the k-th failure inside the
 * window (k = 1 .. max) is answered with a restart after backoff_ms * 2^(k-1) (capped at
 * HF_MINING_RETRY_BACKOFF_CAP_MS); failure max + 1 inside the window is final (false). max = 0
 * makes the first failure final. Times come from the caller (hf_mono_ms), so the policy is a
 * pure function of its inputs.
 * Threading: one owner (the mining supervisor); no locks.
 */
#ifndef HF_MINING_RETRY_H
#define HF_MINING_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define HF_MINING_RETRY_MAX 16
#define HF_MINING_RETRY_BACKOFF_CAP_MS 60000u

typedef struct hf_mining_retry {
	unsigned max;
	uint64_t window_ms, backoff_ms;
	uint64_t fail_ms[HF_MINING_RETRY_MAX + 1]; /* times of the failures still in the window */
	unsigned nfail;
	uint64_t total;                            /* failures ever noted */
} hf_mining_retry;

/* max is capped at HF_MINING_RETRY_MAX. */
void hf_mining_retry_init(hf_mining_retry *r, unsigned max, uint64_t window_ms,
			  uint64_t backoff_ms);
/* Notes a failure at now_ms. true: restart at *restart_at_ms; false: the budget is spent. */
bool hf_mining_retry_fail(hf_mining_retry *r, uint64_t now_ms, uint64_t *restart_at_ms);
/* Failures inside the window ending at now_ms. */
unsigned hf_mining_retry_recent(hf_mining_retry *r, uint64_t now_ms);

#endif
