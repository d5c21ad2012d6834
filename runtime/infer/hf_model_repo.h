/* hf_model_repo: the model repository of a node: a directory of NAME/model.safetensors (with
 * the layer graph in its metadata) and an optional NAME/config.json, loaded within a memory
 * budget. A model that fails to load stays listed with its reason; loading never fails because
 * of one model.
 *
 * Layout: <dir>/NAME/model.safetensors, <dir>/NAME/config.json (optional). NAME is 1-63
 * characters of A-Z a-z 0-9 . _ - starting with a letter or digit (hf_id_valid); a directory
 * with another name is listed as failed under its cleaned name; entries starting with '.' and
 * plain files are skipped; at most HF_MODEL_REPO_MAX directories are looked at (in name order).
 * config.json (strict, every key optional, defaults from the node's inference section):
 *   {"max_batch_size": 1..4096, "max_queue_delay_us": 0..1000000, "instances": 1..16,
 *    "max_queue": 1..1000000, "request_timeout_ms": 1..3600000}
 * Memory: each model's estimate is instances x (its weight bytes as stored + 4 bytes x
 * max_batch_size x the elements per sample of every graph value, i.e. the activations the
 * executor allocates once); models are admitted in order while the sum fits the budget, the
 * rest fail with "over the memory budget".
 * Failure reasons (each names the file, tensor, op or key, cleaned with hf_text_clean):
 * invalid name, no model.safetensors, unreadable or malformed safetensors (hf_st_open's
 * words), a missing or invalid graph (hf_graph_new's words), a config.json error
 * ("config.json: max_batch_size: ..."), a model input or output that is not FP32, over the
 * memory budget, not found (a model asked for by name that has no directory).
 * Threading: a repository is immutable after hf_model_repo_load; any thread may read it while
 * it lives; the owner frees it once nobody reads it.
 */
#ifndef HF_MODEL_REPO_H
#define HF_MODEL_REPO_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_graph.h"
#include "hf_safetensors.h"

#define HF_MODEL_REPO_MAX 64
#define HF_MODEL_NAME_MAX 64   /* with the NUL */
#define HF_MODEL_CONFIG_MAX_FILE (64u * 1024u)

/* A model's batching settings (config.json on top of the node's defaults). */
typedef struct hf_model_config {
	uint64_t max_batch_size;
	uint64_t max_queue_delay_us;
	uint64_t instances;
	uint64_t max_queue;
	uint64_t request_timeout_ms;
} hf_model_config;

/* Validates a config.json object on top of *cfg (path prefixes messages); *cfg is changed only
 * when it all validates. */
int hf_model_config_from_json(hf_model_config *cfg, const json_t *obj, const char *path,
			      hf_errbuf *eb);

typedef struct hf_model {
	char name[HF_MODEL_NAME_MAX];
	bool loaded;
	char reason[HF_ERRBUF_SIZE];   /* why it did not load ("" when loaded) */
	hf_model_config cfg;
	const hf_graph *graph;         /* NULL unless loaded */
	uint64_t weight_bytes;         /* as stored (0 unless loaded) */
	uint64_t memory_bytes;         /* the estimate counted against the budget */
} hf_model;

typedef struct hf_model_repo_opts {
	const char *dir;
	uint64_t budget_bytes;         /* 0: no budget */
	const hf_model_config *defaults;
	const char (*names)[64];       /* only these models (in this order); NULL: every one */
	size_t nnames;
} hf_model_repo_opts;

typedef struct hf_model_repo hf_model_repo;

/* Scans and loads. Fails only for HF_ENOMEM or a bad argument: a missing or unreadable
 * directory gives an empty repository whose problem says why. */
int hf_model_repo_load(const hf_model_repo_opts *opts, hf_model_repo **out, hf_errbuf *eb);
void hf_model_repo_free(hf_model_repo *r);

size_t hf_model_repo_count(const hf_model_repo *r);
const hf_model *hf_model_repo_at(const hf_model_repo *r, size_t i);
/* The entry named name (loaded or not), or NULL. */
const hf_model *hf_model_repo_find(const hf_model_repo *r, const char *name);
size_t hf_model_repo_loaded(const hf_model_repo *r);
/* Sum of the loaded models' estimates. */
uint64_t hf_model_repo_memory_bytes(const hf_model_repo *r);
/* "" or what kept the directory from being read ("model_dir /x: No such file or directory"). */
const char *hf_model_repo_problem(const hf_model_repo *r);

#endif
