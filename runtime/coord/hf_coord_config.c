/* hf_coord_config: coord.json schema, defaults and validation.
 * Threading: see hf_coord_config.h.
 */
#include "hf_coord_config.h"

#include <arpa/inet.h>
#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

static const char *const level_choices[] = { "err", "warn", "notice", "info", "debug", NULL };

void hf_coord_config_defaults(hf_coord_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	hf_strlcpy(cfg->fleet_id, "default", sizeof cfg->fleet_id);
	hf_strlcpy(cfg->listen_address, "127.0.0.1", sizeof cfg->listen_address);
	cfg->port = HF_COORD_DEFAULT_PORT;
	hf_strlcpy(cfg->signing_key, HF_COORD_DEFAULT_SIGNING_KEY, sizeof cfg->signing_key);
	hf_strlcpy(cfg->trust_file, HF_COORD_DEFAULT_TRUST_FILE, sizeof cfg->trust_file);
	hf_strlcpy(cfg->database, HF_COORD_DEFAULT_DATABASE, sizeof cfg->database);
	cfg->report_interval_s = 10;
	cfg->offline_after_s = 30;
	cfg->instruction_ttl_s = 600;
	cfg->clock_skew_ms = 30000;
	cfg->log_level = HF_LOG_INFO;
	cfg->max_body = 16384;
	cfg->max_report_body = 65536;
	cfg->max_wait_s = 300;
	cfg->max_connections = 20000;
	cfg->threads = 2;
	cfg->max_nodes = 100000;
}

bool hf_coord_addr_is_loopback(const char *addr)
{
	unsigned char a[16];
	static const unsigned char v6lo[16] = { [15] = 1 };

	if (inet_pton(AF_INET, addr, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, addr, a) == 1)
		return memcmp(a, v6lo, 16) == 0;
	return false;
}

/* A path that must be absolute, or "" when empty is allowed. */
static int check_path(const char *key, const char *v, bool empty_ok, hf_errbuf *eb)
{
	if (!v[0] && empty_ok)
		return 0;
	if (v[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "%s: expected an absolute path%s, got \"%s\"", key,
			       empty_ok ? " or \"\"" : "", v);
	return 0;
}

typedef struct listen_vals {
	char address[64], port_file[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	uint64_t port;
	bool plain_remote;
} listen_vals;

static int read_listen(hf_coord_config *cfg, const json_t *obj, hf_errbuf *eb)
{
	listen_vals v = { .port = cfg->port, .plain_remote = cfg->allow_plain_remote };
	unsigned char a[16];
	hf_cfg_field f[] = {
		{ .key = "address", .type = HF_CFG_STRING, .dst = v.address, .dst_size = sizeof v.address, .min = 1 },
		{ .key = "port", .type = HF_CFG_UINT, .dst = &v.port, .min = 0, .max = 65535 },
		{ .key = "port_file", .type = HF_CFG_STRING, .dst = v.port_file, .dst_size = sizeof v.port_file },
		{ .key = "tls_cert", .type = HF_CFG_STRING, .dst = v.cert, .dst_size = sizeof v.cert },
		{ .key = "tls_key", .type = HF_CFG_STRING, .dst = v.key, .dst_size = sizeof v.key },
		{ .key = "allow_plain_remote", .type = HF_CFG_BOOL, .dst = &v.plain_remote },
	};
	int r;

	hf_strlcpy(v.address, cfg->listen_address, sizeof v.address);
	hf_strlcpy(v.port_file, cfg->port_file, sizeof v.port_file);
	hf_strlcpy(v.cert, cfg->tls_cert, sizeof v.cert);
	hf_strlcpy(v.key, cfg->tls_key, sizeof v.key);
	if ((r = hf_cfg_read(obj, "listen", f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	if (inet_pton(AF_INET, v.address, a) != 1 && inet_pton(AF_INET6, v.address, a) != 1)
		return hf_fail(eb, HF_ECONFIG, "listen.address: expected a numeric IPv4 or IPv6 "
			       "address such as \"127.0.0.1\", got \"%s\"", v.address);
	if ((r = check_path("listen.port_file", v.port_file, true, eb)) < 0 ||
	    (r = check_path("listen.tls_cert", v.cert, true, eb)) < 0 ||
	    (r = check_path("listen.tls_key", v.key, true, eb)) < 0)
		return r;
	if (!v.cert[0] != !v.key[0])
		return hf_fail(eb, HF_ECONFIG, "listen.%s: TLS needs both tls_cert and tls_key "
			       "(or neither, for plain HTTP)", v.cert[0] ? "tls_key" : "tls_cert");
	hf_strlcpy(cfg->listen_address, v.address, sizeof cfg->listen_address);
	cfg->port = (uint16_t)v.port;
	hf_strlcpy(cfg->port_file, v.port_file, sizeof cfg->port_file);
	hf_strlcpy(cfg->tls_cert, v.cert, sizeof cfg->tls_cert);
	hf_strlcpy(cfg->tls_key, v.key, sizeof cfg->tls_key);
	cfg->allow_plain_remote = v.plain_remote;
	return 0;
}

static int read_limits(hf_coord_config *cfg, const json_t *obj, hf_errbuf *eb)
{
	uint64_t body = cfg->max_body, report = cfg->max_report_body, wait = cfg->max_wait_s;
	uint64_t conns = cfg->max_connections, threads = cfg->threads, nodes = cfg->max_nodes;
	hf_cfg_field f[] = {
		{ .key = "max_body", .type = HF_CFG_UINT, .dst = &body, .min = 1024, .max = 16384 },
		{ .key = "max_report_body", .type = HF_CFG_UINT, .dst = &report, .min = 1024,
		  .max = 1048576 },
		{ .key = "max_wait_s", .type = HF_CFG_UINT, .dst = &wait, .min = 1, .max = 3600 },
		{ .key = "max_connections", .type = HF_CFG_UINT, .dst = &conns, .min = 4, .max = 1000000 },
		{ .key = "threads", .type = HF_CFG_UINT, .dst = &threads, .min = 1, .max = 64 },
		{ .key = "max_nodes", .type = HF_CFG_UINT, .dst = &nodes, .min = 1, .max = 1000000 },
	};
	int r = hf_cfg_read(obj, "limits", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	cfg->max_body = body;
	cfg->max_report_body = report;
	cfg->max_wait_s = (unsigned)wait;
	cfg->max_connections = (unsigned)conns;
	cfg->threads = (unsigned)threads;
	cfg->max_nodes = (unsigned)nodes;
	return 0;
}

typedef struct top_vals {
	char fleet[64], key[PATH_MAX], trust[PATH_MAX], admin[PATH_MAX], db[PATH_MAX];
	char profit[PATH_MAX];
	uint64_t report, offline, ttl, skew;
	int level;
} top_vals;

static int check_top(const top_vals *v, hf_errbuf *eb)
{
	int r;

	if (!hf_id_valid(v->fleet))
		return hf_fail(eb, HF_ECONFIG, "fleet_id: expected 1-63 characters of A-Z a-z 0-9 . _ - "
			       "starting with a letter or digit, got \"%s\"", v->fleet);
	if ((r = check_path("signing_key", v->key, false, eb)) < 0 ||
	    (r = check_path("trust_file", v->trust, false, eb)) < 0 ||
	    (r = check_path("admin_token_file", v->admin, true, eb)) < 0 ||
	    (r = check_path("database", v->db, false, eb)) < 0 ||
	    (r = check_path("profit_file", v->profit, true, eb)) < 0)
		return r;
	return 0;
}

int hf_coord_config_from_json(hf_coord_config *cfg, const json_t *root, hf_errbuf *eb)
{
	hf_coord_config next = *cfg;
	top_vals v = { .report = cfg->report_interval_s, .offline = cfg->offline_after_s,
		       .ttl = cfg->instruction_ttl_s, .skew = cfg->clock_skew_ms,
		       .level = (int)cfg->log_level - HF_LOG_ERR };
	const json_t *listen = NULL, *limits = NULL;
	hf_cfg_field f[] = {
		{ .key = "fleet_id", .type = HF_CFG_STRING, .required = true, .dst = v.fleet,
		  .dst_size = sizeof v.fleet, .min = 1 },
		{ .key = "listen", .type = HF_CFG_OBJECT, .dst = &listen },
		{ .key = "signing_key", .type = HF_CFG_STRING, .dst = v.key, .dst_size = sizeof v.key, .min = 1 },
		{ .key = "trust_file", .type = HF_CFG_STRING, .dst = v.trust, .dst_size = sizeof v.trust, .min = 1 },
		{ .key = "admin_token_file", .type = HF_CFG_STRING, .dst = v.admin, .dst_size = sizeof v.admin },
		{ .key = "database", .type = HF_CFG_STRING, .dst = v.db, .dst_size = sizeof v.db, .min = 1 },
		{ .key = "report_interval_s", .type = HF_CFG_UINT, .dst = &v.report, .min = 1, .max = 3600 },
		{ .key = "offline_after_s", .type = HF_CFG_UINT, .dst = &v.offline, .min = 1, .max = 86400 },
		{ .key = "instruction_ttl_s", .type = HF_CFG_UINT, .dst = &v.ttl, .min = 10,
		  .max = 30 * 86400 },
		{ .key = "clock_skew_ms", .type = HF_CFG_UINT, .dst = &v.skew, .min = 0, .max = 3600000 },
		{ .key = "log_level", .type = HF_CFG_ENUM, .dst = &v.level, .choices = level_choices },
		{ .key = "limits", .type = HF_CFG_OBJECT, .dst = &limits },
		{ .key = "profit_file", .type = HF_CFG_STRING, .dst = v.profit,
		  .dst_size = sizeof v.profit },
	};
	int r;

	hf_strlcpy(v.key, cfg->signing_key, sizeof v.key);
	hf_strlcpy(v.trust, cfg->trust_file, sizeof v.trust);
	hf_strlcpy(v.admin, cfg->admin_token_file, sizeof v.admin);
	hf_strlcpy(v.db, cfg->database, sizeof v.db);
	hf_strlcpy(v.profit, cfg->profit_file, sizeof v.profit);
	if ((r = hf_cfg_read(root, "", f, HF_ARRAY_SIZE(f), eb)) < 0 || (r = check_top(&v, eb)) < 0)
		return r;
	if (listen && (r = read_listen(&next, listen, eb)) < 0)
		return r;
	if (limits && (r = read_limits(&next, limits, eb)) < 0)
		return r;
	if (!next.tls_cert[0] && !next.allow_plain_remote &&
	    !hf_coord_addr_is_loopback(next.listen_address))
		return hf_fail(eb, HF_ECONFIG, "listen.address: \"%s\" is not a loopback address: plain "
			       "HTTP would carry node tokens in the clear (set listen.tls_cert and "
			       "listen.tls_key, or listen.allow_plain_remote: true behind a TLS proxy)",
			       next.listen_address);
	hf_strlcpy(next.fleet_id, v.fleet, sizeof next.fleet_id);
	hf_strlcpy(next.signing_key, v.key, sizeof next.signing_key);
	hf_strlcpy(next.trust_file, v.trust, sizeof next.trust_file);
	hf_strlcpy(next.admin_token_file, v.admin, sizeof next.admin_token_file);
	hf_strlcpy(next.database, v.db, sizeof next.database);
	hf_strlcpy(next.profit_file, v.profit, sizeof next.profit_file);
	next.report_interval_s = (unsigned)v.report;
	next.offline_after_s = (unsigned)v.offline;
	next.instruction_ttl_s = (unsigned)v.ttl;
	next.clock_skew_ms = v.skew;
	next.log_level = (hf_log_level)(v.level + HF_LOG_ERR);
	*cfg = next;
	return 0;
}

int hf_coord_config_load(hf_coord_config *cfg, const char *path, hf_errbuf *eb)
{
	json_t *root;
	int r = hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, eb);
	if (r < 0)
		return r;
	r = hf_coord_config_from_json(cfg, root, eb);
	json_decref(root);
	if (r < 0)
		return hf_fail_prefix(eb, r, "%s", path);
	return 0;
}

json_t *hf_coord_config_to_json(const hf_coord_config *c)
{
	json_t *j = json_pack("{s:s, s:{s:s, s:i, s:s, s:s, s:s, s:b}, s:s, s:s, s:s, s:s, s:i, s:i, "
			 "s:i, s:I, s:s, s:{s:I, s:I, s:i, s:i, s:i, s:i}}",
			 "fleet_id", c->fleet_id,
			 "listen", "address", c->listen_address, "port", (int)c->port,
			 "port_file", c->port_file, "tls_cert", c->tls_cert, "tls_key", c->tls_key,
			 "allow_plain_remote", c->allow_plain_remote,
			 "signing_key", c->signing_key, "trust_file", c->trust_file,
			 "admin_token_file", c->admin_token_file, "database", c->database,
			 "report_interval_s", (int)c->report_interval_s,
			 "offline_after_s", (int)c->offline_after_s,
			 "instruction_ttl_s", (int)c->instruction_ttl_s,
			 "clock_skew_ms", (json_int_t)c->clock_skew_ms,
			 "log_level", level_choices[c->log_level - HF_LOG_ERR],
			 "limits", "max_body", (json_int_t)c->max_body,
			 "max_report_body", (json_int_t)c->max_report_body,
			 "max_wait_s", (int)c->max_wait_s, "max_connections", (int)c->max_connections,
			 "threads", (int)c->threads, "max_nodes", (int)c->max_nodes);
	if (j && json_object_set_new(j, "profit_file", json_string(c->profit_file)) < 0) {
		json_decref(j);
		j = NULL;
	}
	return j;
}
