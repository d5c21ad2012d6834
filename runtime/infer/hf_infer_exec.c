/* hf_infer_exec: a model instance on the device: the batcher's open/run/close over hf_cl and
 * hf_exec. Each instance opens its own hf_cl handle on its own thread (an hf_cl is used by one
 * thread at a time) and an executor whose device buffers are allocated once for the model's
 * max_batch_size; staging buffers on the host are allocated once too.
 * Invariants: in[i] / out[j] hold max_batch x per_sample floats of graph input i / output j.
 * Threading: an instance is used only by its batcher thread.
 */
#include "hf_infer_priv.h"

#include <stdlib.h>
#include <string.h>

#include "hf_cl.h"
#include "hf_exec.h"

typedef struct instance {
	hf_cl *cl;
	hf_exec *e;
	size_t nin, nout;
	float *in[HF_GRAPH_MAX_IO], *out[HF_GRAPH_MAX_IO];
} instance;

static void instance_free(instance *in)
{
	for (size_t i = 0; i < HF_GRAPH_MAX_IO; i++) {
		free(in->in[i]);
		free(in->out[i]);
	}
	hf_exec_free(in->e);
	hf_cl_free(in->cl);
	free(in);
}

static uint64_t value_size(const hf_graph *g, int value)
{
	return hf_graph_value_at(g, (size_t)value)->per_sample;
}

int hf_infer_exec_open(void *ctx, unsigned idx, void **out, hf_errbuf *eb)
{
	hf_infer_slot *slot = ctx;
	const hf_infer_config *cfg = &slot->s->cfg;
	const hf_graph *g = slot->m->graph;
	size_t maxb = (size_t)slot->m->cfg.max_batch_size;
	hf_cl_opts co = { .cache_dir = cfg->cl_cache_dir[0] ? cfg->cl_cache_dir : NULL };
	hf_exec_opts eo = { .max_batch = maxb };
	instance *in = calloc(1, sizeof *in);
	int r;

	(void)idx;
	if (!in)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if ((r = hf_cl_open(cfg->device, &co, &in->cl, eb)) < 0 ||
	    (r = hf_exec_new(in->cl, g, &eo, &in->e, eb)) < 0)
		goto fail;
	in->nin = hf_graph_ninputs(g);
	in->nout = hf_graph_noutputs(g);
	for (size_t i = 0; i < in->nin; i++)
		if (!(in->in[i] = malloc(maxb * value_size(g, hf_graph_input(g, i)->value) * 4)))
			goto nomem;
	for (size_t j = 0; j < in->nout; j++)
		if (!(in->out[j] = malloc(maxb * value_size(g, hf_graph_output(g, j)->value) * 4)))
			goto nomem;
	*out = in;
	return 0;
nomem:
	r = hf_fail(eb, HF_ENOMEM, "out of memory for the staging buffers");
fail:
	instance_free(in);
	return r;
}

int hf_infer_exec_run(void *ctx, void *inst, hf_batcher_req *const *reqs, size_t n,
		      size_t items, hf_errbuf *eb)
{
	instance *in = inst;
	const float *inputs[HF_GRAPH_MAX_IO];
	int r;

	(void)ctx;
	for (size_t i = 0; i < in->nin; i++) {
		if (n == 1) { /* one request: its own memory, no copy */
			inputs[i] = hf_ireq_input(reqs[0]->user, i);
			continue;
		}
		for (size_t k = 0; k < n; k++)
			hf_ireq_gather(reqs[k]->user, i, in->in[i]);
		inputs[i] = in->in[i];
	}
	if ((r = hf_exec_run(in->e, items, inputs, in->out, eb)) < 0)
		return r;
	for (size_t j = 0; j < in->nout; j++)
		for (size_t k = 0; k < n; k++)
			hf_ireq_scatter(reqs[k]->user, j, in->out[j]);
	return 0;
}

void hf_infer_exec_close(void *ctx, void *inst)
{
	(void)ctx;
	if (inst)
		instance_free(inst);
}
