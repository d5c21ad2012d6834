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

int hf_bench_gemm_run(int argc, char **argv, hf_bench_meter *shared,
		      const hf_bench_common *shared_c, json_t *sections)
{
	(void)shared;
	(void)shared_c;
	(void)sections;
	return hf_bench_gemm_main(argc, argv);
}

void hf_bench_gemm_pick_openblas(char **argv_full)
{
	(void)argv_full;
}
