/* hashflop-coord feed_server: placeholder until issue 15's feedsrv work lands (replaced by its owner). */
#include <stdio.h>

#include "hashflop_coord_cmd.h"

int hf_coord_cmd_feed_server(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "hashflop-coord %s: not built yet\n", argv[0]);
	return 2;
}
