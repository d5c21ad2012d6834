/* hf_coord_series_gen: the generator of synthetic market series (hf_coord_series.h): BTC as a
 * geometric Brownian motion (or daily closes with a Brownian bridge between them), blocks as a
 * Poisson process with Bitcoin's retargets (or a public difficulty schedule and height
 * anchors), fees with a diurnal swing and noise, an ERCOT-like power price (diurnal shape,
 * noise, curtailment spikes), diurnal inference demand with a weekend factor.
 *
 * Invariants: every random draw comes from one xoshiro256** stream seeded (through
 * splitmix64) with g->seed, in a fixed order (first every block, then every row), so the same
 * generator gives the same series bit for bit. Every row's numbers are finite and >= 0, the
 * difficulty > 0, the height non-decreasing. Noise terms are Ornstein-Uhlenbeck processes in
 * log space (stationary, mean-reverting) so no figure drifts off.
 * Threading: reentrant; no state outside the call.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_coord_series.h"

#define TWO_PI 6.283185307179586
#define RETARGET 2016u
#define TARGET_SPACING_S 600.0
#define MAX_BLOCKS (4u << 20)     /* 64 MiB of block times; 3650 days are ~526,000 */
#define MAX_DAYS 3650u
#define LAST_MS 253402300799000ull   /* 9999-12-31T23:59:59Z, the writer's last time */

/* ---- xoshiro256** seeded by splitmix64 ---- */

typedef struct rng {
	uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static void rng_seed(rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

/* Uniform in [0, 1). */
static double uniform(rng *r)
{
	return (double)(next_u64(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller; one value per call keeps the stream's order simple). */
static double normal(rng *r)
{
	double u = 1.0 - uniform(r), v = uniform(r);
	return sqrt(-2.0 * log(u)) * cos(TWO_PI * v);
}

/* Exponential with mean 1. */
static double expo(rng *r)
{
	return -log(1.0 - uniform(r));
}

/* An Ornstein-Uhlenbeck step of x (stationary s.d. sd, time constant tau_s) over dt_s. */
static double ou_step(rng *r, double x, double sd, double tau_s, double dt_s)
{
	double a = exp(-dt_s / tau_s);
	return x * a + sd * sqrt(1.0 - a * a) * normal(r);
}

/* ---- shapes ---- */

/* The power price's daily shape at local hour h (mean ~1): a night trough, a midday solar
 * dip, the peak late afternoon/early evening (about 18:30), as ERCOT's real-time prices
 * look on an ordinary day. */
static double power_shape(double h)
{
	double peak = h - 18.5, dip = h - 13.0;
	return 0.8 + 0.2 * cos(TWO_PI * (h - 16.0) / 24.0) + 0.9 * exp(-peak * peak / 4.5) -
	       0.15 * exp(-dip * dip / 8.0);
}

/* Inference demand's daily shape at local hour h, -1..1: peak 14:00, trough 02:00. */
static double demand_shape(double h)
{
	return cos(TWO_PI * (h - 14.0) / 24.0);
}

/* Fees' daily swing at UTC hour h (busiest when America and Europe overlap, ~15:00 UTC). */
static double fees_shape(double h)
{
	return 1.0 + 0.2 * cos(TWO_PI * (h - 15.0) / 24.0);
}

void hf_coord_series_gen_defaults(hf_coord_series_gen *g)
{
	memset(g, 0, sizeof *g);
	g->start_ms = UINT64_C(1761955200000); /* 2025-11-01T00:00:00Z */
	g->days = 14;
	g->step_s = 300;
	g->seed = 1;
	g->btc_usd = 110000.0;
	g->btc_vol_daily = 0.03;
	g->difficulty = 1.56e14;
	g->height = 921400;
	g->fees_btc = 0.025;
	g->power_usd_kwh = 0.035;
	g->spike_per_day = 0.5;
	g->spike_usd_kwh = 2.0;
	g->inference_price = 0.00014;
	g->demand_base = 20000.0;
	g->demand_amplitude = 12000.0;
	g->utc_offset_min = -360;
	g->block_interval_s = 600.0;
	g->hashrate_growth_daily = 0.001;
	g->weekend_factor = 0.75;
	g->inference_price_vol = 0.0;
}

/* ---- validation ---- */

static bool num_ok(double v, double lo, double hi)
{
	return isfinite(v) && v >= lo && v <= hi;
}

static int check_arrays(const hf_coord_series_gen *g, hf_errbuf *eb)
{
	for (size_t i = 0; i < g->btc_daily_n; i++)
		if (!num_ok(g->btc_daily[i], 1e-9, 1e12))
			return hf_fail(eb, HF_EINVAL, "btc_daily[%zu]: expected a finite price > 0", i);
	for (size_t i = 0; i < g->fees_daily_n; i++)
		if (!num_ok(g->fees_daily[i], 0, 1e6))
			return hf_fail(eb, HF_EINVAL, "fees_daily[%zu]: expected a finite number >= 0",
				       i);
	for (size_t i = 0; i < g->nepochs; i++) {
		if (!num_ok(g->epochs[i].difficulty, 1e-9, 1e30))
			return hf_fail(eb, HF_EINVAL, "epochs[%zu].difficulty: expected a finite "
				       "number > 0", i);
		if (i && g->epochs[i].height <= g->epochs[i - 1].height)
			return hf_fail(eb, HF_EINVAL, "epochs[%zu].height: not after the previous "
				       "epoch's", i);
	}
	for (size_t i = 0; i < g->nanchors; i++) {
		const hf_coord_series_anchor *a = &g->anchors[i], *p = i ? a - 1 : NULL;
		if (a->t_ms < g->start_ms || a->height < g->height)
			return hf_fail(eb, HF_EINVAL, "anchors[%zu]: before the start (time or height)",
				       i);
		if (p && (a->t_ms <= p->t_ms || a->height < p->height))
			return hf_fail(eb, HF_EINVAL, "anchors[%zu]: not after the previous anchor", i);
	}
	return 0;
}

static int check_gen(const hf_coord_series_gen *g, hf_errbuf *eb)
{
	if (g->days < 1 || g->days > MAX_DAYS)
		return hf_fail(eb, HF_EINVAL, "days: expected 1..%u, got %u", MAX_DAYS, g->days);
	if (g->step_s < 1 || g->step_s > 86400)
		return hf_fail(eb, HF_EINVAL, "step_s: expected 1..86400, got %u", g->step_s);
	if ((uint64_t)g->days * 86400u / g->step_s > HF_COORD_SERIES_MAX_ROWS)
		return hf_fail(eb, HF_ETOOBIG, "days * 86400 / step_s: more than %u rows",
			       HF_COORD_SERIES_MAX_ROWS);
	if (g->start_ms > LAST_MS - (uint64_t)g->days * 86400000u)
		return hf_fail(eb, HF_EINVAL, "start_ms: the series would end after 9999-12-31");
	if (g->btc_daily_n && 86400 % g->step_s)
		return hf_fail(eb, HF_EINVAL, "step_s: must divide a day (86400) with btc_daily");
	static const struct { const char *name; size_t off; double lo, hi; } f[] = {
		{ "btc_usd", offsetof(hf_coord_series_gen, btc_usd), 1e-9, 1e12 },
		{ "btc_vol_daily", offsetof(hf_coord_series_gen, btc_vol_daily), 0, 1 },
		{ "difficulty", offsetof(hf_coord_series_gen, difficulty), 1e-9, 1e30 },
		{ "fees_btc", offsetof(hf_coord_series_gen, fees_btc), 0, 1e6 },
		{ "power_usd_kwh", offsetof(hf_coord_series_gen, power_usd_kwh), 0, 1e3 },
		{ "spike_per_day", offsetof(hf_coord_series_gen, spike_per_day), 0, 100 },
		{ "spike_usd_kwh", offsetof(hf_coord_series_gen, spike_usd_kwh), 0, 1e3 },
		{ "inference_price", offsetof(hf_coord_series_gen, inference_price), 0, 1e9 },
		{ "demand_base", offsetof(hf_coord_series_gen, demand_base), 0, 1e12 },
		{ "demand_amplitude", offsetof(hf_coord_series_gen, demand_amplitude), 0, 1e12 },
		{ "block_interval_s", offsetof(hf_coord_series_gen, block_interval_s), 1, 1e6 },
		{ "hashrate_growth_daily", offsetof(hf_coord_series_gen, hashrate_growth_daily),
		  -0.1, 0.1 },
		{ "weekend_factor", offsetof(hf_coord_series_gen, weekend_factor), 0, 10 },
		{ "inference_price_vol", offsetof(hf_coord_series_gen, inference_price_vol), 0, 1 },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		double v;
		memcpy(&v, (const char *)g + f[i].off, sizeof v);
		if (!num_ok(v, f[i].lo, f[i].hi))
			return hf_fail(eb, HF_EINVAL, "%s: expected a finite number in [%g, %g], got %g",
				       f[i].name, f[i].lo, f[i].hi, v);
	}
	if (g->utc_offset_min < -14 * 60 || g->utc_offset_min > 14 * 60)
		return hf_fail(eb, HF_EINVAL, "utc_offset_min: expected -840..840, got %d",
			       g->utc_offset_min);
	return check_arrays(g, eb);
}

/* ---- blocks ---- */

typedef struct chain {
	double *t;        /* t[k]: seconds after the start when block height0 + 1 + k was found */
	double *diff;     /* diff[k]: the difficulty block height0 + 1 + k was mined at */
	size_t n, cap;
	double end_s;     /* blocks are made up to here */
	double tail_d;    /* the difficulty of the block after the last one made */
} chain;

static int chain_push(chain *c, double t, double d, hf_errbuf *eb)
{
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 4096;
		if (ncap > MAX_BLOCKS)
			return hf_fail(eb, HF_ETOOBIG, "more than %u blocks in the series", MAX_BLOCKS);
		double *nt = realloc(c->t, ncap * sizeof *nt);
		if (!nt)
			return hf_fail(eb, HF_ENOMEM, "out of memory (blocks)");
		c->t = nt;
		double *nd = realloc(c->diff, ncap * sizeof *nd);
		if (!nd)
			return hf_fail(eb, HF_ENOMEM, "out of memory (blocks)");
		c->diff = nd;
		c->cap = ncap;
	}
	c->t[c->n] = t;
	c->diff[c->n] = d;
	c->n++;
	return 0;
}

/* The scheduled difficulty at height h (the last epoch at or below it; before the first, the
 * starting difficulty). */
static double epoch_difficulty(const hf_coord_series_gen *g, uint64_t h)
{
	double d = g->difficulty;
	for (size_t i = 0; i < g->nepochs && g->epochs[i].height <= h; i++)
		d = g->epochs[i].difficulty;
	return d;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

typedef struct block_state {
	double t;            /* the tip's time (s after the start) */
	uint64_t h;          /* the tip's height */
	double d;            /* the difficulty of the next block */
	double epoch_t0;     /* when the current retarget period's first block was found */
} block_state;

/* Records block s->h + 1 found at t, then retargets (Bitcoin: after each 2016th block, by the
 * period's expected over actual time, clamped to 4x either way) or follows the schedule. */
static int found(const hf_coord_series_gen *g, chain *c, block_state *s, double t,
		 hf_errbuf *eb)
{
	int rc = chain_push(c, t, s->d, eb);
	if (rc < 0)
		return rc;
	s->h++;
	s->t = t;
	if (g->nepochs) {
		s->d = epoch_difficulty(g, s->h + 1);
	} else if ((s->h + 1) % RETARGET == 0) {
		double actual = t - s->epoch_t0, expected = RETARGET * TARGET_SPACING_S;
		if (actual < expected / 4)
			actual = expected / 4;
		if (actual > expected * 4)
			actual = expected * 4;
		s->d *= expected / actual;
		s->epoch_t0 = t;
	}
	return 0;
}

/* The free process: blocks arrive at rate hashrate(t) / difficulty; the network's hashrate
 * starts where the starting difficulty gives one block per block_interval_s and drifts by
 * hashrate_growth_daily. */
static int free_blocks(const hf_coord_series_gen *g, rng *r, chain *c, block_state *s,
		       double until, hf_errbuf *eb)
{
	for (;;) {
		double rate = g->difficulty / s->d / g->block_interval_s *
			      exp(g->hashrate_growth_daily * s->t / 86400.0);
		double t = s->t + expo(r) / rate;
		if (t > until)
			return 0;
		int rc = found(g, c, s, t, eb);
		if (rc < 0)
			return rc;
	}
}

/* Between two anchors: the blocks of a Poisson process conditioned on the count are uniform
 * order statistics; the last lands on the anchor's instant. */
static int anchored_blocks(const hf_coord_series_gen *g, rng *r, chain *c, block_state *s,
			   double until, uint64_t h, hf_errbuf *eb)
{
	uint64_t n = h - s->h;
	double t0 = s->t, *u;
	int rc = 0;

	if (n == 0) {
		s->t = until;
		return 0;
	}
	if (n > MAX_BLOCKS)
		return hf_fail(eb, HF_ETOOBIG, "more than %u blocks in the series", MAX_BLOCKS);
	if (!(u = malloc((size_t)n * sizeof *u)))
		return hf_fail(eb, HF_ENOMEM, "out of memory (blocks)");
	for (uint64_t i = 0; i + 1 < n; i++)
		u[i] = t0 + (until - t0) * uniform(r);
	qsort(u, (size_t)(n - 1), sizeof *u, cmp_double);
	u[n - 1] = until;
	for (uint64_t i = 0; i < n && rc == 0; i++)
		rc = found(g, c, s, u[i], eb);
	free(u);
	return rc;
}

static int make_chain(const hf_coord_series_gen *g, rng *r, chain *c, hf_errbuf *eb)
{
	block_state s = {
		.t = 0, .h = g->height,
		.d = g->nepochs ? epoch_difficulty(g, g->height + 1) : g->difficulty,
		/* the period began before the start: assume block_interval_s for its blocks */
		.epoch_t0 = -(double)((g->height + 1) % RETARGET) * g->block_interval_s,
	};
	double end = (double)g->days * 86400.0;
	int rc;

	c->end_s = end;
	for (size_t i = 0; i < g->nanchors; i++) {
		double at = (double)(g->anchors[i].t_ms - g->start_ms) / 1000.0;
		if (at >= end)
			break;
		if ((rc = anchored_blocks(g, r, c, &s, at, g->anchors[i].height, eb)) < 0)
			return rc;
	}
	rc = free_blocks(g, r, c, &s, end, eb);
	c->tail_d = s.d;
	return rc;
}

/* ---- rows ---- */

typedef struct noise {
	double fees, power, demand, price;    /* OU states, log space */
	double spike_left_s, spike_usd;       /* the spike in progress */
	bool in_spike;                        /* the last row was in a spike */
	double spike_norm;                    /* 1 / the mean of the spike weight over a day */
	double log_btc;
} noise;

/* The spike weight at local hour h: spikes come with the evening peak. */
static double spike_weight(double h)
{
	double s = power_shape(h);
	return s * s;
}

static double local_hour(const hf_coord_series_gen *g, uint64_t t_ms, int *weekday)
{
	int64_t s = (int64_t)(t_ms / 1000u) + (int64_t)g->utc_offset_min * 60;
	int64_t day = s >= 0 ? s / 86400 : (s - 86399) / 86400;
	if (weekday)
		*weekday = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday; 0 Sunday */
	return (double)(s - day * 86400) / 3600.0;
}

static double power_at(const hf_coord_series_gen *g, rng *r, noise *z, uint64_t t_ms,
		       double dt)
{
	double h = local_hour(g, t_ms, NULL);

	z->power = ou_step(r, z->power, 0.15, 3 * 3600.0, dt);
	double base = g->power_usd_kwh * power_shape(h) * exp(z->power);
	/* spikes do not touch: at least one row of the ordinary price between two */
	bool was = z->in_spike;
	z->in_spike = false;
	if (z->spike_left_s <= 0 && !was && g->spike_per_day > 0) {
		double p = g->spike_per_day * dt / 86400.0 * spike_weight(h) * z->spike_norm;
		if (uniform(r) < p) {
			/* 15 to 90 minutes, log-uniform between 1/4 and 2.5 times spike_usd_kwh */
			z->spike_left_s = 900.0 + 4500.0 * uniform(r);
			z->spike_usd = g->spike_usd_kwh * 0.25 * exp(log(10.0) * uniform(r));
		}
	}
	if (z->spike_left_s > 0) {
		z->spike_left_s -= dt;
		z->in_spike = true;
		return base > z->spike_usd ? base : z->spike_usd;
	}
	return base;
}

/* The BTC price path: per day segment from the daily closes (Brownian bridge in log space),
 * else GBM. Fills px[0..n) for rows. */
static void btc_path(const hf_coord_series_gen *g, rng *r, double *px, size_t n)
{
	double dt = (double)g->step_s / 86400.0, sd = g->btc_vol_daily * sqrt(dt);
	size_t per_day = 86400u / g->step_s, i = 0;
	double x = log(g->btc_daily_n ? g->btc_daily[0] : g->btc_usd);

	for (size_t k = 0; g->btc_daily_n && k + 1 < g->btc_daily_n && i < n; k++) {
		double a = log(g->btc_daily[k]), b = log(g->btc_daily[k + 1]), w = 0;
		size_t m = per_day;
		for (size_t j = 0; j < m; j++) { /* every draw, even past the end: same stream */
			if (i + j < n)
				px[i + j] = w; /* the walk, bridged below */
			w += sd * normal(r);
		}
		/* w is now the walk at the segment's end: subtract its share to pin both ends */
		for (size_t j = 0; j < m && i + j < n; j++) {
			double f = (double)j / (double)m;
			px[i + j] = exp(a + (b - a) * f + px[i + j] - f * w);
		}
		i += m;
		x = b;
	}
	for (; i < n; i++) {
		px[i] = exp(x);
		x += -0.5 * sd * sd + sd * normal(r);
	}
}

static double fees_at(const hf_coord_series_gen *g, rng *r, noise *z, uint64_t t_ms,
		      double dt)
{
	uint64_t day = (t_ms - g->start_ms) / 86400000u;
	double mean = day < g->fees_daily_n ? g->fees_daily[day] : g->fees_btc;
	double h = (double)(t_ms / 1000u % 86400u) / 3600.0;

	z->fees = ou_step(r, z->fees, 0.25, 6 * 3600.0, dt);
	return mean * fees_shape(h) * exp(z->fees);
}

static double demand_at(const hf_coord_series_gen *g, rng *r, noise *z, uint64_t t_ms,
			double dt)
{
	int wd;
	double h = local_hour(g, t_ms, &wd);
	double d = g->demand_base + g->demand_amplitude * demand_shape(h);

	if (wd == 0 || wd == 6)
		d *= g->weekend_factor;
	z->demand = ou_step(r, z->demand, 0.10, 2 * 3600.0, dt);
	d *= exp(z->demand);
	return d > 0 ? d : 0;
}

/* v rounded to a multiple of q (q > 0), written as the shortest decimal of that multiple. */
static double quantize(double v, double q)
{
	double n = round(v / q);
	char buf[40];
	/* n * q in binary is not the decimal quantum: print it at the quantum's digits and read
	 * it back, so "0.03125" and not "0.031250000000000007" is what the writer shows */
	int digits = q >= 1 ? 0 : (int)ceil(-log10(q) - 1e-9);
	snprintf(buf, sizeof buf, "%.*f", digits, n * q);
	return strtod(buf, NULL);
}

static int fill_rows(const hf_coord_series_gen *g, rng *r, const chain *c, hf_coord_series *s)
{
	noise z = { 0 };
	double dt = (double)g->step_s;
	size_t k = 0;

	for (int m = 0; m < 1440; m++)
		z.spike_norm += spike_weight(m / 60.0) / 1440.0;
	z.spike_norm = 1.0 / z.spike_norm;
	double *px = malloc(s->n * sizeof *px);
	if (!px)
		return HF_ENOMEM;
	btc_path(g, r, px, s->n);
	for (size_t i = 0; i < s->n; i++) {
		hf_coord_series_row *row = &s->rows[i];
		double at = (double)i * dt;
		row->t_ms = g->start_ms + (uint64_t)i * g->step_s * 1000u;
		while (k < c->n && c->t[k] <= at)
			k++;
		row->height = g->height + k;
		/* the difficulty of the next block (what a pool or mempool shows as current) */
		row->difficulty = k < c->n ? c->diff[k] : c->tail_d;
		/* figures rounded as they are quoted: cents, whole difficulty, satoshis, 0.01
		 * USD/MWh, 0.01 requests/s (the price only when it drifts) */
		row->difficulty = fmax(1.0, round(row->difficulty));
		row->btc_usd = fmax(0.01, quantize(px[i], 0.01));
		row->fees_btc = quantize(fees_at(g, r, &z, row->t_ms, dt), 1e-8);
		row->power_usd_kwh = quantize(power_at(g, r, &z, row->t_ms, dt), 1e-5);
		z.price = ou_step(r, z.price, g->inference_price_vol, 86400.0, dt);
		row->inference_price = g->inference_price_vol > 0 ?
			quantize(g->inference_price * exp(z.price), g->inference_price * 1e-6) :
			g->inference_price;
		row->inference_demand = quantize(demand_at(g, r, &z, row->t_ms, dt), 0.01);
	}
	free(px);
	return 0;
}

int hf_coord_series_generate(const hf_coord_series_gen *gen, hf_coord_series *out,
			     hf_errbuf *eb)
{
	hf_coord_series_gen gz = *gen, *g = &gz;
	chain c = { 0 };
	rng r;
	int rc;

	memset(out, 0, sizeof *out);
	if (g->block_interval_s == 0) /* the extensions left zero: their original meaning */
		g->block_interval_s = TARGET_SPACING_S;
	if (g->weekend_factor == 0)
		g->weekend_factor = 0.75;
	if ((rc = check_gen(g, eb)) < 0)
		return rc;
	rng_seed(&r, g->seed);
	if ((rc = make_chain(g, &r, &c, eb)) < 0)
		goto free_chain;
	out->n = (size_t)((uint64_t)g->days * 86400u / g->step_s);
	out->step_ms = out->n > 1 ? (uint64_t)g->step_s * 1000u : 0;
	if (!(out->rows = calloc(out->n, sizeof *out->rows))) {
		rc = hf_fail(eb, HF_ENOMEM, "out of memory (%zu rows)", out->n);
		goto free_chain;
	}
	if ((rc = fill_rows(g, &r, &c, out)) < 0) {
		hf_coord_series_clear(out);
		rc = hf_fail(eb, rc, "out of memory (prices)");
	}
free_chain:
	free(c.t);
	free(c.diff);
	return rc;
}
