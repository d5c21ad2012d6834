/* Unit tests: hf_mining_work (nonce ranges, version bits, extranonce2, scan chunks, slot jobs). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_mining_work.h"
#include "hf_stratum_target.h"

Test(mining_work, ranges_are_disjoint_and_cover_the_nonce_space)
{
	for (unsigned n = 1; n <= 64; n = n * 2 + 1) {
		uint64_t next = 0;
		for (unsigned i = 0; i < n; i++) {
			uint32_t start;
			uint64_t count;
			hf_mining_range(i, n, 32, &start, &count);
			cr_assert_eq((uint64_t)start, next, "n=%u i=%u", n, i);
			cr_assert_gt(count, 0);
			next += count;
		}
		cr_assert_eq(next, UINT64_C(1) << 32, "n=%u covers 2^32", n);
	}
}

Test(mining_work, range_bits_cap_each_range)
{
	uint32_t s0, s1;
	uint64_t c0, c1;

	hf_mining_range(0, 2, 16, &s0, &c0);
	hf_mining_range(1, 2, 16, &s1, &c1);
	cr_assert_eq(s0, 0);
	cr_assert_eq(s1, 0x80000000u);
	cr_assert_eq(c0, 65536);
	cr_assert_eq(c1, 65536);
	hf_mining_range(5, 0, 32, &s0, &c0);   /* n = 0 behaves as 1 */
	cr_assert_eq(s0, 0);
	cr_assert_eq(c0, UINT64_C(1) << 32);
}

Test(mining_work, version_bits_stay_inside_the_mask_and_are_distinct)
{
	const uint32_t mask = 0x1fffe000u;
	uint32_t seen[16];

	cr_assert_eq(hf_mining_version_bits(mask, 0), 0);
	cr_assert_eq(hf_mining_version_bits(mask, 1), 0x2000u);
	cr_assert_eq(hf_mining_version_bits(mask, 2), 0x4000u);
	cr_assert_eq(hf_mining_version_bits(0x00f0000fu, 0x1f), 0x0010000fu);
	cr_assert_eq(hf_mining_version_bits(0, 7), 0);
	for (uint32_t k = 0; k < 16; k++) {
		seen[k] = hf_mining_version_bits(mask, k);
		cr_assert_eq(seen[k] & ~mask, 0);
		for (uint32_t j = 0; j < k; j++)
			cr_assert_neq(seen[j], seen[k]);
	}
	cr_assert_eq(hf_mining_version_count(mask, 16), 16);
	cr_assert_eq(hf_mining_version_count(0x6000u, 16), 4);
	cr_assert_eq(hf_mining_version_count(0, 16), 1);
	cr_assert_eq(hf_mining_version_count(0xffffffffu, 0), 1);
}

Test(mining_work, extranonce2_is_big_endian_low_bytes)
{
	uint8_t b[8];

	hf_mining_en2_encode(0x0102030405060708ull, 4, b);
	cr_assert_eq(memcmp(b, "\x05\x06\x07\x08", 4), 0);
	hf_mining_en2_encode(0x0102030405060708ull, 8, b);
	cr_assert_eq(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
}

Test(mining_work, chunk_targets_the_time_within_bounds)
{
	cr_assert_eq(hf_mining_chunk(0, 2000, 4096, 1 << 24), 4096);
	cr_assert_eq(hf_mining_chunk(20e6, 2000, 4096, 1 << 24), 40960);   /* 20 MH/s x 2 ms */
	cr_assert_eq(hf_mining_chunk(1e3, 2000, 4096, 1 << 24), 4096);
	cr_assert_eq(hf_mining_chunk(1e13, 2000, 4096, 1 << 24), 1 << 24);
	cr_assert_eq(hf_mining_chunk(21e6, 2000, 4096, 1 << 24) % 4096, 0);
}

/* The slot job hashes exactly like the Stratum share maths (the pool's check). */
Test(mining_work, slot_job_matches_the_stratum_share_hash)
{
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_sha256d_job job;
	uint8_t en2[4], h1[32], h2[32];
	hf_errbuf eb;

	memset(&w, 0, sizeof w);
	cr_assert_eq(hf_stratum_job_set_hex(&w.job,
		"1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100",
		"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20",
		"ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000",
		NULL, 0, &eb), 0, "%s", eb.msg);
	strcpy(w.job.id, "j1");
	w.job.version = 0x20000000;
	w.job.nbits = 0x1d00ffff;
	w.job.ntime = 0x65000000;
	memcpy(w.en1, "\xaa\xbb\xcc\xdd", 4);
	w.en1_len = 4;
	w.en2_size = 4;
	w.version_mask = 0x1fffe000;
	cr_assert_eq(hf_stratum_target_from_diff(1e-9, w.share_target), 0);
	hf_mining_en2_encode(42, 4, en2);
	uint32_t version = hf_stratum_version_roll(w.job.version, w.version_mask,
						   hf_mining_version_bits(w.version_mask, 3));
	cr_assert_eq(hf_mining_slot_job(&w, en2, version, &job, &eb), 0);
	memset(&sh, 0, sizeof sh);
	strcpy(sh.job_id, "j1");
	memcpy(sh.en2, en2, 4);
	sh.en2_len = 4;
	sh.ntime = w.job.ntime;
	sh.version = version;
	for (uint32_t nonce = 0; nonce < 4; nonce++) {
		sh.nonce = nonce * 0x01010101u;
		hf_sha256d_job_hash(&job, sh.nonce, h1);
		cr_assert_eq(hf_stratum_job_share_hash(&w.job, w.en1, w.en1_len, &sh, NULL, h2), 0);
		cr_assert_eq(memcmp(h1, h2, 32), 0, "nonce %08x", sh.nonce);
	}
	hf_stratum_job_clear(&w.job);
}
