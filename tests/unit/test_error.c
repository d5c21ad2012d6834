/* Unit tests for hf_error: strings for every code, errbuf helpers. */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_error.h"

Test(error, every_code_has_its_own_text)
{
	const char *seen[32] = { 0 };
	int n = 0;
	for (int c = HF_OK; c >= HF_ERANGE; c--) {
		const char *s = hf_strerror(c);
		cr_assert_neq(strcmp(s, "unknown error"), 0, "code %d has no text", c);
		for (int i = 0; i < n; i++)
			cr_assert_neq(strcmp(seen[i], s), 0, "codes share the text \"%s\"", s);
		seen[n++] = s;
	}
	cr_assert_eq(n, 19);
}

Test(error, unknown_codes)
{
	cr_assert_str_eq(hf_strerror(-1000), "unknown error");
	cr_assert_str_eq(hf_strerror(5), "unknown error");
	cr_assert_str_eq(hf_strerror(HF_ECONFIG), "configuration error");
}

Test(error, fail_formats_and_returns_code)
{
	hf_errbuf eb;
	hf_errbuf_clear(&eb);
	cr_assert_str_eq(eb.msg, "");
	cr_assert_eq(hf_fail(&eb, HF_ECONFIG, "api.port: %s", "bad"), HF_ECONFIG);
	cr_assert_str_eq(eb.msg, "api.port: bad");
	cr_assert_eq(hf_fail_prefix(&eb, HF_ECONFIG, "node.json"), HF_ECONFIG);
	cr_assert_str_eq(eb.msg, "node.json: api.port: bad");
}

Test(error, null_errbuf_is_accepted)
{
	cr_assert_eq(hf_fail(NULL, HF_EIO, "x"), HF_EIO);
	cr_assert_eq(hf_fail_prefix(NULL, HF_EIO, "x"), HF_EIO);
	hf_errbuf_clear(NULL);
}

Test(error, long_detail_is_truncated_not_overflowed)
{
	hf_errbuf eb;
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	hf_fail(&eb, HF_EIO, "%s", big);
	cr_assert_eq(strlen(eb.msg), HF_ERRBUF_SIZE - 1);
	hf_fail_prefix(&eb, HF_EIO, "prefix");
	cr_assert_eq(strncmp(eb.msg, "prefix: xxx", 11), 0);
	cr_assert_eq(strlen(eb.msg), HF_ERRBUF_SIZE - 1);
}
