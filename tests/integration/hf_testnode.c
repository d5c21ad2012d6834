/* hf_testnode: hashflopd's config, trust file, signed instructions and status waits for tests.
 * Threading: test code only (asserts with Criterion from the calling test).
 */
#include "hf_testnode.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hf_util.h"

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_geq(fputs(text, f), 0, "cannot write %s", path);
	cr_assert_eq(fclose(f), 0, "cannot write %s", path);
}

/* Writes node.json: node id, initial mode, `modes_extra` and `control_extra` (",\"key\": v..."
 * or ""), the mining section or none. */
static void init_config(hf_testnode *n, const char *name, const char *id, const char *initial,
			const char *modes_extra, const char *control_extra, const char *mining)
{
	char *text = malloc(16384);

	cr_assert_not_null(text);
	memset(n, 0, sizeof *n);
	n->dir = hf_test_tmpdir(name);
	cr_assert_not_null(n->dir, "cannot make a directory for %s", name);
	snprintf(n->cfg, sizeof n->cfg, "%s/node.json", n->dir);
	snprintf(n->log, sizeof n->log, "%s/hashflopd.log", n->dir);
	snprintf(n->state, sizeof n->state, "%s/state", n->dir);
	snprintf(n->trust, sizeof n->trust, "%s/trust.json", n->dir);
	snprintf(text, 16384,
		 "{\"node_id\": \"%s\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"inference\": {\"port\": 0},\n"
		 " \"modes\": {\"initial\": \"%s\"%s},\n"
		 " \"control\": {\"trust_file\": \"%s\"%s}%s%s}\n",
		 id, n->state, initial, modes_extra, n->trust, control_extra,
		 mining ? ",\n \"mining\": " : "", mining ? mining : "");
	write_text(n->cfg, text);
	free(text);
}

void hf_testnode_init(hf_testnode *n, const char *name, const char *initial, const char *mining,
		      unsigned drain_timeout_ms)
{
	char modes[64];

	snprintf(modes, sizeof modes, ", \"drain_timeout_ms\": %u", drain_timeout_ms);
	init_config(n, name, "n1", initial, modes, "", mining);
}

void hf_testnode_init_fleet(hf_testnode *n, const char *name, const char *id, const char *initial,
			    const char *control, const char *mining)
{
	init_config(n, name, id, initial, "", control ? control : "", mining);
}

void hf_testnode_trust(hf_testnode *n)
{
	char *pem;

	cr_assert_eq(hf_key_generate(&n->op, NULL), 0);
	cr_assert_eq(hf_key_public_pem(n->op, &pem, NULL), 0);
	json_t *t = json_pack("{s:[{s:s, s:s}], s:i}", "keys", "role", "operator", "public_key_pem",
			      pem, "fleet_threshold", 1);
	cr_assert_eq(json_dump_file(t, n->trust, 0), 0, "cannot write %s", n->trust);
	json_decref(t);
	free(pem);
}

void hf_testnode_start(hf_testnode *n, const char *const *env)
{
	char err[2048];

	for (const char *const *e = env; e && e[0]; e += 2)
		setenv(e[0], e[1], 1);
	n->proc = hf_test_start_hashflopd(n->cfg, n->log, n->state, HF_TESTNODE_WAIT_MS, &n->port,
					  err, sizeof err);
	for (const char *const *e = env; e && e[0]; e += 2)
		unsetenv(e[0]);
	cr_assert(n->proc, "%s; log:\n%s", err, hf_test_read_file(n->log));
}

void hf_testnode_stop(hf_testnode *n)
{
	int st = hf_testproc_stop(n->proc, SIGTERM, HF_TESTNODE_WAIT_MS);

	n->proc = NULL;
	cr_assert_neq(st, -1, "hashflopd did not exit on SIGTERM; log:\n%s", hf_test_read_file(n->log));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; log:\n%s", st,
		  hf_test_read_file(n->log));
}

void hf_testnode_fini(hf_testnode *n)
{
	hf_testproc_free(n->proc);
	n->proc = NULL;
	hf_key_free(n->op);
	n->op = NULL;
	free(n->dir);
	n->dir = NULL;
}

json_t *hf_testnode_get(const hf_testnode *n, const char *path)
{
	char url[256];
	hf_test_reply *r = malloc(sizeof *r);
	json_t *j;

	cr_assert_not_null(r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", n->port, path);
	if (!hf_test_http("GET", url, NULL, 0, r)) {
		int st = 0;
		bool gone = n->proc && hf_testproc_wait_exit(n->proc, 0, &st);
		cr_assert_fail("GET %s failed%s (wait status %d); log:\n%s", url,
			       gone ? ": hashflopd has exited" : "", st, hf_test_read_file(n->log));
	}
	cr_assert_eq(r->status, 200, "GET %s: HTTP %ld: %s", url, r->status, r->body);
	j = json_loads(r->body, 0, NULL);
	cr_assert(j, "GET %s: not JSON: %s", url, r->body);
	free(r);
	return j;
}

double hf_testnode_num(const json_t *obj, const char *path)
{
	char buf[128], *save = NULL;
	const json_t *v = obj;

	hf_strlcpy(buf, path, sizeof buf);
	for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	return json_is_number(v) ? json_number_value(v) : -1;
}

json_t *hf_testnode_wait_mining(const hf_testnode *n, const char *path, double want,
				uint64_t timeout_ms)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = hf_testnode_get(n, "/v1/status");
		if (hf_testnode_num(json_object_get(j, "mining"), path) >= want || hf_mono_ms() > end)
			break;
		hf_sleep_ms(50);
	}
	cr_assert_geq(hf_testnode_num(json_object_get(j, "mining"), path), want,
		      "mining.%s stayed below %g; log:\n%s", path, want, hf_test_read_file(n->log));
	return j;
}

/* s, or "" when NULL. */
static const char *str0(const json_t *s)
{
	const char *v = json_string_value(s);
	return v ? v : "";
}

json_t *hf_testnode_wait_mode(const hf_testnode *n, const char *mode, uint64_t after_seq,
			      uint64_t timeout_ms)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	json_t *j = NULL;

	for (;;) {
		json_decref(j);
		j = hf_testnode_get(n, "/v1/status");
		json_t *ls = json_object_get(j, "last_switch");
		if ((uint64_t)json_integer_value(json_object_get(ls, "seq")) > after_seq &&
		    strcmp(str0(json_object_get(j, "phase")), "running") == 0 &&
		    strcmp(str0(json_object_get(j, "mode")), mode) == 0)
			return j;
		cr_assert_lt(hf_mono_ms(), end, "mode %s not reached: %s", mode, json_dumps(j, 0));
		hf_sleep_ms(20);
	}
}

bool hf_testnode_drain_line(const hf_testnode *n, unsigned index, hf_testnode_drain *d)
{
	static const char key[] = "mining: drained in ";
	char *log = hf_test_read_file(n->log);
	const char *at = log ? strstr(log, key) : NULL;
	bool ok;

	for (unsigned i = 0; at && i < index; i++)
		at = strstr(at + 1, key);
	ok = at && sscanf(at, "mining: drained in %lld ms (hashing stopped in %lld ms, flush %lld ms, "
			  "close %lld ms, %lld queued share(s) flushed, %lld unanswered)", &d->total_ms,
			  &d->hash_stop_ms, &d->flush_ms, &d->close_ms, &d->flushed, &d->unanswered) == 6;
	free(log);
	return ok;
}

char *hf_testnode_instruction(hf_testnode *n, const char *mode, const char *extra)
{
	char payload[4096];
	hf_key *keys[1] = { n->op };
	uint64_t now = hf_wall_ms();
	char *env;

	cr_assert_not_null(n->op, "no operator key: call hf_testnode_trust first");
	if (now <= n->last_issued_ms)
		now = n->last_issued_ms + 1;
	n->last_issued_ms = now;
	snprintf(payload, sizeof payload,
		 "{\"v\":1,\"fleet\":\"lab\",\"node\":\"n1\",\"issued_ms\":%llu,\"expires_ms\":%llu,"
		 "\"mode\":\"%s\"%s}", (unsigned long long)now, (unsigned long long)(now + 60000), mode,
		 extra ? extra : "");
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, 1, &env, NULL), 0);
	return env;
}

void hf_testnode_instruct(hf_testnode *n, const char *mode, const char *extra)
{
	char url[128];
	hf_test_reply *r = malloc(sizeof *r);
	char *env = hf_testnode_instruction(n, mode, extra);

	cr_assert_not_null(r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/instruction", n->port);
	cr_assert(hf_test_http("POST", url, env, strlen(env), r), "POST %s failed; log:\n%s", url,
		  hf_test_read_file(n->log));
	cr_assert_eq(r->status, 200, "%s", r->body);
	/* Applied, or still switching when the node's apply wait ended (a drain held by a test
	 * hook); callers wait for the mode themselves. Never a failed start. */
	cr_assert(strstr(r->body, "\"applied\":true") || strstr(r->body, "\"pending\":true"), "%s",
		  r->body);
	free(env);
	free(r);
}

size_t hf_testnode_opencl_devices(char *why, size_t whysz)
{
	char exe[1024], *dir = hf_test_tmpdir("opencl-probe"), out[1100];
	snprintf(exe, sizeof exe, "%s/runtime/ctl/hashflopctl", hf_test_build_root());
	snprintf(out, sizeof out, "%s/devices.json", dir);
	const char *argv[] = { exe, "devices", "--json", NULL };
	hf_testproc *pr = hf_testproc_start(argv, out);
	int st = 0;
	size_t n = 0;

	cr_assert_not_null(pr);
	cr_assert(hf_testproc_wait_exit(pr, HF_TESTNODE_WAIT_MS, &st), "hashflopctl devices did not exit");
	hf_testproc_free(pr);
	char *text = hf_test_read_file(out);
	json_t *j = WIFEXITED(st) && WEXITSTATUS(st) == 0 && text ? json_loads(text, 0, NULL) : NULL;
	if (json_is_array(j))
		n = json_array_size(j);
	snprintf(why, whysz, "hashflopctl devices: exit status %d: %.300s", st, text ? text : "");
	json_decref(j);
	free(text);
	free(dir);
	return n;
}
