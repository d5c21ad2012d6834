/* Integration tests: the real hashflopd on 127.0.0.1 with an ephemeral port, queried with
 * libcurl, stopped with signals; checks the API, the clean exit and the persisted state. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_testproc.h"

typedef hf_test_reply http_result;

static void http(const char *method, int port, const char *path, http_result *r)
{
	char url[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	cr_assert(hf_test_http(method, url, strcmp(method, "POST") == 0 ? "{}" : NULL, 2, r),
		  "request %s %s failed", method, url);
}

typedef struct node {
	char *dir;
	char cfg[512], log[512], state[512], apifile[512];
	hf_testproc *proc;
	int port;
} node;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static void node_prepare(node *n, const char *name, const char *extra)
{
	char text[2048];
	memset(n, 0, sizeof *n);
	n->dir = hf_test_tmpdir(name);
	cr_assert_not_null(n->dir);
	snprintf(n->cfg, sizeof n->cfg, "%s/node.json", n->dir);
	snprintf(n->log, sizeof n->log, "%s/hashflopd.log", n->dir);
	snprintf(n->state, sizeof n->state, "%s/state", n->dir);
	snprintf(n->apifile, sizeof n->apifile, "%s/state/api.json", n->dir);
	snprintf(text, sizeof text,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"inference\": {\"port\": 0}%s}\n",
		 n->state, extra ? extra : "");
	write_file(n->cfg, text);
}

static const char *daemon_path(void)
{
	static char path[1024];
	snprintf(path, sizeof path, "%s/runtime/node/hashflopd", hf_test_build_root());
	return path;
}

static void node_start(node *n)
{
	char err[2048];

	n->proc = hf_test_start_hashflopd(n->cfg, n->log, n->state, 20000, &n->port, err, sizeof err);
	cr_assert_not_null(n->proc, "%s; log:\n%s", err, hf_test_read_file(n->log));
}

static int node_stop(node *n, int sig)
{
	int st = hf_testproc_stop(n->proc, sig, 15000);

	n->proc = NULL;
	cr_assert_neq(st, -1, "hashflopd did not exit after signal %d", sig);
	return st;
}

static void node_cleanup(node *n)
{
	hf_testproc_free(n->proc);
	free(n->dir);
}

Test(hashflopd, status_metrics_errors_and_clean_sigterm)
{
	http_result r;
	json_error_t jerr;
	node n;
	json_t *j;

	node_prepare(&n, "status", NULL);
	node_start(&n);

	http("GET", n.port, "/v1/status", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.headers, "Content-Type: application/json"));
	j = json_loads(r.body, 0, &jerr);
	cr_assert_not_null(j, "status is not JSON: %s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(j, "node")), "n1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "fleet")), "lab");
	cr_assert_str_eq(json_string_value(json_object_get(j, "mode")), "idle");
	cr_assert_str_eq(json_string_value(json_object_get(j, "phase")), "running");
	cr_assert_str_eq(json_string_value(json_object_get(j, "version")), HF_TEST_VERSION);
	cr_assert(json_is_number(json_object_get(j, "uptime_s")));
	cr_assert_geq(json_number_value(json_object_get(j, "uptime_s")), 0.0);
	cr_assert_lt(json_number_value(json_object_get(j, "uptime_s")), 60.0);
	cr_assert(json_is_null(json_object_get(j, "last_instruction")));
	json_t *sw = json_object_get(j, "last_switch");
	cr_assert(json_is_object(sw), "last_switch: %s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(sw, "to")), "idle");
	cr_assert(json_is_true(json_object_get(sw, "ok")));
	json_decref(j);

	http("GET", n.port, "/metrics", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.headers, "text/plain; version=0.0.4"));
	cr_assert(strstr(r.body, "hashflop_build_info{version=\"" HF_TEST_VERSION "\",node=\"n1\",fleet=\"lab\"} 1\n"), "%s", r.body);
	cr_assert(strstr(r.body, "hashflop_mode{mode=\"idle\"} 1\n"));
	cr_assert(strstr(r.body, "hashflop_mode{mode=\"mining\"} 0\n"));
	cr_assert(strstr(r.body, "# TYPE hashflop_mode_switches_total counter\n"));
	cr_assert(strstr(r.body, "hashflop_mode_switches_total 1\n"));
	cr_assert(strstr(r.body, "hashflop_mode_switch_duration_seconds_count 1\n"));
	cr_assert(strstr(r.body, "# TYPE hashflop_uptime_seconds gauge\n"));

	http("GET", n.port, "/v1/nope", &r);
	cr_assert_eq(r.status, 404);
	j = json_loads(r.body, 0, &jerr);
	cr_assert_not_null(j);
	cr_assert(strstr(json_string_value(json_object_get(j, "error")), "/v1/nope"));
	json_decref(j);

	http("POST", n.port, "/v1/status", &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.headers, "Allow: GET"), "%s", r.headers);
	http("DELETE", n.port, "/metrics", &r);
	cr_assert_eq(r.status, 405);

	int st = node_stop(&n, SIGTERM);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d; log:\n%s", st,
		  hf_test_read_file(n.log));
	cr_assert(hf_test_wait_log(n.log, "clean shutdown", 1000));
	cr_assert_eq(access(n.apifile, F_OK), -1, "api.json left behind after a clean exit");

	char path[600];
	snprintf(path, sizeof path, "%s/state.json", n.state);
	char *text = hf_test_read_file(path);
	cr_assert_not_null(text, "no persisted state");
	j = json_loads(text, 0, &jerr);
	cr_assert_not_null(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "desired_mode")), "idle");
	cr_assert_eq(json_integer_value(json_object_get(j, "v")), 1);
	json_decref(j);
	free(text);
	node_cleanup(&n);
}

Test(hashflopd, sigint_is_a_clean_shutdown_and_state_survives_restart)
{
	node n;
	node_prepare(&n, "restart", ", \"modes\": {\"initial\": \"idle\", \"drain_timeout_ms\": 2000}");
	node_start(&n);
	int st = node_stop(&n, SIGINT);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	node_start(&n);
	cr_assert(hf_test_wait_log(n.log, "restored desired mode idle", 5000), "log:\n%s",
		  hf_test_read_file(n.log));
	st = node_stop(&n, SIGTERM);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	node_cleanup(&n);
}

Test(hashflopd, corrupt_state_is_moved_aside_not_trusted)
{
	char path[600];
	node n;
	node_prepare(&n, "corrupt", NULL);
	mkdir(n.state, 0700);
	snprintf(path, sizeof path, "%s/state.json", n.state);
	write_file(path, "{\"v\": 1, \"desired_mode\": \"mining\", \"surprise\": tru");
	node_start(&n);
	cr_assert(hf_test_wait_log(n.log, "moved the refused state file to", 5000), "log:\n%s",
		  hf_test_read_file(n.log));
	http_result r;
	http("GET", n.port, "/v1/status", &r);
	cr_assert(strstr(r.body, "\"mode\":\"idle\""), "%s", r.body);
	cr_assert_eq(WEXITSTATUS(node_stop(&n, SIGTERM)), 0);
	char cmd[800];
	snprintf(cmd, sizeof cmd, "ls %s/state.json.corrupt-* >/dev/null 2>&1", n.state);
	cr_assert_eq(system(cmd), 0, "the corrupt file was not kept for inspection");
	node_cleanup(&n);
}

Test(hashflopd, second_daemon_on_the_same_state_dir_is_refused)
{
	node n;
	node_prepare(&n, "lock", NULL);
	node_start(&n);
	char log2[600];
	snprintf(log2, sizeof log2, "%s/second.log", n.dir);
	const char *argv[] = { daemon_path(), "--config", n.cfg, NULL };
	hf_testproc *p2 = hf_testproc_start(argv, log2);
	int st = -1;
	cr_assert(hf_testproc_wait_exit(p2, 15000, &st));
	hf_testproc_free(p2);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
	cr_assert(hf_test_wait_log(log2, "in use by another hashflopd", 1000), "%s", hf_test_read_file(log2));
	cr_assert_eq(WEXITSTATUS(node_stop(&n, SIGTERM)), 0);
	node_cleanup(&n);
}

Test(hashflopd, typo_in_config_names_the_key_and_exits_2)
{
	node n;
	node_prepare(&n, "typo", NULL);
	write_file(n.cfg, "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"api\": {\"listn\": \"127.0.0.1\"}}");
	const char *argv[] = { daemon_path(), "--config", n.cfg, NULL };
	hf_testproc *p = hf_testproc_start(argv, n.log);
	int st = -1;
	cr_assert(hf_testproc_wait_exit(p, 10000, &st));
	hf_testproc_free(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	cr_assert(hf_test_wait_log(n.log, "api.listn: unknown key (expected one of: listen, port, max_body_bytes, max_connections", 1000),
		  "%s", hf_test_read_file(n.log));
	node_cleanup(&n);
}

/* Runs hashflopd --check-config with the given arguments; returns its stdout (the log holds
 * stdout and stderr; nothing is written to stderr on success). */
static char *check_config(node *n, const char *config, const char *log, const char *extra_arg,
			  const char *extra_val)
{
	const char *argv[] = { daemon_path(), "--config", config, "--check-config", extra_arg,
			       extra_val, NULL };
	unlink(log);
	hf_testproc *p = hf_testproc_start(argv, log);
	int st = -1;
	cr_assert(hf_testproc_wait_exit(p, 10000, &st));
	hf_testproc_free(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, hf_test_read_file(log));
	char *text = hf_test_read_file(log);
	cr_assert_not_null(text);
	return text;
}

Test(hashflopd, check_config_prints_the_effective_config)
{
	char out1[600], log2[600], cfg2[600];
	node n;
	node_prepare(&n, "check", ", \"control\": {\"coordinator_url\": \"http://ops:s3cret@127.0.0.1:9/\"},"
		     " \"mining\": {\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:3333\", \"user\": \"bc1q.w1\","
		     " \"pass\": \"hunter2\"}], \"cpu\": {\"threads\": 2}}");
	snprintf(out1, sizeof out1, "%s/check1.out", n.dir);
	snprintf(log2, sizeof log2, "%s/check2.out", n.dir);
	snprintf(cfg2, sizeof cfg2, "%s/printed.json", n.dir);
	char *text = check_config(&n, n.cfg, out1, "--verbose", NULL);
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(j, "not strict JSON (%s at %d:%d):\n%s", jerr.text, jerr.line, jerr.column, text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "node_id")), "n1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "log_level")), "debug", "--verbose is part of it");
	json_t *api = json_object_get(j, "api"), *modes = json_object_get(j, "modes");
	json_t *ctl = json_object_get(j, "control"), *mining = json_object_get(j, "mining");
	cr_assert_eq(json_integer_value(json_object_get(api, "port")), 0);
	cr_assert_eq(json_integer_value(json_object_get(api, "max_body_bytes")), 1 << 20);
	cr_assert_eq(json_integer_value(json_object_get(modes, "drain_timeout_ms")), 10000);
	cr_assert_eq(json_integer_value(json_object_get(modes, "retry_min_ms")), 1000);
	cr_assert_str_eq(json_string_value(json_object_get(ctl, "trust_file")), "/etc/hashflop/trust.json");
	cr_assert_str_eq(json_string_value(json_object_get(ctl, "coordinator_url")), "http://ops:***@127.0.0.1:9/");
	cr_assert_eq(json_integer_value(json_object_get(mining, "range_bits")), 32);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(mining, "cpu"), "threads")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(mining, "pools"), 0),
							   "pass")), "***");
	cr_assert_null(strstr(text, "hunter2"), "a pool password was printed");
	cr_assert_null(strstr(text, "s3cret"), "a URL password was printed");
	json_decref(j);
	/* Fed back as node.json it gives the same effective config. */
	FILE *f = fopen(cfg2, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	char *again = check_config(&n, cfg2, log2, NULL, NULL);
	cr_assert_str_eq(again, text);
	free(again);
	free(text);
	cr_assert_eq(access(n.state, F_OK), -1, "--check-config must not create the state dir");
	node_cleanup(&n);
}

Test(hashflopd, check_config_reports_a_bad_file_and_exits_2)
{
	node n;
	node_prepare(&n, "check-bad", ", \"modes\": {\"retry_min_ms\": 9000, \"retry_max_ms\": 100}");
	const char *argv[] = { daemon_path(), "--config", n.cfg, "--check-config", NULL };
	hf_testproc *p = hf_testproc_start(argv, n.log);
	int st = -1;
	cr_assert(hf_testproc_wait_exit(p, 10000, &st));
	hf_testproc_free(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	cr_assert(hf_test_wait_log(n.log, "modes.retry_min_ms: 9000 is more than modes.retry_max_ms (100)", 1000),
		  "%s", hf_test_read_file(n.log));
	node_cleanup(&n);
}

Test(hashflopd, shipped_example_config_is_valid)
{
	char path[1024], log[600];
	node n;
	node_prepare(&n, "example", NULL);
	snprintf(path, sizeof path, "%s/packaging/examples/node.json", getenv("HF_SOURCE_ROOT"));
	snprintf(log, sizeof log, "%s/check.log", n.dir);
	const char *argv[] = { daemon_path(), "--config", path, "--check-config", NULL };
	hf_testproc *p = hf_testproc_start(argv, log);
	int st = -1;
	cr_assert(hf_testproc_wait_exit(p, 10000, &st));
	hf_testproc_free(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", hf_test_read_file(log));
	char *text = hf_test_read_file(log);
	json_t *j = json_loads(text, 0, NULL);
	cr_assert_not_null(j, "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "node_id")), "rack1-node07");
	json_decref(j);
	free(text);
	node_cleanup(&n);
}
