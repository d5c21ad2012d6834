/* bench_hash: `hashflop-bench hash` (SHA-256d kernels issue). Not built yet: refuses clearly. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_hash_main(int argc, char **argv)
{
	fprintf(stderr, "hashflop-bench hash: the SHA-256d kernels are not part of this build yet\n");
	return 2;
}
