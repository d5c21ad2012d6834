/* test_sha256d_emu/immintrin.h: a plain-C stand-in for the few AVX-512F intrinsics that
 * kernels/sha256d/sha256d_avx512.c uses, so test_sha256d_avx512emu can run that file's real
 * scan logic on a CPU without AVX-512 (this directory comes first on the include path of that
 * test only). Semantics follow Intel's intrinsics guide: lane i of a 512-bit vector is a
 * uint32; vpternlogd takes bit (a<<2 | b<<1 | c) of the immediate.
 * Threading: pure functions.
 */
#ifndef HF_TEST_IMMINTRIN_EMU_H
#define HF_TEST_IMMINTRIN_EMU_H

#include <stdint.h>

typedef struct { uint32_t v[16]; } __m512i;
typedef uint16_t __mmask16;

static inline __m512i _mm512_add_epi32(__m512i a, __m512i b)
{
	for (int i = 0; i < 16; i++)
		a.v[i] += b.v[i];
	return a;
}

static inline __m512i _mm512_set1_epi32(int x)
{
	__m512i r;
	for (int i = 0; i < 16; i++)
		r.v[i] = (uint32_t)x;
	return r;
}

static inline __m512i _mm512_setr_epi32(int e0, int e1, int e2, int e3, int e4, int e5, int e6,
					int e7, int e8, int e9, int e10, int e11, int e12,
					int e13, int e14, int e15)
{
	__m512i r = { { (uint32_t)e0, (uint32_t)e1, (uint32_t)e2, (uint32_t)e3, (uint32_t)e4,
			(uint32_t)e5, (uint32_t)e6, (uint32_t)e7, (uint32_t)e8, (uint32_t)e9,
			(uint32_t)e10, (uint32_t)e11, (uint32_t)e12, (uint32_t)e13, (uint32_t)e14,
			(uint32_t)e15 } };
	return r;
}

static inline __m512i _mm512_ror_epi32(__m512i a, int n)
{
	unsigned s = (unsigned)n & 31;
	for (int i = 0; i < 16; i++)
		a.v[i] = s ? (a.v[i] >> s) | (a.v[i] << (32 - s)) : a.v[i];
	return a;
}

static inline __m512i _mm512_rol_epi32(__m512i a, int n)
{
	return _mm512_ror_epi32(a, (32 - (n & 31)) & 31);
}

static inline __m512i _mm512_srli_epi32(__m512i a, unsigned n)
{
	for (int i = 0; i < 16; i++)
		a.v[i] = n > 31 ? 0 : a.v[i] >> n;
	return a;
}

static inline __m512i _mm512_ternarylogic_epi32(__m512i a, __m512i b, __m512i c, int imm)
{
	__m512i r;
	for (int i = 0; i < 16; i++) {
		uint32_t out = 0;
		/* OR of the minterms whose immediate bit is set */
		for (unsigned idx = 0; idx < 8; idx++)
			if ((imm >> idx) & 1)
				out |= (idx & 4 ? a.v[i] : ~a.v[i]) & (idx & 2 ? b.v[i] : ~b.v[i]) &
				       (idx & 1 ? c.v[i] : ~c.v[i]);
		r.v[i] = out;
	}
	return r;
}

static inline __mmask16 _mm512_cmple_epu32_mask(__m512i a, __m512i b)
{
	__mmask16 m = 0;
	for (int i = 0; i < 16; i++)
		m |= (__mmask16)((a.v[i] <= b.v[i]) << i);
	return m;
}

#endif
