/* hf_mining_work: the pure maths of distributing mining work: disjoint per-thread nonce ranges,
 * extranonce2 encoding, version bits rolled within the pool's mask, adaptive scan chunks, and
 * the SHA-256d job for one (work, extranonce2, version) slot.
 *
 * Invariants: the n ranges of hf_mining_range() are disjoint and cover [0, 2^32) together
 * (each capped at 2^range_bits nonces from its start); hf_mining_version_bits() only sets bits
 * inside the mask, and distinct k < hf_mining_version_count() give distinct bits.
 * Threading: reentrant, no state.
 */
#ifndef HF_MINING_WORK_H
#define HF_MINING_WORK_H

#include <stddef.h>
#include <stdint.h>

#include "hf_sha256d.h"
#include "hf_stratum_drv.h"

/* Versions rolled per extranonce2 before the extranonce2 itself rolls (the merkle root is
 * only recomputed per extranonce2, and that is cheap next to 2^32 hashes). */
#define HF_MINING_VERSION_ROLLS_MAX 16u

/* Thread i of n: nonces [*start, *start + *count). */
void hf_mining_range(unsigned i, unsigned n, unsigned range_bits, uint32_t *start,
		     uint64_t *count);

/* Deposits the low bits of k into the set bits of mask, lowest first. */
uint32_t hf_mining_version_bits(uint32_t mask, uint32_t k);
/* How many versions to roll per extranonce2: min(2^popcount(mask), cap); 1 for mask 0. */
uint32_t hf_mining_version_count(uint32_t mask, uint32_t cap);

/* The low `size` bytes of v, big-endian (size 1..8). */
void hf_mining_en2_encode(uint64_t v, unsigned size, uint8_t *out);

/* Nonces per scan call so one call takes about target_us at rate_hps (multiple of 4096,
 * within [min_n, max_n]); min_n when the rate is not known yet. */
uint64_t hf_mining_chunk(double rate_hps, uint64_t target_us, uint64_t min_n, uint64_t max_n);

/* Builds the header of work w with extranonce2 en2 and full version `version`, and prepares
 * the scanner job against the work's share target. */
int hf_mining_slot_job(const hf_stratum_work *w, const uint8_t *en2, uint32_t version,
		       hf_sha256d_job *job, hf_errbuf *eb);

#endif
