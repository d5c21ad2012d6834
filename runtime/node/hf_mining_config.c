/* hf_mining_config: schema, defaults and validation of the mining section.
 * Threading: see hf_mining_config.h.
 */
#include "hf_mining_config.h"

#include <string.h>

#include "hf_config.h"
#include "hf_mining_retry.h"
#include "hf_util.h"

static const char *const backend_choices[] = { "cpu", "opencl", NULL };
static const char *const affinity_choices[] = { "none", "spread", NULL };

void hf_mining_config_defaults(hf_mining_config *c)
{
	memset(c, 0, sizeof *c);
	c->backend = HF_MINING_CPU;
	c->affinity = HF_MINING_AFFINITY_NONE;
	c->range_bits = 32;
	c->nice = 10;
	c->version_rolling = true;
	c->failback_ms = 60000;
	c->backoff_max_ms = 60000;
	c->silence_ms = 120000;
	c->connect_timeout_ms = 10000;
	c->write_timeout_ms = 10000;
	c->status_interval_s = 30;
	c->stall_ms = 10000;
	c->flush_timeout_ms = 3000;
	c->restart_max = 3;
	c->restart_window_ms = 600000;
	c->restart_backoff_ms = 1000;
}

static bool has_controls(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int read_pool(hf_mining_pool *p, const json_t *obj, const char *path, hf_errbuf *eb)
{
	static const char *const schemes[] = { "stratum+tcp://", "stratum+ssl://", "stratum+tls://" };
	hf_mining_pool tmp = { "", "", "" };
	const hf_cfg_field f[] = {
		{ .key = "url", .type = HF_CFG_STRING, .required = true, .dst = tmp.url,
		  .dst_size = sizeof tmp.url, .min = 1 },
		{ .key = "user", .type = HF_CFG_STRING, .required = true, .dst = tmp.user,
		  .dst_size = sizeof tmp.user, .min = 1 },
		{ .key = "pass", .type = HF_CFG_STRING, .dst = tmp.pass, .dst_size = sizeof tmp.pass },
	};
	char fp[HF_CFG_PATH_MAX];
	int r = hf_cfg_read(obj, path, f, HF_ARRAY_SIZE(f), eb);

	if (r < 0)
		return r;
	if (has_controls(tmp.url) || has_controls(tmp.user) || has_controls(tmp.pass))
		return hf_fail(eb, HF_ECONFIG, "%s: control characters are not allowed", path);
	for (size_t i = 0; i < HF_ARRAY_SIZE(schemes); i++) {
		size_t n = strlen(schemes[i]);
		if (strncmp(tmp.url, schemes[i], n) == 0 && tmp.url[n] != '\0' &&
		    strchr(tmp.url + n, ':')) {
			*p = tmp;
			return 0;
		}
	}
	hf_cfg_path_key(fp, sizeof fp, path, "url");
	return hf_fail(eb, HF_ECONFIG, "%s: expected stratum+tcp://, stratum+ssl:// or "
		       "stratum+tls:// followed by host:port, got \"%.64s\"", fp, tmp.url);
}

static int read_pools(hf_mining_config *c, const json_t *arr, const char *path, hf_errbuf *eb)
{
	hf_mining_pool pools[HF_MINING_MAX_POOLS];
	char fp[HF_CFG_PATH_MAX], ip[HF_CFG_PATH_MAX];
	size_t n = json_array_size(arr);
	int r;

	hf_cfg_path_key(fp, sizeof fp, path, "pools");
	for (size_t i = 0; i < n; i++) {
		hf_cfg_path_index(ip, sizeof ip, fp, i);
		if (!json_is_object(json_array_get(arr, i)))
			return hf_fail(eb, HF_ECONFIG, "%s: expected an object {url, user, pass}", ip);
		if ((r = read_pool(&pools[i], json_array_get(arr, i), ip, eb)) < 0)
			return r;
	}
	memcpy(c->pools, pools, n * sizeof pools[0]);
	c->npools = n;
	return 0;
}

static int read_cpu(hf_mining_config *c, const json_t *obj, const char *path, hf_errbuf *eb)
{
	uint64_t threads = c->threads, nice = c->nice;
	int aff = (int)c->affinity;
	char impl[32];
	const hf_cfg_field f[] = {
		{ .key = "threads", .type = HF_CFG_UINT, .dst = &threads, .min = 0,
		  .max = HF_MINING_MAX_THREADS },
		{ .key = "affinity", .type = HF_CFG_ENUM, .dst = &aff, .choices = affinity_choices },
		{ .key = "impl", .type = HF_CFG_STRING, .dst = impl, .dst_size = sizeof impl },
		{ .key = "nice", .type = HF_CFG_UINT, .dst = &nice, .min = 0, .max = 19 },
	};
	char fp[HF_CFG_PATH_MAX];
	int r;

	hf_strlcpy(impl, c->impl, sizeof impl);
	hf_cfg_path_key(fp, sizeof fp, path, "cpu");
	if ((r = hf_cfg_read(obj, fp, f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	c->threads = (unsigned)threads;
	c->nice = (unsigned)nice;
	c->affinity = (hf_mining_affinity)aff;
	hf_strlcpy(c->impl, impl, sizeof c->impl);
	return 0;
}

static int read_opencl(hf_mining_config *c, const json_t *obj, const char *path, hf_errbuf *eb)
{
	char device[128], cache[PATH_MAX];
	uint64_t batch = c->batch;
	const hf_cfg_field f[] = {
		{ .key = "device", .type = HF_CFG_STRING, .dst = device, .dst_size = sizeof device },
		{ .key = "batch", .type = HF_CFG_UINT, .dst = &batch, .min = 0, .max = 1u << 30 },
		{ .key = "cache_dir", .type = HF_CFG_STRING, .dst = cache, .dst_size = sizeof cache },
	};
	char fp[HF_CFG_PATH_MAX];
	int r;

	hf_strlcpy(device, c->device, sizeof device);
	hf_strlcpy(cache, c->cache_dir, sizeof cache);
	hf_cfg_path_key(fp, sizeof fp, path, "opencl");
	if ((r = hf_cfg_read(obj, fp, f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	if (batch != 0 && (batch < 256 || batch % 256 != 0))
		return hf_fail(eb, HF_ECONFIG, "%s.batch: expected 0 (default) or a multiple of 256 "
			       "from 256 up, got %llu", fp, (unsigned long long)batch);
	if (cache[0] && cache[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "%s.cache_dir: expected an absolute path, got \"%s\"",
			       fp, cache);
	hf_strlcpy(c->device, device, sizeof c->device);
	hf_strlcpy(c->cache_dir, cache, sizeof c->cache_dir);
	c->batch = (uint32_t)batch;
	return 0;
}

/* "power_target_w": null means no target: the key is taken out of a copy of *obj (in *owned)
 * before the table sees it (the table would refuse null). */
static int read_power_target_null(const json_t **obj, json_t **owned, hf_mining_config *t)
{
	if (!json_is_null(json_object_get(*obj, "power_target_w")))
		return 0;
	*owned = json_copy((json_t *)*obj);
	if (!*owned)
		return HF_ENOMEM;
	json_object_del(*owned, "power_target_w");
	t->power_target_w = 0;
	*obj = *owned;
	return 0;
}

/* Top-level scalar keys; the nested objects are handed back for their own tables. */
static int read_top(hf_mining_config *c, const json_t *obj, const char *path,
		    const json_t **pools, const json_t **cpu, const json_t **ocl, hf_errbuf *eb)
{
	hf_mining_config t = *c;
	int backend = (int)c->backend;
	uint64_t range = c->range_bits, rmax = c->restart_max;
	double target = c->power_target_w;
	bool target_set = false;
	json_t *owned = NULL;
	const hf_cfg_field f[] = {
		{ .key = "pools", .type = HF_CFG_ARRAY, .dst = pools, .min = 0, .max = HF_MINING_MAX_POOLS },
		{ .key = "backend", .type = HF_CFG_ENUM, .dst = &backend, .choices = backend_choices },
		{ .key = "cpu", .type = HF_CFG_OBJECT, .dst = cpu },
		{ .key = "opencl", .type = HF_CFG_OBJECT, .dst = ocl },
		{ .key = "range_bits", .type = HF_CFG_UINT, .dst = &range, .min = 16, .max = 32 },
		{ .key = "version_rolling", .type = HF_CFG_BOOL, .dst = &t.version_rolling },
		{ .key = "suggest_difficulty", .type = HF_CFG_NUMBER, .dst = &t.suggest_difficulty,
		  .min = 0, .max = 1e15 },
		{ .key = "user_agent", .type = HF_CFG_STRING, .dst = t.user_agent,
		  .dst_size = sizeof t.user_agent },
		{ .key = "ca_file", .type = HF_CFG_STRING, .dst = t.ca_file, .dst_size = sizeof t.ca_file },
		{ .key = "insecure", .type = HF_CFG_BOOL, .dst = &t.insecure },
		{ .key = "failback_ms", .type = HF_CFG_UINT, .dst = &t.failback_ms, .min = 100, .max = 86400000 },
		{ .key = "backoff_max_ms", .type = HF_CFG_UINT, .dst = &t.backoff_max_ms, .min = 100,
		  .max = 3600000 },
		{ .key = "silence_ms", .type = HF_CFG_UINT, .dst = &t.silence_ms, .min = 1000, .max = 3600000 },
		{ .key = "connect_timeout_ms", .type = HF_CFG_UINT, .dst = &t.connect_timeout_ms,
		  .min = 100, .max = 600000 },
		{ .key = "write_timeout_ms", .type = HF_CFG_UINT, .dst = &t.write_timeout_ms,
		  .min = 100, .max = 600000 },
		{ .key = "status_interval_s", .type = HF_CFG_UINT, .dst = &t.status_interval_s, .min = 1,
		  .max = 3600 },
		{ .key = "stall_ms", .type = HF_CFG_UINT, .dst = &t.stall_ms, .min = 100, .max = 600000 },
		{ .key = "flush_timeout_ms", .type = HF_CFG_UINT, .dst = &t.flush_timeout_ms, .min = 0,
		  .max = 600000 },
		{ .key = "restart_max", .type = HF_CFG_UINT, .dst = &rmax, .min = 0,
		  .max = HF_MINING_RETRY_MAX },
		{ .key = "restart_window_ms", .type = HF_CFG_UINT, .dst = &t.restart_window_ms,
		  .min = 1000, .max = 86400000 },
		{ .key = "restart_backoff_ms", .type = HF_CFG_UINT, .dst = &t.restart_backoff_ms,
		  .min = 10, .max = 600000 },
		{ .key = "power_target_w", .type = HF_CFG_NUMBER, .dst = &target, .min = 0,
		  .max = HF_MINING_POWER_TARGET_MAX, .present = &target_set },
	};
	char fp[HF_CFG_PATH_MAX];
	int r;

	if ((r = read_power_target_null(&obj, &owned, &t)) < 0)
		return hf_fail(eb, r, "out of memory");
	r = hf_cfg_read(obj, path, f, HF_ARRAY_SIZE(f), eb);
	json_decref(owned);
	if (r < 0)
		return r;
	if (target_set && !(target > 0)) {
		hf_cfg_path_key(fp, sizeof fp, path, "power_target_w");
		return hf_fail(eb, HF_ECONFIG, "%s: expected watts greater than 0 (up to %g), or null for "
			       "no target, got %g", fp, HF_MINING_POWER_TARGET_MAX, target);
	}
	if (target_set)
		t.power_target_w = target;
	if (t.ca_file[0] && t.ca_file[0] != '/') {
		hf_cfg_path_key(fp, sizeof fp, path, "ca_file");
		return hf_fail(eb, HF_ECONFIG, "%s: expected an absolute path, got \"%s\"", fp, t.ca_file);
	}
	if (has_controls(t.user_agent)) {
		hf_cfg_path_key(fp, sizeof fp, path, "user_agent");
		return hf_fail(eb, HF_ECONFIG, "%s: control characters are not allowed", fp);
	}
	t.backend = (hf_mining_backend)backend;
	t.range_bits = (unsigned)range;
	t.restart_max = (unsigned)rmax;
	*c = t;
	return 0;
}

int hf_mining_config_from_json(hf_mining_config *c, const json_t *obj, const char *path,
			       hf_errbuf *eb)
{
	const json_t *pools = NULL, *cpu = NULL, *ocl = NULL;
	hf_mining_config t = *c;
	int r;

	if ((r = read_top(&t, obj, path, &pools, &cpu, &ocl, eb)) < 0)
		return r;
	if (pools && (r = read_pools(&t, pools, path, eb)) < 0)
		return r;
	if (cpu && (r = read_cpu(&t, cpu, path, eb)) < 0)
		return r;
	if (ocl && (r = read_opencl(&t, ocl, path, eb)) < 0)
		return r;
	*c = t;
	return 0;
}

int hf_mining_config_pools_from_params(hf_mining_config *c, const json_t *params, hf_errbuf *eb)
{
	const json_t *pools = NULL;
	const hf_cfg_field f[] = {
		{ .key = "pools", .type = HF_CFG_ARRAY, .dst = &pools, .min = 1, .max = HF_MINING_MAX_POOLS },
	};
	int r = hf_cfg_read(params, "instruction.mining", f, HF_ARRAY_SIZE(f), eb);

	if (r < 0)
		return r;
	return pools ? read_pools(c, pools, "instruction.mining", eb) : 0;
}

/* One line per key, in the order of the parser's tables; adding a key is one line here. */
json_t *hf_mining_config_to_json(const hf_mining_config *c, bool mask_secrets)
{
	json_t *o = json_object(), *pools = json_array(), *cpu = json_object(), *ocl = json_object();
	bool ok = o && pools && cpu && ocl;

	for (size_t i = 0; ok && i < c->npools; i++) {
		const hf_mining_pool *p = &c->pools[i];
		ok = json_array_append_new(pools, json_pack("{s:s, s:s, s:s}", "url", p->url,
			"user", p->user, "pass", mask_secrets && p->pass[0] ? "***" : p->pass)) == 0;
	}
	ok = ok && json_object_set_new(cpu, "threads", json_integer(c->threads)) == 0;
	ok = ok && json_object_set_new(cpu, "affinity", json_string(affinity_choices[c->affinity])) == 0;
	ok = ok && json_object_set_new(cpu, "impl", json_string(c->impl)) == 0;
	ok = ok && json_object_set_new(cpu, "nice", json_integer(c->nice)) == 0;
	ok = ok && json_object_set_new(ocl, "device", json_string(c->device)) == 0;
	ok = ok && json_object_set_new(ocl, "batch", json_integer(c->batch)) == 0;
	ok = ok && json_object_set_new(ocl, "cache_dir", json_string(c->cache_dir)) == 0;
	ok = ok && json_object_set_new(o, "pools", json_incref(pools)) == 0;
	ok = ok && json_object_set_new(o, "backend", json_string(backend_choices[c->backend])) == 0;
	ok = ok && json_object_set_new(o, "cpu", json_incref(cpu)) == 0;
	ok = ok && json_object_set_new(o, "opencl", json_incref(ocl)) == 0;
	ok = ok && json_object_set_new(o, "range_bits", json_integer(c->range_bits)) == 0;
	ok = ok && json_object_set_new(o, "version_rolling", json_boolean(c->version_rolling)) == 0;
	ok = ok && json_object_set_new(o, "suggest_difficulty", json_real(c->suggest_difficulty)) == 0;
	ok = ok && json_object_set_new(o, "user_agent", json_string(c->user_agent)) == 0;
	ok = ok && json_object_set_new(o, "ca_file", json_string(c->ca_file)) == 0;
	ok = ok && json_object_set_new(o, "insecure", json_boolean(c->insecure)) == 0;
	ok = ok && json_object_set_new(o, "failback_ms", json_integer((json_int_t)c->failback_ms)) == 0;
	ok = ok && json_object_set_new(o, "backoff_max_ms", json_integer((json_int_t)c->backoff_max_ms)) == 0;
	ok = ok && json_object_set_new(o, "silence_ms", json_integer((json_int_t)c->silence_ms)) == 0;
	ok = ok && json_object_set_new(o, "connect_timeout_ms",
				       json_integer((json_int_t)c->connect_timeout_ms)) == 0;
	ok = ok && json_object_set_new(o, "write_timeout_ms",
				       json_integer((json_int_t)c->write_timeout_ms)) == 0;
	ok = ok && json_object_set_new(o, "status_interval_s",
				       json_integer((json_int_t)c->status_interval_s)) == 0;
	ok = ok && json_object_set_new(o, "stall_ms", json_integer((json_int_t)c->stall_ms)) == 0;
	ok = ok && json_object_set_new(o, "flush_timeout_ms",
				       json_integer((json_int_t)c->flush_timeout_ms)) == 0;
	ok = ok && json_object_set_new(o, "restart_max", json_integer(c->restart_max)) == 0;
	ok = ok && json_object_set_new(o, "restart_window_ms",
				       json_integer((json_int_t)c->restart_window_ms)) == 0;
	ok = ok && json_object_set_new(o, "restart_backoff_ms",
				       json_integer((json_int_t)c->restart_backoff_ms)) == 0;
	ok = ok && json_object_set_new(o, "power_target_w", c->power_target_w > 0 ?
				       json_real(c->power_target_w) : json_null()) == 0;
	json_decref(pools);
	json_decref(cpu);
	json_decref(ocl);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}
