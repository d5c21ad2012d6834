/* hf_coord_profit: the live "policy" decision source: profit.json, the evaluation loop, the
 * figures learnt from reports, decisions through hf_coord_decide_many, the views and metrics.
 *
 * Learning (hf_coord_learn_*: the rules are in hf_coord_profit.h): from the fleet's in-memory
 * summary of each node's last report, sampled once per evaluation (no SQL per node).
 * A node's mode is its effective envelope's mode (else the mode its last report says it is in
 * or switching to: desired_mode, as a node starting up reports mode idle; else initial_mode);
 * mode_since_ms is when that mode was decided: the envelope's issued_ms when the mode changed,
 * kept across re-signs and repeats (0, "long ago", for a node no envelope ever moved).
 * Invariants: per-node state is a sorted array keyed by id, rebuilt by a merge with the
 * fleet's sorted view every evaluation (nodes added and removed follow); the published
 * snapshot is immutable and reference-counted, so views never block an evaluation.
 * Threading: the loop thread owns the per-node state and the spec; snap_mu guards the
 * snapshot pointer and the counters; views and metrics run on the server's threads.
 */
#include "hf_coord_profit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_config.h"
#include "hf_coord_feed.h"
#include "hf_coord_feeds.h"
#include "hf_coord_policy.h"
#include "hf_instr.h"
#include "hf_log.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"

#define MARGIN_METRIC_MAX 1000   /* per-node margin gauges only up to this many nodes */
#define FIRST_ROUND_WAIT_MS 200  /* before the first evaluation: the feeds' first round */
#define PROFIT_FILE_MAX (4u << 20)

/* ---- profit.json ---- */

typedef struct profit_cfg {
	hf_coord_feeds_spec feeds;
	hf_coord_fleet_spec fleet;
	json_t *payload[HF_COORD_NMODES];  /* [MINING] {"pools"}, [INFERENCE] {"models"}, or NULL */
	hf_coord_mode initial;
} profit_cfg;

static void profit_cfg_clear(profit_cfg *p)
{
	hf_coord_fleet_spec_clear(&p->fleet);
	for (int m = 0; m < HF_COORD_NMODES; m++)
		json_decref(p->payload[m]);
	memset(p, 0, sizeof *p);
}

/* Validates one mode's payload as a node would: a probe instruction through the contract's
 * payload parser (the one hf_coord_decide and the nodes use). */
static int check_payload(const char *mode, const json_t *v, hf_errbuf *eb)
{
	json_t *probe = json_pack("{s:i, s:s, s:s, s:i, s:i, s:s, s:O}", "v", 1, "fleet", "probe",
				  "node", "probe", "issued_ms", 1, "expires_ms", 2, "mode", mode,
				  mode, v);
	char *text = probe ? json_dumps(probe, JSON_COMPACT) : NULL;
	hf_instr in;
	int r;

	json_decref(probe);
	if (!text)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	memset(&in, 0, sizeof in);
	r = hf_instr_parse_payload(text, strlen(text), &in, eb);
	hf_instr_clear(&in);
	free(text);
	return r < 0 ? HF_ECONFIG : 0;
}

static int profit_parse(const json_t *root, profit_cfg *out, hf_errbuf *eb)
{
	static const char *const modes[] = { "idle", "mining", "inference", NULL };
	static const char *const top[] = { "feeds", "policy", "classes", "nodes", "default_class",
					   "mining", "inference", "initial_mode", NULL };
	const json_t *feeds = NULL, *mining = NULL, *inference = NULL, *v;
	const char *key;
	int initial = HF_COORD_MINING, r;
	hf_cfg_field f[] = {
		{ .key = "feeds", .type = HF_CFG_OBJECT, .dst = &feeds },
		{ .key = "mining", .type = HF_CFG_OBJECT, .dst = &mining },
		{ .key = "inference", .type = HF_CFG_OBJECT, .dst = &inference },
		{ .key = "initial_mode", .type = HF_CFG_ENUM, .dst = &initial, .choices = modes },
	};

	memset(out, 0, sizeof *out);
	if (!json_is_object(root))
		return hf_fail(eb, HF_ECONFIG, "expected a JSON object");
	json_object_foreach((json_t *)root, key, v) {
		size_t i;
		for (i = 0; top[i] && strcmp(top[i], key) != 0; i++)
			;
		if (!top[i]) {
			char k[64];
			hf_text_clean(k, sizeof k, key, strlen(key));
			return hf_fail(eb, HF_ECONFIG, "%s: unknown key (expected feeds, policy, classes, "
				       "nodes, default_class, mining, inference, initial_mode)", k);
		}
	}
	/* this file's own keys (the policy's sections are read by hf_coord_fleet_spec_parse) */
	json_t *mine = json_object();
	for (size_t i = 0; mine && i < HF_ARRAY_SIZE(f); i++)
		if ((v = json_object_get(root, f[i].key)) != NULL)
			json_object_set(mine, f[i].key, (json_t *)v);
	if (!mine)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	r = hf_cfg_read(mine, "", f, HF_ARRAY_SIZE(f), eb);
	json_decref(mine); /* the borrowed values stay alive in root */
	if (r < 0)
		return r;
	if ((r = hf_coord_feeds_spec_parse(feeds, &out->feeds, eb)) < 0)
		return r;
	if ((r = hf_coord_fleet_spec_parse(root, &out->fleet, eb)) < 0)
		return r;
	if ((mining && (r = check_payload("mining", mining, eb)) < 0) ||
	    (inference && (r = check_payload("inference", inference, eb)) < 0)) {
		hf_coord_fleet_spec_clear(&out->fleet);
		return r;
	}
	out->payload[HF_COORD_MINING] = json_deep_copy(mining);
	out->payload[HF_COORD_INFERENCE] = json_deep_copy(inference);
	if ((mining && !out->payload[HF_COORD_MINING]) ||
	    (inference && !out->payload[HF_COORD_INFERENCE])) {
		profit_cfg_clear(out);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	out->initial = (hf_coord_mode)initial;
	return 0;
}

static int profit_load(const char *path, profit_cfg *out, hf_errbuf *eb)
{
	json_t *root = NULL;
	int r = hf_cfg_load_file(path, PROFIT_FILE_MAX, &root, eb);

	memset(out, 0, sizeof *out);
	if (r < 0)
		return hf_fail_prefix(eb, r, "profit_file");
	r = profit_parse(root, out, eb);
	json_decref(root);
	if (r < 0)
		return hf_fail_prefix(eb, r, "profit_file %s", path);
	return 0;
}

int hf_coord_profit_check(const char *path, hf_errbuf *eb)
{
	profit_cfg p;
	int r = profit_load(path, &p, eb);

	if (r == 0)
		profit_cfg_clear(&p);
	return r;
}

/* ---- per-node state ---- */

typedef struct nstate {
	char id[HF_COORD_NODE_ID_MAX + 1];
	bool have_mode;
	hf_coord_mode mode;
	uint64_t mode_since_ms;
	hf_coord_mode lead;          /* the policy's own (hf_coord_pnode.state) */
	unsigned streak;
	hf_coord_learnt learnt;      /* its figures, from its reports */
} nstate;

/* One node of a published snapshot. */
typedef struct snode {
	char id[HF_COORD_NODE_ID_MAX + 1];
	const hf_coord_class *cls;   /* NULL: skipped (why) */
	char why[160];
	hf_coord_pnode pn;           /* pn.id points at id */
	hf_coord_verdict v;
	hf_coord_mode from;
	bool decided;                /* a decision was recorded for this verdict */
	char decide_error[160];
} snode;

typedef struct snapshot {
	atomic_int refs;
	uint64_t evaluated_ms, evaluation, took_us;
	hf_coord_market m;
	snode *v;
	size_t n, skipped;
} snapshot;

typedef struct policy_src {
	hf_coord *c;
	profit_cfg cfg;
	hf_coord_feeds *feeds;
	nstate *st;                  /* sorted by id */
	size_t nst;
	bool was_stale;
	pthread_t thread;
	pthread_mutex_t mu;          /* stop, cv */
	pthread_cond_t cv;
	bool stop;
	pthread_mutex_t snap_mu;     /* snap and the counters */
	snapshot *snap;
	uint64_t evaluations, decisions, decide_failed, holds[2]; /* [0] stale, [1] hold */
} policy_src;

static void snap_unref(snapshot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	free(s->v);
	free(s);
}

static snapshot *snap_get(policy_src *p)
{
	snapshot *s;
	pthread_mutex_lock(&p->snap_mu);
	s = p->snap;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&p->snap_mu);
	return s;
}

static void ewma(double *slot, unsigned *mask, unsigned bit, double sample)
{
	*slot = (*mask & bit) ? (1 - HF_COORD_LEARN_ALPHA) * *slot + HF_COORD_LEARN_ALPHA * sample
			      : sample;
	*mask |= bit;
}

static bool positive(double v)
{
	return isfinite(v) && v > 0;
}

static void learn_ips(hf_coord_learnt *l, double ips, uint64_t wall_ms)
{
	uint64_t slot = wall_ms / HF_COORD_LEARN_SLOT_MS;
	size_t i = (size_t)(slot % HF_COORD_LEARN_SLOTS);

	if (l->ips_slot[i] != slot) {
		l->ips_slot[i] = slot;
		l->ips_max[i] = 0;
	}
	if (ips > l->ips_max[i])
		l->ips_max[i] = ips;
}

bool hf_coord_learn_report(hf_coord_learnt *l, const hf_coord_report_sum *r, uint64_t wall_ms)
{
	hf_coord_mode m;
	bool watts, switched = false;

	if (wall_ms == l->rep_wall_ms)
		return false;
	l->rep_wall_ms = wall_ms;
	if (r->has_switch && r->switch_seq != l->switch_seq) {
		l->switch_seq = r->switch_seq;
		switched = true;
		if (r->switch_total_ms >= 0 && isfinite(r->switch_total_ms))
			ewma(&l->fig.switch_s, &l->mask, HF_COORD_FIG_SWITCH, r->switch_total_ms / 1000);
	}
	if (!r->converged || strcmp(r->phase, "running") != 0 || strcmp(r->mode, r->desired_mode) != 0 ||
	    hf_coord_mode_parse(r->mode, &m) < 0) {
		l->mode_seen[0] = '\0';
		return true;
	}
	if (switched || strcmp(l->mode_seen, r->mode) != 0) {
		hf_strlcpy(l->mode_seen, r->mode, sizeof l->mode_seen);
		l->settled_ms = wall_ms + HF_COORD_LEARN_SETTLE_MS;
	}
	/* power and hashrate only once settled; the inference rate is a count, learnt at once */
	watts = wall_ms >= l->settled_ms && r->has_power && positive(r->watts);
	switch (m) {
	case HF_COORD_MINING:
		if (wall_ms >= l->settled_ms && positive(r->hashrate_hs))
			ewma(&l->fig.hashrate_hs, &l->mask, HF_COORD_FIG_HASHRATE, r->hashrate_hs);
		if (watts)
			ewma(&l->fig.mining_watts, &l->mask, HF_COORD_FIG_MINING_W, r->watts);
		break;
	case HF_COORD_INFERENCE:
		if (watts)
			ewma(&l->fig.inference_watts, &l->mask, HF_COORD_FIG_INFER_W, r->watts);
		if (positive(r->inferences_per_s))
			learn_ips(l, r->inferences_per_s, wall_ms);
		break;
	case HF_COORD_IDLE:
		if (watts)
			ewma(&l->fig.idle_watts, &l->mask, HF_COORD_FIG_IDLE_W, r->watts);
		break;
	default:
		break;
	}
	return true;
}

void hf_coord_learn_figures(const hf_coord_learnt *l, const hf_coord_class *cls, uint64_t now_ms,
			    hf_coord_figures *own, unsigned *mask)
{
	uint64_t slot_now = now_ms / HF_COORD_LEARN_SLOT_MS;
	double hi = 0;

	*own = l->fig;
	own->inferences_per_s = 0;
	*mask = l->mask & ~(unsigned)HF_COORD_FIG_INFER;
	for (size_t i = 0; i < HF_COORD_LEARN_SLOTS; i++)
		if (l->ips_slot[i] + HF_COORD_LEARN_SLOTS > slot_now && l->ips_slot[i] <= slot_now &&
		    l->ips_max[i] > hi)
			hi = l->ips_max[i];
	if (hi > 0) {
		own->inferences_per_s = hi > cls->fig.inferences_per_s ? hi : cls->fig.inferences_per_s;
		*mask |= HF_COORD_FIG_INFER;
	}
}

/* The mode the node is in and since when (the rules at the top). */
static void track_mode(const profit_cfg *cfg, nstate *s, const hf_coord_node_view *nv)
{
	hf_coord_mode m = cfg->initial;
	uint64_t since = 0;

	if (nv->has_env && hf_coord_mode_parse(nv->mode, &m) == 0)
		since = nv->issued_ms;
	else if (nv->has_report && hf_coord_mode_parse(nv->rep.desired_mode, &m) < 0)
		m = cfg->initial;
	if (!s->have_mode || m != s->mode) {
		s->have_mode = true;
		s->mode = m;
		s->mode_since_ms = since;
	}
}

/* A new state array for the node views (both sorted by id): kept state for nodes still
 * registered, zeroed for new ones. */
static nstate *merge_state(policy_src *p, const hf_coord_node_view *nv, size_t n)
{
	nstate *next = calloc(n ? n : 1, sizeof *next);
	size_t j = 0;

	if (!next)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int c = 1;
		while (j < p->nst && (c = strcmp(p->st[j].id, nv[i].id)) < 0)
			j++;
		if (j < p->nst && c == 0)
			next[i] = p->st[j++];
		else
			hf_strlcpy(next[i].id, nv[i].id, sizeof next[i].id);
	}
	free(p->st);
	p->st = next;
	p->nst = n;
	return next;
}

/* ---- evaluation ---- */

static void log_decision(const snode *sn, const char *err)
{
	const hf_coord_verdict *v = &sn->v;
	char mg[160];
	size_t k = 0;

	mg[0] = '\0';
	for (int m = 0; m < HF_COORD_NMODES && k < sizeof mg; m++)
		k += (size_t)snprintf(mg + k, sizeof mg - k, v->can[m] ? "%s%s %.4g" : "%s%s n/a",
				      m ? ", " : "", hf_coord_mode_name((hf_coord_mode)m), v->margin[m]);
	hf_log(err ? HF_LOG_WARN : HF_LOG_NOTICE, "policy: %s %s -> %s (rule %s): margins USD/h %s; "
	       "gain %.4g USD/h, switch cost %.4g USD; %s%s%s", sn->id, hf_coord_mode_name(sn->from),
	       hf_coord_mode_name(v->mode), hf_coord_rule_name(v->rule), mg, v->gain_usd_h,
	       v->switch_cost_usd, v->why, err ? ": not decided: " : "", err ? err : "");
}

/* The decisions of one evaluation: every verdict with change, decided in one batch
 * (hf_coord_decide_many); each node's state follows its decision. */
typedef struct batch {
	hf_coord_decision_req *q;
	json_t **reason;
	size_t *at;                  /* index into the snapshot and the state */
	int *rc;
	uint64_t *seq;
	size_t n;
} batch;

static void batch_free(batch *b)
{
	for (size_t i = 0; b->reason && i < b->n; i++)
		json_decref(b->reason[i]);
	free(b->q);
	free(b->reason);
	free(b->at);
	free(b->rc);
	free(b->seq);
}

static int batch_init(batch *b, size_t cap)
{
	memset(b, 0, sizeof *b);
	cap = cap ? cap : 1;
	b->q = calloc(cap, sizeof *b->q);
	b->reason = calloc(cap, sizeof *b->reason);
	b->at = calloc(cap, sizeof *b->at);
	b->rc = calloc(cap, sizeof *b->rc);
	b->seq = calloc(cap, sizeof *b->seq);
	return b->q && b->reason && b->at && b->rc && b->seq ? 0 : HF_ENOMEM;
}

static void batch_add(policy_src *p, batch *b, snapshot *s, size_t at)
{
	snode *sn = &s->v[at];
	hf_coord_mode to = sn->v.mode;
	json_t *reason = hf_coord_verdict_json(&sn->v, &sn->pn, &s->m);

	if (!reason) {
		hf_strlcpy(sn->decide_error, "out of memory", sizeof sn->decide_error);
		return;
	}
	b->reason[b->n] = reason;
	b->at[b->n] = at;
	b->q[b->n++] = (hf_coord_decision_req){
		.node = sn->id, .mode = hf_coord_mode_name(to), .reason = reason, .source = "policy",
		.mining = to == HF_COORD_MINING ? p->cfg.payload[HF_COORD_MINING] : NULL,
		.inference = to == HF_COORD_INFERENCE ? p->cfg.payload[HF_COORD_INFERENCE] : NULL };
}

/* Decides the batch; counts decided, held (an operator hold that came after the view) and
 * failed; logs every decision. */
static void batch_decide(policy_src *p, batch *b, snapshot *s, uint64_t *decided,
			 uint64_t *held, uint64_t *failed)
{
	uint64_t issued = 0;
	hf_errbuf eb;
	int r;

	if (!b->n)
		return;
	hf_errbuf_clear(&eb);
	r = hf_coord_decide_many(p->c, b->q, b->n, b->rc, b->seq, &issued, &eb);
	if (r < 0)
		hf_log_err("policy: recording %zu decision(s) failed: %s", b->n, eb.msg);
	for (size_t i = 0; i < b->n; i++) {
		snode *sn = &s->v[b->at[i]];
		nstate *st = &p->st[b->at[i]];
		if (b->rc[i] == 0) {
			sn->decided = true;
			st->mode = sn->v.mode;
			st->mode_since_ms = issued;
			(*decided)++;
			log_decision(sn, NULL);
		} else if (b->rc[i] == HF_ESTATE) {
			(*held)++;
			hf_strlcpy(sn->decide_error, "held by an operator", sizeof sn->decide_error);
			hf_log_info("policy: %s: not moved to %s: held by an operator", sn->id,
				    hf_coord_mode_name(sn->v.mode));
		} else {
			(*failed)++;
			hf_strlcpy(sn->decide_error, r < 0 && eb.msg[0] ? eb.msg : hf_strerror(b->rc[i]),
				   sizeof sn->decide_error);
			log_decision(sn, sn->decide_error);
		}
	}
}

/* Fills s->v from the node views and the state; returns how many are evaluated (the first
 * ones, moved to the front: pn[] for the policy, idx[] back into s->v). */
static size_t prepare_nodes(policy_src *p, snapshot *s, const hf_coord_node_view *nv,
			    uint64_t now, hf_coord_pnode *pn, size_t *idx)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n; i++) {
		snode *sn = &s->v[i];
		nstate *st = &p->st[i];
		hf_strlcpy(sn->id, nv[i].id, sizeof sn->id);
		track_mode(&p->cfg, st, &nv[i]);
		sn->cls = hf_coord_fleet_spec_class_of(&p->cfg.fleet, nv[i].id);
		sn->from = st->mode;
		if (!sn->cls) {
			snprintf(sn->why, sizeof sn->why, "no class: no \"nodes\" entry of the profit file "
				 "matches this id and there is no default_class");
			s->skipped++;
			continue;
		}
		if (nv[i].has_report)
			hf_coord_learn_report(&st->learnt, &nv[i].rep, nv[i].report_wall_ms);
		memset(&pn[k], 0, sizeof pn[k]);
		pn[k].id = sn->id;
		pn[k].cls = sn->cls;
		hf_coord_learn_figures(&st->learnt, sn->cls, now, &pn[k].own, &pn[k].own_mask);
		pn[k].mode = st->mode;
		pn[k].mode_since_ms = st->mode_since_ms;
		pn[k].held = nv[i].hold_until_ms > now;
		pn[k].state.lead = st->lead;
		pn[k].state.streak = st->streak;
		idx[k++] = i;
	}
	return k;
}

static int evaluate(policy_src *p)
{
	hf_coord_node_view *nv = NULL;
	hf_coord_pnode *pn = NULL;
	hf_coord_verdict *out = NULL;
	batch b = { 0 };
	size_t n = 0, k, *idx = NULL;
	uint64_t t0 = hf_mono_us(), now = hf_wall_ms(), decided = 0, held = 0, failed = 0;
	uint64_t holds[2] = { 0, 0 };
	snapshot *s = calloc(1, sizeof *s), *old;
	int r = HF_ENOMEM;

	if (!s || hf_coord_node_views(p->c, now, &nv, &n) < 0)
		goto out;
	atomic_init(&s->refs, 1);
	s->n = n;
	s->v = calloc(n ? n : 1, sizeof *s->v);
	pn = calloc(n ? n : 1, sizeof *pn);
	out = calloc(n ? n : 1, sizeof *out);
	idx = calloc(n ? n : 1, sizeof *idx);
	if (!s->v || !pn || !out || !idx || batch_init(&b, n) < 0 || !merge_state(p, nv, n))
		goto out;
	hf_coord_feeds_market(p->feeds, now, &s->m);
	if (s->m.stale != p->was_stale)
		hf_log(s->m.stale ? HF_LOG_WARN : HF_LOG_NOTICE, "policy: market %s%s",
		       s->m.stale ? "stale, every node holds: " : "fresh again",
		       s->m.stale ? s->m.stale_why : "");
	p->was_stale = s->m.stale;
	k = prepare_nodes(p, s, nv, now, pn, idx);
	if ((r = hf_coord_policy_eval(&p->cfg.fleet.params, &s->m, pn, k, now, out)) < 0)
		goto out;
	for (size_t i = 0; i < k; i++) {
		snode *sn = &s->v[idx[i]];
		nstate *st = &p->st[idx[i]];
		sn->pn = pn[i];
		sn->pn.id = sn->id;
		sn->v = out[i];
		st->lead = pn[i].state.lead;
		st->streak = pn[i].state.streak;
		if (out[i].rule == HF_COORD_RULE_STALE)
			holds[0]++;
		else if (out[i].rule == HF_COORD_RULE_HOLD)
			holds[1]++;
		else if (out[i].change)
			batch_add(p, &b, s, idx[i]);
	}
	batch_decide(p, &b, s, &decided, &held, &failed);
	s->evaluated_ms = now;
	s->took_us = hf_mono_us() - t0;
	if (decided || failed)
		hf_log_info("policy: evaluation of %zu node(s) in %.3f s: %llu decided, %llu failed, "
			    "%llu held", n, (double)s->took_us / 1e6, (unsigned long long)decided,
			    (unsigned long long)failed, (unsigned long long)(holds[1] + held));
	pthread_mutex_lock(&p->snap_mu);
	s->evaluation = ++p->evaluations;
	p->decisions += decided;
	p->decide_failed += failed;
	p->holds[0] += holds[0];
	p->holds[1] += holds[1] + held;
	old = p->snap;
	p->snap = s;
	pthread_mutex_unlock(&p->snap_mu);
	snap_unref(old);
	s = NULL;
	r = 0;
out:
	if (r < 0)
		hf_log_err("policy: evaluation failed: %s", hf_strerror(r));
	snap_unref(s);
	batch_free(&b);
	free(nv);
	free(pn);
	free(out);
	free(idx);
	return r;
}

/* ---- the loop ---- */

static bool wait_stop(policy_src *p, uint64_t ms)
{
	struct timespec ts;
	bool stop;

	hf_abstime_after_ms(ms, &ts);
	pthread_mutex_lock(&p->mu);
	if (!p->stop)
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return stop;
}

static void *loop_main(void *arg)
{
	policy_src *p = arg;
	uint64_t every = p->cfg.fleet.params.evaluate_s * 1000, start = hf_mono_ms();

	if (every == 0)
		every = 1000;
	/* the first evaluation once the feeds' first round is in (or after evaluate_s) */
	while (hf_coord_feeds_rounds(p->feeds) == 0 && hf_mono_ms() < start + every)
		if (wait_stop(p, FIRST_ROUND_WAIT_MS))
			return NULL;
	for (;;) {
		uint64_t t = hf_mono_ms();
		evaluate(p);
		uint64_t spent = hf_mono_ms() - t;
		if (wait_stop(p, spent < every ? every - spent : 1))
			return NULL;
	}
}

static void src_free(policy_src *p)
{
	hf_coord_feeds_free(p->feeds);
	profit_cfg_clear(&p->cfg);
	snap_unref(p->snap);
	free(p->st);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->snap_mu);
	free(p);
}

static int policy_start(hf_coord *c, void **state, hf_errbuf *eb)
{
	const hf_coord_config *cfg = hf_coord_get_config(c);
	policy_src *p;
	int r;

	*state = NULL;
	if (!cfg->profit_file[0])
		return hf_fail(eb, HF_ECONFIG, "coord.json profit_file is empty");
	p = calloc(1, sizeof *p);
	if (!p)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	p->c = c;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->snap_mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((r = profit_load(cfg->profit_file, &p->cfg, eb)) < 0)
		goto fail;
	if ((r = hf_coord_feeds_new(&p->cfg.feeds, &p->feeds, eb)) < 0) {
		hf_fail_prefix(eb, r, "feeds");
		goto fail;
	}
	if (pthread_create(&p->thread, NULL, loop_main, p) != 0) {
		r = hf_fail(eb, HF_ENOMEM, "cannot start the policy thread");
		goto fail;
	}
	hf_log_notice("policy: %s: %zu class(es), %zu node rule(s), evaluating every %llu s",
		      cfg->profit_file, p->cfg.fleet.nclasses, p->cfg.fleet.nnodes,
		      (unsigned long long)p->cfg.fleet.params.evaluate_s);
	*state = p;
	return 0;
fail:
	src_free(p);
	return r;
}

static void policy_stop(void *state)
{
	policy_src *p = state;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	src_free(p);
}

/* ---- views ---- */

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *market_json(const hf_coord_market *m)
{
	json_t *j = json_object();

	json_object_set_new(j, "at_ms", json_integer((json_int_t)m->at_ms));
	json_object_set_new(j, "btc_usd", num(m->btc_usd));
	json_object_set_new(j, "difficulty", num(m->difficulty));
	json_object_set_new(j, "fees_btc", num(m->fees_btc));
	json_object_set_new(j, "subsidy_btc", num(m->subsidy_btc));
	json_object_set_new(j, "power_usd_kwh", num(m->power_usd_kwh));
	json_object_set_new(j, "inference_price", num(m->infer_price));
	json_object_set_new(j, "inference_demand", num(m->infer_demand));
	json_object_set_new(j, "stale", json_boolean(m->stale));
	json_object_set_new(j, "stale_why", m->stale ? json_string(m->stale_why) : json_null());
	return j;
}

static json_t *figures_source(unsigned mask)
{
	static const struct { const char *name; unsigned bit; } f[] = {
		{ "hashrate_hs", HF_COORD_FIG_HASHRATE }, { "mining_watts", HF_COORD_FIG_MINING_W },
		{ "inferences_per_s", HF_COORD_FIG_INFER }, { "inference_watts", HF_COORD_FIG_INFER_W },
		{ "idle_watts", HF_COORD_FIG_IDLE_W }, { "switch_s", HF_COORD_FIG_SWITCH },
	};
	json_t *j = json_object();
	for (size_t i = 0; j && i < HF_ARRAY_SIZE(f); i++)
		json_object_set_new(j, f[i].name, json_string(mask & f[i].bit ? "reported" : "class"));
	return j;
}

static json_t *snode_json(const snapshot *s, const snode *sn)
{
	json_t *j;

	if (!sn->cls)
		return json_pack("{s:b, s:s, s:s}", "skipped", 1, "why", sn->why, "mode",
				 hf_coord_mode_name(sn->from));
	j = hf_coord_verdict_json(&sn->v, &sn->pn, &s->m);
	if (!j)
		return NULL;
	json_object_set_new(j, "class", json_string(sn->cls->name));
	json_object_set_new(j, "figures_source", figures_source(sn->v.own_mask));
	json_object_set_new(j, "mode_since_ms", json_integer((json_int_t)sn->pn.mode_since_ms));
	json_object_set_new(j, "held", json_boolean(sn->pn.held));
	json_object_set_new(j, "streak", json_integer((json_int_t)sn->pn.state.streak));
	json_object_set_new(j, "decided", json_boolean(sn->decided));
	if (sn->decide_error[0])
		json_object_set_new(j, "decide_error", json_string(sn->decide_error));
	return j;
}

/* GET /v1/policy (what "policy", or "policy/ID" for one node). */
static json_t *policy_view(policy_src *p, const char *only)
{
	snapshot *s = snap_get(p);
	json_t *j, *nodes;

	if (!s)
		return json_pack("{s:n, s:I, s:n, s:o, s:I}", "evaluated_ms", "evaluations",
				 (json_int_t)0, "market", "nodes", json_object(), "evaluate_s",
				 (json_int_t)p->cfg.fleet.params.evaluate_s);
	nodes = json_object();
	for (size_t i = 0; nodes && i < s->n; i++)
		if (!only || strcmp(only, s->v[i].id) == 0)
			json_object_set_new(nodes, s->v[i].id, snode_json(s, &s->v[i]));
	j = json_pack("{s:I, s:I, s:I, s:f, s:o, s:I, s:I, s:o}", "evaluated_ms",
		      (json_int_t)s->evaluated_ms, "evaluations", (json_int_t)s->evaluation,
		      "evaluate_s", (json_int_t)p->cfg.fleet.params.evaluate_s,
		      "evaluation_s", (double)s->took_us / 1e6, "market", market_json(&s->m),
		      "count", (json_int_t)s->n, "skipped", (json_int_t)s->skipped, "nodes", nodes);
	snap_unref(s);
	return j;
}

static json_t *policy_view_fn(void *state, const char *what, uint64_t now_ms)
{
	policy_src *p = state;

	if (strcmp(what, "feeds") == 0)
		return hf_coord_feeds_json(p->feeds, now_ms);
	if (strcmp(what, "policy") == 0)
		return policy_view(p, NULL);
	if (strncmp(what, "policy/", 7) == 0)
		return policy_view(p, what + 7);
	return NULL;
}

static void policy_metrics(void *state, uint64_t now_ms, hf_buf *b)
{
	policy_src *p = state;
	uint64_t ev, dec, fail, holds[2];
	snapshot *s = snap_get(p);

	pthread_mutex_lock(&p->snap_mu);
	ev = p->evaluations;
	dec = p->decisions;
	fail = p->decide_failed;
	memcpy(holds, p->holds, sizeof holds);
	pthread_mutex_unlock(&p->snap_mu);
	hf_prom_family(b, "hashflop_coord_policy_evaluations_total", "counter",
		       "Policy evaluations of the whole fleet.");
	hf_prom_sample(b, "hashflop_coord_policy_evaluations_total", NULL, 0, (double)ev);
	hf_prom_family(b, "hashflop_coord_policy_decisions_total", "counter",
		       "Mode changes the policy decided (recorded and published).");
	hf_prom_sample(b, "hashflop_coord_policy_decisions_total", NULL, 0, (double)dec);
	hf_prom_family(b, "hashflop_coord_policy_decide_failed_total", "counter",
		       "Policy decisions the coordinator could not record.");
	hf_prom_sample(b, "hashflop_coord_policy_decide_failed_total", NULL, 0, (double)fail);
	hf_prom_family(b, "hashflop_coord_policy_holds_total", "counter",
		       "Node evaluations that held the current mode: stale feeds, operator holds.");
	hf_prom_sample(b, "hashflop_coord_policy_holds_total", (const char *[]){ "reason", "stale" },
		       1, (double)holds[0]);
	hf_prom_sample(b, "hashflop_coord_policy_holds_total", (const char *[]){ "reason", "hold" },
		       1, (double)holds[1]);
	if (s) {
		hf_prom_family(b, "hashflop_coord_policy_market_stale", "gauge",
			       "1 while a feed the margins need is stale (every node holds).");
		hf_prom_sample(b, "hashflop_coord_policy_market_stale", NULL, 0, s->m.stale ? 1 : 0);
		hf_prom_family(b, "hashflop_coord_policy_evaluation_seconds", "gauge",
			       "How long the last evaluation took (decisions included).");
		hf_prom_sample(b, "hashflop_coord_policy_evaluation_seconds", NULL, 0,
			       (double)s->took_us / 1e6);
		hf_prom_family(b, "hashflop_coord_policy_nodes_skipped", "gauge",
			       "Registered nodes without a class in the profit file.");
		hf_prom_sample(b, "hashflop_coord_policy_nodes_skipped", NULL, 0, (double)s->skipped);
	}
	if (s && s->n <= MARGIN_METRIC_MAX) {
		hf_prom_family(b, "hashflop_coord_policy_margin_usd_per_hour", "gauge",
			       "Each node's margin per mode at the last evaluation (USD per hour).");
		for (size_t i = 0; i < s->n; i++) {
			if (!s->v[i].cls)
				continue;
			for (int m = 0; m < HF_COORD_NMODES; m++)
				if (isfinite(s->v[i].v.margin[m]))
					hf_prom_sample(b, "hashflop_coord_policy_margin_usd_per_hour",
						       (const char *[]){ "node", s->v[i].id, "mode",
						       hf_coord_mode_name((hf_coord_mode)m) }, 2,
						       s->v[i].v.margin[m]);
		}
	}
	snap_unref(s);
	hf_coord_feeds_metrics(p->feeds, now_ms, b);
}

const hf_coord_source_ops hf_coord_source_policy = {
	.name = "policy", .start = policy_start, .stop = policy_stop, .view = policy_view_fn,
	.metrics = policy_metrics,
};
