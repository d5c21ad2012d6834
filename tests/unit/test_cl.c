/* Unit tests for hf_cl: discovery, selectors, device info, program cache (hit across processes,
 * option change, corrupt entry), build errors with the compiler's log. Needs one OpenCL device
 * (PoCL in CI). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_cl.h"

static const char vadd_src[] =
	"__kernel void vadd(__global const float *a, __global const float *b,\n"
	"                   __global float *c) {\n"
	"  size_t i = get_global_id(0);\n"
	"  c[i] = a[i] + b[i] * SCALE;\n"
	"}\n";

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

Test(cl, list_finds_devices_with_info)
{
	hf_cl_device_info devs[8];
	size_t n = 0;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_list(devs, 8, &n, &eb), 0, "%s", eb.msg);
	cr_assert_geq(n, 1, "no OpenCL device: install pocl-opencl-icd");
	cr_assert_str_eq(devs[0].selector, "0:0");
	cr_assert_neq(devs[0].name[0], '\0');
	cr_assert_neq(devs[0].platform[0], '\0');
	cr_assert_neq(devs[0].driver_version[0], '\0');
	cr_assert_geq(devs[0].compute_units, 1);
	cr_assert_gt(devs[0].global_mem_bytes, 0);
	cr_assert_gt(devs[0].local_mem_bytes, 0);
	cr_assert_gt(devs[0].max_alloc_bytes, 0);
	cr_assert_gt(devs[0].max_work_group_size, 0);
	cr_assert_eq(strncmp(devs[0].version, "OpenCL ", 7), 0, "version \"%s\"", devs[0].version);

	size_t n2 = 0;
	cr_assert_eq(hf_cl_list(NULL, 0, &n2, &eb), 0);
	cr_assert_eq(n2, n, "counting without storing finds the same devices");
}

Test(cl, selectors_resolve)
{
	hf_cl_device_info first, d;
	size_t n = 0;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_list(&first, 1, &n, &eb), 0);
	cr_assert_geq(n, 1);

	cr_assert_eq(hf_cl_find("0:0", &d, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(d.name, first.name);
	cr_assert_eq(hf_cl_find(NULL, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_cl_find("", &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_cl_find("auto", &d, &eb), 0, "%s", eb.msg);

	/* A name substring, in another case, selects by device name. */
	char word[8] = { 0 };
	for (size_t i = 0; i < 4 && first.name[i]; i++)
		word[i] = (char)(first.name[i] ^ 0x20 * (first.name[i] >= 'a' && first.name[i] <= 'z'));
	cr_assert_eq(hf_cl_find(word, &d, &eb), 0, "\"%s\": %s", word, eb.msg);
	cr_assert_str_eq(d.name, first.name);

	if (strstr(first.platform, "Portable Computing Language")) {
		cr_assert_eq(hf_cl_find("pocl", &d, &eb), 0, "%s", eb.msg);
		cr_assert_eq(hf_cl_find("POCL", &d, &eb), 0, "%s", eb.msg);
		cr_assert_str_eq(d.platform, first.platform);
	}
}

Test(cl, bad_selectors_are_refused_with_the_device_list)
{
	hf_cl_device_info d;
	hf_errbuf eb;
	cr_assert_eq(hf_cl_find("no-such-device-xyz", &d, &eb), HF_ENOTFOUND);
	cr_assert_not_null(strstr(eb.msg, "no-such-device-xyz"), "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "0:0"), "the error lists the devices: %s", eb.msg);
	cr_assert_eq(hf_cl_find("99:0", &d, &eb), HF_ENOTFOUND);
	cr_assert_eq(hf_cl_find("0:x", &d, &eb), HF_EINVAL);
	cr_assert_eq(hf_cl_find("0:", &d, &eb), HF_EINVAL);
	hf_cl *cl = (hf_cl *)1;
	cr_assert_eq(hf_cl_open("no-such-device-xyz", NULL, &cl, &eb), HF_ENOTFOUND);
	cr_assert_null(cl);
	hf_cl_free(NULL);
}

Test(cl, open_gives_context_queue_and_info)
{
	hf_cl *cl = NULL;
	hf_errbuf eb;
	hf_cl_opts o = { .cache_dir = NULL, .profiling = true };
	cr_assert_eq(hf_cl_open("0:0", &o, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(hf_cl_context(cl));
	cr_assert_not_null(hf_cl_queue(cl));
	cr_assert_not_null(hf_cl_device(cl));
	cr_assert_str_eq(hf_cl_info(cl)->selector, "0:0");
	cr_assert_null(hf_cl_cache_dir(cl));
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
	size_t g = 16, l = 16;
	cr_assert_eq(clEnqueueNDRangeKernel(hf_cl_queue(cl), k, 1, NULL, &g, &l, 0, NULL, NULL),
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
	cr_assert_eq(hf_cl_open("0:0", &o, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(hf_cl_cache_dir(cl), cache_dir);
	bool hit = build_and_run(cl, options, scale);
	hf_cl_free(cl);
	return hit;
}

Test(cl, cache_hits_in_a_fresh_handle_and_misses_on_new_options, .init = make_cache,
     .fini = drop_cache)
{
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
		if (hf_cl_open("0:0", &o, &cl, NULL) != 0 ||
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
	cr_assert_eq(hf_cl_open("0:0", NULL, &cl, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_cl_build(cl, bad, strlen(bad), "", &prog, NULL, &eb), HF_ECL);
	cr_assert_null(prog);
	cr_assert_not_null(strstr(eb.msg, "CL_BUILD_PROGRAM_FAILURE"), "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "undeclared_thing"), "log in eb: %s", eb.msg);
	cr_assert_not_null(strstr(hf_cl_build_log(cl), "undeclared_thing"));
	hf_cl_free(cl);
}

Test(cl, strerror_names_codes)
{
	cr_assert_str_eq(hf_cl_strerror(CL_SUCCESS), "CL_SUCCESS");
	cr_assert_str_eq(hf_cl_strerror(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
	cr_assert_str_eq(hf_cl_strerror(CL_INVALID_KERNEL_NAME), "CL_INVALID_KERNEL_NAME");
	cr_assert_str_eq(hf_cl_strerror(-9999), "CL_UNKNOWN_ERROR");
}
