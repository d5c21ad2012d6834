/* Unit tests for hf_prom: exposition-format lines, label escaping, special values. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "hf_prom.h"

Test(prom, family_and_samples)
{
	hf_buf b;
	hf_buf_init(&b, 0);
	hf_prom_family(&b, "hashflop_x_total", "counter", "Things.");
	hf_prom_sample(&b, "hashflop_x_total", NULL, 0, 42);
	const char *l[] = { "pool", "a\"b\\c\nd", "n", "1" };
	hf_prom_sample(&b, "hashflop_x_total", l, 2, 0.5);
	hf_prom_sample(&b, "hashflop_y", NULL, 0, NAN);
	hf_prom_sample(&b, "hashflop_y", NULL, 0, -INFINITY);
	hf_prom_sample(&b, "hashflop_y", NULL, 0, 1e20);
	cr_assert_str_eq(b.data,
			 "# HELP hashflop_x_total Things.\n"
			 "# TYPE hashflop_x_total counter\n"
			 "hashflop_x_total 42\n"
			 "hashflop_x_total{pool=\"a\\\"b\\\\c\\nd\",n=\"1\"} 0.5\n"
			 "hashflop_y NaN\n"
			 "hashflop_y -Inf\n"
			 "hashflop_y 1e+20\n");
	hf_buf_free(&b);
}
