/* Tests of hf_infer_config: node.json's "inference" section: defaults, every key, strict
 * refusals naming the key, and the effective section round-tripping through JSON.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_infer.h"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	cr_assert_not_null(j, "%s: %s", text, je.text);
	return j;
}

/* Refused with HF_ECONFIG and a message containing want. */
static void refused(const char *text, const char *want)
{
	hf_infer_config c;
	hf_errbuf eb;
	json_t *j = parse(text);

	hf_infer_config_defaults(&c, "/var/lib/x");
	strcpy(c.listen, "sentinel");
	int r = hf_infer_config_from_json(&c, j, "/var/lib/x", &eb);
	json_decref(j);
	cr_assert_eq(r, HF_ECONFIG, "%s: accepted", text);
	cr_assert(strstr(eb.msg, want), "%s: message \"%s\" lacks \"%s\"", text, eb.msg, want);
	cr_assert_str_eq(c.listen, "sentinel", "a refused section changed the config");
}

Test(infer_config, defaults)
{
	hf_infer_config c;
	hf_errbuf eb;

	cr_assert_eq(hf_infer_config_from_json(&c, NULL, "/srv/node", &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(c.model_dir, "/srv/node/models");
	cr_assert_str_eq(c.listen, "127.0.0.1");
	cr_assert_eq(c.port, 8000);
	cr_assert_str_eq(c.device, "auto");
	cr_assert_eq(c.memory_budget_mb, 2048);
	cr_assert_eq(c.nmodels, 0);
	cr_assert_eq(c.max_batch_size, 32);
	cr_assert_eq(c.max_queue_delay_us, 500);
	cr_assert_eq(c.max_queue, 1024);
	cr_assert_eq(c.instances, 1);
	cr_assert_eq(c.request_timeout_ms, 10000);
	cr_assert_eq(c.retry_after_s, 1);
	cr_assert_eq(c.max_body, 64u << 20);
	cr_assert_eq(c.max_conns, 4096);
	cr_assert_eq(c.max_conns_per_client, 0);
	cr_assert_eq(c.header_timeout_s, 10);
	cr_assert_eq(c.timeout_s, 30);
	cr_assert_eq(c.threads, 4);
}

Test(infer_config, every_key)
{
	hf_infer_config c;
	hf_errbuf eb;
	json_t *j = parse("{\"model_dir\": \"/m\", \"listen\": \"::1\", \"port\": 0, "
			  "\"device\": \"pocl\", \"memory_budget_mb\": 64, "
			  "\"models\": [\"a\", \"fashion-mnist\"], \"max_batch_size\": 4096, "
			  "\"max_queue_delay_us\": 0, \"max_queue\": 7, \"instances\": 16, "
			  "\"request_timeout_ms\": 5, \"retry_after_s\": 3, \"max_body_mb\": 2, "
			  "\"max_connections\": 10, \"max_connections_per_client\": 10, "
			  "\"header_timeout_s\": 4, \"timeout_s\": 9, \"threads\": 2}");

	cr_assert_eq(hf_infer_config_from_json(&c, j, "/s", &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(c.model_dir, "/m");
	cr_assert_str_eq(c.listen, "::1");
	cr_assert_eq(c.port, 0);
	cr_assert_str_eq(c.device, "pocl");
	cr_assert_eq(c.memory_budget_mb, 64);
	cr_assert_eq(c.nmodels, 2);
	cr_assert_str_eq(c.models[1], "fashion-mnist");
	cr_assert_eq(c.max_batch_size, 4096);
	cr_assert_eq(c.max_queue_delay_us, 0);
	cr_assert_eq(c.max_queue, 7);
	cr_assert_eq(c.instances, 16);
	cr_assert_eq(c.request_timeout_ms, 5);
	cr_assert_eq(c.retry_after_s, 3);
	cr_assert_eq(c.max_body, 2u << 20);
	cr_assert_eq(c.max_conns, 10);
	cr_assert_eq(c.max_conns_per_client, 10);
	cr_assert_eq(c.header_timeout_s, 4);
	cr_assert_eq(c.timeout_s, 9);
	cr_assert_eq(c.threads, 2);

	/* The effective section loads back to the same config. */
	json_t *out = hf_infer_config_to_json(&c);
	cr_assert_not_null(out);
	cr_assert(json_equal(out, j), "to_json differs: %s", json_dumps(out, JSON_COMPACT));
	hf_infer_config c2;
	cr_assert_eq(hf_infer_config_from_json(&c2, out, "/other", &eb), 0, "%s", eb.msg);
	json_t *out2 = hf_infer_config_to_json(&c2);
	cr_assert(json_equal(out, out2));
	json_decref(out2);
	json_decref(out);
	json_decref(j);
}

Test(infer_config, defaults_round_trip_with_every_key)
{
	hf_infer_config c;
	hf_infer_config_defaults(&c, "/s");
	json_t *out = hf_infer_config_to_json(&c);
	cr_assert_not_null(out);
	cr_assert_eq(json_object_size(out), 18, "%zu keys", json_object_size(out));
	cr_assert_str_eq(json_string_value(json_object_get(out, "model_dir")), "/s/models");
	json_decref(out);
}

Test(infer_config, strict_refusals)
{
	refused("{\"max_batch\": 4}", "inference.max_batch: unknown key");
	refused("{\"port\": 65536}", "inference.port");
	refused("{\"port\": \"8000\"}", "inference.port");
	refused("{\"max_batch_size\": 0}", "inference.max_batch_size");
	refused("{\"max_batch_size\": 4097}", "inference.max_batch_size");
	refused("{\"max_queue_delay_us\": 1000001}", "inference.max_queue_delay_us");
	refused("{\"max_queue_delay_us\": -1}", "inference.max_queue_delay_us");
	refused("{\"instances\": 17}", "inference.instances");
	refused("{\"instances\": 0}", "inference.instances");
	refused("{\"max_queue\": 0}", "inference.max_queue");
	refused("{\"request_timeout_ms\": 0}", "inference.request_timeout_ms");
	refused("{\"memory_budget_mb\": 0}", "inference.memory_budget_mb");
	refused("{\"max_body_mb\": 0}", "inference.max_body_mb");
	refused("{\"threads\": 65}", "inference.threads");
	refused("{\"model_dir\": \"models\"}", "inference.model_dir: expected an absolute path");
	refused("{\"model_dir\": \"\"}", "inference.model_dir");
	refused("{\"listen\": \"localhost\"}", "inference.listen: expected a numeric");
	refused("{\"device\": \"\"}", "inference.device");
	refused("{\"device\": \"a\\nb\"}", "inference.device: control character");
	refused("{\"models\": \"a\"}", "inference.models");
	refused("{\"models\": [1]}", "inference.models[0]: expected a model name");
	refused("{\"models\": [\"../etc\"]}", "inference.models[0]: expected a model name");
	refused("{\"models\": [\"a\", \"a\"]}", "inference.models[1]: \"a\" is listed twice");
	refused("{\"models\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
		"\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}", "inference.models");
	refused("{\"max_connections\": 5, \"max_connections_per_client\": 6}",
		"inference.max_connections_per_client");
	refused("[]", "inference");
}

/* node.json: the section is validated with the node's config and printed in full. */
#include "hf_node_config.h"

Test(infer_config, node_json_validates_and_prints_the_section)
{
	hf_node_config nc;
	hf_errbuf eb;
	json_t *root = parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"state_dir\":\"/srv/x\","
			     "\"inference\":{\"port\":0,\"max_batch_size\":8}}");
	hf_node_config_defaults(&nc);
	cr_assert_eq(hf_node_config_from_json(&nc, root, &eb), 0, "%s", eb.msg);
	json_decref(root);
	json_t *out;
	cr_assert_eq(hf_node_config_to_json(&nc, true, &out, &eb), 0, "%s", eb.msg);
	json_t *inf = json_object_get(out, "inference");
	cr_assert_eq(json_object_size(inf), 18);
	cr_assert_str_eq(json_string_value(json_object_get(inf, "model_dir")), "/srv/x/models");
	cr_assert_eq(json_integer_value(json_object_get(inf, "max_batch_size")), 8);
	cr_assert_eq(json_integer_value(json_object_get(inf, "port")), 0);
	cr_assert_eq(json_integer_value(json_object_get(inf, "max_queue_delay_us")), 500);
	json_decref(out);
	hf_node_config_clear(&nc);

	root = parse("{\"node_id\":\"n\",\"fleet_id\":\"f\",\"inference\":{\"instances\":99}}");
	hf_node_config_defaults(&nc);
	cr_assert_eq(hf_node_config_from_json(&nc, root, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "inference.instances"), "%s", eb.msg);
	json_decref(root);
	hf_node_config_clear(&nc);
}
