/* hf_oip: the Open Inference Protocol (KServe v2) REST inference request and response bodies,
 * sans-I/O: bytes in, tensors out; tensors in, bytes out. With Triton's binary tensor data
 * extension.
 *
 * Request: a JSON object {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype",
 * "parameters"?, "data"?}], "outputs"?: [{"name", "parameters"?}]}. "data" is flat or nested
 * in row-major order (nesting, when used, must follow the shape exactly); with the binary
 * extension the JSON is the first Inference-Header-Content-Length bytes of the body and an
 * input with "parameters": {"binary_data_size": n} takes its n bytes (little-endian) from the
 * rest of the body, in input order; the sizes must add up to the body exactly. FP32 data is
 * decoded into floats; in JSON, the strings "NaN", "Inf", "-Inf" (also "Infinity",
 * "-Infinity") stand for the non-finite values JSON has no number for. Other OIP datatypes
 * (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP64, BYTES) are recognised and checked for size,
 * but not decoded (data NULL): the caller refuses them against its model. Outputs are asked
 * for binary with "binary_data": true on the output, or for all with the request parameter
 * "binary_data_output": true.
 * Every violation is HF_EPARSE (or HF_ETOOBIG over a cap) with a message naming the input and
 * the field, fit to return as {"error": ...}. The server answers both with 400 (a tensor over a
 * cap is the client's error) and 413 only for a body or JSON part over its byte cap. They
 * cover: malformed JSON (with line and column), a missing or mistyped field, a key the protocol
 * does not list (at the top, in an input, in an output; "parameters" objects are open but their
 * values must be strings, numbers or booleans), duplicate input or output names, negative or
 * overflowing shapes, an element count that does not match the shape, a lying binary_data_size,
 * a header length past the body.
 * Caps (hf_oip_limits, 0 fields take the defaults): inputs and outputs per request, dims per
 * tensor, elements per tensor and per request, bytes of JSON (jansson holds ~40 bytes per JSON
 * element, so the JSON part is capped before it is parsed), the id length.
 * Response: {"model_name", "model_version"?, "id"? (echoed), "parameters"?, "outputs": [{"name",
 * "datatype": "FP32", "shape", "data"}]} (floats written with 9 significant digits, which
 * round-trip; non-finite values as the strings above), or with binary outputs the JSON
 * (each binary output with "parameters": {"binary_data_size": n} and no "data") followed by the
 * raw little-endian bytes, *json_len telling the caller the Inference-Header-Content-Length.
 * Threading: reentrant; a request object belongs to its caller.
 */
#ifndef HF_OIP_H
#define HF_OIP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_error.h"

#define HF_OIP_MAX_DIMS 8
#define HF_OIP_MAX_NAME 64   /* bytes with the NUL */
#define HF_OIP_MAX_ID 256    /* bytes with the NUL */
#define HF_OIP_DEFAULT_MAX_TENSORS 16
#define HF_OIP_DEFAULT_MAX_ELEMENTS (1u << 24)  /* per tensor */
#define HF_OIP_DEFAULT_MAX_TOTAL (1u << 25)     /* per request, all inputs */
#define HF_OIP_DEFAULT_MAX_JSON (16u << 20)     /* bytes of JSON per request */

typedef enum hf_oip_dtype {
	HF_OIP_BOOL = 0, HF_OIP_UINT8, HF_OIP_UINT16, HF_OIP_UINT32, HF_OIP_UINT64,
	HF_OIP_INT8, HF_OIP_INT16, HF_OIP_INT32, HF_OIP_INT64,
	HF_OIP_FP16, HF_OIP_FP32, HF_OIP_FP64, HF_OIP_BYTES,
	HF_OIP_DTYPE_COUNT
} hf_oip_dtype;

/* "FP32"...; parse is exact (case-sensitive, as the protocol writes them). */
const char *hf_oip_dtype_name(hf_oip_dtype d);
bool hf_oip_dtype_parse(const char *s, hf_oip_dtype *out);

typedef struct hf_oip_limits {
	size_t max_tensors;   /* inputs, and requested outputs, per request */
	uint64_t max_elements; /* per tensor */
	uint64_t max_total;   /* per request */
	size_t max_json;      /* bytes of the JSON part of the body */
} hf_oip_limits;

typedef struct hf_oip_tensor {
	char name[HF_OIP_MAX_NAME];
	hf_oip_dtype dtype;
	size_t ndim;
	int64_t shape[HF_OIP_MAX_DIMS];
	uint64_t count;       /* product of shape */
	float *data;          /* FP32: count floats (owned by the request); NULL otherwise */
	bool binary;          /* the data came from the binary section */
} hf_oip_tensor;

typedef struct hf_oip_output_req {
	char name[HF_OIP_MAX_NAME];
	bool binary;          /* asked for binary_data (or binary_data_output) */
} hf_oip_output_req;

typedef struct hf_oip_request {
	char id[HF_OIP_MAX_ID]; /* "" when absent (cleaned text) */
	bool has_id;
	json_t *parameters;   /* the request's parameters object (owned) or NULL */
	bool binary_output;   /* parameters.binary_data_output */
	size_t ninputs;
	hf_oip_tensor *inputs;
	size_t noutputs;      /* 0: every output of the model, JSON unless binary_output */
	hf_oip_output_req *outputs;
} hf_oip_request;

/* Parses body (len bytes). header_len: the Inference-Header-Content-Length header's value, or
 * NULL when absent (the whole body is JSON). lim may be NULL. On failure *req is left empty
 * (hf_oip_request_clear is still safe). */
int hf_oip_parse_request(const void *body, size_t len, const char *header_len,
			 const hf_oip_limits *lim, hf_oip_request *req, hf_errbuf *eb);
/* Frees what the request owns and zeroes it. */
void hf_oip_request_clear(hf_oip_request *req);

typedef struct hf_oip_out_tensor {
	const char *name;
	size_t ndim;
	const int64_t *shape;
	const float *data;    /* product of shape floats */
	bool binary;
} hf_oip_out_tensor;

/* Writes the response body into out (appended). model_version and id may be NULL (left out);
 * the strings pass hf_text_clean. *json_len: bytes of JSON from where the body starts in out
 * (equal to the whole body without binary outputs). HF_ENOMEM, HF_ETOOBIG past out's cap, or
 * HF_EINVAL for a caller error (NULL name or data, a negative dim, a count overflowing size_t);
 * on failure out is left as it was. */
int hf_oip_build_response(const char *model_name, const char *model_version, const char *id,
			  const hf_oip_out_tensor *outs, size_t n, hf_buf *out, size_t *json_len,
			  hf_errbuf *eb);

#endif
