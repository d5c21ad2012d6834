/* Unit tests for hf_util: hex, numbers, host:port, identifiers, bounded copies, clocks. */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_util.h"

Test(util, hex_round_trip_and_rejects)
{
	uint8_t in[4] = { 0x00, 0xab, 0xFF, 0x10 }, out[4];
	char hex[9];
	hf_hex_encode(in, 4, hex);
	cr_assert_str_eq(hex, "00abff10");
	cr_assert(hf_hex_decode("00ABff10", 8, out, 4));
	cr_assert_eq(memcmp(in, out, 4), 0);
	cr_assert_not(hf_hex_decode("00abff1", 7, out, 4));
	cr_assert_not(hf_hex_decode("00abff1g", 8, out, 4));
	cr_assert_not(hf_hex_decode("00abff10", 8, out, 3));
}

Test(util, parse_u64)
{
	uint64_t v;
	cr_assert(hf_parse_u64("0", 0, 10, &v) && v == 0);
	cr_assert(hf_parse_u64("18446744073709551615", 0, UINT64_MAX, &v) && v == UINT64_MAX);
	cr_assert_not(hf_parse_u64("18446744073709551616", 0, UINT64_MAX, &v));
	cr_assert_not(hf_parse_u64("-1", 0, 10, &v));
	cr_assert_not(hf_parse_u64(" 1", 0, 10, &v));
	cr_assert_not(hf_parse_u64("1x", 0, 10, &v));
	cr_assert_not(hf_parse_u64("11", 0, 10, &v));
	cr_assert_not(hf_parse_u64("", 0, 10, &v));
	cr_assert_not(hf_parse_u64(NULL, 0, 10, &v));
}

Test(util, hostport)
{
	char host[64];
	uint16_t port;
	cr_assert(hf_parse_hostport("127.0.0.1:3333", host, sizeof host, &port));
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 3333);
	cr_assert(hf_parse_hostport("[::1]:80", host, sizeof host, &port));
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 80);
	cr_assert(hf_parse_hostport("pool.example:0", host, sizeof host, &port));
	cr_assert_not(hf_parse_hostport("::1:80", host, sizeof host, &port));
	cr_assert_not(hf_parse_hostport("host", host, sizeof host, &port));
	cr_assert_not(hf_parse_hostport("host:65536", host, sizeof host, &port));
	cr_assert_not(hf_parse_hostport(":80", host, sizeof host, &port));
	cr_assert_not(hf_parse_hostport("averyveryverylonghostname.example:1", host, 8, &port));
}

Test(util, identifiers)
{
	cr_assert(hf_id_valid("node-01"));
	cr_assert(hf_id_valid("a"));
	cr_assert(hf_id_valid("rack3.node_7"));
	cr_assert_not(hf_id_valid(""));
	cr_assert_not(hf_id_valid("-lead"));
	cr_assert_not(hf_id_valid("has space"));
	cr_assert_not(hf_id_valid("slash/"));
	cr_assert_not(hf_id_valid(NULL));
	char long_id[80];
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	cr_assert_not(hf_id_valid(long_id));
	long_id[63] = '\0';
	cr_assert(hf_id_valid(long_id));
}

Test(util, strlcpy_truncates_and_reports)
{
	char b[4];
	cr_assert(hf_strlcpy(b, "abc", sizeof b));
	cr_assert_str_eq(b, "abc");
	cr_assert_not(hf_strlcpy(b, "abcd", sizeof b));
	cr_assert_str_eq(b, "abc");
}

Test(util, clocks_move_forward)
{
	uint64_t a = hf_mono_ms(), w = hf_wall_ms();
	hf_sleep_ms(20);
	cr_assert_geq(hf_mono_ms() - a, 20);
	cr_assert_gt(w, 1700000000000ull);
}

Test(util, abstime_and_cpu_clock)
{
	struct timespec ts;
	uint64_t before = hf_clock_ns(CLOCK_REALTIME);
	hf_abstime_after_ms(1500, &ts);
	uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	cr_assert_geq(at, before + 1500000000ull);
	cr_assert_lt(at, before + 2500000000ull);
	cr_assert_lt(ts.tv_nsec, 1000000000L);
	cr_assert_gt(hf_clock_ns(CLOCK_THREAD_CPUTIME_ID), 0);
	cr_assert_eq(hf_clock_ns((clockid_t)-12345), 0, "an unreadable clock reads 0");
}
