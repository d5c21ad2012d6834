/* Unit tests for hf_mode: the switcher with test workers that take a measurable time to drain,
 * no-op repeats, queued requests, failed starts, shutdown drain, status and metrics. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "hf_mode.h"
#include "hf_util.h"

typedef struct tworker {
	atomic_int starts, drains, releases;
	uint64_t drain_ms;
	int fail_start;
	uint64_t start_ms;
	atomic_int order[32];
	atomic_int norder;
	int tag;
} tworker;

static atomic_int global_order[64];
static atomic_int global_n;

static int tw_start(void *impl, const json_t *params, hf_errbuf *eb)
{
	tworker *w = impl;
	atomic_fetch_add(&w->starts, 1);
	global_order[atomic_fetch_add(&global_n, 1) % 64] = w->tag;
	if (w->start_ms)
		hf_sleep_ms(w->start_ms);
	if (w->fail_start)
		return hf_fail(eb, HF_ENOTFOUND, "no device");
	return 0;
}

static int tw_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb)
{
	tworker *w = impl;
	atomic_fetch_add(&w->drains, 1);
	uint64_t until = hf_mono_ms() + w->drain_ms;
	if (until > deadline_ms) {
		hf_sleep_ms(deadline_ms > hf_mono_ms() ? deadline_ms - hf_mono_ms() : 0);
		return hf_fail(eb, HF_ETIMEOUT, "cut short");
	}
	hf_sleep_ms(w->drain_ms);
	return 0;
}

static void tw_release(void *impl)
{
	tworker *w = impl;
	atomic_fetch_add(&w->releases, 1);
}

static void tw_status(void *impl, json_t *obj)
{
	json_object_set_new(obj, "test_worker", json_true());
}

static void tw_metrics(void *impl, hf_buf *b)
{
	hf_buf_printf(b, "hashflop_test_worker 1\n");
}

static hf_modes *machine(uint64_t drain_timeout, tworker *mining, tworker *inference)
{
	hf_modes *m;
	hf_errbuf eb;
	cr_assert_eq(hf_modes_new(drain_timeout, &m, &eb), 0);
	if (mining) {
		mining->tag = 1;
		hf_mode_worker w = { .mode = HF_MODE_MINING, .impl = mining, .start = tw_start,
				     .drain = tw_drain, .release = tw_release, .status = tw_status,
				     .metrics = tw_metrics };
		cr_assert_eq(hf_modes_register(m, &w, &eb), 0);
	}
	if (inference) {
		inference->tag = 2;
		hf_mode_worker w = { .mode = HF_MODE_INFERENCE, .impl = inference, .start = tw_start,
				     .drain = tw_drain, .release = tw_release };
		cr_assert_eq(hf_modes_register(m, &w, &eb), 0);
	}
	return m;
}

Test(mode, names_round_trip)
{
	hf_mode m;
	for (int i = 0; i < HF_MODE_COUNT; i++) {
		cr_assert(hf_mode_parse(hf_mode_name((hf_mode)i), &m));
		cr_assert_eq((int)m, i);
	}
	cr_assert_not(hf_mode_parse("Mining", &m));
	cr_assert_not(hf_mode_parse(NULL, &m));
	cr_assert_str_eq(hf_mode_phase_name(HF_PHASE_DRAINING), "draining");
}

Test(mode, idle_only_machine_refuses_other_modes)
{
	hf_modes *m = machine(1000, NULL, NULL);
	hf_errbuf eb;
	hf_modes_info info;
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, &eb), HF_EUNSUPPORTED);
	cr_assert(strstr(eb.msg, "mode mining is not available"));
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, &eb), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.phase, HF_PHASE_RUNNING);
	cr_assert_eq(info.switches_total, 1);
	cr_assert(info.last.from_none);
	hf_modes_free(m);
}

Test(mode, switch_records_a_measurable_drain)
{
	tworker mining = { .drain_ms = 120 };
	hf_modes *m = machine(5000, &mining, NULL);
	hf_modes_info info;
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert_eq(atomic_load(&mining.starts), 1);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.last.from, HF_MODE_MINING);
	cr_assert_eq(info.last.to, HF_MODE_IDLE);
	cr_assert_geq(info.last.drain_ms, 120, "drain %llu ms", (unsigned long long)info.last.drain_ms);
	cr_assert_lt(info.last.drain_ms, 2000);
	cr_assert_geq(info.last.total_ms, info.last.drain_ms);
	cr_assert_eq(info.last.result, 0);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	cr_assert_eq(atomic_load(&mining.releases), 1);
	hf_modes_free(m);
}

Test(mode, drain_is_cut_at_the_deadline)
{
	tworker mining = { .drain_ms = 5000 };
	hf_modes *m = machine(150, &mining, NULL);
	hf_modes_info info;
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	hf_modes_request(m, HF_MODE_IDLE, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_geq(info.last.drain_ms, 140);
	cr_assert_lt(info.last.drain_ms, 1500);
	cr_assert(strstr(info.last.error, "drain of mining: timed out"), "%s", info.last.error);
	hf_modes_free(m);
}

Test(mode, repeat_of_the_current_mode_is_a_noop)
{
	tworker mining = { 0 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_info info;
	json_t *p1 = json_pack("{s:s}", "pool", "a"), *p2 = json_pack("{s:s}", "pool", "b");
	hf_modes_request(m, HF_MODE_MINING, p1, NULL);
	hf_modes_request(m, HF_MODE_MINING, p1, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.switches_total, 1);
	cr_assert_eq(info.noop_total, 1);
	cr_assert_eq(atomic_load(&mining.starts), 1);
	/* Same mode, new parameters: a real switch (drain, release, start). */
	hf_modes_request(m, HF_MODE_MINING, p2, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.switches_total, 2);
	cr_assert_eq(atomic_load(&mining.starts), 2);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	json_decref(p1);
	json_decref(p2);
	hf_modes_free(m);
}

Test(mode, requests_mid_switch_are_queued_in_order)
{
	tworker mining = { .start_ms = 100, .drain_ms = 50 }, inference = { .drain_ms = 50 };
	hf_modes *m = machine(1000, &mining, &inference);
	hf_modes_info info;
	atomic_store(&global_n, 0);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	hf_modes_request(m, HF_MODE_INFERENCE, NULL, NULL);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.desired, HF_MODE_MINING);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert_eq(info.switches_total, 3);
	cr_assert_eq(atomic_load(&global_n), 3);
	cr_assert_eq(global_order[0], 1);
	cr_assert_eq(global_order[1], 2);
	cr_assert_eq(global_order[2], 1);
	cr_assert_eq(atomic_load(&inference.drains), 1);
	cr_assert_geq(info.last.queued_ms, 50, "the third request waited behind two switches");
	hf_modes_free(m);
}

Test(mode, queue_is_bounded)
{
	tworker mining = { .start_ms = 300 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_errbuf eb;
	int busy = 0;
	for (int i = 0; i < HF_MODES_QUEUE_MAX + 4; i++)
		if (hf_modes_request(m, i % 2 ? HF_MODE_IDLE : HF_MODE_MINING, NULL, &eb) == HF_EBUSY)
			busy++;
	cr_assert_geq(busy, 2);
	cr_assert(strstr(eb.msg, "already queued"));
	hf_modes_free(m);
}

Test(mode, failed_start_falls_back_to_idle)
{
	tworker mining = { .fail_start = 1 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_info info;
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.desired, HF_MODE_MINING);
	cr_assert_eq(info.last.result, HF_ENOTFOUND);
	cr_assert_str_eq(info.last.error, "start of mining: not found: no device");
	cr_assert_eq(info.switch_failures_total, 1);
	cr_assert_eq(atomic_load(&mining.releases), 1, "a failed start is released");
	hf_modes_free(m);
}

Test(mode, shutdown_drains_the_current_worker)
{
	tworker mining = { .drain_ms = 30 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_free(m);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	cr_assert_eq(atomic_load(&mining.releases), 1);
	hf_modes_free(NULL);
}

Test(mode, status_and_metrics)
{
	tworker mining = { 0 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_buf b;
	json_t *st = json_object();
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_status_json(m, st);
	cr_assert_str_eq(json_string_value(json_object_get(st, "mode")), "mining");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "running");
	cr_assert(json_is_true(json_object_get(st, "test_worker")));
	json_t *last = json_object_get(st, "last_switch");
	cr_assert(json_is_null(json_object_get(last, "from")));
	cr_assert(json_is_integer(json_object_get(json_object_get(last, "phases_ms"), "drain")));
	json_decref(st);
	hf_buf_init(&b, 0);
	hf_modes_metrics(m, &b);
	cr_assert(strstr(b.data, "hashflop_mode{mode=\"mining\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_mode{mode=\"idle\"} 0\n"));
	cr_assert(strstr(b.data, "# TYPE hashflop_mode_switch_duration_seconds histogram\n"));
	cr_assert(strstr(b.data, "hashflop_mode_switch_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_test_worker 1\n"));
	hf_buf_free(&b);
	hf_modes_free(m);
}
