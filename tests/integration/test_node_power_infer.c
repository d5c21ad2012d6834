/* Integration test: hashflopd's inference figures per joule, end to end. The real hashflopd
 * serves the committed Fashion-MNIST model (OpenCL: PoCL here); the test posts batches of
 * known sizes and checks that the inference worker's counters (items answered, and their
 * FLOPs: items * hf_graph_work_flops_per_sample of the model, computed here from the same
 * file) reach /v1/status exactly, and that the status then shows GFLOP/J and inferences/J
 * over the same window as the energy. The node's power source is its default ("auto": the
 * estimate on a machine without RAPL or hwmon). Every wait has a deadline.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_graph.h"
#include "hf_safetensors.h"
#include "hf_testinfer.h"
#include "hf_testnode.h"
#include "hf_util.h"

#define WAIT_MS 30000
#define REQ_TIMEOUT_MS 60000

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* FLOPs per item of the committed model, as the node counts them. */
static double model_flops_per_item(void)
{
	char path[2048];
	hf_st *st;
	hf_graph *g;
	hf_errbuf eb;

	snprintf(path, sizeof path, "%s/runtime/infer/models/" HF_TI_MODEL "/model.safetensors",
		 getenv("HF_SOURCE_ROOT") ? getenv("HF_SOURCE_ROOT") : ".");
	cr_assert_eq(hf_st_open(path, NULL, &st, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_graph_new(st, &g, &eb), 0, "%s", eb.msg);
	double f = hf_graph_work_flops_per_sample(g);
	hf_graph_free(g);
	hf_st_free(st);
	return f;
}

static double wnum(const json_t *st, const char *path)
{
	return hf_testnode_num(json_object_get(st, "power"), path);
}

Test(node_power_infer, gflop_and_inferences_per_joule_from_the_served_batches, .init = setup,
     .timeout = 900)
{
	hf_testnode n;
	size_t nimg;
	float *x = hf_ti_fmnist_images(&nimg);
	static const size_t rows[] = { 1, 7, 32, 3 };
	size_t total = 0;
	double fpi = model_flops_per_item();

	cr_assert_gt(fpi, 0);
	hf_ti_node_init(&n, "power-infer", "idle", NULL, NULL, 30000);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	int port = hf_ti_port(&n);
	hf_ti_switch(&n, "inference", hf_ti_seq(&n), NULL);
	/* The telemetry has sampled the start of this run (within 50 ms of it): from here on every
	 * item answered falls inside its windows. */
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *st = NULL;
	for (;;) {
		json_decref(st);
		st = hf_testnode_get(&n, "/v1/status");
		const json_t *p = json_object_get(st, "power");
		if (json_equal(json_object_get(p, "mode_since_ms"), json_object_get(st, "mode_since_ms")) &&
		    strcmp(json_string_value(json_object_get(p, "mode")), "inference") == 0)
			break;
		cr_assert(hf_mono_ms() < end, "the telemetry never saw the inference run: %s",
			  json_dumps(st, 0));
		hf_sleep_ms(20);
	}

	hf_ti_client *c = hf_ti_client_new();
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		hf_ti_reply r = { 0 };
		size_t len, jl;
		void *b = hf_ti_binary_body(x + total * HF_TI_IN, rows[i], HF_TI_IN, true, &len, &jl);
		cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, REQ_TIMEOUT_MS, &r), "%s", r.error);
		cr_assert_eq(r.status, 200, "infer: %ld %s", r.status, r.body);
		free(b);
		hf_ti_reply_clear(&r);
		total += rows[i];
	}
	hf_ti_client_free(c);

	/* The counters reach the status at the next sample (telemetry_interval_ms, 1 s). */
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_decref(st);
		st = hf_testnode_get(&n, "/v1/status");
		if (wnum(st, "worker_counters.inferences") >= (double)total &&
		    wnum(st, "windows.15m.inferences_per_j") > 0)
			break;
		cr_assert(hf_mono_ms() < end, "no inference figures: %s", json_dumps(json_object_get(st, "power"), 0));
		hf_sleep_ms(100);
	}
	cr_expect_eq(wnum(st, "worker_counters.inferences"), (double)total);
	double flops = wnum(st, "worker_counters.flops");
	cr_expect(fabs(flops - fpi * (double)total) <= 1e-9 * flops, "flops %.17g, expected %zu * %.17g",
		  flops, total, fpi);
	cr_expect_eq(wnum(st, "worker_counters.hashes"), 0);
	const json_t *e = json_object_get(st, "efficiency");
	cr_expect_str_eq(json_string_value(json_object_get(e, "mode")), "inference");
	double gpj = hf_testnode_num(e, "gflop_per_j.15m"), ipj = hf_testnode_num(e, "inferences_per_j.15m");
	cr_expect_gt(gpj, 0);
	cr_expect_gt(ipj, 0);
	/* Both come from one window: their ratio is the model's FLOPs per item. */
	cr_expect(fabs(gpj * 1e9 / ipj - fpi) <= 1e-6 * fpi, "GFLOP/J %g over inferences/J %g is not %g",
		  gpj, ipj, fpi / 1e9);
	cr_log_info("inference: %zu items, %.0f FLOP each: %.4g GFLOP/J, %.4g inferences/J (%s watts)",
		    total, fpi, gpj, ipj,
		    json_string_value(json_object_get(json_object_get(st, "power"), "source")));
	json_decref(st);
	free(x);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
}
