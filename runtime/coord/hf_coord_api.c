/* hf_coord_api: the coordinator's HTTP API (the contract is in runtime/coord/README.md): long
 * polls, operator relays, node reports, decisions, the fleet views, /metrics.
 *
 * Invariants: every node-facing route checks the node's bearer token (401 for an unknown node
 * or a bad token alike, so ids cannot be probed); reads (fleet, nodes, decisions, status,
 * metrics) need the admin token unless the coordinator listens on loopback only; every outside
 * string quoted in an answer went through hf_text_clean (hf_http_resp_error does it).
 * Threading: handlers run on the server's threads; they use the coordinator's thread-safe
 * parts only (fleet, store, hf_coord_decide, hf_coord_relay).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf_coord_priv.h"
#include "hf_coord_report.h"
#include "hf_config.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

#define TOKEN_MAX 256
#define DECISIONS_DEFAULT 100
#define DECISIONS_MAX 1000

/* ---- auth ---- */

/* The bearer token of the request, or NULL. */
static const char *bearer(const hf_http_req *req, size_t *len)
{
	const char *h = hf_http_header(req, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	*len = strlen(h);
	while (*len && h[*len - 1] == ' ')
		(*len)--;
	return *len && *len <= TOKEN_MAX ? h : NULL;
}

static void count_report_refusal(hf_coord *c, int which)
{
	pthread_mutex_lock(&c->mu);
	c->reports_refused[which]++;
	pthread_mutex_unlock(&c->mu);
}

static bool node_ok(hf_coord *c, const hf_http_req *req, const char *id, hf_http_resp *resp)
{
	size_t len = 0;
	const char *tok = bearer(req, &len);

	if (!tok) {
		hf_http_resp_error(resp, 401, "missing \"Authorization: Bearer TOKEN\" (the node's "
				   "token from hashflop-coord node add)");
		hf_http_resp_header(resp, "WWW-Authenticate", "Bearer");
		return false;
	}
	if (!hf_id_valid(id) || hf_coord_node_auth(c, id, tok, len) != 0) {
		hf_http_resp_error(resp, 401, "unknown node or bad token");
		hf_http_resp_header(resp, "WWW-Authenticate", "Bearer");
		return false;
	}
	return true;
}

static bool admin_ok(hf_coord *c, const hf_http_req *req, hf_http_resp *resp)
{
	char hash[HF_COORD_TOKEN_HASH_LEN + 1];
	size_t len = 0;
	const char *tok = bearer(req, &len);

	if (!c->have_admin) {
		hf_http_resp_error(resp, 403, "no admin token configured (coord.json admin_token_file)");
		return false;
	}
	if (tok)
		hf_coord_token_hash(tok, len, hash);
	if (!tok || CRYPTO_memcmp(hash, c->admin_hash, HF_COORD_TOKEN_HASH_LEN) != 0) {
		hf_http_resp_error(resp, 401, "missing or bad admin token");
		hf_http_resp_header(resp, "WWW-Authenticate", "Bearer");
		return false;
	}
	return true;
}

static bool read_ok(hf_coord *c, const hf_http_req *req, hf_http_resp *resp)
{
	return c->loopback || admin_ok(c, req, resp);
}

/* A query argument as uint64 (absent: def); false (400 answered) when malformed. */
static bool query_u64(const hf_http_req *req, const char *key, uint64_t def, uint64_t max,
		      uint64_t *out, hf_http_resp *resp)
{
	const char *v = hf_http_query(req, key);
	if (!v || !v[0]) {
		*out = def;
		return true;
	}
	if (!hf_parse_u64(v, 0, max, out)) {
		hf_http_resp_error(resp, 400, "%s: expected an integer from 0 to %llu, got \"%.40s\"",
				   key, (unsigned long long)max, v);
		return false;
	}
	return true;
}

/* ---- node routes ---- */

static void h_poll(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	uint64_t after, wait;

	if (!node_ok(c, req, req->params[0], resp) ||
	    !query_u64(req, "after", 0, UINT64_MAX, &after, resp) ||
	    !query_u64(req, "wait", 0, UINT64_MAX, &wait, resp))
		return;
	hf_coord_fleet_poll(c->fleet, req->params[0], after, wait, req, resp);
}

static int relay_status(int r, hf_instr_refusal why)
{
	if (r == HF_ENOTFOUND)
		return 404;
	if (r != HF_EREFUSED)
		return 503;
	switch (why) {
	case HF_REFUSE_MALFORMED: return 400;
	case HF_REFUSE_OVERSIZE: return 413;
	case HF_REFUSE_HELD: return 409;
	default: return 403;
	}
}

static void relay(hf_coord *c, const char *target, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord_relay_res res;
	hf_instr_refusal why = HF_REFUSE_NONE;
	hf_errbuf eb;
	char msg[HF_ERRBUF_SIZE];
	int r;

	hf_errbuf_clear(&eb);
	r = hf_coord_relay(c, target, req->body, req->body_len, &res, &why, &eb);
	if (r == 0) {
		hf_http_resp_json(resp, 200, json_pack("{s:s, s:I, s:I, s:I}", "result", "relayed",
				  "seq", (json_int_t)res.seq, "issued_ms", (json_int_t)res.issued_ms,
				  "nodes", (json_int_t)res.nodes));
		return;
	}
	hf_text_clean(msg, sizeof msg, eb.msg, strlen(eb.msg));
	if (r == HF_EREFUSED)
		hf_http_resp_json(resp, relay_status(r, why), json_pack("{s:s, s:s}", "error",
				  msg[0] ? msg : hf_instr_refusal_name(why), "reason",
				  hf_instr_refusal_name(why)));
	else
		hf_http_resp_error(resp, relay_status(r, why), "%s", msg[0] ? msg : hf_strerror(r));
}

static void h_relay_node(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	if (!hf_id_valid(req->params[0])) {
		hf_http_resp_error(resp, 404, "unknown node");
		return;
	}
	relay(ctx, req->params[0], req, resp);
}

static void h_relay_fleet(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	relay(ctx, "*", req, resp);
}

/* "field: problem" -> {"error": msg, "field": "field"}. */
static json_t *field_error(const char *msg)
{
	const char *colon = strstr(msg, ": ");
	json_t *j = json_pack("{s:s}", "error", msg);
	if (j && colon && colon > msg && (size_t)(colon - msg) < 128)
		json_object_set_new(j, "field", json_stringn(msg, (size_t)(colon - msg)));
	return j;
}

static void h_report(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	const char *id = req->params[0];
	hf_coord_report_sum sum;
	hf_coord_ack_rec ack = { 0 };
	uint64_t now = hf_wall_ms();
	hf_errbuf eb;
	json_t *rep;

	if (!node_ok(c, req, id, resp)) {
		count_report_refusal(c, REP_REFUSED_AUTH);
		return;
	}
	if (req->body_len > c->cfg.max_report_body) {
		count_report_refusal(c, REP_REFUSED_OVERSIZE);
		hf_http_resp_error(resp, 413, "report of %zu bytes over limits.max_report_body (%zu)",
				   req->body_len, c->cfg.max_report_body);
		return;
	}
	hf_errbuf_clear(&eb);
	if (hf_coord_report_parse(req->body, req->body_len, id, c->cfg.fleet_id, &rep, &sum, &eb) < 0) {
		char msg[HF_ERRBUF_SIZE];
		count_report_refusal(c, REP_REFUSED_INVALID);
		hf_text_clean(msg, sizeof msg, eb.msg, strlen(eb.msg));
		hf_http_resp_json(resp, 400, field_error(msg));
		return;
	}
	if (hf_coord_store_report_put(c->store, id, now, rep, NULL) < 0)
		count_report_refusal(c, REP_REFUSED_STORE);
	json_decref(rep);
	hf_coord_fleet_report(c->fleet, id, &sum, now, &ack.issued_ms);
	if (ack.issued_ms) {
		hf_strlcpy(ack.node, id, sizeof ack.node);
		ack.wall_ms = now;
		if (hf_coord_store_ack_put(c->store, &ack, NULL) < 0)
			count_report_refusal(c, REP_REFUSED_STORE);
	}
	hf_http_resp_json(resp, 200, json_pack("{s:s, s:i}", "result", "ok", "next_report_s",
					       (int)c->cfg.report_interval_s));
}

/* ---- decisions ---- */

typedef struct decide_body {
	char node[HF_COORD_NODE_ID_MAX + 1], mode[16];
	const json_t *mining, *inference, *reason;
	uint64_t ttl;
} decide_body;

static int parse_decide(const hf_http_req *req, json_t **root, decide_body *d, hf_errbuf *eb)
{
	static const char *const modes[] = { "idle", "mining", "inference", NULL };
	int mode = 0;
	hf_cfg_field f[] = {
		{ .key = "node", .type = HF_CFG_STRING, .required = true, .dst = d->node,
		  .dst_size = sizeof d->node, .min = 1 },
		{ .key = "mode", .type = HF_CFG_ENUM, .required = true, .dst = &mode, .choices = modes },
		{ .key = "mining", .type = HF_CFG_OBJECT, .dst = &d->mining },
		{ .key = "inference", .type = HF_CFG_OBJECT, .dst = &d->inference },
		{ .key = "reason", .type = HF_CFG_OBJECT, .dst = &d->reason },
		{ .key = "ttl_s", .type = HF_CFG_UINT, .dst = &d->ttl, .min = 10, .max = 30 * 86400 },
	};
	int r;

	memset(d, 0, sizeof *d);
	if ((r = hf_cfg_parse(req->body, req->body_len, "decision", root, eb)) < 0)
		return r;
	if (!json_is_object(*root))
		return hf_fail(eb, HF_EPARSE, "decision: expected a JSON object");
	if ((r = hf_cfg_read(*root, "", f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	hf_strlcpy(d->mode, modes[mode], sizeof d->mode);
	return 0;
}

static json_t *seq_array(const hf_coord_decision_res *res)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < res->nseq; i++)
		json_array_append_new(a, json_integer((json_int_t)res->seq[i]));
	return a;
}

static json_t *held_array(const hf_coord_decision_res *res)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < res->nheld; i++)
		json_array_append_new(a, json_string(res->held[i]));
	return a;
}

static int decide_status(int r)
{
	switch (r) {
	case HF_ENOTFOUND: return 404;
	case HF_EINVAL: return 400;
	case HF_ETOOBIG: return 413;
	case HF_ESTATE: return 409;
	default: return 503;
	}
}

/* ---- the "api" decision source: one worker thread ----
 * A "*" decision signs an envelope per node (seconds of CPU for 10,000 nodes): done on the
 * handler's server thread it would hold every connection of that thread, the polls it just
 * answered included, until the end. The handler validates and parks the request; the worker
 * decides and answers it. */

typedef struct djob {
	struct djob *next;
	json_t *root;          /* the body (d points into it) */
	decide_body d;
	hf_http_pending *p;
} djob;

typedef struct api_source {
	hf_coord *c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	djob *head, *tail;
	bool stop;
	pthread_t worker;
} api_source;

static void decide_answer(hf_coord *c, djob *j)
{
	hf_coord_decision_req q = { .node = j->d.node, .mode = j->d.mode, .mining = j->d.mining,
				    .inference = j->d.inference, .reason = j->d.reason,
				    .ttl_s = (unsigned)j->d.ttl, .source = "api" };
	hf_coord_decision_res res;
	hf_errbuf eb;
	json_t *ans;
	int r, status = 200;

	hf_errbuf_clear(&eb);
	r = hf_coord_decide(c, &q, &res, &eb);
	if (r == 0 || (r == HF_ESTATE && res.nseq > 0)) {
		ans = json_pack("{s:s, s:o, s:I, s:o}", "result", "decided", "seq", seq_array(&res),
				"issued_ms", (json_int_t)res.issued_ms, "held", held_array(&res));
	} else if (r == HF_ESTATE) {
		status = 409;
		ans = json_pack("{s:s, s:s, s:o}", "error", eb.msg, "reason", "held", "held",
				held_array(&res));
	} else {
		char msg[HF_ERRBUF_SIZE];
		hf_text_clean(msg, sizeof msg, eb.msg[0] ? eb.msg : hf_strerror(r), HF_ERRBUF_SIZE);
		status = decide_status(r);
		ans = json_pack("{s:s}", "error", msg);
	}
	hf_coord_decision_res_clear(&res);
	hf_http_pending_complete_json(j->p, status, ans); /* HF_ECANCELED: the client left */
}

static void *decide_main(void *arg)
{
	api_source *a = arg;
	djob *j;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->head && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (!a->head)
			break;
		j = a->head;
		a->head = j->next;
		if (!a->head)
			a->tail = NULL;
		bool stopping = a->stop;
		pthread_mutex_unlock(&a->mu);
		if (stopping) /* the server answered it 503 already: not decided */
			hf_http_pending_complete_json(j->p, 503, NULL);
		else
			decide_answer(a->c, j);
		json_decref(j->root);
		free(j);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static int api_start(hf_coord *c, void **state, hf_errbuf *eb)
{
	api_source *a = calloc(1, sizeof *a);

	if (!a)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	a->c = c;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->worker, NULL, decide_main, a) != 0) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return hf_fail(eb, HF_ENOMEM, "cannot start the decision worker");
	}
	c->api = a;
	atomic_store(&c->api_enabled, true);
	*state = a;
	return 0;
}

/* Called once the server stopped (parked requests were answered 503): the decision in
 * progress finishes, the queued ones are dropped undecided. */
static void api_stop(void *state)
{
	api_source *a = state;

	atomic_store(&a->c->api_enabled, false);
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->worker, NULL);
	a->c->api = NULL;
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

const hf_coord_source_ops hf_coord_source_api = { .name = "api", .start = api_start,
						  .stop = api_stop };

static void h_decide(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	api_source *a = c->api;
	hf_errbuf eb;
	bool queued;
	djob *j;

	if (!admin_ok(c, req, resp))
		return;
	if (!a || !atomic_load(&c->api_enabled)) {
		hf_http_resp_error(resp, 503, "the \"api\" decision source is not running");
		return;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		hf_http_resp_error(resp, 503, "out of memory");
		return;
	}
	hf_errbuf_clear(&eb);
	if (parse_decide(req, &j->root, &j->d, &eb) < 0) {
		json_decref(j->root);
		free(j);
		hf_http_resp_json(resp, 400, field_error(eb.msg));
		return;
	}
	pthread_mutex_lock(&a->mu);
	j->p = a->stop ? NULL : hf_http_defer(req, NULL, NULL);
	queued = j->p != NULL;
	if (queued) {
		if (a->tail)
			a->tail->next = j;
		else
			a->head = j;
		a->tail = j;
		pthread_cond_signal(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	/* once queued, j is the worker's: it may be decided and freed already */
	if (!queued) {
		json_decref(j->root);
		free(j);
		hf_http_resp_error(resp, 503, "stopping");
	}
}

static json_t *keyid_array(const char *s)
{
	json_t *a = json_array();
	while (a && *s) {
		const char *e = strchrnul(s, ',');
		if (e > s)
			json_array_append_new(a, json_stringn(s, (size_t)(e - s)));
		s = *e ? e + 1 : e;
	}
	return a;
}

static json_t *decision_json(const hf_coord_decision_rec *d, const hf_coord_ack_rec *acks,
			     size_t nacks)
{
	json_t *ack = json_array(), *env = d->envelope ? json_loads(d->envelope, 0, NULL) : NULL;
	for (size_t i = 0; ack && i < nacks; i++)
		if (acks[i].issued_ms == d->issued_ms &&
		    (strcmp(d->node, "*") == 0 || strcmp(d->node, acks[i].node) == 0))
			json_array_append_new(ack, json_pack("{s:s, s:I}", "node", acks[i].node,
					      "wall_ms", (json_int_t)acks[i].wall_ms));
	return json_pack("{s:I, s:I, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:s, s:O?, s:I, s:o?, s:o}",
			 "seq", (json_int_t)d->seq, "wall_ms", (json_int_t)d->wall_ms, "node", d->node,
			 "issued_ms", (json_int_t)d->issued_ms, "expires_ms", (json_int_t)d->expires_ms,
			 "mode", d->mode, "authority", d->authority == HF_COORD_BY_OPERATOR ?
			 "operator" : "coordinator", "source", d->source, "keyids", keyid_array(d->keyids),
			 "payload_sha256", d->payload_sha256, "reason", d->reason,
			 "resigned_from", (json_int_t)d->resigned_from, "envelope", env, "acks", ack);
}

static void h_decisions(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	hf_coord_decision_rec *d = NULL;
	hf_coord_ack_rec *acks = NULL;
	size_t n = 0, nacks = 0;
	uint64_t since, after, limit, lo = UINT64_MAX, hi = 0;
	json_t *arr;
	hf_errbuf eb;

	if (!read_ok(c, req, resp) || !query_u64(req, "since", 0, UINT64_MAX, &since, resp) ||
	    !query_u64(req, "after", 0, UINT64_MAX, &after, resp) ||
	    !query_u64(req, "limit", DECISIONS_DEFAULT, DECISIONS_MAX, &limit, resp))
		return;
	if (hf_coord_store_decision_list(c->store, after, since, limit, &d, &n, &eb) < 0) {
		hf_http_resp_error(resp, 503, "record: %s", eb.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		lo = d[i].issued_ms < lo ? d[i].issued_ms : lo;
		hi = d[i].issued_ms > hi ? d[i].issued_ms : hi;
	}
	if (n && hf_coord_store_ack_list(c->store, lo, hi, &acks, &nacks, NULL) < 0)
		nacks = 0;
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, decision_json(&d[i], acks, nacks));
		after = d[i].seq;
		hf_coord_decision_rec_clear(&d[i]);
	}
	free(d);
	free(acks);
	hf_http_resp_json(resp, 200, json_pack("{s:o, s:I}", "decisions", arr, "next_after",
					       (json_int_t)after));
}

/* ---- views ---- */

static void h_fleet(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	json_t *j;

	if (!read_ok(c, req, resp))
		return;
	j = hf_coord_fleet_json(c->fleet, hf_wall_ms());
	if (!j) {
		hf_http_resp_error(resp, 503, "out of memory");
		return;
	}
	json_object_set_new(j, "fleet", json_string(c->cfg.fleet_id));
	hf_http_resp_json(resp, 200, j);
}

static void h_node(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	json_t *j, *rep = NULL;
	uint64_t wall = 0;

	if (!read_ok(c, req, resp))
		return;
	j = hf_id_valid(req->params[0]) ? hf_coord_fleet_node_json(c->fleet, req->params[0],
								   hf_wall_ms()) : NULL;
	if (!j) {
		hf_http_resp_error(resp, 404, "unknown node");
		return;
	}
	if (hf_coord_store_report_latest(c->store, req->params[0], &rep, &wall, NULL) == 0)
		json_object_set_new(j, "last_report", rep);
	else
		json_object_set_new(j, "last_report", json_null());
	hf_http_resp_json(resp, 200, j);
}

static void h_status(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	hf_httpd_stats st = { 0 };
	uint64_t floor;

	if (!read_ok(c, req, resp))
		return;
	hf_httpd_get_stats(c->http, &st);
	pthread_mutex_lock(&c->mu);
	floor = c->floor_ms;
	pthread_mutex_unlock(&c->mu);
	hf_http_resp_json(resp, 200, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, "
					       "s:b, s:s}",
			  "program", "hashflop-coord", "version", HF_VERSION, "fleet", c->cfg.fleet_id,
			  "nodes", (json_int_t)hf_coord_fleet_node_count(c->fleet),
			  "waiting_polls", (json_int_t)hf_coord_fleet_waiting(c->fleet),
			  "connections", (json_int_t)st.connections,
			  "max_connections", (json_int_t)hf_httpd_max_conns(c->http),
			  "issued_floor_ms", (json_int_t)floor,
			  "uptime_s", (json_int_t)((hf_wall_ms() - c->start_ms) / 1000),
			  "tls", st.tls, "api_source", atomic_load(&c->api_enabled),
			  "keyid", c->keyid));
}

/* GET /v1/feeds and GET /v1/policy: the policy source's views (issue 15). */
static void source_view(hf_coord *c, const char *what, const hf_http_req *req, hf_http_resp *resp)
{
	json_t *j;

	if (!read_ok(c, req, resp))
		return;
	j = hf_coord_source_view(c, what, hf_wall_ms());
	if (!j) {
		hf_http_resp_error(resp, 404, "no policy source (coord.json profit_file is empty)");
		return;
	}
	hf_http_resp_json(resp, 200, j);
}

static void h_feeds(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	source_view(ctx, "feeds", req, resp);
}

/* ?node=ID: that node only. */
static void h_policy(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	const char *node = hf_http_query(req, "node");
	char what[HF_COORD_NODE_ID_MAX + 16];

	if (node && node[0] && !hf_id_valid(node)) {
		hf_http_resp_error(resp, 400, "node: expected a node id");
		return;
	}
	if (node && node[0])
		snprintf(what, sizeof what, "policy/%s", node);
	else
		hf_strlcpy(what, "policy", sizeof what);
	source_view(ctx, what, req, resp);
}

static void h_metrics(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord *c = ctx;
	hf_httpd_stats st = { 0 };

	if (!read_ok(c, req, resp))
		return;
	hf_coord_fleet_metrics(c->fleet, hf_wall_ms(), &resp->body);
	hf_coord_metrics(c, &resp->body);
	hf_coord_sources_metrics(c, hf_wall_ms(), &resp->body);
	hf_httpd_get_stats(c->http, &st);
	hf_prom_family(&resp->body, "hashflop_coord_http_connections", "gauge",
		       "HTTP connections open now.");
	hf_prom_sample(&resp->body, "hashflop_coord_http_connections", NULL, 0, (double)st.connections);
	hf_prom_family(&resp->body, "hashflop_coord_http_max_connections", "gauge",
		       "The connection cap in force.");
	hf_prom_sample(&resp->body, "hashflop_coord_http_max_connections", NULL, 0,
		       (double)hf_httpd_max_conns(c->http));
	hf_prom_family(&resp->body, "hashflop_coord_http_refused_total", "counter",
		       "Connections closed at accept: over the cap.");
	hf_prom_sample(&resp->body, "hashflop_coord_http_refused_total", NULL, 0,
		       (double)st.refused_total);
	resp->status = 200;
	resp->content_type = HF_PROM_CONTENT_TYPE;
}

const hf_http_route hf_coord_routes[] = {
	{ "GET", "/v1/nodes/*/instruction", h_poll },
	{ "POST", "/v1/nodes/*/instruction", h_relay_node },
	{ "POST", "/v1/fleet/instruction", h_relay_fleet },
	{ "POST", "/v1/nodes/*/report", h_report },
	{ "POST", "/v1/decisions", h_decide },
	{ "GET", "/v1/decisions", h_decisions },
	{ "GET", "/v1/fleet", h_fleet },
	{ "GET", "/v1/nodes/*", h_node },
	{ "GET", "/v1/status", h_status },
	{ "GET", "/v1/feeds", h_feeds },
	{ "GET", "/v1/policy", h_policy },
	{ "GET", "/metrics", h_metrics },
};
const size_t hf_coord_nroutes = HF_ARRAY_SIZE(hf_coord_routes);
