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

int hf_bench_infer_run(int argc, char **argv, hf_bench_meter *shared,
		       const hf_bench_common *shared_c, json_t *sections)
{
	(void)shared;
	(void)shared_c;
	(void)sections;
	return hf_bench_infer_main(argc, argv);
}
