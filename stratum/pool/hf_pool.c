/* hf_pool: hashflop-pool's Stratum v1 server (jobs, sessions, share validation, faults).
 *
 * Failure: a client that breaks the protocol gets JSON-RPC errors; a client whose socket fails
 * is dropped and its session kept for resumption. The server itself stops only on request.
 * Threading: one accept thread (hf_pool_run) and one thread per client; shared state (jobs,
 * counters, faults, the client list) is under p->mu. Each client's socket is written only by
 * its own thread.
 */
#include "hf_pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_stratum_conn.h"
#include "hf_stratum_job.h"
#include "hf_stratum_target.h"
#include "hf_text.h"
#include "hf_util.h"

#define MAX_JOBS 32
#define DUP_RING 4096
#define MAX_LINE (64u * 1024u)
#define MAX_WORKERS_PER_CONN 8
#define MAX_SESSIONS 256
#define TICK_MS 20
#define SEND_TIMEOUT_MS 5000
#define GARBAGE "}{garbage\x01\xff not json\n"

typedef struct pjob {
	hf_stratum_job job;
	uint64_t block;
	bool used;
} pjob;

typedef struct wstats {
	struct wstats *next;
	char name[128];
	uint64_t accepted, rejected, stale;
	double diff_sum;
} wstats;

typedef struct reject_kind {
	char reason[48];
	uint64_t count;
} reject_kind;

/* A pending answer fault: the next `left` submits are withheld or rejected with text. */
typedef struct answer_fault {
	bool drop;
	int code;
	uint64_t left;
	char text[HF_POOL_FAULT_TEXT_MAX];
} answer_fault;

typedef struct client {
	struct client *next;
	hf_pool *pool;
	pthread_t th;
	int fd;
	hf_stratum_conn *conn;
	bool finished;  /* thread is done (under mu) */
	uint64_t id;
	char line[MAX_LINE + 1];
	size_t line_len;
	bool discarding;
	uint8_t en1[4];
	char session[9];
	bool subscribed;
	uint32_t mask;
	char workers[MAX_WORKERS_PER_CONN][128];
	size_t nworkers;
	double diff, prev_diff, sent_diff;
	uint64_t prev_diff_until_ms; /* shares at prev_diff count until then */
	uint64_t sent_job_gen, sent_block;
	bool sent_any, resend_job;
	uint64_t vd_start_ms, vd_shares;
	/* faults pending for this client (under mu) */
	bool f_drop, f_garbage, f_reconnect, f_message;
	char f_host[256], f_text[256];
	int f_port, f_wait;
} client;

struct hf_pool {
	hf_pool_cfg cfg;
	int lfd;
	uint16_t port;
	void *tls;
	pthread_mutex_t mu;
	bool stop;
	client *clients;
	uint64_t next_client_id;
	uint32_t next_en1;
	char sessions[MAX_SESSIONS][9]; /* released sessions that may resume */
	size_t nsessions;
	pjob jobs[MAX_JOBS];
	size_t job_next;
	uint64_t job_counter, job_gen, block;
	uint32_t height;
	uint8_t prevhash[32];
	uint8_t block_target[32];
	uint8_t dups[DUP_RING][32];
	size_t dup_next, ndups;
	wstats *workers;
	reject_kind rejects[16];
	size_t nrejects;
	answer_fault afaults[HF_POOL_ANSWER_FAULTS];
	size_t nafaults;
	uint64_t answers_dropped, fault_rejects;
	uint64_t accepted, rejected, blocks_found, connections;
	uint64_t last_block_ms, last_job_ms;
};

void hf_pool_cfg_defaults(hf_pool_cfg *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	hf_strlcpy(cfg->listen_host, "127.0.0.1", sizeof cfg->listen_host);
	cfg->difficulty = 0.001;
	cfg->en2_size = 4;
	cfg->version_mask = 0x1fffe000;
	cfg->vardiff_spm = 20;
	cfg->vardiff_min = 1e-9;
	cfg->vardiff_max = 1e12;
	cfg->version = 0x20000000;
	cfg->nbits = 0x1d00ffff;
	cfg->height = 840000;
}

/* ---- jobs (callers hold mu) ---- */

static void put_le(uint8_t *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The built-in coinbase: one input whose script starts with the BIP 34 height push, then
 * extranonce1 | extranonce2, then a tag; one 3.125 BTC output to OP_TRUE. */
static int builtin_coinbase(hf_pool *p, hf_stratum_job *j)
{
	static const char tag[] = "/hashflop-pool/";
	size_t taglen = sizeof tag - 1, script_len = 4 + 4 + p->cfg.en2_size + taglen;
	uint8_t c1[64], c2[64];
	size_t n1 = 0, n2 = 0;

	put_le(c1, 1, 4); n1 = 4;                 /* tx version */
	c1[n1++] = 1;                              /* one input */
	memset(c1 + n1, 0, 32); n1 += 32;          /* null prevout */
	memset(c1 + n1, 0xff, 4); n1 += 4;
	c1[n1++] = (uint8_t)script_len;
	c1[n1++] = 3;                              /* push 3 bytes: height */
	put_le(c1 + n1, p->height, 3); n1 += 3;
	memcpy(c2, tag, taglen); n2 = taglen;
	memset(c2 + n2, 0xff, 4); n2 += 4;         /* sequence */
	c2[n2++] = 1;                              /* one output */
	put_le(c2 + n2, 312500000, 4); put_le(c2 + n2 + 4, 0, 4); n2 += 8;
	c2[n2++] = 1; c2[n2++] = 0x51;             /* OP_TRUE */
	put_le(c2 + n2, 0, 4); n2 += 4;            /* lock time */
	j->coinb1 = malloc(n1);
	j->coinb2 = malloc(n2);
	j->branch = malloc(1);
	if (!j->coinb1 || !j->coinb2 || !j->branch)
		return HF_ENOMEM;
	memcpy(j->coinb1, c1, n1);
	memcpy(j->coinb2, c2, n2);
	j->coinb1_len = n1;
	j->coinb2_len = n2;
	return 0;
}

static int make_job_locked(hf_pool *p, bool clean)
{
	pjob *slot = &p->jobs[p->job_next];
	hf_stratum_job j = { 0 };
	hf_errbuf eb;
	char ph[65];
	int rc;

	if (p->cfg.coinb1[0] || p->cfg.coinb2[0]) {
		const char *br[32];
		for (size_t i = 0; i < p->cfg.nbranch; i++)
			br[i] = p->cfg.branch[i];
		hf_stratum_job_prevhash_encode(p->prevhash, ph);
		rc = hf_stratum_job_set_hex(&j, ph, p->cfg.coinb1, p->cfg.coinb2, br,
					    p->cfg.nbranch, &eb);
	} else {
		rc = builtin_coinbase(p, &j);
		memcpy(j.prevhash, p->prevhash, 32);
	}
	if (rc) {
		hf_stratum_job_clear(&j);
		return rc;
	}
	snprintf(j.id, sizeof j.id, "%llx", (unsigned long long)++p->job_counter);
	j.version = p->cfg.version;
	j.nbits = p->cfg.nbits;
	j.ntime = (uint32_t)(hf_wall_ms() / 1000);
	j.clean = clean;
	hf_stratum_job_clear(&slot->job);
	slot->job = j;
	slot->block = p->block;
	slot->used = true;
	p->job_next = (p->job_next + 1) % MAX_JOBS;
	p->job_gen++;
	p->last_job_ms = hf_mono_ms();
	return 0;
}

static const pjob *latest_job_locked(const hf_pool *p)
{
	const pjob *j = &p->jobs[(p->job_next + MAX_JOBS - 1) % MAX_JOBS];

	return j->used ? j : NULL;
}

static int new_block_locked(hf_pool *p)
{
	uint8_t buf[36];

	memcpy(buf, p->prevhash, 32);
	put_le(buf + 32, p->height, 4);
	hf_stratum_sha256d(buf, sizeof buf, p->prevhash);
	p->block++;
	p->height++;
	p->last_block_ms = hf_mono_ms();
	return make_job_locked(p, true);
}

/* ---- counters (callers hold mu) ---- */

static wstats *worker_locked(hf_pool *p, const char *name)
{
	wstats *w;

	for (w = p->workers; w; w = w->next)
		if (strcmp(w->name, name) == 0)
			return w;
	w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	hf_strlcpy(w->name, name, sizeof w->name);
	w->next = p->workers;
	p->workers = w;
	return w;
}

static void count_reject_locked(hf_pool *p, const char *worker, const char *reason)
{
	wstats *w = worker ? worker_locked(p, worker) : NULL;
	size_t i;

	p->rejected++;
	if (w) {
		w->rejected++;
		if (strcmp(reason, "Stale") == 0)
			w->stale++;
	}
	for (i = 0; i < p->nrejects; i++)
		if (strcmp(p->rejects[i].reason, reason) == 0)
			break;
	if (i == p->nrejects) {
		if (i == HF_ARRAY_SIZE(p->rejects))
			return;
		hf_strlcpy(p->rejects[i].reason, reason, sizeof p->rejects[i].reason);
		p->nrejects++;
	}
	p->rejects[i].count++;
}

/* ---- client I/O ---- */

static int send_json(client *c, json_t *msg)
{
	char *text;
	hf_errbuf eb;
	int rc;

	if (!msg)
		return HF_ENOMEM;
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return HF_ENOMEM;
	size_t n = strlen(text);
	text[n] = '\n'; /* replaces the NUL; length passed explicitly */
	rc = hf_stratum_conn_write_all(c->conn, text, n + 1, SEND_TIMEOUT_MS, &eb);
	free(text);
	return rc;
}

static int reply_ok(client *c, json_t *id, json_t *result)
{
	return send_json(c, json_pack("{s:O, s:o, s:n}", "id", id, "result", result, "error"));
}

static int reply_err(client *c, json_t *id, int code, const char *msg)
{
	return send_json(c, json_pack("{s:O, s:b, s:[i, s, n]}", "id", id, "result", 0, "error",
				      code, msg));
}

static int send_notify(client *c, const hf_stratum_job *j, bool clean)
{
	char ph[65], *c1 = malloc(2 * j->coinb1_len + 1), *c2 = malloc(2 * j->coinb2_len + 1);
	char v[9], nb[9], nt[9], bh[65];
	json_t *branch = json_array();
	int rc = HF_ENOMEM;

	if (!c1 || !c2 || !branch)
		goto done;
	hf_stratum_job_prevhash_encode(j->prevhash, ph);
	hf_hex_encode(j->coinb1, j->coinb1_len, c1);
	hf_hex_encode(j->coinb2, j->coinb2_len, c2);
	for (size_t i = 0; i < j->nbranch; i++) {
		hf_hex_encode(j->branch[i], 32, bh);
		json_array_append_new(branch, json_string(bh));
	}
	snprintf(v, sizeof v, "%08x", j->version);
	snprintf(nb, sizeof nb, "%08x", j->nbits);
	snprintf(nt, sizeof nt, "%08x", j->ntime);
	rc = send_json(c, json_pack("{s:n, s:s, s:[s, s, s, s, O, s, s, s, b]}", "id", "method",
				    "mining.notify", "params", j->id, ph, c1, c2, branch, v, nb, nt,
				    clean));
done:
	json_decref(branch);
	free(c1);
	free(c2);
	return rc;
}

static int send_difficulty(client *c, double d)
{
	c->sent_diff = d;
	return send_json(c, json_pack("{s:n, s:s, s:[f]}", "id", "method",
				      "mining.set_difficulty", "params", d));
}

/* ---- requests ---- */

static bool worker_known(const client *c, const char *w)
{
	for (size_t i = 0; i < c->nworkers; i++)
		if (strcmp(c->workers[i], w) == 0)
			return true;
	return false;
}

static void assign_session_locked(hf_pool *p, client *c, const char *want)
{
	bool in_use = false;
	client *o;

	if (want && strlen(want) == 8) {
		for (size_t i = 0; i < p->nsessions; i++) {
			if (strcmp(p->sessions[i], want) != 0)
				continue;
			for (o = p->clients; o; o = o->next)
				if (o != c && strcmp(o->session, want) == 0)
					in_use = true;
			if (!in_use && hf_hex_decode(want, 8, c->en1, 4)) {
				hf_strlcpy(c->session, want, sizeof c->session);
				memmove(p->sessions[i], p->sessions[i + 1],
					sizeof p->sessions[0] * (p->nsessions - i - 1));
				p->nsessions--;
				return;
			}
		}
	}
	put_le(c->en1, ++p->next_en1 * 2654435761u, 4); /* spread, still unique */
	hf_hex_encode(c->en1, 4, c->session);
}

static int on_subscribe(client *c, json_t *id, const json_t *params)
{
	hf_pool *p = c->pool;
	const char *want = json_string_value(json_array_get(params, 1));

	pthread_mutex_lock(&p->mu);
	if (!c->subscribed)
		assign_session_locked(p, c, want);
	c->subscribed = true;
	pthread_mutex_unlock(&p->mu);
	return reply_ok(c, id, json_pack("[[[s, s], [s, s]], s, i]", "mining.set_difficulty",
					 c->session, "mining.notify", c->session, c->session,
					 (int)p->cfg.en2_size));
}

static int on_configure(client *c, json_t *id, const json_t *params)
{
	const json_t *exts = json_array_get(params, 0), *o = json_array_get(params, 1), *e;
	uint32_t want = 0xffffffff;
	const char *ms = json_string_value(json_object_get(o, "version-rolling.mask"));
	uint8_t b[4];
	char hex[9];
	size_t i;
	bool asked = false;

	json_array_foreach(exts, i, e)
		if (json_is_string(e) && strcmp(json_string_value(e), "version-rolling") == 0)
			asked = true;
	if (!asked)
		return reply_ok(c, id, json_object());
	if (ms && hf_hex_decode(ms, strlen(ms), b, 4))
		want = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	c->mask = c->pool->cfg.version_mask & want;
	if (!c->mask)
		return reply_ok(c, id, json_pack("{s:b}", "version-rolling", 0));
	snprintf(hex, sizeof hex, "%08x", c->mask);
	return reply_ok(c, id, json_pack("{s:b, s:s}", "version-rolling", 1,
					 "version-rolling.mask", hex));
}

static int on_authorize(client *c, json_t *id, const json_t *params)
{
	hf_pool *p = c->pool;
	const char *user = json_string_value(json_array_get(params, 0));
	bool refuse;

	pthread_mutex_lock(&p->mu);
	refuse = p->cfg.refuse_authorize;
	pthread_mutex_unlock(&p->mu);
	if (!user || !user[0] || strlen(user) >= sizeof c->workers[0] || refuse) {
		hf_log_info("client %llu: authorize refused for \"%.64s\"",
			    (unsigned long long)c->id, user ? user : "");
		return reply_err(c, id, 24, "Unauthorized worker");
	}
	if (!worker_known(c, user) && c->nworkers < MAX_WORKERS_PER_CONN)
		hf_strlcpy(c->workers[c->nworkers++], user, sizeof c->workers[0]);
	hf_log_info("client %llu: authorized %s", (unsigned long long)c->id, user);
	return reply_ok(c, id, json_true());
}

static bool hex32(const json_t *v, uint32_t *out)
{
	const char *s = json_string_value(v);
	uint8_t b[4];

	if (!s || !hf_hex_decode(s, strlen(s), b, 4))
		return false;
	*out = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

static void vardiff_after_share(client *c)
{
	hf_pool_cfg *cfg = &c->pool->cfg;
	uint64_t now = hf_mono_ms(), el = now - c->vd_start_ms;
	double rate, nd;

	c->vd_shares++;
	if (!cfg->vardiff || (c->vd_shares < 8 && el < 15000))
		return;
	rate = (double)c->vd_shares * 60000.0 / (double)(el ? el : 1);
	nd = c->diff * rate / cfg->vardiff_spm;
	if (nd < cfg->vardiff_min)
		nd = cfg->vardiff_min;
	if (nd > cfg->vardiff_max)
		nd = cfg->vardiff_max;
	c->vd_start_ms = now;
	c->vd_shares = 0;
	if (nd > c->diff * 1.5 || nd < c->diff / 1.5) {
		c->diff = nd;
		c->resend_job = true; /* resend the job with the new difficulty */
	}
}

/* Validates one share; returns the reject code (0: accepted) and fills reason. */
static int check_share(client *c, const json_t *params, const char **reason, char *hashhex,
		       double *sdiff)
{
	hf_pool *p = c->pool;
	const char *worker = json_string_value(json_array_get(params, 0));
	const char *jid = json_string_value(json_array_get(params, 1));
	const char *en2 = json_string_value(json_array_get(params, 2));
	const json_t *vb = json_array_get(params, 5);
	hf_stratum_share sh = { 0 };
	hf_stratum_job job = { 0 };
	uint8_t hash[32], tgt[32];
	uint32_t vbits = 0;
	bool found = false, stale = false;
	int code = 0;

	if (!worker || !jid || !en2 || json_array_size(params) < 5)
		return *reason = "Malformed submit", 20;
	if (!worker_known(c, worker))
		return *reason = "Unauthorized worker", 24;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < MAX_JOBS; i++) {
		if (p->jobs[i].used && strcmp(p->jobs[i].job.id, jid) == 0) {
			found = true;
			stale = p->jobs[i].block != p->block;
			if (!stale && hf_stratum_job_copy(&job, &p->jobs[i].job))
				found = false;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (!found)
		return *reason = "Unknown job", 20;
	if (stale)
		return *reason = "Stale", 21;
	if (strlen(en2) != 2 * c->pool->cfg.en2_size ||
	    !hf_hex_decode(en2, strlen(en2), sh.en2, c->pool->cfg.en2_size)) {
		code = 20, *reason = "Invalid extranonce2 size";
		goto done;
	}
	sh.en2_len = c->pool->cfg.en2_size;
	if (!hex32(json_array_get(params, 3), &sh.ntime) || sh.ntime < job.ntime ||
	    sh.ntime > job.ntime + 7200) {
		code = 20, *reason = "Bad ntime";
		goto done;
	}
	if (!hex32(json_array_get(params, 4), &sh.nonce)) {
		code = 20, *reason = "Malformed nonce";
		goto done;
	}
	if (vb && (!hex32(vb, &vbits) || (vbits & ~c->mask))) {
		code = 20, *reason = "Bad version bits";
		goto done;
	}
	hf_strlcpy(sh.job_id, jid, sizeof sh.job_id);
	sh.version = hf_stratum_version_roll(job.version, c->mask, vbits);
	if (hf_stratum_job_share_hash(&job, c->en1, 4, &sh, NULL, hash)) {
		code = 20, *reason = "Internal error";
		goto done;
	}
	hf_stratum_u256_hex(hash, hashhex);
	*sdiff = hf_stratum_hash_difficulty(hash);
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->ndups; i++) {
		if (memcmp(p->dups[i], hash, 32) == 0) {
			code = 22, *reason = "Duplicate";
			break;
		}
	}
	if (!code) {
		double d = c->diff;
		if (c->prev_diff > 0 && hf_mono_ms() < c->prev_diff_until_ms)
			d = fmin(d, c->prev_diff);
		hf_stratum_target_from_diff(d, tgt);
		if (!hf_stratum_hash_meets(hash, tgt)) {
			code = 23, *reason = "Above target";
		} else {
			memcpy(p->dups[p->dup_next], hash, 32);
			p->dup_next = (p->dup_next + 1) % DUP_RING;
			if (p->ndups < DUP_RING)
				p->ndups++;
			if (hf_stratum_hash_meets(hash, p->block_target))
				p->blocks_found++;
		}
	}
	pthread_mutex_unlock(&p->mu);
done:
	hf_stratum_job_clear(&job);
	return code;
}

/* Takes the head of the answer-fault queue for one submit (false: none pending). */
static bool take_answer_fault(hf_pool *p, const char *worker, answer_fault *out)
{
	bool have = false;

	pthread_mutex_lock(&p->mu);
	if (p->nafaults) {
		answer_fault *f = &p->afaults[0];
		*out = *f;
		have = true;
		if (--f->left == 0) {
			memmove(&p->afaults[0], &p->afaults[1], sizeof p->afaults[0] * (p->nafaults - 1));
			p->nafaults--;
		}
		if (out->drop) {
			p->answers_dropped++;
		} else {
			p->fault_rejects++;
			count_reject_locked(p, worker, out->text);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return have;
}

static int on_submit(client *c, json_t *id, const json_t *params)
{
	hf_pool *p = c->pool;
	const char *worker = json_string_value(json_array_get(params, 0));
	const char *reason = "";
	char hashhex[65] = "", who[64], why[160];
	double sdiff = 0;
	answer_fault *f = malloc(sizeof *f);
	int code;
	wstats *w;

	hf_text_clean(who, sizeof who, worker ? worker : "?", worker ? strlen(worker) : 1);
	if (f && take_answer_fault(p, worker && worker_known(c, worker) ? worker : NULL, f)) {
		hf_text_clean(why, sizeof why, f->text, strlen(f->text));
		if (f->drop)
			hf_log_info("client %llu: fault: submit from %s read, never answered",
				    (unsigned long long)c->id, who);
		else
			hf_log_info("client %llu: fault: submit from %s rejected: %d %s",
				    (unsigned long long)c->id, who, f->code, why);
		code = f->drop ? 0 : reply_err(c, id, f->code, f->text);
		free(f);
		return code;
	}
	free(f);
	code = check_share(c, params, &reason, hashhex, &sdiff);

	pthread_mutex_lock(&p->mu);
	if (code) {
		count_reject_locked(p, worker_known(c, worker ? worker : "") ? worker : NULL,
				    reason);
	} else {
		p->accepted++;
		w = worker_locked(p, worker);
		if (w) {
			w->accepted++;
			w->diff_sum += c->diff;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (code) {
		hf_log_info("client %llu: rejected share from %s: %d %s",
			    (unsigned long long)c->id, who, code, reason);
		return reply_err(c, id, code, reason);
	}
	hf_log_notice("accepted share worker=%s job=%s diff=%.6g sdiff=%.6g hash=%s", who,
		      json_string_value(json_array_get(params, 1)), c->diff, sdiff, hashhex);
	vardiff_after_share(c);
	return reply_ok(c, id, json_true());
}

static int on_suggest(client *c, json_t *id, const json_t *params)
{
	double d = json_number_value(json_array_get(params, 0));

	if (d > 0 && isfinite(d) && c->pool->cfg.vardiff) {
		c->diff = fmax(c->pool->cfg.vardiff_min, fmin(d, c->pool->cfg.vardiff_max));
		c->resend_job = true;
	}
	return reply_ok(c, id, json_true());
}

static int handle_line(client *c, const char *line, size_t len)
{
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL), *id, *params;
	const char *m;
	int rc = 0;

	if (!root || !json_is_object(root)) {
		hf_log_info("client %llu: malformed line ignored", (unsigned long long)c->id);
		json_decref(root);
		return 0;
	}
	id = json_object_get(root, "id");
	if (!id)
		id = json_null();
	params = json_object_get(root, "params");
	m = json_string_value(json_object_get(root, "method"));
	if (!m) {
		/* A response (to client.get_version or mining.ping): nothing to do. */
	} else if (!json_is_array(params)) {
		rc = reply_err(c, id, 20, "params must be an array");
	} else if (strcmp(m, "mining.subscribe") == 0) {
		rc = on_subscribe(c, id, params);
	} else if (strcmp(m, "mining.configure") == 0) {
		rc = on_configure(c, id, params);
	} else if (strcmp(m, "mining.authorize") == 0) {
		rc = on_authorize(c, id, params);
	} else if (strcmp(m, "mining.submit") == 0) {
		rc = on_submit(c, id, params);
	} else if (strcmp(m, "mining.extranonce.subscribe") == 0) {
		rc = reply_ok(c, id, json_true());
	} else if (strcmp(m, "mining.suggest_difficulty") == 0) {
		rc = on_suggest(c, id, params);
	} else {
		rc = reply_err(c, id, 20, "Method not found");
	}
	json_decref(root);
	return rc;
}

static int feed(client *c, const char *buf, size_t n)
{
	const char *end = buf + n;

	while (buf < end) {
		const char *nl = memchr(buf, '\n', (size_t)(end - buf));
		size_t chunk = (size_t)((nl ? nl : end) - buf);
		int rc;
		if (!c->discarding) {
			if (c->line_len + chunk > MAX_LINE) {
				c->discarding = true;
				hf_log_info("client %llu: oversize line discarded",
					    (unsigned long long)c->id);
			} else {
				memcpy(c->line + c->line_len, buf, chunk);
				c->line_len += chunk;
			}
		}
		if (!nl)
			break;
		if (!c->discarding && c->line_len) {
			size_t l = c->line_len;
			if (c->line[l - 1] == '\r')
				l--;
			rc = handle_line(c, c->line, l);
			if (rc)
				return rc;
		}
		c->discarding = false;
		c->line_len = 0;
		buf = nl + 1;
	}
	return 0;
}

/* Applies faults addressed to this client and sends new work; false: drop the client. */
static bool client_tick(client *c)
{
	hf_pool *p = c->pool;
	bool drop, garbage, recon, msg, stall;
	hf_stratum_job job = { 0 };
	bool have_job = false, clean = false;
	uint64_t gen = 0;
	char host[256], text[256];
	int port, wait;

	pthread_mutex_lock(&p->mu);
	drop = c->f_drop;
	garbage = c->f_garbage;
	recon = c->f_reconnect;
	msg = c->f_message;
	stall = p->cfg.stall;
	hf_strlcpy(host, c->f_host, sizeof host);
	hf_strlcpy(text, c->f_text, sizeof text);
	port = c->f_port;
	wait = c->f_wait;
	c->f_garbage = c->f_reconnect = c->f_message = false;
	if (c->nworkers && (p->job_gen != c->sent_job_gen || c->resend_job) && !stall) {
		const pjob *pj = latest_job_locked(p);
		if (pj && hf_stratum_job_copy(&job, &pj->job) == 0) {
			have_job = true;
			clean = pj->block != c->sent_block || !c->sent_any;
			c->sent_block = pj->block;
		}
		gen = p->job_gen;
	}
	pthread_mutex_unlock(&p->mu);
	if (drop)
		return false;
	if (garbage && hf_stratum_conn_write_all(c->conn, GARBAGE, sizeof GARBAGE - 1,
						   SEND_TIMEOUT_MS, NULL))
		return false;
	if (msg && send_json(c, json_pack("{s:n, s:s, s:[s]}", "id", "method",
					  "client.show_message", "params", text)))
		return false;
	if (recon) {
		json_t *params = json_array();
		if (host[0] || port || wait) {
			json_array_append_new(params, json_string(host));
			json_array_append_new(params, json_integer(port));
			json_array_append_new(params, json_integer(wait));
		}
		if (send_json(c, json_pack("{s:n, s:s, s:o}", "id", "method", "client.reconnect",
					   "params", params)))
			return false;
	}
	if (have_job) {
		int rc = 0;
		if (c->sent_diff != c->diff) {
			c->prev_diff = c->sent_diff;
			c->prev_diff_until_ms = hf_mono_ms() + 10000;
			rc = send_difficulty(c, c->diff);
		}
		if (!rc)
			rc = send_notify(c, &job, clean);
		hf_stratum_job_clear(&job);
		if (rc)
			return false;
		c->sent_job_gen = gen;
		c->sent_any = true;
		c->resend_job = false;
	}
	return true;
}

static void *client_main(void *arg)
{
	client *c = arg;
	hf_pool *p = c->pool;
	hf_errbuf eb;
	char buf[16384];

	if (hf_stratum_conn_accept(c->fd, p->tls, 5000, &c->conn, &eb)) {
		hf_log_info("client %llu: %s", (unsigned long long)c->id, eb.msg);
		goto out;
	}
	c->vd_start_ms = hf_mono_ms();
	for (;;) {
		struct pollfd pfd = { .fd = hf_stratum_conn_fd(c->conn), .events = POLLIN };
		bool stop, stall;
		size_t n;
		int rc;

		pthread_mutex_lock(&p->mu);
		stop = p->stop;
		stall = p->cfg.stall;
		pthread_mutex_unlock(&p->mu);
		if (stop || !client_tick(c))
			break;
		if (stall) {
			poll(NULL, 0, TICK_MS);
			continue;
		}
		if (!hf_stratum_conn_pending(c->conn) && poll(&pfd, 1, TICK_MS) <= 0)
			continue;
		for (;;) {
			rc = hf_stratum_conn_read(c->conn, buf, sizeof buf, &n, &eb);
			if (rc)
				break;
			if (feed(c, buf, n)) {
				rc = HF_EIO;
				break;
			}
		}
		if (rc != HF_EBUSY) {
			hf_log_info("client %llu: %s", (unsigned long long)c->id,
				    rc == HF_EIO ? "disconnected" : eb.msg);
			break;
		}
	}
out:
	hf_stratum_conn_free(c->conn);
	c->conn = NULL;
	pthread_mutex_lock(&p->mu);
	if (c->session[0]) {
		if (p->nsessions == MAX_SESSIONS) {
			memmove(p->sessions[0], p->sessions[1], sizeof p->sessions[0] *
				(MAX_SESSIONS - 1));
			p->nsessions--;
		}
		hf_strlcpy(p->sessions[p->nsessions++], c->session, sizeof p->sessions[0]);
		c->session[0] = '\0';
	}
	c->finished = true;
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- server ---- */

int hf_pool_new(const hf_pool_cfg *cfg, hf_pool **out, hf_errbuf *eb)
{
	hf_pool *p = calloc(1, sizeof *p);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cfg->port) };
	socklen_t len = sizeof sa;
	int one = 1, rc;

	if (!p)
		return hf_fail(eb, HF_ENOMEM, "pool: out of memory");
	p->cfg = *cfg;
	p->lfd = -1;
	pthread_mutex_init(&p->mu, NULL);
	p->height = cfg->height;
	if (cfg->prevhash[0]) {
		uint8_t be[32];
		if (!hf_hex_decode(cfg->prevhash, strlen(cfg->prevhash), be, 32)) {
			rc = hf_fail(eb, HF_ECONFIG, "template.prevhash: expected 64 hex digits");
			goto fail;
		}
		for (int i = 0; i < 32; i++)
			p->prevhash[i] = be[31 - i];
	}
	if (hf_stratum_target_from_nbits(cfg->nbits, p->block_target)) {
		rc = hf_fail(eb, HF_ECONFIG, "template.nbits: not a valid compact target");
		goto fail;
	}
	if (inet_pton(AF_INET, cfg->listen_host, &sa.sin_addr) != 1) {
		rc = hf_fail(eb, HF_ECONFIG, "listen: expected an IPv4 address, got \"%s\"",
			     cfg->listen_host);
		goto fail;
	}
	if (cfg->tls_cert[0] || cfg->tls_key[0]) {
		rc = hf_stratum_tls_server_ctx(cfg->tls_cert, cfg->tls_key, &p->tls, eb);
		if (rc)
			goto fail;
	}
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(p->lfd, 64) ||
	    getsockname(p->lfd, (struct sockaddr *)&sa, &len)) {
		rc = hf_fail(eb, HF_ENET, "listen %s:%u: %s", cfg->listen_host, cfg->port,
			     strerror(errno));
		goto fail;
	}
	p->port = ntohs(sa.sin_port);
	rc = make_job_locked(p, true);
	if (rc) {
		hf_fail(eb, rc, "template: cannot build a job (check coinb1, coinb2, branch)");
		goto fail;
	}
	p->last_block_ms = hf_mono_ms();
	*out = p;
	return 0;
fail:
	hf_pool_free(p);
	return rc;
}

uint16_t hf_pool_port(const hf_pool *p)
{
	return p->port;
}

static void reap_locked(hf_pool *p, bool all)
{
	client **pp = &p->clients;

	while (*pp) {
		client *c = *pp;
		if (c->finished || all) {
			*pp = c->next;
			pthread_mutex_unlock(&p->mu);
			pthread_join(c->th, NULL);
			pthread_mutex_lock(&p->mu);
			free(c);
			pp = &p->clients; /* the list may have changed while unlocked */
			continue;
		}
		pp = &c->next;
	}
}

static void timers_locked(hf_pool *p)
{
	uint64_t now = hf_mono_ms();

	if (p->cfg.block_interval_ms && now - p->last_block_ms >= p->cfg.block_interval_ms)
		new_block_locked(p);
	else if (p->cfg.job_interval_ms && now - p->last_job_ms >= p->cfg.job_interval_ms)
		make_job_locked(p, false);
}

int hf_pool_run(hf_pool *p)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
		client *c;
		int fd;
		bool stop;

		pthread_mutex_lock(&p->mu);
		stop = p->stop;
		reap_locked(p, false);
		timers_locked(p);
		pthread_mutex_unlock(&p->mu);
		if (stop)
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->pool = p;
		c->fd = fd;
		c->diff = p->cfg.difficulty;
		pthread_mutex_lock(&p->mu);
		c->id = ++p->next_client_id;
		p->connections++;
		if (pthread_create(&c->th, NULL, client_main, c)) {
			pthread_mutex_unlock(&p->mu);
			close(fd);
			free(c);
			continue;
		}
		c->next = p->clients;
		p->clients = c;
		pthread_mutex_unlock(&p->mu);
		hf_log_info("client %llu: connected", (unsigned long long)c->id);
	}
	pthread_mutex_lock(&p->mu);
	reap_locked(p, true);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void hf_pool_stop(hf_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_mutex_unlock(&p->mu);
}

void hf_pool_free(hf_pool *p)
{
	wstats *w, *next;

	if (!p)
		return;
	for (size_t i = 0; i < MAX_JOBS; i++)
		hf_stratum_job_clear(&p->jobs[i].job);
	for (w = p->workers; w; w = next) {
		next = w->next;
		free(w);
	}
	if (p->lfd >= 0)
		close(p->lfd);
	hf_stratum_tls_ctx_free(p->tls);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static bool on_flag(const char *on)
{
	return !on || strcmp(on, "0") != 0;
}

/* drop_answer / reject: one more entry in the answer-fault queue. */
static int queue_answer_fault_locked(hf_pool *p, bool drop, const hf_pool_fault_args *a,
				     hf_errbuf *eb)
{
	answer_fault *f;
	uint64_t count = 1, code = 20;
	const char *text = a->text ? a->text : "Rejected by fault injection";

	if (a->count && !hf_parse_u64(a->count, 1, 1000000, &count))
		return hf_fail(eb, HF_EINVAL, "count: expected 1 to 1000000");
	if (!drop && a->code && !hf_parse_u64(a->code, 1, 99, &code))
		return hf_fail(eb, HF_EINVAL, "code: expected 1 to 99");
	if (!drop && (!text[0] || strlen(text) >= HF_POOL_FAULT_TEXT_MAX ||
		      !hf_utf8_valid(text, strlen(text))))
		return hf_fail(eb, HF_EINVAL, "text: expected 1 to %d bytes of valid UTF-8",
			       HF_POOL_FAULT_TEXT_MAX - 1);
	if (p->nafaults == HF_POOL_ANSWER_FAULTS)
		return hf_fail(eb, HF_EBUSY, "%d answer faults already pending",
			       HF_POOL_ANSWER_FAULTS);
	f = &p->afaults[p->nafaults++];
	memset(f, 0, sizeof *f);
	f->drop = drop;
	f->code = (int)code;
	f->left = count;
	if (!drop)
		hf_strlcpy(f->text, text, sizeof f->text);
	return 0;
}

int hf_pool_fault(hf_pool *p, const char *kind, const hf_pool_fault_args *args, hf_errbuf *eb)
{
	static const hf_pool_fault_args none = { 0 };
	const hf_pool_fault_args *a = args ? args : &none;
	const char *msg = a->text ? a->text : a->host;
	uint64_t v;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (strcmp(kind, "new_block") == 0) {
		rc = new_block_locked(p);
	} else if (strcmp(kind, "refuse_authorize") == 0) {
		p->cfg.refuse_authorize = on_flag(a->on);
	} else if (strcmp(kind, "stall") == 0) {
		p->cfg.stall = on_flag(a->on);
	} else if (strcmp(kind, "drop_answer") == 0 || strcmp(kind, "reject") == 0) {
		rc = queue_answer_fault_locked(p, kind[0] == 'd', a, eb);
	} else if (strcmp(kind, "drop") == 0 || strcmp(kind, "garbage") == 0 ||
		   strcmp(kind, "reconnect") == 0 || strcmp(kind, "show_message") == 0) {
		for (client *c = p->clients; c; c = c->next) {
			if (kind[0] == 'd')
				c->f_drop = true;
			else if (kind[0] == 'g')
				c->f_garbage = true;
			else if (kind[0] == 's') {
				c->f_message = true;
				hf_strlcpy(c->f_text, msg ? msg : "hello from hashflop-pool",
					   sizeof c->f_text);
			} else {
				c->f_reconnect = true;
				hf_strlcpy(c->f_host, a->host ? a->host : "", sizeof c->f_host);
				c->f_port = a->port && hf_parse_u64(a->port, 0, 65535, &v) ? (int)v : 0;
				c->f_wait = a->wait && hf_parse_u64(a->wait, 0, 3600, &v) ? (int)v : 0;
			}
		}
	} else {
		char name[48];
		hf_text_clean(name, sizeof name, kind, strlen(kind));
		rc = hf_fail(eb, HF_EINVAL, "unknown fault \"%s\" (expected drop, garbage, "
			     "reconnect, new_block, refuse_authorize, stall, show_message, "
			     "drop_answer, reject)", name);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

json_t *hf_pool_stats_json(hf_pool *p)
{
	json_t *j = json_object(), *rej = json_object(), *ws = json_object();
	size_t live = 0;

	pthread_mutex_lock(&p->mu);
	for (client *c = p->clients; c; c = c->next)
		live += !c->finished;
	for (size_t i = 0; i < p->nrejects; i++)
		json_object_set_new(rej, p->rejects[i].reason,
				    json_integer((json_int_t)p->rejects[i].count));
	for (wstats *w = p->workers; w; w = w->next)
		json_object_set_new(ws, w->name, json_pack("{s:I, s:I, s:I, s:f}",
			"accepted", (json_int_t)w->accepted, "rejected", (json_int_t)w->rejected,
			"stale", (json_int_t)w->stale, "difficulty_sum", w->diff_sum));
	json_object_set_new(j, "clients", json_integer((json_int_t)live));
	json_object_set_new(j, "connections", json_integer((json_int_t)p->connections));
	json_object_set_new(j, "accepted", json_integer((json_int_t)p->accepted));
	json_object_set_new(j, "rejected", json_integer((json_int_t)p->rejected));
	json_object_set_new(j, "blocks_found", json_integer((json_int_t)p->blocks_found));
	json_object_set_new(j, "height", json_integer(p->height));
	json_object_set_new(j, "jobs", json_integer((json_int_t)p->job_counter));
	json_object_set_new(j, "refuse_authorize", json_boolean(p->cfg.refuse_authorize));
	json_object_set_new(j, "stall", json_boolean(p->cfg.stall));
	json_object_set_new(j, "answers_dropped", json_integer((json_int_t)p->answers_dropped));
	json_object_set_new(j, "fault_rejects", json_integer((json_int_t)p->fault_rejects));
	json_object_set_new(j, "answer_faults_pending", json_integer((json_int_t)p->nafaults));
	pthread_mutex_unlock(&p->mu);
	json_object_set_new(j, "rejects", rej);
	json_object_set_new(j, "workers", ws);
	return j;
}
