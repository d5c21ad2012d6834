/* hf_mining_priv: the mining worker's internal state, shared by hf_mining.c (lifecycle and
 * supervisor), hf_mining_hash.c (hashing and submit threads) and hf_mining_stats.c (status,
 * metrics, status line). Not a public interface.
 * Invariants: `life` guards drv, th and nth against release while status/metrics read them;
 * `wlock` guards the published work, its generation and the switch-latency bookkeeping;
 * `slock` guards every counter below it; `qlock` the submit queue.
 * Threading: see hf_mining.h.
 */
#ifndef HF_MINING_PRIV_H
#define HF_MINING_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_mining.h"
#include "hf_mining_config.h"
#include "hf_mining_rate.h"
#include "hf_sha256d.h"
#include "hf_sha256d_cl.h"
#include "hf_stratum_drv.h"

#define HF_MINING_QCAP 1024
#define HF_MINING_HITS 16
#define HF_MINING_NO_POOL_GRACE_MS 3000

/* One published work, shared by reference between threads and queued shares. */
typedef struct hf_mwork {
	atomic_uint refs;
	hf_stratum_work w;
	uint32_t vcount;       /* versions rolled per extranonce2 */
	atomic_bool replaced;  /* a clean job or a new session made this work stale */
} hf_mwork;

typedef enum hf_mining_state {
	HF_MST_STOPPED = 0, HF_MST_CONNECTING, HF_MST_MINING, HF_MST_NO_POOL, HF_MST_DRAINING,
	HF_MST_FAILED,
} hf_mining_state;

typedef struct hf_mthread {
	struct hf_mining *m;
	unsigned idx;
	pthread_t th;
	bool started;
	int cpu;                          /* pinned CPU or -1 */
	uint32_t start;                   /* nonce range */
	uint64_t count;
	hf_sha256d_cl *cl;                /* OpenCL backend */
	uint64_t min_chunk;               /* OpenCL: one batch */
	atomic_uint_fast64_t hashes, cpu_ns, beat_ms, chunk;
	atomic_bool waiting, stalled, failed;
	/* under slock */
	hf_mining_rate rate;
	uint64_t seen_hashes;
} hf_mthread;

typedef struct hf_mqueued {
	hf_mwork *w;
	hf_stratum_share sh;
} hf_mqueued;

typedef struct hf_mining_drain {
	bool done;
	uint64_t hash_stop_ms, flush_ms, close_ms, total_ms, flushed, unanswered;
	int result;
} hf_mining_drain;

struct hf_mining {
	hf_mining_config base;
	char state_dir[PATH_MAX];
	/* one run */
	hf_mining_config cfg;
	const hf_sha256d_impl *impl;
	char device[256];
	pthread_mutex_t life;
	hf_stratum_drv *drv;
	hf_mthread *th;
	unsigned nth;
	pthread_t sup, sub;
	bool sup_started, sub_started;
	atomic_bool stop_hash, stop_sup;
	atomic_int state;
	uint64_t run_start_ms;
	/* published work */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	hf_mwork *cur;
	atomic_uint_fast64_t gen;
	uint64_t gen_pub_us, sw_gen, sw_max_us;
	unsigned sw_seen, sw_expect;
	atomic_uint_fast64_t en2_next;
	/* submit queue */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	hf_mqueued q[HF_MINING_QCAP];
	size_t qhead, qlen;
	bool qstop;
	/* counters (slock) */
	pthread_mutex_t slock;
	hf_mining_rate total_rate;
	uint64_t found, submitted, accepted, rejected, stale, hw_errors, queue_drops, known_stale_sent;
	uint64_t en2_rolls, version_rolls, stalls, job_switches, runs, run_submitted0;
	uint64_t sw_last_us, sw_maxall_us, sw_sum_us;
	uint64_t lat_count, lat_sum_ms, lat_max_ms, lat_last_ms;
	double best_diff, difficulty;
	double cpu_s_total, hashes_at_cpu;   /* for hashes per CPU-second */
	uint64_t proc_cpu_ns0;
	struct { char reason[48]; uint64_t count; } rejects[8];
	size_t nrejects;
	int active_pool;
	uint64_t active_since_ms, no_pool_since_ms;
	uint64_t first_work_ms, first_accepted_ms;   /* restart latency of this run (0 = not yet) */
	char last_error[200];
	hf_mining_drain last_drain;
};

/* hf_mining_hash.c */
void *hf_mining_hash_main(void *arg);
void *hf_mining_submit_main(void *arg);
void hf_mining_work_unref(hf_mwork *w);
void hf_mining_on_result(void *ctx, int pool, const hf_stratum_share *share, bool accepted,
			 const char *reason, uint64_t latency_ms);

/* PoCL's LLVM installs its own alternate signal stack on a thread that builds or first launches
 * a kernel; these keep the thread's own (e.g. AddressSanitizer's, unmapped at thread exit)
 * around every OpenCL call. */
void hf_mining_altstack_save(stack_t *saved);
void hf_mining_altstack_restore(const stack_t *saved);

/* hf_mining_stats.c */
void hf_mining_sample(struct hf_mining *m, uint64_t now_ms);
void hf_mining_status_line(struct hf_mining *m);
void hf_mining_status(void *impl, json_t *obj);
void hf_mining_metrics(void *impl, hf_buf *b);
const char *hf_mining_state_name(hf_mining_state s);
/* "51.3 MH/s" */
void hf_mining_fmt_rate(double hps, char *out, size_t outsz);

#endif
