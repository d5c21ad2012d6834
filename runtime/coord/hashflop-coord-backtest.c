/* hashflop-coord backtest: placeholder until issue 15's backtest work lands (replaced by its owner). */
#include <stdio.h>

#include "hashflop_coord_cmd.h"

int hf_coord_cmd_backtest(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "hashflop-coord %s: not built yet\n", argv[0]);
	return 2;
}
