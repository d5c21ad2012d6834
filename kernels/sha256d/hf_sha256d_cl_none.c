/* hf_sha256d_cl_none: the OpenCL scanner of a build without OpenCL (meson picks this file when
 * the OpenCL loader or kernels/cl is missing): every entry point says "unsupported".
 * Threading: no state.
 */
#include "hf_sha256d_cl.h"

bool hf_sha256d_cl_compiled(void) { return false; }

int hf_sha256d_cl_new(const hf_sha256d_cl_opts *opts, hf_sha256d_cl **out, hf_errbuf *eb)
{
	*out = NULL;
	return hf_fail(eb, HF_EUNSUPPORTED, "this build has no OpenCL (meson -Dopencl)");
}

void hf_sha256d_cl_free(hf_sha256d_cl *s) { (void)s; }

const char *hf_sha256d_cl_device(const hf_sha256d_cl *s) { return "none"; }

bool hf_sha256d_cl_cache_hit(const hf_sha256d_cl *s) { return false; }

int hf_sha256d_cl_scan(hf_sha256d_cl *s, const hf_sha256d_job *job, uint32_t start,
		       uint64_t count, uint32_t *hits, size_t max_hits, hf_sha256d_result *res,
		       hf_errbuf *eb)
{
	return hf_fail(eb, HF_EUNSUPPORTED, "this build has no OpenCL");
}
