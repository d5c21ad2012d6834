/* Unit tests for hf_cl and hf_cl_env: discovery, selectors, device info against the driver's own
 * answers, program cache (hit across processes, option change, corrupt entry), build errors
 * with the compiler's log (also logs past 64 KiB and past the 1 MiB cap), and the environment
 * PoCL reads (set once before threads, never by hf_cl).
 * The device under test is HF_TEST_CL_DEVICE (an hf_cl selector), else "auto" (PoCL in CI).
 * With no OpenCL platform or device at all, the tests that need one are reported skipped with
 * the reason; any other failure (a named device that is missing, a driver error, a compile
 * error) fails them. Nothing assumes a device type, a device index or a size limit.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_cl.h"

static const char vadd_src[] =
	"__kernel void vadd(__global const float *a, __global const float *b,\n"
	"                   __global float *c) {\n"
	"  size_t i = get_global_id(0);\n"
	"  c[i] = a[i] + b[i] * SCALE;\n"
	"}\n";

/* PoCL's environment, set before Criterion (or anything else) starts a thread: a constructor
 * runs before main, and every test process inherits the runner's environment. */
__attribute__((constructor)) static void cl_env(void)
{
	hf_cl_env_init(NULL, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static char cache_dir[64];

static void make_cache(void)
{
	strcpy(cache_dir, "/tmp/hf-cl-test-XXXXXX");
	cr_assert_not_null(mkdtemp(cache_dir));
}

static void drop_cache(void)
{
	rm_rf(cache_dir);
}

/* The selector the tests open: HF_TEST_CL_DEVICE, else "auto". */
static const char *test_selector(void)
{
	const char *d = getenv("HF_TEST_CL_DEVICE");
	return d && *d ? d : "auto";
}

/* Skips the test when this machine has no OpenCL platform or device at all; fails on any
 * other error, including a chosen device that does not exist. Returns the device under test. */
static hf_cl_device_info require_device(void)
{
	hf_cl_device_info d;
	size_t n = 0;
	hf_errbuf eb;
	int r = hf_cl_list(NULL, 0, &n, &eb);
	cr_assert_eq(r, 0, "hf_cl_list: %s: %s", hf_strerror(r), eb.msg);
	if (n == 0)
		cr_skip_test("no OpenCL platform or device on this machine: hf_cl was NOT tested "
			     "(install pocl-opencl-icd)");
	r = hf_cl_find(test_selector(), &d, &eb);
	cr_assert_eq(r, 0, "device \"%s\": %s: %s", test_selector(), hf_strerror(r), eb.msg);
	return d;
}

/* Every device, at most 64 (asserted). */
static size_t list_all(hf_cl_device_info *devs)
{
	size_t n = 0;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_list(devs, 64, &n, &eb), 0, "%s", eb.msg);
	cr_assert_leq(n, 64, "more devices than this test reads");
	return n;
}

Test(cl, list_finds_devices_with_info)
{
	static hf_cl_device_info devs[64];
	require_device();
	size_t n = list_all(devs);
	cr_assert_geq(n, 1);
	unsigned last_p = 0, last_d = 0;
	for (size_t i = 0; i < n; i++) {
		const hf_cl_device_info *d = &devs[i];
		unsigned p, k;
		char tail;
		cr_assert_eq(sscanf(d->selector, "%u:%u%c", &p, &k, &tail), 2, "\"%s\"", d->selector);
		/* ICD order: platforms ascending, devices ascending within one. */
		cr_assert(i == 0 || p > last_p || (p == last_p && k == last_d + 1),
			  "%s after %u:%u", d->selector, last_p, last_d);
		last_p = p;
		last_d = k;
		cr_assert_neq(d->name[0], '\0', "%s", d->selector);
		cr_assert_neq(d->platform[0], '\0', "%s", d->selector);
		cr_assert_neq(d->driver_version[0], '\0', "%s", d->selector);
		cr_assert_geq(d->compute_units, 1, "%s", d->selector);
		cr_assert_gt(d->global_mem_bytes, 0, "%s", d->selector);
		cr_assert_gt(d->local_mem_bytes, 0, "%s", d->selector);
		cr_assert_gt(d->max_alloc_bytes, 0, "%s", d->selector);
		cr_assert_gt(d->max_work_group_size, 0, "%s", d->selector);
		cr_assert_eq(strncmp(d->version, "OpenCL ", 7), 0, "%s version \"%s\"", d->selector,
			     d->version);
	}
	size_t n2 = 0;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_list(NULL, 0, &n2, &eb), 0);
	cr_assert_eq(n2, n, "counting without storing finds the same devices");
	hf_cl_device_info one;
	cr_assert_eq(hf_cl_list(&one, 1, &n2, &eb), 0);
	cr_assert_eq(n2, n, "a short array still counts every device");
	cr_assert_str_eq(one.selector, devs[0].selector);
}

/* The fields hf_cl reports are the driver's answers for that device. */
Test(cl, device_info_matches_the_driver)
{
	hf_cl_device_info want = require_device();
	hf_cl *cl;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_open(want.selector, NULL, &cl, &eb), 0, "%s", eb.msg);
	const hf_cl_device_info *got = hf_cl_info(cl);
	cl_device_id dev = hf_cl_device(cl);
	cl_device_type type = 0;
	cl_ulong local = 0, global = 0;
	size_t wg = 0;
	cr_assert_eq(clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL), CL_SUCCESS);
	cr_assert_eq(clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL),
		     CL_SUCCESS);
	cr_assert_eq(clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL),
		     CL_SUCCESS);
	cr_assert_eq(clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL),
		     CL_SUCCESS);
	cr_assert_eq(got->is_gpu, (type & CL_DEVICE_TYPE_GPU) != 0);
	cr_assert_eq(got->local_mem_bytes, local);
	cr_assert_eq(got->global_mem_bytes, global);
	cr_assert_eq(got->max_work_group_size, wg);
	cr_assert_str_eq(got->selector, want.selector);
	cr_assert_str_eq(got->name, want.name);
	/* A PCI address only for a GPU, and then "" or in NVML's form DDDDDDDD:BB:DD.F. */
	if (!got->is_gpu) {
		cr_assert_str_eq(got->pci_bus_id, "", "a device that is not a GPU has no PCI address");
	} else if (got->pci_bus_id[0]) {
		unsigned dom, bus, dv, fn;
		char end;
		cr_assert_eq(strlen(got->pci_bus_id), 16, "\"%s\"", got->pci_bus_id);
		cr_assert_eq(sscanf(got->pci_bus_id, "%8x:%2x:%2x.%1x%c", &dom, &bus, &dv, &fn, &end), 4,
			     "\"%s\"", got->pci_bus_id);
		cr_assert_lt(dv, 32u);
	}
	cr_log_info("device %s: %s (%s), %s, %llu B local memory, work-groups up to %zu",
		    got->selector, got->name, got->platform, got->is_gpu ? "GPU" : "not a GPU",
		    (unsigned long long)local, wg);
	hf_cl_free(cl);
}

/* The expected answer of a vendor selector: the first device whose platform name or vendor
 * contains the word (case-insensitive), or NULL. */
static const hf_cl_device_info *first_of_vendor(const hf_cl_device_info *devs, size_t n,
						const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (strcasestr(devs[i].platform, word) || strcasestr(devs[i].platform_vendor, word))
			return &devs[i];
	return NULL;
}

Test(cl, selectors_resolve)
{
	static hf_cl_device_info devs[64];
	hf_cl_device_info d;
	hf_errbuf eb;
	require_device();
	size_t n = list_all(devs);
	const hf_cl_device_info *first = &devs[0], *gpu = NULL;
	for (size_t i = 0; i < n && !gpu; i++)
		if (devs[i].is_gpu)
			gpu = &devs[i];

	/* Every index selector finds its own device. */
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(hf_cl_find(devs[i].selector, &d, &eb), 0, "%s", eb.msg);
		cr_assert_str_eq(d.selector, devs[i].selector);
		cr_assert_str_eq(d.name, devs[i].name);
	}
	/* NULL, "" and "auto": the first GPU, else the first device. */
	const char *autos[] = { NULL, "", "auto" };
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(hf_cl_find(autos[i], &d, &eb), 0, "%s", eb.msg);
		cr_assert_str_eq(d.selector, gpu ? gpu->selector : first->selector);
	}

	/* A name substring, in another case, selects the first device whose name has it. */
	char word[8] = { 0 };
	for (size_t i = 0; i < 4 && first->name[i]; i++)
		word[i] = (char)(first->name[i] ^
				 0x20 * (first->name[i] >= 'a' && first->name[i] <= 'z'));
	cr_assert_eq(hf_cl_find(word, &d, &eb), 0, "\"%s\": %s", word, eb.msg);
	if (!first_of_vendor(devs, n, word)) /* unless the word is a vendor's: below */
		cr_assert_str_eq(d.selector, first->selector, "\"%s\"", word);

	/* Vendor words match the platform name or vendor, in any case. */
	static const char *const vendors[] = { "pocl", "nvidia", "amd", "intel" };
	for (size_t v = 0; v < 4; v++) {
		const hf_cl_device_info *want = first_of_vendor(devs, n, vendors[v]);
		char upper[8];
		for (size_t i = 0; i <= strlen(vendors[v]); i++)
			upper[i] = (char)toupper((unsigned char)vendors[v][i]);
		const char *forms[] = { vendors[v], upper };
		for (size_t f = 0; f < 2; f++) {
			int r = hf_cl_find(forms[f], &d, &eb);
			if (!want) {
				cr_assert_eq(r, HF_ENOTFOUND, "\"%s\" matched %s", forms[f], d.name);
				continue;
			}
			cr_assert_eq(r, 0, "\"%s\": %s", forms[f], eb.msg);
			cr_assert_str_eq(d.selector, want->selector, "\"%s\"", forms[f]);
		}
	}
}

Test(cl, bad_selectors_are_refused_with_the_device_list)
{
	static hf_cl_device_info devs[64];
	hf_cl_device_info d;
	hf_errbuf eb;
	size_t n = list_all(devs); /* no device needed: the list is then "none" */
	cr_assert_eq(hf_cl_find("no-such-device-xyz", &d, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "no-such-device-xyz"), "%s", eb.msg);
	/* Every device, as far as the message has room (the first always). */
	for (size_t i = 0; i < n && (i == 0 || strlen(eb.msg) < sizeof eb.msg - 1); i++)
		cr_assert_not_null(strstr(eb.msg, devs[i].selector), "the error lists %s: %s",
				   devs[i].selector, eb.msg);
	if (n == 0)
		cr_assert_not_null(strstr(eb.msg, "devices: none"), "%s", eb.msg);
	cr_assert_eq(hf_cl_find("999:0", &d, &eb), HF_ENOTFOUND);
	cr_assert_eq(hf_cl_find("0:x", &d, &eb), HF_EINVAL);
	cr_assert_eq(hf_cl_find("0:", &d, &eb), HF_EINVAL);
	cr_assert_eq(hf_cl_find("1001:0", &d, &eb), HF_EINVAL);
	hf_cl *cl = (hf_cl *)1;
	cr_assert_eq(hf_cl_open("no-such-device-xyz", NULL, &cl, &eb), HF_ENOTFOUND);
	cr_assert_null(cl);
	hf_cl_free(NULL);
}

Test(cl, open_gives_context_queue_and_info)
{
	hf_cl_device_info want = require_device();
	hf_cl *cl = NULL;
	hf_errbuf eb;
	hf_cl_opts o = { .cache_dir = NULL, .profiling = true };
	cr_assert_eq(hf_cl_open(test_selector(), &o, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(hf_cl_context(cl));
	cr_assert_not_null(hf_cl_queue(cl));
	cr_assert_not_null(hf_cl_device(cl));
	cr_assert_str_eq(hf_cl_info(cl)->selector, want.selector);
	cr_assert_null(hf_cl_cache_dir(cl));
	cr_assert_str_eq(hf_cl_build_log(cl), "");
	cl_command_queue_properties p = 0;
	clGetCommandQueueInfo(hf_cl_queue(cl), CL_QUEUE_PROPERTIES, sizeof p, &p, NULL);
	cr_assert(p & CL_QUEUE_PROFILING_ENABLE);
	hf_cl_free(cl);
}

/* Builds vadd with options and checks that it computes; returns whether the cache hit. */
static bool build_and_run(hf_cl *cl, const char *options, float scale)
{
	cl_program prog;
	bool hit = true;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_build(cl, vadd_src, strlen(vadd_src), options, &prog, &hit, &eb), 0,
		     "%s", eb.msg);
	cl_int st;
	cl_kernel k = clCreateKernel(prog, "vadd", &st);
	cr_assert_eq(st, CL_SUCCESS, "%s", hf_cl_strerror(st));
	float a[16], b[16], c[16];
	for (int i = 0; i < 16; i++) {
		a[i] = (float)i;
		b[i] = 1.0f;
	}
	cl_context ctx = hf_cl_context(cl);
	cl_mem ma = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof a, a, &st);
	cl_mem mb = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof b, b, &st);
	cl_mem mc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof c, NULL, &st);
	clSetKernelArg(k, 0, sizeof ma, &ma);
	clSetKernelArg(k, 1, sizeof mb, &mb);
	clSetKernelArg(k, 2, sizeof mc, &mc);
	size_t g = 16;
	/* The driver picks the work-group size: any device takes one that divides 16. */
	cr_assert_eq(clEnqueueNDRangeKernel(hf_cl_queue(cl), k, 1, NULL, &g, NULL, 0, NULL, NULL),
		     CL_SUCCESS);
	cr_assert_eq(clEnqueueReadBuffer(hf_cl_queue(cl), mc, CL_TRUE, 0, sizeof c, c, 0, NULL,
					 NULL), CL_SUCCESS);
	for (int i = 0; i < 16; i++)
		cr_assert_float_eq(c[i], (float)i + scale, 1e-6f);
	clReleaseMemObject(ma);
	clReleaseMemObject(mb);
	clReleaseMemObject(mc);
	clReleaseKernel(k);
	clReleaseProgram(prog);
	return hit;
}

static bool fresh_handle_build(const char *options, float scale)
{
	hf_cl *cl;
	hf_errbuf eb;
	hf_cl_opts o = { .cache_dir = cache_dir };
	cr_assert_eq(hf_cl_open(test_selector(), &o, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(hf_cl_cache_dir(cl), cache_dir);
	bool hit = build_and_run(cl, options, scale);
	hf_cl_free(cl);
	return hit;
}

Test(cl, cache_hits_in_a_fresh_handle_and_misses_on_new_options, .init = make_cache,
     .fini = drop_cache)
{
	require_device();
	cr_assert_not(fresh_handle_build("-DSCALE=2.0f", 2.0f), "empty cache cannot hit");
	cr_assert(fresh_handle_build("-DSCALE=2.0f", 2.0f), "same source and options must hit");
	cr_assert_not(fresh_handle_build("-DSCALE=3.0f", 3.0f), "changed options must rebuild");
	cr_assert(fresh_handle_build("-DSCALE=3.0f", 3.0f));
}

/* Runs one build in a child process (the parent never touches OpenCL) and returns its hit. */
static int child_build(void)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		hf_cl *cl;
		cl_program prog;
		bool hit = false;
		hf_cl_opts o = { .cache_dir = cache_dir };
		if (hf_cl_open(test_selector(), &o, &cl, NULL) != 0 ||
		    hf_cl_build(cl, vadd_src, strlen(vadd_src), "-DSCALE=1.0f", &prog, &hit,
				NULL) != 0)
			_exit(2);
		clReleaseProgram(prog);
		hf_cl_free(cl);
		_exit(hit ? 1 : 0);
	}
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

Test(cl, second_process_builds_nothing, .init = make_cache, .fini = drop_cache)
{
	/* The parent must not touch OpenCL: count devices in a child of its own. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		size_t n = 0;
		_exit(hf_cl_list(NULL, 0, &n, NULL) != 0 ? 2 : n == 0 ? 3 : 0);
	}
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_neq(WEXITSTATUS(status), 2, "hf_cl_list failed");
	if (WEXITSTATUS(status) == 3)
		cr_skip_test("no OpenCL platform or device on this machine: hf_cl was NOT tested");
	cr_assert_eq(child_build(), 0, "first process compiles");
	cr_assert_eq(child_build(), 1, "second process loads the cached binary");
}

static void corrupt_entries(size_t at_fraction_num, bool truncate_file)
{
	DIR *d = opendir(cache_dir);
	struct dirent *de;
	int n = 0;
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".clbin"))
			continue;
		char path[256];
		snprintf(path, sizeof path, "%s/%s", cache_dir, de->d_name);
		FILE *f = fopen(path, "r+b");
		cr_assert_not_null(f);
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		if (truncate_file) {
			cr_assert_eq(ftruncate(fileno(f), size / 2), 0);
		} else {
			long at = size * (long)at_fraction_num / 4;
			fseek(f, at, SEEK_SET);
			int c = fgetc(f);
			fseek(f, at, SEEK_SET);
			fputc(c ^ 0x5a, f);
		}
		fclose(f);
		n++;
	}
	closedir(d);
	cr_assert_eq(n, 1, "one cache entry expected, found %d", n);
}

Test(cl, corrupt_cache_entry_is_detected_and_rebuilt, .init = make_cache, .fini = drop_cache)
{
	require_device();
	cr_assert_not(fresh_handle_build("-DSCALE=2.0f", 2.0f));
	corrupt_entries(3, false); /* a flipped byte in the payload */
	cr_assert_not(fresh_handle_build("-DSCALE=2.0f", 2.0f), "corrupt entry must not load");
	cr_assert(fresh_handle_build("-DSCALE=2.0f", 2.0f), "the rebuild rewrote the entry");
	corrupt_entries(0, true); /* a torn file */
	cr_assert_not(fresh_handle_build("-DSCALE=2.0f", 2.0f));
	cr_assert(fresh_handle_build("-DSCALE=2.0f", 2.0f));
}

Test(cl, build_error_carries_the_log)
{
	static const char bad[] = "__kernel void k(__global float *x) { x[0] = undeclared_thing; }\n";
	hf_cl *cl;
	cl_program prog = (cl_program)1;
	hf_errbuf eb;
	require_device();
	cr_assert_eq(hf_cl_open(test_selector(), NULL, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_cl_build(cl, bad, strlen(bad), "", &prog, NULL, &eb), HF_ECL);
	cr_assert_null(prog);
	cr_assert_not_null(strstr(eb.msg, "CL_BUILD_PROGRAM_FAILURE"), "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "undeclared_thing"), "log in eb: %s", eb.msg);
	cr_assert_not_null(strstr(hf_cl_build_log(cl), "undeclared_thing"));
	/* A successful build replaces the log of the failed one. */
	cl_program ok;
	cr_assert_eq(hf_cl_build(cl, vadd_src, strlen(vadd_src), "-DSCALE=1.0f", &ok, NULL, &eb), 0,
		     "%s", eb.msg);
	cr_assert_null(strstr(hf_cl_build_log(cl), "undeclared_thing"));
	clReleaseProgram(ok);
	hf_cl_free(cl);
}

/* A source of n "#warning hf-long-log-I" lines, then a kernel with an undeclared identifier:
 * one warning per line in the log (each with its source line), the error last. */
static char *warnings_then_error(unsigned n, size_t *len)
{
	static const char tail[] =
		"__kernel void k(__global float *x) { x[0] = undeclared_after_warnings; }\n";
	size_t cap = (size_t)n * 40 + sizeof tail, used = 0;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	for (unsigned i = 0; i < n; i++)
		used += (size_t)snprintf(s + used, cap - used, "#warning hf-long-log-%u\n", i);
	memcpy(s + used, tail, sizeof tail);
	*len = used + sizeof tail - 1;
	return s;
}

/* Builds a source that cannot compile; returns the handle's log (valid until cl changes). */
static const char *failed_build_log(hf_cl *cl, unsigned warnings, hf_errbuf *eb)
{
	size_t len;
	char *src = warnings_then_error(warnings, &len);
	cl_program prog = (cl_program)1;
	cr_assert_eq(hf_cl_build(cl, src, len, "", &prog, NULL, eb), HF_ECL, "%s", eb->msg);
	cr_assert_null(prog);
	free(src);
	return hf_cl_build_log(cl);
}

/* The log of the failed build is never empty (a capped read once lost logs past 64 KiB
 * whole); skips when this device's compiler does not echo the #warning lines (then the long-log
 * path cannot be reached with it) or writes less than want bytes for them. */
static void require_long_log(const char *log, size_t want)
{
	cr_assert_neq(log[0], '\0', "empty build log");
	if (!strstr(log, "hf-long-log-0") || strlen(log) <= want)
		cr_skip_test("this device's compiler wrote %zu bytes of log for the #warning lines "
			     "(needed > %zu, each echoed): the long-log path was NOT tested",
			     strlen(log), want);
}

/* Logs past 64 KiB (where a capped read once came back empty) are kept whole. */
Test(cl, long_build_log_is_kept_whole)
{
	hf_cl *cl;
	hf_errbuf eb;
	require_device();
	cr_assert_eq(hf_cl_open(test_selector(), NULL, &cl, &eb), 0, "%s", eb.msg);
	const char *log = failed_build_log(cl, 2000, &eb);
	require_long_log(log, 64u << 10);
	cr_assert_not_null(strstr(log, "hf-long-log-1999"), "last warning missing");
	cr_assert_not_null(strstr(log, "undeclared_after_warnings"), "no error in the log");
	cr_assert_null(strstr(log, "[build log truncated"), "a log under 1 MiB is not cut");
	/* The error buffer starts at the first error, not at the first of 2000 warnings. */
	cr_assert_not_null(strstr(eb.msg, "undeclared_after_warnings"), "%s", eb.msg);
	cr_log_info("build log of %zu bytes", strlen(log));
	hf_cl_free(cl);
}

/* Logs past 1 MiB are cut to 1 MiB on a character boundary, with a note; eb still names the
 * error that lies past the cut. */
Test(cl, build_log_over_the_cap_is_cut_with_a_note)
{
	hf_cl *cl;
	hf_errbuf eb;
	require_device();
	cr_assert_eq(hf_cl_open(test_selector(), NULL, &cl, &eb), 0, "%s", eb.msg);
	const char *log = failed_build_log(cl, 20000, &eb);
	const char *note = strstr(log, "[build log truncated: ");
	if (!note)
		require_long_log(log, 1u << 20);
	cr_assert_not_null(note, "a %zu-byte log without the note", strlen(log));
	size_t kept = 0, total = 0;
	cr_assert_eq(sscanf(note, "[build log truncated: %zu of %zu bytes kept]", &kept, &total), 2,
		     "%s", note);
	cr_assert_gt(total, 1u << 20);
	cr_assert_leq(kept, 1u << 20);
	cr_assert_eq((size_t)(note - 1 - log), kept, "the note follows the kept bytes");
	cr_assert_leq(strlen(log), 1u << 20, "the kept log with its note is at most 1 MiB");
	cr_assert_not_null(strstr(log, "hf-long-log-0"));
	cr_assert_eq(log[strlen(log) - 1], '\n');
	cr_assert_not_null(strstr(eb.msg, "undeclared_after_warnings"), "%s", eb.msg);
	hf_cl_free(cl);
}

Test(cl, strerror_names_codes)
{
	cr_assert_str_eq(hf_cl_strerror(CL_SUCCESS), "CL_SUCCESS");
	cr_assert_str_eq(hf_cl_strerror(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
	cr_assert_str_eq(hf_cl_strerror(CL_INVALID_KERNEL_NAME), "CL_INVALID_KERNEL_NAME");
	cr_assert_str_eq(hf_cl_strerror(-9999), "CL_UNKNOWN_ERROR");
}

/* ---- hf_cl_env: run in a forked child, which has one thread (Criterion's test process has
 * more), as the environment must only be written before threads start. ---- */

static int child_msg_fd = -1;

/* In the child: reports a failed check to the parent and exits. */
__attribute__((format(printf, 1, 2), noreturn)) static void child_fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (write(child_msg_fd, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : strlen(msg)) < 0)
		_exit(3);
	_exit(1);
}

#define CHILD_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			child_fail(__VA_ARGS__); \
	} while (0)

/* Runs fn in a forked child with POCL_AFFINITY and POCL_CACHE_DIR unset; fails the test with
 * the child's message if a check failed. */
static void in_child(void (*fn)(void))
{
	int fd[2];
	cr_assert_eq(pipe(fd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fd[0]);
		child_msg_fd = fd[1];
		unsetenv("POCL_AFFINITY");
		unsetenv("POCL_CACHE_DIR");
		fn();
		_exit(0);
	}
	close(fd[1]);
	char msg[513];
	ssize_t n, got = 0;
	while ((n = read(fd[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0)
		got += n;
	msg[got > 0 ? got : 0] = '\0';
	close(fd[0]);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", msg[0] ? msg : "child died");
}

/* The rule, computed here independently: every online CPU is in the affinity mask. */
static bool owns_all_cpus(void)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	return online > 0 && sched_getaffinity(0, sizeof set, &set) == 0 &&
	       CPU_COUNT(&set) == online;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void env_sets_what_is_unset(void)
{
	char want[128];
	hf_errbuf eb;
	CHILD_CHECK(hf_cl_env_owns_all_cpus() == owns_all_cpus(), "owns_all_cpus disagrees");
	CHILD_CHECK(hf_cl_env_init(cache_dir, &eb) == 0, "hf_cl_env_init: %s", eb.msg);
	snprintf(want, sizeof want, "%s/pocl", cache_dir);
	const char *got = getenv("POCL_CACHE_DIR"), *aff = getenv("POCL_AFFINITY");
	CHILD_CHECK(got && strcmp(got, want) == 0, "POCL_CACHE_DIR %s, want %s", got, want);
	CHILD_CHECK(is_dir(want), "%s was not created", want);
	if (owns_all_cpus())
		CHILD_CHECK(aff && strcmp(aff, "1") == 0, "POCL_AFFINITY %s, want 1", aff);
	else
		CHILD_CHECK(!aff, "POCL_AFFINITY %s on a restricted CPU set", aff);
	/* A second call changes nothing. */
	CHILD_CHECK(hf_cl_env_init("/nonexistent-dir/x", &eb) == 0, "%s", eb.msg);
	CHILD_CHECK(strcmp(getenv("POCL_CACHE_DIR"), want) == 0, "overwritten");
}

static void env_keeps_the_operators_values(void)
{
	char mine[128];
	snprintf(mine, sizeof mine, "%s/operator-pocl", cache_dir);
	setenv("POCL_AFFINITY", "0", 1);
	setenv("POCL_CACHE_DIR", mine, 1);
	CHILD_CHECK(hf_cl_env_init(cache_dir, NULL) == 0, "hf_cl_env_init failed");
	CHILD_CHECK(strcmp(getenv("POCL_AFFINITY"), "0") == 0, "POCL_AFFINITY overwritten");
	CHILD_CHECK(strcmp(getenv("POCL_CACHE_DIR"), mine) == 0, "POCL_CACHE_DIR overwritten");
	char ours[128];
	snprintf(ours, sizeof ours, "%s/pocl", cache_dir);
	CHILD_CHECK(!is_dir(ours), "%s created although POCL_CACHE_DIR was set", ours);
}

static void env_without_cache_dir(void)
{
	CHILD_CHECK(hf_cl_env_init(NULL, NULL) == 0, "NULL");
	CHILD_CHECK(hf_cl_env_init("", NULL) == 0, "\"\"");
	CHILD_CHECK(!getenv("POCL_CACHE_DIR"), "POCL_CACHE_DIR set without a cache dir");
}

static void env_restricted_cpus_stay_unpinned(void)
{
	cpu_set_t set, one;
	CHILD_CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
	CPU_ZERO(&one);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			CPU_SET(c, &one);
			break;
		}
	CHILD_CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
	CHILD_CHECK(!hf_cl_env_owns_all_cpus(), "one CPU of several counted as all");
	CHILD_CHECK(hf_cl_env_init(NULL, NULL) == 0, "hf_cl_env_init failed");
	CHILD_CHECK(!getenv("POCL_AFFINITY"), "POCL_AFFINITY set on a restricted CPU set");
}

static void env_bad_cache_dir_is_reported(void)
{
	char file[128], dir[160];
	hf_errbuf eb;
	snprintf(file, sizeof file, "%s/a-file", cache_dir);
	FILE *f = fopen(file, "w");
	CHILD_CHECK(f, "cannot create %s", file);
	fclose(f);
	snprintf(dir, sizeof dir, "%s/below", file);
	int r = hf_cl_env_init(dir, &eb);
	CHILD_CHECK(r == HF_EIO, "a cache dir under a file: %d (%s)", r, eb.msg);
	CHILD_CHECK(strstr(eb.msg, "a-file"), "the error names the path: %s", eb.msg);
	CHILD_CHECK(!getenv("POCL_CACHE_DIR"), "POCL_CACHE_DIR set to a directory that failed");
	CHILD_CHECK((getenv("POCL_AFFINITY") != NULL) == owns_all_cpus(),
		    "POCL_AFFINITY follows its own rule regardless");
}

/* The fix for the setenv/getenv race: hf_cl itself leaves the environment alone. PoCL's own
 * default cache goes under cache_dir through XDG_CACHE_HOME. */
static void hf_cl_leaves_the_environment_alone(void)
{
	char xdg[128], mine[128];
	hf_cl *cl;
	hf_errbuf eb;
	size_t n = 0;
	snprintf(xdg, sizeof xdg, "%s/xdg", cache_dir);
	snprintf(mine, sizeof mine, "%s/hf", cache_dir);
	setenv("XDG_CACHE_HOME", xdg, 1);
	CHILD_CHECK(hf_cl_list(NULL, 0, &n, &eb) == 0, "hf_cl_list: %s", eb.msg);
	hf_cl_opts o = { .cache_dir = mine };
	CHILD_CHECK(hf_cl_open(test_selector(), &o, &cl, &eb) == 0, "hf_cl_open: %s", eb.msg);
	cl_program prog;
	CHILD_CHECK(hf_cl_build(cl, vadd_src, strlen(vadd_src), "-DSCALE=1.0f", &prog, NULL,
				&eb) == 0, "hf_cl_build: %s", eb.msg);
	clReleaseProgram(prog);
	hf_cl_free(cl);
	CHILD_CHECK(!getenv("POCL_AFFINITY"), "hf_cl set POCL_AFFINITY=%s",
		    getenv("POCL_AFFINITY"));
	CHILD_CHECK(!getenv("POCL_CACHE_DIR"), "hf_cl set POCL_CACHE_DIR=%s",
		    getenv("POCL_CACHE_DIR"));
}

Test(cl_env, sets_what_is_unset, .init = make_cache, .fini = drop_cache)
{
	in_child(env_sets_what_is_unset);
}

Test(cl_env, keeps_the_operators_values, .init = make_cache, .fini = drop_cache)
{
	in_child(env_keeps_the_operators_values);
}

Test(cl_env, no_cache_dir_leaves_pocl_its_default, .init = make_cache, .fini = drop_cache)
{
	in_child(env_without_cache_dir);
}

Test(cl_env, restricted_cpus_stay_unpinned, .init = make_cache, .fini = drop_cache)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU online: no smaller CPU set can be made");
	in_child(env_restricted_cpus_stay_unpinned);
}

Test(cl_env, bad_cache_dir_is_reported, .init = make_cache, .fini = drop_cache)
{
	in_child(env_bad_cache_dir_is_reported);
}

Test(cl_env, hf_cl_never_writes_the_environment, .init = make_cache, .fini = drop_cache)
{
	require_device();
	in_child(hf_cl_leaves_the_environment_alone);
}
