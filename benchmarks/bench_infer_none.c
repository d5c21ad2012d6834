/* bench_infer_none: `hashflop-bench infer` in a build without OpenCL (meson picks this file
 * instead of bench_infer.c): refuses clearly, naming what is missing.
 * Threading: none. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_infer_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "hashflop-bench infer: not built: this build lacks OpenCL (install "
			"ocl-icd-opencl-dev and pocl-opencl-icd, then reconfigure)\n");
	return 2;
}
