/* hf_stratum_target: 256-bit share and block targets (pool difficulty, compact nbits) and the
 * comparison of a SHA-256d hash against them.
 *
 * Invariants: a target and a hash are 32 bytes holding a little-endian 256-bit integer (the byte
 * order SHA-256d produces and block headers use); a hash meets a target when hash <= target.
 * Difficulty 1 is the target 0x00000000FFFF0000...0 (0xFFFF * 2^208); difficulty d gives
 * floor(diff1 / d), clamped to 2^256-1 for very small d.
 * Threading: reentrant; no state.
 */
#ifndef HF_STRATUM_TARGET_H
#define HF_STRATUM_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"

/* Share target for a pool difficulty (any finite d > 0, fractions included). HF_EINVAL for
 * zero, negative, NaN or infinite difficulties. */
int hf_stratum_target_from_diff(double diff, uint8_t target[32]);

/* Block target from compact nbits. HF_EINVAL for a negative (sign bit) or overflowing value. */
int hf_stratum_target_from_nbits(uint32_t nbits, uint8_t target[32]);

/* True when the little-endian 256-bit hash is <= target. */
bool hf_stratum_hash_meets(const uint8_t hash[32], const uint8_t target[32]);

/* The difficulty a hash achieves (diff1 / hash, as a double; +inf for a zero hash). */
double hf_stratum_hash_difficulty(const uint8_t hash[32]);

/* Big-endian display hex (64 digits + NUL) of a little-endian 256-bit value. */
void hf_stratum_u256_hex(const uint8_t v[32], char out[65]);

#endif
