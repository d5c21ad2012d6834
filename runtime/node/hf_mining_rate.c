/* hf_mining_rate: per-second buckets and windowed averages.
 * Threading: see hf_mining_rate.h.
 */
#include "hf_mining_rate.h"

#include <string.h>

void hf_mining_rate_init(hf_mining_rate *r)
{
	memset(r, 0, sizeof *r);
}

void hf_mining_rate_add(hf_mining_rate *r, uint64_t now_s, uint64_t n)
{
	if (!r->started) {
		r->started = 1;
		r->start_s = r->head_s = now_s;
	}
	if (now_s < r->head_s)
		now_s = r->head_s;
	if (now_s - r->head_s >= HF_MINING_RATE_SPAN) {
		memset(r->bucket, 0, sizeof r->bucket);
	} else {
		for (uint64_t s = r->head_s + 1; s <= now_s; s++)
			r->bucket[s % HF_MINING_RATE_SPAN] = 0;
	}
	r->head_s = now_s;
	r->bucket[now_s % HF_MINING_RATE_SPAN] += n;
	r->total += n;
}

double hf_mining_rate_avg(const hf_mining_rate *r, uint64_t now_s, unsigned window_s)
{
	uint64_t end, age, sum = 0, first;

	if (!r->started || window_s == 0)
		return 0.0;
	if (window_s > HF_MINING_RATE_SPAN)
		window_s = HF_MINING_RATE_SPAN;
	/* The sampler adds at the start of each second what the previous one hashed, so the
	 * bucket of now_s is complete and belongs to the window. */
	end = now_s > r->start_s ? now_s : r->start_s;
	age = end - r->start_s + 1;
	if (age > window_s)
		age = window_s;
	first = end + 1 - age;
	for (uint64_t s = first; s <= end; s++)
		if (s <= r->head_s && r->head_s - s < HF_MINING_RATE_SPAN)
			sum += r->bucket[s % HF_MINING_RATE_SPAN];
	return (double)sum / (double)age;
}
