/* sha256d_shani: SHA-256d scanner on the x86 SHA extensions, two nonces interleaved so the
 * two dependency chains of sha256rnds2 overlap. Built with -msha -msse4.1 (meson); only called
 * when the dispatch table's check (sha256d_table_x86.c, built without those flags) says the
 * CPU has them.
 *
 * Nonce-free work: the first two rounds of the first hash's second block come from the job
 * (state s2); rounds 4..15 use constant message words (padding and length), so K+W is folded
 * once per scan; the second hash's padding words are constants too, and it stops after round 61,
 * the last one that feeds H7, which is tested first (early reject) before a full check.
 * Threading: reentrant, no state.
 */
#include <immintrin.h>
#include <string.h>

#include "sha256d_priv.h"

#define K hf_sha256d_priv_k

/* Loads a..h into the ABEF / CDGH layout sha256rnds2 works on. */
static void to_abef(const uint32_t s[8], __m128i *abef, __m128i *cdgh)
{
	__m128i abcd = _mm_loadu_si128((const __m128i *)&s[0]);
	__m128i efgh = _mm_loadu_si128((const __m128i *)&s[4]);
	abcd = _mm_shuffle_epi32(abcd, 0xB1);            /* b a d c */
	efgh = _mm_shuffle_epi32(efgh, 0x1B);            /* h g f e */
	*abef = _mm_alignr_epi8(abcd, efgh, 8);          /* f e b a */
	*cdgh = _mm_blend_epi16(efgh, abcd, 0xF0);       /* h g d c */
}

/* The inverse: ABEF / CDGH back to words a..d and e..h (message order). */
static void from_abef(__m128i abef, __m128i cdgh, __m128i *abcd, __m128i *efgh)
{
	__m128i t = _mm_shuffle_epi32(abef, 0x1B);       /* a b e f */
	cdgh = _mm_shuffle_epi32(cdgh, 0xB1);            /* g h c d */
	*abcd = _mm_blend_epi16(t, cdgh, 0xF0);          /* a b c d */
	*efgh = _mm_alignr_epi8(cdgh, t, 8);             /* e f g h */
}

/* Four rounds with K+W already added. */
#define ROUNDS4(abef, cdgh, wk) do {                                  \
	(cdgh) = _mm_sha256rnds2_epu32((cdgh), (abef), (wk));          \
	(abef) = _mm_sha256rnds2_epu32((abef), (cdgh),                 \
				       _mm_shuffle_epi32((wk), 0x0E)); \
} while (0)

/* W[i+16..i+19] from W[i..i+3], W[i+4..], W[i+8..], W[i+12..]. */
static inline __m128i schedule(__m128i a, __m128i b, __m128i c, __m128i d)
{
	__m128i t = _mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4));
	return _mm_sha256msg2_epu32(t, d);
}

static inline __m128i kvec(int i)
{
	return _mm_loadu_si128((const __m128i *)&K[i]);
}

/* Per-scan constants. */
typedef struct shani_consts {
	__m128i s2_abef, s2_cdgh;     /* first hash after rounds 0..1 */
	__m128i mid_abef, mid_cdgh;   /* midstate (added at the end of the first hash) */
	__m128i iv_abef, iv_cdgh;     /* initial value of the second hash */
	__m128i m1[4];                /* first hash: W0..15 as vectors (m1[0] lacks the nonce) */
	__m128i wk4, wk8, wk12;       /* first hash: K+W for rounds 4..15 */
	__m128i m2[2];                /* second hash: W8..15 */
	__m128i wk2_8, wk2_12;        /* second hash: K+W for rounds 8..15 */
	uint32_t k2w2;                /* K2 + M2 */
} shani_consts;

static void consts_init(shani_consts *c, const hf_sha256d_job *job)
{
	to_abef(job->s2, &c->s2_abef, &c->s2_cdgh);
	to_abef(job->midstate, &c->mid_abef, &c->mid_cdgh);
	to_abef(hf_sha256d_priv_iv, &c->iv_abef, &c->iv_cdgh);
	c->m1[0] = _mm_setr_epi32((int)job->tail[0], (int)job->tail[1], (int)job->tail[2], 0);
	c->m1[1] = _mm_setr_epi32((int)0x80000000, 0, 0, 0);
	c->m1[2] = _mm_setzero_si128();
	c->m1[3] = _mm_setr_epi32(0, 0, 0, 640);
	c->wk4 = _mm_add_epi32(c->m1[1], kvec(4));
	c->wk8 = _mm_add_epi32(c->m1[2], kvec(8));
	c->wk12 = _mm_add_epi32(c->m1[3], kvec(12));
	c->m2[0] = _mm_setr_epi32((int)0x80000000, 0, 0, 0);
	c->m2[1] = _mm_setr_epi32(0, 0, 0, 256);
	c->wk2_8 = _mm_add_epi32(c->m2[0], kvec(8));
	c->wk2_12 = _mm_add_epi32(c->m2[1], kvec(12));
	c->k2w2 = K[2] + job->tail[2];
}

/* Nonces hashed together: independent chains hide sha256rnds2's latency. Measured on the
 * development EPYC (Zen 3), per CPU-second: 2 ways ~23 MH/s, 3 ways about the same (+-5%,
 * within noise), 4 ways slower (register pressure); two it is. */
#define SHANI_WAYS 2
#define EACH _Pragma("GCC unroll 4") for (int j = 0; j < SHANI_WAYS; j++)

/* Rounds 16..63 of one block for every way (m[j][4] is a rolling window of the schedule).
 * With half_last the block stops after rounds 60..61 (the second hash needs no more). */
static inline __attribute__((always_inline)) void
message_rounds(__m128i ab[SHANI_WAYS], __m128i cd[SHANI_WAYS], __m128i m[SHANI_WAYS][4],
	       bool half_last)
{
	_Pragma("GCC unroll 12")
	for (int g = 4; g < 16; g++) {
		__m128i wk[SHANI_WAYS];
		EACH {
			m[j][g & 3] = schedule(m[j][g & 3], m[j][(g + 1) & 3], m[j][(g + 2) & 3],
					       m[j][(g + 3) & 3]);
			wk[j] = _mm_add_epi32(m[j][g & 3], kvec(4 * g));
		}
		EACH cd[j] = _mm_sha256rnds2_epu32(cd[j], ab[j], wk[j]);
		if (half_last && g == 15)
			break;
		EACH ab[j] = _mm_sha256rnds2_epu32(ab[j], cd[j], _mm_shuffle_epi32(wk[j], 0x0E));
	}
}

/* Hashes nonces n .. n+SHANI_WAYS-1; returns their H7 words. */
static inline __attribute__((always_inline)) void
hash_ways(const shani_consts *c, uint32_t n, uint32_t h7[SHANI_WAYS])
{
	__m128i ab[SHANI_WAYS], cd[SHANI_WAYS], m[SHANI_WAYS][4];
	uint32_t w3[SHANI_WAYS];

	/* First hash, rounds 2..3 (M2 constant, M3 the nonce) from the job's state after 0..1.
	 * sha256rnds2 returns the new ABEF; the old ABEF is the new CDGH. */
	EACH {
		w3[j] = __builtin_bswap32(n + (uint32_t)j);
		cd[j] = c->s2_abef;
		ab[j] = _mm_sha256rnds2_epu32(c->s2_cdgh, c->s2_abef,
					      _mm_setr_epi32((int)c->k2w2, (int)(K[3] + w3[j]), 0, 0));
	}
	EACH ROUNDS4(ab[j], cd[j], c->wk4);
	EACH ROUNDS4(ab[j], cd[j], c->wk8);
	EACH ROUNDS4(ab[j], cd[j], c->wk12);
	EACH {
		m[j][0] = _mm_insert_epi32(c->m1[0], (int)w3[j], 3);
		m[j][1] = c->m1[1];
		m[j][2] = c->m1[2];
		m[j][3] = c->m1[3];
	}
	message_rounds(ab, cd, m, false);

	/* Second hash: W0..7 = the first hash (+ midstate), W8..15 padding. */
	EACH {
		from_abef(_mm_add_epi32(ab[j], c->mid_abef), _mm_add_epi32(cd[j], c->mid_cdgh),
			  &m[j][0], &m[j][1]);
		m[j][2] = c->m2[0];
		m[j][3] = c->m2[1];
		ab[j] = c->iv_abef;
		cd[j] = c->iv_cdgh;
	}
	EACH ROUNDS4(ab[j], cd[j], _mm_add_epi32(m[j][0], kvec(0)));
	EACH ROUNDS4(ab[j], cd[j], _mm_add_epi32(m[j][1], kvec(4)));
	EACH ROUNDS4(ab[j], cd[j], c->wk2_8);
	EACH ROUNDS4(ab[j], cd[j], c->wk2_12);
	message_rounds(ab, cd, m, true);
	/* After rounds 60..61 the new ABEF is in cd; its F lane is e61 = h after round 63. */
	EACH h7[j] = (uint32_t)_mm_cvtsi128_si32(cd[j]) + hf_sha256d_priv_iv[7];
}

int hf_sha256d_priv_scan_shani(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			       uint32_t *hits, size_t max_hits, hf_sha256d_result *res)
{
	int rc = hf_sha256d_priv_check_args(job, count, hits, max_hits, res);
	if (rc)
		return rc;
	shani_consts c;
	consts_init(&c, job);
	res->n_hits = 0;
	for (uint64_t off = 0; off < count; off += SHANI_WAYS) {
		uint32_t base = start + (uint32_t)off, h7[SHANI_WAYS];
		uint64_t mask = 0;
		hash_ways(&c, base, h7);
		for (int j = 0; j < SHANI_WAYS; j++)
			mask |= (uint64_t)(__builtin_bswap32(h7[j]) <= job->target_hi) << j;
		if (mask && !hf_sha256d_priv_offer_mask(job, base, mask, off, count, hits,
							max_hits, res))
			return 0;
	}
	res->scanned = count;
	return 0;
}
