/* hf_infer_exec: a model instance on the device: the batcher's open/run/close over hf_cl and
 * hf_exec. Each instance opens its own hf_cl handle on its own thread (an hf_cl is used by one
 * thread at a time) and an executor whose device buffers are allocated once for the model's
 * max_batch_size; staging buffers on the host are allocated once too.
 * PoCL's LLVM installs its own alternate signal stack on the thread that builds or first
 * launches a kernel (a malloc'ed one); the thread's own (AddressSanitizer's, which it unmaps at
 * thread exit) is put back after every call into OpenCL, so an instance thread can exit.
 * Invariants: in[i] / out[j] hold max_batch x per_sample floats of graph input i / output j.
 * Threading: an instance is used only by its batcher thread.
 */
#include "hf_infer_priv.h"

#include <signal.h>
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

void hf_infer_altstack_save(stack_t *saved)
{
	if (sigaltstack(NULL, saved) != 0)
		saved->ss_flags = SS_DISABLE;
}

void hf_infer_altstack_restore(const stack_t *saved)
{
	stack_t now, s = *saved;

	if (sigaltstack(NULL, &now) != 0 || now.ss_sp == saved->ss_sp || (saved->ss_flags & SS_ONSTACK))
		return;
	s.ss_flags &= SS_DISABLE;
	(void)sigaltstack(&s, NULL);
}

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

static int open_instance(void *ctx, void **out, hf_errbuf *eb)
{
	hf_infer_slot *slot = ctx;
	const hf_infer_config *cfg = &slot->s->cfg;
	const hf_graph *g = slot->m->graph;
	size_t maxb = (size_t)slot->m->cfg.max_batch_size;
	hf_cl_opts co = { .cache_dir = cfg->cl_cache_dir[0] ? cfg->cl_cache_dir : NULL };
	hf_exec_opts eo = { .max_batch = maxb };
	instance *in = calloc(1, sizeof *in);
	int r;

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

int hf_infer_exec_open(void *ctx, unsigned idx, void **out, hf_errbuf *eb)
{
	stack_t alt;
	int r;

	(void)idx;
	hf_infer_altstack_save(&alt);
	r = open_instance(ctx, out, eb);
	hf_infer_altstack_restore(&alt);
	return r;
}

int hf_infer_exec_run(void *ctx, void *inst, hf_batcher_req *const *reqs, size_t n,
		      size_t items, hf_errbuf *eb)
{
	stack_t alt;
	instance *in = inst;
	const float *inputs[HF_GRAPH_MAX_IO];
	int r;

	for (size_t i = 0; i < in->nin; i++) {
		if (n == 1) { /* one request: its own memory, no copy */
			inputs[i] = hf_ireq_input(reqs[0]->user, i);
			continue;
		}
		for (size_t k = 0; k < n; k++)
			hf_ireq_gather(reqs[k]->user, i, in->in[i]);
		inputs[i] = in->in[i];
	}
	hf_infer_altstack_save(&alt);
	r = hf_exec_run(in->e, items, inputs, in->out, eb);
	hf_infer_altstack_restore(&alt);
	if (r < 0)
		return r;
	for (size_t j = 0; j < in->nout; j++)
		for (size_t k = 0; k < n; k++)
			hf_ireq_scatter(reqs[k]->user, j, in->out[j]);
	hf_infer_work_add(ctx, items);
	return 0;
}

void hf_infer_exec_close(void *ctx, void *inst)
{
	stack_t alt;

	(void)ctx;
	if (!inst)
		return;
	hf_infer_altstack_save(&alt);
	instance_free(inst);
	hf_infer_altstack_restore(&alt);
}
