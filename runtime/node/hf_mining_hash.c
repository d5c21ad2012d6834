/* hf_mining_hash: the hashing threads (one nonce range each, extranonce2 and version rolling,
 * adaptive scan chunks so a job switch is seen within a few ms) and the submit thread that
 * takes found nonces through the driver's local check to the pool.
 * Invariants: a hashing thread never blocks on the network or the submit thread (a full queue
 * drops the share and counts it); with no work it sleeps on wcond, never spins; it checks the
 * published generation and the stop flag between chunks of about 2 ms.
 * Threading: hf_mining_hash_main runs once per hashing thread, hf_mining_submit_main once per
 * run, hf_mining_on_result on the driver thread.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_mining_priv.h"
#include "hf_mining_work.h"
#include "hf_stratum_target.h"
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

static void enqueue(hf_mining *m, hf_mwork *w, const hf_stratum_share *sh)
{
	pthread_mutex_lock(&m->qlock);
	if (m->qlen == HF_MINING_QCAP || m->qstop) {
		pthread_mutex_unlock(&m->qlock);
		pthread_mutex_lock(&m->slock);
		m->queue_drops++;
		pthread_mutex_unlock(&m->slock);
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
	pthread_mutex_lock(&m->slock);
	if (en2_roll)
		m->en2_rolls++;
	else
		m->version_rolls++;
	pthread_mutex_unlock(&m->slock);
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

	if (!t->cl)
		return t->m->impl->scan(&s->job, start, n, hits, HF_MINING_HITS, res);
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
	pthread_mutex_lock(&t->m->slock);
	t->m->found += n;
	pthread_mutex_unlock(&t->m->slock);
	for (size_t i = 0; i < n; i++) {
		sh.nonce = hits[i];
		enqueue(t->m, w, &sh);
	}
}

/* One scan chunk of the current slot; false when the thread must stop (device failure). */
static bool hash_chunk(hf_mthread *t, hf_mwork *w, slot *s)
{
	uint32_t hits[HF_MINING_HITS];
	hf_sha256d_result res = { 0, 0 };
	uint64_t n = atomic_load(&t->chunk), t0 = hf_mono_us(), dt;
	hf_errbuf eb;

	if (n > t->count - s->pos)
		n = t->count - s->pos;
	hf_errbuf_clear(&eb);
	if (scan(t, s, n, hits, &res, &eb) < 0) {
		hf_log_err("mining: thread %u: scan failed: %s", t->idx, eb.msg);
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
	if (dt > 0 && res.scanned == n)   /* OpenCL: whole launches of at least one batch */
		atomic_store(&t->chunk, hf_mining_chunk((double)n * 1e6 / (double)dt,
							t->cl ? CHUNK_TARGET_CL_US : CHUNK_TARGET_US,
							t->cl ? t->min_chunk : CHUNK_MIN, CHUNK_MAX));
	return true;
}

void *hf_mining_hash_main(void *arg)
{
	hf_mthread *t = arg;
	hf_mining *m = t->m;
	hf_mwork *w = NULL;
	uint64_t my_gen = 0;
	slot s = { 0 };

	/* Below the driver, supervisor and API threads, so a notify is read (and a job switch
	 * published) at once even with every core hashing. */
	if (m->cfg.nice && setpriority(PRIO_PROCESS, (id_t)gettid(), (int)m->cfg.nice) != 0)
		hf_log_debug("mining: thread %u: cannot lower its priority", t->idx);

	while (!atomic_load(&m->stop_hash)) {
		if (atomic_load(&m->gen) != my_gen || !w) {
			hf_mwork *nw = refresh(t, w, &my_gen);
			if (nw != w)
				s = (slot){ 0 };
			w = nw;
			continue;
		}
		if (!s.valid && next_slot(t, w, &s) < 0) {
			hf_log_err("mining: thread %u: job %s unusable; waiting for the next", t->idx,
				   w->w.job.id);
			hf_mining_work_unref(w);
			w = NULL;
			continue;
		}
		if (!hash_chunk(t, w, &s))
			break;
		atomic_store(&t->beat_ms, hf_mono_ms());
		atomic_store(&t->cpu_ns, thread_cpu_ns());
	}
	atomic_store(&t->cpu_ns, thread_cpu_ns());
	hf_mining_work_unref(w);
	return NULL;
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
	r = hf_stratum_drv_submit(m->drv, &it->w->w, &it->sh);
	pthread_mutex_lock(&m->slock);
	if (r == 0) {
		m->submitted++;
		if (known_stale)   /* must stay 0: the driver drops what the node knows is stale */
			m->known_stale_sent++;
		if (d > m->best_diff)
			m->best_diff = d;
	} else if (r == HF_ESTATE) {
		m->stale++;
	} else {
		m->hw_errors++;
	}
	pthread_mutex_unlock(&m->slock);
	if (r == HF_ERANGE)
		hf_log_warn("mining: hardware error: job %s nonce %08x does not meet the share target",
			    it->sh.job_id, it->sh.nonce);
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

void hf_mining_on_result(void *ctx, int pool, const hf_stratum_share *share, bool accepted,
			 const char *reason, uint64_t latency_ms)
{
	hf_mining *m = ctx;
	size_t i;

	pthread_mutex_lock(&m->slock);
	m->lat_count++;
	m->lat_sum_ms += latency_ms;
	m->lat_last_ms = latency_ms;
	if (latency_ms > m->lat_max_ms)
		m->lat_max_ms = latency_ms;
	if (accepted) {
		m->accepted++;
		if (!m->first_accepted_ms && m->run_start_ms)
			m->first_accepted_ms = hf_mono_ms() - m->run_start_ms + 1;
	} else {
		m->rejected++;
		for (i = 0; i < m->nrejects; i++)
			if (strcmp(m->rejects[i].reason, reason) == 0)
				break;
		if (i == m->nrejects && m->nrejects < HF_ARRAY_SIZE(m->rejects)) {
			hf_strlcpy(m->rejects[i].reason, reason[0] ? reason : "unknown",
				   sizeof m->rejects[i].reason);
			m->nrejects++;
		}
		if (i == HF_ARRAY_SIZE(m->rejects))
			i--;
		m->rejects[i].count++;
	}
	pthread_mutex_unlock(&m->slock);
	if (!accepted)
		hf_log_info("mining: share rejected by pool %d: %s (job %s)", pool + 1, reason,
			    share->job_id);
}
