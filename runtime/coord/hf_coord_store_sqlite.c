/* hf_coord_store_sqlite: the SQLite backend of hf_coord_store: schema, migrations, prepared
 * statements, one connection.
 *
 * Invariants: the connection runs in WAL mode with synchronous=FULL (a commit is on disk, WAL
 * fsync'ed, before it returns: a decision survives a power cut, not only a crash of this
 * process; NORMAL would only survive the latter), foreign_keys=ON, a busy timeout (other
 * processes, hashflop-coord node add, may write between our transactions: a 1 ms retry for
 * 5 s), defensive mode.
 * Checkpoints run on a second connection from the report writer's thread (maintain), never
 * inside a caller's commit (wal_autocheckpoint=0 on the main connection): PASSIVE checkpoints
 * do not block writers, so a decision does not wait for 4 MB of WAL to be copied and synced.
 * The schema version is PRAGMA user_version; application_id marks the file as ours. Migrations
 * run at open, in order, one transaction each, and a database newer than the code is refused.
 * Decisions are append-only (triggers refuse UPDATE and DELETE); seq is AUTOINCREMENT, so a
 * seq is never handed out twice, even after a crash. Every integer fits int64 (the caller,
 * hf_coord_store.c, checks).
 * Threading: one connection (SQLITE_OPEN_NOMUTEX) behind q->mu: every operation takes it for
 * its whole transaction, so the operations may be called from any thread. Callers go first:
 * the report writer (write_batch, one chunk per call) waits while a caller waits for q->mu,
 * since a mutex is not fair and the writer would otherwise take it back chunk after chunk.
 */
#include "hf_coord_store_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_file.h"
#include "hf_util.h"

#define APPLICATION_ID 0x48664364 /* "HfCd" */
#define BUSY_TIMEOUT_MS 5000

/* ---- schema ---- */

static const char schema_v1[] =
	"CREATE TABLE nodes ("
	" id TEXT PRIMARY KEY NOT NULL,"
	" token_hash TEXT NOT NULL,"
	" added_ms INTEGER NOT NULL,"
	" hold_until_ms INTEGER NOT NULL DEFAULT 0,"
	" hold_by TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
	"CREATE TABLE reports_latest ("
	" node TEXT PRIMARY KEY NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	" wall_ms INTEGER NOT NULL,"
	" json TEXT NOT NULL);"
	"CREATE TABLE reports_history ("
	" node TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	" wall_ms INTEGER NOT NULL,"
	" json TEXT NOT NULL);"
	"CREATE INDEX reports_history_node ON reports_history(node, wall_ms);"
	"CREATE INDEX reports_history_wall ON reports_history(wall_ms);"
	"CREATE TABLE decisions ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" wall_ms INTEGER NOT NULL,"
	" node TEXT NOT NULL,"
	" issued_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL,"
	" mode TEXT NOT NULL,"
	" authority TEXT NOT NULL CHECK (authority IN ('operator', 'coordinator')),"
	" source TEXT NOT NULL,"
	" keyids TEXT NOT NULL,"
	" payload_sha256 TEXT NOT NULL,"
	" reason TEXT,"
	" envelope TEXT NOT NULL,"
	" resigned_from INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX decisions_wall ON decisions(wall_ms);"
	"CREATE INDEX decisions_node ON decisions(node, seq);"
	"CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions"
	" BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;"
	"CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions"
	" BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;"
	"CREATE TABLE decisions_current ("
	" node TEXT PRIMARY KEY NOT NULL,"
	" seq INTEGER NOT NULL REFERENCES decisions(seq)) WITHOUT ROWID;"
	"CREATE TABLE acks ("
	" node TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	" issued_ms INTEGER NOT NULL,"
	" wall_ms INTEGER NOT NULL,"
	" PRIMARY KEY (node, issued_ms)) WITHOUT ROWID;"
	"CREATE INDEX acks_issued ON acks(issued_ms);"
	"CREATE TABLE meta ("
	" key TEXT PRIMARY KEY NOT NULL,"
	" value INTEGER NOT NULL) WITHOUT ROWID;";

/* Add version 2 as one more entry here (never edit an entry that was released). */
const hf_coord_sqlite_migration hf_coord_sqlite_migrations[] = {
	{ 1, "the initial schema", schema_v1 },
};
const size_t hf_coord_sqlite_n_migrations = HF_ARRAY_SIZE(hf_coord_sqlite_migrations);

/* ---- statements ---- */

#define DEC_COLS "d.seq, d.wall_ms, d.node, d.issued_ms, d.expires_ms, d.mode, d.authority, " \
	"d.source, d.keyids, d.payload_sha256, d.reason, d.envelope, d.resigned_from"

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_NODE_ADD, S_NODE_TOKEN, S_NODE_HOLD, S_NODE_REMOVE, S_NODE_LIST,
	S_LATEST_PUT, S_HIST_PUT, S_HIST_PRUNE, S_ACK_PUT,
	S_LATEST_GET, S_HIST_GET,
	S_DEC_ADD, S_DEC_CUR_PUT, S_FLOOR_RAISE, S_FLOOR_GET, S_DEC_LIST, S_DEC_CUR,
	S_ACK_LIST,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_NODE_ADD] = "INSERT INTO nodes(id, token_hash, added_ms, hold_until_ms, hold_by) "
		"VALUES(?1, ?2, ?3, ?4, ?5)",
	[S_NODE_TOKEN] = "UPDATE nodes SET token_hash = ?2 WHERE id = ?1",
	[S_NODE_HOLD] = "UPDATE nodes SET hold_until_ms = ?2, hold_by = ?3 WHERE id = ?1",
	[S_NODE_REMOVE] = "DELETE FROM nodes WHERE id = ?1",
	[S_NODE_LIST] = "SELECT id, token_hash, added_ms, hold_until_ms, hold_by FROM nodes "
		"ORDER BY id",
	[S_LATEST_PUT] = "INSERT INTO reports_latest(node, wall_ms, json) VALUES(?1, ?2, ?3) "
		"ON CONFLICT(node) DO UPDATE SET wall_ms = excluded.wall_ms, json = excluded.json "
		"WHERE excluded.wall_ms >= reports_latest.wall_ms",
	[S_HIST_PUT] = "INSERT INTO reports_history(node, wall_ms, json) SELECT ?1, ?2, ?3 "
		"WHERE NOT EXISTS (SELECT 1 FROM reports_history WHERE node = ?1 "
		"AND wall_ms > ?2 - ?4)",
	[S_HIST_PRUNE] = "DELETE FROM reports_history WHERE wall_ms < ?1",
	[S_ACK_PUT] = "INSERT INTO acks(node, issued_ms, wall_ms) VALUES(?1, ?2, ?3) "
		"ON CONFLICT(node, issued_ms) DO NOTHING",
	[S_LATEST_GET] = "SELECT wall_ms, json FROM reports_latest WHERE node = ?1",
	[S_HIST_GET] = "SELECT wall_ms, json FROM reports_history WHERE node = ?1 "
		"AND wall_ms >= ?2 ORDER BY wall_ms LIMIT ?3",
	[S_DEC_ADD] = "INSERT INTO decisions(wall_ms, node, issued_ms, expires_ms, mode, authority, "
		"source, keyids, payload_sha256, reason, envelope, resigned_from) "
		"VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_DEC_CUR_PUT] = "INSERT INTO decisions_current(node, seq) VALUES(?1, ?2) "
		"ON CONFLICT(node) DO UPDATE SET seq = excluded.seq",
	[S_FLOOR_RAISE] = "INSERT INTO meta(key, value) VALUES('floor', ?1) "
		"ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
	[S_FLOOR_GET] = "SELECT value FROM meta WHERE key = 'floor'",
	[S_DEC_LIST] = "SELECT " DEC_COLS " FROM decisions d WHERE d.seq > ?1 AND d.wall_ms >= ?2 "
		"ORDER BY d.seq LIMIT ?3",
	[S_DEC_CUR] = "SELECT " DEC_COLS " FROM decisions_current c "
		"JOIN decisions d ON d.seq = c.seq ORDER BY d.seq",
	[S_ACK_LIST] = "SELECT node, issued_ms, wall_ms FROM acks "
		"WHERE issued_ms >= ?1 AND issued_ms <= ?2 ORDER BY issued_ms, node",
};

typedef struct hf_sqlite {
	sqlite3 *db;
	pthread_mutex_t mu;          /* the connection and the statements */
	sqlite3 *ckpt;               /* WAL checkpoints only, from the report writer's thread */
	pthread_cond_t turn;         /* the report writer waits here while callers wait for mu */
	atomic_int callers_waiting;  /* callers (not the report writer) waiting for mu */
	uint64_t busy_since_ms;      /* busy_wait's clock for db (under mu) */
	uint64_t ckpt_busy_since_ms; /* and for ckpt (the writer's thread) */
	sqlite3_stmt *st[S_COUNT];
	int version;
	char path[PATH_MAX];
} hf_sqlite;

/* ---- errors ---- */

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return HF_EBUSY;
	case SQLITE_NOMEM:
		return HF_ENOMEM;
	case SQLITE_CONSTRAINT:
		return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? HF_ENOTFOUND : HF_ESTATE;
	default:
		return HF_EIO;
	}
}

static const char *rc_hint(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		return " (not an SQLite database, or its header is damaged)";
	case SQLITE_CORRUPT:
		return " (the database is damaged: restore a backup)";
	case SQLITE_FULL:
		return " (disk full)";
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		return " (check the file's and its directory's permissions)";
	case SQLITE_BUSY:
		return " (another process holds the database locked)";
	default:
		return "";
	}
}

/* Formats "PATH: WHAT: SQLITE MESSAGE" into eb and returns the mapped code. */
static int sq_fail(hf_sqlite *q, int rc, hf_errbuf *eb, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int sq_fail(hf_sqlite *q, int rc, hf_errbuf *eb, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return hf_fail(eb, map_rc(rc), "%s: %s: %s%s", q->path, what,
		       q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc), rc_hint(rc));
}

/* SQLite's busy handler: retries every millisecond for BUSY_TIMEOUT_MS. SQLite's own
 * (sqlite3_busy_timeout) sleeps up to 100 ms between tries and can miss, for the whole timeout,
 * the short gaps another process (the coordinator between its report transactions) leaves. */
static int busy_wait(void *arg, int n)
{
	uint64_t *since = arg, now = hf_mono_ms();
	if (n == 0)
		*since = now;
	if (now - *since >= BUSY_TIMEOUT_MS)
		return 0;
	hf_sleep_ms(1);
	return 1;
}

/* ---- the connection's lock ---- */

static void lock_caller(hf_sqlite *q)
{
	atomic_fetch_add(&q->callers_waiting, 1);
	pthread_mutex_lock(&q->mu);
	atomic_fetch_sub(&q->callers_waiting, 1);
}

static void unlock_caller(hf_sqlite *q)
{
	pthread_mutex_unlock(&q->mu);
	pthread_cond_broadcast(&q->turn);
}

static void lock_writer(hf_sqlite *q)
{
	pthread_mutex_lock(&q->mu);
	while (atomic_load(&q->callers_waiting) > 0) {
		struct timespec ts;
		hf_abstime_after_ms(20, &ts); /* belt and braces: re-check now and then */
		pthread_cond_timedwait(&q->turn, &q->mu, &ts);
	}
}

/* ---- small helpers (q->mu held) ---- */

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement expected to finish (no rows); resets it. */
static int step_done(hf_sqlite *q, int id, hf_errbuf *eb, const char *what)
{
	sqlite3_stmt *st = q->st[id];
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		int r = sq_fail(q, rc, eb, "%s", what);
		stmt_done(st);
		return r;
	}
	stmt_done(st);
	return 0;
}

static void rollback(hf_sqlite *q)
{
	if (!sqlite3_get_autocommit(q->db)) {
		sqlite3_step(q->st[S_ROLLBACK]);
		sqlite3_reset(q->st[S_ROLLBACK]);
	}
}

static int begin(hf_sqlite *q, hf_errbuf *eb, const char *what)
{
	return step_done(q, S_BEGIN, eb, what);
}

static int commit(hf_sqlite *q, hf_errbuf *eb, const char *what)
{
	int rc = step_done(q, S_COMMIT, eb, what);
	if (rc != 0)
		rollback(q);
	return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);
	return v < 0 ? 0 : (uint64_t)v;
}

/* Grows *arr (elements of size elsz) to hold one more; false when out of memory. */
static bool grow(void **arr, size_t *cap, size_t len, size_t elsz)
{
	if (len < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, ncap * elsz);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* Runs "PRAGMA name" and returns its integer in *v. */
static int pragma_int(hf_sqlite *q, const char *name, int64_t *v, hf_errbuf *eb)
{
	char sql[96];
	sqlite3_stmt *st = NULL;
	int rc;

	snprintf(sql, sizeof sql, "PRAGMA %s", name);
	rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		int r = sq_fail(q, rc, eb, "reading PRAGMA %s", name);
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

static int exec(hf_sqlite *q, const char *sql, hf_errbuf *eb, const char *what)
{
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, eb, "%s", what);
	return 0;
}

/* ---- open: file, pragmas, migrations, statements ---- */

/* Creates the directory (0750) and an empty file (0600: SQLite gives its -wal and -shm files the
 * database's mode) when missing; a new file's directory entry is synced (SQLite syncs the
 * directory for the WAL it creates, not for a database file created here). */
static int make_file(const char *path, hf_errbuf *eb)
{
	char copy[PATH_MAX], dir[PATH_MAX];
	int fd, dfd;

	hf_strlcpy(copy, path, sizeof copy);
	hf_strlcpy(dir, dirname(copy), sizeof dir);
	int rc = hf_mkdir_p(dir, 0750, eb);
	if (rc != 0)
		return hf_fail_prefix(eb, rc, "database %s", path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0)
		return hf_fail(eb, errno == ENOENT ? HF_ENOTFOUND : HF_EIO, "database %s: %s", path,
			       strerror(errno));
	rc = fsync(fd);
	close(fd);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rc != 0 || dfd < 0 || fsync(dfd) != 0)
		rc = hf_fail(eb, HF_EIO, "database %s: syncing the new file: %s", path,
			     strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return rc;
}

static int set_pragmas(hf_sqlite *q, hf_errbuf *eb)
{
	sqlite3_stmt *st = NULL;
	int64_t fk = 0;
	int rc;

	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, busy_wait, &q->busy_since_ms);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* The first read of the file: a non-SQLite file fails here. */
	rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (strcmp(col_text(st, 0), "wal") != 0) {
			rc = hf_fail(eb, HF_EIO, "%s: cannot use WAL mode (journal mode stays %s)",
				     q->path, col_text(st, 0));
			sqlite3_finalize(st);
			return rc;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		rc = sq_fail(q, rc, eb, "opening the database (setting WAL mode)");
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	if ((rc = exec(q, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
		       "PRAGMA trusted_schema=OFF; PRAGMA wal_autocheckpoint=0; "
		       "PRAGMA journal_size_limit=67108864", eb, "setting pragmas")) != 0)
		return rc;
	if ((rc = pragma_int(q, "foreign_keys", &fk, eb)) != 0)
		return rc;
	if (fk != 1)
		return hf_fail(eb, HF_EUNSUPPORTED, "%s: this SQLite has no foreign keys", q->path);
	return 0;
}

/* Applies migration m (version v) in one transaction, unless another process just did. */
static int migrate_one(hf_sqlite *q, const hf_coord_sqlite_migration *m, hf_errbuf *eb)
{
	char sql[96];
	int64_t cur = 0;
	int rc;

	if ((rc = exec(q, "BEGIN IMMEDIATE", eb, "starting a migration")) != 0)
		return rc;
	if ((rc = pragma_int(q, "user_version", &cur, eb)) != 0)
		goto fail;
	if (cur >= m->version)
		return exec(q, "COMMIT", eb, "ending a migration");
	if ((rc = exec(q, m->sql, eb, "migrating")) != 0)
		goto fail;
	snprintf(sql, sizeof sql, "PRAGMA user_version=%d; PRAGMA application_id=%d", m->version,
		 APPLICATION_ID);
	if ((rc = exec(q, sql, eb, "setting the schema version")) != 0 ||
	    (rc = exec(q, "COMMIT", eb, "committing")) != 0)
		goto fail;
	return 0;
fail:
	(void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return hf_fail_prefix(eb, rc, "migration to schema version %d (%s) failed, the database "
			      "stays at version %lld", m->version, m->what, (long long)cur);
}

static int migrate(hf_sqlite *q, const hf_coord_sqlite_migration *m, size_t n, hf_errbuf *eb)
{
	int64_t ver = 0, app = 0, tables = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (m[i].version != (int)i + 1)
			return hf_fail(eb, HF_EINVAL, "migration %zu has version %d, expected %zu", i,
				       m[i].version, i + 1);
	if ((rc = pragma_int(q, "user_version", &ver, eb)) != 0 ||
	    (rc = pragma_int(q, "application_id", &app, eb)) != 0)
		return rc;
	if (app != 0 && app != APPLICATION_ID)
		return hf_fail(eb, HF_ESTATE, "%s: not a hashflop-coord database (application_id "
			       "0x%llx)", q->path, (unsigned long long)app);
	if (ver > (int64_t)n)
		return hf_fail(eb, HF_ESTATE, "%s: database schema version %lld is newer than this "
			       "hashflop-coord knows (%zu): run the newer hashflop-coord that wrote "
			       "it, or restore a backup", q->path, (long long)ver, n);
	if (ver > 0 && app != APPLICATION_ID)
		return hf_fail(eb, HF_ESTATE, "%s: not a hashflop-coord database (schema version "
			       "%lld without hashflop's application_id)", q->path, (long long)ver);
	if (ver == 0) {
		rc = sqlite3_prepare_v2(q->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			tables = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
		if (rc != SQLITE_OK)
			rc = sq_fail(q, rc, eb, "reading the schema");
		sqlite3_finalize(st);
		if (rc != 0)
			return rc;
		if (tables > 0)
			return hf_fail(eb, HF_ESTATE, "%s: not a hashflop-coord database (it has "
				       "tables but no schema version)", q->path);
	}
	for (size_t i = (size_t)ver; i < n; i++)
		if ((rc = migrate_one(q, &m[i], eb)) != 0)
			return rc;
	q->version = (int)n;
	return 0;
}

static int prepare_all(hf_sqlite *q, hf_errbuf *eb)
{
	for (int i = 0; i < S_COUNT; i++) {
		int rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &q->st[i], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(q, rc, eb, "preparing statement %d", i);
	}
	return 0;
}

static void sq_close(void *impl)
{
	hf_sqlite *q = impl;
	if (!q)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db)
		sqlite3_close(q->db);
	if (q->ckpt)
		sqlite3_close(q->ckpt); /* the last connection: checkpoints and removes the WAL */
	pthread_cond_destroy(&q->turn);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static int sq_schema_version(void *impl)
{
	return ((hf_sqlite *)impl)->version;
}

/* ---- nodes ---- */

static int sq_node_add(void *impl, const hf_coord_node_rec *n, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_NODE_ADD];
	int rc;

	lock_caller(q);
	bind_text(st, 1, n->id);
	bind_text(st, 2, n->token_hash);
	bind_u64(st, 3, n->added_ms);
	bind_u64(st, 4, n->hold_until_ms);
	bind_text(st, 5, n->hold_by);
	rc = step_done(q, S_NODE_ADD, eb, "adding node");
	unlock_caller(q);
	if (rc == HF_ESTATE)
		return hf_fail(eb, HF_ESTATE, "node %s exists already", n->id);
	return rc;
}

/* Runs an UPDATE/DELETE statement id (bound already) that must touch one node. */
static int one_node(hf_sqlite *q, int id, const char *node, hf_errbuf *eb, const char *what)
{
	int rc = step_done(q, id, eb, what);
	if (rc == 0 && sqlite3_changes(q->db) == 0)
		rc = hf_fail(eb, HF_ENOTFOUND, "node %s: no such node", node);
	return rc;
}

static int sq_node_set_token(void *impl, const char *id, const char *token_hash, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	int rc;

	lock_caller(q);
	bind_text(q->st[S_NODE_TOKEN], 1, id);
	bind_text(q->st[S_NODE_TOKEN], 2, token_hash);
	rc = one_node(q, S_NODE_TOKEN, id, eb, "setting a node's token");
	unlock_caller(q);
	return rc;
}

static int sq_node_set_hold(void *impl, const char *id, uint64_t until_ms, const char *by,
			    hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	int rc;

	lock_caller(q);
	bind_text(q->st[S_NODE_HOLD], 1, id);
	bind_u64(q->st[S_NODE_HOLD], 2, until_ms);
	bind_text(q->st[S_NODE_HOLD], 3, by);
	rc = one_node(q, S_NODE_HOLD, id, eb, "setting a node's hold");
	unlock_caller(q);
	return rc;
}

static int sq_node_remove(void *impl, const char *id, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	int rc;

	lock_caller(q);
	bind_text(q->st[S_NODE_REMOVE], 1, id);
	rc = one_node(q, S_NODE_REMOVE, id, eb, "removing a node");
	unlock_caller(q);
	return rc;
}

static int sq_node_list(void *impl, hf_coord_node_rec **out, size_t *n, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_NODE_LIST];
	hf_coord_node_rec *arr = NULL;
	size_t len = 0, cap = 0;
	int rc, r = 0;

	lock_caller(q);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!grow((void **)&arr, &cap, len, sizeof *arr)) {
			r = hf_fail(eb, HF_ENOMEM, "node list: out of memory");
			break;
		}
		hf_coord_node_rec *nr = &arr[len++];
		memset(nr, 0, sizeof *nr);
		hf_strlcpy(nr->id, col_text(st, 0), sizeof nr->id);
		hf_strlcpy(nr->token_hash, col_text(st, 1), sizeof nr->token_hash);
		nr->added_ms = col_u64(st, 2);
		nr->hold_until_ms = col_u64(st, 3);
		hf_strlcpy(nr->hold_by, col_text(st, 4), sizeof nr->hold_by);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_fail(q, rc, eb, "listing nodes");
	stmt_done(st);
	unlock_caller(q);
	if (r != 0) {
		free(arr);
		return r;
	}
	*out = arr;
	*n = len;
	return 0;
}

/* ---- reports and acks ---- */

/* Steps a queued entry's statement; a foreign-key failure (node unknown) counts as skipped. */
static int step_entry(hf_sqlite *q, int id, size_t *skipped, bool *fk, hf_errbuf *eb,
		      const char *what)
{
	int rc = step_done(q, id, eb, what);
	*fk = rc == HF_ENOTFOUND;
	if (*fk) {
		(*skipped)++;
		return 0;
	}
	return rc;
}

static int sq_write_batch(void *impl, const hf_coord_qentry *e, size_t n, uint64_t history_ms,
			  uint64_t prune_before_ms, size_t *skipped, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	bool fk;
	int rc;

	*skipped = 0;
	lock_writer(q);
	if ((rc = begin(q, eb, "committing reports")) != 0)
		goto out;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!e[i].json) {
			sqlite3_stmt *st = q->st[S_ACK_PUT];
			bind_text(st, 1, e[i].node);
			bind_u64(st, 2, e[i].issued_ms);
			bind_u64(st, 3, e[i].wall_ms);
			rc = step_entry(q, S_ACK_PUT, skipped, &fk, eb, "recording an ack");
			continue;
		}
		sqlite3_stmt *st = q->st[S_LATEST_PUT];
		bind_text(st, 1, e[i].node);
		bind_u64(st, 2, e[i].wall_ms);
		bind_text(st, 3, e[i].json);
		rc = step_entry(q, S_LATEST_PUT, skipped, &fk, eb, "recording a report");
		if (rc != 0 || fk)
			continue;
		st = q->st[S_HIST_PUT];
		bind_text(st, 1, e[i].node);
		bind_u64(st, 2, e[i].wall_ms);
		bind_text(st, 3, e[i].json);
		bind_u64(st, 4, history_ms);
		rc = step_done(q, S_HIST_PUT, eb, "recording report history");
	}
	if (rc == 0) {
		bind_u64(q->st[S_HIST_PRUNE], 1, prune_before_ms);
		rc = step_done(q, S_HIST_PRUNE, eb, "pruning report history");
	}
	if (rc == 0)
		rc = commit(q, eb, "committing reports");
	else
		rollback(q);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static int sq_report_latest(void *impl, const char *id, char **json, uint64_t *wall_ms,
			    hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_LATEST_GET];
	int rc, r = 0;

	*json = NULL;
	lock_caller(q);
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*wall_ms = col_u64(st, 0);
		*json = strdup(col_text(st, 1));
		if (!*json)
			r = hf_fail(eb, HF_ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		r = hf_fail(eb, HF_ENOTFOUND, "node %s: no report", id);
	} else {
		r = sq_fail(q, rc, eb, "reading the latest report of %s", id);
	}
	stmt_done(st);
	unlock_caller(q);
	return r;
}

static int sq_report_history(void *impl, const char *id, uint64_t since_ms, size_t max,
			     json_t **out, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_HIST_GET];
	json_t *arr = json_array();
	json_error_t je;
	int rc, r = 0;

	if (!arr)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	lock_caller(q);
	bind_text(st, 1, id);
	bind_u64(st, 2, since_ms);
	sqlite3_bind_int64(st, 3, max == 0 || max > (size_t)INT64_MAX ? -1 : (sqlite3_int64)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t w = col_u64(st, 0);
		json_t *rep = json_loads(col_text(st, 1), JSON_DECODE_ANY, &je);
		if (!rep) {
			r = hf_fail(eb, HF_EIO, "%s: history of %s at %llu: stored JSON unreadable: "
				    "%s", q->path, id, (unsigned long long)w, je.text);
			break;
		}
		if (json_array_append_new(arr, json_pack("{s:I, s:o}", "wall_ms", (json_int_t)w,
							  "report", rep)) != 0) {
			r = hf_fail(eb, HF_ENOMEM, "out of memory");
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_fail(q, rc, eb, "reading the report history of %s", id);
	stmt_done(st);
	unlock_caller(q);
	if (r != 0) {
		json_decref(arr);
		return r;
	}
	*out = arr;
	return 0;
}

static int sq_ack_list(void *impl, uint64_t from, uint64_t to, hf_coord_ack_rec **out,
		       size_t *n, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_ACK_LIST];
	hf_coord_ack_rec *arr = NULL;
	size_t len = 0, cap = 0;
	int rc, r = 0;

	lock_caller(q);
	bind_u64(st, 1, from);
	bind_u64(st, 2, to);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!grow((void **)&arr, &cap, len, sizeof *arr)) {
			r = hf_fail(eb, HF_ENOMEM, "ack list: out of memory");
			break;
		}
		hf_coord_ack_rec *a = &arr[len++];
		memset(a, 0, sizeof *a);
		hf_strlcpy(a->node, col_text(st, 0), sizeof a->node);
		a->issued_ms = col_u64(st, 1);
		a->wall_ms = col_u64(st, 2);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_fail(q, rc, eb, "listing acks");
	stmt_done(st);
	unlock_caller(q);
	if (r != 0) {
		free(arr);
		return r;
	}
	*out = arr;
	*n = len;
	return 0;
}

/* ---- decisions ---- */

static int add_one(hf_sqlite *q, hf_coord_decision_rec *d, const char *reason, hf_errbuf *eb)
{
	sqlite3_stmt *st = q->st[S_DEC_ADD];
	int rc;

	bind_u64(st, 1, d->wall_ms);
	bind_text(st, 2, d->node);
	bind_u64(st, 3, d->issued_ms);
	bind_u64(st, 4, d->expires_ms);
	bind_text(st, 5, d->mode);
	bind_text(st, 6, d->authority == HF_COORD_BY_OPERATOR ? "operator" : "coordinator");
	bind_text(st, 7, d->source);
	bind_text(st, 8, d->keyids);
	bind_text(st, 9, d->payload_sha256);
	if (reason)
		bind_text(st, 10, reason);
	else
		sqlite3_bind_null(st, 10);
	bind_text(st, 11, d->envelope);
	bind_u64(st, 12, d->resigned_from);
	if ((rc = step_done(q, S_DEC_ADD, eb, "recording a decision")) != 0)
		return rc;
	d->seq = (uint64_t)sqlite3_last_insert_rowid(q->db);
	bind_text(q->st[S_DEC_CUR_PUT], 1, d->node);
	bind_u64(q->st[S_DEC_CUR_PUT], 2, d->seq);
	return step_done(q, S_DEC_CUR_PUT, eb, "recording the current decision");
}

static int sq_decision_add(void *impl, hf_coord_decision_rec *d, const char *const *reason_json,
			   size_t n, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	uint64_t top = 0;
	size_t i;
	int rc;

	lock_caller(q);
	if ((rc = begin(q, eb, "recording a decision")) != 0)
		goto out;
	for (i = 0; i < n && rc == 0; i++) {
		rc = add_one(q, &d[i], reason_json[i], eb);
		if (d[i].issued_ms > top)
			top = d[i].issued_ms;
	}
	if (rc == 0) {
		bind_u64(q->st[S_FLOOR_RAISE], 1, top);
		rc = step_done(q, S_FLOOR_RAISE, eb, "raising the floor");
	}
	if (rc == 0)
		rc = commit(q, eb, "committing decisions");
	else
		rollback(q);
	if (rc != 0)
		for (i = 0; i < n; i++)
			d[i].seq = 0;
out:
	unlock_caller(q);
	return rc;
}

static int read_decision(hf_sqlite *q, sqlite3_stmt *st, hf_coord_decision_rec *d,
			 hf_errbuf *eb)
{
	json_error_t je;

	memset(d, 0, sizeof *d);
	d->seq = col_u64(st, 0);
	d->wall_ms = col_u64(st, 1);
	hf_strlcpy(d->node, col_text(st, 2), sizeof d->node);
	d->issued_ms = col_u64(st, 3);
	d->expires_ms = col_u64(st, 4);
	hf_strlcpy(d->mode, col_text(st, 5), sizeof d->mode);
	d->authority = strcmp(col_text(st, 6), "operator") == 0 ? HF_COORD_BY_OPERATOR
								: HF_COORD_BY_COORDINATOR;
	hf_strlcpy(d->source, col_text(st, 7), sizeof d->source);
	hf_strlcpy(d->keyids, col_text(st, 8), sizeof d->keyids);
	hf_strlcpy(d->payload_sha256, col_text(st, 9), sizeof d->payload_sha256);
	d->resigned_from = col_u64(st, 12);
	if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
		d->reason = json_loads(col_text(st, 10), JSON_DECODE_ANY, &je);
		if (!d->reason)
			return hf_fail(eb, HF_EIO, "%s: decision %llu: stored reason unreadable: %s",
				       q->path, (unsigned long long)d->seq, je.text);
	}
	d->envelope = strdup(col_text(st, 11));
	if (!d->envelope)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	return 0;
}

/* Reads every row of st (bound) into a new array. q->mu held. */
static int read_decisions(hf_sqlite *q, sqlite3_stmt *st, hf_coord_decision_rec **out,
			  size_t *n, hf_errbuf *eb, const char *what)
{
	hf_coord_decision_rec *arr = NULL;
	size_t len = 0, cap = 0;
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!grow((void **)&arr, &cap, len, sizeof *arr)) {
			r = hf_fail(eb, HF_ENOMEM, "%s: out of memory", what);
			break;
		}
		r = read_decision(q, st, &arr[len], eb);
		len++;
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_fail(q, rc, eb, "%s", what);
	stmt_done(st);
	if (r != 0) {
		for (size_t i = 0; i < len; i++)
			hf_coord_decision_rec_clear(&arr[i]);
		free(arr);
		return r;
	}
	*out = arr;
	*n = len;
	return 0;
}

static int sq_decision_list(void *impl, uint64_t after_seq, uint64_t since_ms, size_t max,
			    hf_coord_decision_rec **out, size_t *n, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_DEC_LIST];
	int rc;

	lock_caller(q);
	bind_u64(st, 1, after_seq);
	bind_u64(st, 2, since_ms);
	sqlite3_bind_int64(st, 3, max == 0 || max > (size_t)INT64_MAX ? -1 : (sqlite3_int64)max);
	rc = read_decisions(q, st, out, n, eb, "listing decisions");
	unlock_caller(q);
	return rc;
}

static int sq_decision_current(void *impl, hf_coord_decision_rec **out, size_t *n,
			       hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	int rc;

	lock_caller(q);
	rc = read_decisions(q, q->st[S_DEC_CUR], out, n, eb, "reading the current decisions");
	unlock_caller(q);
	return rc;
}

/* ---- the floor ---- */

static int sq_floor_get(void *impl, uint64_t *issued_ms, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	sqlite3_stmt *st = q->st[S_FLOOR_GET];
	int rc, r = 0;

	lock_caller(q);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*issued_ms = col_u64(st, 0);
	else if (rc == SQLITE_DONE)
		*issued_ms = 0;
	else
		r = sq_fail(q, rc, eb, "reading the issued_ms floor");
	stmt_done(st);
	unlock_caller(q);
	return r;
}

static int sq_floor_set(void *impl, uint64_t issued_ms, hf_errbuf *eb)
{
	hf_sqlite *q = impl;
	int rc;

	lock_caller(q);
	bind_u64(q->st[S_FLOOR_RAISE], 1, issued_ms);
	/* One statement in autocommit mode: committed (and synced) when it returns. */
	rc = step_done(q, S_FLOOR_RAISE, eb, "raising the issued_ms floor");
	unlock_caller(q);
	return rc;
}

static void sq_maintain(void *impl)
{
	hf_sqlite *q = impl;
	int nlog = 0, nckpt = 0;
	if (q->ckpt)
		(void)sqlite3_wal_checkpoint_v2(q->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog,
						&nckpt);
}

/* The checkpoint connection: same file, same durability. */
static int open_ckpt(hf_sqlite *q, hf_errbuf *eb)
{
	int rc = sqlite3_open_v2(q->path, &q->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_handler(q->ckpt, busy_wait, &q->ckpt_busy_since_ms);
		rc = sqlite3_exec(q->ckpt, "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0",
				  NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		return hf_fail(eb, map_rc(rc), "%s: opening the checkpoint connection: %s", q->path,
			       q->ckpt ? sqlite3_errmsg(q->ckpt) : sqlite3_errstr(rc));
	return 0;
}

static const hf_coord_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.schema_version = sq_schema_version,
	.node_add = sq_node_add,
	.node_set_token = sq_node_set_token,
	.node_set_hold = sq_node_set_hold,
	.node_remove = sq_node_remove,
	.node_list = sq_node_list,
	.write_batch = sq_write_batch,
	.report_latest = sq_report_latest,
	.report_history = sq_report_history,
	.decision_add = sq_decision_add,
	.decision_list = sq_decision_list,
	.decision_current = sq_decision_current,
	.ack_list = sq_ack_list,
	.floor_get = sq_floor_get,
	.floor_set = sq_floor_set,
	.maintain = sq_maintain,
};

int hf_coord_sqlite_open_with(const hf_coord_store_opts *opts,
			      const hf_coord_sqlite_migration *migrations, size_t n_migrations,
			      hf_coord_store **out, hf_errbuf *eb)
{
	hf_sqlite *q;
	int rc;

	*out = NULL;
	if (!opts || !opts->path || !*opts->path)
		return hf_fail(eb, HF_EINVAL, "database: no path");
	if (strlen(opts->path) >= sizeof q->path - 8)
		return hf_fail(eb, HF_ETOOBIG, "database %s: path too long", opts->path);
	if ((rc = make_file(opts->path, eb)) != 0)
		return rc;
	q = calloc(1, sizeof *q);
	if (!q)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->turn, NULL);
	atomic_init(&q->callers_waiting, 0);
	hf_strlcpy(q->path, opts->path, sizeof q->path);
	rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_fail(q, rc, eb, "opening the database");
		goto fail_close;
	}
	if ((rc = set_pragmas(q, eb)) != 0 || (rc = migrate(q, migrations, n_migrations, eb)) != 0 ||
	    (rc = prepare_all(q, eb)) != 0 || (rc = open_ckpt(q, eb)) != 0)
		goto fail_close;
	return hf_coord_store_wrap(&sqlite_ops, q, opts, out, eb);
fail_close:
	sq_close(q);
	return rc;
}

int hf_coord_store_open_sqlite(const hf_coord_store_opts *opts, hf_coord_store **out,
			       hf_errbuf *eb)
{
	return hf_coord_sqlite_open_with(opts, hf_coord_sqlite_migrations,
					 hf_coord_sqlite_n_migrations, out, eb);
}
