/* hf_text: outside strings made safe to log and to put in JSON: control characters replaced,
 * invalid UTF-8 replaced, truncation only on character boundaries.
 *
 * A pool's reject reason, a peer's error message or a model file's tensor name may contain
 * "\n<0>" (a forged journal line), ANSI escapes or half a multi-byte character (which
 * json_pack refuses, turning a 400 into a 500). Every such string goes through hf_text_clean()
 * before it is logged, stored in a status field or copied into an error buffer.
 * Invariants: the output is always NUL-terminated valid UTF-8 without C0/C1 control
 * characters or DEL; it never exceeds dstsz - 1 bytes.
 * Threading: reentrant; no state.
 */
#ifndef HF_TEXT_H
#define HF_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies up to srclen bytes of src (stopping at a NUL) into dst: each control character
 * (U+0000-U+001F, U+007F, U+0080-U+009F) and each byte of an invalid or overlong UTF-8
 * sequence becomes '?'. Truncates on a character boundary. Returns false when truncated. */
bool hf_text_clean(char *dst, size_t dstsz, const char *src, size_t srclen);

/* In place: hf_text_clean of a NUL-terminated string onto itself. */
void hf_text_clean_inplace(char *s);

/* Cuts an incomplete UTF-8 sequence off the end of NUL-terminated s (left by a byte-wise
 * truncation such as snprintf's). Returns the new length. */
size_t hf_utf8_trim(char *s);

/* True when the first len bytes of s are valid UTF-8 (no overlong forms or surrogates). */
bool hf_utf8_valid(const char *s, size_t len);

#endif
