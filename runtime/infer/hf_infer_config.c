/* hf_infer_config: node.json's "inference" section: defaults, strict validation, the effective
 * section as JSON. Needs no OpenCL: the node validates the section in every build.
 * Invariants: nothing in *cfg changes unless the whole section validates.
 * Threading: reentrant.
 */
#include "hf_infer.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

void hf_infer_config_defaults(hf_infer_config *cfg, const char *state_dir)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->model_dir, sizeof cfg->model_dir, "%s/models", state_dir ? state_dir : ".");
	hf_strlcpy(cfg->listen, "127.0.0.1", sizeof cfg->listen);
	cfg->port = HF_INFER_DEFAULT_PORT;
	hf_strlcpy(cfg->device, "auto", sizeof cfg->device);
	cfg->memory_budget_mb = 2048;
	cfg->max_batch_size = 32;
	cfg->max_queue_delay_us = 500;
	cfg->max_queue = 1024;
	cfg->instances = 1;
	cfg->request_timeout_ms = 10000;
	cfg->retry_after_s = 1;
	cfg->max_body = 64u << 20;
	cfg->max_conns = 4096;
	cfg->max_conns_per_client = 0;
	cfg->header_timeout_s = 10;
	cfg->timeout_s = 30;
	cfg->threads = 4;
	if (state_dir)
		snprintf(cfg->cl_cache_dir, sizeof cfg->cl_cache_dir, "%s/cl-cache", state_dir);
}

/* "models": an array of distinct model names (hf_id_valid). */
static int read_models(hf_infer_config *cfg, const json_t *arr, hf_errbuf *eb)
{
	size_t i, j;
	json_t *v;

	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (!s || !hf_id_valid(s)) {
			char got[96];
			hf_cfg_describe(v, got, sizeof got);
			return hf_fail(eb, HF_ECONFIG, "inference.models[%zu]: expected a model name "
				       "(1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or "
				       "digit), got %s", i, got);
		}
		for (j = 0; j < i; j++)
			if (strcmp(cfg->models[j], s) == 0)
				return hf_fail(eb, HF_ECONFIG, "inference.models[%zu]: \"%s\" is listed twice",
					       i, s);
		hf_strlcpy(cfg->models[i], s, sizeof cfg->models[i]);
	}
	cfg->nmodels = json_array_size(arr);
	return 0;
}

static int check_paths(const char *model_dir, const char *listen, const char *device,
		       hf_errbuf *eb)
{
	unsigned char addr[16];

	if (model_dir[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "inference.model_dir: expected an absolute path, got \"%s\"",
			       model_dir);
	if (inet_pton(AF_INET, listen, addr) != 1 && inet_pton(AF_INET6, listen, addr) != 1)
		return hf_fail(eb, HF_ECONFIG, "inference.listen: expected a numeric IPv4 or IPv6 "
			       "address such as \"127.0.0.1\", got \"%s\"", listen);
	for (const char *p = device; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return hf_fail(eb, HF_ECONFIG, "inference.device: control character in the selector");
	return 0;
}

int hf_infer_config_from_json(hf_infer_config *cfg, const json_t *section,
			      const char *state_dir, hf_errbuf *eb)
{
	hf_infer_config c;
	const json_t *models = NULL;
	uint64_t port, body_mb;
	int r;

	hf_infer_config_defaults(&c, state_dir);
	port = c.port;
	body_mb = c.max_body >> 20;
	hf_cfg_field f[] = {
		{ .key = "model_dir", .type = HF_CFG_STRING, .dst = c.model_dir,
		  .dst_size = sizeof c.model_dir, .min = 1 },
		{ .key = "listen", .type = HF_CFG_STRING, .dst = c.listen, .dst_size = sizeof c.listen,
		  .min = 1 },
		{ .key = "port", .type = HF_CFG_UINT, .dst = &port, .min = 0, .max = 65535 },
		{ .key = "device", .type = HF_CFG_STRING, .dst = c.device, .dst_size = sizeof c.device,
		  .min = 1 },
		{ .key = "memory_budget_mb", .type = HF_CFG_UINT, .dst = &c.memory_budget_mb, .min = 1,
		  .max = 1048576 },
		{ .key = "models", .type = HF_CFG_ARRAY, .dst = &models, .max = 16 },
		{ .key = "max_batch_size", .type = HF_CFG_UINT, .dst = &c.max_batch_size, .min = 1,
		  .max = 4096 },
		{ .key = "max_queue_delay_us", .type = HF_CFG_UINT, .dst = &c.max_queue_delay_us,
		  .min = 0, .max = 1000000 },
		{ .key = "max_queue", .type = HF_CFG_UINT, .dst = &c.max_queue, .min = 1, .max = 1000000 },
		{ .key = "instances", .type = HF_CFG_UINT, .dst = &c.instances, .min = 1, .max = 16 },
		{ .key = "request_timeout_ms", .type = HF_CFG_UINT, .dst = &c.request_timeout_ms,
		  .min = 1, .max = 3600000 },
		{ .key = "retry_after_s", .type = HF_CFG_UINT, .dst = &c.retry_after_s, .min = 1,
		  .max = 3600 },
		{ .key = "max_body_mb", .type = HF_CFG_UINT, .dst = &body_mb, .min = 1, .max = 1024 },
		{ .key = "max_connections", .type = HF_CFG_UINT, .dst = &c.max_conns, .min = 1,
		  .max = 1000000 },
		{ .key = "max_connections_per_client", .type = HF_CFG_UINT,
		  .dst = &c.max_conns_per_client, .min = 0, .max = 1000000 },
		{ .key = "header_timeout_s", .type = HF_CFG_UINT, .dst = &c.header_timeout_s, .min = 1,
		  .max = 300 },
		{ .key = "timeout_s", .type = HF_CFG_UINT, .dst = &c.timeout_s, .min = 1, .max = 3600 },
		{ .key = "threads", .type = HF_CFG_UINT, .dst = &c.threads, .min = 1, .max = 64 },
	};

	if (section && (r = hf_cfg_read(section, "inference", f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	if ((r = check_paths(c.model_dir, c.listen, c.device, eb)) < 0)
		return r;
	if (models && (r = read_models(&c, models, eb)) < 0)
		return r;
	if (c.max_conns_per_client > c.max_conns)
		return hf_fail(eb, HF_ECONFIG, "inference.max_connections_per_client: expected 0 (no "
			       "cap) to inference.max_connections (%llu), got %llu",
			       (unsigned long long)c.max_conns,
			       (unsigned long long)c.max_conns_per_client);
	c.port = (uint16_t)port;
	c.max_body = body_mb << 20;
	*cfg = c;
	return 0;
}

json_t *hf_infer_config_to_json(const hf_infer_config *cfg)
{
	json_t *j = json_object(), *models = json_array();

	if (!j || !models)
		goto fail;
	for (size_t i = 0; i < cfg->nmodels; i++)
		json_array_append_new(models, json_string(cfg->models[i]));
	json_object_set_new(j, "model_dir", json_string(cfg->model_dir));
	json_object_set_new(j, "listen", json_string(cfg->listen));
	json_object_set_new(j, "port", json_integer(cfg->port));
	json_object_set_new(j, "device", json_string(cfg->device));
	json_object_set_new(j, "memory_budget_mb", json_integer((json_int_t)cfg->memory_budget_mb));
	json_object_set_new(j, "models", models);
	models = NULL;
	json_object_set_new(j, "max_batch_size", json_integer((json_int_t)cfg->max_batch_size));
	json_object_set_new(j, "max_queue_delay_us", json_integer((json_int_t)cfg->max_queue_delay_us));
	json_object_set_new(j, "max_queue", json_integer((json_int_t)cfg->max_queue));
	json_object_set_new(j, "instances", json_integer((json_int_t)cfg->instances));
	json_object_set_new(j, "request_timeout_ms", json_integer((json_int_t)cfg->request_timeout_ms));
	json_object_set_new(j, "retry_after_s", json_integer((json_int_t)cfg->retry_after_s));
	json_object_set_new(j, "max_body_mb", json_integer((json_int_t)(cfg->max_body >> 20)));
	json_object_set_new(j, "max_connections", json_integer((json_int_t)cfg->max_conns));
	json_object_set_new(j, "max_connections_per_client",
			    json_integer((json_int_t)cfg->max_conns_per_client));
	json_object_set_new(j, "header_timeout_s", json_integer((json_int_t)cfg->header_timeout_s));
	json_object_set_new(j, "timeout_s", json_integer((json_int_t)cfg->timeout_s));
	json_object_set_new(j, "threads", json_integer((json_int_t)cfg->threads));
	/* A model_dir or device that is not UTF-8 leaves its key out: the caller checks. */
	if (!json_object_get(j, "model_dir") || !json_object_get(j, "device"))
		goto fail;
	return j;
fail:
	json_decref(models);
	json_decref(j);
	return NULL;
}
