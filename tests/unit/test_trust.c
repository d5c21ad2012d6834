/* Unit tests for hf_trust: loading trust.json, roles, thresholds, and errors that name the entry. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_instr.h"

static hf_key *keys[3];
static char *pems[3];
static char ids[3][17];

static void setup(void)
{
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(hf_key_generate(&keys[i], NULL), 0);
		cr_assert_eq(hf_key_public_pem(keys[i], &pems[i], NULL), 0);
		hf_key_id(keys[i], ids[i]);
	}
}

static void teardown(void)
{
	for (int i = 0; i < 3; i++) {
		hf_key_free(keys[i]);
		free(pems[i]);
	}
}

TestSuite(trust, .init = setup, .fini = teardown);

static json_t *entry(int i, const char *role)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "keyid", ids[i], "role", role,
			 "public_key_pem", pems[i], "name", "k");
}

static json_t *good_file(void)
{
	return json_pack("{s:[o, o, o], s:i}", "keys", entry(0, "operator"), entry(1, "operator"),
			 entry(2, "coordinator"), "fleet_threshold", 2);
}

static char *read_text(const char *path)
{
	char *buf = calloc(1, 4096);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_gt(fread(buf, 1, 4095, f), 0);
	fclose(f);
	return buf;
}

/* Loads root (consumed) expecting failure; returns the message. */
static const char *load_fail(json_t *root, int code)
{
	static hf_errbuf eb;
	hf_trust *t = NULL;
	cr_assert_eq(hf_trust_from_json(root, &t, &eb), code, "expected %d: %s", code, eb.msg);
	cr_assert_null(t);
	json_decref(root);
	return eb.msg;
}

Test(trust, loads_roles_threshold_and_finds_keys)
{
	json_t *root = good_file();
	hf_trust *t = NULL;
	hf_errbuf eb;
	hf_role role = 0;
	const char *name = NULL;
	const hf_key *k;

	cr_assert_eq(hf_trust_from_json(root, &t, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_trust_count(t), 3);
	cr_assert_eq(hf_trust_fleet_threshold(t), 2);
	cr_assert_eq(hf_trust_count_role(t, HF_ROLE_OPERATOR), 2);
	cr_assert_eq(hf_trust_count_role(t, HF_ROLE_COORDINATOR), 1);
	k = hf_trust_find(t, ids[2], &role, &name);
	cr_assert_not_null(k);
	cr_assert_eq(role, HF_ROLE_COORDINATOR);
	cr_assert_str_eq(name, "k");
	cr_assert_null(hf_trust_find(t, "0000000000000000", NULL, NULL));
	cr_assert(hf_trust_entry(t, 1, &k, &role, &name));
	cr_assert_eq(role, HF_ROLE_OPERATOR);
	cr_assert_not(hf_trust_entry(t, 3, &k, &role, &name));
	cr_assert_str_eq(hf_role_name(HF_ROLE_OPERATOR), "operator");
	cr_assert_str_eq(hf_role_name(HF_ROLE_COORDINATOR), "coordinator");
	hf_trust_free(t);
	json_decref(root);
}

Test(trust, default_threshold_and_optional_fields)
{
	json_t *root = json_pack("{s:[{s:s, s:s}]}", "keys", "role", "operator", "public_key_pem",
				 pems[0]);
	hf_trust *t = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_trust_from_json(root, &t, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_trust_fleet_threshold(t), 2);
	cr_assert_not_null(hf_trust_find(t, ids[0], NULL, NULL));
	hf_trust_free(t);
	hf_trust_free(NULL);
	json_decref(root);
}

Test(trust, errors_name_the_entry)
{
	json_t *root;
	const char *m;

	root = good_file();
	json_object_set_new(json_array_get(json_object_get(root, "keys"), 1), "role", json_string("admin"));
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[1].role:", 13), 0, "%s", m);

	root = good_file();
	json_object_set_new(json_array_get(json_object_get(root, "keys"), 2), "public_key_pem",
			    json_string("not a key"));
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[2].public_key_pem:", 23), 0, "%s", m);

	root = good_file();
	json_object_set_new(json_array_get(json_object_get(root, "keys"), 0), "keyid",
			    json_string(ids[1]));
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[0].keyid:", 14), 0, "%s", m);

	root = good_file();
	json_object_set_new(json_array_get(json_object_get(root, "keys"), 1), "colour", json_true());
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[1].colour: unknown key", 27), 0, "%s", m);

	root = good_file();
	json_object_del(json_array_get(json_object_get(root, "keys"), 1), "public_key_pem");
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[1].public_key_pem: missing", 31), 0, "%s", m);

	root = good_file();
	json_object_set_new(json_array_get(json_object_get(root, "keys"), 1), "name",
			    json_string("bad\nname"));
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[1].name:", 13), 0, "%s", m);
}

Test(trust, duplicate_key_and_private_key_refused)
{
	json_t *root = good_file();
	char *priv_pem;
	char dir[] = "/tmp/hf_test_trust_XXXXXX", path[256];
	const char *m;

	json_array_append_new(json_object_get(root, "keys"), entry(0, "coordinator"));
	m = load_fail(root, HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[3]:", 8), 0, "%s", m);
	cr_assert_not_null(strstr(m, "keys[0]"), "%s", m);

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/k.pem", dir);
	cr_assert_eq(hf_key_write_private_pem(keys[0], path, NULL), 0);
	priv_pem = read_text(path);
	root = json_pack("{s:[{s:s, s:s}]}", "keys", "role", "operator", "public_key_pem", priv_pem);
	m = load_fail(root, HF_ECONFIG);
	cr_assert_not_null(strstr(m, "private key"), "%s", m);
	free(priv_pem);
	unlink(path);
	rmdir(dir);
}

Test(trust, top_level_errors)
{
	const char *m;
	m = load_fail(json_pack("{}"), HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys: missing", 13), 0, "%s", m);
	m = load_fail(json_pack("{s:[]}", "keys"), HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys:", 5), 0, "%s", m);
	m = load_fail(json_pack("{s:[o], s:i}", "keys", entry(0, "operator"), "fleet_threshold", 0),
		      HF_ECONFIG);
	cr_assert_eq(strncmp(m, "fleet_threshold:", 16), 0, "%s", m);
	m = load_fail(json_pack("{s:[o], s:b}", "keys", entry(0, "operator"), "threshold", 1),
		      HF_ECONFIG);
	cr_assert_eq(strncmp(m, "threshold: unknown key", 22), 0, "%s", m);
	m = load_fail(json_pack("{s:[s]}", "keys", "x"), HF_ECONFIG);
	cr_assert_eq(strncmp(m, "keys[0]:", 8), 0, "%s", m);
}

Test(trust, load_file_prefixes_path)
{
	char dir[] = "/tmp/hf_test_trust_XXXXXX", path[256];
	hf_trust *t = NULL;
	hf_errbuf eb;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/trust.json", dir);
	cr_assert_eq(hf_trust_load(path, &t, &eb), HF_ENOTFOUND);
	f = fopen(path, "w");
	fputs("{\"keys\": [], \"keys\": []}", f);
	fclose(f);
	cr_assert_eq(hf_trust_load(path, &t, &eb), HF_EPARSE, "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "duplicate"), "%s", eb.msg);
	f = fopen(path, "w");
	fputs("{\"keys\": [{\"role\": \"boss\"}]}", f);
	fclose(f);
	cr_assert_eq(hf_trust_load(path, &t, &eb), HF_ECONFIG);
	cr_assert_not_null(strstr(eb.msg, "trust.json: keys[0].role"), "%s", eb.msg);
	json_t *root = good_file();
	cr_assert_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
	json_decref(root);
	cr_assert_eq(hf_trust_load(path, &t, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_trust_count(t), 3);
	hf_trust_free(t);
	unlink(path);
	rmdir(dir);
}
