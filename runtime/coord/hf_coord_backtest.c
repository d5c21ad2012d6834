/* hf_coord_backtest: the policy replayed row by row against a described fleet, set beside every
 * static mode and the hindsight optimum (one exact dynamic programme per node), all three priced
 * by one accounting (acct_row below; hf_coord_backtest.h says what it charges).
 *
 * Invariants: a schedule's value is the left-to-right sum of its rows' values, each
 * margin * step_h - switch cost, computed by the same expressions in the accounting and in the
 * DP, so the DP's optimum and the accounting of its schedule agree to the last bit. The
 * initial mode counts as entered before the series starts (its dwell is met: free to switch
 * at row 0 and after); the policy run gives it mode_since_ms = t_0 - min_dwell_s so the policy
 * sees the same. A node whose class cannot run initial_mode starts idle (in all three). Nodes whose class and real-demand share series are equal (bit for bit) form
 * one group: one DP and one static accounting per group, the policy still runs node by node.
 * Threading: reentrant; every object belongs to its caller.
 */
#include "hf_coord_backtest.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_util.h"

#define BT_MAX_NODES 10000000u
#define BT_ID_MAX 80

/* ---- the accounting ---- */

static bool can_run(const hf_coord_figures *f, hf_coord_mode m)
{
	switch (m) {
	case HF_COORD_MINING:
		return f->hashrate_hs > 0;
	case HF_COORD_INFERENCE:
		return f->inferences_per_s > 0;
	case HF_COORD_IDLE:
		return true;
	default:
		return false;
	}
}

/* Hours row i's market holds ([t_i, t_i+1); the last row only ends the series). */
static double row_hours(const hf_coord_series *s, size_t i)
{
	if (i + 1 >= s->n)
		return 0;
	return (double)(s->rows[i + 1].t_ms - s->rows[i].t_ms) / 3.6e6;
}

static void row_margins(const hf_coord_policy_params *p, const hf_coord_series *s, size_t i,
			const hf_coord_class *cls, double share, double margin[HF_COORD_NMODES])
{
	hf_coord_market m;
	double rev[HF_COORD_NMODES], cost[HF_COORD_NMODES];

	hf_coord_series_market(&s->rows[i], &m);
	hf_coord_policy_margins(p, &m, cls, &cls->fig, share, rev, cost, margin);
}

/* One node's accounting state between rows. */
typedef struct acct {
	hf_coord_mode mode;   /* its mode at the last row (the initial mode before row 0) */
	bool dwelt_before;    /* the mode was entered before the series: its dwell is met */
	uint64_t entered_ms;  /* else: the time of the row it was entered at */
} acct;

static void acct_init(acct *a, hf_coord_mode initial)
{
	a->mode = initial;
	a->dwelt_before = true;
	a->entered_ms = 0;
}

/* Row i (time t_ms, lasting hours) in mode m: false if m cannot be run or the switch into it
 * breaks the dwell rule (a and t untouched); else *value (margin * hours - switch cost) and the
 * totals in t (NULL: none). */
static bool acct_row(acct *a, const hf_coord_policy_params *p, const hf_coord_figures *fig,
		     uint64_t t_ms, double hours, const double margin[HF_COORD_NMODES],
		     hf_coord_mode m, double *value, hf_coord_bt_totals *t)
{
	double cost = 0;
	bool sw = m != a->mode;

	if ((unsigned)m >= HF_COORD_NMODES || !can_run(fig, m))
		return false;
	if (sw) {
		bool dwelt = a->dwelt_before ||
			     t_ms - a->entered_ms >= p->min_dwell_s * (uint64_t)1000;
		if (!dwelt && !(a->mode != HF_COORD_IDLE && margin[a->mode] < 0))
			return false;
		cost = hf_coord_policy_switch_cost(p, fig, margin, m);
		a->mode = m;
		a->dwelt_before = false;
		a->entered_ms = t_ms;
	}
	*value = margin[m] * hours - cost;
	if (t) {
		t->margin_usd += *value;
		t->node_hours += hours;
		t->hours_in[m] += hours;
		if (sw) {
			t->switches++;
			t->switch_cost_usd += cost;
			t->switching_s += fig->switch_s;
		}
	}
	return true;
}

static void totals_rate(hf_coord_bt_totals *t)
{
	t->switches_per_node_hour = t->node_hours > 0 ? (double)t->switches / t->node_hours : 0;
}

/* dst += k * src */
static void totals_add(hf_coord_bt_totals *dst, const hf_coord_bt_totals *src, double k)
{
	dst->margin_usd += k * src->margin_usd;
	dst->switch_cost_usd += k * src->switch_cost_usd;
	dst->switches += (uint64_t)llround(k) * src->switches;
	dst->node_hours += k * src->node_hours;
	dst->switching_s += k * src->switching_s;
	for (int m = 0; m < HF_COORD_NMODES; m++)
		dst->hours_in[m] += k * src->hours_in[m];
	totals_rate(dst);
}

bool hf_coord_backtest_account(const hf_coord_policy_params *p, const hf_coord_class *cls,
			       const hf_coord_series *s, const double *share,
			       hf_coord_mode initial, const hf_coord_mode *modes,
			       hf_coord_bt_totals *t)
{
	hf_coord_bt_totals local = {0};
	acct a;

	if (!p || !cls || !s || !share || !modes || (unsigned)initial >= HF_COORD_NMODES)
		return false;
	acct_init(&a, initial);
	for (size_t i = 0; i < s->n; i++) {
		double mg[HF_COORD_NMODES], v;

		row_margins(p, s, i, cls, share[i], mg);
		if (!acct_row(&a, p, &cls->fig, s->rows[i].t_ms, row_hours(s, i), mg, modes[i],
			      &v, &local))
			return false;
	}
	if (t)
		totals_add(t, &local, 1);
	return true;
}

/* ---- the optimum: one DP per node ---- */

static int series_check(const hf_coord_series *s, hf_errbuf *eb)
{
	if (!s || s->n == 0 || !s->rows)
		return hf_fail(eb, HF_EINVAL, "the series is empty");
	if (s->n < 2)
		return hf_fail(eb, HF_EINVAL, "the series has one row: a backtest needs at least two");
	uint64_t step = s->rows[1].t_ms - s->rows[0].t_ms;
	if (s->rows[1].t_ms <= s->rows[0].t_ms)
		return hf_fail(eb, HF_EINVAL, "the series is not increasing in time at row 2");
	for (size_t i = 2; i < s->n; i++)
		if (s->rows[i].t_ms <= s->rows[i - 1].t_ms ||
		    s->rows[i].t_ms - s->rows[i - 1].t_ms != step)
			return hf_fail(eb, HF_EINVAL,
				       "the series is not evenly spaced: row %zu is %" PRId64
				       " ms after row %zu, the step is %" PRIu64 " ms",
				       i + 1, (int64_t)(s->rows[i].t_ms - s->rows[i - 1].t_ms), i,
				       step);
	return 0;
}

/* Rows a mode must be held before it may be left for a better one (the state's cap). */
static size_t dwell_rows(const hf_coord_policy_params *p, const hf_coord_series *s)
{
	uint64_t dwell_ms = p->min_dwell_s * (uint64_t)1000;
	uint64_t step = s->rows[1].t_ms - s->rows[0].t_ms;
	uint64_t d;

	if (dwell_ms == 0)
		return 0;
	d = dwell_ms / step + (dwell_ms % step != 0);
	return d > s->n ? s->n : (size_t)d;
}

/* The DP. State (m, k): in mode m, k rows since it was entered, capped at D (the dwell met;
 * the initial mode starts there). (m, k) for 0 < k < D comes from (m, k - 1); (m, 0) is an entry
 * from another mode's state that may leave (k >= D - 1, or its margin at this row < 0), or with
 * D == 0 also a stay; (m, D) from (m, D - 1) or (m, D). pred0/predD keep those two choices. */
typedef struct bt_dp {
	size_t D, ns, nst;      /* the dwell in rows, states per mode, states */
	double *prev, *cur;     /* the best value of each state at the last row and this one */
	int32_t *pred0, *predD; /* per row and mode: the predecessor of (m, 0) and of (m, D) */
} bt_dp;

/* The best state of each mode that may be left at a row with margins mg. */
static void dp_leavers(const bt_dp *d, const double mg[HF_COORD_NMODES],
		       double v[HF_COORD_NMODES], int32_t st[HF_COORD_NMODES])
{
	for (size_t m = 0; m < HF_COORD_NMODES; m++) {
		size_t k0 = m != HF_COORD_IDLE && mg[m] < 0 ? 0 : (d->D > 0 ? d->D - 1 : 0);
		v[m] = -INFINITY;
		st[m] = -1;
		for (size_t k = k0; k <= d->D; k++)
			if (d->prev[m * d->ns + k] > v[m]) {
				v[m] = d->prev[m * d->ns + k];
				st[m] = (int32_t)(m * d->ns + k);
			}
	}
}

/* Row i: d->cur from d->prev, the predecessors recorded. */
static void dp_row(bt_dp *d, const hf_coord_policy_params *p, const hf_coord_class *cls,
		   size_t i, const double mg[HF_COORD_NMODES], double hours)
{
	double leave_v[HF_COORD_NMODES];
	int32_t leave_st[HF_COORD_NMODES];
	size_t D = d->D, ns = d->ns;

	dp_leavers(d, mg, leave_v, leave_st);
	for (size_t m = 0; m < HF_COORD_NMODES; m++) {
		double *row = d->cur + m * ns, *was = d->prev + m * ns;
		double earn = mg[m] * hours, enter = -INFINITY;
		int32_t from = -1, *p0 = &d->pred0[i * HF_COORD_NMODES + m];
		int32_t *pD = &d->predD[i * HF_COORD_NMODES + m];

		*p0 = *pD = -1;
		if (!can_run(&cls->fig, (hf_coord_mode)m)) {
			for (size_t k = 0; k < ns; k++)
				row[k] = -INFINITY;
			continue;
		}
		for (size_t q = 0; q < HF_COORD_NMODES; q++)
			if (q != m && leave_v[q] > enter) {
				enter = leave_v[q];
				from = leave_st[q];
			}
		if (from >= 0)
			enter += earn - hf_coord_policy_switch_cost(p, &cls->fig, mg, (hf_coord_mode)m);
		if (D == 0) {
			double stay = was[0] + earn;
			bool stays = stay >= enter || from < 0;
			row[0] = stays ? stay : enter;
			*p0 = stays ? (int32_t)(m * ns) : from;
			continue;
		}
		row[0] = enter;
		*p0 = from;
		for (size_t k = D - 1; k >= 1; k--)
			row[k] = was[k - 1] + earn;
		double capv = was[D] + earn, shiftv = was[D - 1] + earn;
		row[D] = capv >= shiftv ? capv : shiftv;
		*pD = (int32_t)(m * ns + (capv >= shiftv ? D : D - 1));
	}
	double *tmp = d->prev;
	d->prev = d->cur;
	d->cur = tmp;
}

/* The best final state and the path back to row 0. */
static int dp_path(const bt_dp *d, size_t n, hf_coord_mode *modes, double *margin_usd,
		   hf_errbuf *eb)
{
	size_t best = 0;

	for (size_t st = 1; st < d->nst; st++)
		if (d->prev[st] > d->prev[best])
			best = st;
	if (!isfinite(d->prev[best]))
		return hf_fail(eb, HF_ESTATE, "backtest optimum: no feasible schedule");
	if (margin_usd)
		*margin_usd = d->prev[best];
	for (size_t i = n; i-- > 0;) {
		size_t m = best / d->ns, k = best % d->ns;
		int32_t pst;

		modes[i] = (hf_coord_mode)m;
		if (k == 0 || d->D == 0)
			pst = d->pred0[i * HF_COORD_NMODES + m];
		else if (k < d->D)
			pst = (int32_t)(m * d->ns + k - 1);
		else
			pst = d->predD[i * HF_COORD_NMODES + m];
		if (i > 0 && pst < 0)
			return hf_fail(eb, HF_ESTATE, "backtest optimum: broken path at row %zu", i);
		best = pst < 0 ? 0 : (size_t)pst;
	}
	return 0;
}

int hf_coord_backtest_optimum(const hf_coord_policy_params *p, const hf_coord_class *cls,
			      const hf_coord_series *s, const double *share,
			      hf_coord_mode initial, hf_coord_mode *modes, double *margin_usd,
			      hf_errbuf *eb)
{
	bt_dp d = {0};
	int rc;

	if (!p || !cls || !share || !modes || (unsigned)initial >= HF_COORD_NMODES)
		return hf_fail(eb, HF_EINVAL, "backtest optimum: missing argument");
	if ((rc = series_check(s, eb)) < 0)
		return rc;
	d.D = dwell_rows(p, s);
	d.ns = d.D + 1;
	d.nst = HF_COORD_NMODES * d.ns;
	if (d.nst > INT32_MAX / 2)
		return hf_fail(eb, HF_ETOOBIG, "min_dwell_s: %zu rows of dwell is too many", d.D);
	d.prev = malloc(d.nst * sizeof(*d.prev));
	d.cur = malloc(d.nst * sizeof(*d.cur));
	d.pred0 = malloc(s->n * HF_COORD_NMODES * sizeof(*d.pred0));
	d.predD = malloc(s->n * HF_COORD_NMODES * sizeof(*d.predD));
	if (!d.prev || !d.cur || !d.pred0 || !d.predD) {
		rc = hf_fail(eb, HF_ENOMEM, "backtest optimum: out of memory");
		goto out_free;
	}
	for (size_t st = 0; st < d.nst; st++)
		d.prev[st] = -INFINITY;
	d.prev[initial * d.ns + d.D] = 0;
	for (size_t i = 0; i < s->n; i++) {
		double mg[HF_COORD_NMODES];

		row_margins(p, s, i, cls, share[i], mg);
		dp_row(&d, p, cls, i, mg, row_hours(s, i));
	}
	rc = dp_path(&d, s->n, modes, margin_usd, eb);
out_free:
	free(d.prev);
	free(d.cur);
	free(d.pred0);
	free(d.predD);
	return rc;
}

/* ---- the run: the fleet's nodes, their groups, the optimum and statics, the policy ---- */

/* A policy loss stretch being built for one node. */
typedef struct bt_stretch {
	size_t start;             /* its first row; SIZE_MAX: none open */
	double lost;
	uint32_t pm[HF_COORD_NMODES], om[HF_COORD_NMODES], rule[HF_COORD_NRULES];
} bt_stretch;

typedef struct bt {
	const hf_coord_fleet_spec *fleet;
	const hf_coord_series *s;
	hf_coord_policy_params p0;    /* the fleet's params with headroom 0: what is paid */
	hf_coord_policy_params pe;    /* the fleet's params as evaluated, without why sentences
					 (no_why: the same decisions, a fifth of the time) */
	hf_coord_mode initial;
	size_t n, rows;               /* nodes, series rows */
	char (*ids)[BT_ID_MAX];
	size_t *cls;                  /* per node: index into fleet->classes */
	hf_coord_pnode *pn;
	double *share;                /* one row's real-demand shares, per node */
	size_t *group;                /* per node: its group */
	size_t ngroups;
	size_t *g_rep, *g_size;
	double *g_share;              /* per group, per row */
	hf_coord_mode *g_opt;         /* per group, per row: the optimum's mode */
	double *g_mg;                 /* per group: one row's margins */
	double *g_ov;                 /* per group: one row's value for the optimum */
	acct *pa;                     /* per node: the policy's accounting */
	bt_stretch *st;               /* per node */
	hf_coord_verdict *v;          /* per node: one row's verdicts */
} bt;

static const hf_coord_class *bt_class(const bt *b, size_t g)
{
	return &b->fleet->classes[b->cls[b->g_rep[g]]];
}

/* Where a node of class c starts: initial_mode, or idle when c cannot run it. */
static hf_coord_mode bt_start(const bt *b, const hf_coord_class *c)
{
	return can_run(&c->fig, b->initial) ? b->initial : HF_COORD_IDLE;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The concrete nodes: every entry's id (count 1) or id-1..id-N; globs refused. */
static int bt_nodes(bt *b, hf_errbuf *eb)
{
	const hf_coord_fleet_spec *f = b->fleet;
	const char **sorted = NULL;
	size_t n = 0, j = 0;
	int rc = 0;

	for (size_t e = 0; e < f->nnodes; e++) {
		const struct hf_coord_node_spec *ns = &f->nodes[e];
		if (ns->match[0])
			return hf_fail(eb, HF_EINVAL, "nodes[%zu]: \"match\": \"%s\" is a glob: a "
				       "backtest needs concrete nodes (\"id\" and \"count\")", e,
				       ns->match);
		if (!ns->id[0])
			return hf_fail(eb, HF_EINVAL, "nodes[%zu]: no \"id\"", e);
		if (ns->cls >= f->nclasses)
			return hf_fail(eb, HF_EINVAL, "nodes[%zu]: no class", e);
		n += ns->count ? ns->count : 1;
		if (n > BT_MAX_NODES)
			return hf_fail(eb, HF_ETOOBIG, "nodes: more than %u nodes", BT_MAX_NODES);
	}
	if (n == 0)
		return hf_fail(eb, HF_EINVAL, "nodes: the fleet is empty");
	b->n = n;
	b->ids = calloc(n, sizeof(*b->ids));
	b->cls = calloc(n, sizeof(*b->cls));
	sorted = calloc(n, sizeof(*sorted));
	if (!b->ids || !b->cls || !sorted) {
		rc = hf_fail(eb, HF_ENOMEM, "backtest: out of memory for %zu nodes", n);
		goto out;
	}
	for (size_t e = 0; e < f->nnodes; e++) {
		const struct hf_coord_node_spec *ns = &f->nodes[e];
		unsigned c = ns->count ? ns->count : 1;
		for (unsigned k = 1; k <= c; k++, j++) {
			if (c == 1)
				hf_strlcpy(b->ids[j], ns->id, BT_ID_MAX);
			else
				snprintf(b->ids[j], BT_ID_MAX, "%s-%u", ns->id, k);
			b->cls[j] = ns->cls;
			sorted[j] = b->ids[j];
		}
	}
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	for (size_t k = 1; k < n; k++)
		if (strcmp(sorted[k - 1], sorted[k]) == 0) {
			rc = hf_fail(eb, HF_EINVAL, "nodes: node id \"%s\" appears twice (ids "
				     "expand to ID-1..ID-N with a count)", sorted[k]);
			goto out;
		}
out:
	free(sorted);
	return rc;
}

static uint64_t mix64(uint64_t h, double x)
{
	uint64_t z;

	memcpy(&z, &x, sizeof(z));
	z = h ^ (z + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int bt_shares_row(bt *b, size_t i, hf_errbuf *eb)
{
	hf_coord_market m;
	int rc;

	hf_coord_series_market(&b->s->rows[i], &m);
	if ((rc = hf_coord_policy_shares(&b->p0, &m, b->pn, b->n, b->share)) < 0)
		return hf_fail(eb, rc, "backtest: inference shares at row %zu: %s", i + 1,
			       hf_strerror(rc));
	return 0;
}

typedef struct gkey {
	size_t cls;
	uint64_t hash;
	size_t node;
} gkey;

static int cmp_gkey(const void *a, const void *b)
{
	const gkey *x = a, *y = b;

	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

/* Groups the nodes by (class, real-demand share series): a hash over one pass of the rows,
 * then a second pass that stores each group's series and checks every member's bit for bit. */
static int bt_group(bt *b, hf_errbuf *eb)
{
	gkey *k = calloc(b->n, sizeof(*k));
	int rc = 0;

	if (!k)
		return hf_fail(eb, HF_ENOMEM, "backtest: out of memory");
	for (size_t j = 0; j < b->n; j++)
		k[j] = (gkey){b->cls[j], 0x6a09e667f3bcc908ull, j};
	for (size_t i = 0; i < b->rows; i++) {
		if ((rc = bt_shares_row(b, i, eb)) < 0)
			goto out;
		for (size_t j = 0; j < b->n; j++)
			k[j].hash = mix64(k[j].hash, b->share[j]);
	}
	qsort(k, b->n, sizeof(*k), cmp_gkey);
	b->g_rep = calloc(b->n, sizeof(*b->g_rep));
	b->g_size = calloc(b->n, sizeof(*b->g_size));
	if (!b->g_rep || !b->g_size) {
		rc = hf_fail(eb, HF_ENOMEM, "backtest: out of memory");
		goto out;
	}
	for (size_t j = 0; j < b->n; j++) {
		if (j == 0 || k[j].cls != k[j - 1].cls || k[j].hash != k[j - 1].hash)
			b->g_rep[b->ngroups++] = k[j].node;
		b->g_size[b->ngroups - 1]++;
		b->group[k[j].node] = b->ngroups - 1;
	}
	b->g_share = calloc(b->ngroups * b->rows, sizeof(*b->g_share));
	b->g_opt = calloc(b->ngroups * b->rows, sizeof(*b->g_opt));
	b->g_mg = calloc(b->ngroups * HF_COORD_NMODES, sizeof(*b->g_mg));
	b->g_ov = calloc(b->ngroups, sizeof(*b->g_ov));
	if (!b->g_share || !b->g_opt || !b->g_mg || !b->g_ov) {
		rc = hf_fail(eb, HF_ENOMEM, "backtest: out of memory for %zu groups x %zu rows",
			     b->ngroups, b->rows);
		goto out;
	}
	for (size_t i = 0; i < b->rows; i++) {
		if ((rc = bt_shares_row(b, i, eb)) < 0)
			goto out;
		for (size_t g = 0; g < b->ngroups; g++)
			b->g_share[g * b->rows + i] = b->share[b->g_rep[g]];
		for (size_t j = 0; j < b->n; j++)
			if (memcmp(&b->share[j], &b->g_share[b->group[j] * b->rows + i],
				   sizeof(double)) != 0) {
				rc = hf_fail(eb, HF_ESTATE, "backtest: share hash collision (node %s,"
					     " row %zu)", b->ids[j], i + 1);
				goto out;
			}
	}
out:
	free(k);
	return rc;
}

/* The optimum and the statics of every group, times the group's size. */
static int bt_solve(bt *b, hf_coord_bt_result *res, hf_errbuf *eb)
{
	hf_coord_mode *fixed = calloc(b->rows, sizeof(*fixed));
	int rc = 0;

	if (!fixed)
		return hf_fail(eb, HF_ENOMEM, "backtest: out of memory");
	for (size_t g = 0; g < b->ngroups; g++) {
		const hf_coord_class *cls = bt_class(b, g);
		const double *share = b->g_share + g * b->rows;
		hf_coord_mode *opt = b->g_opt + g * b->rows;
		hf_coord_bt_totals t = {0};
		double dp;

		hf_coord_mode start = bt_start(b, cls);

		rc = hf_coord_backtest_optimum(&b->p0, cls, b->s, share, start, opt, &dp, eb);
		if (rc < 0)
			goto out;
		if (!hf_coord_backtest_account(&b->p0, cls, b->s, share, start, opt, &t) ||
		    fabs(t.margin_usd - dp) > 1e-9 * fmax(1, fabs(dp))) {
			rc = hf_fail(eb, HF_ESTATE, "backtest: the optimum of node %s does not "
				     "account (%.9g vs %.9g)", b->ids[b->g_rep[g]], t.margin_usd, dp);
			goto out;
		}
		totals_add(&res->optimum, &t, (double)b->g_size[g]);
		for (int m = 0; m < HF_COORD_NMODES; m++) {
			hf_coord_mode mm = can_run(&cls->fig, (hf_coord_mode)m) ? (hf_coord_mode)m
									      : HF_COORD_IDLE;
			hf_coord_bt_totals ts = {0};

			if (mm != (hf_coord_mode)m)
				res->static_idle[m] += b->g_size[g];
			for (size_t i = 0; i < b->rows; i++)
				fixed[i] = mm;
			if (!hf_coord_backtest_account(&b->p0, cls, b->s, share, start, fixed,
						       &ts)) {
				rc = hf_fail(eb, HF_ESTATE, "backtest: static %s does not account",
					     hf_coord_mode_name((hf_coord_mode)m));
				goto out;
			}
			totals_add(&res->statics[m], &ts, (double)b->g_size[g]);
		}
	}
out:
	free(fixed);
	return rc;
}

static size_t argmax_u32(const uint32_t *c, size_t n)
{
	size_t best = 0;

	for (size_t k = 1; k < n; k++)
		if (c[k] > c[best])
			best = k;
	return best;
}

/* Keeps the largest stretches, largest first; a stretch equal to one kept (another node of the
 * same kind doing the same) counts as alike instead. */
static void loss_push(hf_coord_bt_result *res, const hf_coord_bt_loss *l)
{
	size_t at;

	if (!(l->lost_usd > 0))
		return;
	for (size_t k = 0; k < res->nlosses; k++) {
		const hf_coord_bt_loss *o = &res->losses[k];
		if (o->from_ms == l->from_ms && o->to_ms == l->to_ms &&
		    o->policy_mode == l->policy_mode && o->optimum_mode == l->optimum_mode &&
		    o->rule == l->rule &&
		    fabs(o->lost_usd - l->lost_usd) <= 1e-9 * fabs(l->lost_usd)) {
			res->loss_alike[k]++;
			return;
		}
	}
	if (res->nlosses == HF_COORD_BT_MAX_LOSSES) {
		if (l->lost_usd <= res->losses[res->nlosses - 1].lost_usd)
			return;
		res->nlosses--;
	}
	at = res->nlosses;
	while (at > 0 && res->losses[at - 1].lost_usd < l->lost_usd) {
		res->losses[at] = res->losses[at - 1];
		res->loss_alike[at] = res->loss_alike[at - 1];
		at--;
	}
	res->losses[at] = *l;
	res->loss_alike[at] = 0;
	res->nlosses++;
}

static void stretch_close(bt *b, size_t j, size_t end, hf_coord_bt_result *res)
{
	bt_stretch *x = &b->st[j];
	hf_coord_bt_loss l;

	memset(&l, 0, sizeof(l));
	hf_strlcpy(l.node, b->ids[j], sizeof(l.node));
	l.from_ms = b->s->rows[x->start].t_ms;
	l.to_ms = b->s->rows[end < b->rows ? end : b->rows - 1].t_ms;
	l.policy_mode = (hf_coord_mode)argmax_u32(x->pm, HF_COORD_NMODES);
	l.optimum_mode = (hf_coord_mode)argmax_u32(x->om, HF_COORD_NMODES);
	l.rule = (hf_coord_rule)argmax_u32(x->rule, HF_COORD_NRULES);
	l.lost_usd = x->lost;
	loss_push(res, &l);
	x->start = SIZE_MAX;
}

/* One node's policy row beside the optimum: the loss by rule and the stretches. */
static void bt_compare(bt *b, size_t j, size_t i, double policy_value, hf_coord_bt_result *res)
{
	size_t g = b->group[j];
	hf_coord_mode pm = b->pn[j].mode, om = b->g_opt[g * b->rows + i];
	hf_coord_rule rule = b->v[j].rule;
	double delta = b->g_ov[g] - policy_value;
	bt_stretch *x = &b->st[j];

	if (delta != 0 && (unsigned)rule < HF_COORD_NRULES)
		res->lost_by_rule[rule] += delta;
	if (pm != om) {
		if (x->start == SIZE_MAX) {
			memset(x, 0, sizeof(*x));
			x->start = i;
		}
		x->lost += delta;
		x->pm[pm]++;
		x->om[om]++;
		if ((unsigned)rule < HF_COORD_NRULES)
			x->rule[rule]++;
	}
	if (x->start != SIZE_MAX && (pm == om || i + 1 == b->rows))
		stretch_close(b, j, pm == om ? i : i + 1, res);
}

/* Every group's margins and the optimum's value at row i. */
static void bt_group_row(bt *b, size_t i, const hf_coord_market *m, double hours)
{
	for (size_t g = 0; g < b->ngroups; g++) {
		const hf_coord_class *cls = bt_class(b, g);
		double rev[HF_COORD_NMODES], cost[HF_COORD_NMODES], *mg = b->g_mg + g * HF_COORD_NMODES;
		hf_coord_mode om = b->g_opt[g * b->rows + i];
		hf_coord_mode was = i ? b->g_opt[g * b->rows + i - 1] : bt_start(b, cls);

		hf_coord_policy_margins(&b->p0, m, cls, &cls->fig, b->g_share[g * b->rows + i],
					rev, cost, mg);
		b->g_ov[g] = mg[om] * hours -
			     (om != was ? hf_coord_policy_switch_cost(&b->p0, &cls->fig, mg, om) : 0);
	}
}

/* The policy, row by row as the live source runs it: eval, then apply the verdicts that
 * change a node's mode (mode_since_ms = the row's time); priced by the same accounting. */
static int bt_policy(bt *b, hf_coord_bt_result *res, hf_errbuf *eb)
{
	for (size_t i = 0; i < b->rows; i++) {
		hf_coord_market m;
		uint64_t t = b->s->rows[i].t_ms;
		double hours = row_hours(b->s, i);
		int rc;

		hf_coord_series_market(&b->s->rows[i], &m);
		bt_group_row(b, i, &m, hours);
		if ((rc = hf_coord_policy_eval(&b->pe, &m, b->pn, b->n, t, b->v)) < 0)
			return hf_fail(eb, rc, "backtest: policy evaluation at row %zu: %s", i + 1,
				       hf_strerror(rc));
		for (size_t j = 0; j < b->n; j++) {
			size_t g = b->group[j];
			double val;

			if (b->v[j].change) {
				b->pn[j].mode = b->v[j].mode;
				b->pn[j].mode_since_ms = t;
			}
			if (!acct_row(&b->pa[j], &b->p0, &bt_class(b, g)->fig, t, hours,
				      b->g_mg + g * HF_COORD_NMODES, b->pn[j].mode, &val,
				      &res->policy))
				return hf_fail(eb, HF_ESTATE, "backtest: the policy put node %s in %s "
					       "at row %zu (rule %s) against the dwell rule or its "
					       "class", b->ids[j], hf_coord_mode_name(b->pn[j].mode),
					       i + 1, hf_coord_rule_name(b->v[j].rule));
			bt_compare(b, j, i, val, res);
		}
	}
	totals_rate(&res->policy);
	return 0;
}

static void bt_free(bt *b)
{
	free(b->ids);
	free(b->cls);
	free(b->pn);
	free(b->share);
	free(b->group);
	free(b->g_rep);
	free(b->g_size);
	free(b->g_share);
	free(b->g_opt);
	free(b->g_mg);
	free(b->g_ov);
	free(b->pa);
	free(b->st);
	free(b->v);
}

static int bt_alloc_nodes(bt *b, hf_errbuf *eb)
{
	uint64_t dwell_ms = b->fleet->params.min_dwell_s * (uint64_t)1000;
	uint64_t t0 = b->s->rows[0].t_ms;

	b->pn = calloc(b->n, sizeof(*b->pn));
	b->share = calloc(b->n, sizeof(*b->share));
	b->group = calloc(b->n, sizeof(*b->group));
	b->pa = calloc(b->n, sizeof(*b->pa));
	b->st = calloc(b->n, sizeof(*b->st));
	b->v = calloc(b->n, sizeof(*b->v));
	if (!b->pn || !b->share || !b->group || !b->pa || !b->st || !b->v)
		return hf_fail(eb, HF_ENOMEM, "backtest: out of memory for %zu nodes", b->n);
	for (size_t j = 0; j < b->n; j++) {
		b->pn[j].id = b->ids[j];
		b->pn[j].cls = &b->fleet->classes[b->cls[j]];
		b->pn[j].mode = bt_start(b, b->pn[j].cls);
		/* entered before the series: its dwell is met at row 0, as in the accounting */
		b->pn[j].mode_since_ms = t0 >= dwell_ms ? t0 - dwell_ms : 0;
		acct_init(&b->pa[j], b->pn[j].mode);
		b->st[j].start = SIZE_MAX;
	}
	return 0;
}

int hf_coord_backtest_run(const hf_coord_fleet_spec *fleet, const hf_coord_bt_opts *o,
			  const hf_coord_series *s, hf_coord_bt_result *res, hf_errbuf *eb)
{
	bt b;
	int rc;

	if (!fleet || !s || !res)
		return hf_fail(eb, HF_EINVAL, "backtest: missing argument");
	memset(res, 0, sizeof(*res));
	memset(&b, 0, sizeof(b));
	b.fleet = fleet;
	b.s = s;
	b.p0 = fleet->params;
	b.p0.headroom = 0;
	b.pe = fleet->params;
	b.pe.no_why = true;
	b.initial = o ? o->initial_mode : HF_COORD_MINING;
	if ((unsigned)b.initial >= HF_COORD_NMODES)
		return hf_fail(eb, HF_EINVAL, "initial_mode: not a mode");
	if ((rc = series_check(s, eb)) < 0)
		return rc;
	b.rows = s->n;
	if ((rc = bt_nodes(&b, eb)) < 0 || (rc = bt_alloc_nodes(&b, eb)) < 0 ||
	    (rc = bt_group(&b, eb)) < 0 || (rc = bt_solve(&b, res, eb)) < 0 ||
	    (rc = bt_policy(&b, res, eb)) < 0)
		goto out;
	res->nodes = b.n;
	res->rows = b.rows;
	res->groups = b.ngroups;
	res->step_ms = s->rows[1].t_ms - s->rows[0].t_ms;
	res->from_ms = s->rows[0].t_ms;
	res->to_ms = s->rows[s->n - 1].t_ms;
	res->best_static = HF_COORD_IDLE;
	for (int m = 1; m < HF_COORD_NMODES; m++)
		if (res->statics[m].margin_usd > res->statics[res->best_static].margin_usd)
			res->best_static = (hf_coord_mode)m;
	res->captured = res->optimum.margin_usd > 0
				? res->policy.margin_usd / res->optimum.margin_usd
				: NAN;
out:
	bt_free(&b);
	return rc;
}

/* ---- output ---- */

#define BT_BAR_CAPTURED 0.90
#define BT_BAR_SWITCHES 1.0

static void fmt_time(uint64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%" PRIu64, ms / 1000);
}

static double lost_total(const hf_coord_bt_result *r)
{
	return r->optimum.margin_usd - r->policy.margin_usd;
}

static bool bar_met(const hf_coord_bt_result *r)
{
	return r->captured >= BT_BAR_CAPTURED &&
	       r->policy.switches_per_node_hour <= BT_BAR_SWITCHES &&
	       r->policy.margin_usd > r->statics[r->best_static].margin_usd;
}

static void print_line(FILE *f, const char *name, const hf_coord_bt_totals *t,
		       const hf_coord_bt_result *r)
{
	char pct[16];

	if (r->optimum.margin_usd > 0)
		snprintf(pct, sizeof(pct), "%.2f%%", 100 * t->margin_usd / r->optimum.margin_usd);
	else
		snprintf(pct, sizeof(pct), "-");
	fprintf(f, "%-22s %14.2f %10s %9" PRIu64 " %9.4f %10.2f %11.2f %11.1f %11.1f %11.1f\n",
		name, t->margin_usd, pct, t->switches, t->switches_per_node_hour,
		t->switching_s / 3600, t->switch_cost_usd, t->hours_in[HF_COORD_IDLE],
		t->hours_in[HF_COORD_MINING], t->hours_in[HF_COORD_INFERENCE]);
}

static void print_losses(FILE *f, const hf_coord_bt_result *r)
{
	double lost = lost_total(r);

	fprintf(f, "\nwhere the policy loses: %.2f USD below the optimum in all\n", lost);
	fprintf(f, "  by the rule that kept it from the optimum's mode (net over those rows):\n");
	for (int k = 0; k < HF_COORD_NRULES; k++) {
		if (r->lost_by_rule[k] == 0)
			continue;
		fprintf(f, "    %-12s %12.2f USD", hf_coord_rule_name((hf_coord_rule)k),
			r->lost_by_rule[k]);
		if (lost > 0)
			fprintf(f, "  %6.1f%%", 100 * r->lost_by_rule[k] / lost);
		fprintf(f, "\n");
	}
	if (r->nlosses == 0) {
		fprintf(f, "  no stretch where the policy's mode earned less than the optimum's\n");
		return;
	}
	fprintf(f, "  largest stretches (one node, consecutive rows out of the optimum's mode):\n");
	for (size_t k = 0; k < r->nlosses; k++) {
		const hf_coord_bt_loss *l = &r->losses[k];
		char a[32], b[32], alike[32] = "";

		fmt_time(l->from_ms, a);
		fmt_time(l->to_ms, b);
		if (r->loss_alike[k])
			snprintf(alike, sizeof(alike), " (+%zu alike)", r->loss_alike[k]);
		fprintf(f, "    %2zu. %s%s %s .. %s (%.2f h): in %s, optimum %s, mostly %s: "
			"%.2f USD\n", k + 1, l->node, alike, a, b,
			(double)(l->to_ms - l->from_ms) / 3.6e6, hf_coord_mode_name(l->policy_mode),
			hf_coord_mode_name(l->optimum_mode), hf_coord_rule_name(l->rule),
			l->lost_usd);
	}
}

void hf_coord_backtest_print(FILE *f, const hf_coord_bt_result *r)
{
	char a[32], b[32], name[40];
	double beat = r->policy.margin_usd - r->statics[r->best_static].margin_usd;

	fmt_time(r->from_ms, a);
	fmt_time(r->to_ms, b);
	fprintf(f, "backtest: %zu nodes (%zu kinds), %zu rows every %" PRIu64 " s, %s to %s, "
		"%.1f node-hours\n\n", r->nodes, r->groups, r->rows, r->step_ms / 1000, a, b,
		r->optimum.node_hours);
	fprintf(f, "%-22s %14s %10s %9s %9s %10s %11s %11s %11s %11s\n", "strategy",
		"margin USD", "of optimum", "switches", "sw/node-h", "switching", "switch USD",
		"idle h", "mining h", "inference h");
	print_line(f, "policy", &r->policy, r);
	for (int m = 0; m < HF_COORD_NMODES; m++) {
		snprintf(name, sizeof(name), "static %s%s", hf_coord_mode_name((hf_coord_mode)m),
			 (hf_coord_mode)m == r->best_static ? " (best)" : "");
		print_line(f, name, &r->statics[m], r);
	}
	print_line(f, "hindsight optimum", &r->optimum, r);
	fprintf(f, "(switching: node-hours lost switching; margins have switch costs deducted)\n");
	for (int m = 0; m < HF_COORD_NMODES; m++)
		if (r->static_idle[m])
			fprintf(f, "static %s: %zu nodes cannot run %s and are idle in it\n",
				hf_coord_mode_name((hf_coord_mode)m), r->static_idle[m],
				hf_coord_mode_name((hf_coord_mode)m));
	fprintf(f, "\nbar (>= %.0f%% of the optimum, <= %.0f switch per node-hour, beats every "
		"static mode): %s\n", 100 * BT_BAR_CAPTURED, BT_BAR_SWITCHES,
		bar_met(r) ? "met" : "NOT met");
	if (isfinite(r->captured))
		fprintf(f, "  captured %.2f%% of the optimum", 100 * r->captured);
	else
		fprintf(f, "  the optimum earns nothing (captured: -)");
	fprintf(f, ", %.4f switches per node-hour, %s the best static (%s) by %.2f USD\n",
		r->policy.switches_per_node_hour, beat > 0 ? "beats" : "does not beat",
		hf_coord_mode_name(r->best_static), fabs(beat));
	print_losses(f, r);
}

static json_t *totals_json(const hf_coord_bt_totals *t)
{
	json_t *in = json_object(), *o = json_object();

	for (int m = 0; m < HF_COORD_NMODES; m++)
		json_object_set_new(in, hf_coord_mode_name((hf_coord_mode)m),
				    json_real(t->hours_in[m]));
	json_object_set_new(o, "margin_usd", json_real(t->margin_usd));
	json_object_set_new(o, "switch_cost_usd", json_real(t->switch_cost_usd));
	json_object_set_new(o, "switches", json_integer((json_int_t)t->switches));
	json_object_set_new(o, "node_hours", json_real(t->node_hours));
	json_object_set_new(o, "switches_per_node_hour", json_real(t->switches_per_node_hour));
	json_object_set_new(o, "switching_s", json_real(t->switching_s));
	json_object_set_new(o, "hours_in", in);
	return o;
}

static json_t *losses_json(const hf_coord_bt_result *r)
{
	json_t *a = json_array();

	for (size_t k = 0; k < r->nlosses; k++) {
		const hf_coord_bt_loss *l = &r->losses[k];
		char from[32], to[32];

		fmt_time(l->from_ms, from);
		fmt_time(l->to_ms, to);
		json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, "
						   "s:f}",
			"node", l->node, "alike", (json_int_t)r->loss_alike[k], "from", from,
			"to", to, "from_ms", (json_int_t)l->from_ms, "to_ms", (json_int_t)l->to_ms,
			"policy_mode", hf_coord_mode_name(l->policy_mode),
			"optimum_mode", hf_coord_mode_name(l->optimum_mode),
			"rule", hf_coord_rule_name(l->rule), "lost_usd", l->lost_usd));
	}
	return a;
}

json_t *hf_coord_backtest_json(const hf_coord_bt_result *r)
{
	json_t *o = json_object(), *st = json_object(), *rules = json_object();
	char from[32], to[32];

	if (!o || !st || !rules) {
		json_decref(o);
		json_decref(st);
		json_decref(rules);
		return NULL;
	}
	fmt_time(r->from_ms, from);
	fmt_time(r->to_ms, to);
	for (int m = 0; m < HF_COORD_NMODES; m++) {
		json_t *t = totals_json(&r->statics[m]);
		json_object_set_new(t, "nodes_idle_instead", json_integer((json_int_t)r->static_idle[m]));
		json_object_set_new(st, hf_coord_mode_name((hf_coord_mode)m), t);
	}
	for (int k = 0; k < HF_COORD_NRULES; k++)
		json_object_set_new(rules, hf_coord_rule_name((hf_coord_rule)k),
				    json_real(r->lost_by_rule[k]));
	json_object_set_new(o, "nodes", json_integer((json_int_t)r->nodes));
	json_object_set_new(o, "groups", json_integer((json_int_t)r->groups));
	json_object_set_new(o, "rows", json_integer((json_int_t)r->rows));
	json_object_set_new(o, "step_s", json_integer((json_int_t)(r->step_ms / 1000)));
	json_object_set_new(o, "from", json_string(from));
	json_object_set_new(o, "to", json_string(to));
	json_object_set_new(o, "policy", totals_json(&r->policy));
	json_object_set_new(o, "statics", st);
	json_object_set_new(o, "best_static", json_string(hf_coord_mode_name(r->best_static)));
	json_object_set_new(o, "optimum", totals_json(&r->optimum));
	json_object_set_new(o, "captured", isfinite(r->captured) ? json_real(r->captured)
								 : json_null());
	json_object_set_new(o, "bar", json_pack("{s:f, s:f, s:b}", "captured_min", BT_BAR_CAPTURED,
						"switches_per_node_hour_max", BT_BAR_SWITCHES,
						"met", bar_met(r)));
	json_object_set_new(o, "lost_usd", json_real(lost_total(r)));
	json_object_set_new(o, "lost_by_rule", rules);
	json_object_set_new(o, "losses", losses_json(r));
	return o;
}
