/* sha256d_avx2: SHA-256d scanner, 8 nonces per AVX2 register (one per 32-bit lane). Built with
 * -mavx2 (meson); only called when the dispatch table's check (sha256d_table_x86.c, built
 * without ISA flags) says the CPU has AVX2 and the OS saves YMM state.
 * The rounds and the nonce-free precomputation are shared with AVX-512 in sha256d_vec.inc;
 * this file only supplies the primitives (AVX2 has no rotate: shift, shift, or).
 * Threading: reentrant, no state.
 */
#include <immintrin.h>

#include "sha256d_priv.h"

typedef __m256i V;
#define LANES 8
#define VEC_SCAN hf_sha256d_priv_scan_avx2
#define VEC_TAG(x) avx2_##x

static inline V ADD(V a, V b) { return _mm256_add_epi32(a, b); }
static inline V SET1(uint32_t x) { return _mm256_set1_epi32((int)x); }
static inline V XOR(V a, V b) { return _mm256_xor_si256(a, b); }
#define SHR(x, n) _mm256_srli_epi32((x), (n))
#define SHL(x, n) _mm256_slli_epi32((x), (n))

/* ror(x,a) ^ ror(x,b) ^ ror(x,c) with the right shifts and left shifts grouped. */
#define ROR3(x, a, b, c) XOR(XOR(XOR(SHR(x, a), SHR(x, b)), SHR(x, c)),                   \
			     XOR(XOR(SHL(x, 32 - (a)), SHL(x, 32 - (b))), SHL(x, 32 - (c))))
static inline V BSIG0(V x) { return ROR3(x, 2, 13, 22); }
static inline V BSIG1(V x) { return ROR3(x, 6, 11, 25); }
static inline V SSIG0(V x)
{
	return XOR(XOR(XOR(SHR(x, 7), SHR(x, 18)), SHR(x, 3)), XOR(SHL(x, 25), SHL(x, 14)));
}
static inline V SSIG1(V x)
{
	return XOR(XOR(XOR(SHR(x, 17), SHR(x, 19)), SHR(x, 10)), XOR(SHL(x, 15), SHL(x, 13)));
}
static inline V CH(V e, V f, V g) { return XOR(_mm256_and_si256(XOR(f, g), e), g); }
/* b ^ ((a ^ b) & (b ^ c)); a ^ b here is next round's b ^ c, which the compiler reuses. */
static inline V MAJ(V a, V b, V c) { return XOR(b, _mm256_and_si256(XOR(a, b), XOR(b, c))); }

static inline V bswap(V x)
{
	const V m = _mm256_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
				     3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
	return _mm256_shuffle_epi8(x, m);
}

static inline V NONCE_WORDS(uint32_t base)
{
	return bswap(ADD(SET1(base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

static inline uint64_t EARLY_MASK(V h7, uint32_t thi)
{
	V x = bswap(h7);
	V le = _mm256_cmpeq_epi32(_mm256_min_epu32(x, SET1(thi)), x);
	return (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(le));
}

#include "sha256d_vec.inc"
