/* hf_exec: the executor object: device setup, buffers, the batch buckets, runs (one
 * submission of every step, one blocking read), warm-up and statistics. The lowering of the
 * graph into steps is hf_exec_lower.c.
 *
 * Invariants: after hf_exec_new every step's kernel has all its arguments bound except the
 * batch-dependent ones, which hf_exec_run sets before each launch; a run enqueues the input
 * writes, every step and the output reads on the one in-order queue and waits once (the last
 * read is blocking); a failed run waits for whatever it enqueued before returning, so no
 * command touches the caller's memory afterwards.
 * Threading: as hf_exec.h.
 */
#include "hf_exec_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_util.h"

int hf_exec_alloc(hf_exec *e, size_t bytes, const void *host, cl_mem *out, hf_errbuf *eb)
{
	if (e->nmems == e->mems_cap) {
		size_t cap = e->mems_cap ? e->mems_cap * 2 : 32;
		cl_mem *n = realloc(e->mems, cap * sizeof *n);
		if (!n)
			return hf_fail(eb, HF_ENOMEM, "executor buffers");
		e->mems = n;
		e->mems_cap = cap;
	}
	cl_int st;
	cl_mem m = clCreateBuffer(hf_cl_context(e->cl),
				  CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
				  bytes ? bytes : 4, (void *)host, &st);
	if (st != CL_SUCCESS)
		return hf_fail(eb, st == CL_INVALID_BUFFER_SIZE ? HF_ETOOBIG : HF_ECL,
			       "clCreateBuffer of %zu bytes: %s", bytes, hf_cl_strerror(st));
	e->mems[e->nmems++] = m;
	e->dev_bytes += bytes;
	*out = m;
	return 0;
}

#define MAXZ(a, b) ((a) > (b) ? (a) : (b))

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

size_t hf_exec_bucket(const hf_exec *e, size_t batch)
{
	size_t i = 0;
	while (i + 1 < e->nbuckets && e->buckets[i] < batch)
		i++;
	return i;
}

size_t hf_exec_step_launches(const hf_exec *e, const hf_exec_step *s, size_t bi)
{
	(void)e;
	if (s->kind != HF_XS_GEMM)
		return 1;
	/* What hf_gemm_run enqueues (kernels/gemm/hf_gemm.c): packed with prepacked B packs A
	 * then one launch per k-range; gemv adds a reduce when it splits K. */
	const hf_gemm_params *p = hf_gemm_plan_params(s->plans[bi]);
	if (p->family == HF_GEMM_PACKED)
		return 1 + (s->kdim ? ceil_div(s->kdim, p->kl ? p->kl : s->kdim) : 1);
	if (p->family == HF_GEMM_GEMV && p->ks > 1)
		return 2;
	return 1;
}

static void make_buckets(hf_exec *e)
{
	size_t b = 1;
	e->nbuckets = 0;
	while (b < e->max_batch && e->nbuckets + 1 < HF_EXEC_MAX_BUCKETS) {
		e->buckets[e->nbuckets++] = b;
		b *= 2;
	}
	e->buckets[e->nbuckets++] = e->max_batch;
}

static int local_budget(hf_exec *e, hf_errbuf *eb)
{
	const hf_cl_device_info *dev = hf_cl_info(e->cl);
	cl_ulong lm = dev->local_mem_bytes;
	/* What a chain kernel may take: the device's local memory less what the compiled
	 * kernel already uses and a margin for the implementation's own. */
	cl_program prog;
	int r = hf_nn_build(e->cl, HF_NN_CHAIN, &e->cp, false, &prog, eb);
	if (r)
		return r;
	e->chain_prog[0] = prog;
	cl_int st;
	cl_kernel k = clCreateKernel(prog, "hf_nn_chain", &st);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "clCreateKernel hf_nn_chain: %s", hf_cl_strerror(st));
	cl_ulong used = 0;
	size_t wg = 0;
	clGetKernelWorkGroupInfo(k, hf_cl_device(e->cl), CL_KERNEL_LOCAL_MEM_SIZE, sizeof used,
				 &used, NULL);
	clGetKernelWorkGroupInfo(k, hf_cl_device(e->cl), CL_KERNEL_WORK_GROUP_SIZE, sizeof wg,
				 &wg, NULL);
	clReleaseKernel(k);
	if (wg && e->cp.ls > wg)
		e->cp.ls = (unsigned)wg;
	cl_ulong margin = 256 + used;
	e->local_avail = lm > margin ? (size_t)(lm - margin) : 0;
	return 0;
}

int hf_exec_new(hf_cl *cl, const hf_graph *g, const hf_exec_opts *opts, hf_exec **out,
		hf_errbuf *eb)
{
	*out = NULL;
	if (!cl || !g)
		return hf_fail(eb, HF_EINVAL, "hf_exec_new: no device or graph");
	hf_exec *e = calloc(1, sizeof *e);
	if (!e)
		return hf_fail(eb, HF_ENOMEM, "executor");
	int r;
	e->cl = cl;
	e->g = g;
	if (opts)
		e->opts = *opts;
	e->max_batch = e->opts.max_batch ? e->opts.max_batch : 1;
	if (e->max_batch > (1u << 20)) {
		r = hf_fail(eb, HF_ETOOBIG, "max_batch %zu over 2^20", e->max_batch);
		goto fail;
	}
	make_buckets(e);
	const hf_cl_device_info *dev = hf_cl_info(cl);
	e->cus = dev->compute_units ? dev->compute_units : 1;
	e->gpu = dev->is_gpu;
	cl_command_queue_properties qp = 0;
	clGetCommandQueueInfo(hf_cl_queue(cl), CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
	e->profiling = (qp & CL_QUEUE_PROFILING_ENABLE) != 0;
	hf_nn_chain_default_params(dev, &e->cp);
	if (e->opts.chain_kernel && (r = hf_nn_chain_params_parse(e->opts.chain_kernel, &e->cp, eb)))
		goto fail;
	e->opts.chain_kernel = NULL; /* the caller's string is not kept */
	e->vbuf = calloc(hf_graph_nvalues(g) + 1, sizeof *e->vbuf);
	e->evs = calloc(2 * (hf_graph_nops(g) + 4), sizeof *e->evs);
	if (!e->vbuf || !e->evs) {
		r = hf_fail(eb, HF_ENOMEM, "executor tables");
		goto fail;
	}
	if ((r = hf_nn_build(cl, HF_NN_OPS, NULL, false, &e->ops_prog, eb)) ||
	    (!e->opts.no_fusion && (r = local_budget(e, eb))) || (r = hf_exec_lower(e, eb)))
		goto fail;
	char body[sizeof e->desc];
	memcpy(body, e->desc, sizeof body);
	snprintf(e->desc, sizeof e->desc, "%zu launches: %s", hf_exec_launches_per_run(e), body);
	if (!e->opts.no_warmup) {
		/* Every bucket once (PoCL compiles per local size at first launch; GEMM plans
		 * differ per bucket). */
		size_t maxin = 1, maxout = 1;
		for (size_t i = 0; i < hf_graph_ninputs(g); i++)
			maxin = MAXZ(maxin, (size_t)hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value)->per_sample);
		for (size_t i = 0; i < hf_graph_noutputs(g); i++)
			maxout = MAXZ(maxout, (size_t)hf_graph_value_at(g, (size_t)hf_graph_output(g, i)->value)->per_sample);
		float *zin = calloc(e->max_batch * maxin, sizeof *zin);
		float *zout = calloc(e->max_batch * maxout, sizeof *zout);
		const float *ins[HF_GRAPH_MAX_IO];
		float *outs[HF_GRAPH_MAX_IO];
		for (size_t i = 0; i < HF_GRAPH_MAX_IO; i++) {
			ins[i] = zin;
			outs[i] = zout;
		}
		r = zin && zout ? 0 : hf_fail(eb, HF_ENOMEM, "warm-up buffers");
		for (size_t b = 0; !r && b < e->nbuckets; b++)
			r = hf_exec_run(e, e->buckets[b], ins, outs, eb);
		free(zin);
		free(zout);
		if (r)
			goto fail;
		memset(&e->st, 0, sizeof e->st);
	}
	*out = e;
	return 0;
fail:
	hf_exec_free(e);
	return r;
}

void hf_exec_free(hf_exec *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nsteps; i++) {
		if (e->steps[i].k)
			clReleaseKernel(e->steps[i].k);
		for (size_t b = 0; b < HF_EXEC_MAX_BUCKETS; b++)
			hf_gemm_plan_free(e->steps[i].plans[b]);
	}
	for (size_t i = 0; i < e->nmems; i++)
		clReleaseMemObject(e->mems[i]);
	for (int i = 0; i < 2; i++)
		if (e->chain_prog[i])
			clReleaseProgram(e->chain_prog[i]);
	if (e->ops_prog)
		clReleaseProgram(e->ops_prog);
	free(e->steps);
	free(e->mems);
	free(e->vbuf);
	free(e->evs);
	free(e);
}

/* Global and local sizes of a 1-D kernel striding over work items (GPUs: groups of 64). */
static void flat_sizes(const hf_exec *e, size_t work, size_t chunk, size_t *g, size_t *l)
{
	if (e->gpu) {
		size_t maxwg = hf_cl_info(e->cl)->max_work_group_size;
		*l = maxwg && maxwg < 64 ? maxwg : 64;
		size_t groups = ceil_div(work ? work : 1, *l);
		*g = *l * (groups < 4096 ? groups : 4096);
		return;
	}
	size_t n = ceil_div(work ? work : 1, chunk);
	*l = 1;
	*g = n < e->cus ? n : e->cus;
}

/* Binds the batch-dependent arguments of step s and enqueues it. */
static cl_int enqueue_step(hf_exec *e, const hf_exec_step *s, size_t batch, size_t bi,
			   cl_event *ev)
{
	cl_command_queue q = hf_cl_queue(e->cl);
	cl_int st = CL_SUCCESS;
	size_t rows = batch * s->rps, g[2] = { 1, 1 }, l[2] = { 1, 1 };
	int m = (int)rows;
	switch (s->kind) {
	case HF_XS_ELTWISE: {
		int count = (int)(rows * s->n);
		st = clSetKernelArg(s->k, 0, sizeof count, &count);
		flat_sizes(e, (size_t)count, 4096, &g[0], &l[0]);
		break;
	}
	case HF_XS_SOFTMAX:
	case HF_XS_LAYERNORM:
		st = clSetKernelArg(s->k, 0, sizeof m, &m);
		flat_sizes(e, rows, 1, &g[0], &l[0]);
		break;
	case HF_XS_CHAIN: {
		/* Rows per work-group: the batch over the compute units, but on CPUs at least 8
		 * (a second PoCL worker's wake-up costs more than it saves below that: batch 8
		 * measured 10% faster in one group). */
		size_t rb = ceil_div(rows, e->cus), mr = e->cp.mr;
		if (!e->gpu && rb < 8)
			rb = rows < 8 ? rows : 8;
		if (rb > mr)
			rb = ceil_div(rb, mr) * mr;
		if (rb > s->rb_max)
			rb = s->rb_max;
		if (rb < 1)
			rb = 1;
		size_t groups = ceil_div(rows, rb), cg = 1;
		if (s->nlayers == 1 && !s->softmax_last && groups < e->cus) {
			cg = e->cus / groups;
			size_t maxcg = ceil_div(s->npan, s->ls);
			cg = cg < maxcg ? cg : maxcg;
			cg = cg ? cg : 1;
		}
		int irb = (int)rb, bufsz = (int)(rb * s->maxn_local), icg = (int)cg;
		size_t lbytes = (bufsz ? 2 * (size_t)bufsz : 1) * sizeof(float);
		st = clSetKernelArg(s->k, 0, sizeof m, &m);
		if (st == CL_SUCCESS)
			st = clSetKernelArg(s->k, 9, sizeof irb, &irb);
		if (st == CL_SUCCESS)
			st = clSetKernelArg(s->k, 10, sizeof bufsz, &bufsz);
		if (st == CL_SUCCESS)
			st = clSetKernelArg(s->k, 12, sizeof icg, &icg);
		if (st == CL_SUCCESS)
			st = clSetKernelArg(s->k, 13, lbytes, NULL);
		g[0] = groups * s->ls;
		g[1] = cg;
		l[0] = s->ls;
		break;
	}
	case HF_XS_GEMM: {
		hf_errbuf geb;
		if (ev)
			st = clEnqueueMarkerWithWaitList(q, 0, NULL, &ev[0]);
		if (st == CL_SUCCESS &&
		    hf_gemm_run(s->plans[bi], 1.0f, s->a, s->w, 0.0f, s->c, &geb) != 0)
			st = CL_OUT_OF_RESOURCES;
		if (st == CL_SUCCESS && ev)
			st = clEnqueueMarkerWithWaitList(q, 0, NULL, &ev[1]);
		return st;
	}
	}
	if (st != CL_SUCCESS)
		return st;
	return clEnqueueNDRangeKernel(q, s->k, 2, NULL, g, l, 0, NULL, ev ? &ev[1] : NULL);
}

static uint64_t event_ns(cl_event ev, cl_profiling_info what)
{
	cl_ulong t = 0;
	if (ev)
		clGetEventProfilingInfo(ev, what, sizeof t, &t, NULL);
	return t;
}

/* After a profiled run: device time per step into the stats; releases the events. */
static void collect_profile(hf_exec *e)
{
	for (size_t i = 0; i < e->nsteps; i++) {
		cl_event *ev = &e->evs[2 * i];
		uint64_t ns = 0;
		if (e->steps[i].kind == HF_XS_GEMM) {
			uint64_t a = event_ns(ev[0], CL_PROFILING_COMMAND_END);
			uint64_t b = event_ns(ev[1], CL_PROFILING_COMMAND_END);
			ns = b > a ? b - a : 0;
		} else {
			uint64_t a = event_ns(ev[1], CL_PROFILING_COMMAND_START);
			uint64_t b = event_ns(ev[1], CL_PROFILING_COMMAND_END);
			ns = b > a ? b - a : 0;
		}
		if (e->steps[i].linear)
			e->st.gemm_ns += ns;
		else
			e->st.other_ns += ns;
		for (int j = 0; j < 2; j++)
			if (ev[j]) {
				clReleaseEvent(ev[j]);
				ev[j] = NULL;
			}
	}
}

int hf_exec_run(hf_exec *e, size_t batch, const float *const *inputs, float *const *outputs,
		hf_errbuf *eb)
{
	if (!e || batch == 0 || batch > e->max_batch)
		return hf_fail(eb, HF_EINVAL, "batch %zu out of range (1..%zu)", batch,
			       e ? e->max_batch : 0);
	const hf_graph *g = e->g;
	cl_command_queue q = hf_cl_queue(e->cl);
	uint64_t t0 = hf_clock_ns(CLOCK_MONOTONIC);
	size_t bi = hf_exec_bucket(e, batch), launches = 0;
	cl_int st = CL_SUCCESS;
	const char *what = "writing an input";
	for (size_t i = 0; st == CL_SUCCESS && i < hf_graph_ninputs(g); i++) {
		const hf_graph_value *v = hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value);
		st = clEnqueueWriteBuffer(q, e->vbuf[hf_graph_input(g, i)->value], CL_FALSE, 0,
					  batch * v->per_sample * sizeof(float), inputs[i], 0, NULL,
					  NULL);
	}
	if (st == CL_SUCCESS)
		what = "enqueueing a kernel";
	for (size_t i = 0; st == CL_SUCCESS && i < e->nsteps; i++) {
		st = enqueue_step(e, &e->steps[i], batch, bi, e->profiling ? &e->evs[2 * i] : NULL);
		launches += hf_exec_step_launches(e, &e->steps[i], bi);
	}
	if (st == CL_SUCCESS)
		what = "reading an output";
	size_t nout = hf_graph_noutputs(g);
	for (size_t j = 0; st == CL_SUCCESS && j < nout; j++) {
		const hf_graph_value *v = hf_graph_value_at(g, (size_t)hf_graph_output(g, j)->value);
		st = clEnqueueReadBuffer(q, e->vbuf[hf_graph_output(g, j)->value],
					 j + 1 == nout ? CL_TRUE : CL_FALSE, 0,
					 batch * v->per_sample * sizeof(float), outputs[j], 0, NULL,
					 NULL);
	}
	if (st != CL_SUCCESS || nout == 0) {
		cl_int fst = clFinish(q);
		if (st == CL_SUCCESS)
			st = fst;
	}
	if (e->profiling)
		collect_profile(e);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "run of batch %zu: %s: %s", batch, what,
			       hf_cl_strerror(st));
	e->st.runs++;
	e->st.samples += batch;
	e->st.launches += launches;
	e->st.wall_ns += hf_clock_ns(CLOCK_MONOTONIC) - t0;
	return 0;
}

size_t hf_exec_max_batch(const hf_exec *e) { return e->max_batch; }
uint64_t hf_exec_device_bytes(const hf_exec *e) { return e->dev_bytes; }

size_t hf_exec_launches_per_run(const hf_exec *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->nsteps; i++)
		n += hf_exec_step_launches(e, &e->steps[i], e->nbuckets - 1);
	return n;
}

const char *hf_exec_describe(const hf_exec *e) { return e->desc; }
void hf_exec_get_stats(const hf_exec *e, hf_exec_stats *out) { *out = e->st; }
