/* hf_safetensors: a strict reader of the safetensors format (mmap'ed file or a memory buffer).
 *
 * Format: 8 bytes little-endian header length N, then N bytes of JSON (UTF-8, an object whose
 * first byte is '{', optionally padded at the end with spaces), then the data section. Each key
 * but "__metadata__" is a tensor {"dtype": "F32", "shape": [d0, ...], "data_offsets": [b, e]}
 * with offsets relative to the data section; "__metadata__" is an object of string values.
 * Validation follows the reference reader (huggingface/safetensors, tensor.rs): N at most
 * lim->max_header (default 100 MB) and within the file; the header parses as JSON with no
 * duplicate keys and no unknown fields in a tensor entry; dtype is a known safetensors dtype;
 * shape entries are non-negative integers (at most HF_ST_MAX_DIMS of them); the byte size
 * (product of shape times dtype size, computed without overflow) equals e - b; the tensors
 * sorted by offset tile the data section exactly from 0 (no gap, no overlap) and the last
 * offset equals the data section's length. On top of that (the engine's own rules): only F32
 * and F16 tensors are accepted (any other known dtype is refused naming the tensor and the
 * dtype), at most lim->max_tensors tensors (default 65536), tensor names 1..255 bytes of valid
 * UTF-8 without control characters. Every error names the tensor (and hf_st_open prefixes the
 * file name): "model.safetensors: tensor \"fc1.weight\": data_offsets [0, 12] span 12 bytes,
 * shape [2, 3] of F32 needs 24".
 * Data pointers point into the mapping: they are valid while the hf_st lives and may be
 * unaligned (the data section starts at 8 + N); read them with hf_st_read_f32().
 * Threading: an hf_st is immutable after hf_st_open/hf_st_parse; any thread may read it.
 */
#ifndef HF_SAFETENSORS_H
#define HF_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_ST_MAX_DIMS 8
#define HF_ST_DEFAULT_MAX_HEADER (100u * 1000u * 1000u)
#define HF_ST_DEFAULT_MAX_TENSORS 65536u

typedef enum hf_st_dtype {
	HF_ST_F32 = 0,
	HF_ST_F16 = 1,
} hf_st_dtype;

typedef struct hf_st_tensor {
	const char *name;
	hf_st_dtype dtype;
	size_t ndim;
	uint64_t shape[HF_ST_MAX_DIMS];
	uint64_t count;      /* elements: the product of shape (1 for ndim 0) */
	const void *data;    /* count * (4 or 2) bytes, possibly unaligned */
	uint64_t nbytes;
} hf_st_tensor;

typedef struct hf_st_limits {
	uint64_t max_header;  /* 0: HF_ST_DEFAULT_MAX_HEADER */
	uint64_t max_tensors; /* 0: HF_ST_DEFAULT_MAX_TENSORS */
	uint64_t max_file;    /* 0: no cap; otherwise HF_ETOOBIG for a larger file */
} hf_st_limits;

typedef struct hf_st hf_st;

/* Maps and validates path (lim may be NULL). HF_EIO (with errno) when it cannot be read,
 * HF_EPARSE for a malformed file, HF_ETOOBIG over a cap, HF_EUNSUPPORTED for a dtype other
 * than F32/F16. */
int hf_st_open(const char *path, const hf_st_limits *lim, hf_st **out, hf_errbuf *eb);
/* Validates a buffer already in memory (not copied: it must outlive the hf_st). */
int hf_st_parse(const void *buf, size_t len, const hf_st_limits *lim, hf_st **out,
		hf_errbuf *eb);
void hf_st_free(hf_st *st);

/* Tensors in the order of their data offsets. */
size_t hf_st_count(const hf_st *st);
const hf_st_tensor *hf_st_at(const hf_st *st, size_t i);
/* NULL when there is no tensor of that name. */
const hf_st_tensor *hf_st_find(const hf_st *st, const char *name);
/* The __metadata__ value for key, or NULL. */
const char *hf_st_metadata(const hf_st *st, const char *key);
/* Bytes of the data section (the sum of the tensors' sizes). */
uint64_t hf_st_data_bytes(const hf_st *st);

/* Copies the tensor's elements into dst (t->count floats), converting F16 to F32. */
void hf_st_read_f32(const hf_st_tensor *t, float *dst);

/* "F32", "F16". */
const char *hf_st_dtype_name(hf_st_dtype d);

#endif
