/* Unit tests for hf_node_state: round trip, missing, corrupt, quarantine. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_node_state.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/hf_state_test_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(node_state, .init = setup, .fini = teardown);

static void put(const char *text)
{
	char path[128];
	snprintf(path, sizeof path, "%s/state.json", dir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

Test(node_state, round_trip)
{
	hf_node_state st = { .desired_mode = HF_MODE_MINING }, back;
	hf_errbuf eb;
	st.mode_params = json_pack("{s:[{s:s}]}", "pools", "url", "stratum+tcp://127.0.0.1:3333");
	st.last_issued_ms = 1795000000123ull;
	st.hold_until_ms = 1795000999000ull;
	st.last_instruction = json_pack("{s:s}", "mode", "mining");
	cr_assert_eq(hf_node_state_save(dir, &st, &eb), 0, "%s", eb.msg);
	cr_assert_gt(st.updated_ms, 0);
	cr_assert_eq(hf_node_state_load(dir, &back, &eb), 0, "%s", eb.msg);
	cr_assert_eq(back.desired_mode, HF_MODE_MINING);
	cr_assert(json_equal(back.mode_params, st.mode_params));
	cr_assert(json_equal(back.last_instruction, st.last_instruction));
	cr_assert_eq(back.last_issued_ms, 1795000000123ull);
	cr_assert_eq(back.hold_until_ms, 1795000999000ull);
	cr_assert_eq(back.updated_ms, st.updated_ms);
	hf_node_state_clear(&st);
	hf_node_state_clear(&back);
}

Test(node_state, missing_is_not_found)
{
	hf_node_state st;
	cr_assert_eq(hf_node_state_load(dir, &st, NULL), HF_ENOTFOUND);
}

Test(node_state, corrupt_files_are_refused_and_quarantined)
{
	hf_node_state st;
	hf_errbuf eb;
	char moved[512];
	put("{\"v\":1,\"desired_mode\":\"mining\"");
	cr_assert_eq(hf_node_state_load(dir, &st, &eb), HF_EPARSE);
	put("{\"v\":2,\"desired_mode\":\"mining\"}");
	cr_assert_eq(hf_node_state_load(dir, &st, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "v: expected an integer from 1 to 1"), "%s", eb.msg);
	put("{\"v\":1,\"desired_mode\":\"turbo\"}");
	cr_assert_eq(hf_node_state_load(dir, &st, &eb), HF_ECONFIG);
	put("{\"v\":1,\"desired_mode\":\"idle\",\"extra\":1}");
	cr_assert_eq(hf_node_state_load(dir, &st, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "extra: unknown key"));
	cr_assert_eq(hf_node_state_quarantine(dir, moved, sizeof moved, &eb), 0);
	cr_assert(strstr(moved, "/state.json.corrupt-"));
	cr_assert_eq(access(moved, F_OK), 0);
	cr_assert_eq(hf_node_state_load(dir, &st, &eb), HF_ENOTFOUND);
}

Test(node_state, null_optionals_are_accepted)
{
	hf_node_state st;
	put("{\"v\":1,\"desired_mode\":\"inference\",\"mode_params\":null,\"last_instruction\":null}");
	cr_assert_eq(hf_node_state_load(dir, &st, NULL), 0);
	cr_assert_eq(st.desired_mode, HF_MODE_INFERENCE);
	cr_assert_null(st.mode_params);
	hf_node_state_clear(&st);
}
