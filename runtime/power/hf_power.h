/* hf_power: where the watts come from: one interface over the measured power sources (RAPL
 * through powercap sysfs, hwmon, NVML loaded with dlopen at run time) and a labelled estimate,
 * read as a cumulative energy counter, so that the energy over a window is a difference of two
 * readings, never an average of samples.
 *
 * A source is one kind with one or more domains:
 * - rapl:     every package domain (intel-rapl:N, and AMD's, same sysfs) and, unless
 *             include_dram is false, their dram subdomains, read from energy_uj; a counter that
 *             went backwards wrapped at max_energy_range_uj and is corrected. An energy_uj
 *             readable by root only (kernels >= 5.10) is skipped with a message that says so.
 *             Boundary "package" (or "package+dram").
 * - hwmon:    every hwmon chip channel energyN_input (uJ, a counter) or, without one,
 *             powerN_average / powerN_input (uW, integrated). Boundary "chip" (what the chip
 *             measures: its name is in the detail).
 * - nvml:     libnvidia-ml.so.1 (or opts.nvml_library) through dlopen, never a build
 *             dependency: per GPU nvmlDeviceGetTotalEnergyConsumption (mJ) where supported, else
 *             nvmlDeviceGetPowerUsage (mW) integrated; only the GPU whose PCI bus id matches
 *             opts.pci_bus_id when one is given (e.g. from the OpenCL device), else every GPU.
 *             Boundary "board".
 * - estimate: idle_w + (full_w - idle_w) * utilisation, integrated; utilisation from
 *             opts.utilisation, or else this process's CPU time / (wall time * online CPUs).
 *             Always labelled estimated. Boundary "estimate".
 * HF_POWER_AUTO picks nvml when opts.pci_bus_id is set and that GPU is found, else the first of
 * rapl, hwmon with a readable domain, else the estimate; hf_power_problems() tells why each
 * measured kind before the chosen one was passed over.
 *
 * Counter domains are read at every hf_power_read() and by the sampler; power-only domains and
 * the estimate are integrated (trapezoids) by the sampler every sample_interval_ms and at each
 * read. The sampler thread also keeps a wrapping counter from being missed (a RAPL package
 * wraps after minutes at full load). A domain whose read fails after it opened keeps its last
 * energy, is counted in read_errors and named in the detail; the reading says degraded.
 *
 * Paths: every sysfs path is under opts.sysfs_root (default "/sys"), so tests build trees;
 * the NVML library path is opts.nvml_library (default "libnvidia-ml.so.1"), so tests load a
 * fake one through the same dlopen path.
 * Threading: an hf_power is owned by its creator; hf_power_read, the info calls and the limit
 * calls are safe from any thread (one internal lock); one sampler thread per hf_power.
 */
#ifndef HF_POWER_H
#define HF_POWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

typedef enum hf_power_kind {
	HF_POWER_AUTO = 0,
	HF_POWER_RAPL,
	HF_POWER_HWMON,
	HF_POWER_NVML,
	HF_POWER_ESTIMATE,
} hf_power_kind;

/* "auto", "rapl", "hwmon", "nvml", "estimate". */
const char *hf_power_kind_name(hf_power_kind k);
bool hf_power_kind_parse(const char *s, hf_power_kind *out);

typedef struct hf_power hf_power;

typedef struct hf_power_opts {
	hf_power_kind kind;          /* AUTO: see the top comment */
	const char *sysfs_root;      /* NULL: "/sys" */
	const char *nvml_library;    /* NULL: "libnvidia-ml.so.1" */
	const char *pci_bus_id;      /* NULL or "": no GPU named (NVML: every GPU) */
	bool exclude_dram;           /* rapl: package domains only */
	unsigned sample_interval_ms; /* sampler period (0: 100) */
	/* estimate */
	double idle_w, full_w;       /* both 0: hf_power_estimate_default() for this machine */
	double (*utilisation)(void *ctx); /* 0..1 (NULL: this process's CPU share); called from
					   * the sampler thread and from readers, under the
					   * source's lock: thread-safe, never calls hf_power */
	void *utilisation_ctx;
} hf_power_opts;

typedef struct hf_power_reading {
	uint64_t mono_ns;            /* CLOCK_MONOTONIC when read */
	double energy_j;             /* since hf_power_open, every domain, never decreasing */
	double watts;                /* average over the last sampler interval */
	bool estimated;              /* the estimate: no measured watts at all */
	bool degraded;               /* a domain failed to read since open (see detail) */
} hf_power_reading;

/* Opens a source. HF_ENOTFOUND when the kind asked for has no readable domain (eb says what
 * was tried and why, e.g. "rapl: /sys/class/powercap/intel-rapl:0/energy_uj is readable by
 * root only"); HF_EUNSUPPORTED for nvml when the library cannot be loaded. AUTO never fails
 * for want of hardware: it falls back to the estimate. */
int hf_power_open(const hf_power_opts *opts, hf_power **out, hf_errbuf *eb);
/* Reads the counters now. */
void hf_power_read(hf_power *p, hf_power_reading *out);
/* The chosen kind (never AUTO). */
hf_power_kind hf_power_kind_of(const hf_power *p);
/* "package", "package+dram", "chip", "board", "estimate". */
const char *hf_power_boundary(const hf_power *p);
/* One line naming the domains read and how, e.g. "intel-rapl:0 package-0 (energy_uj),
 * intel-rapl:0:0 dram (energy_uj)", "nvml GPU 0 NVIDIA H200 00000000:19:00.0 (total energy)",
 * "estimate 40 W idle, 280 W full (default for 2 CPUs: see runtime/power/README.md)". */
const char *hf_power_detail(const hf_power *p);
/* Why measured kinds were passed over ("" when none was): "rapl: ...; hwmon: ...". */
const char *hf_power_problems(const hf_power *p);
size_t hf_power_domain_count(const hf_power *p);
uint64_t hf_power_read_errors(const hf_power *p);
/* Stops the sampler, unloads NVML, frees. NULL accepted. */
void hf_power_free(hf_power *p);

/* Energy, time and mean power between two readings of one source (b after a). */
typedef struct hf_power_window {
	double joules, seconds, watts;
} hf_power_window;
void hf_power_window_of(const hf_power_reading *a, const hf_power_reading *b, hf_power_window *w);

/* ---- power limits (NVML as root; every other kind answers HF_EUNSUPPORTED) ---- */
/* The board limit range and the limit in force, in watts, per GPU (with several GPUs: the
 * range every one accepts and the highest limit in force). */
int hf_power_limit_get(hf_power *p, double *min_w, double *max_w, double *cur_w, hf_errbuf *eb);
/* Sets the limit of every GPU of the source to watts (per GPU). HF_EREFUSED without the
 * permission (not root), HF_ERANGE outside [min, max] (nothing set then). */
int hf_power_limit_set(hf_power *p, double watts, hf_errbuf *eb);

/* ---- estimate defaults (their sources are in runtime/power/README.md) ---- */
/* Default idle and full-load watts for a device: an OpenCL device name containing "H100" or
 * "H200" (SXM: 700 W board limit), else CPUs: ncpus logical CPUs at a per-core figure. *why
 * (may be NULL) gets a static text naming the figure used. */
void hf_power_estimate_default(const char *device_name, unsigned ncpus, double *idle_w,
			       double *full_w, const char **why);

#endif
