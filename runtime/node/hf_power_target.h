/* hf_power_target: the mining power target's controller, sans-I/O: fed the watts measured over
 * each step (from hf_power energy differences) and the time, it answers the actuators, the
 * number of active hashing threads (1..N) and a duty cycle (hashing share of each period).
 *
 * The law. The controller acts on one continuous load u = threads * duty (thread-equivalents,
 * from 1 * min_duty to N * 1), since the power of a hashing device is close to affine in u
 * (idle + per_thread * u). u is the integrator's state: each decision moves it by
 * gain * (setpoint - watts) / slope, where slope (W per thread-equivalent) is learnt from the
 * secant of the last two decision points (blended, bounded per update, only from moves large
 * enough to see above noise); before any secant it is watts / u, which is never smaller than
 * the true slope (idle >= 0), so the first move never overshoots what the model predicts.
 * Clamping u to its range is the anti-windup: no error accumulates past a bound, so leaving a
 * bound is immediate. The setpoint is 2% under the target and errors within +-1.5% of the
 * target are left alone (the deadband), so the node sits at or just under its target and does
 * not chase noise. After a move, measurements are used only once they cannot include the time
 * before it: max_lag_steps steps are skipped (a source that answers one step late, or an
 * energy window that still held the old actuators), and while holding, the decision uses the
 * mean of the last four usable steps. u maps to the fewest threads that can carry it
 * (threads = ceil(u)), duty = u / threads: threads rise only when duty saturates at 1 and fall
 * only when threads - 1 could carry u at 90% duty or less (hysteresis), so thread changes do
 * not chatter and no power bump comes from them (u is continuous across them).
 * The run starts at full load (u = N) unless a previous run left a learnt u and slope
 * (hf_power_target_restart keeps them).
 *
 * States: "settling" (moving toward the target), "holding" (within 5% of the target),
 * "below_minimum" (one thread at min_duty still draws more than the target: held there),
 * "limit" (every thread at full duty draws less than the target: the target does not bind).
 * settled is true after two consecutive decisions in the same final state (holding,
 * below_minimum or limit); settle_ms is the time from the target's start (the run, or the
 * last target change) to the first such moment.
 * Threading: one owner (the mining supervisor); not locked; info() returns plain values to
 * publish under the owner's own lock.
 */
#ifndef HF_POWER_TARGET_H
#define HF_POWER_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_POWER_TARGET_BAND 0.05        /* "within 5%": holding and settled */
#define HF_POWER_TARGET_WINDOW_MS 10000  /* achieved_w is the mean over this window */

typedef enum hf_power_target_state {
	HF_PT_SETTLING = 0,
	HF_PT_HOLDING,
	HF_PT_BELOW_MINIMUM,
	HF_PT_LIMIT,
} hf_power_target_state;

/* "settling", "holding", "below_minimum", "limit". */
const char *hf_power_target_state_name(hf_power_target_state s);

typedef struct hf_power_target_opts {
	double target_w;        /* > 0 */
	unsigned max_threads;   /* N: 1..256 */
	double min_duty;        /* (0, 1]; 0: 0.05 */
	unsigned max_lag_steps; /* steps a measurement may lag the actuators (0..8) */
	double gain;            /* share of the modelled error corrected per decision, (0, 1]; 0: 0.8 */
	bool observe;           /* the actuators are not ours (a board power limit holds the
				 * target): stay at full load, only measure and classify */
} hf_power_target_opts;

/* target_w, max_threads given; min_duty 0.05, max_lag_steps 1, gain 0.8. */
void hf_power_target_opts_default(hf_power_target_opts *o, double target_w, unsigned max_threads);

typedef struct hf_power_target_act {
	unsigned threads;       /* 1..N */
	double duty;            /* min_duty..1 */
} hf_power_target_act;

typedef struct hf_power_target_info {
	double target_w;
	double last_w;          /* the last step's watts */
	double achieved_w;      /* mean over the last HF_POWER_TARGET_WINDOW_MS (0: no step yet) */
	double achieved_s;      /* seconds that mean covers */
	double load;            /* u = threads * duty */
	double slope_w;         /* learnt W per thread-equivalent (0: none yet) */
	double min_w;           /* watts measured at the minimum load (0: not measured) */
	hf_power_target_act act;
	hf_power_target_state state;
	bool settled;
	uint64_t settle_ms;     /* 0: not settled since the target's start */
	uint64_t since_ms;      /* the target's start (now_ms clock) */
	uint64_t steps, moves;  /* steps fed, actuator changes made */
} hf_power_target_info;

typedef struct hf_power_target hf_power_target;

/* HF_EINVAL with the reason for options out of range. */
int hf_power_target_new(const hf_power_target_opts *o, uint64_t now_ms, hf_power_target **out,
			hf_errbuf *eb);
/* The actuators in force (before the first step: the starting ones). */
void hf_power_target_actuators(const hf_power_target *pt, hf_power_target_act *out);
/* One step: watts is the mean power since the previous step (or since new/restart/pause for the
 * first); the actuators to apply now. A non-finite or negative watts is ignored (actuators kept). */
void hf_power_target_step(hf_power_target *pt, uint64_t now_ms, double watts,
			  hf_power_target_act *out);
/* A new target (> 0; others ignored): settling starts again from the present actuators. */
void hf_power_target_set(hf_power_target *pt, double target_w, uint64_t now_ms);
/* The plant stopped drawing what the actuators ask (no work to hash): the steps fed from now on
 * are decisions again only once a full lag has passed (as after a move), and no slope is learnt
 * across the pause. */
void hf_power_target_pause(hf_power_target *pt);
/* A new run (new plant state): history, settle time and the 10 s window start again; the learnt
 * load and slope are kept. */
void hf_power_target_restart(hf_power_target *pt, uint64_t now_ms);
void hf_power_target_info_get(const hf_power_target *pt, hf_power_target_info *out);
/* NULL accepted. */
void hf_power_target_free(hf_power_target *pt);

#endif
