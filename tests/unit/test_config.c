/* Unit tests for hf_config: strict parsing, every kind of bad field, unknown keys, truncated
 * JSON, duplicate keys, huge files, JSON paths in messages. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"
#include "hf_util.h"

typedef struct sample {
	char name[16];
	uint64_t port;
	int64_t offset;
	double ratio;
	bool enabled;
	int level;
	const json_t *sub;
	const json_t *list;
	bool name_present;
} sample;

static const char *const levels[] = { "low", "high", NULL };

static int read_sample(const char *text, sample *s, hf_errbuf *eb)
{
	json_t *root;
	int r = hf_cfg_parse(text, strlen(text), "t.json", &root, eb);
	if (r < 0)
		return r;
	hf_cfg_field f[] = {
		{ .key = "name", .type = HF_CFG_STRING, .required = true, .dst = s->name,
		  .dst_size = sizeof s->name, .min = 2, .present = &s->name_present },
		{ .key = "port", .type = HF_CFG_UINT, .dst = &s->port, .min = 1, .max = 65535 },
		{ .key = "offset", .type = HF_CFG_INT, .dst = &s->offset, .min = -10, .max = 10 },
		{ .key = "ratio", .type = HF_CFG_NUMBER, .dst = &s->ratio, .min = 0, .max = 1 },
		{ .key = "enabled", .type = HF_CFG_BOOL, .dst = &s->enabled },
		{ .key = "level", .type = HF_CFG_ENUM, .dst = &s->level, .choices = levels },
		{ .key = "sub", .type = HF_CFG_OBJECT, .dst = &s->sub },
		{ .key = "list", .type = HF_CFG_ARRAY, .dst = &s->list, .max = 3 },
	};
	r = hf_cfg_read(root, "", f, HF_ARRAY_SIZE(f), eb);
	json_decref(root);
	return r;
}

static void expect_error(const char *text, int code, const char *msg)
{
	sample s = { .port = 7 };
	hf_errbuf eb;
	hf_errbuf_clear(&eb);
	int r = read_sample(text, &s, &eb);
	cr_assert_eq(r, code, "%s -> %d (%s), expected %d", text, r, eb.msg, code);
	cr_assert(strstr(eb.msg, msg), "message \"%s\" lacks \"%s\"", eb.msg, msg);
	cr_assert_eq(s.port, 7, "a refused object must not write any destination");
}

Test(config, good_object_fills_every_field)
{
	sample s = { .port = 7, .level = 0 };
	hf_errbuf eb;
	cr_assert_eq(read_sample("{\"name\":\"abc\",\"port\":8080,\"offset\":-3,\"ratio\":0.25,"
				 "\"enabled\":true,\"level\":\"high\",\"sub\":{},\"list\":[1,2]}",
				 &s, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(s.name, "abc");
	cr_assert_eq(s.port, 8080);
	cr_assert_eq(s.offset, -3);
	cr_assert_float_eq(s.ratio, 0.25, 1e-12);
	cr_assert(s.enabled);
	cr_assert_eq(s.level, 1);
	cr_assert(s.name_present);
}

Test(config, absent_optional_keys_keep_defaults)
{
	sample s = { .port = 7, .ratio = 0.5 };
	hf_errbuf eb;
	cr_assert_eq(read_sample("{\"name\":\"abc\"}", &s, &eb), 0);
	cr_assert_eq(s.port, 7);
	cr_assert_float_eq(s.ratio, 0.5, 1e-12);
}

Test(config, unknown_key_is_named_with_the_expected_ones)
{
	expect_error("{\"name\":\"abc\",\"prot\":1}", HF_ECONFIG,
		     "prot: unknown key (expected one of: name, port, offset, ratio, enabled, level, sub, list)");
}

Test(config, missing_required_key)
{
	expect_error("{\"port\":1}", HF_ECONFIG, "name: missing (required)");
}

Test(config, wrong_types_name_the_field_and_the_value)
{
	expect_error("{\"name\":5}", HF_ECONFIG, "name: expected a string, got integer 5");
	expect_error("{\"name\":\"ab\",\"port\":\"80\"}", HF_ECONFIG,
		     "port: expected an integer from 1 to 65535, got string \"80\"");
	expect_error("{\"name\":\"ab\",\"port\":1.5}", HF_ECONFIG, "port: expected an integer");
	expect_error("{\"name\":\"ab\",\"enabled\":1}", HF_ECONFIG, "enabled: expected true or false, got integer 1");
	expect_error("{\"name\":\"ab\",\"ratio\":\"x\"}", HF_ECONFIG, "ratio: expected a number from 0 to 1");
	expect_error("{\"name\":\"ab\",\"sub\":[]}", HF_ECONFIG, "sub: expected an object, got an array");
	expect_error("{\"name\":\"ab\",\"list\":{}}", HF_ECONFIG, "list: expected an array, got an object");
	expect_error("{\"name\":null}", HF_ECONFIG, "name: expected a string, got null");
}

Test(config, out_of_range_values)
{
	expect_error("{\"name\":\"ab\",\"port\":0}", HF_ECONFIG, "port: expected an integer from 1 to 65535, got integer 0");
	expect_error("{\"name\":\"ab\",\"port\":65536}", HF_ECONFIG, "port: expected an integer from 1 to 65535");
	expect_error("{\"name\":\"ab\",\"port\":-1}", HF_ECONFIG, "port: expected an integer from 1 to 65535");
	expect_error("{\"name\":\"ab\",\"offset\":11}", HF_ECONFIG, "offset: expected an integer from -10 to 10");
	expect_error("{\"name\":\"ab\",\"ratio\":1.01}", HF_ECONFIG, "ratio: expected a number from 0 to 1");
	expect_error("{\"name\":\"ab\",\"level\":\"mid\"}", HF_ECONFIG, "level: expected one of \"low\", \"high\", got string \"mid\"");
	expect_error("{\"name\":\"ab\",\"list\":[1,2,3,4]}", HF_ECONFIG, "list: 4 elements, at most 3 allowed");
	expect_error("{\"name\":\"a\"}", HF_ECONFIG, "name: string too short");
	expect_error("{\"name\":\"0123456789abcdef\"}", HF_ECONFIG, "name: string too long (16 bytes, at most 15)");
	expect_error("{\"name\":\"a\\u0000b\"}", HF_EPARSE, "is not allowed");
}

Test(config, truncated_and_invalid_json)
{
	expect_error("{\"name\":\"abc\",", HF_EPARSE, "t.json:1:");
	expect_error("", HF_EPARSE, "invalid JSON");
	expect_error("{\"name\":\"abc\"} trailing", HF_EPARSE, "invalid JSON");
	expect_error("[1,2]", HF_ECONFIG, "expected a JSON object at the top level");
}

Test(config, duplicate_keys_are_refused)
{
	expect_error("{\"name\":\"abc\",\"name\":\"def\"}", HF_EPARSE, "duplicate");
}

Test(config, nested_paths)
{
	char p[HF_CFG_PATH_MAX];
	json_t *root;
	hf_errbuf eb;
	const json_t *api = NULL;
	uint64_t port = 0;
	hf_cfg_field top[] = { { .key = "api", .type = HF_CFG_OBJECT, .dst = &api } };
	hf_cfg_field inner[] = { { .key = "port", .type = HF_CFG_UINT, .dst = &port, .max = 10 } };

	cr_assert_eq(hf_cfg_parse("{\"api\":{\"port\":11}}", 19, "n", &root, &eb), 0);
	cr_assert_eq(hf_cfg_read(root, "", top, 1, &eb), 0);
	cr_assert_eq(hf_cfg_read(api, "api", inner, 1, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "api.port: expected an integer from 0 to 10, got integer 11"), "%s", eb.msg);
	json_decref(root);
	hf_cfg_path_key(p, sizeof p, "", "x");
	cr_assert_str_eq(p, "x");
	hf_cfg_path_key(p, sizeof p, "a.b", "x");
	cr_assert_str_eq(p, "a.b.x");
	hf_cfg_path_index(p, sizeof p, "mining.pools", 2);
	cr_assert_str_eq(p, "mining.pools[2]");
}

Test(config, load_file_caps_size_and_rejects_nul)
{
	char path[] = "/tmp/hf_cfg_test_XXXXXX";
	int fd = mkstemp(path);
	json_t *root = NULL;
	hf_errbuf eb;
	cr_assert_geq(fd, 0);
	/* A huge file: 2 MiB of whitespace around an object. */
	char *big = malloc(2u << 20);
	memset(big, ' ', 2u << 20);
	big[0] = '{';
	big[(2u << 20) - 1] = '}';
	cr_assert_eq(write(fd, big, 2u << 20), (ssize_t)(2u << 20));
	free(big);
	close(fd);
	cr_assert_eq(hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, &eb), HF_ETOOBIG);
	cr_assert(strstr(eb.msg, "over the limit of 1048576"), "%s", eb.msg);
	cr_assert_null(root);

	FILE *f = fopen(path, "wb");
	fwrite("{\"a\":1}\0", 1, 8, f);
	fclose(f);
	cr_assert_eq(hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, &eb), HF_EPARSE);
	cr_assert(strstr(eb.msg, "NUL byte"), "%s", eb.msg);

	f = fopen(path, "wb");
	fputs("{\"a\":1}\n", f);
	fclose(f);
	cr_assert_eq(hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, &eb), 0);
	cr_assert_eq(json_integer_value(json_object_get(root, "a")), 1);
	json_decref(root);
	unlink(path);
	cr_assert_eq(hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, &eb), HF_ENOTFOUND);
	cr_assert(strstr(eb.msg, "no such file"));
}

Test(config, describe_values)
{
	char d[96];
	json_t *v = json_string("a very long string that goes on and on beyond forty characters");
	hf_cfg_describe(v, d, sizeof d);
	cr_assert(strstr(d, "...\""), "%s", d);
	json_decref(v);
	v = json_real(2.5);
	hf_cfg_describe(v, d, sizeof d);
	cr_assert_str_eq(d, "number 2.5");
	json_decref(v);
}
