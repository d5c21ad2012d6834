/* hf_mining_testhook: TEST HOOK, not a feature: scan faults injected into the mining worker's
 * hashing threads so tests can make a real backend fail or hang. Read once per mining run
 * (at start) from the environment:
 *   HASHFLOP_TEST_FAIL_SCAN=N    the N-th scan call of the run fails (HF_EIO, "test hook")
 *   HASHFLOP_TEST_FAIL_SCAN=N+   the N-th and every later scan call fails
 *   HASHFLOP_TEST_STALL_SCAN=N:MS  the N-th scan call first blocks MS ms, uninterruptibly
 *                                (like a kernel that hangs; a drain waits for it)
 * Scan calls are counted over all hashing threads and restarts of one run, from 1.
 *
 * Invariants: with neither variable set, `active` is false and hf_mining_testhook_scan() is
 * never reached (the caller tests `active`: one predictable branch per scan). A malformed
 * value is refused at start with the variable's name and what was expected.
 * Threading: parse on the starting thread; hf_mining_testhook_scan from any hashing thread.
 */
#ifndef HF_MINING_TESTHOOK_H
#define HF_MINING_TESTHOOK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_MINING_TESTHOOK_FAIL_ENV "HASHFLOP_TEST_FAIL_SCAN"
#define HF_MINING_TESTHOOK_STALL_ENV "HASHFLOP_TEST_STALL_SCAN"

typedef struct hf_mining_testhook {
	bool active;
	uint64_t fail_at;       /* 0: no failure */
	bool fail_after;        /* fail_at and every later call */
	uint64_t stall_at, stall_ms;
	atomic_uint_fast64_t calls;
} hf_mining_testhook;

/* Parses the two values (NULL: unset) into h (reset first). HF_ECONFIG on a malformed one. */
int hf_mining_testhook_parse(hf_mining_testhook *h, const char *fail, const char *stall,
			     hf_errbuf *eb);
/* hf_mining_testhook_parse of the two environment variables. */
int hf_mining_testhook_from_env(hf_mining_testhook *h, hf_errbuf *eb);
/* Counts one scan call: may block (stall); 0, or HF_EIO with the reason in eb (fail). */
int hf_mining_testhook_scan(hf_mining_testhook *h, hf_errbuf *eb);

#endif
