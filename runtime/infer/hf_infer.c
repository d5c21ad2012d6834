/* hf_infer: the inference server's lifecycle: the listener for the object's life, and runs
 * (start: repository + one batcher per loaded model; drain; release).
 * Invariants: state STOPPED <=> run == NULL (LOADING publishes the run before its batchers
 * start); a run leaves s->run under the write lock before its batchers are freed, so no
 * handler can reach a freed batcher; counters outlive runs (keyed by model name).
 * Threading: see hf_infer.h and hf_infer_priv.h. The run lock prefers writers, so a stream of
 * requests cannot hold a release off.
 */
#include "hf_infer_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_cl.h"
#include "hf_text.h"
#include "hf_util.h"

const char *hf_infer_state_name(hf_infer_state st)
{
	switch (st) {
	case HF_INFER_STOPPED: return "stopped";
	case HF_INFER_LOADING: return "loading";
	case HF_INFER_READY: return "ready";
	case HF_INFER_DRAINING: return "draining";
	}
	return "unknown";
}

int hf_infer_new(const hf_infer_config *cfg, hf_infer **out, hf_errbuf *eb)
{
	hf_httpd_opts ho = { .host = cfg->listen, .port = cfg->port, .max_body = cfg->max_body,
			     .max_conns = (unsigned)cfg->max_conns,
			     .max_conns_per_ip = (unsigned)cfg->max_conns_per_client,
			     .header_timeout_s = (unsigned)cfg->header_timeout_s,
			     .timeout_s = (unsigned)cfg->timeout_s, .threads = (unsigned)cfg->threads };
	pthread_rwlockattr_t ra;
	hf_infer *s;
	int r;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	s->cfg = *cfg;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->run_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&s->counters_lock, NULL);
	pthread_mutex_init(&s->work_lock, NULL);
	atomic_store(&s->state, HF_INFER_STOPPED);
	r = hf_httpd_new(&ho, hf_infer_routes, hf_infer_nroutes, s, &s->httpd, eb);
	if (r < 0) {
		hf_fail_prefix(eb, r, "inference listener %s:%u", cfg->listen, (unsigned)cfg->port);
		hf_infer_free(s);
		return r;
	}
	*out = s;
	return 0;
}

uint16_t hf_infer_port(const hf_infer *s)
{
	return hf_httpd_port(s->httpd);
}

hf_infer_slot *hf_infer_find_slot(hf_infer *s, const char *name)
{
	hf_infer_run *run = s->run;

	if (!run)
		return NULL;
	for (size_t i = 0; i < run->n; i++)
		if (strcmp(run->slots[i].m->name, name) == 0)
			return &run->slots[i];
	return NULL;
}

void hf_infer_count(hf_infer_counters *c, int status)
{
	hf_infer_code k;

	if (!c)
		return;
	switch (status) {
	case 200: k = HF_IC_200; break;
	case 400: k = HF_IC_400; break;
	case 404: k = HF_IC_404; break;
	case 413: k = HF_IC_413; break;
	case 503: k = HF_IC_503; break;
	default: k = HF_IC_500; break;
	}
	atomic_fetch_add(&c->codes[k], 1);
}

void hf_infer_count_fail(hf_infer_counters *c, hf_infer_fail why)
{
	if (c && (unsigned)why < HF_IF_COUNT)
		atomic_fetch_add(&c->fails[why], 1);
}

/* The counters of model name, made on first use (switcher thread only); NULL when full. */
static hf_infer_counters *counters_for(hf_infer *s, const char *name)
{
	hf_infer_counters *c = NULL;
	size_t n;

	pthread_mutex_lock(&s->counters_lock);
	n = atomic_load(&s->ncounters);
	for (size_t i = 0; i < n && !c; i++)
		if (strcmp(s->counters[i].name, name) == 0)
			c = &s->counters[i];
	if (!c && n < HF_MODEL_REPO_MAX) {
		c = &s->counters[n];
		hf_strlcpy(c->name, name, sizeof c->name);
		atomic_store(&s->ncounters, n + 1);
	}
	pthread_mutex_unlock(&s->counters_lock);
	return c;
}

/* params: NULL or {"models": [names]} (the instruction's inference section). */
static int read_params(const hf_infer *s, const json_t *params, char (*names)[64],
		       size_t *n, hf_errbuf *eb)
{
	const json_t *arr;
	const char *key;
	json_t *v;
	size_t i;

	*n = s->cfg.nmodels;
	memcpy(names, s->cfg.models, sizeof s->cfg.models);
	if (!params || json_is_null(params))
		return 0;
	if (!json_is_object(params))
		return hf_fail(eb, HF_ECONFIG, "inference parameters: expected an object");
	json_object_foreach((json_t *)params, key, v)
		if (strcmp(key, "models") != 0)
			return hf_fail(eb, HF_ECONFIG, "inference parameters: unknown key (expected "
				       "models)");
	arr = json_object_get(params, "models");
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > 16)
		return hf_fail(eb, HF_ECONFIG, "inference.models: expected an array of at most 16 "
			       "model names");
	json_array_foreach(arr, i, v) {
		const char *name = json_string_value(v);
		if (!name || !hf_id_valid(name))
			return hf_fail(eb, HF_ECONFIG, "inference.models[%zu]: expected a model name", i);
		hf_strlcpy(names[i], name, 64);
	}
	*n = json_array_size(arr);
	return 0;
}

static void run_free(hf_infer_run *run)
{
	if (!run)
		return;
	for (size_t i = 0; i < run->n; i++)
		hf_batcher_free(run->slots[i].b);
	hf_model_repo_free(run->repo);
	free(run);
}

/* Starts the batcher of one loaded model (its instances open the device and warm up). */
static void start_slot(hf_infer *s, hf_infer_slot *slot)
{
	const hf_model_config *mc = &slot->m->cfg;
	hf_batcher_opts bo = { .max_batch = (size_t)mc->max_batch_size,
			       .max_delay_us = mc->max_queue_delay_us,
			       .max_queue = (size_t)mc->max_queue,
			       .timeout_ms = mc->request_timeout_ms,
			       .instances = (unsigned)mc->instances };
	hf_batcher_ops ops = { .ctx = slot, .open = hf_infer_exec_open, .run = hf_infer_exec_run,
			       .close = hf_infer_exec_close, .done = hf_infer_answer };
	hf_batcher *b = NULL;
	hf_errbuf eb;
	int r;
	uint64_t t0 = hf_mono_ms();

	hf_errbuf_clear(&eb);
	r = hf_batcher_new(&bo, &ops, &b, &eb);
	slot->start_ms = hf_mono_ms() - t0;
	if (r < 0) {
		pthread_rwlock_wrlock(&s->run_lock);
		hf_text_clean(slot->reason, sizeof slot->reason, eb.msg, strlen(eb.msg));
		atomic_store(&slot->state, HF_SLOT_FAILED);
		pthread_rwlock_unlock(&s->run_lock);
		return;
	}
	pthread_rwlock_wrlock(&s->run_lock);
	slot->b = b;
	atomic_store(&slot->state, HF_SLOT_READY);
	pthread_rwlock_unlock(&s->run_lock);
}

static int make_run(hf_infer *s, const char (*names)[64], size_t nnames, hf_infer_run **out,
		    hf_errbuf *eb)
{
	hf_model_config defaults = { .max_batch_size = s->cfg.max_batch_size,
				     .max_queue_delay_us = s->cfg.max_queue_delay_us,
				     .instances = s->cfg.instances, .max_queue = s->cfg.max_queue,
				     .request_timeout_ms = s->cfg.request_timeout_ms };
	hf_model_repo_opts ro = { .dir = s->cfg.model_dir, .budget_bytes = s->cfg.memory_budget_mb << 20,
				  .defaults = &defaults, .names = nnames ? names : NULL,
				  .nnames = nnames };
	hf_infer_run *run = calloc(1, sizeof *run);
	int r;

	*out = NULL;
	if (!run)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if ((r = hf_model_repo_load(&ro, &run->repo, eb)) < 0) {
		free(run);
		return r;
	}
	run->n = hf_model_repo_count(run->repo);
	for (size_t i = 0; i < run->n; i++) {
		hf_infer_slot *slot = &run->slots[i];
		slot->s = s;
		slot->m = hf_model_repo_at(run->repo, i);
		slot->cnt = counters_for(s, slot->m->name);
		slot->flops_per_item = slot->m->graph ? hf_graph_work_flops_per_sample(slot->m->graph) : 0;
		atomic_store(&slot->state, slot->m->loaded ? HF_SLOT_LOADING : HF_SLOT_FAILED);
		hf_strlcpy(slot->reason, slot->m->reason, sizeof slot->reason);
	}
	*out = run;
	return 0;
}

static int start_fail(hf_infer *s, hf_infer_run *run, int r, hf_errbuf *eb)
{
	pthread_rwlock_wrlock(&s->run_lock);
	s->run = NULL;
	atomic_store(&s->state, HF_INFER_STOPPED);
	hf_text_clean(s->last_error, sizeof s->last_error, eb ? eb->msg : "", eb ? strlen(eb->msg) : 0);
	pthread_rwlock_unlock(&s->run_lock);
	run_free(run);
	return r;
}

int hf_infer_start(hf_infer *s, const json_t *params, hf_errbuf *eb)
{
	char names[16][64];
	hf_cl_device_info dev;
	stack_t alt;
	hf_infer_run *run = NULL;
	size_t nnames = 0, serving = 0;
	uint64_t t0, t1;
	int r;

	if (atomic_load(&s->state) != HF_INFER_STOPPED)
		return hf_fail(eb, HF_ESTATE, "inference: already started (%s)",
			       hf_infer_state_name(atomic_load(&s->state)));
	if ((r = read_params(s, params, names, &nnames, eb)) < 0)
		return r;
	atomic_store(&s->state, HF_INFER_LOADING);
	t0 = hf_mono_ms();
	hf_infer_altstack_save(&alt);
	r = hf_cl_find(s->cfg.device, &dev, eb);
	hf_infer_altstack_restore(&alt);
	if (r < 0) {
		hf_fail_prefix(eb, r, "inference.device \"%s\"", s->cfg.device);
		return start_fail(s, NULL, r, eb);
	}
	t1 = hf_mono_ms();
	if ((r = make_run(s, (const char (*)[64])names, nnames, &run, eb)) < 0)
		return start_fail(s, NULL, r, eb);
	run->device_ms = t1 - t0;
	run->load_ms = hf_mono_ms() - t1;
	pthread_rwlock_wrlock(&s->run_lock);
	s->run = run;
	pthread_rwlock_unlock(&s->run_lock);
	for (size_t i = 0; i < run->n; i++)
		if (atomic_load(&run->slots[i].state) == HF_SLOT_LOADING) {
			start_slot(s, &run->slots[i]);
			serving += atomic_load(&run->slots[i].state) == HF_SLOT_READY;
		}
	if (nnames && !serving) {
		const hf_infer_slot *f = run->n ? &run->slots[0] : NULL;
		r = hf_fail(eb, HF_ENOTFOUND, "inference: none of the %zu model(s) asked for could be "
			    "served%s%s%s%s", nnames, f ? " (" : "", f ? f->m->name : "",
			    f ? ": " : "", f ? f->reason : "");
		if (f)
			hf_strlcpy(eb->msg + strlen(eb->msg), ")", sizeof eb->msg - strlen(eb->msg));
		return start_fail(s, run, r, eb);
	}
	pthread_rwlock_wrlock(&s->run_lock);
	s->last_error[0] = '\0';
	atomic_store(&s->state, HF_INFER_READY);
	pthread_rwlock_unlock(&s->run_lock);
	return 0;
}

int hf_infer_drain(hf_infer *s, uint64_t deadline_ms, hf_errbuf *eb)
{
	hf_infer_run *run;
	int r = 0;

	pthread_rwlock_wrlock(&s->run_lock);
	run = s->run;
	if (run)
		atomic_store(&s->state, HF_INFER_DRAINING);
	pthread_rwlock_unlock(&s->run_lock);
	if (!run)
		return 0;
	/* Only this thread frees the run (release), so it can be used without the lock. */
	for (size_t i = 0; i < run->n; i++) {
		hf_errbuf e2;
		if (run->slots[i].b && hf_batcher_drain(run->slots[i].b, deadline_ms, &e2) < 0 && !r)
			r = hf_fail(eb, HF_ETIMEOUT, "model %s: %s", run->slots[i].m->name, e2.msg);
	}
	return r;
}

void hf_infer_release(hf_infer *s)
{
	hf_infer_run *run;

	pthread_rwlock_wrlock(&s->run_lock);
	run = s->run;
	s->run = NULL;
	atomic_store(&s->state, HF_INFER_STOPPED);
	pthread_rwlock_unlock(&s->run_lock);
	run_free(run);
}

int hf_infer_health(hf_infer *s, hf_errbuf *eb)
{
	hf_batcher *last = NULL;
	size_t serving = 0;
	int r = 0;

	pthread_rwlock_rdlock(&s->run_lock);
	if (s->run && atomic_load(&s->state) == HF_INFER_READY) {
		for (size_t i = 0; i < s->run->n; i++) {
			hf_batcher *b = s->run->slots[i].b;
			if (!b)
				continue;
			last = b;
			serving += hf_batcher_serving(b);
		}
		if (last && !serving) {
			hf_batcher_stats st;
			hf_batcher_stats_get(last, &st);
			r = hf_fail(eb, HF_ECL, "inference: every instance of every model failed "
				    "(last: %s)", st.last_error);
		}
	}
	pthread_rwlock_unlock(&s->run_lock);
	return r;
}

void hf_infer_status_json(hf_infer *s, json_t *obj)
{
	hf_infer_write_status(s, obj);
}

void hf_infer_work_add(hf_infer_slot *slot, size_t items)
{
	hf_infer *s = slot->s;

	pthread_mutex_lock(&s->work_lock);
	s->work_inferences += items;
	s->work_flops += slot->flops_per_item * (double)items;
	pthread_mutex_unlock(&s->work_lock);
}

void hf_infer_work(hf_infer *s, uint64_t *inferences, double *flops)
{
	pthread_mutex_lock(&s->work_lock);
	*inferences = s->work_inferences;
	*flops = s->work_flops;
	pthread_mutex_unlock(&s->work_lock);
}

void hf_infer_metrics(hf_infer *s, hf_buf *b)
{
	hf_infer_write_metrics(s, b);
}

void hf_infer_free(hf_infer *s)
{
	if (!s)
		return;
	if (atomic_load(&s->state) != HF_INFER_STOPPED) {
		hf_infer_drain(s, hf_mono_ms(), NULL);
		hf_infer_release(s);
	}
	hf_httpd_free(s->httpd);
	pthread_mutex_destroy(&s->counters_lock);
	pthread_mutex_destroy(&s->work_lock);
	pthread_rwlock_destroy(&s->run_lock);
	free(s);
}
