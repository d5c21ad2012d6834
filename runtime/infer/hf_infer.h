/* hf_infer: the inference server of a node: a model repository loaded onto one OpenCL device,
 * a dynamic batcher per model, and the Open Inference Protocol (KServe v2 REST) listener.
 *
 * The listener runs for the life of the hf_infer object (from hf_infer_new), whatever mode the
 * node is in, so clients always get the truth: /v2/health/live is 200 while the process runs;
 * /v2/health/ready and /v2/models/NAME/ready are 200 only while the server is started and the
 * model is loaded, and 503 (ready false) while stopped, loading, draining or failed; infer
 * requests outside the ready state answer 503 with Retry-After. hf_infer_start loads the
 * repository (every model, or those named in params {"models": [...]}) within the memory
 * budget, opens the device, builds an executor per model instance for its max batch size
 * (warm-up included) and starts its batcher; hf_infer_drain stops admitting (new requests 503
 * with Retry-After), finishes the queued and running batches before the deadline (those still
 * queued at the deadline are answered 503) and returns; hf_infer_release frees executors and
 * the device. A model that fails to load is reported (status, /v2/models/NAME/ready false
 * with the reason) and the others serve: start fails only when no model could be loaded and
 * models were asked for by name, or the device cannot be opened.
 * Routes: GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME (metadata),
 * /v2/models/NAME/ready, POST /v2/models/NAME/infer (also /v2/models/NAME/versions/V/...).
 * Bodies (what clients and the integration tests can rely on):
 *   GET /v2                  200 {"name": "hashflop", "version", "extensions": ["binary_tensor_data"]}
 *   GET /v2/health/live      200 {"live": true}
 *   GET /v2/health/ready     200 {"ready": true, "state": "ready"} or 503 {"ready": false,
 *                            "state": "stopped" | "loading" | "draining"}
 *   GET /v2/models/NAME      200 {"name", "versions": ["1"], "platform": "hashflop", "inputs":
 *                            [{"name", "datatype": "FP32", "shape": [-1, ...]}], "outputs": [...],
 *                            "max_batch_size"}; 503 {"error"} for a model that did not load;
 *                            404 unknown model (503 while the server is stopped: nothing known)
 *   GET /v2/models/NAME/ready 200 {"name", "ready": true} or 503 {"name", "ready": false,
 *                            "reason"} (loading, draining, load failure, instances failed)
 *   POST .../infer           200 hf_oip response (model_version "1", id echoed); with any binary
 *                            output Content-Type application/octet-stream and
 *                            Inference-Header-Content-Length, else application/json.
 * A version other than "1" is 404. Errors are {"error": "..."}: 400 malformed body (any
 * hf_oip violation, its tensor caps included: an overflowing shape is 400), unknown or
 * missing input, datatype other than FP32, shape not [n, per-sample dims of the graph], inputs
 * with different n, n > the model's max_batch_size, unknown requested output; 404 unknown model;
 * 413 body over max_body_mb (the listener) or a JSON part over HF_OIP_DEFAULT_MAX_JSON; 500 the executor failed;
 * 503 + Retry-After (retry_after_s): stopped, loading, model failed to load, draining, queue
 * full (max_queue), queued longer than request_timeout_ms, drained before it ran.
 * The server is ready once every model asked for has been started (loaded or failed); a model
 * is ready while its batcher has a running instance.
 * Threading: hf_infer_new/free on the owner thread; start/drain/release/health on one thread
 * at a time (the node's switcher); status/metrics from any thread; HTTP handlers on the
 * listener's threads; each model instance runs its batches on its own thread.
 */
#ifndef HF_INFER_H
#define HF_INFER_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

#define HF_INFER_DEFAULT_PORT 8000

/* node.json's "inference" section, every field defaulted (the defaults in parentheses). */
typedef struct hf_infer_config {
	char model_dir[PATH_MAX];      /* model_dir (<state_dir>/models) */
	char listen[64];               /* listen ("127.0.0.1"), a numeric address */
	uint16_t port;                 /* port (8000; 0 = ephemeral, tests) */
	char device[128];              /* device ("auto"): an OpenCL selector */
	uint64_t memory_budget_mb;     /* memory_budget_mb (2048): weights + buffers, all models */
	char models[16][64];           /* models ([]: every model in model_dir) */
	size_t nmodels;
	/* batching defaults for models without their own config.json values */
	uint64_t max_batch_size;       /* max_batch_size (32), 1..4096 */
	uint64_t max_queue_delay_us;   /* max_queue_delay_us (500), 0..1000000 */
	uint64_t max_queue;            /* max_queue (1024): queued requests per model */
	uint64_t instances;            /* instances (1), 1..16 executors per model */
	uint64_t request_timeout_ms;   /* request_timeout_ms (10000): queued longer -> 503 */
	uint64_t retry_after_s;        /* retry_after_s (1): the Retry-After of 503s */
	/* the listener */
	uint64_t max_body;             /* max_body_mb (64) in bytes here */
	uint64_t max_conns;            /* max_connections (4096) */
	uint64_t max_conns_per_client; /* max_connections_per_client (0: no cap) */
	uint64_t header_timeout_s;     /* header_timeout_s (10) */
	uint64_t timeout_s;            /* timeout_s (30): idle connections */
	uint64_t threads;              /* threads (4): listener threads */
	/* not a key: hf_cl's program cache, <state_dir>/cl-cache ("" = none) */
	char cl_cache_dir[PATH_MAX];
} hf_infer_config;

/* Defaults; model_dir from state_dir. */
void hf_infer_config_defaults(hf_infer_config *cfg, const char *state_dir);
/* Validates the section (NULL: defaults) strictly on top of the defaults: unknown keys and bad
 * values are HF_ECONFIG with the path ("inference.max_batch_size: expected 1..4096"). */
int hf_infer_config_from_json(hf_infer_config *cfg, const json_t *section,
			      const char *state_dir, hf_errbuf *eb);
/* The effective section (every key) as a new reference. */
json_t *hf_infer_config_to_json(const hf_infer_config *cfg);

typedef struct hf_infer hf_infer;

/* Starts the listener (not ready). HF_EIO when the address cannot be bound. */
int hf_infer_new(const hf_infer_config *cfg, hf_infer **out, hf_errbuf *eb);
uint16_t hf_infer_port(const hf_infer *s);
int hf_infer_start(hf_infer *s, const json_t *params, hf_errbuf *eb);
int hf_infer_drain(hf_infer *s, uint64_t deadline_ms, hf_errbuf *eb);
void hf_infer_release(hf_infer *s);
/* 0 while serving; an error once every instance of every model has failed. */
int hf_infer_health(hf_infer *s, hf_errbuf *eb);
/* Adds "inference": {"state" (stopped | loading | ready | draining), "listen", "port", "device",
 * "model_dir", "memory_budget_mb", "memory_used_bytes"?, "problem"? (model_dir unreadable),
 * "last_error"? (the last failed start), "models": [{"name", "state" (loading | ready |
 * failed), "reason" ("" or why it failed), "max_batch_size", "max_queue_delay_us",
 * "max_queue", "instances", "instances_ready", "memory_bytes", "queue_depth",
 * "requests_total", "inferences_per_second", "batches_total"?, "inferences_total"?,
 * "avg_batch_size"?, "last_error"?}]} to obj ("models" is [] while stopped). */
void hf_infer_status_json(hf_infer *s, json_t *obj);
/* hashflop_infer_* families: state{state}, connections, deferred_requests,
 * requests_total{model,code} (code 200 400 404 413 500 503), failures_total{model,reason}
 * (reason bad_request too_large queue_full not_ready draining timeout canceled compute
 * client_gone), unknown_model_requests_total, and for the running models model_state{model,
 * state}, queue_depth{model}, instances_ready{model}, inferences_per_second{model},
 * batch_size{model} (histogram, le 1 2 4 ... 4096), queue_time_seconds{model} and
 * compute_time_seconds{model} (histograms, le 50us ... 10s). Counters live as long as the
 * object; the histograms and gauges restart with each start. */
void hf_infer_metrics(hf_infer *s, hf_buf *b);
/* The work done over the object's life, never reset by a stop or start: batch items the
 * executors answered, and their floating-point operations (items * the model's
 * hf_graph_work_flops_per_sample, fixed when the model loaded). Any thread; a short lock. */
void hf_infer_work(hf_infer *s, uint64_t *inferences, double *flops);
/* Drains (if needed), stops the listener (deferred requests answered 503), frees. NULL ok. */
void hf_infer_free(hf_infer *s);

#endif
