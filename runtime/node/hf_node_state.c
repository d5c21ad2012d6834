/* hf_node_state: load/save of state.json with strict validation.
 * Threading: see hf_node_state.h.
 */
#include "hf_node_state.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_file.h"
#include "hf_util.h"

static const char *const mode_choices[] = { "idle", "mining", "inference", NULL };

static void state_path(const char *dir, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/%s", dir, HF_NODE_STATE_FILE);
}

int hf_node_state_load(const char *state_dir, hf_node_state *st, hf_errbuf *eb)
{
	char path[PATH_MAX];
	const json_t *params = NULL, *instr = NULL;
	uint64_t v = 0, updated = 0, last_issued = 0, hold = 0;
	int mode = 0;
	json_t *root;
	hf_cfg_field f[] = {
		{ .key = "v", .type = HF_CFG_UINT, .required = true, .dst = &v, .min = 1, .max = 1 },
		{ .key = "desired_mode", .type = HF_CFG_ENUM, .required = true, .dst = &mode,
		  .choices = mode_choices },
		{ .key = "mode_params", .type = HF_CFG_OBJECT, .dst = &params },
		{ .key = "last_instruction", .type = HF_CFG_OBJECT, .dst = &instr },
		{ .key = "updated_ms", .type = HF_CFG_UINT, .dst = &updated, .min = 0, .max = 9.0e15 },
		{ .key = "last_issued_ms", .type = HF_CFG_UINT, .dst = &last_issued, .min = 0, .max = 9.0e15 },
		{ .key = "hold_until_ms", .type = HF_CFG_UINT, .dst = &hold, .min = 0, .max = 9.0e15 },
	};
	int r;

	memset(st, 0, sizeof *st);
	state_path(state_dir, path, sizeof path);
	r = hf_cfg_load_file(path, HF_NODE_STATE_MAX, &root, eb);
	if (r < 0)
		return r;
	/* null is how "none" is written for the two optional objects. */
	if (json_is_null(json_object_get(root, "mode_params")))
		json_object_del(root, "mode_params");
	if (json_is_null(json_object_get(root, "last_instruction")))
		json_object_del(root, "last_instruction");
	r = hf_cfg_read(root, "", f, HF_ARRAY_SIZE(f), eb);
	if (r < 0) {
		json_decref(root);
		return hf_fail_prefix(eb, r, "%s", path);
	}
	st->desired_mode = (hf_mode)mode;
	st->mode_params = params ? json_deep_copy(params) : NULL;
	st->last_instruction = instr ? json_deep_copy(instr) : NULL;
	st->updated_ms = updated;
	st->last_issued_ms = last_issued;
	st->hold_until_ms = hold;
	json_decref(root);
	return 0;
}

int hf_node_state_save(const char *state_dir, hf_node_state *st, hf_errbuf *eb)
{
	char path[PATH_MAX];
	char *text;
	json_t *root;
	int r;

	st->updated_ms = hf_wall_ms();
	root = json_pack("{s:i, s:s, s:O?, s:O?, s:I, s:I, s:I}", "v", 1,
			 "desired_mode", hf_mode_name(st->desired_mode),
			 "mode_params", st->mode_params, "last_instruction", st->last_instruction,
			 "last_issued_ms", (json_int_t)st->last_issued_ms,
			 "hold_until_ms", (json_int_t)st->hold_until_ms,
			 "updated_ms", (json_int_t)st->updated_ms);
	if (!root)
		return hf_fail(eb, HF_ENOMEM, "cannot build the state document");
	text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (!text)
		return hf_fail(eb, HF_ENOMEM, "cannot serialise the state document");
	state_path(state_dir, path, sizeof path);
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps leaves room for the NUL we overwrite; write n+1 bytes */
	r = hf_file_write_atomic(path, text, n + 1, 0600, eb);
	free(text);
	return r;
}

int hf_node_state_quarantine(const char *state_dir, char *moved_to, size_t movedsz, hf_errbuf *eb)
{
	char path[PATH_MAX];
	state_path(state_dir, path, sizeof path);
	snprintf(moved_to, movedsz, "%s.corrupt-%llu", path, (unsigned long long)hf_wall_ms());
	if (rename(path, moved_to) != 0)
		return hf_fail(eb, HF_EIO, "%s: cannot move aside: %s", path, strerror(errno));
	return 0;
}

void hf_node_state_clear(hf_node_state *st)
{
	json_decref(st->mode_params);
	json_decref(st->last_instruction);
	st->mode_params = st->last_instruction = NULL;
}
