/* Unit tests for hf_coord_store (SQLite): every call, ordering (seq never reused, floor never
 * lowered), history downsampling and pruning, node removal keeping the audit log, migrations and
 * a newer schema refused, damaged and foreign files refused clearly, and kill -9 of a writer
 * process: nothing it was answered is lost. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_coord_store.h"
#include "hf_coord_store_priv.h"
#include "hf_util.h"

static char dir[64];
static char dbpath[128];

static void setup(void)
{
	strcpy(dir, "/tmp/hf_coord_store_test_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/sub/coord.db", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(coord_store, .init = setup, .fini = teardown, .timeout = 60);

static hf_coord_store *open_opts(const hf_coord_store_opts *o)
{
	hf_coord_store *s = NULL;
	hf_errbuf eb;
	int rc = hf_coord_store_open_sqlite(o, &s, &eb);
	cr_assert_eq(rc, 0, "open %s: %s (%s)", o->path, hf_strerror(rc), eb.msg);
	return s;
}

static hf_coord_store *open_db(void)
{
	hf_coord_store_opts o = { .path = dbpath };
	return open_opts(&o);
}

static void add_node(hf_coord_store *s, const char *id)
{
	hf_coord_node_rec n;
	hf_errbuf eb;
	memset(&n, 0, sizeof n);
	hf_strlcpy(n.id, id, sizeof n.id);
	memset(n.token_hash, 'a', HF_COORD_TOKEN_HASH_LEN);
	n.added_ms = 1000;
	cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), 0, "%s", eb.msg);
}

static hf_coord_decision_rec mk_dec(const char *node, uint64_t issued, const char *envelope)
{
	hf_coord_decision_rec d;
	memset(&d, 0, sizeof d);
	hf_strlcpy(d.node, node, sizeof d.node);
	d.issued_ms = issued;
	d.expires_ms = issued + 600000;
	hf_strlcpy(d.mode, "mining", sizeof d.mode);
	d.authority = HF_COORD_BY_COORDINATOR;
	hf_strlcpy(d.source, "api", sizeof d.source);
	hf_strlcpy(d.keyids, "0123456789abcdef", sizeof d.keyids);
	memset(d.payload_sha256, 'f', 64);
	d.envelope = envelope;
	return d;
}

static void free_decs(hf_coord_decision_rec *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hf_coord_decision_rec_clear(&d[i]);
	free(d);
}

/* Runs one SQL statement on the file with the sqlite3 library directly; returns its first
 * integer column (or -1) and the sqlite result code in *rc. */
static long long raw_sql(const char *path, const char *sql, int *rc_out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc_out)
		*rc_out = rc;
	return v;
}

/* ---- open ---- */

Test(coord_store, open_creates_the_schema_wal_and_a_private_file)
{
	hf_coord_store *s = open_db();
	struct stat st;
	int rc;

	cr_assert_eq(hf_coord_store_schema_version(s), 1);
	cr_assert_eq(stat(dbpath, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	hf_coord_store_free(s);
	cr_assert_eq(raw_sql(dbpath, "PRAGMA user_version", &rc), 1);
	cr_assert_eq(raw_sql(dbpath, "PRAGMA application_id", &rc), 0x48664364);
	/* WAL is a property of the file: a fresh connection sees it. */
	sqlite3 *db;
	sqlite3_stmt *q;
	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);
	/* Reopening an up-to-date database changes nothing. */
	s = open_db();
	cr_assert_eq(hf_coord_store_schema_version(s), 1);
	hf_coord_store_free(s);
}

Test(coord_store, open_refuses_bad_arguments)
{
	hf_coord_store *s = (hf_coord_store *)1;
	hf_coord_store_opts o = { .path = "" };
	hf_errbuf eb;
	cr_assert_eq(hf_coord_store_open_sqlite(&o, &s, &eb), HF_EINVAL);
	cr_assert_null(s);
	cr_assert_eq(hf_coord_store_open_sqlite(NULL, &s, &eb), HF_EINVAL);
	hf_coord_store_free(NULL);
}

/* ---- nodes ---- */

Test(coord_store, nodes_add_list_token_hold_remove)
{
	hf_coord_store *s = open_db();
	hf_coord_node_rec n, *list = NULL;
	size_t len = 0;
	hf_errbuf eb;

	add_node(s, "rig-b");
	add_node(s, "rig-a");
	memset(&n, 0, sizeof n);
	strcpy(n.id, "rig-a");
	cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), HF_ESTATE);
	cr_assert(strstr(eb.msg, "rig-a") && strstr(eb.msg, "exists"), "%s", eb.msg);
	strcpy(n.id, "");
	cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), HF_EINVAL);

	char hash[HF_COORD_TOKEN_HASH_LEN + 1];
	memset(hash, '7', HF_COORD_TOKEN_HASH_LEN);
	hash[HF_COORD_TOKEN_HASH_LEN] = '\0';
	cr_assert_eq(hf_coord_store_node_set_token(s, "rig-a", hash, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_node_set_token(s, "nope", hash, &eb), HF_ENOTFOUND);
	cr_assert(strstr(eb.msg, "nope"), "%s", eb.msg);
	cr_assert_eq(hf_coord_store_node_set_hold(s, "rig-b", 99000, "op1,op2", &eb), 0, "%s",
		     eb.msg);
	cr_assert_eq(hf_coord_store_node_set_hold(s, "nope", 1, "x", &eb), HF_ENOTFOUND);

	cr_assert_eq(hf_coord_store_node_list(s, &list, &len, &eb), 0, "%s", eb.msg);
	cr_assert_eq(len, 2);
	cr_assert_str_eq(list[0].id, "rig-a");
	cr_assert_str_eq(list[0].token_hash, hash);
	cr_assert_eq(list[0].added_ms, 1000);
	cr_assert_eq(list[0].hold_until_ms, 0);
	cr_assert_str_eq(list[1].id, "rig-b");
	cr_assert_eq(list[1].hold_until_ms, 99000);
	cr_assert_str_eq(list[1].hold_by, "op1,op2");
	free(list);

	cr_assert_eq(hf_coord_store_node_remove(s, "rig-a", &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_node_remove(s, "rig-a", &eb), HF_ENOTFOUND);
	hf_coord_store_free(s);

	s = open_db();
	cr_assert_eq(hf_coord_store_node_list(s, &list, &len, &eb), 0, "%s", eb.msg);
	cr_assert_eq(len, 1);
	cr_assert_str_eq(list[0].id, "rig-b");
	free(list);
	hf_coord_store_free(s);
}

Test(coord_store, strings_too_long_for_their_fields_are_refused)
{
	hf_coord_store *s = open_db();
	char longid[100], longby[100];
	hf_errbuf eb;
	memset(longid, 'x', 80);
	longid[80] = '\0';
	memset(longby, 'k', 70);
	longby[70] = '\0';
	add_node(s, "n1");
	cr_assert_eq(hf_coord_store_node_set_token(s, longid, "ab", &eb), HF_ETOOBIG);
	cr_assert_eq(hf_coord_store_node_set_hold(s, "n1", 5, longby, &eb), HF_ETOOBIG);
	cr_assert_eq(hf_coord_store_node_set_hold(s, "n1", UINT64_MAX, "k", &eb), HF_ERANGE);
	cr_assert_eq(hf_coord_store_floor_set(s, UINT64_MAX, &eb), HF_ERANGE);
	json_t *r = json_pack("{s:i}", "v", 1);
	cr_assert_eq(hf_coord_store_report_put(s, longid, 1, r, &eb), HF_ETOOBIG);
	json_decref(r);
	hf_coord_decision_rec d = mk_dec("n1", 5, "{}");
	d.envelope = NULL;
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "envelope"), "%s", eb.msg);
	hf_coord_store_free(s);
}

/* ---- reports ---- */

Test(coord_store, report_latest_from_the_queue_then_from_disk_newest_wins)
{
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 60000 };
	hf_coord_store *s = open_opts(&o);
	json_t *r, *got = NULL;
	uint64_t w = 0;
	hf_errbuf eb;

	add_node(s, "n1");
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, &w, &eb), HF_ENOTFOUND);
	r = json_pack("{s:i, s:s}", "seq", 1, "mode", "mining");
	cr_assert_eq(hf_coord_store_report_put(s, "n1", 5000, r, &eb), 0, "%s", eb.msg);
	json_decref(r);
	/* Not committed yet (flush every 60 s), but visible. */
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, &w, &eb), 0, "%s", eb.msg);
	cr_assert_eq(w, 5000);
	cr_assert_eq(json_integer_value(json_object_get(got, "seq")), 1);
	json_decref(got);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);

	r = json_pack("{s:i}", "seq", 2);
	cr_assert_eq(hf_coord_store_report_put(s, "n1", 7000, r, &eb), 0, "%s", eb.msg);
	json_decref(r);
	/* An older report arriving late does not replace the newer one. */
	r = json_pack("{s:i}", "seq", 0);
	cr_assert_eq(hf_coord_store_report_put(s, "n1", 6000, r, &eb), 0, "%s", eb.msg);
	json_decref(r);
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, &w, &eb), 0, "%s", eb.msg);
	cr_assert_eq(w, 7000);
	json_decref(got);
	hf_coord_store_free(s); /* commits what is queued */

	s = open_opts(&o);
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, &w, &eb), 0, "%s", eb.msg);
	cr_assert_eq(w, 7000);
	cr_assert_eq(json_integer_value(json_object_get(got, "seq")), 2);
	json_decref(got);
	hf_coord_store_stats st;
	hf_coord_store_stats_get(s, &st);
	cr_assert_eq(st.queue_len, 0);
	hf_coord_store_free(s);
}

Test(coord_store, reports_are_committed_by_the_writer_within_flush_ms)
{
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 20 };
	hf_coord_store *s = open_opts(&o);
	hf_errbuf eb;
	int rc;
	add_node(s, "n1");
	json_t *r = json_pack("{s:i}", "seq", 1);
	cr_assert_eq(hf_coord_store_report_put(s, "n1", 5000, r, &eb), 0, "%s", eb.msg);
	json_decref(r);
	/* Another connection sees it once the writer committed (no explicit flush). */
	uint64_t deadline = hf_mono_ms() + 10000;
	long long n = 0;
	while ((n = raw_sql(dbpath, "SELECT count(*) FROM reports_latest", &rc)) != 1 &&
	       hf_mono_ms() < deadline)
		hf_sleep_ms(5);
	cr_assert_eq(n, 1);
	/* The writer counts the batch just after its commit is visible. */
	hf_coord_store_stats st;
	do {
		hf_coord_store_stats_get(s, &st);
		if (st.entries_written == 1)
			break;
		hf_sleep_ms(5);
	} while (hf_mono_ms() < deadline);
	cr_assert_geq(st.batches, 1);
	cr_assert_eq(st.entries_written, 1);
	cr_assert_eq(st.queue_len, 0);
	hf_coord_store_free(s);
}

/* ---- decisions ---- */

Test(coord_store, decisions_add_list_current_and_floor)
{
	hf_coord_store *s = open_db();
	hf_coord_decision_rec d, *list = NULL;
	size_t n = 0;
	uint64_t floor = 1;
	hf_errbuf eb;

	cr_assert_eq(hf_coord_store_floor_get(s, &floor, &eb), 0, "%s", eb.msg);
	cr_assert_eq(floor, 0);
	d = mk_dec("n1", 1000, "{\"payload\":\"a\"}");
	d.reason = json_pack("{s:f}", "hashprice", 0.05);
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(d.seq, 1);
	cr_assert_gt(d.wall_ms, 0);
	json_decref(d.reason);
	d = mk_dec("*", 2000, "{\"payload\":\"b\"}");
	d.authority = HF_COORD_BY_OPERATOR;
	strcpy(d.source, "operator");
	d.wall_ms = 123;
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(d.seq, 2);
	d = mk_dec("n1", 3000, "{\"payload\":\"c\"}");
	d.resigned_from = 1;
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(d.seq, 3);

	/* decision_add raised the floor with it. */
	cr_assert_eq(hf_coord_store_floor_get(s, &floor, &eb), 0, "%s", eb.msg);
	cr_assert_eq(floor, 3000);

	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 3);
	cr_assert_eq(list[0].seq, 1);
	cr_assert_str_eq(list[0].node, "n1");
	cr_assert_eq(list[0].issued_ms, 1000);
	cr_assert_eq(list[0].expires_ms, 601000);
	cr_assert_str_eq(list[0].mode, "mining");
	cr_assert_eq(list[0].authority, HF_COORD_BY_COORDINATOR);
	cr_assert_str_eq(list[0].source, "api");
	cr_assert_str_eq(list[0].keyids, "0123456789abcdef");
	cr_assert_eq(strlen(list[0].payload_sha256), 64);
	cr_assert_str_eq(list[0].envelope, "{\"payload\":\"a\"}");
	cr_assert_not_null(list[0].reason);
	cr_assert_float_eq(json_real_value(json_object_get(list[0].reason, "hashprice")), 0.05,
			   1e-12);
	cr_assert_eq(list[1].authority, HF_COORD_BY_OPERATOR);
	cr_assert_eq(list[1].wall_ms, 123);
	cr_assert_null(list[1].reason);
	cr_assert_eq(list[2].resigned_from, 1);
	free_decs(list, n);

	cr_assert_eq(hf_coord_store_decision_list(s, 1, 0, 1, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 1);
	cr_assert_eq(list[0].seq, 2);
	free_decs(list, n);
	/* since_ms: the one recorded at wall_ms 123 is left out of "since 1000". */
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 1000, 10, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 2);
	cr_assert_eq(list[0].seq, 1);
	cr_assert_eq(list[1].seq, 3);
	free_decs(list, n);

	cr_assert_eq(hf_coord_store_decision_current(s, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(list[0].node, "*");
	cr_assert_eq(list[0].seq, 2);
	cr_assert_str_eq(list[1].node, "n1");
	cr_assert_eq(list[1].seq, 3);
	cr_assert_str_eq(list[1].envelope, "{\"payload\":\"c\"}");
	free_decs(list, n);
	hf_coord_store_free(s);
}

Test(coord_store, floor_is_never_lowered)
{
	hf_coord_store *s = open_db();
	uint64_t f = 0;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_store_floor_set(s, 5000, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_floor_set(s, 4000, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_floor_get(s, &f, &eb), 0, "%s", eb.msg);
	cr_assert_eq(f, 5000);
	/* A decision with a lower issued_ms does not lower it either. */
	hf_coord_decision_rec d = mk_dec("n1", 10, "{}");
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s);
	s = open_db();
	cr_assert_eq(hf_coord_store_floor_get(s, &f, &eb), 0, "%s", eb.msg);
	cr_assert_eq(f, 5000);
	cr_assert_eq(hf_coord_store_floor_set(s, 6000, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_floor_get(s, &f, &eb), 0, "%s", eb.msg);
	cr_assert_eq(f, 6000);
	hf_coord_store_free(s);
}

/* ---- acks ---- */

Test(coord_store, acks_first_one_counts_and_list_by_issued_range)
{
	hf_coord_store *s = open_db();
	hf_coord_ack_rec a, *list = NULL;
	size_t n = 0;
	hf_errbuf eb;

	add_node(s, "n1");
	add_node(s, "n2");
	memset(&a, 0, sizeof a);
	strcpy(a.node, "n1");
	a.issued_ms = 1000;
	a.wall_ms = 1100;
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);
	a.wall_ms = 1200; /* a repeat: ignored */
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);
	strcpy(a.node, "n2");
	a.wall_ms = 1300;
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);
	a.issued_ms = 2000;
	a.wall_ms = 2100;
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);
	strcpy(a.node, "ghost"); /* unknown: dropped at commit, counted */
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);

	cr_assert_eq(hf_coord_store_ack_list(s, 1000, 1000, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(list[0].node, "n1");
	cr_assert_eq(list[0].wall_ms, 1100);
	cr_assert_str_eq(list[1].node, "n2");
	cr_assert_eq(list[1].wall_ms, 1300);
	free(list);
	cr_assert_eq(hf_coord_store_ack_list(s, 0, 5000, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 3);
	cr_assert_eq(list[2].issued_ms, 2000);
	free(list);
	cr_assert_eq(hf_coord_store_ack_list(s, 3000, 2000, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 0);
	free(list);
	hf_coord_store_stats st;
	hf_coord_store_stats_get(s, &st);
	cr_assert_eq(st.entries_dropped, 1);
	cr_assert_eq(st.entries_written, 4);
	hf_coord_store_free(s);
}

/* ---- history ---- */

static void put_report(hf_coord_store *s, const char *id, uint64_t wall, int seq)
{
	hf_errbuf eb;
	json_t *r = json_pack("{s:i}", "seq", seq);
	cr_assert_eq(hf_coord_store_report_put(s, id, wall, r, &eb), 0, "%s", eb.msg);
	json_decref(r);
}

Test(coord_store, history_keeps_one_row_per_node_per_interval)
{
	hf_coord_store_opts o = { .path = dbpath, .history_interval_s = 60,
				  .report_flush_ms = 60000 };
	hf_coord_store *s = open_opts(&o);
	uint64_t base = hf_wall_ms() - 3600 * 1000; /* within the default 7 days */
	json_t *h = NULL;
	hf_errbuf eb;

	add_node(s, "n1");
	add_node(s, "n2");
	/* 100 reports 10 s apart (990 s): rows at 0, 60, ..., 960 s = 17; n2 reports too. */
	for (int i = 0; i < 100; i++) {
		put_report(s, "n1", base + (uint64_t)i * 10000, i);
		if (i % 2 == 0)
			put_report(s, "n2", base + (uint64_t)i * 10000, 1000 + i);
		if (i == 50) /* across two batches: the rule holds over commits */
			cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	}
	cr_assert_eq(hf_coord_store_report_history(s, "n1", 0, 0, &h, &eb), 0, "%s", eb.msg);
	cr_assert_eq(json_array_size(h), 17, "%zu rows", json_array_size(h));
	for (size_t i = 0; i < json_array_size(h); i++) {
		json_t *row = json_array_get(h, i);
		uint64_t w = (uint64_t)json_integer_value(json_object_get(row, "wall_ms"));
		cr_assert_eq(w, base + i * 60000, "row %zu at %llu", i, (unsigned long long)(w - base));
		cr_assert_eq(json_integer_value(json_object_get(json_object_get(row, "report"),
								"seq")), (json_int_t)(i * 6));
	}
	json_decref(h);
	/* since and max */
	cr_assert_eq(hf_coord_store_report_history(s, "n1", base + 125000, 3, &h, &eb), 0, "%s",
		     eb.msg);
	cr_assert_eq(json_array_size(h), 3);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(h, 0), "wall_ms")),
		     (json_int_t)(base + 180000));
	json_decref(h);
	cr_assert_eq(hf_coord_store_report_history(s, "n2", 0, 0, &h, &eb), 0, "%s", eb.msg);
	cr_assert_eq(json_array_size(h), 17);
	json_decref(h);
	cr_assert_eq(hf_coord_store_report_history(s, "nobody", 0, 0, &h, &eb), 0, "%s", eb.msg);
	cr_assert_eq(json_array_size(h), 0);
	json_decref(h);
	hf_coord_store_free(s);
}

Test(coord_store, history_older_than_keep_is_pruned)
{
	hf_coord_store_opts o = { .path = dbpath, .history_interval_s = 60,
				  .history_keep_s = 86400 };
	hf_coord_store *s = open_opts(&o);
	uint64_t now = hf_wall_ms();
	json_t *h = NULL;
	hf_errbuf eb;

	add_node(s, "n1");
	put_report(s, "n1", now - 3 * 3600 * 1000, 1);
	put_report(s, "n1", now - 2 * 3600 * 1000, 2);
	put_report(s, "n1", now - 30 * 60 * 1000, 3);
	put_report(s, "n1", now - 2 * 86400 * 1000ull, 0); /* already past keep: never kept */
	cr_assert_eq(hf_coord_store_report_history(s, "n1", 0, 0, &h, &eb), 0, "%s", eb.msg);
	cr_assert_eq(json_array_size(h), 3);
	json_decref(h);
	hf_coord_store_free(s);

	/* Keep one hour now: the next commit deletes the two older rows. */
	o.history_keep_s = 3600;
	s = open_opts(&o);
	put_report(s, "n1", now, 4);
	cr_assert_eq(hf_coord_store_report_history(s, "n1", 0, 0, &h, &eb), 0, "%s", eb.msg);
	cr_assert_eq(json_array_size(h), 2, "%zu rows", json_array_size(h));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(h, 0),
									"report"), "seq")), 3);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(h, 1),
									"report"), "seq")), 4);
	json_decref(h);
	hf_coord_store_free(s);
}

/* ---- node removal ---- */

Test(coord_store, node_remove_drops_reports_and_acks_keeps_decisions)
{
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 60000 };
	hf_coord_store *s = open_opts(&o);
	hf_coord_decision_rec d, *list;
	hf_coord_ack_rec a, *acks;
	size_t n;
	json_t *got = NULL;
	hf_errbuf eb;
	int rc;

	uint64_t now = hf_wall_ms(); /* history older than 7 days would be pruned */
	add_node(s, "n1");
	add_node(s, "n2");
	put_report(s, "n1", now, 1);
	put_report(s, "n2", now, 1);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	put_report(s, "n1", now + 1000, 2); /* still queued when the node goes */
	memset(&a, 0, sizeof a);
	strcpy(a.node, "n1");
	a.issued_ms = 500;
	a.wall_ms = 600;
	cr_assert_eq(hf_coord_store_ack_put(s, &a, &eb), 0, "%s", eb.msg);
	d = mk_dec("n1", 500, "{\"e\":1}");
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);

	cr_assert_eq(hf_coord_store_node_remove(s, "n1", &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, NULL, &eb), HF_ENOTFOUND);
	cr_assert_eq(hf_coord_store_report_latest(s, "n2", &got, NULL, &eb), 0, "%s", eb.msg);
	json_decref(got);
	cr_assert_eq(hf_coord_store_ack_list(s, 0, 10000, &acks, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 0);
	free(acks);
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].node, "n1");
	cr_assert_str_eq(list[0].envelope, "{\"e\":1}");
	free_decs(list, n);
	hf_coord_store_free(s);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM reports_history WHERE node = 'n1'", &rc),
		     0);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM reports_history WHERE node = 'n2'", &rc),
		     1);
	/* The audit log is append-only even for a hand with the sqlite3 CLI. */
	raw_sql(dbpath, "DELETE FROM decisions", &rc);
	cr_assert_neq(rc, SQLITE_OK);
	raw_sql(dbpath, "UPDATE decisions SET mode = 'idle'", &rc);
	cr_assert_neq(rc, SQLITE_OK);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM decisions", &rc), 1);
}

/* ---- seq ---- */

Test(coord_store, decision_seq_increases_and_is_never_reused_across_reopen)
{
	hf_coord_store *s = open_db();
	hf_coord_decision_rec d;
	hf_errbuf eb;
	uint64_t last = 0;

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++) {
			d = mk_dec("n1", 1000 + (uint64_t)round * 10 + (uint64_t)i, "{}");
			cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
			cr_assert_gt(d.seq, last);
			last = d.seq;
		}
		hf_coord_store_free(s);
		s = open_db();
		/* What a restarted coordinator serves: the last one. */
		hf_coord_decision_rec *cur;
		size_t n;
		cr_assert_eq(hf_coord_store_decision_current(s, &cur, &n, &eb), 0, "%s", eb.msg);
		cr_assert_eq(n, 1);
		cr_assert_eq(cur[0].seq, last);
		cr_assert_eq(cur[0].issued_ms, 1000 + (uint64_t)round * 10 + 3);
		free_decs(cur, n);
	}
	cr_assert_eq(last, 12);
	hf_coord_store_free(s);
}

Test(coord_store, decision_add_many_is_one_transaction)
{
	hf_coord_store *s = open_db();
	hf_coord_decision_rec d[50], *list;
	char env[50][32];
	size_t n;
	uint64_t f;
	hf_errbuf eb;

	for (int i = 0; i < 50; i++) {
		char id[16];
		snprintf(id, sizeof id, "n%02d", i);
		snprintf(env[i], sizeof env[i], "{\"n\":%d}", i);
		d[i] = mk_dec(id, 7000 + (uint64_t)i, env[i]);
	}
	cr_assert_eq(hf_coord_store_decision_add_many(s, d, 50, &eb), 0, "%s", eb.msg);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(d[i].seq, (uint64_t)i + 1);
	cr_assert_eq(hf_coord_store_floor_get(s, &f, &eb), 0, "%s", eb.msg);
	cr_assert_eq(f, 7049);
	/* One bad record: nothing of the batch is recorded. */
	for (int i = 0; i < 50; i++)
		d[i].seq = 0;
	d[30].authority = (hf_coord_authority)7;
	cr_assert_eq(hf_coord_store_decision_add_many(s, d, 50, &eb), HF_EINVAL);
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 50);
	free_decs(list, n);
	cr_assert_eq(hf_coord_store_decision_current(s, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 50);
	free_decs(list, n);
	hf_coord_store_free(s);
}

/* ---- migrations ---- */

static const hf_coord_sqlite_migration *v2_list(const char *sql2)
{
	static hf_coord_sqlite_migration m[2];
	m[0] = hf_coord_sqlite_migrations[0];
	m[1].version = 2;
	m[1].what = "test: node labels";
	m[1].sql = sql2;
	return m;
}

Test(coord_store, migration_from_version_1_applies_in_one_transaction)
{
	hf_coord_store *s = open_db();
	hf_coord_decision_rec d = mk_dec("n1", 42, "{\"v1\":true}");
	hf_coord_store_opts o = { .path = dbpath };
	hf_errbuf eb;
	int rc;

	cr_assert_eq(hf_coord_sqlite_n_migrations, 1);
	add_node(s, "n1");
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s);

	/* A version 2 whose second statement fails: nothing of it stays, still version 1. */
	s = NULL;
	rc = hf_coord_sqlite_open_with(&o, v2_list("CREATE TABLE labels(node TEXT, label TEXT);"
						   "ALTER TABLE nosuch ADD COLUMN x INTEGER"),
				       2, &s, &eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert_null(s);
	cr_assert(strstr(eb.msg, "schema version 2") && strstr(eb.msg, "nosuch") &&
		  strstr(eb.msg, "stays at version 1"), "%s", eb.msg);
	cr_assert_eq(raw_sql(dbpath, "PRAGMA user_version", &rc), 1);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM sqlite_master WHERE name = 'labels'",
			     &rc), 0);

	/* A good version 2: data kept, the new column there. */
	rc = hf_coord_sqlite_open_with(&o, v2_list("ALTER TABLE nodes ADD COLUMN label TEXT NOT "
						   "NULL DEFAULT 'none'"), 2, &s, &eb);
	cr_assert_eq(rc, 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_schema_version(s), 2);
	hf_coord_decision_rec *list;
	size_t n;
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].envelope, "{\"v1\":true}");
	free_decs(list, n);
	hf_coord_store_free(s);
	cr_assert_eq(raw_sql(dbpath, "PRAGMA user_version", &rc), 2);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM nodes WHERE label = 'none'", &rc), 1);

	/* This program knows version 1 only: the version 2 database is refused, untouched. */
	s = NULL;
	rc = hf_coord_store_open_sqlite(&o, &s, &eb);
	cr_assert_eq(rc, HF_ESTATE);
	cr_assert_null(s);
	cr_assert(strstr(eb.msg, "version 2 is newer") && strstr(eb.msg, "knows (1)"), "%s",
		  eb.msg);
	cr_assert_eq(raw_sql(dbpath, "PRAGMA user_version", &rc), 2);
}

Test(coord_store, migration_list_out_of_order_is_refused)
{
	hf_coord_sqlite_migration m[2] = { hf_coord_sqlite_migrations[0],
					   { 3, "skips 2", "SELECT 1" } };
	hf_coord_store_opts o = { .path = dbpath };
	hf_coord_store *s = NULL;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_sqlite_open_with(&o, m, 2, &s, &eb), HF_EINVAL);
	cr_assert(strstr(eb.msg, "expected 2"), "%s", eb.msg);
}

/* ---- files that are not ours ---- */

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int try_open(hf_errbuf *eb)
{
	hf_coord_store_opts o = { .path = dbpath };
	hf_coord_store *s = NULL;
	int rc = hf_coord_store_open_sqlite(&o, &s, eb);
	if (rc == 0)
		hf_coord_store_free(s);
	else
		cr_assert_null(s);
	return rc;
}

Test(coord_store, a_file_that_is_not_sqlite_is_refused_clearly)
{
	char junk[8192];
	hf_errbuf eb;
	snprintf(dbpath, sizeof dbpath, "%s/coord.db", dir);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)("{\"fleet\": 1}\n"[i % 13]);
	write_file(dbpath, junk, sizeof junk);
	int rc = try_open(&eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert(strstr(eb.msg, dbpath) && strstr(eb.msg, "not an SQLite database"), "%s", eb.msg);
}

Test(coord_store, a_damaged_database_gives_errors_not_a_crash)
{
	hf_coord_store *s = open_db();
	hf_errbuf eb;
	add_node(s, "n1");
	static hf_coord_decision_rec d[200];
	for (int i = 0; i < 200; i++)
		d[i] = mk_dec("n1", 1000 + (uint64_t)i,
			      "{\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
	cr_assert_eq(hf_coord_store_decision_add_many(s, d, 200, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s); /* checkpoints: everything is in the main file */

	/* Scribble over everything after page 1's 100-byte header: the schema is gone. */
	struct stat st;
	cr_assert_eq(stat(dbpath, &st), 0);
	cr_assert_gt(st.st_size, 8192);
	char *junk = malloc((size_t)st.st_size);
	memset(junk, 0xa5, (size_t)st.st_size);
	int fd = open(dbpath, O_WRONLY);
	cr_assert_eq(pwrite(fd, junk, (size_t)st.st_size - 100, 100), st.st_size - 100);
	close(fd);
	free(junk);
	int rc = try_open(&eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert(strstr(eb.msg, dbpath) && (strstr(eb.msg, "malformed") ||
					     strstr(eb.msg, "damaged")), "%s", eb.msg);
}

Test(coord_store, a_damaged_table_page_fails_its_queries_only)
{
	hf_coord_store *s = open_db();
	hf_errbuf eb;
	int rc;
	add_node(s, "n1");
	static hf_coord_decision_rec many[300];
	for (int i = 0; i < 300; i++)
		many[i] = mk_dec("n1", 1000 + (uint64_t)i,
			      "{\"payload\":\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\"}");
	cr_assert_eq(hf_coord_store_decision_add_many(s, many, 300, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s);
	long long page = raw_sql(dbpath, "SELECT rootpage FROM sqlite_master WHERE name = "
				 "'decisions'", &rc);
	long long psize = raw_sql(dbpath, "PRAGMA page_size", &rc);
	cr_assert_gt(page, 1);
	/* The decisions table's root page becomes garbage. */
	char junk[65536];
	memset(junk, 0x5a, sizeof junk);
	int fd = open(dbpath, O_WRONLY);
	cr_assert_eq(pwrite(fd, junk, (size_t)psize, (off_t)((page - 1) * psize)), psize);
	close(fd);
	s = NULL;
	hf_coord_store_opts o = { .path = dbpath };
	rc = hf_coord_store_open_sqlite(&o, &s, &eb);
	if (rc != 0) { /* refusing at open is fine too, as long as it says why */
		cr_assert(strstr(eb.msg, "malformed") || strstr(eb.msg, "damaged"), "%s", eb.msg);
		cr_log_info("damaged page: refused at open: %s", eb.msg);
		return;
	}
	hf_coord_decision_rec *list = NULL;
	size_t n = 0;
	rc = hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert(strstr(eb.msg, "listing decisions") && strstr(eb.msg, "damaged"), "%s", eb.msg);
	cr_log_info("damaged page: %s", eb.msg);
	hf_coord_decision_rec d = mk_dec("n1", 99999, "{}");
	rc = hf_coord_store_decision_add(s, &d, &eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert_eq(d.seq, 0);
	hf_coord_store_free(s);
}

Test(coord_store, another_applications_database_is_refused)
{
	int rc;
	snprintf(dbpath, sizeof dbpath, "%s/other.db", dir);
	write_file(dbpath, "", 0);
	raw_sql(dbpath, "CREATE TABLE t(x)", &rc);
	cr_assert_eq(rc, SQLITE_OK);
	hf_errbuf eb;
	cr_assert_eq(try_open(&eb), HF_ESTATE);
	cr_assert(strstr(eb.msg, "not a hashflop-coord database"), "%s", eb.msg);
	cr_assert_eq(raw_sql(dbpath, "SELECT count(*) FROM sqlite_master", &rc), 1);

	snprintf(dbpath, sizeof dbpath, "%s/other2.db", dir);
	write_file(dbpath, "", 0);
	raw_sql(dbpath, "PRAGMA application_id = 1234", &rc);
	cr_assert_eq(try_open(&eb), HF_ESTATE);
	cr_assert(strstr(eb.msg, "application_id"), "%s", eb.msg);
}

/* ---- kill -9 ---- */

struct kill_rec {
	uint64_t seq, issued_ms;
};

/* The child: decisions and floor raises (and reports, for a busy WAL) until killed; every
 * answered call goes to the pipe only after it returned. */
static void __attribute__((noreturn)) writer_child(int wfd, uint64_t first_issued)
{
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 5 };
	hf_coord_store *s = NULL;
	hf_errbuf eb;
	char env[64];

	if (hf_coord_store_open_sqlite(&o, &s, &eb) != 0)
		_exit(2);
	for (uint64_t i = 0;; i++) {
		uint64_t issued = first_issued + 2 * i;
		snprintf(env, sizeof env, "{\"issued\":%llu}", (unsigned long long)issued);
		hf_coord_decision_rec d = mk_dec("n1", issued, env);
		json_t *r = json_pack("{s:I}", "issued", (json_int_t)issued);
		if (hf_coord_store_report_put(s, "n1", hf_wall_ms(), r, &eb) != 0)
			_exit(5);
		json_decref(r);
		if (hf_coord_store_decision_add(s, &d, &eb) != 0)
			_exit(3);
		if (hf_coord_store_floor_set(s, issued + 1, &eb) != 0)
			_exit(4);
		struct kill_rec rec = { d.seq, issued };
		if (write(wfd, &rec, sizeof rec) != (ssize_t)sizeof rec)
			_exit(6);
	}
}

static void check_after_kill(const struct kill_rec *recs, size_t nrec)
{
	hf_coord_store *s = open_db();
	hf_coord_decision_rec *list = NULL;
	size_t n = 0, j = 0;
	uint64_t floor = 0, max_seq = 0, max_issued = 0;
	hf_errbuf eb;
	char env[64];

	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	for (size_t i = 0; i < nrec; i++) {
		while (j < n && list[j].seq < recs[i].seq)
			j++;
		cr_assert(j < n && list[j].seq == recs[i].seq, "seq %llu answered but lost",
			  (unsigned long long)recs[i].seq);
		snprintf(env, sizeof env, "{\"issued\":%llu}", (unsigned long long)recs[i].issued_ms);
		cr_assert_str_eq(list[j].envelope, env);
		cr_assert_eq(list[j].issued_ms, recs[i].issued_ms);
		if (recs[i].seq > max_seq)
			max_seq = recs[i].seq;
		if (recs[i].issued_ms > max_issued)
			max_issued = recs[i].issued_ms;
	}
	free_decs(list, n);
	cr_assert_eq(hf_coord_store_floor_get(s, &floor, &eb), 0, "%s", eb.msg);
	if (nrec > 0) /* every answered floor_set(issued + 1) is there */
		cr_assert_geq(floor, max_issued + 1, "floor %llu below %llu",
			      (unsigned long long)floor, (unsigned long long)max_issued + 1);
	hf_coord_decision_rec d = mk_dec("n1", floor + 1, "{\"after\":1}");
	cr_assert_eq(hf_coord_store_decision_add(s, &d, &eb), 0, "%s", eb.msg);
	cr_assert_gt(d.seq, max_seq, "seq %llu reused (max answered %llu)",
		     (unsigned long long)d.seq, (unsigned long long)max_seq);
	cr_assert_eq(hf_coord_store_floor_set(s, floor + 1, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s);

	sqlite3 *db;
	sqlite3_stmt *q;
	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

Test(coord_store, kill_9_mid_writes_loses_no_answered_decision_and_no_floor)
{
	struct kill_rec *recs = NULL;
	size_t nrec = 0, cap = 0;
	hf_errbuf eb;

	hf_coord_store *s = open_db();
	add_node(s, "n1");
	hf_coord_store_free(s);
	srand((unsigned)(hf_mono_us() ^ (uint64_t)getpid()));
	for (int round = 0; round < 8; round++) {
		uint64_t floor = 0;
		s = open_db();
		cr_assert_eq(hf_coord_store_floor_get(s, &floor, &eb), 0, "%s", eb.msg);
		hf_coord_store_free(s);

		int p[2];
		cr_assert_eq(pipe(p), 0);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(p[0]);
			writer_child(p[1], floor + 1);
		}
		close(p[1]);
		/* Kill after a random number of answered calls (0: before the first answer). */
		size_t target = (size_t)(rand() % 60), got = 0;
		uint64_t deadline = hf_mono_ms() + 30000;
		while (got < target && hf_mono_ms() < deadline) {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };
			if (poll(&pfd, 1, 100) <= 0)
				continue;
			struct kill_rec r;
			ssize_t k = read(p[0], &r, sizeof r);
			if (k <= 0)
				break; /* the child died: waitpid below says why */
			cr_assert_eq(k, (ssize_t)sizeof r);
			if (nrec == cap) {
				cap = cap ? cap * 2 : 64;
				recs = realloc(recs, cap * sizeof *recs);
			}
			recs[nrec++] = r;
			got++;
		}
		/* A random point inside the next call, not only between calls. */
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		int status = 0;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "the writer child ended on its own (status 0x%x)", status);
		/* Everything still in the pipe was answered before the kill, too. */
		for (;;) {
			struct kill_rec r;
			ssize_t k = read(p[0], &r, sizeof r);
			if (k <= 0)
				break;
			cr_assert_eq(k, (ssize_t)sizeof r);
			if (nrec == cap) {
				cap = cap ? cap * 2 : 64;
				recs = realloc(recs, cap * sizeof *recs);
			}
			recs[nrec++] = r;
		}
		close(p[0]);
		cr_assert_eq(got, target, "round %d: only %zu of %zu answers", round, got, target);
		check_after_kill(recs, nrec);
	}
	cr_log_info("kill -9: %zu answered decisions checked over 8 rounds", nrec);
	free(recs);
}

/* ---- threads and a second handle ---- */

struct thr_arg {
	hf_coord_store *s;
	int idx;
	int rc;
	uint64_t seqs[50];
};

static void *reporter_thread(void *p)
{
	struct thr_arg *a = p;
	hf_errbuf eb;
	char id[16];
	snprintf(id, sizeof id, "t%d", a->idx);
	for (int i = 0; i < 2000 && a->rc == 0; i++) {
		json_t *r = json_pack("{s:i}", "seq", i);
		a->rc = hf_coord_store_report_put(a->s, id, hf_wall_ms(), r, &eb);
		json_decref(r);
		if (i % 40 == 0 && a->rc == 0) {
			hf_coord_decision_rec d = mk_dec(id, 1000 + (uint64_t)i, "{}");
			a->rc = hf_coord_store_decision_add(a->s, &d, &eb);
			a->seqs[i / 40] = d.seq;
		}
		if (i % 100 == 0 && a->rc == 0) {
			json_t *got = NULL;
			a->rc = hf_coord_store_report_latest(a->s, id, &got, NULL, &eb);
			/* the one just put, or a newer one: never none */
			if (a->rc == 0 && json_integer_value(json_object_get(got, "seq")) < i)
				a->rc = -100;
			json_decref(got);
		}
	}
	return NULL;
}

Test(coord_store, threads_report_decide_and_read_at_once)
{
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 2 };
	hf_coord_store *s = open_opts(&o);
	struct thr_arg a[4];
	pthread_t t[4];
	hf_errbuf eb;

	for (int i = 0; i < 4; i++) {
		char id[16];
		snprintf(id, sizeof id, "t%d", i);
		add_node(s, id);
	}
	/* Another handle on the same file (hashflop-coord node add while the coordinator runs)
	 * adds nodes while the first one commits batches. */
	hf_coord_store *other = open_opts(&o);
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof a[i]);
		a[i].s = s;
		a[i].idx = i;
		cr_assert_eq(pthread_create(&t[i], NULL, reporter_thread, &a[i]), 0);
	}
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "late%d", i);
		add_node(other, id);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(a[i].rc, 0, "thread %d: %d %s", i, a[i].rc, hf_strerror(a[i].rc));
	}
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	hf_coord_store_stats st;
	hf_coord_store_stats_get(s, &st);
	cr_assert_eq(st.reports_queued, 8000);
	cr_assert_eq(st.entries_written, 8000);
	cr_assert_eq(st.entries_lost + st.entries_dropped, 0);
	hf_coord_decision_rec *list;
	size_t n;
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &list, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 200);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(list[i].seq, i + 1);
	free_decs(list, n);
	hf_coord_node_rec *nodes;
	cr_assert_eq(hf_coord_store_node_list(s, &nodes, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, 24);
	free(nodes);
	hf_coord_store_free(other);
	hf_coord_store_free(s);
}

/* ---- a commit that fails ---- */

Test(coord_store, a_failed_report_commit_is_reported_and_counted)
{
	/* A test migration adds a trigger that fails any report of node "boom" (as a full disk
	 * would fail the whole transaction). */
	hf_coord_sqlite_migration m[2] = { hf_coord_sqlite_migrations[0],
		{ 2, "test: failure injection",
		  "CREATE TRIGGER boom BEFORE INSERT ON reports_latest WHEN NEW.node = 'boom' "
		  "BEGIN SELECT RAISE(ABORT, 'injected failure'); END" } };
	hf_coord_store_opts o = { .path = dbpath, .report_flush_ms = 60000 };
	hf_coord_store *s = NULL;
	hf_coord_store_stats st;
	json_t *got;
	hf_errbuf eb;

	cr_assert_eq(hf_coord_sqlite_open_with(&o, m, 2, &s, &eb), 0, "%s", eb.msg);
	add_node(s, "ok1");
	add_node(s, "boom");
	put_report(s, "ok1", hf_wall_ms(), 1);
	put_report(s, "boom", hf_wall_ms(), 2);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), HF_ESTATE);
	cr_assert(strstr(eb.msg, "injected failure") && strstr(eb.msg, "recording a report"), "%s",
		  eb.msg);
	/* The whole transaction was rolled back: ok1's report is lost with it, and counted. */
	cr_assert_eq(hf_coord_store_report_latest(s, "ok1", &got, NULL, &eb), HF_ENOTFOUND);
	hf_coord_store_stats_get(s, &st);
	cr_assert_eq(st.entries_lost, 2);
	cr_assert_eq(st.batch_failures, 1);
	/* That failure was returned to its caller: not reported a second time. */
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	hf_coord_store_free(s);

	/* A background commit that fails is reported by the next report_flush, once. */
	o.report_flush_ms = 5;
	cr_assert_eq(hf_coord_sqlite_open_with(&o, m, 2, &s, &eb), 0, "%s", eb.msg);
	put_report(s, "boom", hf_wall_ms(), 3);
	uint64_t deadline = hf_mono_ms() + 10000;
	do {
		hf_coord_store_stats_get(s, &st);
		if (st.batch_failures > 0)
			break;
		hf_sleep_ms(5);
	} while (hf_mono_ms() < deadline);
	cr_assert_eq(st.batch_failures, 1);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "1 of 1 reports/acks lost") && strstr(eb.msg, "injected failure"),
		  "%s", eb.msg);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	/* The store goes on: a good report commits. */
	put_report(s, "ok1", hf_wall_ms(), 4);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_report_latest(s, "ok1", &got, NULL, &eb), 0, "%s", eb.msg);
	json_decref(got);
	hf_coord_store_free(s);
}

Test(coord_store, a_path_that_cannot_be_a_database_is_refused_clearly)
{
	hf_errbuf eb;
	int rc;
	/* its directory is a file */
	snprintf(dbpath, sizeof dbpath, "%s/plain", dir);
	write_file(dbpath, "x", 1);
	snprintf(dbpath, sizeof dbpath, "%s/plain/coord.db", dir);
	rc = try_open(&eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert(strstr(eb.msg, "plain") && strstr(eb.msg, "not a directory"), "%s", eb.msg);
	/* it is a directory */
	snprintf(dbpath, sizeof dbpath, "%s/adir", dir);
	cr_assert_eq(mkdir(dbpath, 0700), 0);
	rc = try_open(&eb);
	cr_assert_eq(rc, HF_EIO, "%s", hf_strerror(rc));
	cr_assert(strstr(eb.msg, dbpath) && strstr(eb.msg, "opening"), "%s", eb.msg);
	cr_log_info("%s", eb.msg);
}

Test(coord_store, report_put_text_stores_the_text_given)
{
	hf_coord_store *s = open_db();
	const char body[] = "{\"v\": 1, \"seq\": 9, \"mode\": \"idle\"}trailing";
	json_t *got = NULL;
	uint64_t w = 0;
	hf_errbuf eb;
	add_node(s, "n1");
	cr_assert_eq(hf_coord_store_report_put_text(s, "n1", 4242, body, strlen(body) - 8, &eb), 0,
		     "%s", eb.msg);
	cr_assert_eq(hf_coord_store_report_put_text(s, "n1", 1, "", 0, &eb), HF_EINVAL);
	cr_assert_eq(hf_coord_store_report_put_text(s, "n1", 1, "{}\0{}", 5, &eb), HF_EINVAL);
	cr_assert_eq(hf_coord_store_report_flush(s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_report_latest(s, "n1", &got, &w, &eb), 0, "%s", eb.msg);
	cr_assert_eq(w, 4242);
	cr_assert_eq(json_integer_value(json_object_get(got, "seq")), 9);
	cr_assert_str_eq(json_string_value(json_object_get(got, "mode")), "idle");
	json_decref(got);
	hf_coord_store_free(s);
}
