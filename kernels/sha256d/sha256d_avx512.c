/* sha256d_avx512: SHA-256d scanner, 16 nonces per AVX-512 register (one per 32-bit lane), with
 * native rotates and ternary logic (three-way XOR, Ch and Maj in one instruction each). Built
 * with -mavx512f (meson); only called when the dispatch table's check (sha256d_table_x86.c,
 * built without ISA flags) says the CPU has AVX-512F and the OS saves ZMM state.
 * The rounds and the nonce-free precomputation are shared with AVX2 in sha256d_vec.inc.
 * Threading: reentrant, no state.
 */
#include <immintrin.h>

#include "sha256d_priv.h"

typedef __m512i V;
#define LANES 16
#define VEC_SCAN hf_sha256d_priv_scan_avx512
#define VEC_TAG(x) avx512_##x

static inline V ADD(V a, V b) { return _mm512_add_epi32(a, b); }
static inline V SET1(uint32_t x) { return _mm512_set1_epi32((int)x); }
/* Ternary-logic truth tables: a^b^c = 0x96, a?b:c = 0xCA, majority = 0xE8. */
static inline V XOR3(V a, V b, V c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
static inline V BSIG0(V x)
{
	return XOR3(_mm512_ror_epi32(x, 2), _mm512_ror_epi32(x, 13), _mm512_ror_epi32(x, 22));
}
static inline V BSIG1(V x)
{
	return XOR3(_mm512_ror_epi32(x, 6), _mm512_ror_epi32(x, 11), _mm512_ror_epi32(x, 25));
}
static inline V SSIG0(V x)
{
	return XOR3(_mm512_ror_epi32(x, 7), _mm512_ror_epi32(x, 18), _mm512_srli_epi32(x, 3));
}
static inline V SSIG1(V x)
{
	return XOR3(_mm512_ror_epi32(x, 17), _mm512_ror_epi32(x, 19), _mm512_srli_epi32(x, 10));
}
static inline V CH(V e, V f, V g) { return _mm512_ternarylogic_epi32(e, f, g, 0xCA); }
static inline V MAJ(V a, V b, V c) { return _mm512_ternarylogic_epi32(a, b, c, 0xE8); }

/* Byte swap with AVX-512F alone: bytes 3,1 from ror 8, bytes 2,0 from rol 8. */
static inline V bswap(V x)
{
	return _mm512_ternarylogic_epi32(SET1(0xff00ff00), _mm512_ror_epi32(x, 8),
					 _mm512_rol_epi32(x, 8), 0xCA);
}

static inline V NONCE_WORDS(uint32_t base)
{
	return bswap(ADD(SET1(base), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
						       12, 13, 14, 15)));
}

static inline uint64_t EARLY_MASK(V h7, uint32_t thi)
{
	return (uint64_t)_mm512_cmple_epu32_mask(bswap(h7), SET1(thi));
}

#include "sha256d_vec.inc"
