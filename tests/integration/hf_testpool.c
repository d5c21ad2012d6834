/* hf_testpool: the lab pool's process and admin endpoint for integration tests.
 * Threading: test code only (asserts with Criterion from the calling test).
 */
#include "hf_testpool.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EXTRA 30

static uint16_t read_port(const char *path)
{
	char *t = hf_test_read_file(path);
	uint16_t port;

	cr_assert(t, "no port file %s", path);
	port = (uint16_t)atoi(t);
	free(t);
	return port;
}

void hf_testpool_start(hf_testpool *p, const char *name, uint16_t port, const char *difficulty,
		       const char *const *extra, uint64_t wait_ms)
{
	char exe[1024], listen[64];
	const char *argv[10 + MAX_EXTRA];
	size_t n = 0;

	if (!p->dir)
		p->dir = hf_test_tmpdir(name);
	snprintf(exe, sizeof exe, "%s/stratum/hashflop-pool", hf_test_build_root());
	snprintf(p->log, sizeof p->log, "%s/pool.log", p->dir);
	snprintf(p->port_file, sizeof p->port_file, "%s/port", p->dir);
	snprintf(p->admin_file, sizeof p->admin_file, "%s/admin-port", p->dir);
	unlink(p->port_file);
	unlink(p->admin_file);
	snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
	argv[n++] = exe;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--port-file";
	argv[n++] = p->port_file;
	argv[n++] = "--admin-port-file";
	argv[n++] = p->admin_file;
	argv[n++] = "--difficulty";
	argv[n++] = difficulty;
	for (; extra && *extra; extra++) {
		cr_assert_lt(n, 9 + MAX_EXTRA, "too many pool options");
		argv[n++] = *extra;
	}
	argv[n] = NULL;
	p->proc = hf_testproc_start(argv, p->log);
	cr_assert(p->proc);
	cr_assert(hf_test_wait_file(p->port_file, wait_ms), "pool %s did not start", name);
	cr_assert(hf_test_wait_file(p->admin_file, wait_ms));
	p->port = read_port(p->port_file);
	p->admin = read_port(p->admin_file);
}

void hf_testpool_kill(hf_testpool *p)
{
	hf_testproc_free(p->proc);
	p->proc = NULL;
}

void hf_testpool_free(hf_testpool *p, uint64_t wait_ms, bool check_exit)
{
	if (p->proc) {
		int st = hf_testproc_stop(p->proc, SIGTERM, wait_ms);
		p->proc = NULL;
		cr_expect(st != -1, "pool did not stop");
		if (check_exit)
			cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pool exit status %d", st);
	}
	free(p->dir);
	p->dir = NULL;
}

static char *admin_body(const hf_testpool *p, const char *method, const char *path,
			const char *req_body)
{
	char url[4096], *body;
	hf_test_reply *r = malloc(sizeof *r);

	cr_assert(r);
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", p->admin, path);
	cr_assert(hf_test_http(method, url, req_body ? req_body : strcmp(method, "POST") == 0 ? "" : NULL,
			       req_body ? strlen(req_body) : 0, r), "admin %s %s", method, url);
	cr_assert_eq(r->status, 200, "admin %s %s: %ld %s", method, url, r->status, r->body);
	body = strdup(r->body);
	free(r);
	cr_assert(body);
	return body;
}

char *hf_testpool_admin(const hf_testpool *p, const char *method, const char *path)
{
	return admin_body(p, method, path, NULL);
}

void hf_testpool_fault_args(const hf_testpool *p, const char *kind, json_t *args)
{
	char path[256], *text = json_dumps(args, JSON_COMPACT);

	cr_assert(text, "fault arguments are JSON");
	json_decref(args);
	snprintf(path, sizeof path, "/fault/%s", kind);
	free(admin_body(p, "POST", path, text));
	free(text);
}

void hf_testpool_fault(const hf_testpool *p, const char *what)
{
	char path[256];

	snprintf(path, sizeof path, "/fault/%s", what);
	free(hf_testpool_admin(p, "POST", path));
}

json_t *hf_testpool_stats(const hf_testpool *p)
{
	char *b = hf_testpool_admin(p, "GET", "/stats");
	json_t *j = json_loads(b, 0, NULL);

	cr_assert(j, "stats: %s", b);
	free(b);
	return j;
}

long long hf_testpool_stat(const hf_testpool *p, const char *key, const char *sub)
{
	json_t *j = hf_testpool_stats(p);
	json_t *v = json_object_get(j, key);
	long long n;

	if (sub)
		v = json_object_get(v, sub);
	n = v ? (long long)json_integer_value(v) : 0;
	json_decref(j);
	return n;
}
