/* st_testutil: safetensors writers for the tests (see st_testutil.h).
 * Threading: single-threaded test helpers.
 */
#include "st_testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint8_t *st_image_n(uint64_t hlen_field, const char *header, size_t hlen, const void *data,
		    size_t dlen, size_t *len)
{
	uint8_t *b = malloc(8 + hlen + dlen + 1);

	if (!b)
		abort();
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(hlen_field >> (8 * i));
	memcpy(b + 8, header, hlen);
	if (dlen)
		memcpy(b + 8 + hlen, data, dlen);
	*len = 8 + hlen + dlen;
	return b;
}

uint8_t *st_image(const char *header, const void *data, size_t dlen, size_t *len)
{
	return st_image_n(strlen(header), header, strlen(header), data, dlen, len);
}

uint8_t *st_build(const st_spec *ts, size_t n, const char *graph, size_t *len)
{
	json_t *root = json_object();
	size_t off = 0, dlen = 0;
	uint8_t *data, *img;
	char *hdr;

	for (size_t i = 0; i < n; i++) {
		uint64_t c = 1;
		for (size_t d = 0; d < ts[i].ndim; d++)
			c *= ts[i].shape[d];
		dlen += c * (ts[i].f16 ? 2 : 4);
	}
	data = malloc(dlen + 1);
	if (!root || !data)
		abort();
	if (graph)
		json_object_set_new(root, "__metadata__",
				    json_pack("{s:s}", "hashflop.graph", graph));
	for (size_t i = 0; i < n; i++) {
		json_t *shape = json_array();
		uint64_t c = 1;
		size_t nb;
		for (size_t d = 0; d < ts[i].ndim; d++) {
			json_array_append_new(shape, json_integer((json_int_t)ts[i].shape[d]));
			c *= ts[i].shape[d];
		}
		nb = c * (ts[i].f16 ? 2 : 4);
		for (uint64_t k = 0; k < c; k++) {
			if (ts[i].f16) {
				data[off + 2 * k] = (uint8_t)ts[i].f16[k];
				data[off + 2 * k + 1] = (uint8_t)(ts[i].f16[k] >> 8);
			} else {
				uint32_t u;
				memcpy(&u, &ts[i].f32[k], 4);
				for (int j = 0; j < 4; j++)
					data[off + 4 * k + j] = (uint8_t)(u >> (8 * j));
			}
		}
		json_object_set_new(root, ts[i].name,
				    json_pack("{s:s,s:o,s:[I,I]}", "dtype", ts[i].f16 ? "F16" : "F32",
					      "shape", shape, "data_offsets", (json_int_t)off,
					      (json_int_t)(off + nb)));
		off += nb;
	}
	hdr = json_dumps(root, JSON_COMPACT);
	if (!hdr)
		abort();
	img = st_image(hdr, data, dlen, len);
	free(hdr);
	free(data);
	json_decref(root);
	return img;
}

static char tmp_dir[256];
static char tmp_files[32][512];
static size_t tmp_nfiles;

static void tmp_cleanup(void)
{
	for (size_t i = 0; i < tmp_nfiles; i++)
		unlink(tmp_files[i]);
	if (tmp_dir[0])
		rmdir(tmp_dir);
}

const char *st_write_tmp(const char *name, const void *buf, size_t len)
{
	char *path;
	FILE *f;

	if (!tmp_dir[0]) {
		snprintf(tmp_dir, sizeof tmp_dir, "/tmp/hf-st-test-XXXXXX");
		if (!mkdtemp(tmp_dir))
			abort();
		atexit(tmp_cleanup);
	}
	if (tmp_nfiles == sizeof tmp_files / sizeof tmp_files[0])
		abort();
	path = tmp_files[tmp_nfiles++];
	snprintf(path, sizeof tmp_files[0], "%s/%s", tmp_dir, name);
	f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0)
		abort();
	return path;
}
