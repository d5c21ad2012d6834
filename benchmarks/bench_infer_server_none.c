/* bench_infer_server_none: hf_bench_infer_server() in a tree without bench_infer_server.c
 * (meson picks this file when that one is absent): says so and adds nothing to the report.
 * Threading: none. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_infer_server(const hf_bench_infer_server_opts *o, json_t *report)
{
	(void)o;
	(void)report;
	fprintf(stderr, "hashflop-bench infer: the server sections are not built in this tree "
			"(no benchmarks/bench_infer_server.c); use --no-server\n");
	return -1;
}
