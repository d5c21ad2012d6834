/* hf_pool: the hashflop-pool lab Stratum v1 server: jobs from a block template, extranonce1
 * assignment and session resumption, fractional and variable difficulty, version rolling,
 * full share validation (header recomputed and hashed), per-worker counters and fault
 * injection for tests.
 *
 * Invariants: every share is checked in this order and answered with the first failure:
 * malformed [20], unauthorized worker [24], unknown job [20], stale job (older block) [21],
 * extranonce2 size [20], bad ntime [20], bad version bits [20], duplicate [22], above target
 * [23]. Accepted shares are logged with their hash.
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

/* Fault injection: kind is drop, garbage, reconnect, new_block, refuse_authorize, stall,
 * show_message; args (may be NULL) are host/port/wait for reconnect, on ("0"/"1") for the
 * switches, text for show_message. */
int hf_pool_fault(hf_pool *p, const char *kind, const char *host, const char *port,
		  const char *wait, const char *on, hf_errbuf *eb);

/* Counters: totals, rejects by reason, per worker (new reference). */
json_t *hf_pool_stats_json(hf_pool *p);

#endif
