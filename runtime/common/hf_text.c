/* hf_text: UTF-8 validation, control-character scrubbing and boundary-safe truncation.
 * Invariants: see hf_text.h; decoding follows RFC 3629 (no overlongs, no surrogates, at most
 * U+10FFFF).
 * Threading: reentrant; no state.
 */
#include "hf_text.h"

#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes available) and its code point; 0 when
 * the bytes there do not start a valid, complete sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1fu, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0fu, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3fu);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

bool hf_text_clean(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;

	if (dstsz == 0)
		return false;
	if (!src) {
		dst[0] = '\0';
		return true;
	}
	while (i < srclen && s[i]) {
		size_t avail = srclen - i, len;
		uint32_t cp = 0;
		const unsigned char *nul = memchr(s + i, 0, avail < 4 ? avail : 4);
		if (nul)
			avail = (size_t)(nul - (s + i));
		len = utf8_seq(s + i, avail, &cp);
		if (len == 0 || is_control(cp)) {
			if (o + 1 >= dstsz)
				break;
			dst[o++] = '?';
			i += len ? len : 1;
			continue;
		}
		if (o + len >= dstsz)
			break;
		memmove(dst + o, s + i, len); /* in place, dst + o trails s + i by fewer than len */
		o += len;
		i += len;
	}
	dst[o] = '\0';
	return i >= srclen || s[i] == '\0';
}

void hf_text_clean_inplace(char *s)
{
	/* Cleaning never grows a string ('?' replaces at least one byte), so it can run over
	 * itself: the write position never passes the read position. */
	hf_text_clean(s, strlen(s) + 1, s, strlen(s));
}

size_t hf_utf8_trim(char *s)
{
	size_t n = strlen(s), start = n;
	uint32_t cp;

	/* Walk back over at most 3 continuation bytes to the lead byte of the last sequence. */
	while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0 || n - start >= 4)
		return n;
	start--;
	if ((unsigned char)s[start] < 0x80)
		return n;
	if (utf8_seq((const unsigned char *)s + start, n - start, &cp) == n - start)
		return n;
	/* A lead byte whose sequence would need more bytes than remain: cut it. */
	unsigned char lead = (unsigned char)s[start];
	size_t need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : (lead & 0xf8) == 0xf0 ? 4 : 0;
	if (need > n - start) {
		s[start] = '\0';
		return start;
	}
	return n;
}

bool hf_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;

	while (i < len) {
		size_t l = utf8_seq(p + i, len - i, &cp);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}
