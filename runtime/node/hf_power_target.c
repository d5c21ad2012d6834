/* hf_power_target: the power target's controller (the law is in hf_power_target.h).
 * Invariants: umin <= u <= umax at all times; act.threads * act.duty == u (up to rounding of
 * the duty clamp); the 10 s window holds whole steps only, oldest first, capped at HIST
 * entries (steps shorter than 10 s / HIST shorten the window, never overflow it).
 * Threading: see hf_power_target.h.
 */
#include "hf_power_target.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

#define HIST 256
#define FRESH 4
#define SETPOINT_MARGIN 0.02   /* aim this share under the target */
#define DEADBAND 0.015         /* no move while |watts - setpoint| <= this share of the target */
#define THREAD_HYST 0.9        /* drop a thread once threads - 1 carry u at <= 90% duty */
#define PROBE_SHARE 0.25       /* without a learnt slope, a downward move is at least this of N */
#define SECANT_MIN_DU 0.05     /* secants only from moves of >= 5% of N ... */
#define SECANT_MIN_DW 0.01     /* ... that moved the watts by >= 1% of the target */
#define SETTLE_COUNT 2

typedef struct hist_ent {
	uint64_t end_ms;
	double dt_s, joules;
} hist_ent;

struct hf_power_target {
	hf_power_target_opts o;
	double u, umin, umax;
	hf_power_target_act act;
	double slope;            /* > 0 once known */
	bool have_slope;
	double dec_u, dec_w;     /* the decision point a move left from */
	bool secant_pending;     /* the next usable step closes a secant from dec_* */
	unsigned since_move;     /* steps since the last move, pause or restart */
	double fresh[FRESH];
	unsigned nfresh, fresh_next;
	hist_ent hist[HIST];
	unsigned hhead, hlen;
	uint64_t last_ms;
	bool have_last;
	double last_w, min_w;
	hf_power_target_state state;
	unsigned state_count;
	bool settled;
	uint64_t settle_ms, since_ms, steps, moves;
};

static const char *const state_names[] = { "settling", "holding", "below_minimum", "limit" };

const char *hf_power_target_state_name(hf_power_target_state s)
{
	return (unsigned)s < HF_ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

void hf_power_target_opts_default(hf_power_target_opts *o, double target_w, unsigned max_threads)
{
	*o = (hf_power_target_opts){ .target_w = target_w, .max_threads = max_threads,
				     .min_duty = 0.05, .max_lag_steps = 1, .gain = 0.8 };
}

/* u -> the fewest threads that carry it (with hysteresis on the way down), duty = u / threads. */
static void map_load(hf_power_target *pt)
{
	unsigned n = pt->act.threads ? pt->act.threads : 1;

	while (n < pt->o.max_threads && pt->u > (double)n + 1e-9)
		n++;
	while (n > 1 && pt->u <= (double)(n - 1) * THREAD_HYST)
		n--;
	double d = pt->u / (double)n;
	pt->act.threads = n;
	pt->act.duty = d < pt->o.min_duty ? pt->o.min_duty : d > 1.0 ? 1.0 : d;
}

int hf_power_target_new(const hf_power_target_opts *o, uint64_t now_ms, hf_power_target **out,
			hf_errbuf *eb)
{
	hf_power_target_opts v = *o;
	hf_power_target *pt;

	*out = NULL;
	if (v.min_duty == 0)
		v.min_duty = 0.05;
	if (v.gain == 0)
		v.gain = 0.8;
	if (!isfinite(v.target_w) || v.target_w <= 0)
		return hf_fail(eb, HF_EINVAL, "power target: expected watts > 0, got %g", v.target_w);
	if (v.max_threads < 1 || v.max_threads > 256)
		return hf_fail(eb, HF_EINVAL, "power target: expected 1..256 threads, got %u",
			       v.max_threads);
	if (!(v.min_duty > 0 && v.min_duty <= 1))
		return hf_fail(eb, HF_EINVAL, "power target: expected a minimum duty in (0, 1], got %g",
			       v.min_duty);
	if (v.max_lag_steps > 8)
		return hf_fail(eb, HF_EINVAL, "power target: expected a lag of 0..8 steps, got %u",
			       v.max_lag_steps);
	if (!(v.gain > 0 && v.gain <= 1))
		return hf_fail(eb, HF_EINVAL, "power target: expected a gain in (0, 1], got %g", v.gain);
	pt = calloc(1, sizeof *pt);
	if (!pt)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	pt->o = v;
	pt->umin = v.min_duty;
	pt->umax = (double)v.max_threads;
	pt->u = pt->umax;
	pt->act.threads = v.max_threads;
	map_load(pt);
	pt->since_ms = now_ms;
	*out = pt;
	return 0;
}

void hf_power_target_actuators(const hf_power_target *pt, hf_power_target_act *out)
{
	*out = pt->act;
}

static void hist_push(hf_power_target *pt, uint64_t now_ms, double dt_s, double watts)
{
	unsigned i = (pt->hhead + pt->hlen) % HIST;

	if (pt->hlen == HIST) {
		pt->hhead = (pt->hhead + 1) % HIST;
		pt->hlen--;
	}
	pt->hist[i] = (hist_ent){ .end_ms = now_ms, .dt_s = dt_s, .joules = watts * dt_s };
	pt->hlen++;
	while (pt->hlen && pt->hist[pt->hhead].end_ms + HF_POWER_TARGET_WINDOW_MS <
	       now_ms + (uint64_t)(pt->hist[pt->hhead].dt_s * 1000.0 + 0.5)) {
		pt->hhead = (pt->hhead + 1) % HIST;   /* it began before the window */
		pt->hlen--;
	}
}

static double fresh_mean(const hf_power_target *pt)
{
	double s = 0;

	for (unsigned i = 0; i < pt->nfresh; i++)
		s += pt->fresh[i];
	return pt->nfresh ? s / (double)pt->nfresh : 0;
}

/* The first usable step after a move: the secant from the point the move left. */
static void learn_slope(hf_power_target *pt, double w)
{
	double du = pt->u - pt->dec_u, dw = w - pt->dec_w, b;

	pt->secant_pending = false;
	if (fabs(du) < SECANT_MIN_DU * pt->umax || fabs(dw) < SECANT_MIN_DW * pt->o.target_w ||
	    du * dw <= 0)
		return;   /* too small to see above noise, or noise against the move */
	b = dw / du;
	if (pt->have_slope) {
		b = b < pt->slope / 4 ? pt->slope / 4 : b > pt->slope * 4 ? pt->slope * 4 : b;
		pt->slope = 0.5 * pt->slope + 0.5 * b;
	} else {
		pt->slope = b;
		pt->have_slope = true;
	}
}

static void classify(hf_power_target *pt, double w, uint64_t now_ms)
{
	double t = pt->o.target_w;
	bool at_min = pt->u <= pt->umin + 1e-9, at_max = pt->u >= pt->umax - 1e-9;
	hf_power_target_state st;

	if (at_min && w > t * (1 + HF_POWER_TARGET_BAND))
		st = HF_PT_BELOW_MINIMUM;
	else if (at_max && w < t * (1 - HF_POWER_TARGET_BAND))
		st = HF_PT_LIMIT;
	else if (fabs(w - t) <= t * HF_POWER_TARGET_BAND)
		st = HF_PT_HOLDING;
	else
		st = HF_PT_SETTLING;
	pt->state_count = st == pt->state ? pt->state_count + 1 : 1;
	pt->state = st;
	pt->settled = st != HF_PT_SETTLING && pt->state_count >= SETTLE_COUNT;
	if (pt->settled && !pt->settle_ms)
		pt->settle_ms = now_ms > pt->since_ms ? now_ms - pt->since_ms : 1;
}

/* Moves u toward the setpoint unless the error is within the deadband or u is at the bound. */
static void move(hf_power_target *pt, double w)
{
	double t = pt->o.target_w, e = t * (1 - SETPOINT_MARGIN) - w, du, nu;
	double slope = pt->have_slope ? pt->slope : w / pt->u;   /* never below the true slope */

	if (pt->o.observe || fabs(e) <= DEADBAND * t)
		return;
	if (!(slope > 1e-9))
		slope = t / pt->umax;
	du = pt->o.gain * e / slope;
	if (!pt->have_slope && e < 0 && du > -PROBE_SHARE * pt->umax)
		du = -PROBE_SHARE * pt->umax;   /* big enough for a secant; under the target is safe */
	nu = pt->u + du;
	nu = nu < pt->umin ? pt->umin : nu > pt->umax ? pt->umax : nu;   /* the anti-windup */
	if (fabs(nu - pt->u) < 1e-6)
		return;
	pt->dec_u = pt->u;
	pt->dec_w = w;
	pt->secant_pending = true;
	pt->u = nu;
	map_load(pt);
	pt->since_move = 0;
	pt->nfresh = pt->fresh_next = 0;
	pt->moves++;
}

void hf_power_target_step(hf_power_target *pt, uint64_t now_ms, double watts,
			  hf_power_target_act *out)
{
	double w;

	if (!isfinite(watts) || watts < 0) {
		*out = pt->act;
		return;
	}
	if (pt->have_last && now_ms > pt->last_ms)
		hist_push(pt, now_ms, (double)(now_ms - pt->last_ms) / 1000.0, watts);
	pt->last_ms = now_ms;
	pt->have_last = true;
	pt->steps++;
	pt->last_w = watts;
	if (++pt->since_move <= pt->o.max_lag_steps) {
		*out = pt->act;   /* may still hold the time before the last move */
		return;
	}
	pt->fresh[pt->fresh_next] = watts;
	pt->fresh_next = (pt->fresh_next + 1) % FRESH;
	if (pt->nfresh < FRESH)
		pt->nfresh++;
	w = fresh_mean(pt);
	if (pt->secant_pending)
		learn_slope(pt, watts);
	if (pt->u <= pt->umin + 1e-9)
		pt->min_w = w;
	classify(pt, w, now_ms);
	move(pt, w);
	*out = pt->act;
}

void hf_power_target_set(hf_power_target *pt, double target_w, uint64_t now_ms)
{
	if (!isfinite(target_w) || target_w <= 0 || target_w == pt->o.target_w)
		return;
	pt->o.target_w = target_w;
	pt->since_ms = now_ms;
	pt->settled = false;
	pt->settle_ms = 0;
	pt->state = HF_PT_SETTLING;
	pt->state_count = 0;
}

void hf_power_target_pause(hf_power_target *pt)
{
	pt->since_move = 0;
	pt->nfresh = pt->fresh_next = 0;
	pt->secant_pending = false;
}

void hf_power_target_restart(hf_power_target *pt, uint64_t now_ms)
{
	hf_power_target_pause(pt);
	pt->hhead = pt->hlen = 0;
	pt->have_last = false;
	pt->last_w = 0;
	pt->since_ms = now_ms;
	pt->settled = false;
	pt->settle_ms = 0;
	pt->state = HF_PT_SETTLING;
	pt->state_count = 0;
}

void hf_power_target_info_get(const hf_power_target *pt, hf_power_target_info *out)
{
	double j = 0, s = 0;

	for (unsigned i = 0; i < pt->hlen; i++) {
		const hist_ent *h = &pt->hist[(pt->hhead + i) % HIST];
		j += h->joules;
		s += h->dt_s;
	}
	*out = (hf_power_target_info){ .target_w = pt->o.target_w, .last_w = pt->last_w,
		.achieved_w = s > 0 ? j / s : 0, .achieved_s = s, .load = pt->u,
		.slope_w = pt->have_slope ? pt->slope : 0, .min_w = pt->min_w, .act = pt->act,
		.state = pt->state, .settled = pt->settled, .settle_ms = pt->settle_ms,
		.since_ms = pt->since_ms, .steps = pt->steps, .moves = pt->moves };
}

void hf_power_target_free(hf_power_target *pt)
{
	free(pt);
}
