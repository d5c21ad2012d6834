/* replay_main: runs a libFuzzer target without libFuzzer (see hf_fuzz_replay.h): the files
 * given, then 20,000 deterministic mutations of the target's seeds, then its edge inputs.
 * With --write-seeds DIR it only writes the seeds into DIR, one file each, as the starting
 * corpus of the libFuzzer binary (run-fuzz).
 * Threading: single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Writes seed i as DIR/seed-<i> (its length as hf_fuzz_replay.h says); 0 or 1. */
static int write_seeds(const char *prog, const char *dir)
{
	char path[4096];
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create %s: %s\n", prog, dir, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < hf_fuzz_nseeds; i++) {
		const char *seed = hf_fuzz_seeds[i];
		size_t n = strlen(seed + 1) + 1;
		FILE *f;
		int ok;
		snprintf(path, sizeof path, "%s/seed-%02zu", dir, i);
		f = fopen(path, "wb");
		ok = f && fwrite(seed, 1, n, f) == n;
		if (f && fclose(f) != 0)
			ok = 0;
		if (!ok) {
			fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
			return 1;
		}
	}
	printf("%s: %zu seeds written to %s\n", prog, hf_fuzz_nseeds, dir);
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t buf[20000];
	long iters = argc > 1 ? 0 : 20000;

	if (argc > 1 && strcmp(argv[1], "--write-seeds") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: %s --write-seeds DIR\n", argv[0]);
			return 2;
		}
		return write_seeds(argv[0], argv[2]);
	}

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
