/* hf_batcher: the dynamic batcher of one model (see hf_batcher.h for the semantics).
 * Invariants: a request is in exactly one place: the queue (head..tail), one instance's batch
 * or its expired/canceled list, or answered; done() is called once, after it left the queue,
 * without the lock. depth and items count the queue; busy counts the instances running a
 * batch. Stats are updated under the lock.
 * Threading: one mutex guards the queue and the stats; instances wait on `work`, the owner
 * (new, drain) waits on `idle`. Conditions use CLOCK_MONOTONIC.
 */
#include "hf_batcher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_util.h"

const double hf_batcher_time_bounds[HF_BATCHER_TIME_BUCKETS] = {
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
	500e-3, 1.0, 2.5, 5.0, 10.0,
};

#define RATE_SLOTS 8
#define RATE_WINDOW_S 5

typedef enum inst_state { INST_OPENING = 0, INST_READY, INST_FAILED } inst_state;

typedef struct instance {
	hf_batcher *b;
	unsigned idx;
	pthread_t thread;
	bool joined;
	void *impl;
	inst_state state;
	unsigned fails;          /* consecutive failed runs */
	hf_batcher_req **batch;  /* max_batch slots */
} instance;

/* A detached list of requests to answer with one result, outside the lock. */
typedef struct req_list {
	hf_batcher_req *head, *tail;
} req_list;

struct hf_batcher {
	hf_batcher_opts o;
	hf_batcher_ops ops;
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	hf_batcher_req *head, *tail;
	size_t depth, items;
	bool draining, stopping;
	unsigned opening, ready, failed, busy;
	int first_open_rc;
	uint64_t start_ms;
	uint64_t rate_sec[RATE_SLOTS], rate_items[RATE_SLOTS];
	hf_batcher_stats st;     /* counters and histograms (the gauges are computed) */
	instance inst[HF_BATCHER_MAX_INSTANCES];
};

static void list_push(req_list *l, hf_batcher_req *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static void answer_list(hf_batcher *b, req_list *l, int result, const char *msg)
{
	hf_batcher_req *r = l->head, *next;

	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		b->ops.done(b->ops.ctx, r, result, msg);
	}
	l->head = l->tail = NULL;
}

static hf_batcher_req *queue_pop(hf_batcher *b)
{
	hf_batcher_req *r = b->head;

	b->head = r->next;
	if (!b->head)
		b->tail = NULL;
	b->depth--;
	b->items -= r->items;
	r->next = NULL;
	return r;
}

/* Moves the whole queue to l (lock held). */
static void queue_detach(hf_batcher *b, req_list *l)
{
	while (b->head)
		list_push(l, queue_pop(b));
}

static void wait_until_us(pthread_cond_t *c, pthread_mutex_t *m, uint64_t at_us)
{
	struct timespec ts = { .tv_sec = (time_t)(at_us / 1000000u),
			       .tv_nsec = (long)(at_us % 1000000u) * 1000 };
	pthread_cond_timedwait(c, m, &ts);
}

static void hist_add(hf_batcher_hist *h, double v)
{
	size_t i = 0;

	while (i < HF_BATCHER_TIME_BUCKETS && v > hf_batcher_time_bounds[i])
		i++;
	if (i < HF_BATCHER_TIME_BUCKETS)
		h->bucket[i]++;
	h->count++;
	h->sum += v;
}

static void rate_add(hf_batcher *b, uint64_t items)
{
	uint64_t sec = hf_mono_ms() / 1000;
	size_t k = (size_t)(sec % RATE_SLOTS);

	if (b->rate_sec[k] != sec) {
		b->rate_sec[k] = sec;
		b->rate_items[k] = 0;
	}
	b->rate_items[k] += items;
}

static double rate_get(const hf_batcher *b)
{
	uint64_t now = hf_mono_ms(), sec = now / 1000, sum = 0;
	double span = (double)(now - b->start_ms) / 1000.0;

	for (size_t k = 0; k < RATE_SLOTS; k++)
		if (b->rate_sec[k] + RATE_WINDOW_S > sec && b->rate_sec[k] <= sec)
			sum += b->rate_items[k];
	if (span > RATE_WINDOW_S)
		span = RATE_WINDOW_S;
	if (span < 1.0)
		span = 1.0;
	return (double)sum / span;
}

/* Moves the queued requests past their deadline to l (lock held). The queue is FIFO with one
 * timeout, so the expired ones are at the head. */
static void expire(hf_batcher *b, uint64_t now_us, req_list *l)
{
	uint64_t t = b->o.timeout_ms * 1000u;

	if (!b->o.timeout_ms)
		return;
	while (b->head && now_us >= b->head->enqueued_us + t) {
		list_push(l, queue_pop(b));
		b->st.timeout_total++;
	}
}

/* When an idle instance must look again (lock held, queue not empty): the batch's delay or
 * the head's deadline, whichever comes first. */
static uint64_t next_wake_us(const hf_batcher *b)
{
	uint64_t at = b->head->enqueued_us + b->o.max_delay_us;

	if (b->o.timeout_ms && b->head->enqueued_us + b->o.timeout_ms * 1000u < at)
		at = b->head->enqueued_us + b->o.timeout_ms * 1000u;
	return at;
}

/* Takes the next batch into in->batch (lock held); returns its request count. */
static size_t take_batch(hf_batcher *b, instance *in, size_t *items)
{
	size_t n = 0, total = 0;

	while (b->head && total + b->head->items <= b->o.max_batch) {
		hf_batcher_req *r = queue_pop(b);
		r->offset = total;
		total += r->items;
		in->batch[n++] = r;
	}
	*items = total;
	return n;
}

/* The instance's last ready one left: nobody will run the queue. */
static void instance_failed(hf_batcher *b, instance *in, req_list *cancel)
{
	in->state = INST_FAILED;
	b->ready--;
	b->failed++;
	if (b->ready == 0) {
		b->st.canceled_total += b->depth;
		queue_detach(b, cancel);
	}
	pthread_cond_broadcast(&b->idle);
}

/* Runs one batch without the lock; answers it; returns with the lock held again. */
static void run_batch(hf_batcher *b, instance *in, size_t n, size_t items)
{
	hf_errbuf eb;
	uint64_t t0 = hf_mono_us(), t1;
	int r;

	pthread_mutex_unlock(&b->lock);
	hf_errbuf_clear(&eb);
	for (size_t i = 0; i < n; i++)
		in->batch[i]->started_us = t0;
	r = b->ops.run(b->ops.ctx, in->impl, in->batch, n, items, &eb);
	t1 = hf_mono_us();
	for (size_t i = 0; i < n; i++)
		in->batch[i]->finished_us = t1;
	pthread_mutex_lock(&b->lock);
	b->st.batches_total++;
	b->st.items_total += items;
	{
		size_t k = 0;
		while (k < HF_BATCHER_SIZE_BUCKETS && items > ((size_t)1 << k))
			k++;
		b->st.batch_size[k]++;
	}
	hist_add(&b->st.compute_time, (double)(t1 - t0) / 1e6);
	for (size_t i = 0; i < n; i++)
		hist_add(&b->st.queue_time, (double)(t0 - in->batch[i]->enqueued_us) / 1e6);
	if (r == 0) {
		b->st.completed_total += n;
		in->fails = 0;
		rate_add(b, items);
	} else {
		b->st.failed_total += n;
		in->fails++;
		snprintf(b->st.last_error, sizeof b->st.last_error, "instance %u: %s", in->idx,
			 eb.msg[0] ? eb.msg : hf_strerror(r));
	}
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++)
		b->ops.done(b->ops.ctx, in->batch[i], r, r == 0 ? "" : eb.msg);
	pthread_mutex_lock(&b->lock);
}

/* The batching loop of one instance (lock held on entry and exit). */
static void serve(hf_batcher *b, instance *in)
{
	req_list expired = { 0 }, cancel = { 0 };

	for (;;) {
		uint64_t now = hf_mono_us();
		size_t n, items;

		expire(b, now, &expired);
		if (expired.head) {
			pthread_mutex_unlock(&b->lock);
			answer_list(b, &expired, HF_ETIMEOUT, "queued past the request timeout");
			pthread_mutex_lock(&b->lock);
			continue;
		}
		if (in->state != INST_READY || (b->stopping && !b->head))
			break;
		if (!b->head) {
			pthread_cond_wait(&b->work, &b->lock);
			continue;
		}
		if (b->items < b->o.max_batch && !b->draining && now < b->head->enqueued_us +
		    b->o.max_delay_us) {
			wait_until_us(&b->work, &b->lock, next_wake_us(b));
			continue;
		}
		n = take_batch(b, in, &items);
		if (b->head)
			pthread_cond_signal(&b->work); /* the rest may be due for another instance */
		b->busy++;
		run_batch(b, in, n, items);
		b->busy--;
		if (in->fails >= b->o.fail_limit)
			instance_failed(b, in, &cancel);
		if (b->head)
			pthread_cond_signal(&b->work); /* a batch may be due for another instance */
		pthread_cond_broadcast(&b->idle);
		if (cancel.head) {
			pthread_mutex_unlock(&b->lock);
			answer_list(b, &cancel, HF_ECANCELED, "no instance of the model is left");
			pthread_mutex_lock(&b->lock);
		}
	}
}

static void *instance_main(void *arg)
{
	instance *in = arg;
	hf_batcher *b = in->b;
	hf_errbuf eb;
	int r;

	hf_errbuf_clear(&eb);
	r = b->ops.open(b->ops.ctx, in->idx, &in->impl, &eb);
	pthread_mutex_lock(&b->lock);
	b->opening--;
	if (r < 0) {
		in->state = INST_FAILED;
		b->failed++;
		if (!b->first_open_rc)
			b->first_open_rc = r;
		snprintf(b->st.last_error, sizeof b->st.last_error, "instance %u: %s", in->idx,
			 eb.msg[0] ? eb.msg : hf_strerror(r));
		pthread_cond_broadcast(&b->idle);
		pthread_mutex_unlock(&b->lock);
		return NULL;
	}
	in->state = INST_READY;
	b->ready++;
	pthread_cond_broadcast(&b->idle);
	serve(b, in);
	pthread_mutex_unlock(&b->lock);
	if (b->ops.close)
		b->ops.close(b->ops.ctx, in->impl);
	return NULL;
}

static void join_all(hf_batcher *b)
{
	for (unsigned i = 0; i < b->o.instances; i++)
		if (!b->inst[i].joined && b->inst[i].batch) {
			pthread_join(b->inst[i].thread, NULL);
			b->inst[i].joined = true;
		}
}

static void destroy(hf_batcher *b)
{
	for (unsigned i = 0; i < b->o.instances; i++)
		free(b->inst[i].batch);
	pthread_cond_destroy(&b->work);
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int init_sync(hf_batcher *b)
{
	pthread_condattr_t ca;

	if (pthread_condattr_init(&ca) != 0)
		return HF_ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->work, &ca);
	pthread_cond_init(&b->idle, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

/* Stops every instance (queue already empty or canceled) and joins them (lock not held). */
static void stop_all(hf_batcher *b)
{
	pthread_mutex_lock(&b->lock);
	b->stopping = b->draining = true;
	pthread_cond_broadcast(&b->work);
	pthread_mutex_unlock(&b->lock);
	join_all(b);
}

int hf_batcher_new(const hf_batcher_opts *opts, const hf_batcher_ops *ops, hf_batcher **out,
		   hf_errbuf *eb)
{
	hf_batcher *b;
	unsigned started = 0;

	*out = NULL;
	if (!ops || !ops->open || !ops->run || !ops->done)
		return hf_fail(eb, HF_EINVAL, "batcher: open, run and done callbacks are required");
	b = calloc(1, sizeof *b);
	if (!b || init_sync(b) < 0) {
		free(b);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	b->o = *opts;
	b->ops = *ops;
	if (!b->o.max_batch)
		b->o.max_batch = 1;
	if (!b->o.max_queue)
		b->o.max_queue = 1024;
	if (!b->o.instances)
		b->o.instances = 1;
	if (b->o.instances > HF_BATCHER_MAX_INSTANCES)
		b->o.instances = HF_BATCHER_MAX_INSTANCES;
	if (!b->o.fail_limit)
		b->o.fail_limit = 3;
	b->start_ms = hf_mono_ms();
	pthread_mutex_lock(&b->lock);
	for (unsigned i = 0; i < b->o.instances; i++) {
		instance *in = &b->inst[i];
		in->b = b;
		in->idx = i;
		in->batch = calloc(b->o.max_batch, sizeof *in->batch);
		if (!in->batch || pthread_create(&in->thread, NULL, instance_main, in) != 0) {
			free(in->batch);
			in->batch = NULL;
			break;
		}
		b->opening++;
		started++;
	}
	while (b->opening)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (b->ready == 0 || started < b->o.instances) {
		int r = b->first_open_rc ? b->first_open_rc : HF_ENOMEM;
		if (b->first_open_rc)
			hf_fail(eb, r, "%s", b->st.last_error);
		else
			hf_fail(eb, r, "cannot start the instance threads");
		stop_all(b);
		destroy(b);
		return r;
	}
	*out = b;
	return 0;
}

int hf_batcher_submit(hf_batcher *b, hf_batcher_req *req, hf_errbuf *eb)
{
	req_list expired = { 0 };
	int r = 0;

	pthread_mutex_lock(&b->lock);
	expire(b, hf_mono_us(), &expired); /* busy instances: the submitters answer them */
	if (req->items == 0 || req->items > b->o.max_batch) {
		b->st.refused_range_total++;
		r = hf_fail(eb, HF_ERANGE, "a request of %zu items: expected 1 to max_batch_size %zu",
			    req->items, b->o.max_batch);
	} else if (b->draining || b->ready == 0) {
		b->st.refused_state_total++;
		r = hf_fail(eb, HF_ESTATE, b->draining ? "the model is draining"
				 : "no instance of the model is running");
	} else if (b->depth >= b->o.max_queue) {
		b->st.refused_full_total++;
		r = hf_fail(eb, HF_EBUSY, "the queue is full (%zu requests)", b->depth);
	} else {
		req->enqueued_us = hf_mono_us();
		req->started_us = req->finished_us = 0;
		req->offset = 0;
		req->next = NULL;
		if (b->tail)
			b->tail->next = req;
		else
			b->head = req;
		b->tail = req;
		b->depth++;
		b->items += req->items;
		b->st.submitted_total++;
		/* Wake an instance only when this can change its decision: the queue was empty
		 * (idle instances wait without a deadline) or a batch is full now. Otherwise the
		 * idle ones already wait for the head's delay, and one wake-up per request would
		 * cost a context switch each. */
		if (b->depth == 1 || b->items >= b->o.max_batch || !b->o.max_delay_us)
			pthread_cond_signal(&b->work);
	}
	pthread_mutex_unlock(&b->lock);
	answer_list(b, &expired, HF_ETIMEOUT, "queued past the request timeout");
	return r;
}

int hf_batcher_drain(hf_batcher *b, uint64_t deadline_ms, hf_errbuf *eb)
{
	req_list cancel = { 0 };
	size_t left;

	pthread_mutex_lock(&b->lock);
	b->draining = true;
	pthread_cond_broadcast(&b->work);
	while ((b->head || b->busy) && hf_mono_ms() < deadline_ms)
		wait_until_us(&b->idle, &b->lock, deadline_ms * 1000u);
	left = b->depth;
	b->st.canceled_total += left;
	queue_detach(b, &cancel);
	pthread_mutex_unlock(&b->lock);
	answer_list(b, &cancel, HF_ECANCELED, "the model was drained before the request ran");
	pthread_mutex_lock(&b->lock);
	while (b->busy)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (left)
		return hf_fail(eb, HF_ETIMEOUT, "drain deadline: %zu queued request(s) answered "
			       "unrun", left);
	return 0;
}

bool hf_batcher_serving(hf_batcher *b)
{
	pthread_mutex_lock(&b->lock);
	bool v = !b->draining && b->ready > 0;
	pthread_mutex_unlock(&b->lock);
	return v;
}

void hf_batcher_stats_get(hf_batcher *b, hf_batcher_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->st;
	out->queue_depth = b->depth;
	out->queued_items = b->items;
	out->instances = b->o.instances;
	out->instances_ready = b->ready;
	out->instances_failed = b->failed;
	out->instances_busy = b->busy;
	out->items_per_second = rate_get(b);
	pthread_mutex_unlock(&b->lock);
}

void hf_batcher_free(hf_batcher *b)
{
	req_list cancel = { 0 };

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = b->draining = true;
	b->st.canceled_total += b->depth;
	queue_detach(b, &cancel);
	pthread_mutex_unlock(&b->lock);
	answer_list(b, &cancel, HF_ECANCELED, "the model was stopped before the request ran");
	stop_all(b);
	destroy(b);
}
