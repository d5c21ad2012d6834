/* Unit tests: hf_mining_rate (windowed hash-rate averages from per-second buckets). */
#include <criterion/criterion.h>

#include "hf_mining_rate.h"

Test(mining_rate, young_tracker_reports_its_real_rate)
{
	static hf_mining_rate r;

	hf_mining_rate_init(&r);
	cr_assert_eq(hf_mining_rate_avg(&r, 100, 10), 0.0);
	hf_mining_rate_add(&r, 100, 500);
	cr_assert_float_eq(hf_mining_rate_avg(&r, 100, 10), 500.0, 1e-9, "first second counts");
	for (uint64_t s = 101; s <= 104; s++)
		hf_mining_rate_add(&r, s, 1000);
	/* seconds 100..104: (500 + 4000) / 5 */
	cr_assert_float_eq(hf_mining_rate_avg(&r, 104, 900), 900.0, 1e-9);
	cr_assert_float_eq(hf_mining_rate_avg(&r, 104, 2), 1000.0, 1e-9);
	cr_assert_eq(r.total, 4500);
}

Test(mining_rate, windows_forget_old_buckets)
{
	static hf_mining_rate r;

	hf_mining_rate_init(&r);
	for (uint64_t s = 0; s < 60; s++)
		hf_mining_rate_add(&r, s, 100);
	for (uint64_t s = 60; s < 70; s++)
		hf_mining_rate_add(&r, s, 0);
	hf_mining_rate_add(&r, 70, 0);
	cr_assert_float_eq(hf_mining_rate_avg(&r, 70, 10), 0.0, 1e-9, "last 10 s idle");
	cr_assert_float_eq(hf_mining_rate_avg(&r, 70, 60), 4900.0 / 60.0, 1e-9, "seconds 11..70");
	cr_assert_float_eq(hf_mining_rate_avg(&r, 70, 900), 6000.0 / 71.0, 1e-9, "seconds 0..70");
	/* A gap longer than the span clears everything. */
	hf_mining_rate_add(&r, 5000, 7);
	cr_assert_float_eq(hf_mining_rate_avg(&r, 5001, 10), 0.7, 1e-9);
	cr_assert_float_eq(hf_mining_rate_avg(&r, 5001, 900), 7.0 / 900.0, 1e-9);
}
