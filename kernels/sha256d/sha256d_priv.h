/* sha256d_priv: what the scanners of kernels/sha256d share (not part of the public API):
 * round constants, the candidate check every optimised scanner ends with, and the scan
 * functions of the ISA-specific files that the dispatch table lists.
 * Threading: constants and pure functions only.
 */
#ifndef HF_SHA256D_PRIV_H
#define HF_SHA256D_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_sha256d.h"

extern const uint32_t hf_sha256d_priv_k[64];
extern const uint32_t hf_sha256d_priv_iv[8];

/* Checks the arguments every scanner takes; 0 or HF_EINVAL. */
int hf_sha256d_priv_check_args(const hf_sha256d_job *job, uint64_t count, const uint32_t *hits,
			       size_t max_hits, const hf_sha256d_result *res);

/* A candidate that passed a scanner's early reject: recomputes its SHA-256d in full and, if it
 * meets the whole target, appends it to hits. Returns false only when it is a hit and the
 * buffer is already full (the scanner then stops at this nonce). */
bool hf_sha256d_priv_offer(const hf_sha256d_job *job, uint32_t nonce, uint32_t *hits,
			   size_t max_hits, size_t *n_hits);

/* Offers the candidates of one batch: bit i of mask is the nonce base + i at offset off + i of
 * the scan; lanes at or past count are ignored. Returns false when the buffer filled (then
 * res->scanned is set to the offset of the unreported hit). */
bool hf_sha256d_priv_offer_mask(const hf_sha256d_job *job, uint32_t base, uint64_t mask,
				uint64_t off, uint64_t count, uint32_t *hits, size_t max_hits,
				hf_sha256d_result *res);

/* The ISA-specific scanners (each file is built with its own flags; meson picks which exist).
 * Their supported() checks are in the table file, which is built without ISA flags. */
int hf_sha256d_priv_scan_shani(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			       uint32_t *hits, size_t max_hits, hf_sha256d_result *res);
int hf_sha256d_priv_scan_avx2(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			      uint32_t *hits, size_t max_hits, hf_sha256d_result *res);
int hf_sha256d_priv_scan_avx512(const hf_sha256d_job *job, uint32_t start, uint64_t count,
				uint32_t *hits, size_t max_hits, hf_sha256d_result *res);

/* The dispatch table of this build, best first, reference last (sha256d_table_*.c). */
extern const hf_sha256d_impl *const hf_sha256d_priv_table[];
extern const size_t hf_sha256d_priv_table_len;

#endif
