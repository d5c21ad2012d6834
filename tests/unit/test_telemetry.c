/* Unit tests for hf_telemetry: a real mode machine (hf_modes) with test workers whose counters
 * the test scripts, and a real power source whose watts the test knows exactly (the estimate,
 * idle 100 W, full 300 W, at a scripted utilisation of 0.5: 200 W). Checks the figures against
 * the exact work the test added and the energy of the same window, the restart of the windows
 * on a mode change and on counters that go backwards, the window lengths, and the three
 * serialisations (status, metrics, the coordinator report). Waits are on conditions with
 * deadlines; no check depends on how fast the machine is.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "hf_mode.h"
#include "hf_power.h"
#include "hf_telemetry.h"
#include "hf_util.h"

#define WATTS 200.0
#define DEADLINE_MS 20000

typedef struct cworker {
	_Atomic uint64_t hashes, inferences;
	_Atomic double flops;
} cworker;

static int cw_start(void *impl, const json_t *params, hf_errbuf *eb) { return 0; }
static int cw_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb) { return 0; }
static void cw_release(void *impl) { }

static void cw_counters(void *impl, hf_work_counters *out)
{
	cworker *w = impl;
	out->hashes = atomic_load(&w->hashes);
	out->flops = atomic_load(&w->flops);
	out->inferences = atomic_load(&w->inferences);
}

static double half(void *ctx)
{
	return 0.5;
}

typedef struct fixture {
	hf_power *power;
	hf_modes *modes;
	hf_telemetry *t;
	cworker mining, inference;
} fixture;

static fixture *fx_new(unsigned interval_ms)
{
	fixture *f = calloc(1, sizeof *f);
	hf_power_opts po = { .kind = HF_POWER_ESTIMATE, .idle_w = 100, .full_w = 300,
			     .utilisation = half, .sample_interval_ms = 10 };
	hf_modes_opts mo = { .drain_timeout_ms = 1000 };
	hf_errbuf eb;

	cr_assert_eq(hf_power_open(&po, &f->power, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_modes_new(&mo, &f->modes, &eb), 0, "%s", eb.msg);
	hf_mode_worker mw = { .mode = HF_MODE_MINING, .impl = &f->mining, .start = cw_start,
			      .drain = cw_drain, .release = cw_release, .counters = cw_counters };
	hf_mode_worker iw = mw;
	iw.mode = HF_MODE_INFERENCE;
	iw.impl = &f->inference;
	cr_assert_eq(hf_modes_register(f->modes, &mw, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_modes_register(f->modes, &iw, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_modes_request(f->modes, HF_MODE_IDLE, NULL, NULL, &eb), 0, "%s", eb.msg);
	cr_assert(hf_modes_wait_converged(f->modes, DEADLINE_MS));
	hf_telemetry_opts to = { .power = f->power, .modes = f->modes, .interval_ms = interval_ms };
	cr_assert_eq(hf_telemetry_new(&to, &f->t, &eb), 0, "%s", eb.msg);
	return f;
}

static void fx_free(fixture *f)
{
	hf_telemetry_free(f->t);
	hf_modes_free(f->modes);
	hf_power_free(f->power);
	free(f);
}

static void switch_to(fixture *f, hf_mode m)
{
	hf_errbuf eb;
	cr_assert_eq(hf_modes_request(f->modes, m, NULL, NULL, &eb), 0, "%s", eb.msg);
	cr_assert(hf_modes_wait_converged(f->modes, DEADLINE_MS));
}

typedef bool (*snap_pred)(const hf_telemetry_snapshot *s, const void *arg);

/* Polls snapshots until pred holds (fails the test at the deadline). */
static void wait_snap(fixture *f, snap_pred pred, const void *arg, hf_telemetry_snapshot *s,
		      const char *what)
{
	uint64_t deadline = hf_mono_ms() + DEADLINE_MS;
	for (;;) {
		hf_telemetry_snapshot_get(f->t, s);
		if (pred(s, arg))
			return;
		cr_assert(hf_mono_ms() < deadline, "timed out waiting for %s", what);
		hf_sleep_ms(5);
	}
}

/* The run of mode *arg has been sampled over at least 0.3 s. */
static bool covered_in(const hf_telemetry_snapshot *s, const void *arg)
{
	return s->mode == *(const hf_mode *)arg && s->win[2].covered_s >= 0.3;
}

static bool totals_hashes(const hf_telemetry_snapshot *s, const void *arg)
{
	return s->mode == HF_MODE_MINING && s->totals.hashes == *(const uint64_t *)arg;
}

static bool totals_inferences(const hf_telemetry_snapshot *s, const void *arg)
{
	return s->mode == HF_MODE_INFERENCE && s->totals.inferences == *(const uint64_t *)arg;
}

static void expect_close(double got, double want, double rel, const char *what)
{
	cr_expect(fabs(got - want) <= rel * fabs(want), "%s: %.9g, expected %.9g", what, got, want);
}

/* Every window of s: its energy is the known watts over the seconds it covers. */
static void expect_energy(const hf_telemetry_snapshot *s)
{
	for (int i = 0; i < HF_TELEM_WINDOWS; i++) {
		const hf_telemetry_window *w = &s->win[i];
		cr_expect_gt(w->covered_s, 0, "window %u s covers nothing", w->seconds);
		expect_close(w->watts, WATTS, 1e-6, "window watts");
		expect_close(w->joules, WATTS * w->covered_s, 1e-6, "window joules");
	}
}

Test(telemetry, idle_watts_source_and_a_growing_energy_counter)
{
	fixture *f = fx_new(20);
	hf_telemetry_snapshot a, b;
	hf_mode idle = HF_MODE_IDLE;
	hf_work_counters wc;
	hf_mode m;

	/* The idle worker has no counters callback: hf_modes_counters gives zeros. */
	hf_modes_counters(f->modes, &m, &wc);
	cr_expect_eq(m, HF_MODE_IDLE);
	cr_expect(wc.hashes == 0 && wc.flops == 0 && wc.inferences == 0);
	wait_snap(f, covered_in, &idle, &a, "an idle window");
	cr_expect_str_eq(a.source, "estimate");
	cr_expect_str_eq(a.boundary, "estimate");
	cr_expect(a.estimated);
	cr_expect_eq(a.win[0].seconds, 10);
	cr_expect_eq(a.win[1].seconds, 60);
	cr_expect_eq(a.win[2].seconds, 900);
	expect_close(a.watts, WATTS, 1e-6, "watts");
	expect_energy(&a);
	cr_expect_eq(a.win[2].mh_per_j, 0);
	cr_expect_eq(a.win[2].gflop_per_j, 0);
	do {
		hf_sleep_ms(5);
		hf_telemetry_snapshot_get(f->t, &b);
	} while (b.samples == a.samples);
	cr_expect_gt(b.joules_total, a.joules_total, "joules_total did not grow");
	cr_expect_gt(b.wall_ms + 1, a.wall_ms);
	fx_free(f);
}

Test(telemetry, mining_efficiency_is_the_added_hashes_over_the_same_energy)
{
	fixture *f = fx_new(20);
	hf_telemetry_snapshot s;
	hf_mode mining = HF_MODE_MINING;
	uint64_t h0 = 1000000, h1 = h0 + 5000000000ull;

	atomic_store(&f->mining.hashes, h0);
	switch_to(f, HF_MODE_MINING);
	/* The run's first sample holds h0: then every hash added lies inside the 15 min window. */
	wait_snap(f, covered_in, &mining, &s, "a mining window");
	cr_assert_eq(s.totals.hashes, h0);
	atomic_store(&f->mining.hashes, h1);
	wait_snap(f, totals_hashes, &h1, &s, "the added hashes");
	expect_energy(&s);
	const hf_telemetry_window *w = &s.win[2];
	expect_close(w->mh_per_j, 5000.0 / w->joules, 1e-9, "MH/J");
	expect_close(w->hashes_per_s, 5e9 / w->covered_s, 1e-9, "hashes/s");
	cr_expect_eq(w->gflop_per_j, 0);
	cr_expect_eq(w->inferences_per_j, 0);
	fx_free(f);
}

Test(telemetry, inference_efficiency_in_gflop_and_inferences_per_joule)
{
	fixture *f = fx_new(20);
	hf_telemetry_snapshot s;
	hf_mode inference = HF_MODE_INFERENCE;
	uint64_t n1 = 7000;

	atomic_store(&f->inference.inferences, 0);
	switch_to(f, HF_MODE_INFERENCE);
	wait_snap(f, covered_in, &inference, &s, "an inference window");
	atomic_store(&f->inference.flops, 3e12);
	atomic_store(&f->inference.inferences, n1);
	wait_snap(f, totals_inferences, &n1, &s, "the added inferences");
	expect_energy(&s);
	const hf_telemetry_window *w = &s.win[2];
	expect_close(w->gflop_per_j, 3000.0 / w->joules, 1e-9, "GFLOP/J");
	expect_close(w->inferences_per_j, 7000.0 / w->joules, 1e-9, "inferences/J");
	expect_close(w->flops_per_s, 3e12 / w->covered_s, 1e-9, "FLOP/s");
	cr_expect_eq(w->mh_per_j, 0);
	fx_free(f);
}

static bool mode_is(const hf_telemetry_snapshot *s, const void *arg)
{
	return s->mode == *(const hf_mode *)arg;
}

/* A window never mixes two modes, nor two worker objects (counters that went back). */
Test(telemetry, windows_restart_on_a_mode_change_and_on_counters_that_go_back)
{
	fixture *f = fx_new(20);
	hf_telemetry_snapshot s, before;
	hf_mode mining = HF_MODE_MINING, idle = HF_MODE_IDLE;

	atomic_store(&f->mining.hashes, 100);
	switch_to(f, HF_MODE_MINING);
	wait_snap(f, covered_in, &mining, &before, "a mining window");
	uint64_t since = before.mode_since_wall_ms;
	atomic_store(&f->mining.hashes, 2000000100);
	uint64_t h = 2000000100;
	wait_snap(f, totals_hashes, &h, &before, "hashes");
	cr_assert_gt(before.win[2].mh_per_j, 0);

	/* Back to idle: a new run, and none of the mining hashes in it. */
	uint64_t t_switch = hf_mono_ms();
	switch_to(f, HF_MODE_IDLE);
	wait_snap(f, mode_is, &idle, &s, "the idle run");
	cr_expect_neq(s.mode_since_wall_ms, since);
	cr_expect_leq(s.win[2].covered_s, (double)(hf_mono_ms() - t_switch) / 1000.0 + 0.011);
	cr_expect_eq(s.win[2].mh_per_j, 0);
	cr_expect_eq(s.win[2].hashes_per_s, 0);

	/* Mining again, then the worker's counters fall (a new worker object): the window starts
	 * over from the lower value instead of counting a negative (or wrapped) difference. */
	switch_to(f, HF_MODE_MINING);
	wait_snap(f, covered_in, &mining, &s, "the second mining run");
	uint64_t low = 50;
	uint64_t t_back = hf_mono_ms();
	atomic_store(&f->mining.hashes, low);
	wait_snap(f, totals_hashes, &low, &s, "the lower counters");
	cr_expect_leq(s.win[2].covered_s, (double)(hf_mono_ms() - t_back) / 1000.0 + 0.011);
	cr_expect_geq(s.win[2].hashes_per_s, 0);
	cr_expect_eq(s.win[2].mh_per_j, 0);
	fx_free(f);
}

static bool one_minute_past_ten(const hf_telemetry_snapshot *s, const void *arg)
{
	return s->win[1].covered_s > 10.3;
}

/* The 10 s window stops at 10 s (plus half a sample interval) while the longer ones grow. */
Test(telemetry, a_window_covers_no_more_than_its_length, .timeout = 60)
{
	fixture *f = fx_new(50);
	hf_telemetry_snapshot s;

	wait_snap(f, one_minute_past_ten, NULL, &s, "11 s of samples");
	cr_expect_leq(s.win[0].covered_s, 10.025 + 1e-9);
	cr_expect_gt(s.win[0].covered_s, 0);
	cr_expect_gt(s.win[2].covered_s, 10.3);
	expect_energy(&s);
	fx_free(f);
}

Test(telemetry, status_metrics_and_report_serialise_one_snapshot)
{
	fixture *f = fx_new(20);
	hf_telemetry_snapshot s;
	hf_mode mining = HF_MODE_MINING;
	uint64_t h1 = 4000000000ull;

	switch_to(f, HF_MODE_MINING);
	wait_snap(f, covered_in, &mining, &s, "a mining window");
	atomic_store(&f->mining.hashes, h1);
	hf_telemetry_set_target(f->t, 150);
	wait_snap(f, totals_hashes, &h1, &s, "hashes");
	cr_expect(s.target_set);
	cr_expect_eq(s.target_w, 150);

	json_t *st = json_object();
	hf_telemetry_status_json(&s, st);
	json_t *p = json_object_get(st, "power"), *e = json_object_get(st, "efficiency");
	cr_assert(json_is_object(p) && json_is_object(e));
	expect_close(json_number_value(json_object_get(p, "watts")), WATTS, 1e-6, "status watts");
	cr_expect_str_eq(json_string_value(json_object_get(p, "source")), "estimate");
	cr_expect_str_eq(json_string_value(json_object_get(p, "boundary")), "estimate");
	cr_expect(json_is_true(json_object_get(p, "estimated")));
	cr_expect(json_is_false(json_object_get(p, "degraded")));
	cr_expect_eq(json_number_value(json_object_get(p, "target_w")), 150);
	cr_expect(json_is_string(json_object_get(p, "detail")));
	json_t *w15 = json_object_get(json_object_get(p, "windows"), "15m");
	cr_expect_eq(json_integer_value(json_object_get(w15, "seconds")), 900);
	expect_close(json_number_value(json_object_get(w15, "mh_per_j")), s.win[2].mh_per_j, 1e-12, "15m");
	cr_expect_str_eq(json_string_value(json_object_get(e, "mode")), "mining");
	cr_expect_str_eq(json_string_value(json_object_get(e, "source")), "estimate");
	expect_close(json_number_value(json_object_get(json_object_get(e, "mh_per_j"), "15m")),
		     s.win[2].mh_per_j, 1e-12, "efficiency 15m");
	cr_expect_null(json_object_get(e, "gflop_per_j"));
	json_decref(st);

	hf_buf b;
	hf_buf_init(&b, 1 << 20);
	hf_telemetry_metrics(&s, &b);
	const char *text = (const char *)b.data;
	cr_expect(strstr(text, "# TYPE hashflop_power_watts gauge\n"));
	cr_expect(strstr(text, "hashflop_power_watts{source=\"estimate\",boundary=\"estimate\",estimated=\"true\"} 200"),
		  "%s", text);
	cr_expect(strstr(text, "# TYPE hashflop_energy_joules_total counter\n"));
	cr_expect(strstr(text, "hashflop_power_target_watts 150\n"), "%s", text);
	cr_expect(strstr(text, "hashflop_efficiency_mh_per_joule{window=\"15m\",source=\"estimate\",estimated=\"true\"} "),
		  "%s", text);
	cr_expect_null(strstr(text, "hashflop_efficiency_gflop_per_joule"), "an inference family while mining");
	cr_expect_null(strstr(text, "hashflop_idle_watts"));
	hf_buf_free(&b);

	json_t *r = hf_telemetry_report_json(&s);
	static const char *const keys[] = { "watts", "joules_total", "source", "boundary", "estimated",
					    "window_s", "window_watts", "mh_per_j", "gflop_per_j",
					    "inferences_per_j" };
	cr_assert_not_null(r);
	cr_expect_eq(json_object_size(r), sizeof keys / sizeof keys[0], "the report has extra keys");
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		cr_expect_not_null(json_object_get(r, keys[i]), "report key %s", keys[i]);
	expect_close(json_number_value(json_object_get(r, "window_s")), s.win[1].covered_s, 1e-12, "window_s");
	expect_close(json_number_value(json_object_get(r, "mh_per_j")), s.win[1].mh_per_j, 1e-12, "report MH/J");
	expect_close(json_number_value(json_object_get(r, "window_watts")), WATTS, 1e-6, "report watts");
	cr_expect_eq(json_number_value(json_object_get(r, "gflop_per_j")), 0);
	json_decref(r);

	/* Idle: its own family and efficiency field. */
	switch_to(f, HF_MODE_IDLE);
	hf_mode idle = HF_MODE_IDLE;
	wait_snap(f, covered_in, &idle, &s, "an idle window");
	st = json_object();
	hf_telemetry_status_json(&s, st);
	expect_close(json_number_value(json_object_get(json_object_get(json_object_get(st, "efficiency"),
								       "idle_watts"), "1m")),
		     WATTS, 1e-6, "idle_watts");
	json_decref(st);
	hf_buf_init(&b, 1 << 20);
	hf_telemetry_metrics(&s, &b);
	cr_expect(strstr((const char *)b.data, "hashflop_idle_watts{window=\"1m\""));
	cr_expect_null(strstr((const char *)b.data, "hashflop_efficiency_mh_per_joule"));
	hf_buf_free(&b);
	fx_free(f);
}

Test(telemetry, bad_options_are_refused)
{
	hf_telemetry *t = (hf_telemetry *)1;
	hf_telemetry_opts o = { 0 };
	hf_errbuf eb;

	cr_expect_eq(hf_telemetry_new(&o, &t, &eb), HF_EINVAL);
	cr_expect_null(t);
	hf_telemetry_free(NULL);
}
