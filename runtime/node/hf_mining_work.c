/* hf_mining_work: nonce ranges, version bits, extranonce2 and slot jobs.
 * Threading: see hf_mining_work.h.
 */
#include "hf_mining_work.h"

#include "hf_stratum_job.h"

void hf_mining_range(unsigned i, unsigned n, unsigned range_bits, uint32_t *start,
		     uint64_t *count)
{
	uint64_t total = UINT64_C(1) << 32, lo, hi, cap;

	if (n == 0)
		n = 1;
	if (i >= n)
		i = n - 1;
	lo = total * i / n;
	hi = total * (i + 1) / n;
	cap = range_bits >= 32 ? total : (UINT64_C(1) << range_bits);
	*start = (uint32_t)lo;
	*count = hi - lo < cap ? hi - lo : cap;
}

uint32_t hf_mining_version_bits(uint32_t mask, uint32_t k)
{
	uint32_t out = 0;

	for (uint32_t bit = 1; mask && k; bit <<= 1) {
		if (!(mask & bit))
			continue;
		if (k & 1)
			out |= bit;
		k >>= 1;
		mask &= ~bit;
	}
	return out;
}

uint32_t hf_mining_version_count(uint32_t mask, uint32_t cap)
{
	int pc = __builtin_popcount(mask);
	uint64_t n = pc >= 32 ? (UINT64_C(1) << 32) : (UINT64_C(1) << pc);

	if (cap == 0)
		cap = 1;
	return n < cap ? (uint32_t)n : cap;
}

void hf_mining_en2_encode(uint64_t v, unsigned size, uint8_t *out)
{
	for (unsigned i = 0; i < size; i++)
		out[size - 1 - i] = (uint8_t)(v >> (8 * i));
}

uint64_t hf_mining_chunk(double rate_hps, uint64_t target_us, uint64_t min_n, uint64_t max_n)
{
	double want = rate_hps * (double)target_us / 1e6;
	uint64_t n;

	if (!(want > (double)min_n))
		return min_n;
	if (want >= (double)max_n)
		return max_n;
	n = ((uint64_t)want + 4095) & ~UINT64_C(4095);
	return n < min_n ? min_n : (n > max_n ? max_n : n);
}

int hf_mining_slot_job(const hf_stratum_work *w, const uint8_t *en2, uint32_t version,
		       hf_sha256d_job *job, hf_errbuf *eb)
{
	uint8_t root[32], hdr[80];
	int r = hf_stratum_job_merkle_root(&w->job, w->en1, w->en1_len, en2, w->en2_size, root);

	if (r < 0)
		return hf_fail(eb, r, "job %s: cannot build the merkle root", w->job.id);
	hf_stratum_header_build(version, w->job.prevhash, root, w->job.ntime, w->job.nbits, 0, hdr);
	hf_sha256d_job_from_header(job, hdr, w->share_target);
	return 0;
}
