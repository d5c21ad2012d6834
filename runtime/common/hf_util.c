/* hf_util: clocks, bounded strings, hex and number parsing.
 * Threading: reentrant; no state.
 */
#include "hf_util.h"

#include "hf_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t hf_clock_ns(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hf_mono_ms(void) { return hf_clock_ns(CLOCK_MONOTONIC) / 1000000ull; }
uint64_t hf_mono_us(void) { return hf_clock_ns(CLOCK_MONOTONIC) / 1000ull; }
uint64_t hf_wall_ms(void) { return hf_clock_ns(CLOCK_REALTIME) / 1000000ull; }

void hf_abstime_after_ms(uint64_t ms, struct timespec *ts)
{
	uint64_t ns = hf_clock_ns(CLOCK_REALTIME) + ms * 1000000ull;
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

void hf_sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool hf_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t n = strlen(src);
	if (dstsz == 0)
		return false;
	if (n >= dstsz) {
		memcpy(dst, src, dstsz - 1);
		dst[dstsz - 1] = '\0';
		hf_utf8_trim(dst);   /* never half a character: JSON encoders refuse it */
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

void hf_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool hf_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
	if (hexlen != 2 * outlen)
		return false;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool hf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool hf_parse_hostport(const char *s, char *host, size_t hostsz, uint16_t *port)
{
	const char *colon;
	size_t hl;
	uint64_t p;

	if (!s)
		return false;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return false;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return false;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostsz || !hf_parse_u64(colon + 1, 0, 65535, &p))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return true;
}

bool hf_id_valid(const char *s)
{
	size_t n = 0;
	if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		if (!ok || n >= 63)
			return false;
	}
	return true;
}
