/* Unit tests for hf_coord_backtest: the DP optimum against brute force over every joint schedule
 * of small series (dwell binding, the loss exemption, switch costs), the accounting, the
 * statics, the policy replay against a hand-run replay of hf_coord_policy_eval, refusals, the
 * JSON, and the bar on every shipped series (packaging/series/NAME.csv with
 * packaging/examples/fleet.json).
 * Threading: the test thread only. */
#include <criterion/criterion.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_coord_backtest.h"
#include "hf_coord_policy.h"
#include "hf_coord_series.h"

#define T0_MS 1713571200000ull /* 2024-04-20T00:00:00Z */
#define STEP_MS 300000ull

static uint64_t rng_state;

static double rnd(void) /* [0, 1) */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* A random market: prices that make mining, inference and idle each best at times, power
 * spikes that make every running mode lose money. */
static bool node_hour_series; /* make_series: node_hour units (USD per node-hour, nodes) */

static void make_series(hf_coord_series *s, size_t n, uint64_t seed)
{
	rng_state = seed * 7919 + 1;
	s->rows = calloc(n, sizeof(*s->rows));
	cr_assert_not_null(s->rows);
	s->n = n;
	s->step_ms = STEP_MS;
	for (size_t i = 0; i < n; i++) {
		hf_coord_series_row *r = &s->rows[i];
		r->t_ms = T0_MS + i * STEP_MS;
		r->btc_usd = 40000 + 40000 * rnd();
		r->difficulty = 8e13;
		r->fees_btc = 0.05 + 0.2 * rnd();
		r->height = 840000;
		r->power_usd_kwh = rnd() < 0.25 ? 0.5 + 1.5 * rnd() : 0.02 + 0.15 * rnd();
		r->inference_price = 0.0005 + 0.0025 * rnd();
		r->inference_demand = 150 * rnd();
		if (node_hour_series) {
			r->inference_price = 0.05 + 0.5 * rnd();
			r->inference_demand = 2.2 * rnd();
		}
	}
}

static const char *fleet_classes =
	"\"classes\": {"
	"\"gpu\": {\"hashrate_hs\": 1e14, \"mining_watts\": 1500, \"inferences_per_s\": 100,"
	"  \"inference_watts\": 700, \"idle_watts\": 100, \"switch_s\": 60},"
	"\"cpu\": {\"hashrate_hs\": 4e13, \"mining_watts\": 500, \"inferences_per_s\": 30,"
	"  \"inference_watts\": 350, \"idle_watts\": 60, \"switch_s\": 20},"
	"\"asic\": {\"hashrate_hs\": 2e14, \"mining_watts\": 3500, \"inferences_per_s\": 0,"
	"  \"inference_watts\": 0, \"idle_watts\": 20, \"switch_s\": 30}}";

/* A fleet from JSON text: the policy object's members, the nodes array. */
static void make_fleet(hf_coord_fleet_spec *f, const char *policy, const char *nodes)
{
	char text[4096];
	json_t *root;
	json_error_t je;
	hf_errbuf eb;

	snprintf(text, sizeof(text), "{\"policy\": {%s}, %s, \"nodes\": %s}", policy,
		 fleet_classes, nodes);
	root = json_loads(text, 0, &je);
	cr_assert_not_null(root, "%s: %s", text, je.text);
	memset(f, 0, sizeof(*f));
	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_fleet_spec_parse(root, f, &eb), 0, "%s", eb.msg);
	json_decref(root);
}

static size_t class_index(const hf_coord_fleet_spec *f, const char *name)
{
	for (size_t k = 0; k < f->nclasses; k++)
		if (strcmp(f->classes[k].name, name) == 0)
			return k;
	cr_assert_fail("no class %s", name);
	return 0;
}

/* Real-demand shares of nodes (ids, classes) at every row: share[j * s->n + i]. */
static double *shares_of(const hf_coord_fleet_spec *f, const hf_coord_series *s,
			 const char *const *ids, const char *const *cls, size_t nn)
{
	hf_coord_policy_params p0 = f->params;
	hf_coord_pnode *pn = calloc(nn, sizeof(*pn));
	double *sh = calloc(nn * s->n, sizeof(*sh)), row[16];

	cr_assert(pn && sh && nn <= 16);
	p0.headroom = 0;
	for (size_t j = 0; j < nn; j++) {
		pn[j].id = ids[j];
		pn[j].cls = &f->classes[class_index(f, cls[j])];
	}
	for (size_t i = 0; i < s->n; i++) {
		hf_coord_market m;
		hf_coord_series_market(&s->rows[i], &m);
		cr_assert_eq(hf_coord_policy_shares(&p0, &m, pn, nn, row), 0);
		for (size_t j = 0; j < nn; j++)
			sh[j * s->n + i] = row[j];
	}
	free(pn);
	return sh;
}

static bool close_rel(double a, double b, double rel)
{
	return fabs(a - b) <= rel * fmax(1e-12, fmax(fabs(a), fabs(b)));
}

/* Every schedule of one node (3^n, n <= 8): feasible[k], value[k]; schedule k's mode at row i
 * is digit i of k in base 3. */
static size_t enumerate(const hf_coord_policy_params *p, const hf_coord_class *cls,
			const hf_coord_series *s, const double *share, hf_coord_mode initial,
			bool *feasible, double *value)
{
	size_t total = 1;
	hf_coord_mode modes[8];

	for (size_t i = 0; i < s->n; i++)
		total *= 3;
	for (size_t k = 0; k < total; k++) {
		hf_coord_bt_totals t = {0};
		size_t d = k;
		for (size_t i = 0; i < s->n; i++, d /= 3)
			modes[i] = (hf_coord_mode)(d % 3);
		feasible[k] = hf_coord_backtest_account(p, cls, s, share, initial, modes, &t);
		value[k] = t.margin_usd;
	}
	return total;
}

/* Whether a schedule leaves a mode it entered less than the dwell ago (only the loss
 * exemption allows that). */
static bool uses_exemption(const hf_coord_mode *modes, size_t n, hf_coord_mode initial,
			   size_t dwell_rows)
{
	size_t entered = 0;
	bool before = true;
	hf_coord_mode cur = initial;

	for (size_t i = 0; i < n; i++) {
		if (modes[i] == cur)
			continue;
		if (!before && i - entered < dwell_rows)
			return true;
		cur = modes[i];
		entered = i;
		before = false;
	}
	return false;
}

typedef struct bf_stats {
	unsigned binds, exempt, mixed, runs;
} bf_stats;

/* Brute force over every joint schedule of two nodes of different classes against the DP and
 * hf_coord_backtest_run's optimum. */
static void brute_force(uint64_t seed, size_t rows, unsigned dwell_s, hf_coord_mode initial,
			bf_stats *st)
{
	const char *unit = node_hour_series ? "node_hour" : "per_1000";
	static const char *const ids[2] = {"a-gpu", "b-cpu"}, *const cls[2] = {"gpu", "cpu"};
	char policy[256];
	hf_coord_fleet_spec f;
	hf_coord_series s = {0};
	size_t total = 1;
	double best = -INFINITY, dp_sum = 0, dp0_sum = 0;
	bool *feas[2];
	double *val[2], *sh;

	snprintf(policy, sizeof(policy), "\"min_dwell_s\": %u, \"fixed_cost_usd\": 0.001, "
		 "\"headroom\": 0.2, \"inference_unit\": \"%s\"", dwell_s, unit);
	make_fleet(&f, policy, "[{\"id\": \"a-gpu\", \"class\": \"gpu\"}, "
		   "{\"id\": \"b-cpu\", \"class\": \"cpu\"}]");
	make_series(&s, rows, seed);
	sh = shares_of(&f, &s, ids, cls, 2);
	for (size_t i = 0; i < rows; i++)
		total *= 3;
	for (int j = 0; j < 2; j++) {
		const hf_coord_class *c = &f.classes[class_index(&f, cls[j])];
		hf_coord_mode modes[8];
		hf_coord_bt_totals t = {0};
		hf_coord_policy_params p0 = f.params;
		double dp, dp0;
		hf_errbuf eb;

		feas[j] = calloc(total, sizeof(bool));
		val[j] = calloc(total, sizeof(double));
		cr_assert(feas[j] && val[j]);
		enumerate(&f.params, c, &s, sh + j * rows, initial, feas[j], val[j]);
		cr_assert_eq(hf_coord_backtest_optimum(&f.params, c, &s, sh + j * rows, initial, modes,
						       &dp, &eb), 0, "%s", eb.msg);
		cr_assert(hf_coord_backtest_account(&f.params, c, &s, sh + j * rows, initial, modes,
						    &t), "seed %llu: the DP's schedule is infeasible",
			  (unsigned long long)seed);
		cr_assert_eq(t.margin_usd, dp, "the DP's value is its schedule's accounting");
		dp_sum += dp;
		if (uses_exemption(modes, rows, initial, (dwell_s * 1000 + STEP_MS - 1) / STEP_MS))
			st->exempt++;
		for (size_t i = 1; i < rows; i++)
			if (modes[i] != modes[0]) {
				st->mixed++;
				break;
			}
		p0.min_dwell_s = 0;
		cr_assert_eq(hf_coord_backtest_optimum(&p0, c, &s, sh + j * rows, initial, modes,
						       &dp0, &eb), 0);
		dp0_sum += dp0;
	}
	for (size_t a = 0; a < total; a++) {
		if (!feas[0][a])
			continue;
		for (size_t b = 0; b < total; b++)
			if (feas[1][b] && val[0][a] + val[1][b] > best)
				best = val[0][a] + val[1][b];
	}
	cr_assert(close_rel(dp_sum, best, 1e-9), "seed %llu dwell %u: DP %.12g, brute force %.12g",
		  (unsigned long long)seed, dwell_s, dp_sum, best);
	cr_assert(dp0_sum >= dp_sum - 1e-12, "no dwell is never worse");
	if (dp0_sum > dp_sum + 1e-9)
		st->binds++;
	st->runs++;

	hf_coord_bt_result *res = calloc(1, sizeof(*res));
	hf_coord_bt_opts o = {.initial_mode = initial};
	hf_errbuf eb;
	cr_assert_not_null(res);
	cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s", eb.msg);
	cr_assert(close_rel(res->optimum.margin_usd, best, 1e-9), "run's optimum %.12g vs %.12g",
		  res->optimum.margin_usd, best);
	cr_assert(res->policy.margin_usd <= res->optimum.margin_usd + 1e-12);
	free(res);
	for (int j = 0; j < 2; j++) {
		free(feas[j]);
		free(val[j]);
	}
	free(sh);
	free(s.rows);
	hf_coord_fleet_spec_clear(&f);
}

Test(coord_backtest, optimum_equals_brute_force)
{
	bf_stats st = {0};

	/* dwell of 2 rows (600 s at 300 s), of 1 row, of 3 rows, and none; every initial mode */
	for (uint64_t seed = 1; seed <= 12; seed++) {
		brute_force(seed, 7, 600, (hf_coord_mode)(seed % 3), &st);
		brute_force(seed + 100, 6, 300, HF_COORD_MINING, &st);
	}
	for (uint64_t seed = 200; seed < 204; seed++) {
		brute_force(seed, 7, 900, HF_COORD_IDLE, &st);
		brute_force(seed, 6, 0, HF_COORD_INFERENCE, &st);
		brute_force(seed, 7, 450, HF_COORD_MINING, &st); /* 1.5 rows: rounded up to 2 */
	}
	/* node_hour pricing: the ranking moves with the market, shares are whole nodes */
	node_hour_series = true;
	for (uint64_t seed = 300; seed < 306; seed++)
		brute_force(seed, 7, 600, (hf_coord_mode)(seed % 3), &st);
	node_hour_series = false;
	cr_log_info("brute force: %u runs, dwell binds in %u, exemption used in %u, %u switch",
		    st.runs, st.binds, st.exempt, st.mixed);
	cr_assert_eq(st.runs, 42);
	cr_assert(st.binds >= 3, "the dwell bound the optimum in %u runs only", st.binds);
	cr_assert(st.exempt >= 3, "the loss exemption was used in %u schedules only", st.exempt);
	cr_assert(st.mixed >= 10, "only %u optimal schedules switch", st.mixed);
}

/* A hand-made case: mining pays at row 0, power spikes over rows 1-4 (mining loses): the
 * optimum enters mining, leaves it a row later, inside the dwell, which only the exemption
 * allows, and may come back only once it has dwelt in idle (idle is not exempt). */
Test(coord_backtest, loss_exemption_and_dwell)
{
	hf_coord_fleet_spec f;
	hf_coord_series s = {0};
	hf_coord_mode modes[7], sched[7];
	double share[7] = {0}, dp;
	hf_coord_bt_totals t = {0};
	hf_errbuf eb;

	make_fleet(&f, "\"min_dwell_s\": 1200", "[{\"id\": \"x\", \"class\": \"asic\"}]");
	make_series(&s, 7, 9);
	for (size_t i = 0; i < 7; i++) {
		s.rows[i].btc_usd = 60000;
		s.rows[i].fees_btc = 0.1;
		s.rows[i].power_usd_kwh = i >= 1 && i <= 4 ? 3.0 : 0.05;
	}
	const hf_coord_class *c = &f.classes[class_index(&f, "asic")];
	cr_assert_eq(hf_coord_backtest_optimum(&f.params, c, &s, share, HF_COORD_IDLE, modes, &dp,
					       &eb), 0, "%s", eb.msg);
	/* (row 6 only ends the series: it earns nothing, and staying costs nothing) */
	hf_coord_mode want[7] = {HF_COORD_MINING, HF_COORD_IDLE, HF_COORD_IDLE, HF_COORD_IDLE,
				 HF_COORD_IDLE, HF_COORD_MINING, HF_COORD_MINING};
	for (int i = 0; i < 7; i++)
		cr_assert_eq(modes[i], want[i], "row %d: %s", i, hf_coord_mode_name(modes[i]));
	cr_assert(hf_coord_backtest_account(&f.params, c, &s, share, HF_COORD_IDLE, modes, &t));
	cr_assert_eq(t.switches, 3);
	cr_assert_eq(t.switching_s, 90.0);
	cr_assert(t.switch_cost_usd > 0);
	/* back to mining at row 3, two rows after idle was entered (dwell 4 rows): refused even
	 * though idle's margin is negative (idle is the floor, not a losing mode) */
	memcpy(sched, want, sizeof(sched));
	sched[3] = sched[4] = HF_COORD_MINING;
	cr_assert_not(hf_coord_backtest_account(&f.params, c, &s, share, HF_COORD_IDLE, sched, &t));
	/* leaving mining at a positive margin one row after entering it is refused */
	for (size_t i = 0; i < 7; i++)
		s.rows[i].power_usd_kwh = 0.05;
	cr_assert_not(hf_coord_backtest_account(&f.params, c, &s, share, HF_COORD_IDLE, want, &t));
	/* with no spike at all the optimum mines throughout */
	cr_assert_eq(hf_coord_backtest_optimum(&f.params, c, &s, share, HF_COORD_IDLE, modes, &dp,
					       &eb), 0, "%s", eb.msg);
	for (int i = 0; i < 6; i++) /* row 6: a tie (it earns nothing, a switch to idle is free) */
		cr_assert_eq(modes[i], HF_COORD_MINING, "row %d: %s", i, hf_coord_mode_name(modes[i]));
	/* a mode the class cannot run is infeasible */
	memcpy(sched, want, sizeof(sched));
	sched[1] = HF_COORD_INFERENCE;
	cr_assert_not(hf_coord_backtest_account(&f.params, c, &s, share, HF_COORD_IDLE, sched, &t));
	free(s.rows);
	hf_coord_fleet_spec_clear(&f);
}

/* The replay by hand: hf_coord_policy_eval row by row, verdicts applied, priced with the real
 * demand's shares: the run's policy totals are exactly these. */
Test(coord_backtest, policy_replay_matches_eval_loop)
{
	static const char *const ids[4] = {"gpu-1", "gpu-2", "cpu", "asic"};
	static const char *const cls[4] = {"gpu", "gpu", "cpu", "asic"};
	hf_coord_fleet_spec f;
	hf_coord_series s = {0};
	hf_coord_pnode pn[4];
	hf_coord_verdict v[4];
	hf_coord_bt_totals want = {0};
	hf_coord_bt_result *res = calloc(1, sizeof(*res));
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	const size_t rows = 600;
	hf_coord_mode *sched = calloc(4 * rows, sizeof(*sched));
	double *sh, lost = 0;
	hf_errbuf eb;

	cr_assert(res && sched);
	make_fleet(&f, "\"min_dwell_s\": 900, \"enter_evaluations\": 2, \"headroom\": 0.15",
		   "[{\"id\": \"gpu\", \"class\": \"gpu\", \"count\": 2}, {\"id\": \"cpu\", "
		   "\"class\": \"cpu\"}, {\"id\": \"asic\", \"class\": \"asic\"}]");
	make_series(&s, rows, 77);
	sh = shares_of(&f, &s, ids, cls, 4);
	memset(pn, 0, sizeof(pn));
	for (int j = 0; j < 4; j++) {
		pn[j].id = ids[j];
		pn[j].cls = &f.classes[class_index(&f, cls[j])];
		pn[j].mode = HF_COORD_MINING;
		pn[j].mode_since_ms = T0_MS - 900000;
	}
	for (size_t i = 0; i < rows; i++) {
		hf_coord_market m;
		hf_coord_series_market(&s.rows[i], &m);
		cr_assert_eq(hf_coord_policy_eval(&f.params, &m, pn, 4, s.rows[i].t_ms, v), 0);
		for (int j = 0; j < 4; j++) {
			if (v[j].change) {
				pn[j].mode = v[j].mode;
				pn[j].mode_since_ms = s.rows[i].t_ms;
			}
			sched[j * rows + i] = pn[j].mode;
		}
	}
	for (int j = 0; j < 4; j++)
		cr_assert(hf_coord_backtest_account(&f.params, pn[j].cls, &s, sh + j * rows,
						    HF_COORD_MINING, sched + j * rows, &want));
	cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s", eb.msg);
	cr_assert_eq(res->nodes, 4);
	cr_assert_eq(res->rows, rows);
	cr_assert(want.switches > 4, "the market should make the policy switch (%llu)",
		  (unsigned long long)want.switches);
	cr_assert_eq(res->policy.switches, want.switches);
	cr_assert(close_rel(res->policy.margin_usd, want.margin_usd, 1e-9), "%.12g vs %.12g",
		  res->policy.margin_usd, want.margin_usd);
	cr_assert(close_rel(res->policy.switching_s, want.switching_s, 1e-12));
	cr_assert(close_rel(res->policy.switch_cost_usd, want.switch_cost_usd, 1e-9));
	for (int m = 0; m < HF_COORD_NMODES; m++)
		cr_assert(close_rel(res->policy.hours_in[m], want.hours_in[m], 1e-9));
	cr_assert(close_rel(res->policy.node_hours, 4 * (rows - 1) / 12.0, 1e-12));
	cr_assert(close_rel(res->policy.switches_per_node_hour,
			    (double)want.switches / res->policy.node_hours, 1e-12));
	/* the policy never beats the optimum, nor does a static; the loss by rule adds up */
	cr_assert(res->policy.margin_usd <= res->optimum.margin_usd);
	for (int m = 0; m < HF_COORD_NMODES; m++)
		cr_assert(res->statics[m].margin_usd <= res->optimum.margin_usd + 1e-9);
	for (int k = 0; k < HF_COORD_NRULES; k++)
		lost += res->lost_by_rule[k];
	cr_assert(close_rel(lost, res->optimum.margin_usd - res->policy.margin_usd, 1e-6),
		  "by rule %.9g vs %.9g", lost, res->optimum.margin_usd - res->policy.margin_usd);
	cr_assert(res->nlosses > 0);
	for (size_t k = 1; k < res->nlosses; k++)
		cr_assert(res->losses[k - 1].lost_usd >= res->losses[k].lost_usd);
	cr_assert(res->losses[0].to_ms > res->losses[0].from_ms);
	free(sh);
	free(sched);
	free(res);
	free(s.rows);
	hf_coord_fleet_spec_clear(&f);
}

Test(coord_backtest, policy_never_beats_optimum)
{
	for (uint64_t seed = 30; seed < 36; seed++) {
		hf_coord_fleet_spec f;
		hf_coord_series s = {0};
		hf_coord_bt_result *res = calloc(1, sizeof(*res));
		hf_coord_bt_opts o = {.initial_mode = (hf_coord_mode)(seed % 3)};
		char policy[200];
		hf_errbuf eb;

		cr_assert_not_null(res);
		snprintf(policy, sizeof(policy), "\"min_dwell_s\": %u, \"enter_evaluations\": %u, "
			 "\"horizon_s\": %u", (unsigned)(seed % 4) * 300, (unsigned)(seed % 3) + 1,
			 600 + (unsigned)seed * 100);
		make_fleet(&f, policy, "[{\"id\": \"g\", \"class\": \"gpu\", \"count\": 3}, "
			   "{\"id\": \"c\", \"class\": \"cpu\", \"count\": 2}, "
			   "{\"id\": \"a\", \"class\": \"asic\", \"count\": 5}]");
		make_series(&s, 400, seed);
		cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s", eb.msg);
		cr_assert(res->policy.margin_usd <= res->optimum.margin_usd + 1e-9,
			  "seed %llu: policy %.9g > optimum %.9g", (unsigned long long)seed,
			  res->policy.margin_usd, res->optimum.margin_usd);
		for (int m = 0; m < HF_COORD_NMODES; m++)
			cr_assert(res->statics[m].margin_usd <= res->optimum.margin_usd + 1e-9);
		cr_assert(res->best_static < HF_COORD_NMODES);
		for (int m = 0; m < HF_COORD_NMODES; m++)
			cr_assert(res->statics[res->best_static].margin_usd >=
				  res->statics[m].margin_usd);
		free(res);
		free(s.rows);
		hf_coord_fleet_spec_clear(&f);
	}
}

/* Statics: every node in one mode throughout; a mode its class cannot run: idle instead. */
Test(coord_backtest, statics)
{
	static const char *const ids[2] = {"a", "g"}, *const cls[2] = {"asic", "gpu"};
	hf_coord_fleet_spec f;
	hf_coord_series s = {0};
	hf_coord_bt_result *res = calloc(1, sizeof(*res));
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_IDLE};
	const size_t rows = 50;
	double *sh, want[HF_COORD_NMODES] = {0};
	hf_errbuf eb;

	cr_assert_not_null(res);
	make_fleet(&f, "\"fixed_cost_usd\": 0.01", "[{\"id\": \"a\", \"class\": \"asic\"}, "
		   "{\"id\": \"g\", \"class\": \"gpu\"}]");
	make_series(&s, rows, 5);
	sh = shares_of(&f, &s, ids, cls, 2);
	for (int j = 0; j < 2; j++) {
		const hf_coord_class *c = &f.classes[class_index(&f, cls[j])];
		hf_coord_mode prev = HF_COORD_IDLE;
		for (int m = 0; m < HF_COORD_NMODES; m++) {
			hf_coord_mode mm = (j == 0 && m == HF_COORD_INFERENCE) ? HF_COORD_IDLE
									      : (hf_coord_mode)m;
			for (size_t i = 0; i < rows; i++) {
				hf_coord_market mk;
				double rev[3], cost[3], mg[3];
				hf_coord_series_market(&s.rows[i], &mk);
				hf_coord_policy_margins(&f.params, &mk, c, &c->fig, sh[j * rows + i],
							rev, cost, mg);
				if (i + 1 < rows)
					want[m] += mg[mm] / 12.0;
				if (i == 0 && mm != prev)
					want[m] -= hf_coord_policy_switch_cost(&f.params, &c->fig, mg,
									       mm);
			}
		}
	}
	cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s", eb.msg);
	for (int m = 0; m < HF_COORD_NMODES; m++)
		cr_assert(close_rel(res->statics[m].margin_usd, want[m], 1e-9), "%s: %.12g vs %.12g",
			  hf_coord_mode_name((hf_coord_mode)m), res->statics[m].margin_usd, want[m]);
	cr_assert_eq(res->statics[HF_COORD_IDLE].switches, 0);
	cr_assert_eq(res->statics[HF_COORD_MINING].switches, 2);       /* both, at row 0 */
	cr_assert_eq(res->statics[HF_COORD_INFERENCE].switches, 1);    /* the ASIC stays idle */
	cr_assert_eq(res->statics[HF_COORD_MINING].switching_s, 90.0);
	cr_assert_eq(res->static_idle[HF_COORD_INFERENCE], 1);
	cr_assert_eq(res->static_idle[HF_COORD_MINING], 0);
	cr_assert(close_rel(res->statics[HF_COORD_INFERENCE].hours_in[HF_COORD_IDLE],
			    (rows - 1) / 12.0, 1e-12));
	cr_assert(close_rel(res->statics[HF_COORD_MINING].hours_in[HF_COORD_MINING],
			    2 * (rows - 1) / 12.0, 1e-12));
	free(sh);
	free(res);
	free(s.rows);
	hf_coord_fleet_spec_clear(&f);
}

/* Identical nodes form one group: 40 ASICs earn exactly 40 times one. */
Test(coord_backtest, groups_scale)
{
	hf_coord_fleet_spec f1, f40;
	hf_coord_series s = {0};
	hf_coord_bt_result *r1 = calloc(1, sizeof(*r1)), *r40 = calloc(1, sizeof(*r40));
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	hf_errbuf eb;

	cr_assert(r1 && r40);
	make_fleet(&f1, "", "[{\"id\": \"a\", \"class\": \"asic\"}]");
	make_fleet(&f40, "", "[{\"id\": \"a\", \"class\": \"asic\", \"count\": 40}]");
	make_series(&s, 300, 11);
	cr_assert_eq(hf_coord_backtest_run(&f1, &o, &s, r1, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_backtest_run(&f40, &o, &s, r40, &eb), 0, "%s", eb.msg);
	cr_assert_eq(r40->nodes, 40);
	cr_assert_eq(r40->groups, 1);
	cr_assert(close_rel(r40->optimum.margin_usd, 40 * r1->optimum.margin_usd, 1e-9));
	cr_assert(close_rel(r40->policy.margin_usd, 40 * r1->policy.margin_usd, 1e-9));
	cr_assert_eq(r40->optimum.switches, 40 * r1->optimum.switches);
	cr_assert_eq(r40->policy.switches, 40 * r1->policy.switches);
	if (r1->nlosses)
		cr_assert_eq(r40->loss_alike[0], 39, "the same stretch on 40 nodes: one line");
	free(r1);
	free(r40);
	free(s.rows);
	hf_coord_fleet_spec_clear(&f1);
	hf_coord_fleet_spec_clear(&f40);
}

static int run_err(const char *nodes, hf_coord_series *s, hf_errbuf *eb)
{
	hf_coord_fleet_spec f;
	hf_coord_bt_result *res = calloc(1, sizeof(*res));
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	int rc;

	cr_assert_not_null(res);
	make_fleet(&f, "", nodes);
	hf_errbuf_clear(eb);
	rc = hf_coord_backtest_run(&f, &o, s, res, eb);
	free(res);
	hf_coord_fleet_spec_clear(&f);
	return rc;
}

Test(coord_backtest, refusals)
{
	hf_coord_series s = {0};
	hf_errbuf eb;
	const char *one = "[{\"id\": \"a\", \"class\": \"asic\"}]";

	make_series(&s, 20, 3);
	cr_assert_eq(run_err("[]", &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "empty"), "%s", eb.msg);
	cr_assert_eq(run_err("[{\"match\": \"gpu-*\", \"class\": \"gpu\"}]", &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "glob") && strstr(eb.msg, "gpu-*"), "%s", eb.msg);
	cr_assert_eq(run_err("[{\"id\": \"g\", \"class\": \"gpu\", \"count\": 2}, "
			     "{\"id\": \"g-2\", \"class\": \"cpu\"}]", &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "g-2") && strstr(eb.msg, "twice"), "%s", eb.msg);
	/* uneven: row 8 comes 600 s after row 7 */
	for (size_t i = 7; i < s.n; i++)
		s.rows[i].t_ms += STEP_MS;
	cr_assert_eq(run_err(one, &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "evenly spaced") && strstr(eb.msg, "row 8"), "%s", eb.msg);
	/* hf_coord_backtest_optimum refuses it too */
	{
		hf_coord_fleet_spec f;
		hf_coord_mode modes[20];
		double share[20] = {0}, dp;
		make_fleet(&f, "", one);
		cr_assert_eq(hf_coord_backtest_optimum(&f.params, &f.classes[0], &s, share,
						       HF_COORD_IDLE, modes, &dp, &eb), HF_EINVAL);
		hf_coord_fleet_spec_clear(&f);
	}
	s.n = 1;
	cr_assert_eq(run_err(one, &s, &eb), HF_EINVAL);
	s.n = 0;
	cr_assert_eq(run_err(one, &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "empty"), "%s", eb.msg);
	free(s.rows);
}

Test(coord_backtest, json_and_text)
{
	hf_coord_fleet_spec f;
	hf_coord_series s = {0};
	hf_coord_bt_result *res = calloc(1, sizeof(*res));
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	hf_errbuf eb;
	json_t *j;
	char *text = NULL;
	size_t len = 0;
	FILE *mf;

	cr_assert_not_null(res);
	make_fleet(&f, "", "[{\"id\": \"g\", \"class\": \"gpu\", \"count\": 2}, "
		   "{\"id\": \"a\", \"class\": \"asic\", \"count\": 3}]");
	make_series(&s, 200, 21);
	cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s", eb.msg);
	j = hf_coord_backtest_json(res);
	cr_assert_not_null(j);
	cr_assert_eq(json_integer_value(json_object_get(j, "nodes")), 5);
	cr_assert_eq(json_integer_value(json_object_get(j, "rows")), 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "step_s")), 300);
	cr_assert_str_eq(json_string_value(json_object_get(j, "from")), "2024-04-20T00:00:00Z");
	cr_assert_eq(json_real_value(json_object_get(json_object_get(j, "policy"), "margin_usd")),
		     res->policy.margin_usd);
	cr_assert_eq(json_real_value(json_object_get(json_object_get(j, "optimum"), "margin_usd")),
		     res->optimum.margin_usd);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "policy"), "switches")),
		     (json_int_t)res->policy.switches);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(j,
		     "statics"), "inference"), "nodes_idle_instead")), 3);
	cr_assert_str_eq(json_string_value(json_object_get(j, "best_static")),
			 hf_coord_mode_name(res->best_static));
	cr_assert(json_is_object(json_object_get(j, "lost_by_rule")));
	cr_assert(json_is_array(json_object_get(j, "losses")));
	cr_assert_eq(json_array_size(json_object_get(j, "losses")), res->nlosses);
	cr_assert(json_is_boolean(json_object_get(json_object_get(j, "bar"), "met")));
	json_decref(j);
	mf = open_memstream(&text, &len);
	cr_assert_not_null(mf);
	hf_coord_backtest_print(mf, res);
	fclose(mf);
	cr_assert(strstr(text, "hindsight optimum") && strstr(text, "static inference") &&
		  strstr(text, "where the policy loses") && strstr(text, "bar ("), "%s", text);
	cr_assert(strstr(text, "static inference: 3 nodes cannot run inference"), "%s", text);
	free(text);
	free(res);
	free(s.rows);
	hf_coord_fleet_spec_clear(&f);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* THE BAR: every shipped series of at least 14 days with packaging/examples/fleet.json: the
 * policy captures >= 90% of the hindsight optimum, with <= 1 switch per node-hour, and beats
 * every static mode. The quick start's demo*.csv (feedsrv's, short and fast-moving) and any
 * series shorter than 14 days at 5 minutes are not samples and are skipped. */
Test(coord_backtest, bar_on_shipped_series, .timeout = 300)
{
	const char *root = getenv("HF_SOURCE_ROOT");
	char pattern[1024], fleet_path[1024];
	glob_t g;
	hf_coord_fleet_spec f;
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	json_t *fj, *im;
	json_error_t je;
	hf_errbuf eb;
	size_t checked = 0;

	cr_assert_not_null(root, "HF_SOURCE_ROOT is not set (tests/meson.build sets it)");
	snprintf(fleet_path, sizeof(fleet_path), "%s/packaging/examples/fleet.json", root);
	fj = json_load_file(fleet_path, 0, &je);
	cr_assert_not_null(fj, "%s: %s", fleet_path, je.text);
	memset(&f, 0, sizeof(f));
	cr_assert_eq(hf_coord_fleet_spec_parse(fj, &f, &eb), 0, "%s", eb.msg);
	im = json_object_get(fj, "initial_mode");
	if (im)
		cr_assert_eq(hf_coord_mode_parse(json_string_value(im), &o.initial_mode), 0);
	json_decref(fj);
	snprintf(pattern, sizeof(pattern), "%s/packaging/series/*.csv", root);
	cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no shipped series at %s", pattern);
	for (size_t k = 0; k < g.gl_pathc; k++) {
		hf_coord_series s = {0};
		hf_coord_bt_result *res = calloc(1, sizeof(*res));
		const char *name = g.gl_pathv[k];

		cr_assert_not_null(res);
		if (strncmp(base_name(name), "demo", 4) == 0) {
			cr_log_info("%s: the quick start's demo series, not a sample: skipped", name);
			goto next;
		}
		cr_assert_eq(hf_coord_series_load(name, &s, &eb), 0, "%s", eb.msg);
		if (s.n < 14 * 288 || s.step_ms != 300000) {
			cr_log_info("%s: %zu rows: not a 14-day 5-minute series, skipped", name, s.n);
			goto next;
		}
		cr_assert_eq(hf_coord_backtest_run(&f, &o, &s, res, &eb), 0, "%s: %s", name, eb.msg);
		cr_log_info("%s: captured %.2f%%, %.4f switches/node-h, policy %.2f, best static %s "
			    "%.2f, optimum %.2f USD", name, 100 * res->captured,
			    res->policy.switches_per_node_hour, res->policy.margin_usd,
			    hf_coord_mode_name(res->best_static),
			    res->statics[res->best_static].margin_usd, res->optimum.margin_usd);
		cr_expect(res->captured >= 0.90, "%s: the policy captures %.2f%% of the optimum",
			  name, 100 * res->captured);
		cr_expect(res->policy.switches_per_node_hour <= 1.0, "%s: %.4f switches/node-hour",
			  name, res->policy.switches_per_node_hour);
		for (int m = 0; m < HF_COORD_NMODES; m++)
			cr_expect(res->policy.margin_usd > res->statics[m].margin_usd,
				  "%s: static %s %.2f >= policy %.2f", name,
				  hf_coord_mode_name((hf_coord_mode)m), res->statics[m].margin_usd,
				  res->policy.margin_usd);
		checked++;
next:
		free(res);
		hf_coord_series_clear(&s);
	}
	globfree(&g);
	hf_coord_fleet_spec_clear(&f);
	cr_assert(checked >= 1, "no shipped 14-day series was checked");
}
