/* Unit tests for hf_coord_config: defaults, a full coord.json, every refusal naming its field
 * (unknown keys, types, bounds, relative paths, TLS halves, plain HTTP on a remote address),
 * and the effective config read back as coord.json. */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_config.h"
#include "hf_coord_config.h"

static int load(const char *text, hf_coord_config *cfg, hf_errbuf *eb)
{
	json_t *root = NULL;
	int r;

	hf_coord_config_defaults(cfg);
	r = hf_cfg_parse(text, strlen(text), "coord.json", &root, eb);
	if (r == 0)
		r = hf_coord_config_from_json(cfg, root, eb);
	json_decref(root);
	return r;
}

static void refused(const char *text, const char *needle)
{
	hf_coord_config cfg;
	hf_errbuf eb;
	cr_assert_neq(load(text, &cfg, &eb), 0, "accepted: %s", text);
	cr_assert(strstr(eb.msg, needle), "\"%s\" not in \"%s\"", needle, eb.msg);
}

Test(coord_config, defaults_and_minimal)
{
	hf_coord_config cfg;
	hf_errbuf eb;

	cr_assert_eq(load("{\"fleet_id\": \"lab\"}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.fleet_id, "lab");
	cr_assert_str_eq(cfg.listen_address, "127.0.0.1");
	cr_assert_eq(cfg.port, 8480);
	cr_assert_str_eq(cfg.signing_key, "/etc/hashflop/coordinator.pem");
	cr_assert_str_eq(cfg.trust_file, "/etc/hashflop/trust.json");
	cr_assert_str_eq(cfg.database, "/var/lib/hashflop-coord/coord.db");
	cr_assert_eq(cfg.report_interval_s, 10);
	cr_assert_eq(cfg.offline_after_s, 30);
	cr_assert_eq(cfg.instruction_ttl_s, 600);
	cr_assert_eq(cfg.clock_skew_ms, 30000);
	cr_assert_eq(cfg.max_body, 16384);
	cr_assert_eq(cfg.max_report_body, 65536);
	cr_assert_eq(cfg.max_wait_s, 300);
	cr_assert_eq(cfg.max_connections, 20000);
	cr_assert_eq(cfg.threads, 2);
	cr_assert_eq(cfg.max_nodes, 100000);
	cr_assert_eq(cfg.log_level, HF_LOG_INFO);
	cr_assert_not(cfg.allow_plain_remote);
}

Test(coord_config, full_file_and_round_trip)
{
	const char *text =
		"{\"fleet_id\": \"f-1\", \"listen\": {\"address\": \"::1\", \"port\": 0, \"port_file\": "
		"\"/run/c/port\", \"tls_cert\": \"\", \"tls_key\": \"\", \"allow_plain_remote\": false}, "
		"\"signing_key\": \"/k.pem\", \"trust_file\": \"/t.json\", \"admin_token_file\": \"/a\", "
		"\"database\": \"/db/c.db\", \"report_interval_s\": 5, \"offline_after_s\": 20, "
		"\"instruction_ttl_s\": 60, \"clock_skew_ms\": 0, \"log_level\": \"debug\", \"limits\": "
		"{\"max_body\": 2048, \"max_report_body\": 4096, \"max_wait_s\": 10, \"max_connections\": "
		"100, \"threads\": 4, \"max_nodes\": 50}}";
	hf_coord_config cfg, back;
	hf_errbuf eb;
	json_t *j;
	char *dumped;

	cr_assert_eq(load(text, &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(cfg.listen_address, "::1");
	cr_assert_eq(cfg.port, 0);
	cr_assert_str_eq(cfg.port_file, "/run/c/port");
	cr_assert_str_eq(cfg.admin_token_file, "/a");
	cr_assert_eq(cfg.instruction_ttl_s, 60);
	cr_assert_eq(cfg.clock_skew_ms, 0);
	cr_assert_eq(cfg.log_level, HF_LOG_DEBUG);
	cr_assert_eq(cfg.max_body, 2048);
	cr_assert_eq(cfg.threads, 4);
	cr_assert_eq(cfg.max_nodes, 50);
	j = hf_coord_config_to_json(&cfg);
	cr_assert_not_null(j);
	dumped = json_dumps(j, 0);
	json_decref(j);
	cr_assert_eq(load(dumped, &back, &eb), 0, "the effective config does not load: %s", eb.msg);
	cr_assert_eq(memcmp(&cfg, &back, sizeof cfg), 0, "round trip changed the config");
	free(dumped);
}

Test(coord_config, refusals_name_the_field)
{
	refused("{}", "fleet_id");
	refused("{\"fleet_id\": \"bad id\"}", "fleet_id");
	refused("{\"fleet_id\": \"lab\", \"listn\": {}}", "listn: unknown key");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"adress\": \"x\"}}", "listen.adress");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"localhost\"}}", "listen.address");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"port\": 70000}}", "listen.port");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"port\": \"80\"}}", "listen.port");
	refused("{\"fleet_id\": \"lab\", \"signing_key\": \"key.pem\"}", "signing_key: expected an absolute path");
	refused("{\"fleet_id\": \"lab\", \"trust_file\": \"\"}", "trust_file");
	refused("{\"fleet_id\": \"lab\", \"database\": \"db\"}", "database");
	refused("{\"fleet_id\": \"lab\", \"admin_token_file\": \"tok\"}", "admin_token_file");
	refused("{\"fleet_id\": \"lab\", \"report_interval_s\": 0}", "report_interval_s");
	refused("{\"fleet_id\": \"lab\", \"instruction_ttl_s\": 5}", "instruction_ttl_s");
	refused("{\"fleet_id\": \"lab\", \"log_level\": \"loud\"}", "log_level");
	refused("{\"fleet_id\": \"lab\", \"limits\": {\"max_body\": 100000}}", "limits.max_body");
	refused("{\"fleet_id\": \"lab\", \"limits\": {\"threads\": 0}}", "limits.threads");
	refused("{\"fleet_id\": \"lab\", \"limits\": {\"max_wait\": 1}}", "limits.max_wait");
	refused("{\"fleet_id\": \"lab\", \"fleet_id\": \"x\"}", "duplicate");
	/* TLS needs both halves. */
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"tls_cert\": \"/c.pem\"}}", "listen.tls_key");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"tls_key\": \"/k.pem\"}}", "listen.tls_cert");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"tls_cert\": \"c.pem\", \"tls_key\": \"/k\"}}",
		"listen.tls_cert");
}

Test(coord_config, plain_http_only_on_loopback)
{
	hf_coord_config cfg;
	hf_errbuf eb;

	refused("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"0.0.0.0\"}}", "not a loopback");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"10.1.2.3\"}}", "allow_plain_remote");
	refused("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"::\"}}", "listen.address");
	cr_assert_eq(load("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"127.0.0.2\"}}", &cfg, &eb),
		     0, "%s", eb.msg);
	cr_assert_eq(load("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"0.0.0.0\", "
			  "\"allow_plain_remote\": true}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert_eq(load("{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"0.0.0.0\", "
			  "\"tls_cert\": \"/c.pem\", \"tls_key\": \"/k.pem\"}}", &cfg, &eb), 0, "%s", eb.msg);
	cr_assert(hf_coord_addr_is_loopback("127.0.0.1"));
	cr_assert(hf_coord_addr_is_loopback("127.255.0.9"));
	cr_assert(hf_coord_addr_is_loopback("::1"));
	cr_assert_not(hf_coord_addr_is_loopback("::"));
	cr_assert_not(hf_coord_addr_is_loopback("128.0.0.1"));
	cr_assert_not(hf_coord_addr_is_loopback("nonsense"));
}

Test(coord_config, a_failed_load_changes_nothing)
{
	hf_coord_config cfg, before;
	hf_errbuf eb;
	json_t *root;
	const char *text = "{\"fleet_id\": \"other\", \"report_interval_s\": 3, \"limits\": {\"threads\": 0}}";

	hf_coord_config_defaults(&cfg);
	before = cfg;
	cr_assert_eq(hf_cfg_parse(text, strlen(text), "coord.json", &root, &eb), 0);
	cr_assert_neq(hf_coord_config_from_json(&cfg, root, &eb), 0);
	json_decref(root);
	cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}
