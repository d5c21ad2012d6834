/* hf_testpool: the lab pool (hashflop-pool) in integration tests: start on 127.0.0.1, kill,
 * stop, and its admin endpoint (faults, stats). Failures fail the calling Criterion test
 * (cr_assert, or cr_expect where noted), so call these from the test itself.
 * hf_testpool is a plain struct so a test can zero it on the stack, preset dir and read the
 * ports and the log path; start it again after hf_testpool_kill to bring it back.
 * Threading: test code only; one owner per hf_testpool.
 */
#ifndef HF_TESTPOOL_H
#define HF_TESTPOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_testproc.h"

typedef struct hf_testpool {
	hf_testproc *proc;       /* NULL while not running */
	char *dir;               /* malloc'ed; made by the first start unless preset */
	char log[1024], port_file[1024], admin_file[1024];
	uint16_t port, admin;    /* Stratum and admin ports of the last start */
} hf_testpool;

/* Starts hashflop-pool (<build root>/stratum/hashflop-pool) with --listen 127.0.0.1:port
 * (0: ephemeral), --port-file, --admin-port-file and --difficulty difficulty in p->dir
 * (hf_test_tmpdir(name) if NULL), then the NULL-terminated extra options (NULL: none); waits
 * up to wait_ms for both port files and reads the ports. Output goes to <dir>/pool.log. */
void hf_testpool_start(hf_testpool *p, const char *name, uint16_t port, const char *difficulty,
		       const char *const *extra, uint64_t wait_ms);
/* SIGKILLs the pool (no clean exit); p->dir is kept for a later start. */
void hf_testpool_kill(hf_testpool *p);
/* If running: SIGTERM and cr_expect an exit within wait_ms (and, with check_exit, exit
 * status 0); then frees p->dir. */
void hf_testpool_free(hf_testpool *p, uint64_t wait_ms, bool check_exit);

/* One admin request (method, path) that must answer 200; the body, malloc'ed. */
char *hf_testpool_admin(const hf_testpool *p, const char *method, const char *path);
/* POST /fault/<what> ("new_block", "reconnect", "stall?on=1", "drop_answer?count=2" ...). */
void hf_testpool_fault(const hf_testpool *p, const char *what);
/* POST /fault/<kind> with args (a JSON object of fault arguments such as {"text": ...,
 * "count": 1}; reference stolen) as the body; must answer 200. */
void hf_testpool_fault_args(const hf_testpool *p, const char *kind, json_t *args);
/* GET /stats, parsed (caller decrefs). */
json_t *hf_testpool_stats(const hf_testpool *p);
/* The integer stats[key] (or stats[key][sub] when sub is not NULL); 0 when absent. */
long long hf_testpool_stat(const hf_testpool *p, const char *key, const char *sub);

#endif
