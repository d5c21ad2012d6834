/* hf_node_config: node.json schema, defaults and validation.
 * Threading: see hf_node_config.h.
 */
#include "hf_node_config.h"

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"
#include "hf_control.h"
#include "hf_infer.h"
#include "hf_mining_config.h"
#include "hf_util.h"

static const char *const level_choices[] = { "err", "warn", "notice", "info", "debug", NULL };
static const char *const mode_choices[] = { "idle", "mining", "inference", NULL };

static const char *const power_choices[] = { "auto", "rapl", "hwmon", "nvml", "estimate", NULL };

/* The power section's defaults (hf_node_config_defaults). */
static void power_defaults(hf_node_config *cfg)
{
	cfg->power_source = HF_POWER_AUTO;
	hf_strlcpy(cfg->power_sysfs_root, "/sys", sizeof cfg->power_sysfs_root);
	hf_strlcpy(cfg->power_nvml_library, "libnvidia-ml.so.1", sizeof cfg->power_nvml_library);
	cfg->power_pci_bus_id[0] = '\0';
	cfg->power_idle_w = cfg->power_full_w = 0;
	cfg->power_sample_interval_ms = 100;
	cfg->telemetry_interval_ms = 1000;
}

void hf_node_config_defaults(hf_node_config *cfg)
{
	char host[256] = "";

	memset(cfg, 0, sizeof *cfg);
	if (gethostname(host, sizeof host - 1) != 0 || !hf_id_valid(host))
		hf_strlcpy(host, "node", sizeof host);
	hf_strlcpy(cfg->node_id, host, sizeof cfg->node_id);
	hf_strlcpy(cfg->fleet_id, "default", sizeof cfg->fleet_id);
	hf_strlcpy(cfg->state_dir, HF_NODE_DEFAULT_STATE_DIR, sizeof cfg->state_dir);
	cfg->log_level = HF_LOG_INFO;
	hf_strlcpy(cfg->api_listen, "127.0.0.1", sizeof cfg->api_listen);
	cfg->api_port = HF_NODE_DEFAULT_PORT;
	cfg->api_max_body = 1u << 20;
	cfg->api_max_conns = 1024;
	cfg->api_max_conns_per_client = 256;
	cfg->api_header_timeout_s = 10;
	cfg->api_timeout_s = 30;
	cfg->api_threads = 2;
	cfg->initial_mode = HF_MODE_IDLE;
	cfg->drain_timeout_ms = 10000;
	cfg->mode_retry_min_ms = 1000;
	cfg->mode_retry_max_ms = 60000;
	cfg->health_interval_ms = 1000;
	cfg->apply_wait_ms = 5000;
	cfg->ready_timeout_ms = 120000;
	cfg->watchdog_failures = 3;
	hf_strlcpy(cfg->trust_file, HF_NODE_DEFAULT_TRUST_FILE, sizeof cfg->trust_file);
	cfg->poll_wait_s = 30;
	cfg->clock_skew_ms = 120000;
	cfg->retry_max_ms = 60000;
	cfg->report_interval_s = 10;
	power_defaults(cfg);
}

static int read_control(hf_node_config *cfg, const json_t *ctl, hf_errbuf *eb)
{
	char trust[PATH_MAX], url[512], ca[PATH_MAX], token[PATH_MAX];
	uint64_t wait = cfg->poll_wait_s, skew = cfg->clock_skew_ms, retry = cfg->retry_max_ms;
	uint64_t report = cfg->report_interval_s;
	hf_cfg_field f[] = {
		{ .key = "trust_file", .type = HF_CFG_STRING, .dst = trust, .dst_size = sizeof trust, .min = 1 },
		{ .key = "coordinator_url", .type = HF_CFG_STRING, .dst = url, .dst_size = sizeof url },
		{ .key = "ca_file", .type = HF_CFG_STRING, .dst = ca, .dst_size = sizeof ca },
		{ .key = "poll_wait_s", .type = HF_CFG_UINT, .dst = &wait, .min = 1, .max = 300 },
		{ .key = "clock_skew_ms", .type = HF_CFG_UINT, .dst = &skew, .min = 0, .max = 3600000 },
		{ .key = "retry_max_ms", .type = HF_CFG_UINT, .dst = &retry, .min = 100, .max = 3600000 },
		{ .key = "token_file", .type = HF_CFG_STRING, .dst = token, .dst_size = sizeof token },
		{ .key = "report_interval_s", .type = HF_CFG_UINT, .dst = &report, .min = 1, .max = 3600 },
	};
	int r;

	hf_strlcpy(trust, cfg->trust_file, sizeof trust);
	hf_strlcpy(url, cfg->coordinator_url, sizeof url);
	hf_strlcpy(ca, cfg->ca_file, sizeof ca);
	hf_strlcpy(token, cfg->token_file, sizeof token);
	r = hf_cfg_read(ctl, "control", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	if (trust[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "control.trust_file: expected an absolute path, got \"%s\"", trust);
	if (url[0] && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return hf_fail(eb, HF_ECONFIG,
			       "control.coordinator_url: expected an http:// or https:// URL, got \"%s\"", url);
	if (ca[0] && ca[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "control.ca_file: expected an absolute path, got \"%s\"", ca);
	if (token[0] && token[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "control.token_file: expected an absolute path or \"\", "
			       "got \"%s\"", token);
	hf_strlcpy(cfg->trust_file, trust, sizeof cfg->trust_file);
	hf_strlcpy(cfg->coordinator_url, url, sizeof cfg->coordinator_url);
	hf_strlcpy(cfg->ca_file, ca, sizeof cfg->ca_file);
	cfg->poll_wait_s = wait;
	cfg->clock_skew_ms = skew;
	cfg->retry_max_ms = retry;
	hf_strlcpy(cfg->token_file, token, sizeof cfg->token_file);
	cfg->report_interval_s = report;
	return 0;
}

static int read_api(hf_node_config *cfg, const json_t *api, hf_errbuf *eb)
{
	char listen[64];
	uint64_t port = cfg->api_port, max_body = cfg->api_max_body;
	uint64_t conns = cfg->api_max_conns, per_client = cfg->api_max_conns_per_client;
	uint64_t header_timeout = cfg->api_header_timeout_s, timeout = cfg->api_timeout_s;
	uint64_t threads = cfg->api_threads;
	unsigned char addr[16];
	hf_cfg_field f[] = {
		{ .key = "listen", .type = HF_CFG_STRING, .dst = listen, .dst_size = sizeof listen, .min = 1 },
		{ .key = "port", .type = HF_CFG_UINT, .dst = &port, .min = 0, .max = 65535 },
		{ .key = "max_body_bytes", .type = HF_CFG_UINT, .dst = &max_body, .min = 1024,
		  .max = 64.0 * 1024 * 1024 },
		{ .key = "max_connections", .type = HF_CFG_UINT, .dst = &conns, .min = 1, .max = 1000000 },
		{ .key = "max_connections_per_client", .type = HF_CFG_UINT, .dst = &per_client, .min = 0,
		  .max = 1000000 },
		{ .key = "header_timeout_s", .type = HF_CFG_UINT, .dst = &header_timeout, .min = 1, .max = 300 },
		{ .key = "timeout_s", .type = HF_CFG_UINT, .dst = &timeout, .min = 1, .max = 3600 },
		{ .key = "threads", .type = HF_CFG_UINT, .dst = &threads, .min = 1, .max = 64 },
	};
	int r;

	hf_strlcpy(listen, cfg->api_listen, sizeof listen);
	r = hf_cfg_read(api, "api", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	if (inet_pton(AF_INET, listen, addr) != 1 && inet_pton(AF_INET6, listen, addr) != 1)
		return hf_fail(eb, HF_ECONFIG,
			       "api.listen: expected a numeric IPv4 or IPv6 address such as \"127.0.0.1\", got \"%s\"",
			       listen);
	if (per_client > conns)
		return hf_fail(eb, HF_ECONFIG,
			       "api.max_connections_per_client: expected 0 (no cap) to api.max_connections (%llu), got %llu",
			       (unsigned long long)conns, (unsigned long long)per_client);
	hf_strlcpy(cfg->api_listen, listen, sizeof cfg->api_listen);
	cfg->api_port = (uint16_t)port;
	cfg->api_max_body = max_body;
	cfg->api_max_conns = conns;
	cfg->api_max_conns_per_client = per_client;
	cfg->api_header_timeout_s = header_timeout;
	cfg->api_timeout_s = timeout;
	cfg->api_threads = threads;
	return 0;
}

static int read_modes(hf_node_config *cfg, const json_t *modes, hf_errbuf *eb)
{
	int initial = (int)cfg->initial_mode;
	uint64_t drain = cfg->drain_timeout_ms, rmin = cfg->mode_retry_min_ms;
	uint64_t rmax = cfg->mode_retry_max_ms, health = cfg->health_interval_ms;
	uint64_t wait = cfg->apply_wait_ms, ready = cfg->ready_timeout_ms;
	uint64_t wdf = cfg->watchdog_failures;
	hf_cfg_field f[] = {
		{ .key = "initial", .type = HF_CFG_ENUM, .dst = &initial, .choices = mode_choices },
		{ .key = "drain_timeout_ms", .type = HF_CFG_UINT, .dst = &drain, .min = 0, .max = 600000 },
		{ .key = "retry_min_ms", .type = HF_CFG_UINT, .dst = &rmin, .min = 10, .max = 3600000 },
		{ .key = "retry_max_ms", .type = HF_CFG_UINT, .dst = &rmax, .min = 10, .max = 3600000 },
		{ .key = "health_interval_ms", .type = HF_CFG_UINT, .dst = &health, .min = 10,
		  .max = 600000 },
		{ .key = "apply_wait_ms", .type = HF_CFG_UINT, .dst = &wait, .min = 0, .max = 50000 },
		{ .key = "ready_timeout_ms", .type = HF_CFG_UINT, .dst = &ready, .min = 0,
		  .max = 3600000 },
		{ .key = "watchdog_failures", .type = HF_CFG_UINT, .dst = &wdf, .min = 0, .max = 1000 },
	};
	int r = hf_cfg_read(modes, "modes", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	if (rmin > rmax)
		return hf_fail(eb, HF_ECONFIG, "modes.retry_min_ms: %llu is more than modes.retry_max_ms "
			       "(%llu)", (unsigned long long)rmin, (unsigned long long)rmax);
	cfg->initial_mode = (hf_mode)initial;
	cfg->drain_timeout_ms = drain;
	cfg->mode_retry_min_ms = rmin;
	cfg->mode_retry_max_ms = rmax;
	cfg->health_interval_ms = health;
	cfg->apply_wait_ms = wait;
	cfg->ready_timeout_ms = ready;
	cfg->watchdog_failures = wdf;
	return 0;
}

/* A PCI bus id as NVML and lspci write it: [[DDDDDDDD:]BB:]DD.F, hex digits. */
static bool pci_bus_id_valid(const char *s)
{
	size_t n = strlen(s), colons = 0;

	if (n < 4 || n > 16 || s[n - 2] != '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ':')
			colons++;
		else if (!(i == n - 2 && c == '.') && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
							 (c >= 'A' && c <= 'F')))
			return false;
	}
	return colons >= 1 && colons <= 2;
}

/* The power section: every check names power.KEY. */
static int read_power(hf_node_config *cfg, const json_t *pw, hf_errbuf *eb)
{
	char root[PATH_MAX], lib[PATH_MAX], bus[64];
	int source = (int)cfg->power_source;
	double idle = cfg->power_idle_w, full = cfg->power_full_w;
	uint64_t sample = cfg->power_sample_interval_ms, telem = cfg->telemetry_interval_ms;
	hf_cfg_field f[] = {
		{ .key = "source", .type = HF_CFG_ENUM, .dst = &source, .choices = power_choices },
		{ .key = "sysfs_root", .type = HF_CFG_STRING, .dst = root, .dst_size = sizeof root, .min = 1 },
		{ .key = "nvml_library", .type = HF_CFG_STRING, .dst = lib, .dst_size = sizeof lib, .min = 1 },
		{ .key = "pci_bus_id", .type = HF_CFG_STRING, .dst = bus, .dst_size = sizeof bus },
		{ .key = "idle_w", .type = HF_CFG_NUMBER, .dst = &idle, .min = 0, .max = 1000000 },
		{ .key = "full_w", .type = HF_CFG_NUMBER, .dst = &full, .min = 0, .max = 1000000 },
		{ .key = "sample_interval_ms", .type = HF_CFG_UINT, .dst = &sample, .min = 10, .max = 10000 },
		{ .key = "telemetry_interval_ms", .type = HF_CFG_UINT, .dst = &telem, .min = 100,
		  .max = 60000 },
	};
	int r;

	hf_strlcpy(root, cfg->power_sysfs_root, sizeof root);
	hf_strlcpy(lib, cfg->power_nvml_library, sizeof lib);
	hf_strlcpy(bus, cfg->power_pci_bus_id, sizeof bus);
	r = hf_cfg_read(pw, "power", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	if (root[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "power.sysfs_root: expected an absolute path, got \"%s\"", root);
	if (strchr(lib, '/') && lib[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "power.nvml_library: expected a library name "
			       "(\"libnvidia-ml.so.1\") or an absolute path, got \"%s\"", lib);
	if (bus[0] && !pci_bus_id_valid(bus))
		return hf_fail(eb, HF_ECONFIG, "power.pci_bus_id: expected \"\" or a PCI bus id such as "
			       "\"00000000:19:00.0\", got \"%s\"", bus);
	if ((idle > 0) != (full > 0))
		return hf_fail(eb, HF_ECONFIG, "power.%s: expected idle_w and full_w both set (> 0) or "
			       "both 0 (the defaults for this machine)", idle > 0 ? "full_w" : "idle_w");
	if (full > 0 && full < idle)
		return hf_fail(eb, HF_ECONFIG, "power.full_w: %g is less than power.idle_w (%g)", full, idle);
	if (telem < sample)
		return hf_fail(eb, HF_ECONFIG, "power.telemetry_interval_ms: %llu is less than "
			       "power.sample_interval_ms (%llu)", (unsigned long long)telem,
			       (unsigned long long)sample);
	cfg->power_source = (hf_power_kind)source;
	hf_strlcpy(cfg->power_sysfs_root, root, sizeof cfg->power_sysfs_root);
	hf_strlcpy(cfg->power_nvml_library, lib, sizeof cfg->power_nvml_library);
	hf_strlcpy(cfg->power_pci_bus_id, bus, sizeof cfg->power_pci_bus_id);
	cfg->power_idle_w = idle;
	cfg->power_full_w = full;
	cfg->power_sample_interval_ms = sample;
	cfg->telemetry_interval_ms = telem;
	return 0;
}

int hf_node_config_from_json(hf_node_config *cfg, const json_t *root, hf_errbuf *eb)
{
	char node_id[64], fleet_id[64], state_dir[PATH_MAX];
	int level = (int)cfg->log_level - HF_LOG_ERR;
	const json_t *api = NULL, *modes = NULL, *control = NULL, *mining = NULL, *inference = NULL;
	const json_t *power = NULL;
	hf_cfg_field f[] = {
		{ .key = "node_id", .type = HF_CFG_STRING, .dst = node_id,
		  .dst_size = sizeof node_id, .min = 1 },
		{ .key = "fleet_id", .type = HF_CFG_STRING, .dst = fleet_id,
		  .dst_size = sizeof fleet_id, .min = 1 },
		{ .key = "state_dir", .type = HF_CFG_STRING, .dst = state_dir,
		  .dst_size = sizeof state_dir, .min = 1 },
		{ .key = "log_level", .type = HF_CFG_ENUM, .dst = &level, .choices = level_choices },
		{ .key = "api", .type = HF_CFG_OBJECT, .dst = &api },
		{ .key = "modes", .type = HF_CFG_OBJECT, .dst = &modes },
		{ .key = "control", .type = HF_CFG_OBJECT, .dst = &control },
		{ .key = "mining", .type = HF_CFG_OBJECT, .dst = &mining },
		{ .key = "inference", .type = HF_CFG_OBJECT, .dst = &inference },
		{ .key = "power", .type = HF_CFG_OBJECT, .dst = &power },
	};
	int r;

	/* Absent keys keep the defaults: the host name, "default", the default state dir. */
	hf_strlcpy(node_id, cfg->node_id, sizeof node_id);
	hf_strlcpy(fleet_id, cfg->fleet_id, sizeof fleet_id);
	hf_strlcpy(state_dir, cfg->state_dir, sizeof state_dir);
	r = hf_cfg_read(root, "", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0)
		return r;
	if (!hf_id_valid(node_id))
		return hf_fail(eb, HF_ECONFIG,
			       "node_id: expected 1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, got \"%s\"",
			       node_id);
	if (!hf_id_valid(fleet_id))
		return hf_fail(eb, HF_ECONFIG,
			       "fleet_id: expected 1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, got \"%s\"",
			       fleet_id);
	if (state_dir[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "state_dir: expected an absolute path, got \"%s\"", state_dir);
	if (api && (r = read_api(cfg, api, eb)) < 0)
		return r;
	if (modes && (r = read_modes(cfg, modes, eb)) < 0)
		return r;
	if (control && (r = read_control(cfg, control, eb)) < 0)
		return r;
	if (power && (r = read_power(cfg, power, eb)) < 0)
		return r;
	if (mining) {
		hf_mining_config mc;
		hf_mining_config_defaults(&mc);
		if ((r = hf_mining_config_from_json(&mc, mining, "mining", eb)) < 0)
			return r;
	}
	if (inference) {
		hf_infer_config ic;
		if ((r = hf_infer_config_from_json(&ic, inference, state_dir, eb)) < 0)
			return r;
	}
	hf_strlcpy(cfg->node_id, node_id, sizeof cfg->node_id);
	hf_strlcpy(cfg->fleet_id, fleet_id, sizeof cfg->fleet_id);
	hf_strlcpy(cfg->state_dir, state_dir, sizeof cfg->state_dir);
	cfg->log_level = (hf_log_level)(level + HF_LOG_ERR);
	json_decref(cfg->mining);
	json_decref(cfg->inference);
	cfg->mining = mining ? json_deep_copy(mining) : NULL;
	cfg->inference = inference ? json_deep_copy(inference) : NULL;
	return 0;
}

int hf_node_config_load(hf_node_config *cfg, const char *path, hf_errbuf *eb)
{
	json_t *root;
	int r = hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, eb);
	if (r < 0)
		return r;
	r = hf_node_config_from_json(cfg, root, eb);
	json_decref(root);
	if (r < 0)
		return hf_fail_prefix(eb, r, "%s", path);
	return 0;
}

/* ---- the effective config as JSON ---- */

/* Adds key: a string; false (and nothing added) when it is not valid UTF-8. */
static bool put_str(json_t *obj, const char *key, const char *v)
{
	return json_object_set_new(obj, key, json_string(v)) == 0;
}

static bool put_uint(json_t *obj, const char *key, uint64_t v)
{
	return json_object_set_new(obj, key, json_integer((json_int_t)v)) == 0;
}

static bool put_num(json_t *obj, const char *key, double v)
{
	return json_object_set_new(obj, key, json_real(v)) == 0;
}

/* The power section (every key). */
static json_t *power_json(const hf_node_config *cfg)
{
	json_t *p = json_object();
	bool ok = p != NULL;

	ok = ok && put_str(p, "source", power_choices[cfg->power_source]);
	ok = ok && put_str(p, "sysfs_root", cfg->power_sysfs_root);
	ok = ok && put_str(p, "nvml_library", cfg->power_nvml_library);
	ok = ok && put_str(p, "pci_bus_id", cfg->power_pci_bus_id);
	ok = ok && put_num(p, "idle_w", cfg->power_idle_w);
	ok = ok && put_num(p, "full_w", cfg->power_full_w);
	ok = ok && put_uint(p, "sample_interval_ms", cfg->power_sample_interval_ms);
	ok = ok && put_uint(p, "telemetry_interval_ms", cfg->telemetry_interval_ms);
	if (!ok) {
		json_decref(p);
		return NULL;
	}
	return p;
}

/* One line per key, in the order node.json documents them; adding a key is one line here. */
static bool put_sections(const hf_node_config *cfg, bool mask, json_t *root, json_t *api,
			 json_t *modes, json_t *control)
{
	char url[sizeof cfg->coordinator_url];
	bool ok = true;

	ok &= put_str(root, "node_id", cfg->node_id);
	ok &= put_str(root, "fleet_id", cfg->fleet_id);
	ok &= put_str(root, "state_dir", cfg->state_dir);
	ok &= put_str(root, "log_level", level_choices[cfg->log_level - HF_LOG_ERR]);
	ok &= put_str(api, "listen", cfg->api_listen);
	ok &= put_uint(api, "port", cfg->api_port);
	ok &= put_uint(api, "max_body_bytes", cfg->api_max_body);
	ok &= put_uint(api, "max_connections", cfg->api_max_conns);
	ok &= put_uint(api, "max_connections_per_client", cfg->api_max_conns_per_client);
	ok &= put_uint(api, "header_timeout_s", cfg->api_header_timeout_s);
	ok &= put_uint(api, "timeout_s", cfg->api_timeout_s);
	ok &= put_uint(api, "threads", cfg->api_threads);
	ok &= put_str(modes, "initial", mode_choices[cfg->initial_mode]);
	ok &= put_uint(modes, "drain_timeout_ms", cfg->drain_timeout_ms);
	ok &= put_uint(modes, "retry_min_ms", cfg->mode_retry_min_ms);
	ok &= put_uint(modes, "retry_max_ms", cfg->mode_retry_max_ms);
	ok &= put_uint(modes, "health_interval_ms", cfg->health_interval_ms);
	ok &= put_uint(modes, "apply_wait_ms", cfg->apply_wait_ms);
	ok &= put_uint(modes, "ready_timeout_ms", cfg->ready_timeout_ms);
	ok &= put_uint(modes, "watchdog_failures", cfg->watchdog_failures);
	ok &= put_str(control, "trust_file", cfg->trust_file);
	if (mask)
		hf_control_mask_url(url, sizeof url, cfg->coordinator_url);
	ok &= put_str(control, "coordinator_url", mask ? url : cfg->coordinator_url);
	ok &= put_str(control, "ca_file", cfg->ca_file);
	ok &= put_uint(control, "poll_wait_s", cfg->poll_wait_s);
	ok &= put_uint(control, "clock_skew_ms", cfg->clock_skew_ms);
	ok &= put_uint(control, "retry_max_ms", cfg->retry_max_ms);
	ok &= put_str(control, "token_file", cfg->token_file);
	ok &= put_uint(control, "report_interval_s", cfg->report_interval_s);
	return ok;
}

int hf_node_config_to_json(const hf_node_config *cfg, bool mask_secrets, json_t **out,
			   hf_errbuf *eb)
{
	json_t *root = json_object(), *api = json_object(), *modes = json_object();
	json_t *control = json_object(), *mining = NULL;
	hf_mining_config mc;
	int r;

	*out = NULL;
	hf_mining_config_defaults(&mc);
	if (cfg->mining && (r = hf_mining_config_from_json(&mc, cfg->mining, "mining", eb)) < 0)
		goto fail;
	if (!root || !api || !modes || !control) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto fail;
	}
	if (!put_sections(cfg, mask_secrets, root, api, modes, control)) {
		r = hf_fail(eb, HF_EINVAL, "a string of the config is not valid UTF-8 (node_id, "
			    "state_dir or a path given on the command line?)");
		goto fail;
	}
	json_object_set_new(root, "api", api);
	json_object_set_new(root, "modes", modes);
	json_object_set_new(root, "control", control);
	api = modes = control = NULL;
	mining = hf_mining_config_to_json(&mc, mask_secrets);
	if (!mining || json_object_set_new(root, "mining", mining) < 0) {
		r = hf_fail(eb, HF_EINVAL, "mining: not representable as JSON");
		goto fail;
	}
	{
		hf_infer_config ic;
		json_t *inf;
		if ((r = hf_infer_config_from_json(&ic, cfg->inference, cfg->state_dir, eb)) < 0)
			goto fail;
		inf = hf_infer_config_to_json(&ic);
		if (!inf || json_object_set_new(root, "inference", inf) < 0) {
			r = hf_fail(eb, HF_EINVAL, "inference: not representable as JSON (a model_dir "
				    "that is not UTF-8?)");
			goto fail;
		}
	}
	{
		json_t *pw = power_json(cfg);
		if (!pw || json_object_set_new(root, "power", pw) < 0) {
			r = hf_fail(eb, HF_EINVAL, "power: not representable as JSON (a sysfs_root or "
				    "nvml_library that is not UTF-8?)");
			goto fail;
		}
	}
	*out = root;
	return 0;
fail:
	json_decref(api);
	json_decref(modes);
	json_decref(control);
	json_decref(root);
	return r;
}

void hf_node_config_clear(hf_node_config *cfg)
{
	json_decref(cfg->mining);
	json_decref(cfg->inference);
	cfg->mining = cfg->inference = NULL;
}
