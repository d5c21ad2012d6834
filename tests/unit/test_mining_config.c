/* Unit tests: hf_mining_config (the mining section of node.json and instruction pools). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_mining_config.h"

static int parse(const char *text, hf_mining_config *c, hf_errbuf *eb)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	cr_assert_not_null(j, "%s: %s", text, je.text);
	hf_mining_config_defaults(c);
	int r = hf_mining_config_from_json(c, j, "mining", eb);
	json_decref(j);
	return r;
}

static void refused(const char *text, const char *msg)
{
	hf_mining_config c;
	hf_errbuf eb;

	cr_assert_eq(parse(text, &c, &eb), HF_ECONFIG, "accepted: %s", text);
	cr_assert(strstr(eb.msg, msg), "%s\n  got: %s\n  want: %s", text, eb.msg, msg);
}

Test(mining_config, defaults)
{
	hf_mining_config c;
	hf_errbuf eb;

	cr_assert_eq(parse("{}", &c, &eb), 0);
	cr_assert_eq(c.npools, 0);
	cr_assert_eq(c.backend, HF_MINING_CPU);
	cr_assert_eq(c.threads, 0);
	cr_assert_eq(c.range_bits, 32);
	cr_assert(c.version_rolling);
	cr_assert_eq(c.status_interval_s, 30);
	cr_assert_eq(c.nice, 10);
}

Test(mining_config, full_section)
{
	hf_mining_config c;
	hf_errbuf eb;

	cr_assert_eq(parse("{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"a.w1\"},"
			   "{\"url\":\"stratum+ssl://pool.example:443\",\"user\":\"a.w1\",\"pass\":\"p\"}],"
			   "\"backend\":\"opencl\",\"cpu\":{\"threads\":4,\"affinity\":\"spread\",\"impl\":\"ref\",\"nice\":0},"
			   "\"opencl\":{\"device\":\"pocl\",\"batch\":65536,\"cache_dir\":\"/var/cache/x\"},"
			   "\"range_bits\":20,\"version_rolling\":false,\"suggest_difficulty\":0.5,"
			   "\"user_agent\":\"ua/1\",\"ca_file\":\"/etc/ca.pem\",\"insecure\":false,"
			   "\"failback_ms\":5000,\"backoff_max_ms\":2000,\"silence_ms\":60000,"
			   "\"connect_timeout_ms\":2500,\"write_timeout_ms\":700,"
			   "\"status_interval_s\":5,\"stall_ms\":3000,\"flush_timeout_ms\":1000}", &c, &eb), 0, "%s", eb.msg);
	cr_assert_eq(c.npools, 2);
	cr_assert_str_eq(c.pools[1].pass, "p");
	cr_assert_str_eq(c.pools[0].pass, "");
	cr_assert_eq(c.backend, HF_MINING_OPENCL);
	cr_assert_eq(c.threads, 4);
	cr_assert_eq(c.affinity, HF_MINING_AFFINITY_SPREAD);
	cr_assert_str_eq(c.impl, "ref");
	cr_assert_eq(c.nice, 0);
	cr_assert_str_eq(c.device, "pocl");
	cr_assert_eq(c.batch, 65536);
	cr_assert_eq(c.range_bits, 20);
	cr_assert_not(c.version_rolling);
	cr_assert_float_eq(c.suggest_difficulty, 0.5, 1e-12);
	cr_assert_eq(c.failback_ms, 5000);
	cr_assert_eq(c.status_interval_s, 5);
	cr_assert_eq(c.connect_timeout_ms, 2500);
	cr_assert_eq(c.write_timeout_ms, 700);
}

Test(mining_config, refusals_name_the_field)
{
	refused("{\"pool\":[]}", "mining.pool: unknown key");
	refused("{\"backend\":\"gpu\"}", "mining.backend: expected one of");
	refused("{\"write_timeout_ms\":50}", "mining.write_timeout_ms:");
	refused("{\"connect_timeout_ms\":600001}", "mining.connect_timeout_ms:");
	refused("{\"pools\":[{\"url\":\"http://x:1\",\"user\":\"u\"}]}", "mining.pools[0].url: expected stratum+tcp://");
	refused("{\"pools\":[{\"url\":\"stratum+tcp://x:1\"}]}", "mining.pools[0].user");
	refused("{\"pools\":[5]}", "mining.pools[0]: expected an object");
	refused("{\"pools\":[{\"url\":\"stratum+tcp://x:1\",\"user\":\"u\",\"extra\":1}]}", "mining.pools[0].extra: unknown key");
	refused("{\"cpu\":{\"threads\":1000}}", "mining.cpu.threads");
	refused("{\"cpu\":{\"affinity\":\"all\"}}", "mining.cpu.affinity");
	refused("{\"opencl\":{\"batch\":1000}}", "mining.opencl.batch: expected 0 (default) or a multiple of 256");
	refused("{\"opencl\":{\"cache_dir\":\"rel\"}}", "mining.opencl.cache_dir: expected an absolute path");
	refused("{\"range_bits\":8}", "mining.range_bits");
	refused("{\"ca_file\":\"ca.pem\"}", "mining.ca_file: expected an absolute path");
	refused("{\"status_interval_s\":0}", "mining.status_interval_s");
	refused("{\"suggest_difficulty\":-1}", "mining.suggest_difficulty");
}

Test(mining_config, instruction_pools_replace_the_list)
{
	hf_mining_config c;
	hf_errbuf eb;
	json_t *p;

	cr_assert_eq(parse("{\"pools\":[{\"url\":\"stratum+tcp://a:1\",\"user\":\"u\"},"
			   "{\"url\":\"stratum+tcp://b:1\",\"user\":\"u\"}]}", &c, &eb), 0);
	p = json_loads("{\"pools\":[{\"url\":\"stratum+tcp://c:2\",\"user\":\"v\",\"pass\":\"x\"}]}", 0, NULL);
	cr_assert_eq(hf_mining_config_pools_from_params(&c, p, &eb), 0, "%s", eb.msg);
	json_decref(p);
	cr_assert_eq(c.npools, 1);
	cr_assert_str_eq(c.pools[0].url, "stratum+tcp://c:2");
	p = json_loads("{\"pools\":[{\"url\":\"ftp://c:2\",\"user\":\"v\"}]}", 0, NULL);
	cr_assert_eq(hf_mining_config_pools_from_params(&c, p, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "instruction.mining.pools[0].url"), "%s", eb.msg);
	json_decref(p);
	cr_assert_eq(c.npools, 1, "a refused list changes nothing");
}

Test(mining_config, restart_budget)
{
	hf_mining_config c;
	hf_errbuf eb;

	cr_assert_eq(parse("{}", &c, &eb), 0);
	cr_assert_eq(c.restart_max, 3);
	cr_assert_eq(c.restart_window_ms, 600000);
	cr_assert_eq(c.restart_backoff_ms, 1000);
	cr_assert_eq(parse("{\"restart_max\":0,\"restart_window_ms\":1000,\"restart_backoff_ms\":10}", &c, &eb),
		     0, "%s", eb.msg);
	cr_assert_eq(c.restart_max, 0);
	cr_assert_eq(c.restart_window_ms, 1000);
	cr_assert_eq(c.restart_backoff_ms, 10);
	refused("{\"restart_max\":17}", "mining.restart_max");
	refused("{\"restart_max\":-1}", "mining.restart_max");
	refused("{\"restart_window_ms\":999}", "mining.restart_window_ms");
	refused("{\"restart_backoff_ms\":9}", "mining.restart_backoff_ms");
	refused("{\"restart_backoff_ms\":\"1s\"}", "mining.restart_backoff_ms");
}
