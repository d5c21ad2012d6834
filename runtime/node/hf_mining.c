/* hf_mining: the mining worker's lifecycle (start, drain, release) and its supervisor thread:
 * work publication, pool loss ("mining: no pool"), stalled threads, rate sampling and the
 * periodic status line.
 * Invariants: a published work is immutable and reference-counted; the generation counter
 * moves on every publication (new work, or withdrawal when no pool is left), and hashing
 * threads compare it between chunks. drain() stops hashing before it flushes shares, and
 * closes the Stratum session last.
 * Threading: see hf_mining.h; the supervisor is the only writer of the published work.
 */
#include "hf_mining.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_mining_priv.h"
#include "hf_mining_work.h"
#include "hf_util.h"

#define SUP_TICK_MS 50
#define VERSION_MASK_ASK 0x1fffe000u

/* Publishes w (NULL: withdraw the work; hashing threads sleep). */
static void publish(hf_mining *m, hf_mwork *w)
{
	pthread_mutex_lock(&m->wlock);
	if (m->cur && (!w || w->w.job.clean || w->w.session != m->cur->w.session))
		atomic_store(&m->cur->replaced, true);
	hf_mining_work_unref(m->cur);
	m->cur = w;
	m->gen_pub_us = hf_mono_us();
	atomic_fetch_add(&m->gen, 1);
	m->sw_gen = atomic_load(&m->gen);
	m->sw_seen = 0;
	m->sw_max_us = 0;
	m->sw_expect = 0;
	for (unsigned i = 0; i < m->nth; i++)
		if (!atomic_load(&m->th[i].failed))
			m->sw_expect++;
	if (!w)
		m->sw_expect = 0;   /* a withdrawal is not a job switch */
	pthread_cond_broadcast(&m->wcond);
	pthread_mutex_unlock(&m->wlock);
}

/* Fetches the driver's current work and publishes it; false when there is none. */
static bool fetch_publish(hf_mining *m, uint64_t *seq)
{
	hf_mwork *w = calloc(1, sizeof *w);

	if (!w)
		return false;
	if (hf_stratum_drv_work(m->drv, &w->w) != 0) {
		free(w);
		return false;
	}
	atomic_store(&w->refs, 1);
	w->vcount = hf_mining_version_count(w->w.version_mask, HF_MINING_VERSION_ROLLS_MAX);
	*seq = w->w.seq;
	pthread_mutex_lock(&m->slock);
	m->difficulty = w->w.difficulty;
	if (!m->first_work_ms)
		m->first_work_ms = hf_mono_ms() - m->run_start_ms + 1;
	pthread_mutex_unlock(&m->slock);
	hf_log_debug("mining: job %s (seq %llu, diff %g, pool %d)%s", w->w.job.id,
		     (unsigned long long)w->w.seq, w->w.difficulty, w->w.pool + 1,
		     w->w.job.clean ? " clean" : "");
	publish(m, w);
	return true;
}

/* Tracks the active pool; withdraws work after the grace period without any pool. */
static void watch_pool(hf_mining *m, uint64_t now, uint64_t *seq, uint64_t *next_log,
		       uint64_t *log_gap)
{
	int a = hf_stratum_drv_active_pool(m->drv);
	hf_stratum_pool_stats ps;

	pthread_mutex_lock(&m->slock);
	int prev = m->active_pool;
	m->active_pool = a;
	if (a >= 0 && a != prev)
		m->active_since_ms = now;
	if (a < 0 && !m->no_pool_since_ms)
		m->no_pool_since_ms = now;
	uint64_t since = m->no_pool_since_ms;
	if (a >= 0)
		m->no_pool_since_ms = 0;
	pthread_mutex_unlock(&m->slock);
	if (a >= 0) {
		if (atomic_load(&m->state) != HF_MST_MINING) {
			if (atomic_load(&m->state) == HF_MST_NO_POOL)
				hf_log_notice("mining: pool %d (%s) is back", a + 1, m->cfg.pools[a].url);
			atomic_store(&m->state, HF_MST_MINING);
			*log_gap = 0;
			if (!m->cur)
				fetch_publish(m, seq);
		}
		return;
	}
	if (now - since < HF_MINING_NO_POOL_GRACE_MS)
		return;
	if (atomic_load(&m->state) != HF_MST_NO_POOL) {
		atomic_store(&m->state, HF_MST_NO_POOL);
		publish(m, NULL);
		*next_log = now;
		*log_gap = 1000;
	}
	if (now >= *next_log) {
		hf_stratum_drv_pool_stats(m->drv, 0, &ps);
		hf_log_warn("mining: no pool (%zu configured, none answering for %llu s; retrying with "
			    "backoff; pool 1: %s)", m->cfg.npools,
			    (unsigned long long)((now - since) / 1000),
			    ps.last_error[0] ? ps.last_error : "no error recorded");
		pthread_mutex_lock(&m->slock);
		hf_strlcpy(m->last_error, ps.last_error, sizeof m->last_error);
		pthread_mutex_unlock(&m->slock);
		*next_log = now + *log_gap;
		*log_gap = *log_gap * 2 > 300000 ? 300000 : *log_gap * 2;
	}
}

/* Flags hashing threads that made no progress for stall_ms (and their recovery). */
static void watch_threads(hf_mining *m, uint64_t now)
{
	for (unsigned i = 0; i < m->nth; i++) {
		hf_mthread *t = &m->th[i];
		uint64_t beat = atomic_load(&t->beat_ms);
		bool late = !atomic_load(&t->waiting) && !atomic_load(&t->failed) && beat &&
			    now > beat && now - beat > m->cfg.stall_ms;
		if (late && !atomic_load(&t->stalled)) {
			atomic_store(&t->stalled, true);
			pthread_mutex_lock(&m->slock);
			m->stalls++;
			pthread_mutex_unlock(&m->slock);
			hf_log_warn("mining: hashing thread %u stalled (no progress for %llu ms)", i,
				    (unsigned long long)(now - beat));
		} else if (!late && atomic_load(&t->stalled)) {
			atomic_store(&t->stalled, false);
			hf_log_notice("mining: hashing thread %u is making progress again", i);
		}
	}
}

static void *sup_main(void *arg)
{
	hf_mining *m = arg;
	uint64_t seq = 0, now = hf_mono_ms(), next_sample = now + 1000, next_log = 0, gap = 0;
	uint64_t next_line = now + m->cfg.status_interval_s * 1000;

	while (!atomic_load(&m->stop_sup)) {
		if (atomic_load(&m->state) == HF_MST_NO_POOL)
			hf_sleep_ms(SUP_TICK_MS);   /* stale work must not wake us: poll the pools */
		else if (hf_stratum_drv_wait_work(m->drv, seq, SUP_TICK_MS))
			fetch_publish(m, &seq);
		now = hf_mono_ms();
		watch_pool(m, now, &seq, &next_log, &gap);
		if (now >= next_sample) {
			hf_mining_sample(m, now);
			watch_threads(m, now);
			next_sample += 1000;
			if (next_sample <= now)
				next_sample = now + 1000;
		}
		if (now >= next_line) {
			hf_mining_status_line(m);
			next_line = now + m->cfg.status_interval_s * 1000;
		}
	}
	return NULL;
}

static unsigned cpus_allowed(int *list, unsigned max)
{
	cpu_set_t set;
	unsigned n = 0;

	if (sched_getaffinity(0, sizeof set, &set) != 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		for (long i = 0; i < c && n < max; i++)
			list[n++] = (int)i;
		return n ? n : 1;
	}
	for (int i = 0; i < CPU_SETSIZE && n < max; i++)
		if (CPU_ISSET(i, &set))
			list[n++] = i;
	return n ? n : 1;
}

/* Backend: the CPU scanner choice, or the OpenCL device (opened here so a bad device fails the
 * start and the node falls back to idle). */
static int open_backend(hf_mining *m, hf_errbuf *eb)
{
	int cpus[HF_MINING_MAX_THREADS];
	unsigned ncpu = cpus_allowed(cpus, HF_MINING_MAX_THREADS), n = 1;
	char cache[PATH_MAX], device[256] = "";
	hf_mthread *th;
	int r;

	if (m->cfg.backend == HF_MINING_CPU) {
		r = m->cfg.impl[0] ? hf_sha256d_choose(m->cfg.impl, &m->impl, eb)
				   : hf_sha256d_default(&m->impl, eb);
		if (r < 0)
			return hf_fail_prefix(eb, r, "mining.cpu.impl");
		n = m->cfg.threads ? m->cfg.threads : ncpu;
		snprintf(device, sizeof device, "cpu (%s)", m->impl->name);
	}
	th = calloc(n, sizeof *th);
	if (!th)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		hf_mthread *t = &th[i];
		t->m = m;
		t->idx = i;
		t->cpu = m->cfg.affinity == HF_MINING_AFFINITY_SPREAD ? cpus[i % ncpu] : -1;
		hf_mining_range(i, n, m->cfg.range_bits, &t->start, &t->count);
		atomic_store(&t->chunk, 4096);
		hf_mining_rate_init(&t->rate);
	}
	if (m->cfg.backend == HF_MINING_OPENCL) {
		snprintf(cache, sizeof cache, "%s/cl-cache", m->state_dir);
		hf_sha256d_cl_opts o = { .device = m->cfg.device[0] ? m->cfg.device : NULL,
					 .cache_dir = m->cfg.cache_dir[0] ? m->cfg.cache_dir : cache,
					 .batch = m->cfg.batch };
		stack_t alt;
		hf_mining_altstack_save(&alt);
		r = hf_sha256d_cl_new(&o, &th[0].cl, eb);
		hf_mining_altstack_restore(&alt);
		if (r < 0) {
			free(th);
			return hf_fail_prefix(eb, r, "mining.opencl");
		}
		snprintf(device, sizeof device, "opencl %s", hf_sha256d_cl_device(th[0].cl));
		th[0].min_chunk = m->cfg.batch ? m->cfg.batch : 65536;
		atomic_store(&th[0].chunk, th[0].min_chunk);
	}
	pthread_mutex_lock(&m->life);   /* status readers see both or neither */
	m->th = th;
	m->nth = n;
	hf_strlcpy(m->device, device, sizeof m->device);
	pthread_mutex_unlock(&m->life);
	return 0;
}

static int open_driver(hf_mining *m, hf_errbuf *eb)
{
	hf_stratum_drv_opts o = { 0 };
	hf_stratum_drv *d = NULL;
	int r;

	for (size_t i = 0; i < m->cfg.npools; i++)
		o.pools[i] = (hf_stratum_pool_cfg){ .url = m->cfg.pools[i].url,
						    .user = m->cfg.pools[i].user,
						    .pass = m->cfg.pools[i].pass[0] ? m->cfg.pools[i].pass : NULL };
	o.npools = m->cfg.npools;
	o.user_agent = m->cfg.user_agent[0] ? m->cfg.user_agent : NULL;
	o.ca_file = m->cfg.ca_file[0] ? m->cfg.ca_file : NULL;
	o.insecure = m->cfg.insecure;
	o.failback_ms = m->cfg.failback_ms;
	o.backoff_max_ms = m->cfg.backoff_max_ms;
	o.silence_ms = m->cfg.silence_ms;
	o.version_mask = m->cfg.version_rolling ? VERSION_MASK_ASK : 0;
	o.suggest_difficulty = m->cfg.suggest_difficulty;
	o.on_result = hf_mining_on_result;
	o.ctx = m;
	if ((r = hf_stratum_drv_new(&o, &d, eb)) < 0)
		return r;
	if ((r = hf_stratum_drv_start(d, eb)) < 0) {
		hf_stratum_drv_free(d);
		return r;
	}
	pthread_mutex_lock(&m->life);
	m->drv = d;
	pthread_mutex_unlock(&m->life);
	return 0;
}

static int start_threads(hf_mining *m, hf_errbuf *eb)
{
	if (pthread_create(&m->sub, NULL, hf_mining_submit_main, m) != 0)
		return hf_fail(eb, HF_ENOMEM, "cannot start the submit thread");
	m->sub_started = true;
	for (unsigned i = 0; i < m->nth; i++) {
		hf_mthread *t = &m->th[i];
		if (pthread_create(&t->th, NULL, hf_mining_hash_main, t) != 0)
			return hf_fail(eb, HF_ENOMEM, "cannot start hashing thread %u", i);
		t->started = true;
		if (t->cpu >= 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(t->cpu, &set);
			if (pthread_setaffinity_np(t->th, sizeof set, &set) != 0)
				hf_log_warn("mining: cannot pin thread %u to CPU %d", i, t->cpu);
		}
	}
	if (pthread_create(&m->sup, NULL, sup_main, m) != 0)
		return hf_fail(eb, HF_ENOMEM, "cannot start the mining supervisor");
	m->sup_started = true;
	return 0;
}

static int mining_start(void *impl, const json_t *params, hf_errbuf *eb)
{
	hf_mining *m = impl;
	int r;

	hf_mining_config c = m->base;
	if (params && (r = hf_mining_config_pools_from_params(&c, params, eb)) < 0)
		return r;
	pthread_mutex_lock(&m->life);
	m->cfg = c;
	pthread_mutex_unlock(&m->life);
	if (m->cfg.npools == 0)
		return hf_fail(eb, HF_ECONFIG, "no pool: set mining.pools in node.json or send "
			       "pools with the instruction");
	atomic_store(&m->stop_hash, false);
	atomic_store(&m->stop_sup, false);
	m->qstop = false;
	m->run_start_ms = hf_mono_ms();
	pthread_mutex_lock(&m->slock);
	m->runs++;
	m->run_submitted0 = m->submitted;
	m->active_pool = -1;
	m->active_since_ms = m->no_pool_since_ms = 0;
	m->first_work_ms = m->first_accepted_ms = 0;
	m->last_drain.done = false;
	m->cpu_s_total = m->hashes_at_cpu = 0;
	m->proc_cpu_ns0 = 0;
	pthread_mutex_unlock(&m->slock);
	atomic_store(&m->state, HF_MST_CONNECTING);
	if ((r = open_backend(m, eb)) < 0 || (r = open_driver(m, eb)) < 0 ||
	    (r = start_threads(m, eb)) < 0) {
		atomic_store(&m->state, HF_MST_FAILED);
		return r;
	}
	hf_log_notice("mining: started on %s with %u hashing thread(s); pool 1 of %zu: %s as %s",
		      m->device, m->nth, m->cfg.npools, m->cfg.pools[0].url, m->cfg.pools[0].user);
	return 0;
}

/* Waits until every share handed to the driver has a result, or until the deadline. */
static uint64_t wait_results(hf_mining *m, uint64_t deadline)
{
	for (;;) {
		pthread_mutex_lock(&m->slock);
		uint64_t want = m->submitted - m->run_submitted0;
		pthread_mutex_unlock(&m->slock);
		uint64_t got = hf_stratum_drv_results(m->drv);
		if (got >= want || hf_stratum_drv_active_pool(m->drv) < 0)
			return got >= want ? 0 : want - got;
		if (hf_mono_ms() >= deadline)
			return want - got;
		hf_sleep_ms(5);
	}
}

static void stop_hashing(hf_mining *m)
{
	atomic_store(&m->stop_hash, true);
	pthread_mutex_lock(&m->wlock);
	pthread_cond_broadcast(&m->wcond);
	pthread_mutex_unlock(&m->wlock);
	for (unsigned i = 0; i < m->nth; i++)
		if (m->th[i].started) {
			pthread_join(m->th[i].th, NULL);
			m->th[i].started = false;
		}
}

static void stop_helpers(hf_mining *m)
{
	atomic_store(&m->stop_sup, true);
	if (m->sup_started) {
		pthread_join(m->sup, NULL);
		m->sup_started = false;
	}
	pthread_mutex_lock(&m->qlock);
	m->qstop = true;
	pthread_cond_broadcast(&m->qcond);
	pthread_mutex_unlock(&m->qlock);
	if (m->sub_started) {
		pthread_join(m->sub, NULL);
		m->sub_started = false;
	}
}

/* Hashing stops first (within one scan chunk), then the queued shares go to the driver and
 * their results are awaited until min(deadline, flush budget); the session closes last. */
static int mining_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb)
{
	hf_mining *m = impl;
	hf_mining_drain d = { .done = true };
	uint64_t t0 = hf_mono_ms(), t1, t2, budget;

	atomic_store(&m->state, HF_MST_DRAINING);
	stop_hashing(m);
	t1 = hf_mono_ms();
	d.hash_stop_ms = t1 - t0;
	pthread_mutex_lock(&m->qlock);
	d.flushed = m->qlen;
	pthread_mutex_unlock(&m->qlock);
	stop_helpers(m);
	budget = t1 + m->cfg.flush_timeout_ms;
	if (m->drv)
		d.unanswered = wait_results(m, budget < deadline_ms ? budget : deadline_ms);
	t2 = hf_mono_ms();
	d.flush_ms = t2 - t1;
	if (m->drv)
		hf_stratum_drv_stop(m->drv);
	d.close_ms = hf_mono_ms() - t2;
	d.total_ms = hf_mono_ms() - t0;
	d.result = d.unanswered ? HF_ETIMEOUT : 0;
	hf_mining_sample(m, hf_mono_ms());
	pthread_mutex_lock(&m->slock);
	m->last_drain = d;
	pthread_mutex_unlock(&m->slock);
	hf_log_notice("mining: drained in %llu ms (hashing stopped in %llu ms, %llu queued share(s) "
		      "flushed, %llu unanswered)", (unsigned long long)d.total_ms,
		      (unsigned long long)d.hash_stop_ms, (unsigned long long)d.flushed,
		      (unsigned long long)d.unanswered);
	if (d.unanswered)
		return hf_fail(eb, HF_ETIMEOUT, "%llu share(s) without a pool answer at the deadline",
			       (unsigned long long)d.unanswered);
	return 0;
}

static void mining_release(void *impl)
{
	hf_mining *m = impl;
	hf_stratum_drv *drv;
	hf_mthread *th;
	unsigned nth;

	if (m->th)
		stop_hashing(m);
	stop_helpers(m);
	pthread_mutex_lock(&m->life);
	drv = m->drv;
	th = m->th;
	nth = m->nth;
	m->drv = NULL;
	m->th = NULL;
	m->nth = 0;
	pthread_mutex_unlock(&m->life);
	hf_stratum_drv_free(drv);
	for (unsigned i = 0; i < nth; i++) {
		stack_t alt;
		hf_mining_altstack_save(&alt);
		hf_sha256d_cl_free(th[i].cl);
		hf_mining_altstack_restore(&alt);
	}
	free(th);
	pthread_mutex_lock(&m->wlock);
	hf_mining_work_unref(m->cur);
	m->cur = NULL;
	pthread_mutex_unlock(&m->wlock);
	pthread_mutex_lock(&m->qlock);
	while (m->qlen) {
		hf_mining_work_unref(m->q[m->qhead].w);
		m->qhead = (m->qhead + 1) % HF_MINING_QCAP;
		m->qlen--;
	}
	pthread_mutex_unlock(&m->qlock);
	if (atomic_load(&m->state) != HF_MST_FAILED)
		atomic_store(&m->state, HF_MST_STOPPED);
}

int hf_mining_new(const json_t *section, const char *state_dir, hf_mining **out, hf_errbuf *eb)
{
	hf_mining *m = calloc(1, sizeof *m);
	int r;

	*out = NULL;
	if (!m)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	hf_mining_config_defaults(&m->base);
	if (section && (r = hf_mining_config_from_json(&m->base, section, "mining", eb)) < 0) {
		free(m);
		return r;
	}
	hf_strlcpy(m->state_dir, state_dir, sizeof m->state_dir);
	pthread_mutex_init(&m->life, NULL);
	pthread_mutex_init(&m->wlock, NULL);
	pthread_cond_init(&m->wcond, NULL);
	pthread_mutex_init(&m->qlock, NULL);
	pthread_cond_init(&m->qcond, NULL);
	pthread_mutex_init(&m->slock, NULL);
	hf_mining_rate_init(&m->total_rate);
	m->active_pool = -1;
	atomic_store(&m->en2_next, (uint64_t)hf_wall_ms() << 8);
	*out = m;
	return 0;
}

void hf_mining_worker(hf_mining *m, hf_mode_worker *w)
{
	*w = (hf_mode_worker){ .mode = HF_MODE_MINING, .impl = m, .start = mining_start,
			       .drain = mining_drain, .release = mining_release,
			       .status = hf_mining_status, .metrics = hf_mining_metrics };
}

void hf_mining_free(hf_mining *m)
{
	if (!m)
		return;
	mining_release(m);
	pthread_mutex_destroy(&m->life);
	pthread_mutex_destroy(&m->wlock);
	pthread_cond_destroy(&m->wcond);
	pthread_mutex_destroy(&m->qlock);
	pthread_cond_destroy(&m->qcond);
	pthread_mutex_destroy(&m->slock);
	free(m);
}
