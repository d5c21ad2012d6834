/* power_testutil: see power_testutil.h. */
#include "power_testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_file.h"
#include "hf_util.h"

static char root[64];

const char *pt_root(void)
{
	if (!root[0]) {
		strcpy(root, "/tmp/hf_power_test_XXXXXX");
		cr_assert_not_null(mkdtemp(root));
	}
	return root;
}

void pt_cleanup(void)
{
	if (!root[0])
		return;
	char cmd[128];
	/* chmod first: a test may have made a file unreadable */
	snprintf(cmd, sizeof cmd, "chmod -R u+rwX %s; rm -rf %s", root, root);
	cr_assert_eq(system(cmd), 0);
	root[0] = '\0';
}

const char *pt_path(const char *rel, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s/%s", pt_root(), rel);
	return buf;
}

void pt_put(const char *rel, const char *content)
{
	char path[512], dir[512], tmp[520];
	pt_path(rel, path, sizeof path);
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	cr_assert_eq(hf_mkdir_p(dir, 0755, NULL), 0, "mkdir -p %s", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f, "cannot write %s", tmp);
	fputs(content, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, path), 0, "rename to %s", path);
}

void pt_put_u64(const char *rel, unsigned long long v)
{
	char s[32];
	snprintf(s, sizeof s, "%llu\n", v);
	pt_put(rel, s);
}

void pt_read_after(hf_power *p, const hf_power_reading *from, unsigned ms, hf_power_reading *out)
{
	uint64_t deadline = hf_mono_ms() + 20000;
	for (;;) {
		hf_power_read(p, out);
		if (out->mono_ns >= from->mono_ns + (uint64_t)ms * 1000000ull)
			return;
		cr_assert_lt(hf_mono_ms(), deadline, "no reading %u ms later within 20 s", ms);
		hf_sleep_ms(5);
	}
}

int pt_near(double a, double b, double tol)
{
	double scale = fabs(b) > 1 ? fabs(b) : 1;
	return fabs(a - b) <= tol * scale;
}
