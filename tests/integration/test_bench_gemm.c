/* Integration tests for `hashflop-bench gemm`: the real program on the test's OpenCL device
 * (HF_TEST_CL_DEVICE, else "auto": PoCL in CI) and OpenBLAS, read through its --json output:
 * results checked against OpenBLAS, forced kernel parameters, the share of a given peak, bad
 * parameters refused, and --tune storing a winner that the next run uses. Shapes are small:
 * this tests the tool, not the speed.
 * What the engine chooses depends on the device type (hf_gemm.h: TILED on GPUs; DIRECT, GEMV or
 * PACKED by shape elsewhere), which the real `hashflopctl devices` reports. With no OpenCL
 * platform or device at all the tests are reported skipped; anything else fails them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hf_testproc.h"

static char *dir;

/* The device under test: HF_TEST_CL_DEVICE, else "auto" (what hashflop-bench picks itself). */
static const char *test_device(void)
{
	const char *d = getenv("HF_TEST_CL_DEVICE");
	return d && *d ? d : "auto";
}

/* Runs hashflopctl devices with args; returns its exit status and its stdout (malloc'ed). */
static int ctl_devices(const char *args, char **out)
{
	char cmd[4600], buf[4096];
	size_t n = 0, got;
	snprintf(cmd, sizeof cmd, "'%s/runtime/ctl/hashflopctl' devices %s 2>&1",
		 hf_test_build_root(), args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "%s", cmd);
	*out = NULL;
	while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
		*out = realloc(*out, n + got + 1);
		cr_assert_not_null(*out);
		memcpy(*out + n, buf, got);
		n += got;
	}
	int st = pclose(p);
	if (!*out)
		*out = strdup("");
	else
		(*out)[n] = '\0';
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Whether the device under test is a GPU, as the real hashflopctl reports it; skips the test
 * when the machine has no OpenCL platform or device at all. */
static bool device_is_gpu(void)
{
	char *out, args[512];
	cr_assert_eq(ctl_devices("--json", &out), 0, "hashflopctl devices (built?): %s", out);
	json_error_t e;
	json_t *all = json_loads(out, 0, &e);
	cr_assert(json_is_array(all), "hashflopctl devices --json: %s", out);
	size_t n = json_array_size(all);
	json_decref(all);
	free(out);
	if (n == 0)
		cr_skip_test("no OpenCL platform or device on this machine: hashflop-bench gemm was "
			     "NOT tested");
	snprintf(args, sizeof args, "--select '%s' --json", test_device());
	cr_assert_eq(ctl_devices(args, &out), 0, "device \"%s\": %s", test_device(), out);
	json_t *d = json_loads(out, 0, &e);
	cr_assert(json_is_boolean(json_object_get(d, "gpu")), "no \"gpu\" in %s", out);
	bool gpu = json_is_true(json_object_get(d, "gpu"));
	json_decref(d);
	free(out);
	return gpu;
}

static void setup(void)
{
	dir = hf_test_tmpdir("bench-gemm");
	cr_assert_not_null(dir);
}

static void teardown(void)
{
	free(dir);
}

TestSuite(bench_gemm, .init = setup, .fini = teardown);

/* Runs hashflop-bench gemm with args (NULL-terminated, after "gemm"), the cache in dir; returns
 * the exit status and the whole output (stdout and stderr) in *out. */
static int bench(char **out, const char *log_name, const char *const *args)
{
	char exe[4096], log[4096], cache[4096];
	const char *argv[32] = { exe, "gemm", "--cache-dir", cache, "--device", test_device() };
	size_t n = 6;
	snprintf(exe, sizeof exe, "%s/benchmarks/hashflop-bench", hf_test_build_root());
	snprintf(log, sizeof log, "%s/%s.log", dir, log_name);
	snprintf(cache, sizeof cache, "%s/cache", dir);
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	hf_testproc *p = hf_testproc_start(argv, log);
	cr_assert_not_null(p, "cannot start %s", exe);
	int st = 0;
	cr_assert(hf_testproc_wait_exit(p, 240000, &st), "hashflop-bench gemm did not exit");
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	cr_assert_not_null(*out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The JSON document in the output: it starts at the first line that opens an object (the
 * OpenCL compiler may have written lines to stderr before it). */
static json_t *json_of(const char *out)
{
	const char *p = out;
	while (p && *p != '{')
		p = (p = strchr(p, '\n')) ? p + 1 : NULL;
	cr_assert_not_null(p, "no JSON in: %s", out);
	json_error_t e;
	json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &e);
	cr_assert_not_null(j, "bad JSON (%s) in: %s", e.text, out);
	return j;
}

static const json_t *result(const json_t *doc, size_t i)
{
	const json_t *r = json_array_get(json_object_get(doc, "results"), i);
	cr_assert_not_null(r);
	return r;
}

/* The kernel family names the bench reports are the engine's automatic choice for the device:
 * on a GPU TILED for every shape; elsewhere PACKED for 70x33x45 (M*N*K over 32768, M > 48) and
 * GEMV for M = 1. */
Test(bench_gemm, json_results_are_checked_against_openblas)
{
	bool gpu = device_is_gpu();
	const char *fam0 = gpu ? "tiled " : "packed ", *fam1 = gpu ? "tiled " : "gemv ";
	char *out;
	const char *args[] = { "-s", "70x33x45,1x400x256", "-r", "1", "--budget", "0.1",
			       "--no-clblast", "--no-first-call", "--json", "--peak", "1000", NULL };
	cr_assert_eq(bench(&out, "json", args), 0, "%s", out);
	json_t *doc = json_of(out);
	cr_assert_eq(json_array_size(json_object_get(doc, "results")), 2);
	cr_assert_str_neq(json_string_value(json_object_get(json_object_get(doc, "openblas"),
							    "core")), "");
	for (size_t i = 0; i < 2; i++) {
		const json_t *r = result(doc, i);
		double ours = json_real_value(json_object_get(r, "ours_gflops"));
		cr_assert(json_is_true(json_object_get(r, "ok")), "%s", out);
		cr_assert_gt(ours, 0.0);
		cr_assert_gt(json_real_value(json_object_get(r, "openblas_gflops")), 0.0);
		cr_assert_lt(json_real_value(json_object_get(r, "max_abs_err")), 1e-3);
		cr_assert_float_eq(json_real_value(json_object_get(r, "fraction_of_peak")),
				   ours / 1000.0, 1e-9);
	}
	cr_assert_eq(json_integer_value(json_object_get(result(doc, 0), "m")), 70);
	for (size_t i = 0; i < 2; i++) {
		const char *k = json_string_value(json_object_get(result(doc, i), "kernel"));
		const char *want = i ? fam1 : fam0;
		cr_assert(k && strncmp(k, want, strlen(want)) == 0, "result %zu: kernel \"%s\" on a %s, "
			  "expected \"%s...\"", i, k, gpu ? "GPU" : "non-GPU device", want);
	}
	cr_assert_gt(json_real_value(json_object_get(result(doc, 1), "openblas_sgemv_gflops")),
		     0.0);
	json_decref(doc);
	free(out);
}

Test(bench_gemm, forced_kernel_parameters_run_and_bad_ones_are_refused)
{
	device_is_gpu(); /* skips without any device */
	char *out;
	const char *tiled[] = { "-s", "37x21x29", "-r", "1", "--budget", "0.1", "--no-clblast",
				"--no-first-call", "--json", "--trans-b", "--kernel",
				"tiled lx=4,ly=4 wm=2 wn=3 kc=8", NULL };
	cr_assert_eq(bench(&out, "tiled", tiled), 0, "%s", out);
	json_t *doc = json_of(out);
	cr_assert_str_eq(json_string_value(json_object_get(result(doc, 0), "kernel")),
			 "tiled lx=4 ly=4 wm=2 wn=3 kc=8 vw=1");
	cr_assert(json_is_true(json_object_get(result(doc, 0), "ok")), "%s", out);
	cr_assert(json_is_true(json_object_get(doc, "trans_b")));
	json_decref(doc);
	free(out);

	const char *unknown[] = { "--kernel", "tiled lx=4 foo=1", NULL };
	cr_assert_eq(bench(&out, "unknown", unknown), 2, "%s", out);
	cr_assert_not_null(strstr(out, "unknown field \"foo\""), "%s", out);
	free(out);
	const char *range[] = { "--kernel", "packed mr=99", NULL };
	cr_assert_eq(bench(&out, "range", range), 2, "%s", out);
	cr_assert_not_null(strstr(out, "mr must be 0-16"), "%s", out);
	free(out);
	/* Valid syntax no device takes (over the family's cap of 1024 work-items, whatever this
	 * device's own limit): the run reports it, no crash, exit 1. */
	const char *big[] = { "-s", "16x16x16", "-r", "1", "--no-clblast", "--no-first-call",
			      "--kernel", "tiled lx=64 ly=32", NULL };
	cr_assert_eq(bench(&out, "big", big), 1, "%s", out);
	cr_assert_not_null(strstr(out, "lx*ly <= 1024"), "%s", out);
	free(out);
}

/* 8x8x8 is in the engine's "direct" class on CPUs and "tiled-small" (M <= 48) on GPUs. */
Test(bench_gemm, tune_stores_a_winner_the_next_run_uses)
{
	const char *cls = device_is_gpu() ? "tiled-small" : "direct";
	char *out, path[4200], want[64];
	const char *tune[] = { "--tune", "-s", "8x8x8", "-r", "1", "--budget", "0.1", NULL };
	cr_assert_eq(bench(&out, "tune", tune), 0, "%s", out);
	snprintf(want, sizeof want, "(class %s,", cls);
	cr_assert_not_null(strstr(out, want), "\"%s\" expected in: %s", want, out);
	snprintf(want, sizeof want, "winner for %s:", cls);
	cr_assert_not_null(strstr(out, want), "\"%s\" expected in: %s", want, out);
	free(out);
	snprintf(path, sizeof path, "%s/cache/gemm-tuning.json", dir);
	char *db = hf_test_read_file(path);
	cr_assert_not_null(db, "no %s", path);
	snprintf(want, sizeof want, "|%s\"", cls);
	cr_assert_not_null(strstr(db, want), "\"%s\" expected in: %s", want, db);
	free(db);

	const char *run[] = { "-s", "8x8x8", "-r", "1", "--budget", "0.1", "--no-clblast",
			      "--no-first-call", "--json", NULL };
	cr_assert_eq(bench(&out, "tuned", run), 0, "%s", out);
	json_t *doc = json_of(out);
	cr_assert(json_is_true(json_object_get(result(doc, 0), "tuned")), "%s", out);
	cr_assert(json_is_true(json_object_get(result(doc, 0), "ok")), "%s", out);
	json_decref(doc);
	free(out);
}
