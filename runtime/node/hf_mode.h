/* hf_mode: the node's mode state machine: one mode worker at a time, converging on the desired
 * state on a dedicated switcher thread, with a timeline (ms per phase) for every switch.
 *
 * Requests are desired state ("be in mode X with parameters P"), not commands: the machine keeps
 * exactly one desired state and the latest request replaces it (a request that was never acted
 * on is coalesced away, counted). The switcher reconciles the running worker with the desired
 * state until they are equal: a switch is drain the current worker (until its deadline) ->
 * release it -> start the target worker -> running. A request equal to the desired state is a
 * no-op (counted). If the target fails to start, the node runs idle and the switcher retries
 * the start with exponential backoff (retry_min_ms doubling up to retry_max_ms) until it
 * succeeds or another desired state arrives; meanwhile the machine reports converged = false
 * with the reason. While a worker with a health callback runs, the switcher calls it every
 * health_interval_ms; a failure is counted, the worker is drained and released, the node runs
 * idle and the mode is restarted with the same backoff. The retry count resets after the mode
 * ran healthy for retry_max_ms, or on a new desired state. The idle worker always exists;
 * others are registered when their mode is built in.
 * Watchdog verdict (hf_modes_watchdog, for systemd's WatchdogSec): healthy unless (a) a worker
 * callback has run past its bound (start: start_bound_ms, drain: drain_timeout_ms, release and
 * health: callback_bound_ms; each plus watchdog_grace_ms), (b) the running worker has a health
 * callback and, while no callback runs, its last completed check is older than 3 health
 * intervals plus the grace, or (c) the desired mode failed its health check watchdog_failures
 * times in a row without a healthy run (retry_max_ms without a failure; a new desired state
 * also starts the count over). The verdict is a view: the machine acts on nothing in it.
 * Persisting the desired mode is the caller's job and happens before hf_modes_request().
 * Threading: hf_modes_new/free from the owner thread; request, snapshot, the waits and the
 * status and metrics writers from any thread; worker start/drain/release/health run on the
 * switcher thread only (status and metrics callbacks run on the caller's thread, under the
 * machine's lock).
 */
#ifndef HF_MODE_H
#define HF_MODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
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

/* How the running worker relates to the desired state. */
typedef enum hf_modes_conv {
	HF_CONV_CONVERGED = 0, /* the desired mode runs with the desired parameters */
	HF_CONV_SWITCHING,     /* a switch toward the desired state is pending or running */
	HF_CONV_RETRYING,      /* the desired mode failed to start: idle until the next attempt */
	HF_CONV_FAILED,        /* the desired mode failed while running: idle until its restart */
} hf_modes_conv;

/* "converged", "switching", "retrying", "failed". */
const char *hf_modes_conv_name(hf_modes_conv c);

/* Work counters of a mode worker (hf_mode_worker.counters). */
typedef struct hf_work_counters {
	uint64_t hashes;       /* mining: nonces hashed */
	double flops;          /* inference: floating-point operations of the batches run */
	uint64_t inferences;   /* inference: items (rows of a batch) answered */
} hf_work_counters;

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
	/* Optional: the work done over the worker object's life (monotonic counters, never reset
	 * by a switch), for the node's telemetry (hf_telemetry.h). From any thread; must not block
	 * beyond a short lock. */
	void (*counters)(void *impl, hf_work_counters *out);
} hf_mode_worker;

/* What caused a switch. */
typedef enum hf_switch_trigger {
	HF_TRIGGER_REQUEST = 0, /* a new desired state */
	HF_TRIGGER_RETRY,       /* a retry after a failed start */
	HF_TRIGGER_HEALTH,      /* the running worker failed its health check: stopped, idle */
	HF_TRIGGER_RESTART,     /* the restart after a health failure */
} hf_switch_trigger;

/* The timeline of one switch. */
typedef struct hf_switch_record {
	uint64_t seq;          /* 1, 2, ...; 0 = none yet */
	hf_mode from, to;      /* to: the mode asked for (the node runs idle when result < 0) */
	bool from_none;        /* the first switch after start has no previous mode */
	hf_switch_trigger trigger;
	unsigned attempt;      /* 1 for the first try toward a desired state, 2... for retries */
	uint64_t requested_wall_ms;
	uint64_t queued_ms, drain_ms, release_ms, start_ms, total_ms;
	int result;            /* 0 or the HF_E* code of the failed phase (or of the health check) */
	char error[256];       /* cleaned text (hf_text_clean) */
} hf_switch_record;

typedef struct hf_modes_info {
	hf_mode mode;          /* the mode whose worker is current */
	hf_mode_phase phase;
	hf_mode desired;       /* the last requested mode */
	uint64_t mode_since_wall_ms;
	uint64_t switches_total, switch_failures_total, noop_total, coalesced_total;
	uint64_t health_failures_total, retries_total;
	bool pending;          /* a desired state the switcher has not acted on yet */
	bool converged;
	hf_modes_conv conv;
	unsigned attempts;     /* failed attempts toward the desired state (see the top comment) */
	uint64_t next_attempt_in_ms; /* with HF_CONV_RETRYING / HF_CONV_FAILED; 0 otherwise */
	char reason[320];      /* why not converged; "" when converged */
	hf_switch_record last;
} hf_modes_info;

typedef struct hf_modes hf_modes;

typedef struct hf_modes_opts {
	uint64_t drain_timeout_ms;   /* bounds every drain */
	uint64_t retry_min_ms;       /* first retry delay (0: 1000) */
	uint64_t retry_max_ms;       /* retry delay ceiling (0: 60000; raised to retry_min_ms) */
	uint64_t health_interval_ms; /* health() period (0: 1000) */
	/* The watchdog verdict (see the top comment). */
	uint64_t start_bound_ms;     /* a start() past this (+ grace) is overdue (0: 300000) */
	uint64_t callback_bound_ms;  /* release() and health() (0: 5000) */
	uint64_t watchdog_grace_ms;  /* added to every bound and to the health staleness (0: 5000) */
	unsigned watchdog_failures;  /* health failures in a row that turn it bad (0: never) */
} hf_modes_opts;

/* Identifies one request, for hf_modes_wait_applied(). */
typedef struct hf_modes_ticket {
	uint64_t gen;          /* the desired-state generation the request made or matched */
	uint64_t attempts_seen; /* finished attempts at the time of the request */
} hf_modes_ticket;

typedef enum hf_modes_wait {
	HF_MODES_APPLIED = 0,  /* the requested state runs */
	HF_MODES_START_FAILED, /* an attempt at it finished and failed (error given); retried */
	HF_MODES_SUPERSEDED,   /* a newer desired state replaced it */
	HF_MODES_PENDING,      /* still switching at the deadline */
	HF_MODES_SHUTDOWN,     /* the machine is shutting down */
} hf_modes_wait;

/* The idle worker is built in. */
int hf_modes_new(const hf_modes_opts *opts, hf_modes **out, hf_errbuf *eb);
/* Registers a worker for w->mode (before the first request). */
int hf_modes_register(hf_modes *m, const hf_mode_worker *w, hf_errbuf *eb);
bool hf_modes_available(const hf_modes *m, hf_mode mode);
/* Makes target (params copied) the desired state; ticket (may be NULL) identifies the request.
 * HF_EUNSUPPORTED if no worker for target, HF_ESTATE after shutdown began. Never busy: a
 * desired state not yet acted on is replaced. A request equal to a desired state that is being
 * retried brings the next attempt forward. */
int hf_modes_request(hf_modes *m, hf_mode target, const json_t *params, hf_modes_ticket *ticket,
		     hf_errbuf *eb);
/* Waits up to timeout_ms for the outcome of a request; error (size errsz, may be NULL) gets
 * the failed attempt's error with HF_MODES_START_FAILED. */
hf_modes_wait hf_modes_wait_applied(hf_modes *m, const hf_modes_ticket *ticket,
				    uint64_t timeout_ms, char *error, size_t errsz);
/* Waits until the switcher has acted on the latest desired state and no switch is running
 * (converged or not); false on timeout. */
bool hf_modes_wait_settled(hf_modes *m, uint64_t timeout_ms);
/* Waits until converged; false on timeout. */
bool hf_modes_wait_converged(hf_modes *m, uint64_t timeout_ms);
void hf_modes_snapshot(hf_modes *m, hf_modes_info *out);
/* The watchdog verdict: true while healthy (why = ""); false with the reason in why (size
 * whysz, may be NULL): which callback of which mode has run how long past which bound, since
 * when the health checks stopped completing, or how many health failures in a row. From any
 * thread; never blocks beyond the machine's lock. */
bool hf_modes_watchdog(hf_modes *m, char *why, size_t whysz);
/* The mode whose worker is current and that worker's counters (zero for a worker without the
 * callback). From any thread. */
void hf_modes_counters(hf_modes *m, hf_mode *mode, hf_work_counters *out);
/* Adds "mode", "phase", "desired_mode", "converged", "convergence", "last_switch",
 * "watchdog" {"healthy", "reason", "health_failures_in_a_row", "failures_limit"} ... and the
 * worker's status. */
void hf_modes_status_json(hf_modes *m, json_t *obj);
/* Appends mode gauges, switch counters, the switch-duration histogram and
 * hashflop_watchdog_healthy. */
void hf_modes_metrics(hf_modes *m, hf_buf *b);
/* Begins the shutdown: later requests answer HF_ESTATE, waiters return HF_MODES_SHUTDOWN, the
 * switcher stops after its current step. The worker keeps running until hf_modes_free. */
void hf_modes_shutdown(hf_modes *m);
/* Drains and releases the current worker (bounded by the drain timeout), stops the switcher
 * thread, frees. NULL accepted. */
void hf_modes_free(hf_modes *m);

#endif
