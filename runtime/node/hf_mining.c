/* hf_mining: the mining worker's lifecycle (start, drain, release, health) and its supervisor
 * thread: work publication, pool loss ("mining: no pool"), failed and stalled hashing threads
 * (restarts within a budget, then the run fails), rate sampling, the power target's steps
 * (hf_mining_power.c) and the status line.
 * Invariants: a published work is immutable and reference-counted; the generation counter
 * moves on every publication (new work, or withdrawal when no pool is left or the run
 * failed), and hashing threads compare it between chunks. drain() stops hashing before it
 * flushes shares, waits only for shares really in flight (the ledger's count, which every
 * answer and every drop lowers), and closes the Stratum session last. State changes are
 * compare-and-swap from the states each writer may leave: the supervisor moves between
 * connecting, mining and no_pool and to failed; only drain() enters draining and only
 * release() leaves it; failed is left only by the next start().
 * Threading: see hf_mining.h; the supervisor is the only writer of the published work and
 * the only thread that restarts runners while hashing runs (under tlock, which the drain takes
 * to join them).
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
#include "hf_text.h"
#include "hf_util.h"

#define SUP_TICK_MS 50
#define VERSION_MASK_ASK 0x1fffe000u
#define LIVE_STATES (HF_MST_BIT(HF_MST_CONNECTING) | HF_MST_BIT(HF_MST_MINING) | \
		     HF_MST_BIT(HF_MST_NO_POOL))

bool hf_mining_set_state(hf_mining *m, unsigned from_mask, hf_mining_state to)
{
	int cur = atomic_load(&m->state);

	while (cur >= 0 && cur < 32 && (from_mask & HF_MST_BIT(cur)))
		if (atomic_compare_exchange_weak(&m->state, &cur, (int)to))
			return true;
	return false;
}

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
		int st = atomic_load(&m->state);
		if (st != HF_MST_MINING &&
		    hf_mining_set_state(m, HF_MST_BIT(HF_MST_CONNECTING) | HF_MST_BIT(HF_MST_NO_POOL),
					HF_MST_MINING)) {
			if (st == HF_MST_NO_POOL)
				hf_log_notice("mining: pool %d (%s) is back", a + 1, m->cfg.pools[a].url);
			*log_gap = 0;
			if (!m->cur)
				fetch_publish(m, seq);
		}
		return;
	}
	if (now - since < HF_MINING_NO_POOL_GRACE_MS)
		return;
	if (hf_mining_set_state(m, HF_MST_BIT(HF_MST_CONNECTING) | HF_MST_BIT(HF_MST_MINING),
				HF_MST_NO_POOL)) {
		publish(m, NULL);
		*next_log = now;
		*log_gap = 1000;
	}
	if (atomic_load(&m->state) == HF_MST_NO_POOL && now >= *next_log) {
		char err[sizeof ps.last_error];
		hf_stratum_drv_pool_stats(m->drv, 0, &ps);
		hf_text_clean(err, sizeof err, ps.last_error, sizeof ps.last_error);
		hf_log_warn("mining: no pool (%zu configured, none answering for %llu s; retrying with "
			    "backoff; pool 1: %s)", m->cfg.npools,
			    (unsigned long long)((now - since) / 1000),
			    err[0] ? err : "no error recorded");
		pthread_mutex_lock(&m->slock);
		hf_strlcpy(m->pool_error, err, sizeof m->pool_error);
		pthread_mutex_unlock(&m->slock);
		*next_log = now + *log_gap;
		*log_gap = *log_gap * 2 > 300000 ? 300000 : *log_gap * 2;
	}
}

static const char *backend_name(const hf_mining *m)
{
	return m->cfg.backend == HF_MINING_OPENCL ? "opencl" : "cpu";
}

/* The run has failed beyond its restarts: the reason is kept for status and health, the work
 * withdrawn (threads sleep) until the mode machine releases the worker. */
static void fail_run(hf_mining *m, int code, const char *why)
{
	pthread_mutex_lock(&m->slock);
	hf_strlcpy(m->last_error, why, sizeof m->last_error);
	m->fail_code = code < 0 ? code : HF_EIO;
	pthread_mutex_unlock(&m->slock);
	if (!hf_mining_set_state(m, LIVE_STATES, HF_MST_FAILED))
		return;   /* draining already: the drain owns the state */
	publish(m, NULL);
	hf_log_err("mining: failed: %s", why);
}

/* Slot t's runner failed (t->error says why) at now: a restart after the backoff, or, with the
 * budget spent, the end of the run. Caller holds tlock. */
static void slot_failed(hf_mining *m, hf_mthread *t, uint64_t now)
{
	uint64_t at = 0;
	char why[sizeof m->last_error];

	if (hf_mining_retry_fail(&m->retry, now, &at)) {
		t->restart_at_ms = at;
		hf_log_warn("mining: hashing thread %u failed (%s); restarting it%s in %llu ms (failure "
			    "%u of %u allowed within %llu s)", t->idx, t->error,
			    t->cl ? " on a reopened OpenCL device" : "", (unsigned long long)(at - now),
			    hf_mining_retry_recent(&m->retry, now), m->cfg.restart_max,
			    (unsigned long long)(m->cfg.restart_window_ms / 1000));
		return;
	}
	snprintf(why, sizeof why, "%s backend failed %u times within %llu s (restart_max %u); "
		 "last: thread %u: %s", backend_name(m), hf_mining_retry_recent(&m->retry, now),
		 (unsigned long long)(m->cfg.restart_window_ms / 1000), m->cfg.restart_max, t->idx,
		 t->error);
	hf_utf8_trim(why);
	fail_run(m, t->error_code, why);
}

/* OpenCL: frees the slot's scanner and opens a new one (a device reset, as far as OpenCL
 * offers one). */
static int open_cl(hf_mining *m, hf_sha256d_cl **out, hf_errbuf *eb);
static int reopen_cl(hf_mining *m, hf_mthread *t, hf_errbuf *eb)
{
	stack_t alt;

	hf_mining_altstack_save(&alt);
	hf_sha256d_cl_free(t->cl);
	hf_mining_altstack_restore(&alt);
	t->cl = NULL;
	return open_cl(m, &t->cl, eb);
}

/* A pending restart of slot t is due. Caller holds tlock. */
static void restart_slot(hf_mining *m, hf_mthread *t)
{
	hf_errbuf eb;
	int r = 0;

	t->restart_at_ms = 0;
	hf_errbuf_clear(&eb);
	if (m->cfg.backend == HF_MINING_OPENCL)
		r = reopen_cl(m, t, &eb);
	atomic_store(&t->failed, false);
	atomic_store(&t->stalled, false);
	if (r == 0)
		r = hf_mining_runner_start(t, &eb);
	if (r < 0) {
		t->error_code = r;
		hf_strlcpy(t->error, eb.msg[0] ? eb.msg : hf_strerror(r), sizeof t->error);
		atomic_store(&t->failed, true);
		slot_failed(m, t, hf_mono_ms());
		return;
	}
	atomic_fetch_add(&t->restarts, 1);
	atomic_fetch_add(&m->restarts, 1);
	hf_log_notice("mining: hashing thread %u restarted (%s backend)", t->idx, backend_name(m));
}

/* Flags a runner without progress for stall_ms (and its recovery). A stalled CPU runner is
 * retired and a new one takes the slot's nonce range with a fresh extranonce2 (so the two
 * never hash the same header); the old one is joined when its scan returns. An OpenCL
 * runner is only reported: its launch holds the device, and a launch that fails goes
 * through the restart path. Caller holds tlock. */
static void watch_stall(hf_mining *m, hf_mthread *t, hf_mrunner *r, uint64_t now)
{
	uint64_t beat = atomic_load(&t->beat_ms);
	bool late = !atomic_load(&t->waiting) && beat && now > beat && now - beat > m->cfg.stall_ms;
	hf_errbuf eb;

	if (!late) {
		if (atomic_exchange(&t->stalled, false))
			hf_log_notice("mining: hashing thread %u is making progress again", t->idx);
		return;
	}
	if (atomic_exchange(&t->stalled, true))
		return;
	atomic_fetch_add(&m->stalls, 1);
	hf_log_warn("mining: hashing thread %u stalled (no progress for %llu ms)", t->idx,
		    (unsigned long long)(now - beat));
	if (t->cl || t->zombie)
		return;
	atomic_store(&r->retired, true);
	atomic_store(&t->replaced_running, true);
	t->zombie = r;
	t->run = NULL;
	hf_errbuf_clear(&eb);
	if (hf_mining_runner_start(t, &eb) < 0) {
		t->error_code = HF_ENOMEM;
		hf_strlcpy(t->error, eb.msg, sizeof t->error);
		atomic_store(&t->failed, true);
		slot_failed(m, t, now);
		return;
	}
	atomic_fetch_add(&t->restarts, 1);
	atomic_fetch_add(&m->restarts, 1);
	hf_log_notice("mining: hashing thread %u: a new thread took over its nonce range (fresh "
		      "extranonce2); the stalled one is joined when its scan returns", t->idx);
}

/* One slot's runners. Caller holds tlock. */
static void watch_slot(hf_mining *m, hf_mthread *t, bool failed_run, uint64_t now)
{
	hf_mrunner *r = t->run;

	if (t->zombie && atomic_load(&t->zombie->exited)) {
		hf_mining_runner_join(t->zombie);
		t->zombie = NULL;
		atomic_store(&t->replaced_running, false);
		hf_log_notice("mining: hashing thread %u: the stalled thread returned and was joined",
			      t->idx);
	}
	if (r && atomic_load(&r->exited)) {   /* a failed scan (or the stop flag, just set) */
		hf_mining_runner_join(r);
		t->run = r = NULL;
		if (!failed_run && atomic_load(&t->failed) && !atomic_load(&m->stop_hash))
			slot_failed(m, t, now);
	}
	if (failed_run)
		return;
	if (!r && t->restart_at_ms && now >= t->restart_at_ms)
		restart_slot(m, t);
	else if (r)
		watch_stall(m, t, r, now);
}

static void watch_threads(hf_mining *m, uint64_t now)
{
	pthread_mutex_lock(&m->tlock);
	if (!atomic_load(&m->stop_hash)) {
		for (unsigned i = 0; i < m->nth; i++)
			watch_slot(m, &m->th[i], atomic_load(&m->state) == HF_MST_FAILED, now);
	}
	pthread_mutex_unlock(&m->tlock);
}

static void *sup_main(void *arg)
{
	hf_mining *m = arg;
	uint64_t seq = 0, now = hf_mono_ms(), next_sample = now + 1000, next_log = 0, gap = 0;
	uint64_t next_line = now + m->cfg.status_interval_s * 1000;

	while (!atomic_load(&m->stop_sup)) {
		int st = atomic_load(&m->state);
		if (st == HF_MST_NO_POOL || st == HF_MST_FAILED)
			hf_sleep_ms(SUP_TICK_MS);   /* stale work must not wake us: poll the pools */
		else if (hf_stratum_drv_wait_work(m->drv, seq, SUP_TICK_MS))
			fetch_publish(m, &seq);
		now = hf_mono_ms();
		watch_pool(m, now, &seq, &next_log, &gap);
		watch_threads(m, now);
		hf_mining_power_tick(m, now);
		if (now >= next_sample) {
			hf_mining_sample(m, now);
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

static int open_cl(hf_mining *m, hf_sha256d_cl **out, hf_errbuf *eb)
{
	char cache[PATH_MAX];
	stack_t alt;
	int r;

	snprintf(cache, sizeof cache, "%s/cl-cache", m->state_dir);
	hf_sha256d_cl_opts o = { .device = m->cfg.device[0] ? m->cfg.device : NULL,
				 .cache_dir = m->cfg.cache_dir[0] ? m->cfg.cache_dir : cache,
				 .batch = m->cfg.batch };
	hf_mining_altstack_save(&alt);
	r = hf_sha256d_cl_new(&o, out, eb);
	hf_mining_altstack_restore(&alt);
	return r < 0 ? hf_fail_prefix(eb, r, "mining.opencl") : 0;
}

/* Backend: the CPU scanner choice, or the OpenCL device (opened here so a bad device fails the
 * start and the node falls back to idle). */
static int open_backend(hf_mining *m, hf_errbuf *eb)
{
	int cpus[HF_MINING_MAX_THREADS];
	unsigned ncpu = cpus_allowed(cpus, HF_MINING_MAX_THREADS), n = 1;
	char device[256] = "";
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
		if ((r = open_cl(m, &th[0].cl, eb)) < 0) {
			free(th);
			return r;
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
	o.connect_timeout_ms = m->cfg.connect_timeout_ms;
	o.write_timeout_ms = m->cfg.write_timeout_ms;
	o.version_mask = m->cfg.version_rolling ? VERSION_MASK_ASK : 0;
	o.suggest_difficulty = m->cfg.suggest_difficulty;
	o.on_result = hf_mining_on_result;
	o.on_dropped = hf_mining_on_dropped;
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
	int r = 0;

	if (pthread_create(&m->sub, NULL, hf_mining_submit_main, m) != 0)
		return hf_fail(eb, HF_ENOMEM, "cannot start the submit thread");
	m->sub_started = true;
	pthread_mutex_lock(&m->tlock);
	for (unsigned i = 0; i < m->nth && r == 0; i++)
		r = hf_mining_runner_start(&m->th[i], eb);
	pthread_mutex_unlock(&m->tlock);
	if (r < 0)
		return r;
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
	if ((r = hf_mining_testhook_from_env(&m->hook, eb)) < 0)
		return r;
	if (m->hook.active)
		hf_log_warn("mining: TEST HOOK active (%s=%s, %s=%s): scans will fail or hang on purpose",
			    HF_MINING_TESTHOOK_FAIL_ENV, getenv(HF_MINING_TESTHOOK_FAIL_ENV) ?
			    getenv(HF_MINING_TESTHOOK_FAIL_ENV) : "", HF_MINING_TESTHOOK_STALL_ENV,
			    getenv(HF_MINING_TESTHOOK_STALL_ENV) ? getenv(HF_MINING_TESTHOOK_STALL_ENV) : "");
	hf_mining_retry_init(&m->retry, m->cfg.restart_max, m->cfg.restart_window_ms,
			     m->cfg.restart_backoff_ms);
	atomic_store(&m->stop_hash, false);
	atomic_store(&m->stop_sup, false);
	m->qstop = false;
	m->run_start_ms = hf_mono_ms();
	pthread_mutex_lock(&m->slock);
	m->runs++;
	m->last_error[0] = m->pool_error[0] = '\0';
	m->fail_code = 0;
	m->active_pool = -1;
	m->active_since_ms = m->no_pool_since_ms = 0;
	m->first_work_ms = m->first_accepted_ms = 0;
	m->last_drain.done = false;
	m->cpu_s_total = m->hashes_at_cpu = 0;
	m->proc_cpu_ns0 = 0;
	pthread_mutex_unlock(&m->slock);
	hf_mining_set_state(m, ~0u, HF_MST_CONNECTING);
	if ((r = open_backend(m, eb)) < 0 || (r = hf_mining_power_start(m, eb)) < 0 ||
	    (r = open_driver(m, eb)) < 0 || (r = start_threads(m, eb)) < 0) {
		pthread_mutex_lock(&m->slock);
		hf_strlcpy(m->last_error, eb && eb->msg[0] ? eb->msg : hf_strerror(r),
			   sizeof m->last_error);
		m->fail_code = r;
		pthread_mutex_unlock(&m->slock);
		hf_mining_set_state(m, ~0u, HF_MST_FAILED);
		return r;
	}
	hf_log_notice("mining: started on %s with %u hashing thread(s); pool 1 of %zu: %s as %s",
		      m->device, m->nth, m->cfg.npools, m->cfg.pools[0].url, m->cfg.pools[0].user);
	return 0;
}

/* Waits until no share is in flight (every one answered or dropped: the ledger wakes us on
 * each), the deadline passes, or no pool is in session (nothing can be answered then; what is
 * left is dropped as drained when the driver stops). Returns the shares still in flight. */
static uint64_t wait_results(hf_mining *m, uint64_t deadline)
{
	for (;;) {
		uint64_t now = hf_mono_ms();
		uint64_t n = hf_share_ledger_wait_in_flight(m->ledger, now + SUP_TICK_MS < deadline
							    ? now + SUP_TICK_MS : deadline);
		if (n == 0 || hf_mono_ms() >= deadline || hf_stratum_drv_active_pool(m->drv) < 0)
			return n;
	}
}

/* Stops and joins every runner, retired ones included (a runner blocked in a scan is waited
 * for: a thread cannot be taken out of a kernel). */
static void stop_hashing(hf_mining *m)
{
	atomic_store(&m->stop_hash, true);
	pthread_mutex_lock(&m->wlock);
	pthread_cond_broadcast(&m->wcond);
	pthread_mutex_unlock(&m->wlock);
	pthread_mutex_lock(&m->tlock);
	for (unsigned i = 0; i < m->nth; i++) {
		hf_mining_runner_join(m->th[i].run);
		hf_mining_runner_join(m->th[i].zombie);
		m->th[i].run = m->th[i].zombie = NULL;
		atomic_store(&m->th[i].replaced_running, false);
		m->th[i].restart_at_ms = 0;
	}
	pthread_mutex_unlock(&m->tlock);
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

	hf_mining_set_state(m, LIVE_STATES, HF_MST_DRAINING);   /* a failed run stays failed */
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
	hf_log_notice("mining: drained in %llu ms (hashing stopped in %llu ms, flush %llu ms, close "
		      "%llu ms, %llu queued share(s) flushed, %llu unanswered)",
		      (unsigned long long)d.total_ms, (unsigned long long)d.hash_stop_ms,
		      (unsigned long long)d.flush_ms, (unsigned long long)d.close_ms,
		      (unsigned long long)d.flushed, (unsigned long long)d.unanswered);
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
	hf_mining_power_release(m);
	pthread_mutex_lock(&m->life);
	drv = m->drv;
	th = m->th;
	nth = m->nth;
	for (unsigned i = 0; i < nth; i++)
		m->hashes_done += atomic_load(&th[i].hashes);
	m->drv = NULL;
	m->th = NULL;
	m->nth = 0;
	pthread_mutex_unlock(&m->life);
	hf_stratum_drv_free(drv);   /* reports what it still held as dropped (drained) */
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
		hf_share_ledger_drop(m->ledger, HF_SHARE_QUEUED, HF_SHARE_DROP_DRAINED);
	}
	pthread_mutex_unlock(&m->qlock);
	uint64_t lost = hf_share_ledger_abandon(m->ledger, HF_SHARE_DROP_DRAINED);
	if (lost)
		hf_log_warn("mining: %llu share(s) without an outcome at release (counted as drained)",
			    (unsigned long long)lost);
	hf_mining_set_state(m, LIVE_STATES | HF_MST_BIT(HF_MST_DRAINING), HF_MST_STOPPED);
}

/* Called by the mode machine while the mode runs: the run's failure once restarts are spent. */
static int mining_health(void *impl, hf_errbuf *eb)
{
	hf_mining *m = impl;
	char why[sizeof m->last_error];
	int code;

	if (atomic_load(&m->state) != HF_MST_FAILED)
		return 0;
	pthread_mutex_lock(&m->slock);
	hf_strlcpy(why, m->last_error[0] ? m->last_error : "mining failed", sizeof why);
	code = m->fail_code < 0 ? m->fail_code : HF_EIO;
	pthread_mutex_unlock(&m->slock);
	return hf_fail(eb, code, "%s", why);
}

int hf_mining_new(const json_t *section, const char *state_dir, hf_power *power, hf_mining **out,
		  hf_errbuf *eb)
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
	if ((r = hf_share_ledger_new(&m->ledger, eb)) < 0) {
		free(m);
		return r;
	}
	pthread_mutex_init(&m->life, NULL);
	pthread_mutex_init(&m->tlock, NULL);
	pthread_mutex_init(&m->wlock, NULL);
	pthread_cond_init(&m->wcond, NULL);
	pthread_mutex_init(&m->qlock, NULL);
	pthread_cond_init(&m->qcond, NULL);
	pthread_mutex_init(&m->slock, NULL);
	hf_mining_rate_init(&m->total_rate);
	m->active_pool = -1;
	m->power = power;
	atomic_store(&m->act_threads, HF_MINING_MAX_THREADS);
	atomic_store(&m->act_duty_ppm, 1000000u);
	atomic_store(&m->en2_next, (uint64_t)hf_wall_ms() << 8);
	*out = m;
	return 0;
}

/* Hashes over the worker's life: released runs plus the live threads' counters (exact, not
 * the supervisor's once-a-second sample). */
static void mining_counters(void *impl, hf_work_counters *out)
{
	hf_mining *m = impl;
	uint64_t h;

	pthread_mutex_lock(&m->life);
	h = m->hashes_done;
	for (unsigned i = 0; i < m->nth; i++)
		h += atomic_load(&m->th[i].hashes);
	pthread_mutex_unlock(&m->life);
	*out = (hf_work_counters){ .hashes = h };
}

void hf_mining_worker(hf_mining *m, hf_mode_worker *w)
{
	*w = (hf_mode_worker){ .mode = HF_MODE_MINING, .impl = m, .start = mining_start,
			       .drain = mining_drain, .release = mining_release,
			       .status = hf_mining_status, .metrics = hf_mining_metrics,
			       .health = mining_health, .counters = mining_counters };
}

void hf_mining_free(hf_mining *m)
{
	if (!m)
		return;
	mining_release(m);
	pthread_mutex_destroy(&m->life);
	pthread_mutex_destroy(&m->tlock);
	pthread_mutex_destroy(&m->wlock);
	pthread_cond_destroy(&m->wcond);
	pthread_mutex_destroy(&m->qlock);
	pthread_cond_destroy(&m->qcond);
	pthread_mutex_destroy(&m->slock);
	hf_share_ledger_free(m->ledger);
	hf_power_target_free(m->pt);
	free(m);
}
