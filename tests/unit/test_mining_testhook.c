/* Unit tests: hf_mining_testhook (the test-only scan faults: parsing, which call fails, the
 * stall). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_mining_testhook.h"
#include "hf_util.h"

static int calls_until_failure(hf_mining_testhook *h, int max)
{
	hf_errbuf eb;

	for (int i = 1; i <= max; i++)
		if (hf_mining_testhook_scan(h, &eb) < 0)
			return i;
	return 0;
}

Test(mining_testhook, unset_is_inactive)
{
	hf_mining_testhook h;
	hf_errbuf eb;

	cr_assert_eq(hf_mining_testhook_parse(&h, NULL, NULL, &eb), 0);
	cr_assert_not(h.active);
}

Test(mining_testhook, nth_call_fails_once_or_from_then_on)
{
	hf_mining_testhook h;
	hf_errbuf eb;

	cr_assert_eq(hf_mining_testhook_parse(&h, "3", NULL, &eb), 0, "%s", eb.msg);
	cr_assert(h.active);
	cr_assert_eq(calls_until_failure(&h, 10), 3);
	cr_assert_eq(calls_until_failure(&h, 10), 0, "only the third call fails");

	cr_assert_eq(hf_mining_testhook_parse(&h, "2+", NULL, &eb), 0, "%s", eb.msg);
	cr_assert_eq(calls_until_failure(&h, 10), 2);
	cr_assert_eq(calls_until_failure(&h, 10), 1, "every later call fails too");
	cr_assert_eq(hf_mining_testhook_scan(&h, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "test hook HASHFLOP_TEST_FAIL_SCAN"), "%s", eb.msg);
}

Test(mining_testhook, stall_blocks_the_nth_call)
{
	hf_mining_testhook h;
	hf_errbuf eb;

	cr_assert_eq(hf_mining_testhook_parse(&h, NULL, "2:30", &eb), 0, "%s", eb.msg);
	cr_assert(h.active);
	cr_assert_eq(h.stall_at, 2);
	cr_assert_eq(h.stall_ms, 30);
	cr_assert_eq(hf_mining_testhook_scan(&h, &eb), 0);
	uint64_t t0 = hf_mono_ms();
	cr_assert_eq(hf_mining_testhook_scan(&h, &eb), 0, "a stall does not fail");
	cr_assert_geq(hf_mono_ms() - t0, 30, "the second call slept its 30 ms (a lower bound)");
	cr_assert_eq(hf_mining_testhook_scan(&h, &eb), 0);
}

Test(mining_testhook, malformed_values_are_refused_by_name)
{
	static const char *const bad_fail[] = { "", "0", "+", "x", "3++", "-1", "1 ", "99999999999999999999" };
	static const char *const bad_stall[] = { "", "3", ":5", "3:", "0:5", "3:0", "3:x", "3:600001" };
	hf_mining_testhook h;
	hf_errbuf eb;

	for (size_t i = 0; i < sizeof bad_fail / sizeof bad_fail[0]; i++) {
		cr_assert_eq(hf_mining_testhook_parse(&h, bad_fail[i], NULL, &eb), HF_ECONFIG, "\"%s\"", bad_fail[i]);
		cr_assert(strstr(eb.msg, "HASHFLOP_TEST_FAIL_SCAN: expected N or N+"), "%s", eb.msg);
		cr_assert_not(h.active);
	}
	for (size_t i = 0; i < sizeof bad_stall / sizeof bad_stall[0]; i++) {
		cr_assert_eq(hf_mining_testhook_parse(&h, "5", bad_stall[i], &eb), HF_ECONFIG, "\"%s\"", bad_stall[i]);
		cr_assert(strstr(eb.msg, "HASHFLOP_TEST_STALL_SCAN: expected N:MS"), "%s", eb.msg);
		cr_assert_not(h.active);
	}
}
