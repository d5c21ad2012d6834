/* hf_coord_backtest: replays a series against a described fleet and sets side by side the
 * policy (hf_coord_policy_eval at every row, exactly as the live source runs it), every static
 * mode, and the hindsight optimum: a dynamic programme over the whole series with the same
 * margins, switching costs and dwell rule.
 *
 * Accounting (the same for all three; runtime/coord/README.md "Backtest"): row i's market
 * holds over [t_i, t_i+1) (the last row only ends the series). A node in mode m over that
 * step earns margin_m(row i) * step / 3600, with its inference share computed for the real
 * demand (no headroom: headroom is what the policy plans for, not what it is paid). A switch
 * at row i (the mode differs from row i-1's; the initial mode counts as row -1's) costs
 * hf_coord_policy_switch_cost at row i, and is allowed only when the node has been in its mode
 * at least min_dwell_s at t_i or its mode is not idle and its margin at row i is < 0 (the
 * policy's own rule 5,
 * so the optimum never has a freedom the policy lacks). Every node starts in initial_mode,
 * free to switch at row 0. Figures are the classes' (a backtest has no reports).
 * Shares: nodes are ranked once per row (hf_coord_policy_shares); a node's share depends only
 * on the row and the ranking, so nodes are independent and the optimum is one exact DP per
 * node: state (mode, rows since it was entered, capped where the dwell is met), O(rows * 3 *
 * dwell_rows).
 * Threading: reentrant.
 */
#ifndef HF_COORD_BACKTEST_H
#define HF_COORD_BACKTEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hf_coord_policy.h"
#include "hf_coord_series.h"
#include "hf_error.h"

/* One strategy's totals over the fleet. */
typedef struct hf_coord_bt_totals {
	double margin_usd;           /* captured, switching costs deducted */
	double switch_cost_usd;
	uint64_t switches;
	double node_hours;
	double switches_per_node_hour;
	double switching_s;          /* time lost switching (sum of switch_s per switch) */
	double hours_in[HF_COORD_NMODES]; /* node-hours in each mode */
} hf_coord_bt_totals;

/* A stretch where the policy earned less than the optimum: one node, consecutive rows. */
typedef struct hf_coord_bt_loss {
	char node[64];
	uint64_t from_ms, to_ms;
	hf_coord_mode policy_mode, optimum_mode; /* the most common in the stretch */
	double lost_usd;             /* optimum's margin - the policy's over the stretch */
	hf_coord_rule rule;          /* the policy's most common rule there ("streak", "dwell") */
} hf_coord_bt_loss;

#define HF_COORD_BT_MAX_LOSSES 10

typedef struct hf_coord_bt_result {
	size_t nodes, rows;
	uint64_t step_ms, from_ms, to_ms;
	hf_coord_bt_totals policy, optimum, statics[HF_COORD_NMODES];
	hf_coord_mode best_static;
	double captured;             /* policy.margin_usd / optimum.margin_usd (NaN when the
					optimum is <= 0) */
	double lost_by_rule[HF_COORD_NRULES]; /* the policy's loss vs the optimum, by the rule
						 that kept it from the optimum's mode */
	hf_coord_bt_loss losses[HF_COORD_BT_MAX_LOSSES]; /* the largest, largest first */
	size_t nlosses;
	/* Added by the backtest's implementation (compatible): */
	size_t static_idle[HF_COORD_NMODES]; /* nodes that cannot run that static's mode (idle in
						it instead) */
	size_t loss_alike[HF_COORD_BT_MAX_LOSSES]; /* other nodes with the same stretch (same
						     rows, modes, rule and loss) */
	size_t groups;               /* distinct (class, share series): one DP each */
} hf_coord_bt_result;

typedef struct hf_coord_bt_opts {
	hf_coord_mode initial_mode;  /* "initial_mode" in the fleet file (mining) */
} hf_coord_bt_opts;

/* The fleet (its "nodes" with ids and counts; glob entries are refused here: a backtest needs
 * concrete nodes) against series. HF_EINVAL (an empty fleet or series, a series that is not
 * evenly spaced), HF_ENOMEM. A node whose class cannot run o->initial_mode starts idle (in
 * the policy, the statics and the optimum alike); the policy is evaluated once per row. */
int hf_coord_backtest_run(const hf_coord_fleet_spec *fleet, const hf_coord_bt_opts *o,
			  const hf_coord_series *s, hf_coord_bt_result *res, hf_errbuf *eb);

/* The accounting above for one node's schedule (modes[i] at row i), given the market rows and
 * the node's shares per row: the totals (added to *t) and whether the schedule is feasible
 * (false: a switch broke the dwell rule, or a mode the class cannot run; *t untouched). The
 * optimum, the policy and the statics are all priced with it; the tests brute-force schedules
 * with it. The initial mode counts as entered before row 0 (its dwell is met). */
bool hf_coord_backtest_account(const hf_coord_policy_params *p, const hf_coord_class *cls,
			       const hf_coord_series *s, const double *share,
			       hf_coord_mode initial, const hf_coord_mode *modes,
			       hf_coord_bt_totals *t);

/* The optimum schedule of one node (modes: s->n entries, written) and its margin. */
int hf_coord_backtest_optimum(const hf_coord_policy_params *p, const hf_coord_class *cls,
			      const hf_coord_series *s, const double *share,
			      hf_coord_mode initial, hf_coord_mode *modes, double *margin_usd,
			      hf_errbuf *eb);

/* Side by side as text (the CLI's output): the three strategies, captured %, switches per
 * node-hour, time lost switching, where the policy loses (by rule, the largest stretches). */
void hf_coord_backtest_print(FILE *f, const hf_coord_bt_result *r);
/* The same as JSON (--json). */
json_t *hf_coord_backtest_json(const hf_coord_bt_result *r);

#endif
