/* hf_cl_env: the process environment the OpenCL drivers read when they start, set once at the
 * top of main() before any thread exists, so that no hf_cl call ever writes the environment.
 *
 * PoCL (the CPU device) reads its settings with getenv() when it initialises, at the first
 * OpenCL call of the process; setenv() while another thread calls getenv() (curl, OpenSSL,
 * the C library's time zone code...) is a data race in glibc. So programs call
 * hf_cl_env_init() first thing in main(), and hf_cl itself never calls setenv().
 *
 * What it sets, each only when the variable is unset (an operator's choice always wins):
 * - POCL_AFFINITY=1 when the process may run on every online CPU (PoCL then pins one worker
 *   thread per core; unpinned, the scheduler sometimes stacks two workers on one core for a
 *   whole run). A process restricted to a subset of the CPUs (taskset, cgroup cpusets,
 *   systemd CPUAffinity=) is left unpinned, since PoCL would pin workers to CPUs outside it.
 * - POCL_CACHE_DIR=<cache_dir>/pocl when cache_dir is given (the directory is created), so
 *   PoCL's per-local-size machine code survives restarts next to hf_cl's binary cache.
 *   Without it PoCL uses its default ($XDG_CACHE_HOME/pocl/kcache, ~/.cache/pocl/kcache, or
 *   /tmp/POCL_CACHE without a home directory).
 * This module needs no OpenCL headers: it is built in every configuration, so programs call it
 * unconditionally.
 * Threading: call from main() before the process starts threads (libraries that start worker
 * threads at load, such as OpenBLAS, do not read these variables); not reentrant.
 */
#ifndef HF_CL_ENV_H
#define HF_CL_ENV_H

#include <stdbool.h>

#include "hf_error.h"

/* Sets the variables above. cache_dir may be NULL or "" (PoCL's default cache). Returns 0, or
 * HF_EIO / HF_ETOOBIG when the PoCL cache directory cannot be made (POCL_CACHE_DIR is then
 * left unset; POCL_AFFINITY is set regardless): the caller may log it and carry on. */
int hf_cl_env_init(const char *cache_dir, hf_errbuf *eb);

/* Whether this process may run on every online CPU (the POCL_AFFINITY rule above). */
bool hf_cl_env_owns_all_cpus(void);

#endif
