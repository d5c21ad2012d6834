/* hf_coord: the coordinator object: start-up from the record, signing with issued_ms ordering,
 * decisions, operator relays, re-signing, the node set refresh, serving.
 *
 * Invariants: c->floor_ms only grows and is durable (hf_coord_store_floor_set) before any
 * envelope with that issued_ms is published or answered; a decision is published only after
 * hf_coord_store_decision_add returned (durable); a "*" decision's chunks are recorded and
 * published in order (chunk i+1 is only signed meanwhile). Payloads rendered from a template
 * are byte for byte what the jansson path writes (checked on a probe per decision).
 * Threading: see hf_coord.h and hf_coord_priv.h.
 */
#include "hf_coord.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_coord_priv.h"
#include "hf_file.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"

#define RESIGN_BATCH 1000
#define DECIDE_CHUNK 512       /* "*" decisions: nodes signed, recorded and published at a time */
#define SIGN_MIN_PER_THREAD 32
#define MAINT_TICK_MS 1000
#define REFRESH_TICKS 5
#define AUTH_REFRESH_MS 1000
#define TLS_PEM_MAX (1u << 20)

/* ---- tokens ---- */

void hf_coord_token_hash(const char *token, size_t len, char out[HF_COORD_TOKEN_HASH_LEN + 1])
{
	unsigned char md[32];

	/* SHA256(): no EVP fetch per request (this runs on every authenticated poll) */
	SHA256((const unsigned char *)token, len, md);
	hf_hex_encode(md, 32, out);
}

int hf_coord_token_new(char out[2 * HF_COORD_TOKEN_BYTES + 1], hf_errbuf *eb)
{
	unsigned char b[HF_COORD_TOKEN_BYTES];
	if (RAND_bytes(b, sizeof b) != 1)
		return hf_fail(eb, HF_ECRYPTO, "no randomness for a token (RAND_bytes failed)");
	hf_hex_encode(b, sizeof b, out);
	OPENSSL_cleanse(b, sizeof b);
	return 0;
}

/* ---- start-up ---- */

/* An envelope as served, from its record (the payload's mining/inference/reason kept for
 * re-signing). NULL when the record does not parse. */
static hf_coord_env *env_from_rec(const hf_coord_decision_rec *d)
{
	hf_instr_envelope ev;
	hf_instr in;
	hf_coord_env *e;

	if (!d->envelope || hf_instr_envelope_decode(d->envelope, strlen(d->envelope), &ev, NULL) < 0)
		return NULL;
	memset(&in, 0, sizeof in);
	if (hf_instr_parse_payload((const char *)ev.payload, ev.payload_len, &in, NULL) < 0) {
		hf_instr_envelope_clear(&ev);
		return NULL;
	}
	hf_instr_envelope_clear(&ev);
	e = hf_coord_env_new(d->envelope, strlen(d->envelope));
	if (e) {
		e->seq = d->seq;
		e->issued_ms = d->issued_ms;
		e->expires_ms = d->expires_ms;
		e->resigned_from = d->resigned_from;
		e->decided_us = hf_mono_us();
		e->authority = d->authority;
		hf_strlcpy(e->node, d->node, sizeof e->node);
		hf_strlcpy(e->mode, d->mode, sizeof e->mode);
		hf_strlcpy(e->source, d->source, sizeof e->source);
		e->hold_until_ms = in.has_hold ? in.hold_until_ms : 0;
		e->mining = json_incref(in.mining);
		e->inference = json_incref(in.inference);
		e->reason = json_incref(in.reason);
	}
	hf_instr_clear(&in);
	return e;
}

int hf_coord_refresh_nodes(hf_coord *c, hf_errbuf *eb)
{
	hf_coord_node_rec *recs = NULL;
	size_t n = 0;
	int r = hf_coord_store_node_list(c->store, &recs, &n, eb);
	if (r < 0)
		return r;
	r = hf_coord_fleet_sync_nodes(c->fleet, recs, n, eb);
	free(recs);
	return r;
}

static int restore(hf_coord *c, hf_errbuf *eb)
{
	hf_coord_decision_rec *d = NULL;
	size_t n = 0, woken;
	uint64_t floor = 0;
	int r;

	if ((r = hf_coord_refresh_nodes(c, eb)) < 0 && r != HF_ETOOBIG)
		return r;
	if ((r = hf_coord_store_floor_get(c->store, &floor, eb)) < 0 ||
	    (r = hf_coord_store_decision_current(c->store, &d, &n, eb)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		hf_coord_env *e = env_from_rec(&d[i]);
		if (d[i].issued_ms > floor)
			floor = d[i].issued_ms;
		if (e)
			hf_coord_fleet_publish(c->fleet, e, &woken);
		if (e && strcmp(e->node, "*") == 0 && e->hold_until_ms)
			hf_coord_fleet_set_hold(c->fleet, "*", e->hold_until_ms, d[i].keyids);
		hf_coord_env_unref(e);
		hf_coord_decision_rec_clear(&d[i]);
	}
	free(d);
	c->floor_ms = floor;
	return 0;
}

static int load_admin(hf_coord *c, hf_errbuf *eb)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if (!c->cfg.admin_token_file[0])
		return 0;
	if ((r = hf_file_read(c->cfg.admin_token_file, 4096, &text, &len, eb)) < 0)
		return hf_fail_prefix(eb, r, "admin_token_file");
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] <= ' ' || (unsigned char)text[i] >= 0x7f)
			len = 0;
	if (len < 16 || len > 256) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
		return hf_fail(eb, HF_ECONFIG, "admin_token_file %s: expected one line of 16 to 256 "
			       "printable characters", c->cfg.admin_token_file);
	}
	hf_coord_token_hash(text, len, c->admin_hash);
	c->have_admin = true;
	OPENSSL_cleanse(text, len);
	free(text);
	return 0;
}

static int load_tls(hf_coord *c, hf_errbuf *eb)
{
	size_t len;
	int r;

	if (!c->cfg.tls_cert[0])
		return 0;
	if ((r = hf_file_read(c->cfg.tls_cert, TLS_PEM_MAX, &c->tls_cert, &len, eb)) < 0)
		return hf_fail_prefix(eb, r, "listen.tls_cert");
	if ((r = hf_file_read(c->cfg.tls_key, TLS_PEM_MAX, &c->tls_key, &len, eb)) < 0)
		return hf_fail_prefix(eb, r, "listen.tls_key");
	return 0;
}

static int open_store(hf_coord *c, hf_errbuf *eb)
{
	char dir[PATH_MAX];
	hf_coord_store_opts so = { .path = c->cfg.database };
	int r;

	hf_strlcpy(dir, c->cfg.database, sizeof dir);
	if ((r = hf_mkdir_p(dirname(dir), 0700, eb)) < 0)
		return hf_fail_prefix(eb, r, "database directory");
	if ((r = hf_coord_store_open_sqlite(&so, &c->store, eb)) < 0)
		return hf_fail_prefix(eb, r, "database %s", c->cfg.database);
	return 0;
}

static void *maint_main(void *arg);

static int load_keys(hf_coord *c, hf_errbuf *eb)
{
	int r;

	if ((r = hf_key_load_pem(c->cfg.signing_key, &c->key, eb)) < 0)
		return hf_fail_prefix(eb, r, "signing_key %s", c->cfg.signing_key);
	if (!hf_key_has_private(c->key))
		return hf_fail(eb, HF_ECONFIG, "signing_key %s: a public key; the coordinator needs "
			       "its private key (openssl genpkey -algorithm ed25519)", c->cfg.signing_key);
	hf_key_id(c->key, c->keyid);
	if ((r = hf_trust_load(c->cfg.trust_file, &c->trust, eb)) < 0)
		return hf_fail_prefix(eb, r, "trust_file %s", c->cfg.trust_file);
	return 0;
}

int hf_coord_new(const hf_coord_config *cfg, hf_coord **out, hf_errbuf *eb)
{
	hf_coord_fleet_opts fo = { .max_wait_s = cfg->max_wait_s,
				   .offline_after_s = cfg->offline_after_s, .max_nodes = cfg->max_nodes };
	hf_coord *c;
	int r;

	*out = NULL;
	c = calloc(1, sizeof *c);
	if (!c)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	c->cfg = *cfg;
	c->start_ms = hf_wall_ms();
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		c->sign_threads = cpus < 1 ? 1 : cpus > SIGN_THREADS ? SIGN_THREADS : (unsigned)cpus;
	}
	c->loopback = hf_coord_addr_is_loopback(cfg->listen_address);
	atomic_init(&c->api_enabled, false);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->maint_mu, NULL);
	pthread_cond_init(&c->maint_cond, NULL);
	if ((r = load_keys(c, eb)) < 0 || (r = load_admin(c, eb)) < 0 || (r = load_tls(c, eb)) < 0 ||
	    (r = open_store(c, eb)) < 0 || (r = hf_coord_fleet_new(&fo, &c->fleet, eb)) < 0 ||
	    (r = restore(c, eb)) < 0)
		goto fail;
	if (pthread_create(&c->maint, NULL, maint_main, c) != 0) {
		r = hf_fail(eb, HF_ENOMEM, "cannot start the maintenance thread");
		goto fail;
	}
	c->maint_started = true;
	*out = c;
	return 0;
fail:
	hf_coord_free(c);
	return r;
}

/* ---- signing ---- */

/* The next issued_ms: max(now, floor + 1). The floor becomes durable with the decision that
 * uses it (hf_coord_store_decision_add raises the stored floor in the same transaction), before
 * the envelope is published. */
static uint64_t next_issued(hf_coord *c)
{
	uint64_t now = hf_wall_ms(), v;

	pthread_mutex_lock(&c->mu);
	v = now > c->floor_ms ? now : c->floor_ms + 1;
	c->floor_ms = v;
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* A "*" decision's payload as a template: the bytes json_dumps writes for every node but the
 * node id and the two times, rendered once; the payload parsed once (its mining, inference and
 * reason are shared by every node's envelope, read only). */
typedef struct decide_tmpl {
	char *tail;      /* ,"mode":"..."[,"mining":...][,"inference":...][,"reason":...]} */
	hf_instr in;     /* the probe payload parsed */
} decide_tmpl;

typedef struct decide_args {
	const char *node, *mode, *source;
	const json_t *mining, *inference, *reason;
	uint64_t issued_ms, expires_ms, resigned_from;
	const decide_tmpl *tmpl; /* NULL: built and parsed with jansson per node */
} decide_args;

/* The payload text of a, validated by the same parser the nodes use. */
static int build_payload(hf_coord *c, const decide_args *a, char **out, hf_instr *in, hf_errbuf *eb)
{
	json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s}", "v", 1, "fleet", c->cfg.fleet_id,
			      "node", a->node, "issued_ms", (json_int_t)a->issued_ms,
			      "expires_ms", (json_int_t)a->expires_ms, "mode", a->mode);
	int r;

	*out = NULL;
	if (!j)
		return hf_fail(eb, HF_EINVAL, "node or mode is not valid text");
	if ((a->mining && json_object_set(j, "mining", (json_t *)a->mining) < 0) ||
	    (a->inference && json_object_set(j, "inference", (json_t *)a->inference) < 0) ||
	    (a->reason && json_object_set(j, "reason", (json_t *)a->reason) < 0)) {
		json_decref(j);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	*out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!*out)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	memset(in, 0, sizeof *in);
	if ((r = hf_instr_parse_payload(*out, strlen(*out), in, eb)) < 0) {
		free(*out);
		*out = NULL;
		return hf_fail_prefix(eb, HF_EINVAL, "the instruction would be invalid");
	}
	return 0;
}

/* The payload of a from its template (malloc'ed): the same bytes as build_payload. Node and
 * fleet ids are [A-Za-z0-9._-] (hf_id_valid, the config check): nothing to escape. */
static char *render_payload(hf_coord *c, const decide_args *a, size_t *len)
{
	size_t cap = 96 + strlen(c->cfg.fleet_id) + strlen(a->node) + strlen(a->tmpl->tail);
	char *out = malloc(cap);
	int n;

	if (!out)
		return NULL;
	n = snprintf(out, cap, "{\"v\":1,\"fleet\":\"%s\",\"node\":\"%s\",\"issued_ms\":%" PRIu64
		     ",\"expires_ms\":%" PRIu64 "%s", c->cfg.fleet_id, a->node, a->issued_ms,
		     a->expires_ms, a->tmpl->tail);
	if (n < 0 || (size_t)n >= cap) {
		free(out);
		return NULL;
	}
	*len = (size_t)n;
	return out;
}

static void tmpl_clear(decide_tmpl *t)
{
	free(t->tail);
	hf_instr_clear(&t->in);
	memset(t, 0, sizeof *t);
}

/* Renders a's template into t: the payload's tail after expires_ms, cut from the jansson
 * payload of a probe, checked by rendering the probe again (byte for byte). */
static int tmpl_init(hf_coord *c, const decide_args *a, decide_tmpl *t, hf_errbuf *eb)
{
	decide_args probe = *a;
	char *payload = NULL, *again = NULL, *cut;
	size_t len = 0;
	int r;

	memset(t, 0, sizeof *t);
	probe.node = "probe";
	probe.tmpl = NULL;
	if ((r = build_payload(c, &probe, &payload, &t->in, eb)) < 0)
		return r;
	cut = strstr(payload, ",\"mode\":");
	if (cut && (t->tail = strdup(cut)) != NULL) {
		probe.tmpl = t;
		again = render_payload(c, &probe, &len);
	}
	if (!again || strcmp(again, payload) != 0)
		tmpl_clear(t); /* not the expected shape: per node with jansson */
	free(again);
	free(payload);
	return 0;
}

/* One automatic envelope signed, not yet recorded. */
typedef struct prepared {
	char *env;
	hf_instr in;              /* parsed per node (no template) */
	const hf_instr *shared;   /* or the template's */
	char payload_sha256[65];
} prepared;

/* Signs a's envelope into p and fills its record d (d->envelope points into p). */
static int prepare(hf_coord *c, const decide_args *a, prepared *p, hf_coord_decision_rec *d,
		   hf_errbuf *eb)
{
	char *payload = NULL;
	size_t len = 0;
	int r;

	if (a->tmpl && a->tmpl->tail && hf_id_valid(a->node)) {
		unsigned char md[32];
		if (!(payload = render_payload(c, a, &len)))
			return hf_fail(eb, HF_ENOMEM, "out of memory");
		SHA256((const unsigned char *)payload, len, md);
		hf_hex_encode(md, 32, p->payload_sha256);
		p->shared = &a->tmpl->in;
	} else {
		if ((r = build_payload(c, a, &payload, &p->in, eb)) < 0)
			return r;
		len = strlen(payload);
		memcpy(p->payload_sha256, p->in.payload_sha256, sizeof p->payload_sha256);
		p->shared = &p->in;
	}
	r = hf_instr_sign(payload, len, &c->key, 1, &p->env, eb);
	free(payload);
	if (r < 0)
		return r;
	if (strlen(p->env) > HF_INSTR_MAX_ENVELOPE)
		return hf_fail(eb, HF_ETOOBIG, "the signed envelope is %zu bytes, over the 16 KiB of "
			       "contract v1 (a smaller reason or fewer pools)", strlen(p->env));
	memset(d, 0, sizeof *d);
	hf_strlcpy(d->node, a->node, sizeof d->node);
	d->wall_ms = hf_wall_ms();
	d->issued_ms = a->issued_ms;
	d->expires_ms = a->expires_ms;
	hf_strlcpy(d->mode, a->mode, sizeof d->mode);
	d->authority = HF_COORD_BY_COORDINATOR;
	hf_strlcpy(d->source, a->source, sizeof d->source);
	hf_strlcpy(d->keyids, c->keyid, sizeof d->keyids);
	hf_strlcpy(d->payload_sha256, p->payload_sha256, sizeof d->payload_sha256);
	d->reason = (json_t *)a->reason;
	d->envelope = p->env;
	d->resigned_from = a->resigned_from;
	return 0;
}

/* Publishes a recorded envelope (waking its polls). */
static void publish(hf_coord *c, const prepared *p, const hf_coord_decision_rec *d)
{
	hf_coord_env *e = hf_coord_env_new(p->env, strlen(p->env));
	size_t woken;

	if (!e)
		return; /* recorded: served after the next restart or re-sign */
	e->seq = d->seq;
	e->issued_ms = d->issued_ms;
	e->expires_ms = d->expires_ms;
	e->resigned_from = d->resigned_from;
	e->decided_us = hf_mono_us();
	e->authority = d->authority;
	hf_strlcpy(e->node, d->node, sizeof e->node);
	hf_strlcpy(e->mode, d->mode, sizeof e->mode);
	hf_strlcpy(e->source, d->source, sizeof e->source);
	e->mining = json_incref(p->shared->mining);
	e->inference = json_incref(p->shared->inference);
	e->reason = json_incref(p->shared->reason);
	hf_coord_fleet_publish(c->fleet, e, &woken);
	hf_coord_env_unref(e);
}

/* One signing thread's share of a batch. */
typedef struct sign_job {
	hf_coord *c;
	const decide_args *a;
	prepared *p;
	hf_coord_decision_rec *d;
	size_t lo, hi;
	int r;
	hf_errbuf eb;
} sign_job;

static void *sign_main(void *arg)
{
	sign_job *j = arg;
	for (size_t i = j->lo; i < j->hi && j->r == 0; i++)
		j->r = prepare(j->c, &j->a[i], &j->p[i], &j->d[i], &j->eb);
	return NULL;
}

/* Signs a[0..n) into p and d on up to SIGN_THREADS threads (Ed25519 signing is most of a
 * "*" decision's CPU: OpenSSL 3.0 signs in about 52 us on Zen 3, `openssl speed ed25519`). */
static int sign_all(hf_coord *c, const decide_args *a, size_t n, prepared *p,
		    hf_coord_decision_rec *d, hf_errbuf *eb)
{
	sign_job jobs[SIGN_THREADS];
	pthread_t tid[SIGN_THREADS];
	bool started[SIGN_THREADS] = { false };
	size_t nt = c->sign_threads, per;
	int r = 0;

	if (nt > n / SIGN_MIN_PER_THREAD)
		nt = n / SIGN_MIN_PER_THREAD;
	if (nt < 1)
		nt = 1;
	per = (n + nt - 1) / nt;
	for (size_t t = 0; t < nt; t++) {
		jobs[t] = (sign_job){ .c = c, .a = a, .p = p, .d = d, .lo = t * per,
				      .hi = (t + 1) * per < n ? (t + 1) * per : n };
		hf_errbuf_clear(&jobs[t].eb);
		if (t > 0)
			started[t] = pthread_create(&tid[t], NULL, sign_main, &jobs[t]) == 0;
	}
	sign_main(&jobs[0]);
	for (size_t t = 1; t < nt; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			sign_main(&jobs[t]); /* no thread: on this one */
	}
	for (size_t t = 0; t < nt && r == 0; t++)
		if ((r = jobs[t].r) < 0)
			hf_fail(eb, r, "%s", jobs[t].eb.msg);
	return r;
}

/* Records n signed envelopes in one transaction (durable; it raises the floor too), then
 * publishes each; seqs[i] their records. */
static int commit_batch(hf_coord *c, const decide_args *a, size_t n, const prepared *p,
			hf_coord_decision_rec *d, uint64_t *seqs, hf_errbuf *eb)
{
	size_t resigned = 0;

	if (hf_coord_store_decision_add_many(c->store, d, n, eb) < 0) {
		pthread_mutex_lock(&c->mu);
		c->store_errors_total++;
		pthread_mutex_unlock(&c->mu);
		return hf_fail_prefix(eb, HF_EIO, "recording the decision");
	}
	for (size_t i = 0; i < n; i++) {
		publish(c, &p[i], &d[i]);
		seqs[i] = d[i].seq;
		resigned += a[i].resigned_from != 0;
	}
	pthread_mutex_lock(&c->mu);
	c->decisions_total[HF_COORD_BY_COORDINATOR] += n;
	c->resigned_total += resigned;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static void prepared_clear(prepared *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		hf_instr_clear(&p[i].in);
		free(p[i].env);
		memset(&p[i], 0, sizeof p[i]);
	}
}

/* Signs n automatic envelopes, records and publishes them (commit_batch). */
static int decide_batch(hf_coord *c, const decide_args *a, size_t n, uint64_t *seqs,
			hf_errbuf *eb)
{
	prepared *p = calloc(n ? n : 1, sizeof *p);
	hf_coord_decision_rec *d = calloc(n ? n : 1, sizeof *d);
	int r = 0;

	if (!p || !d) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = sign_all(c, a, n, p, d, eb)) == 0)
		r = commit_batch(c, a, n, p, d, seqs, eb);
out:
	prepared_clear(p, n);
	free(p);
	free(d);
	return r;
}

/* One chunk of a pipelined decision: signed on its own thread while the one before it is
 * recorded and published. */
typedef struct chunk {
	hf_coord *c;
	const decide_args *a;
	size_t n;
	prepared *p;
	hf_coord_decision_rec *d;
	int r;
	hf_errbuf eb;
} chunk;

static void *chunk_sign_main(void *arg)
{
	chunk *k = arg;
	hf_errbuf_clear(&k->eb);
	k->r = sign_all(k->c, k->a, k->n, k->p, k->d, &k->eb);
	return NULL;
}

/* Decides a[0..n) in chunks of DECIDE_CHUNK (one transaction each): chunk i+1 is signed while
 * chunk i is recorded and published, so signing keeps the CPUs busy while the store and the
 * publishing run on this thread. seqs[i] the records; *done how many were published. */
static int decide_pipelined(hf_coord *c, const decide_args *a, size_t n, uint64_t *seqs,
			    size_t *done, hf_errbuf *eb)
{
	chunk ck[2];
	size_t cur = 0, cap = n < DECIDE_CHUNK ? (n ? n : 1) : DECIDE_CHUNK;
	int r = 0;

	*done = 0;
	memset(ck, 0, sizeof ck);
	for (int b = 0; b < (n > DECIDE_CHUNK ? 2 : 1); b++) {
		ck[b].c = c;
		ck[b].p = calloc(cap, sizeof *ck[b].p);
		ck[b].d = calloc(cap, sizeof *ck[b].d);
		if (!ck[b].p || !ck[b].d) {
			r = hf_fail(eb, HF_ENOMEM, "out of memory");
			goto out;
		}
	}
	ck[0].a = a;
	ck[0].n = n < DECIDE_CHUNK ? n : DECIDE_CHUNK;
	chunk_sign_main(&ck[0]);
	for (size_t i = 0; i < n; i += DECIDE_CHUNK) {
		chunk *now = &ck[cur], *next = &ck[cur ^ 1];
		size_t j = i + DECIDE_CHUNK;
		pthread_t tid;
		bool started = false;

		if (now->r < 0) {
			r = hf_fail(eb, now->r, "%s", now->eb.msg);
			goto out;
		}
		next->n = 0;
		if (j < n) {
			next->a = a + j;
			next->n = n - j < DECIDE_CHUNK ? n - j : DECIDE_CHUNK;
			started = pthread_create(&tid, NULL, chunk_sign_main, next) == 0;
		}
		r = commit_batch(c, now->a, now->n, now->p, now->d, seqs + i, eb);
		if (started)
			pthread_join(tid, NULL);
		else if (next->n)
			chunk_sign_main(next); /* no thread: on this one */
		prepared_clear(now->p, now->n);
		now->n = 0;
		if (r < 0)
			goto out;
		*done += DECIDE_CHUNK < n - i ? DECIDE_CHUNK : n - i;
		cur ^= 1;
	}
out:
	for (int b = 0; b < 2; b++) {
		prepared_clear(ck[b].p, ck[b].n);
		free(ck[b].p);
		free(ck[b].d);
	}
	return r;
}

void hf_coord_decision_res_clear(hf_coord_decision_res *res)
{
	free(res->seq);
	free(res->held);
	memset(res, 0, sizeof *res);
}

static int check_req(hf_coord *c, const hf_coord_decision_req *q, hf_errbuf *eb)
{
	hf_instr_mode m;
	hf_instr in;
	char *payload;
	decide_args a = { .node = "probe", .mode = q->mode, .mining = q->mining,
			  .inference = q->inference, .reason = q->reason, .issued_ms = 1,
			  .expires_ms = 2 };
	int r;

	if (!q->node || (strcmp(q->node, "*") != 0 && !hf_id_valid(q->node)))
		return hf_fail(eb, HF_EINVAL, "node: expected a node id or \"*\"");
	if (!q->mode || !hf_instr_mode_parse(q->mode, &m))
		return hf_fail(eb, HF_EINVAL, "mode: expected \"idle\", \"mining\" or \"inference\"");
	if (q->ttl_s > 30u * 86400)
		return hf_fail(eb, HF_EINVAL, "ttl_s: expected 10 to 2592000 seconds");
	if (!q->source || !q->source[0] || strlen(q->source) >= 64)
		return hf_fail(eb, HF_EINVAL, "source: expected the decision source's name");
	if ((r = build_payload(c, &a, &payload, &in, eb)) < 0)
		return r;
	hf_instr_clear(&in);
	free(payload);
	return 0;
}

/* The node ids a request covers (malloc'ed). */
static int req_nodes(hf_coord *c, const char *node, char (**ids)[HF_COORD_NODE_ID_MAX + 1],
		     size_t *n, hf_errbuf *eb)
{
	if (strcmp(node, "*") == 0) {
		if (hf_coord_fleet_node_ids(c->fleet, ids, n) < 0)
			return hf_fail(eb, HF_ENOMEM, "out of memory");
		if (*n == 0) {
			free(*ids);
			*ids = NULL;
			return hf_fail(eb, HF_ENOTFOUND, "no nodes registered (hashflop-coord node add ID)");
		}
		return 0;
	}
	if (!hf_coord_known_node(c, node))
		return hf_fail(eb, HF_ENOTFOUND, "unknown node \"%s\"", node);
	*ids = malloc(sizeof **ids);
	if (!*ids)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	hf_strlcpy((*ids)[0], node, sizeof **ids);
	*n = 1;
	return 0;
}

int hf_coord_decide(hf_coord *c, const hf_coord_decision_req *q, hf_coord_decision_res *res,
		    hf_errbuf *eb)
{
	char (*ids)[HF_COORD_NODE_ID_MAX + 1] = NULL;
	decide_args *a = NULL;
	decide_tmpl tmpl;
	uint64_t ttl_ms, issued, now;
	size_t n = 0, k = 0;
	int r;

	memset(res, 0, sizeof *res);
	memset(&tmpl, 0, sizeof tmpl);
	if ((r = check_req(c, q, eb)) < 0 || (r = req_nodes(c, q->node, &ids, &n, eb)) < 0)
		return r;
	res->seq = calloc(n, sizeof *res->seq);
	res->held = calloc(n, sizeof *res->held);
	a = calloc(n, sizeof *a);
	if (!res->seq || !res->held || !a) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto out;
	}
	ttl_ms = 1000ull * (q->ttl_s ? (q->ttl_s < 10 ? 10 : q->ttl_s) : c->cfg.instruction_ttl_s);
	issued = next_issued(c);
	res->issued_ms = issued;
	now = hf_wall_ms();
	if (n > 1) {
		decide_args t = { .node = "probe", .mode = q->mode, .source = q->source,
				  .mining = q->mining, .inference = q->inference, .reason = q->reason,
				  .issued_ms = issued, .expires_ms = issued + ttl_ms };
		if ((r = tmpl_init(c, &t, &tmpl, eb)) < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		hf_coord_env *cur;
		uint64_t hold;
		if (!hf_coord_fleet_current(c->fleet, ids[i], &cur, &hold))
			continue; /* removed meanwhile */
		hf_coord_env_unref(cur);
		if (hold > now) {
			hf_strlcpy(res->held[res->nheld++], ids[i], sizeof *res->held);
			continue;
		}
		a[k++] = (decide_args){ .node = ids[i], .mode = q->mode, .source = q->source,
					.mining = q->mining, .inference = q->inference,
					.reason = q->reason, .issued_ms = issued,
					.expires_ms = issued + ttl_ms, .tmpl = &tmpl };
	}
	/* In chunks: the first nodes hold their envelopes while the next are signed (one
	 * transaction per chunk). */
	r = decide_pipelined(c, a, k, res->seq, &res->nseq, eb);
	if (r < 0)
		goto out;
	if (res->nheld) {
		pthread_mutex_lock(&c->mu);
		c->decisions_held_total += res->nheld;
		pthread_mutex_unlock(&c->mu);
		r = hf_fail(eb, HF_ESTATE, "%zu node(s) under an operator hold (first: %s)", res->nheld,
			    res->held[0]);
	}
out:
	tmpl_clear(&tmpl);
	free(a);
	free(ids);
	return r;
}

/* check_req for a batch: the payload without its reason (free JSON: it cannot make a payload
 * invalid) is built and parsed once per distinct mode and payload objects (ok[] remembers up
 * to 8); the node, mode, ttl and source of every request are checked. */
static int check_many(hf_coord *c, const hf_coord_decision_req *q,
		      hf_coord_decision_req *ok, size_t *nok)
{
	hf_coord_decision_req bare = *q;
	hf_instr_mode m;
	int r;

	if (!q->node || !hf_id_valid(q->node) || !q->mode || !hf_instr_mode_parse(q->mode, &m))
		return HF_EINVAL;
	for (size_t i = 0; i < *nok; i++)
		if (strcmp(ok[i].mode, q->mode) == 0 && ok[i].mining == q->mining &&
		    ok[i].inference == q->inference && ok[i].ttl_s == q->ttl_s && ok[i].source &&
		    q->source && strcmp(ok[i].source, q->source) == 0)
			return 0;
	bare.reason = NULL;
	if ((r = check_req(c, &bare, NULL)) < 0)
		return r;
	if (*nok < 8)
		ok[(*nok)++] = bare;
	return 0;
}

int hf_coord_decide_many(hf_coord *c, const hf_coord_decision_req *reqs, size_t n, int *rc,
			 uint64_t *seq, uint64_t *issued_ms, hf_errbuf *eb)
{
	hf_coord_decision_req ok[8];
	size_t nok = 0;
	decide_args *a = calloc(n ? n : 1, sizeof *a);
	size_t *idx = calloc(n ? n : 1, sizeof *idx);
	uint64_t *seqs = calloc(n ? n : 1, sizeof *seqs);
	uint64_t issued = next_issued(c), now = hf_wall_ms(), held = 0;
	size_t k = 0, done = 0;
	int r = 0;

	*issued_ms = issued;
	if (!a || !idx || !seqs) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const hf_coord_decision_req *q = &reqs[i];
		hf_coord_env *cur;
		uint64_t hold, ttl_ms;
		seq[i] = 0;
		rc[i] = check_many(c, q, ok, &nok);
		if (rc[i] < 0)
			continue;
		if (!hf_coord_fleet_current(c->fleet, q->node, &cur, &hold)) {
			rc[i] = HF_ENOTFOUND;
			continue;
		}
		hf_coord_env_unref(cur);
		if (hold > now) {
			rc[i] = HF_ESTATE;
			held++;
			continue;
		}
		ttl_ms = 1000ull * (q->ttl_s ? (q->ttl_s < 10 ? 10 : q->ttl_s) : c->cfg.instruction_ttl_s);
		rc[i] = HF_EIO; /* until published */
		idx[k] = i;
		a[k++] = (decide_args){ .node = q->node, .mode = q->mode, .source = q->source,
					.mining = q->mining, .inference = q->inference,
					.reason = q->reason, .issued_ms = issued,
					.expires_ms = issued + ttl_ms };
	}
	r = decide_pipelined(c, a, k, seqs, &done, eb);
	for (size_t j = 0; j < done; j++) {
		rc[idx[j]] = 0;
		seq[idx[j]] = seqs[j];
	}
	if (held) {
		pthread_mutex_lock(&c->mu);
		c->decisions_held_total += held;
		pthread_mutex_unlock(&c->mu);
	}
out:
	free(a);
	free(idx);
	free(seqs);
	return r;
}

/* ---- relays ---- */

/* The trusted operator key ids among the envelope's signatures, comma-separated. */
static void operator_keyids(hf_coord *c, const char *body, size_t len, char *out, size_t outsz)
{
	hf_instr_envelope ev;

	out[0] = '\0';
	if (hf_instr_envelope_decode(body, len, &ev, NULL) < 0)
		return;
	for (size_t i = 0; i < ev.nsigs; i++) {
		hf_role role;
		if (!hf_trust_find(c->trust, ev.sigs[i].keyid, &role, NULL) || role != HF_ROLE_OPERATOR)
			continue;
		if (out[0] && strlen(out) + 1 < outsz)
			strcat(out, ",");
		if (strlen(out) + strlen(ev.sigs[i].keyid) < outsz)
			strcat(out, ev.sigs[i].keyid);
	}
	hf_instr_envelope_clear(&ev);
}

static int refuse(hf_coord *c, hf_instr_refusal *why, hf_instr_refusal r, hf_errbuf *eb,
		  const char *msg)
{
	*why = r;
	pthread_mutex_lock(&c->mu);
	c->relay_refused[r]++;
	pthread_mutex_unlock(&c->mu);
	if (msg)
		hf_fail(eb, HF_EREFUSED, "%s", msg);
	return HF_EREFUSED;
}

/* Verification with the node's rules; in filled when accepted. */
static int relay_verify(hf_coord *c, const char *target, const char *body, size_t len,
			hf_instr *in, hf_instr_refusal *why, hf_errbuf *eb)
{
	bool star = strcmp(target, "*") == 0;
	hf_coord_env *cur;
	uint64_t hold;
	hf_instr_policy pol = { .fleet = c->cfg.fleet_id, .node = target, .now_ms = hf_wall_ms(),
				.skew_ms = c->cfg.clock_skew_ms };
	int r;

	if (len > c->cfg.max_body)
		return refuse(c, why, HF_REFUSE_OVERSIZE, eb, "envelope over limits.max_body");
	if (!star && !hf_coord_known_node(c, target))
		return hf_fail(eb, HF_ENOTFOUND, "unknown node \"%s\"", target);
	if (!hf_coord_fleet_current(c->fleet, target, &cur, &hold))
		return hf_fail(eb, HF_ENOTFOUND, "unknown node \"%s\"", target);
	pol.last_issued_ms = cur ? cur->issued_ms : 0;
	pol.hold_until_ms = hold;
	hf_coord_env_unref(cur);
	r = hf_instr_verify(c->trust, body, len, &pol, in, why, eb);
	if (r < 0) {
		if (r == HF_EREFUSED)
			return refuse(c, why, *why, eb, NULL);
		return refuse(c, why, HF_REFUSE_MALFORMED, eb, NULL);
	}
	if (in->automatic)
		r = refuse(c, why, HF_REFUSE_ROLE, eb, "a relay carries operator signatures; this "
			   "envelope verified only under a coordinator key");
	else if (star && strcmp(in->node, "*") != 0)
		r = refuse(c, why, HF_REFUSE_WRONG_NODE, eb, "a node's envelope posted to "
			   "/v1/fleet/instruction (post it to /v1/nodes/ID/instruction)");
	else if (!star && strcmp(in->node, "*") == 0)
		r = refuse(c, why, HF_REFUSE_WRONG_NODE, eb, "a fleet envelope (node \"*\") posted "
			   "to a node's path (post it to /v1/fleet/instruction)");
	if (r < 0)
		hf_instr_clear(in);
	return r;
}

/* Raises the in-memory floor to issued when it is higher (the record's floor rises with the
 * relay's decision_add). */
static void raise_floor(hf_coord *c, uint64_t issued)
{
	pthread_mutex_lock(&c->mu);
	if (issued > c->floor_ms)
		c->floor_ms = issued;
	pthread_mutex_unlock(&c->mu);
}

/* A node's hold is recorded in the store; a fleet-wide one ("*") only in memory and restored
 * from the current fleet envelope (one record, not one per node). */
static int set_holds(hf_coord *c, const hf_instr *in, const char *by, hf_errbuf *eb)
{
	if (!in->has_hold)
		return 0;
	if (strcmp(in->node, "*") != 0 &&
	    hf_coord_store_node_set_hold(c->store, in->node, in->hold_until_ms, by, eb) < 0)
		return hf_fail_prefix(eb, HF_EIO, "recording the hold");
	hf_coord_fleet_set_hold(c->fleet, in->node, in->hold_until_ms, by);
	return 0;
}

int hf_coord_relay(hf_coord *c, const char *target, const char *body, size_t len,
		   hf_coord_relay_res *res, hf_instr_refusal *why, hf_errbuf *eb)
{
	hf_coord_decision_rec d = { 0 };
	hf_coord_env *e;
	size_t woken;
	hf_instr in;
	int r;

	memset(res, 0, sizeof *res);
	*why = HF_REFUSE_NONE;
	memset(&in, 0, sizeof in);
	if ((r = relay_verify(c, target, body, len, &in, why, eb)) < 0)
		return r;
	hf_strlcpy(d.node, in.node, sizeof d.node);
	d.wall_ms = hf_wall_ms();
	d.issued_ms = in.issued_ms;
	d.expires_ms = in.expires_ms;
	hf_strlcpy(d.mode, hf_instr_mode_name(in.mode), sizeof d.mode);
	d.authority = HF_COORD_BY_OPERATOR;
	hf_strlcpy(d.source, "operator", sizeof d.source);
	operator_keyids(c, body, len, d.keyids, sizeof d.keyids);
	hf_strlcpy(d.payload_sha256, in.payload_sha256, sizeof d.payload_sha256);
	d.reason = in.reason;
	d.envelope = body;
	raise_floor(c, in.issued_ms);
	if ((r = hf_coord_store_decision_add(c->store, &d, eb)) < 0 ||
	    (r = set_holds(c, &in, d.keyids, eb)) < 0) {
		pthread_mutex_lock(&c->mu);
		c->store_errors_total++;
		pthread_mutex_unlock(&c->mu);
		r = hf_fail_prefix(eb, HF_EIO, "record");
		goto out;
	}
	if (!(e = hf_coord_env_new(body, len))) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto out;
	}
	e->seq = d.seq;
	e->issued_ms = in.issued_ms;
	e->expires_ms = in.expires_ms;
	e->decided_us = hf_mono_us();
	e->authority = HF_COORD_BY_OPERATOR;
	e->hold_until_ms = in.has_hold ? in.hold_until_ms : 0;
	hf_strlcpy(e->node, in.node, sizeof e->node);
	hf_strlcpy(e->mode, d.mode, sizeof e->mode);
	hf_strlcpy(e->source, "operator", sizeof e->source);
	e->mining = json_incref(in.mining);
	e->inference = json_incref(in.inference);
	e->reason = json_incref(in.reason);
	res->nodes = hf_coord_fleet_publish(c->fleet, e, &woken);
	hf_coord_env_unref(e);
	res->seq = d.seq;
	res->issued_ms = in.issued_ms;
	pthread_mutex_lock(&c->mu);
	c->decisions_total[HF_COORD_BY_OPERATOR]++;
	pthread_mutex_unlock(&c->mu);
	r = 0;
out:
	hf_instr_clear(&in);
	return r;
}

/* ---- node auth ---- */

/* Re-reads the node set at most once a second (a miss may be a node just added by the CLI). */
static bool refresh_due(hf_coord *c)
{
	uint64_t now = hf_mono_ms();
	bool due;

	pthread_mutex_lock(&c->mu);
	due = now >= c->last_refresh_ms + AUTH_REFRESH_MS;
	if (due)
		c->last_refresh_ms = now;
	pthread_mutex_unlock(&c->mu);
	return due && hf_coord_refresh_nodes(c, NULL) >= 0;
}

bool hf_coord_known_node(hf_coord *c, const char *id)
{
	return hf_coord_fleet_has_node(c->fleet, id) ||
	       (refresh_due(c) && hf_coord_fleet_has_node(c->fleet, id));
}

int hf_coord_node_auth(hf_coord *c, const char *id, const char *token, size_t len)
{
	char hash[HF_COORD_TOKEN_HASH_LEN + 1];
	int r;

	hf_coord_token_hash(token, len, hash);
	if ((r = hf_coord_fleet_auth(c->fleet, id, hash)) != 0 && refresh_due(c))
		r = hf_coord_fleet_auth(c->fleet, id, hash);
	return r;
}

/* ---- maintenance: re-signing, the node set ---- */

static void resign_due(hf_coord *c)
{
	hf_coord_env **v = NULL;
	size_t n = hf_coord_fleet_due_resign(c->fleet, hf_wall_ms(), &v, RESIGN_BATCH);
	decide_args *a = n ? calloc(n, sizeof *a) : NULL;
	uint64_t *seqs = n ? calloc(n, sizeof *seqs) : NULL;
	uint64_t issued = n ? next_issued(c) : 0;

	for (size_t i = 0; a && seqs && i < n; i++) {
		hf_coord_env *e = v[i];
		a[i] = (decide_args){ .node = e->node, .mode = e->mode, .source = e->source,
				      .mining = e->mining, .inference = e->inference,
				      .reason = e->reason, .issued_ms = issued,
				      .expires_ms = issued + (e->expires_ms - e->issued_ms),
				      .resigned_from = e->seq };
	}
	if (n && (!a || !seqs || decide_batch(c, a, n, seqs, NULL) < 0)) {
		pthread_mutex_lock(&c->mu);
		c->resign_failed_total += n;
		pthread_mutex_unlock(&c->mu);
	}
	for (size_t i = 0; i < n; i++)
		hf_coord_env_unref(v[i]);
	free(v);
	free(a);
	free(seqs);
}

static void *maint_main(void *arg)
{
	hf_coord *c = arg;
	unsigned tick = 0;

	pthread_mutex_lock(&c->maint_mu);
	while (!c->maint_stop) {
		struct timespec ts;
		hf_abstime_after_ms(MAINT_TICK_MS, &ts);
		pthread_cond_timedwait(&c->maint_cond, &c->maint_mu, &ts);
		if (c->maint_stop)
			break;
		pthread_mutex_unlock(&c->maint_mu);
		resign_due(c);
		if (++tick % REFRESH_TICKS == 0)
			hf_coord_refresh_nodes(c, NULL);
		pthread_mutex_lock(&c->maint_mu);
	}
	pthread_mutex_unlock(&c->maint_mu);
	return NULL;
}

/* ---- sources ---- */


int hf_coord_add_source(hf_coord *c, const hf_coord_source_ops *ops, hf_errbuf *eb)
{
	void *state = NULL;
	int r;

	if (c->nsrc >= HF_COORD_MAX_SOURCES)
		return hf_fail(eb, HF_ETOOBIG, "more than %d decision sources", HF_COORD_MAX_SOURCES);
	if ((r = ops->start(c, &state, eb)) < 0)
		return hf_fail_prefix(eb, r, "decision source %s", ops->name);
	c->src[c->nsrc] = ops;
	c->src_state[c->nsrc++] = state;
	return 0;
}

json_t *hf_coord_source_view(hf_coord *c, const char *what, uint64_t now_ms)
{
	for (size_t i = 0; i < c->nsrc; i++) {
		json_t *j = c->src[i]->view ? c->src[i]->view(c->src_state[i], what, now_ms) : NULL;
		if (j)
			return j;
	}
	return NULL;
}

/* The sources' /metrics lines. */
void hf_coord_sources_metrics(hf_coord *c, uint64_t now_ms, hf_buf *b)
{
	for (size_t i = 0; i < c->nsrc; i++)
		if (c->src[i]->metrics)
			c->src[i]->metrics(c->src_state[i], now_ms, b);
}

const hf_coord_config *hf_coord_get_config(const hf_coord *c)
{
	return &c->cfg;
}

int hf_coord_node_views(hf_coord *c, uint64_t now_ms, hf_coord_node_view **out, size_t *n)
{
	return hf_coord_fleet_node_views(c->fleet, now_ms, out, n);
}

/* ---- serving ---- */

static int write_files(hf_coord *c, hf_errbuf *eb)
{
	char buf[PATH_MAX + 128], dir[PATH_MAX], host[80];
	const char *a = c->cfg.listen_address;
	int r, n;

	if (c->cfg.port_file[0]) {
		n = snprintf(buf, sizeof buf, "%u\n", (unsigned)hf_coord_port(c));
		if ((r = hf_file_write_atomic(c->cfg.port_file, buf, (size_t)n, 0644, eb)) < 0)
			return hf_fail_prefix(eb, r, "listen.port_file");
	}
	if (strcmp(a, "0.0.0.0") == 0)
		a = "127.0.0.1";
	else if (strcmp(a, "::") == 0)
		a = "::1";
	snprintf(host, sizeof host, strchr(a, ':') ? "[%s]" : "%s", a);
	hf_strlcpy(dir, c->cfg.database, sizeof dir);
	n = snprintf(buf, sizeof buf, "%s/coord-api.json", dirname(dir));
	if (n < 0 || (size_t)n >= sizeof buf)
		return hf_fail(eb, HF_ETOOBIG, "database path too long");
	hf_strlcpy(dir, buf, sizeof dir);
	n = snprintf(buf, sizeof buf, "{\"url\": \"%s://%s:%u\", \"pid\": %ld}\n",
		     c->tls_cert ? "https" : "http", host, (unsigned)hf_coord_port(c), (long)getpid());
	if ((r = hf_file_write_atomic(dir, buf, (size_t)n, 0644, eb)) < 0)
		return hf_fail_prefix(eb, r, "%s", dir);
	return 0;
}

int hf_coord_serve(hf_coord *c, hf_errbuf *eb)
{
	hf_httpd_opts o = {
		.host = c->cfg.listen_address, .port = c->cfg.port,
		.max_body = c->cfg.max_body > c->cfg.max_report_body ? c->cfg.max_body : c->cfg.max_report_body,
		.max_conns = c->cfg.max_connections, .threads = c->cfg.threads,
		.tls_cert_pem = c->tls_cert, .tls_key_pem = c->tls_key,
	};
	int r;

	if ((r = hf_httpd_new(&o, hf_coord_routes, hf_coord_nroutes, c, &c->http, eb)) < 0)
		return r;
	return write_files(c, eb);
}

uint16_t hf_coord_port(const hf_coord *c)
{
	return c->http ? hf_httpd_port(c->http) : 0;
}

unsigned hf_coord_max_conns(const hf_coord *c)
{
	return c->http ? hf_httpd_max_conns(c->http) : 0;
}

void hf_coord_free(hf_coord *c)
{
	if (!c)
		return;
	/* The server first (it waits for running handlers; parked requests are answered 503):
	 * sources may still be completing requests they took, which is allowed after it. */
	hf_httpd_free(c->http);
	c->http = NULL;
	while (c->nsrc) {
		c->nsrc--;
		c->src[c->nsrc]->stop(c->src_state[c->nsrc]);
	}
	if (c->maint_started) {
		pthread_mutex_lock(&c->maint_mu);
		c->maint_stop = true;
		pthread_cond_broadcast(&c->maint_cond);
		pthread_mutex_unlock(&c->maint_mu);
		pthread_join(c->maint, NULL);
	}
	hf_coord_fleet_free(c->fleet);
	hf_coord_store_free(c->store);
	hf_trust_free(c->trust);
	hf_key_free(c->key);
	if (c->tls_key)
		OPENSSL_cleanse(c->tls_key, strlen(c->tls_key));
	free(c->tls_key);
	free(c->tls_cert);
	pthread_cond_destroy(&c->maint_cond);
	pthread_mutex_destroy(&c->maint_mu);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* ---- metrics ---- */

void hf_coord_metrics(hf_coord *c, hf_buf *b)
{
	uint64_t dec[2], resigned, rfail, serr, held, refused[HF_REFUSE_COUNT], rep[REP_REFUSED_N];
	uint64_t floor;
	static const char *const rep_names[REP_REFUSED_N] = { "auth", "invalid", "oversize", "store" };

	pthread_mutex_lock(&c->mu);
	memcpy(dec, c->decisions_total, sizeof dec);
	memcpy(refused, c->relay_refused, sizeof refused);
	memcpy(rep, c->reports_refused, sizeof rep);
	resigned = c->resigned_total;
	rfail = c->resign_failed_total;
	serr = c->store_errors_total;
	held = c->decisions_held_total;
	floor = c->floor_ms;
	pthread_mutex_unlock(&c->mu);
	hf_prom_family(b, "hashflop_coord_decisions_total", "counter",
		       "Decisions recorded and published, by authority.");
	hf_prom_sample(b, "hashflop_coord_decisions_total", (const char *[]){ "authority", "operator" },
		       1, (double)dec[HF_COORD_BY_OPERATOR]);
	hf_prom_sample(b, "hashflop_coord_decisions_total",
		       (const char *[]){ "authority", "coordinator" }, 1, (double)dec[HF_COORD_BY_COORDINATOR]);
	hf_prom_family(b, "hashflop_coord_resigned_total", "counter",
		       "Automatic envelopes re-signed at half their TTL.");
	hf_prom_sample(b, "hashflop_coord_resigned_total", NULL, 0, (double)resigned);
	hf_prom_family(b, "hashflop_coord_resign_failed_total", "counter", "Re-signs that failed.");
	hf_prom_sample(b, "hashflop_coord_resign_failed_total", NULL, 0, (double)rfail);
	hf_prom_family(b, "hashflop_coord_decisions_held_total", "counter",
		       "Automatic decisions refused for a node under an operator hold.");
	hf_prom_sample(b, "hashflop_coord_decisions_held_total", NULL, 0, (double)held);
	hf_prom_family(b, "hashflop_coord_store_errors_total", "counter", "Record writes that failed.");
	hf_prom_sample(b, "hashflop_coord_store_errors_total", NULL, 0, (double)serr);
	hf_prom_family(b, "hashflop_coord_relays_refused_total", "counter",
		       "Operator envelopes refused at the coordinator, by reason.");
	for (int i = 1; i < HF_REFUSE_COUNT; i++)
		hf_prom_sample(b, "hashflop_coord_relays_refused_total",
			       (const char *[]){ "reason", hf_instr_refusal_name((hf_instr_refusal)i) }, 1,
			       (double)refused[i]);
	hf_prom_family(b, "hashflop_coord_reports_refused_total", "counter",
		       "Node reports refused, by reason.");
	for (int i = 0; i < REP_REFUSED_N; i++)
		hf_prom_sample(b, "hashflop_coord_reports_refused_total",
			       (const char *[]){ "reason", rep_names[i] }, 1, (double)rep[i]);
	hf_prom_family(b, "hashflop_coord_issued_floor_ms", "gauge",
		       "The highest issued_ms issued or relayed (ms since the epoch).");
	hf_prom_sample(b, "hashflop_coord_issued_floor_ms", NULL, 0, (double)floor);
}
