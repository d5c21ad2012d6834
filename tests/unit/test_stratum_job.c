/* Unit tests for hf_stratum_job: published headers from $HF_VECTORS_DIR, the genesis coinbase
 * split into Stratum parts, and hand-built jobs whose merkle roots are computed here
 * independently with OpenSSL's EVP interface. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "hf_stratum_job.h"
#include "hf_stratum_target.h"
#include "hf_util.h"

static void evp_sha256d(const uint8_t *p, size_t n, uint8_t out[32])
{
	uint8_t mid[32];
	unsigned len;

	cr_assert(EVP_Digest(p, n, mid, &len, EVP_sha256(), NULL));
	cr_assert(EVP_Digest(mid, 32, out, &len, EVP_sha256(), NULL));
}

/* Display (big-endian) hex to the little-endian bytes a header holds. */
static void display_to_le(const char *hex, uint8_t out[32])
{
	uint8_t be[32];

	cr_assert(hf_hex_decode(hex, strlen(hex), be, 32));
	for (int i = 0; i < 32; i++)
		out[i] = be[31 - i];
}

static json_t *load_vectors(void)
{
	const char *dir = getenv("HF_VECTORS_DIR");
	char path[1024];
	json_error_t err;
	json_t *root;

	cr_assert(dir, "HF_VECTORS_DIR is not set");
	snprintf(path, sizeof path, "%s/block_headers.json", dir);
	root = json_load_file(path, 0, &err);
	cr_assert(root, "%s: %s", path, err.text);
	return root;
}

Test(stratum_job, published_headers_hash_and_meet_nbits)
{
	json_t *root = load_vectors(), *blocks = json_object_get(root, "blocks"), *b;
	size_t i;

	cr_assert(json_array_size(blocks) >= 2);
	json_array_foreach(blocks, i, b) {
		uint8_t prev[32], root_le[32], hdr[80], hash[32], want[32], target[32];
		uint32_t nbits = (uint32_t)strtoul(json_string_value(json_object_get(b, "bits")),
						   NULL, 16);
		uint32_t nonce = (uint32_t)json_integer_value(json_object_get(b, "nonce"));
		uint32_t version = (uint32_t)json_integer_value(json_object_get(b, "version"));
		uint32_t ntime = (uint32_t)json_integer_value(json_object_get(b, "time"));

		display_to_le(json_string_value(json_object_get(b, "prev_hash")), prev);
		display_to_le(json_string_value(json_object_get(b, "merkle_root")), root_le);
		display_to_le(json_string_value(json_object_get(b, "hash")), want);
		hf_stratum_header_build(version, prev, root_le, ntime, nbits, nonce, hdr);
		hf_stratum_sha256d(hdr, 80, hash);
		cr_assert_eq(memcmp(hash, want, 32), 0, "block %zu hash", i);
		cr_assert_eq(hf_stratum_target_from_nbits(nbits, target), 0);
		cr_assert(hf_stratum_hash_meets(hash, target), "block %zu meets its nbits", i);
		cr_assert(hf_stratum_hash_difficulty(hash) >= 1.0);
		hf_stratum_header_build(version, prev, root_le, ntime, nbits, nonce + 1, hdr);
		hf_stratum_sha256d(hdr, 80, hash);
		cr_assert_not(hf_stratum_hash_meets(hash, target), "block %zu nonce+1", i);

		/* Stratum's word-swapped prevhash round-trips to the header byte order. */
		char sp[65];
		uint8_t back[32];
		hf_stratum_job_prevhash_encode(prev, sp);
		cr_assert(hf_stratum_job_prevhash_decode(sp, back));
		cr_assert_eq(memcmp(back, prev, 32), 0);
	}
	json_decref(root);
}

Test(stratum_job, prevhash_word_swap)
{
	uint8_t hdr[32], out[32];
	char hex[65];

	for (int i = 0; i < 32; i++)
		hdr[i] = (uint8_t)i;
	hf_stratum_job_prevhash_encode(hdr, hex);
	cr_assert_str_eq(hex, "03020100070605040b0a09080f0e0d0c13121110171615141b1a19181f1e1d1c");
	cr_assert(hf_stratum_job_prevhash_decode(hex, out));
	cr_assert_eq(memcmp(out, hdr, 32), 0);
	cr_assert_not(hf_stratum_job_prevhash_decode("0302", out));
	cr_assert_not(hf_stratum_job_prevhash_decode(
		"zz020100070605040b0a09080f0e0d0c13121110171615141b1a19181f1e1d1c", out));
}

/* The genesis coinbase transaction, cut into coinb1 | en1 | en2 | coinb2. */
static const char genesis_cb[] =
	"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d"
	"04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f"
	"6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2"
	"052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649"
	"f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

Test(stratum_job, genesis_block_from_stratum_parts)
{
	json_t *root = load_vectors(), *g = json_array_get(json_object_get(root, "blocks"), 0);
	size_t n = strlen(genesis_cb) / 2, cut1 = 50, cut2 = 54, cut3 = 58;
	uint8_t *cb = malloc(n), want_root[32], got_root[32], prev[32] = { 0 }, hash[32];
	uint8_t want_hash[32];
	char *c1 = calloc(1, 2 * n + 1), *c2 = calloc(1, 2 * n + 1), ph[65];
	hf_stratum_job job = { 0 };
	hf_stratum_share sh = { 0 };
	hf_errbuf eb;

	cr_assert(hf_hex_decode(genesis_cb, 2 * n, cb, n));
	memcpy(c1, genesis_cb, 2 * cut1);
	strcpy(c2, genesis_cb + 2 * cut3);
	hf_stratum_job_prevhash_encode(prev, ph);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, c1, c2, NULL, 0, &eb), 0, "%s", eb.msg);
	job.version = 1;
	job.nbits = 0x1d00ffff;
	job.ntime = 1231006505;
	cr_assert_eq(hf_stratum_job_merkle_root(&job, cb + cut1, cut2 - cut1, cb + cut2,
						cut3 - cut2, got_root), 0);
	display_to_le(json_string_value(json_object_get(g, "merkle_root")), want_root);
	cr_assert_eq(memcmp(got_root, want_root, 32), 0, "genesis merkle root");

	memcpy(sh.en2, cb + cut2, cut3 - cut2);
	sh.en2_len = cut3 - cut2;
	sh.version = 1;
	sh.ntime = job.ntime;
	sh.nonce = 2083236893;
	cr_assert_eq(hf_stratum_job_share_hash(&job, cb + cut1, cut2 - cut1, &sh, NULL, hash), 0);
	display_to_le(json_string_value(json_object_get(g, "hash")), want_hash);
	cr_assert_eq(memcmp(hash, want_hash, 32), 0, "genesis block hash via Stratum job");

	hf_stratum_job_clear(&job);
	free(cb);
	free(c1);
	free(c2);
	json_decref(root);
}

Test(stratum_job, hand_built_jobs_match_independent_merkle)
{
	srand(4);
	for (int round = 0; round < 20; round++) {
		size_t l1 = (size_t)(rand() % 200), l2 = (size_t)(rand() % 200);
		size_t nb = (size_t)(rand() % 12), en1l = 4, en2l = (size_t)(2 + rand() % 7);
		uint8_t c1[200], c2[200], br[12][32], en1[4], en2[8], root[32], mine[32];
		char *h1 = calloc(1, 401), *h2 = calloc(1, 401), bh[12][65], ph[65];
		const char *bp[12];
		uint8_t prev[32], cb[420], pair[64];
		hf_stratum_job job = { 0 }, copy;
		size_t cbl;
		hf_errbuf eb;

		for (size_t i = 0; i < l1; i++) c1[i] = (uint8_t)rand();
		for (size_t i = 0; i < l2; i++) c2[i] = (uint8_t)rand();
		for (size_t i = 0; i < 32; i++) prev[i] = (uint8_t)rand();
		for (size_t i = 0; i < en1l; i++) en1[i] = (uint8_t)rand();
		for (size_t i = 0; i < en2l; i++) en2[i] = (uint8_t)rand();
		for (size_t b = 0; b < nb; b++) {
			for (size_t i = 0; i < 32; i++) br[b][i] = (uint8_t)rand();
			hf_hex_encode(br[b], 32, bh[b]);
			bp[b] = bh[b];
		}
		hf_hex_encode(c1, l1, h1);
		hf_hex_encode(c2, l2, h2);
		hf_stratum_job_prevhash_encode(prev, ph);
		cr_assert_eq(hf_stratum_job_set_hex(&job, ph, h1, h2, bp, nb, &eb), 0, "%s", eb.msg);

		/* Independent computation. */
		memcpy(cb, c1, l1);
		memcpy(cb + l1, en1, en1l);
		memcpy(cb + l1 + en1l, en2, en2l);
		memcpy(cb + l1 + en1l + en2l, c2, l2);
		evp_sha256d(cb, l1 + en1l + en2l + l2, root);
		for (size_t b = 0; b < nb; b++) {
			memcpy(pair, root, 32);
			memcpy(pair + 32, br[b], 32);
			evp_sha256d(pair, 64, root);
		}
		cr_assert_eq(hf_stratum_job_copy(&copy, &job), 0);
		cr_assert_eq(hf_stratum_job_merkle_root(&copy, en1, en1l, en2, en2l, mine), 0);
		cr_assert_eq(memcmp(mine, root, 32), 0, "round %d", round);
		cr_assert_eq(hf_stratum_job_coinbase(&job, en1, en1l, en2, en2l, cb, 8, &cbl),
			     l1 + l2 + en1l + en2l > 8 ? HF_ETOOBIG : 0);
		hf_stratum_job_clear(&copy);
		hf_stratum_job_clear(&job);
		hf_stratum_job_clear(NULL);
		free(h1);
		free(h2);
	}
}

Test(stratum_job, bad_hex_refused)
{
	hf_stratum_job job = { 0 };
	hf_errbuf eb;
	char ph[65];
	uint8_t z[32] = { 0 };
	const char *bad_branch[] = { "abcd" };

	hf_stratum_job_prevhash_encode(z, ph);
	cr_assert_eq(hf_stratum_job_set_hex(&job, "00", "", "", NULL, 0, &eb), HF_EPARSE);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, "abc", "", NULL, 0, &eb), HF_EPARSE);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, "zz", "", NULL, 0, &eb), HF_EPARSE);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, "", "", bad_branch, 1, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "branch[0]"), "%s", eb.msg);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, "", "", NULL, 33, &eb), HF_ETOOBIG);
	cr_assert_eq(hf_stratum_job_set_hex(&job, ph, "00", "11", NULL, 0, &eb), 0);
	cr_assert_eq(job.coinb1_len, 1);
	hf_stratum_job_clear(&job);
}

Test(stratum_job, version_roll)
{
	cr_assert_eq(hf_stratum_version_roll(0x20000000, 0x1fffe000, 0xffffffff), 0x3fffe000);
	cr_assert_eq(hf_stratum_version_roll(0x20000004, 0x1fffe000, 0x00002000), 0x20002004);
}
