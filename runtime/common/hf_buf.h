/* hf_buf: a growable byte buffer with a hard cap, always NUL-terminated.
 * Invariants: len < cap_alloc; data[len] == '\0'; growth past max fails with HF_ETOOBIG and
 * leaves the buffer as it was (the "failed" flag remembers it for printf-style chains).
 * Threading: one owner.
 */
#ifndef HF_BUF_H
#define HF_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hf_buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t max;
	bool failed;
} hf_buf;

/* Initialises an empty buffer that may grow to max bytes (0: 64 MiB). */
void hf_buf_init(hf_buf *b, size_t max);
void hf_buf_free(hf_buf *b);
void hf_buf_reset(hf_buf *b);
int hf_buf_append(hf_buf *b, const void *data, size_t len);
int hf_buf_printf(hf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (free() it) and leaves b empty. */
char *hf_buf_steal(hf_buf *b, size_t *len);

#endif
