/* Unit tests for hf_coord_policy: the margin formulas against hand-computed values, the switch
 * cost, inference shares (efficiency and margin ranking, headroom, ties by id), every rule of the
 * evaluation (hold, stale, best, threshold abs/rel at the boundary, dwell, streak, the asymmetric
 * leave, switch cost, ties), determinism, 100,000 nodes, the verdict JSON, and the fleet spec
 * parser's refusals (each naming its path) and class_of.
 * Rule tests use an "exact" market whose margins are dyadic fractions (power 0, node_hour
 * pricing, a hashrate of 2^40 at difficulty 1 and 2^-20 USD/BTC), so boundaries are exact.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_coord_policy.h"

#define EPS 1e-12

static bool near(double a, double b)
{
	return fabs(a - b) <= EPS * (fabs(b) > 1 ? fabs(b) : 1);
}

/* ---- a real-ish market: BTC 97,000, difficulty 1.1e14, subsidy 3.125, fees 0.02 ---- */

static hf_coord_market real_market(void)
{
	hf_coord_market m = { .at_ms = 1764547200000ull, .btc_usd = 97000, .difficulty = 1.1e14,
			      .fees_btc = 0.02, .subsidy_btc = 3.125, .power_usd_kwh = 0.05,
			      .infer_price = 0.002, .infer_demand = 500 };
	return m;
}

Test(coord_policy, names_and_defaults)
{
	hf_coord_policy_params p;
	hf_coord_mode m;

	cr_assert_str_eq(hf_coord_mode_name(HF_COORD_IDLE), "idle");
	cr_assert_str_eq(hf_coord_mode_name(HF_COORD_MINING), "mining");
	cr_assert_str_eq(hf_coord_mode_name(HF_COORD_INFERENCE), "inference");
	cr_assert_null(hf_coord_mode_name(HF_COORD_NMODES));
	cr_assert_eq(hf_coord_mode_parse("inference", &m), 0);
	cr_assert_eq(m, HF_COORD_INFERENCE);
	cr_assert_eq(hf_coord_mode_parse("Mining", &m), HF_EINVAL);
	cr_assert_eq(hf_coord_mode_parse(NULL, &m), HF_EINVAL);
	cr_assert_str_eq(hf_coord_rule_name(HF_COORD_RULE_SWITCH_COST), "switch_cost");
	cr_assert_str_eq(hf_coord_rule_name(HF_COORD_RULE_LEAVE), "leave");
	cr_assert_null(hf_coord_rule_name(HF_COORD_NRULES));
	hf_coord_policy_defaults(&p);
	cr_assert_eq(p.unit, HF_COORD_PER_1000);
	cr_assert(p.pool_fee == 0.02 && p.headroom == 0.10 && p.rel_threshold == 0.05);
	cr_assert(p.abs_threshold_usd_h == 0.001 && p.fixed_cost_usd == 0);
	cr_assert_eq(p.enter_evaluations, 3);
	cr_assert_eq(p.loss_evaluations, 1);
	cr_assert_eq(p.min_dwell_s, 900);
	cr_assert_eq(p.horizon_s, 3600);
	cr_assert_eq(p.evaluate_s, 30);
}

/* 200 TH/s at 3,500 W, 0.05 USD/kWh: 2e14 * 3600 * 3.145 * 97000 / (1.1e14 * 2^32) = 0.46491369
 * USD/h before the pool fee, 0.45561542 after 2%; cost 3.5 kW * 0.05 = 0.175 USD/h. */
Test(coord_policy, mining_margin_hand_computed)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_figures f = { .hashrate_hs = 2e14, .mining_watts = 3500, .idle_watts = 20 };
	double rev[HF_COORD_NMODES], cost[HF_COORD_NMODES], mar[HF_COORD_NMODES];

	hf_coord_policy_defaults(&p);
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev, cost, mar);
	cr_assert(fabs(rev[HF_COORD_MINING] - 0.455615415) < 1e-9, "%.12f", rev[HF_COORD_MINING]);
	cr_assert(fabs(cost[HF_COORD_MINING] - 0.175) < 1e-12);
	cr_assert(fabs(mar[HF_COORD_MINING] - 0.280615415) < 1e-9, "%.12f", mar[HF_COORD_MINING]);
	/* idle: no revenue, 20 W * 0.05 = 0.001 USD/h */
	cr_assert_eq(rev[HF_COORD_IDLE], 0);
	cr_assert(fabs(cost[HF_COORD_IDLE] - 0.001) < 1e-15);
	cr_assert(fabs(mar[HF_COORD_IDLE] + 0.001) < 1e-15);
	/* no pool fee: the gross figure */
	p.pool_fee = 0;
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev, cost, mar);
	cr_assert(fabs(rev[HF_COORD_MINING] - 0.464913689) < 1e-9, "%.12f", rev[HF_COORD_MINING]);
	/* a 100% pool fee leaves nothing */
	p.pool_fee = 1;
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev, cost, mar);
	cr_assert_eq(rev[HF_COORD_MINING], 0);
	cr_assert(fabs(mar[HF_COORD_MINING] + 0.175) < 1e-12);
}

Test(coord_policy, pool_fee_scales_revenue)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_figures f = { .hashrate_hs = 1.1e14, .mining_watts = 3250 };
	double rev0[HF_COORD_NMODES], rev[HF_COORD_NMODES], c[HF_COORD_NMODES], mar[HF_COORD_NMODES];

	hf_coord_policy_defaults(&p);
	p.pool_fee = 0;
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev0, c, mar);
	/* hashrate == difficulty: 3600 * 3.145 * 97000 / 2^32 */
	cr_assert(near(rev0[HF_COORD_MINING], 3600.0 * 3.145 * 97000 / 4294967296.0));
	p.pool_fee = 0.025;
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev, c, mar);
	cr_assert(near(rev[HF_COORD_MINING], rev0[HF_COORD_MINING] * 0.975));
	/* a difficulty of 0 (never from a feed) earns nothing rather than infinity */
	m.difficulty = 0;
	hf_coord_policy_margins(&p, &m, NULL, &f, 0, rev, c, mar);
	cr_assert_eq(rev[HF_COORD_MINING], 0);
}

/* per_1000: 0.002 USD per 1,000 inferences at 500/s = 0.002 * 3.6 * 500 = 3.6 USD/h, minus
 * 600 W * 0.05 = 0.03. node_hour: 2 USD/node-hour * factor 1.5 * 0.5 node-hours/h = 1.5. */
Test(coord_policy, inference_margin_both_units)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_class cls = { .name = "h200", .price_factor = 1.5 };
	hf_coord_figures f = { .inferences_per_s = 4000, .inference_watts = 600, .idle_watts = 90 };
	double rev[HF_COORD_NMODES], cost[HF_COORD_NMODES], mar[HF_COORD_NMODES];

	hf_coord_policy_defaults(&p);
	hf_coord_policy_margins(&p, &m, &cls, &f, 500, rev, cost, mar);
	cr_assert(near(rev[HF_COORD_INFERENCE], 3.6), "%.12f", rev[HF_COORD_INFERENCE]);
	cr_assert(near(cost[HF_COORD_INFERENCE], 0.03));
	cr_assert(near(mar[HF_COORD_INFERENCE], 3.57));
	cr_assert(near(mar[HF_COORD_IDLE], -0.0045));
	/* nothing to serve: pays its watts */
	hf_coord_policy_margins(&p, &m, &cls, &f, 0, rev, cost, mar);
	cr_assert_eq(rev[HF_COORD_INFERENCE], 0);
	cr_assert(near(mar[HF_COORD_INFERENCE], -0.03));
	p.unit = HF_COORD_NODE_HOUR;
	m.infer_price = 2.0;
	hf_coord_policy_margins(&p, &m, &cls, &f, 0.5, rev, cost, mar);
	cr_assert(near(rev[HF_COORD_INFERENCE], 1.5), "%.12f", rev[HF_COORD_INFERENCE]);
	cr_assert(near(mar[HF_COORD_INFERENCE], 1.47));
	/* no class: factor 1 */
	hf_coord_policy_margins(&p, &m, NULL, &f, 0.5, rev, cost, mar);
	cr_assert(near(rev[HF_COORD_INFERENCE], 1.0));
}

Test(coord_policy, switch_cost_formula)
{
	hf_coord_policy_params p;
	hf_coord_figures f = { .switch_s = 36 };
	double mar[HF_COORD_NMODES] = { [HF_COORD_IDLE] = -0.5, [HF_COORD_MINING] = 1.5,
					[HF_COORD_INFERENCE] = -2 };

	hf_coord_policy_defaults(&p);
	/* 36 s = 0.01 h of (1.5 - (-0.5)) = 0.02 USD */
	cr_assert(near(hf_coord_policy_switch_cost(&p, &f, mar, HF_COORD_MINING), 0.02));
	/* into idle, or into a mode worse than idle: nothing lost but the fixed cost */
	cr_assert_eq(hf_coord_policy_switch_cost(&p, &f, mar, HF_COORD_IDLE), 0);
	cr_assert_eq(hf_coord_policy_switch_cost(&p, &f, mar, HF_COORD_INFERENCE), 0);
	p.fixed_cost_usd = 0.25;
	cr_assert(near(hf_coord_policy_switch_cost(&p, &f, mar, HF_COORD_MINING), 0.27));
	cr_assert(near(hf_coord_policy_switch_cost(&p, &f, mar, HF_COORD_IDLE), 0.25));
}

Test(coord_policy, figures_own_or_class)
{
	hf_coord_class cls = { .name = "c", .fig = { 1, 2, 3, 4, 5, 6 } };
	hf_coord_pnode n = { .id = "a", .cls = &cls, .own = { 10, 20, 30, 40, 50, 60 } };
	hf_coord_figures f;

	hf_coord_policy_figures(&n, &f);
	cr_assert(f.hashrate_hs == 1 && f.mining_watts == 2 && f.inferences_per_s == 3);
	cr_assert(f.inference_watts == 4 && f.idle_watts == 5 && f.switch_s == 6);
	n.own_mask = HF_COORD_FIG_HASHRATE | HF_COORD_FIG_INFER_W | HF_COORD_FIG_SWITCH;
	hf_coord_policy_figures(&n, &f);
	cr_assert(f.hashrate_hs == 10 && f.mining_watts == 2 && f.inferences_per_s == 3);
	cr_assert(f.inference_watts == 40 && f.idle_watts == 5 && f.switch_s == 60);
	n.own_mask = HF_COORD_FIG_MINING_W | HF_COORD_FIG_INFER | HF_COORD_FIG_IDLE_W;
	hf_coord_policy_figures(&n, &f);
	cr_assert(f.hashrate_hs == 1 && f.mining_watts == 20 && f.inferences_per_s == 30);
	cr_assert(f.inference_watts == 4 && f.idle_watts == 50 && f.switch_s == 6);
	n.cls = NULL;
	n.own_mask = 0;
	hf_coord_policy_figures(&n, &f);
	cr_assert(f.hashrate_hs == 0 && f.idle_watts == 0 && f.inferences_per_s == 0);
}

/* ---- shares ---- */

static void set_node(hf_coord_pnode *n, const char *id, const hf_coord_class *cls, double ips,
		     double watts)
{
	memset(n, 0, sizeof *n);
	n->id = id;
	n->cls = cls;
	n->own.inferences_per_s = ips;
	n->own.inference_watts = watts;
	n->own_mask = HF_COORD_FIG_INFER | HF_COORD_FIG_INFER_W;
}

Test(coord_policy, shares_most_efficient_first_with_headroom)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_pnode n[5];
	double s[5];

	hf_coord_policy_defaults(&p);
	p.headroom = 0;
	set_node(&n[0], "slow", NULL, 1000, 500);    /* 2 inferences/J */
	set_node(&n[1], "fast", NULL, 4000, 500);    /* 8 /J */
	set_node(&n[2], "mid", NULL, 3000, 750);     /* 4 /J */
	set_node(&n[3], "none", NULL, 0, 100);       /* cannot serve */
	set_node(&n[4], "big", NULL, 100000, 50000); /* 2 /J, ties "slow": "big" < "slow" */
	m.infer_demand = 5000;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 5, s), 0);
	cr_assert_eq(s[1], 4000);
	cr_assert_eq(s[2], 1000);
	cr_assert_eq(s[0], 0);
	cr_assert_eq(s[3], 0);
	cr_assert_eq(s[4], 0);
	/* headroom 100%: 10,000 planned: fast 4000, mid 3000, big (2/J, id "big") 3000, slow 0 */
	p.headroom = 1.0;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 5, s), 0);
	cr_assert_eq(s[1], 4000);
	cr_assert_eq(s[2], 3000);
	cr_assert_eq(s[4], 3000);
	cr_assert_eq(s[0], 0);
	cr_assert_eq(s[3], 0);
	/* demand over capacity: everyone who can serve is full, the one who cannot gets nothing */
	m.infer_demand = 1e9;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 5, s), 0);
	cr_assert(s[0] == 1000 && s[1] == 4000 && s[2] == 3000 && s[4] == 100000 && s[3] == 0);
	/* no demand (or a NaN one): nobody serves */
	m.infer_demand = 0;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 5, s), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(s[i], 0);
	m.infer_demand = NAN;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 5, s), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(s[i], 0);
}

Test(coord_policy, shares_ties_by_id_and_zero_watts_first)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_pnode n[4];
	double s[4];

	hf_coord_policy_defaults(&p);
	p.headroom = 0;
	set_node(&n[0], "node-c", NULL, 100, 10);
	set_node(&n[1], "node-a", NULL, 100, 10);
	set_node(&n[2], "node-b", NULL, 100, 10);
	set_node(&n[3], "node-z", NULL, 1, 0); /* 0 W: infinitely efficient, ranked first */
	m.infer_demand = 151;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 4, s), 0);
	cr_assert_eq(s[3], 1);
	cr_assert_eq(s[1], 100);
	cr_assert_eq(s[2], 50);
	cr_assert_eq(s[0], 0);
}

/* A node held in inference serves whatever: it ranks first; one held elsewhere gets nothing. */
Test(coord_policy, shares_and_operator_holds)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_pnode n[3];
	double s[3];

	hf_coord_policy_defaults(&p);
	p.headroom = 0;
	set_node(&n[0], "best", NULL, 100, 1);
	set_node(&n[1], "worst", NULL, 100, 100);
	set_node(&n[2], "mid", NULL, 100, 10);
	m.infer_demand = 150;
	n[0].held = true;
	n[0].mode = HF_COORD_MINING;
	n[1].held = true;
	n[1].mode = HF_COORD_INFERENCE;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 3, s), 0);
	cr_assert_eq(s[0], 0);
	cr_assert_eq(s[1], 100);
	cr_assert_eq(s[2], 50);
	n[0].held = n[1].held = false;
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 3, s), 0);
	cr_assert(s[0] == 100 && s[2] == 50 && s[1] == 0);
}

Test(coord_policy, shares_node_hour_by_margin_with_price_factor)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	hf_coord_class a = { .name = "a", .price_factor = 1.0 }, b = { .name = "b",
								       .price_factor = 2.0 };
	hf_coord_pnode n[4];
	double s[4];

	hf_coord_policy_defaults(&p);
	p.unit = HF_COORD_NODE_HOUR;
	p.headroom = 0.5;
	m.infer_price = 1.0;
	m.power_usd_kwh = 0.1;
	set_node(&n[0], "a-1", &a, 10, 100);   /* 1 - 0.01 = 0.99 */
	set_node(&n[1], "b-1", &b, 1, 2000);   /* 2 - 0.2 = 1.8: first despite few inferences/s */
	set_node(&n[2], "a-0", &a, 10, 100);   /* 0.99, ties a-1 by id: before it */
	set_node(&n[3], "b-0", &b, 0, 0);      /* cannot serve */
	m.infer_demand = 1.0;                  /* * 1.5 = 1.5 node-hours per hour */
	cr_assert_eq(hf_coord_policy_shares(&p, &m, n, 4, s), 0);
	cr_assert_eq(s[1], 1.0);
	cr_assert_eq(s[2], 0.5);
	cr_assert_eq(s[0], 0);
	cr_assert_eq(s[3], 0);
}

/* ---- the rules, on an exact market ---- */

typedef struct fx {
	hf_coord_policy_params p;
	hf_coord_market m;
	hf_coord_class c;
	hf_coord_pnode n;
	hf_coord_verdict v;
} fx;

#define EXACT_MINING 0.87890625 /* 2^40 H/s * 3600 * 2^-20 USD / 2^32 */

/* Power 0 (every cost 0), mining EXACT_MINING USD/h, inference `price` USD/h (node_hour, one
 * node-hour of demand, factor 1); thresholds, dwell, streaks and switch costs neutral. */
static void fx_init(fx *f, double price)
{
	memset(f, 0, sizeof *f);
	hf_coord_policy_defaults(&f->p);
	f->p.unit = HF_COORD_NODE_HOUR;
	f->p.headroom = 0;
	f->p.rel_threshold = 0;
	f->p.abs_threshold_usd_h = 0;
	f->p.enter_evaluations = 1;
	f->p.loss_evaluations = 1;
	f->p.min_dwell_s = 0;
	f->m = (hf_coord_market){ .at_ms = 1000, .btc_usd = 1.0 / 1048576, .difficulty = 1,
				  .subsidy_btc = 1, .infer_price = price, .infer_demand = 1 };
	f->p.pool_fee = 0;
	snprintf(f->c.name, sizeof f->c.name, "exact");
	f->c.fig = (hf_coord_figures){ .hashrate_hs = 1099511627776.0, .inferences_per_s = 1 };
	f->c.price_factor = 1;
	f->n.id = "n1";
	f->n.cls = &f->c;
	f->n.mode = HF_COORD_IDLE;
}

static hf_coord_rule run(fx *f, uint64_t now_ms)
{
	cr_assert_eq(hf_coord_policy_eval(&f->p, &f->m, &f->n, 1, now_ms, &f->v), 0);
	return f->v.rule;
}

Test(coord_policy, exact_market_is_exact)
{
	fx f;

	fx_init(&f, 0.5);
	run(&f, 0);
	cr_assert_eq(f.v.margin[HF_COORD_MINING], EXACT_MINING);
	cr_assert_eq(f.v.margin[HF_COORD_INFERENCE], 0.5);
	cr_assert_eq(f.v.margin[HF_COORD_IDLE], 0);
	cr_assert_eq(f.v.share, 1);
}

Test(coord_policy, rule_best_stays)
{
	fx f;

	fx_init(&f, 0.5);
	f.n.mode = HF_COORD_MINING;
	f.n.state.lead = HF_COORD_INFERENCE;
	f.n.state.streak = 2;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_eq(f.v.mode, HF_COORD_MINING);
	cr_assert_eq(f.v.best, HF_COORD_MINING);
	cr_assert_not(f.v.change);
	cr_assert_eq(f.v.gain_usd_h, 0);
	cr_assert_eq(f.n.state.streak, 0);
	cr_assert_eq(f.n.mode, HF_COORD_MINING);
	cr_assert(strstr(f.v.why, "mining earns the most at 0.879 USD/h"), "%s", f.v.why);
}

Test(coord_policy, rule_hold_wins_over_everything)
{
	fx f;

	fx_init(&f, 5);
	f.n.held = true;
	f.m.stale = true;
	f.n.state.lead = HF_COORD_INFERENCE;
	f.n.state.streak = 7;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_HOLD);
	cr_assert_eq(f.v.mode, HF_COORD_IDLE);
	cr_assert_not(f.v.change);
	/* held in idle, it cannot take inference demand (share 0): its best is mining */
	cr_assert_eq(f.v.share, 0);
	cr_assert_eq(f.v.best, HF_COORD_MINING);
	cr_assert_eq(f.n.state.streak, 0);
	cr_assert(strstr(f.v.why, "held by an operator in idle"), "%s", f.v.why);
	cr_assert(strstr(f.v.why, "the best would be mining at 0.879 USD/h"), "%s", f.v.why);
}

Test(coord_policy, rule_stale_names_the_feed)
{
	fx f;

	fx_init(&f, 5);
	f.m.stale = true;
	snprintf(f.m.stale_why, sizeof f.m.stale_why, "btc_usd: 612 s old (max_age_s 600)");
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STALE);
	cr_assert_eq(f.v.mode, HF_COORD_IDLE);
	cr_assert_not(f.v.change);
	cr_assert(strstr(f.v.why, "btc_usd: 612 s old (max_age_s 600)"), "%s", f.v.why);
	cr_assert(strstr(f.v.why, "stale"), "%s", f.v.why);
	/* a NaN figure that slipped through holds too, and never produces a switch */
	fx_init(&f, NAN);
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STALE);
	cr_assert_not(f.v.change);
	cr_assert(strstr(f.v.why, "not a finite number"), "%s", f.v.why);
}

Test(coord_policy, rule_threshold_absolute_boundary)
{
	fx f;

	/* idle (0) -> inference 0.5: a gain of exactly the threshold is not enough */
	fx_init(&f, 0.5);
	f.c.fig.hashrate_hs = 0;
	f.p.abs_threshold_usd_h = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_THRESHOLD);
	cr_assert_not(f.v.change);
	cr_assert_eq(f.v.gain_usd_h, 0.5);
	cr_assert(strstr(f.v.why, "not over the threshold"), "%s", f.v.why);
	f.p.abs_threshold_usd_h = 0.4990234375;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert(f.v.change);
	cr_assert_eq(f.v.mode, HF_COORD_INFERENCE);
}

Test(coord_policy, rule_threshold_relative_boundary)
{
	fx f;

	/* mining 0.87890625 -> inference: rel 0.5 wants a gain over 0.439453125 */
	fx_init(&f, EXACT_MINING + 0.439453125);
	f.n.mode = HF_COORD_MINING;
	f.p.rel_threshold = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_THRESHOLD);
	cr_assert_eq(f.v.gain_usd_h, 0.439453125);
	cr_assert(strstr(f.v.why, "50%"), "%s", f.v.why);
	f.m.infer_price = EXACT_MINING + 0.439453125 + 0.0009765625;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert_eq(f.v.mode, HF_COORD_INFERENCE);
	/* both thresholds must hold: the absolute one refuses what the relative one allows */
	f.p.abs_threshold_usd_h = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_THRESHOLD);
}

Test(coord_policy, rule_dwell_just_before_and_at)
{
	fx f;

	fx_init(&f, 2);
	f.n.mode = HF_COORD_MINING;
	f.n.mode_since_ms = 100000;
	f.p.min_dwell_s = 900;
	cr_assert_eq(run(&f, 100000 + 899999), HF_COORD_RULE_DWELL);
	cr_assert_not(f.v.change);
	cr_assert(strstr(f.v.why, "899 of 900 s"), "%s", f.v.why);
	cr_assert_eq(run(&f, 100000 + 900000), HF_COORD_RULE_SWITCH);
	cr_assert(f.v.change);
	/* a clock before mode_since counts as 0 s in the mode */
	cr_assert_eq(run(&f, 5), HF_COORD_RULE_DWELL);
}

Test(coord_policy, rule_streak_counts_and_resets)
{
	fx f;

	fx_init(&f, 2); /* idle -> inference 2 (best), mining 0.879 */
	f.p.enter_evaluations = 3;
	f.c.fig.idle_watts = 0;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.lead, HF_COORD_INFERENCE);
	cr_assert_eq(f.n.state.streak, 1);
	cr_assert(strstr(f.v.why, "leads for 1/3 evaluations"), "%s", f.v.why);
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.streak, 2);
	/* the lead changes to mining: counting starts again */
	f.m.infer_price = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.lead, HF_COORD_MINING);
	cr_assert_eq(f.n.state.streak, 1);
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert_eq(f.v.mode, HF_COORD_MINING);
	cr_assert(strstr(f.v.why, "for 3/3 evaluations"), "%s", f.v.why);
	/* the caller applies it; then mining is best == current: streak back to 0 */
	f.n.mode = HF_COORD_MINING;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_eq(f.n.state.streak, 0);
	/* one evaluation with inference ahead, one with mining ahead again: the streak resets */
	f.m.infer_price = 2;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.streak, 1);
	f.m.infer_price = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	f.m.infer_price = 2;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.streak, 1);
}

/* The lead is counted whether or not it cleared the thresholds: once it does, the evaluations
 * it already led count. */
Test(coord_policy, streak_counts_below_the_threshold_too)
{
	fx f;

	fx_init(&f, 0.5);
	f.c.fig.hashrate_hs = 0;
	f.p.enter_evaluations = 2;
	f.p.abs_threshold_usd_h = 0.75;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_THRESHOLD);
	cr_assert_eq(f.n.state.lead, HF_COORD_INFERENCE);
	cr_assert_eq(f.n.state.streak, 1);
	f.m.infer_price = 1;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert_eq(f.n.state.streak, 2);
	/* a stale market starts the count again */
	f.m.stale = true;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STALE);
	cr_assert_eq(f.n.state.streak, 0);
	f.m.stale = false;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_STREAK);
	cr_assert_eq(f.n.state.streak, 1);
}

/* Two nodes: "loser" mines at a loss (its mining draws power), "winner" mines at a profit; for
 * both inference is better. The loser leaves after loss_evaluations ignoring the dwell; the
 * winner waits for the dwell and enter_evaluations. */
Test(coord_policy, rule_asymmetric_leave)
{
	hf_coord_policy_params p;
	hf_coord_class lose = { .name = "lose", .price_factor = 1,
				.fig = { .hashrate_hs = 1099511627776.0, .mining_watts = 10000,
					 .inferences_per_s = 1 } };
	hf_coord_class win = { .name = "win", .price_factor = 1,
			       .fig = { .hashrate_hs = 1099511627776.0, .inferences_per_s = 1 } };
	hf_coord_market m = { .at_ms = 1, .btc_usd = 1.0 / 1048576, .difficulty = 1,
			      .subsidy_btc = 1, .power_usd_kwh = 0.125, .infer_price = 2,
			      .infer_demand = 2 };
	hf_coord_pnode n[2] = {
		{ .id = "loser", .cls = &lose, .mode = HF_COORD_MINING, .mode_since_ms = 1000 },
		{ .id = "winner", .cls = &win, .mode = HF_COORD_MINING, .mode_since_ms = 1000 },
	};
	hf_coord_verdict v[2];

	fx f;
	fx_init(&f, 0);
	p = f.p;
	p.enter_evaluations = 3;
	p.loss_evaluations = 2;
	p.min_dwell_s = 900;
	cr_assert_eq(hf_coord_policy_eval(&p, &m, n, 2, 1000, v), 0);
	cr_assert_lt(v[0].margin[HF_COORD_MINING], 0); /* 0.879 - 1.25 */
	cr_assert_eq(v[0].rule, HF_COORD_RULE_STREAK);
	cr_assert(strstr(v[0].why, "1/2"), "%s", v[0].why);
	cr_assert_eq(v[1].rule, HF_COORD_RULE_DWELL);
	cr_assert_eq(hf_coord_policy_eval(&p, &m, n, 2, 2000, v), 0);
	cr_assert_eq(v[0].rule, HF_COORD_RULE_LEAVE);
	cr_assert(v[0].change);
	cr_assert_eq(v[0].mode, HF_COORD_INFERENCE);
	cr_assert(strstr(v[0].why, "leaves a loss"), "%s", v[0].why);
	cr_assert_eq(v[1].rule, HF_COORD_RULE_DWELL);
	cr_assert_not(v[1].change);
	/* after the dwell the winner has led for 3 evaluations: it switches (not "leave") */
	cr_assert_eq(hf_coord_policy_eval(&p, &m, n, 2, 1000 + 900000, v), 0);
	cr_assert_eq(v[1].rule, HF_COORD_RULE_SWITCH);
	cr_assert_eq(v[1].mode, HF_COORD_INFERENCE);
}

/* Idle is the floor, not a mode that loses money: a node idle (idle watts: a negative margin)
 * enters a paying mode only after the dwell and enter_evaluations, never by the fast path. */
Test(coord_policy, idle_is_not_left_by_the_fast_path)
{
	fx f;

	fx_init(&f, 0);
	f.c.fig.idle_watts = 1000;      /* idle: -0.125 USD/h */
	f.m.power_usd_kwh = 0.125;
	f.p.enter_evaluations = 3;
	f.p.loss_evaluations = 1;
	f.p.min_dwell_s = 900;
	f.n.mode = HF_COORD_IDLE;
	f.n.mode_since_ms = 1000;
	cr_assert_eq(run(&f, 2000), HF_COORD_RULE_DWELL);
	cr_assert_lt(f.v.margin[HF_COORD_IDLE], 0);
	cr_assert_eq(f.v.best, HF_COORD_MINING);
	cr_assert_not(f.v.change);
	cr_assert_eq(run(&f, 1000 + 900000), HF_COORD_RULE_STREAK); /* 2/3 */
	cr_assert_eq(run(&f, 1000 + 930000), HF_COORD_RULE_SWITCH);  /* 3/3, not "leave" */
	cr_assert(f.v.change);
	cr_assert_eq(f.v.mode, HF_COORD_MINING);
	cr_assert_null(strstr(f.v.why, "leaves a loss"), "%s", f.v.why);
}

Test(coord_policy, rule_switch_cost_over_horizon)
{
	fx f;

	/* idle 0 -> inference 0.5; a 3600 s switch costs 1 h of 0.5 = 0.5 USD; horizon 1 h: 0.5 */
	fx_init(&f, 0.5);
	f.c.fig.hashrate_hs = 0;
	f.c.fig.switch_s = 3600;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH_COST);
	cr_assert_eq(f.v.switch_cost_usd, 0.5);
	cr_assert_not(f.v.change);
	cr_assert(strstr(f.v.why, "does not pay the switch cost 0.5 USD"), "%s", f.v.why);
	f.p.horizon_s = 7200;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert(strstr(f.v.why, "gain over 2 h 1.00 > switch cost 0.5 USD"), "%s", f.v.why);
	/* a fixed cost alone */
	f.c.fig.switch_s = 0;
	f.p.horizon_s = 3600;
	f.p.fixed_cost_usd = 0.5;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH_COST);
	f.p.fixed_cost_usd = 0.4990234375;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
}

Test(coord_policy, ties_stay_and_the_order)
{
	fx f;

	/* mining == inference == 0.87890625: a miner stays, an inference node stays */
	fx_init(&f, EXACT_MINING);
	f.n.mode = HF_COORD_MINING;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_eq(f.v.best, HF_COORD_MINING);
	f.n.mode = HF_COORD_INFERENCE;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_eq(f.v.best, HF_COORD_INFERENCE);
	/* an idle node: the first of idle, mining, inference */
	f.n.mode = HF_COORD_IDLE;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	cr_assert_eq(f.v.best, HF_COORD_MINING);
	/* everything 0: idle stays idle */
	fx_init(&f, 0);
	f.c.fig.hashrate_hs = 0;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_eq(f.v.best, HF_COORD_IDLE);
}

Test(coord_policy, a_mode_the_node_cannot_run)
{
	fx f;

	/* no hashrate: mining (margin 0 at 0 W) would beat idle (-0.0125) but is never best */
	fx_init(&f, 0);
	f.c.fig.hashrate_hs = 0;
	f.c.fig.inferences_per_s = 0;
	f.c.fig.idle_watts = 100;
	f.m.power_usd_kwh = 0.125;
	f.n.mode = HF_COORD_IDLE;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_BEST);
	cr_assert_not(f.v.can[HF_COORD_MINING]);
	cr_assert_not(f.v.can[HF_COORD_INFERENCE]);
	cr_assert(f.v.can[HF_COORD_IDLE]);
	cr_assert_eq(f.v.margin[HF_COORD_MINING], 0);
	cr_assert_eq(f.v.best, HF_COORD_IDLE);
	/* in mining without a hashrate: it mines nothing, pays its watts, and leaves */
	f.c.fig.mining_watts = 1000;
	f.n.mode = HF_COORD_MINING;
	f.p.min_dwell_s = 900;
	f.p.enter_evaluations = 3;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_LEAVE);
	cr_assert_eq(f.v.mode, HF_COORD_IDLE);
	cr_assert(near(f.v.gain_usd_h, 0.125 - 0.0125), "%.17g", f.v.gain_usd_h);
}

Test(coord_policy, bad_mode_refused)
{
	fx f;

	fx_init(&f, 1);
	f.n.mode = HF_COORD_NMODES;
	cr_assert_eq(hf_coord_policy_eval(&f.p, &f.m, &f.n, 1, 0, &f.v), HF_EINVAL);
	cr_assert_eq(hf_coord_policy_eval(&f.p, &f.m, NULL, 0, 0, NULL), 0);
}

/* ---- many nodes ---- */

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

typedef struct fleet {
	size_t n;
	hf_coord_class cls[3];
	char (*ids)[16];
	hf_coord_pnode *nodes;
	hf_coord_verdict *v;
} fleet;

static void fleet_make(fleet *f, size_t n, uint64_t seed)
{
	f->n = n;
	f->cls[0] = (hf_coord_class){ .name = "asic", .price_factor = 1,
				      .fig = { 2e14, 3500, 0, 0, 20, 30 } };
	f->cls[1] = (hf_coord_class){ .name = "h200", .price_factor = 1,
				      .fig = { 1.2e10, 650, 4000, 600, 90, 20 } };
	f->cls[2] = (hf_coord_class){ .name = "cpu", .price_factor = 1,
				      .fig = { 5e8, 200, 300, 180, 60, 5 } };
	f->ids = calloc(n, sizeof *f->ids);
	f->nodes = calloc(n, sizeof *f->nodes);
	f->v = calloc(n, sizeof *f->v);
	cr_assert(f->ids && f->nodes && f->v);
	for (size_t i = 0; i < n; i++) {
		hf_coord_pnode *p = &f->nodes[i];
		snprintf(f->ids[i], sizeof f->ids[i], "n%zu", i);
		p->id = f->ids[i];
		p->cls = &f->cls[lcg(&seed) % 3];
		p->mode = (hf_coord_mode)(lcg(&seed) % 3);
		p->mode_since_ms = lcg(&seed) % 2000000;
		if (lcg(&seed) % 4 == 0) {
			p->own_mask = HF_COORD_FIG_INFER | HF_COORD_FIG_INFER_W;
			p->own.inferences_per_s = (double)(lcg(&seed) % 5000);
			p->own.inference_watts = (double)(lcg(&seed) % 700);
		}
		p->held = lcg(&seed) % 50 == 0;
	}
}

static void fleet_free(fleet *f)
{
	free(f->ids);
	free(f->nodes);
	free(f->v);
}

Test(coord_policy, deterministic_and_order_independent)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	fleet a, b;
	const size_t n = 2000;

	hf_coord_policy_defaults(&p);
	m.infer_price = 0.0004;
	m.infer_demand = 600000;
	fleet_make(&a, n, 42);
	fleet_make(&b, n, 42);
	/* b holds the same nodes in reverse order */
	for (size_t i = 0; i < n; i++) {
		b.nodes[i] = a.nodes[n - 1 - i];
		b.nodes[i].cls = &b.cls[a.nodes[n - 1 - i].cls - a.cls];
	}
	for (int round = 0; round < 4; round++) {
		uint64_t now = 1000000 + (uint64_t)round * 30000;
		cr_assert_eq(hf_coord_policy_eval(&p, &m, a.nodes, n, now, a.v), 0);
		cr_assert_eq(hf_coord_policy_eval(&p, &m, b.nodes, n, now, b.v), 0);
		for (size_t i = 0; i < n; i++) {
			const hf_coord_verdict *x = &a.v[i], *y = &b.v[n - 1 - i];
			cr_assert_eq(x->rule, y->rule, "node %zu", i);
			cr_assert_eq(x->mode, y->mode);
			cr_assert_eq(x->share, y->share);
			cr_assert_eq(memcmp(x->margin, y->margin, sizeof x->margin), 0);
			cr_assert_str_eq(x->why, y->why);
			cr_assert_eq(a.nodes[i].state.streak, b.nodes[n - 1 - i].state.streak);
		}
		m.infer_price *= 1.7;
	}
	fleet_free(&a);
	fleet_free(&b);
}

/* no_why (the backtest's fast path) changes no decision and no state, only the sentence. */
Test(coord_policy, no_why_same_decisions)
{
	hf_coord_policy_params p, q;
	hf_coord_market m = real_market();
	fleet a, b;
	const size_t n = 1000;

	hf_coord_policy_defaults(&p);
	q = p;
	q.no_why = true;
	m.infer_price = 0.0004;
	m.infer_demand = 300000;
	fleet_make(&a, n, 9);
	fleet_make(&b, n, 9);
	for (size_t i = 0; i < n; i++)
		b.nodes[i].cls = &b.cls[a.nodes[i].cls - a.cls];
	for (int round = 0; round < 5; round++) {
		uint64_t now = 1000000 + (uint64_t)round * 300000;
		cr_assert_eq(hf_coord_policy_eval(&p, &m, a.nodes, n, now, a.v), 0);
		cr_assert_eq(hf_coord_policy_eval(&q, &m, b.nodes, n, now, b.v), 0);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(a.v[i].rule, b.v[i].rule);
			cr_assert_eq(a.v[i].mode, b.v[i].mode);
			cr_assert_eq(a.nodes[i].state.streak, b.nodes[i].state.streak);
			cr_assert_eq(a.nodes[i].state.lead, b.nodes[i].state.lead);
			cr_assert_neq(a.v[i].why[0], '\0');
			cr_assert_str_eq(b.v[i].why, "");
		}
		m.power_usd_kwh *= 1.9;
	}
	fleet_free(&a);
	fleet_free(&b);
}

Test(coord_policy, hundred_thousand_nodes)
{
	hf_coord_policy_params p;
	hf_coord_market m = real_market();
	fleet f;
	double *s, served = 0, cap = 0;
	const size_t n = 100000;

	hf_coord_policy_defaults(&p);
	m.infer_demand = 4e7;
	fleet_make(&f, n, 7);
	s = calloc(n, sizeof *s);
	cr_assert(s);
	for (int round = 0; round < 3; round++)
		cr_assert_eq(hf_coord_policy_eval(&p, &m, f.nodes, n, 2000000, f.v), 0);
	cr_assert_eq(hf_coord_policy_shares(&p, &m, f.nodes, n, s), 0);
	for (size_t i = 0; i < n; i++) {
		hf_coord_figures g;
		hf_coord_policy_figures(&f.nodes[i], &g);
		served += s[i];
		cap += g.inferences_per_s;
		cr_assert_eq(s[i], f.v[i].share);
		cr_assert(s[i] >= 0 && s[i] <= g.inferences_per_s);
	}
	cr_assert(fabs(served - fmin(cap, 4e7 * 1.1)) < 1e-6 * served, "%f %f", served, cap);
	free(s);
	fleet_free(&f);
}

/* ---- the verdict's JSON ---- */

Test(coord_policy, verdict_json_fields)
{
	fx f;
	json_t *j, *o;

	fx_init(&f, 2);
	f.c.fig.hashrate_hs = 0;
	f.c.fig.switch_s = 36;
	f.n.own_mask = HF_COORD_FIG_INFER | HF_COORD_FIG_SWITCH;
	f.n.own.inferences_per_s = 3;
	f.n.own.switch_s = 18;
	cr_assert_eq(run(&f, 0), HF_COORD_RULE_SWITCH);
	j = hf_coord_verdict_json(&f.v, &f.n, &f.m);
	cr_assert_not_null(j);
	cr_assert_eq(json_integer_value(json_object_get(j, "policy")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(j, "rule")), "switch");
	cr_assert_str_eq(json_string_value(json_object_get(j, "why")), f.v.why);
	cr_assert_str_eq(json_string_value(json_object_get(j, "mode")), "inference");
	cr_assert_str_eq(json_string_value(json_object_get(j, "from")), "idle");
	cr_assert_str_eq(json_string_value(json_object_get(j, "best")), "inference");
	o = json_object_get(j, "margins");
	cr_assert_eq(json_real_value(json_object_get(o, "inference")), 2);
	cr_assert_eq(json_real_value(json_object_get(o, "idle")), 0);
	cr_assert(json_is_null(json_object_get(o, "mining")));
	cr_assert(json_is_null(json_object_get(json_object_get(j, "revenue"), "mining")));
	cr_assert_eq(json_real_value(json_object_get(json_object_get(j, "revenue"), "inference")), 2);
	cr_assert(json_is_object(json_object_get(j, "cost")));
	cr_assert_eq(json_number_value(json_object_get(j, "share")), 1);
	cr_assert_eq(json_number_value(json_object_get(j, "gain_usd_h")), 2);
	cr_assert(near(json_number_value(json_object_get(j, "switch_cost_usd")), 0.01));
	o = json_object_get(j, "figures");
	cr_assert_eq(json_number_value(json_object_get(o, "inferences_per_s")), 3);
	cr_assert_eq(json_number_value(json_object_get(o, "switch_s")), 18);
	cr_assert_eq(json_number_value(json_object_get(o, "hashrate_hs")), 0);
	cr_assert_eq(json_array_size(json_object_get(o, "own")), 2);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "own"), 0)),
			 "inferences_per_s");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "own"), 1)),
			 "switch_s");
	o = json_object_get(j, "market");
	cr_assert_eq(json_integer_value(json_object_get(o, "at_ms")), 1000);
	cr_assert_eq(json_number_value(json_object_get(o, "difficulty")), 1);
	cr_assert_eq(json_number_value(json_object_get(o, "inference_price")), 2);
	cr_assert_eq(json_number_value(json_object_get(o, "inference_demand")), 1);
	cr_assert_eq(json_number_value(json_object_get(o, "subsidy_btc")), 1);
	cr_assert_not_null(json_object_get(o, "btc_usd"));
	cr_assert_not_null(json_object_get(o, "fees_btc"));
	cr_assert_not_null(json_object_get(o, "power_usd_kwh"));
	cr_assert_eq(json_object_size(j), 14);
	json_decref(j);
	/* a NaN figure becomes null, never an invalid document */
	f.m.infer_price = NAN;
	run(&f, 0);
	j = hf_coord_verdict_json(&f.v, &f.n, &f.m);
	cr_assert_not_null(j);
	cr_assert(json_is_null(json_object_get(json_object_get(j, "market"), "inference_price")));
	cr_assert(json_is_null(json_object_get(json_object_get(j, "margins"), "inference")));
	json_decref(j);
}

/* ---- the fleet spec ---- */

static int parse(const char *text, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	json_t *root = NULL;
	int r = hf_cfg_parse(text, strlen(text), "fleet.json", &root, eb);

	if (r == 0)
		r = hf_coord_fleet_spec_parse(root, s, eb);
	json_decref(root);
	return r;
}

static void refused(const char *text, const char *needle)
{
	hf_coord_fleet_spec s;
	hf_errbuf eb;

	cr_assert_neq(parse(text, &s, &eb), 0, "accepted: %s", text);
	cr_assert(strstr(eb.msg, needle), "\"%s\" not in \"%s\"", needle, eb.msg);
	cr_assert_eq(s.nnodes, 0);
	cr_assert_null(s.nodes);
	hf_coord_fleet_spec_clear(&s);
}

#define CLS "\"classes\": {\"h200\": {\"hashrate_hs\": 1.2e10, \"mining_watts\": 650, " \
	"\"inferences_per_s\": 4000, \"inference_watts\": 600, \"idle_watts\": 90, " \
	"\"switch_s\": 20, \"price_factor\": 1.5}, \"epyc\": {\"idle_watts\": 60}}"

Test(coord_policy, fleet_spec_full)
{
	const char *text = "{\"feeds\": {\"whatever\": 1}, \"initial_mode\": \"mining\", "
		"\"policy\": {\"inference_unit\": \"node_hour\", \"pool_fee\": 0.03, \"headroom\": 0.2, "
		"\"rel_threshold\": 0.1, \"abs_threshold_usd_h\": 0.01, \"enter_evaluations\": 4, "
		"\"loss_evaluations\": 2, \"min_dwell_s\": 600, \"horizon_s\": 7200, "
		"\"fixed_cost_usd\": 0.05, \"evaluate_s\": 10}, " CLS ", "
		"\"nodes\": [{\"match\": \"gpu-*\", \"class\": \"h200\"}, {\"id\": \"cpu-1\", "
		"\"class\": \"epyc\"}, {\"id\": \"rack\", \"class\": \"h200\", \"count\": 12}], "
		"\"default_class\": \"epyc\"}";
	hf_coord_fleet_spec s;
	hf_errbuf eb;

	cr_assert_eq(parse(text, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.params.unit, HF_COORD_NODE_HOUR);
	cr_assert(s.params.pool_fee == 0.03 && s.params.headroom == 0.2);
	cr_assert(s.params.rel_threshold == 0.1 && s.params.abs_threshold_usd_h == 0.01);
	cr_assert_eq(s.params.enter_evaluations, 4);
	cr_assert_eq(s.params.loss_evaluations, 2);
	cr_assert_eq(s.params.min_dwell_s, 600);
	cr_assert_eq(s.params.horizon_s, 7200);
	cr_assert(s.params.fixed_cost_usd == 0.05);
	cr_assert_eq(s.params.evaluate_s, 10);
	cr_assert_eq(s.nclasses, 2);
	cr_assert_str_eq(s.classes[0].name, "h200");
	cr_assert(s.classes[0].fig.hashrate_hs == 1.2e10 && s.classes[0].fig.mining_watts == 650);
	cr_assert(s.classes[0].fig.inferences_per_s == 4000);
	cr_assert(s.classes[0].fig.inference_watts == 600 && s.classes[0].fig.idle_watts == 90);
	cr_assert(s.classes[0].fig.switch_s == 20 && s.classes[0].price_factor == 1.5);
	cr_assert_str_eq(s.classes[1].name, "epyc");
	cr_assert(s.classes[1].price_factor == 1 && s.classes[1].fig.hashrate_hs == 0);
	cr_assert_eq(s.nnodes, 3);
	cr_assert_str_eq(s.nodes[0].match, "gpu-*");
	cr_assert_str_eq(s.nodes[0].id, "");
	cr_assert_eq(s.nodes[0].cls, 0);
	cr_assert_eq(s.nodes[0].count, 1);
	cr_assert_str_eq(s.nodes[1].id, "cpu-1");
	cr_assert_eq(s.nodes[1].cls, 1);
	cr_assert_eq(s.nodes[2].count, 12);
	cr_assert_eq(s.default_class, 1);
	/* class_of: glob, id, id-K within count, default */
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "gpu-17")->name, "h200");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "cpu-1")->name, "epyc");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "rack")->name, "h200");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "rack-12")->name, "h200");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "rack-13")->name, "epyc");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "rack-01")->name, "epyc");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "rack-0")->name, "epyc");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "gpu")->name, "epyc");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "other")->name, "epyc");
	hf_coord_fleet_spec_clear(&s);
	cr_assert_eq(s.nnodes, 0);
	cr_assert_null(s.nodes);
	hf_coord_fleet_spec_clear(&s);
	hf_coord_fleet_spec_clear(NULL);
}

Test(coord_policy, fleet_spec_defaults_and_first_match)
{
	hf_coord_fleet_spec s;
	hf_errbuf eb;

	cr_assert_eq(parse("{}", &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.params.enter_evaluations, 3);
	cr_assert_eq(s.params.min_dwell_s, 900);
	cr_assert_eq(s.nclasses, 0);
	cr_assert_eq(s.default_class, -1);
	cr_assert_null(hf_coord_fleet_spec_class_of(&s, "x"));
	hf_coord_fleet_spec_clear(&s);
	cr_assert_eq(parse("{" CLS ", \"nodes\": [{\"match\": \"g*\", \"class\": \"epyc\"}, "
			   "{\"match\": \"gpu-[0-9]\", \"class\": \"h200\"}, {\"id\": \"gpu-1\", "
			   "\"class\": \"h200\"}]}", &s, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "gpu-1")->name, "epyc");
	cr_assert_null(hf_coord_fleet_spec_class_of(&s, "cpu-1"));
	cr_assert_null(hf_coord_fleet_spec_class_of(&s, NULL));
	hf_coord_fleet_spec_clear(&s);
}

Test(coord_policy, fleet_spec_refusals_name_the_path)
{
	refused("{\"policy\": {\"pool_fe\": 0.02}}", "policy.pool_fe: unknown key");
	refused("{\"policy\": {\"pool_fee\": 1.5}}", "policy.pool_fee: expected a number from 0 to 1");
	refused("{\"policy\": {\"pool_fee\": -0.1}}", "policy.pool_fee");
	refused("{\"policy\": {\"headroom\": 10.5}}", "policy.headroom: expected a number from 0 to 10");
	refused("{\"policy\": {\"evaluate_s\": 0}}", "policy.evaluate_s");
	refused("{\"policy\": {\"rel_threshold\": -1}}", "policy.rel_threshold");
	refused("{\"policy\": {\"abs_threshold_usd_h\": \"1\"}}", "policy.abs_threshold_usd_h");
	refused("{\"policy\": {\"enter_evaluations\": 1.5}}", "policy.enter_evaluations");
	refused("{\"policy\": {\"min_dwell_s\": -5}}", "policy.min_dwell_s");
	refused("{\"policy\": {\"inference_unit\": \"per_hour\"}}", "policy.inference_unit");
	refused("{\"policy\": 3}", "policy: expected an object");
	refused("{\"classes\": []}", "classes: expected an object");
	refused("{" CLS ", \"nodes\": {}}", "nodes: expected an array");
	refused("{\"classes\": {\"a\": {\"idle_watts\": 1, \"watts\": 2}}}",
		"classes.a.watts: unknown key");
	refused("{\"classes\": {\"a\": {\"idle_watts\": -1}}}", "classes.a.idle_watts");
	refused("{\"classes\": {\"a\": {\"idle_watts\": 1, \"inference_watts\": null}}}",
		"classes.a.inference_watts");
	refused("{\"classes\": {\"a\": {}}}", "classes.a.idle_watts: missing");
	refused("{\"classes\": {\"a\": {\"idle_watts\": 1, \"hashrate_hs\": 5}}}",
		"classes.a.mining_watts: missing (required when hashrate_hs > 0)");
	refused("{\"classes\": {\"a\": {\"idle_watts\": 1, \"inferences_per_s\": 5}}}",
		"classes.a.inference_watts: missing");
	refused("{\"classes\": {\"a b\": {\"idle_watts\": 1}}}", "classes.a b: a class name");
	refused("{\"classes\": {\"a\": 1}}", "classes.a: expected an object");
	refused("{" CLS ", \"nodes\": [{\"id\": \"x\", \"class\": \"h200\"}, {\"id\": \"y\", "
		"\"class\": \"h200\", \"colour\": 1}]}", "nodes[1].colour: unknown key");
	refused("{" CLS ", \"nodes\": [{\"id\": \"x\", \"class\": \"h100\"}]}",
		"nodes[0].class: no class \"h100\" (defined: h200, epyc)");
	refused("{" CLS ", \"nodes\": [{\"id\": \"x\"}]}", "nodes[0].class: missing");
	refused("{" CLS ", \"nodes\": [{\"id\": \"x\", \"match\": \"y*\", \"class\": \"epyc\"}]}",
		"nodes[0]: expected exactly one of \"id\" and \"match\", got both");
	refused("{" CLS ", \"nodes\": [{\"class\": \"epyc\"}]}",
		"nodes[0]: expected exactly one of \"id\" and \"match\"");
	refused("{" CLS ", \"nodes\": [{\"match\": \"y*\", \"class\": \"epyc\", \"count\": 2}]}",
		"nodes[0].count: only with \"id\"");
	refused("{" CLS ", \"nodes\": [{\"id\": \"y\", \"class\": \"epyc\", \"count\": 0}]}",
		"nodes[0].count");
	refused("{" CLS ", \"nodes\": [{\"id\": \"-y\", \"class\": \"epyc\"}]}", "nodes[0].id");
	refused("{" CLS ", \"nodes\": [{\"id\": \"\", \"class\": \"epyc\"}]}", "nodes[0].id");
	refused("{" CLS ", \"nodes\": [{\"match\": \"\", \"class\": \"epyc\"}]}", "nodes[0].match");
	refused("{" CLS ", \"nodes\": [3]}", "nodes[0]: expected an object");
	refused("{" CLS ", \"default_class\": \"gpu\"}", "default_class: no class \"gpu\"");
	refused("{" CLS ", \"default_class\": 1}", "default_class: expected a class name");
	refused("{" CLS ", \"nodes\": [{\"id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaa\", \"class\": \"epyc\", \"count\": 100}]}", "longer than 63");
}

Test(coord_policy, fleet_spec_caps)
{
	char *text = malloc(1 << 16), *p;
	hf_coord_fleet_spec s;
	hf_errbuf eb;

	cr_assert_not_null(text);
	p = text + sprintf(text, "{\"classes\": {");
	for (int i = 0; i < HF_COORD_MAX_CLASSES + 1; i++)
		p += sprintf(p, "%s\"c%d\": {\"idle_watts\": 1}", i ? ", " : "", i);
	sprintf(p, "}}");
	refused(text, "classes: 65 classes, at most 64 allowed");
	/* exactly 64 is fine */
	p = text + sprintf(text, "{\"classes\": {");
	for (int i = 0; i < HF_COORD_MAX_CLASSES; i++)
		p += sprintf(p, "%s\"c%d\": {\"idle_watts\": 1}", i ? ", " : "", i);
	sprintf(p, "}, \"default_class\": \"c63\"}");
	cr_assert_eq(parse(text, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.nclasses, 64);
	cr_assert_eq(s.default_class, 63);
	hf_coord_fleet_spec_clear(&s);
	free(text);
}

/* class_of through parse's index answers exactly what the in-order scan of a hand-built spec
 * (no index) answers. */
Test(coord_policy, class_of_index_equals_scan)
{
	static const char *const queries[] = {
		"a", "a-5", "a-6", "a-", "b", "b-1", "b-10", "b-11", "b-0", "b-01", "b-3", "b-12",
		"c", "cx-2", "d-1", "d-2", "d-3", "d", "e-1-2", "e-1", "e", "zz", "b-1x", "-", "",
	};
	const char *text = "{\"classes\": {\"k0\": {\"idle_watts\": 0}, \"k1\": {\"idle_watts\": 1}, "
		"\"k2\": {\"idle_watts\": 2}, \"k3\": {\"idle_watts\": 3}}, \"nodes\": ["
		"{\"id\": \"a-5\", \"class\": \"k1\"}, {\"match\": \"a-*\", \"class\": \"k2\"}, "
		"{\"id\": \"a\", \"class\": \"k3\", \"count\": 9}, {\"id\": \"b\", \"class\": \"k1\", "
		"\"count\": 10}, {\"match\": \"b-1?\", \"class\": \"k0\"}, {\"match\": \"c*\", "
		"\"class\": \"k2\"}, {\"id\": \"d-2\", \"class\": \"k2\"}, {\"id\": \"d\", \"class\": "
		"\"k3\", \"count\": 3}, {\"id\": \"e-1\", \"class\": \"k0\", \"count\": 2}, "
		"{\"id\": \"e\", \"class\": \"k1\", \"count\": 5}], \"default_class\": \"k3\"}";
	hf_coord_fleet_spec s, scan;
	hf_errbuf eb;

	cr_assert_eq(parse(text, &s, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(s.by_id);
	cr_assert_eq(s.nby_id, 7);
	cr_assert_eq(s.nglobs, 3);
	scan = s;
	scan.by_id = scan.globs = NULL;
	scan.nby_id = scan.nglobs = 0;
	for (size_t i = 0; i < sizeof queries / sizeof *queries; i++)
		cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, queries[i])->name,
				 hf_coord_fleet_spec_class_of(&scan, queries[i])->name, "%s",
				 queries[i]);
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "a-5")->name, "k1");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "a-6")->name, "k2");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "b-10")->name, "k1");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "b-11")->name, "k0");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "d-2")->name, "k2");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "d-3")->name, "k3");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "e-1-2")->name, "k0");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "e-1")->name, "k0");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "e-2")->name, "k1");
	cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, "zz")->name, "k3");
	hf_coord_fleet_spec_clear(&s);
	cr_assert_null(s.by_id);
	cr_assert_null(s.globs);
}

Test(coord_policy, fleet_spec_repeated_id_refused)
{
	refused("{" CLS ", \"nodes\": [{\"id\": \"x\", \"class\": \"h200\"}, {\"match\": \"x\", "
		"\"class\": \"epyc\"}, {\"id\": \"x\", \"class\": \"epyc\"}]}",
		"nodes[2].id: \"x\" is already nodes[0]'s");
}

/* 100,000 "id" entries (the cap) parse and every id finds its class; one more is refused. */
Test(coord_policy, fleet_spec_hundred_thousand_entries)
{
	const size_t n = 100000;
	char *text = malloc(n * 48 + 256), *p, id[32];
	hf_coord_fleet_spec s;
	hf_errbuf eb;

	cr_assert_not_null(text);
	p = text + sprintf(text, "{\"classes\": {\"a\": {\"idle_watts\": 1}, \"b\": {\"idle_watts\": "
			   "2}}, \"nodes\": [");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s{\"id\": \"n%zu\", \"class\": \"%s\"}", i ? ", " : "", i,
			     i % 3 ? "a" : "b");
	strcpy(p, "]}");
	cr_assert_eq(parse(text, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.nnodes, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof id, "n%zu", i);
		cr_assert_str_eq(hf_coord_fleet_spec_class_of(&s, id)->name, i % 3 ? "a" : "b");
	}
	cr_assert_null(hf_coord_fleet_spec_class_of(&s, "n100000"));
	hf_coord_fleet_spec_clear(&s);
	sprintf(p, ", {\"match\": \"*\", \"class\": \"a\"}]}");
	refused(text, "nodes: 100001 entries, at most 100000 allowed");
	free(text);
}
