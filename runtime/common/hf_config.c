/* hf_config: strict JSON parsing and table-driven validation with JSON paths in every message.
 * Invariants: hf_cfg_read() validates every key before writing any destination.
 * Threading: reentrant.
 */
#include "hf_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_file.h"
#include "hf_util.h"

int hf_cfg_parse(const char *text, size_t len, const char *name, json_t **out, hf_errbuf *eb)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return hf_fail(eb, HF_EPARSE, "%s:%d:%d: invalid JSON: %s", name, jerr.line,
			       jerr.column, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return hf_fail(eb, HF_ECONFIG, "%s: expected a JSON object at the top level", name);
	}
	*out = root;
	return 0;
}

int hf_cfg_load_file(const char *path, size_t max, json_t **out, hf_errbuf *eb)
{
	char *text;
	size_t len;
	int r;

	*out = NULL;
	r = hf_file_read(path, max, &text, &len, eb);
	if (r < 0)
		return r;
	if (memchr(text, '\0', len)) {
		free(text);
		return hf_fail(eb, HF_EPARSE, "%s: contains a NUL byte; not a JSON text file", path);
	}
	r = hf_cfg_parse(text, len, path, out, eb);
	free(text);
	return r;
}

void hf_cfg_path_key(char *out, size_t outsz, const char *path, const char *key)
{
	if (!path || !*path)
		snprintf(out, outsz, "%s", key);
	else
		snprintf(out, outsz, "%s.%s", path, key);
}

void hf_cfg_path_index(char *out, size_t outsz, const char *path, size_t index)
{
	snprintf(out, outsz, "%s[%zu]", path && *path ? path : "", index);
}

void hf_cfg_describe(const json_t *v, char *out, size_t outsz)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		snprintf(out, outsz, "string \"%.*s%s\"", (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
		break;
	}
	case JSON_INTEGER: snprintf(out, outsz, "integer %lld", (long long)json_integer_value(v)); break;
	case JSON_REAL: snprintf(out, outsz, "number %g", json_real_value(v)); break;
	case JSON_TRUE: snprintf(out, outsz, "true"); break;
	case JSON_FALSE: snprintf(out, outsz, "false"); break;
	case JSON_NULL: snprintf(out, outsz, "null"); break;
	case JSON_OBJECT: snprintf(out, outsz, "an object"); break;
	case JSON_ARRAY: snprintf(out, outsz, "an array"); break;
	default: snprintf(out, outsz, "an unknown value"); break;
	}
}

static void expected_keys(const hf_cfg_field *fields, size_t n, char *out, size_t outsz)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < outsz; i++) {
		int w = snprintf(out + used, outsz - used, "%s%s", i ? ", " : "", fields[i].key);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int check_number(const hf_cfg_field *f, const json_t *v, const char *fp, hf_errbuf *eb)
{
	char got[96];
	hf_cfg_describe(v, got, sizeof got);
	if (f->type == HF_CFG_NUMBER) {
		double d;
		if (!json_is_number(v))
			return hf_fail(eb, HF_ECONFIG, "%s: expected a number from %g to %g, got %s",
				       fp, f->min, f->max, got);
		d = json_number_value(v);
		if (!isfinite(d) || d < f->min || d > f->max)
			return hf_fail(eb, HF_ECONFIG, "%s: expected a number from %g to %g, got %s",
				       fp, f->min, f->max, got);
		return 0;
	}
	if (!json_is_integer(v) || (double)json_integer_value(v) < f->min ||
	    (double)json_integer_value(v) > f->max)
		return hf_fail(eb, HF_ECONFIG, "%s: expected an integer from %.0f to %.0f, got %s", fp,
			       f->min, f->max, got);
	return 0;
}

static int check_field(const hf_cfg_field *f, const json_t *v, const char *fp, hf_errbuf *eb)
{
	char got[96];
	hf_cfg_describe(v, got, sizeof got);
	switch (f->type) {
	case HF_CFG_STRING:
		if (!json_is_string(v))
			return hf_fail(eb, HF_ECONFIG, "%s: expected a string, got %s", fp, got);
		if (json_string_length(v) >= f->dst_size)
			return hf_fail(eb, HF_ECONFIG, "%s: string too long (%zu bytes, at most %zu)",
				       fp, json_string_length(v), f->dst_size - 1);
		if ((double)json_string_length(v) < f->min)
			return hf_fail(eb, HF_ECONFIG, "%s: string too short (at least %.0f bytes)", fp,
				       f->min);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return hf_fail(eb, HF_ECONFIG, "%s: string contains a NUL character", fp);
		return 0;
	case HF_CFG_UINT:
	case HF_CFG_INT:
	case HF_CFG_NUMBER:
		return check_number(f, v, fp, eb);
	case HF_CFG_BOOL:
		if (!json_is_boolean(v))
			return hf_fail(eb, HF_ECONFIG, "%s: expected true or false, got %s", fp, got);
		return 0;
	case HF_CFG_ENUM:
		if (json_is_string(v))
			for (size_t i = 0; f->choices[i]; i++)
				if (strcmp(f->choices[i], json_string_value(v)) == 0)
					return 0;
		{
			char list[256] = "";
			size_t used = 0;
			for (size_t i = 0; f->choices[i] && used + 1 < sizeof list; i++) {
				int w = snprintf(list + used, sizeof list - used, "%s\"%s\"",
						 i ? ", " : "", f->choices[i]);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			return hf_fail(eb, HF_ECONFIG, "%s: expected one of %s, got %s", fp, list, got);
		}
	case HF_CFG_OBJECT:
		if (!json_is_object(v))
			return hf_fail(eb, HF_ECONFIG, "%s: expected an object, got %s", fp, got);
		return 0;
	case HF_CFG_ARRAY:
		if (!json_is_array(v))
			return hf_fail(eb, HF_ECONFIG, "%s: expected an array, got %s", fp, got);
		if (f->max > 0 && (double)json_array_size(v) > f->max)
			return hf_fail(eb, HF_ECONFIG, "%s: %zu elements, at most %.0f allowed", fp,
				       json_array_size(v), f->max);
		if ((double)json_array_size(v) < f->min)
			return hf_fail(eb, HF_ECONFIG, "%s: at least %.0f elements required", fp, f->min);
		return 0;
	}
	return hf_fail(eb, HF_EINVAL, "%s: bad field table", fp);
}

static void store_field(const hf_cfg_field *f, const json_t *v)
{
	switch (f->type) {
	case HF_CFG_STRING: hf_strlcpy(f->dst, json_string_value(v), f->dst_size); break;
	case HF_CFG_UINT: *(uint64_t *)f->dst = (uint64_t)json_integer_value(v); break;
	case HF_CFG_INT: *(int64_t *)f->dst = (int64_t)json_integer_value(v); break;
	case HF_CFG_NUMBER: *(double *)f->dst = json_number_value(v); break;
	case HF_CFG_BOOL: *(bool *)f->dst = json_is_true(v); break;
	case HF_CFG_ENUM:
		for (int i = 0; f->choices[i]; i++)
			if (strcmp(f->choices[i], json_string_value(v)) == 0)
				*(int *)f->dst = i;
		break;
	case HF_CFG_OBJECT:
	case HF_CFG_ARRAY: *(const json_t **)f->dst = v; break;
	}
}

int hf_cfg_read(const json_t *obj, const char *path, const hf_cfg_field *fields, size_t n,
		hf_errbuf *eb)
{
	char fp[HF_CFG_PATH_MAX];
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		char got[96];
		hf_cfg_describe(obj, got, sizeof got);
		return hf_fail(eb, HF_ECONFIG, "%s: expected an object, got %s",
			       path && *path ? path : "(top level)", got);
	}
	json_object_foreach((json_t *)obj, key, v) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(fields[i].key, key) == 0)
				break;
		hf_cfg_path_key(fp, sizeof fp, path, key);
		if (i == n) {
			char keys[256];
			expected_keys(fields, n, keys, sizeof keys);
			return hf_fail(eb, HF_ECONFIG, "%s: unknown key (expected one of: %s)", fp,
				       n ? keys : "none");
		}
		int r = check_field(&fields[i], v, fp, eb);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (fields[i].required && !json_object_get(obj, fields[i].key)) {
			hf_cfg_path_key(fp, sizeof fp, path, fields[i].key);
			return hf_fail(eb, HF_ECONFIG, "%s: missing (required)", fp);
		}
	}
	for (size_t i = 0; i < n; i++) {
		v = json_object_get(obj, fields[i].key);
		if (fields[i].present)
			*fields[i].present = v != NULL;
		if (v)
			store_field(&fields[i], v);
	}
	return 0;
}
