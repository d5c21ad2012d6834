/* hf_infer_http: the Open Inference Protocol (KServe v2 REST) routes of the inference server:
 * health, server and model metadata, model readiness, and infer requests, which are parsed,
 * checked against the model, deferred (hf_http_defer) and queued on the model's batcher; the
 * batcher's done() answers them from the instance thread, so no server thread waits on
 * compute.
 * Errors: {"error": "..."} with 400 (malformed body, tensors over hf_oip's caps or not fitting
 * the model, unknown output), 404 (unknown model, a version other than 1), 413 (the body over
 * max_body_mb, or its JSON part over HF_OIP_DEFAULT_MAX_JSON), 500 (the executor
 * failed), 503 with Retry-After (not ready: stopped, loading, failed model; draining; queue
 * full; queued past request_timeout_ms; drained before it ran).
 * Invariants: the run is used under the read side of run_lock only; a request, once deferred,
 * is completed exactly once (by done(), or here when the batcher refused it).
 * Threading: handlers on the listener's threads; hf_infer_answer on instance threads.
 */
#include "hf_infer_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"
#include "hf_version.h"

static void retry_after(const hf_infer *s, hf_http_resp *resp)
{
	char v[24];

	snprintf(v, sizeof v, "%llu", (unsigned long long)s->cfg.retry_after_s);
	hf_http_resp_header(resp, "Retry-After", v);
}

/* A version segment other than "1" (the only version) is 404 like an unknown model. */
static bool bad_version(const hf_http_req *req, hf_http_resp *resp)
{
	if (req->nparams < 2 || strcmp(req->params[1], "1") == 0)
		return false;
	hf_http_resp_error(resp, 404, "model \"%s\" has no version \"%s\" (versions: [\"1\"])",
			   req->params[0], req->params[1]);
	return true;
}

static void h_server(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	(void)ctx;
	(void)req;
	hf_http_resp_json(resp, 200, json_pack("{s:s, s:s, s:[s]}", "name", "hashflop",
					       "version", HF_VERSION, "extensions",
					       "binary_tensor_data"));
}

static void h_live(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	(void)ctx;
	(void)req;
	hf_http_resp_json(resp, 200, json_pack("{s:b}", "live", 1));
}

static void h_ready(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_infer *s = ctx;
	hf_infer_state st = atomic_load(&s->state);

	(void)req;
	hf_http_resp_json(resp, st == HF_INFER_READY ? 200 : 503,
			  json_pack("{s:b, s:s}", "ready", st == HF_INFER_READY, "state",
				    hf_infer_state_name(st)));
}

static json_t *io_json(const hf_graph *g, const hf_graph_io *io)
{
	const hf_graph_value *v = hf_graph_value_at(g, (size_t)io->value);
	json_t *shape = json_array();

	for (size_t d = 0; d < v->ndim; d++)
		json_array_append_new(shape, json_integer(d == 0 ? -1 : v->shape[d]));
	return json_pack("{s:s, s:s, s:o}", "name", v->name, "datatype", io->datatype, "shape", shape);
}

static json_t *model_json(const hf_model *m)
{
	json_t *in = json_array(), *out = json_array();
	const hf_graph *g = m->graph;

	for (size_t i = 0; i < hf_graph_ninputs(g); i++)
		json_array_append_new(in, io_json(g, hf_graph_input(g, i)));
	for (size_t j = 0; j < hf_graph_noutputs(g); j++)
		json_array_append_new(out, io_json(g, hf_graph_output(g, j)));
	return json_pack("{s:s, s:[s], s:s, s:o, s:o, s:I}", "name", m->name, "versions", "1",
			 "platform", "hashflop", "inputs", in, "outputs", out, "max_batch_size",
			 (json_int_t)m->cfg.max_batch_size);
}

/* A model the server does not know: 404 while a run is there, 503 while stopped (nothing is
 * known then). */
static void no_model(hf_infer *s, const char *name, hf_http_resp *resp)
{
	if (atomic_load(&s->state) == HF_INFER_STOPPED) {
		hf_http_resp_error(resp, 503, "the inference server is not ready (stopped)");
		retry_after(s, resp);
		return;
	}
	atomic_fetch_add(&s->unknown_model_total, 1);
	hf_http_resp_error(resp, 404, "unknown model \"%s\"", name);
}

static void h_model(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_infer *s = ctx;
	hf_infer_slot *slot;

	if (bad_version(req, resp))
		return;
	pthread_rwlock_rdlock(&s->run_lock);
	slot = hf_infer_find_slot(s, req->params[0]);
	if (!slot)
		no_model(s, req->params[0], resp);
	else if (!slot->m->loaded)
		hf_http_resp_error(resp, 503, "model \"%s\" did not load: %s", slot->m->name,
				   slot->reason);
	else
		hf_http_resp_json(resp, 200, model_json(slot->m));
	pthread_rwlock_unlock(&s->run_lock);
}

/* Why slot cannot take a request now ("" when it can); under the read lock. */
static const char *not_ready_reason(hf_infer *s, const hf_infer_slot *slot, hf_infer_fail *why)
{
	hf_infer_state st = atomic_load(&s->state);

	*why = HF_IF_NOT_READY;
	if (st == HF_INFER_DRAINING) {
		*why = HF_IF_DRAINING;
		return "the inference server is draining";
	}
	if (st != HF_INFER_READY || atomic_load(&slot->state) == HF_SLOT_LOADING)
		return "the model is loading";
	if (atomic_load(&slot->state) == HF_SLOT_FAILED)
		return slot->reason[0] ? slot->reason : "the model failed";
	if (!hf_batcher_serving(slot->b))
		return "every instance of the model failed";
	return "";
}

static void h_model_ready(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_infer *s = ctx;
	hf_infer_slot *slot;
	hf_infer_fail why;

	if (bad_version(req, resp))
		return;
	pthread_rwlock_rdlock(&s->run_lock);
	slot = hf_infer_find_slot(s, req->params[0]);
	if (!slot && atomic_load(&s->state) != HF_INFER_STOPPED) {
		hf_http_resp_error(resp, 404, "unknown model \"%s\"", req->params[0]);
	} else {
		const char *reason = slot ? not_ready_reason(s, slot, &why)
					  : "the inference server is stopped";
		json_t *j = json_pack("{s:s, s:b}", "name", req->params[0], "ready", !reason[0]);
		if (reason[0])
			json_object_set_new(j, "reason", json_string(reason));
		hf_http_resp_json(resp, reason[0] ? 503 : 200, j);
	}
	pthread_rwlock_unlock(&s->run_lock);
}

/* Answers a request that never reached a batcher (no defer yet). */
static void refuse(hf_infer *s, hf_infer_counters *c, hf_http_resp *resp, int status,
		   hf_infer_fail why, const char *msg)
{
	hf_http_resp_error(resp, status, "%s", msg);
	if (status == 503)
		retry_after(s, resp);
	hf_infer_count(c, status);
	hf_infer_count_fail(c, why);
}

/* The batcher's refusal of a deferred request: answered through its handle. */
static void refuse_deferred(hf_infer *s, hf_ireq *q, int r, const char *msg)
{
	hf_infer_counters *c = q->slot->cnt;
	hf_http_resp resp;
	hf_infer_fail why = r == HF_EBUSY ? HF_IF_QUEUE_FULL
			  : r == HF_ERANGE ? HF_IF_BAD_REQUEST : HF_IF_DRAINING;
	int status = r == HF_ERANGE ? 400 : 503;

	hf_http_resp_init(&resp);
	hf_http_resp_error(&resp, status, "%s", msg);
	if (status == 503)
		retry_after(s, &resp);
	hf_infer_count(c, status);
	hf_infer_count_fail(c, why);
	if (hf_http_pending_complete(q->pending, &resp) == HF_ECANCELED)
		hf_infer_count_fail(c, HF_IF_CLIENT_GONE);
	hf_http_resp_clear(&resp);
	hf_ireq_free(q);
}

/* Under the read lock: the slot is ready; bind, defer, submit. */
static void submit(hf_infer *s, hf_infer_slot *slot, hf_ireq *q, const hf_http_req *req,
		   hf_http_resp *resp)
{
	hf_errbuf eb;
	int r = hf_ireq_bind(q, slot, &eb);

	if (r != 0) {
		refuse(s, slot->cnt, resp, r, r == 400 ? HF_IF_BAD_REQUEST : HF_IF_COMPUTE, eb.msg);
		hf_ireq_free(q);
		return;
	}
	q->pending = hf_http_defer(req, NULL, NULL);
	if (!q->pending) {
		refuse(s, slot->cnt, resp, 503, HF_IF_NOT_READY, "the server is stopping");
		hf_ireq_free(q);
		return;
	}
	if ((r = hf_batcher_submit(slot->b, &q->br, &eb)) < 0)
		refuse_deferred(s, q, r, eb.msg);
}

/* The body as an OIP request. A JSON part over hf_oip's byte cap is HF_ETOOBIG (413: the
 * body is too large); every other violation, the tensor caps included (an overflowing shape
 * is the client's error to fix), is HF_EPARSE (400). */
static int parse_body(const hf_http_req *req, hf_ireq *q, hf_errbuf *eb)
{
	const char *hl = hf_http_header(req, "Inference-Header-Content-Length");
	uint64_t json_len = req->body_len;
	int r;

	if (hl && hf_parse_u64(hl, 0, UINT64_MAX, &json_len) && json_len > req->body_len)
		json_len = req->body_len;
	if (json_len > HF_OIP_DEFAULT_MAX_JSON)
		return hf_fail(eb, HF_ETOOBIG, "body: %llu bytes of JSON, more than %u",
			       (unsigned long long)json_len, HF_OIP_DEFAULT_MAX_JSON);
	r = hf_oip_parse_request(req->body, req->body_len, hl, NULL, &q->req, eb);
	return r < 0 ? HF_EPARSE : 0;
}

static void h_infer(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_infer *s = ctx;
	hf_infer_slot *slot;
	hf_infer_fail why;
	hf_ireq *q = NULL;
	const char *reason;
	hf_errbuf eb;
	int r;

	if (bad_version(req, resp))
		return;
	/* Parse outside the lock (a large body takes a while), then look the model up. */
	if (!(q = calloc(1, sizeof *q))) {
		hf_http_resp_error(resp, 500, "out of memory");
		return;
	}
	r = parse_body(req, q, &eb);
	pthread_rwlock_rdlock(&s->run_lock);
	slot = hf_infer_find_slot(s, req->params[0]);
	if (!slot) {
		no_model(s, req->params[0], resp);
		hf_ireq_free(q);
	} else if ((reason = not_ready_reason(s, slot, &why))[0]) {
		refuse(s, slot->cnt, resp, 503, why, reason);
		hf_ireq_free(q);
	} else if (r < 0) {
		refuse(s, slot->cnt, resp, r == HF_ETOOBIG ? 413 : 400,
		       r == HF_ETOOBIG ? HF_IF_TOO_LARGE : HF_IF_BAD_REQUEST, eb.msg);
		hf_ireq_free(q);
	} else {
		submit(s, slot, q, req, resp);
	}
	pthread_rwlock_unlock(&s->run_lock);
}

void hf_infer_answer(void *ctx, hf_batcher_req *br, int result, const char *msg)
{
	hf_infer_slot *slot = ctx;
	hf_ireq *q = br->user;
	hf_http_resp resp;

	hf_http_resp_init(&resp);
	if (result == 0) {
		hf_ireq_response(q, &resp);
	} else if (result == HF_ETIMEOUT || result == HF_ECANCELED) {
		hf_http_resp_error(&resp, 503, "%s", msg[0] ? msg : hf_strerror(result));
		retry_after(slot->s, &resp);
		hf_infer_count_fail(slot->cnt, result == HF_ETIMEOUT ? HF_IF_TIMEOUT : HF_IF_CANCELED);
	} else {
		hf_http_resp_error(&resp, 500, "inference failed: %s", msg[0] ? msg : hf_strerror(result));
		hf_infer_count_fail(slot->cnt, HF_IF_COMPUTE);
	}
	hf_infer_count(slot->cnt, resp.status);
	if (hf_http_pending_complete(q->pending, &resp) == HF_ECANCELED)
		hf_infer_count_fail(slot->cnt, HF_IF_CLIENT_GONE);
	hf_http_resp_clear(&resp);
	hf_ireq_free(q);
}

const hf_http_route hf_infer_routes[] = {
	{ "GET", "/v2", h_server },
	{ "GET", "/v2/health/live", h_live },
	{ "GET", "/v2/health/ready", h_ready },
	{ "GET", "/v2/models/*", h_model },
	{ "GET", "/v2/models/*/ready", h_model_ready },
	{ "POST", "/v2/models/*/infer", h_infer },
	{ "GET", "/v2/models/*/versions/*", h_model },
	{ "GET", "/v2/models/*/versions/*/ready", h_model_ready },
	{ "POST", "/v2/models/*/versions/*/infer", h_infer },
};
const size_t hf_infer_nroutes = sizeof hf_infer_routes / sizeof hf_infer_routes[0];
