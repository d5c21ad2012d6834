/* hf_buf: growable, capped, NUL-terminated byte buffer.
 * Threading: one owner.
 */
#include "hf_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_error.h"

void hf_buf_init(hf_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max ? max : (64u << 20);
}

void hf_buf_free(hf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void hf_buf_reset(hf_buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data)
		b->data[0] = '\0';
}

static int reserve(hf_buf *b, size_t extra)
{
	size_t need, n;
	char *p;

	if (extra > b->max || b->len + extra > b->max) {
		b->failed = true;
		return HF_ETOOBIG;
	}
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 256;
	while (n < need)
		n *= 2;
	p = realloc(b->data, n);
	if (!p) {
		b->failed = true;
		return HF_ENOMEM;
	}
	b->data = p;
	b->alloc = n;
	return 0;
}

int hf_buf_append(hf_buf *b, const void *data, size_t len)
{
	int r = reserve(b, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int hf_buf_printf(hf_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return HF_EINVAL;
	r = reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *hf_buf_steal(hf_buf *b, size_t *len)
{
	char *d = b->data;
	if (!d) {
		d = calloc(1, 1);
		b->len = 0;
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->alloc = 0;
	return d;
}
