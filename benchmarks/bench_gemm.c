/* bench_gemm: `hashflop-bench gemm` (OpenCL GEMM issue). Not built yet: refuses clearly. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_gemm_main(int argc, char **argv)
{
	fprintf(stderr, "hashflop-bench gemm: the OpenCL GEMM engine is not part of this build yet\n");
	return 2;
}
