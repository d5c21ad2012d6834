/* hf_stratum_job: Stratum v1 jobs, coinbase, merkle root, header and share hash.
 *
 * Failure: every function that takes untrusted hex or lengths checks them and returns
 * HF_EPARSE / HF_ETOOBIG with detail; nothing here aborts on input.
 * Threading: reentrant; a job belongs to one owner.
 */
#include "hf_stratum_job.h"

#include <stdlib.h>
#include <string.h>

#include "hf_sha256d.h"
#include "hf_util.h"

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

int hf_stratum_job_copy(hf_stratum_job *dst, const hf_stratum_job *src)
{
	*dst = *src;
	dst->coinb1 = dup_bytes(src->coinb1, src->coinb1_len);
	dst->coinb2 = dup_bytes(src->coinb2, src->coinb2_len);
	dst->branch = malloc(src->nbranch ? src->nbranch * 32 : 1);
	if (!dst->coinb1 || !dst->coinb2 || !dst->branch) {
		hf_stratum_job_clear(dst);
		return HF_ENOMEM;
	}
	if (src->nbranch)
		memcpy(dst->branch, src->branch, src->nbranch * 32);
	return 0;
}

void hf_stratum_job_clear(hf_stratum_job *job)
{
	if (!job)
		return;
	free(job->coinb1);
	free(job->coinb2);
	free(job->branch);
	memset(job, 0, sizeof *job);
}

bool hf_stratum_job_prevhash_decode(const char *hex, uint8_t out[32])
{
	uint8_t raw[32];

	if (!hex || !hf_hex_decode(hex, strlen(hex), raw, 32))
		return false;
	for (int w = 0; w < 8; w++)
		for (int b = 0; b < 4; b++)
			out[4 * w + b] = raw[4 * w + 3 - b];
	return true;
}

void hf_stratum_job_prevhash_encode(const uint8_t in[32], char out[65])
{
	uint8_t raw[32];

	for (int w = 0; w < 8; w++)
		for (int b = 0; b < 4; b++)
			raw[4 * w + b] = in[4 * w + 3 - b];
	hf_hex_encode(raw, 32, out);
}

static int decode_part(const char *hex, const char *what, uint8_t **out, size_t *outlen,
		       hf_errbuf *eb)
{
	size_t n = hex ? strlen(hex) : 0;

	if (!hex || n % 2)
		return hf_fail(eb, HF_EPARSE, "%s: expected an even number of hex digits", what);
	if (n / 2 > HF_STRATUM_COINB_MAX)
		return hf_fail(eb, HF_ETOOBIG, "%s: %zu bytes over the cap of %d", what, n / 2,
			       HF_STRATUM_COINB_MAX);
	*out = malloc(n / 2 ? n / 2 : 1);
	if (!*out)
		return hf_fail(eb, HF_ENOMEM, "%s: out of memory", what);
	if (!hf_hex_decode(hex, n, *out, n / 2)) {
		free(*out);
		*out = NULL;
		return hf_fail(eb, HF_EPARSE, "%s: not hex", what);
	}
	*outlen = n / 2;
	return 0;
}

int hf_stratum_job_set_hex(hf_stratum_job *job, const char *prevhash, const char *coinb1,
			   const char *coinb2, const char *const *branch, size_t nbranch,
			   hf_errbuf *eb)
{
	hf_stratum_job tmp = { 0 };
	int rc;

	if (!hf_stratum_job_prevhash_decode(prevhash, tmp.prevhash))
		return hf_fail(eb, HF_EPARSE, "prevhash: expected 64 hex digits");
	if (nbranch > HF_STRATUM_BRANCH_MAX)
		return hf_fail(eb, HF_ETOOBIG, "merkle branch: %zu entries over the cap of %d",
			       nbranch, HF_STRATUM_BRANCH_MAX);
	rc = decode_part(coinb1, "coinb1", &tmp.coinb1, &tmp.coinb1_len, eb);
	if (rc)
		goto fail;
	rc = decode_part(coinb2, "coinb2", &tmp.coinb2, &tmp.coinb2_len, eb);
	if (rc)
		goto fail;
	tmp.branch = malloc(nbranch ? nbranch * 32 : 1);
	if (!tmp.branch) {
		rc = hf_fail(eb, HF_ENOMEM, "merkle branch: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nbranch; i++) {
		if (!branch[i] || !hf_hex_decode(branch[i], strlen(branch[i]), tmp.branch[i], 32)) {
			rc = hf_fail(eb, HF_EPARSE, "merkle branch[%zu]: expected 64 hex digits", i);
			goto fail;
		}
	}
	tmp.nbranch = nbranch;
	free(job->coinb1);
	free(job->coinb2);
	free(job->branch);
	memcpy(job->prevhash, tmp.prevhash, 32);
	job->coinb1 = tmp.coinb1;
	job->coinb1_len = tmp.coinb1_len;
	job->coinb2 = tmp.coinb2;
	job->coinb2_len = tmp.coinb2_len;
	job->branch = tmp.branch;
	job->nbranch = tmp.nbranch;
	return 0;
fail:
	hf_stratum_job_clear(&tmp);
	return rc;
}

void hf_stratum_sha256d(const void *data, size_t len, uint8_t out[32])
{
	hf_sha256d_hash(data, len, out); /* the kernels' portable reference */
}

int hf_stratum_job_coinbase(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			    const uint8_t *en2, size_t en2_len, uint8_t *out, size_t outsz,
			    size_t *outlen)
{
	size_t n = job->coinb1_len + en1_len + en2_len + job->coinb2_len;

	if (n > outsz)
		return HF_ETOOBIG;
	memcpy(out, job->coinb1, job->coinb1_len);
	memcpy(out + job->coinb1_len, en1, en1_len);
	memcpy(out + job->coinb1_len + en1_len, en2, en2_len);
	memcpy(out + job->coinb1_len + en1_len + en2_len, job->coinb2, job->coinb2_len);
	*outlen = n;
	return 0;
}

int hf_stratum_job_merkle_root(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			       const uint8_t *en2, size_t en2_len, uint8_t root[32])
{
	size_t cap = job->coinb1_len + en1_len + en2_len + job->coinb2_len, n;
	uint8_t *cb = malloc(cap ? cap : 1), pair[64];
	int rc;

	if (!cb)
		return HF_ENOMEM;
	rc = hf_stratum_job_coinbase(job, en1, en1_len, en2, en2_len, cb, cap, &n);
	if (rc == 0) {
		hf_stratum_sha256d(cb, n, root);
		for (size_t i = 0; i < job->nbranch; i++) {
			memcpy(pair, root, 32);
			memcpy(pair + 32, job->branch[i], 32);
			hf_stratum_sha256d(pair, 64, root);
		}
	}
	free(cb);
	return rc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void hf_stratum_header_build(uint32_t version, const uint8_t prevhash[32],
			     const uint8_t merkle_root[32], uint32_t ntime, uint32_t nbits,
			     uint32_t nonce, uint8_t out[80])
{
	put_le32(out, version);
	memcpy(out + 4, prevhash, 32);
	memcpy(out + 36, merkle_root, 32);
	put_le32(out + 68, ntime);
	put_le32(out + 72, nbits);
	put_le32(out + 76, nonce);
}

int hf_stratum_job_share_hash(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			      const hf_stratum_share *share, uint8_t header[80],
			      uint8_t hash[32])
{
	uint8_t root[32], hdr[80];
	int rc;

	rc = hf_stratum_job_merkle_root(job, en1, en1_len, share->en2, share->en2_len, root);
	if (rc)
		return rc;
	hf_stratum_header_build(share->version, job->prevhash, root, share->ntime, job->nbits,
				share->nonce, hdr);
	hf_stratum_sha256d(hdr, 80, hash);
	if (header)
		memcpy(header, hdr, 80);
	return 0;
}

uint32_t hf_stratum_version_roll(uint32_t base, uint32_t mask, uint32_t bits)
{
	return (base & ~mask) | (bits & mask);
}
