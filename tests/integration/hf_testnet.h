/* hf_testnet: raw loopback sockets for tests that must speak below an HTTP client: half-sent
 * requests (slowloris), connections from a chosen source address, read-until-close.
 * Threading: reentrant; no state.
 */
#ifndef HF_TESTNET_H
#define HF_TESTNET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A socket connected to 127.0.0.1:port from address src (NULL: any, e.g. "127.0.0.2": all of
 * 127/8 is local on Linux); -1 on failure (errno set). */
int hf_test_raw_connect(const char *src, uint16_t port);
/* Sends all of s; false when the peer closed or reset. */
bool hf_test_send_str(int fd, const char *s);
/* Reads until the peer closes (or resets) or timeout_ms passes; returns the bytes read into
 * buf (cap bytes, NUL-terminated; excess is dropped), or -1 on timeout. */
ssize_t hf_test_read_to_close(int fd, char *buf, size_t cap, uint64_t timeout_ms);
/* The status of a raw HTTP/1.x response, or -1 if there is none. */
int hf_test_raw_status(const char *resp);
/* Descriptors process pid holds (0 when /proc cannot be read). */
unsigned hf_test_fds_of(pid_t pid);
/* Raises this process's soft RLIMIT_NOFILE to the hard limit; returns how many connections
 * fit, each taking per_conn descriptors in this process, keeping a reserve: want at most. */
int hf_test_conns_that_fit(int want, unsigned per_conn);

#endif
