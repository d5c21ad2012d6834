/* hashflop-coord series_gen: placeholder until issue 15's series work lands (replaced by its owner). */
#include <stdio.h>

#include "hashflop_coord_cmd.h"

int hf_coord_cmd_series_gen(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "hashflop-coord %s: not built yet\n", argv[0]);
	return 2;
}
