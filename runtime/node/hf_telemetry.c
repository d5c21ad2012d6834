/* hf_telemetry: the sampler thread and the windows behind the node's power and efficiency figures.
 *
 * Invariants: the ring holds cumulative samples (energy of the source, work counters of the
 * worker) of the current mode run only, oldest first, at most one window of the longest length
 * plus a margin; a window's figures are the difference between the newest sample and the
 * oldest one no more than its length (plus half a sample interval, for timer jitter) before it,
 * so energy and work always cover the same seconds. A run ends (the ring restarts from the
 * newest sample) when the current mode or its start time changes, or when a work counter went
 * backwards (a new worker object). A sample taken while the machine's mode and the counters'
 * mode disagree (a switch between the two reads) adds no work sample. A new run is sampled
 * within RUN_POLL_MS of its start (the work before that first sample is in no window). The
 * published snapshot is replaced whole under the lock.
 * Threading: the sampler thread owns the ring and the run; snap, target and stop are guarded
 * by lock; the serialisers touch only the snapshot they are given.
 */
#include "hf_telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"

static const unsigned windows_s[HF_TELEM_WINDOWS] = { 10, 60, 900 };
static const char *const window_names[HF_TELEM_WINDOWS] = { "10s", "1m", "15m" };
#define REPORT_WINDOW 1 /* the 60 s window goes to the coordinator */
#define RUN_POLL_MS 50  /* how soon a new mode run gets its first sample */

typedef struct sample {
	hf_power_reading power;
	hf_work_counters work;
} sample;

struct hf_telemetry {
	hf_power *power;
	hf_modes *modes;
	unsigned interval_ms;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	/* sampler state */
	sample *ring;
	size_t cap, head, count;     /* head: index of the oldest */
	bool have_run;
	hf_mode run_mode;
	uint64_t run_since_wall_ms;
	hf_power_reading prev;       /* the previous reading, for the interval watts */
	bool have_prev;
	uint64_t samples;
	/* published */
	hf_telemetry_snapshot snap;
	double target_w;
};

static const sample *ring_at(const hf_telemetry *t, size_t i)
{
	return &t->ring[(t->head + i) % t->cap];
}

static void ring_push(hf_telemetry *t, const sample *s)
{
	if (t->count == t->cap) {
		t->head = (t->head + 1) % t->cap;
		t->count--;
	}
	t->ring[(t->head + t->count) % t->cap] = *s;
	t->count++;
}

static bool counters_went_back(const hf_work_counters *a, const hf_work_counters *b)
{
	return b->hashes < a->hashes || b->flops < a->flops || b->inferences < a->inferences;
}

/* One window ending at the newest sample. */
static void window_of(const hf_telemetry *t, unsigned seconds, hf_telemetry_window *w)
{
	const sample *last, *first = NULL;
	uint64_t span_ns = (uint64_t)seconds * 1000000000ull + (uint64_t)t->interval_ms * 500000ull;
	hf_power_window pw;

	memset(w, 0, sizeof *w);
	w->seconds = seconds;
	if (t->count < 2)
		return;
	last = ring_at(t, t->count - 1);
	for (size_t i = 0; i + 1 < t->count; i++) {
		const sample *s = ring_at(t, i);
		if (last->power.mono_ns - s->power.mono_ns <= span_ns) {
			first = s;
			break;
		}
	}
	if (!first)
		return;
	hf_power_window_of(&first->power, &last->power, &pw);
	if (!(pw.seconds > 0))
		return;
	w->covered_s = pw.seconds;
	w->joules = pw.joules;
	w->watts = pw.watts;
	double dh = (double)(last->work.hashes - first->work.hashes);
	double df = last->work.flops - first->work.flops;
	double di = (double)(last->work.inferences - first->work.inferences);
	w->hashes_per_s = dh / pw.seconds;
	w->flops_per_s = df / pw.seconds;
	w->inferences_per_s = di / pw.seconds;
	if (pw.joules > 0) {
		w->mh_per_j = dh / 1e6 / pw.joules;
		w->gflop_per_j = df / 1e9 / pw.joules;
		w->inferences_per_j = di / pw.joules;
	}
}

/* Reads the source and the counters, moves the run along, publishes a snapshot. Sampler
 * thread (or hf_telemetry_new before the thread starts). */
static void sample_once(hf_telemetry *t)
{
	hf_telemetry_snapshot s;
	hf_modes_info info;
	hf_mode cmode = HF_MODE_IDLE;
	sample cur;

	memset(&s, 0, sizeof s);
	memset(&cur, 0, sizeof cur);
	hf_modes_snapshot(t->modes, &info);
	hf_modes_counters(t->modes, &cmode, &cur.work);
	hf_power_read(t->power, &cur.power);
	s.wall_ms = hf_wall_ms();
	if (cmode == info.mode) {
		bool restart = !t->have_run || cmode != t->run_mode ||
			       info.mode_since_wall_ms != t->run_since_wall_ms ||
			       (t->count && counters_went_back(&ring_at(t, t->count - 1)->work, &cur.work));
		if (restart) {
			t->head = t->count = 0;
			t->have_run = true;
			t->run_mode = cmode;
			t->run_since_wall_ms = info.mode_since_wall_ms;
		}
		ring_push(t, &cur);
	}
	s.mode = t->run_mode;
	s.mode_since_wall_ms = t->run_since_wall_ms;
	hf_strlcpy(s.source, hf_power_kind_name(hf_power_kind_of(t->power)), sizeof s.source);
	hf_strlcpy(s.boundary, hf_power_boundary(t->power), sizeof s.boundary);
	const char *detail = hf_power_detail(t->power);
	hf_text_clean(s.detail, sizeof s.detail, detail, strlen(detail)); /* names read from sysfs */
	s.estimated = cur.power.estimated;
	s.degraded = cur.power.degraded;
	s.watts = cur.power.watts;
	if (t->have_prev) {
		hf_power_window pw;
		hf_power_window_of(&t->prev, &cur.power, &pw);
		if (pw.seconds > 0)
			s.watts = pw.watts;
	}
	t->prev = cur.power;
	t->have_prev = true;
	s.joules_total = cur.power.energy_j;
	s.samples = ++t->samples;
	s.totals = t->count ? ring_at(t, t->count - 1)->work : cur.work;
	for (size_t i = 0; i < HF_TELEM_WINDOWS; i++)
		window_of(t, windows_s[i], &s.win[i]);
	pthread_mutex_lock(&t->lock);
	s.target_set = t->target_w > 0;
	s.target_w = t->target_w > 0 ? t->target_w : 0;
	t->snap = s;
	pthread_mutex_unlock(&t->lock);
}

/* Whether the machine now runs another mode or another run of it than the samples cover
 * (sampler thread). */
static bool run_changed(hf_telemetry *t)
{
	hf_modes_info info;

	hf_modes_snapshot(t->modes, &info);
	return !t->have_run || info.mode != t->run_mode ||
	       info.mode_since_wall_ms != t->run_since_wall_ms;
}

/* Samples every interval_ms, and at once (within RUN_POLL_MS) when a new mode run begins, so
 * that the work of a run's first interval is not lost before its first sample. */
static void *sampler_main(void *arg)
{
	hf_telemetry *t = arg;
	uint64_t next = hf_mono_ms() + t->interval_ms;
	unsigned poll = t->interval_ms < RUN_POLL_MS ? t->interval_ms : RUN_POLL_MS;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		uint64_t now = hf_mono_ms();
		if (now < next) {
			struct timespec ts;
			uint64_t wait = next - now < poll ? next - now : poll;
			hf_abstime_after_ms(wait, &ts);
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
			if (t->stop)
				break;
		}
		pthread_mutex_unlock(&t->lock);
		now = hf_mono_ms();
		if (now >= next) {
			/* A late wake-up (a suspended machine) resumes the schedule from now. */
			next = next + t->interval_ms > now ? next + t->interval_ms : now + t->interval_ms;
			sample_once(t);
		} else if (run_changed(t)) {
			sample_once(t);
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int hf_telemetry_new(const hf_telemetry_opts *opts, hf_telemetry **out, hf_errbuf *eb)
{
	hf_telemetry *t;

	*out = NULL;
	if (!opts || !opts->power || !opts->modes)
		return hf_fail(eb, HF_EINVAL, "telemetry: a power source and a mode machine are required");
	t = calloc(1, sizeof *t);
	if (!t)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	t->power = opts->power;
	t->modes = opts->modes;
	t->interval_ms = opts->interval_ms ? opts->interval_ms : 1000;
	if (t->interval_ms < 10)
		t->interval_ms = 10;
	/* The longest window, its margin, and the sample that starts it. */
	t->cap = (size_t)windows_s[HF_TELEM_WINDOWS - 1] * 1000 / t->interval_ms + 3;
	t->ring = calloc(t->cap, sizeof *t->ring);
	if (!t->ring) {
		size_t cap = t->cap;
		free(t);
		return hf_fail(eb, HF_ENOMEM, "out of memory for %zu telemetry samples", cap);
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	sample_once(t); /* a snapshot exists from the start */
	if (pthread_create(&t->thread, NULL, sampler_main, t) != 0) {
		hf_telemetry_free(t);
		return hf_fail(eb, HF_ENOMEM, "telemetry: cannot start the sampler thread");
	}
	t->thread_started = true;
	*out = t;
	return 0;
}

void hf_telemetry_snapshot_get(hf_telemetry *t, hf_telemetry_snapshot *out)
{
	pthread_mutex_lock(&t->lock);
	*out = t->snap;
	pthread_mutex_unlock(&t->lock);
}

void hf_telemetry_set_target(hf_telemetry *t, double watts)
{
	pthread_mutex_lock(&t->lock);
	t->target_w = watts > 0 && isfinite(watts) ? watts : 0;
	t->snap.target_set = t->target_w > 0;
	t->snap.target_w = t->target_w;
	pthread_mutex_unlock(&t->lock);
}

void hf_telemetry_free(hf_telemetry *t)
{
	if (!t)
		return;
	if (t->thread_started) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t->ring);
	free(t);
}

/* ---- serialisers ---- */

/* A finite number for JSON (NaN or infinity, which a source must never give, as 0). */
static json_t *num(double v)
{
	return json_real(isfinite(v) ? v : 0.0);
}

static json_t *window_json(const hf_telemetry_window *w)
{
	json_t *o = json_object();

	json_object_set_new(o, "seconds", json_integer(w->seconds));
	json_object_set_new(o, "covered_s", num(w->covered_s));
	json_object_set_new(o, "joules", num(w->joules));
	json_object_set_new(o, "watts", num(w->watts));
	json_object_set_new(o, "hashes_per_s", num(w->hashes_per_s));
	json_object_set_new(o, "flops_per_s", num(w->flops_per_s));
	json_object_set_new(o, "inferences_per_s", num(w->inferences_per_s));
	json_object_set_new(o, "mh_per_j", num(w->mh_per_j));
	json_object_set_new(o, "gflop_per_j", num(w->gflop_per_j));
	json_object_set_new(o, "inferences_per_j", num(w->inferences_per_j));
	return o;
}

/* {"10s": v, "1m": v, "15m": v} of one field picked by off (an offset into the window). */
static json_t *per_window(const hf_telemetry_snapshot *s, size_t off)
{
	json_t *o = json_object();
	for (size_t i = 0; i < HF_TELEM_WINDOWS; i++) {
		double v;
		memcpy(&v, (const char *)&s->win[i] + off, sizeof v);
		json_object_set_new(o, window_names[i], num(v));
	}
	return o;
}

static json_t *efficiency_json(const hf_telemetry_snapshot *s)
{
	json_t *e = json_pack("{s:s, s:s, s:s, s:b}", "mode", hf_mode_name(s->mode),
			      "source", s->source, "boundary", s->boundary, "estimated", s->estimated);

	switch (s->mode) {
	case HF_MODE_MINING:
		json_object_set_new(e, "mh_per_j", per_window(s, offsetof(hf_telemetry_window, mh_per_j)));
		break;
	case HF_MODE_INFERENCE:
		json_object_set_new(e, "gflop_per_j",
				    per_window(s, offsetof(hf_telemetry_window, gflop_per_j)));
		json_object_set_new(e, "inferences_per_j",
				    per_window(s, offsetof(hf_telemetry_window, inferences_per_j)));
		break;
	case HF_MODE_IDLE:
		json_object_set_new(e, "idle_watts", per_window(s, offsetof(hf_telemetry_window, watts)));
		break;
	}
	return e;
}

void hf_telemetry_status_json(const hf_telemetry_snapshot *s, json_t *obj)
{
	json_t *p = json_object(), *wins = json_object();

	json_object_set_new(p, "watts", num(s->watts));
	json_object_set_new(p, "joules_total", num(s->joules_total));
	json_object_set_new(p, "source", json_string(s->source));
	json_object_set_new(p, "boundary", json_string(s->boundary));
	json_object_set_new(p, "estimated", json_boolean(s->estimated));
	json_object_set_new(p, "degraded", json_boolean(s->degraded));
	json_object_set_new(p, "detail", json_string(s->detail));
	json_object_set_new(p, "target_w", s->target_set ? num(s->target_w) : json_null());
	json_object_set_new(p, "samples", json_integer((json_int_t)s->samples));
	json_object_set_new(p, "sampled_ms", json_integer((json_int_t)s->wall_ms));
	json_object_set_new(p, "mode", json_string(hf_mode_name(s->mode)));
	json_object_set_new(p, "mode_since_ms", json_integer((json_int_t)s->mode_since_wall_ms));
	json_object_set_new(p, "worker_counters",
			    json_pack("{s:I, s:o, s:I}", "hashes", (json_int_t)s->totals.hashes,
				      "flops", num(s->totals.flops),
				      "inferences", (json_int_t)s->totals.inferences));
	for (size_t i = 0; i < HF_TELEM_WINDOWS; i++)
		json_object_set_new(wins, window_names[i], window_json(&s->win[i]));
	json_object_set_new(p, "windows", wins);
	json_object_set_new(obj, "power", p);
	json_object_set_new(obj, "efficiency", efficiency_json(s));
}

static void window_family(const hf_telemetry_snapshot *s, hf_buf *b, const char *name,
			  const char *help, size_t off)
{
	const char *l[] = { "window", NULL, "source", s->source, "estimated",
			    s->estimated ? "true" : "false" };

	hf_prom_family(b, name, "gauge", help);
	for (size_t i = 0; i < HF_TELEM_WINDOWS; i++) {
		double v;
		memcpy(&v, (const char *)&s->win[i] + off, sizeof v);
		l[1] = window_names[i];
		hf_prom_sample(b, name, l, 3, isfinite(v) ? v : 0);
	}
}

void hf_telemetry_metrics(const hf_telemetry_snapshot *s, hf_buf *b)
{
	const char *l[] = { "source", s->source, "boundary", s->boundary, "estimated",
			    s->estimated ? "true" : "false" };

	hf_prom_family(b, "hashflop_power_watts", "gauge",
		       "Power over the last telemetry interval, with where it came from.");
	hf_prom_sample(b, "hashflop_power_watts", l, 3, isfinite(s->watts) ? s->watts : 0);
	hf_prom_family(b, "hashflop_energy_joules_total", "counter",
		       "Energy the power source counted since the node started.");
	hf_prom_sample(b, "hashflop_energy_joules_total", l, 3,
		       isfinite(s->joules_total) ? s->joules_total : 0);
	hf_prom_family(b, "hashflop_power_degraded", "gauge",
		       "1 when a domain of the power source failed to read since start (see /v1/status).");
	hf_prom_sample(b, "hashflop_power_degraded", NULL, 0, s->degraded ? 1 : 0);
	window_family(s, b, "hashflop_power_window_watts",
		      "Mean power over the window, in the current mode run.",
		      offsetof(hf_telemetry_window, watts));
	if (s->target_set) {
		hf_prom_family(b, "hashflop_power_target_watts", "gauge",
			       "The mining power target in force (mining.power_target_w).");
		hf_prom_sample(b, "hashflop_power_target_watts", NULL, 0, s->target_w);
	}
	switch (s->mode) {
	case HF_MODE_MINING:
		window_family(s, b, "hashflop_efficiency_mh_per_joule",
			      "Mining efficiency: megahashes per joule over the window.",
			      offsetof(hf_telemetry_window, mh_per_j));
		break;
	case HF_MODE_INFERENCE:
		window_family(s, b, "hashflop_efficiency_gflop_per_joule",
			      "Inference efficiency: GFLOP per joule over the window.",
			      offsetof(hf_telemetry_window, gflop_per_j));
		window_family(s, b, "hashflop_efficiency_inferences_per_joule",
			      "Inference efficiency: inferences (batch items) per joule over the window.",
			      offsetof(hf_telemetry_window, inferences_per_j));
		break;
	case HF_MODE_IDLE:
		window_family(s, b, "hashflop_idle_watts", "Mean power while idle over the window.",
			      offsetof(hf_telemetry_window, watts));
		break;
	}
}

json_t *hf_telemetry_report_json(const hf_telemetry_snapshot *s)
{
	const hf_telemetry_window *w = &s->win[REPORT_WINDOW];
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "watts", num(s->watts));
	json_object_set_new(o, "joules_total", num(s->joules_total));
	json_object_set_new(o, "source", json_string(s->source));
	json_object_set_new(o, "boundary", json_string(s->boundary));
	json_object_set_new(o, "estimated", json_boolean(s->estimated));
	json_object_set_new(o, "window_s", num(w->covered_s));
	json_object_set_new(o, "window_watts", num(w->watts));
	json_object_set_new(o, "mh_per_j", num(s->mode == HF_MODE_MINING ? w->mh_per_j : 0));
	json_object_set_new(o, "gflop_per_j", num(s->mode == HF_MODE_INFERENCE ? w->gflop_per_j : 0));
	json_object_set_new(o, "inferences_per_j",
			    num(s->mode == HF_MODE_INFERENCE ? w->inferences_per_j : 0));
	return o;
}
