/* hf_coord_store_priv: the table of operations a storage backend of hf_coord_store implements
 * (SQLite now, PostgreSQL later), and the test hook that opens SQLite with a given migration list.
 *
 * Invariants: hf_coord_store.c checks arguments (lengths, ranges, NULLs) before calling an
 * operation, owns the report/ack queue and its writer thread, and calls write_batch from one
 * flusher at a time (in queue order). A backend serialises its own connection(s): every
 * operation may be called from any thread. Operations that change decisions, the floor or
 * nodes commit before returning. Every failure fills eb with what was being done and the
 * backend's own message.
 * Threading: see above; a backend's impl pointer is owned by the hf_coord_store that holds it.
 */
#ifndef HF_COORD_STORE_PRIV_H
#define HF_COORD_STORE_PRIV_H

#include "hf_coord_store.h"

/* One queued write: a report (json set) or an acknowledgment (json NULL). */
typedef struct hf_coord_qentry {
	char node[HF_COORD_NODE_ID_MAX + 1];
	uint64_t wall_ms;
	uint64_t issued_ms;          /* acks only */
	char *json;                  /* reports only: compact JSON text, malloc'ed */
} hf_coord_qentry;

typedef struct hf_coord_store_ops {
	const char *name;            /* "sqlite" */
	void (*close)(void *impl);
	int (*schema_version)(void *impl);

	int (*node_add)(void *impl, const hf_coord_node_rec *n, hf_errbuf *eb);
	int (*node_set_token)(void *impl, const char *id, const char *token_hash, hf_errbuf *eb);
	int (*node_set_hold)(void *impl, const char *id, uint64_t until_ms, const char *by,
			     hf_errbuf *eb);
	int (*node_remove)(void *impl, const char *id, hf_errbuf *eb);
	int (*node_list)(void *impl, hf_coord_node_rec **out, size_t *n, hf_errbuf *eb);

	/* Writes n queued entries in one transaction: latest report (newest wall_ms wins), one
	 * history row per node per history_ms, acks (repeats ignored), then deletes history older
	 * than prune_before_ms. An entry whose node is unknown is skipped and counted in
	 * *skipped; any other failure rolls the whole batch back. */
	int (*write_batch)(void *impl, const hf_coord_qentry *e, size_t n, uint64_t history_ms,
			   uint64_t prune_before_ms, size_t *skipped, hf_errbuf *eb);
	/* *json malloc'ed. HF_ENOTFOUND when none. */
	int (*report_latest)(void *impl, const char *id, char **json, uint64_t *wall_ms,
			     hf_errbuf *eb);
	int (*report_history)(void *impl, const char *id, uint64_t since_ms, size_t max,
			      json_t **out, hf_errbuf *eb);

	/* Records d[0..n) in one transaction (all or none), sets each seq, raises the floor to
	 * the highest issued_ms; reason_json[i]: the compact text of d[i].reason or NULL. */
	int (*decision_add)(void *impl, hf_coord_decision_rec *d, const char *const *reason_json,
			    size_t n, hf_errbuf *eb);
	int (*decision_list)(void *impl, uint64_t after_seq, uint64_t since_ms, size_t max,
			     hf_coord_decision_rec **out, size_t *n, hf_errbuf *eb);
	int (*decision_current)(void *impl, hf_coord_decision_rec **out, size_t *n, hf_errbuf *eb);

	int (*ack_list)(void *impl, uint64_t from, uint64_t to, hf_coord_ack_rec **out, size_t *n,
			hf_errbuf *eb);
	int (*floor_get)(void *impl, uint64_t *issued_ms, hf_errbuf *eb);
	int (*floor_set)(void *impl, uint64_t issued_ms, hf_errbuf *eb);

	/* Housekeeping from the writer thread after each batch and at least every second (SQLite:
	 * a WAL checkpoint on a connection of its own, so no caller pays for one). May be NULL;
	 * failures are retried the next time. */
	void (*maintain)(void *impl);
} hf_coord_store_ops;

/* Wraps an opened backend into a store (starts the writer thread). On failure the backend is
 * closed. */
int hf_coord_store_wrap(const hf_coord_store_ops *ops, void *impl, const hf_coord_store_opts *opts,
			hf_coord_store **out, hf_errbuf *eb);

/* One schema migration: applied in one transaction when the database's version is below
 * version; versions are 1, 2, ... in order. */
typedef struct hf_coord_sqlite_migration {
	int version;
	const char *what;            /* one line for errors and the log */
	const char *sql;             /* statements, separated by ';' */
} hf_coord_sqlite_migration;

/* The SQLite backend's open, with the migration list given (the code's own list is
 * hf_coord_sqlite_migrations). Tests use it to stand for an older or a newer program. */
int hf_coord_sqlite_open_with(const hf_coord_store_opts *opts,
			      const hf_coord_sqlite_migration *migrations, size_t n_migrations,
			      hf_coord_store **out, hf_errbuf *eb);
extern const hf_coord_sqlite_migration hf_coord_sqlite_migrations[];
extern const size_t hf_coord_sqlite_n_migrations;

#endif
