/* hf_teststall: a name lookup that never answers, inside the real resolver, for the Stratum
 * connect-deadline tests. glibc's DNS backend reads the file named by HOSTALIASES for a
 * single-label name before it asks any name server; when that file is a FIFO, getaddrinfo()
 * blocks in open() (and, once the test holds the write end, in read()) until the test lets it
 * go: a resolver that does not answer, without touching /etc/resolv.conf or the network.
 * Asserts with Criterion. Threading: the test's main thread.
 */
#ifndef HF_TESTSTALL_H
#define HF_TESTSTALL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hf_teststall {
	char dir[64], fifo[96];
	int wfd; /* the FIFO's write end once a lookup has it open */
} hf_teststall;

/* Points HOSTALIASES (for this process and its children) at a fresh FIFO. */
void hf_teststall_setup(hf_teststall *st);
/* True once a lookup has opened the FIFO (it then stays stuck in read()), waiting up to
 * wait_ms. */
bool hf_teststall_caught(hf_teststall *st, uint64_t wait_ms);
/* Lets every stuck lookup go (an empty alias file replaces the FIFO, the stuck read sees EOF),
 * waits until every resolver thread of hf_stratum_conn has finished, removes the files. */
void hf_teststall_release(hf_teststall *st);

#endif
