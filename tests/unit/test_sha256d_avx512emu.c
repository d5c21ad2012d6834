/* Unit tests for the AVX-512 scanner's logic on any CPU: kernels/sha256d/sha256d_avx512.c is
 * compiled into this test against a plain-C stand-in for its AVX-512F intrinsics
 * (test_sha256d_emu/immintrin.h) and checked against the reference scanner and OpenSSL. This
 * verifies the rounds, the precomputation, the ternary-logic immediates, rotates, byte swaps
 * and the early-reject mask as written; it does not run real AVX-512 instructions (test_sha256d
 * does that, or reports a skip, on a CPU that has them).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hf_sha256d.h"
#include "sha256d_testutil.h"

/* sha256d_avx512.c, renamed by this test's compile flags */
int hf_test_emu_scan_avx512(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			    uint32_t *hits, size_t max_hits, hf_sha256d_result *res);

static uint64_t rng_state = 0xb7e151628aed2a6bull; /* sha256d_test_rand: a fixed seed */

#define MAX_HITS 1024

static void agree(const uint8_t header[80], const hf_sha256d_job *job, uint32_t start,
		  uint64_t count)
{
	static uint32_t a[MAX_HITS], b[MAX_HITS];
	hf_sha256d_result ra, rb;
	cr_assert_eq(hf_test_emu_scan_avx512(job, start, count, a, MAX_HITS, &ra), 0);
	cr_assert_eq(hf_sha256d_scan_ref(job, start, count, b, MAX_HITS, &rb), 0);
	cr_assert_eq(ra.scanned, rb.scanned);
	cr_assert_eq(ra.n_hits, rb.n_hits, "avx512 (emulated) %zu hits, reference %zu",
		     ra.n_hits, rb.n_hits);
	for (size_t i = 0; i < ra.n_hits; i++) {
		cr_assert_eq(a[i], b[i]);
		uint8_t twice[32];
		sha256d_test_openssl_nonce(header, a[i], twice);
		cr_assert(hf_sha256d_meets_target(twice, job->target));
	}
}

Test(sha256d_avx512emu, random_headers_and_wrapping_ranges)
{
	for (int i = 0; i < 300; i++) {
		uint8_t header[80];
		hf_sha256d_job job;
		sha256d_test_random_job(&rng_state, i % 3 == 0 ? 0x10 : i % 3 == 1 ? 0xff : 0x01,
					header, &job);
		uint32_t start = i % 4 == 0 ? 0u - (uint32_t)(sha256d_test_rand(&rng_state) % 40)
					    : (uint32_t)sha256d_test_rand(&rng_state);
		agree(header, &job, start, 1 + sha256d_test_rand(&rng_state) % 70);
	}
}

Test(sha256d_avx512emu, genesis_block)
{
	static const char hex[] =
		"0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd"
		"7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000";
	uint8_t header[80], target[32];
	for (int i = 0; i < 80; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		header[i] = (uint8_t)v;
	}
	cr_assert_eq(hf_sha256d_target_from_bits(0x1d00ffff, target), 0);
	hf_sha256d_job job;
	hf_sha256d_job_from_header(&job, header, target);
	uint32_t hits[4];
	hf_sha256d_result res;
	cr_assert_eq(hf_test_emu_scan_avx512(&job, 2083236893u - 500, 1001, hits, 4, &res), 0);
	cr_assert_eq(res.n_hits, 1);
	cr_assert_eq(hits[0], 2083236893u);
}

Test(sha256d_avx512emu, boundary_targets_and_many_hits)
{
	for (int i = 0; i < 60; i++) {
		uint8_t header[80], target[32] = { 0 }, hash[32];
		hf_sha256d_job job;
		sha256d_test_rand_bytes(&rng_state, header, 80);
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t nonce = (uint32_t)sha256d_test_rand(&rng_state);
		hf_sha256d_job_hash(&job, nonce, hash);
		hf_sha256d_job_from_header(&job, header, hash);
		agree(header, &job, nonce - 7, 20);
		memcpy(target, hash, 32);
		for (int k = 0; k < 32 && target[k]-- == 0; k++)
			;
		hf_sha256d_job_from_header(&job, header, target);
		agree(header, &job, nonce - 7, 20);
	}
	uint8_t header[80];
	hf_sha256d_job job;
	sha256d_test_every_nonce_job(&rng_state, header, &job);
	agree(header, &job, 0xfffffff0u, 333);
	uint32_t hits[5];
	hf_sha256d_result res;
	cr_assert_eq(hf_test_emu_scan_avx512(&job, 100, 50, hits, 5, &res), 0);
	cr_assert_eq(res.n_hits, 5);
	cr_assert_eq(res.scanned, 5);
	cr_assert_eq(hits[4], 104);
}
