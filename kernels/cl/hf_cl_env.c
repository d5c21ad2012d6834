/* hf_cl_env: POCL_AFFINITY and POCL_CACHE_DIR set once, before threads (see hf_cl_env.h).
 *
 * Invariants: a variable already in the environment is never changed; nothing here runs after
 * the caller's first thread starts (the caller's promise), and nothing else in kernels/cl writes
 * the environment.
 * Threading: main() only, before any thread starts.
 */
#include "hf_cl_env.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hf_file.h"

bool hf_cl_env_owns_all_cpus(void)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	if (online <= 0 || sched_getaffinity(0, sizeof set, &set) != 0)
		return false;
	return CPU_COUNT(&set) == online;
}

/* POCL_AFFINITY: PoCL's CPU device runs one worker thread per core. Unpinned, the scheduler
 * sometimes leaves two workers on one core for a whole process: measured on the 2-core Zen 3
 * development machine, M = 1 GEMV ran at 7 instead of 12 GFLOP/s in about one process out of
 * three, and never with the workers pinned. */
int hf_cl_env_init(const char *cache_dir, hf_errbuf *eb)
{
	char path[PATH_MAX];
	int r;

	hf_errbuf_clear(eb);
	if (!getenv("POCL_AFFINITY") && hf_cl_env_owns_all_cpus())
		setenv("POCL_AFFINITY", "1", 0);
	if (!cache_dir || !*cache_dir || getenv("POCL_CACHE_DIR"))
		return 0;
	if ((size_t)snprintf(path, sizeof path, "%s/pocl", cache_dir) >= sizeof path)
		return hf_fail(eb, HF_ETOOBIG, "PoCL cache directory %s/pocl: path too long",
			       cache_dir);
	r = hf_mkdir_p(path, 0755, eb);
	if (r)
		return hf_fail_prefix(eb, r, "PoCL cache directory");
	if (setenv("POCL_CACHE_DIR", path, 0) != 0)
		return hf_fail(eb, HF_ENOMEM, "setenv POCL_CACHE_DIR: out of memory");
	return 0;
}
