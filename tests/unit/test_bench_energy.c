/* Unit tests for benchmarks/bench_energy.c (hashflop-bench's meter) on the fake
 * libnvidia-ml.so.1 the power tests build (tests/unit/fake_nvml), loaded through the same
 * dlopen path as the real one: a window's energy is the difference of the GPU's total-energy
 * counter around it; --power-limits sets each limit before its run, records it in the
 * windows, and restores the limit in force afterwards (also when a run fails); no permission
 * or a limit outside the board's range is refused before anything runs. Then
 * `hashflop-bench report` on the sweep's document: rows per limit and the efficiency against
 * power plot. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_energy.h"
#include "fake_nvml.h"

static void *lib;
static struct {
	fake_nvml_reset_fn reset;
	fake_nvml_add_gpu_fn add_gpu;
	fake_nvml_set_energy_fn set_energy;
	fake_nvml_set_power_fn set_power;
	fake_nvml_set_limits_fn set_limits;
	fake_nvml_get_fn get;
} fake;

static void sym(void *field, size_t size, const char *name)
{
	void *s = dlsym(lib, name);
	cr_assert_not_null(s, "fake NVML has no %s", name);
	memcpy(field, &s, size);
}

static void setup(void)
{
	lib = dlopen(FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(lib, "cannot load the fake NVML %s: %s", FAKE_NVML_PATH, dlerror());
	sym(&fake.reset, sizeof fake.reset, "fake_nvml_reset");
	sym(&fake.add_gpu, sizeof fake.add_gpu, "fake_nvml_add_gpu");
	sym(&fake.set_energy, sizeof fake.set_energy, "fake_nvml_set_energy");
	sym(&fake.set_power, sizeof fake.set_power, "fake_nvml_set_power");
	sym(&fake.set_limits, sizeof fake.set_limits, "fake_nvml_set_limits");
	sym(&fake.get, sizeof fake.get, "fake_nvml_get");
	fake.reset();
	cr_assert_eq(fake.add_gpu("NVIDIA H200", "00000000:19:00.0", FAKE_NVML_SUCCESS), 0);
	fake.set_energy(0, 1000000);
	fake.set_power(0, 400000);
}

static void teardown(void)
{
	if (lib)
		dlclose(lib);
	lib = NULL;
}

TestSuite(bench_energy, .init = setup, .fini = teardown);

static void nvml_common(hf_bench_common *c, const double *limits, size_t n)
{
	hf_bench_common_init(c);
	c->power_kind = HF_POWER_NVML;
	c->nvml_library = FAKE_NVML_PATH;
	c->sample_ms = 20;
	for (size_t i = 0; i < n; i++)
		c->limits[i] = limits[i];
	c->nlimits = n;
}

typedef struct body_ctx {
	long long limit_mw[4];
	unsigned calls, fail_at;
	unsigned long long energy_mj;
} body_ctx;

/* One window per run: 1e9 units (1 GFLOP), the GPU's counter moved by limit (mW) / 2 mJ in it. */
static int body(hf_bench_meter *m, void *ctx, json_t *section)
{
	body_ctx *b = ctx;
	b->limit_mw[b->calls] = fake.get("limit0");
	if (++b->calls == b->fail_at)
		return 7;
	hf_bench_phase ph = { .section = "gemm", .impl = "ours", .shape = "64x64x64",
			      .scale = 1e-9, .rate_unit = "GFLOP/s", .eff_unit = "GFLOP/J" };
	hf_bench_phase_warmup(m, &ph);
	hf_bench_phase_measure(m);
	b->energy_mj += (unsigned long long)(b->limit_mw[b->calls - 1] / 2);
	fake.set_energy(0, b->energy_mj);
	hf_bench_window w;
	hf_bench_phase_end(m, 1e9, &w);
	json_object_set_new(section, "joules", json_real(w.joules));
	return 0;
}

Test(bench_energy, sweep_sets_each_limit_records_it_and_restores)
{
	const double limits[] = { 300, 500 };
	hf_bench_common c;
	nvml_common(&c, limits, 2);
	fake.set_limits(0, 200000, 700000, 650000, FAKE_NVML_SUCCESS);
	hf_bench_meter *m = hf_bench_meter_open("test", &c, "00000000:19:00.0", stdout);
	cr_assert_not_null(m);
	cr_assert(!hf_bench_meter_estimated(m));
	body_ctx b = { .energy_mj = 1000000 };
	json_t *sections = json_object();
	cr_assert_eq(hf_bench_sweep("test", m, &c, "gemm", body, &b, sections), 0);
	cr_assert_eq(b.calls, 2);
	cr_assert_eq(b.limit_mw[0], 300000);
	cr_assert_eq(b.limit_mw[1], 500000);
	cr_assert_eq(fake.get("limit0"), 650000, "the limit in force is restored");
	const json_t *arr = json_object_get(sections, "gemm");
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_eq(json_number_value(json_object_get(json_array_get(arr, 1), "power_limit_w")),
		     500);
	/* energy = the counter's difference around each window, exactly (mJ) */
	cr_assert_float_eq(json_number_value(json_object_get(json_array_get(arr, 0), "joules")),
			   150.0, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(json_array_get(arr, 1), "joules")),
			   250.0, 1e-9);
	json_t *doc = hf_bench_meter_document(m, "gemm", sections);
	const json_t *ws = json_object_get(doc, "windows");
	cr_assert_eq(json_array_size(ws), 2);
	for (size_t i = 0; i < 2; i++) {
		const json_t *w = json_array_get(ws, i);
		cr_assert_str_eq(json_string_value(json_object_get(w, "source")), "nvml");
		cr_assert_str_eq(json_string_value(json_object_get(w, "boundary")), "board");
		cr_assert(json_is_false(json_object_get(w, "estimated")));
		cr_assert_eq(json_number_value(json_object_get(w, "power_limit_w")), limits[i]);
		double j = json_number_value(json_object_get(w, "joules"));
		cr_assert_float_eq(json_number_value(json_object_get(w, "per_j")), 1.0 / j, 1e-12);
	}
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "power"),
							   "pci_bus_id")), "00000000:19:00.0");

	/* the report: one row per limit, the efficiency against power plot */
	char tmpl[] = "/tmp/test-bench-energy-XXXXXX", path[4096], out[4096];
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(path, sizeof path, "%s/sweep.json", tmpl);
	snprintf(out, sizeof out, "%s/report", tmpl);
	cr_assert_eq(json_dump_file(doc, path, 0), 0);
	json_decref(doc);
	hf_bench_meter_free(m);
	pid_t pid = fork();
	if (pid == 0) {
		execl(HASHFLOP_BENCH, HASHFLOP_BENCH, "report", path, "--out", out, (char *)NULL);
		_exit(127);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "report: status %d", st);
	snprintf(path, sizeof path, "%s/report.md", out);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char md[65536];
	size_t n = fread(md, 1, sizeof md - 1, f);
	md[n] = '\0';
	fclose(f);
	cr_assert_not_null(strstr(md, "| 64x64x64 | ours @ 300 W |"), "%s", md);
	cr_assert_not_null(strstr(md, "| 64x64x64 | ours @ 500 W |"), "%s", md);
	cr_assert_not_null(strstr(md, "**Power measured in run1**"), "%s", md);
	cr_assert_null(strstr(md, "ESTIMATED"), "%s", md);
	if (!strstr(md, "Plots skipped"))
		cr_assert_not_null(strstr(md, "](gemm-power-limits.png)"), "%s", md);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
	cr_assert_eq(system(cmd), 0);
}

Test(bench_energy, sweep_restores_the_limit_when_a_run_fails)
{
	const double limits[] = { 300, 400, 500 };
	hf_bench_common c;
	nvml_common(&c, limits, 3);
	fake.set_limits(0, 200000, 700000, 650000, FAKE_NVML_SUCCESS);
	hf_bench_meter *m = hf_bench_meter_open("test", &c, NULL, stdout);
	cr_assert_not_null(m);
	body_ctx b = { .energy_mj = 1000000, .fail_at = 2 };
	json_t *sections = json_object();
	cr_assert_eq(hf_bench_sweep("test", m, &c, "gemm", body, &b, sections), 7);
	cr_assert_eq(b.calls, 2, "no run after the failed one");
	cr_assert_eq(fake.get("limit0"), 650000);
	json_decref(sections);
	hf_bench_meter_free(m);
}

Test(bench_energy, limits_refused_before_anything_runs)
{
	const double in_range[] = { 300 }, too_low[] = { 300, 100 };
	hf_bench_common c;
	nvml_common(&c, in_range, 1);
	fake.set_limits(0, 200000, 700000, 650000, FAKE_NVML_ERROR_NO_PERMISSION);
	cr_assert_null(hf_bench_meter_open("test", &c, NULL, stdout), "no permission: refused");
	cr_assert_eq(fake.get("limit0"), 650000);
	fake.set_limits(0, 200000, 700000, 650000, FAKE_NVML_SUCCESS);
	nvml_common(&c, too_low, 2);
	cr_assert_null(hf_bench_meter_open("test", &c, NULL, stdout), "100 W < 200 W: refused");
	cr_assert_eq(fake.get("limit0"), 650000);
	/* without --power-limits the same GPU opens and is measured */
	nvml_common(&c, NULL, 0);
	hf_bench_meter *m = hf_bench_meter_open("test", &c, NULL, stdout);
	cr_assert_not_null(m);
	cr_assert_str_eq(hf_bench_meter_label(m), "nvml (boundary board, measured)");
	hf_bench_meter_free(m);
}
