/* Integration tests: hashflopd's power telemetry end to end. A real hashflopd reads a hwmon
 * tree the test builds (power1_input, the watts the test writes) through power.sysfs_root:
 * /v1/status shows those watts, a growing joules_total, source "hwmon", boundary "chip",
 * estimated false, and follows a change of the file; /metrics has the families; hashflopctl
 * status prints the power line. With power.source "estimate" the status says estimated. An
 * explicit source that cannot be opened (rapl under a sysfs root that does not exist) stops
 * the start with a message naming power.source. In mining mode against the lab pool the
 * status shows MH/J > 0 once the mining worker counts its hashes. --check-config prints the
 * power section. Every wait has a deadline.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_testnode.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 30000

typedef hf_testnode node;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void mkdir_ok(const char *path)
{
	cr_assert(mkdir(path, 0755) == 0, "mkdir %s", path);
}

/* <dir>/sys/class/hwmon/hwmon0/{name, power1_input}; the sysfs root in root. */
static void hwmon_tree(const char *dir, char *root, size_t rootsz, char *input, size_t inputsz)
{
	char p[1024];

	snprintf(root, rootsz, "%s/sys", dir);
	mkdir_ok(root);
	snprintf(p, sizeof p, "%s/class", root);
	mkdir_ok(p);
	snprintf(p, sizeof p, "%s/class/hwmon", root);
	mkdir_ok(p);
	snprintf(p, sizeof p, "%s/class/hwmon/hwmon0", root);
	mkdir_ok(p);
	snprintf(p, sizeof p, "%s/class/hwmon/hwmon0/name", root);
	write_file(p, "testchip\n");
	snprintf(input, inputsz, "%s/class/hwmon/hwmon0/power1_input", root);
}

/* Rewrites n's node.json as hf_testnode_init writes it, plus the power section (a JSON object
 * text). */
static void write_config(node *n, const char *initial, const char *mining, const char *power)
{
	char *text = malloc(16384);

	snprintf(text, 16384,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"inference\": {\"port\": 0},\n"
		 " \"modes\": {\"initial\": \"%s\", \"drain_timeout_ms\": 5000},\n"
		 " \"control\": {\"trust_file\": \"%s\"},\n"
		 " \"power\": %s%s%s}\n",
		 n->state, initial, n->trust, power, mining ? ",\n \"mining\": " : "", mining ? mining : "");
	write_file(n->cfg, text);
	free(text);
}

static void node_config(node *n, const char *name, const char *initial, const char *mining,
			const char *power)
{
	hf_testnode_init(n, name, initial, mining, 5000);
	write_config(n, initial, mining, power);
}

static const json_t *power_of(const json_t *st)
{
	return json_object_get(st, "power");
}

static double pnum(const json_t *st, const char *path)
{
	return hf_testnode_num(power_of(st), path);
}

static const char *pstr(const json_t *st, const char *key)
{
	const char *s = json_string_value(json_object_get(power_of(st), key));
	return s ? s : "";
}

/* Polls /v1/status until power.<path> lies within [lo, hi]; that status (caller decrefs). */
static json_t *wait_power(const node *n, const char *path, double lo, double hi)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = hf_testnode_get(n, "/v1/status");
		double v = pnum(j, path);
		if ((v >= lo && v <= hi) || hf_mono_ms() > end)
			break;
		hf_sleep_ms(50);
	}
	double v = pnum(j, path);
	cr_assert(v >= lo && v <= hi, "power.%s = %g, expected %g..%g; status %s", path, v, lo, hi,
		  json_dumps(power_of(j), 0));
	return j;
}

static char *metrics(const node *n)
{
	char url[256];
	hf_test_reply *r = malloc(sizeof *r);

	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->port);
	cr_assert(hf_test_http("GET", url, NULL, 0, r));
	cr_assert_eq(r->status, 200);
	char *body = strdup(r->body);
	free(r);
	return body;
}

/* Runs cmd (sh -c) and returns its output (malloc'ed) and exit status. */
static char *run_cmd(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	char *out = calloc(1, 65536);
	size_t len = 0, got;

	cr_assert(p && out);
	while ((got = fread(out + len, 1, 65535 - len, p)) > 0)
		len += got;
	*status = pclose(p);
	return out;
}

Test(node_power, hwmon_watts_joules_and_source_in_status_metrics_and_ctl, .init = setup,
     .timeout = 120)
{
	node n;
	char root[1024], input[1024], power[2048];

	hf_testnode_init(&n, "power-hwmon", "idle", NULL, 5000);
	hwmon_tree(n.dir, root, sizeof root, input, sizeof input);
	write_file(input, "87500000\n"); /* 87.5 W */
	snprintf(power, sizeof power, "{\"source\": \"hwmon\", \"sysfs_root\": \"%s\", "
		 "\"sample_interval_ms\": 20, \"telemetry_interval_ms\": 200}", root);
	write_config(&n, "idle", NULL, power);
	hf_testnode_start(&n, NULL);

	json_t *a = wait_power(&n, "windows.10s.covered_s", 0.5, 11);
	cr_expect_str_eq(pstr(a, "source"), "hwmon");
	cr_expect_str_eq(pstr(a, "boundary"), "chip");
	cr_expect(json_is_false(json_object_get(power_of(a), "estimated")));
	cr_expect(strstr(pstr(a, "detail"), "testchip"), "detail: %s", pstr(a, "detail"));
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(a, "efficiency"), "mode")), "idle");
	cr_expect_lt(fabs(pnum(a, "watts") - 87.5), 0.01, "watts %g", pnum(a, "watts"));
	cr_expect_lt(fabs(pnum(a, "windows.10s.watts") - 87.5), 0.01);
	double idle_w = hf_testnode_num(json_object_get(a, "efficiency"), "idle_watts.1m");
	cr_expect_lt(fabs(idle_w - 87.5), 0.01, "idle_watts.1m %g", idle_w);
	double j0 = pnum(a, "joules_total");
	uint64_t s0 = (uint64_t)pnum(a, "samples");
	cr_expect_gt(j0, 0);

	/* joules_total grows with every sample. */
	json_t *b = wait_power(&n, "samples", (double)s0 + 2, 1e18);
	cr_expect_gt(pnum(b, "joules_total"), j0);

	/* The status follows the chip: 150 W written, 150 W shown. */
	write_file(input, "150000000\n");
	json_decref(wait_power(&n, "watts", 149.99, 150.01));

	char *m = metrics(&n);
	cr_expect(strstr(m, "# TYPE hashflop_power_watts gauge\n"), "%s", m);
	cr_expect(strstr(m, "hashflop_power_watts{source=\"hwmon\",boundary=\"chip\",estimated=\"false\"} "), "%s", m);
	cr_expect(strstr(m, "# TYPE hashflop_energy_joules_total counter\n"));
	cr_expect(strstr(m, "hashflop_energy_joules_total{source=\"hwmon\",boundary=\"chip\",estimated=\"false\"} "));
	cr_expect(strstr(m, "hashflop_power_window_watts{window=\"1m\",source=\"hwmon\",estimated=\"false\"} "));
	cr_expect(strstr(m, "hashflop_idle_watts{window=\"10s\",source=\"hwmon\",estimated=\"false\"} "));
	cr_expect(strstr(m, "# TYPE hashflop_power_degraded gauge\n"));
	free(m);

	char cmd[2048];
	int st;
	snprintf(cmd, sizeof cmd, "%s/runtime/ctl/hashflopctl status --node-api http://127.0.0.1:%d 2>&1",
		 hf_test_build_root(), n.port);
	char *out = run_cmd(cmd, &st);
	cr_expect_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "power        150.0 W from hwmon (boundary chip); idle over "), "%s", out);
	free(out);
	json_decref(a);
	json_decref(b);

	/* The start-up log says once where the watts come from. */
	cr_expect(hf_test_wait_log(n.log, "power: source hwmon, boundary chip: ", WAIT_MS));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
}

Test(node_power, the_estimate_says_estimated, .init = setup, .timeout = 120)
{
	node n;

	node_config(&n, "power-estimate", "idle", NULL,
		    "{\"source\": \"estimate\", \"idle_w\": 50, \"full_w\": 60, \"telemetry_interval_ms\": 200}");
	hf_testnode_start(&n, NULL);
	json_t *j = wait_power(&n, "windows.10s.covered_s", 0.3, 11);
	cr_expect_str_eq(pstr(j, "source"), "estimate");
	cr_expect_str_eq(pstr(j, "boundary"), "estimate");
	cr_expect(json_is_true(json_object_get(power_of(j), "estimated")));
	cr_expect(json_is_true(json_object_get(json_object_get(j, "efficiency"), "estimated")));
	double w = pnum(j, "watts");
	cr_expect(w >= 50 - 1e-6 && w <= 60 + 1e-6, "estimated watts %g outside idle..full", w);
	json_decref(j);
	char *m = metrics(&n);
	cr_expect(strstr(m, "hashflop_power_watts{source=\"estimate\",boundary=\"estimate\",estimated=\"true\"} "), "%s", m);
	free(m);
	cr_expect(hf_test_wait_log(n.log, "(estimated)", WAIT_MS));
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
}

Test(node_power, an_explicit_source_that_cannot_open_stops_the_start, .init = setup, .timeout = 60)
{
	node n;
	char power[2048], path[1200];
	int st = 0;

	hf_testnode_init(&n, "power-rapl-missing", "idle", NULL, 5000);
	snprintf(power, sizeof power, "{\"source\": \"rapl\", \"sysfs_root\": \"%s/no-such-sys\"}", n.dir);
	write_config(&n, "idle", NULL, power);
	snprintf(path, sizeof path, "%s/runtime/node/hashflopd", hf_test_build_root());
	const char *argv[] = { path, "--config", n.cfg, NULL };
	hf_testproc *p = hf_testproc_start(argv, n.log);
	cr_assert_not_null(p);
	cr_assert(hf_testproc_wait_exit(p, WAIT_MS, &st), "hashflopd kept running; log:\n%s",
		  hf_test_read_file(n.log));
	hf_testproc_free(p);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "exit status %d", st);
	char *log = hf_test_read_file(n.log);
	cr_expect(log && strstr(log, "cannot start: power.source \"rapl\": "), "log:\n%s", log);
	free(log);
	hf_testnode_fini(&n);
}

Test(node_power, check_config_prints_the_power_section, .init = setup, .timeout = 60)
{
	node n;
	char cmd[2048];
	int st;

	node_config(&n, "power-check", "idle", NULL,
		    "{\"source\": \"nvml\", \"pci_bus_id\": \"00000000:19:00.0\", \"idle_w\": 90, \"full_w\": 700}");
	snprintf(cmd, sizeof cmd, "%s/runtime/node/hashflopd --config %s --check-config 2>&1",
		 hf_test_build_root(), n.cfg);
	char *out = run_cmd(cmd, &st);
	cr_expect_eq(st, 0, "%s", out);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert(j, "not JSON: %s", out);
	json_t *p = json_object_get(j, "power");
	cr_expect_str_eq(json_string_value(json_object_get(p, "source")), "nvml");
	cr_expect_str_eq(json_string_value(json_object_get(p, "pci_bus_id")), "00000000:19:00.0");
	cr_expect_eq(json_number_value(json_object_get(p, "full_w")), 700);
	cr_expect_str_eq(json_string_value(json_object_get(p, "sysfs_root")), "/sys");
	cr_expect_eq(json_integer_value(json_object_get(p, "telemetry_interval_ms")), 1000);
	json_decref(j);
	free(out);
	/* A bad value is refused with its path. */
	write_config(&n, "idle", NULL, "{\"idle_w\": -3, \"full_w\": 10}");
	out = run_cmd(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect(strstr(out, "power.idle_w: expected a number from 0"), "%s", out);
	free(out);
	hf_testnode_fini(&n);
}

/* Mining against the lab pool: the efficiency comes from the mining worker's hash counter and
 * the same window's energy (here an estimate: this machine measures nothing). */
Test(node_power, mining_shows_megahashes_per_joule, .init = setup, .timeout = 180)
{
	hf_testpool p = { 0 };
	node n;
	char mining[1024];

	hf_testpool_start(&p, "power-mining-pool", 0, "0.001", NULL, WAIT_MS);
	snprintf(mining, sizeof mining, "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%u\", "
		 "\"user\": \"bc1qtest.w1\"}], \"status_interval_s\": 1, \"cpu\": {\"threads\": 1}, "
		 "\"power_target_w\": 75}", p.port);
	node_config(&n, "power-mining", "mining", mining,
		    "{\"source\": \"estimate\", \"idle_w\": 40, \"full_w\": 80, \"telemetry_interval_ms\": 200}");
	hf_testnode_start(&n, NULL);
	json_decref(hf_testnode_wait_mining(&n, "hashes_total", 1, WAIT_MS));
	uint64_t end = hf_mono_ms() + WAIT_MS;
	json_t *j = NULL;
	double mhj = 0;
	for (;;) {
		json_decref(j);
		j = hf_testnode_get(&n, "/v1/status");
		mhj = hf_testnode_num(json_object_get(j, "efficiency"), "mh_per_j.10s");
		if (mhj > 0 || hf_mono_ms() > end)
			break;
		hf_sleep_ms(100);
	}
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "efficiency"), "mode")), "mining");
	cr_expect_gt(mhj, 0, "no MH/J in mining: %s", json_dumps(json_object_get(j, "efficiency"), 0));
	cr_expect_gt(pnum(j, "windows.10s.hashes_per_s"), 0);
	cr_expect_eq(pnum(j, "target_w"), 75, "the configured target is shown with the power figures");
	cr_log_info("mining on 1 CPU thread: %.4f MH/J (estimated watts %.1f)", mhj, pnum(j, "watts"));
	json_decref(j);
	char *m = metrics(&n);
	cr_expect(strstr(m, "hashflop_efficiency_mh_per_joule{window=\"10s\",source=\"estimate\",estimated=\"true\"} "), "%s", m);
	cr_expect(strstr(m, "hashflop_power_target_watts 75\n"), "%s", m);
	free(m);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	hf_testpool_free(&p, WAIT_MS, false);
}
