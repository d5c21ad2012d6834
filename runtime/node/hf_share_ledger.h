/* hf_share_ledger: the life of every share the mining worker finds, counted exactly:
 * found -> queued (the node's submit queue) -> in flight (handed to the Stratum driver, sent,
 * awaiting the pool) -> answered (accepted, or rejected by the pool's reason) or dropped (by
 * one of the reasons below, from whichever stage it was in).
 *
 * Invariants: found == queued + in_flight + accepted + rejected + sum(dropped) at every
 * snapshot; queued and in_flight never wrap (an event naming a stage with no share in it is
 * counted in `mismatches` and changes nothing else, so a broken caller shows instead of
 * corrupting the counts); every reject reason is cleaned (hf_text_clean: no control
 * characters, valid UTF-8, cut on a character boundary) before it is stored; the first
 * HF_SHARE_LEDGER_REASONS distinct reasons get their own bucket, later ones count in
 * `rejects_other`. Counters only grow, except the two stage gauges queued and in_flight.
 * Threading: every function is safe from any thread (one internal lock, held only for a few
 * stores; nothing is called while it is held); hf_share_ledger_new/free from the owner.
 */
#ifndef HF_SHARE_LEDGER_H
#define HF_SHARE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

/* Why a share ended without a pool answer. The enum only grows. */
typedef enum hf_share_drop {
	HF_SHARE_DROP_QUEUE_FULL = 0, /* a queue was full (the node's, or the driver's unanswered table) */
	HF_SHARE_DROP_STALE,          /* its job or session was replaced before it was sent */
	HF_SHARE_DROP_HW_ERROR,       /* failed the local share check (hash above the target) */
	HF_SHARE_DROP_SUBMIT_FAILED,  /* the driver or protocol core refused to send it */
	HF_SHARE_DROP_SESSION_LOST,   /* sent; the session ended before the pool answered */
	HF_SHARE_DROP_DRAINED,        /* still queued or unanswered when the run was drained */
} hf_share_drop;
#define HF_SHARE_DROP_KINDS 6

/* Where a dropped share was. */
typedef enum hf_share_stage {
	HF_SHARE_QUEUED = 0,
	HF_SHARE_IN_FLIGHT,
} hf_share_stage;

#define HF_SHARE_LEDGER_REASONS 8
#define HF_SHARE_LEDGER_REASON_MAX 48

/* A consistent copy of every counter. */
typedef struct hf_share_counts {
	uint64_t found, queued, in_flight;
	uint64_t submitted;          /* handed to the driver successfully */
	uint64_t accepted, rejected;
	uint64_t dropped[HF_SHARE_DROP_KINDS];
	uint64_t known_stale_sent;   /* handed over after the node saw its job replaced */
	struct {
		char reason[HF_SHARE_LEDGER_REASON_MAX];
		uint64_t count;
	} rejects[HF_SHARE_LEDGER_REASONS];
	size_t nrejects;
	uint64_t rejects_other;      /* rejects whose reason found no bucket */
	uint64_t lat_count, lat_sum_ms, lat_max_ms, lat_last_ms;
	double best_diff;
	uint64_t mismatches;
} hf_share_counts;

typedef struct hf_share_ledger hf_share_ledger;

/* "queue_full", "stale", "hw_error", "submit_failed", "session_lost", "drained"; "unknown". */
const char *hf_share_drop_name(hf_share_drop why);

int hf_share_ledger_new(hf_share_ledger **out, hf_errbuf *eb);
/* NULL accepted. */
void hf_share_ledger_free(hf_share_ledger *l);

/* n shares found; they enter the queue (drop them with hf_share_ledger_drop if they do not). */
void hf_share_ledger_found(hf_share_ledger *l, uint64_t n);
/* One queued share is being handed to the driver: it is in flight from now on, so an answer
 * that arrives before hf_share_ledger_sent() is counted against it. */
void hf_share_ledger_sending(hf_share_ledger *l);
/* The hand-over of one in-flight share succeeded (diff: its difficulty, for best_diff). */
void hf_share_ledger_sent(hf_share_ledger *l, bool known_stale, double diff);
/* One share of stage `from` dropped for `why`. */
void hf_share_ledger_drop(hf_share_ledger *l, hf_share_stage from, hf_share_drop why);
/* The pool answered one in-flight share (reason: its reject text, raw; ignored if accepted). */
void hf_share_ledger_answered(hf_share_ledger *l, bool accepted, const char *reason,
			      uint64_t latency_ms);
/* Drops every queued and in-flight share for `why`; returns how many there were. */
uint64_t hf_share_ledger_abandon(hf_share_ledger *l, hf_share_drop why);

/* Waits (on a condition variable, woken by every answer and drop) until nothing is in flight
 * or until deadline_ms (hf_mono_ms clock); returns the in-flight count then. */
uint64_t hf_share_ledger_wait_in_flight(hf_share_ledger *l, uint64_t deadline_ms);

void hf_share_ledger_snapshot(hf_share_ledger *l, hf_share_counts *out);
/* Sum of dropped[] in a snapshot. */
uint64_t hf_share_counts_dropped(const hf_share_counts *c);

#endif
