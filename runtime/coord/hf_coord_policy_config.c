/* hf_coord_policy_config: the policy's defaults and the profit/fleet file's "policy", "classes",
 * "nodes" and "default_class" sections, validated strictly, and the class of a node id.
 *
 * Invariants: every refusal names the JSON path of the field and what was expected; on failure
 * the spec is left empty (hf_coord_fleet_spec_clear is safe on it either way). Every class
 * named by a node entry or default_class exists; a node entry has exactly one of "id" and
 * "match", "count" only with "id". Numbers are finite and >= 0 (hf_cfg_read's bounds).
 * Threading: reentrant; a spec belongs to its caller (read-only use from several threads is
 * fine once parsed).
 */
#include "hf_coord_policy.h"

#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

/* Caps: a fleet file describes at most this many node entries, a count at most this many. */
#define NODE_ENTRIES_MAX 100000
#define NODE_COUNT_MAX 1000000

static const char *const unit_choices[] = { "per_1000", "node_hour", NULL };

void hf_coord_policy_defaults(hf_coord_policy_params *p)
{
	memset(p, 0, sizeof *p);
	p->unit = HF_COORD_PER_1000;
	p->pool_fee = 0.02;
	p->headroom = 0.10;
	p->rel_threshold = 0.05;
	p->abs_threshold_usd_h = 0.001;
	p->enter_evaluations = 3;
	p->loss_evaluations = 1;
	p->min_dwell_s = 900;
	p->horizon_s = 3600;
	p->fixed_cost_usd = 0;
	p->evaluate_s = 30;
}

static int read_policy(const json_t *obj, hf_coord_policy_params *p, hf_errbuf *eb)
{
	int unit = (int)p->unit;
	uint64_t enter = p->enter_evaluations, loss = p->loss_evaluations;
	hf_cfg_field f[] = {
		{ .key = "inference_unit", .type = HF_CFG_ENUM, .dst = &unit, .choices = unit_choices },
		{ .key = "pool_fee", .type = HF_CFG_NUMBER, .dst = &p->pool_fee, .max = 1 },
		{ .key = "headroom", .type = HF_CFG_NUMBER, .dst = &p->headroom, .max = 10 },
		{ .key = "rel_threshold", .type = HF_CFG_NUMBER, .dst = &p->rel_threshold, .max = 100 },
		{ .key = "abs_threshold_usd_h", .type = HF_CFG_NUMBER, .dst = &p->abs_threshold_usd_h,
		  .max = 1e6 },
		{ .key = "enter_evaluations", .type = HF_CFG_UINT, .dst = &enter, .min = 1, .max = 100000 },
		{ .key = "loss_evaluations", .type = HF_CFG_UINT, .dst = &loss, .min = 1, .max = 100000 },
		{ .key = "min_dwell_s", .type = HF_CFG_UINT, .dst = &p->min_dwell_s,
		  .max = 366.0 * 86400 },
		{ .key = "horizon_s", .type = HF_CFG_UINT, .dst = &p->horizon_s, .min = 1,
		  .max = 366.0 * 86400 },
		{ .key = "fixed_cost_usd", .type = HF_CFG_NUMBER, .dst = &p->fixed_cost_usd, .max = 1e6 },
		{ .key = "evaluate_s", .type = HF_CFG_UINT, .dst = &p->evaluate_s, .min = 1, .max = 86400 },
	};
	int r = hf_cfg_read(obj, "policy", f, HF_ARRAY_SIZE(f), eb);

	if (r < 0)
		return r;
	p->unit = (hf_coord_infer_unit)unit;
	p->enter_evaluations = (unsigned)enter;
	p->loss_evaluations = (unsigned)loss;
	return 0;
}

static long find_class(const hf_coord_fleet_spec *s, const char *name)
{
	for (size_t i = 0; i < s->nclasses; i++)
		if (strcmp(s->classes[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* "no class \"x\" (defined: a, b)" into eb for path. */
static int unknown_class(const hf_coord_fleet_spec *s, const char *path, const char *name,
			 hf_errbuf *eb)
{
	char list[256] = "";
	size_t used = 0;

	for (size_t i = 0; i < s->nclasses && used + 1 < sizeof list; i++) {
		int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
				 s->classes[i].name);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	return hf_fail(eb, HF_ECONFIG, "%s: no class \"%s\" (defined: %s)", path, name,
		       s->nclasses ? list : "none");
}

/* A mode's watts must be given when the class can run the mode. */
static int need_watts(const char *path, const char *key, bool present, double capacity,
		      const char *cap_key, hf_errbuf *eb)
{
	if (present || !(capacity > 0))
		return 0;
	return hf_fail(eb, HF_ECONFIG, "%s.%s: missing (required when %s > 0)", path, key, cap_key);
}

static int read_class(const char *name, const json_t *obj, hf_coord_class *c, hf_errbuf *eb)
{
	char path[HF_CFG_PATH_MAX];
	bool has_mw = false, has_iw = false;
	hf_coord_figures *g = &c->fig;
	hf_cfg_field f[] = {
		{ .key = "hashrate_hs", .type = HF_CFG_NUMBER, .dst = &g->hashrate_hs, .max = 1e18 },
		{ .key = "mining_watts", .type = HF_CFG_NUMBER, .dst = &g->mining_watts, .max = 1e7,
		  .present = &has_mw },
		{ .key = "inferences_per_s", .type = HF_CFG_NUMBER, .dst = &g->inferences_per_s,
		  .max = 1e12 },
		{ .key = "inference_watts", .type = HF_CFG_NUMBER, .dst = &g->inference_watts,
		  .max = 1e7, .present = &has_iw },
		{ .key = "idle_watts", .type = HF_CFG_NUMBER, .required = true, .dst = &g->idle_watts,
		  .max = 1e7 },
		{ .key = "switch_s", .type = HF_CFG_NUMBER, .dst = &g->switch_s, .max = 86400 },
		{ .key = "price_factor", .type = HF_CFG_NUMBER, .dst = &c->price_factor, .max = 1e6 },
	};
	int r;

	hf_cfg_path_key(path, sizeof path, "classes", name);
	if (!hf_id_valid(name))
		return hf_fail(eb, HF_ECONFIG, "%s: a class name is 1-63 characters of A-Z a-z 0-9 . _ - "
			       "starting with a letter or digit", path);
	memset(c, 0, sizeof *c);
	hf_strlcpy(c->name, name, sizeof c->name);
	c->price_factor = 1.0;
	if ((r = hf_cfg_read(obj, path, f, HF_ARRAY_SIZE(f), eb)) < 0)
		return r;
	if ((r = need_watts(path, "mining_watts", has_mw, g->hashrate_hs, "hashrate_hs", eb)) < 0)
		return r;
	return need_watts(path, "inference_watts", has_iw, g->inferences_per_s, "inferences_per_s",
			  eb);
}

static int read_classes(const json_t *obj, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	const char *name;
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return hf_fail(eb, HF_ECONFIG, "classes: expected an object of NAME: {figures}");
	if (json_object_size(obj) > HF_COORD_MAX_CLASSES)
		return hf_fail(eb, HF_ECONFIG, "classes: %zu classes, at most %d allowed",
			       json_object_size(obj), HF_COORD_MAX_CLASSES);
	json_object_foreach((json_t *)obj, name, v) {
		if ((r = read_class(name, v, &s->classes[s->nclasses], eb)) < 0)
			return r;
		s->nclasses++;
	}
	return 0;
}

/* The longest id a "count" of n leaves room for: id + "-" + n's digits within 63 characters. */
static int check_count(const char *path, const char *id, uint64_t count, hf_errbuf *eb)
{
	char last[32];
	int w = snprintf(last, sizeof last, "-%llu", (unsigned long long)count);

	if (count > 1 && strlen(id) + (size_t)w > 63)
		return hf_fail(eb, HF_ECONFIG, "%s.id: \"%s\" with count %llu makes ids longer than 63 "
			       "characters (%s%s)", path, id, (unsigned long long)count, id, last);
	return 0;
}

typedef struct entry_vals {
	char id[64], match[64], cls[HF_COORD_CLASS_NAME_MAX + 1];
	uint64_t count;
	bool has_id, has_match, has_count;
} entry_vals;

static int check_entry(const char *path, const entry_vals *e, hf_errbuf *eb)
{
	if (e->has_id == e->has_match)
		return hf_fail(eb, HF_ECONFIG, "%s: expected exactly one of \"id\" and \"match\"%s",
			       path, e->has_id ? ", got both" : "");
	if (e->has_count && !e->has_id)
		return hf_fail(eb, HF_ECONFIG, "%s.count: only with \"id\" (a \"match\" glob covers "
			       "every node it matches)", path);
	if (e->has_id && !hf_id_valid(e->id))
		return hf_fail(eb, HF_ECONFIG, "%s.id: expected 1-63 characters of A-Z a-z 0-9 . _ - "
			       "starting with a letter or digit, got \"%s\"", path, e->id);
	return e->has_id ? check_count(path, e->id, e->count, eb) : 0;
}

static int read_entry(const json_t *obj, size_t i, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	char path[HF_CFG_PATH_MAX], fp[HF_CFG_PATH_MAX];
	entry_vals e = { .count = 1 };
	struct hf_coord_node_spec *ns = &s->nodes[s->nnodes];
	hf_cfg_field f[] = {
		{ .key = "id", .type = HF_CFG_STRING, .dst = e.id, .dst_size = sizeof e.id, .min = 1,
		  .present = &e.has_id },
		{ .key = "match", .type = HF_CFG_STRING, .dst = e.match, .dst_size = sizeof e.match,
		  .min = 1, .present = &e.has_match },
		{ .key = "class", .type = HF_CFG_STRING, .required = true, .dst = e.cls,
		  .dst_size = sizeof e.cls, .min = 1 },
		{ .key = "count", .type = HF_CFG_UINT, .dst = &e.count, .min = 1, .max = NODE_COUNT_MAX,
		  .present = &e.has_count },
	};
	int r;

	hf_cfg_path_index(path, sizeof path, "nodes", i);
	if ((r = hf_cfg_read(obj, path, f, HF_ARRAY_SIZE(f), eb)) < 0 ||
	    (r = check_entry(path, &e, eb)) < 0)
		return r;
	if (find_class(s, e.cls) < 0) {
		hf_cfg_path_key(fp, sizeof fp, path, "class");
		return unknown_class(s, fp, e.cls, eb);
	}
	memset(ns, 0, sizeof *ns);
	hf_strlcpy(ns->id, e.id, sizeof ns->id);
	hf_strlcpy(ns->match, e.match, sizeof ns->match);
	ns->cls = (size_t)find_class(s, e.cls);
	ns->count = (unsigned)e.count;
	s->nnodes++;
	return 0;
}

static int read_nodes(const json_t *arr, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	size_t n;
	int r;

	if (!json_is_array(arr))
		return hf_fail(eb, HF_ECONFIG, "nodes: expected an array of {\"id\" or \"match\", "
			       "\"class\"}");
	n = json_array_size(arr);
	if (n > NODE_ENTRIES_MAX)
		return hf_fail(eb, HF_ECONFIG, "nodes: %zu entries, at most %d allowed", n,
			       NODE_ENTRIES_MAX);
	if (n == 0)
		return 0;
	s->nodes = calloc(n, sizeof *s->nodes);
	if (!s->nodes)
		return hf_fail(eb, HF_ENOMEM, "nodes: out of memory for %zu entries", n);
	for (size_t i = 0; i < n; i++)
		if ((r = read_entry(json_array_get(arr, i), i, s, eb)) < 0)
			return r;
	return 0;
}

static int read_default(const json_t *v, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	char got[96];

	if (!json_is_string(v)) {
		hf_cfg_describe(v, got, sizeof got);
		return hf_fail(eb, HF_ECONFIG, "default_class: expected a class name, got %s", got);
	}
	s->default_class = find_class(s, json_string_value(v));
	if (s->default_class < 0)
		return unknown_class(s, "default_class", json_string_value(v), eb);
	return 0;
}

typedef struct id_ref {
	const char *id;
	size_t idx;
} id_ref;

static int id_ref_cmp(const void *pa, const void *pb)
{
	const id_ref *a = pa, *b = pb;
	int c = strcmp(a->id, b->id);

	return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

/* class_of's index: "id" entries sorted by id (a repeated id is refused), "match" entries in
 * order. */
static int build_index(hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	id_ref *refs = NULL;
	size_t nref = 0;
	int r = 0;

	if (s->nnodes == 0)
		return 0;
	refs = malloc(s->nnodes * sizeof *refs);
	s->by_id = malloc(s->nnodes * sizeof *s->by_id);
	s->globs = malloc(s->nnodes * sizeof *s->globs);
	if (!refs || !s->by_id || !s->globs) {
		r = hf_fail(eb, HF_ENOMEM, "nodes: out of memory for the index of %zu entries",
			    s->nnodes);
		goto free_refs;
	}
	for (size_t i = 0; i < s->nnodes; i++) {
		if (s->nodes[i].id[0])
			refs[nref++] = (id_ref){ .id = s->nodes[i].id, .idx = i };
		else
			s->globs[s->nglobs++] = i;
	}
	qsort(refs, nref, sizeof *refs, id_ref_cmp);
	for (size_t i = 0; i < nref; i++) {
		if (i > 0 && strcmp(refs[i - 1].id, refs[i].id) == 0) {
			r = hf_fail(eb, HF_ECONFIG, "nodes[%zu].id: \"%s\" is already nodes[%zu]'s",
				    refs[i].idx, refs[i].id, refs[i - 1].idx);
			goto free_refs;
		}
		s->by_id[i] = refs[i].idx;
	}
	s->nby_id = nref;
free_refs:
	free(refs);
	return r;
}

static int parse_sections(const json_t *root, hf_coord_fleet_spec *s, hf_errbuf *eb)
{
	const json_t *v;
	int r;

	if (!json_is_object(root))
		return hf_fail(eb, HF_ECONFIG, "(top level): expected an object");
	if ((v = json_object_get(root, "policy")) && (r = read_policy(v, &s->params, eb)) < 0)
		return r;
	if ((v = json_object_get(root, "classes")) && (r = read_classes(v, s, eb)) < 0)
		return r;
	if ((v = json_object_get(root, "nodes")) && (r = read_nodes(v, s, eb)) < 0)
		return r;
	if ((v = json_object_get(root, "default_class")) && (r = read_default(v, s, eb)) < 0)
		return r;
	return build_index(s, eb);
}

static void spec_init(hf_coord_fleet_spec *s)
{
	memset(s, 0, sizeof *s);
	hf_coord_policy_defaults(&s->params);
	s->default_class = -1;
}

int hf_coord_fleet_spec_parse(const json_t *root, hf_coord_fleet_spec *out, hf_errbuf *eb)
{
	int r;

	spec_init(out);
	r = parse_sections(root, out, eb);
	if (r < 0) {
		hf_coord_fleet_spec_clear(out);
		return r;
	}
	return 0;
}

void hf_coord_fleet_spec_clear(hf_coord_fleet_spec *s)
{
	if (!s)
		return;
	free(s->nodes);
	free(s->by_id);
	free(s->globs);
	spec_init(s);
}

/* Whether id is entry's id, or (count > 1) entry's id + "-K" with 1 <= K <= count. */
static bool id_matches(const struct hf_coord_node_spec *e, const char *id)
{
	size_t len = strlen(e->id);
	uint64_t k;

	if (strcmp(e->id, id) == 0)
		return true;
	if (e->count <= 1 || strncmp(e->id, id, len) != 0 || id[len] != '-' || id[len + 1] == '0')
		return false;
	return hf_parse_u64(id + len + 1, 1, e->count, &k);
}

static bool entry_matches(const struct hf_coord_node_spec *e, const char *id)
{
	return e->id[0] ? id_matches(e, id) : fnmatch(e->match, id, 0) == 0;
}

/* The index of the "id" entry named key (by_id is sorted and has no repeats); SIZE_MAX if none. */
static size_t find_id(const hf_coord_fleet_spec *s, const char *key)
{
	size_t lo = 0, hi = s->nby_id;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->nodes[s->by_id[mid]].id, key);
		if (c == 0)
			return s->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* The first entry matching id, through the index: the exact id, the id ID-K of a counted
 * entry ID, and the first glob that matches before both. */
static size_t first_match_indexed(const hf_coord_fleet_spec *s, const char *id)
{
	size_t best = find_id(s, id), e;
	const char *dash = strrchr(id, '-');
	char prefix[64];

	if (dash && (size_t)(dash - id) < sizeof prefix) {
		memcpy(prefix, id, (size_t)(dash - id));
		prefix[dash - id] = '\0';
		e = find_id(s, prefix);
		if (e < best && id_matches(&s->nodes[e], id))
			best = e;
	}
	for (size_t i = 0; i < s->nglobs && s->globs[i] < best; i++)
		if (fnmatch(s->nodes[s->globs[i]].match, id, 0) == 0)
			return s->globs[i];
	return best;
}

const hf_coord_class *hf_coord_fleet_spec_class_of(const hf_coord_fleet_spec *s, const char *id)
{
	size_t e = SIZE_MAX;

	if (id && (s->by_id || s->globs)) {
		e = first_match_indexed(s, id);
	} else {
		for (size_t i = 0; id && i < s->nnodes && e == SIZE_MAX; i++)
			if (entry_matches(&s->nodes[i], id))
				e = i;
	}
	if (e != SIZE_MAX)
		return &s->classes[s->nodes[e].cls];
	return s->default_class >= 0 ? &s->classes[s->default_class] : NULL;
}
