/* hf_node_config: node.json, the configuration of hashflopd, loaded and validated strictly.
 *
 * Every field has a default except node_id and fleet_id (required in a file; the embedded
 * default used without --config takes the host name and fleet "default"). Unknown keys, wrong
 * types and out-of-range values are refused with the field's JSON path.
 * Threading: a config is built once by main and read-only afterwards.
 */
#ifndef HF_NODE_CONFIG_H
#define HF_NODE_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_log.h"
#include "hf_mode.h"
#include "hf_power.h"

#define HF_NODE_DEFAULT_STATE_DIR "/var/lib/hashflop"
#define HF_NODE_DEFAULT_PORT 8470
#define HF_NODE_DEFAULT_TRUST_FILE "/etc/hashflop/trust.json"

typedef struct hf_node_config {
	char node_id[64];
	char fleet_id[64];
	char state_dir[PATH_MAX];
	/* not a key: the OpenCL program cache and PoCL's kernel cache ("" = <state_dir>/cl-cache);
	 * hashflopd sets it from $CACHE_DIRECTORY. mining.opencl.cache_dir still wins for mining. */
	char cache_dir[PATH_MAX];
	hf_log_level log_level;
	char api_listen[64];       /* numeric address */
	uint16_t api_port;         /* 0 = ephemeral (tests) */
	uint64_t api_max_body;     /* bytes */
	uint64_t api_max_conns;    /* connections open at once */
	uint64_t api_max_conns_per_client; /* from one address (0 = no cap) */
	uint64_t api_header_timeout_s; /* deadline for a request's headers */
	uint64_t api_timeout_s;    /* idle timeout of a connection */
	uint64_t api_threads;      /* server threads */
	hf_mode initial_mode;      /* when the state dir holds no desired mode yet */
	uint64_t drain_timeout_ms;
	uint64_t mode_retry_min_ms; /* first retry of a failed start / restart after a health failure */
	uint64_t mode_retry_max_ms; /* retry delay ceiling (doubling from the minimum) */
	uint64_t health_interval_ms; /* health checks of the running mode */
	uint64_t apply_wait_ms;    /* POST /v1/instruction waits this long for the switch */
	uint64_t ready_timeout_ms; /* READY=1 waits at most this long for the first start */
	uint64_t watchdog_failures; /* health failures in a row that stop the watchdog (0: never) */
	/* control: where instructions come from and how they are checked */
	char trust_file[PATH_MAX]; /* trust.json; missing file = refuse every instruction */
	char coordinator_url[512]; /* base URL to long-poll; "" = no polling */
	char ca_file[PATH_MAX];    /* CA bundle for an https coordinator ("" = system store) */
	uint64_t poll_wait_s;      /* long-poll wait asked of the coordinator */
	uint64_t clock_skew_ms;    /* allowance for issued_ms in the future */
	uint64_t retry_max_ms;     /* backoff ceiling after coordinator errors */
	char token_file[PATH_MAX]; /* the node's coordinator token ("" = none: no reports) */
	uint64_t report_interval_s; /* reports to the coordinator, 1..3600 */
	/* power: where the watts come from (hf_power.h) and how often telemetry samples them */
	hf_power_kind power_source; /* power.source (auto) */
	char power_sysfs_root[PATH_MAX]; /* power.sysfs_root ("/sys") */
	char power_nvml_library[PATH_MAX]; /* power.nvml_library ("libnvidia-ml.so.1") */
	char power_pci_bus_id[64]; /* power.pci_bus_id ("": every GPU NVML sees) */
	double power_idle_w, power_full_w; /* the estimate (0/0: the defaults for this machine) */
	uint64_t power_sample_interval_ms; /* the source's sampler (100) */
	uint64_t telemetry_interval_ms; /* the node's telemetry sampler (1000) */
	json_t *mining;            /* the mining section as given (owned), NULL if absent */
	json_t *inference;         /* the inference section as given (owned), NULL if absent */
} hf_node_config;

/* Fills every default (node_id from the host name, fleet "default"). */
void hf_node_config_defaults(hf_node_config *cfg);
/* Validates a parsed node.json (name for messages) on top of the defaults. */
int hf_node_config_from_json(hf_node_config *cfg, const json_t *root, hf_errbuf *eb);
/* Reads, parses and validates a node.json file. */
int hf_node_config_load(hf_node_config *cfg, const char *path, hf_errbuf *eb);
/* The effective config as node.json (every key, defaults filled in) into *out (new
 * reference); mask_secrets replaces pool passwords and URL credentials with "***". Loading the
 * result gives the same effective config (with the masked values). HF_EINVAL with the key
 * when a value is not representable (e.g. a state_dir that is not UTF-8). */
int hf_node_config_to_json(const hf_node_config *cfg, bool mask_secrets, json_t **out,
			   hf_errbuf *eb);
/* Frees what the config owns (not cfg itself). */
void hf_node_config_clear(hf_node_config *cfg);

#endif
