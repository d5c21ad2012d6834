/* Unit tests for hf_coord_fleet: the node table (sync adds, updates, removes; thousands of ids),
 * token checks, publishing order (own vs fleet envelope, the higher issued_ms wins, a lower
 * one never replaces), reports and acknowledgments, re-sign candidates, holds; and parked polls
 * on a real hf_httpd: a thousand polls woken by one publish, a node's publish waking only its
 * own, deadlines answering 204, clients leaving, parked polls at shutdown. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hf_coord_fleet.h"
#include "hf_httpd.h"
#include "hf_testnet.h"
#include "hf_util.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static hf_coord_fleet *fleet_new(unsigned max_wait_s)
{
	hf_coord_fleet_opts o = { .max_wait_s = max_wait_s, .offline_after_s = 30, .max_nodes = 100000 };
	hf_coord_fleet *f;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_fleet_new(&o, &f, &eb), 0, "%s", eb.msg);
	return f;
}

static void sync_ids(hf_coord_fleet *f, size_t n, const char *hash)
{
	hf_coord_node_rec *r = calloc(n, sizeof *r);
	for (size_t i = 0; i < n; i++) {
		snprintf(r[i].id, sizeof r[i].id, "n%zu", i);
		strcpy(r[i].token_hash, hash);
	}
	cr_assert_eq(hf_coord_fleet_sync_nodes(f, r, n, NULL), 0);
	free(r);
}

static hf_coord_env *env(const char *node, uint64_t issued, hf_coord_authority who)
{
	char text[128];
	int n = snprintf(text, sizeof text, "{\"node\":\"%s\",\"issued\":%llu}", node,
			 (unsigned long long)issued);
	hf_coord_env *e = hf_coord_env_new(text, (size_t)n);
	strcpy(e->node, node);
	strcpy(e->mode, "idle");
	strcpy(e->source, "test");
	e->issued_ms = issued;
	e->expires_ms = hf_wall_ms() + 600000; /* small issued_ms values, never expired */
	e->authority = who;
	e->decided_us = hf_mono_us();
	return e;
}

static uint64_t published(hf_coord_fleet *f, hf_coord_env *e, size_t *nodes)
{
	size_t woken;
	*nodes = hf_coord_fleet_publish(f, e, &woken);
	hf_coord_env_unref(e);
	return woken;
}

static uint64_t current_issued(hf_coord_fleet *f, const char *id)
{
	hf_coord_env *e;
	uint64_t hold, v;
	cr_assert(hf_coord_fleet_current(f, id, &e, &hold));
	v = e ? e->issued_ms : 0;
	hf_coord_env_unref(e);
	return v;
}

Test(coord_fleet, node_table_sync_and_tokens)
{
	hf_coord_fleet *f = fleet_new(30);
	char (*ids)[HF_COORD_NODE_ID_MAX + 1];
	size_t n;

	sync_ids(f, 5000, HASH_A);
	cr_assert_eq(hf_coord_fleet_node_count(f), 5000);
	cr_assert(hf_coord_fleet_has_node(f, "n4999"));
	cr_assert_eq(hf_coord_fleet_auth(f, "n17", HASH_A), 0);
	cr_assert_eq(hf_coord_fleet_auth(f, "n17", HASH_B), HF_EREFUSED);
	cr_assert_eq(hf_coord_fleet_auth(f, "n17", "short"), HF_EREFUSED);
	cr_assert_eq(hf_coord_fleet_auth(f, "ghost", HASH_A), HF_ENOTFOUND);
	/* Shrinking removes the rest (backward-shift deletion keeps every survivor findable). */
	sync_ids(f, 1200, HASH_B);
	cr_assert_eq(hf_coord_fleet_node_count(f), 1200);
	cr_assert_not(hf_coord_fleet_has_node(f, "n1200"));
	for (int i = 0; i < 1200; i++) {
		char id[16];
		snprintf(id, sizeof id, "n%d", i);
		cr_assert_eq(hf_coord_fleet_auth(f, id, HASH_B), 0, "%s lost after deletions", id);
	}
	cr_assert_eq(hf_coord_fleet_node_ids(f, &ids, &n), 0);
	cr_assert_eq(n, 1200);
	cr_assert_str_eq(ids[0], "n0");
	cr_assert_str_eq(ids[1], "n1");
	cr_assert_str_eq(ids[2], "n10");
	free(ids);
	hf_coord_fleet_free(f);
}

Test(coord_fleet, publishing_order_own_and_fleet)
{
	hf_coord_fleet *f = fleet_new(30);
	size_t nodes;

	sync_ids(f, 3, HASH_A);
	cr_assert_eq(current_issued(f, "n0"), 0);
	published(f, env("n0", 100, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(nodes, 1);
	cr_assert_eq(current_issued(f, "n0"), 100);
	published(f, env("n0", 90, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(nodes, 0, "a lower issued_ms replaced the current one");
	cr_assert_eq(current_issued(f, "n0"), 100);
	published(f, env("n0", 100, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(nodes, 0, "an equal issued_ms replaced the current one");
	/* The fleet envelope at 95 is effective for n1 and n2, not n0 (100 > 95). */
	published(f, env("*", 95, HF_COORD_BY_OPERATOR), &nodes);
	cr_assert_eq(nodes, 2);
	cr_assert_eq(current_issued(f, "n0"), 100);
	cr_assert_eq(current_issued(f, "n1"), 95);
	cr_assert_eq(current_issued(f, "*"), 95);
	cr_assert_eq(hf_coord_fleet_fleet_issued(f), 95);
	published(f, env("*", 200, HF_COORD_BY_OPERATOR), &nodes);
	cr_assert_eq(nodes, 3);
	cr_assert_eq(current_issued(f, "n0"), 200);
	published(f, env("n0", 150, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(nodes, 0, "recorded as n0's own, but the fleet's 200 stays effective");
	cr_assert_eq(current_issued(f, "n0"), 200);
	published(f, env("ghost", 300, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(nodes, 0);
	hf_coord_fleet_free(f);
}

Test(coord_fleet, reports_acks_holds_and_resign)
{
	hf_coord_fleet *f = fleet_new(30);
	hf_coord_report_sum s = { .converged = true, .applied_issued_ms = 1000 };
	uint64_t ack, now = 1000 + 300000;
	hf_coord_env **due;
	size_t nodes, n;
	json_t *j;

	strcpy(s.mode, "idle");
	strcpy(s.desired_mode, "idle");
	strcpy(s.phase, "running");
	strcpy(s.convergence, "converged");
	sync_ids(f, 2, HASH_A);
	{
		hf_coord_env *a = env("n0", 1000, HF_COORD_BY_COORDINATOR);
		hf_coord_env *b = env("n1", 1000, HF_COORD_BY_OPERATOR);
		a->expires_ms = b->expires_ms = 1000 + 600000;
		published(f, a, &nodes);
		published(f, b, &nodes);
	}
	cr_assert(hf_coord_fleet_report(f, "n0", &s, 5000, &ack));
	cr_assert_eq(ack, 1000, "the first report of an applied envelope is its ack");
	cr_assert(hf_coord_fleet_report(f, "n0", &s, 6000, &ack));
	cr_assert_eq(ack, 0, "a repeat is not a second ack");
	s.applied_issued_ms = 999;
	cr_assert(hf_coord_fleet_report(f, "n1", &s, 6000, &ack));
	cr_assert_eq(ack, 0, "an issued_ms never sent to n1 is no ack");
	cr_assert_not(hf_coord_fleet_report(f, "ghost", &s, 6000, &ack));
	j = hf_coord_fleet_node_json(f, "n1", 7000);
	cr_assert(json_is_false(json_object_get(j, "converged")), "n1 applied an older envelope");
	json_decref(j);
	j = hf_coord_fleet_node_json(f, "n0", 7000);
	cr_assert(json_is_true(json_object_get(j, "converged")));
	cr_assert_eq(json_integer_value(json_object_get(j, "converged_since_ms")), 5000);
	cr_assert(json_is_false(json_object_get(j, "offline")));
	json_decref(j);
	j = hf_coord_fleet_node_json(f, "n0", 6000 + 31000);
	cr_assert(json_is_true(json_object_get(j, "offline")));
	json_decref(j);
	/* Half of the 600 s TTL passed: n0's automatic envelope is due, n1's operator one never. */
	n = hf_coord_fleet_due_resign(f, now - 1, &due, 10);
	cr_assert_eq(n, 0);
	free(due);
	n = hf_coord_fleet_due_resign(f, now, &due, 10);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(due[0]->node, "n0");
	hf_coord_env_unref(due[0]);
	free(due);
	hf_coord_fleet_set_hold(f, "n0", now + 1, "op");
	n = hf_coord_fleet_due_resign(f, now, &due, 10);
	cr_assert_eq(n, 0, "a held node's automatic envelope was re-signed");
	free(due);
	hf_coord_fleet_free(f);
}

/* ---- parked polls on a real server ---- */

static void h_poll(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	uint64_t after = 0, wait = 0;
	const char *a = hf_http_query(req, "after"), *w = hf_http_query(req, "wait");
	if (a)
		hf_parse_u64(a, 0, UINT64_MAX, &after);
	if (w)
		hf_parse_u64(w, 0, UINT64_MAX, &wait);
	hf_coord_fleet_poll(ctx, req->params[0], after, wait, req, resp);
}

static const hf_http_route routes[] = { { "GET", "/v1/nodes/*/instruction", h_poll } };

static hf_httpd *server(hf_coord_fleet *f)
{
	hf_httpd_opts o = { .host = "127.0.0.1", .max_conns = 4000 };
	hf_httpd *h;
	hf_errbuf eb;
	cr_assert_eq(hf_httpd_new(&o, routes, 1, f, &h, &eb), 0, "%s", eb.msg);
	return h;
}

static int poll_fd(uint16_t port, const char *node, uint64_t after, unsigned wait)
{
	char req[256];
	int fd = hf_test_raw_connect(NULL, port);
	cr_assert_geq(fd, 0);
	snprintf(req, sizeof req, "GET /v1/nodes/%s/instruction?after=%llu&wait=%u HTTP/1.1\r\n"
		 "Host: x\r\nConnection: close\r\n\r\n", node, (unsigned long long)after, wait);
	cr_assert(hf_test_send_str(fd, req));
	return fd;
}

static void wait_parked(hf_coord_fleet *f, size_t want)
{
	uint64_t end = hf_mono_ms() + 20000;
	while (hf_coord_fleet_waiting(f) != want && hf_mono_ms() < end)
		hf_sleep_ms(5);
	cr_assert_eq(hf_coord_fleet_waiting(f), want);
}

static int status_of(int fd, char *buf, size_t cap)
{
	ssize_t n = hf_test_read_to_close(fd, buf, cap, 20000);
	close(fd);
	cr_assert_geq(n, 0, "no answer");
	return hf_test_raw_status(buf);
}

Test(coord_fleet, a_thousand_parked_polls_woken_by_one_publish, .timeout = 60)
{
	enum { N = 1000 };
	static int fds[N];
	hf_coord_fleet *f;
	hf_httpd *h;
	uint16_t port;
	char buf[2048];
	size_t nodes, woken;
	uint64_t t0;

	/* Before the server starts: it sizes its connection cap from RLIMIT_NOFILE. */
	cr_assert_geq(hf_test_conns_that_fit(N + 8, 2), N + 8, "not enough descriptors");
	f = fleet_new(30);
	h = server(f);
	port = hf_httpd_port(h);
	sync_ids(f, 10, HASH_A);
	for (int i = 0; i < N; i++)
		fds[i] = poll_fd(port, i % 2 ? "n1" : "n2", 0, 30);
	wait_parked(f, N);
	/* A node's publish wakes its own polls only. */
	t0 = hf_mono_us();
	woken = published(f, env("n1", 10, HF_COORD_BY_COORDINATOR), &nodes);
	cr_assert_eq(woken, N / 2);
	cr_log_info("%d polls completed by one publish in %llu us", N / 2,
		    (unsigned long long)(hf_mono_us() - t0));
	wait_parked(f, N / 2);
	/* The fleet envelope wakes the rest at once. */
	woken = published(f, env("*", 20, HF_COORD_BY_OPERATOR), &nodes);
	cr_assert_eq(woken, N / 2);
	cr_assert_eq(nodes, 10);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(status_of(fds[i], buf, sizeof buf), 200);
		cr_assert(strstr(buf, i % 2 ? "\"issued\":10}" : "\"issued\":20}"), "%s", buf);
	}
	/* Current envelope newer than after: answered at once; not newer with wait=0: 204; an
	 * expired one is never served. */
	cr_assert_eq(status_of(poll_fd(port, "n3", 0, 30), buf, sizeof buf), 200);
	cr_assert_eq(status_of(poll_fd(port, "n3", 20, 0), buf, sizeof buf), 204);
	cr_assert_eq(status_of(poll_fd(port, "ghost", 0, 0), buf, sizeof buf), 401);
	{
		hf_coord_env *old = env("n4", 30, HF_COORD_BY_OPERATOR);
		old->expires_ms = hf_wall_ms() - 1;
		published(f, old, &nodes);
		cr_assert_eq(nodes, 1);
		cr_assert_eq(status_of(poll_fd(port, "n4", 20, 0), buf, sizeof buf), 204);
	}
	hf_httpd_free(h);
	hf_coord_fleet_free(f);
}

Test(coord_fleet, deadlines_gone_clients_and_shutdown, .timeout = 60)
{
	hf_coord_fleet *f = fleet_new(1);
	hf_httpd *h = server(f);
	uint16_t port = hf_httpd_port(h);
	char buf[2048];
	int fds[20];
	uint64_t t0 = hf_mono_ms();

	sync_ids(f, 2, HASH_A);
	/* wait=100 is capped to max_wait_s 1: 204 after about a second, whatever the order. */
	for (int i = 0; i < 20; i++)
		fds[i] = poll_fd(port, "n0", 0, i % 3 ? 100 : 1);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(status_of(fds[i], buf, sizeof buf), 204);
	cr_assert_geq(hf_mono_ms() - t0, 990);
	wait_parked(f, 0);
	hf_httpd_free(h);
	hf_coord_fleet_free(f);
	/* Clients that leave while parked are taken out; the rest get 503 when the server stops. */
	f = fleet_new(300);
	h = server(f);
	port = hf_httpd_port(h);
	sync_ids(f, 2, HASH_A);
	for (int i = 0; i < 10; i++)
		fds[i] = poll_fd(port, "n1", 0, 300);
	wait_parked(f, 10);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	wait_parked(f, 5);
	hf_httpd_free(h);
	for (int i = 5; i < 10; i++)
		cr_assert_eq(status_of(fds[i], buf, sizeof buf), 503);
	wait_parked(f, 0);
	hf_coord_fleet_free(f);
}

Test(coord_fleet, removed_nodes_polls_are_answered_401)
{
	hf_coord_fleet *f = fleet_new(300);
	hf_httpd *h = server(f);
	char buf[2048];
	int fd;

	sync_ids(f, 3, HASH_A);
	fd = poll_fd(hf_httpd_port(h), "n2", 0, 300);
	wait_parked(f, 1);
	sync_ids(f, 2, HASH_A);
	cr_assert_eq(status_of(fd, buf, sizeof buf), 401);
	wait_parked(f, 0);
	hf_httpd_free(h);
	hf_coord_fleet_free(f);
}
