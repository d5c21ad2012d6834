/* hf_inference_none: the inference worker in a build without OpenCL: not available.
 * Threading: reentrant; no state.
 */
#include "hf_inference.h"

#include <stddef.h>

int hf_inference_new(const json_t *section, const char *state_dir, const char *cache_dir,
		     hf_inference **out, hf_errbuf *eb)
{
	(void)section;
	(void)state_dir;
	(void)cache_dir;
	*out = NULL;
	return hf_fail(eb, HF_EUNSUPPORTED, "inference mode needs OpenCL: this build has none");
}

void hf_inference_worker(hf_inference *in, hf_mode_worker *w)
{
	(void)in;
	(void)w;
}

uint16_t hf_inference_port(const hf_inference *in)
{
	(void)in;
	return 0;
}

const char *hf_inference_listen(const hf_inference *in)
{
	(void)in;
	return "";
}

void hf_inference_status(hf_inference *in, json_t *obj)
{
	(void)in;
	(void)obj;
}

void hf_inference_metrics(hf_inference *in, hf_buf *b)
{
	(void)in;
	(void)b;
}

void hf_inference_free(hf_inference *in)
{
	(void)in;
}
