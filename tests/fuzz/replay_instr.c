/* replay_instr: runs the fuzz_instr target without libFuzzer, over the files given and then a
 * fixed number of deterministic mutations of built-in seeds, so gcc builds and CI exercise it.
 * Threading: single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define P "{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1700000000000," \
	"\"expires_ms\":1700000600000,\"mode\":"

/* First byte: 0 envelope, 1 payload, 2 signed-then-verified payload (see fuzz_instr.c). */
static const char *const seeds[] = {
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

static uint32_t state = 0x9e3779b9u;

static uint32_t next(void)
{
	state ^= state << 13;
	state ^= state >> 17;
	state ^= state << 5;
	return state;
}

static size_t mutate(uint8_t *buf, size_t n, size_t cap)
{
	for (uint32_t k = next() % 6; k > 0 && n > 1; k--) {
		size_t at = 1 + next() % (n - 1);
		switch (next() % 5) {
		case 0: buf[at] = (uint8_t)next(); break;
		case 1: buf[at] = (uint8_t)"{}[]\",:0-9e.*="[next() % 14]; break;
		case 2:
			if (n < cap) {
				memmove(buf + at + 1, buf + at, n - at);
				buf[at] = (uint8_t)"0\"\\ua"[next() % 5];
				n++;
			}
			break;
		case 3: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
		default: buf[0] = (uint8_t)next(); break;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	static uint8_t buf[20000];
	long iters = argc > 1 ? 0 : 20000;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;
		if (!f) {
			fprintf(stderr, "replay_instr: cannot open %s\n", argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	for (long it = 0; it < iters; it++) {
		const char *seed = seeds[next() % (sizeof seeds / sizeof seeds[0])];
		size_t n = strlen(seed + 1) + 1;
		memcpy(buf, seed, n);
		n = mutate(buf, n, sizeof buf);
		LLVMFuzzerTestOneInput(buf, n);
	}
	/* the size cap's edges: just under and over 16 KiB of envelope */
	for (size_t n = 16380; n <= 16390; n++) {
		memset(buf, ' ', n);
		buf[0] = 0;
		buf[1] = '{';
		buf[n - 1] = '}';
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("replay_instr: %ld mutated inputs and %d files ran clean\n", iters, argc - 1);
	return 0;
}
