/* Unit tests of the mining worker's power target wiring (hf_mining_power.c, in process):
 * mining.power_target_w validated strictly and written back by to_json; a target without a
 * power source refused at start with an error that says so; the OpenCL backend on an NVML
 * source (the fake libnvidia-ml.so.1 the power tests build, through hf_power's real dlopen
 * path) setting the board power limit to the target and restoring it at release, and falling
 * back to the batch duty cycle when the limit cannot be set; the worker's counters callback
 * (hashes over the worker's life, monotonic across runs) against a real hashflop-pool.
 * Every wait has a deadline. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_nvml.h"
#include "hf_mining.h"
#include "hf_mining_config.h"
#include "hf_power.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 30000

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static int cfg_parse(const char *text, hf_mining_config *c, hf_errbuf *eb)
{
	json_t *j = json_loads(text, 0, NULL);
	int r;

	cr_assert_not_null(j, "%s", text);
	hf_mining_config_defaults(c);
	r = hf_mining_config_from_json(c, j, "mining", eb);
	json_decref(j);
	return r;
}

Test(mining_power, config_key_validated_and_written_back)
{
	static const char *const bad[] = { "0", "-5", "\"90\"", "true", "2e6", "[]", "{}" };
	hf_mining_config c, c2;
	hf_errbuf eb;

	cr_assert_eq(cfg_parse("{}", &c, &eb), 0);
	cr_assert_float_eq(c.power_target_w, 0, 1e-12);
	cr_assert_eq(cfg_parse("{\"power_target_w\": 250}", &c, &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(c.power_target_w, 250, 1e-12);
	cr_assert_eq(cfg_parse("{\"power_target_w\": 0.5}", &c, &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(c.power_target_w, 0.5, 1e-12);
	cr_assert_eq(cfg_parse("{\"power_target_w\": null}", &c, &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(c.power_target_w, 0, 1e-12);
	for (size_t i = 0; i < HF_ARRAY_SIZE(bad); i++) {
		char text[128];
		snprintf(text, sizeof text, "{\"power_target_w\": %s}", bad[i]);
		cr_assert_eq(cfg_parse(text, &c, &eb), HF_ECONFIG, "%s accepted", bad[i]);
		cr_assert(strstr(eb.msg, "mining.power_target_w"), "%s: %s", bad[i], eb.msg);
	}
	cr_assert_eq(cfg_parse("{\"power_target_w\": 0}", &c, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "greater than 0"), "%s", eb.msg);
	/* to_json writes the key (null for none) and reads back to the same value */
	cr_assert_eq(cfg_parse("{\"power_target_w\": 123.25}", &c, &eb), 0);
	json_t *o = hf_mining_config_to_json(&c, true);
	cr_assert_float_eq(json_number_value(json_object_get(o, "power_target_w")), 123.25, 1e-12);
	hf_mining_config_defaults(&c2);
	cr_assert_eq(hf_mining_config_from_json(&c2, o, "mining", &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(c2.power_target_w, 123.25, 1e-12);
	json_decref(o);
	hf_mining_config_defaults(&c);
	o = hf_mining_config_to_json(&c, true);
	cr_assert(json_is_null(json_object_get(o, "power_target_w")));
	cr_assert_eq(hf_mining_config_from_json(&c2, o, "mining", &eb), 0, "%s", eb.msg);
	cr_assert_float_eq(c2.power_target_w, 0, 1e-12);
	json_decref(o);
}

static hf_mining *mining_new(const char *text, hf_power *power)
{
	json_t *j = json_loads(text, 0, NULL);
	hf_mining *m = NULL;
	hf_errbuf eb;

	cr_assert_not_null(j, "%s", text);
	cr_assert_eq(hf_mining_new(j, "/tmp", power, &m, &eb), 0, "%s", eb.msg);
	json_decref(j);
	return m;
}

static json_t *status_pt(const hf_mode_worker *w)
{
	json_t *o = json_object();

	w->status(w->impl, o);
	json_t *pt = json_incref(json_object_get(json_object_get(o, "mining"), "power_target"));
	json_decref(o);
	return pt;
}

Test(mining_power, target_without_power_source_refused_at_start)
{
	hf_mining *m = mining_new("{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:1\", \"user\": "
				  "\"u\"}], \"cpu\": {\"threads\": 1}, \"power_target_w\": 80}", NULL);
	hf_mode_worker w;
	hf_errbuf eb;

	hf_mining_worker(m, &w);
	hf_errbuf_clear(&eb);
	cr_assert_eq(w.start(w.impl, NULL, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "mining.power_target_w") && strstr(eb.msg, "no power source"),
		  "%s", eb.msg);
	json_t *pt = status_pt(&w);
	cr_assert_not_null(pt, "the configured target is in the status");
	cr_assert(json_is_false(json_object_get(pt, "applied")));
	json_decref(pt);
	w.release(w.impl);
	hf_mining_free(m);
	/* without a target, no source is needed and no power_target object is shown */
	m = mining_new("{\"cpu\": {\"threads\": 1}}", NULL);
	hf_mining_worker(m, &w);
	cr_assert_null(status_pt(&w));
	hf_mining_free(m);
}

/* ---- the OpenCL backend on the fake NVML ---- */

static void *fake_lib;
static struct {
	fake_nvml_reset_fn reset;
	fake_nvml_add_gpu_fn add_gpu;
	fake_nvml_set_power_fn set_power;
	fake_nvml_set_limits_fn set_limits;
	fake_nvml_get_fn get;
} fake;

static void *need(const char *name)
{
	void *s = dlsym(fake_lib, name);
	cr_assert_not_null(s, "fake NVML has no %s", name);
	return s;
}

static void fake_setup(void)
{
	void *s;

	setup();
	fake_lib = dlopen(FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(fake_lib, "%s: %s", FAKE_NVML_PATH, dlerror());
	s = need("fake_nvml_reset");
	memcpy(&fake.reset, &s, sizeof s);
	s = need("fake_nvml_add_gpu");
	memcpy(&fake.add_gpu, &s, sizeof s);
	s = need("fake_nvml_set_power");
	memcpy(&fake.set_power, &s, sizeof s);
	s = need("fake_nvml_set_limits");
	memcpy(&fake.set_limits, &s, sizeof s);
	s = need("fake_nvml_get");
	memcpy(&fake.get, &s, sizeof s);
	fake.reset();
}

static void fake_teardown(void)
{
	if (fake_lib)
		dlclose(fake_lib);
	fake_lib = NULL;
}

static hf_power *nvml_open(int set_rc)
{
	hf_power_opts o = { .kind = HF_POWER_NVML, .nvml_library = FAKE_NVML_PATH };
	hf_power *p = NULL;
	hf_errbuf eb;

	int g = fake.add_gpu("NVIDIA H200", "00000000:19:00.0", FAKE_NVML_ERROR_NOT_SUPPORTED);
	cr_assert_geq(g, 0);
	fake.set_power(g, 400000);
	fake.set_limits(g, 100000, 700000, 700000, set_rc);
	cr_assert_eq(hf_power_open(&o, &p, &eb), 0, "%s", eb.msg);
	return p;
}

/* Starts an OpenCL mining run (PoCL here); false (test skipped) without an OpenCL device. */
static bool opencl_start(hf_mining **m, hf_mode_worker *w, hf_power *p, double target)
{
	char text[512];
	hf_errbuf eb;
	int r;

	snprintf(text, sizeof text, "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:1\", \"user\": "
		 "\"u\"}], \"backend\": \"opencl\", \"opencl\": {\"cache_dir\": \"%s/pocl-mining-power\"}, "
		 "\"power_target_w\": %g}", hf_test_build_root()[0] == '/' ? hf_test_build_root() : "/tmp",
		 target);
	*m = mining_new(text, p);
	hf_mining_worker(*m, w);
	hf_errbuf_clear(&eb);
	r = w->start(w->impl, NULL, &eb);
	if (r == HF_EUNSUPPORTED || r == HF_ENOTFOUND || r == HF_ECL) {
		w->release(w->impl);
		hf_mining_free(*m);
		hf_power_free(p);
		cr_skip_test("no OpenCL device for the mining backend: %s", eb.msg);
		return false;
	}
	cr_assert_eq(r, 0, "%s", eb.msg);
	return true;
}

Test(mining_power, opencl_on_nvml_sets_and_restores_the_board_limit, .init = fake_setup,
     .fini = fake_teardown, .timeout = 300)
{
	hf_power *p = nvml_open(FAKE_NVML_SUCCESS);
	hf_mode_worker w;
	hf_mining *m;
	hf_errbuf eb;

	if (!opencl_start(&m, &w, p, 350))
		return;
	cr_assert_eq(fake.get("limit0"), 350000, "the limit in force: %lld mW", fake.get("limit0"));
	json_t *pt = status_pt(&w);
	cr_assert_str_eq(json_string_value(json_object_get(pt, "method")), "nvml_limit");
	cr_assert_str_eq(json_string_value(json_object_get(pt, "source")), "nvml");
	cr_assert(json_is_false(json_object_get(pt, "estimated")));
	cr_assert_float_eq(json_number_value(json_object_get(pt, "limit_w")), 350, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(pt, "duty")), 1, 1e-9);
	json_decref(pt);
	w.drain(w.impl, hf_mono_ms() + WAIT_MS, &eb);
	w.release(w.impl);
	cr_assert_eq(fake.get("limit0"), 700000, "restored at release: %lld mW", fake.get("limit0"));
	hf_mining_free(m);
	hf_power_free(p);
}

Test(mining_power, opencl_without_limit_permission_uses_the_duty_cycle, .init = fake_setup,
     .fini = fake_teardown, .timeout = 300)
{
	hf_power *p = nvml_open(FAKE_NVML_ERROR_NO_PERMISSION);
	hf_mode_worker w;
	hf_mining *m;
	hf_errbuf eb;

	if (!opencl_start(&m, &w, p, 350))
		return;
	cr_assert_eq(fake.get("limit0"), 700000, "the limit was changed: %lld mW", fake.get("limit0"));
	json_t *pt = status_pt(&w);
	cr_assert_str_eq(json_string_value(json_object_get(pt, "method")), "threads+duty");
	cr_assert(strstr(json_string_value(json_object_get(pt, "message")), "duty cycle"), "%s",
		  json_string_value(json_object_get(pt, "message")));
	json_decref(pt);
	w.drain(w.impl, hf_mono_ms() + WAIT_MS, &eb);
	w.release(w.impl);
	cr_assert_eq(fake.get("limit0"), 700000);
	hf_mining_free(m);
	hf_power_free(p);
}

/* ---- the counters callback ---- */

static uint64_t hashes(const hf_mode_worker *w)
{
	hf_work_counters c = { 7, 7.0, 7 };

	w->counters(w->impl, &c);
	cr_assert_eq(c.inferences, 0);
	cr_assert_float_eq(c.flops, 0, 1e-12);
	return c.hashes;
}

static uint64_t wait_hashes_above(const hf_mode_worker *w, uint64_t above)
{
	uint64_t end = hf_mono_ms() + WAIT_MS, h;

	while ((h = hashes(w)) <= above) {
		cr_assert(hf_mono_ms() < end, "hashes stayed at %llu", (unsigned long long)h);
		hf_sleep_ms(10);
	}
	return h;
}

Test(mining_power, counters_count_hashes_over_the_workers_life, .init = setup, .timeout = 120)
{
	hf_testpool pool = { 0 };
	char text[512];
	hf_mode_worker w;
	hf_mining *m;
	hf_errbuf eb;

	hf_testpool_start(&pool, "mining-power-counters", 0, "0.001", NULL, WAIT_MS);
	snprintf(text, sizeof text, "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%u\", \"user\": "
		 "\"bc1qtest.counters\"}], \"cpu\": {\"threads\": 1}, \"status_interval_s\": 3600}",
		 pool.port);
	m = mining_new(text, NULL);
	hf_mining_worker(m, &w);
	cr_assert_not_null(w.counters);
	cr_assert_eq(hashes(&w), 0);
	cr_assert_eq(w.start(w.impl, NULL, &eb), 0, "%s", eb.msg);
	uint64_t a = wait_hashes_above(&w, 0);
	uint64_t b = wait_hashes_above(&w, a);
	w.drain(w.impl, hf_mono_ms() + WAIT_MS, &eb);
	uint64_t c = hashes(&w);
	cr_assert_geq(c, b);
	w.release(w.impl);
	uint64_t d = hashes(&w);
	cr_assert_eq(d, c, "release changed the count (%llu -> %llu)", (unsigned long long)c,
		     (unsigned long long)d);
	cr_assert_eq(w.start(w.impl, NULL, &eb), 0, "%s", eb.msg);
	cr_assert_geq(hashes(&w), d, "a new run went back");
	wait_hashes_above(&w, d);
	w.drain(w.impl, hf_mono_ms() + WAIT_MS, &eb);
	w.release(w.impl);
	hf_mining_free(m);
	hf_testpool_free(&pool, WAIT_MS, false);
}
