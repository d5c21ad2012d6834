/* hf_sha256d_cl: host side of the OpenCL SHA-256d scan (sha256d.cl, embedded at build time):
 * device and program through kernels/cl (binary cache), launches, candidate re-checks.
 *
 * Invariants: every reported hit passed hf_sha256d_job_hash + hf_sha256d_meets_target on the
 * host; hits are reported in scan order. A launch whose candidate counter exceeds the results
 * buffer is repeated in slices of at most CAND_CAP nonces (which cannot overflow), so no
 * candidate is ever dropped.
 * Threading: see hf_sha256d_cl.h (one thread per scanner).
 */
#include "hf_sha256d_cl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_cl.h"
#include "sha256d_cl.h" /* generated from sha256d.cl: sha256d_cl_src[] */
#include "sha256d_priv.h"


#define CAND_CAP 256u
#define JOB_WORDS 26

struct hf_sha256d_cl {
	hf_cl *cl;
	cl_program prog;
	cl_kernel kernel;
	cl_mem job_buf, count_buf, out_buf;
	uint32_t batch;
	size_t local;
	bool cache_hit;
	char device[320];
	uint32_t cand[CAND_CAP];
};

bool hf_sha256d_cl_compiled(void) { return true; }

static int cl_fail(hf_errbuf *eb, const char *what, cl_int st)
{
	return hf_fail(eb, HF_ECL, "%s: %s", what, hf_cl_strerror(st));
}

int hf_sha256d_cl_new(const hf_sha256d_cl_opts *opts, hf_sha256d_cl **out, hf_errbuf *eb)
{
	hf_sha256d_cl_opts def = { 0 };
	hf_sha256d_cl *s;
	cl_int st;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &def;
	s = calloc(1, sizeof(*s));
	if (!s)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	hf_cl_opts co = { .cache_dir = opts->cache_dir };
	rc = hf_cl_open(opts->device, &co, &s->cl, eb);
	if (rc)
		goto fail;
	const hf_cl_device_info *info = hf_cl_info(s->cl);
	snprintf(s->device, sizeof(s->device), "%s %s (%s)", info->selector, info->name,
		 info->platform);
	s->batch = opts->batch ? opts->batch : info->is_gpu ? (1u << 22) : (1u << 16);
	s->local = opts->local_size;

	rc = hf_cl_build(s->cl, sha256d_cl_src, sha256d_cl_src_len,
			 "-cl-std=CL1.2", &s->prog, &s->cache_hit, eb);
	if (rc) {
		hf_fail_prefix(eb, rc, "sha256d.cl on %s", s->device);
		goto fail;
	}
	s->kernel = clCreateKernel(s->prog, "hf_sha256d_scan", &st);
	if (!s->kernel) {
		rc = cl_fail(eb, "clCreateKernel hf_sha256d_scan", st);
		goto fail;
	}
	/* A fixed work-group size: PoCL compiles machine code per local size, so letting the
	 * driver pick one per global size would recompile for every new range length. */
	if (!s->local) {
		size_t kmax = 0;
		if (clGetKernelWorkGroupInfo(s->kernel, hf_cl_device(s->cl),
					     CL_KERNEL_WORK_GROUP_SIZE, sizeof(kmax), &kmax,
					     NULL) != CL_SUCCESS || kmax == 0)
			kmax = 64;
		s->local = info->is_gpu ? 256 : 64;
		while (s->local > kmax)
			s->local /= 2;
	}
	cl_context ctx = hf_cl_context(s->cl);
	s->job_buf = clCreateBuffer(ctx, CL_MEM_READ_ONLY, JOB_WORDS * sizeof(uint32_t), NULL, &st);
	if (s->job_buf)
		s->count_buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(uint32_t), NULL, &st);
	if (s->count_buf)
		s->out_buf = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, CAND_CAP * sizeof(uint32_t),
					    NULL, &st);
	if (!s->out_buf) {
		rc = cl_fail(eb, "clCreateBuffer", st);
		goto fail;
	}
	*out = s;
	return 0;

fail:
	hf_sha256d_cl_free(s);
	return rc;
}

void hf_sha256d_cl_free(hf_sha256d_cl *s)
{
	if (!s)
		return;
	if (s->out_buf)
		clReleaseMemObject(s->out_buf);
	if (s->count_buf)
		clReleaseMemObject(s->count_buf);
	if (s->job_buf)
		clReleaseMemObject(s->job_buf);
	if (s->kernel)
		clReleaseKernel(s->kernel);
	if (s->prog)
		clReleaseProgram(s->prog);
	hf_cl_free(s->cl);
	free(s);
}

const char *hf_sha256d_cl_device(const hf_sha256d_cl *s) { return s->device; }

bool hf_sha256d_cl_cache_hit(const hf_sha256d_cl *s) { return s->cache_hit; }

static int upload_job(hf_sha256d_cl *s, const hf_sha256d_job *job, hf_errbuf *eb)
{
	uint32_t w[JOB_WORDS];
	memcpy(&w[0], job->midstate, 8 * sizeof(uint32_t));
	memcpy(&w[8], job->s3, 8 * sizeof(uint32_t));
	w[16] = job->r3_e;
	w[17] = job->r3_a;
	w[18] = job->w16;
	w[19] = job->w17;
	w[20] = job->w18c;
	w[21] = job->w19c;
	w[22] = job->c30;
	w[23] = job->c31;
	w[24] = job->c32;
	w[25] = job->target_hi;
	cl_int st = clEnqueueWriteBuffer(hf_cl_queue(s->cl), s->job_buf, CL_TRUE, 0, sizeof(w), w,
					 0, NULL, NULL);
	return st == CL_SUCCESS ? 0 : cl_fail(eb, "clEnqueueWriteBuffer (job)", st);
}

/* One launch over nonces base..base+n-1; *ncand = candidates the device counted. */
static int launch(hf_sha256d_cl *s, uint32_t base, uint32_t n, uint32_t *ncand, hf_errbuf *eb)
{
	cl_command_queue q = hf_cl_queue(s->cl);
	const cl_uint zero = 0, cap = CAND_CAP;
	size_t global = ((size_t)n + s->local - 1) / s->local * s->local;
	cl_int st;

	st = clEnqueueWriteBuffer(q, s->count_buf, CL_FALSE, 0, sizeof(zero), &zero, 0, NULL, NULL);
	if (st != CL_SUCCESS)
		return cl_fail(eb, "clEnqueueWriteBuffer (counter)", st);
	st = clSetKernelArg(s->kernel, 0, sizeof(cl_mem), &s->job_buf);
	st |= clSetKernelArg(s->kernel, 1, sizeof(cl_uint), &base);
	st |= clSetKernelArg(s->kernel, 2, sizeof(cl_uint), &n);
	st |= clSetKernelArg(s->kernel, 3, sizeof(cl_mem), &s->count_buf);
	st |= clSetKernelArg(s->kernel, 4, sizeof(cl_mem), &s->out_buf);
	st |= clSetKernelArg(s->kernel, 5, sizeof(cl_uint), &cap);
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "clSetKernelArg failed");
	st = clEnqueueNDRangeKernel(q, s->kernel, 1, NULL, &global, &s->local, 0, NULL, NULL);
	if (st != CL_SUCCESS)
		return cl_fail(eb, "clEnqueueNDRangeKernel hf_sha256d_scan", st);
	st = clEnqueueReadBuffer(q, s->count_buf, CL_TRUE, 0, sizeof(*ncand), ncand, 0, NULL, NULL);
	if (st != CL_SUCCESS)
		return cl_fail(eb, "clEnqueueReadBuffer (counter)", st);
	if (*ncand > 0 && *ncand <= CAND_CAP) {
		st = clEnqueueReadBuffer(q, s->out_buf, CL_TRUE, 0, *ncand * sizeof(uint32_t),
					 s->cand, 0, NULL, NULL);
		if (st != CL_SUCCESS)
			return cl_fail(eb, "clEnqueueReadBuffer (candidates)", st);
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int hf_sha256d_cl_scan(hf_sha256d_cl *s, const hf_sha256d_job *job, uint32_t start,
		       uint64_t count, uint32_t *hits, size_t max_hits, hf_sha256d_result *res,
		       hf_errbuf *eb)
{
	int rc = hf_sha256d_priv_check_args(job, count, hits, max_hits, res);
	if (rc || !s)
		return hf_fail(eb, HF_EINVAL, "bad scan arguments");
	res->n_hits = 0;
	rc = upload_job(s, job, eb);
	if (rc)
		return rc;
	uint64_t off = 0;
	bool slice = false; /* the previous launch overflowed: rescan in small slices */
	while (off < count) {
		uint64_t left = count - off;
		uint32_t n = (uint32_t)(left < s->batch ? left : s->batch);
		if (slice && n > CAND_CAP)
			n = CAND_CAP;
		uint32_t base = start + (uint32_t)off, ncand = 0;
		rc = launch(s, base, n, &ncand, eb);
		if (rc)
			return rc;
		if (ncand > CAND_CAP) {
			slice = true;
			continue;
		}
		slice = false;
		/* candidates as offsets from base, in scan order */
		for (uint32_t i = 0; i < ncand; i++)
			s->cand[i] -= base;
		qsort(s->cand, ncand, sizeof(s->cand[0]), cmp_u32);
		for (uint32_t i = 0; i < ncand; i++) {
			if (!hf_sha256d_priv_offer(job, base + s->cand[i], hits, max_hits,
						   &res->n_hits)) {
				res->scanned = off + s->cand[i];
				return 0;
			}
		}
		off += n;
	}
	res->scanned = count;
	return 0;
}
