/* hf_exec: runs an hf_graph on one OpenCL device (kernels/gemm and kernels/nn), for any batch
 * up to the max batch it was made for.
 *
 * hf_exec_new lowers the graph once: consecutive ops are fused where it pays (linear with its
 * bias and a following elementwise activation in one kernel epilogue; elementwise chains), the
 * weights are uploaded (and prepacked) once, device buffers for every intermediate value are
 * allocated once for max_batch and reused by every run, kernels are built through the hf_cl
 * binary cache, and every batch-size bucket (1, 2, 4, ... up to max_batch) is run once as a
 * warm-up so no request pays a first-launch compile. A run writes the inputs, enqueues the
 * whole graph with no host round trip between ops, and reads the outputs: one blocking wait
 * per run. Results match hf_graph_ref_run within FP32 rounding (tests check 1e-4 relative on
 * every op and on whole models).
 * Threading: an hf_exec belongs to one thread at a time, as the hf_cl handle it was made on
 * (which must outlive it and must not be used by anyone else meanwhile).
 */
#ifndef HF_EXEC_H
#define HF_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_cl.h"
#include "hf_error.h"
#include "hf_graph.h"

typedef struct hf_exec_opts {
	size_t max_batch;        /* 0: 1 */
	bool no_fusion;          /* one kernel per op (benchmarks, tests) */
	bool no_warmup;          /* skip the warm-up runs (tests of the lowering) */
	const char *chain_kernel; /* NULL: the device's defaults for the fused chain kernel; else
				   * parameters as hf_exec_describe shows them, e.g. "vw=4 nv=1
				   * mr=4 ls=64 rows" (tests, tuning; HF_EINVAL when bad) */
} hf_exec_opts;

/* Where the time of the runs went (hf_cl opened with profiling for the *_ns fields; 0 else). */
typedef struct hf_exec_stats {
	uint64_t runs, samples;
	uint64_t launches;        /* kernel launches enqueued, all runs */
	uint64_t gemm_ns;         /* device time in linear layers (profiling) */
	uint64_t other_ns;        /* device time in every other kernel (profiling) */
	uint64_t wall_ns;         /* host wall time inside hf_exec_run, all runs */
} hf_exec_stats;

typedef struct hf_exec hf_exec;

/* HF_ECL with the device's words when a kernel does not build or memory cannot be had,
 * HF_ETOOBIG when the buffers for max_batch exceed the device's limits. */
int hf_exec_new(hf_cl *cl, const hf_graph *g, const hf_exec_opts *opts, hf_exec **out,
		hf_errbuf *eb);
void hf_exec_free(hf_exec *e);

/* Runs batch items (1..max_batch): inputs[i] holds batch * per_sample floats of model input i
 * (host memory), outputs[j] receives batch * per_sample floats of model output j. Blocks until
 * the outputs are in host memory. HF_EINVAL for a batch of 0 or over max_batch. */
int hf_exec_run(hf_exec *e, size_t batch, const float *const *inputs, float *const *outputs,
		hf_errbuf *eb);

size_t hf_exec_max_batch(const hf_exec *e);
/* Device bytes held (weights, packed panels, activations for max_batch). */
uint64_t hf_exec_device_bytes(const hf_exec *e);
/* Kernel launches per run after fusion (the same for every batch). */
size_t hf_exec_launches_per_run(const hf_exec *e);
/* One line describing the lowering, e.g. "3 kernels: linear+bias+relu 784x256 (gemm packed
 * ...), linear+bias+relu 256x128, linear+bias+softmax 128x10". */
const char *hf_exec_describe(const hf_exec *e);
void hf_exec_get_stats(const hf_exec *e, hf_exec_stats *out);

#endif
