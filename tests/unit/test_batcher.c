/* Tests of hf_batcher: Triton's batching semantics (full batch at once, the delay bound,
 * multi-item requests never split, oversize refused), the bounded queue, per-request timeouts,
 * drain and free, failing instances, and exactly one answer per accepted request under load.
 * The runs are plain C behind the callback table; a gate holds a run so the queue can be
 * filled deterministically. No fixed sleeps: every wait polls a condition with a deadline.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_batcher.h"
#include "hf_util.h"

#define MAXREQ 4096
#define MAXBATCHES 4096

typedef struct treq {
	hf_batcher_req r;
	int id;
	atomic_int dones;
	int result;
	char msg[128];
	int batch;          /* index of the batch it ran in, -1 none */
} treq;

typedef struct fixture {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate_closed;
	int fail_runs;       /* the next N runs fail with HF_ECL */
	int fail_open_mask;  /* instance idx bits whose open fails */
	int runs_started;
	int nbatches;
	size_t batch_items[MAXBATCHES];
	size_t batch_reqs[MAXBATCHES];
	int closes;
	bool bad_offsets;
	atomic_int dones_total;
} fixture;

static fixture fx;

static void fx_init(void)
{
	memset(&fx, 0, sizeof fx);
	pthread_mutex_init(&fx.lock, NULL);
	pthread_cond_init(&fx.cond, NULL);
}

static void gate(bool closed)
{
	pthread_mutex_lock(&fx.lock);
	fx.gate_closed = closed;
	pthread_cond_broadcast(&fx.cond);
	pthread_mutex_unlock(&fx.lock);
}

static int t_open(void *ctx, unsigned idx, void **inst, hf_errbuf *eb)
{
	(void)ctx;
	if (fx.fail_open_mask & (1 << idx))
		return hf_fail(eb, HF_ECL, "device %u is gone", idx);
	*inst = (void *)(uintptr_t)(idx + 1);
	return 0;
}

static int t_run(void *ctx, void *inst, hf_batcher_req *const *reqs, size_t n, size_t items,
		 hf_errbuf *eb)
{
	size_t off = 0;
	int fail = 0, b;

	(void)ctx;
	pthread_mutex_lock(&fx.lock);
	if (!inst)
		fx.bad_offsets = true;
	fx.runs_started++;
	pthread_cond_broadcast(&fx.cond);
	while (fx.gate_closed)
		pthread_cond_wait(&fx.cond, &fx.lock);
	for (size_t i = 0; i < n; i++) {
		if (reqs[i]->offset != off)
			fx.bad_offsets = true;
		off += reqs[i]->items;
	}
	if (off != items)
		fx.bad_offsets = true;
	b = fx.nbatches++;
	if (b < MAXBATCHES) {
		fx.batch_items[b] = items;
		fx.batch_reqs[b] = n;
	}
	for (size_t i = 0; i < n; i++)
		((treq *)reqs[i]->user)->batch = b;
	if (fx.fail_runs > 0) {
		fx.fail_runs--;
		fail = 1;
	}
	pthread_mutex_unlock(&fx.lock);
	return fail ? hf_fail(eb, HF_ECL, "CL_OUT_OF_RESOURCES") : 0;
}

static void t_close(void *ctx, void *inst)
{
	(void)ctx;
	(void)inst;
	pthread_mutex_lock(&fx.lock);
	fx.closes++;
	pthread_mutex_unlock(&fx.lock);
}

static void t_done(void *ctx, hf_batcher_req *req, int result, const char *msg)
{
	treq *t = req->user;

	(void)ctx;
	t->result = result;
	snprintf(t->msg, sizeof t->msg, "%s", msg);
	atomic_fetch_add(&t->dones, 1);
	atomic_fetch_add(&fx.dones_total, 1);
}

static const hf_batcher_ops ops = { .open = t_open, .run = t_run, .close = t_close, .done = t_done };

static treq reqs[MAXREQ];

static void reqs_init(void)
{
	memset(reqs, 0, sizeof reqs);
	for (int i = 0; i < MAXREQ; i++) {
		reqs[i].id = i;
		reqs[i].batch = -1;
		reqs[i].r.user = &reqs[i];
		reqs[i].r.items = 1;
	}
}

static void setup(void)
{
	fx_init();
	reqs_init();
}

TestSuite(batcher, .init = setup);

static bool wait_dones(int n, uint64_t ms)
{
	uint64_t end = hf_mono_ms() + ms;
	while (atomic_load(&fx.dones_total) < n) {
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(1);
	}
	return true;
}

static bool wait_runs(int n, uint64_t ms)
{
	uint64_t end = hf_mono_ms() + ms;
	bool ok;
	pthread_mutex_lock(&fx.lock);
	while (fx.runs_started < n && hf_mono_ms() < end) {
		pthread_mutex_unlock(&fx.lock);
		hf_sleep_ms(1);
		pthread_mutex_lock(&fx.lock);
	}
	ok = fx.runs_started >= n;
	pthread_mutex_unlock(&fx.lock);
	return ok;
}

static hf_batcher *mk(size_t max_batch, uint64_t delay_us, size_t max_queue, uint64_t timeout_ms,
		      unsigned instances)
{
	hf_batcher_opts o = { .max_batch = max_batch, .max_delay_us = delay_us,
			      .max_queue = max_queue, .timeout_ms = timeout_ms,
			      .instances = instances };
	hf_batcher *b = NULL;
	hf_errbuf eb;
	int r = hf_batcher_new(&o, &ops, &b, &eb);
	cr_assert_eq(r, 0, "hf_batcher_new: %s", eb.msg);
	return b;
}

static void submit_ok(hf_batcher *b, int i, size_t items)
{
	hf_errbuf eb;
	reqs[i].r.items = items;
	int r = hf_batcher_submit(b, &reqs[i].r, &eb);
	cr_assert_eq(r, 0, "submit %d: %s", i, eb.msg);
}

/* Holds the only instance in a run of request 0 so the queue fills behind it. */
static void plug(hf_batcher *b)
{
	gate(true);
	submit_ok(b, 0, 1);
	cr_assert(wait_runs(1, 10000), "the plug never ran");
}

Test(batcher, full_batch_goes_at_once)
{
	/* An hour of delay: only a full batch can make it go. */
	hf_batcher *b = mk(4, 3600ull * 1000000, 16, 0, 1);
	for (int i = 0; i < 4; i++)
		submit_ok(b, i, 1);
	cr_assert(wait_dones(4, 10000));
	cr_assert_eq(fx.nbatches, 1);
	cr_assert_eq(fx.batch_items[0], 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(reqs[i].result, 0);
		cr_assert_eq(reqs[i].r.offset, (size_t)i);
	}
	hf_batcher_free(b);
	cr_assert_eq(fx.closes, 1);
}

Test(batcher, partial_batch_waits_for_the_delay)
{
	const uint64_t delay = 30000;
	hf_batcher *b = mk(8, delay, 16, 0, 1);
	submit_ok(b, 1, 3);
	cr_assert(wait_dones(1, 10000));
	cr_assert_eq(fx.nbatches, 1);
	cr_assert_eq(fx.batch_items[0], 3);
	/* Never before the oldest request waited the delay (no upper bound: loaded machines). */
	cr_assert_geq(reqs[1].r.started_us - reqs[1].r.enqueued_us, delay);
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.queue_time.count, 1);
	cr_assert_geq(st.queue_time.sum, delay / 1e6);
	hf_batcher_free(b);
}

Test(batcher, multi_item_requests_are_never_split)
{
	hf_batcher *b = mk(4, 0, 16, 0, 1);
	plug(b);
	submit_ok(b, 1, 3);
	submit_ok(b, 2, 2);
	submit_ok(b, 3, 1);
	submit_ok(b, 4, 4);
	submit_ok(b, 5, 1);
	gate(false);
	cr_assert(wait_dones(6, 10000));
	/* plug | 3 | 2+1 | 4 | 1, in FIFO order */
	cr_assert_eq(fx.nbatches, 5);
	size_t want[] = { 1, 3, 3, 4, 1 };
	for (int i = 0; i < 5; i++)
		cr_assert_eq(fx.batch_items[i], want[i], "batch %d: %zu items", i, fx.batch_items[i]);
	cr_assert_eq(reqs[2].batch, reqs[3].batch);
	cr_assert_eq(reqs[2].r.offset, 0);
	cr_assert_eq(reqs[3].r.offset, 2);
	cr_assert(!fx.bad_offsets);
	hf_batcher_free(b);
}

Test(batcher, oversized_and_empty_requests_are_refused)
{
	hf_batcher *b = mk(4, 0, 16, 0, 1);
	hf_errbuf eb;
	reqs[1].r.items = 5;
	cr_assert_eq(hf_batcher_submit(b, &reqs[1].r, &eb), HF_ERANGE);
	cr_assert(strstr(eb.msg, "max_batch_size 4"), "%s", eb.msg);
	reqs[2].r.items = 0;
	cr_assert_eq(hf_batcher_submit(b, &reqs[2].r, &eb), HF_ERANGE);
	submit_ok(b, 3, 4);
	cr_assert(wait_dones(1, 10000));
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.refused_range_total, 2);
	hf_batcher_free(b);
	cr_assert_eq(atomic_load(&reqs[1].dones), 0);
	cr_assert_eq(atomic_load(&reqs[2].dones), 0);
	cr_assert_eq(atomic_load(&fx.dones_total), 1);
}

Test(batcher, full_queue_is_busy)
{
	hf_batcher *b = mk(1, 0, 2, 0, 1);
	hf_errbuf eb;
	plug(b);
	submit_ok(b, 1, 1);
	submit_ok(b, 2, 1);
	cr_assert_eq(hf_batcher_submit(b, &reqs[3].r, &eb), HF_EBUSY);
	cr_assert(strstr(eb.msg, "queue is full"), "%s", eb.msg);
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.queue_depth, 2);
	cr_assert_eq(st.refused_full_total, 1);
	cr_assert_eq(st.instances_busy, 1);
	gate(false);
	cr_assert(wait_dones(3, 10000));
	submit_ok(b, 4, 1); /* room again */
	cr_assert(wait_dones(4, 10000));
	hf_batcher_free(b);
	cr_assert_eq(atomic_load(&reqs[3].dones), 0);
}

Test(batcher, queued_past_the_timeout_is_answered_unrun)
{
	hf_batcher *b = mk(1, 0, 16, 50, 1);
	plug(b);
	submit_ok(b, 1, 1);
	uint64_t due = reqs[1].r.enqueued_us + 50000;
	while (hf_mono_us() < due + 1000)
		hf_sleep_ms(1);
	gate(false);
	cr_assert(wait_dones(2, 10000));
	cr_assert_eq(reqs[0].result, 0);
	cr_assert_eq(reqs[1].result, HF_ETIMEOUT);
	cr_assert_eq(reqs[1].batch, -1, "a timed-out request ran");
	cr_assert_eq(reqs[1].r.started_us, 0);
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.timeout_total, 1);
	hf_batcher_free(b);
}

Test(batcher, a_submit_answers_the_timed_out_while_instances_are_busy)
{
	hf_batcher *b = mk(1, 0, 16, 50, 1);
	plug(b);
	submit_ok(b, 1, 1);
	uint64_t due = reqs[1].r.enqueued_us + 50000;
	while (hf_mono_us() < due + 1000)
		hf_sleep_ms(1);
	cr_assert_eq(atomic_load(&fx.dones_total), 0);
	submit_ok(b, 2, 1); /* the instance is still held: this submit answers request 1 */
	cr_assert_eq(atomic_load(&reqs[1].dones), 1);
	cr_assert_eq(reqs[1].result, HF_ETIMEOUT);
	cr_assert_eq(atomic_load(&reqs[2].dones), 0);
	gate(false);
	cr_assert(wait_dones(3, 10000));
	cr_assert_eq(reqs[2].result, 0);
	hf_batcher_free(b);
}

Test(batcher, idle_instance_answers_the_timeout_when_due)
{
	/* An hour of delay and a partial batch: only the timeout can answer it. */
	hf_batcher *b = mk(4, 3600ull * 1000000, 16, 40, 1);
	submit_ok(b, 1, 1);
	cr_assert(wait_dones(1, 10000));
	cr_assert_eq(reqs[1].result, HF_ETIMEOUT);
	cr_assert_eq(fx.nbatches, 0);
	hf_batcher_free(b);
}

static hf_batcher *drain_b;
static uint64_t drain_deadline;
static int drain_rc;

static void *drain_thread(void *arg)
{
	hf_errbuf eb;
	(void)arg;
	drain_rc = hf_batcher_drain(drain_b, drain_deadline, &eb);
	return NULL;
}

Test(batcher, drain_finishes_queued_and_running_work)
{
	pthread_t th;
	hf_errbuf eb;
	hf_batcher *b = mk(2, 3600ull * 1000000, 16, 0, 1);
	gate(true);
	submit_ok(b, 0, 2); /* a full batch: runs at once and holds the instance */
	cr_assert(wait_runs(1, 10000));
	submit_ok(b, 1, 1); /* partial: would wait an hour, the drain sends it */
	drain_b = b;
	drain_deadline = hf_mono_ms() + 60000;
	pthread_create(&th, NULL, drain_thread, NULL);
	uint64_t end = hf_mono_ms() + 10000;
	while (hf_batcher_serving(b) && hf_mono_ms() < end)
		hf_sleep_ms(1);
	cr_assert(!hf_batcher_serving(b));
	cr_assert_eq(hf_batcher_submit(b, &reqs[2].r, &eb), HF_ESTATE);
	cr_assert(strstr(eb.msg, "draining"), "%s", eb.msg);
	gate(false);
	pthread_join(th, NULL);
	cr_assert_eq(drain_rc, 0);
	cr_assert_eq(atomic_load(&fx.dones_total), 2);
	cr_assert_eq(reqs[0].result, 0);
	cr_assert_eq(reqs[1].result, 0);
	cr_assert_eq(atomic_load(&reqs[2].dones), 0);
	hf_batcher_free(b);
	cr_assert_eq(atomic_load(&fx.dones_total), 2);
}

Test(batcher, drain_deadline_cancels_the_queued)
{
	pthread_t th;
	hf_batcher *b = mk(1, 0, 16, 0, 1);
	plug(b);
	submit_ok(b, 1, 1);
	submit_ok(b, 2, 1);
	drain_b = b;
	drain_deadline = hf_mono_ms() + 30;
	pthread_create(&th, NULL, drain_thread, NULL);
	cr_assert(wait_dones(2, 10000), "the queued requests were not canceled at the deadline");
	cr_assert_eq(reqs[1].result, HF_ECANCELED);
	cr_assert_eq(reqs[2].result, HF_ECANCELED);
	cr_assert_eq(atomic_load(&reqs[0].dones), 0, "the running batch was cut");
	gate(false);
	pthread_join(th, NULL);
	cr_assert_eq(drain_rc, HF_ETIMEOUT);
	cr_assert_eq(reqs[0].result, 0);
	hf_batcher_free(b);
	cr_assert_eq(atomic_load(&fx.dones_total), 3);
}

static void *free_thread(void *arg)
{
	hf_batcher_free(arg);
	return NULL;
}

Test(batcher, free_answers_the_queued_once)
{
	pthread_t th;
	hf_batcher *b = mk(1, 0, 16, 0, 1);
	plug(b);
	submit_ok(b, 1, 1);
	submit_ok(b, 2, 1);
	pthread_create(&th, NULL, free_thread, b);
	cr_assert(wait_dones(2, 10000));
	gate(false);
	pthread_join(th, NULL);
	cr_assert_eq(reqs[1].result, HF_ECANCELED);
	cr_assert_eq(reqs[2].result, HF_ECANCELED);
	cr_assert_eq(reqs[0].result, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(atomic_load(&reqs[i].dones), 1);
	cr_assert_eq(fx.closes, 1);
}

Test(batcher, failing_runs_stop_the_instance)
{
	hf_errbuf eb;
	hf_batcher_opts o = { .max_batch = 1, .max_queue = 16, .instances = 1, .fail_limit = 2 };
	hf_batcher *b = NULL;
	cr_assert_eq(hf_batcher_new(&o, &ops, &b, &eb), 0);
	fx.fail_runs = 2;
	submit_ok(b, 1, 1);
	cr_assert(wait_dones(1, 10000));
	cr_assert_eq(reqs[1].result, HF_ECL);
	cr_assert(strstr(reqs[1].msg, "CL_OUT_OF_RESOURCES"), "%s", reqs[1].msg);
	submit_ok(b, 2, 1);
	cr_assert(wait_dones(2, 10000));
	uint64_t end = hf_mono_ms() + 10000;
	while (hf_batcher_serving(b) && hf_mono_ms() < end)
		hf_sleep_ms(1);
	cr_assert(!hf_batcher_serving(b));
	cr_assert_eq(hf_batcher_submit(b, &reqs[3].r, &eb), HF_ESTATE);
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.instances_failed, 1);
	cr_assert_eq(st.failed_total, 2);
	cr_assert(strstr(st.last_error, "CL_OUT_OF_RESOURCES"), "%s", st.last_error);
	hf_batcher_free(b);
}

Test(batcher, a_failed_open_is_reported_and_the_rest_serve)
{
	hf_errbuf eb;
	hf_batcher *b = NULL;
	hf_batcher_opts o = { .max_batch = 2, .instances = 3 };
	fx.fail_open_mask = 2;
	cr_assert_eq(hf_batcher_new(&o, &ops, &b, &eb), 0);
	hf_batcher_stats st;
	hf_batcher_stats_get(b, &st);
	cr_assert_eq(st.instances, 3);
	cr_assert_eq(st.instances_ready, 2);
	cr_assert_eq(st.instances_failed, 1);
	cr_assert(strstr(st.last_error, "device 1 is gone"), "%s", st.last_error);
	submit_ok(b, 1, 2);
	cr_assert(wait_dones(1, 10000));
	hf_batcher_free(b);
	cr_assert_eq(fx.closes, 2);

	fx.fail_open_mask = 7;
	b = NULL;
	cr_assert_eq(hf_batcher_new(&o, &ops, &b, &eb), HF_ECL);
	cr_assert_null(b);
	cr_assert(strstr(eb.msg, "is gone"), "%s", eb.msg);
}

/* Many submitters, several instances, random sizes: every accepted request answered once,
 * every batch within max_batch, the counts add up. */
#define SUBMITTERS 4
#define PER_SUBMITTER 600

static hf_batcher *load_b;
static atomic_int accepted, busy_refusals, other_refusals;

static void *submitter(void *arg)
{
	int base = (int)(intptr_t)arg * PER_SUBMITTER;
	unsigned seed = (unsigned)base + 1;
	hf_errbuf eb;

	for (int i = 0; i < PER_SUBMITTER; i++) {
		treq *t = &reqs[base + i];
		t->r.items = 1 + (size_t)(rand_r(&seed) % 3);
		int r = hf_batcher_submit(load_b, &t->r, &eb);
		if (r == 0)
			atomic_fetch_add(&accepted, 1);
		else if (r == HF_EBUSY)
			atomic_fetch_add(&busy_refusals, 1);
		else
			atomic_fetch_add(&other_refusals, 1);
	}
	return NULL;
}

Test(batcher, no_request_lost_or_answered_twice)
{
	pthread_t th[SUBMITTERS];
	atomic_store(&accepted, 0);
	atomic_store(&busy_refusals, 0);
	atomic_store(&other_refusals, 0);
	load_b = mk(8, 200, 64, 0, 3);
	for (intptr_t i = 0; i < SUBMITTERS; i++)
		pthread_create(&th[i], NULL, submitter, (void *)i);
	for (int i = 0; i < SUBMITTERS; i++)
		pthread_join(th[i], NULL);
	cr_assert(wait_dones(atomic_load(&accepted), 30000));
	hf_batcher_stats st;
	hf_batcher_stats_get(load_b, &st);
	hf_batcher_free(load_b);
	cr_assert_eq(atomic_load(&other_refusals), 0);
	cr_assert_eq(atomic_load(&accepted) + atomic_load(&busy_refusals), SUBMITTERS * PER_SUBMITTER);
	cr_assert_eq(atomic_load(&fx.dones_total), atomic_load(&accepted));
	size_t items = 0, nreq = 0;
	for (int i = 0; i < fx.nbatches && i < MAXBATCHES; i++) {
		cr_assert_leq(fx.batch_items[i], 8);
		items += fx.batch_items[i];
		nreq += fx.batch_reqs[i];
	}
	size_t want_items = 0;
	for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
		int d = atomic_load(&reqs[i].dones);
		cr_assert_leq(d, 1, "request %d answered %d times", i, d);
		if (d) {
			cr_assert_eq(reqs[i].result, 0);
			cr_assert_geq(reqs[i].batch, 0);
			want_items += reqs[i].r.items;
		}
	}
	cr_assert(!fx.bad_offsets);
	cr_assert_eq(nreq, (size_t)atomic_load(&accepted));
	cr_assert_eq(items, want_items);
	cr_assert_eq(st.submitted_total, (uint64_t)atomic_load(&accepted));
	cr_assert_eq(st.completed_total, (uint64_t)atomic_load(&accepted));
	cr_assert_eq(st.items_total, want_items);
	cr_assert_eq(st.refused_full_total, (uint64_t)atomic_load(&busy_refusals));
	uint64_t hsum = 0;
	for (int i = 0; i <= HF_BATCHER_SIZE_BUCKETS; i++)
		hsum += st.batch_size[i];
	cr_assert_eq(hsum, st.batches_total);
	cr_assert_eq(st.compute_time.count, st.batches_total);
	cr_assert_eq(fx.closes, 3);
}
