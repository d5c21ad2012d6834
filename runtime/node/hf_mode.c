/* hf_mode: mode state machine with a switcher thread, a bounded FIFO of requests and per-switch
 * timelines. Invariants: exactly one worker is current once the first switch ran; the lock is
 * never held while a worker callback that may block (start, drain, release) runs; the idle
 * worker's start cannot fail, so a failed start always lands in idle.
 * Threading: see hf_mode.h.
 */
#include "hf_mode.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hf_prom.h"
#include "hf_util.h"

static const char *const mode_names[HF_MODE_COUNT] = { "idle", "mining", "inference" };
static const char *const phase_names[] = { "stopped", "starting", "running", "draining", "releasing" };

/* Upper bounds (ms) of the switch-duration histogram buckets. */
static const double switch_buckets_ms[] = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000 };
#define NBUCKETS (sizeof switch_buckets_ms / sizeof switch_buckets_ms[0])

typedef struct request {
	hf_mode target;
	json_t *params;
	uint64_t mono_ms, wall_ms;
} request;

struct hf_modes {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started, stopping, busy;
	uint64_t drain_timeout_ms;
	hf_mode_worker workers[HF_MODE_COUNT];
	bool registered[HF_MODE_COUNT];
	request queue[HF_MODES_QUEUE_MAX];
	size_t qhead, qlen;
	bool have_current;
	hf_mode current;
	json_t *current_params;
	hf_mode_phase phase;
	hf_mode desired;
	uint64_t mode_since_wall_ms;
	uint64_t switches_total, failures_total, noop_total;
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

/* The idle worker: nothing runs, so every phase is instant. */
static int idle_start(void *impl, const json_t *params, hf_errbuf *eb) { return 0; }
static int idle_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb) { return 0; }
static void idle_release(void *impl) { }

static void set_phase(hf_modes *m, hf_mode_phase p)
{
	pthread_mutex_lock(&m->lock);
	m->phase = p;
	pthread_mutex_unlock(&m->lock);
}

/* Drains and releases the current worker; fills the record's drain/release times. */
static void stop_current(hf_modes *m, hf_switch_record *rec)
{
	hf_mode_worker *w = &m->workers[m->current];
	hf_errbuf eb;
	uint64_t t0 = hf_mono_ms(), t1;

	hf_errbuf_clear(&eb);
	set_phase(m, HF_PHASE_DRAINING);
	int r = w->drain(w->impl, t0 + m->drain_timeout_ms, &eb);
	t1 = hf_mono_ms();
	if (r < 0 && rec && rec->result == 0)
		snprintf(rec->error, sizeof rec->error, "drain of %s: %s%s%s", hf_mode_name(m->current),
			 hf_strerror(r), eb.msg[0] ? ": " : "", eb.msg);
	set_phase(m, HF_PHASE_RELEASING);
	w->release(w->impl);
	if (rec) {
		rec->drain_ms = t1 - t0;
		rec->release_ms = hf_mono_ms() - t1;
	}
}

static void record_switch(hf_modes *m, const hf_switch_record *rec)
{
	size_t b = 0;
	while (b < NBUCKETS && (double)rec->total_ms > switch_buckets_ms[b])
		b++;
	pthread_mutex_lock(&m->lock);
	m->last = *rec;
	m->switches_total++;
	if (rec->result < 0)
		m->failures_total++;
	m->hist[b]++;
	m->hist_sum_s += (double)rec->total_ms / 1000.0;
	pthread_mutex_unlock(&m->lock);
}

static void run_switch(hf_modes *m, request *rq, uint64_t seq)
{
	hf_switch_record rec = { .seq = seq, .to = rq->target, .requested_wall_ms = rq->wall_ms };
	uint64_t begin = hf_mono_ms(), t;
	hf_errbuf eb;
	int r;

	rec.queued_ms = begin - rq->mono_ms;
	rec.from_none = !m->have_current;
	rec.from = m->current;
	if (m->have_current)
		stop_current(m, &rec);
	pthread_mutex_lock(&m->lock);
	m->have_current = true;
	m->current = rq->target;
	json_decref(m->current_params);
	m->current_params = rq->params;
	rq->params = NULL;
	m->phase = HF_PHASE_STARTING;
	pthread_mutex_unlock(&m->lock);

	t = hf_mono_ms();
	hf_errbuf_clear(&eb);
	r = m->workers[rq->target].start(m->workers[rq->target].impl, m->current_params, &eb);
	rec.start_ms = hf_mono_ms() - t;
	if (r < 0) {
		rec.result = r;
		snprintf(rec.error, sizeof rec.error, "start of %s: %s%s%s", hf_mode_name(rq->target),
			 hf_strerror(r), eb.msg[0] ? ": " : "", eb.msg);
		m->workers[rq->target].release(m->workers[rq->target].impl);
		pthread_mutex_lock(&m->lock);
		m->current = HF_MODE_IDLE;
		json_decref(m->current_params);
		m->current_params = NULL;
		pthread_mutex_unlock(&m->lock);
		m->workers[HF_MODE_IDLE].start(m->workers[HF_MODE_IDLE].impl, NULL, &eb);
	}
	pthread_mutex_lock(&m->lock);
	m->phase = HF_PHASE_RUNNING;
	m->mode_since_wall_ms = hf_wall_ms();
	pthread_mutex_unlock(&m->lock);
	rec.total_ms = hf_mono_ms() - begin;
	record_switch(m, &rec);
}

static void *switcher_main(void *arg)
{
	hf_modes *m = arg;
	uint64_t seq = 0;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (m->qlen == 0 && !m->stopping)
			pthread_cond_wait(&m->cond, &m->lock);
		if (m->qlen == 0 && m->stopping)
			break;
		request rq = m->queue[m->qhead];
		m->qhead = (m->qhead + 1) % HF_MODES_QUEUE_MAX;
		m->qlen--;
		bool same_params = (!m->current_params && !rq.params) ||
				   (m->current_params && rq.params &&
				    json_equal(m->current_params, rq.params));
		bool noop = m->have_current && m->current == rq.target && same_params;
		if (noop) {
			m->noop_total++;
			json_decref(rq.params);
			pthread_cond_broadcast(&m->cond);
			continue;
		}
		m->busy = true;
		pthread_mutex_unlock(&m->lock);
		run_switch(m, &rq, ++seq);
		json_decref(rq.params);
		pthread_mutex_lock(&m->lock);
		m->busy = false;
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int hf_modes_new(uint64_t drain_timeout_ms, hf_modes **out, hf_errbuf *eb)
{
	hf_modes *m = calloc(1, sizeof *m);
	*out = NULL;
	if (!m)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->drain_timeout_ms = drain_timeout_ms;
	m->workers[HF_MODE_IDLE] = (hf_mode_worker){
		.mode = HF_MODE_IDLE, .start = idle_start, .drain = idle_drain, .release = idle_release,
	};
	m->registered[HF_MODE_IDLE] = true;
	m->phase = HF_PHASE_STOPPED;
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

int hf_modes_request(hf_modes *m, hf_mode target, const json_t *params, hf_errbuf *eb)
{
	int r = 0;

	if (!hf_modes_available(m, target))
		return hf_fail(eb, HF_EUNSUPPORTED, "mode %s is not available in this build",
			       hf_mode_name(target));
	pthread_mutex_lock(&m->lock);
	if (m->stopping) {
		r = hf_fail(eb, HF_ESTATE, "shutting down");
	} else if (m->qlen == HF_MODES_QUEUE_MAX) {
		r = hf_fail(eb, HF_EBUSY, "%d mode switches already queued", HF_MODES_QUEUE_MAX);
	} else {
		request *rq = &m->queue[(m->qhead + m->qlen) % HF_MODES_QUEUE_MAX];
		rq->target = target;
		rq->params = params ? json_deep_copy(params) : NULL;
		rq->mono_ms = hf_mono_ms();
		rq->wall_ms = hf_wall_ms();
		m->qlen++;
		m->desired = target;
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

bool hf_modes_wait_settled(hf_modes *m, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	while (m->qlen > 0 || m->busy) {
		uint64_t now = hf_mono_ms();
		if (now >= deadline) {
			ok = false;
			break;
		}
		struct timespec ts;
		hf_abstime_after_ms(deadline - now, &ts);
		pthread_cond_timedwait(&m->cond, &m->lock, &ts);
	}
	pthread_mutex_unlock(&m->lock);
	return ok;
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
	out->queued_now = m->qlen;
	out->last = m->last;
	pthread_mutex_unlock(&m->lock);
}

static json_t *record_json(const hf_switch_record *r)
{
	if (r->seq == 0)
		return json_null();
	return json_pack("{s:I, s:o, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:b, s:s?}",
			 "seq", (json_int_t)r->seq,
			 "from", r->from_none ? json_null() : json_string(hf_mode_name(r->from)),
			 "to", hf_mode_name(r->to),
			 "requested_ms", (json_int_t)r->requested_wall_ms,
			 "phases_ms",
			 "queued", (json_int_t)r->queued_ms, "drain", (json_int_t)r->drain_ms,
			 "release", (json_int_t)r->release_ms, "start", (json_int_t)r->start_ms,
			 "total", (json_int_t)r->total_ms,
			 "ok", r->result == 0,
			 "error", r->error[0] ? r->error : NULL);
}

void hf_modes_status_json(hf_modes *m, json_t *obj)
{
	pthread_mutex_lock(&m->lock);
	json_object_set_new(obj, "mode", json_string(hf_mode_name(m->current)));
	json_object_set_new(obj, "phase", json_string(hf_mode_phase_name(m->phase)));
	json_object_set_new(obj, "desired_mode", json_string(hf_mode_name(m->desired)));
	json_object_set_new(obj, "mode_since_ms", json_integer((json_int_t)m->mode_since_wall_ms));
	json_object_set_new(obj, "switches", json_integer((json_int_t)m->switches_total));
	json_object_set_new(obj, "last_switch", record_json(&m->last));
	if (m->have_current && m->workers[m->current].status)
		m->workers[m->current].status(m->workers[m->current].impl, obj);
	pthread_mutex_unlock(&m->lock);
}

void hf_modes_metrics(hf_modes *m, hf_buf *b)
{
	pthread_mutex_lock(&m->lock);
	hf_prom_family(b, "hashflop_mode", "gauge", "1 for the mode the node is in, 0 for the others.");
	for (int i = 0; i < HF_MODE_COUNT; i++) {
		const char *l[] = { "mode", mode_names[i] };
		hf_prom_sample(b, "hashflop_mode", l, 1, m->have_current && (int)m->current == i);
	}
	hf_prom_family(b, "hashflop_mode_switches_total", "counter", "Mode switches executed.");
	hf_prom_sample(b, "hashflop_mode_switches_total", NULL, 0, (double)m->switches_total);
	hf_prom_family(b, "hashflop_mode_switch_failures_total", "counter",
		       "Mode switches whose target failed to start (the node fell back to idle).");
	hf_prom_sample(b, "hashflop_mode_switch_failures_total", NULL, 0, (double)m->failures_total);
	hf_prom_family(b, "hashflop_mode_switch_noops_total", "counter",
		       "Requests for the mode already running with the same parameters.");
	hf_prom_sample(b, "hashflop_mode_switch_noops_total", NULL, 0, (double)m->noop_total);
	hf_prom_family(b, "hashflop_mode_switch_duration_seconds", "histogram",
		       "Wall time of a mode switch from dequeue to running.");
	uint64_t cum = 0;
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
	if (m->have_current && m->workers[m->current].metrics)
		m->workers[m->current].metrics(m->workers[m->current].impl, b);
	pthread_mutex_unlock(&m->lock);
}

void hf_modes_free(hf_modes *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	/* Pending requests are dropped: shutdown wins over queued desired states. */
	while (m->qlen > 0) {
		json_decref(m->queue[m->qhead].params);
		m->qhead = (m->qhead + 1) % HF_MODES_QUEUE_MAX;
		m->qlen--;
	}
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->thread_started)
		pthread_join(m->thread, NULL);
	if (m->have_current)
		stop_current(m, NULL);
	m->phase = HF_PHASE_STOPPED;
	json_decref(m->current_params);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
