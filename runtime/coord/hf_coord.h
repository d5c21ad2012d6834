/* hf_coord: the fleet coordinator: its record (hf_coord_store), the fleet state with long-poll
 * fan-out (hf_coord_fleet), automatic decisions signed with the coordinator's key, operator
 * relays verified with the nodes' own rules, node reports and acknowledgments, and the HTTP API
 * (hf_coord_api.c; the contract is in runtime/coord/README.md).
 *
 * Ordering: every issued_ms the coordinator signs is max(now, floor + 1), where the floor (the
 * highest issued_ms ever issued or relayed) is made durable in the store before the envelope
 * is served or answered, so neither a restart nor a clock stepped back issues a lower one.
 * Automatic envelopes are signed for one node each (a coordinator key never signs node "*"),
 * expire instruction_ttl_s after issue and are re-signed at half their TTL while the decision
 * stands (recorded as a decision with resigned_from).
 * Decision sources: a table of callbacks (hf_coord_source_ops) the program starts; each source
 * decides through hf_coord_decide() (or hf_coord_decide_many()): "api" (POST /v1/decisions)
 * and, when coord.json names a profit_file, "policy" (hf_coord_profit.h); a source may offer
 * views (GET /v1/feeds, GET /v1/policy) and /metrics lines through its ops.
 * Threading: hf_coord_new/serve/free from one owner thread; hf_coord_decide from any thread
 * (sources, handlers); the API's handlers run on the server's threads; one maintenance thread
 * re-signs and refreshes the node set from the store.
 */
#ifndef HF_COORD_H
#define HF_COORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_coord_config.h"
#include "hf_coord_fleet.h"
#include "hf_coord_store.h"
#include "hf_error.h"

typedef struct hf_coord hf_coord;

/* Opens the store (cfg->database), loads the signing key (private), the trust file and the
 * admin token, restores nodes, current envelopes and the floor. Nothing is served yet. */
int hf_coord_new(const hf_coord_config *cfg, hf_coord **out, hf_errbuf *eb);
/* Binds and serves the API; writes listen.port_file and <database dir>/coord-api.json. */
int hf_coord_serve(hf_coord *c, hf_errbuf *eb);
/* The bound port (after hf_coord_serve). */
uint16_t hf_coord_port(const hf_coord *c);
/* The connection cap in force (after hf_coord_serve). */
unsigned hf_coord_max_conns(const hf_coord *c);
/* Stops the sources, the server (parked polls answered 503), the maintenance thread; frees.
 * NULL accepted. */
void hf_coord_free(hf_coord *c);

/* ---- decisions ---- */
typedef struct hf_coord_decision_req {
	const char *node;          /* a node id, or "*": one envelope per registered node */
	const char *mode;          /* "idle", "mining", "inference" */
	const json_t *mining;      /* NULL or {"pools": [...]} (contract v1) */
	const json_t *inference;   /* NULL or {"models": [...]} */
	const json_t *reason;      /* NULL or free JSON kept for audit */
	unsigned ttl_s;            /* 0: instruction_ttl_s */
	const char *source;        /* the decision source's name ("api", "policy") */
} hf_coord_decision_req;

typedef struct hf_coord_decision_res {
	uint64_t *seq;             /* malloc'ed: the decisions recorded (free with _res_clear) */
	size_t nseq;
	uint64_t issued_ms;
	char (*held)[HF_COORD_NODE_ID_MAX + 1]; /* malloc'ed: nodes refused "held" */
	size_t nheld;
} hf_coord_decision_res;

/* Signs and records one envelope per node and publishes each (waking its polls). 0 when every
 * node was decided; HF_ESTATE when some (or all: nseq 0) were held; HF_ENOTFOUND for an unknown
 * node (or "*" with no nodes); HF_EINVAL for bad parameters (eb names the field); HF_EIO when
 * the record failed (nothing published for the nodes not yet recorded). */
int hf_coord_decide(hf_coord *c, const hf_coord_decision_req *req, hf_coord_decision_res *res,
		    hf_errbuf *eb);
void hf_coord_decision_res_clear(hf_coord_decision_res *res);

/* issue 15 (additive): n single-node decisions at once, each with its own node, mode, payloads
 * and reason (a policy evaluation that moves many nodes): all get one issued_ms (*issued_ms),
 * are signed on the signing threads and recorded in chunks (one transaction each), then
 * published. Per request: rc[i] = 0 (decided, seq[i] its record), HF_ESTATE (held by an
 * operator), HF_ENOTFOUND (unknown node), HF_EINVAL (a bad request or node "*"). Returns 0,
 * or HF_ENOMEM / HF_EIO when signing or the record failed (eb says why; the requests not yet
 * published keep rc[i] = HF_EIO). */
int hf_coord_decide_many(hf_coord *c, const hf_coord_decision_req *reqs, size_t n, int *rc,
			 uint64_t *seq, uint64_t *issued_ms, hf_errbuf *eb);

/* ---- decision sources ---- */
typedef struct hf_coord_source_ops {
	const char *name;
	/* Starts the source (e.g. its thread, which calls hf_coord_decide); *state is its own. */
	int (*start)(hf_coord *c, void **state, hf_errbuf *eb);
	/* Stops it: after this returns it calls nothing on c. */
	void (*stop)(void *state);
	/* issue 15 (additive; NULL when the source has none): a view of the source for the API
	 * (what: "feeds" for GET /v1/feeds, "policy" for GET /v1/policy): a new reference, or
	 * NULL when it has no such view. Called from the server's threads while it runs. */
	json_t *(*view)(void *state, const char *what, uint64_t now_ms);
	/* Its lines for /metrics (Prometheus text format), from the server's threads. */
	void (*metrics)(void *state, uint64_t now_ms, hf_buf *b);
} hf_coord_source_ops;

/* The "api" source: POST /v1/decisions (admin token) is answered while it runs. */
extern const hf_coord_source_ops hf_coord_source_api;

/* Starts a source (at most 8); it runs until hf_coord_free. */
int hf_coord_add_source(hf_coord *c, const hf_coord_source_ops *ops, hf_errbuf *eb);
/* issue 15 (additive): the view `what` of the first running source that has one (a new
 * reference), or NULL when none has. */
json_t *hf_coord_source_view(hf_coord *c, const char *what, uint64_t now_ms);

/* ---- for decision sources (issue 15, additive) ---- */
/* The configuration the coordinator runs with (immutable while it runs). */
const hf_coord_config *hf_coord_get_config(const hf_coord *c);
/* Every registered node as the fleet sees it now (hf_coord_fleet_node_views: sorted by id,
 * *out malloc'ed, free()). HF_ENOMEM. */
int hf_coord_node_views(hf_coord *c, uint64_t now_ms, hf_coord_node_view **out, size_t *n);

/* ---- tokens ---- */
#define HF_COORD_TOKEN_BYTES 32
/* Hex SHA-256 of the token bytes (what the store keeps). */
void hf_coord_token_hash(const char *token, size_t len, char out[HF_COORD_TOKEN_HASH_LEN + 1]);
/* A new token: HF_COORD_TOKEN_BYTES random bytes as hex. HF_ECRYPTO when no randomness. */
int hf_coord_token_new(char out[2 * HF_COORD_TOKEN_BYTES + 1], hf_errbuf *eb);

#endif
