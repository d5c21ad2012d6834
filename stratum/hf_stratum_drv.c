/* hf_stratum_drv: Stratum v1 driver thread: connections, handshakes, timers, failover and
 * failback, resumption, share queueing with stale and hardware-error checks, per-pool stats.
 *
 * Failure: a pool that fails is recorded (stats.last_error) and backed off; the driver never
 * exits on a pool's behaviour, only on hf_stratum_drv_stop().
 * Deadlines: the driver thread only waits in poll() on the pool socket and its wake pipe, or
 * inside hf_stratum_conn calls that end at their deadline or as soon as stopfd is readable
 * (connect, name lookup included, and writes), so hf_stratum_drv_stop() returns promptly
 * whatever the pool does (not answering DNS, never reading).
 * Outside text: everything a pool (or a name server) says that ends up in stats or in the
 * on_result reason goes through hf_text_clean() first (control characters, invalid UTF-8).
 * Threading: the driver thread owns the connection and the protocol cores; everything the
 * other threads read or write (work, queue, stats) is under d->mu.
 */
#include "hf_stratum_drv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_stratum.h"
#include "hf_stratum_conn.h"
#include "hf_stratum_target.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

#define MAX_VALID_JOBS 16
#define MAX_QUEUE 1024
#define MAX_INFLIGHT 256
#define WRITE_TIMEOUT_MS 10000 /* default write_timeout_ms */

typedef struct slot {
	char url_text[256];
	hf_stratum_url url;
	hf_stratum_url target;  /* where the next connect goes (client.reconnect may move it) */
	char user[256], pass[256];
	hf_stratum *core;
	uint64_t next_attempt_ms;
	unsigned fails;
	uint8_t last_en1[HF_STRATUM_EN1_MAX];
	size_t last_en1_len;
	char last_session[HF_STRATUM_SESSION_MAX];
	hf_stratum_pool_stats st;
} slot;

typedef struct queued {
	hf_stratum_share sh;
	uint64_t session;
	int pool;
} queued;

typedef struct inflight {
	uint64_t id;
	uint64_t sent_ms;
	bool used;
	hf_stratum_share sh;
} inflight;

typedef struct lost {
	hf_stratum_share sh;
	int pool;
	hf_stratum_drop why;
} lost;

/* Why a session ended. */
typedef enum sess_end {
	END_FAIL,      /* back off this pool */
	END_RECONNECT, /* client.reconnect: go again without penalty */
	END_SWITCH,    /* failback: a preferred pool answered */
	END_STOP,
} sess_end;

struct hf_stratum_drv {
	hf_stratum_drv_opts o;
	char ua[128], ca_file[512];
	slot slots[HF_STRATUM_DRV_MAX_POOLS];
	size_t n;
	pthread_t th;
	bool running;
	int wake[2];     /* work to do (shares queued, stop) */
	int stopfd[2];   /* written once by stop: abandons a connect in progress */
	uint32_t rng;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	int active;
	bool have_work;
	hf_stratum_work work;
	uint64_t session_gen, seq_gen;
	char valid[MAX_VALID_JOBS][HF_STRATUM_JOB_ID_MAX];
	size_t nvalid;
	queued q[MAX_QUEUE];
	size_t qlen;
	uint64_t results;

	/* driver thread only */
	hf_stratum_conn *conn;
	inflight infl[MAX_INFLIGHT];
	lost lost[MAX_QUEUE];  /* dropped under mu, reported to on_dropped after it */
	size_t nlost;
	uint32_t mask;  /* granted version mask this session */
	double diff;
};

void hf_stratum_work_clear(hf_stratum_work *w)
{
	if (!w)
		return;
	hf_stratum_job_clear(&w->job);
	memset(w, 0, sizeof *w);
}

static uint64_t d_default(uint64_t v, uint64_t def)
{
	return v ? v : def;
}

int hf_stratum_drv_new(const hf_stratum_drv_opts *opts, hf_stratum_drv **out, hf_errbuf *eb)
{
	hf_stratum_drv *d;
	hf_stratum_opts co = { 0 };
	int rc;

	if (!opts || opts->npools == 0 || opts->npools > HF_STRATUM_DRV_MAX_POOLS)
		return hf_fail(eb, HF_EINVAL, "pools: expected 1 to %d pools",
			       HF_STRATUM_DRV_MAX_POOLS);
	d = calloc(1, sizeof *d);
	if (!d)
		return hf_fail(eb, HF_ENOMEM, "driver: out of memory");
	d->o = *opts;
	d->wake[0] = d->wake[1] = d->stopfd[0] = d->stopfd[1] = -1;
	hf_strlcpy(d->ua, opts->user_agent ? opts->user_agent : "hashflop/" HF_VERSION,
		   sizeof d->ua);
	if (opts->ca_file)
		hf_strlcpy(d->ca_file, opts->ca_file, sizeof d->ca_file);
	d->o.user_agent = d->ua;
	d->o.ca_file = opts->ca_file ? d->ca_file : NULL;
	d->o.connect_timeout_ms = d_default(opts->connect_timeout_ms, 10000);
	d->o.handshake_timeout_ms = d_default(opts->handshake_timeout_ms, 10000);
	d->o.write_timeout_ms = d_default(opts->write_timeout_ms, WRITE_TIMEOUT_MS);
	d->o.silence_ms = d_default(opts->silence_ms, 120000);
	d->o.backoff_min_ms = d_default(opts->backoff_min_ms, 1000);
	d->o.backoff_max_ms = d_default(opts->backoff_max_ms, 60000);
	d->o.failback_ms = d_default(opts->failback_ms, 60000);
	d->rng = opts->seed ? opts->seed : (uint32_t)hf_mono_us() | 1;
	d->active = -1;
	d->n = opts->npools;
	co.user_agent = d->ua;
	for (size_t i = 0; i < d->n; i++) {
		slot *s = &d->slots[i];
		const hf_stratum_pool_cfg *p = &opts->pools[i];
		rc = hf_stratum_url_parse(p->url, &s->url, eb);
		if (rc) {
			hf_fail_prefix(eb, rc, "pools[%zu]", i);
			goto fail;
		}
		if (!p->user || !p->user[0]) {
			rc = hf_fail(eb, HF_EINVAL, "pools[%zu].user: missing", i);
			goto fail;
		}
		s->target = s->url;
		hf_strlcpy(s->url_text, p->url, sizeof s->url_text);
		hf_text_clean(s->st.url, sizeof s->st.url, p->url, SIZE_MAX);
		hf_strlcpy(s->user, p->user, sizeof s->user);
		hf_strlcpy(s->pass, p->pass ? p->pass : "x", sizeof s->pass);
		s->core = hf_stratum_new(&co);
		if (!s->core) {
			rc = hf_fail(eb, HF_ENOMEM, "driver: out of memory");
			goto fail;
		}
	}
	for (size_t i = 0; i < d->n; i++) {
		d->o.pools[i].url = d->slots[i].url_text;
		d->o.pools[i].user = d->slots[i].user;
		d->o.pools[i].pass = d->slots[i].pass;
	}
	if (pipe2(d->wake, O_NONBLOCK | O_CLOEXEC) || pipe2(d->stopfd, O_NONBLOCK | O_CLOEXEC)) {
		rc = hf_fail(eb, HF_EIO, "driver: pipe: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	*out = d;
	return 0;
fail:
	for (size_t i = 0; i < HF_STRATUM_DRV_MAX_POOLS; i++)
		hf_stratum_free(d->slots[i].core);
	for (int i = 0; i < 2; i++) {
		if (d->wake[i] >= 0)
			close(d->wake[i]);
		if (d->stopfd[i] >= 0)
			close(d->stopfd[i]);
	}
	free(d);
	return rc;
}

static void wake(hf_stratum_drv *d)
{
	char c = 1;
	ssize_t r = write(d->wake[1], &c, 1);

	(void)r;
}

static bool stopping(hf_stratum_drv *d)
{
	bool s;

	pthread_mutex_lock(&d->mu);
	s = d->stop;
	pthread_mutex_unlock(&d->mu);
	return s;
}

/* ---- work and jobs (callers hold d->mu) ---- */

static bool job_valid(hf_stratum_drv *d, const char *id)
{
	for (size_t i = 0; i < d->nvalid; i++)
		if (strcmp(d->valid[i], id) == 0)
			return true;
	return false;
}

static void new_session_locked(hf_stratum_drv *d)
{
	d->session_gen++;
	d->nvalid = 0;
	d->have_work = false;
	hf_stratum_job_clear(&d->work.job);
	d->work.session = d->session_gen;
	d->work.seq = ++d->seq_gen;
}

static void publish_locked(hf_stratum_drv *d)
{
	d->work.seq = ++d->seq_gen;
	pthread_cond_broadcast(&d->cv);
}

/* Counts a reject by its reason, cut to the slot's size first so that a long reason matches
 * its own earlier entry. */
static void count_reject(hf_stratum_pool_stats *st, const char *reason)
{
	char r[sizeof st->rejects[0].reason];
	size_t i;

	hf_text_clean(r, sizeof r, reason, SIZE_MAX);
	for (i = 0; i < st->nrejects; i++)
		if (strcmp(st->rejects[i].reason, r) == 0)
			break;
	if (i == st->nrejects) {
		if (st->nrejects == HF_STRATUM_REJECT_KINDS - 1) {
			i = HF_STRATUM_REJECT_KINDS - 1;
			hf_strlcpy(st->rejects[i].reason, "other", sizeof st->rejects[i].reason);
		} else {
			hf_strlcpy(st->rejects[i].reason, r, sizeof st->rejects[i].reason);
			st->nrejects++;
		}
	}
	st->rejects[i].count++;
}

/* ---- session: events ---- */

typedef struct sess {
	int idx;
	bool subscribed, authorized;
	sess_end end;
	int rc;
	char why[160];
} sess;

static void sess_fail(sess *ss, int rc, const char *why)
{
	if (ss->end != END_FAIL || ss->rc)
		return;
	ss->rc = rc;
	hf_strlcpy(ss->why, why, sizeof ss->why);
}

static void on_subscribed(hf_stratum_drv *d, sess *ss, const hf_stratum_event *ev)
{
	slot *s = &d->slots[ss->idx];
	bool resumed;

	if (!ev->ok) {
		char why[160];
		snprintf(why, sizeof why, "subscribe refused: %s", ev->err_msg);
		sess_fail(ss, HF_EREFUSED, why);
		return;
	}
	ss->subscribed = true;
	pthread_mutex_lock(&d->mu);
	resumed = d->have_work && d->work.pool == ss->idx && s->last_session[0] &&
		  strcmp(s->last_session, ev->session_id) == 0 &&
		  s->last_en1_len == ev->extranonce1_len &&
		  memcmp(s->last_en1, ev->extranonce1, ev->extranonce1_len) == 0 &&
		  d->work.en2_size == ev->en2_size;
	if (resumed) {
		s->st.resumes++;
	} else {
		new_session_locked(d);
		d->work.pool = ss->idx;
		memcpy(d->work.en1, ev->extranonce1, ev->extranonce1_len);
		d->work.en1_len = ev->extranonce1_len;
		d->work.en2_size = ev->en2_size;
	}
	pthread_mutex_unlock(&d->mu);
	memcpy(s->last_en1, ev->extranonce1, ev->extranonce1_len);
	s->last_en1_len = ev->extranonce1_len;
	hf_strlcpy(s->last_session, ev->session_id, sizeof s->last_session);
}

static void on_notify(hf_stratum_drv *d, sess *ss, hf_stratum_event *ev)
{
	pthread_mutex_lock(&d->mu);
	if (ev->job.clean)
		d->nvalid = 0;
	if (d->nvalid == MAX_VALID_JOBS) {
		memmove(d->valid[0], d->valid[1], sizeof d->valid[0] * (MAX_VALID_JOBS - 1));
		d->nvalid--;
	}
	hf_strlcpy(d->valid[d->nvalid++], ev->job.id, HF_STRATUM_JOB_ID_MAX);
	hf_stratum_job_clear(&d->work.job);
	d->work.job = ev->job;        /* moved */
	memset(&ev->job, 0, sizeof ev->job);
	d->work.pool = ss->idx;
	d->work.difficulty = d->diff;
	hf_stratum_target_from_diff(d->diff, d->work.share_target);
	d->work.version_mask = d->mask;
	d->have_work = ss->subscribed;
	publish_locked(d);
	pthread_mutex_unlock(&d->mu);
}

static void on_submit_result(hf_stratum_drv *d, sess *ss, const hf_stratum_event *ev)
{
	hf_stratum_pool_stats *st = &d->slots[ss->idx].st;
	uint64_t now = hf_mono_ms(), lat = 0;
	char reason[HF_STRATUM_TEXT_MAX];
	hf_stratum_share sh;
	bool known = false;

	hf_text_clean(reason, sizeof reason, ev->err_msg[0] ? ev->err_msg : "rejected", SIZE_MAX);
	memset(&sh, 0, sizeof sh);
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < MAX_INFLIGHT; i++) {
		inflight *f = &d->infl[i];
		if (f->used && f->id == ev->id) {
			lat = now - f->sent_ms;
			sh = f->sh;
			known = true;
			f->used = false;
			st->latency_count++;
			st->latency_ms_sum += lat;
			st->latency_ms_last = lat;
			if (lat > st->latency_ms_max)
				st->latency_ms_max = lat;
			break;
		}
	}
	if (ev->ok) {
		st->accepted++;
	} else {
		st->rejected++;
		count_reject(st, reason);
	}
	d->results++;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (d->o.on_result && known)
		d->o.on_result(d->o.ctx, ss->idx, &sh, ev->ok, ev->ok ? "" : reason, lat);
}

/* A host name or address literal as a pool may name it in client.reconnect: letters, digits,
 * '-', '.', '_' and ':' (IPv6), nothing else (no spaces, controls or URL syntax). */
static bool host_name_ok(const char *h)
{
	if (!h[0])
		return false;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '-' || *h == '.' || *h == '_' || *h == ':'))
			return false;
	return true;
}

static void on_reconnect(hf_stratum_drv *d, sess *ss, const hf_stratum_event *ev)
{
	slot *s = &d->slots[ss->idx];
	hf_stratum_url next = s->target;

	pthread_mutex_lock(&d->mu);
	s->st.reconnect_requests++;
	pthread_mutex_unlock(&d->mu);
	if (ev->host[0] && strcmp(ev->host, s->target.host) != 0) {
		if (!d->o.allow_reconnect_host || !host_name_ok(ev->host))
			return; /* refused: another host (not allowed), or not a host name */
		hf_strlcpy(next.host, ev->host, sizeof next.host);
	}
	if (ev->port)
		next.port = ev->port;
	s->target = next;
	s->next_attempt_ms = hf_mono_ms() + (uint64_t)ev->wait_s * 1000;
	ss->end = END_RECONNECT;
}

static void handle_event(hf_stratum_drv *d, sess *ss, hf_stratum_event *ev)
{
	slot *s = &d->slots[ss->idx];

	switch (ev->type) {
	case HF_STRATUM_EV_SUBSCRIBED:
		on_subscribed(d, ss, ev);
		break;
	case HF_STRATUM_EV_AUTHORIZED:
		if (!ev->ok) {
			char why[160];
			pthread_mutex_lock(&d->mu);
			s->st.auth_failures++;
			pthread_mutex_unlock(&d->mu);
			snprintf(why, sizeof why, "authorize refused: %s", ev->err_msg);
			sess_fail(ss, HF_EREFUSED, why);
			break;
		}
		ss->authorized = true;
		s->fails = 0;
		pthread_mutex_lock(&d->mu);
		d->active = ss->idx;
		s->st.active = true;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		break;
	case HF_STRATUM_EV_CONFIGURED:
		d->mask = ev->ok ? ev->version_mask : 0;
		break;
	case HF_STRATUM_EV_VERSION_MASK:
		if (d->o.version_mask) {
			d->mask = ev->version_mask & d->o.version_mask;
			pthread_mutex_lock(&d->mu);
			d->work.version_mask = d->mask;
			publish_locked(d);
			pthread_mutex_unlock(&d->mu);
		}
		break;
	case HF_STRATUM_EV_DIFFICULTY:
		d->diff = ev->difficulty;
		pthread_mutex_lock(&d->mu);
		s->st.difficulty = ev->difficulty;
		pthread_mutex_unlock(&d->mu);
		break;
	case HF_STRATUM_EV_NOTIFY:
		on_notify(d, ss, ev);
		break;
	case HF_STRATUM_EV_EXTRANONCE:
		pthread_mutex_lock(&d->mu);
		new_session_locked(d);
		memcpy(d->work.en1, ev->extranonce1, ev->extranonce1_len);
		d->work.en1_len = ev->extranonce1_len;
		d->work.en2_size = ev->en2_size;
		pthread_mutex_unlock(&d->mu);
		memcpy(s->last_en1, ev->extranonce1, ev->extranonce1_len);
		s->last_en1_len = ev->extranonce1_len;
		break;
	case HF_STRATUM_EV_RECONNECT:
		on_reconnect(d, ss, ev);
		break;
	case HF_STRATUM_EV_SUBMIT_RESULT:
		on_submit_result(d, ss, ev);
		break;
	case HF_STRATUM_EV_MESSAGE:
		pthread_mutex_lock(&d->mu);
		hf_text_clean(s->st.last_message, sizeof s->st.last_message, ev->text, SIZE_MAX);
		pthread_mutex_unlock(&d->mu);
		break;
	case HF_STRATUM_EV_ERROR:
		pthread_mutex_lock(&d->mu);
		s->st.bad_lines++;
		pthread_mutex_unlock(&d->mu);
		break;
	default:
		break;
	}
}

/* ---- session: I/O ---- */

static int flush_out(hf_stratum_drv *d, sess *ss, hf_errbuf *eb)
{
	hf_stratum *core = d->slots[ss->idx].core;
	size_t n;
	const char *p = hf_stratum_out(core, &n);
	int rc;

	if (!n)
		return 0;
	rc = hf_stratum_conn_write_all(d->conn, p, n, d->o.write_timeout_ms, eb);
	hf_stratum_out_consume(core, n);
	return rc;
}

/* Driver thread: remembers a dropped share for report_lost() (callers hold d->mu). */
static void note_lost(hf_stratum_drv *d, const hf_stratum_share *sh, int pool, hf_stratum_drop why)
{
	if (d->o.on_dropped && d->nlost < MAX_QUEUE)
		d->lost[d->nlost++] = (lost){ .sh = *sh, .pool = pool, .why = why };
}

/* Driver thread, no lock held: hands the noted drops to on_dropped. */
static void report_lost(hf_stratum_drv *d)
{
	for (size_t i = 0; i < d->nlost; i++)
		d->o.on_dropped(d->o.ctx, d->lost[i].pool, &d->lost[i].sh, d->lost[i].why);
	d->nlost = 0;
}

/* Driver thread: every sent share still unanswered is dropped (the session is over). */
static void lose_inflight(hf_stratum_drv *d, int pool, hf_stratum_drop why)
{
	for (size_t i = 0; i < MAX_INFLIGHT; i++) {
		if (d->infl[i].used && d->o.on_dropped)
			d->o.on_dropped(d->o.ctx, pool, &d->infl[i].sh, why);
		d->infl[i].used = false;
	}
}

/* Sends queued shares that are still current; drops and counts the stale ones. */
static void flush_queue(hf_stratum_drv *d, sess *ss)
{
	slot *s = &d->slots[ss->idx];

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->qlen; i++) {
		queued *q = &d->q[i];
		hf_stratum_submit_args a = { .worker = s->user, .job_id = q->sh.job_id,
					     .en2 = q->sh.en2, .en2_len = q->sh.en2_len,
					     .ntime = q->sh.ntime, .nonce = q->sh.nonce };
		uint64_t id;
		if (q->session != d->work.session || !job_valid(d, q->sh.job_id) ||
		    q->pool != ss->idx) {
			d->slots[q->pool].st.stale++;
			note_lost(d, &q->sh, q->pool, HF_STRATUM_DROP_STALE);
			continue;
		}
		if (d->mask) {
			a.has_version_bits = true;
			a.version_bits = q->sh.version & d->mask;
		}
		if (hf_stratum_submit(s->core, &a, &id)) {
			note_lost(d, &q->sh, q->pool, HF_STRATUM_DROP_SUBMIT_FAILED);
			continue;
		}
		s->st.submitted++;
		for (size_t k = 0; k < MAX_INFLIGHT; k++) {
			inflight *f = &d->infl[(id + k) % MAX_INFLIGHT];
			if (!f->used || k == MAX_INFLIGHT - 1) {
				if (f->used)
					note_lost(d, &f->sh, ss->idx, HF_STRATUM_DROP_EVICTED);
				f->used = true;
				f->id = id;
				f->sent_ms = hf_mono_ms();
				f->sh = q->sh;
				break;
			}
		}
	}
	d->qlen = 0;
	pthread_mutex_unlock(&d->mu);
	report_lost(d);
}

static int read_some(hf_stratum_drv *d, sess *ss, uint64_t *last_rx, hf_errbuf *eb)
{
	char buf[16384];
	size_t n;
	int rc;

	for (;;) {
		rc = hf_stratum_conn_read(d->conn, buf, sizeof buf, &n, eb);
		if (rc == HF_EBUSY)
			return 0;
		if (rc)
			return rc;
		*last_rx = hf_mono_ms();
		rc = hf_stratum_feed(d->slots[ss->idx].core, buf, n);
		if (rc)
			return hf_fail(eb, rc, "out of memory");
	}
}

static void drain_events(hf_stratum_drv *d, sess *ss)
{
	hf_stratum_event ev;

	while (hf_stratum_next_event(d->slots[ss->idx].core, &ev)) {
		handle_event(d, ss, &ev);
		hf_stratum_event_clear(&ev);
	}
}

static uint64_t backoff_ms(hf_stratum_drv *d, unsigned fails)
{
	uint64_t base = d->o.backoff_min_ms;

	for (unsigned i = 1; i < fails && base < d->o.backoff_max_ms; i++)
		base *= 2;
	if (base > d->o.backoff_max_ms)
		base = d->o.backoff_max_ms;
	/* jitter: 75% to 125% (xorshift32) */
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 17;
	d->rng ^= d->rng << 5;
	return base * 3 / 4 + (base > 1 ? d->rng % (base / 2 + 1) : 0);
}

static void pool_failed(hf_stratum_drv *d, int idx, const char *why)
{
	slot *s = &d->slots[idx];

	s->fails++;
	s->next_attempt_ms = hf_mono_ms() + backoff_ms(d, s->fails);
	pthread_mutex_lock(&d->mu);
	/* why quotes the pool (refusals), a host name it sent, resolver or OpenSSL text */
	hf_text_clean(s->st.last_error, sizeof s->st.last_error, why, SIZE_MAX);
	pthread_mutex_unlock(&d->mu);
}

static int connect_slot(hf_stratum_drv *d, int idx, hf_stratum_conn **out)
{
	slot *s = &d->slots[idx];
	hf_stratum_tls_opts tls = { .ca_file = d->o.ca_file, .insecure = d->o.insecure,
				    .cancel_fd = &d->stopfd[0] };
	hf_errbuf eb;
	int rc = hf_stratum_conn_connect(&s->target, &tls, d->o.connect_timeout_ms, out, &eb);

	pthread_mutex_lock(&d->mu);
	if (rc)
		s->st.connect_failures++;
	else
		s->st.connects++;
	pthread_mutex_unlock(&d->mu);
	if (rc) {
		s->target = s->url; /* a reconnect target that fails is forgotten */
		pool_failed(d, idx, eb.msg);
	}
	return rc;
}

/* Probes more preferred pools; on success hands back the new connection. */
static int try_failback(hf_stratum_drv *d, int active, hf_stratum_conn **out)
{
	uint64_t now = hf_mono_ms();

	for (int j = 0; j < active; j++) {
		if (d->slots[j].next_attempt_ms > now)
			continue;
		if (connect_slot(d, j, out) == 0)
			return j;
	}
	return -1;
}

static void start_handshake(hf_stratum_drv *d, sess *ss)
{
	slot *s = &d->slots[ss->idx];

	hf_stratum_reset(s->core);
	d->mask = 0;
	d->diff = 1.0;
	if (d->o.version_mask)
		hf_stratum_configure(s->core, d->o.version_mask, 2, NULL);
	hf_stratum_subscribe(s->core, true, NULL);
	if (d->o.extranonce_subscribe)
		hf_stratum_extranonce_subscribe(s->core, NULL);
	hf_stratum_authorize(s->core, s->user, s->pass, NULL);
	if (d->o.suggest_difficulty > 0)
		hf_stratum_suggest_difficulty(s->core, d->o.suggest_difficulty, NULL);
}

/* Runs one session on d->conn until it ends; *next_idx/next_conn are set on END_SWITCH. */
static void run_session(hf_stratum_drv *d, sess *ss, int *next_idx)
{
	uint64_t now = hf_mono_ms(), last_rx = now;
	uint64_t hs_deadline = now + d->o.handshake_timeout_ms;
	uint64_t next_failback = now + d->o.failback_ms;
	hf_errbuf eb = { { 0 } };
	int rc;

	start_handshake(d, ss);
	while (ss->end == END_FAIL && !ss->rc) {
		struct pollfd p[2] = { { .fd = hf_stratum_conn_fd(d->conn), .events = POLLIN },
				       { .fd = d->wake[0], .events = POLLIN } };
		uint64_t deadline = last_rx + d->o.silence_ms;
		char junk[64];

		rc = flush_out(d, ss, &eb);
		if (rc == HF_ECANCELED) { /* stop, while the pool was not taking our bytes */
			ss->end = END_STOP;
			break;
		}
		if (rc) {
			sess_fail(ss, rc, eb.msg);
			break;
		}
		if (!ss->authorized && hs_deadline < deadline)
			deadline = hs_deadline;
		if (ss->authorized && ss->idx > 0 && next_failback < deadline)
			deadline = next_failback;
		now = hf_mono_ms();
		rc = hf_stratum_conn_pending(d->conn) ? 1
		     : poll(p, 2, deadline > now ? (int)(deadline - now) : 0);
		if (stopping(d)) {
			ss->end = END_STOP;
			break;
		}
		while (read(d->wake[0], junk, sizeof junk) > 0)
			;
		if (rc > 0 && (hf_stratum_conn_pending(d->conn) || p[0].revents)) {
			rc = read_some(d, ss, &last_rx, &eb);
			drain_events(d, ss);
			if (rc) {
				sess_fail(ss, rc, eb.msg);
				break;
			}
		}
		if (ss->authorized)
			flush_queue(d, ss);
		now = hf_mono_ms();
		if (now >= last_rx + d->o.silence_ms) {
			pthread_mutex_lock(&d->mu);
			d->slots[ss->idx].st.silence_timeouts++;
			pthread_mutex_unlock(&d->mu);
			sess_fail(ss, HF_ETIMEOUT, "pool silent: reconnecting");
		} else if (!ss->authorized && now >= hs_deadline) {
			sess_fail(ss, HF_ETIMEOUT, "handshake timed out");
		} else if (ss->authorized && ss->idx > 0 && now >= next_failback) {
			hf_stratum_conn *c = NULL;
			int j = try_failback(d, ss->idx, &c);
			if (j >= 0) {
				hf_stratum_conn_free(d->conn);
				d->conn = c;
				*next_idx = j;
				ss->end = END_SWITCH;
			}
			next_failback = hf_mono_ms() + d->o.failback_ms;
		}
	}
}

static int pick_pool(hf_stratum_drv *d, uint64_t *wait_until)
{
	uint64_t now = hf_mono_ms(), soonest = UINT64_MAX;

	for (size_t i = 0; i < d->n; i++) {
		if (d->slots[i].next_attempt_ms <= now)
			return (int)i;
		if (d->slots[i].next_attempt_ms < soonest)
			soonest = d->slots[i].next_attempt_ms;
	}
	*wait_until = soonest;
	return -1;
}

static void *drv_main(void *arg)
{
	hf_stratum_drv *d = arg;
	int next = -1;

	while (!stopping(d)) {
		uint64_t until = 0;
		int idx = next >= 0 ? next : pick_pool(d, &until);
		sess ss = { .idx = idx };
		bool had_session;

		next = -1;
		if (idx < 0) {
			struct pollfd p = { .fd = d->wake[0], .events = POLLIN };
			uint64_t now = hf_mono_ms();
			char junk[64];
			poll(&p, 1, until > now ? (int)(until - now) : 0);
			while (read(d->wake[0], junk, sizeof junk) > 0)
				;
			continue;
		}
		if (!d->conn && connect_slot(d, idx, &d->conn))
			continue;
		run_session(d, &ss, &next);
		had_session = ss.authorized;
		lose_inflight(d, idx, ss.end == END_STOP ? HF_STRATUM_DROP_STOPPED
							 : HF_STRATUM_DROP_SESSION_LOST);
		if (ss.end != END_SWITCH) {
			hf_stratum_conn_free(d->conn);
			d->conn = NULL;
		}
		pthread_mutex_lock(&d->mu);
		if (d->active == idx)
			d->active = -1;
		d->slots[idx].st.active = false;
		if (had_session)
			d->slots[idx].st.disconnects++;
		memset(d->infl, 0, sizeof d->infl);
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		if (ss.end == END_FAIL)
			pool_failed(d, idx, ss.why[0] ? ss.why : hf_strerror(ss.rc));
		if (ss.end != END_RECONNECT)
			d->slots[idx].target = d->slots[idx].url;
	}
	hf_stratum_conn_free(d->conn);
	d->conn = NULL;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->qlen; i++)
		note_lost(d, &d->q[i].sh, d->q[i].pool, HF_STRATUM_DROP_STOPPED);
	d->qlen = 0;
	pthread_mutex_unlock(&d->mu);
	report_lost(d);
	return NULL;
}

int hf_stratum_drv_start(hf_stratum_drv *d, hf_errbuf *eb)
{
	int rc;

	char junk[16];

	if (d->running)
		return hf_fail(eb, HF_ESTATE, "driver already running");
	while (read(d->stopfd[0], junk, sizeof junk) > 0)
		;
	d->stop = false;
	rc = pthread_create(&d->th, NULL, drv_main, d);
	if (rc)
		return hf_fail(eb, HF_EIO, "driver thread: %s", strerror(rc));
	d->running = true;
	return 0;
}

void hf_stratum_drv_stop(hf_stratum_drv *d)
{
	if (!d || !d->running)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	wake(d);
	{
		char c = 1;
		ssize_t r = write(d->stopfd[1], &c, 1);
		(void)r;
	}
	pthread_join(d->th, NULL);
	d->running = false;
}

void hf_stratum_drv_free(hf_stratum_drv *d)
{
	if (!d)
		return;
	hf_stratum_drv_stop(d);
	for (size_t i = 0; i < d->n; i++)
		hf_stratum_free(d->slots[i].core);
	hf_stratum_work_clear(&d->work);
	close(d->wake[0]);
	close(d->wake[1]);
	close(d->stopfd[0]);
	close(d->stopfd[1]);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}

int hf_stratum_drv_work(hf_stratum_drv *d, hf_stratum_work *out)
{
	int rc = HF_ENOTFOUND;

	pthread_mutex_lock(&d->mu);
	if (d->have_work) {
		*out = d->work;
		rc = hf_stratum_job_copy(&out->job, &d->work.job);
		if (rc)
			memset(out, 0, sizeof *out);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

bool hf_stratum_drv_wait_work(hf_stratum_drv *d, uint64_t after_seq, uint64_t timeout_ms)
{
	struct timespec ts;
	bool ok;

	hf_abstime_after_ms(timeout_ms, &ts);
	pthread_mutex_lock(&d->mu);
	while (!(d->have_work && d->work.seq != after_seq) && !d->stop) {
		if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
			break;
	}
	ok = d->have_work && d->work.seq != after_seq;
	pthread_mutex_unlock(&d->mu);
	return ok;
}

static bool stale_locked(hf_stratum_drv *d, const hf_stratum_work *w, const char *job_id)
{
	return !d->have_work || w->session != d->work.session || !job_valid(d, job_id);
}

int hf_stratum_drv_submit(hf_stratum_drv *d, const hf_stratum_work *w,
			  const hf_stratum_share *share)
{
	uint8_t hash[32];
	int pool = w->pool >= 0 && (size_t)w->pool < d->n ? w->pool : 0;

	if (share->en2_len != w->en2_size || strcmp(share->job_id, w->job.id) != 0)
		return HF_EINVAL;
	pthread_mutex_lock(&d->mu);
	if (stale_locked(d, w, share->job_id)) {
		d->slots[pool].st.stale++;
		pthread_mutex_unlock(&d->mu);
		return HF_ESTATE;
	}
	pthread_mutex_unlock(&d->mu);
	if (hf_stratum_job_share_hash(&w->job, w->en1, w->en1_len, share, NULL, hash))
		return HF_EINVAL;
	pthread_mutex_lock(&d->mu);
	if (!hf_stratum_hash_meets(hash, w->share_target)) {
		d->slots[pool].st.hw_errors++;
		pthread_mutex_unlock(&d->mu);
		return HF_ERANGE;
	}
	if (stale_locked(d, w, share->job_id) || d->qlen == MAX_QUEUE) {
		d->slots[pool].st.stale++;
		pthread_mutex_unlock(&d->mu);
		return HF_ESTATE;
	}
	d->q[d->qlen].sh = *share;
	d->q[d->qlen].session = w->session;
	d->q[d->qlen].pool = pool;
	d->qlen++;
	pthread_mutex_unlock(&d->mu);
	wake(d);
	return 0;
}

int hf_stratum_drv_active_pool(hf_stratum_drv *d)
{
	int a;

	pthread_mutex_lock(&d->mu);
	a = d->active;
	pthread_mutex_unlock(&d->mu);
	return a;
}

int hf_stratum_drv_pool_stats(hf_stratum_drv *d, size_t pool, hf_stratum_pool_stats *out)
{
	if (pool >= d->n)
		return HF_EINVAL;
	pthread_mutex_lock(&d->mu);
	*out = d->slots[pool].st;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

uint64_t hf_stratum_drv_results(hf_stratum_drv *d)
{
	uint64_t r;

	pthread_mutex_lock(&d->mu);
	r = d->results;
	pthread_mutex_unlock(&d->mu);
	return r;
}
