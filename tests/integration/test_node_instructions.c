/* Integration tests: signed instructions reaching the real hashflopd through its local API
 * (POST /v1/instruction) and through the control channel (a coordinator served from this test
 * process with hf_httpd, long-polled by the node). Every refusal reason, anti-replay across a
 * restart, operator holds, metrics and persisted state. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_httpd.h"
#include "hf_instr.h"
#include "hf_testproc.h"
#include "hf_util.h"

typedef hf_test_reply reply;

static void http(const char *method, int port, const char *path, const char *body, reply *r)
{
	char url[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	cr_assert(hf_test_http(method, url, body, body ? strlen(body) : 0, r), "%s %s failed", method, url);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

typedef struct fixture {
	char *dir;
	char cfg[512], log[512], state[512], trust[512];
	hf_testproc *proc;
	int port;
	hf_key *op1, *op2, *coord, *stranger;
} fixture;

static void add_key(json_t *keys, hf_key *k, const char *role)
{
	char *pem;
	cr_assert_eq(hf_key_public_pem(k, &pem, NULL), 0);
	json_array_append_new(keys, json_pack("{s:s, s:s}", "role", role, "public_key_pem", pem));
	free(pem);
}

/* top_extra is spliced into node.json's top-level object (", \"modes\": {...}"). */
static void fixture_init_top(fixture *f, const char *name, bool with_trust, const char *control_extra,
			     const char *top_extra)
{
	char text[4096];
	memset(f, 0, sizeof *f);
	f->dir = hf_test_tmpdir(name);
	snprintf(f->cfg, sizeof f->cfg, "%s/node.json", f->dir);
	snprintf(f->log, sizeof f->log, "%s/hashflopd.log", f->dir);
	snprintf(f->state, sizeof f->state, "%s/state", f->dir);
	snprintf(f->trust, sizeof f->trust, "%s/trust.json", f->dir);
	cr_assert_eq(hf_key_generate(&f->op1, NULL), 0);
	cr_assert_eq(hf_key_generate(&f->op2, NULL), 0);
	cr_assert_eq(hf_key_generate(&f->coord, NULL), 0);
	cr_assert_eq(hf_key_generate(&f->stranger, NULL), 0);
	if (with_trust) {
		json_t *keys = json_array();
		add_key(keys, f->op1, "operator");
		add_key(keys, f->op2, "operator");
		add_key(keys, f->coord, "coordinator");
		json_t *t = json_pack("{s:o, s:i}", "keys", keys, "fleet_threshold", 2);
		cr_assert_eq(json_dump_file(t, f->trust, 0), 0);
		json_decref(t);
	}
	snprintf(text, sizeof text,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"inference\": {\"port\": 0},\n"
		 " \"control\": {\"trust_file\": \"%s\"%s}%s}\n",
		 f->state, f->trust, control_extra ? control_extra : "", top_extra ? top_extra : "");
	write_file(f->cfg, text);
}

static void fixture_init(fixture *f, const char *name, bool with_trust, const char *control_extra)
{
	fixture_init_top(f, name, with_trust, control_extra, NULL);
}

static void start(fixture *f)
{
	char err[2048];

	f->proc = hf_test_start_hashflopd(f->cfg, f->log, f->state, 20000, &f->port, err, sizeof err);
	cr_assert(f->proc, "%s; log:\n%s", err, hf_test_read_file(f->log));
}

static void stop(fixture *f)
{
	int st = hf_testproc_stop(f->proc, SIGTERM, 15000);

	f->proc = NULL;
	cr_assert_neq(st, -1);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; log:\n%s", st, hf_test_read_file(f->log));
}

static void fixture_fini(fixture *f)
{
	hf_testproc_free(f->proc);
	hf_key_free(f->op1);
	hf_key_free(f->op2);
	hf_key_free(f->coord);
	hf_key_free(f->stranger);
	free(f->dir);
}

/* Signs a payload built from the arguments; extra is spliced into the JSON object. */
static char *envelope(hf_key *k1, hf_key *k2, const char *fleet, const char *node, int64_t issued_off,
		      int64_t expires_off, const char *mode, const char *extra)
{
	static int64_t base;
	char payload[4096];
	hf_key *keys[2] = { k1, k2 };
	char *env;
	if (!base)
		base = (int64_t)hf_wall_ms() - 60000;
	int64_t now = (int64_t)hf_wall_ms();
	snprintf(payload, sizeof payload,
		 "{\"v\":1,\"fleet\":\"%s\",\"node\":\"%s\",\"issued_ms\":%lld,\"expires_ms\":%lld,\"mode\":\"%s\"%s}",
		 fleet, node, (long long)(issued_off > 1000000000 ? issued_off : now + issued_off),
		 (long long)(now + expires_off), mode, extra ? extra : "");
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, k2 ? 2 : 1, &env, NULL), 0);
	return env;
}

static void expect(fixture *f, char *env, long status, const char *result, const char *reason)
{
	reply r;
	http("POST", f->port, "/v1/instruction", env, &r);
	free(env);
	cr_assert_eq(r.status, status, "HTTP %ld, expected %ld: %s", r.status, status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), result, "%s", r.body);
	if (reason)
		cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), reason, "%s", r.body);
	json_decref(j);
}

static bool metric_is(fixture *f, const char *line)
{
	reply r;
	http("GET", f->port, "/metrics", NULL, &r);
	return strstr(r.body, line) != NULL;
}

Test(node_instructions, without_a_trust_file_everything_is_refused)
{
	fixture f;
	fixture_init(&f, "notrust", false, NULL);
	start(&f);
	cr_assert(hf_test_wait_log(f.log, "no trust file at", 2000));
	expect(&f, envelope(f.op1, NULL, "lab", "n1", -1000, 60000, "idle", NULL), 503, "no_trust", NULL);
	cr_assert(metric_is(&f, "hashflop_trust_keys 0\n"));
	reply r;
	http("GET", f.port, "/v1/status", NULL, &r);
	cr_assert(strstr(r.body, "\"trusted\":false"), "%s", r.body);
	stop(&f);
	fixture_fini(&f);
}

Test(node_instructions, every_refusal_reason_and_acceptance)
{
	fixture f;
	char big[20000];
	fixture_init(&f, "reasons", true, NULL);
	start(&f);
	char *accepted = envelope(f.op1, NULL, "lab", "n1", -1000, 60000, "idle", ",\"reason\":{\"why\":\"test\"}");
	char *again = strdup(accepted);
	expect(&f, accepted, 200, "accepted", NULL);
	expect(&f, again, 200, "noop", NULL);
	expect(&f, envelope(f.op1, NULL, "lab", "n1", -5000, 60000, "idle", NULL), 403, "refused", "replay");
	expect(&f, envelope(f.op1, NULL, "lab", "n1", -500, -100, "idle", NULL), 403, "refused", "expired");
	expect(&f, envelope(f.op1, NULL, "lab", "n1", 600000, 900000, "idle", NULL), 403, "refused", "future");
	expect(&f, envelope(f.op1, NULL, "lab", "n2", 0, 60000, "idle", NULL), 403, "refused", "wrong_node");
	expect(&f, envelope(f.op1, NULL, "other", "n1", 0, 60000, "idle", NULL), 403, "refused", "wrong_fleet");
	expect(&f, envelope(f.stranger, NULL, "lab", "n1", 0, 60000, "idle", NULL), 403, "refused", "unknown_key");
	expect(&f, envelope(f.op1, NULL, "lab", "*", 0, 60000, "idle", NULL), 403, "refused", "threshold");
	expect(&f, envelope(f.coord, NULL, "lab", "*", 0, 60000, "idle", NULL), 403, "refused", "role");
	expect(&f, strdup("{\"payload\": 5}"), 400, "refused", "malformed");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "{\"payload\":\"", 12);
	big[sizeof big - 3] = '"';
	big[sizeof big - 2] = '}';
	expect(&f, strdup(big), 413, "refused", "oversize");
	/* A valid envelope whose signature no longer matches its payload. */
	char *tampered = envelope(f.op1, NULL, "lab", "n1", 0, 60000, "idle", NULL);
	char *sig = strstr(tampered, "\"sig\"");
	cr_assert_not_null(sig);
	sig = strchr(sig + 5, '"') + 1;
	sig[3] = sig[3] == 'A' ? 'B' : 'A';
	expect(&f, tampered, 403, "refused", "bad_signature");
	/* Two operators for the whole fleet pass the threshold. */
	expect(&f, envelope(f.op1, f.op2, "lab", "*", 0, 60000, "idle", NULL), 200, "accepted", NULL);
	for (const char *const *r = (const char *const[]){ "replay", "expired", "future", "wrong_node",
		     "wrong_fleet", "unknown_key", "threshold", "role", "malformed", "oversize",
		     "bad_signature", NULL }; *r; r++) {
		char line[128];
		snprintf(line, sizeof line, "hashflop_instructions_refused_total{reason=\"%s\"} 1\n", *r);
		cr_assert(metric_is(&f, line), "missing %s", line);
	}
	cr_assert(metric_is(&f, "hashflop_instructions_accepted_total{source=\"local\"} 2\n"));
	cr_assert(metric_is(&f, "hashflop_instructions_noop_total 1\n"));
	cr_assert(metric_is(&f, "hashflop_instructions_refused_total{reason=\"held\"} 0\n"));
	stop(&f);
	fixture_fini(&f);
}

Test(node_instructions, accepted_state_survives_restart_and_replay_stays_refused)
{
	fixture f;
	reply r;
	char path[600];
	fixture_init(&f, "persist", true, NULL);
	start(&f);
	char *env = envelope(f.op1, NULL, "lab", "n1", -2000, 60000, "mining",
			     ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"bc1qtest.w1\",\"pass\":\"x\"}]}");
	char *copy = strdup(env);
	reply first;
	http("POST", f.port, "/v1/instruction", env, &first);
	free(env);
	cr_assert_eq(first.status, 200, "%s", first.body);
	cr_assert(strstr(first.body, "\"applied\":true"), "the mining worker is built in: %s", first.body);
	snprintf(path, sizeof path, "%s/state.json", f.state);
	char *text = hf_test_read_file(path);
	json_t *st = json_loads(text, 0, NULL);
	free(text);
	cr_assert_str_eq(json_string_value(json_object_get(st, "desired_mode")), "mining");
	cr_assert_gt(json_integer_value(json_object_get(st, "last_issued_ms")), 0);
	json_t *li = json_object_get(st, "last_instruction");
	cr_assert_str_eq(json_string_value(json_object_get(li, "authority")), "operator");
	cr_assert_str_eq(json_string_value(json_object_get(li, "source")), "local");
	cr_assert(json_is_string(json_object_get(li, "envelope")), "the envelope is kept for audit");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(st, "mode_params"), "pools") ?
		json_object_get(json_array_get(json_object_get(json_object_get(st, "mode_params"), "pools"), 0), "url") : NULL),
		"stratum+tcp://127.0.0.1:3333");
	json_decref(st);
	http("GET", f.port, "/v1/status", NULL, &r);
	cr_assert(strstr(r.body, "\"desired_mode\":\"mining\""), "%s", r.body);
	cr_assert_null(strstr(r.body, "\"envelope\""), "status must not echo the envelope");
	stop(&f);

	start(&f);
	cr_assert(hf_test_wait_log(f.log, "restored desired mode mining", 3000));
	cr_assert(hf_test_wait_log(f.log, "mining: started on ", 3000), "mining resumes after the reboot");
	/* The same envelope is a no-op, an older one is a replay, after the reboot too. */
	expect(&f, copy, 200, "noop", NULL);
	expect(&f, envelope(f.op1, NULL, "lab", "n1", -30000, 60000, "idle", NULL), 403, "refused", "replay");
	stop(&f);
	fixture_fini(&f);
}

Test(node_instructions, operator_hold_refuses_automatic_instructions)
{
	fixture f;
	char extra[128];
	fixture_init(&f, "hold", true, NULL);
	start(&f);
	snprintf(extra, sizeof extra, ",\"hold_until_ms\":%llu", (unsigned long long)(hf_wall_ms() + 3600000));
	expect(&f, envelope(f.op1, NULL, "lab", "n1", -3000, 60000, "idle", extra), 200, "accepted", NULL);
	expect(&f, envelope(f.coord, NULL, "lab", "n1", -2000, 60000, "idle", NULL), 409, "refused", "held");
	/* A later operator instruction without a hold lifts the pin. */
	expect(&f, envelope(f.op2, NULL, "lab", "n1", -1000, 60000, "idle", NULL), 200, "accepted", NULL);
	expect(&f, envelope(f.coord, NULL, "lab", "n1", 0, 60000, "idle", NULL), 200, "accepted", NULL);
	cr_assert(metric_is(&f, "hashflop_instructions_refused_total{reason=\"held\"} 1\n"));
	stop(&f);
	fixture_fini(&f);
}

/* ---- a coordinator served from this process ---- */
typedef struct coord {
	pthread_mutex_t lock;
	char *env;             /* served once to a poll with after < its issued_ms */
	uint64_t env_issued;
	int fail_first;        /* answer 500 this many times first */
	int polls;
	char last_after[32];
	char node[64];
} coord;

static void h_instruction(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	coord *c = ctx;
	const char *after = hf_http_query(req, "after");
	uint64_t a = 0;
	pthread_mutex_lock(&c->lock);
	c->polls++;
	hf_strlcpy(c->node, req->params[0], sizeof c->node);
	hf_strlcpy(c->last_after, after ? after : "", sizeof c->last_after);
	if (c->fail_first > 0) {
		c->fail_first--;
		pthread_mutex_unlock(&c->lock);
		hf_http_resp_error(resp, 500, "flaky");
		return;
	}
	hf_parse_u64(after ? after : "0", 0, UINT64_MAX, &a);
	if (c->env && a < c->env_issued) {
		resp->status = 200;
		hf_buf_append(&resp->body, c->env, strlen(c->env));
	} else {
		resp->status = 204;
		hf_sleep_ms(50);
	}
	pthread_mutex_unlock(&c->lock);
}

static const hf_http_route coord_routes[] = {
	{ "GET", "/v1/nodes/*/instruction", h_instruction },
};

static bool wait_metric(fixture *f, const char *line, uint64_t timeout_ms)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	while (hf_mono_ms() < deadline) {
		if (metric_is(f, line))
			return true;
		hf_sleep_ms(20);
	}
	return false;
}

Test(node_instructions, coordinator_long_poll_delivers_and_backs_off)
{
	coord c = { .fail_first = 2 };
	hf_httpd_opts o = { .host = "127.0.0.1", .port = 0 };
	hf_httpd *h;
	fixture f;
	char extra[256];
	pthread_mutex_init(&c.lock, NULL);
	cr_assert_eq(hf_httpd_new(&o, coord_routes, 1, &c, &h, NULL), 0);
	snprintf(extra, sizeof extra, ", \"coordinator_url\": \"http://127.0.0.1:%u\", \"poll_wait_s\": 1, \"retry_max_ms\": 400",
		 hf_httpd_port(h));
	fixture_init(&f, "coord", true, extra);
	uint64_t issued = hf_wall_ms() - 1000;
	c.env = envelope(f.coord, NULL, "lab", "n1", (int64_t)issued, 60000, "idle", NULL);
	c.env_issued = issued;
	start(&f);
	cr_assert(wait_metric(&f, "hashflop_instructions_accepted_total{source=\"coordinator\"} 1\n", 15000),
		  "log:\n%s", hf_test_read_file(f.log));
	cr_assert(wait_metric(&f, "hashflop_control_connected 1\n", 5000));
	cr_assert(metric_is(&f, "hashflop_control_poll_errors_total 2\n"));
	/* The next polls carry the accepted issued_ms and get 204s. */
	char want[32];
	snprintf(want, sizeof want, "%llu", (unsigned long long)issued);
	uint64_t deadline = hf_mono_ms() + 5000;
	bool seen = false;
	while (!seen && hf_mono_ms() < deadline) {
		pthread_mutex_lock(&c.lock);
		seen = strcmp(c.last_after, want) == 0;
		pthread_mutex_unlock(&c.lock);
		hf_sleep_ms(20);
	}
	cr_assert(seen, "polls never acknowledged issued_ms %s (last after=%s)", want, c.last_after);
	cr_assert_str_eq(c.node, "n1");
	reply r;
	http("GET", f.port, "/v1/status", NULL, &r);
	cr_assert(strstr(r.body, "\"authority\":\"coordinator\""), "%s", r.body);
	cr_assert(strstr(r.body, "\"source\":\"coordinator\""), "%s", r.body);
	cr_assert(strstr(r.body, "\"connected\":true"), "%s", r.body);
	uint64_t t0 = hf_mono_ms();
	stop(&f);
	cr_assert_lt(hf_mono_ms() - t0, 5000, "shutdown waited for the long poll");
	hf_httpd_free(h);
	free(c.env);
	fixture_fini(&f);
}

static int coord_polls(coord *c)
{
	pthread_mutex_lock(&c->lock);
	int n = c->polls;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* A coordinator that keeps serving an expired envelope: the node refuses it and backs off
 * (retry_max_ms 200: a few polls a second at most; the old hot loop made thousands). */
Test(node_instructions, coordinator_serving_an_expired_envelope_is_backed_off)
{
	coord c = { 0 };
	hf_httpd_opts o = { .host = "127.0.0.1", .port = 0 };
	hf_httpd *h;
	fixture f;
	char extra[256];
	pthread_mutex_init(&c.lock, NULL);
	cr_assert_eq(hf_httpd_new(&o, coord_routes, 1, &c, &h, NULL), 0);
	snprintf(extra, sizeof extra, ", \"coordinator_url\": \"http://127.0.0.1:%u\", \"poll_wait_s\": 1,"
		 " \"retry_max_ms\": 200", hf_httpd_port(h));
	fixture_init(&f, "coord-expired", true, extra);
	c.env = envelope(f.coord, NULL, "lab", "n1", -5000, -1000, "idle", NULL);
	c.env_issued = UINT64_MAX;
	start(&f);
	uint64_t end = hf_mono_ms() + 20000;
	while (coord_polls(&c) < 3 && hf_mono_ms() < end)
		hf_sleep_ms(10);
	cr_assert_geq(coord_polls(&c), 3, "the coordinator was not polled");
	int p0 = coord_polls(&c);
	uint64_t t0 = hf_mono_ms();
	while (hf_mono_ms() - t0 < 1500)
		hf_sleep_ms(20);
	int n = coord_polls(&c) - p0;
	uint64_t t = hf_mono_ms() - t0;
	fprintf(stderr, "# %d polls of an expired envelope in %llu ms\n", n, (unsigned long long)t);
	cr_assert_leq((uint64_t)n, 2 * (t * 4 / (200 * 3) + 2) + 5, "%d polls in %llu ms", n,
		      (unsigned long long)t);
	reply r;
	http("GET", f.port, "/v1/status", NULL, &r);
	cr_assert(strstr(r.body, "\"last_outcome\":\"refused\""), "%s", r.body);
	cr_assert(strstr(r.body, "expired at"), "the refusal is in last_error: %s", r.body);
	stop(&f);
	hf_httpd_free(h);
	free(c.env);
	fixture_fini(&f);
}

static void kill9(fixture *f)
{
	int st = hf_testproc_stop(f->proc, SIGKILL, 10000);

	f->proc = NULL;
	cr_assert_neq(st, -1);
	cr_assert(WIFSIGNALED(st));
}

static uint64_t persisted_last_issued(fixture *f)
{
	char path[600];
	snprintf(path, sizeof path, "%s/state.json", f->state);
	char *text = hf_test_read_file(path);
	cr_assert_not_null(text);
	json_t *st = json_loads(text, 0, NULL);
	cr_assert_not_null(st, "state.json torn by a kill -9: %s", text);
	uint64_t v = (uint64_t)json_integer_value(json_object_get(st, "last_issued_ms"));
	json_decref(st);
	free(text);
	return v;
}

/* True once a temporary state file (state.json.tmp-*: a write in progress) exists. */
static bool write_in_progress(fixture *f)
{
	DIR *d = opendir(f->state);
	struct dirent *de;
	bool found = false;
	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		found = strncmp(de->d_name, "state.json.tmp-", 15) == 0;
	closedir(d);
	return found;
}

/* Kills the daemon with SIGKILL while it handles an instruction, at a point chosen by a
 * condition (never a sleep): at once (the request has hardly left), as soon as a temporary
 * state file shows the write in progress (or the answer came first), or after the answer (the
 * write is done). Restarts it and checks that state.json holds the old or the new
 * last_issued_ms, never a torn file, and that the new one is a replay after the reboot. The
 * loop runs until both outcomes (killed before and after the write) happened, at most 30
 * times, and fails if either never did. */
Test(node_instructions, kill_9_during_the_write_never_tears_state_or_allows_replay, .timeout = 240)
{
	fixture f;
	uint64_t base = hf_wall_ms() - 50000, last = 0;
	int before = 0, after = 0, mid_write = 0, i;
	fixture_init(&f, "kill9", true, NULL);
	for (i = 0; i < 30 && (i < 6 || before == 0 || after == 0); i++) {
		uint64_t issued = base + (uint64_t)i * 1000;
		char *env = envelope(f.op1, NULL, "lab", "n1", (int64_t)issued, 60000, "idle", NULL);
		start(&f);
		pid_t child = fork();
		cr_assert_geq(child, 0);
		if (child == 0) {
			reply r;
			char url[128];
			snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/instruction", f.port);
			hf_test_http("POST", url, env, strlen(env), &r);
			_exit(0);
		}
		bool reaped = false;
		if (i % 3 == 1) {
			uint64_t end = hf_mono_ms() + 10000;
			while (hf_mono_ms() < end && !write_in_progress(&f) &&
			       !(reaped = waitpid(child, NULL, WNOHANG) == child))
				;
			mid_write += !reaped && write_in_progress(&f);
		} else if (i % 3 == 2) {
			cr_assert_eq(waitpid(child, NULL, 0), child);
			reaped = true;
		}
		kill9(&f);
		if (!reaped)
			waitpid(child, NULL, 0);
		free(env);
		start(&f);
		uint64_t now_last = persisted_last_issued(&f);
		cr_assert(now_last == last || now_last == issued, "last_issued_ms %llu is neither %llu nor %llu",
			  (unsigned long long)now_last, (unsigned long long)last, (unsigned long long)issued);
		if (now_last == issued) {
			after++;
			/* A different envelope with the accepted issued_ms is a replay after the reboot. */
			expect(&f, envelope(f.op2, NULL, "lab", "n1", (int64_t)issued, 70000, "idle", NULL),
			       403, "refused", "replay");
		} else {
			before++;
		}
		last = now_last;
		stop(&f);
	}
	fprintf(stderr, "# %d kills: %d before the write, %d after it, %d with a write in progress\n",
		i, before, after, mid_write);
	cr_assert_gt(before, 0, "no kill landed before the write in %d tries", i);
	cr_assert_gt(after, 0, "no kill landed after the write in %d tries", i);
	char *log = hf_test_read_file(f.log);
	cr_assert_null(strstr(log, "state file refused"), "a kill -9 left a corrupt state file:\n%s", log);
	free(log);
	fixture_fini(&f);
}

static json_t *get_json(fixture *f, const char *path)
{
	reply r;
	http("GET", f->port, path, NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "%s", r.body);
	return j;
}

static json_t *post_json(fixture *f, char *env)
{
	reply r;
	http("POST", f->port, "/v1/instruction", env, &r);
	free(env);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "%s", r.body);
	return j;
}

/* A mining instruction whose start genuinely fails (an OpenCL device that does not exist): the
 * answer says accepted but not applied, with the start's error; /v1/status says not converged,
 * and why; the start is retried with backoff; a later idle instruction converges. */
Test(node_instructions, a_mode_that_cannot_start_is_reported_and_retried, .timeout = 120)
{
	fixture f;
	fixture_init_top(&f, "nostart", true, NULL,
			 ", \"modes\": {\"retry_min_ms\": 50, \"retry_max_ms\": 200},"
			 " \"mining\": {\"backend\": \"opencl\", \"opencl\": {\"device\": \"no-such-device-xyz\"}}");
	start(&f);
	json_t *j = post_json(&f, envelope(f.op1, NULL, "lab", "n1", -2000, 60000, "mining",
		",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"bc1q.w1\"}]}"));
	char *text = json_dumps(j, 0);
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), "accepted", "%s", text);
	cr_assert(json_is_false(json_object_get(j, "applied")), "%s", text);
	cr_assert(json_is_false(json_object_get(j, "pending")), "%s", text);
	cr_assert(json_is_false(json_object_get(j, "converged")), "%s", text);
	const char *err = json_string_value(json_object_get(j, "error"));
	cr_assert(err && strstr(err, "start of mining: "), "%s", text);
	cr_assert(strstr(err, "mining.opencl"), "%s", text);
	free(text);
	json_decref(j);

	/* Retried (at least two more attempts), and said so, until something else is desired. */
	uint64_t end = hf_mono_ms() + 30000;
	json_t *cv = NULL;
	for (;;) {
		j = get_json(&f, "/v1/status");
		cv = json_object_get(j, "convergence");
		if (json_integer_value(json_object_get(cv, "retries")) >= 2 || hf_mono_ms() > end)
			break;
		json_decref(j);
		hf_sleep_ms(20);
	}
	text = json_dumps(j, 0);
	cr_assert_geq(json_integer_value(json_object_get(cv, "retries")), 2, "not retried: %s", text);
	cr_assert(json_is_false(json_object_get(j, "converged")), "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "desired_mode")), "mining", "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "mode")), "idle", "runs idle meanwhile: %s", text);
	const char *state = json_string_value(json_object_get(cv, "state"));
	cr_assert(strcmp(state, "retrying") == 0 || strcmp(state, "switching") == 0, "%s", text);
	const char *why = json_string_value(json_object_get(cv, "reason"));
	cr_assert(why && strstr(why, "mining"), "%s", text);
	free(text);
	json_decref(j);
	reply r;
	http("GET", f.port, "/metrics", NULL, &r);
	cr_assert(strstr(r.body, "hashflop_mode_converged 0\n"), "%s", r.body);
	cr_assert(strstr(r.body, "hashflop_mode_desired{mode=\"mining\"} 1\n"));

	/* Something that can run converges, and the answer says applied. */
	j = post_json(&f, envelope(f.op1, NULL, "lab", "n1", -1000, 60000, "idle", NULL));
	cr_assert(json_is_true(json_object_get(j, "applied")), "%s", json_dumps(j, 0));
	cr_assert(json_is_true(json_object_get(j, "converged")));
	cr_assert_null(json_object_get(j, "error"));
	json_decref(j);
	j = get_json(&f, "/v1/status");
	cr_assert(json_is_true(json_object_get(j, "converged")));
	cr_assert(json_is_null(json_object_get(json_object_get(j, "convergence"), "reason")));
	json_decref(j);
	stop(&f);
	fixture_fini(&f);
}
