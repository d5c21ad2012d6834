/* hf_trust: the node's trust file (trust.json): which Ed25519 keys may sign instructions, with
 * which role, and how many operator signatures a fleet-wide (node "*") instruction needs.
 *
 * Format: {"keys": [{"keyid"?: "...", "role": "coordinator"|"operator",
 *                    "public_key_pem": "-----BEGIN PUBLIC KEY-----\n...", "name"?: "..."}],
 *          "fleet_threshold"?: N}
 * Decisions:
 * - keys holds 1..HF_INSTR_MAX_TRUST_KEYS entries; fleet_threshold is 1..64 (default 2). A
 *   threshold above the number of operator keys is accepted (the file may be built up one key at
 *   a time) but makes node "*" impossible; hf_trust_count_role() lets callers warn.
 * - Each key appears once: a key listed twice (same keyid) is refused, so one key has one role.
 * - public_key_pem must be a public key: a private key in a trust file is refused (it would be a
 *   secret copied to every node).
 * - A given keyid must equal the key's computed id; name is 0..63 printable characters.
 * - Every error names the entry and field: "keys[2].role: expected one of ...".
 * Threading: an hf_trust is immutable after load and may be shared by threads.
 */
#include "hf_instr.h"

#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

#define TRUST_FILE_MAX (256u * 1024u)
#define TRUST_PEM_MAX 1024
#define TRUST_NAME_MAX 64

typedef struct trust_entry {
	hf_key *key;
	char id[HF_INSTR_KEYID_LEN + 1];
	hf_role role;
	char name[TRUST_NAME_MAX];
} trust_entry;

struct hf_trust {
	trust_entry *e;
	size_t n;
	unsigned threshold;
};

static const char *const role_names[] = { "coordinator", "operator", NULL };

const char *hf_role_name(hf_role r)
{
	switch (r) {
	case HF_ROLE_COORDINATOR: return "coordinator";
	case HF_ROLE_OPERATOR: return "operator";
	}
	return NULL;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int load_entry(const json_t *obj, const char *path, trust_entry *te, hf_errbuf *eb)
{
	char keyid[HF_INSTR_KEYID_LEN + 2] = "", pem[TRUST_PEM_MAX], fp[HF_CFG_PATH_MAX];
	int role = 0;
	bool has_id = false;
	hf_errbuf kerr;
	const hf_cfg_field fields[] = {
		{ .key = "keyid", .type = HF_CFG_STRING, .dst = keyid, .dst_size = sizeof keyid,
		  .present = &has_id },
		{ .key = "role", .type = HF_CFG_ENUM, .required = true, .dst = &role,
		  .choices = role_names },
		{ .key = "public_key_pem", .type = HF_CFG_STRING, .required = true, .dst = pem,
		  .dst_size = sizeof pem, .min = 1 },
		{ .key = "name", .type = HF_CFG_STRING, .dst = te->name, .dst_size = sizeof te->name },
	};
	int r = hf_cfg_read(obj, path, fields, HF_ARRAY_SIZE(fields), eb);

	if (r < 0)
		return r;
	te->role = role == 0 ? HF_ROLE_COORDINATOR : HF_ROLE_OPERATOR;
	if (!printable(te->name))
		return hf_fail(eb, HF_ECONFIG, "%s.name: control characters are not allowed", path);
	hf_cfg_path_key(fp, sizeof fp, path, "public_key_pem");
	if (hf_key_from_pem(pem, strlen(pem), &te->key, &kerr) < 0)
		return hf_fail(eb, HF_ECONFIG, "%s: %s", fp, kerr.msg);
	if (hf_key_has_private(te->key))
		return hf_fail(eb, HF_ECONFIG, "%s: is a private key; list the public key "
			       "(`openssl pkey -in KEY.pem -pubout`)", fp);
	hf_key_id(te->key, te->id);
	if (has_id && strcmp(keyid, te->id) != 0)
		return hf_fail(eb, HF_ECONFIG, "%s.keyid: \"%s\" does not match the key (its id is %s)",
			       path, keyid, te->id);
	return 0;
}

static int load_keys(const json_t *keys, hf_trust *t, hf_errbuf *eb)
{
	char path[HF_CFG_PATH_MAX];

	t->e = calloc(json_array_size(keys), sizeof *t->e);
	if (!t->e)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	for (size_t i = 0; i < json_array_size(keys); i++) {
		trust_entry *te = &t->e[i];
		int r;

		hf_cfg_path_index(path, sizeof path, "keys", i);
		t->n = i + 1; /* so hf_trust_free() releases a half-loaded entry */
		r = load_entry(json_array_get(keys, i), path, te, eb);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->e[j].id, te->id) == 0)
				return hf_fail(eb, HF_ECONFIG, "%s: key %s is already listed as keys[%zu] "
					       "(a key has one role)", path, te->id, j);
	}
	return 0;
}

int hf_trust_from_json(const json_t *root, hf_trust **out, hf_errbuf *eb)
{
	const json_t *keys = NULL;
	uint64_t threshold = 2;
	const hf_cfg_field fields[] = {
		{ .key = "keys", .type = HF_CFG_ARRAY, .required = true, .dst = &keys, .min = 1,
		  .max = HF_INSTR_MAX_TRUST_KEYS },
		{ .key = "fleet_threshold", .type = HF_CFG_UINT, .dst = &threshold, .min = 1,
		  .max = HF_INSTR_MAX_TRUST_KEYS },
	};
	hf_trust *t;
	int r;

	*out = NULL;
	r = hf_cfg_read(root, "", fields, HF_ARRAY_SIZE(fields), eb);
	if (r < 0)
		return r;
	t = calloc(1, sizeof *t);
	if (!t)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	t->threshold = (unsigned)threshold;
	r = load_keys(keys, t, eb);
	if (r < 0) {
		hf_trust_free(t);
		return r;
	}
	*out = t;
	return 0;
}

int hf_trust_load(const char *path, hf_trust **out, hf_errbuf *eb)
{
	json_t *root;
	int r;

	*out = NULL;
	r = hf_cfg_load_file(path, TRUST_FILE_MAX, &root, eb);
	if (r < 0)
		return r;
	r = hf_trust_from_json(root, out, eb);
	json_decref(root);
	if (r < 0)
		return hf_fail_prefix(eb, r, "%s", path);
	return 0;
}

size_t hf_trust_count(const hf_trust *t)
{
	return t ? t->n : 0;
}

unsigned hf_trust_fleet_threshold(const hf_trust *t)
{
	return t ? t->threshold : 0;
}

size_t hf_trust_count_role(const hf_trust *t, hf_role role)
{
	size_t c = 0;
	for (size_t i = 0; t && i < t->n; i++)
		c += t->e[i].role == role;
	return c;
}

const hf_key *hf_trust_find(const hf_trust *t, const char *keyid, hf_role *role,
			    const char **name)
{
	for (size_t i = 0; t && keyid && i < t->n; i++) {
		if (strcmp(t->e[i].id, keyid) == 0) {
			if (role)
				*role = t->e[i].role;
			if (name)
				*name = t->e[i].name;
			return t->e[i].key;
		}
	}
	return NULL;
}

bool hf_trust_entry(const hf_trust *t, size_t i, const hf_key **key, hf_role *role,
		    const char **name)
{
	if (!t || i >= t->n)
		return false;
	if (key)
		*key = t->e[i].key;
	if (role)
		*role = t->e[i].role;
	if (name)
		*name = t->e[i].name;
	return true;
}

void hf_trust_free(hf_trust *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		hf_key_free(t->e[i].key);
	free(t->e);
	free(t);
}
