/* power_testutil: sysfs trees for the hf_power tests: a temporary root, files written
 * atomically (a sampler thread reading at the same time never sees half a number), waits.
 * Threading: test thread only.
 */
#ifndef POWER_TESTUTIL_H
#define POWER_TESTUTIL_H

#include <stdint.h>

#include "hf_power.h"

/* A new empty directory under /tmp (static storage; one per test process). */
const char *pt_root(void);
/* Removes the root made by pt_root (rm -rf). */
void pt_cleanup(void);
/* Writes root/rel (parents made) atomically: rel.tmp then rename. */
void pt_put(const char *rel, const char *content);
void pt_put_u64(const char *rel, unsigned long long v);
/* root/rel as a full path in buf. */
const char *pt_path(const char *rel, char *buf, size_t sz);
/* Reads p until at least ms milliseconds of monotonic time lie between *from and the new
 * reading (a poll with a 20 s deadline; asserts it is met). */
void pt_read_after(hf_power *p, const hf_power_reading *from, unsigned ms, hf_power_reading *out);
/* |a - b| <= tol * max(1, |b|) */
int pt_near(double a, double b, double tol);

#endif
