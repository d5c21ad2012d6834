/* hf_mining_power: the mining power target (mining.power_target_w): the controller
 * (hf_power_target.h) stepped by the supervisor on the node's power source, its actuators
 * (active hashing threads, duty cycle) published to the hashing runners, the GPU's board power
 * limit through NVML when it can be set, and the status and metrics of it.
 * Invariants: the actuators (act_threads, act_duty_ppm) change only here and every change is
 * followed by a wcond broadcast, so parked and resting runners see it at once; without a
 * target they stay at every thread, full duty. The controller is stepped only while the run
 * mines with work published (no work: it is paused, so an idle plant is not mistaken for a
 * low load); a board limit set at start is restored at release.
 * Threading: hf_mining_power_start and _release on the switcher thread, _tick on the
 * supervisor (which runs only between them); the report is written and read under slock.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_log.h"
#include "hf_mining_priv.h"
#include "hf_prom.h"
#include "hf_util.h"

#define PT_STEP_MS 500

/* Publishes actuators to the runners (every thread, full duty when a is NULL). */
static void apply(hf_mining *m, const hf_power_target_act *a)
{
	unsigned n = a ? a->threads : HF_MINING_MAX_THREADS;
	unsigned ppm = a ? (unsigned)lround(a->duty * 1e6) : 1000000u;
	bool changed;

	ppm = ppm > 1000000u ? 1000000u : ppm;
	changed = atomic_exchange(&m->act_threads, n) != n;
	changed = (atomic_exchange(&m->act_duty_ppm, ppm) != ppm) || changed;
	if (!changed)
		return;
	pthread_mutex_lock(&m->wlock);
	pthread_cond_broadcast(&m->wcond);
	pthread_mutex_unlock(&m->wlock);
}

/* OpenCL on an NVML source: the board limit set to the target, if the device allows it. */
static void try_board_limit(hf_mining *m, double target, hf_mining_ptreport *rep)
{
	double mn = 0, mx = 0, cur = 0;
	hf_errbuf e;

	hf_errbuf_clear(&e);
	if (hf_power_limit_get(m->power, &mn, &mx, &cur, &e) < 0) {
		snprintf(rep->message, sizeof rep->message, "NVML power limit not readable (%s): "
			 "batch duty cycle instead", e.msg);
		return;
	}
	if (target < mn || target > mx) {
		snprintf(rep->message, sizeof rep->message, "the target is outside the board's power "
			 "limit range %.0f..%.0f W: batch duty cycle instead", mn, mx);
		return;
	}
	if (hf_power_limit_set(m->power, target, &e) < 0) {
		snprintf(rep->message, sizeof rep->message, "cannot set the board power limit (%s): "
			 "batch duty cycle instead", e.msg);
		return;
	}
	m->pt_limit_restore_w = cur;
	m->pt_limit_set = true;
	rep->nvml_limit = true;
	rep->limit_w = target;
	hf_log_notice("mining: power target %.1f W: board power limit set (was %.1f W; restored at "
		      "release)", target, cur);
}

int hf_mining_power_start(hf_mining *m, hf_errbuf *eb)
{
	double target = m->cfg.power_target_w;
	hf_mining_ptreport rep = { 0 };
	hf_power_target_opts o;
	hf_power_kind kind;
	int r;

	apply(m, NULL);
	m->pt_have_prev = false;
	m->pt_next_ms = 0;
	if (target <= 0) {
		pthread_mutex_lock(&m->slock);
		m->ptr = rep;
		pthread_mutex_unlock(&m->slock);
		return 0;
	}
	if (!m->power)
		return hf_fail(eb, HF_ECONFIG, "mining.power_target_w is %g W but the node has no power "
			       "source to hold it with (see the \"power:\" lines of the log and "
			       "/v1/status power.reason; power.source \"estimate\" always opens)", target);
	kind = hf_power_kind_of(m->power);
	rep.on = true;
	rep.estimated = kind == HF_POWER_ESTIMATE;
	hf_strlcpy(rep.source, hf_power_kind_name(kind), sizeof rep.source);
	if (m->cfg.backend == HF_MINING_OPENCL && kind == HF_POWER_NVML)
		try_board_limit(m, target, &rep);
	hf_power_target_opts_default(&o, target, m->nth);
	o.observe = rep.nvml_limit;
	if (m->pt) {
		hf_power_target_info i;
		hf_power_target_info_get(m->pt, &i);
		bool same = i.act.threads <= m->nth && i.target_w == target && m->pt_observe == o.observe &&
			    m->pt_nth == m->nth;
		if (!same) {
			hf_power_target_free(m->pt);
			m->pt = NULL;
		}
	}
	if (!m->pt && (r = hf_power_target_new(&o, hf_mono_ms(), &m->pt, eb)) < 0)
		return hf_fail_prefix(eb, r, "mining.power_target_w");
	m->pt_observe = o.observe;
	m->pt_nth = m->nth;
	hf_power_target_restart(m->pt, hf_mono_ms());
	m->pt_run_live = false;
	hf_power_target_info_get(m->pt, &rep.info);
	if (!rep.nvml_limit)
		apply(m, &rep.info.act);
	if (rep.message[0])
		hf_log_notice("mining: power target %.1f W: %s", target, rep.message);
	hf_log_notice("mining: power target %.1f W on %s power%s (%s), starting at %u thread(s), "
		      "duty %.2f", target, rep.source, rep.estimated ? " (estimated)" : "",
		      rep.nvml_limit ? "board power limit" : "active threads and duty cycle",
		      rep.info.act.threads, rep.info.act.duty);
	pthread_mutex_lock(&m->slock);
	m->ptr = rep;
	pthread_mutex_unlock(&m->slock);
	return 0;
}

/* Logs what an operator must know once: the target reached, or not reachable. */
static void log_changes(hf_mining *m, const hf_power_target_info *was, const hf_power_target_info *i)
{
	if (i->settled && !was->settled) {
		if (i->state == HF_PT_BELOW_MINIMUM)
			hf_log_warn("mining: power target %.1f W is below the minimum reachable: one thread at "
				    "%.0f%% duty draws %.1f W; holding at the minimum", i->target_w,
				    i->act.duty * 100, i->min_w);
		else if (i->state == HF_PT_LIMIT)
			hf_log_notice("mining: power target %.1f W is above what mining draws at full load "
				      "(%.1f W): the target does not bind", i->target_w, i->last_w);
		else
			hf_log_notice("mining: power target %.1f W reached in %llu ms (%u thread(s), duty %.2f)",
				      i->target_w, (unsigned long long)i->settle_ms, i->act.threads,
				      i->act.duty);
	} else if (was->settled && !i->settled) {
		hf_log_info("mining: power target %.1f W: settling again (%.1f W measured)", i->target_w,
			    i->last_w);
	}
}

static void publish_report(hf_mining *m)
{
	hf_power_target_info i;

	hf_power_target_info_get(m->pt, &i);
	pthread_mutex_lock(&m->slock);
	hf_power_target_info was = m->ptr.info;
	m->ptr.info = i;
	if (m->ptr.nvml_limit)
		m->ptr.message[0] = '\0';
	else if (i.state == HF_PT_BELOW_MINIMUM)
		snprintf(m->ptr.message, sizeof m->ptr.message, "target below the minimum reachable: one "
			 "thread at %.0f%% duty draws %.1f W", i.act.duty * 100, i.min_w);
	else if (i.state == HF_PT_LIMIT)
		snprintf(m->ptr.message, sizeof m->ptr.message, "every thread at full duty draws less "
			 "than the target");
	else
		m->ptr.message[0] = '\0';
	pthread_mutex_unlock(&m->slock);
	log_changes(m, &was, &i);
}

void hf_mining_power_tick(hf_mining *m, uint64_t now_ms)
{
	hf_power_reading rd;
	hf_power_window w;
	hf_power_target_act a;
	bool live;

	if (!m->pt || !m->ptr.on || now_ms < m->pt_next_ms)
		return;
	m->pt_next_ms = now_ms + PT_STEP_MS;
	live = atomic_load(&m->state) == HF_MST_MINING && m->cur != NULL;   /* cur: ours to write */
	if (!live) {
		if (m->pt_have_prev)
			hf_power_target_pause(m->pt);
		m->pt_have_prev = false;
		return;
	}
	hf_power_read(m->power, &rd);
	if (!m->pt_have_prev) {   /* the first step of a live stretch: a baseline */
		if (!m->pt_run_live)
			hf_power_target_restart(m->pt, now_ms);   /* settling counts from work, not start */
		m->pt_run_live = true;
		m->pt_prev = rd;
		m->pt_have_prev = true;
		return;
	}
	hf_power_window_of(&m->pt_prev, &rd, &w);
	m->pt_prev = rd;
	if (!(w.seconds > 0))
		return;
	hf_power_target_step(m->pt, now_ms, w.watts, &a);
	if (!m->ptr.nvml_limit)
		apply(m, &a);
	publish_report(m);
}

void hf_mining_power_release(hf_mining *m)
{
	hf_errbuf e;

	if (m->pt_limit_set) {
		hf_errbuf_clear(&e);
		if (hf_power_limit_set(m->power, m->pt_limit_restore_w, &e) < 0)
			hf_log_err("mining: cannot restore the board power limit to %.1f W: %s",
				   m->pt_limit_restore_w, e.msg);
		else
			hf_log_notice("mining: board power limit restored to %.1f W", m->pt_limit_restore_w);
		m->pt_limit_set = false;
	}
	apply(m, NULL);
	m->pt_have_prev = false;
	pthread_mutex_lock(&m->slock);
	m->ptr.on = false;
	pthread_mutex_unlock(&m->slock);
}

static unsigned active_threads(const hf_mining *m)
{
	unsigned a = atomic_load(&m->act_threads);

	return a < m->nth ? a : m->nth;
}

static double duty_ratio(const hf_mining *m)
{
	return (double)atomic_load(&m->act_duty_ppm) / 1e6;
}

json_t *hf_mining_power_status(hf_mining *m, double hashes_per_s)
{
	const hf_mining_ptreport *p = &m->ptr;
	const hf_power_target_info *i = &p->info;
	double target = m->cfg.power_target_w > 0 ? m->cfg.power_target_w : m->base.power_target_w;
	json_t *o;

	if (!(target > 0))
		return NULL;
	o = json_pack("{s:f, s:f, s:s, s:b, s:i, s:f, s:b, s:f, s:s, s:s}",
		"target_w", target, "achieved_w", i->achieved_w, "source", p->source,
		"estimated", p->estimated, "active_threads", (int)active_threads(m),
		"duty", duty_ratio(m), "settled", i->settled,
		"mh_per_j", i->achieved_w > 0 ? hashes_per_s / i->achieved_w / 1e6 : 0.0,
		"state", hf_power_target_state_name(i->state),
		"method", p->nvml_limit ? "nvml_limit" : "threads+duty");
	json_object_set_new(o, "settle_ms", i->settle_ms ? json_integer((json_int_t)i->settle_ms)
							 : json_null());
	json_object_set_new(o, "applied", json_boolean(p->on));
	json_object_set_new(o, "achieved_s", json_real(i->achieved_s));
	json_object_set_new(o, "watts", json_real(i->last_w));
	json_object_set_new(o, "load", json_real(i->load));
	json_object_set_new(o, "watts_per_thread", json_real(i->slope_w));
	json_object_set_new(o, "min_w", json_real(i->min_w));
	json_object_set_new(o, "steps", json_integer((json_int_t)i->steps));
	json_object_set_new(o, "moves", json_integer((json_int_t)i->moves));
	if (p->nvml_limit)
		json_object_set_new(o, "limit_w", json_real(p->limit_w));
	json_object_set_new(o, "message", json_string(p->message));
	return o;
}

static void gauge(hf_buf *b, const char *name, const char *help, double v)
{
	hf_prom_family(b, name, "gauge", help);
	hf_prom_sample(b, name, NULL, 0, v);
}

void hf_mining_power_metrics(hf_mining *m, hf_buf *b)
{
	const hf_power_target_info *i = &m->ptr.info;

	gauge(b, "hashflop_mining_active_threads", "Hashing threads allowed to hash (the power target "
	      "parks the others).", (double)active_threads(m));
	gauge(b, "hashflop_mining_duty_ratio", "Share of each 100 ms period the active hashing threads "
	      "hash (1 without a power target).", duty_ratio(m));
	if (!(m->cfg.power_target_w > 0 || m->base.power_target_w > 0))
		return;
	gauge(b, "hashflop_mining_power_target_watts", "The configured mining power target.",
	      m->cfg.power_target_w > 0 ? m->cfg.power_target_w : m->base.power_target_w);
	gauge(b, "hashflop_mining_power_achieved_watts", "Mean power over the last 10 s while the "
	      "power target was applied.", i->achieved_w);
	gauge(b, "hashflop_mining_power_target_settled", "1 once the power target is held (or found "
	      "out of reach and held at the bound).", i->settled ? 1 : 0);
}
