/* Integration tests: the real hashflop-coord on 127.0.0.1 (ephemeral port) with libcurl clients:
 * node add and tokens, long polls (wait=0, wait=1, a huge wait capped, a relay waking a parked
 * poll, a client leaving mid-poll), operator relays refused with their reasons, reports
 * validated field by field, oversize bodies, unknown paths, decisions with acks, and a kill -9
 * restart that keeps decisions and issued_ms ordering. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_instr.h"
#include "hf_testnet.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define ADMIN "admin-token-for-tests-0123456789"
#define WAIT_MS 20000

typedef struct reply {
	long status;
	char *body;
	size_t len;
} reply;

typedef struct coord {
	char *dir;
	char cfg[512], log[512], port_file[512], db[512], trust[512], key[512];
	hf_testproc *proc;
	int port;
	hf_key *op, *stranger;
	char ca[512];                /* set: HTTPS, verified with this CA file */
} coord;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	reply *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, p, sz * n);
	r->body = nb;
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

/* One exchange; token NULL: no Authorization header. The body is kept in r (free r->body). */
static void http(const coord *c, const char *method, const char *path, const char *token,
		 const char *body, size_t len, reply *r)
{
	char url[512], auth[400];
	struct curl_slist *h = NULL;
	CURL *curl = curl_easy_init();
	CURLcode cc;

	memset(r, 0, sizeof *r);
	snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", c->ca[0] ? "https" : "http", c->port, path);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	if (c->ca[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	cc = curl_easy_perform(curl);
	cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	if (!r->body)
		r->body = calloc(1, 1);
}

static json_t *http_json(const coord *c, const char *method, const char *path, const char *token,
			 const char *body, long want)
{
	reply r;
	json_t *j;

	http(c, method, path, token, body, body ? strlen(body) : 0, &r);
	cr_assert_eq(r.status, want, "%s %s: HTTP %ld, expected %ld: %s", method, path, r.status,
		     want, r.body);
	j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "%s %s: not JSON: %s", method, path, r.body);
	free(r.body);
	return j;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static void add_key(json_t *keys, hf_key *k, const char *role)
{
	char *pem;
	cr_assert_eq(hf_key_public_pem(k, &pem, NULL), 0);
	json_array_append_new(keys, json_pack("{s:s, s:s}", "role", role, "public_key_pem", pem));
	free(pem);
}

/* Keys, trust file (one operator, threshold 1), admin token and coord.json; limits_extra is
 * spliced into "limits", listen_extra into "listen". */
static void coord_init_listen(coord *c, const char *name, const char *limits_extra,
			      const char *listen_extra)
{
	char text[4096], admin[512];
	hf_key *ck;
	json_t *trust = json_object(), *keys = json_array();

	memset(c, 0, sizeof *c);
	c->dir = hf_test_tmpdir(name);
	cr_assert_not_null(c->dir);
	snprintf(c->cfg, sizeof c->cfg, "%s/coord.json", c->dir);
	snprintf(c->log, sizeof c->log, "%s/coord.log", c->dir);
	snprintf(c->port_file, sizeof c->port_file, "%s/port", c->dir);
	snprintf(c->db, sizeof c->db, "%s/db/coord.db", c->dir);
	snprintf(c->trust, sizeof c->trust, "%s/trust.json", c->dir);
	snprintf(c->key, sizeof c->key, "%s/coordinator.pem", c->dir);
	snprintf(admin, sizeof admin, "%s/admin.token", c->dir);
	cr_assert_eq(hf_key_generate(&ck, NULL), 0);
	cr_assert_eq(hf_key_write_private_pem(ck, c->key, NULL), 0);
	cr_assert_eq(hf_key_generate(&c->op, NULL), 0);
	cr_assert_eq(hf_key_generate(&c->stranger, NULL), 0);
	add_key(keys, c->op, "operator");
	add_key(keys, ck, "coordinator");
	hf_key_free(ck);
	json_object_set_new(trust, "keys", keys);
	json_object_set_new(trust, "fleet_threshold", json_integer(1));
	cr_assert_eq(json_dump_file(trust, c->trust, 0), 0);
	json_decref(trust);
	write_text(admin, ADMIN "\n");
	snprintf(text, sizeof text,
		 "{\"fleet_id\": \"lab\", \"listen\": {\"address\": \"127.0.0.1\", \"port\": 0, "
		 "\"port_file\": \"%s\"%s}, \"signing_key\": \"%s\", \"trust_file\": \"%s\", "
		 "\"admin_token_file\": \"%s\", \"database\": \"%s\", \"instruction_ttl_s\": 600, "
		 "\"clock_skew_ms\": 3600000, "
		 "\"limits\": {\"threads\": 2%s}}",
		 c->port_file, listen_extra ? listen_extra : "", c->key, c->trust, admin, c->db,
		 limits_extra ? limits_extra : "");
	write_text(c->cfg, text);
}

static void coord_init(coord *c, const char *name, const char *limits_extra)
{
	coord_init_listen(c, name, limits_extra, NULL);
}

static const char *coord_exe(void)
{
	static char exe[1024];
	snprintf(exe, sizeof exe, "%s/runtime/coord/hashflop-coord", hf_test_build_root());
	return exe;
}

static void coord_start(coord *c)
{
	const char *argv[] = { coord_exe(), "--config", c->cfg, NULL };
	char *text;

	unlink(c->port_file);
	c->proc = hf_testproc_start(argv, c->log);
	cr_assert_not_null(c->proc);
	if (!hf_test_wait_file(c->port_file, WAIT_MS)) {
		char *log = hf_test_read_file(c->log);
		cr_assert_fail("hashflop-coord wrote no port file in time; log:\n%s", log ? log : "");
	}
	text = hf_test_read_file(c->port_file);
	c->port = atoi(text);
	free(text);
	cr_assert_gt(c->port, 0);
}

static void coord_fini(coord *c)
{
	hf_testproc_free(c->proc);
	hf_key_free(c->op);
	hf_key_free(c->stranger);
	free(c->dir);
}

/* `hashflop-coord node ...`: its exit status; stdout+stderr in out (free()). */
static int coord_cli(const coord *c, const char *const *args, char **out)
{
	const char *argv[8] = { coord_exe(), "--config", c->cfg };
	char log[600];
	size_t n = 3;
	int status = -1;
	hf_testproc *p;

	for (; *args && n < 7; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	snprintf(log, sizeof log, "%s/cli.out", c->dir);
	unlink(log);
	p = hf_testproc_start(argv, log);
	cr_assert_not_null(p);
	cr_assert(hf_testproc_wait_exit(p, WAIT_MS, &status), "hashflop-coord node ... hung");
	hf_testproc_free(p);
	*out = hf_test_read_file(log);
	if (!*out)
		*out = calloc(1, 1);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* node add ID: the printed token (64 hex digits). */
static void node_add(const coord *c, const char *id, char token[65])
{
	const char *args[] = { "node", "add", id, NULL };
	char *out;

	cr_assert_eq(coord_cli(c, args, &out), 0, "node add %s: %s", id, out);
	cr_assert_eq(strlen(out), 65, "node add printed \"%s\"", out);
	cr_assert_eq(out[64], '\n');
	for (int i = 0; i < 64; i++)
		cr_assert(strchr("0123456789abcdef", out[i]), "token \"%s\" is not hex", out);
	memcpy(token, out, 64);
	token[64] = '\0';
	free(out);
}

/* An envelope signed by k: payload {v, fleet, node, issued_ms, expires_ms, mode} + extra. */
static char *envelope(hf_key *k, const char *fleet, const char *node, uint64_t issued,
		      uint64_t expires, const char *mode, const char *extra)
{
	char payload[2048], *env = NULL;
	snprintf(payload, sizeof payload, "{\"v\":1,\"fleet\":\"%s\",\"node\":\"%s\",\"issued_ms\":%llu,"
		 "\"expires_ms\":%llu,\"mode\":\"%s\"%s}", fleet, node, (unsigned long long)issued,
		 (unsigned long long)expires, mode, extra ? extra : "");
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), &k, 1, &env, NULL), 0);
	return env;
}

static json_t *status_of(const coord *c)
{
	return http_json(c, "GET", "/v1/status", NULL, NULL, 200);
}

static long long num(const json_t *j, const char *key)
{
	return (long long)json_integer_value(json_object_get(j, key));
}

/* Waits until /v1/status waiting_polls == want. */
static void wait_waiting(const coord *c, long long want)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	long long got = -1;
	while (hf_mono_ms() < end) {
		json_t *s = status_of(c);
		got = num(s, "waiting_polls");
		json_decref(s);
		if (got == want)
			return;
		hf_sleep_ms(10);
	}
	cr_assert_fail("waiting_polls stayed %lld, expected %lld", got, want);
}

static void poll_path(char *path, size_t sz, const char *node, uint64_t after, const char *wait)
{
	snprintf(path, sz, "/v1/nodes/%s/instruction?after=%llu&wait=%s", node,
		 (unsigned long long)after, wait);
}

Test(coord_api, node_add_list_remove_and_tokens)
{
	coord c;
	char tok[65], tok2[65], *out, path[256];
	reply r;

	coord_init(&c, "coord_nodes", NULL);
	node_add(&c, "n1", tok);
	node_add(&c, "n2", tok2);
	cr_assert_neq(strcmp(tok, tok2), 0, "two nodes got the same token");
	{
		const char *args[] = { "node", "add", "n1", NULL };
		cr_assert_eq(coord_cli(&c, args, &out), 1, "a second node add n1 succeeded: %s", out);
		cr_assert(strstr(out, "exists"), "%s", out);
		free(out);
	}
	{
		const char *args[] = { "node", "add", "bad/id", NULL };
		cr_assert_eq(coord_cli(&c, args, &out), 2, "%s", out);
		free(out);
	}
	{
		const char *args[] = { "node", "list", NULL };
		cr_assert_eq(coord_cli(&c, args, &out), 0);
		cr_assert(strstr(out, "n1\t") && strstr(out, "n2\t"), "node list: %s", out);
		cr_assert_null(strstr(out, tok), "node list shows a token");
		free(out);
	}
	coord_start(&c);
	poll_path(path, sizeof path, "n1", 0, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 204, "poll with the token: %ld %s", r.status, r.body);
	free(r.body);
	http(&c, "GET", path, tok2, NULL, 0, &r);
	cr_assert_eq(r.status, 401, "n2's token accepted for n1");
	free(r.body);
	http(&c, "GET", path, NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 401);
	free(r.body);
	poll_path(path, sizeof path, "ghost", 0, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 401, "unknown node: %ld (never 404)", r.status);
	free(r.body);
	/* Removed while running: refused once the coordinator re-reads the node set. */
	{
		const char *args[] = { "node", "remove", "n2", NULL };
		cr_assert_eq(coord_cli(&c, args, &out), 0, "%s", out);
		free(out);
	}
	poll_path(path, sizeof path, "n2", 0, "0");
	uint64_t end = hf_mono_ms() + WAIT_MS;
	do {
		http(&c, "GET", path, tok2, NULL, 0, &r);
		free(r.body);
		if (r.status == 401)
			break;
		hf_sleep_ms(50);
	} while (hf_mono_ms() < end);
	cr_assert_eq(r.status, 401, "a removed node still polls");
	coord_fini(&c);
}

Test(coord_api, polls_wait_zero_one_and_capped)
{
	coord c;
	char tok[65], path[256];
	uint64_t t0, dt;
	reply r;

	coord_init(&c, "coord_polls", ", \"max_wait_s\": 2");
	node_add(&c, "n1", tok);
	coord_start(&c);
	poll_path(path, sizeof path, "n1", 0, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 204);
	free(r.body);
	t0 = hf_mono_ms();
	poll_path(path, sizeof path, "n1", 0, "1");
	http(&c, "GET", path, tok, NULL, 0, &r);
	dt = hf_mono_ms() - t0;
	cr_assert_eq(r.status, 204);
	cr_assert_geq(dt, 950, "wait=1 answered after %llu ms", (unsigned long long)dt);
	free(r.body);
	t0 = hf_mono_ms();
	poll_path(path, sizeof path, "n1", 0, "99999999999999");
	http(&c, "GET", path, tok, NULL, 0, &r);
	dt = hf_mono_ms() - t0;
	cr_assert_eq(r.status, 204, "huge wait: %ld %s", r.status, r.body);
	cr_assert_geq(dt, 1950, "capped wait answered after %llu ms", (unsigned long long)dt);
	cr_assert_lt(dt, 30000, "a huge wait was not capped to max_wait_s 2 (%llu ms)",
		     (unsigned long long)dt);
	free(r.body);
	poll_path(path, sizeof path, "n1", 0, "soon");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 400, "wait=soon: %ld", r.status);
	cr_assert(strstr(r.body, "wait"), "%s", r.body);
	free(r.body);
	wait_waiting(&c, 0);
	coord_fini(&c);
}

typedef struct poller {
	const coord *c;
	char path[256], token[65];
	reply r;
	uint64_t done_ms;
} poller;

static void *poll_thread(void *arg)
{
	poller *p = arg;
	char url[512], auth[128];
	struct curl_slist *h = NULL;
	CURL *curl = curl_easy_init();

	memset(&p->r, 0, sizeof p->r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p->c->port, p->path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", p->token);
	h = curl_slist_append(h, auth);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &p->r);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->r.status);
	p->done_ms = hf_mono_ms();
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	return NULL;
}

Test(coord_api, relay_wakes_parked_polls_and_refusals_have_reasons)
{
	coord c;
	char tok[65], tok2[65], *env, *big;
	poller p1 = { 0 }, p2 = { 0 };
	pthread_t t1, t2;
	uint64_t now = hf_wall_ms(), sent;
	json_t *j;
	reply r;

	coord_init(&c, "coord_relay", NULL);
	node_add(&c, "n1", tok);
	node_add(&c, "n2", tok2);
	coord_start(&c);
	p1.c = p2.c = &c;
	poll_path(p1.path, sizeof p1.path, "n1", 0, "30");
	poll_path(p2.path, sizeof p2.path, "n2", 0, "30");
	strcpy(p1.token, tok);
	strcpy(p2.token, tok2);
	pthread_create(&t1, NULL, poll_thread, &p1);
	pthread_create(&t2, NULL, poll_thread, &p2);
	wait_waiting(&c, 2);
	env = envelope(c.op, "lab", "n1", now, now + 60000, "mining",
		       ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"u\",\"pass\":\"x\"}]}");
	sent = hf_mono_ms();
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), "relayed");
	cr_assert_eq(num(j, "issued_ms"), (long long)now);
	cr_assert_eq(num(j, "nodes"), 1);
	json_decref(j);
	pthread_join(t1, NULL);
	cr_assert_eq(p1.r.status, 200, "the parked poll: %ld %s", p1.r.status, p1.r.body);
	cr_assert_str_eq(p1.r.body, env, "the poll did not get the relayed envelope byte for byte");
	cr_assert_geq(p1.done_ms, sent);
	cr_log_info("relay -> parked poll answered: %llu ms", (unsigned long long)(p1.done_ms - sent));
	cr_assert_lt(p1.done_ms - sent, 25000, "the relay woke the poll only after %llu ms",
		     (unsigned long long)(p1.done_ms - sent));
	free(p1.r.body);
	/* n2's poll is still parked: the relay was for n1 only. */
	wait_waiting(&c, 1);
	/* Replay: the same envelope again. */
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "replay");
	json_decref(j);
	free(env);
	/* Forged: signed by a key the trust file does not list. */
	env = envelope(c.stranger, "lab", "n1", now + 1, now + 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "unknown_key");
	json_decref(j);
	free(env);
	/* Tampered: a valid signature over other bytes. */
	{
		char *a = envelope(c.op, "lab", "n1", now + 2, now + 60000, "idle", NULL);
		char *b = envelope(c.op, "lab", "n1", now + 3, now + 60000, "inference", NULL);
		json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
		json_object_set(ja, "payload", json_object_get(jb, "payload"));
		char *forged = json_dumps(ja, JSON_COMPACT);
		j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, forged, 403);
		cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "bad_signature");
		json_decref(j);
		free(forged);
		json_decref(ja);
		json_decref(jb);
		free(a);
		free(b);
	}
	env = envelope(c.op, "other", "n1", now + 4, now + 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "wrong_fleet");
	json_decref(j);
	free(env);
	env = envelope(c.op, "lab", "n1", now - 120000, now - 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert(strcmp(json_string_value(json_object_get(j, "reason")), "expired") == 0 ||
		  strcmp(json_string_value(json_object_get(j, "reason")), "replay") == 0);
	json_decref(j);
	free(env);
	while (hf_wall_ms() <= now + 6)
		hf_sleep_ms(1);
	env = envelope(c.op, "lab", "n1", now + 5, now + 6, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "expired");
	json_decref(j);
	free(env);
	env = envelope(c.op, "lab", "n2", now + 7, now + 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "wrong_node");
	json_decref(j);
	j = http_json(&c, "POST", "/v1/fleet/instruction", NULL, env, 403);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "wrong_node");
	json_decref(j);
	j = http_json(&c, "POST", "/v1/nodes/ghost/instruction", NULL, env, 404);
	json_decref(j);
	free(env);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, "{\"payload\":1}", 400);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "malformed");
	json_decref(j);
	/* Over limits.max_body (16 KiB): 413 with the reason. */
	big = malloc(20001);
	memset(big, ' ', 20000);
	big[0] = '{';
	big[19999] = '}';
	big[20000] = '\0';
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, big, 413);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "oversize");
	json_decref(j);
	free(big);
	/* The fleet relay wakes n2 (its envelope is now the newest for n2). */
	env = envelope(c.op, "lab", "*", now + 10, now + 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/fleet/instruction", NULL, env, 200);
	cr_assert_eq(num(j, "nodes"), 2, "the fleet envelope is newer than n1's: both nodes");
	json_decref(j);
	pthread_join(t2, NULL);
	cr_assert_eq(p2.r.status, 200);
	cr_assert_str_eq(p2.r.body, env);
	free(p2.r.body);
	free(env);
	http(&c, "GET", "/metrics", NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "hashflop_coord_relays_refused_total{reason=\"replay\"} 2\n"), "%s", r.body);
	cr_assert(strstr(r.body, "hashflop_coord_relays_refused_total{reason=\"unknown_key\"} 1\n"));
	cr_assert(strstr(r.body, "hashflop_coord_decisions_total{authority=\"operator\"} 2\n"));
	cr_assert(strstr(r.body, "hashflop_coord_fanout_seconds_count 2\n"), "%s", r.body);
	free(r.body);
	coord_fini(&c);
}

static char *report(const char *node, uint64_t applied, const char *extra)
{
	char *text = malloc(4096);
	snprintf(text, 4096,
		 "{\"v\":1,\"node\":\"%s\",\"fleet\":\"lab\",\"wall_ms\":%llu,\"seq\":3,\"version\":\"0.1.0\","
		 "\"applied_issued_ms\":%llu,\"mode\":\"idle\",\"desired_mode\":\"idle\",\"phase\":\"running\","
		 "\"converged\":true,\"convergence\":\"converged\",\"hashrate_hs\":0,\"flops\":0,"
		 "\"inferences_per_s\":0,\"power\":{\"watts\":41.5,\"joules_total\":1234,\"source\":\"estimate\","
		 "\"boundary\":\"package\",\"estimated\":true,\"window_s\":60,\"window_watts\":40,"
		 "\"mh_per_j\":0,\"gflop_per_j\":0,\"inferences_per_j\":0},\"last_switch\":null%s}",
		 node, (unsigned long long)hf_wall_ms(), (unsigned long long)applied, extra ? extra : "");
	return text;
}

/* Posts a report whose text has `from` replaced by `to`: 400 naming field. */
static void bad_report(const coord *c, const char *tok, const char *from, const char *to,
		       const char *field)
{
	char *text = report("n1", 0, NULL), *at = strstr(text, from), buf[4096];
	json_t *j;

	cr_assert_not_null(at, "%s not in the report", from);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	j = http_json(c, "POST", "/v1/nodes/n1/report", tok, buf, 400);
	cr_assert_str_eq(json_string_value(json_object_get(j, "field")), field, "%s -> %s: %s", from,
			 to, json_string_value(json_object_get(j, "error")));
	json_decref(j);
	free(text);
}

Test(coord_api, reports_decisions_and_acks)
{
	coord c;
	char tok[65], tok2[65], *text, *big, path[128];
	json_t *j, *d, *n;
	long long issued;
	reply r;

	coord_init(&c, "coord_reports", NULL);
	node_add(&c, "n1", tok);
	node_add(&c, "n2", tok2);
	coord_start(&c);
	/* An automatic decision through the "api" source, then the node's acknowledgment. */
	j = http_json(&c, "POST", "/v1/decisions", NULL, "{\"node\":\"n1\",\"mode\":\"idle\"}", 401);
	json_decref(j);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN,
		      "{\"node\":\"n1\",\"mode\":\"idle\",\"reason\":{\"why\":\"power price\"}}", 200);
	issued = num(j, "issued_ms");
	cr_assert_gt(issued, 0);
	cr_assert_eq(json_array_size(json_object_get(j, "seq")), 1);
	json_decref(j);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"n1\",\"mode\":\"dance\"}", 400);
	cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "mode");
	json_decref(j);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"ghost\",\"mode\":\"idle\"}", 404);
	json_decref(j);
	text = report("n1", (uint64_t)issued, NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/report", tok, text, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), "ok");
	cr_assert_eq(num(j, "next_report_s"), 10);
	json_decref(j);
	/* Bad token, another node's token, no token. */
	j = http_json(&c, "POST", "/v1/nodes/n1/report", tok2, text, 401);
	json_decref(j);
	j = http_json(&c, "POST", "/v1/nodes/n1/report", "not-a-token", text, 401);
	json_decref(j);
	j = http_json(&c, "POST", "/v1/nodes/n1/report", NULL, text, 401);
	json_decref(j);
	free(text);
	/* Malformed reports name the field. */
	bad_report(&c, tok, "\"wall_ms\":", "\"wall_ms\":-5,\"x\":", "x");
	bad_report(&c, tok, "\"mode\":\"idle\"", "\"mode\":\"dancing\"", "mode");
	bad_report(&c, tok, "\"watts\":41.5", "\"watts\":-1", "power.watts");
	bad_report(&c, tok, "\"source\":\"estimate\"", "\"source\":12", "power.source");
	bad_report(&c, tok, "\"converged\":true", "\"converged\":\"yes\"", "converged");
	bad_report(&c, tok, "\"fleet\":\"lab\"", "\"fleet\":\"other\"", "fleet");
	bad_report(&c, tok, "\"node\":\"n1\"", "\"node\":\"n2\"", "node");
	bad_report(&c, tok, "\"last_switch\":null", "\"last_switch\":{\"seq\":1}", "last_switch.from");
	bad_report(&c, tok, "\"v\":1", "\"v\":2", "v");
	bad_report(&c, tok, "\"hashrate_hs\":0", "\"hashrate_hs\":1e999", "report");
	/* Over limits.max_report_body (64 KiB): 413. */
	big = malloc(70001);
	memset(big, ' ', 70000);
	big[70000] = '\0';
	http(&c, "POST", "/v1/nodes/n1/report", tok, big, 70000, &r);
	cr_assert_eq(r.status, 413, "a 70 KB report: %ld", r.status);
	free(r.body);
	free(big);
	/* Unknown paths and methods. */
	http(&c, "GET", "/v1/nope", NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(r.body, "\"error\""), "%s", r.body);
	free(r.body);
	http(&c, "DELETE", "/v1/fleet", NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 405);
	free(r.body);
	/* The fleet view shows the acknowledgment and convergence; the audit log the ack. */
	j = http_json(&c, "GET", "/v1/fleet", NULL, NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "fleet")), "lab");
	n = json_array_get(json_object_get(j, "nodes"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(n, "id")), "n1");
	cr_assert_eq(num(n, "acked_issued_ms"), issued);
	cr_assert(json_is_true(json_object_get(n, "converged")));
	cr_assert(json_is_false(json_object_get(n, "offline")));
	cr_assert_str_eq(json_string_value(json_object_get(n, "mode")), "idle");
	cr_assert_str_eq(json_string_value(json_object_get(n, "desired_mode")), "idle");
	cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(j, "nodes"), 1), "offline")),
		  "n2 never polled nor reported: offline");
	json_decref(j);
	snprintf(path, sizeof path, "/v1/nodes/n1");
	j = http_json(&c, "GET", path, NULL, NULL, 200);
	cr_assert_eq(json_real_value(json_object_get(json_object_get(json_object_get(j, "last_report"),
			     "power"), "watts")), 41.5);
	json_decref(j);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		j = http_json(&c, "GET", "/v1/decisions?after=0&limit=10", NULL, NULL, 200);
		d = json_array_get(json_object_get(j, "decisions"), 0);
		cr_assert_not_null(d);
		cr_assert_str_eq(json_string_value(json_object_get(d, "authority")), "coordinator");
		cr_assert_str_eq(json_string_value(json_object_get(d, "source")), "api");
		cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "reason"), "why")),
				 "power price");
		if (json_array_size(json_object_get(d, "acks")) == 1)
			break;
		json_decref(j);
		cr_assert_lt(hf_mono_ms(), end, "the ack never reached the audit log");
		hf_sleep_ms(50);
	}
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(d, "acks"), 0),
			 "node")), "n1");
	json_decref(j);
	(void)tok2;
	coord_fini(&c);
}

Test(coord_api, client_leaving_mid_poll_does_not_leak)
{
	coord c;
	char tok[65], req[512];
	int fds[5];

	coord_init(&c, "coord_gone", NULL);
	node_add(&c, "n1", tok);
	coord_start(&c);
	snprintf(req, sizeof req, "GET /v1/nodes/n1/instruction?after=0&wait=300 HTTP/1.1\r\n"
		 "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", tok);
	for (int i = 0; i < 5; i++) {
		fds[i] = hf_test_raw_connect(NULL, (uint16_t)c.port);
		cr_assert_geq(fds[i], 0);
		cr_assert(hf_test_send_str(fds[i], req));
	}
	wait_waiting(&c, 5);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	wait_waiting(&c, 0);
	{
		reply r;
		http(&c, "GET", "/metrics", NULL, NULL, 0, &r);
		cr_assert(strstr(r.body, "hashflop_coord_polls_gone_total 5\n"), "%s", r.body);
		free(r.body);
	}
	coord_fini(&c);
}

Test(coord_api, restart_keeps_decisions_and_ordering)
{
	coord c;
	char tok[65], path[256], *env;
	uint64_t now = hf_wall_ms(), future = now + 1800000;
	int status;
	json_t *j;
	reply r;

	coord_init(&c, "coord_restart", NULL);
	node_add(&c, "n1", tok);
	coord_start(&c);
	/* An operator envelope issued 30 min ahead (within this config's clock_skew_ms, 1 h): the
	 * floor is now ahead of the wall clock, which cannot reach it during the test. */
	env = envelope(c.op, "lab", "n1", future, future + 600000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n1/instruction", NULL, env, 200);
	json_decref(j);
	cr_assert_eq(hf_testproc_signal(c.proc, SIGKILL), 0);
	cr_assert(hf_testproc_wait_exit(c.proc, WAIT_MS, &status));
	hf_testproc_free(c.proc);
	c.proc = NULL;
	coord_start(&c);
	poll_path(path, sizeof path, "n1", 0, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "after kill -9: %ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, env, "the relayed envelope is not served after the restart");
	free(r.body);
	/* A new automatic decision orders after it although the clock has not reached it. */
	cr_assert_lt(hf_wall_ms(), future);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"n1\",\"mode\":\"mining\","
		      "\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\",\"user\":\"u\","
		      "\"pass\":\"x\"}]}}", 200);
	cr_assert_gt(num(j, "issued_ms"), (long long)future);
	json_decref(j);
	poll_path(path, sizeof path, "n1", future, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_neq(strcmp(r.body, env), 0);
	free(r.body);
	/* The audit log kept both. */
	j = http_json(&c, "GET", "/v1/decisions", NULL, NULL, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "decisions")), 2);
	json_decref(j);
	/* SIGHUP does not reload, nor end the coordinator: logged, and it goes on serving. */
	cr_assert_eq(hf_testproc_signal(c.proc, SIGHUP), 0);
	cr_assert(hf_test_wait_log(c.log, "SIGHUP ignored", WAIT_MS), "no SIGHUP log line");
	j = http_json(&c, "GET", "/v1/decisions", NULL, NULL, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "decisions")), 2);
	json_decref(j);
	cr_assert_eq(hf_testproc_stop(c.proc, SIGTERM, WAIT_MS), 0, "SIGTERM: not a clean exit");
	c.proc = NULL;
	free(env);
	coord_fini(&c);
}

Test(coord_api, https_with_a_certificate_and_key)
{
	coord c;
	char tok[65], cert[600], key[600], listen[1400], path[256], api[600], *text;
	reply r;

	c.dir = hf_test_tmpdir("coord_tls_keys");
	snprintf(cert, sizeof cert, "%s/cert.pem", c.dir);
	snprintf(key, sizeof key, "%s/key.pem", c.dir);
	cr_assert(hf_test_self_signed_cert(cert, key), "openssl req failed");
	free(c.dir);
	snprintf(listen, sizeof listen, ", \"tls_cert\": \"%s\", \"tls_key\": \"%s\"", cert, key);
	coord_init_listen(&c, "coord_tls", NULL, listen);
	node_add(&c, "n1", tok);
	coord_start(&c);
	snprintf(c.ca, sizeof c.ca, "%s", cert);
	poll_path(path, sizeof path, "n1", 0, "0");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 204, "poll over HTTPS: %ld %s", r.status, r.body);
	free(r.body);
	{
		json_t *s = status_of(&c);
		cr_assert(json_is_true(json_object_get(s, "tls")));
		json_decref(s);
	}
	snprintf(api, sizeof api, "%s/db/coord-api.json", c.dir);
	text = hf_test_read_file(api);
	cr_assert(text && strstr(text, "\"url\": \"https://127.0.0.1:"), "%s", text ? text : "(none)");
	free(text);
	coord_fini(&c);
}

Test(coord_api, resign_at_half_ttl_and_holds, .timeout = 120)
{
	coord c;
	char tok[65], tok2[65], path[256], *env;
	long long issued, seq;
	uint64_t now;
	json_t *j, *d;
	reply r;

	coord_init(&c, "coord_resign", NULL);
	node_add(&c, "n1", tok);
	node_add(&c, "n2", tok2);
	coord_start(&c);
	/* A 10 s TTL: re-signed about 5 s later while it stands, recorded with resigned_from; a
	 * poll parked with after = the first issued_ms gets the new envelope. */
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"n1\",\"mode\":\"idle\","
		      "\"ttl_s\":10,\"reason\":{\"why\":\"test\"}}", 200);
	issued = num(j, "issued_ms");
	seq = (long long)json_integer_value(json_array_get(json_object_get(j, "seq"), 0));
	json_decref(j);
	poll_path(path, sizeof path, "n1", (uint64_t)issued, "30");
	http(&c, "GET", path, tok, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "no re-signed envelope within the poll: %ld", r.status);
	free(r.body);
	j = http_json(&c, "GET", "/v1/decisions?after=1", NULL, NULL, 200);
	d = json_array_get(json_object_get(j, "decisions"), 0);
	cr_assert_not_null(d, "no second decision recorded");
	cr_assert_eq(num(d, "resigned_from"), seq);
	cr_assert_gt(num(d, "issued_ms"), issued);
	cr_assert_eq(num(d, "expires_ms") - num(d, "issued_ms"), 10000, "the TTL changed");
	cr_assert_str_eq(json_string_value(json_object_get(d, "mode")), "idle");
	cr_assert_str_eq(json_string_value(json_object_get(d, "source")), "api");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "reason"), "why")), "test");
	json_decref(j);
	/* An operator hold on n2: automatic decisions for it are refused "held" (409), for "*"
	 * it is skipped and listed. */
	now = hf_wall_ms();
	env = envelope(c.op, "lab", "n2", now, now + 60000, "mining",
		       ",\"hold_until_ms\":9999999999999,\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\","
		       "\"user\":\"u\",\"pass\":\"x\"}]}");
	j = http_json(&c, "POST", "/v1/nodes/n2/instruction", NULL, env, 200);
	json_decref(j);
	free(env);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"n2\",\"mode\":\"idle\"}", 409);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "held");
	json_decref(j);
	j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"*\",\"mode\":\"idle\"}", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "seq")), 1, "only n1 decided");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "held"), 0)), "n2");
	json_decref(j);
	j = http_json(&c, "GET", "/v1/nodes/n2", NULL, NULL, 200);
	cr_assert_eq(num(j, "hold_until_ms"), 9999999999999LL);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "desired"), "by")), "operator");
	json_decref(j);
	/* The operator can still move a held node. */
	env = envelope(c.op, "lab", "n2", now + 1, now + 60000, "idle", NULL);
	j = http_json(&c, "POST", "/v1/nodes/n2/instruction", NULL, env, 200);
	json_decref(j);
	free(env);
	/* A fleet-wide hold ("*" with hold_until_ms) holds every node, also after a kill -9. */
	env = envelope(c.op, "lab", "*", now + 2, now + 60000, "idle", ",\"hold_until_ms\":9999999999999");
	j = http_json(&c, "POST", "/v1/fleet/instruction", NULL, env, 200);
	json_decref(j);
	free(env);
	for (int round = 0; round < 2; round++) {
		j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"*\",\"mode\":\"idle\"}", 409);
		cr_assert_eq(json_array_size(json_object_get(j, "held")), 2, "round %d", round);
		json_decref(j);
		j = http_json(&c, "POST", "/v1/decisions", ADMIN, "{\"node\":\"n1\",\"mode\":\"idle\"}", 409);
		json_decref(j);
		if (round == 0) {
			int status;
			cr_assert_eq(hf_testproc_signal(c.proc, SIGKILL), 0);
			cr_assert(hf_testproc_wait_exit(c.proc, WAIT_MS, &status));
			hf_testproc_free(c.proc);
			c.proc = NULL;
			coord_start(&c);
		}
	}
	coord_fini(&c);
}
