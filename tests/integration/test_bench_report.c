/* Integration tests for hashflop-bench's energy measurement and `hashflop-bench report`: the
 * real program, short windows (this tests the tool, not the speed):
 * - `all` with an estimated power source, then `report` on its run document: every window
 *   labelled estimated with its source, rate and efficiency from the same window, a time
 *   series, report.md with the estimated banner and a table row for every implementation and
 *   shape, and PNG files that are PNGs (gnuplot, as the quick start installs it);
 * - the report without gnuplot: still written, saying why the plots were skipped;
 * - a constructed hwmon tree (one power1_input): energy = its watts * each window's own
 *   measured seconds;
 * - --power-limits refused without NVML; bad inputs to report refused or escaped.
 * gemm and infer run on the test's OpenCL device (HF_TEST_CL_DEVICE, else auto: PoCL in CI).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_testproc.h"

static char *dir;

static const char *test_device(void)
{
	const char *d = getenv("HF_TEST_CL_DEVICE");
	return d && *d ? d : "auto";
}

static void setup(void)
{
	dir = hf_test_tmpdir("bench-report");
	cr_assert_not_null(dir);
	/* The program cache in the build tree (as POCL_CACHE_DIR is): compiled once per build. */
	char cache[4096];
	snprintf(cache, sizeof cache, "%s/bench-cache", hf_test_build_root());
	setenv("HASHFLOP_CACHE_DIR", cache, 1);
}

static void teardown(void)
{
	free(dir);
}

/* `all` compiles its OpenCL programs once per build tree (minutes under the sanitizers on 2
 * cores with cold caches), then runs in seconds. */
TestSuite(bench_report, .init = setup, .fini = teardown, .timeout = 1100);

/* Runs hashflop-bench with args (NULL-terminated); returns the exit status and the whole
 * output (stdout and stderr) in *out. */
static int bench(char **out, const char *log_name, const char *const *args)
{
	char exe[4096], log[4096];
	const char *argv[48] = { exe };
	size_t n = 1;
	snprintf(exe, sizeof exe, "%s/benchmarks/hashflop-bench", hf_test_build_root());
	snprintf(log, sizeof log, "%s/%s.log", dir, log_name);
	for (size_t i = 0; args[i] && n < 47; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	hf_testproc *p = hf_testproc_start(argv, log);
	cr_assert_not_null(p, "cannot start %s", exe);
	int st = 0;
	cr_assert(hf_testproc_wait_exit(p, 1000000, &st), "hashflop-bench %s did not exit", args[0]);
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	cr_assert_not_null(*out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static json_t *load(const char *path)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);
	cr_assert_not_null(j, "%s: %s", path, e.text);
	return j;
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	cr_assert_not_null(s, "no string \"%s\"", k);
	return s;
}

static double num(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	cr_assert(json_is_number(v), "no number \"%s\"", k);
	return json_number_value(v);
}

static bool is_png(const char *path)
{
	static const unsigned char magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char b[8];
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	size_t n = fread(b, 1, sizeof b, f);
	fclose(f);
	return n == sizeof b && memcmp(b, magic, sizeof b) == 0;
}

static bool have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char buf[8192], exe[4096];
	snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(exe, sizeof exe, "%s/gnuplot", d);
		if (access(exe, X_OK) == 0)
			return true;
	}
	return false;
}

/* Every window of a run document: labelled with the run's source, rate and efficiency from
 * the same window (rate = units * scale / seconds, per_j = units * scale / joules). */
static void check_windows(const json_t *doc, const char *source, bool estimated)
{
	const json_t *ws = json_object_get(doc, "windows"), *w;
	size_t i;
	cr_assert(json_array_size(ws) > 0, "no windows");
	json_array_foreach(ws, i, w) {
		cr_assert_str_eq(str(w, "source"), source);
		cr_assert_eq(json_is_true(json_object_get(w, "estimated")), estimated);
		double s = num(w, "seconds"), j = num(w, "joules"), rate = num(w, "rate");
		double per_j = num(w, "per_j");
		cr_assert(s > 0 && j > 0 && rate > 0 && per_j > 0, "window %zu: s %g J %g rate %g "
			  "per_j %g", i, s, j, rate, per_j);
		cr_assert(fabs(per_j * j - rate * s) <= 1e-6 * rate * s, "window %zu: rate %g over "
			  "%g s and %g per J over %g J are not the same work", i, rate, s, per_j, j);
		cr_assert(fabs(num(w, "watts") * s - j) <= 1e-6 * j, "window %zu: W * s != J", i);
		cr_assert(num(w, "t1") > num(w, "t0"));
	}
}

/* The report's table row of a window: "| shape | impl" (shape "-" when empty). */
static void check_row(const char *md, const json_t *w)
{
	char rowp[256];
	const char *shape = str(w, "shape");
	snprintf(rowp, sizeof rowp, "| %s | %s", shape[0] ? shape : "-", str(w, "impl"));
	cr_assert_not_null(strstr(md, rowp), "report.md has no row \"%s\"", rowp);
}

Test(bench_report, all_then_report_with_estimated_power)
{
	char json[4096], out_dir[4096], path[4096], *out;
	snprintf(json, sizeof json, "%s/all.json", dir);
	const char *args[] = { "all", "--power-source", "estimate", "--seconds", "0.3", "--warmup",
			       "0.05", "--device", test_device(), "--shapes", "64x48x32,1x256x128",
			       "--batches", "1,4", "--no-torch", "--no-unfused", "--json", json, NULL };
	int rc = bench(&out, "all", args);
	cr_assert_eq(rc, 0, "hashflop-bench all: exit %d:\n%s", rc, out);
	cr_assert_not_null(strstr(out, "power: estimate (boundary estimate, ESTIMATED"), "%s", out);
	cr_assert_not_null(strstr(out, "cpuminer-opt is not run"), "%s", out);
	free(out);

	json_t *doc = load(json);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hashflop_bench")), 1);
	cr_assert_str_eq(str(doc, "command"), "all");
	const json_t *pw = json_object_get(doc, "power");
	cr_assert_str_eq(str(pw, "source"), "estimate");
	cr_assert_str_eq(str(pw, "boundary"), "estimate");
	cr_assert(json_is_true(json_object_get(pw, "estimated")));
	const json_t *secs = json_object_get(doc, "sections");
	cr_assert(json_is_object(json_object_get(secs, "hash")));
	cr_assert(json_is_object(json_object_get(secs, "gemm")));
	cr_assert(json_is_object(json_object_get(secs, "infer")));
	check_windows(doc, "estimate", true);
	/* each section has our implementation and its references */
	const char *want[][2] = { { "hash", "ref" }, { "gemm", "ours" }, { "gemm", "openblas" },
				  { "gemm", "openblas-1t" }, { "gemm", "openblas-sgemv" },
				  { "infer", "ours" } };
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
		bool found = false;
		size_t i;
		const json_t *w;
		json_array_foreach(json_object_get(doc, "windows"), i, w)
			found |= strcmp(str(w, "section"), want[k][0]) == 0 &&
				 strcmp(str(w, "impl"), want[k][1]) == 0;
		cr_assert(found, "no %s window of %s", want[k][0], want[k][1]);
	}
	/* the section results carry the same windows with their source */
	const json_t *r0 = NULL, *x;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(secs, "hash"), "results"), i, x)
		if (!r0 && json_is_true(json_object_get(x, "ran")))
			r0 = x;
	cr_assert_not_null(r0, "no hash result ran");
	cr_assert_str_eq(str(json_object_get(r0, "energy"), "source"), "estimate");
	/* the time series: increasing t, watts > 0 */
	const json_t *series = json_object_get(doc, "series"), *p;
	double last = -1;
	cr_assert(json_array_size(series) >= 3, "series of %zu samples", json_array_size(series));
	json_array_foreach(series, i, p) {
		cr_assert(num(p, "t") > last);
		last = num(p, "t");
		cr_assert(num(p, "watts") > 0);
	}

	snprintf(out_dir, sizeof out_dir, "%s/report", dir);
	const char *rargs[] = { "report", json, "--out", out_dir, NULL };
	rc = bench(&out, "report", rargs);
	cr_assert_eq(rc, 0, "hashflop-bench report: exit %d:\n%s", rc, out);
	free(out);
	snprintf(path, sizeof path, "%s/report.md", out_dir);
	char *md = hf_test_read_file(path);
	cr_assert_not_null(md, "no %s", path);
	cr_assert_not_null(strstr(md, "**POWER IS ESTIMATED in run1**"), "%s", md);
	cr_assert_not_null(strstr(md, "## SHA-256d scanners"), "%s", md);
	cr_assert_not_null(strstr(md, "## SGEMM"), "%s", md);
	cr_assert_not_null(strstr(md, "## Inference"), "%s", md);
	cr_assert_not_null(strstr(md, "| run1 GFLOP/s | run1 GFLOP/J | run1 W | run1 x openblas |"),
			   "%s", md);
	json_array_foreach(json_object_get(doc, "windows"), i, p)
		check_row(md, p);
	if (!have_gnuplot()) {
		cr_assert_not_null(strstr(md, "Plots skipped"), "%s", md);
		free(md);
		json_decref(doc);
		cr_skip_test("gnuplot is not installed (gnuplot-nox): the PNGs were NOT tested");
	}
	const char *pngs[] = { "hash-rate.png", "hash-efficiency.png", "gemm-rate.png",
			       "gemm-efficiency.png", "infer-rate.png", "infer-efficiency.png",
			       "run1-power.png", "run1-hash-series.png", "run1-gemm-series.png",
			       "run1-infer-series.png" };
	for (size_t k = 0; k < sizeof pngs / sizeof pngs[0]; k++) {
		snprintf(path, sizeof path, "%s/%s", out_dir, pngs[k]);
		cr_assert(is_png(path), "%s is missing or not a PNG", path);
		char link[256];
		snprintf(link, sizeof link, "](%s)", pngs[k]);
		cr_assert_not_null(strstr(md, link), "report.md does not show %s", pngs[k]);
	}
	cr_assert_null(strstr(md, "Plots skipped"), "%s", md);
	free(md);
	json_decref(doc);
}

/* A small run of hash alone (the reference implementation), its document in json. */
static void hash_run(const char *json, const char *const *power_args, const char *log)
{
	const char *args[32] = { "hash", "--impl", "ref", "--seconds", "0.4", "--warmup", "0.05",
				 "--json", json };
	size_t n = 9;
	for (size_t i = 0; power_args[i]; i++)
		args[n++] = power_args[i];
	args[n] = NULL;
	char *out;
	int rc = bench(&out, log, args);
	cr_assert_eq(rc, 0, "hashflop-bench hash: exit %d:\n%s", rc, out);
	free(out);
}

Test(bench_report, report_without_gnuplot_is_still_written)
{
	char json[4096], out_dir[4096], path[4096], *out;
	snprintf(json, sizeof json, "%s/hash.json", dir);
	const char *pa[] = { "--power-source", "estimate", NULL };
	hash_run(json, pa, "hash");
	snprintf(out_dir, sizeof out_dir, "%s/nognuplot", dir);
	const char *rargs[] = { "report", json, json, "--out", out_dir, "--gnuplot",
				"/nonexistent/gnuplot", NULL };
	int rc = bench(&out, "report-nognuplot", rargs);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
	cr_assert_not_null(strstr(out, "plots skipped"), "%s", out);
	free(out);
	snprintf(path, sizeof path, "%s/report.md", out_dir);
	char *md = hf_test_read_file(path);
	cr_assert_not_null(md);
	cr_assert_not_null(strstr(md, "**Plots skipped:** gnuplot (`/nonexistent/gnuplot`) was not "
				      "found"), "%s", md);
	cr_assert_not_null(strstr(md, "| - | ref (reference) |"), "%s", md);
	cr_assert_not_null(strstr(md, "POWER IS ESTIMATED in run2"), "two runs side by side: %s",
			   md);
	cr_assert_null(strstr(md, "!["), "%s", md);
	free(md);
	snprintf(path, sizeof path, "%s/hash-rate.png", out_dir);
	cr_assert_neq(access(path, F_OK), 0, "%s exists without gnuplot", path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

Test(bench_report, hwmon_energy_is_watts_times_the_window)
{
	char root[4096], chip[4096], path[4096], json[4096];
	snprintf(root, sizeof root, "%s/sys", dir);
	snprintf(chip, sizeof chip, "%s/class/hwmon/hwmon0", root);
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "mkdir -p '%s'", chip);
	cr_assert_eq(system(cmd), 0);
	snprintf(path, sizeof path, "%s/name", chip);
	write_file(path, "testchip\n");
	snprintf(path, sizeof path, "%s/power1_input", chip);
	write_file(path, "25000000\n"); /* 25 W, in microwatts */
	snprintf(json, sizeof json, "%s/hwmon.json", dir);
	const char *pa[] = { "--power-source", "hwmon", "--sysfs-root", root, NULL };
	hash_run(json, pa, "hash-hwmon");
	json_t *doc = load(json);
	const json_t *pw = json_object_get(doc, "power");
	cr_assert_str_eq(str(pw, "source"), "hwmon");
	cr_assert_str_eq(str(pw, "boundary"), "chip");
	cr_assert(json_is_false(json_object_get(pw, "estimated")));
	cr_assert_not_null(strstr(str(pw, "detail"), "testchip"), "%s", str(pw, "detail"));
	check_windows(doc, "hwmon", false);
	const json_t *w;
	size_t i;
	json_array_foreach(json_object_get(doc, "windows"), i, w) {
		/* A constant 25 W integrated over the window the run measured itself: exact up to
		 * the rounding of its own figures (1e-6 of them). */
		double s = num(w, "seconds"), j = num(w, "joules");
		cr_assert(fabs(j - 25.0 * s) <= 1e-6 * 25.0 * s + 1e-9, "window %zu: %g J over %g s, "
			  "expected %g J", i, j, s, 25.0 * s);
		cr_assert(fabs(num(w, "watts") - 25.0) <= 25e-6, "window %zu: %g W", i,
			  num(w, "watts"));
	}
	json_array_foreach(json_object_get(doc, "series"), i, w)
		cr_assert(fabs(num(w, "watts") - 25.0) <= 1e-3, "sample %zu: %g W", i,
			  num(w, "watts"));
	/* the legacy stdout document carries the same source */
	char *out;
	const char *args[] = { "hash", "--impl", "ref", "--seconds", "0.2", "--warmup", "0",
			       "--power-source", "hwmon", "--sysfs-root", root, "--json", NULL };
	cr_assert_eq(bench(&out, "hash-legacy", args), 0, "%s", out);
	const char *brace = strstr(out, "{\n");
	cr_assert_not_null(brace, "%s", out);
	json_error_t e;
	json_t *legacy = json_loads(brace, JSON_DISABLE_EOF_CHECK, &e);
	cr_assert_not_null(legacy, "%s: %s", e.text, out);
	const json_t *r0 = json_array_get(json_object_get(legacy, "results"), 0);
	cr_assert_str_eq(str(json_object_get(r0, "energy"), "source"), "hwmon");
	cr_assert(num(r0, "mh_per_j") > 0);
	json_decref(legacy);
	free(out);
	json_decref(doc);
}

Test(bench_report, power_limits_need_nvml)
{
	char *out;
	const char *est[] = { "hash", "--impl", "ref", "--seconds", "0.1", "--power-source",
			      "estimate", "--power-limits", "100,200", NULL };
	int rc = bench(&out, "limits-estimate", est);
	cr_assert_eq(rc, 2, "exit %d:\n%s", rc, out);
	cr_assert_not_null(strstr(out, "--power-limits needs a GPU power limit that can be set "
				       "(NVML, as root"), "%s", out);
	cr_assert_not_null(strstr(out, "this run's power source is estimate"), "%s", out);
	cr_assert_null(strstr(out, "MH/s wall"), "it ran anyway: %s", out);
	free(out);
	const char *nvml[] = { "hash", "--impl", "ref", "--seconds", "0.1", "--power-source",
			       "nvml", "--nvml-library", "/nonexistent/libnvidia-ml.so.1",
			       "--power-limits", "100", NULL };
	rc = bench(&out, "limits-nvml", nvml);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert_not_null(strstr(out, "power source nvml"), "%s", out);
	cr_assert_not_null(strstr(out, "/nonexistent/libnvidia-ml.so.1"), "%s", out);
	free(out);
	const char *bad[] = { "hash", "--power-limits", "100,abc", NULL };
	rc = bench(&out, "limits-bad", bad);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert_not_null(strstr(out, "--power-limits: expected watts"), "%s", out);
	free(out);
	const char *src[] = { "hash", "--power-source", "solar", NULL };
	rc = bench(&out, "source-bad", src);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert_not_null(strstr(out, "--power-source: expected auto, rapl, hwmon, nvml or "
				       "estimate, got \"solar\""), "%s", out);
	free(out);
}

Test(bench_report, report_refuses_or_escapes_bad_documents)
{
	char path[4096], out_dir[4096], *out;
	snprintf(path, sizeof path, "%s/empty.json", dir);
	write_file(path, "{}");
	snprintf(out_dir, sizeof out_dir, "%s/bad", dir);
	const char *a1[] = { "report", path, "--out", out_dir, NULL };
	cr_assert_eq(bench(&out, "report-empty", a1), 1, "%s", out);
	cr_assert_not_null(strstr(out, "not a hashflop-bench run document"), "%s", out);
	free(out);
	const char *a2[] = { "report", "--out", out_dir, NULL };
	cr_assert_eq(bench(&out, "report-none", a2), 2, "%s", out);
	free(out);
	/* a document with a table-breaking implementation name and a section that would be a
	 * path: the name is escaped, the window left out */
	snprintf(path, sizeof path, "%s/odd.json", dir);
	write_file(path, "{\"hashflop_bench\": 1, \"power\": {\"source\": \"estimate\", "
			 "\"estimated\": true}, \"windows\": ["
			 "{\"section\": \"x\", \"impl\": \"a|b\\nc\", \"shape\": \"s\", "
			 "\"rate\": 1, \"per_j\": 2, \"watts\": 3},"
			 "{\"section\": \"../../up\", \"impl\": \"z\", \"rate\": 1}]}");
	const char *a3[] = { "report", path, "--out", out_dir, "--gnuplot", "/nonexistent/gp",
			     NULL };
	cr_assert_eq(bench(&out, "report-odd", a3), 0, "%s", out);
	cr_assert_not_null(strstr(out, "left out"), "%s", out);
	free(out);
	snprintf(path, sizeof path, "%s/report.md", out_dir);
	char *md = hf_test_read_file(path);
	cr_assert_not_null(md);
	cr_assert_not_null(strstr(md, "| s | a\\|b?c |"), "%s", md);
	cr_assert_null(strstr(md, "../../up"), "%s", md);
	free(md);
}
