/* st_testutil: writes safetensors files for the tests of hf_safetensors and hf_graph: a raw
 * image from a header text and data bytes, or a whole file from a list of F32/F16 tensors and
 * a graph JSON (header made with jansson, offsets computed here).
 * Threading: single-threaded test helpers.
 */
#ifndef ST_TESTUTIL_H
#define ST_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 8-byte little-endian length of header, header, then dlen bytes of data (malloc'ed). */
uint8_t *st_image(const char *header, const void *data, size_t dlen, size_t *len);
/* The same with an explicit header length field (which may lie). */
uint8_t *st_image_n(uint64_t hlen_field, const char *header, size_t hlen, const void *data,
		    size_t dlen, size_t *len);

typedef struct st_spec {
	const char *name;
	size_t ndim;
	uint64_t shape[4];
	const float *f32;     /* count values (F32), or NULL */
	const uint16_t *f16;  /* count half bit patterns (F16), or NULL */
} st_spec;

/* A file image holding the tensors in order and __metadata__ {"hashflop.graph": graph} (no
 * metadata when graph is NULL). */
uint8_t *st_build(const st_spec *ts, size_t n, const char *graph, size_t *len);

/* Writes len bytes to a new file under a per-process temporary directory (removed with its
 * files at exit); returns its path (static storage, valid until the process ends). */
const char *st_write_tmp(const char *name, const void *buf, size_t len);

#endif
