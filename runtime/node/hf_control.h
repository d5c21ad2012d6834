/* hf_control: the node's control channel to a coordinator: a thread that long-polls
 * GET {coordinator_url}/v1/nodes/{node_id}/instruction?after={last_issued_ms}&wait={s}
 * (200 with an envelope, 204 when nothing newer) and hands envelopes to the node's verifier.
 *
 * Errors back off exponentially with jitter up to control.retry_max_ms; TLS peers are always
 * verified (control.ca_file adds a CA bundle); responses over 64 KiB are refused. Shutdown
 * interrupts a poll in progress within about a second.
 * Threading: one poller thread owned by the hf_control; status/metrics from any thread.
 */
#ifndef HF_CONTROL_H
#define HF_CONTROL_H

#include <jansson.h>

#include "hf_buf.h"
#include "hf_error.h"

struct hf_node;
typedef struct hf_control hf_control;

int hf_control_start(struct hf_node *node, hf_control **out, hf_errbuf *eb);
/* Adds "coordinator", "connected", "last_poll_ms", "poll_errors", "last_error" to obj. */
void hf_control_status(hf_control *c, json_t *obj);
void hf_control_metrics(hf_control *c, hf_buf *b);
/* Stops the poller and frees. NULL accepted. */
void hf_control_free(hf_control *c);

#endif
