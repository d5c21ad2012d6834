/* cpuinfo_testutil: the "flags" line of /proc/cpuinfo (see cpuinfo_testutil.h).
 * Threading: reentrant. */
#include "cpuinfo_testutil.h"

#include <stdio.h>
#include <string.h>

int hf_test_cpuinfo_has(const char *flag)
{
	char line[8192], *save = NULL;
	FILE *f = fopen("/proc/cpuinfo", "r");
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		char *p = strchr(line, ':');
		if (strncmp(line, "flags", 5) != 0 || !p)
			continue;
		for (char *tok = strtok_r(p + 1, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
			if (strcmp(tok, flag) == 0)
				found = 1;
		break;
	}
	fclose(f);
	return found;
}
