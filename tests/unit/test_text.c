/* Unit tests for hf_text: control characters, invalid UTF-8, boundary-safe truncation, and the
 * truncating helpers (hf_strlcpy, hf_fail) that must never leave half a character. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "hf_error.h"
#include "hf_text.h"
#include "hf_util.h"

Test(text, control_characters_become_question_marks)
{
	char out[64];
	const char *forged = "low difficulty\n<0>hashflopd: fake\r\x1b[31m\x7f";
	cr_assert(hf_text_clean(out, sizeof out, forged, strlen(forged)));
	cr_assert_str_eq(out, "low difficulty?<0>hashflopd: fake??[31m?");
	cr_assert_null(strchr(out, '\n'));
	/* C1 controls encoded as UTF-8 (U+0085 NEL, U+009B CSI) are controls too. */
	cr_assert(hf_text_clean(out, sizeof out, "a\xc2\x85" "b\xc2\x9b" "c", 7));
	cr_assert_str_eq(out, "a?b?c");
}

Test(text, valid_multibyte_text_is_kept)
{
	char out[64];
	const char *s = "caf\xc3\xa9 \xe2\x82\xac 5 \xf0\x9f\x98\x80";   /* café € 5 😀 */
	cr_assert(hf_text_clean(out, sizeof out, s, strlen(s)));
	cr_assert_str_eq(out, s);
	cr_assert(hf_utf8_valid(out, strlen(out)));
}

Test(text, invalid_utf8_is_replaced_byte_by_byte)
{
	char out[64];
	/* lone continuation, overlong '/', surrogate U+D800, above U+10FFFF, truncated 3-byte */
	const char s[] = "a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d\xf4\x90\x80\x80" "e\xe2\x82";
	cr_assert(hf_text_clean(out, sizeof out, s, sizeof s - 1));
	cr_assert_str_eq(out, "a?b??c???d????e??");
	cr_assert(hf_utf8_valid(out, strlen(out)));
	cr_assert_not(hf_utf8_valid(s, sizeof s - 1));
}

Test(text, truncation_stops_on_a_character_boundary)
{
	char out[6];
	const char *s = "ab\xe2\x82\xac\xe2\x82\xac";   /* ab€€: 8 bytes */
	cr_assert_not(hf_text_clean(out, sizeof out, s, strlen(s)));
	cr_assert_str_eq(out, "ab\xe2\x82\xac");             /* 5 bytes fit, the second € does not */
	char tiny[4];
	cr_assert_not(hf_text_clean(tiny, sizeof tiny, s, strlen(s)));
	cr_assert_str_eq(tiny, "ab");
	cr_assert(hf_utf8_valid(tiny, strlen(tiny)));
}

Test(text, stops_at_nul_and_at_srclen)
{
	char out[16];
	cr_assert(hf_text_clean(out, sizeof out, "abc\0def", 7));
	cr_assert_str_eq(out, "abc");
	cr_assert(hf_text_clean(out, sizeof out, "abcdef", 2));
	cr_assert_str_eq(out, "ab");
	cr_assert(hf_text_clean(out, sizeof out, NULL, 5));
	cr_assert_str_eq(out, "");
}

Test(text, clean_in_place)
{
	char s[] = "x\ny\xff" "z";
	hf_text_clean_inplace(s);
	cr_assert_str_eq(s, "x?y?z");
}

Test(text, clean_in_place_after_a_shrinking_replacement)
{
	/* U+0080 (a 2-byte C1 control) becomes one '?', so the following 2- and 3-byte
	 * characters move back by less than their own length: the copies overlap. Found by
	 * fuzz_stratum_core (ASan memcpy-param-overlap). */
	char s[] = "\xc2\x80\xc3\xa9\xc2\x9f\xe2\x82\xac!";
	hf_text_clean_inplace(s);
	cr_assert_str_eq(s, "?\xc3\xa9?\xe2\x82\xac!");
}

Test(text, utf8_trim_cuts_only_an_incomplete_tail)
{
	char a[] = "ab\xe2\x82";       /* € cut after 2 of 3 bytes */
	cr_assert_eq(hf_utf8_trim(a), 2);
	cr_assert_str_eq(a, "ab");
	char b[] = "ab\xe2\x82\xac";   /* complete € */
	cr_assert_eq(hf_utf8_trim(b), 5);
	char c[] = "ab\xf0";           /* lead byte alone */
	cr_assert_eq(hf_utf8_trim(c), 2);
	char d[] = "plain";
	cr_assert_eq(hf_utf8_trim(d), 5);
	char e[] = "";
	cr_assert_eq(hf_utf8_trim(e), 0);
}

Test(text, strlcpy_and_fail_never_leave_half_a_character)
{
	char big[HF_ERRBUF_SIZE + 8];
	hf_errbuf eb;
	char dst[4];

	/* "ab€": strlcpy into 4 bytes would keep "ab\xe2" without the trim. */
	cr_assert_not(hf_strlcpy(dst, "ab\xe2\x82\xac", sizeof dst));
	cr_assert_str_eq(dst, "ab");
	/* An error message cut by the buffer size in the middle of "€" stays valid JSON text. */
	memset(big, 'x', sizeof big);
	memcpy(big + HF_ERRBUF_SIZE - 2, "\xe2\x82\xac", 3);
	big[sizeof big - 1] = '\0';
	cr_assert_eq(hf_fail(&eb, HF_EPARSE, "%s", big), HF_EPARSE);
	cr_assert(hf_utf8_valid(eb.msg, strlen(eb.msg)));
	json_t *j = json_pack("{s:s}", "error", eb.msg);
	cr_assert_not_null(j, "json_pack refused the truncated message");
	json_decref(j);
	cr_assert_eq(hf_fail_prefix(&eb, HF_EPARSE, "%s", "prefix"), HF_EPARSE);
	cr_assert(hf_utf8_valid(eb.msg, strlen(eb.msg)));
}
