/* sha256d_testutil: random inputs, the OpenSSL oracle and the block vectors for the SHA-256d
 * scanner tests.
 * Threading: test code only.
 */
#include "sha256d_testutil.h"

#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

uint64_t sha256d_test_rand(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

void sha256d_test_rand_bytes(uint64_t *state, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(sha256d_test_rand(state) >> 56);
}

void sha256d_test_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void sha256d_test_openssl(const uint8_t *data, size_t len, uint8_t out[32])
{
	uint8_t once[32];
	SHA256(data, len, once);
	SHA256(once, sizeof(once), out);
}

void sha256d_test_openssl_nonce(const uint8_t header[80], uint32_t nonce, uint8_t out[32])
{
	uint8_t h[80];
	memcpy(h, header, 80);
	sha256d_test_put_le32(h + 76, nonce);
	sha256d_test_openssl(h, 80, out);
}

void sha256d_test_random_job(uint64_t *state, uint8_t top, uint8_t header[80],
			     hf_sha256d_job *job)
{
	uint8_t target[32];
	sha256d_test_rand_bytes(state, header, 80);
	sha256d_test_rand_bytes(state, target, 32);
	target[31] = top;
	hf_sha256d_job_from_header(job, header, target);
}

void sha256d_test_every_nonce_job(uint64_t *state, uint8_t header[80], hf_sha256d_job *job)
{
	uint8_t target[32];
	sha256d_test_rand_bytes(state, header, 80);
	memset(target, 0xff, 32);
	hf_sha256d_job_from_header(job, header, target);
}

json_t *sha256d_test_load_blocks(json_t **root)
{
	const char *dir = getenv("HF_VECTORS_DIR");
	cr_assert(dir, "HF_VECTORS_DIR is not set");
	char path[1024];
	snprintf(path, sizeof(path), "%s/block_headers.json", dir);
	json_error_t jerr;
	*root = json_load_file(path, 0, &jerr);
	cr_assert(*root, "%s: %s", path, jerr.text);
	json_t *blocks = json_object_get(*root, "blocks");
	cr_assert(json_array_size(blocks) >= 1);
	return blocks;
}

static uint32_t get_u32(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	cr_assert(json_is_integer(v), "field %s", key);
	return (uint32_t)json_integer_value(v);
}

static void get_hex_reversed(json_t *obj, const char *key, uint8_t *out, size_t n)
{
	const char *s = json_string_value(json_object_get(obj, key));
	uint8_t tmp[32];
	cr_assert(s && n <= sizeof(tmp) && hf_hex_decode(s, strlen(s), tmp, n), "field %s", key);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
}

void sha256d_test_block_get(json_t *blocks, size_t i, uint32_t header_nonce,
			    sha256d_test_block *b)
{
	json_t *blk = json_array_get(blocks, i);
	const char *bits = json_string_value(json_object_get(blk, "bits"));

	cr_assert(bits, "block %zu: field bits", i);
	b->bits = (uint32_t)strtoul(bits, NULL, 16);
	b->nonce = get_u32(blk, "nonce");
	sha256d_test_put_le32(b->header, get_u32(blk, "version"));
	get_hex_reversed(blk, "prev_hash", b->header + 4, 32);
	get_hex_reversed(blk, "merkle_root", b->header + 36, 32);
	sha256d_test_put_le32(b->header + 68, get_u32(blk, "time"));
	sha256d_test_put_le32(b->header + 72, b->bits);
	sha256d_test_put_le32(b->header + 76, header_nonce);
	get_hex_reversed(blk, "hash", b->hash_le, 32);
	cr_assert_eq(hf_sha256d_target_from_bits(b->bits, b->target), 0);
	hf_sha256d_job_from_header(&b->job, b->header, b->target);
}
