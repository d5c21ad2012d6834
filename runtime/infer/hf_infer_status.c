/* hf_infer_status: the inference server's /v1/status section and its Prometheus families.
 * Request and failure counters live as long as the server (by model name); the batchers'
 * histograms, rates and gauges belong to the current run (they restart with each start).
 * Threading: any thread; reads the run under the read side of run_lock.
 */
#include "hf_infer_priv.h"

#include <stdio.h>
#include <string.h>

#include "hf_prom.h"

static const char *const slot_state_names[] = { "loading", "ready", "failed" };
static const char *const code_names[HF_IC_COUNT] = { "200", "400", "404", "413", "500", "503" };
static const char *const fail_names[HF_IF_COUNT] = {
	"bad_request", "too_large", "queue_full", "not_ready", "draining", "timeout", "canceled",
	"compute", "client_gone",
};

static uint64_t requests_of(const hf_infer_counters *c)
{
	uint64_t n = 0;

	for (int k = 0; c && k < HF_IC_COUNT; k++)
		n += atomic_load(&c->codes[k]);
	return n;
}

static json_t *slot_json(hf_infer_slot *slot)
{
	hf_slot_state st = atomic_load(&slot->state);
	const hf_model_config *mc = &slot->m->cfg;
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", slot->m->name,
			      "state", slot_state_names[st], "reason", slot->reason,
			      "max_batch_size", (json_int_t)mc->max_batch_size,
			      "max_queue_delay_us", (json_int_t)mc->max_queue_delay_us,
			      "max_queue", (json_int_t)mc->max_queue,
			      "instances", (json_int_t)mc->instances,
			      "memory_bytes", (json_int_t)slot->m->memory_bytes,
			      "requests_total", (json_int_t)requests_of(slot->cnt));
	hf_batcher_stats bs;

	if (!j)
		return NULL;
	json_object_set_new(j, "start_ms", json_integer((json_int_t)slot->start_ms));
	if (slot->b) {
		hf_batcher_stats_get(slot->b, &bs);
		json_object_set_new(j, "instances_ready", json_integer(bs.instances_ready));
		json_object_set_new(j, "queue_depth", json_integer((json_int_t)bs.queue_depth));
		json_object_set_new(j, "inferences_per_second", json_real(bs.items_per_second));
		json_object_set_new(j, "batches_total", json_integer((json_int_t)bs.batches_total));
		json_object_set_new(j, "inferences_total", json_integer((json_int_t)bs.items_total));
		json_object_set_new(j, "avg_batch_size", json_real(bs.batches_total ?
			(double)bs.items_total / (double)bs.batches_total : 0.0));
		if (bs.last_error[0])
			json_object_set_new(j, "last_error", json_string(bs.last_error));
	} else {
		json_object_set_new(j, "instances_ready", json_integer(0));
		json_object_set_new(j, "queue_depth", json_integer(0));
		json_object_set_new(j, "inferences_per_second", json_real(0));
	}
	return j;
}

void hf_infer_write_status(hf_infer *s, json_t *obj)
{
	json_t *inf, *models = json_array();

	pthread_rwlock_rdlock(&s->run_lock);
	inf = json_pack("{s:s, s:s, s:i, s:s, s:s, s:I}", "state",
			hf_infer_state_name(atomic_load(&s->state)), "listen", s->cfg.listen,
			"port", (int)hf_httpd_port(s->httpd), "device", s->cfg.device,
			"model_dir", s->cfg.model_dir, "memory_budget_mb",
			(json_int_t)s->cfg.memory_budget_mb);
	if (!inf) /* a model_dir that is not UTF-8 */
		inf = json_pack("{s:s}", "state", hf_infer_state_name(atomic_load(&s->state)));
	if (s->run) {
		for (size_t i = 0; i < s->run->n; i++)
			json_array_append_new(models, slot_json(&s->run->slots[i]));
		json_object_set_new(inf, "start_phases_ms", json_pack("{s:I, s:I}", "device",
				    (json_int_t)s->run->device_ms, "load", (json_int_t)s->run->load_ms));
		json_object_set_new(inf, "memory_used_bytes",
				    json_integer((json_int_t)hf_model_repo_memory_bytes(s->run->repo)));
		if (hf_model_repo_problem(s->run->repo)[0])
			json_object_set_new(inf, "problem", json_string(hf_model_repo_problem(s->run->repo)));
	}
	if (s->last_error[0])
		json_object_set_new(inf, "last_error", json_string(s->last_error));
	pthread_rwlock_unlock(&s->run_lock);
	json_object_set_new(inf, "models", models);
	json_object_set_new(obj, "inference", inf);
}

/* One histogram series: cumulative buckets from per-bucket counts. */
static void histogram(hf_buf *b, const char *name, const char *model, const double *bounds,
		      const uint64_t *counts, size_t nb, uint64_t count, double sum)
{
	char bucket[128], le[32], n2[128];
	uint64_t cum = 0;

	snprintf(bucket, sizeof bucket, "%s_bucket", name);
	for (size_t i = 0; i < nb; i++) {
		const char *l[] = { "model", model, "le", le };
		cum += counts[i];
		snprintf(le, sizeof le, "%g", bounds[i]);
		hf_prom_sample(b, bucket, l, 2, (double)cum);
	}
	const char *l[] = { "model", model, "le", "+Inf" };
	hf_prom_sample(b, bucket, l, 2, (double)count);
	const char *lm[] = { "model", model };
	snprintf(n2, sizeof n2, "%s_sum", name);
	hf_prom_sample(b, n2, lm, 1, sum);
	snprintf(n2, sizeof n2, "%s_count", name);
	hf_prom_sample(b, n2, lm, 1, (double)count);
}

static void counter_families(hf_infer *s, hf_buf *b)
{
	size_t n = atomic_load(&s->ncounters);

	hf_prom_family(b, "hashflop_infer_requests_total", "counter",
		       "Inference requests answered, by model and HTTP status.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < HF_IC_COUNT; k++) {
			const char *l[] = { "model", s->counters[i].name, "code", code_names[k] };
			hf_prom_sample(b, "hashflop_infer_requests_total", l, 2,
				       (double)atomic_load(&s->counters[i].codes[k]));
		}
	hf_prom_family(b, "hashflop_infer_failures_total", "counter",
		       "Inference requests that failed, by model and reason.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < HF_IF_COUNT; k++) {
			const char *l[] = { "model", s->counters[i].name, "reason", fail_names[k] };
			hf_prom_sample(b, "hashflop_infer_failures_total", l, 2,
				       (double)atomic_load(&s->counters[i].fails[k]));
		}
	hf_prom_family(b, "hashflop_infer_unknown_model_requests_total", "counter",
		       "Requests for a model the server does not have (404).");
	hf_prom_sample(b, "hashflop_infer_unknown_model_requests_total", NULL, 0,
		       (double)atomic_load(&s->unknown_model_total));
}

static void run_families(hf_infer_run *run, hf_buf *b)
{
	static const char *const fams[][3] = {
		{ "hashflop_infer_model_state", "gauge", "1 for the state each model is in." },
		{ "hashflop_infer_queue_depth", "gauge", "Requests queued per model." },
		{ "hashflop_infer_instances_ready", "gauge", "Model instances running batches." },
		{ "hashflop_infer_inferences_per_second", "gauge",
		  "Items (batch rows) computed per second, over the last 5 s." },
		{ "hashflop_infer_batch_size", "histogram", "Items per executed batch." },
		{ "hashflop_infer_queue_time_seconds", "histogram",
		  "Time from a request's arrival in the queue to the start of its batch." },
		{ "hashflop_infer_compute_time_seconds", "histogram", "Executor time per batch." },
	};
	double size_bounds[HF_BATCHER_SIZE_BUCKETS];
	hf_batcher_stats st[HF_MODEL_REPO_MAX];

	for (size_t k = 0; k < HF_BATCHER_SIZE_BUCKETS; k++)
		size_bounds[k] = (double)(1u << k);
	for (size_t i = 0; i < run->n; i++) {
		memset(&st[i], 0, sizeof st[i]);
		if (run->slots[i].b)
			hf_batcher_stats_get(run->slots[i].b, &st[i]);
	}
	for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
		hf_prom_family(b, fams[f][0], fams[f][1], fams[f][2]);
		for (size_t i = 0; i < run->n; i++) {
			const char *name = run->slots[i].m->name;
			const char *l[] = { "model", name, "state", NULL };
			const hf_batcher_stats *x = &st[i];
			switch (f) {
			case 0:
				for (int k = 0; k < 3; k++) {
					l[3] = slot_state_names[k];
					hf_prom_sample(b, fams[f][0], l, 2,
						       atomic_load(&run->slots[i].state) == (hf_slot_state)k);
				}
				break;
			case 1: hf_prom_sample(b, fams[f][0], l, 1, (double)x->queue_depth); break;
			case 2: hf_prom_sample(b, fams[f][0], l, 1, (double)x->instances_ready); break;
			case 3: hf_prom_sample(b, fams[f][0], l, 1, x->items_per_second); break;
			case 4:
				histogram(b, fams[f][0], name, size_bounds, x->batch_size,
					  HF_BATCHER_SIZE_BUCKETS, x->batches_total, (double)x->items_total);
				break;
			case 5:
				histogram(b, fams[f][0], name, hf_batcher_time_bounds, x->queue_time.bucket,
					  HF_BATCHER_TIME_BUCKETS, x->queue_time.count, x->queue_time.sum);
				break;
			default:
				histogram(b, fams[f][0], name, hf_batcher_time_bounds,
					  x->compute_time.bucket, HF_BATCHER_TIME_BUCKETS,
					  x->compute_time.count, x->compute_time.sum);
				break;
			}
		}
	}
}

void hf_infer_write_metrics(hf_infer *s, hf_buf *b)
{
	hf_infer_state cur = atomic_load(&s->state);
	hf_httpd_stats hs;

	hf_prom_family(b, "hashflop_infer_state", "gauge",
		       "1 for the state the inference server is in.");
	for (int k = HF_INFER_STOPPED; k <= HF_INFER_DRAINING; k++) {
		const char *l[] = { "state", hf_infer_state_name((hf_infer_state)k) };
		hf_prom_sample(b, "hashflop_infer_state", l, 1, cur == (hf_infer_state)k);
	}
	hf_httpd_get_stats(s->httpd, &hs);
	hf_prom_family(b, "hashflop_infer_connections", "gauge",
		       "Connections open on the inference listener.");
	hf_prom_sample(b, "hashflop_infer_connections", NULL, 0, (double)hs.connections);
	hf_prom_family(b, "hashflop_infer_deferred_requests", "gauge",
		       "Inference requests waiting for their batch.");
	hf_prom_sample(b, "hashflop_infer_deferred_requests", NULL, 0, (double)hs.deferred);
	counter_families(s, b);
	pthread_rwlock_rdlock(&s->run_lock);
	if (s->run)
		run_families(s->run, b);
	pthread_rwlock_unlock(&s->run_lock);
}
