/* hf_mining_priv: the mining worker's internal state, shared by hf_mining.c (lifecycle and
 * supervisor), hf_mining_hash.c (hashing runners and the submit thread) and hf_mining_stats.c
 * (status, metrics, status line). Not a public interface.
 * Invariants: `life` guards drv, th and nth against release while status/metrics read them;
 * `tlock` guards each slot's runners (start, replacement, join); `wlock` guards the published
 * work, its generation and the switch-latency bookkeeping; `qlock` the submit queue; `slock`
 * the run report (rates, pool, errors, the last drain). Shares are counted by the ledger
 * (its own lock), plain event counters are atomics. Lock order: life -> tlock -> slock;
 * wlock, qlock and the ledger's lock are leaves. `state` changes only through
 * hf_mining_set_state() (compare-and-swap from the states a writer may leave).
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
#include "hf_mining_retry.h"
#include "hf_mining_testhook.h"
#include "hf_power.h"
#include "hf_power_target.h"
#include "hf_sha256d.h"
#include "hf_sha256d_cl.h"
#include "hf_share_ledger.h"
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
#define HF_MST_BIT(s) (1u << (s))

/* One hashing thread. A slot outlives its runners: a failed runner is joined and replaced
 * after a backoff, a stalled CPU runner is retired (it exits when its scan returns) and a new
 * one takes the slot's nonce range with a fresh extranonce2. */
typedef struct hf_mrunner {
	struct hf_mthread *t;
	pthread_t th;
	uint64_t cpu_base_ns;   /* the slot's CPU time before this runner */
	atomic_bool retired;    /* replaced: leave after the current scan, touch nothing shared */
	atomic_bool exited;     /* the thread function returned: joining does not block */
} hf_mrunner;

typedef struct hf_mthread {
	struct hf_mining *m;
	unsigned idx;
	int cpu;                          /* pinned CPU or -1 */
	uint32_t start;                   /* nonce range */
	uint64_t count;
	hf_sha256d_cl *cl;                /* OpenCL backend: used by the runner, reopened between runners */
	uint64_t min_chunk;               /* OpenCL: one batch */
	atomic_uint_fast64_t hashes, cpu_ns, beat_ms, chunk;
	atomic_bool waiting, stalled, failed;
	atomic_bool replaced_running;     /* a retired runner has not returned yet */
	atomic_uint restarts;             /* runners started after the first */
	int error_code;                   /* the failed scan: written before `failed` is set */
	char error[200];
	/* under m->tlock */
	hf_mrunner *run;                  /* the current runner (NULL while a restart is pending) */
	hf_mrunner *zombie;               /* a retired runner not joined yet (at most one) */
	uint64_t restart_at_ms;           /* a restart is due then (0: none pending) */
	/* under slock */
	hf_mining_rate rate;
	uint64_t seen_hashes;
} hf_mthread;

/* The power target's report (under slock; written by the supervisor after each step). */
typedef struct hf_mining_ptreport {
	bool on;                          /* a target is configured and this run applies it */
	bool nvml_limit;                  /* method: the board power limit (else threads+duty) */
	bool estimated;
	char source[16];
	char message[200];                /* why the method or state is what it is ("" = nothing to say) */
	hf_power_target_info info;
	double limit_w;                   /* nvml_limit: the limit set */
} hf_mining_ptreport;

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
	hf_share_ledger *ledger;          /* every share over the worker's life */
	/* one run */
	hf_mining_config cfg;
	hf_mining_testhook hook;
	const hf_sha256d_impl *impl;
	char device[256];
	pthread_mutex_t life;
	hf_stratum_drv *drv;
	hf_mthread *th;
	unsigned nth;
	pthread_mutex_t tlock;
	hf_mining_retry retry;            /* supervisor thread only */
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
	/* event counters over the worker's life */
	atomic_uint_fast64_t en2_rolls, version_rolls, stalls, restarts;
	/* run report (slock) */
	pthread_mutex_t slock;
	hf_mining_rate total_rate;
	uint64_t job_switches, runs;
	uint64_t sw_last_us, sw_maxall_us, sw_sum_us;
	double difficulty;
	double cpu_s_total, hashes_at_cpu;   /* for hashes per CPU-second */
	uint64_t proc_cpu_ns0;
	int active_pool;
	uint64_t active_since_ms, no_pool_since_ms;
	uint64_t first_work_ms, first_accepted_ms;   /* restart latency of this run (0 = not yet) */
	char pool_error[200];             /* the first pool's last error while no pool answers */
	char last_error[200];             /* why the run failed ("" while it has not) */
	int fail_code;
	hf_mining_drain last_drain;
	uint64_t hashes_done;             /* hashes of released runs (under life) */
	/* power target (hf_mining_power.c) */
	hf_power *power;                  /* borrowed; NULL: no source, so no target */
	hf_power_target *pt;              /* supervisor only while a run is live; kept across runs */
	atomic_uint act_threads;          /* slots with idx >= this park on wcond */
	atomic_uint act_duty_ppm;         /* hashing share of each duty period, per million */
	hf_power_reading pt_prev;         /* supervisor only: the previous step's reading */
	bool pt_have_prev, pt_limit_set;
	bool pt_observe, pt_run_live;     /* the controller only observes; this run has had work */
	unsigned pt_nth;                  /* the threads the controller was made for */
	uint64_t pt_next_ms;
	double pt_limit_restore_w;        /* nvml_limit: the board limit before the run */
	hf_mining_ptreport ptr;           /* under slock */
};

/* Moves state to `to` if it is one of the states in from_mask (HF_MST_BIT()s); false if not. */
bool hf_mining_set_state(struct hf_mining *m, unsigned from_mask, hf_mining_state to);

/* hf_mining_hash.c */
/* Starts a runner on slot t (becomes t->run; pinned if t->cpu >= 0). Caller holds tlock. */
int hf_mining_runner_start(hf_mthread *t, hf_errbuf *eb);
/* Joins and frees a runner (NULL accepted). */
void hf_mining_runner_join(hf_mrunner *r);
void *hf_mining_submit_main(void *arg);
void hf_mining_work_unref(hf_mwork *w);
void hf_mining_on_result(void *ctx, int pool, const hf_stratum_share *share, bool accepted,
			 const char *reason, uint64_t latency_ms);
void hf_mining_on_dropped(void *ctx, int pool, const hf_stratum_share *share,
			  hf_stratum_drop why);

/* PoCL's LLVM installs its own alternate signal stack on a thread that builds or first launches
 * a kernel; these keep the thread's own (e.g. AddressSanitizer's, unmapped at thread exit)
 * around every OpenCL call. */
void hf_mining_altstack_save(stack_t *saved);
void hf_mining_altstack_restore(const stack_t *saved);

/* hf_mining_power.c */
#define HF_MINING_DUTY_PERIOD_US 100000
/* At start (after open_backend): refuses a configured target without a power source, picks the
 * method (NVML board limit for OpenCL when it can be set, else threads+duty) and sets the
 * actuators. */
int hf_mining_power_start(struct hf_mining *m, hf_errbuf *eb);
/* Supervisor, every tick: one controller step every HF_MINING_PT_STEP_MS while mining. */
void hf_mining_power_tick(struct hf_mining *m, uint64_t now_ms);
/* At release: restores the board limit; actuators back to every thread at full duty. */
void hf_mining_power_release(struct hf_mining *m);
/* Status "power_target" (NULL when no target is configured); caller holds slock. */
json_t *hf_mining_power_status(struct hf_mining *m, double hashes_per_s);
/* Metric families; caller holds slock. */
void hf_mining_power_metrics(struct hf_mining *m, hf_buf *b);

/* hf_mining_stats.c */
void hf_mining_sample(struct hf_mining *m, uint64_t now_ms);
void hf_mining_status_line(struct hf_mining *m);
void hf_mining_status(void *impl, json_t *obj);
void hf_mining_metrics(void *impl, hf_buf *b);
const char *hf_mining_state_name(hf_mining_state s);
/* "51.3 MH/s" */
void hf_mining_fmt_rate(double hps, char *out, size_t outsz);

#endif
