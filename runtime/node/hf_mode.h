/* hf_mode: the node's mode state machine: one mode worker at a time, switched on a dedicated
 * thread in request order with a timeline (ms per phase) for every switch.
 *
 * A switch is: dequeue -> drain the current worker (until its deadline) -> release it -> start
 * the target worker -> running. Requests are desired state: a request for the mode already
 * running with equal parameters is a no-op (counted, not executed). Requests that arrive while a
 * switch runs are queued (up to HF_MODES_QUEUE_MAX) and executed after it, never interleaved.
 * If a worker fails to start, the node falls back to idle and the failure is kept in the
 * timeline. The idle worker always exists; others are registered when their mode is built in.
 * Persisting the desired mode is the caller's job and happens before hf_modes_request().
 * Threading: hf_modes_new/free from the owner thread; request, snapshot, wait and the status and
 * metrics writers from any thread; worker callbacks run on the switcher thread only (status
 * and metrics callbacks run on the caller's thread, under the machine's lock).
 */
#ifndef HF_MODE_H
#define HF_MODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

typedef enum hf_mode {
	HF_MODE_IDLE = 0,
	HF_MODE_MINING = 1,
	HF_MODE_INFERENCE = 2,
} hf_mode;
#define HF_MODE_COUNT 3

const char *hf_mode_name(hf_mode m);
bool hf_mode_parse(const char *s, hf_mode *out);

typedef enum hf_mode_phase {
	HF_PHASE_STOPPED = 0, /* no worker running (before the first switch, after shutdown) */
	HF_PHASE_STARTING,
	HF_PHASE_RUNNING,
	HF_PHASE_DRAINING,
	HF_PHASE_RELEASING,
} hf_mode_phase;

const char *hf_mode_phase_name(hf_mode_phase p);

/* A mode worker. Callbacks run on the switcher thread and must not block beyond what they say. */
typedef struct hf_mode_worker {
	hf_mode mode;
	void *impl;
	/* Starts the mode with params (the instruction's mode section, or NULL for the config's
	 * defaults). Returns once the mode is running; its own threads do the work. */
	int (*start)(void *impl, const json_t *params, hf_errbuf *eb);
	/* Stops admitting work and finishes in-flight work before deadline_ms (hf_mono_ms clock).
	 * HF_ETIMEOUT when work had to be cut short at the deadline. */
	int (*drain)(void *impl, uint64_t deadline_ms, hf_errbuf *eb);
	/* Releases threads and devices; start() may be called again afterwards. */
	void (*release)(void *impl);
	/* Optional: adds the mode's own fields to the status object. */
	void (*status)(void *impl, json_t *obj);
	/* Optional: appends the mode's own metric families. */
	void (*metrics)(void *impl, hf_buf *b);
	/* Optional: 0 while the running mode does its work; a negative HF_E* code, with the
	 * reason in eb, once it has failed beyond its own recovery (e.g. a device that kept
	 * failing after the worker's bounded restarts). The machine then reports the mode as
	 * failed and restarts it (release, start) with backoff. Called on the switcher thread,
	 * only while the worker is running; must not block. */
	int (*health)(void *impl, hf_errbuf *eb);
} hf_mode_worker;

/* The timeline of one switch. */
typedef struct hf_switch_record {
	uint64_t seq;          /* 1, 2, ...; 0 = none yet */
	hf_mode from, to;
	bool from_none;        /* the first switch after start has no previous mode */
	uint64_t requested_wall_ms;
	uint64_t queued_ms, drain_ms, release_ms, start_ms, total_ms;
	int result;            /* 0 or the HF_E* code of the failed phase */
	char error[200];
} hf_switch_record;

typedef struct hf_modes_info {
	hf_mode mode;          /* the mode whose worker is current */
	hf_mode_phase phase;
	hf_mode desired;       /* the last requested mode */
	uint64_t mode_since_wall_ms;
	uint64_t switches_total, switch_failures_total, noop_total, queued_now;
	hf_switch_record last;
} hf_modes_info;

typedef struct hf_modes hf_modes;

#define HF_MODES_QUEUE_MAX 16

/* drain_timeout_ms bounds every drain. The idle worker is built in. */
int hf_modes_new(uint64_t drain_timeout_ms, hf_modes **out, hf_errbuf *eb);
/* Registers a worker for w->mode (before the first request). */
int hf_modes_register(hf_modes *m, const hf_mode_worker *w, hf_errbuf *eb);
bool hf_modes_available(const hf_modes *m, hf_mode mode);
/* Queues a switch to target (params copied). HF_EUNSUPPORTED if no worker for target,
 * HF_EBUSY if the queue is full, HF_ESTATE after shutdown began. */
int hf_modes_request(hf_modes *m, hf_mode target, const json_t *params, hf_errbuf *eb);
/* Waits until the queue is empty and no switch is running; false on timeout. */
bool hf_modes_wait_settled(hf_modes *m, uint64_t timeout_ms);
void hf_modes_snapshot(hf_modes *m, hf_modes_info *out);
/* Adds "mode", "phase", "desired_mode", "last_switch" ... and the worker's status. */
void hf_modes_status_json(hf_modes *m, json_t *obj);
/* Appends mode gauges, switch counters and the switch-duration histogram. */
void hf_modes_metrics(hf_modes *m, hf_buf *b);
/* Drains and releases the current worker (bounded by the drain timeout), stops the switcher
 * thread, frees. NULL accepted. */
void hf_modes_free(hf_modes *m);

#endif
