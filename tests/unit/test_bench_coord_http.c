/* Unit tests for bench_coord_http (benchmarks/): the response parser of `hashflop-bench coord`'s
 * simulated fleet: Content-Length and chunked bodies, no-body statuses, Connection: close,
 * every prefix of a response incomplete, and malformed or oversize responses refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "bench_coord.h"
#include "hf_error.h"

static char scratch[BC_HTTP_BODY_MAX];

/* Parses s; checks every proper prefix is incomplete (0) when the whole is complete. */
static ssize_t parse(const char *s, bc_http_resp *r)
{
	size_t len = strlen(s);
	ssize_t n = bc_http_parse(s, len, scratch, r);
	for (size_t i = 0; n > 0 && i < (size_t)n; i++) {
		bc_http_resp t;
		cr_assert_eq(bc_http_parse(s, i, scratch, &t), 0, "prefix of %zu bytes of %s", i, s);
	}
	return n;
}

Test(bench_coord_http, content_length_body_and_what_follows)
{
	bc_http_resp r;
	const char *s = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
			"hello" "HTTP/1.1 204 No Content\r\n\r\n";
	ssize_t n = parse(s, &r);
	cr_assert_eq(n, (ssize_t)(strlen(s) - 27));
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, 5);
	cr_assert_eq(memcmp(r.body, "hello", 5), 0);
	cr_assert_not(r.close);
	cr_assert_eq(parse(s + n, &r), 27);
	cr_assert_eq(r.status, 204);
	cr_assert_eq(r.body_len, 0);
}

Test(bench_coord_http, chunked_body_is_decoded)
{
	bc_http_resp r;
	const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
	cr_assert_eq(parse(s, &r), (ssize_t)strlen(s));
	cr_assert_eq(r.body_len, 8);
	cr_assert_eq(memcmp(r.body, "helloabc", 8), 0);
}

Test(bench_coord_http, connection_close_and_http10)
{
	bc_http_resp r;
	cr_assert_gt(parse("HTTP/1.1 401 Unauthorized\r\nconnection: Close\r\ncontent-length: 2\r\n\r\n{}",
			   &r), 0);
	cr_assert_eq(r.status, 401);
	cr_assert(r.close);
	cr_assert_gt(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &r), 0);
	cr_assert(r.close);
	cr_assert_gt(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &r), 0);
	cr_assert_not(r.close);
}

Test(bench_coord_http, malformed_and_oversize_are_refused)
{
	bc_http_resp r;
	cr_assert_eq(parse("HTTX/1.1 200 OK\r\n\r\n", &r), HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 2000 OK\r\n\r\n", &r), HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\n\r\n", &r), HF_EPROTO); /* no length */
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", &r),
		     HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &r), HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", &r), HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", &r),
		     HF_ETOOBIG);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &r),
		     HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", &r),
		     HF_EPROTO);
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n", &r),
		     HF_ETOOBIG);
	static char head[BC_HTTP_HEAD_MAX + 64];
	memset(head, 'a', sizeof head - 1);
	memcpy(head, "HTTP/1.1 200 OK\r\nX: ", 20);
	cr_assert_eq(bc_http_parse(head, strlen(head), scratch, &r), HF_ETOOBIG);
}
