/* hf_node_api: hashflopd's local HTTP API: its routes, and the answerer that sends an accepted
 * instruction's answer once its switch has finished without holding a server thread.
 *   GET /v1/status  JSON: node, fleet, mode, phase, uptime, version, last switch, last instruction
 *   GET /metrics    Prometheus text exposition format
 *   POST /v1/instruction  a signed envelope from an operator on the node: 200 accepted/noop,
 *                   400 malformed, 403 refused, 409 held, 413 oversize, 500 not persisted,
 *                   503 no trust file. An accepted one is answered once its switch finished
 *                   (modes.apply_wait_ms at most): "applied" true when the mode runs, else
 *                   "error" (a failed start, retried with backoff) or "pending" true (still
 *                   switching at the deadline). Meanwhile the request is deferred
 *                   (hf_http_defer): no server thread waits with it.
 * Invariants: every deferred answer is completed exactly once, by the answerer thread; answers
 * are sent in arrival order, which is also deadline order (one apply_wait_ms for all), and an
 * older instruction's wait ends as soon as a newer one supersedes it, so one waiting answer
 * never holds up a later one beyond its own outcome.
 * Threading: hf_node_api_new/close/free on the node's owner thread; handlers (ctx is the
 * hf_node_api) on the server threads; the answerer is one thread owned by the hf_node_api.
 */
#ifndef HF_NODE_API_H
#define HF_NODE_API_H

#include <stddef.h>

#include "hf_error.h"
#include "hf_httpd.h"

struct hf_node;
typedef struct hf_node_api hf_node_api;

extern const hf_http_route hf_node_api_routes[];
extern const size_t hf_node_api_nroutes;

/* The routes' ctx for node n (which must outlive it); starts the answerer thread. */
int hf_node_api_new(struct hf_node *n, hf_node_api **out, hf_errbuf *eb);
/* Answers every waiting instruction now (call after hf_modes_shutdown: their waits end at
 * once) and stops the answerer; later instructions are answered without waiting. Call before
 * the HTTP server stops. */
void hf_node_api_close(hf_node_api *a);
/* Closes if needed and frees; after the HTTP server is gone. NULL accepted. */
void hf_node_api_free(hf_node_api *a);

#endif
