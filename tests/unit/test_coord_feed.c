/* Unit tests for hf_coord_feed (sans-I/O): RFC 6901 pointers (the RFC's own examples, escapes,
 * indices, "-", malformed pointers), one fetch result applied to a feed's state (every failure
 * with its reason and code, strings holding decimals, recovery), staleness by age with a
 * synthetic clock, schedules across midnight and UTC offsets, the halving at known heights, the
 * "feeds" section's strict parser (defaults, the three forms, every refusal naming its field,
 * the plain-http rule) and its JSON round trip, and the market snapshot. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_coord_feed.h"
#include "hf_text.h"

/* ---- RFC 6901 ---- */

static const char *rfc_doc =
	"{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3, \"g|h\": 4,"
	" \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8}";

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	cr_assert_not_null(j, "%s: %s", text, je.text);
	return j;
}

static const json_t *resolve_ok(const json_t *doc, const char *ptr)
{
	const json_t *out = NULL;
	hf_errbuf eb;
	int r = hf_coord_json_pointer(doc, ptr, &out, &eb);
	cr_assert_eq(r, 0, "%s: %d %s", ptr, r, eb.msg);
	cr_assert_not_null(out);
	return out;
}

static void resolve_fails(const json_t *doc, const char *ptr, int code, const char *needle)
{
	const json_t *out = (const json_t *)1;
	hf_errbuf eb;
	int r = hf_coord_json_pointer(doc, ptr, &out, &eb);
	cr_assert_eq(r, code, "%s: got %d (%s)", ptr, r, eb.msg);
	cr_assert_null(out);
	cr_assert(strstr(eb.msg, needle), "%s: \"%s\" lacks \"%s\"", ptr, eb.msg, needle);
}

Test(coord_feed, pointer_rfc6901_examples)
{
	json_t *doc = load(rfc_doc);
	const struct {
		const char *ptr;
		long v;
	} ints[] = { { "/", 0 }, { "/a~1b", 1 }, { "/c%d", 2 }, { "/e^f", 3 }, { "/g|h", 4 },
		     { "/i\\j", 5 }, { "/k\"l", 6 }, { "/ ", 7 }, { "/m~0n", 8 } };

	cr_assert_eq(resolve_ok(doc, ""), doc);
	cr_assert(json_is_array(resolve_ok(doc, "/foo")));
	cr_assert_str_eq(json_string_value(resolve_ok(doc, "/foo/0")), "bar");
	cr_assert_str_eq(json_string_value(resolve_ok(doc, "/foo/1")), "baz");
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		cr_assert_eq(json_integer_value(resolve_ok(doc, ints[i].ptr)), ints[i].v, "%s",
			     ints[i].ptr);
	json_decref(doc);
}

Test(coord_feed, pointer_escapes_apply_in_order)
{
	/* "~01" is "~1" (not "/"): ~0 is decoded after ~1, per RFC 6901 section 4. */
	json_t *doc = load("{\"~1\": 1, \"/\": 2, \"~\": 3, \"a\": {\"b~c/d\": {\"\": 4}}}");
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/~01")), 1);
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/~1")), 2);
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/~0")), 3);
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/a/b~0c~1d/")), 4);
	json_decref(doc);
}

Test(coord_feed, pointer_arrays_and_misses)
{
	json_t *doc = load("{\"a\": [10, [20, 21], {\"x\": 1}], \"s\": \"str\", \"n\": null}");

	cr_assert_eq(json_integer_value(resolve_ok(doc, "/a/0")), 10);
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/a/1/1")), 21);
	cr_assert_eq(json_integer_value(resolve_ok(doc, "/a/2/x")), 1);
	cr_assert(json_is_null(resolve_ok(doc, "/n")));
	resolve_fails(doc, "/a/01", HF_ENOTFOUND, "\"01\" is not an array index");
	resolve_fails(doc, "/a/-", HF_ENOTFOUND, "\"-\" designates no element");
	resolve_fails(doc, "/a/3", HF_ENOTFOUND, "index 3 out of range (3 elements)");
	resolve_fails(doc, "/a/+1", HF_ENOTFOUND, "not an array index");
	resolve_fails(doc, "/a/1e0", HF_ENOTFOUND, "not an array index");
	resolve_fails(doc, "/a/", HF_ENOTFOUND, "\"\" is not an array index");
	resolve_fails(doc, "/a/99999999999999999999999", HF_ENOTFOUND, "not an array index");
	resolve_fails(doc, "/USD", HF_ENOTFOUND, "no member \"USD\"");
	resolve_fails(doc, "/a/2/y", HF_ENOTFOUND, "no member \"y\"");
	resolve_fails(doc, "/s/0", HF_ENOTFOUND, "a string holds no members");
	resolve_fails(doc, "/n/x", HF_ENOTFOUND, "null holds no members");
	resolve_fails(doc, "a", HF_EINVAL, "start with /");
	resolve_fails(doc, "/a~2", HF_EINVAL, "~ at byte 2");
	resolve_fails(doc, "/a~", HF_EINVAL, "~ at byte 2");
	json_decref(doc);
}

Test(coord_feed, pointer_token_in_message_is_cleaned)
{
	json_t *doc = load("{}");
	const json_t *out;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_json_pointer(doc, "/a\x1b[31mb", &out, &eb), HF_ENOTFOUND);
	cr_assert(strstr(eb.msg, "a?[31mb"), "%s", eb.msg);
	json_decref(doc);
}

/* ---- one fetch result ---- */

static hf_coord_feed_spec url_spec(const char *pointer, double scale)
{
	hf_coord_feed_spec s;
	memset(&s, 0, sizeof s);
	s.kind = HF_FEED_URL;
	snprintf(s.url, sizeof s.url, "https://example.test/x");
	snprintf(s.pointer, sizeof s.pointer, "%s", pointer);
	s.scale = scale;
	s.refresh_s = 60;
	s.max_age_s = 600;
	s.timeout_s = 10;
	s.max_body = 1024;
	return s;
}

static void observe_fails(const hf_coord_feed_spec *s, const char *terr, long status,
			  const char *body, int code, const char *needle)
{
	hf_coord_feed_state st;
	double v = -1;
	char why[256];

	memset(&st, 0, sizeof st);
	int r = hf_coord_feed_observe(s, &st, 1000, terr, status, body, body ? strlen(body) : 0);
	cr_assert_eq(r, code, "%s: got %d (%s)", body ? body : terr, r, st.why);
	cr_assert(st.failing);
	cr_assert_not(st.have);
	cr_assert_eq(st.fail_total, 1);
	cr_assert_eq(st.why_ms, 1000);
	cr_assert(strstr(st.why, needle), "\"%s\" lacks \"%s\"", st.why, needle);
	cr_assert(hf_utf8_valid(st.why, strlen(st.why)));
	cr_assert_not(hf_coord_feed_value(s, &st, 13000, &v, why, sizeof why));
	cr_assert(strstr(why, needle) && strstr(why, "(since 12 s)"), "%s", why);
	cr_assert_eq(v, -1, "a stale feed wrote a value");
}

Test(coord_feed, observe_reads_the_mempool_shapes)
{
	hf_coord_feed_spec price = url_spec("/USD", 1), diff = url_spec("/currentDifficulty", 1);
	hf_coord_feed_spec height = url_spec("", 1), fees = url_spec("/totalFee", 1e-8 / 144);
	hf_coord_feed_state st;
	double v;
	char why[64];
	const char *rs = "{\"startBlock\": 870000, \"endBlock\": 870143, \"totalReward\": "
			 "\"47059846437\", \"totalFee\": \"2059846437\", \"totalTx\": \"512345\"}";

	memset(&st, 0, sizeof st);
	const char *pr = "{\"time\": 1700000000, \"USD\": 97123, \"EUR\": 90000}";
	cr_assert_eq(hf_coord_feed_observe(&price, &st, 5000, NULL, 200, pr, strlen(pr)), 0, "%s",
		     st.why);
	cr_assert(hf_coord_feed_value(&price, &st, 5000, &v, why, sizeof why));
	cr_assert_eq(v, 97123);
	cr_assert_eq(st.value_ms, 5000);
	cr_assert_eq(st.ok_total, 1);
	memset(&st, 0, sizeof st);
	const char *hr = "{\"hashrates\": [], \"difficulty\": [], \"currentHashrate\": "
			 "7.5e20, \"currentDifficulty\": 102289407543323.8}";
	cr_assert_eq(hf_coord_feed_observe(&diff, &st, 1, NULL, 200, hr, strlen(hr)), 0);
	cr_assert_float_eq(st.value, 102289407543323.8, 1);
	memset(&st, 0, sizeof st);
	cr_assert_eq(hf_coord_feed_observe(&height, &st, 1, NULL, 200, "870144", 6), 0, "%s",
		     st.why);
	cr_assert_eq(st.value, 870144);
	memset(&st, 0, sizeof st);
	cr_assert_eq(hf_coord_feed_observe(&fees, &st, 1, NULL, 200, rs, strlen(rs)), 0, "%s",
		     st.why);
	cr_assert_float_eq(st.value, 2059846437e-8 / 144, 1e-12);
}

Test(coord_feed, observe_refuses_every_bad_fetch)
{
	hf_coord_feed_spec s = url_spec("/USD", 1);
	char big[2048];

	observe_fails(&s, "timeout after 10 s", 0, NULL, HF_EIO, "timeout after 10 s");
	observe_fails(&s, NULL, 503, "", HF_EREFUSED, "HTTP 503");
	observe_fails(&s, NULL, 404, "{\"error\": \"no\nsuch\"}", HF_EREFUSED,
		      "HTTP 404: {\"error\": \"no?such\"}");
	observe_fails(&s, NULL, 301, "", HF_EREFUSED, "HTTP 301");
	observe_fails(&s, NULL, 200, "{\"USD\": ", HF_EPARSE, "bad JSON at byte ");
	observe_fails(&s, NULL, 200, "", HF_EPARSE, "bad JSON");
	observe_fails(&s, NULL, 200, "{\"USD\": NaN}", HF_EPARSE, "bad JSON");
	observe_fails(&s, NULL, 200, "{\"USD\": 1e999}", HF_EPARSE, "bad JSON");
	observe_fails(&s, NULL, 200, "{\"EUR\": 1}", HF_ENOTFOUND, "pointer /USD: no member \"USD\"");
	observe_fails(&s, NULL, 200, "{\"USD\": \"NaN\"}", HF_ERANGE, "\"NaN\" is not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \"inf\"}", HF_ERANGE, "not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \"0x10\"}", HF_ERANGE, "not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \" 12\"}", HF_ERANGE, "not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \"12 \"}", HF_ERANGE, "not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \"\"}", HF_ERANGE, "not a decimal");
	observe_fails(&s, NULL, 200, "{\"USD\": \"1e999\"}", HF_ERANGE, "value is infinite");
	observe_fails(&s, NULL, 200, "{\"USD\": -5}", HF_ERANGE, "value is negative (-5)");
	observe_fails(&s, NULL, 200, "{\"USD\": \"-5\"}", HF_ERANGE, "negative");
	observe_fails(&s, NULL, 200, "{\"USD\": null}", HF_ERANGE, "value is null, not a number");
	observe_fails(&s, NULL, 200, "{\"USD\": true}", HF_ERANGE, "a boolean, not a number");
	observe_fails(&s, NULL, 200, "{\"USD\": {}}", HF_ERANGE, "an object, not a number");
	memset(big, ' ', sizeof big);
	memcpy(big, "{\"USD\": 1}", 10);
	big[sizeof big - 1] = '\0';
	observe_fails(&s, NULL, 200, big, HF_ETOOBIG, "body over max_body (1024 bytes)");
	hf_coord_feed_spec huge = url_spec("/USD", 1e300);
	observe_fails(&huge, NULL, 200, "{\"USD\": 1e10}", HF_ERANGE, "value is infinite");
}

Test(coord_feed, observe_decimal_strings)
{
	hf_coord_feed_spec s = url_spec("/v", 1);
	const struct {
		const char *body;
		double v;
	} ok[] = { { "{\"v\": \"0\"}", 0 }, { "{\"v\": \"2059846437\"}", 2059846437.0 },
		   { "{\"v\": \"1.5e3\"}", 1500 }, { "{\"v\": \"0.25\"}", 0.25 },
		   { "{\"v\": \"12E-1\"}", 1.2 }, { "{\"v\": -0.0}", 0 } };
	const char *bad[] = { "{\"v\": \"01\"}", "{\"v\": \"1.\"}", "{\"v\": \".5\"}",
			      "{\"v\": \"+1\"}", "{\"v\": \"1e\"}", "{\"v\": \"1,5\"}",
			      "{\"v\": \"infinity\"}", "{\"v\": \"1 2\"}" };

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		hf_coord_feed_state st = { 0 };
		cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, NULL, 200, ok[i].body,
						   strlen(ok[i].body)), 0, "%s: %s", ok[i].body, st.why);
		cr_assert_float_eq(st.value, ok[i].v, 1e-9, "%s", ok[i].body);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hf_coord_feed_state st = { 0 };
		cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, NULL, 200, bad[i], strlen(bad[i])),
			     HF_ERANGE, "%s accepted", bad[i]);
	}
}

Test(coord_feed, observe_cleans_and_caps_outside_text)
{
	hf_coord_feed_spec s = url_spec("/USD", 1);
	hf_coord_feed_state st = { 0 };
	char terr[1000];

	memset(terr, 'x', sizeof terr);
	memcpy(terr, "peer said \x1b[2J\n<0>forged", 25);
	terr[sizeof terr - 1] = '\0';
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, terr, 0, NULL, 0), HF_EIO);
	cr_assert(strlen(st.why) < HF_FEED_WHY_MAX);
	cr_assert(strncmp(st.why, "peer said ?[2J?<0>forged", 24) == 0, "%s", st.why);
	/* Invalid UTF-8 in a body snippet and in a string value. */
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 2, NULL, 500, "\xff\xfe oops", 7), HF_EREFUSED);
	cr_assert(hf_utf8_valid(st.why, strlen(st.why)) && strstr(st.why, "?? oops"), "%s",
		  st.why);
}

Test(coord_feed, failure_then_recovery)
{
	hf_coord_feed_spec s = url_spec("/USD", 2);
	hf_coord_feed_state st = { 0 };
	double v;
	char why[256];

	cr_assert_not(hf_coord_feed_value(&s, &st, 0, &v, why, sizeof why));
	cr_assert_str_eq(why, "never fetched");
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1000, NULL, 200, "{\"USD\": 10}", 11), 0);
	cr_assert(hf_coord_feed_value(&s, &st, 2000, &v, why, sizeof why));
	cr_assert_eq(v, 20);
	/* A failure makes it stale at once, however fresh the value was; the value stays. */
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 3000, NULL, 503, "", 0), HF_EREFUSED);
	cr_assert_not(hf_coord_feed_value(&s, &st, 3000, &v, why, sizeof why));
	cr_assert_str_eq(why, "HTTP 503 (since 0 s)");
	cr_assert(st.have && st.value == 20);
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 4000, NULL, 200, "{\"USD\": 11}", 11), 0);
	cr_assert(hf_coord_feed_value(&s, &st, 4000, &v, why, sizeof why));
	cr_assert_eq(v, 22);
	cr_assert_eq(st.ok_total, 2);
	cr_assert_eq(st.fail_total, 1);
	cr_assert_str_eq(st.why, "HTTP 503", "the last error is kept for /v1/feeds");
	cr_assert_eq(st.last_fetch_ms, 4000);
}

Test(coord_feed, staleness_by_age)
{
	hf_coord_feed_spec s = url_spec("/USD", 1);
	hf_coord_feed_state st = { 0 };
	double v;
	char why[256];

	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1000000, NULL, 200, "{\"USD\": 1}", 10), 0);
	cr_assert(hf_coord_feed_value(&s, &st, 1000000 + 600000, &v, why, sizeof why));
	cr_assert_not(hf_coord_feed_value(&s, &st, 1000000 + 600001, &v, why, sizeof why));
	cr_assert_str_eq(why, "600 s old (max_age_s 600)");
	cr_assert_not(hf_coord_feed_value(&s, &st, 1000000 + 612000, &v, why, sizeof why));
	cr_assert_str_eq(why, "612 s old (max_age_s 600)");
	/* A clock that went back does not make it stale. */
	cr_assert(hf_coord_feed_value(&s, &st, 5000, &v, why, sizeof why));
}

/* ---- schedules and the halving ---- */

Test(coord_feed, schedule_slots_and_offsets)
{
	hf_coord_feed_spec s;
	const uint64_t day = 86400000ull * 20000; /* a UTC midnight */

	memset(&s, 0, sizeof s);
	s.kind = HF_FEED_SCHEDULE;
	s.nschedule = 3;
	s.schedule[0] = (struct hf_coord_feed_slot){ 0, 0.04 };
	s.schedule[1] = (struct hf_coord_feed_slot){ 7 * 3600, 0.12 };
	s.schedule[2] = (struct hf_coord_feed_slot){ 22 * 3600 + 30 * 60, 0.06 };
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day), 0.04);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 7 * 3600000ull - 1), 0.04);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 7 * 3600000ull), 0.12);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + (22 * 60 + 29) * 60000ull), 0.12);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + (22 * 60 + 30) * 60000ull), 0.06);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 86400000ull - 1), 0.06);
	/* UTC-5: 07:00 local is 12:00 UTC; 02:00 UTC is 21:00 local the day before. */
	s.utc_offset_min = -300;
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 12 * 3600000ull - 1), 0.04);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 12 * 3600000ull), 0.12);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, day + 2 * 3600000ull), 0.12);
	/* UTC+14 near the epoch, and UTC-12 at the epoch itself. */
	s.utc_offset_min = 840;
	cr_assert_eq(hf_coord_feed_schedule_at(&s, 0), 0.12);
	cr_assert_eq(hf_coord_feed_schedule_at(&s, 10 * 3600000ull), 0.04);
	s.utc_offset_min = -720;
	cr_assert_eq(hf_coord_feed_schedule_at(&s, 0), 0.12);
	/* Always fresh. */
	double v;
	hf_coord_feed_state st = { 0 };
	cr_assert(hf_coord_feed_value(&s, &st, day, &v, NULL, 0));
}

Test(coord_feed, subsidy_by_height)
{
	cr_assert_eq(hf_coord_subsidy_btc(0), 50.0);
	cr_assert_eq(hf_coord_subsidy_btc(209999), 50.0);
	cr_assert_eq(hf_coord_subsidy_btc(210000), 25.0);
	cr_assert_eq(hf_coord_subsidy_btc(420000), 12.5);
	cr_assert_eq(hf_coord_subsidy_btc(630000), 6.25);
	cr_assert_eq(hf_coord_subsidy_btc(839999), 6.25);
	cr_assert_eq(hf_coord_subsidy_btc(840000), 3.125);
	cr_assert_eq(hf_coord_subsidy_btc(1050000), 1.5625);
	/* Integer satoshis: 5,000,000,000 >> 32 = 1 sat, >> 33 = 0. */
	cr_assert_eq(hf_coord_subsidy_btc(32 * 210000ull), 1e-8);
	cr_assert_eq(hf_coord_subsidy_btc(33 * 210000ull - 1), 1e-8);
	cr_assert_eq(hf_coord_subsidy_btc(33 * 210000ull), 0);
	cr_assert_eq(hf_coord_subsidy_btc(13440000), 0);
	cr_assert_eq(hf_coord_subsidy_btc(UINT64_MAX), 0);
	/* 10 halvings: 5e9 >> 10 = 4882812 sat (the 0.5 is dropped, as Bitcoin does). */
	cr_assert_eq(hf_coord_subsidy_btc(10 * 210000ull), 0.04882812);
}

/* ---- the "feeds" section ---- */

static void parse_ok(const char *text, hf_coord_feeds_spec *s)
{
	hf_errbuf eb;
	json_t *j = text ? load(text) : NULL;
	int r = hf_coord_feeds_spec_parse(j, s, &eb);
	cr_assert_eq(r, 0, "%s: %s", text, eb.msg);
	json_decref(j);
}

static void parse_refused(const char *text, const char *prefix)
{
	hf_coord_feeds_spec s;
	hf_errbuf eb;
	json_t *j = load(text);
	int r = hf_coord_feeds_spec_parse(j, &s, &eb);
	cr_assert_eq(r, HF_ECONFIG, "%s: got %d (%s)", text, r, eb.msg);
	cr_assert(strncmp(eb.msg, prefix, strlen(prefix)) == 0, "%s: \"%s\" does not start with "
		  "\"%s\"", text, eb.msg, prefix);
	json_decref(j);
}

Test(coord_feed, spec_defaults)
{
	hf_coord_feeds_spec s;
	const hf_coord_feed_spec *f;

	parse_ok(NULL, &s);
	f = &s.feed[HF_FEED_BTC_USD];
	cr_assert_eq(f->kind, HF_FEED_URL);
	cr_assert_str_eq(f->url, "https://mempool.space/api/v1/prices");
	cr_assert_str_eq(f->pointer, "/USD");
	cr_assert_eq(f->scale, 1);
	cr_assert_eq(f->refresh_s, 60);
	cr_assert_eq(f->max_age_s, 600);
	cr_assert_eq(f->timeout_s, 10);
	cr_assert_eq(f->max_body, 1 << 20);
	cr_assert_str_eq(s.feed[HF_FEED_DIFFICULTY].url,
			 "https://mempool.space/api/v1/mining/hashrate/3d");
	cr_assert_str_eq(s.feed[HF_FEED_DIFFICULTY].pointer, "/currentDifficulty");
	cr_assert_str_eq(s.feed[HF_FEED_HEIGHT].url, "https://mempool.space/api/blocks/tip/height");
	cr_assert_str_eq(s.feed[HF_FEED_HEIGHT].pointer, "");
	cr_assert_str_eq(s.feed[HF_FEED_FEES_BTC].url,
			 "https://mempool.space/api/v1/mining/reward-stats/144");
	cr_assert_str_eq(s.feed[HF_FEED_FEES_BTC].pointer, "/totalFee");
	cr_assert_eq(s.feed[HF_FEED_FEES_BTC].scale, 1e-8 / 144);
	cr_assert_eq(s.feed[HF_FEED_SUBSIDY_BTC].kind, HF_FEED_NONE);
	cr_assert_eq(s.feed[HF_FEED_POWER].kind, HF_FEED_CONST);
	cr_assert_eq(s.feed[HF_FEED_POWER].value, 0.05);
	cr_assert_eq(s.feed[HF_FEED_INFER_PRICE].kind, HF_FEED_CONST);
	cr_assert_eq(s.feed[HF_FEED_INFER_DEMAND].value, 0);
	cr_assert_str_eq(s.ca_file, "");
	cr_assert_not(s.allow_plain_http);
	parse_ok("{}", &s);
	cr_assert_str_eq(s.feed[HF_FEED_BTC_USD].pointer, "/USD");
}

Test(coord_feed, spec_three_forms)
{
	hf_coord_feeds_spec s;

	parse_ok("{\"btc_usd\": {\"url\": \"http://127.0.0.1:8080/api/v1/prices\", \"refresh_s\": 5},"
		 " \"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 0.04},"
		 " {\"from\": \"17:30\", \"value\": 0.3}], \"utc_offset_min\": -360},"
		 " \"inference_price\": {\"value\": 0.002}, \"subsidy_btc\": {\"value\": 3.125},"
		 " \"height\": null, \"ca_file\": \"/etc/ssl/mine.pem\"}", &s);
	const hf_coord_feed_spec *f = &s.feed[HF_FEED_BTC_USD];
	cr_assert_eq(f->kind, HF_FEED_URL);
	cr_assert_str_eq(f->pointer, "", "a configured URL feed starts from the generic defaults");
	cr_assert_eq(f->scale, 1);
	cr_assert_eq(f->refresh_s, 5);
	cr_assert_eq(f->max_age_s, 50, "max_age_s defaults to 10 * refresh_s");
	f = &s.feed[HF_FEED_POWER];
	cr_assert_eq(f->kind, HF_FEED_SCHEDULE);
	cr_assert_eq(f->nschedule, 2);
	cr_assert_eq(f->schedule[1].from_s, 17 * 3600 + 30 * 60);
	cr_assert_eq(f->schedule[1].value, 0.3);
	cr_assert_eq(f->utc_offset_min, -360);
	cr_assert_eq(s.feed[HF_FEED_INFER_PRICE].value, 0.002);
	cr_assert_eq(s.feed[HF_FEED_SUBSIDY_BTC].kind, HF_FEED_CONST);
	cr_assert_eq(s.feed[HF_FEED_HEIGHT].kind, HF_FEED_NONE);
	cr_assert_str_eq(s.ca_file, "/etc/ssl/mine.pem");
	/* Loopback forms of plain http, and everything with allow_plain_http. */
	parse_ok("{\"btc_usd\": {\"url\": \"http://localhost/p\"}, \"difficulty\": {\"url\": "
		 "\"http://[::1]:9/d\"}, \"fees_btc\": {\"url\": \"HTTP://127.9.8.7/f\"}}", &s);
	parse_ok("{\"btc_usd\": {\"url\": \"http://10.0.0.5/p\"}, \"allow_plain_http\": true}", &s);
	parse_ok("{\"allow_plain_http\": true, \"btc_usd\": {\"url\": \"http://10.0.0.5/p\"}}", &s);
	cr_assert(s.allow_plain_http);
	parse_ok("{\"btc_usd\": {\"url\": \"https://x/p\", \"pointer\": \"/a~1b/0\", \"scale\": 2.5,"
		 " \"refresh_s\": 30, \"max_age_s\": 7, \"timeout_s\": 3, \"max_body\": 100}}", &s);
	f = &s.feed[HF_FEED_BTC_USD];
	cr_assert_eq(f->max_age_s, 7);
	cr_assert_eq(f->timeout_s, 3);
	cr_assert_eq(f->max_body, 100);
	cr_assert_eq(f->scale, 2.5);
}

Test(coord_feed, spec_refusals_name_the_field)
{
	parse_refused("[]", "feeds: expected an object");
	parse_refused("{\"btc\": {}}", "feeds.btc: unknown key");
	parse_refused("{\"btc_usd\": 5}", "feeds.btc_usd: expected an object");
	parse_refused("{\"btc_usd\": null}", "feeds.btc_usd: expected an object");
	parse_refused("{\"btc_usd\": {}}", "feeds.btc_usd: expected exactly one of");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"value\": 1}}",
		      "feeds.btc_usd: expected exactly one of");
	parse_refused("{\"btc_usd\": {\"url\": 5}}", "feeds.btc_usd.url: expected a string");
	parse_refused("{\"btc_usd\": {\"url\": \"ftp://x/\"}}", "feeds.btc_usd.url: expected an "
		      "https:// URL");
	parse_refused("{\"btc_usd\": {\"url\": \"https://\"}}", "feeds.btc_usd.url: has no host");
	parse_refused("{\"btc_usd\": {\"url\": \"https://a b/\"}}", "feeds.btc_usd.url: must be "
		      "printable");
	parse_refused("{\"btc_usd\": {\"url\": \"https://u:p@x/\"}}", "feeds.btc_usd.url: must not "
		      "hold credentials");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x:0/\"}}", "feeds.btc_usd.url: bad port");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x:99999/\"}}", "feeds.btc_usd.url: bad port");
	parse_refused("{\"difficulty\": {\"url\": \"http://mempool.space/api\"}}",
		      "feeds.difficulty.url: http:// only to a loopback host");
	parse_refused("{\"difficulty\": {\"url\": \"http://128.0.0.1/api\"}}",
		      "feeds.difficulty.url: http:// only to a loopback host");
	parse_refused("{\"difficulty\": {\"url\": \"http://127.0.0.1.evil.test/api\"}}",
		      "feeds.difficulty.url: http:// only to a loopback host");
	parse_refused("{\"difficulty\": {\"url\": \"http://[::2]/api\"}}",
		      "feeds.difficulty.url: http:// only to a loopback host");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"pointer\": \"USD\"}}",
		      "feeds.btc_usd.pointer: must be empty or start with /");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"pointer\": \"/a~2\"}}",
		      "feeds.btc_usd.pointer: ~ at byte 2");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"scale\": 0}}",
		      "feeds.btc_usd.scale: expected a finite number > 0");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"scale\": -1}}",
		      "feeds.btc_usd.scale");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"refresh_s\": 0}}",
		      "feeds.btc_usd.refresh_s: expected an integer 1..86400");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"refresh_s\": 1.5}}",
		      "feeds.btc_usd.refresh_s");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"timeout_s\": 301}}",
		      "feeds.btc_usd.timeout_s");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"max_body\": 0}}",
		      "feeds.btc_usd.max_body");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"max_age_s\": -1}}",
		      "feeds.btc_usd.max_age_s");
	parse_refused("{\"btc_usd\": {\"url\": \"https://x/\", \"utc_offset_min\": 0}}",
		      "feeds.btc_usd.utc_offset_min: unknown key");
	parse_refused("{\"power_usd_kwh\": {\"value\": -0.1}}",
		      "feeds.power_usd_kwh.value: expected a finite number >= 0");
	parse_refused("{\"power_usd_kwh\": {\"value\": \"1\"}}",
		      "feeds.power_usd_kwh.value: expected a number");
	parse_refused("{\"power_usd_kwh\": {\"value\": 1, \"scale\": 2}}",
		      "feeds.power_usd_kwh: a constant feed has only");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": []}}",
		      "feeds.power_usd_kwh.schedule: expected an array of 1 to 48");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"01:00\", \"value\": 1}]}}",
		      "feeds.power_usd_kwh.schedule[0].from: the first slot must start at \"00:00\"");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1},"
		      " {\"from\": \"00:00\", \"value\": 2}]}}",
		      "feeds.power_usd_kwh.schedule[1].from: must be later");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1},"
		      " {\"from\": \"12:00\", \"value\": 2}, {\"from\": \"06:00\", \"value\": 2}]}}",
		      "feeds.power_usd_kwh.schedule[2].from: must be later");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"0:00\", \"value\": 1}]}}",
		      "feeds.power_usd_kwh.schedule[0].from: expected \"HH:MM\"");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1},"
		      " {\"from\": \"24:00\", \"value\": 1}]}}", "feeds.power_usd_kwh.schedule[1].from");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1},"
		      " {\"from\": \"10:60\", \"value\": 1}]}}", "feeds.power_usd_kwh.schedule[1].from");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": -1}]}}",
		      "feeds.power_usd_kwh.schedule[0].value");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1, "
		      "\"x\": 1}]}}", "feeds.power_usd_kwh.schedule[0]: expected");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1}], "
		      "\"utc_offset_min\": 841}}", "feeds.power_usd_kwh.utc_offset_min");
	parse_refused("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 1}], "
		      "\"utc_offset_min\": -721}}", "feeds.power_usd_kwh.utc_offset_min");
	parse_refused("{\"height\": null}", "feeds.height: not configured");
	parse_refused("{\"ca_file\": \"relative.pem\"}", "feeds.ca_file: expected an absolute path");
	parse_refused("{\"ca_file\": 1}", "feeds.ca_file: expected a string");
	parse_refused("{\"allow_plain_http\": 1}", "feeds.allow_plain_http: expected true or false");
}

Test(coord_feed, spec_accepts_a_full_schedule_and_refuses_one_more)
{
	char text[8192];
	size_t n = 0;
	hf_coord_feeds_spec s;

	n += (size_t)snprintf(text + n, sizeof text - n, "{\"power_usd_kwh\": {\"schedule\": [");
	for (int i = 0; i < HF_FEED_SCHEDULE_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%s{\"from\": \"%02d:%02d\", "
				      "\"value\": %d}", i ? "," : "", i / 2, (i % 2) * 30, i);
	snprintf(text + n, sizeof text - n, "]}}");
	parse_ok(text, &s);
	cr_assert_eq(s.feed[HF_FEED_POWER].nschedule, HF_FEED_SCHEDULE_MAX);
	cr_assert_eq(s.feed[HF_FEED_POWER].schedule[47].from_s, 23 * 3600 + 30 * 60);
	snprintf(text + n, sizeof text - n, ",{\"from\": \"23:59\", \"value\": 1}]}}");
	parse_refused(text, "feeds.power_usd_kwh.schedule: expected an array of 1 to 48");
}

Test(coord_feed, spec_json_round_trip)
{
	hf_coord_feeds_spec a, b;
	hf_errbuf eb;
	json_t *j;

	parse_ok("{\"power_usd_kwh\": {\"schedule\": [{\"from\": \"00:00\", \"value\": 0.04},"
		 " {\"from\": \"07:15\", \"value\": 0.125}], \"utc_offset_min\": 60},"
		 " \"subsidy_btc\": {\"value\": 3.125}, \"height\": null}", &a);
	j = hf_coord_feeds_spec_json(&a);
	cr_assert_not_null(j);
	cr_assert_eq(hf_coord_feeds_spec_parse(j, &b, &eb), 0, "%s", eb.msg);
	cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "the JSON does not parse back to the same spec");
	cr_assert_eq(json_real_value(json_object_get(json_object_get(j, "fees_btc"), "scale")),
		     1e-8 / 144);
	cr_assert(json_is_null(json_object_get(j, "height")));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(j, "power_usd_kwh"), "schedule"), 1), "from")), "07:15");
	json_decref(j);
}

Test(coord_feed, spec_check_of_a_spec_built_in_code)
{
	hf_coord_feeds_spec s;
	hf_errbuf eb;

	hf_coord_feeds_spec_defaults(&s);
	cr_assert_eq(hf_coord_feeds_spec_check(&s, &eb), 0, "%s", eb.msg);
	snprintf(s.feed[HF_FEED_BTC_USD].url, sizeof s.feed[0].url, "http://192.0.2.1/p");
	cr_assert_eq(hf_coord_feeds_spec_check(&s, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "feeds.btc_usd.url: http:// only to a loopback"), "%s", eb.msg);
	s.allow_plain_http = true;
	cr_assert_eq(hf_coord_feeds_spec_check(&s, &eb), 0, "%s", eb.msg);
	s.feed[HF_FEED_BTC_USD].kind = HF_FEED_NONE;
	cr_assert_eq(hf_coord_feeds_spec_check(&s, &eb), HF_ECONFIG);
	cr_assert(strstr(eb.msg, "feeds.btc_usd: not configured"), "%s", eb.msg);
}

Test(coord_feed, names)
{
	const char *want[] = { "btc_usd", "difficulty", "fees_btc", "height", "subsidy_btc",
			       "power_usd_kwh", "inference_price", "inference_demand" };
	for (int i = 0; i < HF_FEED_COUNT; i++)
		cr_assert_str_eq(hf_coord_feed_name((hf_coord_feed_id)i), want[i]);
	cr_assert_null(hf_coord_feed_name(HF_FEED_COUNT));
}

/* ---- the market ---- */

static void feed_all(const hf_coord_feeds_spec *s, hf_coord_feed_state st[HF_FEED_COUNT],
		     uint64_t now)
{
	const char *body[HF_FEED_COUNT] = {
		[HF_FEED_BTC_USD] = "{\"time\": 1, \"USD\": 100000}",
		[HF_FEED_DIFFICULTY] = "{\"currentHashrate\": 1, \"currentDifficulty\": 1.1e14}",
		[HF_FEED_FEES_BTC] = "{\"totalFee\": \"28800000000\"}",
		[HF_FEED_HEIGHT] = "840001",
	};
	memset(st, 0, sizeof(hf_coord_feed_state) * HF_FEED_COUNT);
	for (int i = 0; i < HF_FEED_COUNT; i++)
		if (s->feed[i].kind == HF_FEED_URL)
			cr_assert_eq(hf_coord_feed_observe(&s->feed[i], &st[i], now, NULL, 200, body[i],
							   strlen(body[i])), 0, "%d: %s", i, st[i].why);
}

Test(coord_feed, market_from_every_feed)
{
	hf_coord_feeds_spec s;
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_coord_market m;

	parse_ok("{\"inference_price\": {\"value\": 0.002}, \"inference_demand\": {\"value\": 3000}}",
		 &s);
	feed_all(&s, st, 1000);
	hf_coord_feeds_market_of(&s, st, 2000, &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_str_eq(m.stale_why, "");
	cr_assert_eq(m.at_ms, 2000);
	cr_assert_eq(m.btc_usd, 100000);
	cr_assert_eq(m.difficulty, 1.1e14);
	cr_assert_float_eq(m.fees_btc, 2.0, 1e-12);
	cr_assert_eq(m.subsidy_btc, 3.125);
	cr_assert_eq(m.power_usd_kwh, 0.05);
	cr_assert_eq(m.infer_price, 0.002);
	cr_assert_eq(m.infer_demand, 3000);
}

Test(coord_feed, market_stale_names_each_feed)
{
	hf_coord_feeds_spec s;
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_coord_market m;

	parse_ok(NULL, &s);
	feed_all(&s, st, 1000);
	memset(&st[HF_FEED_HEIGHT], 0, sizeof st[0]);
	cr_assert_eq(hf_coord_feed_observe(&s.feed[HF_FEED_BTC_USD], &st[HF_FEED_BTC_USD], 1000,
					   NULL, 503, "", 0), HF_EREFUSED);
	hf_coord_feeds_market_of(&s, st, 13000, &m);
	cr_assert(m.stale);
	cr_assert_str_eq(m.stale_why, "btc_usd: HTTP 503 (since 12 s); height: never fetched");
	cr_assert_eq(m.btc_usd, 100000, "the last value is shown, flagged stale");
	/* Age: everything older than 600 s. */
	feed_all(&s, st, 1000);
	hf_coord_feeds_market_of(&s, st, 1000 + 601000, &m);
	cr_assert(m.stale);
	cr_assert(strstr(m.stale_why, "btc_usd: 601 s old (max_age_s 600); difficulty: 601 s old"),
		  "%s", m.stale_why);
	cr_assert(strlen(m.stale_why) < sizeof m.stale_why);
	cr_assert(hf_utf8_valid(m.stale_why, strlen(m.stale_why)));
}

Test(coord_feed, market_subsidy_configured_replaces_height)
{
	hf_coord_feeds_spec s;
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_coord_market m;

	parse_ok("{\"subsidy_btc\": {\"value\": 2.5}}", &s);
	feed_all(&s, st, 1000);
	memset(&st[HF_FEED_HEIGHT], 0, sizeof st[0]); /* never fetched: not needed */
	hf_coord_feeds_market_of(&s, st, 2000, &m);
	cr_assert_not(m.stale, "%s", m.stale_why);
	cr_assert_eq(m.subsidy_btc, 2.5);
}

Test(coord_feed, market_stale_why_names_every_stale_feed)
{
	hf_coord_feeds_spec s;
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_coord_market m;
	char terr[300];

	parse_ok(NULL, &s);
	memset(st, 0, sizeof st);
	memset(terr, 'e', sizeof terr);
	memcpy(terr, "\xc3\xa9", 2); /* multi-byte characters throughout */
	for (size_t i = 2; i + 2 < sizeof terr; i += 2)
		memcpy(terr + i, "\xc3\xa9", 2);
	terr[sizeof terr - 1] = '\0';
	for (int i = 0; i < HF_FEED_COUNT; i++)
		if (s.feed[i].kind == HF_FEED_URL)
			hf_coord_feed_observe(&s.feed[i], &st[i], 1000, terr, 0, NULL, 0);
	s.feed[HF_FEED_POWER].kind = HF_FEED_NONE;
	hf_coord_feeds_market_of(&s, st, 2000, &m);
	cr_assert(m.stale);
	cr_assert(strlen(m.stale_why) < sizeof m.stale_why);
	cr_assert(hf_utf8_valid(m.stale_why, strlen(m.stale_why)), "%s", m.stale_why);
	const char *names[] = { "btc_usd: ", "difficulty: ", "fees_btc: ", "height: ",
				"power_usd_kwh: not configured" };
	for (size_t i = 0; i < 5; i++)
		cr_assert(strstr(m.stale_why, names[i]), "%s lacks %s", m.stale_why, names[i]);
}

Test(coord_feed, observe_accepts_trailing_whitespace_and_a_body_at_the_cap)
{
	hf_coord_feed_spec s = url_spec("", 1);
	hf_coord_feed_state st = { 0 };
	char body[1025];

	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, NULL, 200, "870144\n", 7), 0, "%s", st.why);
	cr_assert_eq(st.value, 870144);
	memset(body, ' ', sizeof body);
	body[0] = '7';
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, NULL, 200, body, 1024), 0, "%s", st.why);
	cr_assert_eq(hf_coord_feed_observe(&s, &st, 1, NULL, 200, body, 1025), HF_ETOOBIG);
}

/* Mutations of a good body (bytes flipped, cut, inserted): every result is a value or an error
 * with a clean reason; never a crash, a negative or a non-finite value. */
Test(coord_feed, observe_survives_mutated_bodies)
{
	const char *good = "{\"time\": 1733011200, \"USD\": 97123, \"EUR\": [1, {\"x\": \"2\"}]}";
	hf_coord_feed_spec s = url_spec("/USD", 1);
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	char body[128];
	unsigned ok = 0;

	for (int i = 0; i < 20000; i++) {
		hf_coord_feed_state st = { 0 };
		size_t len = strlen(good);
		memcpy(body, good, len);
		for (int k = 0; k < 1 + i % 4; k++) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			size_t at = (size_t)(rng >> 33) % len;
			unsigned char b = (unsigned char)(rng >> 17);
			if (k == 3)
				len = at;
			else
				body[at] = (char)b;
		}
		int r = hf_coord_feed_observe(&s, &st, 1, NULL, 200, body, len);
		if (r == 0) {
			ok++;
			cr_assert(isfinite(st.value) && st.value >= 0);
		} else {
			cr_assert(st.failing && st.why[0]);
			cr_assert(hf_utf8_valid(st.why, strlen(st.why)));
			for (const char *p = st.why; *p; p++)
				cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "%s", st.why);
		}
	}
	cr_assert_gt(ok, 0, "no mutation kept the value readable");
}
