/* hf_mining_retry: bounded restarts in a sliding window with exponential backoff.
 * Threading: see hf_mining_retry.h.
 */
#include "hf_mining_retry.h"

#include <string.h>

void hf_mining_retry_init(hf_mining_retry *r, unsigned max, uint64_t window_ms,
			  uint64_t backoff_ms)
{
	memset(r, 0, sizeof *r);
	r->max = max > HF_MINING_RETRY_MAX ? HF_MINING_RETRY_MAX : max;
	r->window_ms = window_ms;
	r->backoff_ms = backoff_ms;
}

/* Forgets failures older than the window. */
static void expire(hf_mining_retry *r, uint64_t now_ms)
{
	unsigned k = 0;

	for (unsigned i = 0; i < r->nfail; i++)
		if (now_ms < r->fail_ms[i] || now_ms - r->fail_ms[i] < r->window_ms)
			r->fail_ms[k++] = r->fail_ms[i];
	r->nfail = k;
}

unsigned hf_mining_retry_recent(hf_mining_retry *r, uint64_t now_ms)
{
	expire(r, now_ms);
	return r->nfail;
}

bool hf_mining_retry_fail(hf_mining_retry *r, uint64_t now_ms, uint64_t *restart_at_ms)
{
	uint64_t wait = r->backoff_ms;

	expire(r, now_ms);
	r->total++;
	if (r->nfail < HF_MINING_RETRY_MAX + 1)
		r->fail_ms[r->nfail++] = now_ms;
	if (r->nfail > r->max)
		return false;
	for (unsigned i = 1; i < r->nfail && wait < HF_MINING_RETRY_BACKOFF_CAP_MS; i++)
		wait *= 2;
	if (wait > HF_MINING_RETRY_BACKOFF_CAP_MS)
		wait = HF_MINING_RETRY_BACKOFF_CAP_MS;
	*restart_at_ms = now_ms + wait;
	return true;
}
