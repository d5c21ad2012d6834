/* hf_coord_store: the coordinator's record behind a small interface of its own: nodes and their
 * token hashes, the latest report per node plus a downsampled history, every decision and
 * envelope issued or relayed, acknowledgments, operator holds and the issued_ms floor.
 *
 * SQLite is the embedded default (hf_coord_store_open_sqlite: WAL, foreign keys, a schema
 * version with migrations applied in order at open, synchronous=FULL for decisions); a later
 * issue adds PostgreSQL behind the same table of operations, so callers use only the functions
 * below and never SQL.
 * Durability: hf_coord_store_decision_add() and hf_coord_store_floor_set() return only once the
 * record is durable (committed): a decision answered to a caller survives kill -9 and a power
 * cut. Reports may be batched (committed within report_flush_ms); a crash loses at most that
 * much report history, never a decision, an acknowledgment older than report_flush_ms, or a
 * node.
 * Strings handed in are stored as given (the caller validates and cleans them; one longer
 * than its record field is refused with HF_ETOOBIG, an integer over INT64_MAX with HF_ERANGE);
 * JSON texts are stored as text and returned as new references. Failures: HF_EIO (the
 * database, with SQLite's message and what was being done), HF_ESTATE (exists already, a
 * database newer than this code or not ours), HF_ENOTFOUND, HF_EBUSY (locked by another
 * process past the busy timeout).
 * Threading: one hf_coord_store may be used from any thread (it serialises internally);
 * hf_coord_store_free from the owner once every caller is done.
 */
#ifndef HF_COORD_STORE_H
#define HF_COORD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_COORD_NODE_ID_MAX 63
#define HF_COORD_TOKEN_HASH_LEN 64 /* hex SHA-256 */

typedef struct hf_coord_store hf_coord_store;

typedef struct hf_coord_store_opts {
	const char *path;            /* database file (created with its directory's mode) */
	unsigned report_flush_ms;    /* reports committed at least this often (0: 1000) */
	unsigned history_interval_s; /* one history row per node per interval (0: 60) */
	unsigned history_keep_s;     /* history older than this is deleted (0: 7 days) */
} hf_coord_store_opts;

typedef struct hf_coord_node_rec {
	char id[HF_COORD_NODE_ID_MAX + 1];
	char token_hash[HF_COORD_TOKEN_HASH_LEN + 1];
	uint64_t added_ms;
	uint64_t hold_until_ms;      /* an operator hold in force until then (0: none) */
	char hold_by[64];            /* keyid(s) of the operator that set it */
} hf_coord_node_rec;

/* Who decided. */
typedef enum hf_coord_authority {
	HF_COORD_BY_OPERATOR = 0,    /* an operator-signed envelope relayed */
	HF_COORD_BY_COORDINATOR,     /* signed here, for a decision source (named in source) */
} hf_coord_authority;

typedef struct hf_coord_decision_rec {
	uint64_t seq;                /* assigned by decision_add: 1, 2, ... never reused */
	uint64_t wall_ms;            /* when recorded (0 on add: the store's clock, set) */
	char node[HF_COORD_NODE_ID_MAX + 1]; /* a node id or "*" */
	uint64_t issued_ms, expires_ms;
	char mode[16];
	hf_coord_authority authority;
	char source[64];             /* "operator", "api", "policy", ... */
	char keyids[160];            /* comma-separated keyids of the signatures */
	char payload_sha256[65];
	json_t *reason;              /* borrowed on add, owned (new reference) on read; NULL: none */
	const char *envelope;        /* borrowed on add; owned (malloc'ed) on read */
	uint64_t resigned_from;      /* the decision this one re-signs (0: a new decision) */
} hf_coord_decision_rec;

typedef struct hf_coord_ack_rec {
	char node[HF_COORD_NODE_ID_MAX + 1];
	uint64_t issued_ms;          /* what the node applied */
	uint64_t wall_ms;            /* when the coordinator learnt it */
} hf_coord_ack_rec;

int hf_coord_store_open_sqlite(const hf_coord_store_opts *opts, hf_coord_store **out,
			       hf_errbuf *eb);
/* The schema version in force (after migrations). */
int hf_coord_store_schema_version(hf_coord_store *s);

/* ---- nodes ---- */
/* HF_ESTATE when the node exists. */
int hf_coord_store_node_add(hf_coord_store *s, const hf_coord_node_rec *n, hf_errbuf *eb);
/* Replaces the token hash (a new token). HF_ENOTFOUND for an unknown node. */
int hf_coord_store_node_set_token(hf_coord_store *s, const char *id, const char *token_hash,
				  hf_errbuf *eb);
int hf_coord_store_node_set_hold(hf_coord_store *s, const char *id, uint64_t until_ms,
				 const char *by, hf_errbuf *eb);
/* Removes a node and its reports and acks (decisions stay: the audit log is append-only). */
int hf_coord_store_node_remove(hf_coord_store *s, const char *id, hf_errbuf *eb);
/* Every node, ordered by id: *out malloc'ed (free()), *n its length. */
int hf_coord_store_node_list(hf_coord_store *s, hf_coord_node_rec **out, size_t *n,
			     hf_errbuf *eb);

/* ---- reports ---- */
/* The node's latest report (report: the validated JSON, borrowed) at wall_ms; history keeps
 * one per history_interval_s. Queued: no SQL in the caller's thread (it waits only while
 * 65,536 entries are waiting for the writer); committed within report_flush_ms. */
int hf_coord_store_report_put(hf_coord_store *s, const char *id, uint64_t wall_ms,
			      const json_t *report, hf_errbuf *eb);
/* The same for a report the caller already holds as JSON text (the validated request body:
 * saves the ~15 us json_dumps of a 700-byte report in the caller's thread); json must be the
 * complete JSON text of len bytes (no NUL inside), stored as given. */
int hf_coord_store_report_put_text(hf_coord_store *s, const char *id, uint64_t wall_ms,
				   const char *json, size_t len, hf_errbuf *eb);
/* *report (new reference) and *wall_ms of the latest; HF_ENOTFOUND when none. */
int hf_coord_store_report_latest(hf_coord_store *s, const char *id, json_t **report,
				 uint64_t *wall_ms, hf_errbuf *eb);
/* History rows of a node with wall_ms >= since_ms, oldest first, at most max: a JSON array of
 * {"wall_ms", "report"} (new reference). */
int hf_coord_store_report_history(hf_coord_store *s, const char *id, uint64_t since_ms,
				  size_t max, json_t **out, hf_errbuf *eb);

/* ---- decisions, the audit log ---- */
/* Records a decision and its envelope durably; d->seq is set. Also raises the floor to
 * d->issued_ms in the same transaction. */
int hf_coord_store_decision_add(hf_coord_store *s, hf_coord_decision_rec *d, hf_errbuf *eb);
/* Records n decisions in one transaction (all or none, one sync to disk: a "*" decision
 * expanded to every node); each d[i].seq is set, in array order. */
int hf_coord_store_decision_add_many(hf_coord_store *s, hf_coord_decision_rec *d, size_t n,
				     hf_errbuf *eb);
/* Decisions with seq > after_seq and wall_ms >= since_ms, oldest first, at most max (0: no
 * limit): *out malloc'ed array (free each with hf_coord_decision_rec_clear, then free()). */
int hf_coord_store_decision_list(hf_coord_store *s, uint64_t after_seq, uint64_t since_ms,
				 size_t max, hf_coord_decision_rec **out, size_t *n, hf_errbuf *eb);
/* The latest decision (highest seq) for each node id and for "*" (what a restarted coordinator
 * serves), ordered by seq; removed nodes' decisions included (the caller filters). */
int hf_coord_store_decision_current(hf_coord_store *s, hf_coord_decision_rec **out, size_t *n,
				    hf_errbuf *eb);
void hf_coord_decision_rec_clear(hf_coord_decision_rec *d);

/* ---- acknowledgments ---- */
/* Records that node applied issued_ms (the first time it says so; repeats are ignored).
 * Queued and committed with the reports (within report_flush_ms); an ack or report for a node
 * unknown when it is committed is dropped and counted (hf_coord_store_stats). */
int hf_coord_store_ack_put(hf_coord_store *s, const hf_coord_ack_rec *a, hf_errbuf *eb);
/* Acks of the decisions with issued_ms in [from, to]: *out malloc'ed array. */
int hf_coord_store_ack_list(hf_coord_store *s, uint64_t from_issued_ms, uint64_t to_issued_ms,
			    hf_coord_ack_rec **out, size_t *n, hf_errbuf *eb);

/* ---- ordering ---- */
/* The highest issued_ms ever issued or relayed (0: none). */
int hf_coord_store_floor_get(hf_coord_store *s, uint64_t *issued_ms, hf_errbuf *eb);
/* Raises the floor (never lowers it) durably. */
int hf_coord_store_floor_set(hf_coord_store *s, uint64_t issued_ms, hf_errbuf *eb);

/* ---- the report queue ---- */
/* Commits the queued reports and acks now; HF_EIO also when a background commit failed since
 * the last call (that batch is lost; eb says why). */
int hf_coord_store_report_flush(hf_coord_store *s, hf_errbuf *eb);

typedef struct hf_coord_store_stats {
	uint64_t reports_queued;     /* report_put + ack_put calls accepted */
	uint64_t entries_written;    /* committed */
	uint64_t entries_dropped;    /* node unknown at commit */
	uint64_t entries_lost;       /* in batches whose commit failed */
	uint64_t batches, batch_failures;
	uint64_t last_batch_us;      /* how long the last commit took */
	size_t queue_len;            /* waiting now */
} hf_coord_store_stats;
void hf_coord_store_stats_get(hf_coord_store *s, hf_coord_store_stats *out);

/* Commits pending reports, closes. NULL accepted. */
void hf_coord_store_free(hf_coord_store *s);

#endif
