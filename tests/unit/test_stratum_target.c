/* Unit tests for hf_stratum_target: difficulty and nbits targets (exact values computed with
 * rational arithmetic), hash comparison and hash difficulty. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "hf_stratum_target.h"

static void check_diff(double d, const char *want)
{
	uint8_t t[32];
	char hex[65];

	cr_assert_eq(hf_stratum_target_from_diff(d, t), 0, "diff %g", d);
	hf_stratum_u256_hex(t, hex);
	cr_assert_str_eq(hex, want, "diff %g", d);
}

Test(stratum_target, difficulty_exact)
{
	check_diff(1, "00000000ffff0000000000000000000000000000000000000000000000000000");
	check_diff(2, "000000007fff8000000000000000000000000000000000000000000000000000");
	check_diff(0.5, "00000001fffe0000000000000000000000000000000000000000000000000000");
	check_diff(0.001, "000003e7fc17fffffffa2405dc00000008c9f735fffffff2d10d2f00000013c6");
	check_diff(0.0138, "0000004876710b21642cddc7d787fc20e8b4f3492b1cada0dc4990ba0ca6da17");
	check_diff(1e-6, "000f4230bdc0000031c1146eb9d000a23c55600c62fe11023b62f063c9f1f607");
	check_diff(123456.789,
		   "00000000000087e4b45ede50c6ef489a7e78e4308b2b8f81cdf0e652f3bcfe45");
	/* Below about 2^-40 the target saturates at 2^256 - 1. */
	check_diff(1e-12, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
	check_diff(1e-300, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

Test(stratum_target, difficulty_refused)
{
	uint8_t t[32];

	cr_assert_eq(hf_stratum_target_from_diff(0, t), HF_EINVAL);
	cr_assert_eq(hf_stratum_target_from_diff(-1, t), HF_EINVAL);
	cr_assert_eq(hf_stratum_target_from_diff(NAN, t), HF_EINVAL);
	cr_assert_eq(hf_stratum_target_from_diff(INFINITY, t), HF_EINVAL);
	cr_assert_eq(hf_stratum_target_from_diff(1e300, t), 0);
}

static void check_nbits(uint32_t nbits, const char *want)
{
	uint8_t t[32];
	char hex[65];

	cr_assert_eq(hf_stratum_target_from_nbits(nbits, t), 0, "nbits %08x", nbits);
	hf_stratum_u256_hex(t, hex);
	cr_assert_str_eq(hex, want, "nbits %08x", nbits);
}

Test(stratum_target, nbits)
{
	check_nbits(0x1d00ffff, "00000000ffff0000000000000000000000000000000000000000000000000000");
	check_nbits(0x1b04864c, "000000000004864c000000000000000000000000000000000000000000000000");
	check_nbits(0x170331db, "0000000000000000000331db0000000000000000000000000000000000000000");
	check_nbits(0x03123456, "0000000000000000000000000000000000000000000000000000000000123456");
	check_nbits(0x02123456, "0000000000000000000000000000000000000000000000000000000000001234");
	check_nbits(0x207fffff, "7fffff0000000000000000000000000000000000000000000000000000000000");
}

Test(stratum_target, nbits_refused)
{
	uint8_t t[32];

	cr_assert_eq(hf_stratum_target_from_nbits(0x1d80ffff, t), HF_EINVAL);
	cr_assert_eq(hf_stratum_target_from_nbits(0x22123456, t), HF_EINVAL);
}

Test(stratum_target, compare_and_difficulty)
{
	uint8_t t[32], h[32], lo[32], hi[32];
	double d;

	cr_assert_eq(hf_stratum_target_from_diff(1, t), 0);
	memcpy(h, t, 32);
	cr_assert(hf_stratum_hash_meets(h, t));
	h[0] = 1; /* target's lowest byte is 0: now one above */
	cr_assert_not(hf_stratum_hash_meets(h, t));
	memset(h, 0, 32);
	cr_assert(hf_stratum_hash_meets(h, t));
	cr_assert(isinf(hf_stratum_hash_difficulty(h)));

	memcpy(h, t, 32);
	d = hf_stratum_hash_difficulty(h);
	cr_assert_float_eq(d, 1.0, 1e-9);
	/* A hash of difficulty d meets targets of slightly lower difficulty, not higher. */
	h[20] = 0x5a;
	h[27] = 0x00;
	h[26] = 0x12;
	d = hf_stratum_hash_difficulty(h);
	cr_assert_eq(hf_stratum_target_from_diff(d * 0.999, lo), 0);
	cr_assert_eq(hf_stratum_target_from_diff(d * 1.001, hi), 0);
	cr_assert(hf_stratum_hash_meets(h, lo));
	cr_assert_not(hf_stratum_hash_meets(h, hi));
}
