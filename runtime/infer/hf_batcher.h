/* hf_batcher: the dynamic batcher of one model: a bounded FIFO of requests and one thread per
 * model instance that forms batches and runs them through a callback table (the executor in
 * the server, plain C in the unit tests).
 *
 * Batching follows Triton's dynamic batcher: a batch goes as soon as the queued items reach
 * max_batch, or the oldest queued request has waited max_delay_us (0: at once), or the batcher
 * is draining. A request carries items >= 1 samples (its batch dimension) and is never split:
 * a batch takes requests in FIFO order while their items fit under max_batch and stops at the
 * first that does not (it heads the next batch). A request of more than max_batch items is
 * refused at submit (HF_ERANGE). Each request has a deadline (timeout_ms after its submit): one
 * still queued past it is answered HF_ETIMEOUT instead of being run: by an idle instance as
 * soon as it is due, else by the next submit or the next batch formed, whichever comes first.
 * Exactly-once: every request hf_batcher_submit() accepted (returned 0) gets exactly one
 * ops->done() call, from an instance thread, a thread in hf_batcher_submit (timeouts only) or
 * the thread in hf_batcher_drain/free:
 * result 0 after its batch ran; the run's error code when its batch failed; HF_ETIMEOUT past its
 * deadline; HF_ECANCELED when the drain deadline passed (or the batcher was freed) with it still
 * queued, or no instance is left to run it. A refused request gets no done() call.
 * Instances: hf_batcher_new starts `instances` threads; each calls ops->open (on its own thread:
 * the device handle and executor it makes are that thread's alone, allocated once for
 * max_batch), then runs batches until the batcher stops, then ops->close. new() returns once
 * every instance has opened; an instance whose open failed is reported (hf_batcher_stats) and
 * new() fails only when none opened. An instance whose run failed fail_limit times in a row
 * stops (closed, counted as failed); once every instance failed, the queue is answered
 * HF_ECANCELED and later submits are refused HF_ESTATE.
 * Threading: new/drain/free on one owner thread; submit and stats from any thread (a short
 * lock, never a wait on compute); the callbacks run on the instance threads without the
 * batcher's lock (done() also inside submit, drain and free, never with the lock held).
 */
#ifndef HF_BATCHER_H
#define HF_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

/* A queued request: embedded in (or pointed at by) the caller's own request object, which
 * must stay alive until done() was called for it. */
typedef struct hf_batcher_req {
	size_t items;               /* the caller's: batch items, 1..max_batch */
	void *user;                 /* the caller's */
	/* the batcher's (read them in done()): */
	uint64_t enqueued_us;       /* hf_mono_us at submit */
	uint64_t started_us;        /* when its batch started running (0: never ran) */
	uint64_t finished_us;       /* when its batch finished */
	size_t offset;              /* its first item's index in the batch it ran in */
	struct hf_batcher_req *next;
} hf_batcher_req;

typedef struct hf_batcher_ops {
	void *ctx;
	/* On instance thread idx (0..instances-1) before any batch: make what a run needs. */
	int (*open)(void *ctx, unsigned idx, void **inst, hf_errbuf *eb);
	/* Runs one batch: reqs[0..n) in order, total items (<= max_batch); request k's items
	 * start at reqs[k]->offset in the batch. 0 or an HF_E* code for all of them. */
	int (*run)(void *ctx, void *inst, hf_batcher_req *const *reqs, size_t n, size_t items,
		   hf_errbuf *eb);
	void (*close)(void *ctx, void *inst);       /* may be NULL */
	/* Exactly once per accepted request; msg is "" or the run's detail. */
	void (*done)(void *ctx, hf_batcher_req *req, int result, const char *msg);
} hf_batcher_ops;

typedef struct hf_batcher_opts {
	size_t max_batch;           /* 1.. (0: 1) */
	uint64_t max_delay_us;      /* 0: a batch goes as soon as an instance is free */
	size_t max_queue;           /* queued requests (0: 1024) */
	uint64_t timeout_ms;        /* per request, from submit (0: none) */
	unsigned instances;         /* 1..HF_BATCHER_MAX_INSTANCES (0: 1) */
	unsigned fail_limit;        /* consecutive failed runs that stop an instance (0: 3) */
} hf_batcher_opts;

#define HF_BATCHER_MAX_INSTANCES 16
/* Batch-size histogram buckets: le 1, 2, 4, ... 4096 (13 buckets, then +Inf). */
#define HF_BATCHER_SIZE_BUCKETS 13
/* Time histogram buckets (seconds): 50us 100us 250us 500us 1ms 2.5ms 5ms 10ms 25ms 50ms 100ms
 * 250ms 500ms 1s 2.5s 5s 10s, then +Inf. */
#define HF_BATCHER_TIME_BUCKETS 17
extern const double hf_batcher_time_bounds[HF_BATCHER_TIME_BUCKETS];

typedef struct hf_batcher_hist {
	uint64_t count;
	double sum;
	uint64_t bucket[HF_BATCHER_TIME_BUCKETS]; /* not cumulative: bucket[i] counts (b[i-1], b[i]] */
} hf_batcher_hist;

typedef struct hf_batcher_stats {
	size_t queue_depth;         /* requests queued now */
	size_t queued_items;
	unsigned instances, instances_ready, instances_failed, instances_busy;
	uint64_t submitted_total;   /* accepted */
	uint64_t refused_full_total, refused_state_total, refused_range_total;
	uint64_t completed_total;   /* done() with 0 */
	uint64_t failed_total;      /* done() with a run's error */
	uint64_t timeout_total, canceled_total;
	uint64_t batches_total, items_total;
	uint64_t batch_size[HF_BATCHER_SIZE_BUCKETS + 1]; /* not cumulative; last: > 4096 */
	hf_batcher_hist queue_time;   /* submit -> batch start, per request that ran */
	hf_batcher_hist compute_time; /* run() duration, per batch */
	double items_per_second;      /* items run over the last ~5 s */
	char last_error[256];         /* the last failed open or run ("" none) */
} hf_batcher_stats;

typedef struct hf_batcher hf_batcher;

/* Starts the instances and waits until each opened (or failed to). HF_ECL (or the open's code)
 * with the first failure's detail when none opened. ops is copied. */
int hf_batcher_new(const hf_batcher_opts *opts, const hf_batcher_ops *ops, hf_batcher **out,
		   hf_errbuf *eb);
/* Queues req (req->items set by the caller). 0: accepted, done() will be called; HF_ERANGE: items
 * 0 or over max_batch; HF_EBUSY: the queue is full; HF_ESTATE: draining or no instance left. */
int hf_batcher_submit(hf_batcher *b, hf_batcher_req *req, hf_errbuf *eb);
/* Stops admitting (submit: HF_ESTATE), runs what is queued without waiting for the delay, and
 * waits for the queue to empty and the running batches to finish, until deadline_ms
 * (hf_mono_ms). At the deadline the still-queued requests are answered HF_ECANCELED, the
 * running batches are waited for, and HF_ETIMEOUT is returned. */
int hf_batcher_drain(hf_batcher *b, uint64_t deadline_ms, hf_errbuf *eb);
/* Not draining, and at least one instance runs. */
bool hf_batcher_serving(hf_batcher *b);
void hf_batcher_stats_get(hf_batcher *b, hf_batcher_stats *out);
/* Drains with no grace (queued requests HF_ECANCELED), joins the instances (close called),
 * frees. NULL accepted. */
void hf_batcher_free(hf_batcher *b);

#endif
