/* hf_inference: the inference mode worker of hashflopd, a thin adapter of hf_mode_worker onto
 * the inference server (runtime/infer/hf_infer.h).
 *
 * The server's listener starts with the worker object (hf_inference_new, at node start) and
 * runs for the node's life whatever its mode, so clients always get the truth: ready only
 * while the mode runs, 503 with Retry-After otherwise. start loads the models (every model of
 * inference.model_dir, or the instruction's {"models": [...]}) and warms up their executors;
 * drain stops admitting, finishes queued and running batches before the deadline; release
 * frees executors and the device; health fails once every instance of every model failed.
 * In a build without OpenCL hf_inference_new answers HF_EUNSUPPORTED (hf_inference_none.c)
 * and the node runs without the mode.
 * Threading: hf_inference_new/free on the node's owner thread; the worker callbacks follow
 * hf_mode.h; port/status/metrics from any thread.
 */
#ifndef HF_INFERENCE_H
#define HF_INFERENCE_H

#include <jansson.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"
#include "hf_mode.h"

typedef struct hf_inference hf_inference;

/* section: node.json's `inference` object (NULL: defaults); state_dir for the model_dir and
 * program cache defaults; cache_dir (NULL or "": <state_dir>/cl-cache), the node's cache
 * directory ($CACHE_DIRECTORY), for the OpenCL program cache. Binds inference.listen:port
 * (HF_EIO when it cannot). */
int hf_inference_new(const json_t *section, const char *state_dir, const char *cache_dir,
		     hf_inference **out, hf_errbuf *eb);
/* Fills *w with the callbacks for hf_modes_register() (status and metrics are left NULL: the
 * node adds hf_inference_status/metrics in every mode). */
void hf_inference_worker(hf_inference *in, hf_mode_worker *w);
/* The listener's port (the ephemeral one for port 0). */
uint16_t hf_inference_port(const hf_inference *in);
const char *hf_inference_listen(const hf_inference *in);
/* Adds "inference": {...} (hf_infer_status_json) to obj. */
void hf_inference_status(hf_inference *in, json_t *obj);
/* Appends the hashflop_infer_* families. */
void hf_inference_metrics(hf_inference *in, hf_buf *b);
/* Drains (no grace) and releases a running mode, stops the listener, frees. NULL accepted. */
void hf_inference_free(hf_inference *in);

#endif
