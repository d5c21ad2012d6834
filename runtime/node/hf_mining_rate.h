/* hf_mining_rate: a hash-rate tracker with exact windowed averages (10 s, 1 min, 15 min, or any
 * window up to HF_MINING_RATE_SPAN s) from per-second buckets.
 *
 * Invariants: counts are added at whole seconds of a caller-supplied monotonic clock; buckets
 * older than the span are forgotten; an average over a window longer than the tracker's age
 * divides by the age (at least 1 s), so a young tracker reports its real rate, not a ramp.
 * Threading: one owner; callers serialise (the mining supervisor holds its stats lock).
 */
#ifndef HF_MINING_RATE_H
#define HF_MINING_RATE_H

#include <stdint.h>

#define HF_MINING_RATE_SPAN 900

typedef struct hf_mining_rate {
	uint64_t bucket[HF_MINING_RATE_SPAN];
	uint64_t start_s;    /* second of the first add */
	uint64_t head_s;     /* second of the newest bucket */
	uint64_t total;
	int started;
} hf_mining_rate;

void hf_mining_rate_init(hf_mining_rate *r);
/* Adds n hashes at second now_s (non-decreasing across calls). */
void hf_mining_rate_add(hf_mining_rate *r, uint64_t now_s, uint64_t n);
/* Average per second over the window_s seconds ending at now_s, its bucket included (the
 * caller adds at whole seconds what the second before hashed). */
double hf_mining_rate_avg(const hf_mining_rate *r, uint64_t now_s, unsigned window_s);

#endif
