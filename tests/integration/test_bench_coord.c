/* Integration tests for `hashflop-bench coord`: the real program against the real hashflop-coord
 * it starts, at a small scale (200 nodes, 2 decisions per kind), read through its --json output:
 * every polling node got every envelope of every decision (count = nodes * decisions, for the
 * operator relays and for the coordinator's own decisions), the latencies are ordered, reports
 * were answered and costed, RSS was read, nothing was refused. This tests the tool, not the
 * speed: no timing figure is asserted. Bad options are refused with the option named.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hf_testproc.h"

static char *dir;

static void setup(void)
{
	dir = hf_test_tmpdir("bench-coord");
	cr_assert_not_null(dir);
}

static void teardown(void)
{
	free(dir);
}

TestSuite(bench_coord, .init = setup, .fini = teardown);

/* Runs hashflop-bench coord with args (NULL-terminated); the exit status, and the output in
 * *out (stdout and stderr). */
static int bench(char **out, const char *log_name, const char *const *args)
{
	char exe[4096], log[4096];
	const char *argv[40] = { exe, "coord" };
	size_t n = 2;
	snprintf(exe, sizeof exe, "%s/benchmarks/hashflop-bench", hf_test_build_root());
	snprintf(log, sizeof log, "%s/%s.log", dir, log_name);
	for (size_t i = 0; args[i] && n < 39; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	hf_testproc *p = hf_testproc_start(argv, log);
	cr_assert_not_null(p, "cannot start %s", exe);
	int st = 0;
	cr_assert(hf_testproc_wait_exit(p, 240000, &st), "hashflop-bench coord did not exit");
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	cr_assert_not_null(*out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const json_t *at(const json_t *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const json_t *v = j;
	for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		v = json_object_get(v, k);
		cr_assert_not_null(v, "no \"%s\" in the JSON (at \"%s\")", path, k);
	}
	return v;
}

static double num(const json_t *j, const char *path)
{
	const json_t *v = at(j, path);
	cr_assert(json_is_number(v), "\"%s\" is not a number", path);
	return json_number_value(v);
}

/* One kind of decision: every node got each of the 2 envelopes, latencies ordered. */
static void check_fanout(const json_t *doc, const char *kind, const char *out)
{
	char p[128];
	snprintf(p, sizeof p, "fanout.%s.count", kind);
	cr_assert_eq(num(doc, p), 200.0 * 2, "%s: %s", p, out);
	snprintf(p, sizeof p, "fanout.%s.expected", kind);
	cr_assert_eq(num(doc, p), 400.0, "%s: %s", p, out);
	snprintf(p, sizeof p, "fanout.%s.missing", kind);
	cr_assert_eq(num(doc, p), 0.0, "%s: %s", p, out);
	snprintf(p, sizeof p, "fanout.%s.decisions", kind);
	cr_assert_eq(num(doc, p), 2.0);
	char a[128], b[128], c[128];
	snprintf(a, sizeof a, "fanout.%s.p50_ms", kind);
	snprintf(b, sizeof b, "fanout.%s.p99_ms", kind);
	snprintf(c, sizeof c, "fanout.%s.max_ms", kind);
	cr_assert_gt(num(doc, a), 0.0, "%s", out);
	cr_assert_leq(num(doc, a), num(doc, b));
	cr_assert_leq(num(doc, b), num(doc, c));
	snprintf(p, sizeof p, "fanout.%s.per_decision", kind);
	const json_t *per = at(doc, p);
	cr_assert_eq(json_array_size(per), 2);
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(per, i), "nodes")), 200);
}

Test(bench_coord, every_node_gets_every_envelope_and_reports_are_costed)
{
	char json[4096], *out;
	snprintf(json, sizeof json, "%s/coord.json", dir);
	const char *args[] = { "--nodes", "200", "--decisions", "2", "--seconds", "3",
			       "--reports-per-node-s", "1", "--report-conns", "4", "--json", json,
			       NULL };
	int rc = bench(&out, "run", args);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
	char *text = hf_test_read_file(json);
	cr_assert_not_null(text, "no %s: %s", json, out);
	json_error_t e;
	json_t *doc = json_loads(text, 0, &e);
	cr_assert_not_null(doc, "bad JSON (%s): %s", e.text, text);

	cr_assert_eq(num(doc, "config.nodes"), 200.0);
	cr_assert_eq(num(doc, "config.polling_nodes"), 200.0, "%s", out);
	cr_assert_geq(num(doc, "config.addresses"), 2.0);
	check_fanout(doc, "relay", out);
	check_fanout(doc, "api", out);
	/* RSS read from /proc, more with the nodes connected than none */
	cr_assert_gt(num(doc, "rss.registered_kib"), 0.0);
	cr_assert_geq(num(doc, "rss.polling_kib"), num(doc, "rss.registered_kib") * 0.5);
	/* reports: 200 nodes every second for 3 s offered, answered, costed */
	cr_assert_eq(num(doc, "reports.interval.offered_per_s"), 200.0);
	cr_assert_gt(num(doc, "reports.interval.answered"), 0.0, "%s", out);
	cr_assert_eq(num(doc, "reports.interval.refused"), 0.0, "%s", out);
	cr_assert_gt(num(doc, "reports.saturated.answered"), num(doc, "reports.interval.answered") / 10,
		     "%s", out);
	cr_assert_gt(num(doc, "reports.saturated.coord_cpu_per_report_us"), 0.0, "%s", out);
	cr_assert_geq(num(doc, "reports.saturated.client_cpu_s"), 0.0);
	/* nothing refused, malformed or lost on the way */
	cr_assert_eq(num(doc, "errors.polls_other"), 0.0, "%s", text);
	cr_assert_eq(num(doc, "errors.reports_refused"), 0.0, "%s", text);
	cr_assert_eq(num(doc, "errors.parse_errors"), 0.0, "%s", text);
	cr_assert_geq(num(doc, "errors.polls_200"), 200.0 * 5, "%s", text); /* warm-up + 2 + 2 */
	cr_assert(json_is_true(at(doc, "bar.complete")), "%s", text);
	cr_assert(json_is_false(at(doc, "bar.met")), "200 nodes cannot meet the 10,000-node bar");
	json_decref(doc);
	free(text);
	free(out);
}

Test(bench_coord, bad_options_are_refused_by_name)
{
	char *out;
	const char *zero[] = { "--nodes", "0", NULL };
	cr_assert_eq(bench(&out, "zero", zero), 2, "%s", out);
	cr_assert_not_null(strstr(out, "bad value \"0\" for --nodes"), "%s", out);
	free(out);
	const char *url[] = { "--url", "http://127.0.0.1:1", NULL };
	cr_assert_eq(bench(&out, "url", url), 2, "%s", out);
	cr_assert_not_null(strstr(out, "--url and --prepare need --dir"), "%s", out);
	free(out);
	const char *unknown[] = { "--frobnicate", NULL };
	cr_assert_eq(bench(&out, "unknown", unknown), 2, "%s", out);
	cr_assert_not_null(strstr(out, "--frobnicate"), "%s", out);
	free(out);
}
