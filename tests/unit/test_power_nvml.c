/* Unit tests for hf_power's NVML backend on a fake libnvidia-ml.so.1 built with the tests
 * (fake_nvml/fake_nvml.c), loaded by hf_power_open through dlopen with its full path, as the
 * real library is: total energy, the power-only fallback, PCI bus id matching, init and load
 * failures, read failures after open, power limits. The test scripts the fake through
 * fake_nvml_* found with dlsym on its own handle to the same library. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "fake_nvml.h"
#include "hf_power.h"
#include "power_testutil.h"

#define EPS 1e-9

static void *lib;
static struct {
	fake_nvml_reset_fn reset;
	fake_nvml_set_init_fn set_init;
	fake_nvml_add_gpu_fn add_gpu;
	fake_nvml_set_energy_fn set_energy;
	fake_nvml_set_power_fn set_power;
	fake_nvml_set_limits_fn set_limits;
	fake_nvml_fail_reads_fn fail_reads;
	fake_nvml_get_fn get;
} fake;

static void *need(const char *name)
{
	void *s = dlsym(lib, name);
	cr_assert_not_null(s, "fake NVML has no %s", name);
	return s;
}

#define FAKE_SYM(field, name) \
	do { \
		void *s_ = need(name); \
		memcpy(&fake.field, &s_, sizeof(fake.field)); \
	} while (0)

static void setup(void)
{
	lib = dlopen(FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(lib, "cannot load the fake NVML %s: %s", FAKE_NVML_PATH, dlerror());
	FAKE_SYM(reset, "fake_nvml_reset");
	FAKE_SYM(set_init, "fake_nvml_set_init");
	FAKE_SYM(add_gpu, "fake_nvml_add_gpu");
	FAKE_SYM(set_energy, "fake_nvml_set_energy");
	FAKE_SYM(set_power, "fake_nvml_set_power");
	FAKE_SYM(set_limits, "fake_nvml_set_limits");
	FAKE_SYM(fail_reads, "fake_nvml_fail_reads");
	FAKE_SYM(get, "fake_nvml_get");
	fake.reset();
}

static void teardown(void)
{
	if (lib)
		dlclose(lib);
	lib = NULL;
	pt_cleanup();
}

TestSuite(power_nvml, .init = setup, .fini = teardown);

static int open_nvml(hf_power_kind kind, const char *bus, hf_power **p, hf_errbuf *eb)
{
	hf_power_opts o = { .kind = kind, .nvml_library = FAKE_NVML_PATH, .pci_bus_id = bus,
			    .sysfs_root = pt_root(), .sample_interval_ms = 10 };
	return hf_power_open(&o, p, eb);
}

static void two_h200(int energy_rc)
{
	cr_assert_eq(fake.add_gpu("NVIDIA H200", "00000000:19:00.0", energy_rc), 0);
	cr_assert_eq(fake.add_gpu("NVIDIA H200", "00000000:3B:00.0", energy_rc), 1);
	fake.set_energy(0, 1000);
	fake.set_energy(1, 5000);
}

Test(power_nvml, total_energy_counters)
{
	two_h200(FAKE_NVML_SUCCESS);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, NULL, &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_NVML);
	cr_assert_eq(hf_power_domain_count(p), 2);
	cr_assert_str_eq(hf_power_boundary(p), "board");
	cr_assert_str_eq(hf_power_detail(p),
			 "nvml GPU 0 NVIDIA H200 00000000:19:00.0 (total energy), "
			 "nvml GPU 1 NVIDIA H200 00000000:3B:00.0 (total energy)");
	hf_power_reading r0, r1;
	hf_power_read(p, &r0);
	cr_assert_float_eq(r0.energy_j, 0, EPS);
	fake.set_energy(0, 3500); /* +2.5 J */
	fake.set_energy(1, 5500); /* +0.5 J */
	hf_power_read(p, &r1);
	cr_assert_float_eq(r1.energy_j, 3.0, EPS, "%.9f", r1.energy_j);
	cr_assert_not(r1.estimated);
	cr_assert_not(r1.degraded);
	/* A counter that went backwards (driver reload) is a reset, counted from zero. */
	fake.set_energy(0, 250);
	hf_power_read(p, &r1);
	cr_assert_float_eq(r1.energy_j, 3.25, EPS, "%.9f", r1.energy_j);
	cr_assert_eq(fake.get("init"), 1);
	hf_power_free(p);
	cr_assert_eq(fake.get("shutdown"), 1, "nvmlShutdown once at free");
}

Test(power_nvml, power_only_fallback_integrates)
{
	two_h200(FAKE_NVML_ERROR_NOT_SUPPORTED);
	fake.set_power(0, 250000); /* 250 W */
	fake.set_power(1, 100000); /* 100 W */
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, NULL, &p, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(strstr(hf_power_detail(p), "00000000:19:00.0 (power, integrated)"),
			   "%s", hf_power_detail(p));
	hf_power_reading r0, r1;
	hf_power_window w;
	hf_power_read(p, &r0);
	pt_read_after(p, &r0, 150, &r1);
	hf_power_window_of(&r0, &r1, &w);
	cr_assert(pt_near(w.joules, 350.0 * w.seconds, 1e-9), "%.9f J over %.9f s", w.joules,
		  w.seconds);
	cr_assert_gt(fake.get("reads"), 4, "the sampler reads too");
	hf_power_free(p);
}

Test(power_nvml, pci_bus_id_match_either_form_and_case)
{
	two_h200(FAKE_NVML_SUCCESS);
	const char *forms[] = { "0000:3b:00.0", "00000000:3B:00.0", "3B:00.0", "0000:3B:00.0" };
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		hf_power *p = NULL;
		hf_errbuf eb;
		cr_assert_eq(open_nvml(HF_POWER_NVML, forms[i], &p, &eb), 0, "%s: %s", forms[i],
			     eb.msg);
		cr_assert_eq(hf_power_domain_count(p), 1);
		cr_assert_str_eq(hf_power_detail(p),
				 "nvml GPU 1 NVIDIA H200 00000000:3B:00.0 (total energy)");
		hf_power_reading r;
		fake.set_energy(0, 1000000); /* GPU 0: not ours */
		fake.set_energy(1, 5000 + 1000 * (i + 1));
		hf_power_read(p, &r);
		cr_assert_float_eq(r.energy_j, 1.0 * (double)(i + 1), EPS, "%s: %.9f", forms[i],
				   r.energy_j);
		fake.set_energy(1, 5000);
		hf_power_free(p);
	}
}

Test(power_nvml, auto_picks_the_named_gpu)
{
	two_h200(FAKE_NVML_SUCCESS);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_AUTO, "0000:19:00.0", &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_NVML);
	cr_assert_str_eq(hf_power_problems(p), "");
	hf_power_free(p);
}

Test(power_nvml, pci_bus_id_no_match)
{
	two_h200(FAKE_NVML_SUCCESS);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, "0000:99:00.0", &p, &eb), HF_ENOTFOUND);
	cr_assert_str_eq(eb.msg, "nvml: no GPU with PCI bus id 0000:99:00.0 (found: "
				 "00000000:19:00.0, 00000000:3B:00.0)");
	cr_assert_eq(fake.get("shutdown"), fake.get("init"), "shut down after a failed open");
	/* auto: passed over with the reason, the estimate on an empty sysfs tree */
	cr_assert_eq(open_nvml(HF_POWER_AUTO, "0000:99:00.0", &p, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_power_kind_of(p), HF_POWER_ESTIMATE);
	const char *why = hf_power_problems(p);
	cr_assert(strstr(why, "nvml: no GPU with PCI bus id 0000:99:00.0") == why, "%s", why);
	cr_assert_not_null(strstr(why, "; rapl: "), "%s", why);
	hf_power_free(p);
	/* Not a bus id at all. */
	cr_assert_eq(open_nvml(HF_POWER_NVML, "gpu0\n", &p, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "pci_bus_id \"gpu0?\" is not a PCI bus id"), "%s",
			   eb.msg);
}

Test(power_nvml, init_failure)
{
	two_h200(FAKE_NVML_SUCCESS);
	fake.set_init(FAKE_NVML_ERROR_DRIVER_NOT_LOADED);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, NULL, &p, &eb), HF_ENOTFOUND);
	cr_assert_str_eq(eb.msg, "nvml: nvmlInit_v2: Driver Not Loaded (NVML error 9)");
	cr_assert_eq(fake.get("init"), 1);
	cr_assert_eq(fake.get("shutdown"), 0, "no nvmlShutdown without a successful init");
}

Test(power_nvml, no_gpu)
{
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, NULL, &p, &eb), HF_ENOTFOUND);
	cr_assert_str_eq(eb.msg, "nvml: no GPU (nvmlDeviceGetCount_v2 says 0)");
}

Test(power_nvml, library_missing_or_not_nvml)
{
	hf_power_opts o = { .kind = HF_POWER_NVML, .nvml_library = "/nonexistent/libnvidia-ml.so.1" };
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EUNSUPPORTED);
	cr_assert(strstr(eb.msg, "nvml: cannot load /nonexistent/libnvidia-ml.so.1: ") == eb.msg,
		  "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "cannot open shared object file"), "dlerror's text: %s",
			   eb.msg);
	/* A real library that is not NVML. */
	o.nvml_library = "libm.so.6";
	cr_assert_eq(hf_power_open(&o, &p, &eb), HF_EUNSUPPORTED);
	cr_assert_str_eq(eb.msg, "nvml: libm.so.6 has no nvmlInit_v2");
}

Test(power_nvml, read_failure_after_open)
{
	two_h200(FAKE_NVML_SUCCESS);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, NULL, &p, &eb), 0, "%s", eb.msg);
	hf_power_reading r;
	fake.set_energy(0, 2000);
	fake.set_energy(1, 6000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 2.0, EPS);
	fake.fail_reads(0, FAKE_NVML_ERROR_GPU_IS_LOST);
	fake.set_energy(1, 7000);
	hf_power_read(p, &r);
	cr_assert_float_eq(r.energy_j, 3.0, EPS, "GPU 0 keeps its 1 J: %.9f", r.energy_j);
	cr_assert(r.degraded);
	cr_assert_geq(hf_power_read_errors(p), 1);
	cr_assert_not_null(strstr(hf_power_detail(p),
				  "; read failing since open: nvml GPU 0 NVIDIA H200 "
				  "00000000:19:00.0 (total energy): GPU 0: "
				  "nvmlDeviceGetTotalEnergyConsumption: GPU is lost (NVML error 15)"),
			   "%s", hf_power_detail(p));
	hf_power_free(p);
}

Test(power_nvml, limits)
{
	cr_assert_eq(fake.add_gpu("NVIDIA H100 80GB HBM3", "00000000:19:00.0", 0), 0);
	fake.set_limits(0, 200000, 700000, 700000, FAKE_NVML_SUCCESS);
	hf_power *p = NULL;
	hf_errbuf eb;
	cr_assert_eq(open_nvml(HF_POWER_NVML, "0000:19:00.0", &p, &eb), 0, "%s", eb.msg);
	double lo = 0, hi = 0, cur = 0;
	cr_assert_eq(hf_power_limit_get(p, &lo, &hi, &cur, &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(lo, 200, EPS);
	cr_assert_float_eq(hi, 700, EPS);
	cr_assert_float_eq(cur, 700, EPS);
	cr_assert_eq(hf_power_limit_set(p, 450.5, &eb), 0, "%s", eb.msg);
	cr_assert_eq(fake.get("limit0"), 450500);
	cr_assert_eq(hf_power_limit_get(p, &lo, &hi, &cur, &eb), 0);
	cr_assert_float_eq(cur, 450.5, EPS);
	/* Outside the board's range: refused before NVML is asked. */
	cr_assert_eq(hf_power_limit_set(p, 150, &eb), HF_ERANGE);
	cr_assert_str_eq(eb.msg, "nvml GPU 0: limit 150 W outside [200, 700] W");
	cr_assert_eq(hf_power_limit_set(p, 0, &eb), HF_ERANGE);
	cr_assert_eq(fake.get("limit0"), 450500);
	/* Not root: NVML_ERROR_NO_PERMISSION is a refusal. */
	fake.set_limits(0, 200000, 700000, 450500, FAKE_NVML_ERROR_NO_PERMISSION);
	cr_assert_eq(hf_power_limit_set(p, 300, &eb), HF_EREFUSED);
	cr_assert_str_eq(eb.msg, "nvml GPU 0: nvmlDeviceSetPowerManagementLimit: Insufficient "
				 "Permissions (NVML error 4) (power limits need root)");
	cr_assert_eq(fake.get("limit0"), 450500);
	/* A board without limits. */
	fake.set_limits(0, 0, 0, 0, FAKE_NVML_ERROR_NOT_SUPPORTED);
	cr_assert_eq(hf_power_limit_get(p, &lo, &hi, &cur, &eb), HF_EUNSUPPORTED);
	hf_power_free(p);
}
