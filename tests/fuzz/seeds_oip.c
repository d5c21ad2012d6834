/* seeds_oip: starting inputs for fuzz_oip's replay run (see fuzz_oip.c for the first two
 * bytes), and inputs with NUL bytes (binary data) and at the caps' edges.
 * Threading: read-only data.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hf_fuzz_replay.h"

const char *const hf_fuzz_seeds[] = {
	/* JSON only, flat FP32 with the non-finite spellings, id, one output */
	"@\x01{\"id\":\"42\",\"inputs\":[{\"name\":\"input0\",\"shape\":[2,2],\"datatype\":\"FP32\""
	",\"data\":[1,2.5,\"NaN\",\"-Inf\"]}],\"outputs\":[{\"name\":\"output0\"}]}",
	/* nested data, two inputs, other datatypes */
	"A\x01{\"inputs\":[{\"name\":\"a\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2,3],"
	"[4,0.005,-6]]},{\"name\":\"b\",\"shape\":[1,2,2],\"datatype\":\"INT32\",\"data\":[[[1,-2],"
	"[3,4]]]},{\"name\":\"c\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]},{\"nam"
	"e\":\"d\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"hi\"]}]}",
	/* binary FP32 (1.1, a NaN) with binary outputs for all; header = body - 8 */
	"\xc0\x08{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":{"
	"\"binary_data_size\":8}}],\"parameters\":{\"binary_data_output\":true}}\xcd\xcc\x8c\?\x11"
	"\x11\xc1\x7f",
	/* mixed JSON and binary inputs, UINT8 and FP32 binary, an output asked binary */
	"\xc1\x07{\"id\":\"r\\u00e9q\",\"inputs\":[{\"name\":\"u\",\"shape\":[3],\"datatype\":\"UIN"
	"T8\",\"parameters\":{\"binary_data_size\":3}},{\"name\":\"j\",\"shape\":[1],\"datatype\":"
	"\"FP32\",\"data\":[0.25]},{\"name\":\"f\",\"shape\":[1,1],\"datatype\":\"FP32\",\"paramete"
	"rs\":{\"binary_data_size\":4}}],\"outputs\":[{\"name\":\"f\",\"parameters\":{\"binary_data"
	"\":true}},{\"name\":\"j\"}]}\x01\x02\x03\xcd\xcc\x8c\xbf",
	/* an explicit header length (mode 00) of the JSON part */
	"\x00[{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":{\"bi"
	"nary_data_size\":4}}]}AAAA",
	/* a raw header text that is not a number (mode 10) */
	"\x80\x03" "12a{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1"
	"]}]}",
	/* strict keys: an unknown key in an output */
	"@\x01{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],\"out"
	"puts\":[{\"name\":\"y\",\"classification\":3}]}",
	/* shape edge: a zero dimension, nested empty lists */
	"@\x01{\"inputs\":[{\"name\":\"x\",\"shape\":[2,0],\"datatype\":\"FP32\",\"data\":[[],[]]},"
	"{\"name\":\"s\",\"shape\":[],\"datatype\":\"FP64\",\"data\":[\"Infinity\"]}]}",
};
const size_t hf_fuzz_nseeds = sizeof hf_fuzz_seeds / sizeof hf_fuzz_seeds[0];

/* Runs b0 b1 json bin (binlen bytes) padded with spaces inside the JSON to json_len bytes
 * (0: as it is), when it fits cap. */
static void run(uint8_t *buf, size_t cap, uint8_t b0, uint8_t b1, const char *json,
		size_t json_len, const void *bin, size_t binlen)
{
	size_t n = strlen(json), jl = json_len > n ? json_len : n;

	if (2 + jl + binlen > cap)
		return;
	buf[0] = b0;
	buf[1] = b1;
	memcpy(buf + 2, json, n);
	memset(buf + 2 + n, ' ', jl - n);
	if (binlen)
		memcpy(buf + 2 + jl, bin, binlen);
	LLVMFuzzerTestOneInput(buf, 2 + jl + binlen);
}

void hf_fuzz_extra(uint8_t *buf, size_t cap)
{
	static const uint8_t bytes_bin[] = { 3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0 };
	/* Inf, -0, the smallest subnormal, FLT_MAX, little-endian, at an odd offset */
	static const uint8_t fp_bin[] = { 0, 0, 0x80, 0x7f, 0, 0, 0, 0x80, 1, 0, 0, 0,
		0xff, 0xff, 0x7f, 0x7f };
	static const char one[] = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
		"\"data\":[1]}]}";
	char json[2048];

	run(buf, cap, 0xc0, sizeof bytes_bin, "{\"inputs\":[{\"name\":\"b\",\"shape\":[2],"
	    "\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":11}}]}", 0, bytes_bin,
	    sizeof bytes_bin);
	run(buf, cap, 0xc0, sizeof fp_bin, "{\"inputs\":[{\"name\":\"f\",\"shape\":[2,2],"
	    "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":16}}]} ", 0, fp_bin,
	    sizeof fp_bin);
	/* the JSON cap (2048 in fuzz_oip.c) from both sides */
	for (size_t jl = 2046; jl <= 2050; jl++)
		run(buf, cap, 0x40, 1, one, jl, NULL, 0);
	/* 64 elements per tensor and 128 per request (a + 64 + 1) from both sides */
	for (int n = 63; n <= 66; n++) {
		size_t o = (size_t)snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"a\","
					    "\"shape\":[%d],\"datatype\":\"FP32\",\"data\":[0", n);
		for (int k = 1; k < n; k++)
			o += (size_t)snprintf(json + o, sizeof json - o, ",%d", k);
		snprintf(json + o, sizeof json - o, "]},{\"name\":\"b\",\"shape\":[64],"
			 "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":256}},{\"name\":"
			 "\"c\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[-0.0]}]}");
		/* the binary tail: 256 zero bytes; the header (mode 00) gives the JSON length */
		o = strlen(json);
		if (2 + o + 256 <= cap) {
			buf[0] = (uint8_t)(o >> 8 & 0x3f);
			buf[1] = (uint8_t)(o & 0xff);
			memcpy(buf + 2, json, o);
			memset(buf + 2 + o, 0, 256);
			LLVMFuzzerTestOneInput(buf, 2 + o + 256);
		}
	}
}
