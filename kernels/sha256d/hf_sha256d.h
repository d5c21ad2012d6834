/* hf_sha256d: SHA-256d nonce scanning over Bitcoin block headers: a portable reference scanner
 * (the oracle), SHA-NI, AVX2 and AVX-512 scanners, and a one-time runtime dispatch between them.
 *
 * A job is the nonce-independent part of an 80-byte header: the SHA-256 midstate after its first
 * 64 bytes, its last 16 bytes (bytes 76..79, the nonce, are ignored) and a 256-bit target.
 * hf_sha256d_job_init() does all nonce-free precomputation once; a scan then reports, in
 * increasing nonce order (modulo 2^32), every nonce of [start, start + count) whose SHA-256d,
 * read as a little-endian 256-bit number the way Bitcoin does, is <= the target. Every hit a
 * scanner reports has passed a full 256-bit comparison, not only a test of the top word.
 *
 * Byte orders: the hash is the 32 raw bytes SHA-256 outputs (block explorers print them
 * reversed); the target is 32 bytes little-endian (byte 31 most significant), so the hash and
 * the target compare byte for byte from index 31 down.
 *
 * Scanners never allocate, lock, print or read global state; a scan stops early only when the
 * caller's hit buffer is full (the result says how far it got, so the caller resumes there).
 * Threading: jobs are plain values; any number of threads may scan the same const job at once.
 * hf_sha256d_default() resolves once (thread-safe) and is cheap afterwards.
 */
#ifndef HF_SHA256D_H
#define HF_SHA256D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

/* Environment variable that forces one implementation by name ("auto" or unset: best). */
#define HF_SHA256D_IMPL_ENV "HASHFLOP_SHA256D_IMPL"

/* Largest nonce range one scan covers (the whole 32-bit nonce space). */
#define HF_SHA256D_MAX_COUNT (UINT64_C(1) << 32)

/* A prepared job. Filled by hf_sha256d_job_init(); read-only afterwards. The fields after
 * `target` are precomputation shared by the scanners; callers need not read them. */
typedef struct hf_sha256d_job {
	uint32_t midstate[8];   /* SHA-256 state after header bytes 0..63 */
	uint32_t tail[3];       /* header bytes 64..75 as big-endian message words */
	uint8_t target[32];     /* little-endian 256-bit target */
	uint32_t target_hi;     /* most significant 32 bits of the target (bytes 31..28) */

	/* First hash, second block: words M0..M2 = tail, M3 = nonce (byte-swapped), M4.. padding. */
	uint32_t s2[8];         /* state after rounds 0..1 (a..h) */
	uint32_t s3[8];         /* state after rounds 0..2 (a..h) */
	uint32_t r3_e;          /* e after round 3 = r3_e + M3 */
	uint32_t r3_a;          /* a after round 3 = r3_a + M3 */
	uint32_t w16, w17;      /* nonce-free schedule words */
	uint32_t w18c;          /* W18 = w18c + sigma0(M3) */
	uint32_t w19c;          /* W19 = w19c + M3 */
	uint32_t c30;           /* W30 = sigma1(W28) + W23 + c30 */
	uint32_t c31;           /* W31 = sigma1(W29) + W24 + c31 */
	uint32_t c32;           /* W32 = sigma1(W30) + W25 + c32 */
} hf_sha256d_job;

/* Where a scan stopped. */
typedef struct hf_sha256d_result {
	uint64_t scanned;       /* nonces covered from start (== count unless the hit buffer filled) */
	size_t n_hits;          /* hits written to the caller's buffer */
} hf_sha256d_result;

/* Scans nonces start, start+1, ... (wrapping at 2^32) for count nonces (0..2^32), writing hits
 * in scan order into hits[0..max_hits). When the buffer is full and another hit is found, the
 * scan stops and res->scanned is the offset of that unreported hit, so a second call from
 * start + scanned continues without losing it. Returns 0, or HF_EINVAL for count > 2^32 or
 * NULL pointers (hits may be NULL when max_hits is 0). */
typedef int (*hf_sha256d_scan_fn)(const hf_sha256d_job *job, uint32_t start, uint64_t count,
				  uint32_t *hits, size_t max_hits, hf_sha256d_result *res);

/* One implementation of the dispatch table. */
typedef struct hf_sha256d_impl {
	const char *name;        /* "avx512", "shani", "avx2", "ref" */
	const char *summary;     /* one line for logs and --help */
	unsigned lanes;          /* nonces hashed together */
	bool (*supported)(void); /* true when this CPU runs it */
	hf_sha256d_scan_fn scan;
} hf_sha256d_impl;

/* SHA-256 state after one 64-byte block from the initial value (the job's midstate). */
void hf_sha256d_midstate(const uint8_t first64[64], uint32_t midstate[8]);

/* Prepares a job from a midstate, the last 16 header bytes and a target. */
void hf_sha256d_job_init(hf_sha256d_job *job, const uint32_t midstate[8],
			 const uint8_t tail16[16], const uint8_t target[32]);

/* Prepares a job from a whole 80-byte header (its nonce bytes are ignored) and a target. */
void hf_sha256d_job_from_header(hf_sha256d_job *job, const uint8_t header[80],
				const uint8_t target[32]);

/* SHA-256d of the job's header with this nonce (the reference computation, no shortcuts). */
void hf_sha256d_job_hash(const hf_sha256d_job *job, uint32_t nonce, uint8_t hash[32]);

/* SHA-256(SHA-256(data)) of any byte string, plain C. */
void hf_sha256d_hash(const void *data, size_t len, uint8_t hash[32]);

/* True when hash, read little-endian, is <= target (little-endian). */
bool hf_sha256d_meets_target(const uint8_t hash[32], const uint8_t target[32])
	__attribute__((warn_unused_result));

/* Expands a compact nBits value into a little-endian target. HF_ERANGE for a negative
 * mantissa or a target that does not fit in 256 bits. */
int hf_sha256d_target_from_bits(uint32_t bits, uint8_t target[32]);

/* The portable reference scanner (always present; the oracle for every other one). */
int hf_sha256d_scan_ref(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			uint32_t *hits, size_t max_hits, hf_sha256d_result *res);

/* The dispatch table, best first; the reference is always last. Lists every implementation
 * compiled in, supported by this CPU or not. */
size_t hf_sha256d_impl_count(void);
const hf_sha256d_impl *hf_sha256d_impl_at(size_t i);
/* The implementation with this name, or NULL. */
const hf_sha256d_impl *hf_sha256d_impl_find(const char *name);

/* Picks an implementation: name NULL, "" or "auto" = the best one this CPU supports; otherwise
 * that one (HF_ENOTFOUND for an unknown name, HF_EUNSUPPORTED when this CPU lacks it). */
int hf_sha256d_choose(const char *name, const hf_sha256d_impl **out, hf_errbuf *eb);

/* The process-wide choice, made once from HASHFLOP_SHA256D_IMPL (see hf_sha256d_choose).
 * A bad value is reported (the same code and detail on every call) and nothing is chosen, so
 * programs log it and refuse to mine rather than silently run something else. */
int hf_sha256d_default(const hf_sha256d_impl **out, hf_errbuf *eb);

#endif
