/* hf_graph: the layer graph of a model (safetensors __metadata__ "hashflop.graph"), validated
 * against the file's tensors, with shapes inferred, and its reference executor on the CPU.
 *
 * The graph JSON (a string in __metadata__; format in runtime/infer/README.md):
 *   {"version": 1,
 *    "inputs":  [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}],
 *    "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}],
 *    "ops": [{"op": "linear", "inputs": ["input"], "outputs": ["h1"],
 *             "weight": "fc1.weight", "bias": "fc1.bias"},
 *            {"op": "relu", "inputs": ["h1"], "outputs": ["a1"]}, ...]}
 * Every value (a model input or an op output) has a name unique in the graph and a shape
 * [batch, d1, ...]: the batch dimension is first and only there is -1 allowed. Ops run in list
 * order; an op may only read values defined before it. Each output names a value some op
 * defines (or a model input). Shapes of op outputs are inferred; an output's declared shape
 * must match the inferred one. Validation is strict (unknown keys, wrong types, unknown ops,
 * undefined or redefined values, weight tensors missing or of the wrong shape, dims over
 * caps): the error names the op by index and kind and the field ("ops[2] (linear): weight
 * \"fc2.weight\" has shape [128, 255], expected [128, 256] for 256 inputs").
 * Ops (the op table in hf_graph.c; a new op is one entry: parse its attributes, infer its
 * shape, run it on the reference):
 *   linear     weight [out, in] (nn.Linear layout), optional bias [out]; y = x W^T + b over
 *              the last dim (F32 or F16 weight and bias; the reference widens F16 to F32)
 *   relu, gelu ("approximate": "none" (erf, default) | "tanh"), tanh, sigmoid: elementwise
 *   softmax    over "axis" (only -1, the last dim, for now)
 *   layernorm  over the last dim: weight [d], bias [d] (both optional), "eps" (default 1e-5)
 *   add        two inputs of the same shape (residual)
 *   reshape    "shape": [-1, ...] (the batch stays; element count per sample must match)
 *   flatten    all dims after the batch into one
 * Caps: HF_GRAPH_MAX_OPS ops, HF_GRAPH_MAX_VALUES values, HF_GRAPH_MAX_IO inputs and outputs,
 * at most 1<<24 elements per sample in any value, names 1..63 bytes (clean UTF-8), the graph
 * JSON at most 1 MiB.
 * Threading: an hf_graph is immutable after hf_graph_new; any thread may read it and run the
 * reference executor concurrently (each call uses its own scratch memory).
 */
#ifndef HF_GRAPH_H
#define HF_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_safetensors.h"

#define HF_GRAPH_MAX_OPS 1024
#define HF_GRAPH_MAX_VALUES 2048
#define HF_GRAPH_MAX_IO 16
#define HF_GRAPH_MAX_DIMS 8
#define HF_GRAPH_MAX_NAME 64
#define HF_GRAPH_META_KEY "hashflop.graph"

typedef enum hf_op_kind {
	HF_OP_LINEAR = 0,
	HF_OP_RELU,
	HF_OP_GELU,
	HF_OP_TANH,
	HF_OP_SIGMOID,
	HF_OP_SOFTMAX,
	HF_OP_LAYERNORM,
	HF_OP_ADD,
	HF_OP_RESHAPE,
	HF_OP_FLATTEN,
	HF_OP_KIND_COUNT
} hf_op_kind;

/* "linear", "relu", ... */
const char *hf_op_name(hf_op_kind k);

/* A value: a model input or an op's output. shape[0] is the batch (-1 in the graph). */
typedef struct hf_graph_value {
	char name[HF_GRAPH_MAX_NAME];
	size_t ndim;                   /* including the batch dimension */
	int64_t shape[HF_GRAPH_MAX_DIMS]; /* shape[0] = -1 */
	uint64_t per_sample;           /* elements per batch item: product of shape[1..] */
	int producer;                  /* index of the op that defines it; -1 for a model input */
} hf_graph_value;

typedef struct hf_graph_op {
	hf_op_kind kind;
	size_t ninputs, noutputs;
	int inputs[2];                 /* value indices */
	int outputs[1];
	/* Attributes (those the kind uses): */
	const hf_st_tensor *weight;    /* linear [out, in]; layernorm [d]; NULL if absent */
	const hf_st_tensor *bias;      /* linear [out]; layernorm [d]; NULL if absent */
	uint64_t in_features, out_features; /* linear */
	float eps;                     /* layernorm */
	bool gelu_tanh;                /* gelu: the tanh approximation */
	int axis;                      /* softmax: -1 */
} hf_graph_op;

/* A model input or output as served: its value and OIP datatype ("FP32"). */
typedef struct hf_graph_io {
	int value;
	char datatype[8];
} hf_graph_io;

typedef struct hf_graph hf_graph;

/* Parses and validates the graph held by st's __metadata__ (HF_GRAPH_META_KEY); st must
 * outlive the graph (weights point into it). HF_ENOTFOUND when there is no graph key,
 * HF_EPARSE / HF_ETOOBIG / HF_EUNSUPPORTED otherwise, with the detail. */
int hf_graph_new(const hf_st *st, hf_graph **out, hf_errbuf *eb);
/* The same from a JSON text (tests, tools). */
int hf_graph_new_json(const hf_st *st, const char *json, size_t len, hf_graph **out,
		      hf_errbuf *eb);
void hf_graph_free(hf_graph *g);

size_t hf_graph_nvalues(const hf_graph *g);
const hf_graph_value *hf_graph_value_at(const hf_graph *g, size_t i);
size_t hf_graph_nops(const hf_graph *g);
const hf_graph_op *hf_graph_op_at(const hf_graph *g, size_t i);
size_t hf_graph_ninputs(const hf_graph *g);
const hf_graph_io *hf_graph_input(const hf_graph *g, size_t i);
size_t hf_graph_noutputs(const hf_graph *g);
const hf_graph_io *hf_graph_output(const hf_graph *g, size_t i);
/* Index of the model input / output named name, or -1. */
int hf_graph_find_input(const hf_graph *g, const char *name);
int hf_graph_find_output(const hf_graph *g, const char *name);
/* Multiply-adds * 2 per batch item (linear layers only): the FLOPs a benchmark counts. */
uint64_t hf_graph_flops_per_sample(const hf_graph *g);
/* Every floating-point operation of one batch item, as the node's telemetry counts it (GFLOP
 * per joule; hf_graph_flops_per_sample counts the linear layers' multiply-adds only): a linear
 * layer 2*in*out per row, + out with a bias; relu, gelu, tanh, sigmoid and add one per output
 * element; softmax HF_GRAPH_SOFTMAX_FLOPS per element; layernorm HF_GRAPH_LAYERNORM_FLOPS per
 * element, + 1 with a weight, + 1 with a bias; reshape and flatten none. A transcendental
 * (exp, erf, tanh) counts as one operation, so the figure compares across devices, not
 * against a device's peak. */
#define HF_GRAPH_SOFTMAX_FLOPS 5   /* max, subtract, exp, sum, divide */
#define HF_GRAPH_LAYERNORM_FLOPS 5 /* sum (mean), subtract, square, sum (variance), scale */
double hf_graph_work_flops_per_sample(const hf_graph *g);
/* Bytes of weights (as stored) the graph uses. */
uint64_t hf_graph_weight_bytes(const hf_graph *g);

/* The reference executor: plain C, FP32 storage with double accumulation for linear and the
 * reductions, op by op. inputs[i] holds batch * per_sample floats of model input i; outputs[j]
 * receives those of model output j. HF_EINVAL for batch 0. */
int hf_graph_ref_run(const hf_graph *g, size_t batch, const float *const *inputs,
		     float *const *outputs, hf_errbuf *eb);

#endif
