/* hf_util: small helpers several programs need: clocks, bounded strings, hex, numbers.
 * Threading: reentrant; no state.
 */
#ifndef HF_UTIL_H
#define HF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on CLOCK_MONOTONIC (for deadlines and durations). */
uint64_t hf_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC. */
uint64_t hf_mono_us(void);
/* Milliseconds since the Unix epoch on CLOCK_REALTIME (for timestamps others read). */
uint64_t hf_wall_ms(void);
/* Nanoseconds on any clock (CLOCK_THREAD_CPUTIME_ID, ...); 0 if the clock cannot be read. */
uint64_t hf_clock_ns(clockid_t id);
/* The CLOCK_REALTIME instant ms from now, as pthread_cond_timedwait() takes it. */
void hf_abstime_after_ms(uint64_t ms, struct timespec *ts);
/* Sleeps ms milliseconds, resuming after signals. */
void hf_sleep_ms(uint64_t ms);

/* Copies src into dst (size dstsz, NUL-terminated); false if src did not fit (dst is then
 * truncated, on a UTF-8 character boundary). */
bool hf_strlcpy(char *dst, const char *src, size_t dstsz);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void hf_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly 2*outlen hex digits (either case) from a string of length hexlen; false on a
 * wrong length or a non-hex digit. */
bool hf_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);

/* Parses a whole decimal string as uint64 within [min, max]; false otherwise. */
bool hf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses "HOST:PORT" or "[V6]:PORT" (port 0-65535) into host (size hostsz) and port. */
bool hf_parse_hostport(const char *s, char *host, size_t hostsz, uint16_t *port);

/* A node, fleet or key identifier: 1-63 characters of [A-Za-z0-9._-], starting alphanumeric. */
bool hf_id_valid(const char *s);

#endif
