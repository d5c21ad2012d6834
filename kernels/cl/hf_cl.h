/* hf_cl: OpenCL device discovery with a stable selector syntax, one context + in-order queue per
 * opened device, and program building through a persistent binary cache.
 *
 * Selectors (hf_cl_open, hf_cl_find): NULL, "" or "auto" = the first GPU, else the first device;
 * "P:D" = platform index P, device index D (as `hashflopctl devices` lists them);
 * "pocl", "nvidia", "amd", "intel" = the first device of a platform whose name or vendor
 * contains that word; any other string = the first device whose name contains it
 * (case-insensitive). An unmatched selector is HF_ENOTFOUND with the list of devices in eb.
 *
 * Program cache: binaries are stored under opts.cache_dir keyed by SHA-256 over (platform name,
 * device name, driver version, source, build options); a hit skips the compiler. The build log
 * of a compile from source is kept (the first 1 MiB, with a note when cut) and, on failure,
 * its first error line onwards is given in eb.
 * Environment: hf_cl never writes it. PoCL's settings (POCL_AFFINITY, POCL_CACHE_DIR) are set
 * by hf_cl_env_init() (hf_cl_env.h), which every program calls at the top of main() before it
 * starts threads.
 * "No device" means none exists: HF_ENOTFOUND from hf_cl_find("auto") or an empty hf_cl_list
 * only when no platform reports a device; a platform whose driver fails is HF_ECL when no other
 * platform has a device.
 * Threading: an hf_cl handle and its queue are used by one thread at a time; distinct handles
 * may be used concurrently. hf_cl_list is reentrant.
 */
#ifndef HF_CL_H
#define HF_CL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_cl_env.h"
#include "hf_error.h"

typedef struct hf_cl_device_info {
	char selector[16];        /* "P:D" */
	char platform[128];
	char platform_vendor[128];
	char name[128];
	char vendor[128];
	char driver_version[64];
	char version[64];         /* CL_DEVICE_VERSION */
	bool is_gpu;
	unsigned compute_units;
	unsigned clock_mhz;
	uint64_t global_mem_bytes;
	uint64_t local_mem_bytes;
	uint64_t max_alloc_bytes;
	size_t max_work_group_size;
	bool fp16;                /* cl_khr_fp16 */
	bool fp64;                /* cl_khr_fp64 */
	/* GPUs: the PCI address "DDDDDDDD:BB:DD.F" (as NVML prints it) from cl_khr_pci_bus_info or
	 * NVIDIA's cl_nv_device_attribute_query; "" when the device does not say (CPU devices). */
	char pci_bus_id[32];
} hf_cl_device_info;

typedef struct hf_cl_opts {
	const char *cache_dir;    /* NULL: no persistent cache */
	bool profiling;           /* CL_QUEUE_PROFILING_ENABLE */
} hf_cl_opts;

typedef struct hf_cl hf_cl;

/* Lists every device of every platform (up to max); *n is the total found (0 with no platform
 * or device; HF_ECL when a platform's driver fails and no platform has a device). */
int hf_cl_list(hf_cl_device_info *out, size_t max, size_t *n, hf_errbuf *eb);
/* Resolves a selector without opening the device. */
int hf_cl_find(const char *selector, hf_cl_device_info *out, hf_errbuf *eb);
/* Opens a context and an in-order queue on the selected device. */
int hf_cl_open(const char *selector, const hf_cl_opts *opts, hf_cl **out, hf_errbuf *eb);
void hf_cl_free(hf_cl *cl);

cl_context hf_cl_context(const hf_cl *cl);
cl_command_queue hf_cl_queue(const hf_cl *cl);
cl_device_id hf_cl_device(const hf_cl *cl);
const hf_cl_device_info *hf_cl_info(const hf_cl *cl);

/* Builds (or loads from the cache) a program from source with options. On a compiler error the
 * build log is in eb. *cache_hit (may be NULL) tells whether the binary came from the cache. */
int hf_cl_build(hf_cl *cl, const char *source, size_t len, const char *options,
		cl_program *out, bool *cache_hit, hf_errbuf *eb);

/* The cache directory given to hf_cl_open, or NULL. */
const char *hf_cl_cache_dir(const hf_cl *cl);
/* The log of the handle's last compile from source ("" when none or empty): the first 1 MiB,
 * then "[build log truncated: K of N bytes kept]" when longer. */
const char *hf_cl_build_log(const hf_cl *cl);

/* "CL_OUT_OF_RESOURCES" etc. for an OpenCL status code. */
const char *hf_cl_strerror(cl_int status);

#endif
