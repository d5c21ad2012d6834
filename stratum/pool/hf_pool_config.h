/* hf_pool_config: hashflop-pool's strict JSON configuration (pool.json).
 * Threading: reentrant.
 */
#ifndef HF_POOL_CONFIG_H
#define HF_POOL_CONFIG_H

#include <stdint.h>

#include "hf_error.h"
#include "hf_log.h"
#include "hf_pool.h"

typedef struct hf_pool_prog_cfg {
	hf_pool_cfg pool;
	char admin_host[64];
	uint16_t admin_port;
	hf_log_level log_level;
} hf_pool_prog_cfg;

void hf_pool_prog_cfg_defaults(hf_pool_prog_cfg *c);
/* Loads and validates a config file over the defaults already in c. */
int hf_pool_config_load(const char *path, hf_pool_prog_cfg *c, hf_errbuf *eb);
/* Parses an 8-digit hex uint32 ("1fffe000"). */
int hf_pool_parse_hex32(const char *s, uint32_t *out);

#endif
