/* hf_infer_req: one inference request against a model: its tensors checked against the graph
 * (names, FP32, shape [n, per-sample dims...], the batch size), its items gathered into a
 * batch and its outputs scattered back, and its OIP response.
 * Invariants: after a successful bind, in_map covers every graph input, every input has n
 * items, out_data holds n x per_sample floats per returned output.
 * Threading: a request belongs to one thread at a time (handler, then an instance thread).
 */
#include "hf_infer_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_text.h"

static void shape_text(char *out, size_t sz, const int64_t *shape, size_t ndim)
{
	size_t len = 0;

	len += (size_t)snprintf(out, sz, "[");
	for (size_t d = 0; d < ndim && len < sz; d++)
		len += (size_t)snprintf(out + len, sz - len, "%s%lld", d ? ", " : "",
					(long long)shape[d]);
	if (len < sz)
		snprintf(out + len, sz - len, "]");
}

/* Request input t against graph value v: datatype, rank, per-sample dims; *n its batch. */
static int check_input(const hf_oip_tensor *t, const hf_graph_value *v, uint64_t *n,
		       hf_errbuf *eb)
{
	char got[160], want[160];

	if (t->dtype != HF_OIP_FP32)
		return hf_fail(eb, 400, "input \"%s\": datatype %s, expected FP32", t->name,
			       hf_oip_dtype_name(t->dtype));
	shape_text(got, sizeof got, t->shape, t->ndim);
	shape_text(want, sizeof want, v->shape, v->ndim);
	if (t->ndim != v->ndim)
		return hf_fail(eb, 400, "input \"%s\": shape %s, expected %s", t->name, got, want);
	for (size_t d = 1; d < v->ndim; d++)
		if (t->shape[d] != v->shape[d])
			return hf_fail(eb, 400, "input \"%s\": shape %s, expected %s", t->name, got, want);
	if (t->shape[0] < 1)
		return hf_fail(eb, 400, "input \"%s\": shape %s: the batch dimension must be at least 1",
			       t->name, got);
	*n = (uint64_t)t->shape[0];
	return 0;
}

static int bind_inputs(hf_ireq *q, const hf_graph *g, hf_errbuf *eb)
{
	uint64_t n = 0;
	size_t ni = hf_graph_ninputs(g);
	bool seen[HF_GRAPH_MAX_IO] = { false };
	int r;

	for (size_t k = 0; k < q->req.ninputs; k++) {
		const hf_oip_tensor *t = &q->req.inputs[k];
		int i = hf_graph_find_input(g, t->name);
		uint64_t tn;
		if (i < 0)
			return hf_fail(eb, 400, "unknown input \"%s\": the model's inputs are \"%s\"%s",
				       t->name, hf_graph_value_at(g, (size_t)hf_graph_input(g, 0)->value)->name,
				       ni > 1 ? " ..." : "");
		if ((r = check_input(t, hf_graph_value_at(g, (size_t)hf_graph_input(g, (size_t)i)->value),
				     &tn, eb)) != 0)
			return r;
		if (k > 0 && tn != n)
			return hf_fail(eb, 400, "input \"%s\": batch dimension %llu, but \"%s\" has %llu",
				       t->name, (unsigned long long)tn, q->req.inputs[0].name,
				       (unsigned long long)n);
		n = tn;
		seen[i] = true;
		q->in_map[i] = k;
	}
	for (size_t i = 0; i < ni; i++)
		if (!seen[i])
			return hf_fail(eb, 400, "missing input \"%s\"",
				       hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value)->name);
	if (n > q->slot->m->cfg.max_batch_size)
		return hf_fail(eb, 400, "a batch of %llu items is more than the model's "
			       "max_batch_size %llu", (unsigned long long)n,
			       (unsigned long long)q->slot->m->cfg.max_batch_size);
	q->n = (size_t)n;
	return 0;
}

static int bind_outputs(hf_ireq *q, const hf_graph *g, hf_errbuf *eb)
{
	if (q->req.noutputs == 0) {
		q->nout = hf_graph_noutputs(g);
		for (size_t j = 0; j < q->nout; j++) {
			q->out_value[j] = (int)j;
			q->out_binary[j] = q->req.binary_output;
		}
		return 0;
	}
	for (size_t k = 0; k < q->req.noutputs; k++) {
		int j = hf_graph_find_output(g, q->req.outputs[k].name);
		if (j < 0)
			return hf_fail(eb, 400, "unknown output \"%s\"", q->req.outputs[k].name);
		q->out_value[k] = j;
		q->out_binary[k] = q->req.outputs[k].binary;
	}
	q->nout = q->req.noutputs;
	return 0;
}

static uint64_t out_per_sample(const hf_graph *g, int j)
{
	return hf_graph_value_at(g, (size_t)hf_graph_output(g, (size_t)j)->value)->per_sample;
}

int hf_ireq_bind(hf_ireq *q, hf_infer_slot *slot, hf_errbuf *eb)
{
	const hf_graph *g = slot->m->graph;
	int r;

	q->slot = slot;
	if ((r = bind_inputs(q, g, eb)) != 0 || (r = bind_outputs(q, g, eb)) != 0)
		return r;
	for (size_t k = 0; k < q->nout; k++) {
		q->out_data[k] = malloc(q->n * out_per_sample(g, q->out_value[k]) * sizeof(float));
		if (!q->out_data[k])
			return hf_fail(eb, 500, "out of memory for the outputs");
	}
	q->br.items = q->n;
	q->br.user = q;
	return 0;
}

const float *hf_ireq_input(const hf_ireq *q, size_t i)
{
	return q->req.inputs[q->in_map[i]].data;
}

void hf_ireq_gather(const hf_ireq *q, size_t i, float *dst)
{
	const hf_graph *g = q->slot->m->graph;
	uint64_t ps = hf_graph_value_at(g, (size_t)hf_graph_input(g, i)->value)->per_sample;

	memcpy(dst + q->br.offset * ps, hf_ireq_input(q, i), q->n * ps * sizeof(float));
}

void hf_ireq_scatter(hf_ireq *q, size_t j, const float *src)
{
	uint64_t ps = out_per_sample(q->slot->m->graph, (int)j);

	for (size_t k = 0; k < q->nout; k++)
		if (q->out_value[k] == (int)j)
			memcpy(q->out_data[k], src + q->br.offset * ps, q->n * ps * sizeof(float));
}

void hf_ireq_response(const hf_ireq *q, hf_http_resp *resp)
{
	const hf_graph *g = q->slot->m->graph;
	hf_oip_out_tensor outs[HF_GRAPH_MAX_IO];
	int64_t shapes[HF_GRAPH_MAX_IO][HF_GRAPH_MAX_DIMS];
	bool binary = false;
	size_t json_len = 0;
	hf_errbuf eb;

	for (size_t k = 0; k < q->nout; k++) {
		const hf_graph_value *v = hf_graph_value_at(g, (size_t)hf_graph_output(g,
							(size_t)q->out_value[k])->value);
		memcpy(shapes[k], v->shape, sizeof shapes[k]);
		shapes[k][0] = (int64_t)q->n;
		outs[k] = (hf_oip_out_tensor){ .name = v->name, .ndim = v->ndim, .shape = shapes[k],
					       .data = q->out_data[k], .binary = q->out_binary[k] };
		binary |= q->out_binary[k];
	}
	if (hf_oip_build_response(q->slot->m->name, "1", q->req.has_id ? q->req.id : NULL, outs,
				  q->nout, &resp->body, &json_len, &eb) < 0) {
		hf_http_resp_error(resp, 500, "cannot build the response: %s", eb.msg);
		return;
	}
	resp->status = 200;
	if (binary) {
		char v[32];
		snprintf(v, sizeof v, "%zu", json_len);
		resp->content_type = "application/octet-stream";
		hf_http_resp_header(resp, "Inference-Header-Content-Length", v);
	} else {
		resp->content_type = "application/json";
	}
}

void hf_ireq_free(hf_ireq *q)
{
	if (!q)
		return;
	for (size_t k = 0; k < q->nout; k++)
		free(q->out_data[k]);
	hf_oip_request_clear(&q->req);
	free(q);
}
