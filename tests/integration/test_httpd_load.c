/* Integration tests: the real hashflopd's API under slow and hostile clients (issue 11): a
 * slowloris of 1,000 half-sent requests beside a normal client, the per-client cap, the header
 * deadline, unclean paths, and a clean SIGTERM with the slow connections still open. Raw sockets
 * from 127.0.0.2 (local on Linux, a second client address) and libcurl from 127.0.0.1. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hf_testnet.h"
#include "hf_testproc.h"
#include "hf_util.h"

typedef struct node {
	char *dir;
	char cfg[512], log[512], state[512];
	hf_testproc *proc;
	int port;
} node;

static void node_start(node *n, const char *name, const char *api)
{
	char text[2048], err[2048];
	FILE *f;

	memset(n, 0, sizeof *n);
	n->dir = hf_test_tmpdir(name);
	cr_assert_not_null(n->dir);
	snprintf(n->cfg, sizeof n->cfg, "%s/node.json", n->dir);
	snprintf(n->log, sizeof n->log, "%s/hashflopd.log", n->dir);
	snprintf(n->state, sizeof n->state, "%s/state", n->dir);
	snprintf(text, sizeof text,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0, %s},\n"
		 " \"inference\": {\"port\": 0}}\n", n->state, api);
	f = fopen(n->cfg, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	n->proc = hf_test_start_hashflopd(n->cfg, n->log, n->state, 20000, &n->port, err, sizeof err);
	cr_assert_not_null(n->proc, "%s; log:\n%s", err, hf_test_read_file(n->log));
}

static void node_stop(node *n)
{
	uint64_t t0 = hf_mono_ms();
	int st = hf_testproc_stop(n->proc, SIGTERM, 15000);
	n->proc = NULL;
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d; log:\n%s", st,
		  hf_test_read_file(n->log));
	fprintf(stderr, "hashflopd stopped in %llu ms\n", (unsigned long long)(hf_mono_ms() - t0));
	free(n->dir);
}

static void get(int port, const char *path, hf_test_reply *r)
{
	char url[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	cr_assert(hf_test_http("GET", url, NULL, 0, r), "GET %s failed", path);
}

/* hashflopd's own count of open API connections (hashflop_api_connections in /metrics; the
 * scrape's connection is one of them); -1 when it cannot be read. */
static long api_connections(int port)
{
	hf_test_reply r;
	const char *key = "\nhashflop_api_connections ";
	get(port, "/metrics", &r);
	const char *p = r.status == 200 ? strstr(r.body, key) : NULL;
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Waits until hashflopd has accepted at least want connections besides the scrape's. Counting
 * the server's own connections, not its descriptors: a descriptor it opens for a moment (a
 * state file being written) must not count. */
static bool wait_api_connections(int port, long want, uint64_t timeout_ms, long *seen)
{
	uint64_t deadline = hf_mono_ms() + timeout_ms;
	while ((*seen = api_connections(port) - 1) < want) {
		if (hf_mono_ms() >= deadline)
			return false;
		hf_sleep_ms(20);
	}
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static const char half_request[] = "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ";

/* The report: 900 half-sent requests made GET /v1/status time out. With 1,000 held,
 * every status request is answered, none anywhere near the 120 s the slowloris may hold a slot. */
Test(httpd_load, slowloris_beside_status_requests, .timeout = 240)
{
	enum { REQS = 50 };
	int n = hf_test_conns_that_fit(1000, 1), *fds = calloc(1000, sizeof *fds);
	uint64_t lat[REQS];
	hf_test_reply r;
	node nd;

	cr_assert_geq(n, 100, "too few descriptors for a meaningful test");
	node_start(&nd, "slowloris", "\"max_connections\": 1100, \"max_connections_per_client\": 0, "
				     "\"header_timeout_s\": 120, \"timeout_s\": 300");
	for (int i = 0; i < n; i++) {
		fds[i] = hf_test_raw_connect("127.0.0.2", nd.port);
		cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
		cr_assert(hf_test_send_str(fds[i], half_request));
	}
	long held = 0;
	cr_assert(wait_api_connections(nd.port, n, 60000, &held),
		  "hashflopd has accepted %ld of the %d slow connections", held, n);
	for (int i = 0; i < REQS; i++) {
		uint64_t t0 = hf_mono_us();
		get(nd.port, "/v1/status", &r);
		lat[i] = hf_mono_us() - t0;
		cr_assert_eq(r.status, 200, "request %d: %ld %s", i, r.status, r.body);
		json_t *j = json_loads(r.body, 0, NULL);
		cr_assert_not_null(j, "%s", r.body);
		json_decref(j);
	}
	qsort(lat, REQS, sizeof lat[0], cmp_u64);
	fprintf(stderr, "hashflopd, slowloris of %d: GET /v1/status median %.2f ms, p90 %.2f ms, max %.2f ms\n",
		n, lat[REQS / 2] / 1000.0, lat[REQS * 9 / 10] / 1000.0, lat[REQS - 1] / 1000.0);
	cr_assert_lt(lat[REQS - 1], 10000000ull, "a status request waited %.0f ms", lat[REQS - 1] / 1000.0);
	/* The slow connections are still held (none answered or closed). */
	for (int i = 0; i < n; i += 97) {
		struct pollfd pf = { .fd = fds[i], .events = POLLIN };
		cr_assert_eq(poll(&pf, 1, 0), 0, "slow connection %d was closed or answered", i);
	}
	/* SIGTERM with all of them open: a clean, prompt exit. */
	node_stop(&nd);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
}

/* Beyond api.max_connections_per_client from one address, connections are closed at once while
 * another address is served; paths that are not clean text get a JSON 400. */
Test(httpd_load, per_client_cap_and_unclean_paths)
{
	int held[4], fd;
	char resp[8192];
	hf_test_reply r;
	node nd;

	node_start(&nd, "perclient", "\"max_connections_per_client\": 4, \"header_timeout_s\": 60");
	for (int i = 0; i < 4; i++) {
		held[i] = hf_test_raw_connect("127.0.0.2", nd.port);
		cr_assert_geq(held[i], 0);
		cr_assert(hf_test_send_str(held[i], half_request));
	}
	fd = hf_test_raw_connect("127.0.0.2", nd.port);
	cr_assert_geq(fd, 0);
	hf_test_send_str(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_geq(hf_test_read_to_close(fd, resp, sizeof resp, 5000), 0, "the fifth connection was neither served nor closed");
	cr_assert_eq(hf_test_raw_status(resp), -1, "a fifth connection from 127.0.0.2 was answered: %s", resp);
	close(fd);
	get(nd.port, "/v1/status", &r);
	cr_assert_eq(r.status, 200);
	get(nd.port, "/v1/%FF%FE", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", r.body);
	json_decref(j);
	get(nd.port, "/v1/a%0Ab", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "/v1/a?b"), "%s", r.body);
	for (int i = 0; i < 4; i++)
		close(held[i]);
	node_stop(&nd);
}

/* api.header_timeout_s is a deadline: a client trickling header lines is cut off like a silent
 * one. */
Test(httpd_load, header_deadline)
{
	int slow, quiet;
	char resp[4096];
	uint64_t t0, closed_at = 0;
	node nd;

	node_start(&nd, "deadline", "\"header_timeout_s\": 1");
	t0 = hf_mono_ms();
	slow = hf_test_raw_connect(NULL, nd.port);
	quiet = hf_test_raw_connect(NULL, nd.port);
	cr_assert(slow >= 0 && quiet >= 0);
	cr_assert(hf_test_send_str(quiet, "GET /v1/status HTTP/1.1\r\n"));
	cr_assert(hf_test_send_str(slow, "GET /v1/status HTTP/1.1\r\n"));
	while (hf_mono_ms() - t0 < 10000) {
		struct pollfd pf = { .fd = slow, .events = POLLIN };
		if (poll(&pf, 1, 200) > 0 || !hf_test_send_str(slow, "X-Slow: 1\r\n")) {
			closed_at = hf_mono_ms();
			break;
		}
	}
	cr_assert_gt(closed_at, 0, "a trickling client kept its connection for 10 s");
	cr_assert_geq(closed_at - t0, 900);
	fprintf(stderr, "hashflopd: trickling client cut off after %llu ms (header_timeout_s 1)\n",
		(unsigned long long)(closed_at - t0));
	cr_assert_geq(hf_test_read_to_close(slow, resp, sizeof resp, 5000), 0);
	cr_assert_eq(hf_test_raw_status(resp), -1, "%s", resp);
	cr_assert_geq(hf_test_read_to_close(quiet, resp, sizeof resp, 5000), 0, "the silent client was not cut off");
	close(slow);
	close(quiet);
	node_stop(&nd);
}
