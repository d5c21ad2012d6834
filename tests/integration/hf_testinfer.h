/* hf_testinfer: inference mode in integration tests: a hashflopd config with an inference
 * section over a copy of the committed model repository, the inference listener's port (from
 * <state_dir>/api.json), HTTP exchanges with any body size and extra headers (libcurl, one
 * handle per client so connections are kept alive), the Fashion-MNIST test images (zlib), the
 * expected outputs (safetensors, parsed here independently of hf_safetensors), and OIP v2
 * request bodies (JSON and the binary tensor extension) and responses.
 * Failures in the setup helpers fail the calling Criterion test (cr_assert), so call those
 * from the test itself; the client and body helpers never assert and may run on any thread.
 * Threading: one owner per hf_ti_client; everything else is reentrant.
 */
#ifndef HF_TESTINFER_H
#define HF_TESTINFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf_testnode.h"

#define HF_TI_MODEL "fashion-mnist"
#define HF_TI_IN 784     /* input features: 28 x 28 pixels / 255 */
#define HF_TI_OUT 10     /* classes */
#define HF_TI_IMAGES 10000
/* How long a switch may take: inference's start builds (or loads) every kernel and warms each
 * batch bucket, minutes under the sanitizers with a cold PoCL cache on a shared machine. */
#define HF_TI_START_MS 300000

/* One HTTP exchange. body is malloc'ed and NUL-terminated (hf_ti_reply_clear frees it). */
typedef struct hf_ti_reply {
	long status;
	char *body;
	size_t len, cap;
	char headers[8192];
	size_t hlen;
	char error[256];   /* the transfer's failure (curl's message), "" when it completed */
} hf_ti_reply;

void hf_ti_reply_clear(hf_ti_reply *r);
/* The value of response header name (case-insensitive) in out; false when absent. */
bool hf_ti_header(const hf_ti_reply *r, const char *name, char *out, size_t sz);
/* The string "error" of a JSON body; NULL when the body is not {"error": "..."} (static
 * storage is not used: out receives a copy). */
const char *hf_ti_error_text(const hf_ti_reply *r, char *out, size_t sz);

typedef struct hf_ti_client hf_ti_client;
hf_ti_client *hf_ti_client_new(void);
void hf_ti_client_free(hf_ti_client *c);
/* One exchange on c's kept-alive connection: headers is NULL or a NULL-terminated list of
 * "Name: value" lines; timeout_ms bounds the whole exchange. false when the transfer failed
 * (refused, reset, timed out: r->error says which); r is cleared first. */
bool hf_ti_request(hf_ti_client *c, const char *method, const char *url, const char *const *headers,
		   const void *body, size_t len, long timeout_ms, hf_ti_reply *r);
/* The same with a one-off client. */
bool hf_ti_http(const char *method, const char *url, const char *const *headers, const void *body,
		size_t len, long timeout_ms, hf_ti_reply *r);

/* hf_testnode_init (paths, trust file path) followed by a node.json of our own: modes.initial
 * `initial`, `mining` (a JSON object text or NULL) and "inference": {"model_dir":
 * "<dir>/models", "listen": "127.0.0.1", "port": 0 <, inference_extra>} (extra: NULL or more
 * members, "\"max_body_mb\": 1"); copies every model of <source>/runtime/infer/models into
 * <dir>/models. */
void hf_ti_node_init(hf_testnode *n, const char *name, const char *initial, const char *mining,
		     const char *inference_extra, unsigned drain_timeout_ms);
/* Writes <dir>/models/<model>/config.json with text (replacing the committed one). */
void hf_ti_model_config(const hf_testnode *n, const char *model, const char *text);
/* Waits (HF_TESTNODE_WAIT_MS) for inference_port in <state_dir>/api.json; the port. */
int hf_ti_port(const hf_testnode *n);
/* "http://127.0.0.1:<port><path>" into out. */
void hf_ti_url(char *out, size_t sz, int port, const char *path);
/* Switches n to `mode` with a signed instruction, waits (HF_TI_START_MS) for the mode, returns
 * the status seq of that switch; *status_out (if not NULL) gets the status (caller decrefs). */
uint64_t hf_ti_switch(hf_testnode *n, const char *mode, uint64_t after_seq, json_t **status_out);
/* last_switch.seq of a fresh /v1/status. */
uint64_t hf_ti_seq(const hf_testnode *n);

/* The 10,000 Fashion-MNIST test images as pixel / 255 floats [n, 784] (malloc'ed), and their
 * labels (malloc'ed); the file's own counts must match. */
float *hf_ti_fmnist_images(size_t *n);
uint8_t *hf_ti_fmnist_labels(size_t *n);

/* One F32 tensor of a safetensors file (malloc'ed copy) with its shape; asserts on a malformed
 * file or a missing / non-F32 tensor. */
float *hf_ti_st_f32(const char *path, const char *name, int64_t *shape, size_t *ndim, size_t *count);
/* __metadata__[key] of a safetensors file (malloc'ed), NULL when absent. */
char *hf_ti_st_meta(const char *path, const char *key);
/* <source>/tests/data/fashion-mnist/expected.safetensors into out. */
void hf_ti_expected_path(char *out, size_t sz);

/* OIP request bodies for the model's input [rows, cols] (malloc'ed). JSON: flat "data" with
 * 9 significant digits (round-trips FP32); binary: the JSON header then the raw floats, with
 * *json_len the Inference-Header-Content-Length. binary_out asks for binary outputs. */
char *hf_ti_json_body(const float *x, size_t rows, size_t cols, const char *id, bool binary_out,
		      size_t *len);
void *hf_ti_binary_body(const float *x, size_t rows, size_t cols, bool binary_out, size_t *len,
			size_t *json_len);
/* POSTs one of those bodies to /v2/models/<model>/infer on c (binary when json_len != 0). */
bool hf_ti_post_infer(hf_ti_client *c, int port, const char *model, const void *body, size_t len,
		      size_t json_len, long timeout_ms, hf_ti_reply *r);
/* Parses a 200 infer reply's output "probs" [rows, 10] into out (JSON data or binary, as the
 * reply carries it); false with the reason in why. */
bool hf_ti_parse_probs(const hf_ti_reply *r, size_t rows, float *out, char *why, size_t whysz);

/* Reads one HTTP/1.1 response from a raw socket (hf_testnet): the headers and, with a
 * Content-Length, that many body bytes (else until the peer closes). Returns the bytes in buf
 * (NUL-terminated; a response longer than cap - 1 is an error), or -1 on timeout, error or a
 * close before the response was complete. *body_off: where the body starts. */
ssize_t hf_ti_raw_response(int fd, char *buf, size_t cap, uint64_t timeout_ms, size_t *body_off);
/* A raw response (hf_ti_raw_response) as a reply (status, headers, body); false when the
 * status line does not parse. */
bool hf_ti_reply_from_raw(const char *buf, size_t len, size_t body_off, hf_ti_reply *r);
/* The raw request text of an infer POST with a binary body for x [rows, 784] (malloc'ed, *len
 * bytes): request line, headers (Host, Content-Type, Inference-Header-Content-Length,
 * Content-Length) and body. */
char *hf_ti_raw_infer(const float *x, size_t rows, bool binary_out, size_t *len);

/* The sum of the samples of metric `name` (exactly: followed by '{' or ' ') in a Prometheus
 * text whose label sets contain every string of labels (NULL-terminated, e.g.
 * "model=\"fashion-mnist\""; labels may be NULL); -1 when no sample matched. */
double hf_ti_metric_sum(const char *text, const char *name, const char *const *labels);

#endif
