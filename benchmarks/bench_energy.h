/* bench_energy: what every hashflop-bench run shares: the options of the run (seconds, warm-up,
 * --json FILE, the power source, --power-limits), one hf_power source opened once per run, the
 * measured phases (a warm-up excluded from a steady-state window; rate and energy from that
 * same window: energy = the difference of two hf_power_read() around it), a sampler's time
 * series (watts and the current phase's rate every --sample-ms) and the run document
 * (--json FILE, read by `hashflop-bench report`).
 *
 * Invariants: a window's joules, seconds and watts come from two readings of the one source of
 * the run; every window and every printed efficiency carries the source, the boundary and
 * whether the watts are estimated. One phase at a time.
 * Threading: the meter is owned by the run's main thread; hf_bench_phase_add() may be called
 * from any thread (an atomic counter); the sampler is the meter's own thread.
 */
#ifndef HF_BENCH_ENERGY_H
#define HF_BENCH_ENERGY_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf_power.h"

#define HF_BENCH_MAX_LIMITS 16

/* The options every subcommand (and `all`) takes, parsed by hf_bench_common_option(). */
typedef struct hf_bench_common {
	double seconds;            /* steady-state window per implementation/shape (0: default) */
	double warmup;             /* warm-up before each window, excluded (< 0: default) */
	const char *json_file;     /* --json FILE: the run document */
	bool json_stdout;          /* bare --json (hash, gemm): the legacy document on stdout */
	hf_power_kind power_kind;
	const char *sysfs_root, *nvml_library, *pci_bus_id;
	double idle_w, full_w;     /* estimate model (0/0: hf_power_estimate_default) */
	unsigned sample_ms;        /* time series period (250) */
	double limits[HF_BENCH_MAX_LIMITS];
	size_t nlimits;            /* --power-limits */
} hf_bench_common;

/* getopt codes of the shared options (above any subcommand's own). */
enum {
	HF_BO_WARMUP = 1000, HF_BO_JSON, HF_BO_POWER_SOURCE, HF_BO_SYSFS_ROOT, HF_BO_NVML_LIBRARY,
	HF_BO_PCI_BUS_ID, HF_BO_IDLE_W, HF_BO_FULL_W, HF_BO_SAMPLE_MS, HF_BO_POWER_LIMITS,
};
/* The shared long options, to put in a subcommand's struct option table (--seconds and --json
 * stay the subcommand's: their defaults and forms differ). */
#define HF_BENCH_COMMON_LONGOPTS                                                   \
	{ "warmup", required_argument, NULL, HF_BO_WARMUP },                       \
	{ "power-source", required_argument, NULL, HF_BO_POWER_SOURCE },           \
	{ "sysfs-root", required_argument, NULL, HF_BO_SYSFS_ROOT },               \
	{ "nvml-library", required_argument, NULL, HF_BO_NVML_LIBRARY },           \
	{ "pci-bus-id", required_argument, NULL, HF_BO_PCI_BUS_ID },               \
	{ "idle-w", required_argument, NULL, HF_BO_IDLE_W },                       \
	{ "full-w", required_argument, NULL, HF_BO_FULL_W },                       \
	{ "sample-ms", required_argument, NULL, HF_BO_SAMPLE_MS },                 \
	{ "power-limits", required_argument, NULL, HF_BO_POWER_LIMITS }

/* The help text of the shared options. */
extern const char hf_bench_common_help[];

void hf_bench_common_init(hf_bench_common *c);
/* Handles one shared option (code from getopt_long, arg its optarg); false when code is not
 * one. A bad value prints "hashflop-bench CMD: --opt: ..." to stderr and sets *bad. */
bool hf_bench_common_option(const char *cmd, int code, const char *arg, hf_bench_common *c,
			    bool *bad);
/* --seconds S: 0 < S <= 3600; false (and a message) otherwise. */
bool hf_bench_parse_seconds(const char *cmd, const char *opt, const char *arg, double *out);
/* --json in hash and gemm: bare (stdout, the legacy document) or --json FILE / --json=FILE
 * (the run document); consumes argv[optind] as FILE when it does not start with '-'. */
void hf_bench_json_option(int argc, char **argv, const char *arg, hf_bench_common *c);

/* The PCI bus id of an OpenCL device as NVML writes it ("00000000:19:00.0"), from
 * cl_khr_pci_bus_info or NVIDIA's CL_DEVICE_PCI_*_NV; false when the driver tells neither. */
bool hf_bench_cl_pci_bus_id(const char *selector, char *out, size_t size);

typedef struct hf_bench_meter hf_bench_meter;

/* Opens the run's power source (pci_bus_id: the GPU to match when c->pci_bus_id is unset; NULL
 * or "" none), starts the sampler and prints the power line on f (stdout, or stderr when the
 * legacy JSON goes to stdout). Also refuses --power-limits on a source that cannot set them.
 * On failure prints why on stderr and returns NULL. */
hf_bench_meter *hf_bench_meter_open(const char *cmd, const hf_bench_common *c,
				    const char *pci_bus_id, FILE *f);
void hf_bench_meter_free(hf_bench_meter *m);
hf_power *hf_bench_meter_power(hf_bench_meter *m);
/* "estimate (boundary estimate, ESTIMATED)" or "nvml (boundary board, measured)". */
const char *hf_bench_meter_label(const hf_bench_meter *m);
bool hf_bench_meter_estimated(const hf_bench_meter *m);
/* The child process whose CPU time counts towards the estimate's utilisation (PyTorch), or 0. */
void hf_bench_meter_set_child(hf_bench_meter *m, pid_t pid);
/* The power limit in force for the windows that follow (0: none set by us). */
void hf_bench_meter_set_limit(hf_bench_meter *m, double watts);

/* A phase: section ("hash", "gemm", "infer"), implementation, shape ("" none), whether it is a
 * reference, the unit of its work counter and how to show its rate: rate = units * scale per
 * second in rate_unit ("MH/s"), efficiency = units * scale per joule in eff_unit ("MH/J"). */
typedef struct hf_bench_phase {
	const char *section, *impl, *shape;
	bool reference;
	bool no_live_rate;   /* the work is only known at the end (a child's): series rate null */
	double scale;
	const char *rate_unit, *eff_unit;
} hf_bench_phase;

typedef struct hf_bench_window {
	bool valid;
	double seconds, joules, watts, units, rate, per_j;
	bool estimated, degraded;
} hf_bench_window;

/* Starts a phase's warm-up (the series shows it as warm-up). */
void hf_bench_phase_warmup(hf_bench_meter *m, const hf_bench_phase *p);
/* Starts the phase's window: a power reading now. */
void hf_bench_phase_measure(hf_bench_meter *m);
/* Work done (any thread): counted in the series' rate. */
void hf_bench_phase_add(hf_bench_meter *m, double units);
/* Ends the window (a reading now) with the work done in it (units < 0: what phase_add counted
 * since phase_measure), records it in the run's windows, fills *w (may be NULL). */
void hf_bench_phase_end(hf_bench_meter *m, double units, hf_bench_window *w);
/* Ends a phase with no window (it failed or did not run). */
void hf_bench_phase_abort(hf_bench_meter *m);
/* {"seconds", "joules", "watts", "rate", "per_j", "source", "boundary", "estimated", ...}. */
json_t *hf_bench_window_json(const hf_bench_meter *m, const hf_bench_window *w);
/* The window's efficiency, formatted for a table ("12.3" or "-"). */
const char *hf_bench_fmt_eff(const hf_bench_window *w, char *buf, size_t size);

/* Prints the windows of a section recorded so far: implementation, shape, rate, watts, joules,
 * efficiency, and the power source line. */
void hf_bench_print_windows(const hf_bench_meter *m, const char *section, FILE *f);

/* The run document: {"hashflop_bench": 1, "version", "command", "host", "started_wall_ms",
 * "power": {...}, "windows": [...], "series": [...], "sections": sections} (sections stolen).
 * Stops the sampler first. */
json_t *hf_bench_meter_document(hf_bench_meter *m, const char *command, json_t *sections);
/* {"source", "boundary", "estimated", "detail", "problems", ...}: the legacy documents' power. */
json_t *hf_bench_meter_power_json(const hf_bench_meter *m);

/* One run body (a subcommand without its options), called once, or once per power limit. */
typedef int (*hf_bench_body)(hf_bench_meter *m, void *ctx, json_t *section);
/* Runs body once (no --power-limits) or once per limit (set before, the original limit
 * restored after, also on failure); the section objects go into sections[name] (an array of
 * {"power_limit_w", ...} when sweeping). Returns body's first failure or 0. */
int hf_bench_sweep(const char *cmd, hf_bench_meter *m, const hf_bench_common *c,
		   const char *name, hf_bench_body body, void *ctx, json_t *sections);
/* Writes the run document to c->json_file (when set); 0 or 1 (with a message). */
int hf_bench_write_document(const char *cmd, const hf_bench_common *c, json_t *doc);

#endif
