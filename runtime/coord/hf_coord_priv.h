/* hf_coord_priv: the coordinator object shared by hf_coord.c (decisions, relays, re-signing,
 * maintenance) and hf_coord_api.c (the HTTP handlers). Not for other modules.
 * Threading: c->mu guards the floor, the counters and the refresh time; everything else is
 * set before serving and immutable after, or has its own lock (fleet, store).
 */
#ifndef HF_COORD_PRIV_H
#define HF_COORD_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include "hf_coord.h"
#include "hf_coord_fleet.h"
#include "hf_httpd.h"
#include "hf_instr.h"

#define HF_COORD_MAX_SOURCES 8
#define SIGN_THREADS 8          /* at most, for the envelopes of one batch */

enum { REP_REFUSED_AUTH, REP_REFUSED_INVALID, REP_REFUSED_OVERSIZE, REP_REFUSED_STORE, REP_REFUSED_N };

struct hf_coord {
	hf_coord_config cfg;
	hf_coord_store *store;
	hf_key *key;
	char keyid[HF_INSTR_KEYID_LEN + 1];
	hf_trust *trust;
	bool have_admin;
	char admin_hash[HF_COORD_TOKEN_HASH_LEN + 1];
	bool loopback;               /* listening on loopback: reads need no admin token */
	hf_coord_fleet *fleet;
	hf_httpd *http;
	char *tls_cert, *tls_key;    /* PEM texts, when TLS */
	uint64_t start_ms;
	unsigned sign_threads;       /* online CPUs, 1 to SIGN_THREADS */
	atomic_bool api_enabled;
	struct api_source *api;      /* the "api" source while it runs (hf_coord_api.c) */
	pthread_mutex_t mu;
	uint64_t floor_ms;
	uint64_t last_refresh_ms;    /* mono */
	uint64_t decisions_total[2]; /* by hf_coord_authority */
	uint64_t resigned_total, resign_failed_total, store_errors_total;
	uint64_t relay_refused[HF_REFUSE_COUNT];
	uint64_t reports_refused[REP_REFUSED_N];
	uint64_t decisions_held_total;
	const hf_coord_source_ops *src[HF_COORD_MAX_SOURCES];
	void *src_state[HF_COORD_MAX_SOURCES];
	size_t nsrc;
	pthread_mutex_t maint_mu;
	pthread_cond_t maint_cond;
	bool maint_stop, maint_started;
	pthread_t maint;
};

typedef struct hf_coord_relay_res {
	uint64_t seq, issued_ms;
	size_t nodes;                /* nodes for which it is now the effective envelope */
} hf_coord_relay_res;

/* Verifies an operator envelope for target (a node id, or "*" for the fleet) with the nodes'
 * rules and, when accepted, records, raises the floor, sets a hold and publishes it. 0; or
 * HF_EREFUSED with *why; HF_ENOTFOUND (unknown node); HF_EIO (the record failed). */
int hf_coord_relay(hf_coord *c, const char *target, const char *body, size_t len,
		   hf_coord_relay_res *res, hf_instr_refusal *why, hf_errbuf *eb);
/* 0 when token is id's; HF_ENOTFOUND / HF_EREFUSED (the node set is re-read from the store,
 * at most once a second, before a refusal). */
int hf_coord_node_auth(hf_coord *c, const char *id, const char *token, size_t len);
/* id is a registered node (the node set re-read, at most once a second, before a no). */
bool hf_coord_known_node(hf_coord *c, const char *id);
/* Re-reads the node set from the store (node add/remove by the CLI). */
int hf_coord_refresh_nodes(hf_coord *c, hf_errbuf *eb);
/* The coordinator's own counters in the Prometheus text format. */
void hf_coord_metrics(hf_coord *c, hf_buf *b);
/* issue 15: the running sources' lines for /metrics (their ops->metrics). */
void hf_coord_sources_metrics(hf_coord *c, uint64_t now_ms, hf_buf *b);

/* hf_coord_api.c: the route table. */
extern const hf_http_route hf_coord_routes[];
extern const size_t hf_coord_nroutes;

#endif
