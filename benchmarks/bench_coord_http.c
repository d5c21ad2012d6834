/* bench_coord_http: a minimal sans-I/O HTTP/1.1 response parser for the simulated fleet of
 * `hashflop-bench coord`: status line, Content-Length or chunked bodies, Connection: close.
 *
 * Invariants: never reads past len; the head is capped at BC_HTTP_HEAD_MAX and a body (or the
 * sum of its chunks) at BC_HTTP_BODY_MAX; a response that is neither fully here nor malformed
 * returns 0 so the caller reads more and parses again from the start (responses here are small).
 * Threading: reentrant.
 */
#include <string.h>
#include <strings.h>

#include "bench_coord.h"
#include "hf_error.h"

/* Parses a decimal or hex run into *v (no overflow past cap); the characters used. */
static size_t parse_num(const char *p, const char *end, unsigned base, size_t cap, size_t *v,
			bool *over)
{
	size_t n = 0, x = 0;
	*over = false;
	for (; p + n < end; n++) {
		char c = p[n];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (x > (cap - d) / base)
			*over = true;
		else
			x = x * base + d;
	}
	*v = x;
	return n;
}

/* Header fields between the status line and the blank line. */
static int parse_headers(const char *p, const char *end, bool *has_len, size_t *clen,
			 bool *chunked, bool *close, bool *keep_alive)
{
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon)
			return HF_EPROTO;
		size_t nlen = (size_t)(colon - p);
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t vlen = (size_t)(eol - v);
		if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			bool over;
			size_t n = parse_num(v, eol, 10, BC_HTTP_BODY_MAX + 1, clen, &over);
			if (n == 0 || *has_len)
				return HF_EPROTO;
			if (over || *clen > BC_HTTP_BODY_MAX)
				return HF_ETOOBIG;
			*has_len = true;
		} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			*chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
		} else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
			if (vlen >= 5 && strncasecmp(v, "close", 5) == 0)
				*close = true;
			if (vlen >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
				*keep_alive = true;
		}
		p = eol + 2;
	}
	return 0;
}

/* Decodes the chunked body at p; bytes spanned through the final CRLF, 0 when incomplete. */
static ssize_t parse_chunked(const char *p, const char *end, char *scratch, size_t *out_len)
{
	const char *start = p;
	size_t total = 0;
	for (;;) {
		size_t sz;
		bool over;
		size_t n = parse_num(p, end, 16, BC_HTTP_BODY_MAX + 1, &sz, &over);
		if (p + n >= end)
			return 0;
		if (n == 0)
			return HF_EPROTO;
		if (over || total + sz > BC_HTTP_BODY_MAX)
			return HF_ETOOBIG;
		const char *eol = memchr(p + n, '\n', (size_t)(end - p - n)); /* chunk extensions */
		if (!eol)
			return (size_t)(end - p) > 256 ? HF_EPROTO : 0;
		p = eol + 1;
		if (sz == 0)
			break;
		if ((size_t)(end - p) < sz + 2)
			return 0;
		memcpy(scratch + total, p, sz);
		total += sz;
		if (p[sz] != '\r' || p[sz + 1] != '\n')
			return HF_EPROTO;
		p += sz + 2;
	}
	/* trailers: lines up to an empty one */
	for (;;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			return (size_t)(end - p) > BC_HTTP_HEAD_MAX ? HF_ETOOBIG : 0;
		bool empty = eol == p || (eol == p + 1 && *p == '\r');
		p = eol + 1;
		if (empty)
			break;
	}
	*out_len = total;
	return p - start;
}

ssize_t bc_http_parse(const char *buf, size_t len, char *scratch, bc_http_resp *out)
{
	const char *end = buf + len;
	const char *hend = len >= 4 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;

	if (!hend)
		return len > BC_HTTP_HEAD_MAX ? HF_ETOOBIG : 0;
	if ((size_t)(hend - buf) > BC_HTTP_HEAD_MAX)
		return HF_ETOOBIG;
	if (hend - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ')
		return HF_EPROTO;
	size_t code;
	bool over;
	if (parse_num(buf + 9, hend, 10, 999, &code, &over) != 3 || over || code < 100)
		return HF_EPROTO;
	const char *eol = memchr(buf, '\r', (size_t)(hend - buf) + 1); /* found: hend at worst */
	bool has_len = false, chunked = false, close = false, keep_alive = false;
	size_t clen = 0;
	int rc = parse_headers(eol + 2, hend, &has_len, &clen, &chunked, &close, &keep_alive);
	if (rc < 0)
		return rc;
	out->status = (int)code;
	out->close = close || (buf[7] == '0' && !keep_alive);
	out->body = "";
	out->body_len = 0;
	const char *body = hend + 4;
	if (code < 200 || code == 204 || code == 304)
		return body - buf;
	if (chunked) {
		size_t blen = 0;
		ssize_t n = parse_chunked(body, end, scratch, &blen);
		if (n <= 0)
			return n;
		out->body = scratch;
		out->body_len = blen;
		return (body - buf) + n;
	}
	if (!has_len)
		return HF_EPROTO; /* a body up to EOF: never sent by the coordinator */
	if ((size_t)(end - body) < clen)
		return 0;
	out->body = body;
	out->body_len = clen;
	return (body - buf) + (ssize_t)clen;
}
