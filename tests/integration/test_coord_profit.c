/* Integration tests of the live "policy" decision source: a real hashflop-coord with a profit
 * file, the real feed server (hashflop-coord feed-server) replaying a series, and a real
 * hashflopd on 127.0.0.1 (ephemeral ports). The series' BTC price collapses: the policy decides
 * a switch from mining to idle, the node receives the signed instruction, applies it and
 * acknowledges it, and GET /v1/decisions shows source "policy" with the verdict (margins, rule,
 * why) as the reason. The feed server stopped makes every feed stale: the policy holds and
 * /v1/policy names the stale feeds. A node under an operator hold is never moved (rule "hold").
 * Also: no profit_file -> 404 on the views; --check-config refuses a bad profit file naming
 * the file and the field. Every wait is a condition polled with a deadline. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_instr.h"
#include "hf_testnode.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 60000

typedef hf_test_reply reply;

typedef struct rig {
	char *dir;
	char cfg[1024], log[1024], db[1024], port_file[1024], trust[1024], key[1024];
	char profit[1024], series[1024], feed_log[1024], feed_port_file[1024];
	hf_testproc *coord, *feed;
	int port, feed_port;
	char url[128];
	hf_key *sk, *op;
	hf_testnode node;
	char token[1024];
} rig;

static const char *exe(char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/runtime/coord/hashflop-coord", hf_test_build_root());
	return buf;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* Runs hashflop-coord with args to its end (30 s); its output in *out; the wait status. */
static int run_coord(const rig *r, const char *const args[], const char *logname, char **out)
{
	char e[1024], log[1200];
	const char *argv[16] = { exe(e, sizeof e) };
	size_t i;
	int st = -1;

	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	snprintf(log, sizeof log, "%s/%s", r->dir, logname);
	unlink(log);
	hf_testproc *p = hf_testproc_start(argv, log);
	cr_assert_not_null(p);
	cr_assert(hf_testproc_wait_exit(p, 30000, &st), "hashflop-coord %s did not finish", args[0]);
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	cr_assert_not_null(*out);
	return st;
}

static void add_key(json_t *keys, const hf_key *k, const char *role)
{
	char *pem;
	cr_assert_eq(hf_key_public_pem(k, &pem, NULL), 0);
	json_array_append_new(keys, json_pack("{s:s, s:s}", "role", role, "public_key_pem", pem));
	free(pem);
}

static void write_trust(const rig *r, const char *path, bool with_coordinator)
{
	json_t *keys = json_array();
	add_key(keys, r->op, "operator");
	if (with_coordinator)
		add_key(keys, r->sk, "coordinator");
	json_t *t = json_pack("{s:o, s:i}", "keys", keys, "fleet_threshold", 1);
	cr_assert_eq(json_dump_file(t, path, 0), 0, "cannot write %s", path);
	json_decref(t);
}

static void write_coord_config(const rig *r, const char *profit)
{
	char text[4096];
	snprintf(text, sizeof text,
		 "{\"fleet_id\": \"lab\",\n"
		 " \"listen\": {\"address\": \"127.0.0.1\", \"port\": 0, \"port_file\": \"%s\"},\n"
		 " \"signing_key\": \"%s\", \"trust_file\": \"%s\", \"database\": \"%s\",\n"
		 " \"report_interval_s\": 1, \"log_level\": \"info\", \"profit_file\": \"%s\"}\n",
		 r->port_file, r->key, r->trust, r->db, profit);
	write_text(r->cfg, text);
}

static void rig_init(rig *r, const char *name)
{
	char sub[1200];

	memset(r, 0, sizeof *r);
	r->dir = hf_test_tmpdir(name);
	cr_assert_not_null(r->dir);
	snprintf(r->cfg, sizeof r->cfg, "%s/coord.json", r->dir);
	snprintf(r->log, sizeof r->log, "%s/hashflop-coord.log", r->dir);
	snprintf(r->db, sizeof r->db, "%s/db/coord.db", r->dir);
	snprintf(r->port_file, sizeof r->port_file, "%s/port", r->dir);
	snprintf(r->trust, sizeof r->trust, "%s/trust.json", r->dir);
	snprintf(r->key, sizeof r->key, "%s/coordinator.pem", r->dir);
	snprintf(r->profit, sizeof r->profit, "%s/profit.json", r->dir);
	snprintf(r->series, sizeof r->series, "%s/market.csv", r->dir);
	snprintf(r->feed_log, sizeof r->feed_log, "%s/feed-server.log", r->dir);
	snprintf(r->feed_port_file, sizeof r->feed_port_file, "%s/feed-port", r->dir);
	snprintf(sub, sizeof sub, "%s/db", r->dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	cr_assert_eq(hf_key_generate(&r->sk, NULL), 0);
	cr_assert_eq(hf_key_generate(&r->op, NULL), 0);
	cr_assert_eq(hf_key_write_private_pem(r->sk, r->key, NULL), 0);
	write_trust(r, r->trust, false);
}

static int wait_port_file(const char *path, hf_testproc *p, const char *log)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		char *t = hf_test_read_file(path);
		int port = t ? atoi(t) : 0;
		free(t);
		if (port > 0)
			return port;
		int st;
		cr_assert_not(hf_testproc_wait_exit(p, 0, &st), "exited (%d): %s", st,
			      hf_test_read_file(log));
		cr_assert_lt(hf_mono_ms(), end, "no port file %s; log:\n%s", path, hf_test_read_file(log));
		hf_sleep_ms(10);
	}
}

/* The feed server over r->series from row `row`, on `port` (0: ephemeral). */
static void feed_start(rig *r, int port, int row)
{
	char e[1024], listen[64], rowtxt[16];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(rowtxt, sizeof rowtxt, "%d", row);
	const char *argv[] = { exe(e, sizeof e), "feed-server", "--series", r->series, "--speed", "1",
			       "--listen", listen, "--port-file", r->feed_port_file, "--start-row",
			       rowtxt, NULL };
	unlink(r->feed_port_file);
	r->feed = hf_testproc_start(argv, r->feed_log);
	cr_assert_not_null(r->feed);
	r->feed_port = wait_port_file(r->feed_port_file, r->feed, r->feed_log);
}

static void feed_stop(rig *r)
{
	int st = hf_testproc_stop(r->feed, SIGTERM, WAIT_MS);
	r->feed = NULL;
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "feed-server exit %d: %s", st,
		  hf_test_read_file(r->feed_log));
}

static void coord_start(rig *r)
{
	char e[1024];
	const char *argv[] = { exe(e, sizeof e), "--config", r->cfg, NULL };
	unlink(r->port_file);
	r->coord = hf_testproc_start(argv, r->log);
	cr_assert_not_null(r->coord);
	r->port = wait_port_file(r->port_file, r->coord, r->log);
	snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d", r->port);
}

static void rig_fini(rig *r)
{
	if (r->node.proc)
		hf_testnode_stop(&r->node);
	hf_testnode_fini(&r->node);
	if (r->coord) {
		int st = hf_testproc_stop(r->coord, SIGTERM, WAIT_MS);
		cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "hashflop-coord did not exit cleanly (%d): %s", st, hf_test_read_file(r->log));
	}
	hf_testproc_free(r->feed);
	hf_key_free(r->sk);
	hf_key_free(r->op);
	free(r->dir);
}

/* GET path: *status and the body parsed (NULL when not JSON). */
static json_t *get(const rig *r, const char *path, long *status)
{
	char url[512];
	reply *rp = malloc(sizeof *rp);
	snprintf(url, sizeof url, "%s%s", r->url, path);
	cr_assert(hf_test_http("GET", url, NULL, 0, rp), "GET %s failed; log:\n%s", url,
		  hf_test_read_file(r->log));
	*status = rp->status;
	json_t *j = json_loads(rp->body, 0, NULL);
	free(rp);
	return j;
}

static json_t *get_ok(const rig *r, const char *path)
{
	long st;
	json_t *j = get(r, path, &st);
	cr_assert_eq(st, 200, "GET %s: %ld", path, st);
	cr_assert_not_null(j, "GET %s: not JSON", path);
	return j;
}

static char *get_text(const rig *r, const char *path)
{
	char url[512];
	reply *rp = malloc(sizeof *rp);
	snprintf(url, sizeof url, "%s%s", r->url, path);
	cr_assert(hf_test_http("GET", url, NULL, 0, rp), "GET %s failed", url);
	cr_assert_eq(rp->status, 200);
	char *t = strdup(rp->body);
	free(rp);
	return t;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* /v1/policy's verdict for node id (new reference) or NULL before one. */
static json_t *verdict(const rig *r, const char *id, json_t **policy)
{
	json_t *p = get_ok(r, "/v1/policy");
	json_t *v = json_object_get(json_object_get(p, "nodes"), id);
	json_incref(v);
	if (policy)
		*policy = p;
	else
		json_decref(p);
	return v;
}

/* Waits until /v1/policy shows id with rule `rule` (and mode `mode` when not NULL). */
static json_t *wait_rule(const rig *r, const char *id, const char *rule, const char *mode)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_t *p = NULL, *v = verdict(r, id, &p);
		if (v && strcmp(jstr(v, "rule"), rule) == 0 && (!mode || strcmp(jstr(v, "mode"), mode) == 0)) {
			json_decref(v);
			return p;
		}
		cr_assert_lt(hf_mono_ms(), end, "%s never got rule %s: %s\nlog:\n%s", id, rule,
			     json_dumps(p, JSON_COMPACT), hf_test_read_file(r->log));
		json_decref(v);
		json_decref(p);
		hf_sleep_ms(50);
	}
}

/* The policy's decisions for node id (a new array). */
static json_t *policy_decisions(const rig *r, const char *id)
{
	json_t *d = get_ok(r, "/v1/decisions"), *out = json_array(), *e;
	size_t i;
	json_array_foreach(json_object_get(d, "decisions"), i, e)
		if (strcmp(jstr(e, "source"), "policy") == 0 && strcmp(jstr(e, "node"), id) == 0)
			json_array_append(out, e);
	json_decref(d);
	return out;
}

static json_t *fleet_node(const rig *r, const char *id)
{
	json_t *f = get_ok(r, "/v1/fleet"), *n;
	size_t i;
	json_array_foreach(json_object_get(f, "nodes"), i, n) {
		if (strcmp(jstr(n, "id"), id) == 0) {
			json_incref(n);
			json_decref(f);
			return n;
		}
	}
	cr_assert_fail("%s is not in /v1/fleet", id);
	return NULL;
}

static void node_add(rig *r, const char *id, const char *token_file)
{
	char *out;
	const char *args[] = { "--config", r->cfg, "node", "add", id, "--token-file", token_file, NULL };
	int st = run_coord(r, args, "node-add.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "node add %s: %d %s", id, st, out);
	free(out);
}

/* The series: rows 0-1 BTC at 1,000,000 USD (mining earns ~27 USD/h on the class), rows 2-3
 * BTC at 1 USD with a power price spike (5 USD/kWh): mining loses its power cost (the node's
 * own estimated watts, learnt from its reports: about 1.5 W for one CPU thread here), idle
 * (0.01 W in the class) loses next to nothing. 5-minute steps. */
static void write_series(const rig *r)
{
	write_text(r->series,
		   "# test series: a BTC price collapse between rows 1 and 2\n"
		   "time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,inference_demand\n"
		   "2026-01-01T00:00:00Z,1000000,1e12,0.1,900000,0.1,0,0\n"
		   "2026-01-01T00:05:00Z,1000000,1e12,0.1,900001,0.1,0,0\n"
		   "2026-01-01T00:10:00Z,1,1e12,0.1,900002,5.0,0,0\n"
		   "2026-01-01T00:15:00Z,1,1e12,0.1,900003,5.0,0,0\n");
}

/* profit.json: the feeds the feed server prints for itself (refresh 1 s), one class, fast
 * policy settings so a test needs seconds. */
static void write_profit(rig *r)
{
	char url[128], *out;
	snprintf(url, sizeof url, "http://127.0.0.1:%d", r->feed_port);
	const char *args[] = { "feed-server", "--print-feeds", url, "--refresh-s", "1", NULL };
	int st = run_coord(r, args, "print-feeds.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--print-feeds: %d %s", st, out);
	json_error_t je;
	json_t *feeds = json_loads(out, 0, &je);
	cr_assert_not_null(feeds, "--print-feeds printed no JSON: %s", out);
	free(out);
	json_t *p = json_pack("{s:o, s:{s:s, s:f, s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:f, s:i},"
			      " s:{s:{s:f, s:f, s:f, s:f, s:f, s:f}}, s:[{s:s, s:s}], s:s}",
			      "feeds", feeds,
			      "policy", "inference_unit", "per_1000", "pool_fee", 0.02, "headroom", 0.1,
			      "rel_threshold", 0.05, "abs_threshold_usd_h", 0.0001, "enter_evaluations", 1,
			      "loss_evaluations", 1, "min_dwell_s", 0, "horizon_s", 3600,
			      "fixed_cost_usd", 0.0, "evaluate_s", 1,
			      "classes", "cpu", "hashrate_hs", 1e13, "mining_watts", 100.0,
			      "inferences_per_s", 0.0, "inference_watts", 0.0, "idle_watts", 0.01,
			      "switch_s", 1.0,
			      "nodes", "match", "n*", "class", "cpu",
			      "initial_mode", "mining");
	cr_assert_not_null(p);
	cr_assert_eq(json_dump_file(p, r->profit, JSON_INDENT(2)), 0);
	json_decref(p);
}

/* An operator relay for node id: mode, held for an hour. */
static void relay_hold(rig *r, const char *id, const char *mode)
{
	char payload[512], url[256], *env;
	uint64_t now = hf_wall_ms();
	hf_key *keys[1] = { r->op };
	snprintf(payload, sizeof payload,
		 "{\"v\":1,\"fleet\":\"lab\",\"node\":\"%s\",\"issued_ms\":%llu,\"expires_ms\":%llu,"
		 "\"mode\":\"%s\",\"hold_until_ms\":%llu,\"reason\":{\"why\":\"test hold\"}}", id,
		 (unsigned long long)now, (unsigned long long)(now + 600000), mode,
		 (unsigned long long)(now + 3600000));
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, 1, &env, NULL), 0);
	reply *rp = malloc(sizeof *rp);
	snprintf(url, sizeof url, "%s/v1/nodes/%s/instruction", r->url, id);
	cr_assert(hf_test_http("POST", url, env, strlen(env), rp));
	cr_assert_eq(rp->status, 200, "relay: %ld %s", rp->status, rp->body);
	free(rp);
	free(env);
}

Test(coord_profit, a_price_collapse_is_decided_applied_and_acknowledged_stale_feeds_hold, .timeout = 300)
{
	rig r;
	char control[2048], held_token[1200];

	rig_init(&r, "profit-live");
	write_series(&r);
	/* the feed server first (its port goes into profit.json); the clock stays on row 0 */
	feed_start(&r, 0, 0);
	write_profit(&r);
	write_coord_config(&r, r.profit);
	snprintf(r.token, sizeof r.token, "%s/n1.token", r.dir);
	snprintf(held_token, sizeof held_token, "%s/n2.token", r.dir);
	node_add(&r, "n1", r.token);
	node_add(&r, "n2", held_token); /* registered, no daemon: held by an operator below */
	char odd_token[1200];
	snprintf(odd_token, sizeof odd_token, "%s/x1.token", r.dir);
	node_add(&r, "x1", odd_token);  /* matches no "nodes" entry, no default_class: skipped */
	coord_start(&r);

	/* the views exist and the feeds are read from the feed server */
	json_t *feeds = get_ok(&r, "/v1/feeds");
	cr_assert(json_is_object(json_object_get(json_object_get(feeds, "feeds"), "btc_usd")), "%s",
		  json_dumps(feeds, 0));
	json_decref(feeds);

	/* n1 mines (its node.json), n2 is pinned to mining by an operator */
	relay_hold(&r, "n2", "mining");
	snprintf(control, sizeof control,
		 ", \"coordinator_url\": \"%s\", \"token_file\": \"%s\", \"poll_wait_s\": 30,"
		 " \"retry_max_ms\": 500, \"report_interval_s\": 1", r.url, r.token);
	char name[256];
	snprintf(name, sizeof name, "%s-n1", strrchr(r.dir, '/') + 1);
	hf_testnode_init_fleet(&r.node, name, "n1", "mining", control,
			       "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:9\", \"user\": \"bc1qtest.w\","
			       " \"pass\": \"x\"}], \"cpu\": {\"threads\": 1}}");
	write_trust(&r, r.node.trust, true);
	hf_testnode_start(&r.node, NULL);

	/* BTC high: mining is best for n1 (no decision), n2 held */
	json_t *p = wait_rule(&r, "n1", "best", "mining");
	json_decref(p);
	/* n1's own watts are learnt from its reports (converged, running); its hashrate is 0 with
	 * the pool down, which is no measurement: the class's stays */
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_t *v = verdict(&r, "n1", NULL);
		json_t *fs = json_object_get(v, "figures_source");
		bool learnt = strcmp(jstr(fs, "mining_watts"), "reported") == 0;
		if (learnt) {
			cr_assert_str_eq(jstr(fs, "hashrate_hs"), "class", "%s", json_dumps(v, 0));
			cr_assert_str_eq(jstr(fs, "idle_watts"), "class", "%s", json_dumps(v, 0));
			double w = json_number_value(json_object_get(json_object_get(v, "figures"),
								     "mining_watts"));
			cr_assert(w > 0 && w != 100.0, "the node's own watts: %s", json_dumps(v, 0));
		}
		json_decref(v);
		if (learnt)
			break;
		cr_assert_lt(hf_mono_ms(), end, "n1's mining watts never learnt");
		hf_sleep_ms(50);
	}
	p = wait_rule(&r, "n2", "hold", NULL);
	json_t *n2v = json_object_get(json_object_get(p, "nodes"), "n2");
	cr_assert_str_eq(jstr(n2v, "mode"), "mining", "%s", json_dumps(n2v, 0));
	cr_assert_str_eq(jstr(n2v, "class"), "cpu");
	json_t *x1 = json_object_get(json_object_get(p, "nodes"), "x1");
	cr_assert(json_is_true(json_object_get(x1, "skipped")), "%s", json_dumps(p, 0));
	cr_assert_not_null(strstr(jstr(x1, "why"), "no class"), "%s", json_dumps(x1, 0));
	cr_assert_eq(json_integer_value(json_object_get(p, "skipped")), 1);
	json_decref(p);
	json_t *d = policy_decisions(&r, "n1");
	cr_assert_eq(json_array_size(d), 0, "no decision while mining is best: %s", json_dumps(d, 0));
	json_decref(d);

	/* the feed server stopped: every feed goes stale, the policy holds and says which */
	feed_stop(&r);
	p = wait_rule(&r, "n1", "stale", "mining");
	json_t *m = json_object_get(p, "market");
	cr_assert(json_is_true(json_object_get(m, "stale")), "%s", json_dumps(m, 0));
	cr_assert_not_null(strstr(jstr(m, "stale_why"), "btc_usd"), "%s", json_dumps(m, 0));
	json_t *n1v = json_object_get(json_object_get(p, "nodes"), "n1");
	cr_assert_not_null(strstr(jstr(n1v, "why"), "btc_usd"), "%s", json_dumps(n1v, 0));
	json_decref(p);
	char *metrics = get_text(&r, "/metrics");
	cr_assert_not_null(strstr(metrics, "hashflop_coord_policy_holds_total{reason=\"stale\"}"), "%s",
			   metrics);
	cr_assert_not_null(strstr(metrics, "hashflop_coord_policy_evaluations_total"));
	cr_assert_not_null(strstr(metrics, "hashflop_coord_policy_margin_usd_per_hour{node=\"n1\",mode=\"mining\"}"),
			   "%s", metrics);
	free(metrics);

	/* the series moves on to the collapse (the feed server again, on the same port, at row 2):
	 * mining loses money, the policy leaves it */
	int port = r.feed_port;
	feed_start(&r, port, 2);
	cr_assert_eq(r.feed_port, port);
	end = hf_mono_ms() + WAIT_MS;
	json_t *dec;
	for (;;) {
		d = policy_decisions(&r, "n1");
		if (json_array_size(d) > 0)
			break;
		if (hf_mono_ms() >= end) {
			json_t *pv = get_ok(&r, "/v1/policy"), *fv = get_ok(&r, "/v1/feeds");
			cr_assert_fail("no policy decision for n1: %s\nfeeds: %s\nlog:\n%s",
				       json_dumps(pv, JSON_COMPACT), json_dumps(fv, JSON_COMPACT),
				       hf_test_read_file(r.log));
		}
		json_decref(d);
		hf_sleep_ms(50);
	}
	dec = json_array_get(d, 0);
	cr_assert_str_eq(jstr(dec, "mode"), "idle", "%s", json_dumps(dec, 0));
	cr_assert_str_eq(jstr(dec, "authority"), "coordinator");
	json_t *reason = json_object_get(dec, "reason");
	cr_assert_str_eq(jstr(reason, "rule"), "leave", "%s", json_dumps(reason, 0));
	cr_assert_str_eq(jstr(reason, "from"), "mining");
	cr_assert(jstr(reason, "why")[0], "%s", json_dumps(reason, 0));
	json_t *mg = json_object_get(reason, "margins");
	cr_assert(json_is_number(json_object_get(mg, "mining")) && json_is_number(json_object_get(mg, "idle")),
		  "%s", json_dumps(reason, 0));
	cr_assert_lt(json_number_value(json_object_get(mg, "mining")), 0, "%s", json_dumps(reason, 0));
	cr_assert_gt(json_number_value(json_object_get(mg, "idle")),
		     json_number_value(json_object_get(mg, "mining")));
	uint64_t issued = (uint64_t)json_integer_value(json_object_get(dec, "issued_ms"));
	cr_assert_gt(issued, 0);

	/* the node applies it (its own status) and acknowledges it (the coordinator's fleet view) */
	json_t *st = hf_testnode_wait_mode(&r.node, "idle", 0, WAIT_MS);
	json_decref(st);
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_t *n = fleet_node(&r, "n1");
		bool acked = (uint64_t)json_integer_value(json_object_get(n, "acked_issued_ms")) == issued &&
			     json_is_true(json_object_get(n, "converged"));
		json_decref(n);
		if (acked)
			break;
		cr_assert_lt(hf_mono_ms(), end, "n1 never acknowledged %llu", (unsigned long long)issued);
		hf_sleep_ms(50);
	}
	json_decref(d);
	/* the record lists the ack (written just after the fleet's state: waited on too) */
	end = hf_mono_ms() + WAIT_MS;
	for (bool ack_listed = false; !ack_listed;) {
		size_t i;
		d = get_ok(&r, "/v1/decisions");
		json_array_foreach(json_object_get(d, "decisions"), i, dec)
			if (strcmp(jstr(dec, "source"), "policy") == 0 &&
			    (uint64_t)json_integer_value(json_object_get(dec, "issued_ms")) == issued)
				ack_listed = json_array_size(json_object_get(dec, "acks")) == 1;
		cr_assert(ack_listed || hf_mono_ms() < end, "the decision lists no ack: %s",
			  json_dumps(d, 0));
		json_decref(d);
		if (!ack_listed)
			hf_sleep_ms(50);
	}

	/* after it: idle is best; the held node was never moved */
	p = wait_rule(&r, "n1", "best", "idle");
	json_decref(p);
	p = wait_rule(&r, "n2", "hold", "mining");
	json_decref(p);
	d = policy_decisions(&r, "n2");
	cr_assert_eq(json_array_size(d), 0, "the held node was moved: %s", json_dumps(d, 0));
	json_decref(d);
	d = policy_decisions(&r, "x1");
	cr_assert_eq(json_array_size(d), 0, "a node without a class was moved: %s", json_dumps(d, 0));
	json_decref(d);
	/* one node's view */
	p = get_ok(&r, "/v1/policy?node=n1");
	cr_assert_eq(json_object_size(json_object_get(p, "nodes")), 1, "%s", json_dumps(p, 0));
	json_decref(p);
	json_t *n2 = fleet_node(&r, "n2");
	json_t *des = json_object_get(n2, "desired");
	cr_assert_str_eq(jstr(des, "mode"), "mining");
	cr_assert_str_eq(jstr(des, "by"), "operator");
	json_decref(n2);

	/* nodes added and removed while it runs: n3 (no envelope, no report yet: initial_mode
	 * mining) is evaluated and sent to idle; x1 leaves the view */
	char n3_token[1200], *out;
	snprintf(n3_token, sizeof n3_token, "%s/n3.token", r.dir);
	node_add(&r, "n3", n3_token);
	const char *rm[] = { "--config", r.cfg, "node", "remove", "x1", NULL };
	int rst = run_coord(&r, rm, "node-remove.log", &out);
	cr_assert(WIFEXITED(rst) && WEXITSTATUS(rst) == 0, "node remove: %s", out);
	free(out);
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		d = policy_decisions(&r, "n3");
		p = get_ok(&r, "/v1/policy");
		bool gone = !json_object_get(json_object_get(p, "nodes"), "x1");
		size_t nd = json_array_size(d);
		if (nd > 0) {
			json_t *r3 = json_object_get(json_array_get(d, 0), "reason");
			cr_assert_str_eq(jstr(json_array_get(d, 0), "mode"), "idle");
			cr_assert_str_eq(jstr(r3, "from"), "mining", "%s", json_dumps(r3, 0));
		}
		json_decref(d);
		json_decref(p);
		if (nd > 0 && gone)
			break;
		cr_assert_lt(hf_mono_ms(), end, "n3 not decided (%zu) or x1 still shown (%d)", nd, !gone);
		hf_sleep_ms(50);
	}
	rig_fini(&r);
}

Test(coord_profit, without_a_profit_file_the_views_are_404, .timeout = 120)
{
	rig r;
	long status;

	rig_init(&r, "profit-none");
	write_coord_config(&r, "");
	coord_start(&r);
	json_t *j = get(&r, "/v1/policy", &status);
	cr_assert_eq(status, 404);
	cr_assert_str_eq(jstr(j, "error"), "no policy source (coord.json profit_file is empty)");
	json_decref(j);
	j = get(&r, "/v1/feeds", &status);
	cr_assert_eq(status, 404);
	json_decref(j);
	rig_fini(&r);
}

Test(coord_profit, check_config_validates_the_profit_file, .timeout = 120)
{
	rig r;
	char *out;
	const char *args[] = { "--config", NULL, "--check-config", NULL };

	rig_init(&r, "profit-check");
	args[1] = r.cfg;
	write_coord_config(&r, r.profit);
	/* a valid one: the effective config names it */
	write_text(r.profit, "{\"classes\": {\"c\": {\"hashrate_hs\": 1e9, \"mining_watts\": 10, "
		   "\"inferences_per_s\": 0, \"inference_watts\": 0, \"idle_watts\": 1, \"switch_s\": 1}},"
		   " \"nodes\": [{\"match\": \"*\", \"class\": \"c\"}],"
		   " \"mining\": {\"pools\": [{\"url\": \"stratum+tcp://pool.example:3333\", \"user\": \"w\"}]}}");
	int st = run_coord(&r, args, "check-ok.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "\"profit_file\""), "%s", out);
	free(out);
	/* a pool URL a node would refuse: the file and the field are named */
	write_text(r.profit, "{\"classes\": {\"c\": {\"hashrate_hs\": 1e9, \"mining_watts\": 10, "
		   "\"inferences_per_s\": 0, \"inference_watts\": 0, \"idle_watts\": 1, \"switch_s\": 1}},"
		   " \"nodes\": [{\"match\": \"*\", \"class\": \"c\"}],"
		   " \"mining\": {\"pools\": [{\"url\": \"http://pool.example\", \"user\": \"w\"}]}}");
	st = run_coord(&r, args, "check-pool.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, r.profit), "%s", out);
	cr_assert_not_null(strstr(out, "mining.pools[0].url"), "%s", out);
	free(out);
	/* a feed with a bad pointer, an unknown key, a bad initial mode */
	write_text(r.profit, "{\"feeds\": {\"btc_usd\": {\"url\": \"https://x.example/p\", \"pointer\": \"USD\"}}}");
	st = run_coord(&r, args, "check-feed.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "feeds.btc_usd.pointer"), "%s", out);
	free(out);
	write_text(r.profit, "{\"polcy\": {}}");
	st = run_coord(&r, args, "check-key.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "polcy: unknown key"), "%s", out);
	free(out);
	write_text(r.profit, "{\"initial_mode\": \"sleep\"}");
	st = run_coord(&r, args, "check-mode.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "initial_mode"), "%s", out);
	free(out);
	/* a file that is not there */
	unlink(r.profit);
	st = run_coord(&r, args, "check-missing.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "profit_file"), "%s", out);
	free(out);
	/* coord.json's key itself: an absolute path */
	write_coord_config(&r, "profit.json");
	st = run_coord(&r, args, "check-relative.log", &out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%d: %s", st, out);
	cr_assert_not_null(strstr(out, "profit_file: expected an absolute path"), "%s", out);
	free(out);
	rig_fini(&r);
}
