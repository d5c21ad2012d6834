/* fuzz_safetensors: libFuzzer target for the safetensors reader and the layer graph. The
 * first byte selects how the rest is read: bit 0 clear, the bytes are the file as is; set,
 * they are "HEADER\x01DATA" and the 8-byte length of HEADER is prepended (so text mutations
 * of the JSON keep a consistent length and reach the tensor checks and the graph); bit 1
 * parses with small caps (header 512 bytes, 4 tensors) so both sides of them are reached;
 * bits 2-3 pick the batch (1..4) of a reference run. When the file parses, every tensor is
 * looked up and widened to FP32, and when its graph is valid and small the reference executor
 * runs it on inputs made from the bytes. Built with clang as a libFuzzer binary, and with any
 * compiler as a replay/smoke program (replay_main.c in tests/fuzz).
 * Threading: single-threaded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_graph.h"
#include "hf_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Work caps of one input's reference run (elements of all values, multiply-adds). */
#define FUZZ_MAX_ELEMS (1u << 16)
#define FUZZ_MAX_FLOPS (1u << 22)

static void touch_tensors(const hf_st *st)
{
	for (size_t i = 0; i < hf_st_count(st); i++) {
		const hf_st_tensor *t = hf_st_at(st, i);
		if (hf_st_find(st, t->name) != t)
			abort(); /* names are unique: a lookup must find this very tensor */
		if (t->count <= FUZZ_MAX_ELEMS) {
			float *f = malloc(t->count ? t->count * sizeof *f : 1);
			if (!f)
				return;
			hf_st_read_f32(t, f);
			free(f);
		}
	}
	(void)hf_st_metadata(st, HF_GRAPH_META_KEY);
	(void)hf_st_data_bytes(st);
}

static void run_graph(const hf_graph *g, size_t batch, const uint8_t *seed, size_t nseed)
{
	float *in[HF_GRAPH_MAX_IO] = { 0 }, *out[HF_GRAPH_MAX_IO] = { 0 };
	uint64_t elems = 0;
	hf_errbuf eb;

	for (size_t v = 0; v < hf_graph_nvalues(g); v++)
		elems += hf_graph_value_at(g, v)->per_sample * batch;
	if (elems > FUZZ_MAX_ELEMS || hf_graph_flops_per_sample(g) * batch > FUZZ_MAX_FLOPS)
		return;
	for (size_t i = 0; i < hf_graph_ninputs(g); i++) {
		const hf_graph_value *v = hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value);
		size_t n = (size_t)v->per_sample * batch;
		in[i] = malloc(n * sizeof(float));
		if (!in[i])
			goto free_bufs;
		for (size_t k = 0; k < n; k++)
			in[i][k] = nseed ? (float)((int)seed[k % nseed] - 128) / 16.0f : 0.0f;
	}
	for (size_t j = 0; j < hf_graph_noutputs(g); j++) {
		const hf_graph_value *v = hf_graph_value_at(g, (size_t)hf_graph_output(g, j)->value);
		out[j] = malloc((size_t)v->per_sample * batch * sizeof(float));
		if (!out[j])
			goto free_bufs;
	}
	if (hf_graph_ref_run(g, batch, (const float *const *)in, out, &eb) != 0)
		abort(); /* a valid graph with memory to spare must run */
free_bufs:
	for (size_t i = 0; i < HF_GRAPH_MAX_IO; i++) {
		free(in[i]);
		free(out[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hf_st_limits small = { .max_header = 512, .max_tensors = 4 };
	uint8_t sel = size ? data[0] : 0;
	const uint8_t *body = size ? data + 1 : data;
	size_t n = size ? size - 1 : 0;
	uint8_t *file;
	size_t flen = n;
	hf_errbuf eb;
	hf_st *st;
	hf_graph *g;

	/* A private copy of exactly the file's bytes, so reads past it are caught. */
	file = malloc(n + 8 + 1);
	if (!file)
		return 0;
	if (sel & 1) {
		const uint8_t *sep = memchr(body, 0x01, n);
		size_t hlen = sep ? (size_t)(sep - body) : n;
		for (int i = 0; i < 8; i++)
			file[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
		memcpy(file + 8, body, hlen);
		if (sep)
			memcpy(file + 8 + hlen, sep + 1, n - hlen - 1);
		flen = 8 + hlen + (sep ? n - hlen - 1 : 0);
	} else if (n) {
		memcpy(file, body, n);
	}
	if (hf_st_parse(file, flen, (sel & 2) ? &small : NULL, &st, &eb) == 0) {
		touch_tensors(st);
		if (hf_graph_new(st, &g, &eb) == 0) {
			run_graph(g, 1 + ((sel >> 2) & 3), body, n);
			hf_graph_free(g);
		}
		hf_st_free(st);
	}
	free(file);
	return 0;
}
