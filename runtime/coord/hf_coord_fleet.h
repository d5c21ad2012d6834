/* hf_coord_fleet: the coordinator's in-memory fleet state: every node (token hash, hold, its
 * own current envelope, the last report's summary, last seen), the fleet-wide "*" envelope,
 * and the long polls waiting on each node, with one timer thread for their deadlines.
 *
 * A node's effective envelope is the one of its own and the fleet's with the higher issued_ms;
 * a poll (GET /v1/nodes/{id}/instruction?after=&wait=) is answered with it at once when its
 * issued_ms > after and it has not expired, else parked (hf_http_defer) until a publish makes
 * one so, or 204 at its deadline. Publishing an envelope for a node wakes that node's polls;
 * one for "*" wakes every node's for which it became effective: O(nodes + waiters) under the
 * lock, then one hf_http_pending_complete per waiter outside it.
 *
 * Invariants: an envelope only ever replaces one with a lower issued_ms (own and fleet each);
 * a parked poll is in exactly one node's list and in the deadline heap, or in neither; each
 * parked handle is completed exactly once (answer, 204, or after gone(): HF_ECANCELED).
 * Threading: one mutex (f->lock) guards everything; every function may be called from any
 * thread (handlers on the server threads, the coordinator's threads); handlers' critical
 * sections are O(1) except publish and the views (O(nodes)). The timer thread completes
 * expired polls. Why a lock and not an owner thread with messages: a poll must be answered or
 * parked in the handler that received it, atomically with the check of the current envelope
 * (else a publish between the two is missed), and a relay must be published before its
 * POST is answered: both are synchronous round trips an owner thread would add a context
 * switch to, for critical sections of a few hundred nanoseconds. hf_coord_fleet_free() after
 * the server that parked the polls was freed (its gone() calls come here).
 */
#ifndef HF_COORD_FLEET_H
#define HF_COORD_FLEET_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_coord_report.h"
#include "hf_coord_store.h"
#include "hf_error.h"
#include "hf_httpd.h"

/* One signed envelope as served: immutable once published, shared by reference. */
typedef struct hf_coord_env {
	atomic_int refs;
	uint64_t seq;            /* the decision's record seq */
	uint64_t issued_ms, expires_ms, resigned_from;
	uint64_t decided_us;     /* hf_mono_us() when decided (fan-out and ack latency) */
	char node[HF_COORD_NODE_ID_MAX + 1]; /* a node id or "*" */
	char mode[16];
	char source[64];
	hf_coord_authority authority;
	uint64_t hold_until_ms;  /* the payload's operator hold (0: none) */
	json_t *mining, *inference, *reason; /* owned or NULL (what a re-sign repeats) */
	char *text;              /* the envelope JSON (owned) */
	size_t len;
} hf_coord_env;

/* A new envelope with one reference; text copied. NULL when out of memory. */
hf_coord_env *hf_coord_env_new(const char *text, size_t len);
hf_coord_env *hf_coord_env_ref(hf_coord_env *e);
void hf_coord_env_unref(hf_coord_env *e);

typedef struct hf_coord_fleet hf_coord_fleet;

typedef struct hf_coord_fleet_opts {
	unsigned max_wait_s;      /* poll waits are capped to this */
	unsigned offline_after_s; /* no poll or report for this long: offline */
	unsigned max_nodes;
} hf_coord_fleet_opts;

int hf_coord_fleet_new(const hf_coord_fleet_opts *opts, hf_coord_fleet **out, hf_errbuf *eb);
/* Completes any poll still parked (HF_ECANCELED), stops the timer, frees. NULL accepted. */
void hf_coord_fleet_free(hf_coord_fleet *f);

/* Makes the node set the store's: adds new nodes, updates token hashes and holds, removes
 * nodes that are gone (their polls answered 401). HF_ETOOBIG past max_nodes (the rest left
 * out). */
int hf_coord_fleet_sync_nodes(hf_coord_fleet *f, const hf_coord_node_rec *recs, size_t n,
			      hf_errbuf *eb);
size_t hf_coord_fleet_node_count(hf_coord_fleet *f);
/* Node ids (malloc'ed array of n ids, free()). */
int hf_coord_fleet_node_ids(hf_coord_fleet *f, char (**ids)[HF_COORD_NODE_ID_MAX + 1],
			    size_t *n);
bool hf_coord_fleet_has_node(hf_coord_fleet *f, const char *id);

/* 0 when token_hash (hex SHA-256 of the presented token) is id's (constant-time compare);
 * HF_ENOTFOUND for an unknown node, HF_EREFUSED for another hash. */
int hf_coord_fleet_auth(hf_coord_fleet *f, const char *id, const char *token_hash);

/* A poll, inside its handler: answers resp now (200 envelope, 204, 401 unknown node) or parks
 * the request. wait_s is capped to max_wait_s (0: answer now). Counts as a sign of life. */
void hf_coord_fleet_poll(hf_coord_fleet *f, const char *id, uint64_t after, uint64_t wait_s,
			 const hf_http_req *req, hf_http_resp *resp);

/* Publishes e (a reference is taken) for e->node (an id or "*") unless the current one's
 * issued_ms is not lower; wakes the polls it answers. Returns the number of nodes for which
 * it is now effective (0: superseded or unknown node); *woken: polls answered. */
size_t hf_coord_fleet_publish(hf_coord_fleet *f, hf_coord_env *e, size_t *woken);

/* The effective envelope of node id (a new reference, or NULL) and its hold. false for an
 * unknown node. id "*": the fleet envelope, hold 0. */
bool hf_coord_fleet_current(hf_coord_fleet *f, const char *id, hf_coord_env **env,
			    uint64_t *hold_until_ms);
/* The highest issued_ms any node holds or the fleet envelope has (relay ordering for "*"). */
uint64_t hf_coord_fleet_fleet_issued(hf_coord_fleet *f);
/* Sets id's hold (in memory; the caller records it in the store). id "*": a fleet-wide hold
 * over every node's own (the one ending later is in force). */
void hf_coord_fleet_set_hold(hf_coord_fleet *f, const char *id, uint64_t until_ms,
			     const char *by);

/* Applies a validated report: last seen, the summary, convergence. *ack_issued_ms is set to
 * the applied issued_ms when it acknowledges an envelope issued to id for the first time (the
 * caller records the ack), else 0. false for an unknown node. */
bool hf_coord_fleet_report(hf_coord_fleet *f, const char *id, const hf_coord_report_sum *sum,
			   uint64_t wall_ms, uint64_t *ack_issued_ms);

/* Automatic envelopes that stand and have passed half their TTL at now_ms (new references,
 * malloc'ed array, at most max). */
size_t hf_coord_fleet_due_resign(hf_coord_fleet *f, uint64_t now_ms, hf_coord_env ***out,
				 size_t max);

/* Views. */
json_t *hf_coord_fleet_json(hf_coord_fleet *f, uint64_t now_ms);
json_t *hf_coord_fleet_node_json(hf_coord_fleet *f, const char *id, uint64_t now_ms);
/* The fleet's gauges, counters and latency histograms in the Prometheus text format. */
void hf_coord_fleet_metrics(hf_coord_fleet *f, uint64_t now_ms, hf_buf *b);
/* Parked polls now. */
size_t hf_coord_fleet_waiting(hf_coord_fleet *f);

/* ---- issue 15 (profit, additive): the nodes as a decision source sees them ---- */
typedef struct hf_coord_node_view {
	char id[HF_COORD_NODE_ID_MAX + 1];
	bool has_env;                /* an effective envelope (own or fleet) */
	char mode[16];               /* its mode ("" without one) */
	uint64_t issued_ms, seq;     /* its issued_ms and decision seq */
	uint64_t resigned_from;      /* the seq it re-signs (0: a decision of its own) */
	char source[64];             /* its decision source ("api", "policy", "operator") */
	hf_coord_authority authority;
	uint64_t hold_until_ms;      /* the operator hold in force (own or fleet-wide; 0 none) */
	bool has_report;
	uint64_t report_wall_ms;     /* the coordinator's wall clock when the last report came */
	hf_coord_report_sum rep;     /* that report's summary */
	bool converged;              /* converged on its effective envelope */
	bool offline;                /* no poll or report for offline_after_s */
} hf_coord_node_view;

/* Every node, sorted by id (strcmp): *out malloc'ed (free()), *n entries. HF_ENOMEM. A copy
 * taken in one pass under the lock (O(nodes)); sorted outside it. */
int hf_coord_fleet_node_views(hf_coord_fleet *f, uint64_t now_ms, hf_coord_node_view **out,
			      size_t *n);

#endif
