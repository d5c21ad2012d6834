/* bench_gemm_none: `hashflop-bench gemm` in a build without OpenCL or OpenBLAS (meson picks this
 * file instead of bench_gemm.c): refuses clearly, naming what is missing.
 * Threading: none. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_gemm_main(int argc, char **argv)
{
	fprintf(stderr, "hashflop-bench gemm: not built: this build lacks OpenCL or OpenBLAS (install "
			"ocl-icd-opencl-dev and libopenblas-dev, then reconfigure)\n");
	return 2;
}
