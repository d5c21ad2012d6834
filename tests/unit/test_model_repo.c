/* Tests of hf_model_repo: a repository on disk with good and broken models (each failure
 * named: name, missing file, malformed safetensors, missing or invalid graph, config.json
 * errors, the memory budget, a model asked for that is not there), config.json applied on top
 * of the defaults, and an unreadable model_dir giving an empty repository with the reason.
 */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_model_repo.h"
#include "st_testutil.h"

static char root[64];

static const float w1[6] = { 1, 0, -1, 1, 1, 1 }, b1[3] = { 0, 0, -4 };
static const float w2[6] = { 1, 1, 5, 1, -1, 5 }, b2[2] = { 0, 0.5f };
static const st_spec mlp[] = { { "fc1.weight", 2, { 3, 2 }, w1, NULL },
			       { "fc1.bias", 1, { 3 }, b1, NULL },
			       { "fc2.weight", 2, { 2, 3 }, w2, NULL },
			       { "fc2.bias", 1, { 2 }, b2, NULL } };
#define GRAPH_HEAD "{\"version\":1,\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\"," \
	"\"shape\":[-1,2]}],\"outputs\":[{\"name\":\"probs\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
static const char *graph = GRAPH_HEAD
	"\"ops\":[{\"op\":\"linear\",\"inputs\":[\"input\"],\"outputs\":[\"h1\"],"
	"\"weight\":\"fc1.weight\",\"bias\":\"fc1.bias\"},"
	"{\"op\":\"relu\",\"inputs\":[\"h1\"],\"outputs\":[\"a1\"]},"
	"{\"op\":\"linear\",\"inputs\":[\"a1\"],\"outputs\":[\"logits\"],"
	"\"weight\":\"fc2.weight\",\"bias\":\"fc2.bias\"},"
	"{\"op\":\"softmax\",\"inputs\":[\"logits\"],\"outputs\":[\"probs\"]}]}";
/* weights 4 x (6 + 3 + 6 + 2) bytes; values per sample 2 + 3 + 3 + 2 + 2 */
#define MLP_WEIGHTS 68u
#define MLP_PER_SAMPLE 12u

static void write_file(const char *model, const char *file, const void *data, size_t len)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", root, model);
	mkdir(p, 0700);
	if (!file)
		return;
	snprintf(p, sizeof p, "%s/%s/%s", root, model, file);
	FILE *f = fopen(p, "wb");
	cr_assert_not_null(f, "%s", p);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void write_model(const char *model, const char *g)
{
	size_t len;
	uint8_t *img = st_build(mlp, 4, g, &len);
	cr_assert_not_null(img);
	write_file(model, "model.safetensors", img, len);
	free(img);
}

static void write_text(const char *model, const char *file, const char *text)
{
	write_file(model, file, text, strlen(text));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/hf_test_repo.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(model_repo, .init = setup, .fini = teardown);

static const hf_model_config defaults = { .max_batch_size = 32, .max_queue_delay_us = 500,
					  .instances = 1, .max_queue = 1024,
					  .request_timeout_ms = 10000 };

static hf_model_repo *load(uint64_t budget, const char (*names)[64], size_t nnames)
{
	hf_model_repo_opts o = { .dir = root, .budget_bytes = budget, .defaults = &defaults,
				 .names = names, .nnames = nnames };
	hf_model_repo *r = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_model_repo_load(&o, &r, &eb), 0, "%s", eb.msg);
	return r;
}

static void expect_failed(const hf_model_repo *r, const char *name, const char *want1,
			  const char *want2)
{
	const hf_model *m = hf_model_repo_find(r, name);
	cr_assert_not_null(m, "model %s not listed", name);
	cr_expect(!m->loaded, "model %s loaded", name);
	cr_expect_null(m->graph);
	cr_expect(strstr(m->reason, want1), "%s: reason \"%s\" lacks \"%s\"", name, m->reason, want1);
	if (want2)
		cr_expect(strstr(m->reason, want2), "%s: reason \"%s\" lacks \"%s\"", name, m->reason,
			  want2);
}

Test(model_repo, a_good_model_loads_with_its_config)
{
	write_model("mlp", graph);
	write_model("tuned", graph);
	write_text("tuned", "config.json", "{\"max_batch_size\": 8, \"max_queue_delay_us\": 0, "
		   "\"instances\": 2, \"max_queue\": 5, \"request_timeout_ms\": 7}");
	hf_model_repo *r = load(0, NULL, 0);
	cr_assert_eq(hf_model_repo_count(r), 2);
	cr_assert_eq(hf_model_repo_loaded(r), 2);
	cr_assert_str_eq(hf_model_repo_problem(r), "");
	const hf_model *m = hf_model_repo_at(r, 0);
	cr_assert_str_eq(m->name, "mlp"); /* name order */
	cr_assert(m->loaded, "%s", m->reason);
	cr_assert_str_eq(m->reason, "");
	cr_assert_not_null(m->graph);
	cr_assert_eq(hf_graph_find_input(m->graph, "input"), 0);
	cr_assert_eq(m->cfg.max_batch_size, 32);
	cr_assert_eq(m->weight_bytes, MLP_WEIGHTS);
	cr_assert_eq(m->memory_bytes, MLP_WEIGHTS + 4u * 32 * MLP_PER_SAMPLE);
	const hf_model *t = hf_model_repo_find(r, "tuned");
	cr_assert(t->loaded, "%s", t->reason);
	cr_assert_eq(t->cfg.max_batch_size, 8);
	cr_assert_eq(t->cfg.max_queue_delay_us, 0);
	cr_assert_eq(t->cfg.instances, 2);
	cr_assert_eq(t->cfg.max_queue, 5);
	cr_assert_eq(t->cfg.request_timeout_ms, 7);
	cr_assert_eq(t->memory_bytes, 2 * (MLP_WEIGHTS + 4u * 8 * MLP_PER_SAMPLE));
	cr_assert_eq(hf_model_repo_memory_bytes(r), m->memory_bytes + t->memory_bytes);
	hf_model_repo_free(r);
}

Test(model_repo, each_broken_model_is_kept_with_its_reason)
{
	write_model("good", graph);
	write_file("empty", NULL, NULL, 0);
	write_text("garbage", "model.safetensors", "this is not a safetensors file at all");
	write_model("nograph", NULL);
	write_model("badgraph", GRAPH_HEAD
		"\"ops\":[{\"op\":\"linear\",\"inputs\":[\"input\"],\"outputs\":[\"probs\"],"
		"\"weight\":\"fc9.weight\"}]}");
	write_model("badop", GRAPH_HEAD
		"\"ops\":[{\"op\":\"conv9d\",\"inputs\":[\"input\"],\"outputs\":[\"probs\"]}]}");
	write_model("badkey", graph);
	write_text("badkey", "config.json", "{\"max_batch\": 4}");
	write_model("badrange", graph);
	write_text("badrange", "config.json", "{\"max_batch_size\": 0}");
	write_model("badjson", graph);
	write_text("badjson", "config.json", "{\"max_batch_size\": ");
	write_model("bad name", graph);
	write_model("ctl\x1b[31m", graph);
	write_model(".hidden", graph);
	write_text(".", "README", "not a model"); /* a plain file in model_dir */

	hf_model_repo *r = load(0, NULL, 0);
	cr_assert_eq(hf_model_repo_loaded(r), 1);
	cr_assert(hf_model_repo_find(r, "good")->loaded);
	expect_failed(r, "empty", "model.safetensors", "No such file");
	expect_failed(r, "garbage", "model.safetensors", NULL);
	expect_failed(r, "nograph", "graph", NULL);
	expect_failed(r, "badgraph", "fc9.weight", NULL);
	expect_failed(r, "badop", "conv9d", NULL);
	expect_failed(r, "badkey", "config.json", "max_batch: unknown key");
	expect_failed(r, "badrange", "config.json", "max_batch_size");
	expect_failed(r, "badjson", "config.json", NULL);
	expect_failed(r, "bad name", "invalid model name", NULL);
	/* The escape is cleaned out of the listed name. */
	expect_failed(r, "ctl?[31m", "invalid model name", NULL);
	cr_assert_null(hf_model_repo_find(r, ".hidden"));
	cr_assert_null(hf_model_repo_find(r, "README"));
	cr_assert_eq(hf_model_repo_count(r), 11);
	hf_model_repo_free(r);
}

Test(model_repo, the_budget_admits_models_in_order)
{
	const uint64_t one = MLP_WEIGHTS + 4u * 32 * MLP_PER_SAMPLE;
	write_model("a", graph);
	write_model("b", graph);
	write_model("c", graph);
	write_text("c", "config.json", "{\"max_batch_size\": 1}");
	/* Room for a and for c (small batch), not for b. */
	hf_model_repo *r = load(one + MLP_WEIGHTS + 4u * MLP_PER_SAMPLE, NULL, 0);
	cr_assert(hf_model_repo_find(r, "a")->loaded);
	expect_failed(r, "b", "over the memory budget", "MiB");
	cr_assert(hf_model_repo_find(r, "c")->loaded, "%s", hf_model_repo_find(r, "c")->reason);
	cr_assert_eq(hf_model_repo_memory_bytes(r), one + MLP_WEIGHTS + 4u * MLP_PER_SAMPLE);
	hf_model_repo_free(r);

	r = load(one - 1, NULL, 0);
	cr_assert_eq(hf_model_repo_loaded(r), 1, "only c fits");
	hf_model_repo_free(r);
}

Test(model_repo, models_asked_for_by_name)
{
	const char names[3][64] = { "b", "missing", "a" };
	write_model("a", graph);
	write_model("b", graph);
	write_model("z", graph);
	hf_model_repo *r = load(0, names, 3);
	cr_assert_eq(hf_model_repo_count(r), 3);
	cr_assert_str_eq(hf_model_repo_at(r, 0)->name, "b");
	cr_assert_str_eq(hf_model_repo_at(r, 2)->name, "a");
	cr_assert_eq(hf_model_repo_loaded(r), 2);
	expect_failed(r, "missing", "not found in model_dir", NULL);
	cr_assert_null(hf_model_repo_find(r, "z"));
	hf_model_repo_free(r);
}

Test(model_repo, a_missing_model_dir_is_an_empty_repository)
{
	char gone[128];
	snprintf(gone, sizeof gone, "%s/nowhere", root);
	hf_model_repo_opts o = { .dir = gone, .defaults = &defaults };
	hf_model_repo *r = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_model_repo_load(&o, &r, &eb), 0);
	cr_assert_eq(hf_model_repo_count(r), 0);
	cr_assert(strstr(hf_model_repo_problem(r), "nowhere"), "%s", hf_model_repo_problem(r));
	cr_assert(strstr(hf_model_repo_problem(r), "No such file"), "%s", hf_model_repo_problem(r));
	hf_model_repo_free(r);
	cr_assert_eq(hf_model_repo_load(&(hf_model_repo_opts){ .dir = root }, &r, &eb), HF_EINVAL);
}

Test(model_repo, config_json_alone)
{
	hf_model_config c = defaults;
	hf_errbuf eb;
	json_t *j = json_loads("{\"instances\": 17}", 0, NULL);
	cr_assert_eq(hf_model_config_from_json(&c, j, "m", &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "m.instances"), "%s", eb.msg);
	cr_assert_eq(c.instances, 1, "a refused config changed the settings");
	json_decref(j);
	j = json_loads("{\"request_timeout_ms\": 3600000}", 0, NULL);
	cr_assert_eq(hf_model_config_from_json(&c, j, "m", &eb), 0, "%s", eb.msg);
	cr_assert_eq(c.request_timeout_ms, 3600000);
	cr_assert_eq(c.max_batch_size, 32);
	json_decref(j);
}
