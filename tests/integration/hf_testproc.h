/* hf_testproc: starting the real programs in integration tests and waiting on conditions with a
 * deadline (never fixed sleeps).
 * Threading: test code only; one owner per hf_testproc.
 */
#ifndef HF_TESTPROC_H
#define HF_TESTPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct hf_testproc hf_testproc;

/* Starts argv[0] (a path) with argv; stdout and stderr go to log_path (appended). NULL on
 * failure. The child gets SIGKILL if the test process dies (PR_SET_PDEATHSIG). */
hf_testproc *hf_testproc_start(const char *const argv[], const char *log_path);
pid_t hf_testproc_pid(const hf_testproc *p);
int hf_testproc_signal(hf_testproc *p, int sig);
/* Waits for the child to exit; true with its wait status in *status, false on timeout. */
bool hf_testproc_wait_exit(hf_testproc *p, uint64_t timeout_ms, int *status);
/* SIGKILLs the child if still running, reaps it, frees. NULL accepted. */
void hf_testproc_free(hf_testproc *p);
/* Sends sig, waits up to timeout_ms for the exit, then frees p (hf_testproc_free). The wait
 * status, or -1 when the signal could not be sent or the child did not exit in time. */
int hf_testproc_stop(hf_testproc *p, int sig, uint64_t timeout_ms);

/* Starts the real hashflopd (<build root>/runtime/node/hashflopd --config config; output
 * appended to log) after deleting <state_dir>/api.json, waits up to timeout_ms for the daemon
 * to write that file again and sets *port to the API port in it. NULL on failure, with the
 * reason in err (the start failed, no api.json in time, api.json not JSON, a port <= 0, or a
 * pid other than the child's); the child is killed then. */
hf_testproc *hf_test_start_hashflopd(const char *config, const char *log, const char *state_dir,
				     uint64_t timeout_ms, int *port, char *err, size_t err_len);

/* Polls (every 10 ms) until path exists; false on timeout. */
bool hf_test_wait_file(const char *path, uint64_t timeout_ms);
/* Polls until the file at path contains needle; false on timeout. */
bool hf_test_wait_log(const char *path, const char *needle, uint64_t timeout_ms);
/* $HF_BUILD_ROOT (set by meson test) or "." */
const char *hf_test_build_root(void);
/* A new empty directory under <build root>/test-tmp/ (malloc'ed path). */
char *hf_test_tmpdir(const char *name);
/* Reads a whole small file (malloc'ed, NUL-terminated) or NULL. */
char *hf_test_read_file(const char *path);
/* Writes a self-signed P-256 certificate for 127.0.0.1 (CN and subjectAltName IP, 1 day) to
 * cert and its private key to key, with the openssl command line. false when it failed. */
bool hf_test_self_signed_cert(const char *cert, const char *key);
/* The same in a new hf_test_tmpdir(name), both files also read (PEM texts). */
typedef struct hf_test_tls {
	char *dir;
	char cert[1024], key[1024];
	char *cert_pem, *key_pem;
} hf_test_tls;
bool hf_test_tls_make(hf_test_tls *t, const char *name);
void hf_test_tls_free(hf_test_tls *t);

/* One HTTP exchange with libcurl (10 s timeout). body may be NULL; body_len bytes are sent.
 * false if the transfer itself failed (connection refused, timeout). */
typedef struct hf_test_reply {
	long status;
	char body[65536];
	size_t len;
	char headers[8192];
	size_t hlen;
} hf_test_reply;

bool hf_test_http(const char *method, const char *url, const void *body, size_t body_len,
		  hf_test_reply *r);

#endif
