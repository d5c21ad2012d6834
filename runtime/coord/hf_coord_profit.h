/* hf_coord_profit: the "policy" decision source: the coordinator's live profitability loop.
 * It reads profit.json (coord.json "profit_file": feeds, policy, classes, nodes, the mining and
 * inference payloads), runs the feed fetcher (hf_coord_feeds), and every policy.evaluate_s
 * evaluates every registered node with hf_coord_policy_eval over the live market and the
 * node's own reported figures (learnt per mode from its reports: hashrate and watts while
 * converged in mining, inference capacity and watts in inference, watts in idle, switch
 * duration from last_switch; its class's figures until it has reported them). A verdict that
 * changes a node's mode becomes a decision through hf_coord_decide(source "policy") with the
 * verdict's JSON as the instruction's reason; holds are the coordinator's (an operator-held
 * node is evaluated as held). The latest verdict of every node (hold, stale, streak ...) is
 * kept for GET /v1/policy, the feeds for GET /v1/feeds, and both in /metrics.
 * Threading: one thread of its own (the evaluation loop) besides the fetcher's; the views may
 * be called from any thread.
 */
#ifndef HF_COORD_PROFIT_H
#define HF_COORD_PROFIT_H

#include "hf_coord.h"
#include "hf_coord_policy.h"
#include "hf_coord_report.h"

/* The source (hf_coord_add_source): started when coord.json names a profit_file. */
extern const hf_coord_source_ops hf_coord_source_policy;

/* (profit, additive) Reads and validates profit.json at path the way the source does at start
 * (every section: feeds, policy, classes, nodes, default_class, the mining and inference
 * payloads as a node would check them, initial_mode); errors start with the path and name the
 * field ("/etc/hashflop/profit.json: mining.pools[0].url: ..."). For --check-config. */
int hf_coord_profit_check(const char *path, hf_errbuf *eb);

/* ---- (profit, additive) a node's figures learnt from its reports (sans-I/O) ----
 * Per mode, from reports that say converged true, phase "running" and mode == desired_mode
 * (not a node on its way elsewhere): mining -> hashrate_hs
 * and power.watts; inference -> power.watts and inferences_per_s (the highest per 5-minute
 * slot over the last hour; the capacity used is max(the class's, that hour's highest));
 * idle -> power.watts; a report with a new last_switch (its seq) and a total_ms -> switch_s,
 * whatever its convergence. Each is an EWMA (weight HF_COORD_LEARN_ALPHA for the new sample;
 * the first sample as is). A capacity of 0 or a watts of 0 is no measurement and is never
 * learnt; a report is used once (its wall_ms). */
#define HF_COORD_LEARN_ALPHA 0.3
#define HF_COORD_LEARN_SLOTS 12            /* the last hour in 5-minute slots */
#define HF_COORD_LEARN_SLOT_MS 300000ull

/* Power and hashrate are learnt only once a mode has settled: from reports at least this long
 * after the first converged, running report in the mode (or after a new last_switch, or the
 * node's first report): the report sent just after a switch still carries the last mode's
 * power reading, and a node's first report its start-up burst. */
#define HF_COORD_LEARN_SETTLE_MS 5000ull

typedef struct hf_coord_learnt {
	uint64_t rep_wall_ms;                  /* the last report used */
	char mode_seen[16];                    /* the mode of the settling run ("": none) */
	uint64_t settled_ms;                   /* power/hashrate learnt from reports at or after */
	uint64_t switch_seq;                   /* the last last_switch used */
	hf_coord_figures fig;                  /* EWMAs (inferences_per_s unused: slots) */
	unsigned mask;                         /* HF_COORD_FIG_* learnt */
	double ips_max[HF_COORD_LEARN_SLOTS];
	uint64_t ips_slot[HF_COORD_LEARN_SLOTS];
} hf_coord_learnt;

/* Learns from one report (summary r, received at wall_ms). false when it was used before. */
bool hf_coord_learn_report(hf_coord_learnt *l, const hf_coord_report_sum *r, uint64_t wall_ms);
/* The node's own figures at now_ms for hf_coord_pnode (own, own_mask). */
void hf_coord_learn_figures(const hf_coord_learnt *l, const hf_coord_class *cls, uint64_t now_ms,
			    hf_coord_figures *own, unsigned *mask);

#endif
