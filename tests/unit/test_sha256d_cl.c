/* Unit tests for hf_sha256d_cl: the OpenCL scan (PoCL in CI) against the reference scanner and
 * OpenSSL: random headers, the published block headers, boundary targets, wrapping and short
 * ranges, many hits (the candidate buffer overflows and is rescanned in slices). A build without
 * OpenCL, or a machine without any OpenCL platform or device, reports these tests as skipped,
 * never as passed; a device named by HF_TEST_CL_DEVICE that is missing, a driver error or a
 * compile error fails them.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_cl_env.h"
#include "hf_sha256d.h"
#include "hf_sha256d_cl.h"
#include "hf_util.h"
#include "sha256d_testutil.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull; /* sha256d_test_rand: a fixed seed */

/* PoCL's environment, set before Criterion (or anything else) starts a thread: a constructor
 * runs before main, and every test process inherits the runner's environment. */
__attribute__((constructor)) static void cl_env(void)
{
	hf_cl_env_init(NULL, NULL);
}

/* Opens the device the tests use (HF_TEST_CL_DEVICE, default "auto"), small batches so ranges
 * span several launches; skips when this build has no OpenCL or the machine no OpenCL device
 * at all ("auto" is HF_ENOTFOUND only then: it takes any device there is). */
static hf_sha256d_cl *open_or_skip(void)
{
	if (!hf_sha256d_cl_compiled())
		cr_skip_test("this build has no OpenCL; the OpenCL scanner was NOT tested");
	char cache[1024] = "";
	const char *root = getenv("HF_BUILD_ROOT");
	if (root)
		snprintf(cache, sizeof(cache), "%s/sha256d-cl-cache", root);
	const char *dev = getenv("HF_TEST_CL_DEVICE");
	bool chosen = dev && *dev && strcmp(dev, "auto") != 0;
	hf_sha256d_cl_opts o = { .device = chosen ? dev : "auto",
				 .cache_dir = cache[0] ? cache : NULL, .batch = 1000 };
	hf_sha256d_cl *s = NULL;
	hf_errbuf eb;
	int rc = hf_sha256d_cl_new(&o, &s, &eb);
	if (rc == HF_ENOTFOUND && !chosen)
		cr_skip_test("no OpenCL device here (%s); the OpenCL scanner was NOT tested", eb.msg);
	cr_assert_eq(rc, 0, "device \"%s\": %s: %s", o.device, hf_strerror(rc), eb.msg);
	return s;
}

#define MAX_HITS 2048

typedef struct scan_out {
	uint32_t hits[MAX_HITS];
	hf_sha256d_result res;
} scan_out;

static void cl_scan(hf_sha256d_cl *s, const hf_sha256d_job *job, uint32_t start, uint64_t count,
		    size_t max_hits, scan_out *out)
{
	hf_errbuf eb;
	memset(out, 0xa5, sizeof(*out));
	int rc = hf_sha256d_cl_scan(s, job, start, count, out->hits, max_hits, &out->res, &eb);
	cr_assert_eq(rc, 0, "%s: %s", hf_strerror(rc), eb.msg);
}

static void agree(hf_sha256d_cl *s, const uint8_t header[80], const hf_sha256d_job *job,
		  uint32_t start, uint64_t count)
{
	static scan_out a, b;
	cl_scan(s, job, start, count, MAX_HITS, &a);
	cr_assert_eq(hf_sha256d_scan_ref(job, start, count, b.hits, MAX_HITS, &b.res), 0);
	cr_assert_eq(a.res.scanned, count);
	cr_assert_eq(a.res.n_hits, b.res.n_hits, "opencl %zu hits, reference %zu (start %u)",
		     a.res.n_hits, b.res.n_hits, start);
	for (size_t i = 0; i < a.res.n_hits; i++) {
		cr_assert_eq(a.hits[i], b.hits[i]);
		uint8_t twice[32];
		sha256d_test_openssl_nonce(header, a.hits[i], twice);
		cr_assert(hf_sha256d_meets_target(twice, job->target), "OpenSSL disagrees");
	}
}

Test(sha256d_cl, random_headers_vs_reference_and_openssl)
{
	hf_sha256d_cl *s = open_or_skip();
	for (int i = 0; i < 300; i++) {
		uint8_t header[80];
		hf_sha256d_job job;
		sha256d_test_random_job(&rng_state, i % 3 == 0 ? 0x10 : i % 3 == 1 ? 0xff : 0x02,
					header, &job);
		agree(s, header, &job, (uint32_t)sha256d_test_rand(&rng_state),
		      1 + sha256d_test_rand(&rng_state) % 2000);
	}
	hf_sha256d_cl_free(s);
}

Test(sha256d_cl, published_block_headers)
{
	hf_sha256d_cl *s = open_or_skip();
	json_t *root, *blocks = sha256d_test_load_blocks(&root);
	for (size_t b = 0; b < json_array_size(blocks); b++) {
		sha256d_test_block blk;
		uint8_t got[32];
		static scan_out out;
		sha256d_test_block_get(blocks, b, 0, &blk);
		cl_scan(s, &blk.job, blk.nonce - 20000, 40001, MAX_HITS, &out);
		cr_assert_eq(out.res.scanned, 40001);
		cr_assert_eq(out.res.n_hits, 1, "block %zu: %zu hits", b, out.res.n_hits);
		cr_assert_eq(out.hits[0], blk.nonce);
		hf_sha256d_job_hash(&blk.job, out.hits[0], got);
		cr_assert_eq(memcmp(got, blk.hash_le, 32), 0, "block hash not reproduced");
	}
	json_decref(root);
	hf_sha256d_cl_free(s);
}

Test(sha256d_cl, boundary_targets)
{
	hf_sha256d_cl *s = open_or_skip();
	for (int i = 0; i < 40; i++) {
		uint8_t header[80], target[32] = { 0 }, hash[32];
		hf_sha256d_job job;
		static scan_out out;
		sha256d_test_rand_bytes(&rng_state, header, 80);
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t nonce = (uint32_t)sha256d_test_rand(&rng_state);
		hf_sha256d_job_hash(&job, nonce, hash);

		hf_sha256d_job_from_header(&job, header, hash); /* hash == target passes */
		cl_scan(s, &job, nonce, 1, MAX_HITS, &out);
		cr_assert_eq(out.res.n_hits, 1);
		cr_assert_eq(out.hits[0], nonce);
		agree(s, header, &job, nonce - 30, 61);

		memcpy(target, hash, 32); /* hash == target + 1 fails */
		for (int k = 0; k < 32 && target[k]-- == 0; k++)
			;
		hf_sha256d_job_from_header(&job, header, target);
		cl_scan(s, &job, nonce, 1, MAX_HITS, &out);
		cr_assert_eq(out.res.n_hits, 0);
		agree(s, header, &job, nonce - 30, 61);
	}
	hf_sha256d_cl_free(s);
}

Test(sha256d_cl, wrap_short_ranges_and_many_hits)
{
	hf_sha256d_cl *s = open_or_skip();
	uint8_t header[80];
	hf_sha256d_job job;
	static scan_out out;
	sha256d_test_every_nonce_job(&rng_state, header, &job);

	cl_scan(s, &job, 9, 0, MAX_HITS, &out);
	cr_assert_eq(out.res.scanned, 0);
	cr_assert_eq(out.res.n_hits, 0);
	cl_scan(s, &job, 0xffffffffu, 1, MAX_HITS, &out);
	cr_assert_eq(out.res.n_hits, 1);
	cr_assert_eq(out.hits[0], 0xffffffffu);

	/* every nonce hits across the wrap: 1500 nonces overflow the device buffer repeatedly */
	cl_scan(s, &job, 0xfffffe00u, 1500, MAX_HITS, &out);
	cr_assert_eq(out.res.scanned, 1500);
	cr_assert_eq(out.res.n_hits, 1500);
	for (uint32_t i = 0; i < 1500; i++)
		cr_assert_eq(out.hits[i], 0xfffffe00u + i);

	/* a small hit buffer: stop at the first unreported hit, resume there */
	uint32_t next = 40;
	uint64_t left = 23;
	size_t got = 0;
	while (left > 0) {
		cl_scan(s, &job, next, left, 5, &out);
		for (size_t k = 0; k < out.res.n_hits; k++)
			cr_assert_eq(out.hits[k], 40 + (uint32_t)(got + k));
		got += out.res.n_hits;
		next += (uint32_t)out.res.scanned;
		left -= out.res.scanned;
	}
	cr_assert_eq(got, 23);

	/* ordinary targets across the wrap */
	for (int i = 0; i < 30; i++) {
		sha256d_test_random_job(&rng_state, 0x08, header, &job);
		agree(s, header, &job, 0u - (uint32_t)(sha256d_test_rand(&rng_state) % 3000),
		      1 + sha256d_test_rand(&rng_state) % 5000);
	}
	hf_sha256d_cl_free(s);
}
