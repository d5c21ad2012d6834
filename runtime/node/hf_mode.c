/* hf_mode: mode state machine with a switcher thread that reconciles the running worker with
 * one desired state (latest request wins), retries failed starts and restarts failed workers
 * with backoff, and records per-switch timelines.
 * Invariants: exactly one worker is current once the first switch ran; the lock is never held
 * while a worker callback that may block (start, drain, release, health) runs; the idle
 * worker's start cannot fail, so a failed start always lands in idle; only the switcher thread
 * writes have_current/current/current_params (under the lock, so readers see them whole);
 * desired_params is never modified once set, only replaced, so the switcher may hold a
 * reference to it without the lock; the callback in flight (cb_name) is recorded under the lock
 * before the callback runs and cleared after it returns, so the watchdog verdict sees a wedged
 * callback from any thread.
 * Threading: see hf_mode.h.
 */
#include "hf_mode.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"

static const char *const mode_names[HF_MODE_COUNT] = { "idle", "mining", "inference" };
static const char *const phase_names[] = { "stopped", "starting", "running", "draining", "releasing" };
static const char *const conv_names[] = { "converged", "switching", "retrying", "failed" };
static const char *const trigger_names[] = { "request", "retry", "health", "restart" };

/* Upper bounds (ms) of the switch-duration histogram buckets. */
static const double switch_buckets_ms[] = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000 };
#define NBUCKETS (sizeof switch_buckets_ms / sizeof switch_buckets_ms[0])

struct hf_modes {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started, stopping, busy;
	hf_modes_opts o;
	hf_mode_worker workers[HF_MODE_COUNT];
	bool registered[HF_MODE_COUNT];
	/* the desired state: desired_gen grows with every request that changes it */
	bool have_desired;
	hf_mode desired;
	json_t *desired_params;
	uint64_t desired_gen, acted_gen;
	uint64_t desired_mono_ms, desired_wall_ms;
	/* the running worker */
	bool have_current;
	hf_mode current;
	json_t *current_params;
	hf_mode_phase phase;
	uint64_t mode_since_wall_ms;
	uint64_t healthy_since_ms;   /* mono time the desired worker last started (0: not running) */
	/* convergence */
	bool converged;
	uint64_t converged_gen;
	hf_modes_conv conv;
	char reason[320];
	unsigned attempts;
	bool attempts_logged;        /* a failure was logged: log the recovery too */
	uint64_t retry_at_ms;        /* mono; 0 = no attempt scheduled */
	hf_switch_trigger retry_trigger;
	uint64_t next_health_ms;
	/* the watchdog: the worker callback in flight (cb_name NULL: none) and the health record */
	const char *cb_name;
	hf_mode cb_mode;
	uint64_t cb_since_ms, cb_base_ms; /* mono start; its bound without the grace */
	uint64_t last_health_ms;     /* mono: the last completed health check, or the converged start */
	unsigned health_streak;      /* health failures of the desired state without a healthy run */
	char health_error[256];      /* the last health failure (cleaned) */
	/* the last finished attempt, for hf_modes_wait_applied() */
	uint64_t attempts_done, attempt_gen;
	int attempt_result;
	char attempt_error[256];
	/* counters and timelines */
	uint64_t switches_total, failures_total, noop_total, coalesced_total;
	uint64_t health_failures_total, retries_total, seq;
	uint64_t hist[NBUCKETS + 1];
	double hist_sum_s;
	hf_switch_record last;
};

const char *hf_mode_name(hf_mode m)
{
	return (unsigned)m < HF_MODE_COUNT ? mode_names[m] : "unknown";
}

bool hf_mode_parse(const char *s, hf_mode *out)
{
	for (int i = 0; i < HF_MODE_COUNT; i++) {
		if (s && strcmp(s, mode_names[i]) == 0) {
			*out = (hf_mode)i;
			return true;
		}
	}
	return false;
}

const char *hf_mode_phase_name(hf_mode_phase p)
{
	return (unsigned)p < HF_ARRAY_SIZE(phase_names) ? phase_names[p] : "unknown";
}

const char *hf_modes_conv_name(hf_modes_conv c)
{
	return (unsigned)c < HF_ARRAY_SIZE(conv_names) ? conv_names[c] : "unknown";
}

/* The idle worker: nothing runs, so every phase is instant. */
static int idle_start(void *impl, const json_t *params, hf_errbuf *eb) { return 0; }
static int idle_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb) { return 0; }
static void idle_release(void *impl) { }

static bool params_equal(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal(a, b));
}

/* "what of MODE: strerror: detail", cleaned of control characters and bad UTF-8. */
static void format_error(char *dst, size_t dstsz, const char *what, hf_mode mode, int r,
			 const char *detail)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s of %s: %s%s%s", what, hf_mode_name(mode), hf_strerror(r),
		 detail && detail[0] ? ": " : "", detail ? detail : "");
	hf_text_clean(dst, dstsz, tmp, strlen(tmp));
}

/* retry_min_ms doubled per failed attempt (attempt >= 1), capped at retry_max_ms. */
static uint64_t backoff_ms(const hf_modes *m, unsigned attempt)
{
	uint64_t d = m->o.retry_min_ms;
	for (unsigned i = 1; i < attempt && d < m->o.retry_max_ms; i++)
		d *= 2;
	return d < m->o.retry_max_ms ? d : m->o.retry_max_ms;
}

/* Records the callback about to run (name, of mode, bound base_ms + grace). Lock held. */
static void cb_enter_locked(hf_modes *m, const char *name, hf_mode mode, uint64_t base_ms)
{
	m->cb_name = name;
	m->cb_mode = mode;
	m->cb_since_ms = hf_mono_ms();
	m->cb_base_ms = base_ms;
}

/* Sets the phase and records the callback about to run. */
static void cb_enter(hf_modes *m, hf_mode_phase p, const char *name, hf_mode mode, uint64_t base_ms)
{
	pthread_mutex_lock(&m->lock);
	m->phase = p;
	cb_enter_locked(m, name, mode, base_ms);
	pthread_mutex_unlock(&m->lock);
}

static void cb_leave(hf_modes *m)
{
	pthread_mutex_lock(&m->lock);
	m->cb_name = NULL;
	pthread_mutex_unlock(&m->lock);
}

/* Drains and releases the current worker; fills the record's drain/release times. */
static void stop_current(hf_modes *m, hf_switch_record *rec)
{
	hf_mode_worker *w = &m->workers[m->current];
	hf_errbuf eb;
	uint64_t t0 = hf_mono_ms(), t1;

	hf_errbuf_clear(&eb);
	cb_enter(m, HF_PHASE_DRAINING, "drain", m->current, m->o.drain_timeout_ms);
	int r = w->drain(w->impl, t0 + m->o.drain_timeout_ms, &eb);
	t1 = hf_mono_ms();
	if (r < 0 && rec && rec->result == 0)
		format_error(rec->error, sizeof rec->error, "drain", m->current, r, eb.msg);
	cb_enter(m, HF_PHASE_RELEASING, "release", m->current, m->o.callback_bound_ms);
	w->release(w->impl);
	cb_leave(m);
	if (rec) {
		rec->drain_ms = t1 - t0;
		rec->release_ms = hf_mono_ms() - t1;
	}
}

/* Makes the idle worker current and running (its start cannot fail). */
static void run_idle(hf_modes *m)
{
	pthread_mutex_lock(&m->lock);
	m->current = HF_MODE_IDLE;
	json_decref(m->current_params);
	m->current_params = NULL;
	pthread_mutex_unlock(&m->lock);
	m->workers[HF_MODE_IDLE].start(m->workers[HF_MODE_IDLE].impl, NULL, NULL);
}

static void record_switch(hf_modes *m, hf_switch_record *rec, bool start_failed)
{
	size_t b = 0;
	while (b < NBUCKETS && (double)rec->total_ms > switch_buckets_ms[b])
		b++;
	pthread_mutex_lock(&m->lock);
	rec->seq = ++m->seq;
	m->last = *rec;
	m->switches_total++;
	if (start_failed)
		m->failures_total++;
	m->hist[b]++;
	m->hist_sum_s += (double)rec->total_ms / 1000.0;
	pthread_mutex_unlock(&m->lock);
}

/* One switch to rec->to with params (a reference the caller keeps): drain and release the
 * current worker, start the target, fall back to idle when that fails. Called without the
 * lock on the switcher thread. Returns the start's result. */
static int run_switch(hf_modes *m, hf_switch_record *rec, json_t *params, uint64_t since_mono)
{
	hf_mode_worker *w = &m->workers[rec->to];
	uint64_t begin = hf_mono_ms(), t;
	hf_errbuf eb;
	int r;

	rec->queued_ms = begin > since_mono ? begin - since_mono : 0;
	rec->from_none = !m->have_current;
	rec->from = m->current;
	if (m->have_current)
		stop_current(m, rec);
	pthread_mutex_lock(&m->lock);
	m->have_current = true;
	m->current = rec->to;
	json_decref(m->current_params);
	m->current_params = json_incref(params);
	m->phase = HF_PHASE_STARTING;
	cb_enter_locked(m, "start", rec->to, m->o.start_bound_ms);
	pthread_mutex_unlock(&m->lock);

	t = hf_mono_ms();
	hf_errbuf_clear(&eb);
	r = w->start(w->impl, params, &eb);
	rec->start_ms = hf_mono_ms() - t;
	if (r < 0) {
		rec->result = r;
		format_error(rec->error, sizeof rec->error, "start", rec->to, r, eb.msg);
		cb_enter(m, HF_PHASE_STARTING, "release", rec->to, m->o.callback_bound_ms);
		w->release(w->impl);
		run_idle(m);
	}
	pthread_mutex_lock(&m->lock);
	m->cb_name = NULL;
	m->phase = HF_PHASE_RUNNING;
	m->mode_since_wall_ms = hf_wall_ms();
	pthread_mutex_unlock(&m->lock);
	rec->total_ms = hf_mono_ms() - begin;
	record_switch(m, rec, r < 0);
	if (r == 0)
		hf_log_info("mode: %s -> %s in %llu ms (queued %llu, drain %llu, release %llu, start %llu)",
			    rec->from_none ? "none" : hf_mode_name(rec->from), hf_mode_name(rec->to),
			    (unsigned long long)rec->total_ms, (unsigned long long)rec->queued_ms,
			    (unsigned long long)rec->drain_ms, (unsigned long long)rec->release_ms,
			    (unsigned long long)rec->start_ms);
	return r;
}

/* Records the end of an attempt at generation gen; schedules the retry of a failed one. Called
 * with the lock held. */
static void finish_attempt(hf_modes *m, uint64_t gen, int r, const char *error, bool started)
{
	uint64_t now = hf_mono_ms();

	m->attempts_done++;
	m->attempt_gen = gen;
	m->attempt_result = r;
	hf_strlcpy(m->attempt_error, error, sizeof m->attempt_error);
	if (gen == m->desired_gen) {
		if (r == 0) {
			m->converged = true;
			m->converged_gen = gen;
			m->conv = HF_CONV_CONVERGED;
			m->reason[0] = '\0';
			m->next_health_ms = now + m->o.health_interval_ms;
			m->last_health_ms = now;
			if (started)
				m->healthy_since_ms = now;
			/* Without a health check it cannot fail later: the backoff is over. With one,
			 * it is over once the mode ran healthy for a while (check_health). */
			if (!m->workers[m->current].health)
				m->attempts = 0;
			if (started && m->attempts_logged)
				hf_log_notice("mode: %s running again", hf_mode_name(m->current));
			m->attempts_logged = false;
		} else {
			m->attempts++;
			m->converged = false;
			m->conv = HF_CONV_RETRYING;
			m->retry_at_ms = now + backoff_ms(m, m->attempts);
			m->retry_trigger = HF_TRIGGER_RETRY;
			m->healthy_since_ms = 0;
			snprintf(m->reason, sizeof m->reason, "%s (attempt %u); running idle until the "
				 "next attempt", error, m->attempts);
			hf_utf8_trim(m->reason);
			hf_log_warn("mode: %s (attempt %u); running idle, next attempt in %llu ms", error,
				    m->attempts, (unsigned long long)(m->retry_at_ms - now));
			m->attempts_logged = true;
		}
	}
	/* else a newer desired state arrived meanwhile: the switcher acts on it next */
	pthread_cond_broadcast(&m->cond);
}

/* Acts on the desired state: a switch, or nothing when it already runs. Lock held on entry and
 * on return (released around the switch). */
static void attempt(hf_modes *m, hf_switch_trigger trigger)
{
	uint64_t gen = m->desired_gen;
	bool fresh = m->acted_gen != gen;
	json_t *params = json_incref(m->desired_params);
	hf_switch_record rec = { .to = m->desired, .trigger = fresh ? HF_TRIGGER_REQUEST : trigger,
				 .attempt = m->attempts + 1, .requested_wall_ms = m->desired_wall_ms };
	uint64_t since = fresh ? m->desired_mono_ms : m->retry_at_ms;
	int r;

	m->acted_gen = gen;
	m->retry_at_ms = 0;
	if (m->have_current && m->current == rec.to && m->phase == HF_PHASE_RUNNING &&
	    params_equal(m->current_params, params)) {
		m->noop_total++;
		finish_attempt(m, gen, 0, "", false);
		json_decref(params);
		return;
	}
	if (!fresh)
		m->retries_total++;
	m->busy = true;
	m->conv = HF_CONV_SWITCHING;
	snprintf(m->reason, sizeof m->reason, "switching to %s (attempt %u)", hf_mode_name(rec.to),
		 rec.attempt);
	pthread_mutex_unlock(&m->lock);
	r = run_switch(m, &rec, params, since);
	pthread_mutex_lock(&m->lock);
	m->busy = false;
	finish_attempt(m, gen, r, rec.error, true);
	json_decref(params);
}

/* The running worker failed its health check: count it, stop it, run idle, schedule the
 * restart. Lock held on entry and on return. */
static void health_failed(hf_modes *m, int r, const char *detail)
{
	uint64_t now = hf_mono_ms();
	hf_switch_record rec = { .from = m->current, .to = HF_MODE_IDLE, .trigger = HF_TRIGGER_HEALTH,
				 .requested_wall_ms = hf_wall_ms(), .result = r };
	uint64_t gen = m->acted_gen;

	m->health_failures_total++;
	if (m->healthy_since_ms && now - m->healthy_since_ms >= m->o.retry_max_ms)
		m->attempts = m->health_streak = 0; /* it had run well for a while: start over */
	m->attempts++;
	rec.attempt = m->attempts;
	format_error(rec.error, sizeof rec.error, "health", m->current, r, detail);
	if (gen == m->desired_gen) {
		m->health_streak++;
		hf_strlcpy(m->health_error, rec.error, sizeof m->health_error);
	}
	m->converged = false;
	m->healthy_since_ms = 0;
	m->conv = HF_CONV_FAILED;
	snprintf(m->reason, sizeof m->reason, "%s mode failed while running (%s); stopped, running "
		 "idle until the restart (failure %u)", hf_mode_name(m->current), rec.error, m->attempts);
	hf_utf8_trim(m->reason);
	m->busy = true;
	pthread_mutex_unlock(&m->lock);

	uint64_t begin = hf_mono_ms();
	stop_current(m, &rec);
	run_idle(m);
	pthread_mutex_lock(&m->lock);
	m->phase = HF_PHASE_RUNNING;
	m->mode_since_wall_ms = hf_wall_ms();
	pthread_mutex_unlock(&m->lock);
	rec.total_ms = hf_mono_ms() - begin;
	record_switch(m, &rec, false);

	pthread_mutex_lock(&m->lock);
	m->busy = false;
	if (gen == m->desired_gen) {
		m->retry_at_ms = hf_mono_ms() + backoff_ms(m, m->attempts);
		m->retry_trigger = HF_TRIGGER_RESTART;
		hf_log_err("mode: %s failed while running: %s; stopped (idle), restart in %llu ms",
			   hf_mode_name(rec.from), rec.error,
			   (unsigned long long)backoff_ms(m, m->attempts));
		m->attempts_logged = true;
	} else {
		hf_log_err("mode: %s failed while running: %s; stopped (a new desired state follows)",
			   hf_mode_name(rec.from), rec.error);
	}
	pthread_cond_broadcast(&m->cond);
}

static bool health_due(const hf_modes *m, uint64_t now)
{
	return m->converged && m->have_current && m->phase == HF_PHASE_RUNNING &&
	       m->workers[m->current].health && now >= m->next_health_ms;
}

/* Calls the running worker's health check. Lock held on entry and on return. */
static void check_health(hf_modes *m)
{
	hf_mode_worker *w = &m->workers[m->current];
	hf_errbuf eb;
	int r;

	m->next_health_ms = hf_mono_ms() + m->o.health_interval_ms;
	cb_enter_locked(m, "health", m->current, m->o.callback_bound_ms);
	pthread_mutex_unlock(&m->lock);
	hf_errbuf_clear(&eb);
	r = w->health(w->impl, &eb);
	pthread_mutex_lock(&m->lock);
	m->cb_name = NULL;
	m->last_health_ms = hf_mono_ms();
	if (r < 0 && !m->stopping)
		health_failed(m, r, eb.msg);
	else if (r == 0 && (m->attempts || m->health_streak) && m->healthy_since_ms &&
		 hf_mono_ms() - m->healthy_since_ms >= m->o.retry_max_ms)
		m->attempts = m->health_streak = 0; /* ran well for a while: a healthy run */
}

/* Sleeps until the next scheduled attempt or health check, or a signal. Lock held. */
static void wait_next(hf_modes *m, uint64_t now)
{
	uint64_t wake = 0;
	struct timespec ts;

	if (!m->converged && m->retry_at_ms)
		wake = m->retry_at_ms;
	if (m->converged && m->have_current && m->workers[m->current].health &&
	    (!wake || m->next_health_ms < wake))
		wake = m->next_health_ms;
	if (!wake) {
		pthread_cond_wait(&m->cond, &m->lock);
		return;
	}
	hf_abstime_after_ms(wake > now ? wake - now : 0, &ts);
	pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

static void *switcher_main(void *arg)
{
	hf_modes *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		uint64_t now = hf_mono_ms();
		if (m->have_desired && m->acted_gen != m->desired_gen)
			attempt(m, HF_TRIGGER_REQUEST);
		else if (!m->converged && m->retry_at_ms && now >= m->retry_at_ms)
			attempt(m, m->retry_trigger);
		else if (health_due(m, now))
			check_health(m);
		else
			wait_next(m, now);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int hf_modes_new(const hf_modes_opts *opts, hf_modes **out, hf_errbuf *eb)
{
	hf_modes *m = calloc(1, sizeof *m);
	*out = NULL;
	if (!m)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->o = *opts;
	if (!m->o.retry_min_ms)
		m->o.retry_min_ms = 1000;
	if (!m->o.retry_max_ms)
		m->o.retry_max_ms = 60000;
	if (m->o.retry_max_ms < m->o.retry_min_ms)
		m->o.retry_max_ms = m->o.retry_min_ms;
	if (!m->o.health_interval_ms)
		m->o.health_interval_ms = 1000;
	if (!m->o.start_bound_ms)
		m->o.start_bound_ms = 300000;
	if (!m->o.callback_bound_ms)
		m->o.callback_bound_ms = 5000;
	if (!m->o.watchdog_grace_ms)
		m->o.watchdog_grace_ms = 5000;
	m->workers[HF_MODE_IDLE] = (hf_mode_worker){
		.mode = HF_MODE_IDLE, .start = idle_start, .drain = idle_drain, .release = idle_release,
	};
	m->registered[HF_MODE_IDLE] = true;
	m->phase = HF_PHASE_STOPPED;
	m->conv = HF_CONV_SWITCHING;
	hf_strlcpy(m->reason, "no desired state yet", sizeof m->reason);
	if (pthread_create(&m->thread, NULL, switcher_main, m) != 0) {
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return hf_fail(eb, HF_ENOMEM, "cannot start the mode switcher thread");
	}
	m->thread_started = true;
	*out = m;
	return 0;
}

int hf_modes_register(hf_modes *m, const hf_mode_worker *w, hf_errbuf *eb)
{
	if ((unsigned)w->mode >= HF_MODE_COUNT || !w->start || !w->drain || !w->release)
		return hf_fail(eb, HF_EINVAL, "incomplete mode worker");
	pthread_mutex_lock(&m->lock);
	m->workers[w->mode] = *w;
	m->registered[w->mode] = true;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

bool hf_modes_available(const hf_modes *m, hf_mode mode)
{
	return (unsigned)mode < HF_MODE_COUNT && m->registered[mode];
}

int hf_modes_request(hf_modes *m, hf_mode target, const json_t *params, hf_modes_ticket *ticket,
		     hf_errbuf *eb)
{
	int r = 0;

	if (!hf_modes_available(m, target))
		return hf_fail(eb, HF_EUNSUPPORTED, "mode %s is not available in this build",
			       hf_mode_name(target));
	pthread_mutex_lock(&m->lock);
	if (m->stopping) {
		r = hf_fail(eb, HF_ESTATE, "shutting down");
		goto unlock;
	}
	if (m->have_desired && m->desired == target && params_equal(m->desired_params, params)) {
		/* Desired state unchanged. If it is waiting for a retry, try now. */
		m->noop_total++;
		if (!m->converged && m->retry_at_ms && !m->busy)
			m->retry_at_ms = hf_mono_ms();
	} else {
		if (m->have_desired && m->acted_gen != m->desired_gen)
			m->coalesced_total++;
		json_decref(m->desired_params);
		m->desired_params = params ? json_deep_copy(params) : NULL;
		m->have_desired = true;
		m->desired = target;
		m->desired_gen++;
		m->desired_mono_ms = hf_mono_ms();
		m->desired_wall_ms = hf_wall_ms();
		m->attempts = 0;
		m->health_streak = 0;
		m->retry_at_ms = 0;
		m->converged = false;
		m->conv = HF_CONV_SWITCHING;
		snprintf(m->reason, sizeof m->reason, "switch to %s pending", hf_mode_name(target));
	}
	if (ticket) {
		ticket->gen = m->desired_gen;
		ticket->attempts_seen = m->attempts_done;
	}
	pthread_cond_broadcast(&m->cond);
unlock:
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* Waits on the condition until deadline (mono ms); false once it has passed. Lock held. */
static bool wait_until(hf_modes *m, uint64_t deadline)
{
	uint64_t now = hf_mono_ms();
	struct timespec ts;

	if (now >= deadline)
		return false;
	hf_abstime_after_ms(deadline - now, &ts);
	pthread_cond_timedwait(&m->cond, &m->lock, &ts);
	return true;
}

hf_modes_wait hf_modes_wait_applied(hf_modes *m, const hf_modes_ticket *t, uint64_t timeout_ms,
				    char *error, size_t errsz)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	hf_modes_wait res;

	if (error && errsz)
		error[0] = '\0';
	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (m->desired_gen != t->gen) {
			res = HF_MODES_SUPERSEDED;
			break;
		}
		if (m->converged && m->converged_gen == t->gen) {
			res = HF_MODES_APPLIED;
			break;
		}
		if (m->attempts_done > t->attempts_seen && m->attempt_gen == t->gen &&
		    m->attempt_result < 0) {
			res = HF_MODES_START_FAILED;
			if (error && errsz)
				hf_strlcpy(error, m->attempt_error, errsz);
			break;
		}
		if (m->stopping) {
			res = HF_MODES_SHUTDOWN;
			break;
		}
		if (!wait_until(m, deadline)) {
			res = HF_MODES_PENDING;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return res;
}

bool hf_modes_wait_settled(hf_modes *m, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	while (m->busy || (m->have_desired && m->acted_gen != m->desired_gen)) {
		if (!wait_until(m, deadline)) {
			ok = false;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ok;
}

bool hf_modes_wait_converged(hf_modes *m, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	while (!m->converged) {
		if (!wait_until(m, deadline)) {
			ok = false;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ok;
}

/* Milliseconds to the next scheduled attempt (0: none). Lock held. */
static uint64_t next_attempt_in(const hf_modes *m)
{
	uint64_t now = hf_mono_ms();
	if (m->converged || !m->retry_at_ms)
		return 0;
	return m->retry_at_ms > now ? m->retry_at_ms - now : 1;
}

void hf_modes_snapshot(hf_modes *m, hf_modes_info *out)
{
	pthread_mutex_lock(&m->lock);
	out->mode = m->current;
	out->phase = m->phase;
	out->desired = m->desired;
	out->mode_since_wall_ms = m->mode_since_wall_ms;
	out->switches_total = m->switches_total;
	out->switch_failures_total = m->failures_total;
	out->noop_total = m->noop_total;
	out->coalesced_total = m->coalesced_total;
	out->health_failures_total = m->health_failures_total;
	out->retries_total = m->retries_total;
	out->pending = m->have_desired && m->acted_gen != m->desired_gen;
	out->converged = m->converged;
	out->conv = m->conv;
	out->attempts = m->converged ? 0 : m->attempts;
	out->next_attempt_in_ms = next_attempt_in(m);
	hf_strlcpy(out->reason, m->reason, sizeof out->reason);
	out->last = m->last;
	pthread_mutex_unlock(&m->lock);
}

/* The watchdog verdict (see hf_mode.h); why (size whysz, may be NULL) gets the reason. Lock
 * held. */
static bool verdict(const hf_modes *m, char *why, size_t whysz)
{
	uint64_t now = hf_mono_ms(), grace = m->o.watchdog_grace_ms;
	char tmp[512];

	tmp[0] = '\0';
	if (m->cb_name && now - m->cb_since_ms > m->cb_base_ms + grace) {
		snprintf(tmp, sizeof tmp, "the %s worker's %s callback has run for %llu ms, past its "
			 "bound of %llu ms (%llu ms + %llu ms grace)", hf_mode_name(m->cb_mode),
			 m->cb_name, (unsigned long long)(now - m->cb_since_ms),
			 (unsigned long long)(m->cb_base_ms + grace), (unsigned long long)m->cb_base_ms,
			 (unsigned long long)grace);
	} else if ((!m->cb_name || strcmp(m->cb_name, "health") == 0) && !m->stopping &&
		   m->converged && m->have_current &&
		   m->phase == HF_PHASE_RUNNING && m->workers[m->current].health &&
		   m->last_health_ms && now - m->last_health_ms > 3 * m->o.health_interval_ms + grace) {
		snprintf(tmp, sizeof tmp, "the %s worker's health checks stopped completing: the last "
			 "one finished %llu ms ago (one is due every %llu ms)", hf_mode_name(m->current),
			 (unsigned long long)(now - m->last_health_ms),
			 (unsigned long long)m->o.health_interval_ms);
	} else if (m->o.watchdog_failures && m->have_desired &&
		   m->health_streak >= m->o.watchdog_failures) {
		snprintf(tmp, sizeof tmp, "%s failed its health check %u times in a row without a "
			 "healthy run (limit %u); last: %s", hf_mode_name(m->desired), m->health_streak,
			 m->o.watchdog_failures, m->health_error);
	}
	if (why && whysz) {
		hf_strlcpy(why, tmp, whysz);
		hf_utf8_trim(why);
	}
	return tmp[0] == '\0';
}

bool hf_modes_watchdog(hf_modes *m, char *why, size_t whysz)
{
	pthread_mutex_lock(&m->lock);
	bool ok = verdict(m, why, whysz);
	pthread_mutex_unlock(&m->lock);
	return ok;
}

void hf_modes_counters(hf_modes *m, hf_mode *mode, hf_work_counters *out)
{
	hf_mode_worker *w;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&m->lock);
	*mode = m->current;
	w = &m->workers[m->current];
	/* The worker's counters callback takes at most a short lock of its own. */
	if (m->have_current && w->counters)
		w->counters(w->impl, out);
	pthread_mutex_unlock(&m->lock);
}

static json_t *record_json(const hf_switch_record *r)
{
	if (r->seq == 0)
		return json_null();
	return json_pack("{s:I, s:o, s:s, s:s, s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:b, s:s?}",
			 "seq", (json_int_t)r->seq,
			 "from", r->from_none ? json_null() : json_string(hf_mode_name(r->from)),
			 "to", hf_mode_name(r->to),
			 "trigger", trigger_names[r->trigger],
			 "attempt", (int)r->attempt,
			 "requested_ms", (json_int_t)r->requested_wall_ms,
			 "phases_ms",
			 "queued", (json_int_t)r->queued_ms, "drain", (json_int_t)r->drain_ms,
			 "release", (json_int_t)r->release_ms, "start", (json_int_t)r->start_ms,
			 "total", (json_int_t)r->total_ms,
			 "ok", r->result == 0,
			 "error", r->error[0] ? r->error : NULL);
}

static json_t *convergence_json(const hf_modes *m)
{
	uint64_t next = next_attempt_in(m);
	return json_pack("{s:s, s:s?, s:i, s:o, s:I, s:I}",
			 "state", hf_modes_conv_name(m->conv),
			 "reason", m->converged ? NULL : m->reason,
			 "attempts", m->converged ? 0 : (int)m->attempts,
			 "next_attempt_in_ms", next ? json_integer((json_int_t)next) : json_null(),
			 "health_failures", (json_int_t)m->health_failures_total,
			 "retries", (json_int_t)m->retries_total);
}

void hf_modes_status_json(hf_modes *m, json_t *obj)
{
	pthread_mutex_lock(&m->lock);
	json_object_set_new(obj, "mode", json_string(hf_mode_name(m->current)));
	json_object_set_new(obj, "phase", json_string(hf_mode_phase_name(m->phase)));
	json_object_set_new(obj, "desired_mode", json_string(hf_mode_name(m->desired)));
	json_object_set_new(obj, "converged", json_boolean(m->converged));
	json_object_set_new(obj, "convergence", convergence_json(m));
	json_object_set_new(obj, "mode_since_ms", json_integer((json_int_t)m->mode_since_wall_ms));
	json_object_set_new(obj, "switches", json_integer((json_int_t)m->switches_total));
	json_object_set_new(obj, "last_switch", record_json(&m->last));
	{
		char why[512];
		bool ok = verdict(m, why, sizeof why);
		json_object_set_new(obj, "watchdog", json_pack("{s:b, s:s?, s:i, s:i}", "healthy", ok,
							       "reason", ok ? NULL : why,
							       "health_failures_in_a_row", (int)m->health_streak,
							       "failures_limit", (int)m->o.watchdog_failures));
	}
	if (m->have_current && m->workers[m->current].status)
		m->workers[m->current].status(m->workers[m->current].impl, obj);
	pthread_mutex_unlock(&m->lock);
}

static void counter(hf_buf *b, const char *name, const char *help, uint64_t v)
{
	hf_prom_family(b, name, "counter", help);
	hf_prom_sample(b, name, NULL, 0, (double)v);
}

static void histogram(hf_modes *m, hf_buf *b)
{
	uint64_t cum = 0;

	hf_prom_family(b, "hashflop_mode_switch_duration_seconds", "histogram",
		       "Wall time of a mode switch from its start to running.");
	for (size_t i = 0; i <= NBUCKETS; i++) {
		char le[32];
		cum += m->hist[i];
		if (i < NBUCKETS)
			snprintf(le, sizeof le, "%g", switch_buckets_ms[i] / 1000.0);
		else
			snprintf(le, sizeof le, "+Inf");
		const char *l[] = { "le", le };
		hf_prom_sample(b, "hashflop_mode_switch_duration_seconds_bucket", l, 1, (double)cum);
	}
	hf_prom_sample(b, "hashflop_mode_switch_duration_seconds_sum", NULL, 0, m->hist_sum_s);
	hf_prom_sample(b, "hashflop_mode_switch_duration_seconds_count", NULL, 0, (double)cum);
}

void hf_modes_metrics(hf_modes *m, hf_buf *b)
{
	pthread_mutex_lock(&m->lock);
	hf_prom_family(b, "hashflop_mode", "gauge", "1 for the mode the node is in, 0 for the others.");
	for (int i = 0; i < HF_MODE_COUNT; i++) {
		const char *l[] = { "mode", mode_names[i] };
		hf_prom_sample(b, "hashflop_mode", l, 1, m->have_current && (int)m->current == i);
	}
	hf_prom_family(b, "hashflop_mode_desired", "gauge", "1 for the desired mode, 0 for the others.");
	for (int i = 0; i < HF_MODE_COUNT; i++) {
		const char *l[] = { "mode", mode_names[i] };
		hf_prom_sample(b, "hashflop_mode_desired", l, 1, m->have_desired && (int)m->desired == i);
	}
	hf_prom_family(b, "hashflop_mode_converged", "gauge",
		       "1 when the desired mode runs with the desired parameters.");
	hf_prom_sample(b, "hashflop_mode_converged", NULL, 0, m->converged);
	counter(b, "hashflop_mode_switches_total", "Mode switches executed.", m->switches_total);
	counter(b, "hashflop_mode_switch_failures_total",
		"Mode switches whose target failed to start (the node ran idle and retried).",
		m->failures_total);
	counter(b, "hashflop_mode_switch_noops_total",
		"Requests for the desired or running state (nothing to switch).", m->noop_total);
	counter(b, "hashflop_mode_requests_coalesced_total",
		"Desired states replaced by a newer request before the switcher acted on them.",
		m->coalesced_total);
	counter(b, "hashflop_mode_start_retries_total",
		"Start attempts after a failed start or a health failure.", m->retries_total);
	counter(b, "hashflop_mode_health_failures_total",
		"Running modes that failed their health check (stopped, restarted with backoff).",
		m->health_failures_total);
	histogram(m, b);
	hf_prom_family(b, "hashflop_watchdog_healthy", "gauge",
		       "1 while the mode machine's watchdog verdict is healthy (systemd's watchdog is "
		       "fed only then), 0 otherwise (see watchdog.reason in /v1/status).");
	hf_prom_sample(b, "hashflop_watchdog_healthy", NULL, 0, verdict(m, NULL, 0));
	hf_prom_family(b, "hashflop_mode_health_failures_in_a_row", "gauge",
		       "Health failures of the desired mode without a healthy run since.");
	hf_prom_sample(b, "hashflop_mode_health_failures_in_a_row", NULL, 0, (double)m->health_streak);
	if (m->have_current && m->workers[m->current].metrics)
		m->workers[m->current].metrics(m->workers[m->current].impl, b);
	pthread_mutex_unlock(&m->lock);
}

void hf_modes_shutdown(hf_modes *m)
{
	pthread_mutex_lock(&m->lock);
	m->stopping = true; /* a pending desired state is dropped: shutdown wins */
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void hf_modes_free(hf_modes *m)
{
	if (!m)
		return;
	hf_modes_shutdown(m);
	if (m->thread_started)
		pthread_join(m->thread, NULL);
	if (m->have_current)
		stop_current(m, NULL);
	m->phase = HF_PHASE_STOPPED;
	json_decref(m->current_params);
	json_decref(m->desired_params);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
