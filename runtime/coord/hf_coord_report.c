/* hf_coord_report: node report v1 validation (table-driven: one row per field).
 * Threading: see hf_coord_report.h.
 */
#include "hf_coord_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_config.h"
#include "hf_text.h"
#include "hf_util.h"

typedef enum ftype {
	F_UINT,     /* integer >= 0 */
	F_NUM,      /* finite number >= 0 */
	F_NUM_NULL, /* F_NUM or null */
	F_UINT_NULL,
	F_BOOL,
	F_STR,      /* string of at most cap bytes */
	F_ENUM,     /* one of choices */
	F_OBJ_NULL, /* null or an object validated with sub */
} ftype;

typedef struct rfield {
	const char *key;
	ftype t;
	bool required;
	size_t cap;
	const char *const *choices;
	const struct rfield *sub;
	size_t nsub;
} rfield;

static const char *const modes[] = { "idle", "mining", "inference", NULL };
static const char *const phases[] = { "stopped", "starting", "running", "draining", "releasing", NULL };
static const char *const convergences[] = { "converged", "switching", "retrying", "failed", NULL };

static const rfield power_fields[] = {
	{ "watts", F_NUM, true, 0, NULL, NULL, 0 },
	{ "joules_total", F_NUM, true, 0, NULL, NULL, 0 },
	{ "source", F_STR, true, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "boundary", F_STR, true, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "estimated", F_BOOL, true, 0, NULL, NULL, 0 },
	{ "window_s", F_NUM, false, 0, NULL, NULL, 0 },
	{ "window_watts", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "mh_per_j", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "gflop_per_j", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "inferences_per_j", F_NUM_NULL, false, 0, NULL, NULL, 0 },
};

static const rfield switch_fields[] = {
	{ "seq", F_UINT, true, 0, NULL, NULL, 0 },
	{ "from", F_ENUM, true, 0, modes, NULL, 0 },
	{ "to", F_ENUM, true, 0, modes, NULL, 0 },
	{ "trigger", F_STR, false, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "total_ms", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "drain_ms", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "release_ms", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "start_ms", F_NUM_NULL, false, 0, NULL, NULL, 0 },
	{ "result", F_STR, false, HF_COORD_REPORT_DETAIL_MAX, NULL, NULL, 0 },
	{ "requested_wall_ms", F_UINT_NULL, false, 0, NULL, NULL, 0 },
};

static const rfield report_fields[] = {
	{ "v", F_UINT, true, 0, NULL, NULL, 0 },
	{ "node", F_STR, true, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "fleet", F_STR, true, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "wall_ms", F_UINT, true, 0, NULL, NULL, 0 },
	{ "seq", F_UINT, true, 0, NULL, NULL, 0 },
	{ "version", F_STR, false, HF_COORD_REPORT_ID_MAX, NULL, NULL, 0 },
	{ "applied_issued_ms", F_UINT, true, 0, NULL, NULL, 0 },
	{ "mode", F_ENUM, true, 0, modes, NULL, 0 },
	{ "desired_mode", F_ENUM, true, 0, modes, NULL, 0 },
	{ "phase", F_ENUM, true, 0, phases, NULL, 0 },
	{ "converged", F_BOOL, true, 0, NULL, NULL, 0 },
	{ "convergence", F_ENUM, true, 0, convergences, NULL, 0 },
	{ "hashrate_hs", F_NUM, false, 0, NULL, NULL, 0 },
	{ "flops", F_NUM, false, 0, NULL, NULL, 0 },
	{ "inferences_per_s", F_NUM, false, 0, NULL, NULL, 0 },
	{ "power", F_OBJ_NULL, false, 0, NULL, power_fields, HF_ARRAY_SIZE(power_fields) },
	{ "last_switch", F_OBJ_NULL, false, 0, NULL, switch_fields, HF_ARRAY_SIZE(switch_fields) },
};

static int bad(hf_errbuf *eb, const char *path, const char *want, const json_t *v)
{
	char got[96];
	hf_cfg_describe(v, got, sizeof got);
	return hf_fail(eb, HF_ECONFIG, "%s: expected %s, got %s", path, want, got);
}

static bool in_choices(const char *s, const char *const *choices)
{
	for (size_t i = 0; choices[i]; i++)
		if (strcmp(s, choices[i]) == 0)
			return true;
	return false;
}

static int check_obj(json_t *obj, const char *path, const rfield *f, size_t n, hf_errbuf *eb);

/* One value; strings are replaced by their cleaned text. */
static int check_value(json_t *obj, const rfield *f, json_t *v, const char *path, hf_errbuf *eb)
{
	char clean[HF_COORD_REPORT_DETAIL_MAX + 1];

	switch (f->t) {
	case F_UINT_NULL:
		if (json_is_null(v))
			return 0;
		/* fall through */
	case F_UINT:
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return bad(eb, path, "an integer >= 0", v);
		return 0;
	case F_NUM_NULL:
		if (json_is_null(v))
			return 0;
		/* fall through */
	case F_NUM:
		if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
			return bad(eb, path, "a finite number >= 0", v);
		return 0;
	case F_BOOL:
		return json_is_boolean(v) ? 0 : bad(eb, path, "true or false", v);
	case F_ENUM:
		if (!json_is_string(v) || !in_choices(json_string_value(v), f->choices))
			return bad(eb, path, f->choices == modes ? "\"idle\", \"mining\" or \"inference\"" :
				   f->choices == phases ? "one of \"stopped\", \"starting\", \"running\", "
				   "\"draining\", \"releasing\"" : "one of \"converged\", \"switching\", "
				   "\"retrying\", \"failed\"", v);
		return 0;
	case F_STR:
		if (!json_is_string(v) || json_string_length(v) > f->cap) {
			char want[64];
			snprintf(want, sizeof want, "a string of at most %zu bytes", f->cap);
			return bad(eb, path, want, v);
		}
		hf_text_clean(clean, sizeof clean, json_string_value(v), json_string_length(v));
		if (strcmp(clean, json_string_value(v)) != 0)
			json_object_set_new(obj, f->key, json_string(clean));
		return 0;
	case F_OBJ_NULL:
		if (json_is_null(v))
			return 0;
		if (!json_is_object(v))
			return bad(eb, path, "an object or null", v);
		return check_obj(v, path, f->sub, f->nsub, eb);
	}
	return hf_fail(eb, HF_EINVAL, "%s: internal: unknown field type", path);
}

static int check_obj(json_t *obj, const char *path, const rfield *f, size_t n, hf_errbuf *eb)
{
	char sub[HF_CFG_PATH_MAX];
	const char *key;
	json_t *v;
	int r;

	json_object_foreach(obj, key, v) {
		size_t i;
		for (i = 0; i < n && strcmp(key, f[i].key) != 0; i++)
			;
		if (i == n) {
			char k[HF_COORD_REPORT_ID_MAX + 1];
			hf_text_clean(k, sizeof k, key, strlen(key));
			hf_cfg_path_key(sub, sizeof sub, path, k);
			return hf_fail(eb, HF_ECONFIG, "%s: unknown key", sub);
		}
	}
	for (size_t i = 0; i < n; i++) {
		hf_cfg_path_key(sub, sizeof sub, path, f[i].key);
		v = json_object_get(obj, f[i].key);
		if (!v) {
			if (f[i].required)
				return hf_fail(eb, HF_ECONFIG, "%s: missing", sub);
			continue;
		}
		if ((r = check_value(obj, &f[i], v, sub, eb)) < 0)
			return r;
	}
	return 0;
}

static double num_or0(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static void summarise(const json_t *r, hf_coord_report_sum *s)
{
	const json_t *p = json_object_get(r, "power"), *ls = json_object_get(r, "last_switch");

	memset(s, 0, sizeof *s);
	s->wall_ms = (uint64_t)json_integer_value(json_object_get(r, "wall_ms"));
	s->seq = (uint64_t)json_integer_value(json_object_get(r, "seq"));
	s->applied_issued_ms = (uint64_t)json_integer_value(json_object_get(r, "applied_issued_ms"));
	hf_strlcpy(s->mode, json_string_value(json_object_get(r, "mode")), sizeof s->mode);
	hf_strlcpy(s->desired_mode, json_string_value(json_object_get(r, "desired_mode")),
		   sizeof s->desired_mode);
	hf_strlcpy(s->phase, json_string_value(json_object_get(r, "phase")), sizeof s->phase);
	hf_strlcpy(s->convergence, json_string_value(json_object_get(r, "convergence")),
		   sizeof s->convergence);
	s->converged = json_is_true(json_object_get(r, "converged"));
	s->hashrate_hs = num_or0(r, "hashrate_hs");
	s->flops = num_or0(r, "flops");
	s->inferences_per_s = num_or0(r, "inferences_per_s");
	if (json_is_string(json_object_get(r, "version")))
		hf_strlcpy(s->version, json_string_value(json_object_get(r, "version")), sizeof s->version);
	if (json_is_object(p)) {
		s->has_power = true;
		s->watts = num_or0(p, "watts");
		hf_strlcpy(s->power_source, json_string_value(json_object_get(p, "source")),
			   sizeof s->power_source);
	}
	if (json_is_object(ls)) {
		const json_t *t = json_object_get(ls, "total_ms");
		s->has_switch = true;
		s->switch_seq = (uint64_t)json_integer_value(json_object_get(ls, "seq"));
		s->switch_total_ms = json_is_number(t) ? json_number_value(t) : -1;
	}
}

int hf_coord_report_parse(const char *body, size_t len, const char *node, const char *fleet,
			  json_t **out, hf_coord_report_sum *sum, hf_errbuf *eb)
{
	json_error_t je;
	json_t *r;
	int rc;

	*out = NULL;
	r = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!r) {
		char msg[sizeof je.text];
		hf_text_clean(msg, sizeof msg, je.text, strlen(je.text));
		return hf_fail(eb, HF_EPARSE, "report: not JSON: %s (line %d, column %d)", msg,
			       je.line, je.column);
	}
	if (!json_is_object(r)) {
		json_decref(r);
		return hf_fail(eb, HF_EPARSE, "report: expected a JSON object");
	}
	if ((rc = check_obj(r, "", report_fields, HF_ARRAY_SIZE(report_fields), eb)) < 0)
		goto fail;
	if (json_integer_value(json_object_get(r, "v")) != 1) {
		rc = hf_fail(eb, HF_ECONFIG, "v: expected 1 (report v1), got %lld",
			     (long long)json_integer_value(json_object_get(r, "v")));
		goto fail;
	}
	if (strcmp(json_string_value(json_object_get(r, "node")), node) != 0) {
		rc = hf_fail(eb, HF_EREFUSED, "node: \"%s\" is not the node of this path (\"%s\")",
			     json_string_value(json_object_get(r, "node")), node);
		goto fail;
	}
	if (strcmp(json_string_value(json_object_get(r, "fleet")), fleet) != 0) {
		rc = hf_fail(eb, HF_EREFUSED, "fleet: \"%s\" is not this coordinator's fleet (\"%s\")",
			     json_string_value(json_object_get(r, "fleet")), fleet);
		goto fail;
	}
	summarise(r, sum);
	*out = r;
	return 0;
fail:
	json_decref(r);
	return rc;
}
