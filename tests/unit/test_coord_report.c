/* Unit tests for hf_coord_report: the node report v1 accepted whole (the summary's values),
 * every field refused with its path (types, enumerations, negatives, non-finite numbers,
 * unknown keys at every level, caps), node and fleet mismatches, strings cleaned. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hf_coord_report.h"

static const char *good =
	"{\"v\":1,\"node\":\"n1\",\"fleet\":\"lab\",\"wall_ms\":1700000000000,\"seq\":7,"
	"\"version\":\"0.1.0\",\"applied_issued_ms\":1699999999000,\"mode\":\"mining\","
	"\"desired_mode\":\"mining\",\"phase\":\"running\",\"converged\":true,"
	"\"convergence\":\"converged\",\"hashrate_hs\":123456789.5,\"flops\":0,\"inferences_per_s\":0,"
	"\"power\":{\"watts\":95.25,\"joules_total\":5000,\"source\":\"rapl\",\"boundary\":\"package\","
	"\"estimated\":false,\"window_s\":60,\"window_watts\":94,\"mh_per_j\":1.3,\"gflop_per_j\":0,"
	"\"inferences_per_j\":0},\"last_switch\":{\"seq\":2,\"from\":\"idle\",\"to\":\"mining\","
	"\"trigger\":\"coordinator\",\"total_ms\":812,\"drain_ms\":0,\"release_ms\":1,\"start_ms\":811,"
	"\"result\":\"ok\",\"requested_wall_ms\":1699999999100}}";

/* good with the first `from` replaced by `to`. */
static char *edit(const char *from, const char *to)
{
	static char buf[8192];
	const char *at = strstr(good, from);
	cr_assert_not_null(at, "%s", from);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
	return buf;
}

static void refused(const char *text, int code, const char *path)
{
	hf_coord_report_sum sum;
	hf_errbuf eb;
	json_t *out = NULL;
	int r = hf_coord_report_parse(text, strlen(text), "n1", "lab", &out, &sum, &eb);
	cr_assert_eq(r, code, "got %d (%s) for %s", r, eb.msg, text);
	cr_assert_null(out);
	cr_assert_eq(strncmp(eb.msg, path, strlen(path)), 0, "\"%s\" does not start with \"%s\"",
		     eb.msg, path);
}

Test(coord_report, a_full_report)
{
	hf_coord_report_sum s;
	hf_errbuf eb;
	json_t *out;

	cr_assert_eq(hf_coord_report_parse(good, strlen(good), "n1", "lab", &out, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.wall_ms, 1700000000000ull);
	cr_assert_eq(s.seq, 7);
	cr_assert_eq(s.applied_issued_ms, 1699999999000ull);
	cr_assert_str_eq(s.mode, "mining");
	cr_assert_str_eq(s.desired_mode, "mining");
	cr_assert_str_eq(s.phase, "running");
	cr_assert_str_eq(s.convergence, "converged");
	cr_assert(s.converged);
	cr_assert_float_eq(s.hashrate_hs, 123456789.5, 1e-6);
	cr_assert(s.has_power);
	cr_assert_float_eq(s.watts, 95.25, 1e-9);
	cr_assert_str_eq(s.power_source, "rapl");
	cr_assert_str_eq(s.version, "0.1.0");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "last_switch"),
			 "trigger")), "coordinator");
	json_decref(out);
}

Test(coord_report, nulls_and_optional_fields)
{
	const char *text = "{\"v\":1,\"node\":\"n1\",\"fleet\":\"lab\",\"wall_ms\":1,\"seq\":0,"
		"\"applied_issued_ms\":0,\"mode\":\"idle\",\"desired_mode\":\"idle\",\"phase\":\"stopped\","
		"\"converged\":false,\"convergence\":\"switching\",\"power\":null,\"last_switch\":null}";
	hf_coord_report_sum s;
	hf_errbuf eb;
	json_t *out;

	cr_assert_eq(hf_coord_report_parse(text, strlen(text), "n1", "lab", &out, &s, &eb), 0, "%s", eb.msg);
	cr_assert_not(s.has_power);
	cr_assert_not(s.converged);
	cr_assert_eq(s.hashrate_hs, 0);
	json_decref(out);
}

Test(coord_report, every_field_checked)
{
	refused("[1]", HF_EPARSE, "report");
	refused("{\"v\":1,", HF_EPARSE, "report: not JSON");
	refused(edit("\"v\":1", "\"v\":2"), HF_ECONFIG, "v: expected 1");
	refused(edit("\"v\":1,", ""), HF_ECONFIG, "v: missing");
	refused(edit("\"seq\":7", "\"seq\":7,\"extra\":1"), HF_ECONFIG, "extra: unknown key");
	refused(edit("\"wall_ms\":1700000000000", "\"wall_ms\":-1"), HF_ECONFIG, "wall_ms");
	refused(edit("\"wall_ms\":1700000000000", "\"wall_ms\":1.5"), HF_ECONFIG, "wall_ms");
	refused(edit("\"applied_issued_ms\":1699999999000", "\"applied_issued_ms\":\"x\""), HF_ECONFIG,
		"applied_issued_ms");
	refused(edit("\"mode\":\"mining\"", "\"mode\":\"MINING\""), HF_ECONFIG, "mode");
	refused(edit("\"desired_mode\":\"mining\"", "\"desired_mode\":null"), HF_ECONFIG, "desired_mode");
	refused(edit("\"phase\":\"running\"", "\"phase\":\"sleeping\""), HF_ECONFIG, "phase");
	refused(edit("\"converged\":true", "\"converged\":1"), HF_ECONFIG, "converged");
	refused(edit("\"convergence\":\"converged\"", "\"convergence\":\"done\""), HF_ECONFIG, "convergence");
	refused(edit("\"hashrate_hs\":123456789.5", "\"hashrate_hs\":-0.5"), HF_ECONFIG, "hashrate_hs");
	refused(edit("\"flops\":0", "\"flops\":\"fast\""), HF_ECONFIG, "flops");
	refused(edit("\"inferences_per_s\":0", "\"inferences_per_s\":null"), HF_ECONFIG, "inferences_per_s");
	refused("{\"v\":1,\"node\":\"n1\",\"fleet\":\"lab\",\"wall_ms\":1,\"seq\":0,"
		"\"applied_issued_ms\":0,\"mode\":\"idle\",\"desired_mode\":\"idle\",\"phase\":\"stopped\","
		"\"converged\":false,\"convergence\":\"switching\",\"power\":[]}", HF_ECONFIG,
		"power: expected an object or null");
	refused(edit("\"watts\":95.25", "\"watts\":-3"), HF_ECONFIG, "power.watts");
	refused(edit("\"watts\":95.25", "\"volts\":3,\"watts\":1"), HF_ECONFIG, "power.volts: unknown key");
	refused(edit("\"estimated\":false", "\"estimated\":\"no\""), HF_ECONFIG, "power.estimated");
	refused(edit("\"estimated\":false,", ""), HF_ECONFIG, "power.estimated: missing");
	refused(edit("\"mh_per_j\":1.3", "\"mh_per_j\":-1.3"), HF_ECONFIG, "power.mh_per_j");
	refused(edit("\"from\":\"idle\"", "\"from\":\"nap\""), HF_ECONFIG, "last_switch.from");
	refused(edit("\"total_ms\":812", "\"total_ms\":-812"), HF_ECONFIG, "last_switch.total_ms");
	refused(edit("\"requested_wall_ms\":1699999999100", "\"requested_wall_ms\":true"), HF_ECONFIG,
		"last_switch.requested_wall_ms");
	refused(edit("\"seq\":7", "\"seq\":7,\"seq\":8"), HF_EPARSE, "report: not JSON");
	refused(edit("\"node\":\"n1\"", "\"node\":\"n2\""), HF_EREFUSED, "node");
	refused(edit("\"fleet\":\"lab\"", "\"fleet\":\"prod\""), HF_EREFUSED, "fleet");
}

Test(coord_report, strings_capped_and_cleaned)
{
	char big[300], text[8192];
	hf_coord_report_sum s;
	hf_errbuf eb;
	json_t *out;

	memset(big, 'a', 65);
	big[65] = '\0';
	snprintf(text, sizeof text, "\"version\":\"%s\"", big);
	refused(edit("\"version\":\"0.1.0\"", text), HF_ECONFIG, "version: expected a string of at most 64");
	memset(big, 'r', 257);
	big[257] = '\0';
	snprintf(text, sizeof text, "\"result\":\"%s\"", big);
	refused(edit("\"result\":\"ok\"", text), HF_ECONFIG, "last_switch.result");
	/* A control character (a forged log line) and an escape are replaced. */
	const char *dirty = edit("\"version\":\"0.1.0\"", "\"version\":\"0.1\\n<0>\\u001b[31m\"");
	cr_assert_eq(hf_coord_report_parse(dirty, strlen(dirty), "n1", "lab", &out, &s, &eb), 0, "%s", eb.msg);
	cr_assert_str_eq(s.version, "0.1?<0>?[31m");
	cr_assert_str_eq(json_string_value(json_object_get(out, "version")), "0.1?<0>?[31m");
	json_decref(out);
}
