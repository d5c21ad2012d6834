/* hf_node: one running hashflopd: config, state dir lock, persisted desired state, the mode
 * machine and the local API, wired together.
 *
 * Start-up order: lock the state dir (one daemon per state dir) -> load the persisted desired
 * mode (corrupt files are moved aside, never trusted) -> start the mode machine in that mode ->
 * start the API -> write <state_dir>/api.json with the bound address. Shutdown runs it backwards
 * and drains the current mode within the configured drain timeout.
 * Threading: hf_node_new/free on the main thread; status/metrics/set_mode from any thread.
 */
#ifndef HF_NODE_H
#define HF_NODE_H

#include <jansson.h>

#include "hf_buf.h"
#include "hf_error.h"
#include "hf_mode.h"
#include "hf_node_config.h"

typedef struct hf_node hf_node;

/* Takes ownership of nothing: cfg must outlive the node. Logs what it restores. */
int hf_node_new(const hf_node_config *cfg, hf_node **out, hf_errbuf *eb);
/* The bound API port. */
uint16_t hf_node_api_port(const hf_node *n);
/* Persists target as the desired mode, then queues the switch. */
int hf_node_set_mode(hf_node *n, hf_mode target, const json_t *params, hf_errbuf *eb);
/* The document behind GET /v1/status (new reference). */
json_t *hf_node_status_json(hf_node *n);
/* The text behind GET /metrics. */
void hf_node_metrics(hf_node *n, hf_buf *b);
hf_modes *hf_node_modes(hf_node *n);
/* Drains, persists, stops the API, unlocks. NULL accepted. */
void hf_node_free(hf_node *n);

#endif
