/* hf_mining_config: the `mining` section of node.json (pools, backend, Stratum options) and the
 * pool list of an instruction's `mining` parameters, validated strictly.
 *
 * Invariants: a parsed config has 0..HF_MINING_MAX_POOLS pools (a node may be configured
 * without pools and get them from each instruction); every string is NUL-terminated and
 * length-checked; numbers are within the bounds the runtime/node/README.md table gives.
 * Unknown keys, wrong types and out-of-range values are refused with the field's JSON path.
 * Threading: plain values; parse functions are reentrant.
 */
#ifndef HF_MINING_CONFIG_H
#define HF_MINING_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_MINING_MAX_POOLS 8
#define HF_MINING_MAX_THREADS 256
#define HF_MINING_FIELD_MAX 256
#define HF_MINING_POWER_TARGET_MAX 1e6   /* watts: a node, not a site */

typedef enum hf_mining_backend {
	HF_MINING_CPU = 0,
	HF_MINING_OPENCL = 1,
} hf_mining_backend;

typedef enum hf_mining_affinity {
	HF_MINING_AFFINITY_NONE = 0,   /* the scheduler places threads */
	HF_MINING_AFFINITY_SPREAD = 1, /* thread i pinned to the i-th CPU the process may use */
} hf_mining_affinity;

typedef struct hf_mining_pool {
	char url[HF_MINING_FIELD_MAX];
	char user[HF_MINING_FIELD_MAX];
	char pass[HF_MINING_FIELD_MAX]; /* "" = "x" */
} hf_mining_pool;

typedef struct hf_mining_config {
	hf_mining_pool pools[HF_MINING_MAX_POOLS];
	size_t npools;
	hf_mining_backend backend;
	/* cpu */
	unsigned threads;              /* 0 = one per CPU the process may use */
	hf_mining_affinity affinity;
	char impl[32];                 /* SHA-256d implementation ("" or "auto" = dispatch) */
	unsigned nice;                 /* hashing threads' nice value (0..19) */
	/* opencl */
	char device[128];              /* hf_cl selector ("" = auto) */
	uint32_t batch;                /* nonces per launch (0 = the scanner's default) */
	char cache_dir[PATH_MAX];      /* program cache ("" = <state_dir>/cl-cache) */
	/* work */
	unsigned range_bits;           /* 2^range_bits nonces per thread per (en2, version), 16..32 */
	bool version_rolling;          /* ask the pool for BIP 310 version rolling */
	/* stratum */
	double suggest_difficulty;     /* 0 = none */
	char user_agent[128];          /* "" = hashflop/VERSION */
	char ca_file[PATH_MAX];        /* "" = system store */
	bool insecure;
	uint64_t failback_ms, backoff_max_ms, silence_ms;
	uint64_t connect_timeout_ms, write_timeout_ms; /* resolve+TCP+TLS; a write the pool does not take */
	/* supervision and reporting */
	uint64_t status_interval_s;    /* status line period */
	uint64_t stall_ms;             /* a hashing thread silent this long counts as stalled */
	uint64_t flush_timeout_ms;     /* share flush budget inside a drain */
	unsigned restart_max;          /* backend restarts allowed within restart_window_ms (0-16) */
	uint64_t restart_window_ms;    /* the window of restart_max */
	uint64_t restart_backoff_ms;   /* wait before the first restart; doubles per failure */
	/* power target */
	double power_target_w;         /* watts to hold the node at (0: none; JSON null) */
} hf_mining_config;

void hf_mining_config_defaults(hf_mining_config *c);
/* Validates a `mining` object (path for messages, e.g. "mining") on top of the current values. */
int hf_mining_config_from_json(hf_mining_config *c, const json_t *obj, const char *path,
			       hf_errbuf *eb);
/* Replaces c's pools with an instruction's {"pools": [...]} (the only key allowed there). */
int hf_mining_config_pools_from_params(hf_mining_config *c, const json_t *params, hf_errbuf *eb);
/* c as a `mining` object with every key (new reference; NULL when a string is not valid UTF-8
 * or out of memory); mask_secrets writes non-empty pool passwords as "***".
 * hf_mining_config_from_json() of the result gives c back (with the masked passwords). */
json_t *hf_mining_config_to_json(const hf_mining_config *c, bool mask_secrets);

#endif
