/* hf_telemetry: the node's power and efficiency telemetry: a sampler thread that reads the
 * power source (hf_power.h) and the current mode worker's work counters once a second and
 * keeps the same windows as the rates (10 s, 1 min, 15 min), so that every efficiency figure
 * comes from one energy difference and one work difference over the same seconds.
 *
 * Invariants: windows cover the current mode's run only: they restart when the mode (or its
 * run, after a switch) changes, so a figure never mixes two modes; a window younger than its
 * length covers what was observed (covered_s), never a ramp. Energy is the difference of the
 * source's counter (hf_power_window_of). Efficiency is 0 when no energy was counted. Every
 * snapshot names its source, boundary and whether the watts are estimated.
 * Everything the node reports about power (status, metrics, the coordinator report) is
 * serialised from one hf_telemetry_snapshot.
 * Threading: hf_telemetry_new/free on the node's owner thread; one sampler thread;
 * hf_telemetry_snapshot from any thread (a short lock); the serialisers are pure functions of
 * a snapshot.
 */
#ifndef HF_TELEMETRY_H
#define HF_TELEMETRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"
#include "hf_mode.h"
#include "hf_power.h"

#define HF_TELEM_WINDOWS 3 /* 10 s, 60 s, 900 s */

typedef struct hf_telemetry hf_telemetry;

typedef struct hf_telemetry_opts {
	hf_power *power;       /* borrowed: must outlive the telemetry */
	hf_modes *modes;       /* borrowed: hf_modes_counters() is read each sample */
	unsigned interval_ms;  /* sample period (0: 1000) */
} hf_telemetry_opts;

typedef struct hf_telemetry_window {
	unsigned seconds;      /* the window's length: 10, 60, 900 */
	double covered_s;      /* seconds of it observed in this mode run (<= seconds + half a
			        * sample interval: the oldest sample inside that span starts it) */
	double joules;
	double watts;          /* joules / covered_s */
	double hashes_per_s, flops_per_s, inferences_per_s;
	double mh_per_j;       /* mining: 1e6 hashes per joule */
	double gflop_per_j;    /* inference: 1e9 flop per joule */
	double inferences_per_j;
} hf_telemetry_window;

typedef struct hf_telemetry_snapshot {
	uint64_t wall_ms;      /* when sampled */
	hf_mode mode;          /* the mode the windows belong to */
	uint64_t mode_since_wall_ms;
	char source[16];       /* hf_power_kind_name(): "rapl", "hwmon", "nvml", "estimate" */
	char boundary[16];     /* hf_power_boundary() */
	bool estimated;
	bool degraded;
	char detail[256];      /* hf_power_detail() */
	double watts;          /* over the last sample interval */
	double joules_total;   /* since the node started: a counter */
	uint64_t samples;      /* taken since start (0: no snapshot yet, every figure 0) */
	hf_work_counters totals; /* the current worker's counters at the sample */
	hf_telemetry_window win[HF_TELEM_WINDOWS];
	/* the mining power target (hf_mining sets these through hf_telemetry_set_target) */
	bool target_set;
	double target_w;
} hf_telemetry_snapshot;

int hf_telemetry_new(const hf_telemetry_opts *opts, hf_telemetry **out, hf_errbuf *eb);
void hf_telemetry_snapshot_get(hf_telemetry *t, hf_telemetry_snapshot *out);
/* Records the power target in force (watts <= 0: none), shown with the snapshot. */
void hf_telemetry_set_target(hf_telemetry *t, double watts);
/* Adds "power": {"watts", "joules_total", "source", "boundary", "estimated", "degraded",
 * "detail", "target_w" (or null), "samples", "sampled_ms", "mode", "mode_since_ms",
 * "worker_counters": {"hashes", "flops", "inferences"} (the current worker's, over its life),
 * "windows": {"10s": {...}, "1m": {...}, "15m": {...}}} and
 * "efficiency": {"mode", "mh_per_j" | "gflop_per_j" + "inferences_per_j" | "idle_watts",
 * per window} to obj. */
void hf_telemetry_status_json(const hf_telemetry_snapshot *s, json_t *obj);
/* hashflop_power_watts{source,boundary,estimated}, hashflop_energy_joules_total (counter),
 * hashflop_power_target_watts, hashflop_efficiency_mh_per_joule{window},
 * hashflop_efficiency_gflop_per_joule{window}, hashflop_efficiency_inferences_per_joule{window},
 * hashflop_idle_watts{window}. */
void hf_telemetry_metrics(const hf_telemetry_snapshot *s, hf_buf *b);
/* The "power" object of the coordinator report (the contract is in runtime/coord/README.md):
 * {"watts", "joules_total", "source", "boundary", "estimated", "window_s", "window_watts",
 * "mh_per_j", "gflop_per_j", "inferences_per_j"} over the 60 s window. New reference. */
json_t *hf_telemetry_report_json(const hf_telemetry_snapshot *s);
/* Stops the sampler, frees. NULL accepted. */
void hf_telemetry_free(hf_telemetry *t);

#endif
