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

const hf_http_route hf_node_api_routes[] = {
	{ "GET", "/v1/status", get_status },
	{ "GET", "/metrics", get_metrics },
};
const size_t hf_node_api_nroutes = HF_ARRAY_SIZE(hf_node_api_routes);
