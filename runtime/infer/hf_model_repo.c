/* hf_model_repo: scanning and loading a model repository (see hf_model_repo.h).
 * Invariants: entries are filled once, in load order; a loaded entry owns its hf_st and the
 * hf_graph that points into it; every reason is cleaned text.
 * Threading: built on the caller's thread, read-only afterwards.
 */
#include "hf_model_repo.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_config.h"
#include "hf_text.h"
#include "hf_util.h"

typedef struct entry {
	hf_model m;
	hf_st *st;
	hf_graph *g;
} entry;

struct hf_model_repo {
	entry e[HF_MODEL_REPO_MAX];
	size_t n, nloaded;
	uint64_t used;
	char problem[HF_ERRBUF_SIZE];
};

int hf_model_config_from_json(hf_model_config *cfg, const json_t *obj, const char *path,
			      hf_errbuf *eb)
{
	hf_model_config c = *cfg;
	hf_cfg_field f[] = {
		{ .key = "max_batch_size", .type = HF_CFG_UINT, .dst = &c.max_batch_size, .min = 1,
		  .max = 4096 },
		{ .key = "max_queue_delay_us", .type = HF_CFG_UINT, .dst = &c.max_queue_delay_us,
		  .min = 0, .max = 1000000 },
		{ .key = "instances", .type = HF_CFG_UINT, .dst = &c.instances, .min = 1, .max = 16 },
		{ .key = "max_queue", .type = HF_CFG_UINT, .dst = &c.max_queue, .min = 1, .max = 1000000 },
		{ .key = "request_timeout_ms", .type = HF_CFG_UINT, .dst = &c.request_timeout_ms,
		  .min = 1, .max = 3600000 },
	};
	int r = hf_cfg_read(obj, path, f, HF_ARRAY_SIZE(f), eb);

	if (r < 0)
		return r;
	*cfg = c;
	return 0;
}

static void set_reason(entry *e, const char *prefix, const char *detail)
{
	char raw[HF_ERRBUF_SIZE * 2];

	snprintf(raw, sizeof raw, "%s%s", prefix, detail);
	hf_text_clean(e->m.reason, sizeof e->m.reason, raw, strlen(raw));
}

/* NAME/config.json on top of the defaults; a missing file is fine. */
static int load_config(entry *e, const char *mdir, hf_errbuf *eb)
{
	char path[PATH_MAX + 16];
	struct stat sb;
	json_t *root = NULL;
	int r;

	snprintf(path, sizeof path, "%s/config.json", mdir);
	if (stat(path, &sb) != 0 && errno == ENOENT)
		return 0;
	if ((r = hf_cfg_load_file(path, HF_MODEL_CONFIG_MAX_FILE, &root, eb)) < 0)
		return r;
	r = hf_model_config_from_json(&e->m.cfg, root, "", eb);
	json_decref(root);
	return r;
}

/* Each model input and output as served must be FP32. */
static int check_io(const hf_graph *g, hf_errbuf *eb)
{
	for (size_t i = 0; i < hf_graph_ninputs(g); i++) {
		const hf_graph_io *io = hf_graph_input(g, i);
		if (strcmp(io->datatype, "FP32") != 0)
			return hf_fail(eb, HF_EUNSUPPORTED, "input \"%s\" has datatype %s: only FP32 "
				       "is served", hf_graph_value_at(g, (size_t)io->value)->name,
				       io->datatype);
	}
	for (size_t i = 0; i < hf_graph_noutputs(g); i++) {
		const hf_graph_io *io = hf_graph_output(g, i);
		if (strcmp(io->datatype, "FP32") != 0)
			return hf_fail(eb, HF_EUNSUPPORTED, "output \"%s\" has datatype %s: only FP32 "
				       "is served", hf_graph_value_at(g, (size_t)io->value)->name,
				       io->datatype);
	}
	return 0;
}

static uint64_t estimate(const hf_graph *g, const hf_model_config *c)
{
	uint64_t per_sample = 0;

	for (size_t i = 0; i < hf_graph_nvalues(g); i++)
		per_sample += hf_graph_value_at(g, i)->per_sample;
	return c->instances * (hf_graph_weight_bytes(g) + 4u * c->max_batch_size * per_sample);
}

/* Loads one model directory into e (e->m.name set). */
static void load_model(hf_model_repo *repo, entry *e, const char *dir, uint64_t budget)
{
	char mdir[PATH_MAX], path[PATH_MAX + 32];
	hf_errbuf eb;
	uint64_t need;

	hf_errbuf_clear(&eb);
	snprintf(mdir, sizeof mdir, "%s/%s", dir, e->m.name);
	if (load_config(e, mdir, &eb) < 0) {
		set_reason(e, "config.json: ", eb.msg);
		return;
	}
	snprintf(path, sizeof path, "%s/model.safetensors", mdir);
	if (hf_st_open(path, NULL, &e->st, &eb) < 0) {
		set_reason(e, "", eb.msg);
		return;
	}
	if (hf_graph_new(e->st, &e->g, &eb) < 0 || check_io(e->g, &eb) < 0) {
		set_reason(e, "model.safetensors: graph: ", eb.msg);
		goto unload;
	}
	need = estimate(e->g, &e->m.cfg);
	if (budget && repo->used + need > budget) {
		char d[160];
		snprintf(d, sizeof d, "needs %.1f MiB (instances x (weights + activations for "
			 "max_batch_size %llu)), %.1f of the %.1f MiB left",
			 (double)need / 1048576.0, (unsigned long long)e->m.cfg.max_batch_size,
			 (double)(budget - repo->used) / 1048576.0, (double)budget / 1048576.0);
		set_reason(e, "over the memory budget: ", d);
		goto unload;
	}
	repo->used += need;
	repo->nloaded++;
	e->m.loaded = true;
	e->m.graph = e->g;
	e->m.weight_bytes = hf_graph_weight_bytes(e->g);
	e->m.memory_bytes = need;
	return;
unload:
	hf_graph_free(e->g);
	hf_st_free(e->st);
	e->g = NULL;
	e->st = NULL;
}

static entry *add_entry(hf_model_repo *r, const char *raw_name, const hf_model_config *defaults)
{
	entry *e;

	if (r->n >= HF_MODEL_REPO_MAX) {
		snprintf(r->problem, sizeof r->problem, "more than %d models: the rest are ignored",
			 HF_MODEL_REPO_MAX);
		return NULL;
	}
	e = &r->e[r->n++];
	hf_text_clean(e->m.name, sizeof e->m.name, raw_name, strlen(raw_name));
	e->m.cfg = *defaults;
	return e;
}

static bool is_dir(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat sb;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void scan_all(hf_model_repo *r, const hf_model_repo_opts *o)
{
	struct dirent **list = NULL;
	int n = scandir(o->dir, &list, NULL, alphasort);

	if (n < 0) {
		char raw[PATH_MAX + 64];
		snprintf(raw, sizeof raw, "model_dir %s: %s", o->dir, strerror(errno));
		hf_text_clean(r->problem, sizeof r->problem, raw, strlen(raw));
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		entry *e;
		if (name[0] == '.' || !is_dir(o->dir, name))
			continue;
		if (!(e = add_entry(r, name, o->defaults)))
			break;
		if (!hf_id_valid(name))
			set_reason(e, "", "invalid model name: expected 1-63 characters of A-Z a-z "
				   "0-9 . _ - starting with a letter or digit");
		else
			load_model(r, e, o->dir, o->budget_bytes);
	}
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void load_named(hf_model_repo *r, const hf_model_repo_opts *o)
{
	for (size_t i = 0; i < o->nnames; i++) {
		entry *e = add_entry(r, o->names[i], o->defaults);
		if (!e)
			return;
		if (!hf_id_valid(o->names[i]))
			set_reason(e, "", "invalid model name");
		else if (!is_dir(o->dir, o->names[i]))
			set_reason(e, "not found in model_dir ", o->dir);
		else
			load_model(r, e, o->dir, o->budget_bytes);
	}
}

int hf_model_repo_load(const hf_model_repo_opts *opts, hf_model_repo **out, hf_errbuf *eb)
{
	hf_model_repo *r;

	*out = NULL;
	if (!opts || !opts->dir || !opts->defaults)
		return hf_fail(eb, HF_EINVAL, "model repository: dir and defaults are required");
	r = calloc(1, sizeof *r);
	if (!r)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if (opts->names)
		load_named(r, opts);
	else
		scan_all(r, opts);
	*out = r;
	return 0;
}

void hf_model_repo_free(hf_model_repo *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		hf_graph_free(r->e[i].g);
		hf_st_free(r->e[i].st);
	}
	free(r);
}

size_t hf_model_repo_count(const hf_model_repo *r)
{
	return r->n;
}

const hf_model *hf_model_repo_at(const hf_model_repo *r, size_t i)
{
	return i < r->n ? &r->e[i].m : NULL;
}

const hf_model *hf_model_repo_find(const hf_model_repo *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->e[i].m.name, name) == 0)
			return &r->e[i].m;
	return NULL;
}

size_t hf_model_repo_loaded(const hf_model_repo *r)
{
	return r->nloaded;
}

uint64_t hf_model_repo_memory_bytes(const hf_model_repo *r)
{
	return r->used;
}

const char *hf_model_repo_problem(const hf_model_repo *r)
{
	return r->problem;
}
