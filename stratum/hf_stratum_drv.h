/* hf_stratum_drv: the Stratum v1 socket driver: owns the connections, timers and reconnects
 * around one hf_stratum core per pool, and hands miners the current work.
 *
 * Behaviour: pools are tried in list order; a pool that fails (connect, TLS, handshake,
 * refused authorization, silence, disconnect) is retried after an exponential backoff with
 * jitter while the next pool in the list takes over (failover). While a less preferred pool
 * is active, more preferred pools are probed every failback_ms and the driver moves back as
 * soon as one answers (failback). Reconnects to the same pool offer the previous session id
 * (mining.subscribe resumption); if the pool returns the same extranonce1 the session counts
 * as resumed and outstanding work stays valid. client.reconnect is followed (same host, or
 * another host only when allow_reconnect_host). A share is checked against the share target
 * before it is queued (failing: a hardware error) and is dropped, not sent, when its job was
 * replaced by a clean_jobs notify or the session changed (stale). A pool that does not take
 * a whole write within write_timeout_ms (it stopped reading) is dropped like a silent one.
 * client.reconnect to a host that is not a plain host name or address is ignored. Pool text
 * kept in the stats (last_error, last_message, reject reasons) or passed to on_result is
 * cleaned with hf_text_clean() (control characters and invalid UTF-8 become '?').
 * Threading: hf_stratum_drv_new/start/stop/free from one controlling thread; the driver runs
 * its own thread; work, submit and stats calls are safe from any thread.
 */
#ifndef HF_STRATUM_DRV_H
#define HF_STRATUM_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_stratum_job.h"

#define HF_STRATUM_DRV_MAX_POOLS 8
#define HF_STRATUM_REJECT_KINDS 8

typedef struct hf_stratum_drv hf_stratum_drv;

typedef struct hf_stratum_pool_cfg {
	const char *url;   /* stratum+tcp://, stratum+ssl://, stratum+tls:// */
	const char *user;  /* ADDRESS[.worker] */
	const char *pass;  /* NULL: "x" */
} hf_stratum_pool_cfg;

/* Called on the driver thread (no lock held) for every share result: the share as submitted,
 * the pool's verdict, its reject reason ("" when accepted) and the submit -> result latency. */
typedef void (*hf_stratum_result_fn)(void *ctx, int pool, const hf_stratum_share *share,
				     bool accepted, const char *reason, uint64_t latency_ms);

/* Why the driver gave up on a share that hf_stratum_drv_submit() had queued. */
typedef enum hf_stratum_drop {
	HF_STRATUM_DROP_STALE = 0,     /* its job or session was replaced before it could be sent */
	HF_STRATUM_DROP_SUBMIT_FAILED, /* the protocol core refused to build the submit */
	HF_STRATUM_DROP_SESSION_LOST,  /* sent; the session ended before the pool answered */
	HF_STRATUM_DROP_EVICTED,       /* sent; forgotten unanswered to make room for newer ones */
	HF_STRATUM_DROP_STOPPED,       /* still queued, or sent and unanswered, at hf_stratum_drv_stop() */
} hf_stratum_drop;

/* Called on the driver thread (no lock held) for every share the driver drops after
 * hf_stratum_drv_submit() returned 0 for it. While the driver runs, each such share gets
 * exactly one on_result or one on_dropped call; the last ones come from inside
 * hf_stratum_drv_stop(). */
typedef void (*hf_stratum_dropped_fn)(void *ctx, int pool, const hf_stratum_share *share,
				      hf_stratum_drop why);

typedef struct hf_stratum_drv_opts {
	hf_stratum_pool_cfg pools[HF_STRATUM_DRV_MAX_POOLS];
	size_t npools;
	const char *user_agent;     /* NULL: "hashflop/VERSION" */
	const char *ca_file;        /* TLS trust (NULL: system default) */
	bool insecure;              /* TLS without verification (only when asked) */
	uint64_t connect_timeout_ms; /* 0: 10000 (resolve + TCP + TLS) */
	uint64_t handshake_timeout_ms; /* 0: 10000 (subscribe + authorize answered) */
	uint64_t write_timeout_ms;  /* 0: 10000; a pool that has not taken a whole write after
				     * this long (it stopped reading) is dropped and backed off */
	uint64_t silence_ms;        /* 0: 120000; no line for this long: reconnect */
	uint64_t backoff_min_ms;    /* 0: 1000 */
	uint64_t backoff_max_ms;    /* 0: 60000 */
	uint64_t failback_ms;       /* 0: 60000 */
	uint32_t version_mask;      /* 0: no version rolling; else ask mining.configure */
	double suggest_difficulty;  /* 0: none */
	bool extranonce_subscribe;
	bool allow_reconnect_host;  /* follow client.reconnect to a different host */
	uint32_t seed;              /* jitter seed (0: from the clock) */
	hf_stratum_result_fn on_result; /* optional */
	hf_stratum_dropped_fn on_dropped; /* optional */
	void *ctx;
} hf_stratum_drv_opts;

/* The current work: a deep copy; release with hf_stratum_work_clear(). */
typedef struct hf_stratum_work {
	hf_stratum_job job;
	uint8_t en1[HF_STRATUM_EN1_MAX];
	size_t en1_len;
	unsigned en2_size;
	double difficulty;
	uint8_t share_target[32];
	uint32_t version_mask;  /* 0: no rolling */
	int pool;               /* index in opts.pools */
	uint64_t session;       /* changes whenever old work becomes stale */
	uint64_t seq;           /* changes on every new job, difficulty or session */
} hf_stratum_work;

void hf_stratum_work_clear(hf_stratum_work *w);

typedef struct hf_stratum_pool_stats {
	char url[256];
	bool active;
	uint64_t connects, connect_failures, disconnects, resumes, auth_failures;
	uint64_t silence_timeouts, reconnect_requests, bad_lines;
	uint64_t submitted, accepted, rejected, stale, hw_errors;
	struct {
		char reason[48];
		uint64_t count;
	} rejects[HF_STRATUM_REJECT_KINDS]; /* by reason; the last slot collects "other" */
	size_t nrejects;
	uint64_t latency_count, latency_ms_sum, latency_ms_max, latency_ms_last;
	double difficulty;
	char last_error[160];
	char last_message[160];     /* from client.show_message */
} hf_stratum_pool_stats;

int hf_stratum_drv_new(const hf_stratum_drv_opts *opts, hf_stratum_drv **out, hf_errbuf *eb);
/* Starts the driver thread. */
int hf_stratum_drv_start(hf_stratum_drv *d, hf_errbuf *eb);
/* Stops the thread and returns promptly: the session is closed without waiting for the pool
 * (close_notify only if the socket takes it at once), and a name lookup, connect, TLS
 * handshake or write in progress is abandoned (a hung lookup finishes on its own thread);
 * nothing here waits for connect_timeout_ms or the write timeout. Safe to call twice. */
void hf_stratum_drv_stop(hf_stratum_drv *d);
/* Stops and frees (NULL accepted). */
void hf_stratum_drv_free(hf_stratum_drv *d);

/* Copies the current work; HF_ENOTFOUND while there is none. */
int hf_stratum_drv_work(hf_stratum_drv *d, hf_stratum_work *out);
/* Waits until the work's seq differs from after_seq (0: until any work); false on timeout. */
bool hf_stratum_drv_wait_work(hf_stratum_drv *d, uint64_t after_seq, uint64_t timeout_ms);

/* Checks and queues a share found on work w. 0: queued; HF_ESTATE: stale (dropped and
 * counted); HF_ERANGE: above the share target (counted as a hardware error); HF_EINVAL: bad
 * arguments. */
int hf_stratum_drv_submit(hf_stratum_drv *d, const hf_stratum_work *w,
			  const hf_stratum_share *share);

/* Index of the pool in session (authorized), or -1. */
int hf_stratum_drv_active_pool(hf_stratum_drv *d);
int hf_stratum_drv_pool_stats(hf_stratum_drv *d, size_t pool, hf_stratum_pool_stats *out);
/* Total completed share results (accepted + rejected) over all pools. */
uint64_t hf_stratum_drv_results(hf_stratum_drv *d);

#endif
