/* hf_sha256d_cl: the SHA-256d scan on an OpenCL device (sha256d.cl): the same job and the same
 * result contract as the CPU scanners in hf_sha256d.h, so mining code can use either.
 *
 * The program is built once per scanner through hf_cl_build (persistent binary cache). Each
 * launch hashes a batch of nonces, one per work-item, rejects early on H7 and appends candidate
 * nonces through an atomic counter into a small results buffer; the host then re-checks every
 * candidate in full against the 256-bit target and reports hits in nonce order. A batch whose
 * candidates overflow the buffer is rescanned in slices no larger than the buffer, on the
 * device, so no hit is lost even with a target every nonce meets.
 * A build without OpenCL compiles hf_sha256d_cl_none.c instead (meson picks it), whose
 * hf_sha256d_cl_new() returns HF_EUNSUPPORTED, so callers need no conditional code.
 * Threading: a scanner is used by one thread at a time; distinct scanners may run concurrently.
 */
#ifndef HF_SHA256D_CL_H
#define HF_SHA256D_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_sha256d.h"

typedef struct hf_sha256d_cl hf_sha256d_cl;

typedef struct hf_sha256d_cl_opts {
	const char *device;     /* hf_cl selector (NULL or "auto": first GPU, else first device) */
	const char *cache_dir;  /* program binary cache (NULL: none) */
	uint32_t batch;         /* nonces per launch (0: 2^22 on a GPU, 2^16 otherwise) */
	size_t local_size;      /* work-group size (0: 256 on a GPU, 64 otherwise; fixed, see .c) */
} hf_sha256d_cl_opts;

/* True when this build has the OpenCL scanner (false: hf_sha256d_cl_new says unsupported). */
bool hf_sha256d_cl_compiled(void);

/* Opens the device, builds (or loads) the program and allocates the buffers. */
int hf_sha256d_cl_new(const hf_sha256d_cl_opts *opts, hf_sha256d_cl **out, hf_errbuf *eb);
void hf_sha256d_cl_free(hf_sha256d_cl *s);

/* "P:D name (platform)" of the device in use. */
const char *hf_sha256d_cl_device(const hf_sha256d_cl *s);
/* Whether the program binary came from the cache. */
bool hf_sha256d_cl_cache_hit(const hf_sha256d_cl *s);

/* Scans like hf_sha256d_scan_fn (same arguments, same stop-when-full rule). HF_ECL with the
 * OpenCL status in eb when the device fails. */
int hf_sha256d_cl_scan(hf_sha256d_cl *s, const hf_sha256d_job *job, uint32_t start,
		       uint64_t count, uint32_t *hits, size_t max_hits, hf_sha256d_result *res,
		       hf_errbuf *eb);

#endif
