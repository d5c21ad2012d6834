/* Unit tests for hf_sha256d: every CPU scanner against the reference and OpenSSL on random
 * headers, the published block headers, boundary targets, wrapping ranges, short ranges, many
 * hits, targets from nBits and the dispatch. A scanner this CPU lacks is reported as skipped.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpuinfo_testutil.h"
#include "hf_sha256d.h"
#include "hf_util.h"
#include "sha256d_testutil.h"

/* ---- helpers ---- */

/* the random inputs' generator (sha256d_test_rand): a fixed seed, so a failure reproduces */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* The implementation under test, or a skip when this CPU lacks it. */
static const hf_sha256d_impl *need(const char *name)
{
	const hf_sha256d_impl *impl = hf_sha256d_impl_find(name);
	if (!impl)
		cr_skip_test("%s is not compiled into this build (not an x86-64 host)", name);
	if (!impl->supported())
		cr_skip_test("this CPU lacks the features %s needs; it was NOT tested here", name);
	return impl;
}

#define MAX_HITS 4096

typedef struct scan_out {
	uint32_t hits[MAX_HITS];
	hf_sha256d_result res;
	int rc;
} scan_out;

static void scan(hf_sha256d_scan_fn fn, const hf_sha256d_job *job, uint32_t start,
		 uint64_t count, size_t max_hits, scan_out *out)
{
	memset(out, 0xa5, sizeof(*out));
	out->rc = fn(job, start, count, out->hits, max_hits, &out->res);
}

/* Scans with impl and the reference and requires the same hits, each verified by OpenSSL. */
static void agree(const hf_sha256d_impl *impl, const uint8_t header[80],
		  const hf_sha256d_job *job, uint32_t start, uint64_t count)
{
	static scan_out a, b;
	scan(impl->scan, job, start, count, MAX_HITS, &a);
	scan(hf_sha256d_scan_ref, job, start, count, MAX_HITS, &b);
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(b.rc, 0);
	cr_assert_eq(a.res.scanned, count, "%s scanned %llu of %llu", impl->name,
		     (unsigned long long)a.res.scanned, (unsigned long long)count);
	cr_assert_eq(b.res.scanned, count);
	cr_assert_eq(a.res.n_hits, b.res.n_hits, "%s found %zu hits, reference %zu (start %u)",
		     impl->name, a.res.n_hits, b.res.n_hits, start);
	for (size_t i = 0; i < a.res.n_hits; i++) {
		cr_assert_eq(a.hits[i], b.hits[i], "%s hit %zu: %u, reference %u", impl->name, i,
			     a.hits[i], b.hits[i]);
		uint8_t ours[32], theirs[32];
		sha256d_test_openssl_nonce(header, a.hits[i], theirs);
		hf_sha256d_job_hash(job, a.hits[i], ours);
		cr_assert_eq(memcmp(ours, theirs, 32), 0, "hash of nonce %u differs from OpenSSL",
			     a.hits[i]);
		cr_assert(hf_sha256d_meets_target(theirs, job->target));
	}
}

/* A random target whose top word is loose enough to give hits now and then; the lower bytes
 * are random too, so the full comparison matters. */
static void random_target(uint8_t target[32], int kind)
{
	sha256d_test_rand_bytes(&rng_state, target, 32);
	switch (kind % 4) {
	case 0: target[31] = 0x10; break;                        /* ~1/16 hit */
	case 1: target[31] = 0xff; target[30] = 0xff; break;     /* top word decides little */
	case 2: target[31] = 0x01; break;                        /* ~1/256 */
	default: target[31] = (uint8_t)(sha256d_test_rand(&rng_state) >> 60); break;
	}
}

/* ---- the reference itself against OpenSSL ---- */

Test(sha256d, reference_matches_openssl)
{
	for (int i = 0; i < 1000; i++) {
		uint8_t data[200], a[32], b[32];
		size_t len = (size_t)(sha256d_test_rand(&rng_state) % sizeof(data));
		sha256d_test_rand_bytes(&rng_state, data, len);
		hf_sha256d_hash(data, len, a);
		sha256d_test_openssl(data, len, b);
		cr_assert_eq(memcmp(a, b, 32), 0, "length %zu", len);
	}
	for (int i = 0; i < 1000; i++) {
		uint8_t header[80], target[32] = { 0 }, a[32], b[32];
		hf_sha256d_job job;
		sha256d_test_rand_bytes(&rng_state, header, 80);
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t nonce = (uint32_t)sha256d_test_rand(&rng_state);
		sha256d_test_put_le32(header + 76, nonce);
		hf_sha256d_job_hash(&job, nonce, a);
		sha256d_test_openssl(header, 80, b);
		cr_assert_eq(memcmp(a, b, 32), 0);
	}
}

Test(sha256d, meets_target_compares_little_endian)
{
	uint8_t hash[32] = { 0 }, target[32] = { 0 };
	cr_assert(hf_sha256d_meets_target(hash, target));
	hash[0] = 1; /* least significant byte */
	cr_assert_not(hf_sha256d_meets_target(hash, target));
	target[1] = 1;
	cr_assert(hf_sha256d_meets_target(hash, target));
	hash[31] = 1;
	cr_assert_not(hf_sha256d_meets_target(hash, target));
}

Test(sha256d, target_from_bits)
{
	uint8_t t[32];
	char hex[65];
	cr_assert_eq(hf_sha256d_target_from_bits(0x1d00ffff, t), 0);
	uint8_t be[32];
	for (int i = 0; i < 32; i++)
		be[i] = t[31 - i];
	hf_hex_encode(be, 32, hex);
	cr_assert_str_eq(hex, "00000000ffff0000000000000000000000000000000000000000000000000000");
	cr_assert_eq(hf_sha256d_target_from_bits(0x1b04864c, t), 0);
	for (int i = 0; i < 32; i++)
		be[i] = t[31 - i];
	hf_hex_encode(be, 32, hex);
	cr_assert_str_eq(hex, "000000000004864c000000000000000000000000000000000000000000000000");
	cr_assert_eq(hf_sha256d_target_from_bits(0x03123456, t), 0);
	cr_assert(t[0] == 0x56 && t[1] == 0x34 && t[2] == 0x12 && t[3] == 0);
	cr_assert_eq(hf_sha256d_target_from_bits(0x02123456, t), 0);
	cr_assert(t[0] == 0x34 && t[1] == 0x12 && t[2] == 0);
	cr_assert_eq(hf_sha256d_target_from_bits(0x1d80ffff, t), HF_ERANGE, "negative");
	cr_assert_eq(hf_sha256d_target_from_bits(0x22123456, t), HF_ERANGE, "overflow");
	cr_assert_eq(hf_sha256d_target_from_bits(0x20123456, t), 0);
	cr_assert(t[31] == 0x12 && t[29] == 0x56);
}

/* ---- dispatch ---- */

Test(sha256d, table_is_best_first_and_ends_with_reference)
{
	size_t n = hf_sha256d_impl_count();
	cr_assert_geq(n, 1);
	cr_assert_str_eq(hf_sha256d_impl_at(n - 1)->name, "ref");
	cr_assert_null(hf_sha256d_impl_at(n));
	const hf_sha256d_impl *best = NULL;
	cr_assert_eq(hf_sha256d_choose(NULL, &best, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		if (hf_sha256d_impl_at(i)->supported()) {
			cr_assert_eq(best, hf_sha256d_impl_at(i));
			break;
		}
	}
	cr_assert_eq(hf_sha256d_choose("auto", &best, NULL), 0);
	cr_assert_eq(hf_sha256d_choose("ref", &best, NULL), 0);
	cr_assert_eq(best, hf_sha256d_impl_find("ref"));
}

Test(sha256d, choose_refuses_unknown_and_unsupported)
{
	const hf_sha256d_impl *impl = (const hf_sha256d_impl *)1;
	hf_errbuf eb;
	cr_assert_eq(hf_sha256d_choose("sse9", &impl, &eb), HF_ENOTFOUND);
	cr_assert_null(impl);
	cr_assert(strstr(eb.msg, "sse9") && strstr(eb.msg, "ref"), "%s", eb.msg);
	for (size_t i = 0; i < hf_sha256d_impl_count(); i++) {
		const hf_sha256d_impl *x = hf_sha256d_impl_at(i);
		int rc = hf_sha256d_choose(x->name, &impl, &eb);
		cr_assert_eq(rc, x->supported() ? 0 : HF_EUNSUPPORTED, "%s", x->name);
	}
}

/* Each scanner runs exactly where the kernel says its instructions are usable (the kernel
 * clears a flag whose register state it does not save, e.g. avx512f without ZMM state). */
Test(sha256d, supported_agrees_with_the_kernel)
{
	static const struct { const char *impl, *flag1, *flag2; } want[] = {
		{ "avx512", "avx512f", "avx512f" },
		{ "shani", "sha_ni", "sse4_1" },
		{ "avx2", "avx2", "avx2" },
	};
	if (hf_test_cpuinfo_has("fpu") < 0)
		cr_skip_test("no /proc/cpuinfo to compare with");
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const hf_sha256d_impl *impl = hf_sha256d_impl_find(want[i].impl);
		if (!impl)
			continue; /* not an x86-64 build */
		bool have = hf_test_cpuinfo_has(want[i].flag1) == 1 && hf_test_cpuinfo_has(want[i].flag2) == 1;
		cr_expect_eq(impl->supported(), have, "%s: supported() %d, /proc/cpuinfo %s %s: %d",
			     want[i].impl, impl->supported(), want[i].flag1, want[i].flag2, have);
	}
	cr_assert(hf_sha256d_impl_find("ref")->supported());
}

Test(sha256d, env_forces_implementation)
{
	setenv(HF_SHA256D_IMPL_ENV, "ref", 1);
	const hf_sha256d_impl *impl = NULL;
	cr_assert_eq(hf_sha256d_default(&impl, NULL), 0);
	cr_assert_str_eq(impl->name, "ref");
}

Test(sha256d, env_with_bad_name_is_refused)
{
	setenv(HF_SHA256D_IMPL_ENV, "bogus", 1);
	const hf_sha256d_impl *impl = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_sha256d_default(&impl, &eb), HF_ENOTFOUND);
	cr_assert_null(impl);
	cr_assert(strstr(eb.msg, HF_SHA256D_IMPL_ENV), "%s", eb.msg);
	cr_assert_eq(hf_sha256d_default(&impl, &eb), HF_ENOTFOUND, "same answer every time");
}

Test(sha256d, env_unset_picks_best)
{
	unsetenv(HF_SHA256D_IMPL_ENV);
	const hf_sha256d_impl *impl = NULL, *best = NULL;
	cr_assert_eq(hf_sha256d_default(&impl, NULL), 0);
	cr_assert_eq(hf_sha256d_choose(NULL, &best, NULL), 0);
	cr_assert_eq(impl, best);
}

Test(sha256d, bad_arguments)
{
	hf_sha256d_job job;
	uint8_t header[80] = { 0 }, target[32] = { 0 };
	hf_sha256d_result res;
	hf_sha256d_job_from_header(&job, header, target);
	for (size_t i = 0; i < hf_sha256d_impl_count(); i++) {
		hf_sha256d_scan_fn fn = hf_sha256d_impl_at(i)->scan;
		cr_assert_eq(fn(&job, 0, HF_SHA256D_MAX_COUNT + 1, NULL, 0, &res), HF_EINVAL);
		cr_assert_eq(fn(&job, 0, 1, NULL, 1, &res), HF_EINVAL);
		cr_assert_eq(fn(NULL, 0, 1, NULL, 0, &res), HF_EINVAL);
		cr_assert_eq(fn(&job, 0, 1, NULL, 0, NULL), HF_EINVAL);
	}
}

/* ---- per implementation ---- */

static void t_random(const hf_sha256d_impl *impl)
{
	/* thousands of random headers; ranges of odd lengths and starts near the wrap */
	for (int i = 0; i < 1500; i++) {
		uint8_t header[80], target[32];
		hf_sha256d_job job;
		sha256d_test_rand_bytes(&rng_state, header, 80);
		random_target(target, i);
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t start = (uint32_t)sha256d_test_rand(&rng_state);
		uint64_t count = 1 + sha256d_test_rand(&rng_state) % 48;
		agree(impl, header, &job, start, count);
	}
}

static void t_blocks(const hf_sha256d_impl *impl)
{
	json_t *root, *blocks = sha256d_test_load_blocks(&root);
	for (size_t b = 0; b < json_array_size(blocks); b++) {
		sha256d_test_block blk;
		static scan_out out;
		uint8_t got[32];
		/* 0xdeadbeef in the header's nonce field: the scanner must ignore these bytes */
		sha256d_test_block_get(blocks, b, 0xdeadbeef, &blk);
		uint32_t nonce = blk.nonce, start = nonce - 3000;
		hf_sha256d_job *job = &blk.job;
		scan(impl->scan, job, start, 6001, MAX_HITS, &out);
		cr_assert_eq(out.rc, 0);
		cr_assert_eq(out.res.scanned, 6001);
		cr_assert_eq(out.res.n_hits, 1, "%s, block %zu: %zu hits", impl->name, b,
			     out.res.n_hits);
		cr_assert_eq(out.hits[0], nonce, "%s: got nonce %u, block has %u", impl->name,
			     out.hits[0], nonce);
		hf_sha256d_job_hash(job, out.hits[0], got);
		cr_assert_eq(memcmp(got, blk.hash_le, 32), 0, "block hash not reproduced");
		sha256d_test_put_le32(blk.header + 76, nonce);
		sha256d_test_openssl(blk.header, 80, got);
		cr_assert_eq(memcmp(got, blk.hash_le, 32), 0, "OpenSSL disagrees with the vector file");

		/* the same block scanned from its midstate and tail */
		uint32_t mid[8];
		hf_sha256d_midstate(blk.header, mid);
		hf_sha256d_job_init(job, mid, blk.header + 64, blk.target);
		scan(impl->scan, job, nonce, 1, MAX_HITS, &out);
		cr_assert_eq(out.res.n_hits, 1);
		cr_assert_eq(out.hits[0], nonce);
	}
	json_decref(root);
}

/* target = hash passes; target = hash - 1 fails (the hash is then target + 1). */
static void t_boundary(const hf_sha256d_impl *impl)
{
	for (int i = 0; i < 300; i++) {
		uint8_t header[80], target[32] = { 0 }, hash[32];
		hf_sha256d_job job;
		sha256d_test_rand_bytes(&rng_state, header, 80);
		if (i % 2)
			memset(header + 36, 0, 8); /* vary the data the top words come from */
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t nonce = (uint32_t)sha256d_test_rand(&rng_state);
		hf_sha256d_job_hash(&job, nonce, hash);

		static scan_out out;
		uint32_t start = nonce - (uint32_t)(sha256d_test_rand(&rng_state) % 20);
		/* exactly the hash */
		hf_sha256d_job_from_header(&job, header, hash);
		scan(impl->scan, &job, start, 40, MAX_HITS, &out);
		bool found = false;
		for (size_t k = 0; k < out.res.n_hits; k++)
			found |= out.hits[k] == nonce;
		cr_assert(found, "%s: hash == target must pass", impl->name);
		agree(impl, header, &job, start, 40);

		/* the hash minus one (little-endian borrow) */
		memcpy(target, hash, 32);
		for (int k = 0; k < 32 && target[k]-- == 0; k++)
			;
		hf_sha256d_job_from_header(&job, header, target);
		scan(impl->scan, &job, start, 40, MAX_HITS, &out);
		for (size_t k = 0; k < out.res.n_hits; k++)
			cr_assert_neq(out.hits[k], nonce, "%s: hash == target + 1 must fail",
				      impl->name);
		agree(impl, header, &job, start, 40);
	}
}

static void t_wrap_and_lengths(const hf_sha256d_impl *impl)
{
	uint8_t header[80], target[32];
	hf_sha256d_job job;
	static scan_out out;
	sha256d_test_rand_bytes(&rng_state, header, 80);
	memset(target, 0xff, 32); /* every nonce hits */
	hf_sha256d_job_from_header(&job, header, target);

	/* length 0 */
	scan(impl->scan, &job, 123, 0, MAX_HITS, &out);
	cr_assert_eq(out.rc, 0);
	cr_assert_eq(out.res.scanned, 0);
	cr_assert_eq(out.res.n_hits, 0);
	/* length 1, also at the very top of the range */
	const uint32_t ones[] = { 0, 5, 0xffffffffu, 0x7fffffffu };
	for (size_t i = 0; i < HF_ARRAY_SIZE(ones); i++) {
		scan(impl->scan, &job, ones[i], 1, MAX_HITS, &out);
		cr_assert_eq(out.res.scanned, 1);
		cr_assert_eq(out.res.n_hits, 1);
		cr_assert_eq(out.hits[0], ones[i]);
	}
	/* a range across 2^32: nonces 0xfffffff3 .. 0x0000001c in order */
	scan(impl->scan, &job, 0xfffffff3u, 42, MAX_HITS, &out);
	cr_assert_eq(out.res.n_hits, 42);
	for (uint32_t i = 0; i < 42; i++)
		cr_assert_eq(out.hits[i], 0xfffffff3u + i);

	/* wrapping ranges against the reference with ordinary targets */
	for (int i = 0; i < 200; i++) {
		sha256d_test_rand_bytes(&rng_state, header, 80);
		random_target(target, i);
		hf_sha256d_job_from_header(&job, header, target);
		uint32_t back = (uint32_t)(sha256d_test_rand(&rng_state) % 40);
		agree(impl, header, &job, 0u - back, back + 1 + sha256d_test_rand(&rng_state) % 40);
	}
}

static void t_many_hits(const hf_sha256d_impl *impl)
{
	uint8_t header[80], target[32];
	hf_sha256d_job job;
	static scan_out out;
	sha256d_test_every_nonce_job(&rng_state, header, &job);

	scan(impl->scan, &job, 1000, 3001, MAX_HITS, &out);
	cr_assert_eq(out.res.n_hits, 3001);
	for (uint32_t i = 0; i < 3001; i++)
		cr_assert_eq(out.hits[i], 1000 + i);

	/* a small buffer: the scan stops at the first unreported hit and resumes there */
	uint32_t next = 77;
	uint64_t left = 101;
	size_t got = 0;
	while (left > 0) {
		scan(impl->scan, &job, next, left, 7, &out);
		cr_assert_eq(out.rc, 0);
		cr_assert_leq(out.res.n_hits, 7);
		for (size_t k = 0; k < out.res.n_hits; k++)
			cr_assert_eq(out.hits[k], 77 + (uint32_t)got + (uint32_t)k);
		got += out.res.n_hits;
		cr_assert_eq(out.res.scanned, out.res.n_hits < 7 ? left : 7);
		next += (uint32_t)out.res.scanned;
		left -= out.res.scanned;
	}
	cr_assert_eq(got, 101);

	/* the whole 2^32 range is a valid count (stopped early here by the full buffer) */
	scan(impl->scan, &job, 0xfffffffeu, HF_SHA256D_MAX_COUNT, 3, &out);
	cr_assert_eq(out.rc, 0);
	cr_assert_eq(out.res.n_hits, 3);
	cr_assert_eq(out.res.scanned, 3);
	cr_assert(out.hits[0] == 0xfffffffeu && out.hits[1] == 0xffffffffu && out.hits[2] == 0);

	/* no buffer at all: nothing scanned past the first hit */
	scan(impl->scan, &job, 5, 50, 0, &out);
	cr_assert_eq(out.res.n_hits, 0);
	cr_assert_eq(out.res.scanned, 0);

	/* about a quarter of the nonces hit: the same hits as the reference */
	memset(target, 0xff, 32);
	target[31] = 0x3f;
	hf_sha256d_job_from_header(&job, header, target);
	agree(impl, header, &job, 0xfffff000u, 8192);
}

#define IMPL_TESTS(NAME)                                                                 \
	Test(sha256d_##NAME, random_headers_vs_reference_and_openssl)                    \
	{ t_random(need(#NAME)); }                                                       \
	Test(sha256d_##NAME, published_block_headers) { t_blocks(need(#NAME)); }         \
	Test(sha256d_##NAME, boundary_targets) { t_boundary(need(#NAME)); }              \
	Test(sha256d_##NAME, wrap_and_short_ranges) { t_wrap_and_lengths(need(#NAME)); } \
	Test(sha256d_##NAME, many_hits) { t_many_hits(need(#NAME)); }

IMPL_TESTS(ref)
IMPL_TESTS(shani)
IMPL_TESTS(avx2)
IMPL_TESTS(avx512)
