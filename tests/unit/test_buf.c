/* Unit tests for hf_buf: growth, the cap, printf, steal. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hf_buf.h"
#include "hf_error.h"

Test(buf, grows_and_stays_terminated)
{
	hf_buf b;
	hf_buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(hf_buf_printf(&b, "%03d,", i), 0);
	cr_assert_eq(b.len, 4000);
	cr_assert_eq(b.data[b.len], '\0');
	cr_assert_eq(strncmp(b.data + 3996, "999,", 4), 0);
	hf_buf_free(&b);
}

Test(buf, cap_refuses_and_keeps_content)
{
	hf_buf b;
	hf_buf_init(&b, 8);
	cr_assert_eq(hf_buf_append(&b, "12345678", 8), 0);
	cr_assert_eq(hf_buf_append(&b, "9", 1), HF_ETOOBIG);
	cr_assert(b.failed);
	cr_assert_eq(hf_buf_printf(&b, "%s", "x"), HF_ETOOBIG);
	cr_assert_str_eq(b.data, "12345678");
	hf_buf_reset(&b);
	cr_assert_not(b.failed);
	cr_assert_eq(b.len, 0);
	hf_buf_free(&b);
}

Test(buf, steal_hands_over)
{
	hf_buf b;
	size_t n;
	hf_buf_init(&b, 0);
	char *empty = hf_buf_steal(&b, &n);
	cr_assert_str_eq(empty, "");
	cr_assert_eq(n, 0);
	free(empty);
	hf_buf_append(&b, "abc", 3);
	char *d = hf_buf_steal(&b, &n);
	cr_assert_str_eq(d, "abc");
	cr_assert_eq(n, 3);
	cr_assert_null(b.data);
	free(d);
}
