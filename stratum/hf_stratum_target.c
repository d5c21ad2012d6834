/* hf_stratum_target: difficulty and nbits to 256-bit targets, hash comparison.
 *
 * The difficulty division is exact integer long division of diff1 * 2^k by the 53-bit mantissa
 * of the double, so fractional difficulties (0.001, 0.0138...) give the exact floor, not a
 * rounded double.
 * Threading: reentrant; no state.
 */
#include "hf_stratum_target.h"

#include <math.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

/* Numerator limbs: 32-bit, little-endian; enough for 0xFFFF << 330 without loss. */
#define NUM_LIMBS 12

int hf_stratum_target_from_diff(double diff, uint8_t target[32])
{
	uint32_t num[NUM_LIMBS] = { 0 };
	uint64_t mant;
	int exp, shift;
	u128 rem = 0;

	if (!(diff > 0) || !isfinite(diff))
		return HF_EINVAL;
	/* diff = m * 2^exp with m in [0.5, 1); mant = m * 2^53 is exact. */
	mant = (uint64_t)ldexp(frexp(diff, &exp), 53);
	/* target = 0xFFFF * 2^208 / (mant * 2^(exp-53)) = (0xFFFF << (261 - exp)) / mant */
	shift = 261 - exp;
	if (shift < 0) {
		memset(target, 0, 32);
		return 0;
	}
	if (shift + 16 > NUM_LIMBS * 32 - 1) {
		memset(target, 0xff, 32);
		return 0;
	}
	{
		uint64_t v = (uint64_t)0xFFFF << (shift % 32);
		num[shift / 32] = (uint32_t)v;
		if (shift / 32 + 1 < NUM_LIMBS)
			num[shift / 32 + 1] = (uint32_t)(v >> 32);
	}
	for (int i = NUM_LIMBS - 1; i >= 0; i--) {
		u128 cur = (rem << 32) | num[i];
		num[i] = (uint32_t)(cur / mant);
		rem = cur % mant;
	}
	for (int i = 8; i < NUM_LIMBS; i++) {
		if (num[i]) {
			memset(target, 0xff, 32);
			return 0;
		}
	}
	for (int i = 0; i < 8; i++) {
		target[4 * i] = (uint8_t)num[i];
		target[4 * i + 1] = (uint8_t)(num[i] >> 8);
		target[4 * i + 2] = (uint8_t)(num[i] >> 16);
		target[4 * i + 3] = (uint8_t)(num[i] >> 24);
	}
	return 0;
}

int hf_stratum_target_from_nbits(uint32_t nbits, uint8_t target[32])
{
	uint32_t mant = nbits & 0x007fffff;
	int exp = (int)(nbits >> 24);

	memset(target, 0, 32);
	if (nbits & 0x00800000)
		return HF_EINVAL;
	if (exp <= 3) {
		mant >>= 8 * (3 - exp);
		target[0] = (uint8_t)mant;
		target[1] = (uint8_t)(mant >> 8);
		target[2] = (uint8_t)(mant >> 16);
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		uint8_t byte = (uint8_t)(mant >> (8 * i));
		int pos = exp - 3 + i;
		if (pos >= 32) {
			if (byte)
				return HF_EINVAL;
			continue;
		}
		target[pos] = byte;
	}
	return 0;
}

bool hf_stratum_hash_meets(const uint8_t hash[32], const uint8_t target[32])
{
	for (int i = 31; i >= 0; i--) {
		if (hash[i] != target[i])
			return hash[i] < target[i];
	}
	return true;
}

double hf_stratum_hash_difficulty(const uint8_t hash[32])
{
	double h = 0;

	for (int i = 31; i >= 0; i--)
		h = h * 256.0 + hash[i];
	if (h == 0)
		return INFINITY;
	return ldexp(65535.0, 208) / h;
}

void hf_stratum_u256_hex(const uint8_t v[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[v[31 - i] >> 4];
		out[2 * i + 1] = digits[v[31 - i] & 15];
	}
	out[64] = '\0';
}
