/* hf_pool: the hashflop-pool lab Stratum v1 server: jobs from a block template, extranonce1
 * assignment and session resumption, fractional and variable difficulty, version rolling,
 * full share validation (header recomputed and hashed), per-worker counters and fault
 * injection for tests.
 *
 * Invariants: every share is checked in this order and answered with the first failure:
 * malformed [20], unauthorized worker [24], unknown job [20], stale job (older block) [21],
 * extranonce2 size [20], bad ntime [20], bad version bits [20], duplicate [22], above target
 * [23]. Accepted shares are logged with their hash; strings from outside (fault texts,
 * worker names) are cleaned (hf_text_clean) before they are logged.
 * Threading: hf_pool_run() on one thread (accepts; one thread per client); hf_pool_fault(),
 * hf_pool_stats_json() and hf_pool_stop() from any thread.
 */
#ifndef HF_POOL_H
#define HF_POOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"

typedef struct hf_pool hf_pool;

typedef struct hf_pool_cfg {
	char listen_host[64];
	uint16_t port;               /* 0: ephemeral */
	double difficulty;           /* initial share difficulty (fractions allowed) */
	unsigned en2_size;           /* 2-8 */
	uint32_t version_mask;       /* 0: no version rolling */
	bool vardiff;
	double vardiff_spm;          /* target shares per minute */
	double vardiff_min, vardiff_max;
	char tls_cert[512], tls_key[512]; /* both set: TLS listener */
	/* block template */
	char prevhash[65];           /* display hex of the previous block ("" = made up) */
	char coinb1[2 * 16384 + 1], coinb2[2 * 16384 + 1]; /* "" = built-in BIP 34 coinbase */
	char branch[32][65];
	size_t nbranch;
	uint32_t version, nbits;
	uint32_t height;
	uint64_t block_interval_ms;  /* 0: new blocks only on request */
	uint64_t job_interval_ms;    /* 0: no job refresh */
	bool refuse_authorize;
	bool stall;
} hf_pool_cfg;

void hf_pool_cfg_defaults(hf_pool_cfg *cfg);

int hf_pool_new(const hf_pool_cfg *cfg, hf_pool **out, hf_errbuf *eb);
uint16_t hf_pool_port(const hf_pool *p);
/* Serves until hf_pool_stop(); then closes every client. */
int hf_pool_run(hf_pool *p);
void hf_pool_stop(hf_pool *p);
void hf_pool_free(hf_pool *p);

/* Fault injection arguments (any may be NULL). */
typedef struct hf_pool_fault_args {
	const char *host, *port, *wait; /* reconnect: client.reconnect's params */
	const char *on;                 /* refuse_authorize, stall: "1" (default) or "0" */
	const char *text;               /* show_message text (else host); reject reason */
	const char *count;              /* drop_answer, reject: how many submits (1-1000000, default 1) */
	const char *code;               /* reject: the JSON-RPC error code (1-99, default 20) */
} hf_pool_fault_args;

/* Fault injection: kind is drop, garbage, reconnect, new_block, refuse_authorize, stall,
 * show_message (addressed to the clients connected now, or switches), or drop_answer and
 * reject (the next `count` submits from any client: drop_answer reads them and never
 * answers; reject answers [code, text] without checking them). Answer faults queue up in
 * order (at most HF_POOL_ANSWER_FAULTS pending). A reject text must be valid UTF-8 of at most
 * HF_POOL_FAULT_TEXT_MAX - 1 bytes (control characters are allowed: that is what it tests). */
#define HF_POOL_ANSWER_FAULTS 32
#define HF_POOL_FAULT_TEXT_MAX 1024
int hf_pool_fault(hf_pool *p, const char *kind, const hf_pool_fault_args *args, hf_errbuf *eb);

/* Counters: totals, rejects by reason, per worker (new reference). */
json_t *hf_pool_stats_json(hf_pool *p);

#endif
