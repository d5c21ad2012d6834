/* Unit tests of hf_power_target: the controller against simulated plants, stepped in simulated
 * time (0.5 s steps): watts = idle + per_thread * threads * duty, with seeded noise and a lag of
 * zero or one step. Asserted: settled (by the controller's own settle time) within 10 simulated
 * seconds, the plant's noise-free power within 5% of the target at every step after that, the
 * 10 s achieved mean within 5%, no oscillation (few moves, no chattering thread count), the
 * target below the minimum (held at one thread, minimum duty, reported) and above the maximum
 * (full load, "limit"), a target change mid-run, a per-thread drift, and bad options refused.
 * Threading: single-threaded. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hf_power_target.h"

#define STEP_MS 500
#define MAX_LAG 4

typedef struct plant {
	double idle, per_thread, noise;   /* noise: relative amplitude (about +-noise) */
	double drift_per_s;               /* per_thread grows by this many W per second */
	unsigned lag;                     /* measured watts answer this many steps late */
	uint64_t rng;
	hf_power_target_act past[MAX_LAG + 1];   /* past[0]: in force over the step just ended */
} plant;

typedef struct run {
	hf_power_target *pt;
	plant p;
	uint64_t now;
	hf_power_target_act act;
	double last_true_w;
} run;

static double rnd(plant *p)   /* about normal, sd 1/sqrt(3): sum of three uniforms in [-1, 1] */
{
	double s = 0;

	for (int i = 0; i < 3; i++) {
		p->rng ^= p->rng << 13;
		p->rng ^= p->rng >> 7;
		p->rng ^= p->rng << 17;
		s += (double)(p->rng >> 11) / (double)(UINT64_C(1) << 53) * 2.0 - 1.0;
	}
	return s / 3.0;
}

static double true_watts(const plant *p, const hf_power_target_act *a, uint64_t now_ms)
{
	double per = p->per_thread + p->drift_per_s * (double)now_ms / 1000.0;

	return p->idle + per * (double)a->threads * a->duty;
}

static void run_init(run *r, plant p, double target, unsigned nthreads, unsigned lag_opt)
{
	hf_power_target_opts o;
	hf_errbuf eb;

	hf_power_target_opts_default(&o, target, nthreads);
	o.max_lag_steps = lag_opt;
	r->p = p;
	if (!r->p.rng)
		r->p.rng = 0x9e3779b97f4a7c15ull;
	r->now = 1000;
	cr_assert_eq(hf_power_target_new(&o, r->now, &r->pt, &eb), 0, "%s", eb.msg);
	hf_power_target_actuators(r->pt, &r->act);
	for (unsigned i = 0; i <= MAX_LAG; i++)
		r->p.past[i] = r->act;
}

/* One step: the plant ran the actuators of `lag` steps ago over the last STEP_MS. */
static void run_step(run *r)
{
	plant *p = &r->p;
	double w;

	for (unsigned i = MAX_LAG; i > 0; i--)
		p->past[i] = p->past[i - 1];
	p->past[0] = r->act;
	r->now += STEP_MS;
	r->last_true_w = true_watts(p, &p->past[p->lag], r->now);
	w = r->last_true_w * (1.0 + p->noise * rnd(p));
	hf_power_target_step(r->pt, r->now, w, &r->act);
	cr_assert(r->act.threads >= 1, "threads %u", r->act.threads);
	cr_assert(r->act.duty >= 0.05 - 1e-9 && r->act.duty <= 1.0 + 1e-9, "duty %g", r->act.duty);
}

static void info(const run *r, hf_power_target_info *i)
{
	hf_power_target_info_get(r->pt, i);
}

/* Steps until the controller says settled; asserts its settle time is <= 10 s from since. */
static void run_until_settled(run *r, const char *what)
{
	hf_power_target_info i;
	uint64_t since;

	info(r, &i);
	since = i.since_ms;
	while (r->now < since + 10000) {
		run_step(r);
		info(r, &i);
		if (i.settled)
			break;
	}
	cr_assert(i.settled, "%s: not settled within 10 s (state %s, last %.1f W, target %.1f W, "
		  "load %.3f, slope %.2f)", what, hf_power_target_state_name(i.state), i.last_w,
		  i.target_w, i.load, i.slope_w);
	cr_assert(i.settle_ms > 0 && i.settle_ms <= 10000, "%s: settle_ms %llu", what,
		  (unsigned long long)i.settle_ms);
	cr_log_info("%s: settled in %llu ms (%s, %u threads at duty %.3f)", what,
		    (unsigned long long)i.settle_ms, hf_power_target_state_name(i.state),
		    i.act.threads, i.act.duty);
}

/* Holds for seconds: every step's true power within 5% of the target; returns moves made. */
static uint64_t hold_within(run *r, double seconds, const char *what, unsigned *thread_changes)
{
	hf_power_target_info i0, i;
	uint64_t end = r->now + (uint64_t)(seconds * 1000);
	unsigned prev = r->act.threads;

	info(r, &i0);
	*thread_changes = 0;
	while (r->now < end) {
		run_step(r);
		info(r, &i);
		double dev = fabs(r->last_true_w - i.target_w) / i.target_w;
		cr_assert(dev <= 0.05, "%s: at %.1f s true power %.2f W is %.1f%% off the target %.1f W",
			  what, (double)r->now / 1000.0, r->last_true_w, dev * 100, i.target_w);
		cr_assert(i.settled, "%s: no longer settled at %.1f s (state %s)", what,
			  (double)r->now / 1000.0, hf_power_target_state_name(i.state));
		if (r->act.threads != prev)
			(*thread_changes)++;
		prev = r->act.threads;
	}
	info(r, &i);
	cr_assert(fabs(i.achieved_w - i.target_w) <= 0.05 * i.target_w,
		  "%s: achieved %.2f W over %.1f s vs target %.1f W", what, i.achieved_w, i.achieved_s,
		  i.target_w);
	cr_assert(i.achieved_s >= 9.0 && i.achieved_s <= 10.01, "window %.2f s", i.achieved_s);
	return i.moves - i0.moves;
}

static void check_target(plant p, double target, unsigned n, unsigned lag_opt, const char *what)
{
	run r = { 0 };
	unsigned tc;

	run_init(&r, p, target, n, lag_opt);
	run_until_settled(&r, what);
	uint64_t moves = hold_within(&r, 30, what, &tc);
	/* Not oscillating: with 1% noise and a constant plant, a settled controller barely moves,
	 * and its thread count does not chatter. */
	cr_expect(moves <= 6, "%s: %llu moves in 30 s after settling", what, (unsigned long long)moves);
	cr_expect(tc <= 2, "%s: the thread count changed %u times in 30 s after settling", what, tc);
	hf_power_target_free(r.pt);
}

Test(power_target, holds_targets_without_lag)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01 };

	check_target(p, 80, 8, 1, "8 threads 80 W");
	check_target(p, 100, 8, 1, "8 threads 100 W");
	check_target(p, 130, 8, 1, "8 threads 130 W");
	check_target(p, 45, 8, 1, "8 threads 45 W");
}

Test(power_target, holds_targets_with_one_step_lag)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1 };

	check_target(p, 80, 8, 1, "lag 1, 80 W");
	check_target(p, 60, 8, 1, "lag 1, 60 W");
	check_target(p, 120, 8, 1, "lag 1, 120 W");
}

Test(power_target, small_and_idle_dominated_plants)
{
	plant two = { .idle = 30, .per_thread = 15, .noise = 0.01, .lag = 1, .rng = 7 };
	plant idle = { .idle = 100, .per_thread = 8, .noise = 0.005, .lag = 1, .rng = 11 };
	plant gpu = { .idle = 60, .per_thread = 300, .noise = 0.01, .lag = 1, .rng = 13 };

	check_target(two, 45, 2, 1, "2 threads 45 W");
	check_target(idle, 110, 2, 1, "idle-dominated 110 W");
	check_target(gpu, 250, 1, 1, "one device 250 W");
}

Test(power_target, noisier_source)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.03, .lag = 1, .rng = 99 };
	run r = { 0 };
	unsigned tc;

	run_init(&r, p, 90, 8, 1);
	run_until_settled(&r, "3% noise");
	(void)hold_within(&r, 30, "3% noise", &tc);
	hf_power_target_free(r.pt);
}

Test(power_target, below_minimum_holds_at_the_minimum)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1 };
	hf_power_target_info i;
	run r = { 0 };

	run_init(&r, p, 30, 8, 1);
	run_until_settled(&r, "30 W, below the minimum");
	info(&r, &i);
	cr_assert_eq(i.state, HF_PT_BELOW_MINIMUM, "state %s", hf_power_target_state_name(i.state));
	cr_assert_eq(i.act.threads, 1);
	cr_assert_float_eq(i.act.duty, 0.05, 1e-9);
	cr_assert(i.min_w > 40 && i.min_w < 42, "min_w %.2f", i.min_w);
	for (int k = 0; k < 40; k++) {
		run_step(&r);
		cr_assert_eq(r.act.threads, 1);
		cr_assert_float_eq(r.act.duty, 0.05, 1e-9);
	}
	info(&r, &i);
	cr_assert_eq(i.state, HF_PT_BELOW_MINIMUM);
	cr_assert(i.settled);
	hf_power_target_free(r.pt);
}

Test(power_target, above_maximum_runs_full_load)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1 };
	hf_power_target_info i;
	run r = { 0 };

	run_init(&r, p, 500, 8, 1);
	run_until_settled(&r, "500 W, above the maximum");
	info(&r, &i);
	cr_assert_eq(i.state, HF_PT_LIMIT, "state %s", hf_power_target_state_name(i.state));
	cr_assert_eq(i.act.threads, 8);
	cr_assert_float_eq(i.act.duty, 1.0, 1e-9);
	hf_power_target_free(r.pt);
}

Test(power_target, target_change_mid_run)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1, .rng = 5 };
	hf_power_target_info i;
	run r = { 0 };
	unsigned tc;

	run_init(&r, p, 100, 8, 1);
	run_until_settled(&r, "100 W");
	(void)hold_within(&r, 15, "100 W", &tc);
	hf_power_target_set(r.pt, 60, r.now);
	info(&r, &i);
	cr_assert(!i.settled && i.settle_ms == 0 && i.since_ms == r.now);
	run_until_settled(&r, "100 -> 60 W");
	(void)hold_within(&r, 15, "60 W", &tc);
	hf_power_target_set(r.pt, 125, r.now);
	run_until_settled(&r, "60 -> 125 W");
	(void)hold_within(&r, 15, "125 W", &tc);
	/* down into the impossible and back */
	hf_power_target_set(r.pt, 20, r.now);
	run_until_settled(&r, "125 -> 20 W");
	info(&r, &i);
	cr_assert_eq(i.state, HF_PT_BELOW_MINIMUM);
	hf_power_target_set(r.pt, 90, r.now);
	run_until_settled(&r, "20 -> 90 W");
	(void)hold_within(&r, 15, "90 W", &tc);
	hf_power_target_free(r.pt);
}

Test(power_target, per_thread_drift_is_tracked)
{
	/* per-thread watts from 12 W to 18 W over the 60 s (a device warming up) */
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1, .drift_per_s = 0.1,
		    .rng = 3 };
	hf_power_target_info a, b;
	run r = { 0 };
	unsigned tc;

	run_init(&r, p, 80, 8, 1);
	run_until_settled(&r, "drift");
	info(&r, &a);
	(void)hold_within(&r, 50, "drift", &tc);
	info(&r, &b);
	cr_assert(b.load < a.load * 0.85, "load %.3f -> %.3f: the drift was not followed", a.load,
		  b.load);
	hf_power_target_free(r.pt);
}

Test(power_target, restart_keeps_what_it_learnt)
{
	plant p = { .idle = 40, .per_thread = 12, .noise = 0.01, .lag = 1 };
	hf_power_target_info a, b;
	run r = { 0 };

	run_init(&r, p, 70, 8, 1);
	run_until_settled(&r, "first run");
	info(&r, &a);
	hf_power_target_pause(r.pt);
	r.now += 5000;
	hf_power_target_restart(r.pt, r.now);
	info(&r, &b);
	cr_assert(!b.settled && b.achieved_w == 0 && b.achieved_s == 0);
	cr_assert_float_eq(b.load, a.load, 1e-12);
	run_until_settled(&r, "second run");
	info(&r, &b);
	cr_assert(b.settle_ms <= a.settle_ms, "the second run (%llu ms) settled slower than the "
		  "first (%llu ms)", (unsigned long long)b.settle_ms, (unsigned long long)a.settle_ms);
	hf_power_target_free(r.pt);
}

Test(power_target, ignores_bad_measurements)
{
	plant p = { .idle = 40, .per_thread = 12, .lag = 0 };
	hf_power_target_act a0, a1;
	hf_power_target_info i;
	run r = { 0 };

	run_init(&r, p, 80, 8, 0);
	hf_power_target_actuators(r.pt, &a0);
	hf_power_target_step(r.pt, r.now + 500, NAN, &a1);
	hf_power_target_step(r.pt, r.now + 1000, -5, &a1);
	hf_power_target_step(r.pt, r.now + 1500, INFINITY, &a1);
	cr_assert_eq(a1.threads, a0.threads);
	cr_assert_float_eq(a1.duty, a0.duty, 1e-12);
	info(&r, &i);
	cr_assert_eq(i.steps, 0);
	hf_power_target_set(r.pt, -1, r.now);
	hf_power_target_set(r.pt, NAN, r.now);
	info(&r, &i);
	cr_assert_float_eq(i.target_w, 80, 1e-12);
	hf_power_target_free(r.pt);
}

Test(power_target, refuses_bad_options)
{
	hf_power_target_opts o;
	hf_power_target *pt = (hf_power_target *)1;
	hf_errbuf eb;

	hf_power_target_opts_default(&o, 0, 4);
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	cr_assert_null(pt);
	cr_assert(strstr(eb.msg, "watts > 0"), "%s", eb.msg);
	hf_power_target_opts_default(&o, NAN, 4);
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	hf_power_target_opts_default(&o, 50, 0);
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "threads"), "%s", eb.msg);
	hf_power_target_opts_default(&o, 50, 4);
	o.min_duty = 1.5;
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "duty"), "%s", eb.msg);
	hf_power_target_opts_default(&o, 50, 4);
	o.gain = 2;
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	hf_power_target_opts_default(&o, 50, 4);
	o.max_lag_steps = 9;
	cr_assert_eq(hf_power_target_new(&o, 0, &pt, &eb), HF_EINVAL);
	hf_power_target_free(NULL);
	cr_assert_str_eq(hf_power_target_state_name(HF_PT_BELOW_MINIMUM), "below_minimum");
	cr_assert_str_eq(hf_power_target_state_name(HF_PT_LIMIT), "limit");
	cr_assert_str_eq(hf_power_target_state_name((hf_power_target_state)42), "unknown");
}
