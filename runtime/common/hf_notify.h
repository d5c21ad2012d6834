/* hf_notify: the sd_notify(3) datagram protocol (READY=1, STOPPING=1, WATCHDOG=1, STATUS=...)
 * spoken directly to $NOTIFY_SOCKET, so the programs need no libsystemd at build time.
 * Without NOTIFY_SOCKET every call is a no-op returning 0.
 * Threading: reentrant.
 */
#ifndef HF_NOTIFY_H
#define HF_NOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1\nSTATUS=idle"); 0, or a negative HF_E* code. */
int hf_notify(const char *state);
/* The watchdog interval in microseconds from $WATCHDOG_USEC when it is meant for this process;
 * 0 when no watchdog is set. */
uint64_t hf_notify_watchdog_usec(void);

#endif
