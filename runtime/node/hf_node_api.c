/* hf_node_api: handlers of the node's local API and the answerer of deferred instruction
 * answers (a FIFO drained by one thread).
 * Invariants: see hf_node_api.h; a queued answer holds its own copy of the outcome and ticket.
 * Threading: see hf_node_api.h; `lock` guards the queue and `closing`.
 */
#include "hf_node_api.h"

#include <pthread.h>
#include <stdlib.h>

#include "hf_node.h"
#include "hf_prom.h"
#include "hf_util.h"

typedef struct waiting {
	struct waiting *next;
	hf_http_pending *p;
	hf_modes_ticket ticket;
	uint64_t deadline_ms;   /* hf_mono_ms() */
	hf_instr_outcome out;
} waiting;

struct hf_node_api {
	struct hf_node *node;
	pthread_t thread;
	bool started, closing;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	waiting *head, **tail;
};

static void get_status(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_node_api *a = ctx;
	hf_http_resp_json(resp, 200, hf_node_status_json(a->node));
}

static void get_metrics(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_node_api *a = ctx;
	hf_node_metrics(a->node, &resp->body);
	resp->status = 200;
	resp->content_type = HF_PROM_CONTENT_TYPE;
}

static int outcome_status(const hf_instr_outcome *o)
{
	switch (o->result) {
	case HF_INSTR_ACCEPTED:
	case HF_INSTR_NOOP: return 200;
	case HF_INSTR_NO_TRUST: return 503;
	case HF_INSTR_FAILED: return 500;
	case HF_INSTR_REFUSED: break;
	}
	if (o->why == HF_REFUSE_OVERSIZE)
		return 413;
	if (o->why == HF_REFUSE_MALFORMED)
		return 400;
	if (o->why == HF_REFUSE_HELD)
		return 409;
	return 403;
}

static json_t *outcome_json(const hf_instr_outcome *o)
{
	static const char *const results[] = { "accepted", "noop", "refused", "no_trust", "failed" };
	json_t *j = json_pack("{s:s, s:s}", "result", results[o->result], "detail", o->detail);

	if (!j)
		return NULL;
	if (o->result == HF_INSTR_REFUSED)
		json_object_set_new(j, "reason", json_string(hf_instr_refusal_name(o->why)));
	if (o->result == HF_INSTR_ACCEPTED) {
		json_object_set_new(j, "mode", json_string(hf_mode_name(o->mode)));
		json_object_set_new(j, "issued_ms", json_integer((json_int_t)o->issued_ms));
		json_object_set_new(j, "authority", json_string(o->automatic ? "coordinator" : "operator"));
		json_object_set_new(j, "applied", json_boolean(o->applied));
		json_object_set_new(j, "pending", json_boolean(o->pending));
		if (o->error[0])
			json_object_set_new(j, "error", json_string(o->error));
	}
	if (o->result == HF_INSTR_ACCEPTED || o->result == HF_INSTR_NOOP)
		json_object_set_new(j, "converged", json_boolean(o->converged));
	return j;
}

/* Queues the answer of an accepted instruction; false when the API is closing or the request
 * cannot be deferred (the caller answers at once). */
static bool defer_answer(hf_node_api *a, const hf_http_req *req, const hf_modes_ticket *t,
			 const hf_instr_outcome *o)
{
	waiting *w = calloc(1, sizeof *w);
	bool ok = false;

	if (!w)
		return false;
	w->ticket = *t;
	w->out = *o;
	w->deadline_ms = hf_mono_ms() + hf_node_config_of(a->node)->apply_wait_ms;
	pthread_mutex_lock(&a->lock);
	if (!a->closing && (w->p = hf_http_defer(req, NULL, NULL)) != NULL) {
		*a->tail = w;
		a->tail = &w->next;
		pthread_cond_signal(&a->cond);
		ok = true;
	}
	pthread_mutex_unlock(&a->lock);
	if (!ok)
		free(w);
	return ok;
}

static void post_instruction(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_node_api *a = ctx;
	hf_modes_ticket t;
	hf_instr_outcome o;

	if (hf_node_submit_instruction_nowait(a->node, req->body, req->body_len, "local", &o, &t)) {
		if (hf_node_config_of(a->node)->apply_wait_ms && defer_answer(a, req, &t, &o))
			return;
		hf_node_instruction_finish(a->node, &t, 0, &o);
	}
	hf_http_resp_json(resp, outcome_status(&o), outcome_json(&o));
}

static void *answerer_main(void *arg)
{
	hf_node_api *a = arg;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->head && !a->closing)
			pthread_cond_wait(&a->cond, &a->lock);
		waiting *w = a->head;
		if (!w)
			break;
		a->head = w->next;
		if (!a->head)
			a->tail = &a->head;
		pthread_mutex_unlock(&a->lock);
		uint64_t now = hf_mono_ms();
		hf_node_instruction_finish(a->node, &w->ticket, w->deadline_ms > now ? w->deadline_ms - now : 0,
					   &w->out);
		/* HF_ECANCELED: the client left or the server stopped; nothing else to do. */
		(void)hf_http_pending_complete_json(w->p, outcome_status(&w->out), outcome_json(&w->out));
		free(w);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int hf_node_api_new(struct hf_node *n, hf_node_api **out, hf_errbuf *eb)
{
	hf_node_api *a = calloc(1, sizeof *a);

	*out = NULL;
	if (!a)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	a->node = n;
	a->tail = &a->head;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->thread, NULL, answerer_main, a) != 0) {
		hf_node_api_free(a);
		return hf_fail(eb, HF_ENOMEM, "cannot start the API's answerer thread");
	}
	a->started = true;
	*out = a;
	return 0;
}

void hf_node_api_close(hf_node_api *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->closing = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (a->started) {
		pthread_join(a->thread, NULL);
		a->started = false;
	}
}

void hf_node_api_free(hf_node_api *a)
{
	if (!a)
		return;
	hf_node_api_close(a);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

const hf_http_route hf_node_api_routes[] = {
	{ "POST", "/v1/instruction", post_instruction },
	{ "GET", "/v1/status", get_status },
	{ "GET", "/metrics", get_metrics },
};
const size_t hf_node_api_nroutes = HF_ARRAY_SIZE(hf_node_api_routes);
