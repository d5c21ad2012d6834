/* Unit tests for hf_safetensors (the strict reader): real files written here (st_testutil),
 * valid ones (F32, F16 with every half value, unaligned data, metadata, 0-dim and empty
 * tensors, offsets out of order) and each refusal with its code and the words of its error. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_safetensors.h"
#include "st_testutil.h"

/* Parses a header text with data bytes; returns the code, *out the reader (or NULL). */
static int parse_hdr(const char *hdr, const void *data, size_t dlen, hf_st **out,
		     hf_errbuf *eb)
{
	size_t len;
	uint8_t *img = st_image(hdr, data, dlen, &len);
	int rc = hf_st_parse(img, len, NULL, out, eb);
	/* The image must outlive the reader: tests that keep it use parse_keep. */
	if (rc == 0) {
		hf_st_free(*out);
		*out = NULL;
	}
	free(img);
	return rc;
}

/* Expects hdr (+dlen zero bytes) to be refused with code and a detail containing words. */
static void refused(const char *hdr, size_t dlen, int code, const char *words)
{
	uint8_t *zeros = calloc(1, dlen + 1);
	hf_errbuf eb;
	hf_st *st = (hf_st *)0x1;
	int rc = parse_hdr(hdr, zeros, dlen, &st, &eb);
	cr_expect_eq(rc, code, "%s: rc %d (%s), expected %d", hdr, rc, eb.msg, code);
	cr_expect_null(st);
	cr_expect(strstr(eb.msg, words) != NULL, "%s: detail \"%s\" lacks \"%s\"", hdr, eb.msg,
		  words);
	free(zeros);
}

static void accepted(const char *hdr, size_t dlen)
{
	uint8_t *zeros = calloc(1, dlen + 1);
	hf_errbuf eb = { { 0 } };
	hf_st *st;
	int rc = parse_hdr(hdr, zeros, dlen, &st, &eb);
	cr_expect_eq(rc, 0, "%s: refused: %s", hdr, eb.msg);
	free(zeros);
}

static float le_f32(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

Test(safetensors, f32_two_tensors_values_order_and_lookup)
{
	const float w[6] = { 1, 2, 3, 4, 5, -6.5f }, b[2] = { 0.25f, -1 };
	st_spec ts[] = { { "fc1.weight", 2, { 2, 3 }, w, NULL }, { "fc1.bias", 1, { 2 }, b, NULL } };
	size_t len;
	uint8_t *img = st_build(ts, 2, "{}", &len);
	hf_errbuf eb = { { 0 } };
	hf_st *st;
	float got[6];

	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_expect_eq(hf_st_count(st), 2);
	cr_expect_eq(hf_st_data_bytes(st), 32);
	cr_expect_str_eq(hf_st_at(st, 0)->name, "fc1.weight");
	cr_expect_str_eq(hf_st_at(st, 1)->name, "fc1.bias");
	cr_expect_null(hf_st_at(st, 2));
	const hf_st_tensor *t = hf_st_find(st, "fc1.weight");
	cr_assert_not_null(t);
	cr_expect_eq(t->dtype, HF_ST_F32);
	cr_expect_eq(t->ndim, 2);
	cr_expect_eq(t->shape[0], 2);
	cr_expect_eq(t->shape[1], 3);
	cr_expect_eq(t->count, 6);
	cr_expect_eq(t->nbytes, 24);
	cr_expect_eq((const uint8_t *)t->data, img + len - 32);
	hf_st_read_f32(t, got);
	for (int i = 0; i < 6; i++)
		cr_expect_eq(got[i], w[i], "w[%d] = %g", i, got[i]);
	hf_st_read_f32(hf_st_find(st, "fc1.bias"), got);
	cr_expect_eq(got[0], 0.25f);
	cr_expect_eq(got[1], -1.0f);
	cr_expect_null(hf_st_find(st, "fc2.weight"));
	cr_expect_null(hf_st_find(st, "fc1.weigh"));
	cr_expect_str_eq(hf_st_metadata(st, "hashflop.graph"), "{}");
	cr_expect_null(hf_st_metadata(st, "nothing"));
	cr_expect_str_eq(hf_st_dtype_name(HF_ST_F32), "F32");
	cr_expect_str_eq(hf_st_dtype_name(HF_ST_F16), "F16");
	hf_st_free(st);
	free(img);
}

Test(safetensors, find_among_many_tensors)
{
	/* Names out of alphabetical order so the name index is really used. */
	enum { N = 300 };
	st_spec ts[N];
	char names[N][16];
	float v[N];
	size_t len;
	uint8_t *img;
	hf_st *st;
	hf_errbuf eb;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "t%d", (i * 7919) % N);
		v[i] = (float)i;
		ts[i] = (st_spec){ names[i], 0, { 0 }, &v[i], NULL };
	}
	img = st_build(ts, N, NULL, &len);
	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	for (int i = 0; i < N; i++) {
		const hf_st_tensor *t = hf_st_find(st, names[i]);
		float f;
		cr_assert_not_null(t, "%s", names[i]);
		hf_st_read_f32(t, &f);
		cr_expect_eq(f, (float)i);
		cr_expect_eq(hf_st_at(st, (size_t)i), t, "offset order");
	}
	hf_st_free(st);
	free(img);
}

/* The expected value of half bits h, from the definition (not the bit trick under test). */
static double half_value(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;
	if (e == 31)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp(m, -24);
	else
		v = ldexp(1024 + m, e - 25);
	return s ? -v : v;
}

Test(safetensors, f16_every_value_widens_exactly)
{
	static uint16_t h[65536];
	static float f[65536];
	st_spec ts[] = { { "h", 1, { 65536 }, NULL, h } };
	size_t len;
	uint8_t *img;
	hf_st *st;
	hf_errbuf eb;

	for (uint32_t i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;
	img = st_build(ts, 1, NULL, &len);
	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	const hf_st_tensor *t = hf_st_find(st, "h");
	cr_expect_eq(t->dtype, HF_ST_F16);
	cr_expect_eq(t->nbytes, 131072);
	hf_st_read_f32(t, f);
	for (uint32_t i = 0; i < 65536; i++) {
		double want = half_value((uint16_t)i);
		if (isnan(want)) {
			uint32_t u;
			memcpy(&u, &f[i], 4);
			cr_assert(isnan(f[i]), "%04x -> %g", i, f[i]);
			cr_assert_eq(u >> 31, i >> 15, "%04x: NaN sign", i);
			cr_assert_eq(u & 0x7fffffu, (i & 1023u) << 13, "%04x: NaN payload", i);
		} else {
			cr_assert_eq((double)f[i], want, "%04x -> %.10g, expected %.10g", i, f[i],
				     want);
			cr_assert_eq(signbit(f[i]) != 0, (i >> 15) != 0, "%04x: sign", i);
		}
	}
	/* Spot values: 1, -2, max, min normal, smallest and largest subnormal, inf. */
	cr_expect_eq(f[0x3c00], 1.0f);
	cr_expect_eq(f[0xc000], -2.0f);
	cr_expect_eq(f[0x7bff], 65504.0f);
	cr_expect_eq(f[0x0400], 0x1p-14f);
	cr_expect_eq(f[0x0001], 0x1p-24f);
	cr_expect_eq(f[0x03ff], 1023 * 0x1p-24f);
	cr_expect(isinf(f[0x7c00]) && f[0x7c00] > 0);
	cr_expect(isinf(f[0xfc00]) && f[0xfc00] < 0);
	hf_st_free(st);
	free(img);
}

Test(safetensors, unaligned_data_and_unaligned_buffer)
{
	/* Header padded so the data section starts at an odd byte; the buffer itself is
	 * placed 2 bytes past an aligned address. */
	const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}   "
			  "         ";
	const float v[3] = { 1.5f, -2.25f, 3e38f };
	uint8_t data[12];
	size_t len;
	uint8_t *img, *odd;
	hf_st *st;
	hf_errbuf eb;
	float got[3];

	for (int i = 0; i < 3; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		for (int j = 0; j < 4; j++)
			data[4 * i + j] = (uint8_t)(u >> (8 * j));
	}
	img = st_image(hdr, data, sizeof data, &len);
	cr_assert_eq((8 + strlen(hdr)) % 4 != 0, true);
	odd = malloc(len + 2);
	memcpy(odd + 2, img, len);
	cr_assert_eq(hf_st_parse(odd + 2, len, NULL, &st, &eb), 0, "%s", eb.msg);
	const hf_st_tensor *t = hf_st_find(st, "a");
	cr_expect_neq((uintptr_t)t->data % 4, 0);
	hf_st_read_f32(t, got);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(got[i], v[i]);
	cr_expect_eq(le_f32(t->data), 1.5f);
	hf_st_free(st);
	free(odd);
	free(img);
}

Test(safetensors, metadata_strings)
{
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\",\"hashflop.source\":\"train.py\","
			  "\"empty\":\"\"},\"x\":{\"dtype\":\"F16\",\"shape\":[1],"
			  "\"data_offsets\":[0,2]}}";
	uint8_t d[2] = { 0x00, 0x3c };
	size_t len;
	uint8_t *img = st_image(hdr, d, 2, &len);
	hf_st *st;
	hf_errbuf eb;
	float f;

	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_expect_eq(hf_st_count(st), 1, "__metadata__ is not a tensor");
	cr_expect_str_eq(hf_st_metadata(st, "format"), "pt");
	cr_expect_str_eq(hf_st_metadata(st, "hashflop.source"), "train.py");
	cr_expect_str_eq(hf_st_metadata(st, "empty"), "");
	cr_expect_null(hf_st_metadata(st, "hashflop.graph"));
	hf_st_read_f32(hf_st_at(st, 0), &f);
	cr_expect_eq(f, 1.0f);
	hf_st_free(st);
	free(img);
}

Test(safetensors, zero_dim_and_empty_tensors)
{
	/* A scalar (shape [], one element), empty tensors ([0], [2, 0, 3]) sharing offsets with
	 * their neighbours, and a file with no tensors at all. */
	const char *hdr = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
			  "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
			  "\"e2\":{\"dtype\":\"F16\",\"shape\":[2,0,3],\"data_offsets\":[0,0]},"
			  "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
	uint8_t d[8] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40 };
	size_t len;
	uint8_t *img = st_image(hdr, d, 8, &len);
	hf_st *st;
	hf_errbuf eb;
	float f = 0;

	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_expect_eq(hf_st_count(st), 4);
	const hf_st_tensor *s = hf_st_find(st, "s"), *e = hf_st_find(st, "e");
	const hf_st_tensor *e2 = hf_st_find(st, "e2");
	cr_expect_eq(s->ndim, 0);
	cr_expect_eq(s->count, 1);
	hf_st_read_f32(s, &f);
	cr_expect_eq(f, 1.0f);
	cr_expect_eq(e->count, 0);
	cr_expect_eq(e->nbytes, 0);
	cr_expect_eq(e2->count, 0);
	cr_expect_eq(e2->ndim, 3);
	hf_st_read_f32(e, &f); /* no element: nothing written */
	cr_expect_eq(f, 1.0f);
	cr_expect_str_eq(hf_st_at(st, 0)->name, "e2", "[0, 0] sorts first");
	hf_st_free(st);
	free(img);

	accepted("{}", 0);
	accepted("{\"__metadata__\":{}}", 0);
	accepted("{\"__metadata__\":null}", 0); /* the reference reads it as no metadata */
}

Test(safetensors, offsets_out_of_order_but_tiling)
{
	const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
			  "\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	uint8_t d[12] = { 0 };
	size_t len;
	uint8_t *img = st_image(hdr, d, 12, &len);
	hf_st *st;
	hf_errbuf eb;

	cr_assert_eq(hf_st_parse(img, len, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_expect_str_eq(hf_st_at(st, 0)->name, "c");
	cr_expect_str_eq(hf_st_at(st, 1)->name, "b");
	hf_st_free(st);
	free(img);
}

Test(safetensors, header_padding)
{
	accepted("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}      ", 4);
	refused(" {\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		HF_EPARSE, "does not start with '{'");
	refused("[1]", 0, HF_EPARSE, "does not start with '{'");
	refused("", 0, HF_EPARSE, "does not start with '{'");
}

Test(safetensors, header_length_caps)
{
	size_t len;
	hf_errbuf eb;
	hf_st *st;
	const char *hdr = "{}";
	hf_st_limits lim = { .max_header = 1 };
	uint8_t *img;

	/* Over the default cap of 100 MB (the file itself is small). */
	img = st_image_n(100u * 1000u * 1000u + 1, hdr, 2, NULL, 0, &len);
	cr_expect_eq(hf_st_parse(img, len, NULL, &st, &eb), HF_ETOOBIG);
	cr_expect(strstr(eb.msg, "header length 100000001 is over the cap"), "%s", eb.msg);
	free(img);
	/* 2^64 - 1: no wrap-around in 8 + N. */
	img = st_image_n(UINT64_MAX, hdr, 2, NULL, 0, &len);
	cr_expect_eq(hf_st_parse(img, len, NULL, &st, &eb), HF_ETOOBIG);
	free(img);
	/* Under the cap but past the end of the file. */
	img = st_image_n(3, hdr, 2, NULL, 0, &len);
	cr_expect_eq(hf_st_parse(img, len, NULL, &st, &eb), HF_EPARSE);
	cr_expect(strstr(eb.msg, "header length 3 runs past the end of the file (10 bytes)"),
		  "%s", eb.msg);
	free(img);
	img = st_image_n(1000, hdr, 2, NULL, 0, &len);
	cr_expect_eq(hf_st_parse(img, len, NULL, &st, &eb), HF_EPARSE);
	free(img);
	/* A caller's lower cap. */
	img = st_image(hdr, NULL, 0, &len);
	cr_expect_eq(hf_st_parse(img, len, &lim, &st, &eb), HF_ETOOBIG);
	cr_expect_eq(hf_st_parse(img, len, NULL, &st, &eb), 0);
	hf_st_free(st);
	free(img);
}

Test(safetensors, short_buffers)
{
	static const uint8_t seven[7] = { 2, 0, 0, 0, 0, 0, 0 };
	hf_errbuf eb;
	hf_st *st;

	cr_expect_eq(hf_st_parse(seven, 7, NULL, &st, &eb), HF_EPARSE);
	cr_expect(strstr(eb.msg, "7 bytes, shorter than the 8-byte header length"), "%s", eb.msg);
	cr_expect_eq(hf_st_parse(seven, 0, NULL, &st, &eb), HF_EPARSE);
	cr_expect_eq(hf_st_parse(NULL, 0, NULL, &st, &eb), HF_EPARSE);
	cr_expect_eq(hf_st_parse(NULL, 5, NULL, &st, &eb), HF_EINVAL);
	cr_expect_eq(hf_st_parse(seven, 7, NULL, NULL, &eb), HF_EINVAL);
}

Test(safetensors, not_json_not_utf8)
{
	refused("{\"a\":", 0, HF_EPARSE, "header is not valid JSON");
	refused("{\"a\":{}} x", 0, HF_EPARSE, "header is not valid JSON");
	refused("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
		HF_EPARSE, "not valid UTF-8");
	refused("{\"a\":1}", 0, HF_EPARSE, "tensor \"a\": entry is not an object");
}

Test(safetensors, duplicate_keys)
{
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, HF_EPARSE,
		"duplicate object key");
	refused("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
		"\"data_offsets\":[0,4]}}", 4, HF_EPARSE, "duplicate object key");
	refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, HF_EPARSE,
		"duplicate object key");
}

Test(safetensors, entry_fields)
{
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
		HF_EPARSE, "tensor \"a\": unknown field \"x\"");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, HF_EPARSE,
		"tensor \"a\": missing \"data_offsets\"");
	refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"missing \"dtype\"");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
		HF_EPARSE, "tensor \"a\": shape[0] is not a non-negative integer");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
		HF_EPARSE, "shape[0] is not a non-negative integer");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"shape is not an array");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4,
		HF_EPARSE, "data_offsets is not an array of two");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,4]}}", 4,
		HF_EPARSE, "data_offsets is not an array of two");
	refused("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"dtype is not a string");
	refused("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"the name must be 1..255 bytes");
	refused("{\"a\\u001b[31m\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		HF_EPARSE, "tensor \"a?[31m\": the name must be");
}

Test(safetensors, tiling)
{
	/* gap at the start, gap between, overlap, end before begin, data longer/shorter */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, HF_EPARSE,
		"tensor \"a\": data_offsets [4, 8] leave a gap: the data before it ends at byte 0");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, HF_EPARSE,
		"tensor \"b\": data_offsets [8, 12] leave a gap");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, HF_EPARSE,
		"tensor \"b\": data_offsets [4, 8] overlap tensor \"a\", which ends at byte 8");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, HF_EPARSE,
		"overlap tensor \"a\"");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, HF_EPARSE,
		"end before they begin");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5, HF_EPARSE,
		"the data section is 5 bytes but the tensors cover 4");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, HF_EPARSE,
		"the data section is 3 bytes but the tensors cover 4");
	refused("{}", 1, HF_EPARSE, "the data section is 1 bytes but the tensors cover 0");
}

Test(safetensors, size_mismatch_and_overflow)
{
	refused("{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12,
		HF_EPARSE, "tensor \"fc1.weight\": data_offsets [0, 12] span 12 bytes, shape "
		"[2, 3] of F32 needs 24");
	refused("{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12, HF_EPARSE,
		"shape [3] of F16 needs 6");
	/* 2^32 * 2^32 overflows; 2^62 elements of 4 bytes overflow the byte count. */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
		"\"data_offsets\":[0,0]}}", 0, HF_EPARSE, "tensor \"a\": shape overflows");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
		"\"data_offsets\":[0,0]}}", 0, HF_EPARSE, "byte size of the shape overflows");
	/* An integer past 64-bit JSON: refused by the JSON parser. */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
		"\"data_offsets\":[0,0]}}", 0, HF_EPARSE, "not valid JSON");
}

Test(safetensors, every_dtype_known_only_f32_f16_accepted)
{
	static const struct { const char *name; unsigned bytes; } dts[] = {
		{ "BOOL", 1 }, { "U8", 1 }, { "I8", 1 }, { "F8_E5M2", 1 }, { "F8_E4M3", 1 },
		{ "I16", 2 }, { "U16", 2 }, { "BF16", 2 }, { "I32", 4 }, { "U32", 4 },
		{ "F64", 8 }, { "I64", 8 }, { "U64", 8 }, { "F8_E8M0", 1 }, { "C64", 8 },
	};
	char hdr[256], words[128];

	for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
		snprintf(hdr, sizeof hdr, "{\"fc1.weight\":{\"dtype\":\"%s\",\"shape\":[2],"
			 "\"data_offsets\":[0,%u]}}", dts[i].name, 2 * dts[i].bytes);
		snprintf(words, sizeof words, "tensor \"fc1.weight\": dtype %s is not supported",
			 dts[i].name);
		refused(hdr, 2 * dts[i].bytes, HF_EUNSUPPORTED, words);
		/* A known dtype with the wrong size is malformed first. */
		snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":[2],"
			 "\"data_offsets\":[0,%u]}}", dts[i].name, 2 * dts[i].bytes + 1);
		refused(hdr, 2 * dts[i].bytes + 1, HF_EPARSE, "span");
	}
	refused("{\"x\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"tensor \"x\": unknown dtype \"F33\"");
	refused("{\"x\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HF_EPARSE,
		"unknown dtype \"f32\"");
	/* Sub-byte F4: 3 elements are not whole bytes. */
	refused("{\"x\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, HF_EPARSE,
		"do not fill whole bytes");
	accepted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
	accepted("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
}

Test(safetensors, too_many_dims)
{
	refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
		4, HF_EUNSUPPORTED, "tensor \"x\": 9 dims, at most 8");
	accepted("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
		 8);
	/* A malformed size with too many dims is still a malformed file. */
	refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,3],\"data_offsets\":[0,4]}}",
		4, HF_EPARSE, "needs 12");
}

Test(safetensors, metadata_must_be_strings)
{
	refused("{\"__metadata__\":{\"epochs\":3}}", 0, HF_EPARSE,
		"\"__metadata__\" value of \"epochs\" is not a string");
	refused("{\"__metadata__\":{\"g\":{\"a\":\"b\"}}}", 0, HF_EPARSE, "is not a string");
	refused("{\"__metadata__\":{\"g\":null}}", 0, HF_EPARSE, "is not a string");
	refused("{\"__metadata__\":[\"x\"]}", 0, HF_EPARSE, "\"__metadata__\" is not an object");
}

Test(safetensors, tensor_count_cap)
{
	const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
			  "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]},"
			  "\"__metadata__\":{}}";
	uint8_t d[8] = { 0 };
	size_t len;
	uint8_t *img = st_image(hdr, d, 8, &len);
	hf_st_limits one = { .max_tensors = 1 }, two = { .max_tensors = 2 };
	hf_st_limits file = { .max_file = 20 };
	hf_errbuf eb;
	hf_st *st;

	cr_expect_eq(hf_st_parse(img, len, &one, &st, &eb), HF_ETOOBIG);
	cr_expect(strstr(eb.msg, "2 tensors, at most 1"), "%s", eb.msg);
	cr_expect_eq(hf_st_parse(img, len, &two, &st, &eb), 0, "%s", eb.msg);
	hf_st_free(st);
	cr_expect_eq(hf_st_parse(img, len, &file, &st, &eb), HF_ETOOBIG);
	free(img);
}

Test(safetensors, open_file_and_errors_name_it)
{
	const float w[6] = { 1, 2, 3, 4, 5, 6 };
	st_spec ts[] = { { "fc1.weight", 2, { 2, 3 }, w, NULL } };
	size_t len;
	uint8_t *img = st_build(ts, 1, "{\"version\":1}", &len);
	hf_errbuf eb;
	hf_st *st;
	float got[6];
	const char *path = st_write_tmp("model.safetensors", img, len);
	hf_st_limits small = { .max_file = 16 };

	cr_assert_eq(hf_st_open(path, NULL, &st, &eb), 0, "%s", eb.msg);
	hf_st_read_f32(hf_st_find(st, "fc1.weight"), got);
	for (int i = 0; i < 6; i++)
		cr_expect_eq(got[i], w[i]);
	cr_expect_str_eq(hf_st_metadata(st, "hashflop.graph"), "{\"version\":1}");
	hf_st_free(st);

	cr_expect_eq(hf_st_open(path, &small, &st, &eb), HF_ETOOBIG);
	cr_expect(strstr(eb.msg, path) == eb.msg, "%s", eb.msg);

	/* Truncated: the last 4 bytes of data missing. */
	path = st_write_tmp("truncated.safetensors", img, len - 4);
	cr_expect_eq(hf_st_open(path, NULL, &st, &eb), HF_EPARSE);
	cr_expect_null(st);
	cr_expect(strstr(eb.msg, path) == eb.msg, "%s", eb.msg);
	cr_expect(strstr(eb.msg, "the data section is 20 bytes but the tensors cover 24"), "%s",
		  eb.msg);
	/* Truncated inside the header. */
	path = st_write_tmp("cut.safetensors", img, 30);
	cr_expect_eq(hf_st_open(path, NULL, &st, &eb), HF_EPARSE);
	cr_expect(strstr(eb.msg, "runs past the end of the file (30 bytes)"), "%s", eb.msg);
	/* Empty and 7-byte files. */
	path = st_write_tmp("empty.safetensors", img, 0);
	cr_expect_eq(hf_st_open(path, NULL, &st, &eb), HF_EPARSE);
	cr_expect(strstr(eb.msg, "empty.safetensors: file is 0 bytes"), "%s", eb.msg);
	path = st_write_tmp("seven.safetensors", img, 7);
	cr_expect_eq(hf_st_open(path, NULL, &st, &eb), HF_EPARSE);
	cr_expect(strstr(eb.msg, "seven.safetensors: file is 7 bytes"), "%s", eb.msg);
	/* BF16 through the file: names the file, the tensor and the dtype. */
	free(img);
	img = st_image("{\"emb.weight\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}",
		       "\0\0", 2, &len);
	path = st_write_tmp("bf16.safetensors", img, len);
	cr_expect_eq(hf_st_open(path, NULL, &st, &eb), HF_EUNSUPPORTED);
	cr_expect(strstr(eb.msg, "bf16.safetensors: tensor \"emb.weight\": dtype BF16 is not "
			 "supported"), "%s", eb.msg);
	free(img);
	/* Missing file (HF_EIO with the errno text), a directory. */
	cr_expect_eq(hf_st_open("/nonexistent/model.safetensors", NULL, &st, &eb), HF_EIO);
	cr_expect(strstr(eb.msg, "/nonexistent/model.safetensors: cannot open: No such file"),
		  "%s", eb.msg);
	cr_expect_eq(hf_st_open("/tmp", NULL, &st, &eb), HF_EIO);
	cr_expect(strstr(eb.msg, "not a regular file"), "%s", eb.msg);
}

Test(safetensors, free_null)
{
	hf_st_free(NULL);
	cr_expect_eq(hf_st_count(NULL), 0);
	cr_expect_null(hf_st_find(NULL, "x"));
	cr_expect_null(hf_st_metadata(NULL, "x"));
}
