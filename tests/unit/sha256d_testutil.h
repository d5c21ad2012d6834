/* sha256d_testutil: helpers shared by the SHA-256d scanner tests (test_sha256d,
 * test_sha256d_cl, test_sha256d_avx512emu): a seeded random generator, OpenSSL's double SHA-256
 * as the independent oracle, little-endian stores and the published block headers
 * (../shared/vectors/block_headers.json via $HF_VECTORS_DIR). Compiled into each of those
 * tests (tests/unit/meson.build, unit_test_extra_sources); failures fail the calling Criterion
 * test (cr_assert).
 * Threading: test code only; each generator state belongs to its caller.
 */
#ifndef SHA256D_TESTUTIL_H
#define SHA256D_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_sha256d.h"

/* xorshift64* over *state: a fixed seed, so a failure reproduces. */
uint64_t sha256d_test_rand(uint64_t *state);
/* n bytes from sha256d_test_rand (the top byte of each draw). */
void sha256d_test_rand_bytes(uint64_t *state, uint8_t *p, size_t n);

void sha256d_test_put_le32(uint8_t *p, uint32_t v);
/* SHA-256(SHA-256(data)) computed by OpenSSL. */
void sha256d_test_openssl(const uint8_t *data, size_t len, uint8_t out[32]);
/* The OpenSSL double SHA-256 of header with nonce (little-endian) in bytes 76..79. */
void sha256d_test_openssl_nonce(const uint8_t header[80], uint32_t nonce, uint8_t out[32]);

/* A random header and a random target with top as its most significant byte (target[31]),
 * and the job for them. */
void sha256d_test_random_job(uint64_t *state, uint8_t top, uint8_t header[80],
			     hf_sha256d_job *job);
/* A random header and the all-ones target (every nonce hits), and the job for them. */
void sha256d_test_every_nonce_job(uint64_t *state, uint8_t header[80], hf_sha256d_job *job);

/* One published block, as the scanners see it. */
typedef struct sha256d_test_block {
	uint8_t header[80];   /* with the caller's value in the nonce field */
	uint8_t target[32];   /* from nBits */
	uint8_t hash_le[32];  /* the block hash, little-endian as computed */
	uint32_t nonce;       /* the block's real nonce */
	uint32_t bits;
	hf_sha256d_job job;   /* from header and target */
} sha256d_test_block;

/* Loads $HF_VECTORS_DIR/block_headers.json (*root, the caller decrefs it) and returns its
 * "blocks" array, asserted non-empty. */
json_t *sha256d_test_load_blocks(json_t **root);
/* Block i of that array, each field asserted present; header_nonce goes into the header's
 * nonce field (the real one is b->nonce). */
void sha256d_test_block_get(json_t *blocks, size_t i, uint32_t header_nonce,
			    sha256d_test_block *b);

#endif
