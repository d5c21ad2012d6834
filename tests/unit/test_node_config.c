/* Unit tests for hf_node_config: node.json good and bad, defaults, identifiers, addresses. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"
#include "hf_mining_config.h"
#include "hf_node_config.h"

static int parse(const char *text, hf_node_config *cfg, hf_errbuf *eb)
{
	json_t *root;
	int r;
	hf_node_config_defaults(cfg);
	r = hf_cfg_parse(text, strlen(text), "node.json", &root, eb);
	if (r < 0)
		return r;
	r = hf_node_config_from_json(cfg, root, eb);
	json_decref(root);
	return r;
}

static void refused(const char *text, const char *msg)
{
	hf_node_config cfg;
	hf_errbuf eb;
	hf_errbuf_clear(&eb);
	int r = parse(text, &cfg, &eb);
	cr_assert_lt(r, 0, "accepted: %s", text);
	cr_assert(strstr(eb.msg, msg), "message \"%s\" lacks \"%s\"", eb.msg, msg);
	hf_node_config_clear(&cfg);
}

Test(node_config, full_file)
{
	hf_node_config cfg;
	hf_errbuf eb;
	cr_assert_eq(parse("{\"node_id\":\"rack1-n07\",\"fleet_id\":\"site-a\",\"state_dir\":\"/tmp/s\","
			   "\"log_level\":\"debug\",\"api\":{\"listen\":\"::1\",\"port\":9000,\"max_body_bytes\":4096},"
			   "\"modes\":{\"initial\":\"idle\",\"drain_timeout_ms\":2500},\"mining\":{},\"inference\":{}}",
			   &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.node_id, "rack1-n07");
	cr_assert_str_eq(cfg.fleet_id, "site-a");
	cr_assert_str_eq(cfg.state_dir, "/tmp/s");
	cr_assert_eq(cfg.log_level, HF_LOG_DEBUG);
	cr_assert_str_eq(cfg.api_listen, "::1");
	cr_assert_eq(cfg.api_port, 9000);
	cr_assert_eq(cfg.api_max_body, 4096);
	cr_assert_eq(cfg.drain_timeout_ms, 2500);
	cr_assert_not_null(cfg.mining);
	hf_node_config_clear(&cfg);
}

Test(node_config, minimal_file_gets_defaults)
{
	hf_node_config cfg;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, NULL), 0);
	cr_assert_str_eq(cfg.state_dir, HF_NODE_DEFAULT_STATE_DIR);
	cr_assert_str_eq(cfg.api_listen, "127.0.0.1");
	cr_assert_eq(cfg.api_port, HF_NODE_DEFAULT_PORT);
	cr_assert_eq(cfg.initial_mode, HF_MODE_IDLE);
	cr_assert_eq(cfg.log_level, HF_LOG_INFO);
	cr_assert_null(cfg.mining);
	hf_node_config_clear(&cfg);
}

/* A packaged node.json names no node: every node installed from it takes its host name. */
Test(node_config, node_and_fleet_default_to_the_host_name_and_default)
{
	hf_node_config cfg, want;
	hf_node_config_defaults(&want);
	cr_assert_eq(parse("{\"modes\":{\"initial\":\"idle\"}}", &cfg, NULL), 0);
	cr_assert_str_eq(cfg.node_id, want.node_id);
	cr_assert_str_eq(cfg.fleet_id, "default");
	hf_node_config_clear(&cfg);
	hf_node_config_clear(&want);
	cr_assert_eq(parse("{\"fleet_id\":\"f\"}", &cfg, NULL), 0);
	cr_assert_str_eq(cfg.fleet_id, "f");
	cr_assert_str_neq(cfg.node_id, "");
	hf_node_config_clear(&cfg);
}

Test(node_config, every_kind_of_bad_field)
{
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"nodeid\":1}", "nodeid: unknown key");
	refused("{\"node_id\":\"bad id\",\"fleet_id\":\"f\"}", "node_id: expected 1-63 characters");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"-f\"}", "fleet_id: expected 1-63 characters");
	refused("{\"node_id\":7,\"fleet_id\":\"f\"}", "node_id: expected a string, got integer 7");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"state_dir\":\"rel/dir\"}", "state_dir: expected an absolute path");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"log_level\":\"loud\"}", "log_level: expected one of");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"port\":70000}}", "api.port: expected an integer from 0 to 65535");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"listen\":\"localhost\"}}", "api.listen: expected a numeric IPv4 or IPv6 address");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"listn\":\"127.0.0.1\"}}", "api.listn: unknown key (expected one of: listen, port, max_body_bytes, max_connections, "
		"max_connections_per_client, header_timeout_s, timeout_s, threads)");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":[]}", "api: expected an object");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"initial\":\"turbo\"}}", "modes.initial: expected one of \"idle\", \"mining\", \"inference\"");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"drain_timeout_ms\":-5}}", "modes.drain_timeout_ms: expected an integer");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"mining\":{\"pool\":[]}}", "mining.pool: unknown key");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"inference\":true}", "inference: expected an object");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"trust_file\":\"trust.json\"}}", "control.trust_file: expected an absolute path");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"coordinator_url\":\"ftp://x\"}}", "control.coordinator_url: expected an http:// or https:// URL");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"poll_wait_s\":0}}", "control.poll_wait_s: expected an integer from 1 to 300");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"ca_file\":\"ca.pem\"}}", "control.ca_file: expected an absolute path");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"skew\":1}}", "control.skew: unknown key");
}

Test(node_config, control_section)
{
	hf_node_config cfg;
	hf_errbuf eb;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, &eb), 0);
	cr_assert_str_eq(cfg.trust_file, HF_NODE_DEFAULT_TRUST_FILE);
	cr_assert_str_eq(cfg.coordinator_url, "");
	cr_assert_eq(cfg.clock_skew_ms, 120000);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"trust_file\":\"/etc/t.json\","
			   "\"coordinator_url\":\"https://coord.example:8471\",\"ca_file\":\"/etc/ca.pem\","
			   "\"poll_wait_s\":5,\"clock_skew_ms\":1000,\"retry_max_ms\":2000}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.trust_file, "/etc/t.json");
	cr_assert_str_eq(cfg.coordinator_url, "https://coord.example:8471");
	cr_assert_str_eq(cfg.ca_file, "/etc/ca.pem");
	cr_assert_eq(cfg.poll_wait_s, 5);
	cr_assert_eq(cfg.clock_skew_ms, 1000);
	cr_assert_eq(cfg.retry_max_ms, 2000);
	hf_node_config_clear(&cfg);
}

Test(node_config, load_names_the_file)
{
	hf_node_config cfg;
	hf_errbuf eb;
	char path[] = "/tmp/hf_node_cfg_XXXXXX";
	int fd = mkstemp(path);
	const char *text = "{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"prot\":1}}";
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	hf_node_config_defaults(&cfg);
	cr_assert_eq(hf_node_config_load(&cfg, path, &eb), HF_ECONFIG);
	cr_assert_eq(strncmp(eb.msg, path, strlen(path)), 0, "%s", eb.msg);
	cr_assert(strstr(eb.msg, ": api.prot: unknown key"), "%s", eb.msg);
	FILE *f = fopen(path, "w");
	fputs("{\"node_id\":\"n\",", f);
	fclose(f);
	cr_assert_eq(hf_node_config_load(&cfg, path, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "invalid JSON"), "%s", eb.msg);
	unlink(path);
	hf_node_config_clear(&cfg);
}

/* api.*: the HTTP server's limits (issue 11). */
Test(node_config, api_connection_limits)
{
	hf_node_config cfg;
	hf_errbuf eb;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, NULL), 0);
	cr_assert_eq(cfg.api_max_conns, 1024);
	cr_assert_eq(cfg.api_max_conns_per_client, 256);
	cr_assert_eq(cfg.api_header_timeout_s, 10);
	cr_assert_eq(cfg.api_timeout_s, 30);
	cr_assert_eq(cfg.api_threads, 2);
	hf_node_config_clear(&cfg);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"max_connections\":20000,"
			   "\"max_connections_per_client\":0,\"header_timeout_s\":3,\"timeout_s\":120,\"threads\":4}}",
			   &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_eq(cfg.api_max_conns, 20000);
	cr_assert_eq(cfg.api_max_conns_per_client, 0);
	cr_assert_eq(cfg.api_header_timeout_s, 3);
	cr_assert_eq(cfg.api_timeout_s, 120);
	cr_assert_eq(cfg.api_threads, 4);
	hf_node_config_clear(&cfg);
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"max_connections\":0}}",
		"api.max_connections: expected an integer from 1 to 1000000, got integer 0");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"max_connections\":100,\"max_connections_per_client\":101}}",
		"api.max_connections_per_client: expected 0 (no cap) to api.max_connections (100), got 101");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"header_timeout_s\":0}}",
		"api.header_timeout_s: expected an integer from 1 to 300");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"timeout_s\":\"30\"}}",
		"api.timeout_s: expected an integer from 1 to 3600, got string \"30\"");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"api\":{\"threads\":65}}",
		"api.threads: expected an integer from 1 to 64, got integer 65");
}

Test(node_config, modes_section)
{
	hf_node_config cfg;
	hf_errbuf eb;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, &eb), 0);
	cr_assert_eq(cfg.mode_retry_min_ms, 1000);
	cr_assert_eq(cfg.mode_retry_max_ms, 60000);
	cr_assert_eq(cfg.health_interval_ms, 1000);
	cr_assert_eq(cfg.apply_wait_ms, 5000);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"retry_min_ms\":50,"
			   "\"retry_max_ms\":800,\"health_interval_ms\":200,\"apply_wait_ms\":0}}", &cfg, &eb),
		     0, "%s", eb.msg);
	cr_assert_eq(cfg.mode_retry_min_ms, 50);
	cr_assert_eq(cfg.mode_retry_max_ms, 800);
	cr_assert_eq(cfg.health_interval_ms, 200);
	cr_assert_eq(cfg.apply_wait_ms, 0);
	hf_node_config_clear(&cfg);
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"retry_min_ms\":5000,\"retry_max_ms\":1000}}",
		"modes.retry_min_ms: 5000 is more than modes.retry_max_ms (1000)");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"health_interval_ms\":1}}",
		"modes.health_interval_ms: expected an integer from 10 to 600000");
}

static char *to_text(const hf_node_config *cfg, bool mask)
{
	json_t *j;
	hf_errbuf eb;
	cr_assert_eq(hf_node_config_to_json(cfg, mask, &j, &eb), 0, "%s", eb.msg);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* The printed config loads back as the same effective config: printing it again gives the same
 * text, with secrets shown or masked. */
Test(node_config, effective_config_round_trips)
{
	static const char *const configs[] = {
		"{\"node_id\":\"n\",\"fleet_id\":\"f\"}",
		"{\"node_id\":\"rack1-n07\",\"fleet_id\":\"site-a\",\"state_dir\":\"/tmp/s\",\"log_level\":\"debug\","
		"\"api\":{\"listen\":\"::1\",\"port\":9000,\"max_body_bytes\":4096,\"max_connections\":500,"
		"\"max_connections_per_client\":20,\"header_timeout_s\":4,\"timeout_s\":90,\"threads\":3},"
		"\"modes\":{\"initial\":\"mining\",\"drain_timeout_ms\":2500,\"retry_min_ms\":20,\"retry_max_ms\":30,"
		"\"health_interval_ms\":300,\"apply_wait_ms\":100,\"ready_timeout_ms\":9000,\"watchdog_failures\":0},"
		"\"control\":{\"trust_file\":\"/etc/t.json\",\"coordinator_url\":\"https://ops:s3cret@coord.example:8471/base\","
		"\"ca_file\":\"/etc/ca.pem\",\"poll_wait_s\":5,\"clock_skew_ms\":1000,\"retry_max_ms\":2000},"
		"\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"bc1q.w1\",\"pass\":\"hunter2\"},"
		"{\"url\":\"stratum+ssl://p.example:3334\",\"user\":\"u\"}],\"backend\":\"opencl\","
		"\"cpu\":{\"threads\":3,\"affinity\":\"spread\",\"impl\":\"ref\",\"nice\":4},"
		"\"opencl\":{\"device\":\"pocl\",\"batch\":65536,\"cache_dir\":\"/tmp/c\"},\"range_bits\":20,"
		"\"version_rolling\":false,\"suggest_difficulty\":0.125,\"user_agent\":\"ua/1\",\"ca_file\":\"/etc/p.pem\","
		"\"insecure\":true,\"failback_ms\":1000,\"backoff_max_ms\":2000,\"silence_ms\":3000,"
		"\"status_interval_s\":7,\"stall_ms\":800,\"flush_timeout_ms\":900,"
		"\"restart_max\":5,\"restart_window_ms\":60000,\"restart_backoff_ms\":250},"
		"\"inference\":{}}",
	};
	for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
		for (int mask = 0; mask < 2; mask++) {
			hf_node_config a, b;
			hf_errbuf eb;
			cr_assert_eq(parse(configs[i], &a, &eb), 0, "%s", eb.msg);
			char *t1 = to_text(&a, mask);
			cr_assert_eq(parse(t1, &b, &eb), 0, "the printed config does not load: %s\n%s", eb.msg, t1);
			char *t2 = to_text(&b, mask);
			cr_assert_str_eq(t1, t2);
			if (!mask) {
				/* Without masking every value survives, down to the mining section. */
				cr_assert_eq(memcmp(a.node_id, b.node_id, sizeof a.node_id), 0);
				cr_assert_str_eq(a.coordinator_url, b.coordinator_url);
				cr_assert_eq(a.mode_retry_max_ms, b.mode_retry_max_ms);
				cr_assert_eq(a.ready_timeout_ms, b.ready_timeout_ms);
				cr_assert_eq(a.watchdog_failures, b.watchdog_failures);
				cr_assert_eq(a.api_port, b.api_port);
				cr_assert_eq(a.api_max_conns, b.api_max_conns);
				cr_assert_eq(a.api_max_conns_per_client, b.api_max_conns_per_client);
				cr_assert_eq(a.api_header_timeout_s, b.api_header_timeout_s);
				cr_assert_eq(a.api_threads, b.api_threads);
				hf_mining_config ma, mb;
				hf_mining_config_defaults(&ma);
				hf_mining_config_defaults(&mb);
				if (a.mining)
					cr_assert_eq(hf_mining_config_from_json(&ma, a.mining, "mining", NULL), 0);
				cr_assert_eq(hf_mining_config_from_json(&mb, b.mining, "mining", NULL), 0);
				cr_assert_eq(memcmp(&ma, &mb, sizeof ma), 0, "the mining section changed");
			}
			free(t1);
			free(t2);
			hf_node_config_clear(&a);
			hf_node_config_clear(&b);
		}
	}
}

Test(node_config, effective_config_fills_defaults_and_masks_secrets)
{
	hf_node_config cfg;
	hf_errbuf eb;
	json_t *j;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"coordinator_url\":"
			   "\"https://ops:s3cret@coord.example:8471/p@th\"},\"mining\":{\"pools\":[{\"url\":"
			   "\"stratum+tcp://127.0.0.1:3333\",\"user\":\"bc1q.w1\",\"pass\":\"hunter2\"},{\"url\":"
			   "\"stratum+tcp://127.0.0.1:3334\",\"user\":\"bc1q.w1\"}]}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), 0, "%s", eb.msg);
	char *text = json_dumps(j, 0);
	cr_assert_null(strstr(text, "hunter2"), "%s", text);
	cr_assert_null(strstr(text, "s3cret"), "%s", text);
	json_t *ctl = json_object_get(j, "control"), *m = json_object_get(j, "mining");
	cr_assert_str_eq(json_string_value(json_object_get(ctl, "coordinator_url")),
			 "https://ops:***@coord.example:8471/p@th");
	cr_assert_eq(json_integer_value(json_object_get(ctl, "poll_wait_s")), 30);
	json_t *pools = json_object_get(m, "pools");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(pools, 0), "pass")), "***");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(pools, 1), "pass")), "",
			 "an empty password is not a secret");
	cr_assert_eq(json_integer_value(json_object_get(m, "range_bits")), 32);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "cpu"), "nice")), 10);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "modes"), "retry_min_ms")), 1000);
	cr_assert_str_eq(json_string_value(json_object_get(j, "log_level")), "info");
	cr_assert(json_is_object(json_object_get(j, "inference")));
	free(text);
	json_decref(j);
	hf_node_config_clear(&cfg);

	/* A token as the whole userinfo is masked too; a URL without one is left alone. */
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"coordinator_url\":"
			   "\"https://tok123@coord.example\"}}", &cfg, &eb), 0);
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "control"), "coordinator_url")),
			 "https://***@coord.example");
	json_decref(j);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"coordinator_url\":"
			   "\"http://coord.example:1/x@y\"}}", &cfg, &eb), 0);
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "control"), "coordinator_url")),
			 "http://coord.example:1/x@y");
	json_decref(j);
	hf_node_config_clear(&cfg);
}

Test(node_config, effective_config_refuses_a_path_that_is_not_utf8)
{
	hf_node_config cfg;
	hf_errbuf eb;
	json_t *j = NULL;
	hf_node_config_defaults(&cfg);
	memcpy(cfg.state_dir, "/var/\xff\xfe", 8);
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), HF_EINVAL);
	cr_assert_null(j);
	cr_assert(strstr(eb.msg, "not valid UTF-8"), "%s", eb.msg);
}

/* control.token_file and control.report_interval_s (issue 14): defaults, values, refusals, and
 * the effective config. */
Test(node_config, control_report_keys)
{
	hf_node_config cfg;
	hf_errbuf eb;
	json_t *j;
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, &eb), 0);
	cr_assert_str_eq(cfg.token_file, "");
	cr_assert_eq(cfg.report_interval_s, 10);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"token_file\":"
			   "\"/etc/hashflop/coord-token\",\"report_interval_s\":3600}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.token_file, "/etc/hashflop/coord-token");
	cr_assert_eq(cfg.report_interval_s, 3600);
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), 0, "%s", eb.msg);
	json_t *ctl = json_object_get(j, "control");
	cr_assert_str_eq(json_string_value(json_object_get(ctl, "token_file")), "/etc/hashflop/coord-token");
	cr_assert_eq(json_integer_value(json_object_get(ctl, "report_interval_s")), 3600);
	json_decref(j);
	hf_node_config_clear(&cfg);
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"token_file\":\"token\"}}",
		"control.token_file: expected an absolute path or \"\", got \"token\"");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"token_file\":5}}", "control.token_file: expected a string");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"report_interval_s\":0}}",
		"control.report_interval_s: expected an integer from 1 to 3600");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"report_interval_s\":3601}}",
		"control.report_interval_s: expected an integer from 1 to 3600");
}

/* ---- the power section (issue 13) ---- */

#define NF "{\"node_id\":\"n\",\"fleet_id\":\"f\","

Test(node_config, power_section_defaults_and_values)
{
	hf_node_config cfg;
	hf_errbuf eb;

	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, &eb), 0, "%s", eb.msg);
	cr_expect_eq(cfg.power_source, HF_POWER_AUTO);
	cr_expect_str_eq(cfg.power_sysfs_root, "/sys");
	cr_expect_str_eq(cfg.power_nvml_library, "libnvidia-ml.so.1");
	cr_expect_str_eq(cfg.power_pci_bus_id, "");
	cr_expect_eq(cfg.power_idle_w, 0);
	cr_expect_eq(cfg.power_full_w, 0);
	cr_expect_eq(cfg.power_sample_interval_ms, 100);
	cr_expect_eq(cfg.telemetry_interval_ms, 1000);
	hf_node_config_clear(&cfg);

	cr_assert_eq(parse(NF "\"power\":{\"source\":\"hwmon\",\"sysfs_root\":\"/tmp/fake-sys\","
			   "\"nvml_library\":\"/opt/nv/libnvidia-ml.so.1\",\"pci_bus_id\":\"00000000:19:00.0\","
			   "\"idle_w\":55.5,\"full_w\":300,\"sample_interval_ms\":50,\"telemetry_interval_ms\":500}}",
			   &cfg, &eb), 0, "%s", eb.msg);
	cr_expect_eq(cfg.power_source, HF_POWER_HWMON);
	cr_expect_str_eq(cfg.power_sysfs_root, "/tmp/fake-sys");
	cr_expect_str_eq(cfg.power_nvml_library, "/opt/nv/libnvidia-ml.so.1");
	cr_expect_str_eq(cfg.power_pci_bus_id, "00000000:19:00.0");
	cr_expect_eq(cfg.power_idle_w, 55.5);
	cr_expect_eq(cfg.power_full_w, 300);
	cr_expect_eq(cfg.power_sample_interval_ms, 50);
	cr_expect_eq(cfg.telemetry_interval_ms, 500);
	hf_node_config_clear(&cfg);
	for (int k = 0; k < 5; k++) {
		static const char *const names[] = { "auto", "rapl", "hwmon", "nvml", "estimate" };
		char text[160];
		snprintf(text, sizeof text, NF "\"power\":{\"source\":\"%s\"}}", names[k]);
		cr_assert_eq(parse(text, &cfg, &eb), 0, "%s", eb.msg);
		cr_expect_eq((int)cfg.power_source, k);
		cr_expect_str_eq(hf_power_kind_name(cfg.power_source), names[k]);
		hf_node_config_clear(&cfg);
	}
}

Test(node_config, power_section_bad_fields_name_their_path)
{
	refused(NF "\"power\":{\"source\":\"solar\"}}",
		"power.source: expected one of \"auto\", \"rapl\", \"hwmon\", \"nvml\", \"estimate\"");
	refused(NF "\"power\":{\"source\":3}}", "power.source: expected");
	refused(NF "\"power\":{\"sysfs_root\":\"sys\"}}", "power.sysfs_root: expected an absolute path, got \"sys\"");
	refused(NF "\"power\":{\"sysfs_root\":\"\"}}", "power.sysfs_root: string too short");
	refused(NF "\"power\":{\"nvml_library\":\"lib/libnvidia-ml.so.1\"}}",
		"power.nvml_library: expected a library name");
	refused(NF "\"power\":{\"pci_bus_id\":\"gpu0\"}}", "power.pci_bus_id: expected \"\" or a PCI bus id");
	refused(NF "\"power\":{\"idle_w\":-1,\"full_w\":100}}", "power.idle_w: expected a number from 0");
	refused(NF "\"power\":{\"idle_w\":50,\"full_w\":-300}}", "power.full_w: expected a number from 0");
	refused(NF "\"power\":{\"idle_w\":50}}", "power.full_w: expected idle_w and full_w both set");
	refused(NF "\"power\":{\"full_w\":50}}", "power.idle_w: expected idle_w and full_w both set");
	refused(NF "\"power\":{\"idle_w\":300,\"full_w\":100}}", "power.full_w: 100 is less than power.idle_w (300)");
	refused(NF "\"power\":{\"idle_w\":\"40\",\"full_w\":100}}", "power.idle_w: expected a number");
	refused(NF "\"power\":{\"sample_interval_ms\":5}}", "power.sample_interval_ms: expected an integer from 10 to 10000");
	refused(NF "\"power\":{\"telemetry_interval_ms\":50}}", "power.telemetry_interval_ms: expected an integer from 100 to 60000");
	refused(NF "\"power\":{\"sample_interval_ms\":2000,\"telemetry_interval_ms\":1000}}",
		"power.telemetry_interval_ms: 1000 is less than power.sample_interval_ms (2000)");
	refused(NF "\"power\":{\"sorce\":\"rapl\"}}", "power.sorce: unknown key (expected one of: source, sysfs_root, "
		"nvml_library, pci_bus_id, idle_w, full_w, sample_interval_ms, telemetry_interval_ms)");
	refused(NF "\"power\":\"rapl\"}", "power: expected an object");
}

Test(node_config, power_section_round_trips_through_the_effective_config)
{
	static const char *const configs[] = {
		"{\"node_id\":\"n\",\"fleet_id\":\"f\"}",
		NF "\"power\":{\"source\":\"nvml\",\"sysfs_root\":\"/tmp/s\",\"nvml_library\":\"/x/libnvidia-ml.so.1\","
		"\"pci_bus_id\":\"0000:19:00.0\",\"idle_w\":40.25,\"full_w\":700,\"sample_interval_ms\":20,"
		"\"telemetry_interval_ms\":250}}",
	};
	for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
		hf_node_config a, b;
		hf_errbuf eb;
		json_t *j;
		cr_assert_eq(parse(configs[i], &a, &eb), 0, "%s", eb.msg);
		cr_assert_eq(hf_node_config_to_json(&a, true, &j, &eb), 0, "%s", eb.msg);
		json_t *p = json_object_get(j, "power");
		cr_assert(json_is_object(p), "the effective config has no power section");
		cr_expect_eq(json_object_size(p), 8);
		cr_expect_str_eq(json_string_value(json_object_get(p, "source")), hf_power_kind_name(a.power_source));
		char *text = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		cr_assert_eq(parse(text, &b, &eb), 0, "the printed config does not load: %s\n%s", eb.msg, text);
		free(text);
		cr_expect_eq(a.power_source, b.power_source);
		cr_expect_str_eq(a.power_sysfs_root, b.power_sysfs_root);
		cr_expect_str_eq(a.power_nvml_library, b.power_nvml_library);
		cr_expect_str_eq(a.power_pci_bus_id, b.power_pci_bus_id);
		cr_expect_eq(a.power_idle_w, b.power_idle_w);
		cr_expect_eq(a.power_full_w, b.power_full_w);
		cr_expect_eq(a.power_sample_interval_ms, b.power_sample_interval_ms);
		cr_expect_eq(a.telemetry_interval_ms, b.telemetry_interval_ms);
		hf_node_config_clear(&a);
		hf_node_config_clear(&b);
	}
}

/* modes.ready_timeout_ms (READY=1 waits this long for the first start) and
 * modes.watchdog_failures (0 = never escalate): defaults, values, bounds, --check-config. */
Test(node_config, ready_timeout_and_watchdog_failures)
{
	hf_node_config cfg;
	hf_errbuf eb;
	json_t *j;

	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\"}", &cfg, &eb), 0);
	cr_assert_eq(cfg.ready_timeout_ms, 120000);
	cr_assert_eq(cfg.watchdog_failures, 3);
	cr_assert_str_eq(cfg.cache_dir, "", "no cache dir unless hashflopd sets one");
	cr_assert_eq(hf_node_config_to_json(&cfg, true, &j, &eb), 0, "%s", eb.msg);
	json_t *modes = json_object_get(j, "modes");
	cr_assert_eq(json_integer_value(json_object_get(modes, "ready_timeout_ms")), 120000);
	cr_assert_eq(json_integer_value(json_object_get(modes, "watchdog_failures")), 3);
	json_decref(j);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"ready_timeout_ms\":0,"
			   "\"watchdog_failures\":0}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_eq(cfg.ready_timeout_ms, 0);
	cr_assert_eq(cfg.watchdog_failures, 0);
	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"ready_timeout_ms\":3600000,"
			   "\"watchdog_failures\":1000}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_eq(cfg.ready_timeout_ms, 3600000);
	cr_assert_eq(cfg.watchdog_failures, 1000);
	hf_node_config_clear(&cfg);
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"ready_timeout_ms\":3600001}}",
		"modes.ready_timeout_ms: expected an integer from 0 to 3600000");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"ready_timeout_ms\":\"2m\"}}",
		"modes.ready_timeout_ms: expected an integer");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"watchdog_failures\":-1}}",
		"modes.watchdog_failures: expected an integer");
	refused("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"modes\":{\"watchdog_failures\":1001}}",
		"modes.watchdog_failures: expected an integer from 0 to 1000");
}

/* A standalone node: coordinator_url "" (and no token file) is a valid config. */
Test(node_config, standalone_without_coordinator_is_valid)
{
	hf_node_config cfg;
	hf_errbuf eb;

	cr_assert_eq(parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"control\":{\"coordinator_url\":\"\","
			   "\"token_file\":\"\"}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.coordinator_url, "");
	cr_assert_str_eq(cfg.token_file, "");
	hf_node_config_clear(&cfg);
}
