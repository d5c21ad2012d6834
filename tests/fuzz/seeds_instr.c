/* seeds_instr: starting inputs for fuzz_instr's replay run, and the envelope size cap's edges.
 * Threading: read-only data.
 */
#include <stdint.h>
#include <string.h>

#include "hf_fuzz_replay.h"

#define P "{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1700000000000," \
	"\"expires_ms\":1700000600000,\"mode\":"

/* First byte: 0 envelope, 1 payload, 2 signed-then-verified payload (see fuzz_instr.c). */
const char *const hf_fuzz_seeds[] = {
	"\x02" P "\"idle\"}",
	"\x05" P "\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:3333\",\"user\":\"u\","
	"\"pass\":\"x\"}]},\"reason\":{\"p\":[1,2.5,null]}}",
	"\x42" P "\"inference\",\"inference\":{\"models\":[\"a\",\"b\"]},\"hold_until_ms\":1700000300000}",
	"\x0e" P "\"idle\"}",
	"\x01" P "\"idle\",\"hold_until_ms\":5}",
	"\x00{\"payload\":\"eyJ2IjoxfQ\",\"signatures\":[{\"keyid\":\"0123456789abcdef\",\"sig\":"
	"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
	"\x03{\"payload\":\"e30\",\"signatures\":[]}",
	/* signed by fuzz_instr.c's operator key (seed 32 x 0x11): accepted as it stands */
	"\x03{\"payload\":\"eyJ2IjoxLCJmbGVldCI6ImYxIiwibm9kZSI6Im4xIiwiaXNzdWVkX21zIjoxNzAwMDAwMDAwMDAw"
	"LCJleHBpcmVzX21zIjoxNzAwMDAwNjAwMDAwLCJtb2RlIjoiaWRsZSJ9\",\"signatures\":[{\"keyid\":"
	"\"10ba682c8ad13513\",\"sig\":\"_RZYHKW5dCJAzKYkNPJ6WGcW4t_jcbR92lnYfOOebgdTTo0BgHPqM9tR-QX9A"
	"28SpOHh3wO_PclH1MiUHo-VBw\"}]}",
};
const size_t hf_fuzz_nseeds = sizeof hf_fuzz_seeds / sizeof hf_fuzz_seeds[0];

void hf_fuzz_extra(uint8_t *buf, size_t cap)
{
	/* just under and over 16 KiB of envelope */
	for (size_t n = 16380; n <= 16390 && n <= cap; n++) {
		memset(buf, ' ', n);
		buf[0] = 0;
		buf[1] = '{';
		buf[n - 1] = '}';
		LLVMFuzzerTestOneInput(buf, n);
	}
}
