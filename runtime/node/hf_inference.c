/* hf_inference: the inference mode worker: hf_mode_worker callbacks onto hf_infer.
 * Invariants: the hf_infer object (and its listener) lives from new to free.
 * Threading: see hf_inference.h; hf_infer does its own locking.
 */
#include "hf_inference.h"

#include <stdlib.h>

#include "hf_infer.h"
#include "hf_util.h"

struct hf_inference {
	hf_infer_config cfg;
	hf_infer *s;
};

int hf_inference_new(const json_t *section, const char *state_dir, const char *cache_dir,
		     hf_inference **out, hf_errbuf *eb)
{
	hf_inference *in;
	int r;

	*out = NULL;
	in = calloc(1, sizeof *in);
	if (!in)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if ((r = hf_infer_config_from_json(&in->cfg, section, state_dir, eb)) == 0 && cache_dir &&
	    cache_dir[0] && !hf_strlcpy(in->cfg.cl_cache_dir, cache_dir, sizeof in->cfg.cl_cache_dir))
		r = hf_fail(eb, HF_ETOOBIG, "cache directory %s: path too long", cache_dir);
	if (r < 0 || (r = hf_infer_new(&in->cfg, &in->s, eb)) < 0) {
		free(in);
		return r;
	}
	*out = in;
	return 0;
}

static int w_start(void *impl, const json_t *params, hf_errbuf *eb)
{
	hf_inference *in = impl;
	return hf_infer_start(in->s, params, eb);
}

static int w_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb)
{
	hf_inference *in = impl;
	return hf_infer_drain(in->s, deadline_ms, eb);
}

static void w_release(void *impl)
{
	hf_inference *in = impl;
	hf_infer_release(in->s);
}

static int w_health(void *impl, hf_errbuf *eb)
{
	hf_inference *in = impl;
	return hf_infer_health(in->s, eb);
}

/* Items answered and their FLOPs over the hf_infer object's life (not reset by a switch). */
static void w_counters(void *impl, hf_work_counters *out)
{
	hf_inference *in = impl;

	out->hashes = 0;
	hf_infer_work(in->s, &out->inferences, &out->flops);
}

void hf_inference_worker(hf_inference *in, hf_mode_worker *w)
{
	*w = (hf_mode_worker){ .mode = HF_MODE_INFERENCE, .impl = in, .start = w_start,
			       .drain = w_drain, .release = w_release, .health = w_health,
			       .counters = w_counters };
}

uint16_t hf_inference_port(const hf_inference *in)
{
	return hf_infer_port(in->s);
}

const char *hf_inference_listen(const hf_inference *in)
{
	return in->cfg.listen;
}

void hf_inference_status(hf_inference *in, json_t *obj)
{
	hf_infer_status_json(in->s, obj);
}

void hf_inference_metrics(hf_inference *in, hf_buf *b)
{
	hf_infer_metrics(in->s, b);
}

void hf_inference_free(hf_inference *in)
{
	if (!in)
		return;
	hf_infer_free(in->s);
	free(in);
}
