/* Unit tests: hf_mining_retry (the backend's restart budget: bounded restarts in a sliding
 * window, exponential backoff). */
#include <criterion/criterion.h>

#include "hf_mining_retry.h"

Test(mining_retry, restarts_back_off_then_the_budget_is_spent)
{
	hf_mining_retry r;
	uint64_t at = 0;

	hf_mining_retry_init(&r, 3, 60000, 1000);
	cr_assert(hf_mining_retry_fail(&r, 10000, &at));
	cr_assert_eq(at, 11000, "first restart after the base backoff");
	cr_assert(hf_mining_retry_fail(&r, 11500, &at));
	cr_assert_eq(at, 13500, "doubled");
	cr_assert(hf_mining_retry_fail(&r, 14000, &at));
	cr_assert_eq(at, 18000, "doubled again");
	cr_assert_eq(hf_mining_retry_recent(&r, 14000), 3);
	cr_assert_not(hf_mining_retry_fail(&r, 19000, &at), "a fourth failure in the window is final");
	cr_assert_eq(r.total, 4);
}

Test(mining_retry, failures_leave_the_window)
{
	hf_mining_retry r;
	uint64_t at = 0;

	hf_mining_retry_init(&r, 2, 10000, 100);
	cr_assert(hf_mining_retry_fail(&r, 0, &at));
	cr_assert(hf_mining_retry_fail(&r, 5000, &at));
	cr_assert_eq(at, 5200);
	/* At 10000 the first failure has left the window: this is the second of two again. */
	cr_assert_eq(hf_mining_retry_recent(&r, 10000), 1);
	cr_assert(hf_mining_retry_fail(&r, 10000, &at));
	cr_assert_eq(at, 10200);
	cr_assert_not(hf_mining_retry_fail(&r, 12000, &at));
	/* Long after, the budget is whole again. */
	cr_assert_eq(hf_mining_retry_recent(&r, 100000), 0);
	cr_assert(hf_mining_retry_fail(&r, 100000, &at));
	cr_assert_eq(at, 100100);
}

Test(mining_retry, zero_restarts_and_caps)
{
	hf_mining_retry r;
	uint64_t at = 0;

	hf_mining_retry_init(&r, 0, 1000, 100);
	cr_assert_not(hf_mining_retry_fail(&r, 5, &at), "restart_max 0: the first failure is final");
	hf_mining_retry_init(&r, 1000, 86400000, 600000);
	cr_assert_eq(r.max, HF_MINING_RETRY_MAX);
	cr_assert(hf_mining_retry_fail(&r, 0, &at));
	cr_assert_eq(at, HF_MINING_RETRY_BACKOFF_CAP_MS, "backoff capped");
	for (unsigned i = 1; i < HF_MINING_RETRY_MAX; i++)
		cr_assert(hf_mining_retry_fail(&r, i, &at), "failure %u", i + 1);
	cr_assert_not(hf_mining_retry_fail(&r, 100, &at));
	cr_assert_not(hf_mining_retry_fail(&r, 200, &at), "stays spent inside the window");
}
