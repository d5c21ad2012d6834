/* bench_coord_none: `hashflop-bench coord` in a build without the coordinator's store (meson
 * picks this file instead of bench_coord*.c): refuses clearly, naming what is missing.
 * Threading: none. */
#include <stdio.h>

#include "hf_bench.h"

int hf_bench_coord_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "hashflop-bench coord: not built: this build lacks the coordinator's store "
			"(runtime/coord, libsqlite3-dev)\n");
	return 2;
}
