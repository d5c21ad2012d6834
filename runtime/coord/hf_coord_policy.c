/* hf_coord_policy: margins, inference shares and the seven rules that turn them into a verdict.
 *
 * Invariants: pure functions of their inputs (no clock, no I/O, no globals); the same inputs give
 * the same verdicts bit for bit. Shares are computed once per evaluation (one sort, O(n log n));
 * every node is then decided in O(1) from its own figures and share. A mode a node cannot run
 * (can[] false) is never its best. A margin that is not a finite number (a market figure that
 * slipped through as NaN or infinity) makes the node hold with rule "stale": a wrong number is
 * never acted on. Streak: state.lead/streak count the consecutive evaluations in which the same
 * mode other than the current one had the highest margin (whether or not it also cleared the
 * thresholds and the dwell); best == current, a change of leader, an operator hold or a stale
 * market start the count again.
 * Ranking (hf_coord_policy_shares): per_1000 by inferences per joule, a node that reports 0
 * inference watts counting as infinitely efficient (ranked before every finite one, with no
 * division by zero); node_hour by the inference margin at a full share. Ties by strcmp(id), then
 * by index (so even duplicate ids are ordered deterministically). A key that is not a finite
 * number ranks last. Operator holds: a node held in inference serves whatever the ranking says,
 * so it ranks first (ties by id); a node held in another mode cannot serve and gets no share
 * (otherwise demand would be planned on a node that will not take it).
 * Threading: reentrant; every object belongs to its caller.
 */
#include "hf_coord_policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

static const char *const mode_names[HF_COORD_NMODES] = { "idle", "mining", "inference" };
static const char *const rule_names[HF_COORD_NRULES] = {
	"hold", "stale", "best", "threshold", "dwell", "streak", "switch_cost", "switch", "leave",
};

const char *hf_coord_mode_name(hf_coord_mode m)
{
	return (unsigned)m < HF_COORD_NMODES ? mode_names[m] : NULL;
}

int hf_coord_mode_parse(const char *s, hf_coord_mode *m)
{
	for (unsigned i = 0; s && i < HF_COORD_NMODES; i++)
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (hf_coord_mode)i;
			return 0;
		}
	return HF_EINVAL;
}

const char *hf_coord_rule_name(hf_coord_rule r)
{
	return (unsigned)r < HF_COORD_NRULES ? rule_names[r] : NULL;
}

void hf_coord_policy_figures(const hf_coord_pnode *n, hf_coord_figures *out)
{
	static const hf_coord_figures none;
	const hf_coord_figures *c = n->cls ? &n->cls->fig : &none;
	unsigned m = n->own_mask;

	out->hashrate_hs = (m & HF_COORD_FIG_HASHRATE) ? n->own.hashrate_hs : c->hashrate_hs;
	out->mining_watts = (m & HF_COORD_FIG_MINING_W) ? n->own.mining_watts : c->mining_watts;
	out->inferences_per_s = (m & HF_COORD_FIG_INFER) ? n->own.inferences_per_s
							  : c->inferences_per_s;
	out->inference_watts = (m & HF_COORD_FIG_INFER_W) ? n->own.inference_watts
							  : c->inference_watts;
	out->idle_watts = (m & HF_COORD_FIG_IDLE_W) ? n->own.idle_watts : c->idle_watts;
	out->switch_s = (m & HF_COORD_FIG_SWITCH) ? n->own.switch_s : c->switch_s;
}

static double price_factor(const hf_coord_class *cls)
{
	return cls ? cls->price_factor : 1.0;
}

static bool can_mine(const hf_coord_figures *f)
{
	return isfinite(f->hashrate_hs) && f->hashrate_hs > 0;
}

static bool can_serve(const hf_coord_figures *f)
{
	return isfinite(f->inferences_per_s) && f->inferences_per_s > 0;
}

/* ---- shares ---- */

typedef struct rank_key {
	int tier;          /* 0: held in inference, 1: infinitely efficient, 2: finite key, 3: last */
	double key;        /* higher ranks first (tier 2) */
	const char *id;
	size_t idx;
	double cap;
} rank_key;

static int rank_cmp(const void *pa, const void *pb)
{
	const rank_key *a = pa, *b = pb;
	int c;

	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	if (a->tier == 2 && a->key != b->key)
		return a->key > b->key ? -1 : 1;
	c = strcmp(a->id, b->id);
	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Fills k's rank from a node's figures; false when the node cannot serve at all (no capacity,
 * or held by an operator in another mode). */
static bool rank_of(const hf_coord_policy_params *p, const hf_coord_market *m,
		    const hf_coord_pnode *n, rank_key *k)
{
	hf_coord_figures f;

	hf_coord_policy_figures(n, &f);
	if (!can_serve(&f) || (n->held && n->mode != HF_COORD_INFERENCE))
		return false;
	k->id = n->id ? n->id : "";
	k->tier = 2;
	if (p->unit == HF_COORD_NODE_HOUR) {
		k->cap = 1.0;
		k->key = m->infer_price * price_factor(n->cls) -
			 f.inference_watts / 1000.0 * m->power_usd_kwh;
	} else {
		k->cap = f.inferences_per_s;
		if (f.inference_watts == 0)
			k->tier = 1;
		k->key = f.inference_watts > 0 ? f.inferences_per_s / f.inference_watts : NAN;
	}
	if (k->tier == 2 && !isfinite(k->key))
		k->tier = 3;
	if (n->held)
		k->tier = 0;
	return true;
}

int hf_coord_policy_shares(const hf_coord_policy_params *p, const hf_coord_market *m,
			   const hf_coord_pnode *nodes, size_t n, double *share)
{
	double left = m->infer_demand * (1.0 + p->headroom);
	rank_key *keys;
	size_t nk = 0;

	for (size_t i = 0; i < n; i++)
		share[i] = 0;
	if (!isfinite(left) || left <= 0 || n == 0)
		return 0;
	keys = malloc(n * sizeof *keys);
	if (!keys)
		return HF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		keys[nk].idx = i;
		if (rank_of(p, m, &nodes[i], &keys[nk]))
			nk++;
	}
	qsort(keys, nk, sizeof *keys, rank_cmp);
	for (size_t i = 0; i < nk && left > 0; i++) {
		double s = keys[i].cap < left ? keys[i].cap : left;
		share[keys[i].idx] = s;
		left -= s;
	}
	free(keys);
	return 0;
}

/* ---- margins ---- */

void hf_coord_policy_margins(const hf_coord_policy_params *p, const hf_coord_market *m,
			     const hf_coord_class *cls, const hf_coord_figures *fig, double share,
			     double revenue[HF_COORD_NMODES], double cost[HF_COORD_NMODES],
			     double margin[HF_COORD_NMODES])
{
	double per_hash = 0;

	if (m->difficulty > 0)
		per_hash = (m->subsidy_btc + m->fees_btc) * m->btc_usd / (m->difficulty * 4294967296.0);
	revenue[HF_COORD_IDLE] = 0;
	revenue[HF_COORD_MINING] = fig->hashrate_hs * 3600.0 * per_hash * (1.0 - p->pool_fee);
	if (p->unit == HF_COORD_NODE_HOUR)
		revenue[HF_COORD_INFERENCE] = m->infer_price * price_factor(cls) * share;
	else
		revenue[HF_COORD_INFERENCE] = m->infer_price * 3.6 * share;
	cost[HF_COORD_IDLE] = fig->idle_watts / 1000.0 * m->power_usd_kwh;
	cost[HF_COORD_MINING] = fig->mining_watts / 1000.0 * m->power_usd_kwh;
	cost[HF_COORD_INFERENCE] = fig->inference_watts / 1000.0 * m->power_usd_kwh;
	for (int i = 0; i < HF_COORD_NMODES; i++)
		margin[i] = revenue[i] - cost[i];
}

double hf_coord_policy_switch_cost(const hf_coord_policy_params *p, const hf_coord_figures *fig,
				   const double margin[HF_COORD_NMODES], hf_coord_mode to)
{
	double lost = margin[to] - margin[HF_COORD_IDLE];

	if (!(lost > 0))
		lost = 0;
	return fig->switch_s / 3600.0 * lost + p->fixed_cost_usd;
}

/* ---- one node ---- */

/* Money for a sentence: two decimals from 1 up, three significant digits below. */
typedef struct usd_txt {
	char s[32];
} usd_txt;

static usd_txt usd(double x)
{
	usd_txt t;

	if (fabs(x) >= 1 || x == 0 || !isfinite(x))
		snprintf(t.s, sizeof t.s, "%.2f", x);
	else
		snprintf(t.s, sizeof t.s, "%.3g", x);
	return t;
}

static hf_coord_mode best_mode(const hf_coord_verdict *v, hf_coord_mode cur)
{
	hf_coord_mode best = HF_COORD_IDLE;

	for (int i = 1; i < HF_COORD_NMODES; i++)
		if (v->can[i] && v->margin[i] > v->margin[best])
			best = (hf_coord_mode)i;
	if ((unsigned)cur < HF_COORD_NMODES && v->can[cur] && v->margin[cur] == v->margin[best])
		best = cur;
	return best;
}

static bool margins_finite(const hf_coord_verdict *v, hf_coord_mode cur)
{
	for (int i = 0; i < HF_COORD_NMODES; i++)
		if ((v->can[i] || (hf_coord_mode)i == cur) && !isfinite(v->margin[i]))
			return false;
	return true;
}

/* Figures, margins, can[], best, gain and switch cost of one node. */
static void fill_figures(const hf_coord_policy_params *p, const hf_coord_market *m,
			 const hf_coord_pnode *n, double share, hf_coord_verdict *v)
{
	memset(v, 0, sizeof *v);
	hf_coord_policy_figures(n, &v->used);
	v->own_mask = n->own_mask;
	v->share = share;
	hf_coord_policy_margins(p, m, n->cls, &v->used, share, v->revenue, v->cost, v->margin);
	v->can[HF_COORD_IDLE] = true;
	v->can[HF_COORD_MINING] = can_mine(&v->used);
	v->can[HF_COORD_INFERENCE] = can_serve(&v->used);
	v->mode = n->mode;
	v->best = best_mode(v, n->mode);
	v->gain_usd_h = v->margin[v->best] - v->margin[n->mode];
	v->switch_cost_usd = hf_coord_policy_switch_cost(p, &v->used, v->margin, v->best);
}

/* What the sentence needs beyond the verdict (computed by the decision, used by write_why). */
typedef struct why_ctx {
	double rel;          /* rel_threshold * |margin(current)| */
	double over;         /* gain over the horizon, USD */
	uint64_t in_ms;      /* time in the current mode */
	unsigned streak, need;
	bool losing;
} why_ctx;

/* Rules 1-3; true when one of them decided. */
static bool rule_hold_stale_best(const hf_coord_market *m, hf_coord_pnode *n,
				 hf_coord_verdict *v)
{
	if (n->held || m->stale || !margins_finite(v, n->mode)) {
		v->rule = n->held ? HF_COORD_RULE_HOLD : HF_COORD_RULE_STALE;
	} else if (v->best == n->mode) {
		v->rule = HF_COORD_RULE_BEST;
	} else {
		return false;
	}
	n->state.lead = n->mode;
	n->state.streak = 0;
	return true;
}

static void count_streak(hf_coord_pnode *n, hf_coord_mode best)
{
	if (n->state.lead == best && n->state.streak > 0) {
		if (n->state.streak < UINT32_MAX)
			n->state.streak++;
	} else {
		n->state.lead = best;
		n->state.streak = 1;
	}
}

/* Rules 4-7 for a node whose best is not its current mode. */
static void rule_switch(const hf_coord_policy_params *p, hf_coord_pnode *n, uint64_t now_ms,
			hf_coord_verdict *v, why_ctx *c)
{
	double mcur = v->margin[n->mode];
	uint64_t dwell_ms = p->min_dwell_s > UINT64_MAX / 1000 ? UINT64_MAX : p->min_dwell_s * 1000;

	c->rel = p->rel_threshold * fabs(mcur);
	c->over = v->gain_usd_h * (double)p->horizon_s / 3600.0;
	c->losing = n->mode != HF_COORD_IDLE && mcur < 0 && v->gain_usd_h > 0;
	c->need = c->losing ? p->loss_evaluations : p->enter_evaluations;
	c->in_ms = now_ms > n->mode_since_ms ? now_ms - n->mode_since_ms : 0;
	count_streak(n, v->best);
	c->streak = n->state.streak;
	if (!(v->gain_usd_h > p->abs_threshold_usd_h && v->gain_usd_h > c->rel))
		v->rule = HF_COORD_RULE_THRESHOLD;
	else if (!c->losing && c->in_ms < dwell_ms)
		v->rule = HF_COORD_RULE_DWELL;
	else if (c->streak < c->need)
		v->rule = HF_COORD_RULE_STREAK;
	else if (!(c->over > v->switch_cost_usd))
		v->rule = HF_COORD_RULE_SWITCH_COST;
	else {
		v->rule = c->losing ? HF_COORD_RULE_LEAVE : HF_COORD_RULE_SWITCH;
		v->mode = v->best;
		v->change = true;
	}
}

/* ---- the sentence ---- */

static void why_stays(hf_coord_verdict *v, const char *cur, const char *detail)
{
	snprintf(v->why, sizeof v->why, "stays in %s: %s", cur, detail);
}

static void why_hold_stale_best(const hf_coord_market *m, const hf_coord_pnode *n,
				hf_coord_verdict *v)
{
	const char *cur = hf_coord_mode_name(n->mode);
	char d[200];

	if (v->rule == HF_COORD_RULE_HOLD) {
		snprintf(v->why, sizeof v->why, "held by an operator in %s (%s USD/h; the best would "
			 "be %s at %s USD/h)", cur, usd(v->margin[n->mode]).s,
			 hf_coord_mode_name(v->best), usd(v->margin[v->best]).s);
	} else if (v->rule == HF_COORD_RULE_STALE) {
		if (m->stale)
			snprintf(d, sizeof d, "market stale (%.*s)", (int)sizeof m->stale_why,
				 m->stale_why);
		else
			snprintf(d, sizeof d, "market stale (a margin is not a finite number: check "
				 "the market figures)");
		why_stays(v, cur, d);
	} else {
		snprintf(v->why, sizeof v->why, "%s earns the most at %s USD/h (idle %s, mining %s, "
			 "inference %s)", cur, usd(v->margin[n->mode]).s,
			 usd(v->margin[HF_COORD_IDLE]).s,
			 v->can[HF_COORD_MINING] ? usd(v->margin[HF_COORD_MINING]).s : "n/a",
			 v->can[HF_COORD_INFERENCE] ? usd(v->margin[HF_COORD_INFERENCE]).s : "n/a");
	}
}

static void why_switch(const hf_coord_policy_params *p, const hf_coord_pnode *n,
		       hf_coord_verdict *v, const why_ctx *c)
{
	const char *cur = hf_coord_mode_name(n->mode), *best = hf_coord_mode_name(v->best);
	double mcur = v->margin[n->mode], hours = (double)p->horizon_s / 3600.0;
	unsigned shown = c->streak < c->need ? c->streak : c->need; /* "3/3" even after 4 */
	char d[224];

	switch (v->rule) {
	case HF_COORD_RULE_THRESHOLD:
		snprintf(d, sizeof d, "%s %s USD/h beats %s %s USD/h by %s, not over the threshold "
			 "(%s, %g%% = %s)", best, usd(v->margin[v->best]).s, cur, usd(mcur).s,
			 usd(v->gain_usd_h).s, usd(p->abs_threshold_usd_h).s,
			 p->rel_threshold * 100, usd(c->rel).s);
		break;
	case HF_COORD_RULE_DWELL:
		snprintf(d, sizeof d, "%s leads by %s USD/h but %s has run %llu of %llu s (min dwell)",
			 best, usd(v->gain_usd_h).s, cur, (unsigned long long)(c->in_ms / 1000),
			 (unsigned long long)p->min_dwell_s);
		break;
	case HF_COORD_RULE_STREAK:
		snprintf(d, sizeof d, "the best (%s, by %s USD/h) leads for %u/%u evaluations%s", best,
			 usd(v->gain_usd_h).s, c->streak, c->need,
			 c->losing ? " (leaving a loss)" : "");
		break;
	case HF_COORD_RULE_SWITCH_COST:
		snprintf(d, sizeof d, "%s leads by %s USD/h but the gain over %g h, %s USD, does not pay "
			 "the switch cost %s USD", best, usd(v->gain_usd_h).s, hours, usd(c->over).s,
			 usd(v->switch_cost_usd).s);
		break;
	default:
		snprintf(v->why, sizeof v->why, "%s%s %s USD/h beats %s %s USD/h by %s (threshold %s, "
			 "%g%%) for %u/%u evaluations; gain over %g h %s > switch cost %s USD",
			 c->losing ? "leaves a loss: " : "", best, usd(v->margin[v->best]).s, cur,
			 usd(mcur).s, usd(v->gain_usd_h).s, usd(p->abs_threshold_usd_h).s,
			 p->rel_threshold * 100, shown, c->need, hours, usd(c->over).s,
			 usd(v->switch_cost_usd).s);
		return;
	}
	why_stays(v, cur, d);
}

static void eval_one(const hf_coord_policy_params *p, const hf_coord_market *m,
		     hf_coord_pnode *n, double share, uint64_t now_ms, hf_coord_verdict *v)
{
	why_ctx c = { 0 };

	fill_figures(p, m, n, share, v);
	if (rule_hold_stale_best(m, n, v)) {
		if (!p->no_why)
			why_hold_stale_best(m, n, v);
		return;
	}
	rule_switch(p, n, now_ms, v, &c);
	if (!p->no_why)
		why_switch(p, n, v, &c);
}

int hf_coord_policy_eval(const hf_coord_policy_params *p, const hf_coord_market *m,
			 hf_coord_pnode *nodes, size_t n, uint64_t now_ms, hf_coord_verdict *out)
{
	double *share;
	int r;

	for (size_t i = 0; i < n; i++)
		if ((unsigned)nodes[i].mode >= HF_COORD_NMODES)
			return HF_EINVAL;
	if (n == 0)
		return 0;
	share = malloc(n * sizeof *share);
	if (!share)
		return HF_ENOMEM;
	r = hf_coord_policy_shares(p, m, nodes, n, share);
	if (r == 0)
		for (size_t i = 0; i < n; i++)
			eval_one(p, m, &nodes[i], share[i], now_ms, &out[i]);
	free(share);
	return r;
}

/* ---- the verdict as JSON ---- */

static json_t *num_or_null(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static int set_new(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : -1;
}

/* {mode: x} for each mode, null for a mode the node cannot run (unless it is in it). */
static json_t *per_mode(const hf_coord_verdict *v, hf_coord_mode cur, const double x[])
{
	json_t *o = json_object();
	int bad = !o;

	for (int i = 0; o && i < HF_COORD_NMODES; i++)
		bad |= set_new(o, mode_names[i], v->can[i] || (hf_coord_mode)i == cur
			       ? num_or_null(x[i]) : json_null());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *figures_json(const hf_coord_verdict *v)
{
	static const char *const names[] = { "hashrate_hs", "mining_watts", "inferences_per_s",
					     "inference_watts", "idle_watts", "switch_s" };
	const double x[] = { v->used.hashrate_hs, v->used.mining_watts, v->used.inferences_per_s,
			     v->used.inference_watts, v->used.idle_watts, v->used.switch_s };
	json_t *o = json_object(), *own = json_array();
	int bad = !o || !own;

	for (size_t i = 0; !bad && i < HF_ARRAY_SIZE(names); i++) {
		bad |= set_new(o, names[i], num_or_null(x[i]));
		if (v->own_mask & (1u << i))
			bad |= json_array_append_new(own, json_string(names[i]));
	}
	if (bad || json_object_set_new(o, "own", own) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *market_json(const hf_coord_market *m)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			 "at_ms", (json_int_t)m->at_ms, "btc_usd", num_or_null(m->btc_usd),
			 "difficulty", num_or_null(m->difficulty), "fees_btc", num_or_null(m->fees_btc),
			 "subsidy_btc", num_or_null(m->subsidy_btc),
			 "power_usd_kwh", num_or_null(m->power_usd_kwh),
			 "inference_price", num_or_null(m->infer_price),
			 "inference_demand", num_or_null(m->infer_demand));
}

json_t *hf_coord_verdict_json(const hf_coord_verdict *v, const hf_coord_pnode *n,
			      const hf_coord_market *m)
{
	const char *from = hf_coord_mode_name(n->mode);

	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "policy", 1, "rule", hf_coord_rule_name(v->rule), "why", v->why,
			 "mode", hf_coord_mode_name(v->mode), "from", from,
			 "best", hf_coord_mode_name(v->best),
			 "margins", per_mode(v, n->mode, v->margin),
			 "revenue", per_mode(v, n->mode, v->revenue),
			 "cost", per_mode(v, n->mode, v->cost), "share", num_or_null(v->share),
			 "gain_usd_h", num_or_null(v->gain_usd_h),
			 "switch_cost_usd", num_or_null(v->switch_cost_usd),
			 "figures", figures_json(v), "market", market_json(m));
}
