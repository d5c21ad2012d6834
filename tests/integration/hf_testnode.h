/* hf_testnode: the real hashflopd in integration and perf tests: its node.json, a trust file
 * with one operator key, operator-signed instructions POSTed to its local API, and waits on
 * /v1/status with deadlines. Failures fail the calling Criterion test (cr_assert), so call these
 * from the test itself.
 * hf_testnode is a plain struct so a test can keep it on the stack and read the paths, the port
 * and the process; node_id is "n1", fleet_id "lab".
 * Threading: test code only; one owner per hf_testnode.
 */
#ifndef HF_TESTNODE_H
#define HF_TESTNODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_instr.h"
#include "hf_testproc.h"

/* What hf_testnode_start and hf_testnode_stop wait for the daemon at most. */
#define HF_TESTNODE_WAIT_MS 30000

typedef struct hf_testnode {
	hf_testproc *proc;          /* NULL while not running */
	char *dir;                  /* malloc'ed, under <build root>/test-tmp/ */
	char cfg[1024], log[1024], state[1024], trust[1024];
	int port;                   /* the local API's port of the last start */
	hf_key *op;                 /* the operator key in the trust file (hf_testnode_trust) */
	uint64_t last_issued_ms;    /* issued_ms of the last instruction made for this node */
} hf_testnode;

/* Zeroes n and writes <hf_test_tmpdir(name)>/node.json: API on 127.0.0.1 port 0, the given
 * initial mode and modes.drain_timeout_ms, the trust file <dir>/trust.json (written by
 * hf_testnode_trust; without it the node refuses every instruction), and `mining` (a JSON
 * object text) as the mining section when not NULL. */
void hf_testnode_init(hf_testnode *n, const char *name, const char *initial, const char *mining,
		      unsigned drain_timeout_ms);
/* hf_testnode_init for a node of a coordinator's fleet: node_id `id` (fleet "lab"), and
 * `control` (NULL, or text that continues node.json's control object after its trust_file:
 * ", \"coordinator_url\": \"http://...\", \"token_file\": \"...\""). The trust file is the
 * caller's to write (n->trust). hf_testnode_instruction and hf_testnode_instruct sign for "n1"
 * only. */
void hf_testnode_init_fleet(hf_testnode *n, const char *name, const char *id, const char *initial,
			    const char *control, const char *mining);
/* A new operator key in n->op and a trust file listing it (role operator, fleet_threshold 1). */
void hf_testnode_trust(hf_testnode *n);
/* Starts hashflopd with n's config (hf_test_start_hashflopd) and sets n->port; env (NULL or
 * NULL-terminated name, value pairs) is set for the daemon only. */
void hf_testnode_start(hf_testnode *n, const char *const *env);
/* SIGTERM; the daemon must exit with status 0 within HF_TESTNODE_WAIT_MS. */
void hf_testnode_stop(hf_testnode *n);
/* Kills the daemon if still running and frees what n holds. */
void hf_testnode_fini(hf_testnode *n);

/* GET path from the node's API: 200 and a JSON body, parsed (caller decrefs). A refused
 * connection (the daemon died) fails the test with its log. */
json_t *hf_testnode_get(const hf_testnode *n, const char *path);
/* The number at a dotted path under obj ("mining.shares.accepted"); -1 when absent. */
double hf_testnode_num(const json_t *obj, const char *path);
/* Polls /v1/status (every 50 ms) until mining.<path> >= want; the last status (caller decrefs).
 * Fails the test (with the node's log) when timeout_ms passes first. */
json_t *hf_testnode_wait_mining(const hf_testnode *n, const char *path, double want,
				uint64_t timeout_ms);
/* Polls /v1/status (every 20 ms) until mode is `mode`, phase "running" and last_switch.seq >
 * after_seq; that status (caller decrefs). Fails the test when timeout_ms passes first. */
json_t *hf_testnode_wait_mode(const hf_testnode *n, const char *mode, uint64_t after_seq,
			      uint64_t timeout_ms);

/* The figures of one "mining: drained in T ms (hashing stopped in H ms, F queued share(s)
 * flushed, U unanswered)" line of the node's log. */
typedef struct hf_testnode_drain {
	long long total_ms, hash_stop_ms, flush_ms, close_ms, flushed, unanswered;
} hf_testnode_drain;
/* Parses the index-th (from 0) such line of n's log into *d; false when the log has no such
 * line (yet) or it does not parse. */
bool hf_testnode_drain_line(const hf_testnode *n, unsigned index, hf_testnode_drain *d);

/* An instruction envelope for n signed with n->op (free() it): v 1, fleet "lab", node "n1",
 * issued_ms now (or one past the last one made for n), expires in 60 s, `mode`, then `extra`
 * (NULL, or text that continues the payload object: ",\"mining\":{...}"). */
char *hf_testnode_instruction(hf_testnode *n, const char *mode, const char *extra);
/* POSTs hf_testnode_instruction(n, mode, extra) to /v1/instruction: 200, and applied or still
 * pending when the node's apply wait ended (callers wait for the mode themselves). */
void hf_testnode_instruct(hf_testnode *n, const char *mode, const char *extra);

/* How many OpenCL devices this machine offers, as hashflopctl (the same discovery code as
 * hashflopd) lists them; 0 when it lists none or this build has no OpenCL, with why. */
size_t hf_testnode_opencl_devices(char *why, size_t whysz);

#endif
