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
	hf_coord_store_stats st;
	hf_coord_store_stats_get(s, &st);
	cr_assert_geq(st.batches, 1);
	cr_assert_eq(st.entries_written, 1);
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
