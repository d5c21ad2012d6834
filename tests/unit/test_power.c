/* Unit tests for hf_power: RAPL and hwmon on constructed sysfs trees (normal, wrap, missing,
 * unreadable, failing after open, power-only integration), the estimate with a scripted
 * utilisation, the auto choice and its problems, windows, defaults. The NVML backend is in
 * test_power_nvml.c (it loads a fake libnvidia-ml.so.1 built with the tests). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hf_power.h"
#include "hf_util.h"
#include "power_testutil.h"

TestSuite(power, .fini = pt_cleanup);

#define EPS 1e-9

static hf_power *open_ok(hf_power_kind kind, unsigned interval_ms)
{
	hf_power_opts o = { .kind = kind, .sysfs_root = pt_root(),
			    .sample_interval_ms = interval_ms };
	hf_power *p = NULL;
	hf_errbuf eb;
	int rc = hf_power_open(&o, &p, &eb);
	cr_assert_eq(rc, 0, "open %s: %s (%s)", hf_power_kind_name(kind), hf_strerror(rc), eb.msg);
	return p;
}

static void rapl_dom(const char *entry, const char *name, unsigned long long uj,
		     unsigned long long range)
{
	char rel[256];
	snprintf(rel, sizeof rel, "class/powercap/%s/name", entry);
	pt_put(rel, name);
	snprintf(rel, sizeof rel, "class/powercap/%s/energy_uj", entry);
	pt_put_u64(rel, uj);
	if (range) {
		snprintf(rel, sizeof rel, "class/powercap/%s/max_energy_range_uj", entry);
		pt_put_u64(rel, range);
	}
}

static void rapl_set(const char *entry, unsigned long long uj)
{
	char rel[256];
	snprintf(rel, sizeof rel, "class/powercap/%s/energy_uj", entry);
	pt_put_u64(rel, uj);
}

/* Two packages with dram, plus what must not be counted: core/uncore subdomains, psys, the
 * mmio duplicate and the control-type directory itself. */
static void rapl_two_packages(void)
{
	const unsigned long long range = 262143328850ull;
	rapl_dom("intel-rapl:0", "package-0\n", 1000000, range);
	rapl_dom("intel-rapl:0:0", "dram\n", 500000, range);
	rapl_dom("intel-rapl:0:1", "core\n", 7000, range);
	rapl_dom("intel-rapl:1", "package-1\n", 2000000, range);
	rapl_dom("intel-rapl:1:0", "dram\n", 0, range);
	rapl_dom("intel-rapl:1:1", "uncore\n", 0, range);
	rapl_dom("intel-rapl:2", "psys\n", 0, range);
	rapl_dom("intel-rapl-mmio:0", "package-0\n", 1000000, range);
	pt_put("class/powercap/intel-rapl/enabled", "1\n");
}

Test(power, kind_names)
{
	hf_power_kind k;
	const char *names[] = { "auto", "rapl", "hwmon", "nvml", "estimate" };
	for (int i = 0; i < 5; i++) {
		cr_assert(hf_power_kind_parse(names[i], &k));
		cr_assert_eq((int)k, i);
		cr_assert_str_eq(hf_power_kind_name(k), names[i]);
	}
	cr_assert_not(hf_power_kind_parse("RAPL", &k));
	cr_assert_not(hf_power_kind_parse("", &k));
	cr_assert_not(hf_power_kind_parse(NULL, &k));
	cr_assert_str_eq(hf_power_kind_name((hf_power_kind)42), "unknown");
}

Test(power, rapl_two_packages_with_dram_exact_joules)
{
	rapl_two_packages();
	hf_power *p = open_ok(HF_POWER_RAPL, 20);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_RAPL);
	cr_assert_eq(hf_power_domain_count(p), 4, "%s", hf_power_detail(p));
	cr_assert_str_eq(hf_power_boundary(p), "package+dram");
	const char *d = hf_power_detail(p);
	cr_assert_str_eq(d, "intel-rapl:0 package-0 (energy_uj), intel-rapl:0:0 dram (energy_uj), "
			    "intel-rapl:1 package-1 (energy_uj), intel-rapl:1:0 dram (energy_uj)");
	cr_assert_str_eq(hf_power_problems(p), "");

	hf_power_reading r0, r1;
	hf_power_read(p, &r0);
	cr_assert_float_eq(r0.energy_j, 0.0, EPS);
	cr_assert_not(r0.estimated);
	rapl_set("intel-rapl:0", 2500000);   /* +1.5 J */
	rapl_set("intel-rapl:0:0", 750000);  /* +0.25 J */
	rapl_set("intel-rapl:0:1", 9007000); /* core: inside the package, not counted */
	rapl_set("intel-rapl:1", 4000000);   /* +2 J */
	rapl_set("intel-rapl:1:0", 125000);  /* +0.125 J */
	rapl_set("intel-rapl:2", 99000000);  /* psys: not counted */
	pt_read_after(p, &r0, 0, &r1);
	cr_assert_float_eq(r1.energy_j, 3.875, EPS, "%.9f J", r1.energy_j);
	hf_power_window w;
	hf_power_window_of(&r0, &r1, &w);
	cr_assert_float_eq(w.joules, 3.875, EPS);
	cr_assert_gt(w.seconds, 0);
	cr_assert_float_eq(w.watts, 3.875 / w.seconds, 1e-6);
	cr_assert_not(r1.degraded);
	cr_assert_eq(hf_power_read_errors(p), 0);
	hf_power_free(p);
}

Test(power, rapl_exclude_dram)
{
	rapl_two_packages();
	hf_power_opts o = { .kind = HF_POWER_RAPL, .sysfs_root = pt_root(), .exclude_dram = true };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_domain_count(p), 2);
	cr_assert_str_eq(hf_power_boundary(p), "package");
	cr_assert_null(strstr(hf_power_detail(p), "dram"));
	hf_power_reading r;
	rapl_set("intel-rapl:0", 1100000);
	rapl_set("intel-rapl:0:0", 900000);
	rapl_set("intel-rapl:1", 2300000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 0.4, EPS, "%.9f", r.energy_j);
	hf_power_free(p);
}

Test(power, rapl_wraparound_corrected_exactly)
{
	/* Wraps after 1,000,000 uJ: 999000 -> 500 is 1000 + 1 + 500 uJ. */
	rapl_dom("intel-rapl:0", "package-0", 999000, 1000000);
	hf_power *p = open_ok(HF_POWER_RAPL, 3600000);
	hf_power_reading r;
	rapl_set("intel-rapl:0", 500);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 1501e-6, EPS, "%.9f", r.energy_j);
	rapl_set("intel-rapl:0", 2000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 3001e-6, EPS);
	/* A second wrap, landing on 0. */
	rapl_set("intel-rapl:0", 1000000);
	hf_power_read(p, &r);
	rapl_set("intel-rapl:0", 0);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, (3001 + 998000 + 1) * 1e-6, EPS, "%.9f", r.energy_j);
	cr_assert_not(r.degraded);
	hf_power_free(p);
}

Test(power, rapl_missing_then_auto_falls_back)
{
	hf_power_opts o = { .kind = HF_POWER_RAPL, .sysfs_root = pt_root() };
	hf_power *p = (hf_power *)1;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_ENOTFOUND);
	cr_assert_null(p);
	cr_assert(strstr(eb.msg, "rapl: ") == eb.msg, "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "powercap"), "%s", eb.msg);

	o.kind = HF_POWER_HWMON;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "class/hwmon"), "%s", eb.msg);

	o.kind = HF_POWER_AUTO;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_ESTIMATE);
	cr_assert_str_eq(hf_power_boundary(p), "estimate");
	const char *why = hf_power_problems(p);
	cr_assert_not_null(strstr(why, "rapl: no powercap (RAPL) driver"), "%s", why);
	cr_assert_not_null(strstr(why, "; hwmon: cannot list "), "%s", why);
	cr_assert_null(strstr(why, "nvml"), "no GPU named: nvml not tried: %s", why);
	hf_power_reading r;
	hf_power_read(p, &r);
	cr_assert(r.estimated);
	hf_power_free(p);

	/* A powercap with only psys and core: nothing to count. */
	rapl_dom("intel-rapl:0", "psys", 5, 100);
	rapl_dom("intel-rapl:0:0", "core", 5, 100);
	o.kind = HF_POWER_RAPL;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "no package domain under "), "%s", eb.msg);
}

/* Drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from this process's effective set (Criterion
 * runs each test in its own process), so that root, too, gets EACCES from a mode-000 file. */
static bool set_dac_caps(bool on)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	uint32_t mask = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
	if (on)
		d[0].effective |= d[0].permitted & mask;
	else
		d[0].effective &= ~mask;
	return syscall(SYS_capset, &h, d) == 0;
}

Test(power, rapl_root_only_energy_uj_is_skipped_and_named)
{
	char path[512];
	rapl_dom("intel-rapl:0", "package-0", 100, 1000000);
	rapl_dom("intel-rapl:1", "package-1", 100, 1000000);
	pt_path("class/powercap/intel-rapl:0/energy_uj", path, sizeof path);
	cr_assert_eq(chmod(path, 0400), 0);
	/* As root here: chmod alone stops nothing, so drop the capabilities that bypass it. */
	bool dropped = geteuid() == 0 && set_dac_caps(false);
	chmod(path, 0);
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		close(fd);
		cr_skip_test("cannot make a file unreadable here (euid %d, capabilities kept)",
			     (int)geteuid());
	}

	hf_power *p = open_ok(HF_POWER_RAPL, 3600000);
	cr_assert_eq(hf_power_domain_count(p), 1);
	const char *d = hf_power_detail(p);
	cr_assert(strstr(d, "intel-rapl:1 package-1 (energy_uj); skipped: ") == d, "%s", d);
	cr_assert_not_null(strstr(d, "intel-rapl:0/energy_uj is readable by root only"), "%s", d);
	cr_assert_not_null(strstr(d, "udev rule or chmod"), "%s", d);
	hf_power_free(p);

	/* Both root-only: rapl fails with the message; auto says why it passed rapl over. */
	pt_path("class/powercap/intel-rapl:1/energy_uj", path, sizeof path);
	cr_assert_eq(chmod(path, 0), 0);
	hf_power_opts o = { .kind = HF_POWER_RAPL, .sysfs_root = pt_root() };
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "rapl: "), "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "intel-rapl:0/energy_uj is readable by root only"),
			   "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "intel-rapl:1/energy_uj is readable by root only"),
			   "%s", eb.msg);
	o.kind = HF_POWER_AUTO;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_ESTIMATE);
	cr_assert_not_null(strstr(hf_power_problems(p), "readable by root only"), "%s",
			   hf_power_problems(p));
	hf_power_free(p);
	if (dropped)
		cr_assert(set_dac_caps(true));
}

Test(power, rapl_energy_uj_not_a_file_is_skipped)
{
	/* Works as root too: a directory cannot be read as an attribute. */
	rapl_dom("intel-rapl:0", "package-0", 100, 1000000);
	pt_put("class/powercap/intel-rapl:1/name", "package-1");
	pt_put("class/powercap/intel-rapl:1/energy_uj/x", "");
	hf_power *p = open_ok(HF_POWER_RAPL, 3600000);
	cr_assert_eq(hf_power_domain_count(p), 1);
	cr_assert_not_null(strstr(hf_power_detail(p), "skipped: cannot read "), "%s",
			   hf_power_detail(p));
	cr_assert_not_null(strstr(hf_power_detail(p), "intel-rapl:1/energy_uj: Is a directory"));
	hf_power_free(p);
	/* Garbage in a counter: refused at open, named. */
	rapl_set("intel-rapl:0", 0);
	pt_put("class/powercap/intel-rapl:0/energy_uj", "12abc\n");
	hf_power_opts o = { .kind = HF_POWER_RAPL, .sysfs_root = pt_root() };
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "expected a decimal counter, read \"12abc\""), "%s",
			   eb.msg);
}

Test(power, read_failure_after_open_keeps_energy_and_degrades)
{
	rapl_dom("intel-rapl:0", "package-0", 1000, 1000000000);
	rapl_dom("intel-rapl:1", "package-1", 1000, 1000000000);
	hf_power *p = open_ok(HF_POWER_RAPL, 3600000);
	hf_power_reading r;
	rapl_set("intel-rapl:0", 201000); /* +0.2 J */
	rapl_set("intel-rapl:1", 101000); /* +0.1 J */
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 0.3, EPS);
	/* Package 0 disappears (a driver unbind): its energy stays, package 1 still counts. */
	char path[512];
	unlink(pt_path("class/powercap/intel-rapl:0/energy_uj", path, sizeof path));
	rapl_set("intel-rapl:1", 201000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 0.4, EPS, "%.9f", r.energy_j);
	cr_assert(r.degraded);
	cr_assert_geq(hf_power_read_errors(p), 1);
	const char *d = hf_power_detail(p);
	cr_assert_not_null(strstr(d, "; read failing since open: intel-rapl:0 package-0 "
				     "(energy_uj): cannot open "), "%s", d);
	hf_power_read(p, &r);
	cr_assert_str_eq(hf_power_detail(p), d, "one note per failing domain");
	/* It comes back: the counter's difference since its last good read counts. */
	rapl_set("intel-rapl:0", 501000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 0.7, EPS, "%.9f", r.energy_j);
	cr_assert(r.degraded, "degraded means: a domain failed since open");
	hf_power_free(p);
}

Test(power, hwmon_energy_counters_and_reset)
{
	pt_put("class/hwmon/hwmon0/name", "k10temp\n");
	pt_put("class/hwmon/hwmon0/temp1_input", "45000\n");
	pt_put("class/hwmon/hwmon1/name", "myenergy\n");
	pt_put_u64("class/hwmon/hwmon1/energy1_input", 1000);
	pt_put_u64("class/hwmon/hwmon1/energy2_input", 5000);
	pt_put("class/hwmon/hwmon1/power1_average", "99000000\n"); /* not read: energy wins */
	hf_power *p = open_ok(HF_POWER_HWMON, 20);
	cr_assert_eq(hf_power_domain_count(p), 2, "%s", hf_power_detail(p));
	cr_assert_str_eq(hf_power_boundary(p), "chip");
	cr_assert_str_eq(hf_power_detail(p),
			 "hwmon1 myenergy energy1_input (energy counter), "
			 "hwmon1 myenergy energy2_input (energy counter)");
	hf_power_reading r0, r;
	hf_power_read(p, &r0);
	pt_put_u64("class/hwmon/hwmon1/energy1_input", 3001000); /* +3 J */
	pt_put_u64("class/hwmon/hwmon1/energy2_input", 505000);  /* +0.5 J */
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j - r0.energy_j, 3.5, EPS);
	/* A decrease is a reset (no wrap for 64-bit hwmon energy): counts from zero. */
	pt_put_u64("class/hwmon/hwmon1/energy2_input", 250000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 3.75, EPS, "%.9f", r.energy_j);
	cr_assert_not(r.degraded);
	cr_assert_not_null(strstr(hf_power_detail(p), "; counter went backwards (counted as a "
						      "reset from 0) since open: hwmon1 myenergy "
						      "energy2_input (energy counter)"),
			   "%s", hf_power_detail(p));
	hf_power_free(p);
}

Test(power, hwmon_socket_totals_only)
{
	/* amd_energy style: per-core and per-socket counters; the cores are inside the socket. */
	pt_put("class/hwmon/hwmon3/name", "amd_energy");
	pt_put_u64("class/hwmon/hwmon3/energy1_input", 10);
	pt_put("class/hwmon/hwmon3/energy1_label", "Ecore000");
	pt_put_u64("class/hwmon/hwmon3/energy2_input", 20);
	pt_put("class/hwmon/hwmon3/energy2_label", "Esocket0");
	hf_power *p = open_ok(HF_POWER_HWMON, 3600000);
	cr_assert_eq(hf_power_domain_count(p), 1);
	cr_assert_str_eq(hf_power_detail(p),
			 "hwmon3 amd_energy energy2_input Esocket0 (energy counter)");
	hf_power_free(p);
}

Test(power, hwmon_power_only_integrated_over_measured_time)
{
	pt_put("class/hwmon/hwmon0/name", "power_meter\n");
	pt_put("class/hwmon/hwmon0/power1_average", "5000000\n"); /* 5 W */
	pt_put("class/hwmon/hwmon0/power1_input", "9000000\n");   /* passed over: average wins */
	pt_put("class/hwmon/hwmon1/name", "other\n");
	pt_put("class/hwmon/hwmon1/power1_input", "1000000\n"); /* 1 W, input only */
	hf_power *p = open_ok(HF_POWER_HWMON, 10);
	cr_assert_eq(hf_power_domain_count(p), 2, "%s", hf_power_detail(p));
	cr_assert_str_eq(hf_power_detail(p),
			 "hwmon0 power_meter power1_average (power, integrated), "
			 "hwmon1 other power1_input (power, integrated)");
	hf_power_reading r0, r1, rx, r2;
	hf_power_window w;
	hf_power_read(p, &r0);
	pt_read_after(p, &r0, 200, &r1);
	hf_power_window_of(&r0, &r1, &w);
	cr_assert_geq(w.seconds, 0.2);
	/* Constant power: the energy is exactly 6 W times the time between the readings. */
	cr_assert(pt_near(w.joules, 6.0 * w.seconds, 1e-9), "%.9f J over %.9f s", w.joules,
		  w.seconds);
	cr_assert_float_eq(r1.watts, 6.0, 1e-6, "sampler watts %.9f", r1.watts);

	/* 5 W -> 10 W on the first chip: between 6 and 11 W on the window spanning the step,
	 * exactly 11 W from the first reading that saw it. */
	pt_put("class/hwmon/hwmon0/power1_average", "10000000\n");
	hf_power_read(p, &rx);
	pt_read_after(p, &rx, 200, &r2);
	hf_power_window_of(&r1, &r2, &w);
	cr_assert_geq(w.joules, 6.0 * w.seconds - 1e-9);
	cr_assert_leq(w.joules, 11.0 * w.seconds + 1e-9);
	hf_power_window_of(&rx, &r2, &w);
	cr_assert(pt_near(w.joules, 11.0 * w.seconds, 1e-9), "%.9f J over %.9f s", w.joules,
		  w.seconds);
	hf_power_free(p);
}

Test(power, outside_strings_are_cleaned)
{
	pt_put("class/hwmon/hwmon0/name", "evil\x1b[31m\nname\x7f\n");
	pt_put("class/hwmon/hwmon0/power1_input", "1\n");
	pt_put("class/hwmon/hwmon1/name", "ok");
	pt_put("class/hwmon/hwmon1/power1_input", "bad\x1b\n");
	hf_power *p = open_ok(HF_POWER_HWMON, 3600000);
	const char *d = hf_power_detail(p);
	cr_assert_not_null(strstr(d, "hwmon0 evil?[31m power1_input"), "%s", d);
	cr_assert_not_null(strstr(d, "read \"bad?\""), "%s", d);
	for (const unsigned char *c = (const unsigned char *)d; *c; c++)
		cr_assert(*c >= 0x20 && *c != 0x7f, "control byte 0x%02x in the detail", *c);
	hf_power_free(p);
}

typedef struct util_script {
	_Atomic double u;
	_Atomic int calls;
} util_script;

static double scripted_util(void *ctx)
{
	util_script *s = ctx;
	atomic_fetch_add(&s->calls, 1);
	return atomic_load(&s->u);
}

Test(power, estimate_with_scripted_utilisation)
{
	util_script s;
	atomic_init(&s.u, 0.5);
	atomic_init(&s.calls, 0);
	hf_power_opts o = { .kind = HF_POWER_ESTIMATE, .idle_w = 100, .full_w = 300,
			    .utilisation = scripted_util, .utilisation_ctx = &s,
			    .sample_interval_ms = 10 };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_ESTIMATE);
	cr_assert_str_eq(hf_power_boundary(p), "estimate");
	cr_assert_str_eq(hf_power_detail(p), "estimate 100 W idle, 300 W full (configured), "
					     "utilisation from the caller");
	hf_power_reading r0, r1, rx, r2;
	hf_power_window w;
	hf_power_read(p, &r0);
	cr_assert(r0.estimated);
	pt_read_after(p, &r0, 150, &r1);
	hf_power_window_of(&r0, &r1, &w);
	cr_assert(pt_near(w.joules, 200.0 * w.seconds, 1e-9), "%.9f J over %.9f s", w.joules,
		  w.seconds);
	cr_assert_gt(atomic_load(&s.calls), 2, "the sampler asks too");
	/* Clamped: 7 counts as 1, NaN and negatives as 0. */
	atomic_store(&s.u, 7.0);
	hf_power_read(p, &rx);
	pt_read_after(p, &rx, 100, &r2);
	hf_power_window_of(&rx, &r2, &w);
	cr_assert(pt_near(w.joules, 300.0 * w.seconds, 1e-9), "%.9f J", w.joules);
	atomic_store(&s.u, NAN);
	hf_power_read(p, &rx);
	pt_read_after(p, &rx, 100, &r2);
	hf_power_window_of(&rx, &r2, &w);
	cr_assert(pt_near(w.joules, 100.0 * w.seconds, 1e-9), "%.9f J", w.joules);
	hf_power_free(p);
}

Test(power, estimate_default_utilisation_is_cpu_share)
{
	hf_power_opts o = { .kind = HF_POWER_ESTIMATE, .idle_w = 10, .full_w = 110,
			    .sample_interval_ms = 20 };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(strstr(hf_power_detail(p), "this process's CPU time share"));
	hf_power_reading r0, r1;
	hf_power_read(p, &r0);
	/* Busy for 100 ms of CPU time: the energy lies between idle and full over the window
	 * and above idle (this process used CPU). */
	uint64_t cpu0 = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID), deadline = hf_mono_ms() + 20000;
	volatile unsigned long x = 0;
	while (hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID) < cpu0 + 100000000ull) {
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i;
		cr_assert_lt(hf_mono_ms(), deadline);
	}
	cr_assert_gt(x, 0ul); /* the work was done */
	hf_power_read(p, &r1);
	hf_power_window w;
	hf_power_window_of(&r0, &r1, &w);
	cr_assert_gt(w.joules, 10.0 * w.seconds, "%.6f J over %.6f s", w.joules, w.seconds);
	cr_assert_leq(w.joules, 110.0 * w.seconds + 1e-9);
	hf_power_free(p);
}

Test(power, estimate_defaults)
{
	double idle, full;
	const char *why = NULL;
	hf_power_estimate_default("NVIDIA H100 80GB HBM3", 64, &idle, &full, &why);
	cr_assert_float_eq(full, 700.0, EPS);
	cr_assert_float_eq(idle, 70.0, EPS);
	cr_assert_not_null(strstr(why, "H100/H200 SXM"));
	hf_power_estimate_default("NVIDIA h200", 64, &idle, &full, NULL);
	cr_assert_float_eq(full, 700.0, EPS);
	/* The lower-limit cards are told apart by name. */
	hf_power_estimate_default("NVIDIA H100 PCIe", 64, &idle, &full, &why);
	cr_assert_float_eq(full, 350.0, EPS);
	cr_assert_float_eq(idle, 35.0, EPS);
	cr_assert_not_null(strstr(why, "H100 PCIe"));
	hf_power_estimate_default("NVIDIA H100 NVL", 64, &idle, &full, NULL);
	cr_assert_float_eq(full, 400.0, EPS);
	hf_power_estimate_default("NVIDIA H200 NVL", 64, &idle, &full, NULL);
	cr_assert_float_eq(full, 600.0, EPS);
	hf_power_estimate_default("pthread-AMD EPYC 7763 64-Core Processor", 128, &idle, &full,
				  &why);
	cr_assert_float_eq(full, 280.0, EPS);
	cr_assert_float_eq(idle, 280.0 * 0.35, EPS);
	cr_assert_not_null(strstr(why, "EPYC 7763"));
	hf_power_estimate_default(NULL, 0, &idle, &full, NULL);
	cr_assert_float_eq(full, 280.0 / 128, EPS, "0 CPUs counts as 1");

	/* idle/full 0/0: the CPU default for this machine, labelled so. */
	hf_power_opts o = { .kind = HF_POWER_ESTIMATE };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	char want[96];
	snprintf(want, sizeof want, "(default for %ld CPUs: see runtime/power/README.md)",
		 sysconf(_SC_NPROCESSORS_ONLN));
	cr_assert_not_null(strstr(hf_power_detail(p), want), "%s", hf_power_detail(p));
	hf_power_free(p);
}

Test(power, bad_options_refused)
{
	hf_power *p = NULL;
	hf_errbuf eb;
	hf_power_opts o = { .kind = HF_POWER_ESTIMATE, .idle_w = 200, .full_w = 100 };
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "full_w (100) is below idle_w (200)"), "%s", eb.msg);
	o = (hf_power_opts){ .kind = HF_POWER_AUTO, .idle_w = NAN };
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EINVAL);
	o = (hf_power_opts){ .kind = HF_POWER_ESTIMATE, .idle_w = -1, .full_w = 5 };
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EINVAL);
	o = (hf_power_opts){ .kind = (hf_power_kind)9 };
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EINVAL);
	o = (hf_power_opts){ .kind = HF_POWER_ESTIMATE, .sample_interval_ms = 3600001 };
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EINVAL);
	cr_assert_null(p);
	hf_power_free(NULL);
}

Test(power, limits_unsupported_without_nvml)
{
	rapl_dom("intel-rapl:0", "package-0", 1, 100);
	hf_power *p = open_ok(HF_POWER_RAPL, 3600000);
	double a, b, c;
	hf_errbuf eb;
	cr_assert_eq(hf_power_limit_get(p, &a, &b, &c, &eb), HF_EUNSUPPORTED);
	cr_assert_not_null(strstr(eb.msg, "rapl has no settable power limit"), "%s", eb.msg);
	cr_assert_eq(hf_power_limit_set(p, 100, &eb), HF_EUNSUPPORTED);
	hf_power_free(p);
}

Test(power, window_of)
{
	hf_power_reading a = { .mono_ns = 1000000000ull, .energy_j = 10 };
	hf_power_reading b = { .mono_ns = 3000000000ull, .energy_j = 30 };
	hf_power_window w;
	hf_power_window_of(&a, &b, &w);
	cr_assert_float_eq(w.joules, 20, EPS);
	cr_assert_float_eq(w.seconds, 2, EPS);
	cr_assert_float_eq(w.watts, 10, EPS);
	hf_power_window_of(&b, &a, &w); /* reversed: nothing, never negative */
	cr_assert_float_eq(w.joules, 0, EPS);
	cr_assert_float_eq(w.seconds, 0, EPS);
	cr_assert_float_eq(w.watts, 0, EPS);
}

Test(power, sampler_runs_between_reads)
{
	/* Nobody reads: the sampler alone asks for the utilisation every interval. */
	util_script s;
	atomic_init(&s.u, 1.0);
	atomic_init(&s.calls, 0);
	hf_power_opts o = { .kind = HF_POWER_ESTIMATE, .idle_w = 1, .full_w = 2,
			    .utilisation = scripted_util, .utilisation_ctx = &s,
			    .sample_interval_ms = 5 };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	int at_open = atomic_load(&s.calls);
	uint64_t deadline = hf_mono_ms() + 20000;
	while (atomic_load(&s.calls) < at_open + 3) {
		cr_assert_lt(hf_mono_ms(), deadline, "the sampler never sampled");
		hf_sleep_ms(5);
	}
	/* and keeps watts over its last interval: 2 W at utilisation 1 */
	hf_power_reading r;
	hf_power_read(p, &r);
	cr_assert_float_eq(r.watts, 2.0, 1e-9, "%.9f W", r.watts);
	hf_power_free(p); /* joins the sampler (ASan would see it touch the freed source) */
}
