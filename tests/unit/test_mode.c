/* Unit tests for hf_mode: the switcher with test workers that take a measurable time to drain,
 * no-op repeats, coalesced requests (the latest desired state wins), failed starts retried with
 * backoff until they succeed, health failures restarting the mode, the request waits, shutdown
 * drain, status and metrics, and the watchdog verdict (a drain, start or health check wedged on a
 * gate the test opens, health checks that stop completing, health failures in a row). Gates (flags the test opens) order the steps; durations are logged,
 * never compared with a threshold that a loaded machine could break. */
#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "hf_mode.h"
#include "hf_util.h"

typedef struct tworker {
	atomic_int starts, drains, releases, health_calls;
	uint64_t drain_ms;
	uint64_t start_ms;
	atomic_int fail_starts;   /* starts fail while this is > 0 (each failure decrements it) */
	atomic_bool gate_closed;  /* start waits while true */
	atomic_int health_fail;   /* health() fails this many times */
	atomic_bool drain_held;   /* drain waits while true (a wedged drain) */
	atomic_bool health_held;  /* health waits while true (a wedged health check) */
	atomic_int hold_start_n;  /* the start numbered this (1, 2...) waits while hold_start */
	atomic_bool hold_start;
	atomic_int in_drain, in_health; /* callbacks under way */
	int tag;
} tworker;

static atomic_int global_order[64];
static atomic_int global_n;

static int tw_start(void *impl, const json_t *params, hf_errbuf *eb)
{
	tworker *w = impl;
	int n = atomic_fetch_add(&w->starts, 1) + 1;
	global_order[atomic_fetch_add(&global_n, 1) % 64] = w->tag;
	while (atomic_load(&w->gate_closed))
		hf_sleep_ms(1);
	while (n == atomic_load(&w->hold_start_n) && atomic_load(&w->hold_start))
		hf_sleep_ms(1);
	if (w->start_ms)
		hf_sleep_ms(w->start_ms);
	if (atomic_load(&w->fail_starts) > 0) {
		atomic_fetch_sub(&w->fail_starts, 1);
		return hf_fail(eb, HF_ENOTFOUND, "no device");
	}
	return 0;
}

static int tw_drain(void *impl, uint64_t deadline_ms, hf_errbuf *eb)
{
	tworker *w = impl;
	atomic_fetch_add(&w->drains, 1);
	atomic_fetch_add(&w->in_drain, 1);
	while (atomic_load(&w->drain_held))
		hf_sleep_ms(1);
	atomic_fetch_sub(&w->in_drain, 1);
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

static int tw_health(void *impl, hf_errbuf *eb)
{
	tworker *w = impl;
	atomic_fetch_add(&w->health_calls, 1);
	atomic_fetch_add(&w->in_health, 1);
	while (atomic_load(&w->health_held))
		hf_sleep_ms(1);
	atomic_fetch_sub(&w->in_health, 1);
	if (atomic_load(&w->health_fail) > 0) {
		atomic_fetch_sub(&w->health_fail, 1);
		return hf_fail(eb, HF_ECL, "device lost\n<0>forged");
	}
	return 0;
}

static hf_modes *machine_opts(const hf_modes_opts *o, tworker *mining, tworker *inference)
{
	hf_modes *m;
	hf_errbuf eb;
	cr_assert_eq(hf_modes_new(o, &m, &eb), 0);
	if (mining) {
		mining->tag = 1;
		hf_mode_worker w = { .mode = HF_MODE_MINING, .impl = mining, .start = tw_start,
				     .drain = tw_drain, .release = tw_release, .status = tw_status,
				     .metrics = tw_metrics, .health = tw_health };
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

/* Retries and health checks far apart unless a test asks otherwise. */
static hf_modes *machine(uint64_t drain_timeout, tworker *mining, tworker *inference)
{
	hf_modes_opts o = { .drain_timeout_ms = drain_timeout, .retry_min_ms = 600000,
			    .retry_max_ms = 600000, .health_interval_ms = 600000 };
	return machine_opts(&o, mining, inference);
}

/* Polls until *v >= want (deadline 20 s). */
static bool wait_atomic(atomic_int *v, int want)
{
	uint64_t end = hf_mono_ms() + 20000;
	while (atomic_load(v) < want) {
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(1);
	}
	return true;
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
	cr_assert_str_eq(hf_modes_conv_name(HF_CONV_RETRYING), "retrying");
	cr_assert_str_eq(hf_modes_conv_name(HF_CONV_FAILED), "failed");
}

Test(mode, idle_only_machine_refuses_other_modes)
{
	hf_modes *m = machine(1000, NULL, NULL);
	hf_errbuf eb;
	hf_modes_info info;
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, &eb), HF_EUNSUPPORTED);
	cr_assert(strstr(eb.msg, "mode mining is not available"));
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, &eb), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.phase, HF_PHASE_RUNNING);
	cr_assert_eq(info.switches_total, 1);
	cr_assert(info.last.from_none);
	cr_assert(info.converged);
	cr_assert_str_eq(info.reason, "");
	hf_modes_free(m);
}

Test(mode, switch_records_a_measurable_drain)
{
	tworker mining = { .drain_ms = 120 };
	hf_modes *m = machine(5000, &mining, NULL);
	hf_modes_info info;
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert_eq(atomic_load(&mining.starts), 1);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.last.from, HF_MODE_MINING);
	cr_assert_eq(info.last.to, HF_MODE_IDLE);
	/* The worker slept 120 ms in its drain: the record cannot show less. */
	cr_assert_geq(info.last.drain_ms, 120, "drain %llu ms", (unsigned long long)info.last.drain_ms);
	cr_assert_geq(info.last.total_ms, info.last.drain_ms);
	fprintf(stderr, "# drain %llu ms, total %llu ms\n", (unsigned long long)info.last.drain_ms,
		(unsigned long long)info.last.total_ms);
	cr_assert_eq(info.last.result, 0);
	cr_assert_eq(info.last.trigger, HF_TRIGGER_REQUEST);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	cr_assert_eq(atomic_load(&mining.releases), 1);
	hf_modes_free(m);
}

Test(mode, drain_is_cut_at_the_deadline)
{
	tworker mining = { .drain_ms = 60000 };
	hf_modes *m = machine(150, &mining, NULL);
	hf_modes_info info;
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 30000), "a 60 s drain was not cut at the 150 ms deadline");
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_geq(info.last.drain_ms, 150);
	fprintf(stderr, "# drain cut after %llu ms (deadline 150 ms)\n",
		(unsigned long long)info.last.drain_ms);
	cr_assert(strstr(info.last.error, "drain of mining: timed out"), "%s", info.last.error);
	hf_modes_free(m);
}

Test(mode, repeat_of_the_current_mode_is_a_noop)
{
	tworker mining = { 0 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_info info;
	json_t *p1 = json_pack("{s:s}", "pool", "a"), *p2 = json_pack("{s:s}", "pool", "b");
	hf_modes_request(m, HF_MODE_MINING, p1, NULL, NULL);
	hf_modes_request(m, HF_MODE_MINING, p1, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.switches_total, 1);
	cr_assert_eq(info.noop_total, 1);
	cr_assert_eq(atomic_load(&mining.starts), 1);
	/* Same mode, new parameters: a real switch (drain, release, start). */
	hf_modes_request(m, HF_MODE_MINING, p2, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.switches_total, 2);
	cr_assert_eq(atomic_load(&mining.starts), 2);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	cr_assert(info.converged);
	json_decref(p1);
	json_decref(p2);
	hf_modes_free(m);
}

/* Requests that arrive while a switch runs replace one pending desired state: the last wins and
 * the ones in between are never executed. */
Test(mode, requests_mid_switch_coalesce_to_the_latest)
{
	tworker mining = { 0 }, inference = { 0 };
	hf_modes *m = machine(1000, &mining, &inference);
	hf_modes_info info;
	json_t *p = json_pack("{s:i}", "v", 2);

	atomic_store(&mining.gate_closed, true);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(wait_atomic(&mining.starts, 1), "the first switch never started");
	/* The switch to mining is in its start: these four arrive behind it. */
	cr_assert_eq(hf_modes_request(m, HF_MODE_INFERENCE, NULL, NULL, NULL), 0);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL), 0);
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, p, NULL, NULL), 0);
	cr_assert_eq(hf_modes_request(m, HF_MODE_INFERENCE, NULL, NULL, NULL), 0);
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.desired, HF_MODE_INFERENCE);
	cr_assert(info.pending);
	cr_assert_not(info.converged);
	cr_assert_eq(info.coalesced_total, 3);
	atomic_store(&mining.gate_closed, false);
	cr_assert(hf_modes_wait_converged(m, 10000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_INFERENCE);
	cr_assert_eq(info.switches_total, 2, "mining, then straight to the latest desired state");
	cr_assert_eq(atomic_load(&mining.starts), 1);
	cr_assert_eq(atomic_load(&mining.drains), 1);
	cr_assert_eq(atomic_load(&inference.starts), 1);
	cr_assert_eq(info.last.from, HF_MODE_MINING);
	cr_assert_eq(info.last.to, HF_MODE_INFERENCE);
	json_decref(p);
	hf_modes_free(m);
}

/* Many more requests than switches (the old queue held 16 and then refused with HF_EBUSY):
 * every request is taken, the node ends in the last one and says it converged. */
Test(mode, many_requests_faster_than_switches_end_in_the_last)
{
	tworker mining = { .start_ms = 3, .drain_ms = 3 }, inference = { .start_ms = 3, .drain_ms = 3 };
	hf_modes *m = machine(1000, &mining, &inference);
	hf_modes_info info;
	hf_errbuf eb;
	const int n = 200;

	for (int i = 0; i < n; i++) {
		hf_mode target = (hf_mode)(i % HF_MODE_COUNT);
		json_t *p = target == HF_MODE_MINING ? json_pack("{s:i}", "i", i) : NULL;
		cr_assert_eq(hf_modes_request(m, target, p, NULL, &eb), 0, "request %d: %s", i, eb.msg);
		json_decref(p);
	}
	/* The last request: i = 199, 199 % 3 = 1: mining with {"i": 199}. */
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(hf_modes_wait_settled(m, 20000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert_eq(info.desired, HF_MODE_MINING);
	cr_assert(info.converged);
	cr_assert_eq(info.conv, HF_CONV_CONVERGED);
	cr_assert_not(info.pending);
	/* Each request changed the desired state, so each one was either executed, found already
	 * running, or replaced before the switcher got to it. */
	cr_assert_eq(info.switches_total + info.noop_total + info.coalesced_total, (uint64_t)n,
		     "switches %llu + noops %llu + coalesced %llu != %d",
		     (unsigned long long)info.switches_total, (unsigned long long)info.noop_total,
		     (unsigned long long)info.coalesced_total, n);
	fprintf(stderr, "# %d requests: %llu switches, %llu coalesced\n", n,
		(unsigned long long)info.switches_total, (unsigned long long)info.coalesced_total);
	json_t *st = json_object();
	hf_modes_status_json(m, st);
	cr_assert(json_is_true(json_object_get(st, "converged")));
	json_decref(st);
	hf_modes_free(m);
}

Test(mode, failed_start_falls_back_to_idle)
{
	tworker mining = { 0 };
	atomic_store(&mining.fail_starts, INT_MAX);
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_info info;
	hf_modes_ticket t;
	char err[256];
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, &t, NULL), 0);
	cr_assert_eq(hf_modes_wait_applied(m, &t, 10000, err, sizeof err), HF_MODES_START_FAILED);
	cr_assert_str_eq(err, "start of mining: not found: no device");
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.phase, HF_PHASE_RUNNING);
	cr_assert_eq(info.desired, HF_MODE_MINING);
	cr_assert_eq(info.last.result, HF_ENOTFOUND);
	cr_assert_str_eq(info.last.error, "start of mining: not found: no device");
	cr_assert_eq(info.switch_failures_total, 1);
	cr_assert_not(info.converged);
	cr_assert_eq(info.conv, HF_CONV_RETRYING);
	cr_assert_eq(info.attempts, 1);
	cr_assert_gt(info.next_attempt_in_ms, 0);
	cr_assert(strstr(info.reason, "start of mining: not found: no device (attempt 1)"), "%s", info.reason);
	cr_assert_eq(atomic_load(&mining.releases), 1, "a failed start is released");
	hf_modes_free(m);
}

/* A start that fails N times is retried with backoff until it succeeds; in between the machine
 * says it has not converged and why. */
Test(mode, failed_start_is_retried_until_it_succeeds)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 10, .retry_max_ms = 40,
			    .health_interval_ms = 600000 };
	atomic_store(&mining.fail_starts, INT_MAX);
	hf_modes *m = machine_opts(&o, &mining, NULL);
	hf_modes_info info;
	json_t *st = json_object();

	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(wait_atomic(&mining.starts, 4), "the failed start was not retried");
	hf_modes_snapshot(m, &info);
	cr_assert_not(info.converged);
	cr_assert_eq(info.mode, HF_MODE_IDLE, "idle while retrying");
	cr_assert_eq(info.desired, HF_MODE_MINING, "the desired mode stays");
	cr_assert_geq(info.retries_total, 3);
	cr_assert(strstr(info.reason, "start of mining: not found: no device"), "%s", info.reason);
	hf_modes_status_json(m, st);
	cr_assert(json_is_false(json_object_get(st, "converged")));
	json_t *cv = json_object_get(st, "convergence");
	const char *state = json_string_value(json_object_get(cv, "state"));
	cr_assert(strcmp(state, "retrying") == 0 || strcmp(state, "switching") == 0, "%s", state);
	cr_assert(strstr(json_string_value(json_object_get(cv, "reason")), "mining"));
	cr_assert_geq(json_integer_value(json_object_get(cv, "attempts")), 1);
	json_decref(st);

	atomic_store(&mining.fail_starts, 0);
	cr_assert(hf_modes_wait_converged(m, 20000), "never converged after the device came back");
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert(info.converged);
	cr_assert_str_eq(info.reason, "");
	cr_assert_eq(info.attempts, 0);
	cr_assert_eq(info.last.result, 0);
	cr_assert_eq(info.last.trigger, HF_TRIGGER_RETRY);
	cr_assert_gt(info.last.attempt, 1);
	cr_assert_eq(info.switch_failures_total + 1, (uint64_t)atomic_load(&mining.starts));
	cr_assert_eq(atomic_load(&mining.releases), atomic_load(&mining.starts) - 1);
	hf_buf b;
	hf_buf_init(&b, 0);
	hf_modes_metrics(m, &b);
	cr_assert(strstr(b.data, "hashflop_mode_converged 1\n"));
	cr_assert(strstr(b.data, "# TYPE hashflop_mode_start_retries_total counter\n"));
	hf_buf_free(&b);
	hf_modes_free(m);
}

/* Sending the desired state again while it waits for a retry tries at once. */
Test(mode, repeating_a_failing_desired_state_retries_now)
{
	tworker mining = { 0 };
	atomic_store(&mining.fail_starts, 1);
	hf_modes *m = machine(1000, &mining, NULL); /* next retry in 10 minutes */
	hf_modes_ticket t;
	char err[256];

	hf_modes_request(m, HF_MODE_MINING, NULL, &t, NULL);
	cr_assert_eq(hf_modes_wait_applied(m, &t, 10000, err, sizeof err), HF_MODES_START_FAILED);
	hf_modes_request(m, HF_MODE_MINING, NULL, &t, NULL);
	cr_assert_eq(hf_modes_wait_applied(m, &t, 20000, err, sizeof err), HF_MODES_APPLIED,
		     "the repeat did not bring the retry forward");
	cr_assert_eq(atomic_load(&mining.starts), 2);
	hf_modes_free(m);
}

/* A running worker that fails its health check is stopped (idle meanwhile) and restarted. */
Test(mode, health_failure_restarts_the_mode)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 10, .retry_max_ms = 40,
			    .health_interval_ms = 5 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	hf_modes_info info;

	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_converged(m, 10000));
	cr_assert(wait_atomic(&mining.health_calls, 2), "health() is not called while running");
	/* From now on the restart fails until the test lets it succeed. */
	atomic_store(&mining.fail_starts, INT_MAX);
	atomic_store(&mining.health_fail, 1);
	uint64_t end = hf_mono_ms() + 20000;
	do {
		hf_modes_snapshot(m, &info);
		hf_sleep_ms(1);
	} while (info.health_failures_total == 0 && hf_mono_ms() < end);
	cr_assert_eq(info.health_failures_total, 1);
	cr_assert(wait_atomic(&mining.starts, 2), "the failed mode was not restarted");
	hf_modes_snapshot(m, &info);
	cr_assert_not(info.converged);
	cr_assert(info.conv == HF_CONV_FAILED || info.conv == HF_CONV_RETRYING ||
		  info.conv == HF_CONV_SWITCHING, "%s", hf_modes_conv_name(info.conv));
	cr_assert_eq(atomic_load(&mining.drains), 1, "the failed worker was drained");
	cr_assert_geq(atomic_load(&mining.releases), 1, "and released");
	json_t *st = json_object();
	hf_modes_status_json(m, st);
	cr_assert(json_is_false(json_object_get(st, "converged")));
	json_t *cv = json_object_get(st, "convergence");
	cr_assert_eq(json_integer_value(json_object_get(cv, "health_failures")), 1);
	json_decref(st);
	hf_buf b;
	hf_buf_init(&b, 0);
	hf_modes_metrics(m, &b);
	cr_assert(strstr(b.data, "hashflop_mode_health_failures_total 1\n"), "%s", b.data);
	hf_buf_free(&b);

	atomic_store(&mining.fail_starts, 0);
	cr_assert(hf_modes_wait_converged(m, 20000), "never restarted");
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_MINING);
	cr_assert_eq(info.last.result, 0);
	cr_assert(info.last.trigger == HF_TRIGGER_RESTART || info.last.trigger == HF_TRIGGER_RETRY);
	cr_assert_eq(info.health_failures_total, 1);
	hf_modes_free(m);
}

/* The health failure's own record: mining -> idle, the cleaned reason, counted once. */
Test(mode, health_failure_is_recorded_and_cleaned)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 600000,
			    .retry_max_ms = 600000, .health_interval_ms = 5 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	hf_modes_info info;

	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_converged(m, 10000));
	atomic_store(&mining.health_fail, 1);
	uint64_t end = hf_mono_ms() + 20000;
	do {
		hf_sleep_ms(1);
		hf_modes_snapshot(m, &info);
	} while ((info.health_failures_total == 0 || info.mode != HF_MODE_IDLE) && hf_mono_ms() < end);
	cr_assert(hf_modes_wait_settled(m, 10000));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.mode, HF_MODE_IDLE);
	cr_assert_eq(info.desired, HF_MODE_MINING);
	cr_assert_eq(info.conv, HF_CONV_FAILED);
	cr_assert_eq(info.last.trigger, HF_TRIGGER_HEALTH);
	cr_assert_eq(info.last.from, HF_MODE_MINING);
	cr_assert_eq(info.last.to, HF_MODE_IDLE);
	cr_assert_eq(info.last.result, HF_ECL);
	cr_assert_str_eq(info.last.error, "health of mining: OpenCL error: device lost?<0>forged");
	cr_assert(strstr(info.reason, "mining mode failed while running"), "%s", info.reason);
	cr_assert_null(strchr(info.reason, '\n'));
	cr_assert_eq(info.switch_failures_total, 0, "not a failed start");
	cr_assert_gt(info.next_attempt_in_ms, 0);
	hf_modes_free(m);
}

typedef struct waiter {
	hf_modes *m;
	hf_modes_ticket t;
	hf_modes_wait res;
} waiter;

static void *wait_thread(void *arg)
{
	waiter *w = arg;
	w->res = hf_modes_wait_applied(w->m, &w->t, 60000, NULL, 0);
	return NULL;
}

Test(mode, waits_answer_applied_superseded_pending_and_shutdown)
{
	tworker mining = { 0 }, inference = { 0 };
	hf_modes *m = machine(1000, &mining, &inference);
	hf_modes_ticket t1, t2;
	char err[64];

	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, &t1, NULL), 0);
	cr_assert_eq(hf_modes_wait_applied(m, &t1, 10000, err, sizeof err), HF_MODES_APPLIED);
	/* Equal to the running state: applied at once. */
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, &t1, NULL), 0);
	cr_assert_eq(hf_modes_wait_applied(m, &t1, 0, err, sizeof err), HF_MODES_APPLIED);

	atomic_store(&mining.gate_closed, true);
	hf_modes_request(m, HF_MODE_MINING, NULL, &t1, NULL);
	cr_assert_eq(hf_modes_wait_applied(m, &t1, 20, err, sizeof err), HF_MODES_PENDING);
	hf_modes_request(m, HF_MODE_INFERENCE, NULL, &t2, NULL);
	cr_assert_eq(hf_modes_wait_applied(m, &t1, 10000, err, sizeof err), HF_MODES_SUPERSEDED);
	atomic_store(&mining.gate_closed, false);
	cr_assert_eq(hf_modes_wait_applied(m, &t2, 10000, err, sizeof err), HF_MODES_APPLIED);

	atomic_store(&mining.gate_closed, true);
	waiter w = { .m = m };
	hf_modes_request(m, HF_MODE_MINING, NULL, &w.t, NULL);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
	hf_modes_shutdown(m);
	pthread_join(th, NULL);
	cr_assert_eq(w.res, HF_MODES_SHUTDOWN);
	hf_errbuf eb;
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, &eb), HF_ESTATE);
	atomic_store(&mining.gate_closed, false);
	hf_modes_free(m);
}

Test(mode, shutdown_while_retrying_returns)
{
	tworker mining = { 0 };
	atomic_store(&mining.fail_starts, INT_MAX);
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_free(m); /* must not wait for the retry scheduled 10 minutes ahead */
	cr_assert_eq(atomic_load(&mining.starts), 1);
}

Test(mode, shutdown_drains_the_current_worker)
{
	tworker mining = { .drain_ms = 30 };
	hf_modes *m = machine(1000, &mining, NULL);
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
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
	hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL);
	cr_assert(hf_modes_wait_settled(m, 5000));
	hf_modes_status_json(m, st);
	cr_assert_str_eq(json_string_value(json_object_get(st, "mode")), "mining");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "running");
	cr_assert(json_is_true(json_object_get(st, "converged")));
	json_t *cv = json_object_get(st, "convergence");
	cr_assert_str_eq(json_string_value(json_object_get(cv, "state")), "converged");
	cr_assert(json_is_null(json_object_get(cv, "next_attempt_in_ms")));
	cr_assert(json_is_null(json_object_get(cv, "reason")));
	cr_assert(json_is_true(json_object_get(st, "test_worker")));
	json_t *last = json_object_get(st, "last_switch");
	cr_assert(json_is_null(json_object_get(last, "from")));
	cr_assert_str_eq(json_string_value(json_object_get(last, "trigger")), "request");
	cr_assert(json_is_integer(json_object_get(json_object_get(last, "phases_ms"), "drain")));
	json_decref(st);
	hf_buf_init(&b, 0);
	hf_modes_metrics(m, &b);
	cr_assert(strstr(b.data, "hashflop_mode{mode=\"mining\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_mode{mode=\"idle\"} 0\n"));
	cr_assert(strstr(b.data, "hashflop_mode_desired{mode=\"mining\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_mode_converged 1\n"));
	cr_assert(strstr(b.data, "# TYPE hashflop_mode_switch_duration_seconds histogram\n"));
	cr_assert(strstr(b.data, "hashflop_mode_switch_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
	cr_assert(strstr(b.data, "hashflop_test_worker 1\n"));
	hf_buf_free(&b);
	hf_modes_free(m);
}

/* ---- the watchdog verdict ---- */

/* Polls the verdict until it is bad with a reason containing needle (deadline 20 s); the
 * reason in why. */
static bool wait_verdict_bad(hf_modes *m, const char *needle, char *why, size_t whysz)
{
	uint64_t end = hf_mono_ms() + 20000;
	for (;;) {
		if (!hf_modes_watchdog(m, why, whysz) && strstr(why, needle))
			return true;
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(1);
	}
}

static bool wait_verdict_good(hf_modes *m)
{
	uint64_t end = hf_mono_ms() + 20000;
	char why[512];
	while (!hf_modes_watchdog(m, why, sizeof why)) {
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(1);
	}
	return why[0] == '\0';
}

/* The status document's watchdog object (and the metrics gauge) agree with the verdict. */
static void assert_watchdog_shown(hf_modes *m, bool healthy, const char *needle)
{
	json_t *st = json_object();
	hf_buf b;
	hf_modes_status_json(m, st);
	json_t *wd = json_object_get(st, "watchdog");
	cr_assert(json_is_object(wd), "%s", json_dumps(st, 0));
	cr_assert_eq(json_is_true(json_object_get(wd, "healthy")), healthy, "%s", json_dumps(wd, 0));
	const char *reason = json_string_value(json_object_get(wd, "reason"));
	if (needle)
		cr_assert(reason && strstr(reason, needle), "%s", json_dumps(wd, 0));
	else
		cr_assert_null(reason, "%s", json_dumps(wd, 0));
	json_decref(st);
	hf_buf_init(&b, 1 << 20);
	hf_modes_metrics(m, &b);
	cr_assert(strstr(b.data, healthy ? "\nhashflop_watchdog_healthy 1\n" : "\nhashflop_watchdog_healthy 0\n"),
		  "%s", b.data);
	hf_buf_free(&b);
}

Test(mode, watchdog_healthy_while_modes_run_and_switch)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 5000, .retry_min_ms = 600000, .retry_max_ms = 600000,
			    .health_interval_ms = 5, .watchdog_grace_ms = 60000, .watchdog_failures = 3 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	char why[512] = "x";

	cr_assert(hf_modes_watchdog(m, why, sizeof why), "%s", why);
	cr_assert_str_eq(why, "");
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(wait_atomic(&mining.health_calls, 5), "health checks run");
	cr_assert(hf_modes_watchdog(m, why, sizeof why), "%s", why);
	assert_watchdog_shown(m, true, NULL);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(hf_modes_watchdog(m, NULL, 0));
	hf_modes_free(m);
}

/* A drain that does not return (the gate stays closed) is past its bound (drain timeout +
 * grace): the verdict names the mode, the callback and the bound; once the drain returns the
 * verdict is healthy again. */
Test(mode, watchdog_bad_while_a_drain_is_wedged_then_healthy_again)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 20, .retry_min_ms = 600000, .retry_max_ms = 600000,
			    .health_interval_ms = 600000, .watchdog_grace_ms = 30 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	char why[512];

	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(hf_modes_watchdog(m, why, sizeof why), "%s", why);
	atomic_store(&mining.drain_held, true);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL), 0);
	cr_assert(wait_atomic(&mining.in_drain, 1), "the drain began");
	cr_assert(wait_verdict_bad(m, "the mining worker's drain callback has run for ", why, sizeof why),
		  "a wedged drain never turned the verdict bad (last: \"%s\")", why);
	cr_assert(strstr(why, "past its bound of 50 ms (20 ms + 30 ms grace)"), "%s", why);
	fprintf(stderr, "# %s\n", why);
	assert_watchdog_shown(m, false, "drain callback");
	atomic_store(&mining.drain_held, false);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(wait_verdict_good(m), "healthy again once the drain returned");
	assert_watchdog_shown(m, true, NULL);
	hf_modes_free(m);
}

/* A start that does not return is past the start bound. */
Test(mode, watchdog_bad_while_a_start_is_wedged)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 600000, .retry_max_ms = 600000,
			    .health_interval_ms = 600000, .start_bound_ms = 20, .watchdog_grace_ms = 10 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	char why[512];

	atomic_store(&mining.gate_closed, true);
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(wait_atomic(&mining.starts, 1));
	cr_assert(wait_verdict_bad(m, "the mining worker's start callback has run for ", why, sizeof why),
		  "last: \"%s\"", why);
	cr_assert(strstr(why, "past its bound of 30 ms (20 ms + 10 ms grace)"), "%s", why);
	atomic_store(&mining.gate_closed, false);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(wait_verdict_good(m));
	hf_modes_free(m);
}

/* A health check that does not return: with a short callback bound it is a callback past its
 * bound; with a long one, the health checks have stopped completing (3 intervals + grace). */
Test(mode, watchdog_bad_while_a_health_check_is_wedged)
{
	for (int pass = 0; pass < 2; pass++) {
		tworker mining = { 0 };
		hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 600000,
				    .retry_max_ms = 600000, .health_interval_ms = 10,
				    .callback_bound_ms = pass == 0 ? 20 : 600000, .watchdog_grace_ms = 20 };
		hf_modes *m = machine_opts(&o, &mining, NULL);
		const char *needle = pass == 0 ? "the mining worker's health callback has run for " :
			"the mining worker's health checks stopped completing: the last one finished ";
		char why[512];

		cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
		cr_assert(hf_modes_wait_converged(m, 20000));
		cr_assert(wait_atomic(&mining.health_calls, 2));
		cr_assert(wait_verdict_good(m), "healthy while the checks complete");
		atomic_store(&mining.health_held, true);
		cr_assert(wait_atomic(&mining.in_health, 1), "a health check began");
		cr_assert(wait_verdict_bad(m, needle, why, sizeof why), "pass %d, last: \"%s\"", pass, why);
		fprintf(stderr, "# %s\n", why);
		if (pass == 1)
			cr_assert(strstr(why, "(one is due every 10 ms)"), "%s", why);
		assert_watchdog_shown(m, false, pass == 0 ? "health callback" : "stopped completing");
		atomic_store(&mining.health_held, false);
		int calls = atomic_load(&mining.health_calls);
		cr_assert(wait_atomic(&mining.health_calls, calls + 2), "health checks complete again");
		cr_assert(wait_verdict_good(m), "pass %d: healthy again", pass);
		hf_modes_free(m);
	}
}

/* Health failures in a row (three back to back, the restarts held where the test looks): the
 * limit-th one turns the verdict bad while its restart is held, and it stays bad until the mode
 * ran healthy for retry_max_ms (a healthy run); limit 0 never escalates. retry_max_ms is long
 * enough that no run between the failures counts as a healthy one. */
static void failures_in_a_row(unsigned limit)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 10, .retry_max_ms = 2000,
			    .health_interval_ms = 5, .watchdog_failures = limit,
			    .watchdog_grace_ms = 60000 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	hf_modes_info info;
	char why[512];

	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_converged(m, 20000));
	/* Two failures: the restart after the second (start 3) is held; below the limit. */
	atomic_store(&mining.hold_start_n, 3);
	atomic_store(&mining.hold_start, true);
	atomic_store(&mining.health_fail, 3);
	cr_assert(wait_atomic(&mining.starts, 3));
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.health_failures_total, 2);
	cr_assert(hf_modes_watchdog(m, why, sizeof why), "two failures, limit %u: %s", limit, why);
	/* The third: its restart (start 4) held. */
	atomic_store(&mining.hold_start_n, 4);
	cr_assert(wait_atomic(&mining.starts, 4), "the restart after the third failure began");
	hf_modes_snapshot(m, &info);
	cr_assert_eq(info.health_failures_total, 3);
	if (limit == 0) {
		cr_assert(hf_modes_watchdog(m, why, sizeof why), "limit 0 escalated: %s", why);
		assert_watchdog_shown(m, true, NULL);
	} else {
		cr_assert_not(hf_modes_watchdog(m, why, sizeof why), "three failures in a row, limit 3");
		cr_assert(strstr(why, "mining failed its health check 3 times in a row without a "
				 "healthy run (limit 3); last: health of mining: "), "%s", why);
		fprintf(stderr, "# %s\n", why);
		assert_watchdog_shown(m, false, "3 times in a row");
	}
	/* Restarted and healthy for retry_max_ms: a healthy run clears the count. */
	atomic_store(&mining.hold_start, false);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(wait_verdict_good(m), "a healthy run did not clear the failures");
	uint64_t end = hf_mono_ms() + 20000;
	json_int_t streak = -1;
	while (hf_mono_ms() < end) {
		json_t *st = json_object();
		hf_modes_status_json(m, st);
		streak = json_integer_value(json_object_get(json_object_get(st, "watchdog"),
							    "health_failures_in_a_row"));
		json_decref(st);
		if (streak == 0)
			break;
		hf_sleep_ms(5);
	}
	cr_assert_eq(streak, 0, "the count was not cleared by a healthy run");
	hf_modes_free(m);
}

Test(mode, watchdog_health_failures_in_a_row)
{
	failures_in_a_row(3);
}

Test(mode, watchdog_failures_0_never_escalates)
{
	failures_in_a_row(0);
}

/* A new desired state starts the count over. */
Test(mode, watchdog_failures_clear_on_a_new_desired_state)
{
	tworker mining = { 0 };
	hf_modes_opts o = { .drain_timeout_ms = 1000, .retry_min_ms = 10, .retry_max_ms = 600000,
			    .health_interval_ms = 5, .watchdog_failures = 2, .watchdog_grace_ms = 60000 };
	hf_modes *m = machine_opts(&o, &mining, NULL);
	char why[512];

	atomic_store(&mining.hold_start_n, 3);
	atomic_store(&mining.hold_start, true);
	cr_assert_eq(hf_modes_request(m, HF_MODE_MINING, NULL, NULL, NULL), 0);
	cr_assert(hf_modes_wait_converged(m, 20000));
	atomic_store(&mining.health_fail, 2);
	cr_assert(wait_atomic(&mining.starts, 3));
	cr_assert(wait_verdict_bad(m, "2 times in a row", why, sizeof why), "%s", why);
	cr_assert_eq(hf_modes_request(m, HF_MODE_IDLE, NULL, NULL, NULL), 0);
	atomic_store(&mining.hold_start, false);
	cr_assert(hf_modes_wait_converged(m, 20000));
	cr_assert(hf_modes_watchdog(m, why, sizeof why), "%s", why);
	hf_modes_free(m);
}
