/* hf_node_api: handlers of the node's local API.
 * Threading: see hf_node_api.h.
 */
#include "hf_node_api.h"

#include "hf_node.h"
#include "hf_prom.h"
#include "hf_util.h"

static void get_status(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_http_resp_json(resp, 200, hf_node_status_json(ctx));
}

static void get_metrics(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_node_metrics(ctx, &resp->body);
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

static void post_instruction(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	static const char *const results[] = { "accepted", "noop", "refused", "no_trust", "failed" };
	hf_instr_outcome o;
	json_t *j;

	hf_node_submit_instruction(ctx, req->body, req->body_len, "local",
				   hf_node_config_of(ctx)->apply_wait_ms, &o);
	j = json_pack("{s:s, s:s}", "result", results[o.result], "detail", o.detail);
	if (o.result == HF_INSTR_REFUSED)
		json_object_set_new(j, "reason", json_string(hf_instr_refusal_name(o.why)));
	if (o.result == HF_INSTR_ACCEPTED) {
		json_object_set_new(j, "mode", json_string(hf_mode_name(o.mode)));
		json_object_set_new(j, "issued_ms", json_integer((json_int_t)o.issued_ms));
		json_object_set_new(j, "authority", json_string(o.automatic ? "coordinator" : "operator"));
		json_object_set_new(j, "applied", json_boolean(o.applied));
		json_object_set_new(j, "pending", json_boolean(o.pending));
		if (o.error[0])
			json_object_set_new(j, "error", json_string(o.error));
	}
	if (o.result == HF_INSTR_ACCEPTED || o.result == HF_INSTR_NOOP)
		json_object_set_new(j, "converged", json_boolean(o.converged));
	hf_http_resp_json(resp, outcome_status(&o), j);
}

const hf_http_route hf_node_api_routes[] = {
	{ "POST", "/v1/instruction", post_instruction },
	{ "GET", "/v1/status", get_status },
	{ "GET", "/metrics", get_metrics },
};
const size_t hf_node_api_nroutes = HF_ARRAY_SIZE(hf_node_api_routes);
