/* hf_nn: the OpenCL layer kernels of the executor (the kernels/nn .cl files): building their programs
 * through the hf_cl cache, the chain kernel's parameters per device, and the host-side weight
 * packing the chain kernel streams.
 *
 * Programs: HF_NN_OPS (hf_nn_eltwise, hf_nn_softmax, hf_nn_layernorm: nn_ops.cl, any device,
 * no tunables) and HF_NN_CHAIN (hf_nn_chain: nn_chain.cl, a whole chain of linear layers with
 * bias and activations in one launch, built per hf_nn_chain_params and weight type). Each
 * .cl file states its contract at its top.
 * Threading: everything here is reentrant; programs belong to the hf_cl handle they were built
 * on (one thread at a time, like the handle).
 */
#ifndef HF_NN_H
#define HF_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_cl.h"
#include "hf_error.h"

/* Activation codes (nn_common.cl): lists hold up to HF_NN_MAX_ACTS of them, 4 bits each, the
 * first in the low bits. */
enum {
	HF_NN_ACT_NONE = 0,
	HF_NN_ACT_RELU = 1,
	HF_NN_ACT_GELU = 2,
	HF_NN_ACT_GELU_TANH = 3,
	HF_NN_ACT_TANH = 4,
	HF_NN_ACT_SIGMOID = 5,
};
#define HF_NN_MAX_ACTS 4
/* Ints per layer in the chain kernel's descriptor table. */
#define HF_NN_DESC_INTS 8

typedef enum hf_nn_program {
	HF_NN_OPS = 0,
	HF_NN_CHAIN = 1,
} hf_nn_program;

typedef struct hf_nn_chain_params {
	unsigned vw;        /* vector width: 4, 8 or 16 */
	unsigned nv;        /* vectors per tile row (1-4); NR = vw * nv columns per panel */
	unsigned mr;        /* rows per register tile (1-8) */
	unsigned ls;        /* work-items per work-group (1 on CPUs) */
	unsigned kc;        /* k-block (0: all of K) */
	bool rows_layout;   /* pw = N rounded up to NR (GPUs) instead of pw = NR (CPUs) */
} hf_nn_chain_params;

/* Defaults for a device: CPUs one work-item per group, 6 x 16 tiles (AVX2; 8 x 32 with
 * AVX-512 names), contiguous panels; GPUs 128 work-items (at most the device's work-group
 * size) of 4 x 4 tiles over rows of W^T. */
void hf_nn_chain_default_params(const hf_cl_device_info *dev, hf_nn_chain_params *out);
/* "chain vw=8 nv=2 mr=6 kc=256 ls=1 panels"; returns out. */
char *hf_nn_chain_describe(const hf_nn_chain_params *p, bool w_half, char *out, size_t sz);

/* Overrides fields of p from a line in hf_nn_chain_describe's format ("vw=4 nv=1 mr=4 ls=64
 * rows"; fields left out keep their value; a leading "chain" is ignored; the weight type
 * follows the model). Ranges are checked when the program is built.
 * HF_EINVAL names a bad word. */
int hf_nn_chain_params_parse(const char *spec, hf_nn_chain_params *p, hf_errbuf *eb);

/* Builds a program (p and w_half only for HF_NN_CHAIN; p NULL: defaults). HF_EINVAL on a bad
 * parameter, HF_ECL with the build log when the device refuses it. */
int hf_nn_build(hf_cl *cl, hf_nn_program which, const hf_nn_chain_params *p, bool w_half,
		cl_program *out, hf_errbuf *eb);

/* Columns a layer of n outputs takes in the packed layout (n rounded up to NR). */
size_t hf_nn_padded_cols(const hf_nn_chain_params *p, size_t n);
/* The panel width of a layer of n outputs (NR, or padded_cols with rows_layout). */
size_t hf_nn_panel_width(const hf_nn_chain_params *p, size_t n);
/* Elements hf_nn_pack_weights writes for an [n, k] weight. */
size_t hf_nn_packed_count(const hf_nn_chain_params *p, size_t n, size_t k);
/* Packs weight [n, k] (nn.Linear layout, row-major; F32 when src_half is false, else IEEE
 * binary16 bits; src may be unaligned) into dst (hf_nn_packed_count elements: floats, or
 * binary16 bits when dst_half; dst_half needs src_half), zeros in the padding columns. */
void hf_nn_pack_weights(const hf_nn_chain_params *p, const void *src, bool src_half, size_t n,
			size_t k, void *dst, bool dst_half);

#endif
