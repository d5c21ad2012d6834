/* replay_main: runs a libFuzzer target without libFuzzer (see hf_fuzz_replay.h): the files
 * given, then 20,000 deterministic mutations of the target's seeds, then its edge inputs.
 * Threading: single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_fuzz_replay.h"

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
		case 1: buf[at] = (uint8_t)"{}[]\",:0-9e.*=\n"[next() % 15]; break;
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
			fprintf(stderr, "%s: cannot open %s\n", argv[0], argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	for (long it = 0; it < iters; it++) {
		const char *seed = hf_fuzz_seeds[next() % hf_fuzz_nseeds];
		size_t n = strlen(seed + 1) + 1;
		memcpy(buf, seed, n);
		n = mutate(buf, n, sizeof buf);
		LLVMFuzzerTestOneInput(buf, n);
	}
	hf_fuzz_extra(buf, sizeof buf);
	printf("%s: %ld mutated inputs and %d files ran clean\n", argv[0], iters, argc - 1);
	return 0;
}
