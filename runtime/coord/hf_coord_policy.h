/* hf_coord_policy: the profitability policy: for every node, the mode that earns the most now,
 * with hysteresis and switching costs. Pure: market figures, node figures and the policy's own
 * per-node state in, one verdict per node out; no clock, no I/O, no threads. The live source
 * (hf_coord_profit) and the backtest (hf_coord_backtest) both call it, so what the backtest
 * measures is what the coordinator does.
 *
 * Money is in USD, rates per hour; formulas (runtime/coord/README.md "Policy"):
 *   mining revenue/h   = hashrate * 3600 * (subsidy + fees) * btc_usd / (difficulty * 2^32)
 *                        * (1 - pool_fee)
 *   inference revenue/h = per_1000:  price * 3.6 * served (inferences/s; 3600/1000)
 *                         node_hour: price * price_factor(class) * served (node-hours/h, 0..1)
 *   cost/h = watts / 1000 * power_usd_kwh; margin = revenue - cost; idle margin = -idle cost.
 * Inference demand is fleet-level. Nodes are ranked by inference efficiency (inferences per
 * joule = inferences_per_s / inference_watts; per_1000) or by inference margin per node
 * (node_hour), ties broken by id (strcmp); the demand (times 1 + headroom) is filled in that
 * order: a node's share is min(capacity, what is left after every node ranked above it), its
 * capacity inferences_per_s (per_1000) or 1 (node_hour); 0 inference watts ranks as infinitely
 * efficient, a node held in inference ranks first and one held in another mode gets no share
 * (policy helper, issue 15). That share is what it "would serve"
 * (hf_coord_policy_shares) and it is the same for every evaluation of the same figures, so a
 * node's decision depends only on its own figures and its share.
 * Rules, in the order they are applied to each node (the first that applies decides):
 *   1. held by an operator: stays, rule "hold";
 *   2. a feed the margins need is stale (market.stale): stays, rule "stale" (why names it);
 *   3. best = the mode with the highest margin among those the node can run (ties: the current
 *      mode, else the first of idle, mining, inference); best == current: stays, rule "best", streak 0;
 *   4. gain = margin(best) - margin(current); it must exceed both abs_threshold_usd_h and
 *      rel_threshold * |margin(current)|, else rule "threshold";
 *   5. the current mode is mining or inference and loses money (margin < 0) and best earns
 *      more: "leaving" (asymmetric): min_dwell_s does not apply and loss_evaluations
 *      consecutive evaluations suffice (idle is the floor every node pays for, not a mode
 *      that loses money: leaving idle is entering a better mode, with the full hysteresis);
 *      otherwise the node must have been in its mode min_dwell_s (rule "dwell") and best must
 *      have been the best for enter_evaluations consecutive evaluations (rule "streak");
 *   6. gain * horizon_s / 3600 must exceed the switching cost (rule "switch_cost"), where
 *      switching cost = switch_s / 3600 * max(0, margin(best) - margin(idle)) + fixed_cost_usd
 *      (while it switches a node earns nothing and draws its idle watts);
 *   7. switch: rule "switch" (or "leave" when 5's asymmetric path applied).
 * A node that cannot run a mode (its figures say 0 capacity: hashrate 0, inferences_per_s 0)
 * never gets it; idle is always possible.
 * Threading: reentrant; every object belongs to its caller.
 */
#ifndef HF_COORD_POLICY_H
#define HF_COORD_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

typedef enum hf_coord_mode {
	HF_COORD_IDLE = 0,
	HF_COORD_MINING,
	HF_COORD_INFERENCE,
	HF_COORD_NMODES,
} hf_coord_mode;

/* "idle", "mining", "inference"; NULL for another value. */
const char *hf_coord_mode_name(hf_coord_mode m);
/* 0 and *m for a mode name; HF_EINVAL otherwise. */
int hf_coord_mode_parse(const char *s, hf_coord_mode *m);

typedef enum hf_coord_infer_unit {
	HF_COORD_PER_1000 = 0,   /* price USD per 1,000 inferences; demand requests/s */
	HF_COORD_NODE_HOUR,      /* price USD per node-hour (times the class's price_factor);
				    demand contracted node-hours per hour (a number of nodes) */
} hf_coord_infer_unit;

/* The market at one instant (a feed snapshot, or one row of a series). */
typedef struct hf_coord_market {
	uint64_t at_ms;          /* wall clock (series: the row's time) */
	double btc_usd;          /* USD per BTC */
	double difficulty;       /* network difficulty */
	double fees_btc;         /* average fees per block, BTC */
	double subsidy_btc;      /* block subsidy, BTC (from the height or configured) */
	double power_usd_kwh;    /* USD per kWh */
	double infer_price;      /* in the unit of params.unit */
	double infer_demand;     /* in the unit of params.unit */
	bool stale;              /* a figure the margins need is stale: every node holds */
	char stale_why[160];     /* "btc_usd: 612 s old (max_age_s 600)", ... */
} hf_coord_market;

/* A node class's figures (configured), and a node's own (reported) with the same fields. */
typedef struct hf_coord_figures {
	double hashrate_hs;      /* mining hashrate, H/s (0: cannot mine) */
	double mining_watts;
	double inferences_per_s; /* inference capacity, inferences/s (0: cannot serve) */
	double inference_watts;
	double idle_watts;
	double switch_s;         /* seconds a mode switch takes (earns nothing, idle watts) */
} hf_coord_figures;

/* Which of a node's figures are its own (reported); the others are its class's. */
enum {
	HF_COORD_FIG_HASHRATE = 1u << 0,
	HF_COORD_FIG_MINING_W = 1u << 1,
	HF_COORD_FIG_INFER = 1u << 2,
	HF_COORD_FIG_INFER_W = 1u << 3,
	HF_COORD_FIG_IDLE_W = 1u << 4,
	HF_COORD_FIG_SWITCH = 1u << 5,
};

#define HF_COORD_CLASS_NAME_MAX 63

typedef struct hf_coord_class {
	char name[HF_COORD_CLASS_NAME_MAX + 1];
	hf_coord_figures fig;
	double price_factor;     /* node_hour pricing: this class's price = price * factor (1) */
} hf_coord_class;

typedef struct hf_coord_policy_params {
	hf_coord_infer_unit unit;
	double pool_fee;            /* 0..1 (0.02) */
	double headroom;            /* inference capacity planned over demand, 0..10 (0.10) */
	double rel_threshold;       /* gain over |margin(current)|, >= 0 (0.05) */
	double abs_threshold_usd_h; /* gain per node-hour, >= 0 (0.001) */
	unsigned enter_evaluations; /* consecutive evaluations a better mode must lead (3) */
	unsigned loss_evaluations;  /* the same when leaving a money-losing mode (1) */
	uint64_t min_dwell_s;       /* time in a mode before it is left for a better one (900) */
	uint64_t horizon_s;         /* expected gain over this must pay the switch (3600) */
	double fixed_cost_usd;      /* added to every switch's cost (0) */
	uint64_t evaluate_s;        /* live: seconds between evaluations (30) */
	/* Added by the policy helper (issue 15): verdicts without the why sentence (why = ""),
	 * the backtest's fast path: the sentence is ~80% of an evaluation's time and changes no
	 * decision (false; not a config key). */
	bool no_why;
} hf_coord_policy_params;

void hf_coord_policy_defaults(hf_coord_policy_params *p);

/* One node as the policy sees it. The caller fills the inputs; `state` is the policy's own and
 * must be kept by the caller between evaluations (zeroed for a new node). */
typedef struct hf_coord_pnode {
	const char *id;
	const hf_coord_class *cls;
	hf_coord_figures own;    /* reported figures; only those flagged in own_mask are used */
	unsigned own_mask;       /* HF_COORD_FIG_* */
	hf_coord_mode mode;      /* the mode it is in (or switching to) now */
	uint64_t mode_since_ms;  /* when it was sent to that mode */
	bool held;               /* an operator hold is in force */
	struct {
		hf_coord_mode lead;  /* the mode that led at the last evaluation */
		unsigned streak;     /* consecutive evaluations it has led */
	} state;
} hf_coord_pnode;

typedef enum hf_coord_rule {
	HF_COORD_RULE_HOLD = 0,
	HF_COORD_RULE_STALE,
	HF_COORD_RULE_BEST,
	HF_COORD_RULE_THRESHOLD,
	HF_COORD_RULE_DWELL,
	HF_COORD_RULE_STREAK,
	HF_COORD_RULE_SWITCH_COST,
	HF_COORD_RULE_SWITCH,
	HF_COORD_RULE_LEAVE,
	HF_COORD_NRULES,
} hf_coord_rule;

/* "hold", "stale", "best", "threshold", "dwell", "streak", "switch_cost", "switch", "leave". */
const char *hf_coord_rule_name(hf_coord_rule r);

typedef struct hf_coord_verdict {
	hf_coord_mode mode;          /* where the node should be after this evaluation */
	bool change;                 /* mode != the node's current mode */
	hf_coord_rule rule;
	hf_coord_mode best;          /* the highest-margin mode it can run */
	bool can[HF_COORD_NMODES];
	double revenue[HF_COORD_NMODES], cost[HF_COORD_NMODES], margin[HF_COORD_NMODES]; /* USD/h */
	double share;                /* inference it would serve (params.unit's demand unit) */
	double gain_usd_h;           /* margin(best) - margin(current) */
	double switch_cost_usd;      /* of a switch to best */
	hf_coord_figures used;       /* the figures the margins used (own or class) */
	unsigned own_mask;           /* which of them were the node's own */
	char why[256];               /* one sentence: "mining 1.23 USD/h beats idle -0.05 by ..." */
} hf_coord_verdict;

/* The figures a node's margins use: its own where flagged, else its class's. */
void hf_coord_policy_figures(const hf_coord_pnode *n, hf_coord_figures *out);

/* Each node's inference share (the ranking above) for demand * (1 + headroom): share[i] for
 * nodes[i]. Deterministic; O(n log n). HF_ENOMEM. */
int hf_coord_policy_shares(const hf_coord_policy_params *p, const hf_coord_market *m,
			   const hf_coord_pnode *nodes, size_t n, double *share);

/* Revenue, cost and margin of every mode for one node with a given inference share. */
void hf_coord_policy_margins(const hf_coord_policy_params *p, const hf_coord_market *m,
			     const hf_coord_class *cls, const hf_coord_figures *fig, double share,
			     double revenue[HF_COORD_NMODES], double cost[HF_COORD_NMODES],
			     double margin[HF_COORD_NMODES]);

/* The cost of a switch into mode `to` (formula in rule 6). */
double hf_coord_policy_switch_cost(const hf_coord_policy_params *p, const hf_coord_figures *fig,
				   const double margin[HF_COORD_NMODES], hf_coord_mode to);

/* Evaluates every node at now_ms: out[i] for nodes[i]; updates nodes[i].state. Does not change
 * nodes[i].mode (the caller applies verdicts it acts on, and sets mode_since_ms). HF_ENOMEM. */
int hf_coord_policy_eval(const hf_coord_policy_params *p, const hf_coord_market *m,
			 hf_coord_pnode *nodes, size_t n, uint64_t now_ms, hf_coord_verdict *out);

/* The verdict as JSON for an instruction's reason and the audit log:
 * {"policy": 1, "rule", "why", "mode", "from", "best", "margins": {mode: usd_h}, "revenue",
 *  "cost", "share", "gain_usd_h", "switch_cost_usd", "figures": {..., "own": [names]},
 *  "market": {"at_ms", "btc_usd", "difficulty", "fees_btc", "subsidy_btc", "power_usd_kwh",
 *  "inference_price", "inference_demand"}} (new reference; NULL when out of memory). "from" is
 * n->mode: call it before applying the verdict. A mode the node cannot run (and is not in) has
 * null margin, revenue and cost; a number that is not finite is null. */
json_t *hf_coord_verdict_json(const hf_coord_verdict *v, const hf_coord_pnode *n,
			      const hf_coord_market *m);

/* ---- the profit configuration (profit.json: the live source; fleet.json: the backtest) ----
 * {"policy": {params..., "inference_unit": "per_1000"|"node_hour"},
 *  "classes": {"NAME": {"hashrate_hs", "mining_watts", "inferences_per_s", "inference_watts",
 *                       "idle_watts", "switch_s", "price_factor"?}},
 *  "nodes": [{"id": "ID" | "match": "GLOB", "class": "NAME", "count"?: N}], "default_class"?,
 *  ...} (other top-level keys are the caller's: "feeds", the "mining" and "inference"
 *  payloads, "initial_mode"; the parser refuses unknown keys inside the sections it reads and
 *  ignores the other top-level keys). Policy keys: "inference_unit", "pool_fee", "headroom",
 *  "rel_threshold", "abs_threshold_usd_h", "enter_evaluations", "loss_evaluations",
 *  "min_dwell_s", "horizon_s", "fixed_cost_usd", "evaluate_s" (the params' names).
 */
#define HF_COORD_MAX_CLASSES 64

typedef struct hf_coord_fleet_spec {
	hf_coord_policy_params params;
	hf_coord_class classes[HF_COORD_MAX_CLASSES];
	size_t nclasses;
	struct hf_coord_node_spec {
		char id[64];         /* "" when match is set */
		char match[64];      /* fnmatch(3) glob over node ids (live) */
		size_t cls;          /* index into classes */
		unsigned count;      /* backtest: this many nodes id-1..id-N (1: just id) */
	} *nodes;
	size_t nnodes;
	long default_class;      /* index, or -1: a node matching nothing has no class (refused) */
	/* Added by the policy helper (issue 15): class_of's lookup index, built by
	 * hf_coord_fleet_spec_parse (O(log n) per "id" lookup, a scan of the "match" entries only);
	 * NULL in a spec built by hand, which class_of then scans in order. Read-only for callers. */
	size_t *by_id;           /* indexes of "id" entries, sorted by (id, index) */
	size_t nby_id;
	size_t *globs;           /* indexes of "match" entries, in order */
	size_t nglobs;
} hf_coord_fleet_spec;

/* Parses the sections "policy", "classes", "nodes", "default_class" of
 * root; strict (unknown keys, bad types, non-finite or negative numbers refused; eb names the
 * path, e.g. "classes.h200.inference_watts: expected a finite number >= 0"). Also refused: two
 * "id" entries with the same id, more than 100,000 node entries. On failure *out is left empty
 * (defaults, no classes, no nodes); hf_coord_fleet_spec_clear is safe on it either way. */
int hf_coord_fleet_spec_parse(const json_t *root, hf_coord_fleet_spec *out, hf_errbuf *eb);
void hf_coord_fleet_spec_clear(hf_coord_fleet_spec *s);
/* The class of node id (first node entry whose id equals it or whose glob matches, else the
 * default class); NULL when none. An "id" entry with a count N > 1 also covers ID-1 .. ID-N
 * (the ids the backtest gives those nodes; no leading zeros). */
const hf_coord_class *hf_coord_fleet_spec_class_of(const hf_coord_fleet_spec *s,
						   const char *id);

#endif
