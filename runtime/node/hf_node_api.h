/* hf_node_api: the routes of hashflopd's local HTTP API (ctx is the hf_node).
 *   GET /v1/status  JSON: node, fleet, mode, phase, uptime, version, last switch, last instruction
 *   GET /metrics    Prometheus text exposition format
 *   POST /v1/instruction  a signed envelope from an operator on the node: 200 accepted/noop,
 *                   400 malformed, 403 refused, 409 held, 413 oversize, 503 no trust file. An
 *                   accepted one is answered once its switch finished (modes.apply_wait_ms at
 *                   most): "applied" true when the mode runs, else "error" (a failed start,
 *                   retried with backoff) or "pending" true (still switching at the deadline)
 * Threading: handlers run on libmicrohttpd's threads; they only call hf_node's thread-safe API.
 */
#ifndef HF_NODE_API_H
#define HF_NODE_API_H

#include <stddef.h>

#include "hf_httpd.h"

extern const hf_http_route hf_node_api_routes[];
extern const size_t hf_node_api_nroutes;

#endif
