/* Unit tests for hf_stratum (the sans-I/O client core): every message in whole, byte-by-byte
 * and random splits; malformed JSON, missing fields, wrong types, oversize lines, unknown
 * methods; request encoding. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_buf.h"
#include "hf_stratum.h"
#include "hf_util.h"

/* A compact text summary of an event, so event streams can be compared. */
static void summarize(const hf_stratum_event *ev, hf_buf *out)
{
	char en1[2 * HF_STRATUM_EN1_MAX + 1];

	hf_hex_encode(ev->extranonce1, ev->extranonce1_len, en1);
	switch (ev->type) {
	case HF_STRATUM_EV_SUBSCRIBED:
		hf_buf_printf(out, "SUB(%d,%s,%u,%s,%s)", ev->ok, en1, ev->en2_size,
			      ev->session_id, ev->err_msg);
		break;
	case HF_STRATUM_EV_AUTHORIZED:
		hf_buf_printf(out, "AUTH(%d,%lld,%s)", ev->ok, (long long)ev->err_code,
			      ev->err_msg);
		break;
	case HF_STRATUM_EV_CONFIGURED:
		hf_buf_printf(out, "CONF(%d,%08x)", ev->ok, ev->version_mask);
		break;
	case HF_STRATUM_EV_NOTIFY:
		hf_buf_printf(out, "JOB(%s,%zu,%zu,%zu,%08x,%08x,%08x,%d,%02x)", ev->job.id,
			      ev->job.coinb1_len, ev->job.coinb2_len, ev->job.nbranch,
			      ev->job.version, ev->job.nbits, ev->job.ntime, ev->job.clean,
			      ev->job.prevhash[31]);
		break;
	case HF_STRATUM_EV_DIFFICULTY:
		hf_buf_printf(out, "DIFF(%.17g)", ev->difficulty);
		break;
	case HF_STRATUM_EV_EXTRANONCE:
		hf_buf_printf(out, "EN(%s,%u)", en1, ev->en2_size);
		break;
	case HF_STRATUM_EV_VERSION_MASK:
		hf_buf_printf(out, "VMASK(%08x)", ev->version_mask);
		break;
	case HF_STRATUM_EV_RECONNECT:
		hf_buf_printf(out, "RECON(%s,%u,%u)", ev->host, ev->port, ev->wait_s);
		break;
	case HF_STRATUM_EV_MESSAGE:
		hf_buf_printf(out, "MSG(%s)", ev->text);
		break;
	case HF_STRATUM_EV_SUBMIT_RESULT:
		hf_buf_printf(out, "SUBMIT(%llu,%d,%lld,%s)", (unsigned long long)ev->id, ev->ok,
			      (long long)ev->err_code, ev->err_msg);
		break;
	case HF_STRATUM_EV_RESULT:
		hf_buf_printf(out, "RES(%llu,%d)", (unsigned long long)ev->id, ev->ok);
		break;
	case HF_STRATUM_EV_ERROR:
		hf_buf_printf(out, "ERR(%d)", ev->err);
		break;
	default:
		hf_buf_printf(out, "?");
	}
	hf_buf_printf(out, ";");
}

static void drain(hf_stratum *s, hf_buf *out)
{
	hf_stratum_event ev;

	while (hf_stratum_next_event(s, &ev)) {
		summarize(&ev, out);
		hf_stratum_event_clear(&ev);
	}
}

/* A core with requests 1..8 outstanding: subscribe, authorize, configure, extranonce,
 * suggest, submit x3. */
static hf_stratum *primed(void)
{
	hf_stratum *s = hf_stratum_new(NULL);
	uint8_t en2[4] = { 1, 2, 3, 4 };
	hf_stratum_submit_args a = { .worker = "bc1q.w1", .job_id = "j1", .en2 = en2,
				     .en2_len = 4, .ntime = 0x5f5e1000, .nonce = 0xdeadbeef };
	uint64_t id;

	cr_assert(s);
	cr_assert_eq(hf_stratum_subscribe(s, false, &id), 0);
	cr_assert_eq(id, 1);
	cr_assert_eq(hf_stratum_authorize(s, "bc1q.w1", "x", &id), 0);
	cr_assert_eq(hf_stratum_configure(s, 0x1fffe000, 2, &id), 0);
	cr_assert_eq(hf_stratum_extranonce_subscribe(s, &id), 0);
	cr_assert_eq(hf_stratum_suggest_difficulty(s, 0.001, &id), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(hf_stratum_submit(s, &a, &id), 0);
	cr_assert_eq(id, 8);
	hf_stratum_out_consume(s, SIZE_MAX);
	return s;
}

#define PREV "00000000111111112222222233333333444444445555555566666666aabbccdd"
#define BR "0000000000000000000000000000000000000000000000000000000000000001"

static const char transcript[] =
	"{\"id\":3,\"result\":{\"version-rolling\":true,\"version-rolling.mask\":\"1fffe000\"},"
	"\"error\":null}\n"
	"{\"id\":1,\"result\":[[[\"mining.set_difficulty\",\"d1\"],[\"mining.notify\",\"s77\"]],"
	"\"08000002\",4],\"error\":null}\r\n"
	"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[0.0138]}\n"
	"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"bf\",\"" PREV "\",\"01000000\","
	"\"ffffffff\",[\"" BR "\",\"" BR "\"],\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}\n"
	"{\"id\":2,\"result\":true,\"error\":null}\n"
	"{\"id\":4,\"result\":true,\"error\":null}\n"
	"{\"id\":5,\"result\":false,\"error\":null}\n"
	"\n"
	"{\"id\":null,\"method\":\"mining.set_extranonce\",\"params\":[\"aabbccdd\",8]}\n"
	"{\"id\":null,\"method\":\"mining.set_version_mask\",\"params\":[\"00ffe000\"]}\n"
	"{\"id\":6,\"result\":true,\"error\":null}\n"
	"{\"id\":7,\"result\":null,\"error\":[21,\"Stale\",null]}\n"
	"{\"id\":8,\"result\":false,\"error\":null,\"reject-reason\":\"Above target\"}\n"
	"{\"id\":null,\"method\":\"client.show_message\",\"params\":[\"hello miner\"]}\n"
	"{\"id\":null,\"method\":\"client.reconnect\",\"params\":[\"pool2.lab\",3334,5]}\n"
	"{\"id\":null,\"method\":\"client.reconnect\",\"params\":[]}\n"
	"{\"id\":null,\"method\":\"client.reconnect\",\"params\":[\"h\",\"3335\"]}\n";

static const char expected[] =
	"CONF(1,1fffe000);SUB(1,08000002,4,s77,);DIFF(0.0138);"
	"JOB(bf,4,4,2,20000000,1705ae3a,5e9b3c2a,1,aa);AUTH(1,0,);RES(4,1);RES(5,0);"
	"EN(aabbccdd,8);VMASK(00ffe000);SUBMIT(6,1,0,);SUBMIT(7,0,21,Stale);"
	"SUBMIT(8,0,0,Above target);MSG(hello miner);RECON(pool2.lab,3334,5);RECON(,0,0);"
	"RECON(h,3335,0);";

static char *run_split(const char *text, size_t len, unsigned mode, unsigned seed)
{
	hf_stratum *s = primed();
	hf_buf out;
	size_t off = 0;

	hf_buf_init(&out, 0);
	srand(seed);
	while (off < len) {
		size_t n = mode == 0 ? len : mode == 1 ? 1 : 1 + (size_t)(rand() % 97);
		if (n > len - off)
			n = len - off;
		cr_assert_eq(hf_stratum_feed(s, text + off, n), 0);
		off += n;
		if (mode == 2 && rand() % 3 == 0)
			drain(s, &out);
	}
	drain(s, &out);
	hf_stratum_free(s);
	return hf_buf_steal(&out, NULL);
}

Test(stratum_core, every_message_in_every_split)
{
	size_t len = strlen(transcript);
	char *got;

	got = run_split(transcript, len, 0, 0);
	cr_assert_str_eq(got, expected);
	free(got);
	got = run_split(transcript, len, 1, 0);
	cr_assert_str_eq(got, expected);
	free(got);
	for (unsigned seed = 1; seed <= 50; seed++) {
		got = run_split(transcript, len, 2, seed);
		cr_assert_str_eq(got, expected, "seed %u", seed);
		free(got);
	}
	/* Every two-piece split point. */
	for (size_t cut = 1; cut < len; cut++) {
		hf_stratum *s = primed();
		hf_buf out;
		hf_buf_init(&out, 0);
		hf_stratum_feed(s, transcript, cut);
		hf_stratum_feed(s, transcript + cut, len - cut);
		drain(s, &out);
		cr_assert_str_eq(out.data, expected, "cut at %zu", cut);
		hf_buf_free(&out);
		hf_stratum_free(s);
	}
}

Test(stratum_core, session_id_kept_for_resume)
{
	hf_stratum *s = primed();
	const char *o;
	size_t n;
	json_t *j;

	hf_stratum_feed(s, transcript, strlen(transcript));
	cr_assert_str_eq(hf_stratum_session_id(s), "s77");
	hf_stratum_reset(s);
	cr_assert_str_eq(hf_stratum_session_id(s), "s77");
	cr_assert_eq(hf_stratum_subscribe(s, true, NULL), 0);
	o = hf_stratum_out(s, &n);
	cr_assert_eq(o[n - 1], '\n');
	j = json_loadb(o, n, 0, NULL);
	cr_assert(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "method")), "mining.subscribe");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "params"), 1)), "s77");
	json_decref(j);
	hf_stratum_free(s);
}

static json_t *take_line(hf_stratum *s)
{
	size_t n;
	const char *o = hf_stratum_out(s, &n);
	const char *nl = memchr(o, '\n', n);
	json_t *j;

	cr_assert(nl, "no output line");
	j = json_loadb(o, (size_t)(nl - o), 0, NULL);
	cr_assert(j, "output is not JSON: %.*s", (int)(nl - o), o);
	hf_stratum_out_consume(s, (size_t)(nl - o) + 1);
	return j;
}

Test(stratum_core, requests_encode)
{
	hf_stratum_opts opts = { .user_agent = "hashflop-test/1" };
	hf_stratum *s = hf_stratum_new(&opts);
	uint8_t en2[4] = { 0, 0, 0, 7 };
	hf_stratum_submit_args a = { .worker = "addr.w", .job_id = "j9", .en2 = en2,
				     .en2_len = 4, .ntime = 0x5e9b3c2a, .nonce = 0x1,
				     .has_version_bits = true, .version_bits = 0x00002000 };
	json_t *j;
	char *txt;

	hf_stratum_subscribe(s, false, NULL);
	hf_stratum_authorize(s, "addr.w", "p", NULL);
	hf_stratum_configure(s, 0x1fffe000, 2, NULL);
	hf_stratum_suggest_difficulty(s, 0.5, NULL);
	hf_stratum_extranonce_subscribe(s, NULL);
	hf_stratum_submit(s, &a, NULL);
	const char *want[] = {
		"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"hashflop-test/1\"]}",
		"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"addr.w\", \"p\"]}",
		"{\"id\": 3, \"method\": \"mining.configure\", \"params\": [[\"version-rolling\"], "
		"{\"version-rolling.mask\": \"1fffe000\", \"version-rolling.min-bit-count\": 2}]}",
		"{\"id\": 4, \"method\": \"mining.suggest_difficulty\", \"params\": [0.5]}",
		"{\"id\": 5, \"method\": \"mining.extranonce.subscribe\", \"params\": []}",
		"{\"id\": 6, \"method\": \"mining.submit\", \"params\": [\"addr.w\", \"j9\", "
		"\"00000007\", \"5e9b3c2a\", \"00000001\", \"00002000\"]}",
	};
	for (size_t i = 0; i < HF_ARRAY_SIZE(want); i++) {
		j = take_line(s);
		txt = json_dumps(j, JSON_SORT_KEYS);
		json_t *w = json_loads(want[i], 0, NULL);
		char *wt = json_dumps(w, JSON_SORT_KEYS);
		cr_assert_str_eq(txt, wt);
		free(txt);
		free(wt);
		json_decref(w);
		json_decref(j);
	}
	cr_assert_eq(hf_stratum_suggest_difficulty(s, 0, NULL), HF_EINVAL);
	a.en2_len = 9;
	cr_assert_eq(hf_stratum_submit(s, &a, NULL), HF_EINVAL);
	cr_assert_eq(hf_stratum_authorize(s, NULL, "x", NULL), HF_EINVAL);
	hf_stratum_free(s);
}

Test(stratum_core, ping_get_version_and_unknown_methods_answered)
{
	hf_stratum_opts opts = { .user_agent = "ua/2" };
	hf_stratum *s = hf_stratum_new(&opts);
	const char *in = "{\"id\":\"p1\",\"method\":\"mining.ping\",\"params\":[]}\n"
			 "{\"id\":9,\"method\":\"client.get_version\",\"params\":[]}\n"
			 "{\"id\":10,\"method\":\"mining.frobnicate\",\"params\":[]}\n"
			 "{\"id\":null,\"method\":\"mining.frobnicate\",\"params\":[]}\n";
	hf_stratum_counters c;
	hf_buf out;
	json_t *j;

	hf_buf_init(&out, 0);
	hf_stratum_feed(s, in, strlen(in));
	drain(s, &out);
	cr_assert_str_eq(out.data, "ERR(-9);ERR(-9);");
	j = take_line(s);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "p1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), "pong");
	json_decref(j);
	j = take_line(s);
	cr_assert_eq(json_integer_value(json_object_get(j, "id")), 9);
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")), "ua/2");
	json_decref(j);
	j = take_line(s);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(j, "error"), 0)), 20);
	json_decref(j);
	size_t n;
	hf_stratum_out(s, &n);
	cr_assert_eq(n, 0, "a notification with an unknown method gets no reply");
	hf_stratum_counters_get(s, &c);
	cr_assert_eq(c.unknown_methods, 2);
	cr_assert_eq(c.lines, 4);
	hf_buf_free(&out);
	hf_stratum_free(s);
}

Test(stratum_core, malformed_lines_are_counted_errors)
{
	static const char *bad[] = {
		"{not json}",
		"[1,2,3]",
		"\"str\"",
		"{\"id\":1,\"id\":2,\"result\":true}",
		"{\"foo\":1}",
		"{\"method\":5,\"params\":[]}",
		"{\"method\":\"mining.notify\",\"params\":{}}",
		"{\"method\":\"mining.notify\",\"params\":[]}",
		"{\"method\":\"mining.notify\",\"params\":[\"j\",\"" PREV "\",\"01\",\"02\",[],"
		"\"2000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.notify\",\"params\":[\"j\",\"" PREV "\",\"0\",\"02\",[],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.notify\",\"params\":[\"j\",\"abcd\",\"01\",\"02\",[],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.notify\",\"params\":[\"j\",\"" PREV "\",\"01\",\"02\",[5],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.notify\",\"params\":[\"j\",\"" PREV "\",\"01\",\"02\",[],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",\"yes\"]}",
		"{\"method\":\"mining.notify\",\"params\":[7,\"" PREV "\",\"01\",\"02\",[],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.notify\",\"params\":[\"\",\"" PREV "\",\"01\",\"02\",[],"
		"\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}",
		"{\"method\":\"mining.set_difficulty\",\"params\":[0]}",
		"{\"method\":\"mining.set_difficulty\",\"params\":[-3]}",
		"{\"method\":\"mining.set_difficulty\",\"params\":[\"1\"]}",
		"{\"method\":\"mining.set_difficulty\",\"params\":[]}",
		"{\"method\":\"mining.set_extranonce\",\"params\":[\"abc\",4]}",
		"{\"method\":\"mining.set_extranonce\",\"params\":[\"ab\",1]}",
		"{\"method\":\"mining.set_extranonce\",\"params\":[\"ab\",9]}",
		"{\"method\":\"mining.set_version_mask\",\"params\":[\"1fffe00\"]}",
		"{\"method\":\"client.reconnect\",\"params\":[5]}",
		"{\"method\":\"client.reconnect\",\"params\":[\"h\",70000]}",
		"{\"method\":\"client.reconnect\",\"params\":[\"h\",1,\"x\"]}",
		"{\"method\":\"client.show_message\",\"params\":[1]}",
		"{\"id\":77,\"result\":true,\"error\":null}",
		"{\"id\":\"x\",\"result\":true,\"error\":null}",
		"\x01\x02\xff\xfe",
		"{\"a\":\"\\u0000\"",
	};
	hf_stratum *s = hf_stratum_new(NULL);
	hf_stratum_counters c;
	hf_stratum_event ev;

	for (size_t i = 0; i < HF_ARRAY_SIZE(bad); i++) {
		hf_stratum_feed(s, bad[i], strlen(bad[i]));
		hf_stratum_feed(s, "\n", 1);
		cr_assert(hf_stratum_next_event(s, &ev), "line %zu gave no event", i);
		cr_assert_eq(ev.type, HF_STRATUM_EV_ERROR, "line %zu: type %d", i, ev.type);
		cr_assert(ev.text[0], "line %zu has no detail", i);
		hf_stratum_event_clear(&ev);
		cr_assert_not(hf_stratum_next_event(s, &ev), "line %zu gave two events", i);
	}
	hf_stratum_counters_get(s, &c);
	cr_assert_eq(c.bad_lines, HF_ARRAY_SIZE(bad));
	cr_assert_eq(c.unmatched_responses, 2);
	/* Still works afterwards. */
	hf_stratum_feed(s, "{\"method\":\"mining.set_difficulty\",\"params\":[2]}\n", 48);
	cr_assert(hf_stratum_next_event(s, &ev));
	cr_assert_eq(ev.type, HF_STRATUM_EV_DIFFICULTY);
	hf_stratum_free(s);
}

Test(stratum_core, subscribe_and_authorize_failures)
{
	hf_stratum *s = primed();
	const char *in =
		"{\"id\":1,\"result\":[[],\"0800\",1],\"error\":null}\n"
		"{\"id\":2,\"result\":false,\"error\":{\"code\":24,\"message\":\"Unauthorized worker\"}}\n"
		"{\"id\":3,\"result\":{\"version-rolling\":false},\"error\":null}\n"
		"{\"id\":6,\"result\":null,\"error\":[22,\"Duplicate share\",null]}\n"
		"{\"id\":7,\"result\":false,\"error\":{\"reject-reason\":\"Stale\"}}\n"
		"{\"id\":8,\"result\":null,\"error\":\"boom\"}\n";
	hf_buf out;

	hf_buf_init(&out, 0);
	hf_stratum_feed(s, in, strlen(in));
	drain(s, &out);
	cr_assert_str_eq(out.data, "ERR(-12);SUB(0,,0,,malformed subscribe result);"
			 "AUTH(0,24,Unauthorized worker);CONF(0,00000000);"
			 "SUBMIT(6,0,22,Duplicate share);SUBMIT(7,0,0,Stale);SUBMIT(8,0,0,boom);");
	cr_assert_str_eq(hf_stratum_session_id(s), "");
	hf_buf_free(&out);
	hf_stratum_free(s);
}

/* True when s has no C0/C1 control character or DEL (what hf_text_clean guarantees). */
static bool no_controls(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u; u++)
		if (*u < 0x20 || *u == 0x7f || (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f))
			return false;
	return true;
}

/* A forged journal line, ANSI escapes, BEL and a C1 control in every text a pool sends: the
 * events carry them as '?'; a job id with a newline is refused, not cleaned (it is echoed). */
Test(stratum_core, pool_text_is_cleaned_and_control_job_ids_refused)
{
	hf_stratum *s = primed();
	const char *in =
		"{\"id\":2,\"result\":false,\"error\":[24,\"no\\n<0>such worker\\u001b[31m\",null]}\n"
		"{\"id\":6,\"result\":false,\"error\":[23,\"Low\\r\\ndifficulty\\u0007\",null]}\n"
		"{\"id\":7,\"result\":false,\"error\":null,\"reject-reason\":\"x\\u009by\"}\n"
		"{\"id\":null,\"method\":\"client.show_message\",\"params\":[\"a\\nb\\u001b[2Jc\"]}\n"
		"{\"id\":9,\"method\":\"evil\\n<0>method\\u001b\",\"params\":[]}\n"
		"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j\\n1\",\"" PREV "\",\"01\","
		"\"02\",[],\"20000000\",\"1705ae3a\",\"5e9b3c2a\",true]}\n";
	const char *want[] = { "no?<0>such worker?[31m", "Low??difficulty?", "x?y", "a?b?[2Jc",
			       "unknown method \"evil?<0>method?\"",
			       "mining.notify: job_id \"j?1\" has control characters" };
	hf_stratum_ev_type types[] = { HF_STRATUM_EV_AUTHORIZED, HF_STRATUM_EV_SUBMIT_RESULT,
				       HF_STRATUM_EV_SUBMIT_RESULT, HF_STRATUM_EV_MESSAGE,
				       HF_STRATUM_EV_ERROR, HF_STRATUM_EV_ERROR };
	hf_stratum_event ev;

	hf_stratum_feed(s, in, strlen(in));
	for (size_t i = 0; i < HF_ARRAY_SIZE(want); i++) {
		const char *text;
		cr_assert(hf_stratum_next_event(s, &ev), "event %zu missing", i);
		cr_assert_eq(ev.type, types[i], "event %zu: type %d", i, ev.type);
		text = ev.type == HF_STRATUM_EV_MESSAGE || ev.type == HF_STRATUM_EV_ERROR
		       ? ev.text : ev.err_msg;
		cr_assert(no_controls(text), "event %zu: raw control character", i);
		cr_assert_str_eq(text, want[i], "event %zu", i);
		hf_stratum_event_clear(&ev);
	}
	cr_assert_not(hf_stratum_next_event(s, &ev), "the job was not refused");
	hf_stratum_free(s);
}

Test(stratum_core, pool_mask_is_respected)
{
	hf_stratum *s = hf_stratum_new(NULL);
	const char *in = "{\"id\":1,\"result\":{\"version-rolling\":true,"
			 "\"version-rolling.mask\":\"ffffffff\"},\"error\":null}\n";
	hf_stratum_event ev;

	hf_stratum_configure(s, 0x1fffe000, 2, NULL);
	hf_stratum_feed(s, in, strlen(in));
	cr_assert(hf_stratum_next_event(s, &ev));
	cr_assert_eq(ev.type, HF_STRATUM_EV_CONFIGURED);
	cr_assert_eq(ev.version_mask, 0x1fffe000, "never wider than asked");
	hf_stratum_free(s);
}

Test(stratum_core, oversize_lines_discarded_and_counted)
{
	hf_stratum_opts opts = { .max_line = 1024 };
	hf_stratum *s = hf_stratum_new(&opts);
	char *big = malloc(5000);
	hf_stratum_counters c;
	hf_buf out;

	memset(big, 'x', 5000);
	hf_buf_init(&out, 0);
	for (int i = 0; i < 5; i++)
		hf_stratum_feed(s, big, 1000);
	const char *d4 = "\n{\"method\":\"mining.set_difficulty\",\"params\":[4]}\n";
	hf_stratum_feed(s, d4, strlen(d4));
	/* Exactly at the cap is fine. */
	memcpy(big, "{\"method\":\"mining.set_difficulty\",\"params\":[8]}", 47);
	memset(big + 47, ' ', 1024 - 47);
	hf_stratum_feed(s, big, 1024);
	hf_stratum_feed(s, "\n", 1);
	drain(s, &out);
	cr_assert_str_eq(out.data, "ERR(-5);DIFF(4);DIFF(8);");
	hf_stratum_counters_get(s, &c);
	cr_assert_eq(c.oversize_lines, 1);
	/* Default cap is 64 KiB. */
	hf_stratum_free(s);
	s = hf_stratum_new(NULL);
	char *huge = malloc(70000);
	memset(huge, 'y', 70000);
	hf_stratum_feed(s, huge, 70000);
	hf_stratum_feed(s, "\n", 1);
	hf_stratum_counters_get(s, &c);
	cr_assert_eq(c.oversize_lines, 1);
	free(huge);
	free(big);
	hf_buf_free(&out);
	hf_stratum_free(s);
}

Test(stratum_core, random_garbage_never_crashes)
{
	hf_stratum *s = hf_stratum_new(NULL);
	char buf[512];
	hf_stratum_event ev;

	srand(99);
	for (int i = 0; i < 2000; i++) {
		size_t n = (size_t)(rand() % sizeof buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = "{}[]\":,0123abcdef\n\r \\mining.notify"[rand() % 35];
		hf_stratum_feed(s, buf, n);
		while (hf_stratum_next_event(s, &ev))
			hf_stratum_event_clear(&ev);
	}
	hf_stratum_free(s);
}
