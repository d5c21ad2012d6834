/* hf_coord_config: coord.json, the coordinator's configuration: schema, defaults and strict
 * validation (an unknown key or a bad value is refused with the path of the field).
 *
 * Invariants: a config that loaded is consistent: absolute paths, TLS certificate and key both
 * given or both empty, plain HTTP only on a loopback address unless listen.allow_plain_remote.
 * Only the text is checked here; the files it names (keys, trust file, database) are opened
 * by the coordinator when it starts.
 * Threading: reentrant; a config belongs to its caller.
 */
#ifndef HF_COORD_CONFIG_H
#define HF_COORD_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_log.h"

#define HF_COORD_DEFAULT_PORT 8480
#define HF_COORD_DEFAULT_SIGNING_KEY "/etc/hashflop/coordinator.pem"
#define HF_COORD_DEFAULT_TRUST_FILE "/etc/hashflop/trust.json"
#define HF_COORD_DEFAULT_DATABASE "/var/lib/hashflop-coord/coord.db"

typedef struct hf_coord_config {
	char fleet_id[64];
	char listen_address[64];
	uint16_t port;                  /* 0: ephemeral */
	char port_file[PATH_MAX];       /* "" none */
	char tls_cert[PATH_MAX], tls_key[PATH_MAX]; /* "" both: plain HTTP */
	bool allow_plain_remote;
	char signing_key[PATH_MAX];
	char trust_file[PATH_MAX];
	char admin_token_file[PATH_MAX]; /* "" none: POST /v1/decisions refused */
	char database[PATH_MAX];
	unsigned report_interval_s;
	unsigned offline_after_s;
	unsigned instruction_ttl_s;
	uint64_t clock_skew_ms;
	hf_log_level log_level;
	size_t max_body;                /* instruction bodies */
	size_t max_report_body;
	unsigned max_wait_s;
	unsigned max_connections;
	unsigned threads;
	unsigned max_nodes;
	char profit_file[PATH_MAX];     /* issue 15: profit.json of the "policy" source; "" none */
} hf_coord_config;

void hf_coord_config_defaults(hf_coord_config *cfg);
/* Validates root (a parsed coord.json) over the defaults in cfg; cfg changes only on success. */
int hf_coord_config_from_json(hf_coord_config *cfg, const json_t *root, hf_errbuf *eb);
/* Reads and validates a file; errors start with its path. */
int hf_coord_config_load(hf_coord_config *cfg, const char *path, hf_errbuf *eb);
/* The effective config as coord.json (every default filled in); NULL when out of memory. */
json_t *hf_coord_config_to_json(const hf_coord_config *cfg);
/* true for 127.0.0.0/8 and ::1. */
bool hf_coord_addr_is_loopback(const char *addr);

#endif
