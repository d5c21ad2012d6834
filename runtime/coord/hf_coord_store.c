/* hf_coord_store: argument checks, the report/ack queue and its writer thread, and dispatch to
 * a backend's table of operations (hf_coord_store_priv.h; SQLite in hf_coord_store_sqlite.c).
 *
 * Invariants: every string handed to a backend fits the record field it is read back into and
 * every integer fits a signed 64-bit column (HF_ETOOBIG / HF_ERANGE otherwise). Reports and acks
 * go to a queue that one flusher at a time (flush_mu) commits in put order, at the latest
 * report_flush_ms after the first one queued (or at once from QUEUE_HIGH entries), in
 * transactions of at most CHUNK entries so that a decision never waits for a long one (and
 * with a 1 ms pause between them, so another process gets the write lock too);
 * while a batch is being committed it stays visible to report_latest (inflight), so a reader
 * never misses a report that was put. The queue is capped (QUEUE_MAX): a putter waits for the
 * writer rather than grow it without bound. Decisions, the floor and nodes bypass the queue and
 * are committed before their call returns.
 * Threading: every function may be called from any thread; the writer thread is started by
 * hf_coord_store_wrap and joined by hf_coord_store_free (from the owner, once callers are done).
 * Lock order: flush_mu before qmu; a backend's own lock is taken only under flush_mu or none.
 */
#include "hf_coord_store_priv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_util.h"

#define QUEUE_MAX (64u * 1024u)   /* entries waiting (~45 MiB of reports); a putter waits */
#define QUEUE_HIGH 8192u          /* the writer commits at once from here */
/* Entries per transaction: a decision waits for at most one chunk (~512 x 25 us), not for
 * a whole batch. */
#define CHUNK 512u
#define I64_MAX ((uint64_t)INT64_MAX)

struct hf_coord_store {
	const hf_coord_store_ops *ops;
	void *impl;
	uint64_t flush_ms, history_ms, keep_ms;

	pthread_mutex_t flush_mu;    /* one flusher at a time, held across write_batch */

	pthread_mutex_t qmu;         /* everything below */
	pthread_cond_t wcond;        /* the writer: work queued, or stop */
	pthread_cond_t scond;        /* putters: space in the queue */
	hf_coord_qentry *q;
	size_t qlen, qcap;
	uint64_t q_first_ms;         /* monotonic ms when q became non-empty */
	hf_coord_qentry *inflight;   /* the batch being committed (owned by the flusher) */
	size_t inflight_len, inflight_cap;
	hf_coord_qentry *spare;      /* an empty buffer to swap in */
	size_t spare_cap;
	bool stop;
	hf_coord_store_stats st;
	bool bg_failed;
	char bg_err[HF_ERRBUF_SIZE];

	pthread_t writer;
	bool writer_started;
};

static bool fits(const char *s, size_t size)
{
	return s && strnlen(s, size) < size;
}

static int check_id(const char *id, const char *what, hf_errbuf *eb)
{
	if (!id || !*id)
		return hf_fail(eb, HF_EINVAL, "%s: empty node id", what);
	if (!fits(id, HF_COORD_NODE_ID_MAX + 1))
		return hf_fail(eb, HF_ETOOBIG, "%s: node id longer than %d characters", what,
			       HF_COORD_NODE_ID_MAX);
	return 0;
}

static int check_u64(uint64_t v, const char *what, hf_errbuf *eb)
{
	if (v > I64_MAX)
		return hf_fail(eb, HF_ERANGE, "%s %llu: over the largest storable value %lld", what,
			       (unsigned long long)v, (long long)INT64_MAX);
	return 0;
}

/* ---- the queue ---- */

static void entries_clear(hf_coord_qentry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].json);
		e[i].json = NULL;
	}
}

/* Commits what is queued now (in order). Background failures are kept for report_flush. */
static int flush_once(hf_coord_store *s, hf_errbuf *eb)
{
	hf_errbuf local;
	size_t n, done, skipped, written = 0, dropped = 0, lost = 0;
	uint64_t t0, wall, prune;
	int rc = 0, first_rc = 0;

	hf_errbuf_clear(&local);
	pthread_mutex_lock(&s->flush_mu);
	pthread_mutex_lock(&s->qmu);
	n = s->qlen;
	if (n == 0) {
		pthread_mutex_unlock(&s->qmu);
		pthread_mutex_unlock(&s->flush_mu);
		return 0;
	}
	s->inflight = s->q;
	s->inflight_cap = s->qcap;
	s->inflight_len = n;
	s->q = s->spare;
	s->qcap = s->spare_cap;
	s->spare = NULL;
	s->spare_cap = 0;
	s->qlen = 0;
	pthread_cond_broadcast(&s->scond);
	pthread_mutex_unlock(&s->qmu);

	t0 = hf_mono_us();
	wall = hf_wall_ms();
	prune = wall > s->keep_ms ? wall - s->keep_ms : 0;
	for (done = 0; done < n; done += CHUNK) {
		size_t k = n - done < CHUNK ? n - done : CHUNK;
		skipped = 0;
		rc = s->ops->write_batch(s->impl, s->inflight + done, k, s->history_ms, prune,
					 &skipped, first_rc ? NULL : &local);
		if (rc == 0) {
			written += k - skipped;
			dropped += skipped;
		} else {
			lost += k;
			if (!first_rc)
				first_rc = rc;
		}
		/* Between chunks, leave the write lock free for a moment: other processes on the
		 * same database (hashflop-coord node add) retry every millisecond. */
		if (done + CHUNK < n)
			hf_sleep_ms(1);
	}
	rc = first_rc;

	pthread_mutex_lock(&s->qmu);
	s->st.batches++;
	s->st.last_batch_us = hf_mono_us() - t0;
	s->st.entries_written += written;
	s->st.entries_dropped += dropped;
	if (rc != 0) {
		s->st.batch_failures++;
		s->st.entries_lost += lost;
		if (!eb && !s->bg_failed) { /* a caller's flush returns its own failure */
			s->bg_failed = true;
			snprintf(s->bg_err, sizeof s->bg_err, "%zu of %zu reports/acks lost: %s",
				 lost, n, local.msg);
		}
	}
	entries_clear(s->inflight, n);
	s->spare = s->inflight;
	s->spare_cap = s->inflight_cap;
	s->inflight = NULL;
	s->inflight_len = s->inflight_cap = 0;
	pthread_mutex_unlock(&s->qmu);
	pthread_mutex_unlock(&s->flush_mu);
	if (rc != 0 && eb)
		*eb = local;
	return rc;
}

static void *writer_main(void *arg)
{
	hf_coord_store *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->qmu);
	for (;;) {
		/* Idle: housekeeping every second until something is queued. */
		while (!s->stop && s->qlen == 0) {
			uint64_t idle_until = hf_mono_ms() + 1000;
			ts.tv_sec = (time_t)(idle_until / 1000);
			ts.tv_nsec = (long)(idle_until % 1000) * 1000000L;
			if (pthread_cond_timedwait(&s->wcond, &s->qmu, &ts) != 0 && s->ops->maintain) {
				pthread_mutex_unlock(&s->qmu);
				s->ops->maintain(s->impl);
				pthread_mutex_lock(&s->qmu);
			}
		}
		if (s->stop)
			break;
		uint64_t deadline = s->q_first_ms + s->flush_ms;
		while (!s->stop && s->qlen > 0 && s->qlen < QUEUE_HIGH && hf_mono_ms() < deadline) {
			ts.tv_sec = (time_t)(deadline / 1000);
			ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
			pthread_cond_timedwait(&s->wcond, &s->qmu, &ts);
		}
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->qmu);
		(void)flush_once(s, NULL); /* a failure is kept in bg_err */
		if (s->ops->maintain)
			s->ops->maintain(s->impl);
		pthread_mutex_lock(&s->qmu);
	}
	pthread_mutex_unlock(&s->qmu);
	return NULL;
}

/* Queues e (takes e->json). */
static int enqueue(hf_coord_store *s, hf_coord_qentry *e, hf_errbuf *eb)
{
	pthread_mutex_lock(&s->qmu);
	while (s->qlen >= QUEUE_MAX && !s->stop) {
		pthread_cond_signal(&s->wcond);
		pthread_cond_wait(&s->scond, &s->qmu);
	}
	if (s->qlen == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 256;
		hf_coord_qentry *q = realloc(s->q, cap * sizeof *q);
		if (!q) {
			pthread_mutex_unlock(&s->qmu);
			free(e->json);
			return hf_fail(eb, HF_ENOMEM, "report queue: out of memory");
		}
		s->q = q;
		s->qcap = cap;
	}
	if (s->qlen == 0) {
		s->q_first_ms = hf_mono_ms();
		pthread_cond_signal(&s->wcond);
	} else if (s->qlen + 1 == QUEUE_HIGH) {
		pthread_cond_signal(&s->wcond);
	}
	s->q[s->qlen++] = *e;
	s->st.reports_queued++;
	pthread_mutex_unlock(&s->qmu);
	return 0;
}

/* ---- open, close ---- */

int hf_coord_store_wrap(const hf_coord_store_ops *ops, void *impl, const hf_coord_store_opts *opts,
			hf_coord_store **out, hf_errbuf *eb)
{
	hf_coord_store *s;
	pthread_condattr_t ca;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s) {
		ops->close(impl);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	s->ops = ops;
	s->impl = impl;
	s->flush_ms = opts->report_flush_ms ? opts->report_flush_ms : 1000;
	s->history_ms = (uint64_t)(opts->history_interval_s ? opts->history_interval_s : 60) * 1000;
	s->keep_ms = (uint64_t)(opts->history_keep_s ? opts->history_keep_s : 7 * 86400) * 1000;
	pthread_mutex_init(&s->flush_mu, NULL);
	pthread_mutex_init(&s->qmu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wcond, &ca);
	pthread_cond_init(&s->scond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
		hf_coord_store_free(s);
		return hf_fail(eb, HF_ENOMEM, "cannot start the report writer thread");
	}
	s->writer_started = true;
	*out = s;
	return 0;
}

void hf_coord_store_free(hf_coord_store *s)
{
	if (!s)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->qmu);
		s->stop = true;
		pthread_cond_broadcast(&s->wcond);
		pthread_cond_broadcast(&s->scond);
		pthread_mutex_unlock(&s->qmu);
		pthread_join(s->writer, NULL);
	}
	(void)flush_once(s, NULL);
	s->ops->close(s->impl);
	entries_clear(s->q, s->qlen);
	free(s->q);
	free(s->spare);
	pthread_cond_destroy(&s->wcond);
	pthread_cond_destroy(&s->scond);
	pthread_mutex_destroy(&s->qmu);
	pthread_mutex_destroy(&s->flush_mu);
	free(s);
}

int hf_coord_store_schema_version(hf_coord_store *s)
{
	return s->ops->schema_version(s->impl);
}

/* ---- nodes ---- */

int hf_coord_store_node_add(hf_coord_store *s, const hf_coord_node_rec *n, hf_errbuf *eb)
{
	int rc;

	if (!n)
		return hf_fail(eb, HF_EINVAL, "node add: no record");
	if ((rc = check_id(n->id, "node add", eb)) != 0)
		return rc;
	if (!fits(n->token_hash, sizeof n->token_hash) || !fits(n->hold_by, sizeof n->hold_by))
		return hf_fail(eb, HF_EINVAL, "node add %s: token_hash or hold_by not terminated",
			       n->id);
	if ((rc = check_u64(n->added_ms, "node add: added_ms", eb)) != 0 ||
	    (rc = check_u64(n->hold_until_ms, "node add: hold_until_ms", eb)) != 0)
		return rc;
	return s->ops->node_add(s->impl, n, eb);
}

int hf_coord_store_node_set_token(hf_coord_store *s, const char *id, const char *token_hash,
				  hf_errbuf *eb)
{
	int rc = check_id(id, "node set token", eb);
	if (rc != 0)
		return rc;
	if (!fits(token_hash, HF_COORD_TOKEN_HASH_LEN + 1))
		return hf_fail(eb, HF_ETOOBIG, "node %s: token hash missing or longer than %d", id,
			       HF_COORD_TOKEN_HASH_LEN);
	return s->ops->node_set_token(s->impl, id, token_hash, eb);
}

int hf_coord_store_node_set_hold(hf_coord_store *s, const char *id, uint64_t until_ms,
				 const char *by, hf_errbuf *eb)
{
	int rc = check_id(id, "node set hold", eb);
	if (rc != 0)
		return rc;
	if ((rc = check_u64(until_ms, "node set hold: until_ms", eb)) != 0)
		return rc;
	if (!by)
		by = "";
	if (!fits(by, sizeof ((hf_coord_node_rec *)0)->hold_by))
		return hf_fail(eb, HF_ETOOBIG, "node %s: hold_by longer than %zu", id,
			       sizeof ((hf_coord_node_rec *)0)->hold_by - 1);
	return s->ops->node_set_hold(s->impl, id, until_ms, by, eb);
}

int hf_coord_store_node_remove(hf_coord_store *s, const char *id, hf_errbuf *eb)
{
	size_t j = 0;
	int rc = check_id(id, "node remove", eb);
	if (rc != 0)
		return rc;
	/* No batch in flight while the node goes, and none of its queued entries left. */
	pthread_mutex_lock(&s->flush_mu);
	pthread_mutex_lock(&s->qmu);
	for (size_t i = 0; i < s->qlen; i++) {
		if (strcmp(s->q[i].node, id) == 0) {
			free(s->q[i].json);
			continue;
		}
		s->q[j++] = s->q[i];
	}
	s->qlen = j;
	pthread_cond_broadcast(&s->scond);
	pthread_mutex_unlock(&s->qmu);
	rc = s->ops->node_remove(s->impl, id, eb);
	pthread_mutex_unlock(&s->flush_mu);
	return rc;
}

int hf_coord_store_node_list(hf_coord_store *s, hf_coord_node_rec **out, size_t *n,
			     hf_errbuf *eb)
{
	*out = NULL;
	*n = 0;
	return s->ops->node_list(s->impl, out, n, eb);
}

/* ---- reports and acks ---- */

int hf_coord_store_report_put(hf_coord_store *s, const char *id, uint64_t wall_ms,
			      const json_t *report, hf_errbuf *eb)
{
	hf_coord_qentry e;
	int rc = check_id(id, "report", eb);
	if (rc != 0)
		return rc;
	if ((rc = check_u64(wall_ms, "report: wall_ms", eb)) != 0)
		return rc;
	if (!report)
		return hf_fail(eb, HF_EINVAL, "report of %s: no JSON", id);
	memset(&e, 0, sizeof e);
	hf_strlcpy(e.node, id, sizeof e.node);
	e.wall_ms = wall_ms;
	e.json = json_dumps(report, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!e.json)
		return hf_fail(eb, HF_ENOMEM, "report of %s: cannot encode the JSON", id);
	return enqueue(s, &e, eb);
}

int hf_coord_store_report_put_text(hf_coord_store *s, const char *id, uint64_t wall_ms,
				   const char *json, size_t len, hf_errbuf *eb)
{
	hf_coord_qentry e;
	int rc = check_id(id, "report", eb);
	if (rc != 0)
		return rc;
	if ((rc = check_u64(wall_ms, "report: wall_ms", eb)) != 0)
		return rc;
	if (!json || len == 0 || memchr(json, '\0', len))
		return hf_fail(eb, HF_EINVAL, "report of %s: empty JSON text or a NUL inside", id);
	memset(&e, 0, sizeof e);
	hf_strlcpy(e.node, id, sizeof e.node);
	e.wall_ms = wall_ms;
	e.json = strndup(json, len);
	if (!e.json)
		return hf_fail(eb, HF_ENOMEM, "report of %s: out of memory", id);
	return enqueue(s, &e, eb);
}

/* The newest queued or in-flight report of id: *json malloc'ed copy; false when none. */
static bool queued_latest(hf_coord_store *s, const char *id, char **json, uint64_t *wall_ms)
{
	const hf_coord_qentry *best = NULL;
	const hf_coord_qentry *lists[2];
	size_t lens[2];

	*json = NULL;
	pthread_mutex_lock(&s->qmu);
	lists[0] = s->inflight;
	lens[0] = s->inflight_len;
	lists[1] = s->q;
	lens[1] = s->qlen;
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < lens[l]; i++) {
			const hf_coord_qentry *e = &lists[l][i];
			if (e->json && strcmp(e->node, id) == 0 && (!best || e->wall_ms >= best->wall_ms))
				best = e;
		}
	if (best) {
		*json = strdup(best->json);
		*wall_ms = best->wall_ms;
	}
	pthread_mutex_unlock(&s->qmu);
	return *json != NULL;
}

int hf_coord_store_report_latest(hf_coord_store *s, const char *id, json_t **report,
				 uint64_t *wall_ms, hf_errbuf *eb)
{
	char *qjson = NULL, *djson = NULL, *use;
	uint64_t qwall = 0, dwall = 0, w;
	json_error_t je;
	int rc;

	*report = NULL;
	if ((rc = check_id(id, "report latest", eb)) != 0)
		return rc;
	bool queued = queued_latest(s, id, &qjson, &qwall);
	rc = s->ops->report_latest(s->impl, id, &djson, &dwall, eb);
	if (rc != 0 && !(rc == HF_ENOTFOUND && queued)) {
		free(qjson);
		return rc;
	}
	if (queued && (!djson || qwall >= dwall)) {
		use = qjson;
		w = qwall;
	} else {
		use = djson;
		w = dwall;
	}
	*report = json_loads(use, JSON_DECODE_ANY, &je);
	free(qjson);
	free(djson);
	if (!*report)
		return hf_fail(eb, HF_EIO, "report latest of %s: stored JSON unreadable: %s", id,
			       je.text);
	if (wall_ms)
		*wall_ms = w;
	return 0;
}

int hf_coord_store_report_history(hf_coord_store *s, const char *id, uint64_t since_ms,
				  size_t max, json_t **out, hf_errbuf *eb)
{
	int rc;

	*out = NULL;
	if ((rc = check_id(id, "report history", eb)) != 0)
		return rc;
	if (since_ms > I64_MAX)
		since_ms = I64_MAX;
	if ((rc = flush_once(s, eb)) != 0)
		return hf_fail_prefix(eb, rc, "report history of %s", id);
	return s->ops->report_history(s->impl, id, since_ms, max, out, eb);
}

int hf_coord_store_ack_put(hf_coord_store *s, const hf_coord_ack_rec *a, hf_errbuf *eb)
{
	hf_coord_qentry e;
	int rc;

	if (!a)
		return hf_fail(eb, HF_EINVAL, "ack: no record");
	if ((rc = check_id(a->node, "ack", eb)) != 0)
		return rc;
	if ((rc = check_u64(a->issued_ms, "ack: issued_ms", eb)) != 0 ||
	    (rc = check_u64(a->wall_ms, "ack: wall_ms", eb)) != 0)
		return rc;
	memset(&e, 0, sizeof e);
	hf_strlcpy(e.node, a->node, sizeof e.node);
	e.wall_ms = a->wall_ms;
	e.issued_ms = a->issued_ms;
	return enqueue(s, &e, eb);
}

int hf_coord_store_ack_list(hf_coord_store *s, uint64_t from_issued_ms, uint64_t to_issued_ms,
			    hf_coord_ack_rec **out, size_t *n, hf_errbuf *eb)
{
	int rc;

	*out = NULL;
	*n = 0;
	if (from_issued_ms > I64_MAX || from_issued_ms > to_issued_ms)
		return 0;
	if (to_issued_ms > I64_MAX)
		to_issued_ms = I64_MAX;
	if ((rc = flush_once(s, eb)) != 0)
		return hf_fail_prefix(eb, rc, "ack list");
	return s->ops->ack_list(s->impl, from_issued_ms, to_issued_ms, out, n, eb);
}

int hf_coord_store_report_flush(hf_coord_store *s, hf_errbuf *eb)
{
	int rc = flush_once(s, eb);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&s->qmu);
	if (s->bg_failed) {
		s->bg_failed = false;
		rc = hf_fail(eb, HF_EIO, "%s", s->bg_err);
	}
	pthread_mutex_unlock(&s->qmu);
	return rc;
}

void hf_coord_store_stats_get(hf_coord_store *s, hf_coord_store_stats *out)
{
	pthread_mutex_lock(&s->qmu);
	*out = s->st;
	out->queue_len = s->qlen + s->inflight_len;
	pthread_mutex_unlock(&s->qmu);
}

/* ---- decisions ---- */

static int check_decision(const hf_coord_decision_rec *d, hf_errbuf *eb)
{
	int rc;

	if ((rc = check_id(d->node, "decision", eb)) != 0)
		return rc;
	if (!fits(d->mode, sizeof d->mode) || !fits(d->source, sizeof d->source) ||
	    !fits(d->keyids, sizeof d->keyids) || !fits(d->payload_sha256, sizeof d->payload_sha256))
		return hf_fail(eb, HF_EINVAL, "decision for %s: mode, source, keyids or "
			       "payload_sha256 not terminated", d->node);
	if (d->authority != HF_COORD_BY_OPERATOR && d->authority != HF_COORD_BY_COORDINATOR)
		return hf_fail(eb, HF_EINVAL, "decision for %s: authority %d unknown", d->node,
			       (int)d->authority);
	if (!d->envelope)
		return hf_fail(eb, HF_EINVAL, "decision for %s: no envelope", d->node);
	if ((rc = check_u64(d->issued_ms, "decision: issued_ms", eb)) != 0 ||
	    (rc = check_u64(d->expires_ms, "decision: expires_ms", eb)) != 0 ||
	    (rc = check_u64(d->resigned_from, "decision: resigned_from", eb)) != 0)
		return rc;
	return 0;
}

int hf_coord_store_decision_add_many(hf_coord_store *s, hf_coord_decision_rec *d, size_t n,
				     hf_errbuf *eb)
{
	char **reasons;
	size_t i;
	int rc = 0;

	if (n == 0)
		return 0;
	if (!d)
		return hf_fail(eb, HF_EINVAL, "decision add: no records");
	for (i = 0; i < n; i++)
		if ((rc = check_decision(&d[i], eb)) != 0)
			return rc;
	reasons = calloc(n, sizeof *reasons);
	if (!reasons)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	for (i = 0; i < n && rc == 0; i++) {
		if (!d[i].reason)
			continue;
		reasons[i] = json_dumps(d[i].reason, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!reasons[i])
			rc = hf_fail(eb, HF_ENOMEM, "decision for %s: cannot encode the reason",
				     d[i].node);
	}
	if (rc == 0) {
		/* wall_ms: when recorded, unless the caller already set it. */
		uint64_t now = hf_wall_ms();
		for (i = 0; i < n; i++)
			if (d[i].wall_ms == 0 || d[i].wall_ms > I64_MAX)
				d[i].wall_ms = now;
		rc = s->ops->decision_add(s->impl, d, (const char *const *)reasons, n, eb);
	}
	for (i = 0; i < n; i++)
		free(reasons[i]);
	free(reasons);
	return rc;
}

int hf_coord_store_decision_add(hf_coord_store *s, hf_coord_decision_rec *d, hf_errbuf *eb)
{
	if (!d)
		return hf_fail(eb, HF_EINVAL, "decision add: no record");
	return hf_coord_store_decision_add_many(s, d, 1, eb);
}

int hf_coord_store_decision_list(hf_coord_store *s, uint64_t after_seq, uint64_t since_ms,
				 size_t max, hf_coord_decision_rec **out, size_t *n, hf_errbuf *eb)
{
	*out = NULL;
	*n = 0;
	if (after_seq > I64_MAX || since_ms > I64_MAX)
		return 0;
	return s->ops->decision_list(s->impl, after_seq, since_ms, max, out, n, eb);
}

int hf_coord_store_decision_current(hf_coord_store *s, hf_coord_decision_rec **out, size_t *n,
				    hf_errbuf *eb)
{
	*out = NULL;
	*n = 0;
	return s->ops->decision_current(s->impl, out, n, eb);
}

void hf_coord_decision_rec_clear(hf_coord_decision_rec *d)
{
	if (!d)
		return;
	json_decref(d->reason);
	d->reason = NULL;
	free((char *)d->envelope);
	d->envelope = NULL;
}

/* ---- ordering ---- */

int hf_coord_store_floor_get(hf_coord_store *s, uint64_t *issued_ms, hf_errbuf *eb)
{
	*issued_ms = 0;
	return s->ops->floor_get(s->impl, issued_ms, eb);
}

int hf_coord_store_floor_set(hf_coord_store *s, uint64_t issued_ms, hf_errbuf *eb)
{
	int rc = check_u64(issued_ms, "floor", eb);
	if (rc != 0)
		return rc;
	return s->ops->floor_set(s->impl, issued_ms, eb);
}
