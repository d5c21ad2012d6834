/* hf_sha256d: the portable reference scanner (plain, readable C: the oracle every other scanner
 * is tested against), job preparation with the nonce-free precomputation, target helpers and
 * the one-time runtime dispatch.
 *
 * Invariants: the reference computes each SHA-256d in full with no shortcut; the precomputed
 * job fields are derived from midstate and tail only. The dispatch table (sha256d_table_*.c,
 * chosen by meson for the host CPU family) always ends with the reference.
 * Threading: everything is reentrant except hf_sha256d_default(), which resolves its choice
 * once under pthread_once and only reads it afterwards.
 */
#include "hf_sha256d.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sha256d_priv.h"

const uint32_t hf_sha256d_priv_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

const uint32_t hf_sha256d_priv_iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define K hf_sha256d_priv_k

/* ---- SHA-256, as FIPS 180-4 describes it ---- */

static uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }
static uint32_t big_sigma0(uint32_t x) { return ror(x, 2) ^ ror(x, 13) ^ ror(x, 22); }
static uint32_t big_sigma1(uint32_t x) { return ror(x, 6) ^ ror(x, 11) ^ ror(x, 25); }
static uint32_t small_sigma0(uint32_t x) { return ror(x, 7) ^ ror(x, 18) ^ (x >> 3); }
static uint32_t small_sigma1(uint32_t x) { return ror(x, 17) ^ ror(x, 19) ^ (x >> 10); }
static uint32_t ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
static uint32_t maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

/* Runs rounds [first, last) of the compression on s (a..h) with the message schedule w. */
static void rounds(uint32_t s[8], const uint32_t w[64], int first, int last)
{
	for (int i = first; i < last; i++) {
		uint32_t t1 = s[7] + big_sigma1(s[4]) + ch(s[4], s[5], s[6]) + K[i] + w[i];
		uint32_t t2 = big_sigma0(s[0]) + maj(s[0], s[1], s[2]);
		memmove(&s[1], &s[0], 7 * sizeof(s[0]));
		s[4] += t1;
		s[0] = t1 + t2;
	}
}

static void expand(uint32_t w[64], const uint32_t block[16])
{
	memcpy(w, block, 16 * sizeof(w[0]));
	for (int i = 16; i < 64; i++)
		w[i] = small_sigma1(w[i - 2]) + w[i - 7] + small_sigma0(w[i - 15]) + w[i - 16];
}

/* state += compress(state, block) */
static void compress(uint32_t state[8], const uint32_t block[16])
{
	uint32_t w[64], s[8];
	expand(w, block);
	memcpy(s, state, sizeof(s));
	rounds(s, w, 0, 64);
	for (int i = 0; i < 8; i++)
		state[i] += s[i];
}

typedef struct sha256 {
	uint32_t state[8];
	uint8_t buf[64];
	size_t fill;
	uint64_t total;
} sha256;

static void sha256_init(sha256 *c)
{
	memcpy(c->state, hf_sha256d_priv_iv, sizeof(c->state));
	c->fill = 0;
	c->total = 0;
}

static void sha256_block(sha256 *c, const uint8_t *p)
{
	uint32_t block[16];
	for (int i = 0; i < 16; i++)
		block[i] = load_be32(p + 4 * i);
	compress(c->state, block);
}

static void sha256_update(sha256 *c, const uint8_t *p, size_t len)
{
	c->total += len;
	while (len > 0) {
		size_t take = 64 - c->fill < len ? 64 - c->fill : len;
		memcpy(c->buf + c->fill, p, take);
		c->fill += take;
		p += take;
		len -= take;
		if (c->fill == 64) {
			sha256_block(c, c->buf);
			c->fill = 0;
		}
	}
}

static void sha256_final(sha256 *c, uint8_t out[32])
{
	uint64_t bits = c->total * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padlen = (c->fill < 56 ? 56 : 120) - c->fill;
	uint8_t lenbytes[8];
	for (int i = 0; i < 8; i++)
		lenbytes[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(c, pad, padlen);
	sha256_update(c, lenbytes, 8);
	for (int i = 0; i < 8; i++)
		store_be32(out + 4 * i, c->state[i]);
}

/* ---- jobs and targets ---- */

void hf_sha256d_midstate(const uint8_t first64[64], uint32_t midstate[8])
{
	sha256 c;
	sha256_init(&c);
	sha256_block(&c, first64);
	memcpy(midstate, c.state, sizeof(c.state));
}

/* The first hash's second block for a nonce: tail words, nonce, padding, length 640 bits. */
static void second_block(const hf_sha256d_job *job, uint32_t nonce, uint32_t block[16])
{
	memset(block, 0, 16 * sizeof(block[0]));
	block[0] = job->tail[0];
	block[1] = job->tail[1];
	block[2] = job->tail[2];
	block[3] = bswap32(nonce); /* header bytes 76..79 hold the nonce little-endian */
	block[4] = 0x80000000;
	block[15] = 640;
}

void hf_sha256d_job_hash(const hf_sha256d_job *job, uint32_t nonce, uint8_t hash[32])
{
	uint32_t block[16], first[8], second[8];

	second_block(job, nonce, block);
	memcpy(first, job->midstate, sizeof(first));
	compress(first, block);

	memset(block, 0, sizeof(block));
	memcpy(block, first, sizeof(first));
	block[8] = 0x80000000;
	block[15] = 256;
	memcpy(second, hf_sha256d_priv_iv, sizeof(second));
	compress(second, block);
	for (int i = 0; i < 8; i++)
		store_be32(hash + 4 * i, second[i]);
}

void hf_sha256d_hash(const void *data, size_t len, uint8_t hash[32])
{
	sha256 c;
	uint8_t once[32];
	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, once);
	sha256_init(&c);
	sha256_update(&c, once, sizeof(once));
	sha256_final(&c, hash);
}

bool hf_sha256d_meets_target(const uint8_t hash[32], const uint8_t target[32])
{
	for (int i = 31; i >= 0; i--)
		if (hash[i] != target[i])
			return hash[i] < target[i];
	return true;
}

int hf_sha256d_target_from_bits(uint32_t bits, uint8_t target[32])
{
	unsigned exponent = bits >> 24;
	uint32_t mantissa = bits & 0x007fffff;

	memset(target, 0, 32);
	if ((bits & 0x00800000) && mantissa != 0)
		return HF_ERANGE; /* negative */
	for (unsigned i = 0; i < 3; i++) {
		uint8_t byte = (uint8_t)(mantissa >> (8 * i));
		/* byte i of the mantissa lands at index exponent - 3 + i */
		long at = (long)exponent - 3 + (long)i;
		if (byte == 0 || at < 0)
			continue;
		if (at > 31) {
			memset(target, 0, 32);
			return HF_ERANGE;
		}
		target[at] = byte;
	}
	return 0;
}

void hf_sha256d_job_init(hf_sha256d_job *job, const uint32_t midstate[8],
			 const uint8_t tail16[16], const uint8_t target[32])
{
	uint32_t w[64] = { 0 }, s[8];

	memset(job, 0, sizeof(*job));
	memcpy(job->midstate, midstate, sizeof(job->midstate));
	for (int i = 0; i < 3; i++)
		job->tail[i] = load_be32(tail16 + 4 * i);
	memcpy(job->target, target, 32);
	job->target_hi = (uint32_t)target[31] << 24 | (uint32_t)target[30] << 16 |
			 (uint32_t)target[29] << 8 | target[28];

	/* Rounds 0..2 use only the tail words. */
	w[0] = job->tail[0];
	w[1] = job->tail[1];
	w[2] = job->tail[2];
	memcpy(s, midstate, sizeof(s));
	rounds(s, w, 0, 2);
	memcpy(job->s2, s, sizeof(s));
	rounds(s, w, 2, 3);
	memcpy(job->s3, s, sizeof(s));

	/* Round 3 adds the nonce word M3 to both new a and new e. */
	uint32_t t1 = s[7] + big_sigma1(s[4]) + ch(s[4], s[5], s[6]) + K[3];
	uint32_t t2 = big_sigma0(s[0]) + maj(s[0], s[1], s[2]);
	job->r3_e = s[3] + t1;
	job->r3_a = t1 + t2;

	/* Schedule words and parts that do not depend on M3 (M4 = 0x80000000, M15 = 640). */
	job->w16 = small_sigma0(w[1]) + w[0];
	job->w17 = small_sigma1(640) + small_sigma0(w[2]) + w[1];
	job->w18c = small_sigma1(job->w16) + w[2];
	job->w19c = small_sigma1(job->w17) + small_sigma0(0x80000000);
	job->c30 = small_sigma0(640);
	job->c31 = small_sigma0(job->w16) + 640;
	job->c32 = small_sigma0(job->w17) + job->w16;
}

void hf_sha256d_job_from_header(hf_sha256d_job *job, const uint8_t header[80],
				const uint8_t target[32])
{
	uint32_t mid[8];
	hf_sha256d_midstate(header, mid);
	hf_sha256d_job_init(job, mid, header + 64, target);
}

/* ---- scanning ---- */

int hf_sha256d_priv_check_args(const hf_sha256d_job *job, uint64_t count, const uint32_t *hits,
			       size_t max_hits, const hf_sha256d_result *res)
{
	if (!job || !res || (max_hits > 0 && !hits) || count > HF_SHA256D_MAX_COUNT)
		return HF_EINVAL;
	return 0;
}

bool hf_sha256d_priv_offer(const hf_sha256d_job *job, uint32_t nonce, uint32_t *hits,
			   size_t max_hits, size_t *n_hits)
{
	uint8_t hash[32];
	hf_sha256d_job_hash(job, nonce, hash);
	if (!hf_sha256d_meets_target(hash, job->target))
		return true;
	if (*n_hits >= max_hits)
		return false;
	hits[(*n_hits)++] = nonce;
	return true;
}

bool hf_sha256d_priv_offer_mask(const hf_sha256d_job *job, uint32_t base, uint64_t mask,
				uint64_t off, uint64_t count, uint32_t *hits, size_t max_hits,
				hf_sha256d_result *res)
{
	while (mask) {
		unsigned i = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		if (off + i >= count)
			break;
		if (!hf_sha256d_priv_offer(job, base + i, hits, max_hits, &res->n_hits)) {
			res->scanned = off + i;
			return false;
		}
	}
	return true;
}

int hf_sha256d_scan_ref(const hf_sha256d_job *job, uint32_t start, uint64_t count,
			uint32_t *hits, size_t max_hits, hf_sha256d_result *res)
{
	int rc = hf_sha256d_priv_check_args(job, count, hits, max_hits, res);
	if (rc)
		return rc;
	res->n_hits = 0;
	for (uint64_t off = 0; off < count; off++) {
		uint32_t nonce = start + (uint32_t)off;
		uint8_t hash[32];
		hf_sha256d_job_hash(job, nonce, hash);
		if (!hf_sha256d_meets_target(hash, job->target))
			continue;
		if (res->n_hits >= max_hits) {
			res->scanned = off;
			return 0;
		}
		hits[res->n_hits++] = nonce;
	}
	res->scanned = count;
	return 0;
}

/* ---- dispatch ---- */

size_t hf_sha256d_impl_count(void)
{
	return hf_sha256d_priv_table_len;
}

const hf_sha256d_impl *hf_sha256d_impl_at(size_t i)
{
	return i < hf_sha256d_priv_table_len ? hf_sha256d_priv_table[i] : NULL;
}

const hf_sha256d_impl *hf_sha256d_impl_find(const char *name)
{
	for (size_t i = 0; name && i < hf_sha256d_priv_table_len; i++)
		if (strcmp(hf_sha256d_priv_table[i]->name, name) == 0)
			return hf_sha256d_priv_table[i];
	return NULL;
}

int hf_sha256d_choose(const char *name, const hf_sha256d_impl **out, hf_errbuf *eb)
{
	*out = NULL;
	if (!name || !*name || strcmp(name, "auto") == 0) {
		for (size_t i = 0; i < hf_sha256d_priv_table_len; i++) {
			if (hf_sha256d_priv_table[i]->supported()) {
				*out = hf_sha256d_priv_table[i];
				return 0;
			}
		}
		return hf_fail(eb, HF_EUNSUPPORTED, "no SHA-256d implementation runs here");
	}
	const hf_sha256d_impl *impl = hf_sha256d_impl_find(name);
	if (!impl) {
		char names[128] = "";
		for (size_t i = 0; i < hf_sha256d_priv_table_len; i++) {
			if (i)
				strncat(names, ", ", sizeof(names) - strlen(names) - 1);
			strncat(names, hf_sha256d_priv_table[i]->name, sizeof(names) - strlen(names) - 1);
		}
		return hf_fail(eb, HF_ENOTFOUND,
			       "unknown SHA-256d implementation \"%s\" (this build has: auto, %s)", name,
			       names);
	}
	if (!impl->supported())
		return hf_fail(eb, HF_EUNSUPPORTED,
			       "SHA-256d implementation \"%s\" needs CPU features this machine lacks",
			       name);
	*out = impl;
	return 0;
}

/* The process-wide choice: written once inside pthread_once, read-only afterwards. */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static const hf_sha256d_impl *default_impl;
static int default_rc;
static hf_errbuf default_eb;

static void resolve_default(void)
{
	hf_errbuf_clear(&default_eb);
	default_rc = hf_sha256d_choose(getenv(HF_SHA256D_IMPL_ENV), &default_impl, &default_eb);
	if (default_rc)
		hf_fail_prefix(&default_eb, default_rc, "%s", HF_SHA256D_IMPL_ENV);
}

int hf_sha256d_default(const hf_sha256d_impl **out, hf_errbuf *eb)
{
	pthread_once(&default_once, resolve_default);
	*out = default_impl;
	if (default_rc && eb)
		*eb = default_eb;
	return default_rc;
}
