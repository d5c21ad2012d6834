/* hf_mining_hash: the hashing runners (one nonce range per slot, extranonce2 and version
 * rolling, adaptive scan chunks so a job switch is seen within a few ms) and the submit thread
 * that takes found nonces through the driver's local check to the pool; every share's stage
 * goes to the ledger.
 * Invariants: a runner never blocks on the network or the submit thread (a full queue drops
 * the share and counts it); with no work it sleeps on wcond, never spins; it checks the
 * published generation, the stop flag and its own retirement between chunks of about 2 ms, and
 * the power target's actuators there too (a slot past the active thread count parks on wcond;
 * under a duty cycle a runner rests on wcond for the rest of each 100 ms period). A
 * failed scan ends the runner (failed set, the reason in the slot) for the supervisor to act
 * on; a retired runner leaves after its scan without touching the slot's progress fields.
 * Threading: hash_main runs once per runner, hf_mining_submit_main once per run,
 * hf_mining_on_result and hf_mining_on_dropped on the driver thread.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_mining_priv.h"
#include "hf_mining_work.h"
#include "hf_stratum_target.h"
#include "hf_text.h"
#include "hf_util.h"

#define CHUNK_TARGET_US 2000
#define CHUNK_TARGET_CL_US 10000
#define CHUNK_MIN 4096
#define CHUNK_MAX (UINT64_C(1) << 24)

void hf_mining_work_unref(hf_mwork *w)
{
	if (w && atomic_fetch_sub(&w->refs, 1) == 1) {
		hf_stratum_work_clear(&w->w);
		free(w);
	}
}

static uint64_t thread_cpu_ns(void)
{
	return hf_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* A thread saw generation g (published at pub_us): the switch completes when all have. */
static void note_switch(hf_mining *m, uint64_t g, uint64_t pub_us)
{
	uint64_t lat = hf_mono_us() - pub_us;

	if (g != m->sw_gen || m->sw_seen >= m->sw_expect)
		return;
	if (lat > m->sw_max_us)
		m->sw_max_us = lat;
	if (++m->sw_seen < m->sw_expect)
		return;
	pthread_mutex_lock(&m->slock);
	m->job_switches++;
	m->sw_last_us = m->sw_max_us;
	m->sw_sum_us += m->sw_max_us;
	if (m->sw_max_us > m->sw_maxall_us)
		m->sw_maxall_us = m->sw_max_us;
	pthread_mutex_unlock(&m->slock);
}

/* Takes the published work (a new reference) if the generation moved; waits when none. */
static hf_mwork *refresh(hf_mthread *t, hf_mwork *w, uint64_t *my_gen)
{
	hf_mining *m = t->m;

	pthread_mutex_lock(&m->wlock);
	while (atomic_load(&m->gen) == *my_gen && !atomic_load(&m->stop_hash)) {
		struct timespec ts;
		atomic_store(&t->waiting, true);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&m->wcond, &m->wlock, &ts);
		atomic_store(&t->beat_ms, hf_mono_ms());
	}
	atomic_store(&t->waiting, false);
	if (atomic_load(&m->gen) != *my_gen) {
		hf_mining_work_unref(w);
		w = m->cur;
		if (w)
			atomic_fetch_add(&w->refs, 1);
		*my_gen = atomic_load(&m->gen);
		if (w)
			note_switch(m, *my_gen, m->gen_pub_us);
	}
	pthread_mutex_unlock(&m->wlock);
	return w;
}

/* The power target's duty clock of one runner: the hashing time in the current period. */
typedef struct duty_clock {
	uint64_t period_end_us;   /* 0: no period running */
	uint64_t busy_us;
} duty_clock;

/* Sleeps on wcond until the slot is active again (until_us == 0) or until_us passes or the duty
 * changes, and always when new work is published, hashing stops or the runner is retired. */
static void rest(hf_mrunner *r, uint64_t my_gen, uint64_t until_us)
{
	hf_mthread *t = r->t;
	hf_mining *m = t->m;
	unsigned ppm0 = atomic_load(&m->act_duty_ppm);

	pthread_mutex_lock(&m->wlock);
	atomic_store(&t->waiting, true);
	while (!atomic_load(&m->stop_hash) && !atomic_load(&r->retired) &&
	       atomic_load(&m->gen) == my_gen) {
		uint64_t now = hf_mono_us(), wait_us = 1000000;
		struct timespec ts;
		if (until_us) {
			if (now >= until_us || atomic_load(&m->act_duty_ppm) != ppm0)
				break;
			if (until_us - now < wait_us)
				wait_us = until_us - now;
		} else if (t->idx < atomic_load(&m->act_threads)) {
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(wait_us / 1000000);
		ts.tv_nsec += (long)(wait_us % 1000000) * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&m->wcond, &m->wlock, &ts);
		atomic_store(&t->beat_ms, hf_mono_ms());
	}
	atomic_store(&t->waiting, false);
	pthread_mutex_unlock(&m->wlock);
}

/* The power target's gate before each chunk: a slot at or past the active thread count parks;
 * with a duty under 1, a runner that hashed its share of the period rests until the period
 * ends (an overshoot by a long chunk is carried into the next period, so the mean duty holds
 * whatever the chunk length). True when the runner may hash now. */
static bool duty_gate(hf_mrunner *r, uint64_t my_gen, duty_clock *dc)
{
	hf_mthread *t = r->t;
	hf_mining *m = t->m;
	unsigned ppm;
	uint64_t now, allow;

	if (t->idx >= atomic_load(&m->act_threads)) {
		rest(r, my_gen, 0);
		dc->period_end_us = 0;
		return false;
	}
	ppm = atomic_load(&m->act_duty_ppm);
	if (ppm >= 1000000u) {
		dc->period_end_us = 0;
		return true;
	}
	now = hf_mono_us();
	allow = (uint64_t)ppm * HF_MINING_DUTY_PERIOD_US / 1000000u;
	if (now >= dc->period_end_us) {
		bool contiguous = dc->period_end_us && now < dc->period_end_us + HF_MINING_DUTY_PERIOD_US;
		uint64_t carry = contiguous && dc->busy_us > allow ? dc->busy_us - allow : 0;
		dc->busy_us = carry > HF_MINING_DUTY_PERIOD_US ? HF_MINING_DUTY_PERIOD_US : carry;
		dc->period_end_us = now + HF_MINING_DUTY_PERIOD_US;
	}
	if (dc->busy_us < allow)
		return true;
	rest(r, my_gen, dc->period_end_us);
	return false;
}

/* One found share (already counted as queued by the ledger) into the submit queue. */
static void enqueue(hf_mining *m, hf_mwork *w, const hf_stratum_share *sh)
{
	pthread_mutex_lock(&m->qlock);
	if (m->qlen == HF_MINING_QCAP || m->qstop) {
		bool stopped = m->qstop;
		pthread_mutex_unlock(&m->qlock);
		hf_share_ledger_drop(m->ledger, HF_SHARE_QUEUED,
				     stopped ? HF_SHARE_DROP_DRAINED : HF_SHARE_DROP_QUEUE_FULL);
		return;
	}
	atomic_fetch_add(&w->refs, 1);
	m->q[(m->qhead + m->qlen) % HF_MINING_QCAP] = (hf_mqueued){ .w = w, .sh = *sh };
	m->qlen++;
	pthread_cond_signal(&m->qcond);
	pthread_mutex_unlock(&m->qlock);
}

typedef struct slot {
	bool valid, have_en2;
	uint8_t en2[8];
	uint32_t vidx, version;
	uint64_t pos;
	hf_sha256d_job job;
} slot;

/* Moves to the next (extranonce2, version) of w. */
static int next_slot(hf_mthread *t, hf_mwork *w, slot *s)
{
	hf_mining *m = t->m;
	hf_errbuf eb;
	bool en2_roll = !s->have_en2 || s->vidx + 1 >= w->vcount;
	int r;

	if (en2_roll) {
		hf_mining_en2_encode(atomic_fetch_add(&m->en2_next, 1), w->w.en2_size, s->en2);
		s->have_en2 = true;
		s->vidx = 0;
	} else {
		s->vidx++;
	}
	s->version = hf_stratum_version_roll(w->w.job.version, w->w.version_mask,
					     hf_mining_version_bits(w->w.version_mask, s->vidx));
	r = hf_mining_slot_job(&w->w, s->en2, s->version, &s->job, &eb);
	if (r < 0)
		return r;
	s->pos = 0;
	s->valid = true;
	atomic_fetch_add(en2_roll ? &m->en2_rolls : &m->version_rolls, 1);
	return 0;
}

void hf_mining_altstack_save(stack_t *saved)
{
	if (sigaltstack(NULL, saved) != 0)
		saved->ss_flags = SS_DISABLE;
}

void hf_mining_altstack_restore(const stack_t *saved)
{
	stack_t now;

	if (sigaltstack(NULL, &now) == 0 && now.ss_sp != saved->ss_sp && !(saved->ss_flags & SS_ONSTACK)) {
		stack_t s = *saved;
		s.ss_flags &= SS_DISABLE;
		(void)sigaltstack(&s, NULL);
	}
}

static int scan(hf_mthread *t, const slot *s, uint64_t n, uint32_t *hits, hf_sha256d_result *res,
		hf_errbuf *eb)
{
	uint32_t start = t->start + (uint32_t)s->pos;
	stack_t alt;
	int r;

	if (t->m->hook.active && (r = hf_mining_testhook_scan(&t->m->hook, eb)) < 0)
		return r;
	if (!t->cl) {
		r = t->m->impl->scan(&s->job, start, n, hits, HF_MINING_HITS, res);
		return r < 0 ? hf_fail(eb, r, "%s scanner: %s", t->m->impl->name, hf_strerror(r)) : 0;
	}
	hf_mining_altstack_save(&alt);
	r = hf_sha256d_cl_scan(t->cl, &s->job, start, n, hits, HF_MINING_HITS, res, eb);
	hf_mining_altstack_restore(&alt);
	return r;
}

static void report_hits(hf_mthread *t, hf_mwork *w, const slot *s, const uint32_t *hits, size_t n)
{
	hf_stratum_share sh;

	memset(&sh, 0, sizeof sh);
	hf_strlcpy(sh.job_id, w->w.job.id, sizeof sh.job_id);
	memcpy(sh.en2, s->en2, w->w.en2_size);
	sh.en2_len = w->w.en2_size;
	sh.ntime = w->w.job.ntime;
	sh.version = s->version;
	hf_share_ledger_found(t->m->ledger, n);
	for (size_t i = 0; i < n; i++) {
		sh.nonce = hits[i];
		enqueue(t->m, w, &sh);
	}
}

/* One scan chunk of the current slot; false when the runner must stop (device failure). */
static bool hash_chunk(hf_mrunner *r, hf_mwork *w, slot *s)
{
	hf_mthread *t = r->t;
	uint32_t hits[HF_MINING_HITS];
	hf_sha256d_result res = { 0, 0 };
	uint64_t n = atomic_load(&t->chunk), t0 = hf_mono_us(), dt;
	hf_errbuf eb;

	if (n > t->count - s->pos)
		n = t->count - s->pos;
	hf_errbuf_clear(&eb);
	int rc = scan(t, s, n, hits, &res, &eb);
	if (rc < 0) {
		hf_log_err("mining: thread %u: scan failed: %s", t->idx, eb.msg);
		t->error_code = rc;
		hf_strlcpy(t->error, eb.msg[0] ? eb.msg : hf_strerror(rc), sizeof t->error);
		atomic_store(&t->failed, true);
		return false;
	}
	dt = hf_mono_us() - t0;
	s->pos += res.scanned;
	atomic_fetch_add(&t->hashes, res.scanned);
	if (res.n_hits)
		report_hits(t, w, s, hits, res.n_hits);
	if (s->pos >= t->count)
		s->valid = false;
	if (dt > 0 && res.scanned == n && !atomic_load(&r->retired))   /* OpenCL: whole launches of at least one batch */
		atomic_store(&t->chunk, hf_mining_chunk((double)n * 1e6 / (double)dt,
							t->cl ? CHUNK_TARGET_CL_US : CHUNK_TARGET_US,
							t->cl ? t->min_chunk : CHUNK_MIN, CHUNK_MAX));
	return true;
}

static void *hash_main(void *arg)
{
	hf_mrunner *r = arg;
	hf_mthread *t = r->t;
	hf_mining *m = t->m;
	hf_mwork *w = NULL;
	uint64_t my_gen = 0, c0;
	duty_clock dc = { 0, 0 };
	slot s = { 0 };

	/* Below the driver, supervisor and API threads, so a notify is read (and a job switch
	 * published) at once even with every core hashing. */
	if (m->cfg.nice && setpriority(PRIO_PROCESS, (id_t)gettid(), (int)m->cfg.nice) != 0)
		hf_log_debug("mining: thread %u: cannot lower its priority", t->idx);

	while (!atomic_load(&m->stop_hash) && !atomic_load(&r->retired)) {
		if (atomic_load(&m->gen) != my_gen || !w) {
			hf_mwork *nw = refresh(t, w, &my_gen);
			if (nw != w)
				s = (slot){ 0 };
			w = nw;
			continue;
		}
		if (!duty_gate(r, my_gen, &dc))
			continue;   /* parked or rested: the work, stop flag and actuators again */
		if (!s.valid && next_slot(t, w, &s) < 0) {
			hf_log_err("mining: thread %u: job %s unusable; waiting for the next", t->idx,
				   w->w.job.id);
			hf_mining_work_unref(w);
			w = NULL;
			continue;
		}
		c0 = hf_mono_us();
		if (!hash_chunk(r, w, &s) || atomic_load(&r->retired))
			break;
		dc.busy_us += hf_mono_us() - c0;
		atomic_store(&t->beat_ms, hf_mono_ms());
		atomic_store(&t->cpu_ns, r->cpu_base_ns + thread_cpu_ns());
	}
	if (!atomic_load(&r->retired))
		atomic_store(&t->cpu_ns, r->cpu_base_ns + thread_cpu_ns());
	hf_mining_work_unref(w);
	atomic_store(&r->exited, true);
	return NULL;
}

int hf_mining_runner_start(hf_mthread *t, hf_errbuf *eb)
{
	hf_mrunner *r = calloc(1, sizeof *r);

	if (!r)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	r->t = t;
	r->cpu_base_ns = atomic_load(&t->cpu_ns);
	atomic_store(&t->beat_ms, hf_mono_ms());
	if (pthread_create(&r->th, NULL, hash_main, r) != 0) {
		free(r);
		return hf_fail(eb, HF_ENOMEM, "cannot start hashing thread %u", t->idx);
	}
	if (t->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(t->cpu, &set);
		if (pthread_setaffinity_np(r->th, sizeof set, &set) != 0)
			hf_log_warn("mining: cannot pin thread %u to CPU %d", t->idx, t->cpu);
	}
	t->run = r;
	return 0;
}

void hf_mining_runner_join(hf_mrunner *r)
{
	if (!r)
		return;
	pthread_join(r->th, NULL);
	free(r);
}

/* Local check and hand-over of one share; counts the outcome. */
static void submit_one(hf_mining *m, hf_mqueued *it)
{
	uint8_t hash[32];
	double d = 0;
	int r;

	if (hf_stratum_job_share_hash(&it->w->w.job, it->w->w.en1, it->w->w.en1_len, &it->sh, NULL,
				      hash) == 0)
		d = hf_stratum_hash_difficulty(hash);
	bool known_stale = atomic_load(&it->w->replaced);
	/* In flight before the hand-over: the driver may answer or drop it before submit returns. */
	hf_share_ledger_sending(m->ledger);
	r = hf_stratum_drv_submit(m->drv, &it->w->w, &it->sh);
	if (r == 0)   /* known_stale must stay 0: the driver drops what the node knows is stale */
		hf_share_ledger_sent(m->ledger, known_stale, d);
	else
		hf_share_ledger_drop(m->ledger, HF_SHARE_IN_FLIGHT,
				     r == HF_ESTATE ? HF_SHARE_DROP_STALE
				     : r == HF_ERANGE ? HF_SHARE_DROP_HW_ERROR : HF_SHARE_DROP_SUBMIT_FAILED);
	if (r == HF_ERANGE)
		hf_log_warn("mining: hardware error: job %s nonce %08x does not meet the share target",
			    it->w->w.job.id, it->sh.nonce);
	else if (r < 0 && r != HF_ESTATE)
		hf_log_warn("mining: share of job %s not handed to the pool: %s", it->w->w.job.id,
			    hf_strerror(r));
}

void *hf_mining_submit_main(void *arg)
{
	hf_mining *m = arg;

	pthread_mutex_lock(&m->qlock);
	for (;;) {
		while (m->qlen == 0 && !m->qstop)
			pthread_cond_wait(&m->qcond, &m->qlock);
		if (m->qlen == 0)
			break;
		hf_mqueued it = m->q[m->qhead];
		m->qhead = (m->qhead + 1) % HF_MINING_QCAP;
		m->qlen--;
		pthread_mutex_unlock(&m->qlock);
		submit_one(m, &it);
		hf_mining_work_unref(it.w);
		pthread_mutex_lock(&m->qlock);
	}
	pthread_mutex_unlock(&m->qlock);
	return NULL;
}

/* Job ids come from the pool: cleaned before they reach a log line. */
static void clean_job_id(char *out, size_t outsz, const hf_stratum_share *share)
{
	hf_text_clean(out, outsz, share->job_id, sizeof share->job_id);
}

void hf_mining_on_result(void *ctx, int pool, const hf_stratum_share *share, bool accepted,
			 const char *reason, uint64_t latency_ms)
{
	hf_mining *m = ctx;
	char why[160], job[64];

	hf_share_ledger_answered(m->ledger, accepted, reason, latency_ms);
	if (accepted) {
		pthread_mutex_lock(&m->slock);
		if (!m->first_accepted_ms && m->run_start_ms)
			m->first_accepted_ms = hf_mono_ms() - m->run_start_ms + 1;
		pthread_mutex_unlock(&m->slock);
		return;
	}
	hf_text_clean(why, sizeof why, reason ? reason : "", reason ? strlen(reason) : 0);
	clean_job_id(job, sizeof job, share);
	hf_log_info("mining: share rejected by pool %d: %s (job %s)", pool + 1, why, job);
}

void hf_mining_on_dropped(void *ctx, int pool, const hf_stratum_share *share,
			  hf_stratum_drop why)
{
	hf_mining *m = ctx;
	hf_share_drop d;
	char job[64];

	switch (why) {
	case HF_STRATUM_DROP_STALE: d = HF_SHARE_DROP_STALE; break;
	case HF_STRATUM_DROP_SESSION_LOST: d = HF_SHARE_DROP_SESSION_LOST; break;
	case HF_STRATUM_DROP_EVICTED: d = HF_SHARE_DROP_QUEUE_FULL; break;
	case HF_STRATUM_DROP_STOPPED: d = HF_SHARE_DROP_DRAINED; break;
	default: d = HF_SHARE_DROP_SUBMIT_FAILED; break;
	}
	hf_share_ledger_drop(m->ledger, HF_SHARE_IN_FLIGHT, d);
	clean_job_id(job, sizeof job, share);
	hf_log_debug("mining: share of job %s (nonce %08x) dropped by the driver (pool %d): %s", job,
		     share->nonce, pool + 1, hf_share_drop_name(d));
}
