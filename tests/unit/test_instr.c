/* Unit tests for hf_instr: the attack matrix (one crafted envelope per refusal reason and the
 * tampering cases), acceptance (operator, coordinator, fleet threshold, holds), strict payload
 * parsing and the size cap. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_instr.h"
#include "hf_util.h"

#define NOW 1700000000000ull
#define B "\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1700000000000,\"expires_ms\":1700000600000"

static hf_key *op1, *op2, *op3, *coord, *stranger;
static hf_trust *trust;

static json_t *trust_entry(hf_key *k, const char *role)
{
	char *pem = NULL;
	json_t *e;
	cr_assert_eq(hf_key_public_pem(k, &pem, NULL), 0);
	e = json_pack("{s:s, s:s}", "role", role, "public_key_pem", pem);
	free(pem);
	return e;
}

static void setup(void)
{
	hf_key **all[] = { &op1, &op2, &op3, &coord, &stranger };
	hf_errbuf eb;
	json_t *root;

	for (size_t i = 0; i < HF_ARRAY_SIZE(all); i++)
		cr_assert_eq(hf_key_generate(all[i], NULL), 0);
	root = json_pack("{s:[o, o, o, o], s:i}", "keys", trust_entry(op1, "operator"),
			 trust_entry(op2, "operator"), trust_entry(op3, "operator"),
			 trust_entry(coord, "coordinator"), "fleet_threshold", 2);
	cr_assert_eq(hf_trust_from_json(root, &trust, &eb), 0, "%s", eb.msg);
	json_decref(root);
}

static void teardown(void)
{
	hf_trust_free(trust);
	hf_key_free(op1);
	hf_key_free(op2);
	hf_key_free(op3);
	hf_key_free(coord);
	hf_key_free(stranger);
}

TestSuite(instr, .init = setup, .fini = teardown);

static hf_instr_policy policy(void)
{
	return (hf_instr_policy){ .fleet = "f1", .node = "n1", .now_ms = NOW,
				  .last_issued_ms = NOW - 60000, .skew_ms = HF_INSTR_DEFAULT_SKEW_MS };
}

/* Signs payload text with keys (NULL-terminated list). */
static char *sign_keys(const char *payload, hf_key *k, ...)
{
	hf_key *keys[HF_INSTR_MAX_SIGNATURES];
	size_t n = 0;
	char *env = NULL;
	hf_errbuf eb;
	va_list ap;

	va_start(ap, k);
	for (; k && n < HF_INSTR_MAX_SIGNATURES; k = va_arg(ap, hf_key *))
		keys[n++] = k;
	va_end(ap);
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, n, &env, &eb), 0, "%s", eb.msg);
	return env;
}

static char *payload_with(const char *node, uint64_t issued, uint64_t expires, const char *extra)
{
	char *p = malloc(1024);
	snprintf(p, 1024, "{\"v\":1,\"fleet\":\"f1\",\"node\":\"%s\",\"issued_ms\":%llu,"
		 "\"expires_ms\":%llu,\"mode\":\"mining\"%s}", node, (unsigned long long)issued,
		 (unsigned long long)expires, extra ? extra : "");
	return p;
}

static int verify(const char *env, size_t len, const hf_instr_policy *p, hf_instr *out,
		  hf_instr_refusal *why, hf_errbuf *eb)
{
	return hf_instr_verify(trust, env, len, p, out, why, eb);
}

static void expect_refused_p(const char *env, const hf_instr_policy *p, hf_instr_refusal want)
{
	hf_instr in;
	hf_instr_refusal why = HF_REFUSE_NONE;
	hf_errbuf eb;
	int r = verify(env, strlen(env), p, &in, &why, &eb);

	cr_assert_eq(r, HF_EREFUSED, "expected refusal %s, got %d (%s)", hf_instr_refusal_name(want),
		     r, eb.msg);
	cr_assert_eq(why, want, "expected %s, got %s: %s", hf_instr_refusal_name(want),
		     hf_instr_refusal_name(why), eb.msg);
	cr_assert_neq(eb.msg[0], '\0', "a refusal carries detail");
	cr_assert_null(in.payload);
}

static void expect_refused(const char *env, hf_instr_refusal want)
{
	hf_instr_policy p = policy();
	expect_refused_p(env, &p, want);
}

static void expect_accepted_p(const char *env, const hf_instr_policy *p, hf_instr *out)
{
	hf_instr_refusal why = HF_REFUSE_NONE;
	hf_errbuf eb;
	int r = verify(env, strlen(env), p, out, &why, &eb);
	cr_assert_eq(r, 0, "refused (%s): %s", hf_instr_refusal_name(why), eb.msg);
	cr_assert_eq(why, HF_REFUSE_NONE);
}

static void expect_accepted(const char *env, hf_instr *out)
{
	hf_instr_policy p = policy();
	expect_accepted_p(env, &p, out);
}

static json_t *jparse(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	cr_assert_not_null(j);
	return j;
}

static json_t *jparse_free(char *s)
{
	json_t *j = jparse(s);
	free(s);
	return j;
}

static char *jdump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* ---- acceptance ---- */

Test(instr, operator_single_node_is_manual)
{
	char *p = payload_with("n1", NOW, NOW + 600000,
			       ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\","
			       "\"user\":\"w1\",\"pass\":\"x\"}]},\"reason\":{\"hashprice\":0.05}");
	char *env = sign_keys(p, op1, NULL);
	uint8_t digest[32];
	char hex[65];
	hf_instr in;

	expect_accepted(env, &in);
	cr_assert_not(in.automatic);
	cr_assert_eq(in.roles, HF_ROLE_OPERATOR);
	cr_assert_eq(in.mode, HF_INSTR_MINING);
	cr_assert_str_eq(in.fleet, "f1");
	cr_assert_str_eq(in.node, "n1");
	cr_assert_eq(in.issued_ms, NOW);
	cr_assert_eq(in.expires_ms, NOW + 600000);
	cr_assert_not(in.has_hold);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
		json_object_get(in.mining, "pools"), 0), "user")), "w1");
	cr_assert_not_null(in.reason);
	cr_assert_null(in.inference);
	SHA256((const uint8_t *)p, strlen(p), digest);
	hf_hex_encode(digest, 32, hex);
	cr_assert_str_eq(in.payload_sha256, hex);
	hf_instr_clear(&in);
	free(env);
	free(p);
}

Test(instr, coordinator_single_node_is_automatic)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, coord, NULL);
	char *both = sign_keys(p, coord, op2, NULL);
	hf_instr in;

	expect_accepted(env, &in);
	cr_assert(in.automatic);
	cr_assert_eq(in.roles, HF_ROLE_COORDINATOR);
	hf_instr_clear(&in);
	expect_accepted(both, &in);
	cr_assert_not(in.automatic, "an operator signature makes it manual");
	cr_assert_eq(in.roles, HF_ROLE_COORDINATOR | HF_ROLE_OPERATOR);
	hf_instr_clear(&in);
	free(env);
	free(both);
	free(p);
}

Test(instr, fleet_wide_needs_the_threshold)
{
	char *p = payload_with("*", NOW, NOW + 600000, NULL);
	char *two = sign_keys(p, op1, op3, NULL);
	char *one = sign_keys(p, op1, NULL);
	char *one_plus_stranger = sign_keys(p, op1, stranger, NULL);
	char *one_plus_coord = sign_keys(p, op1, coord, NULL);
	char *coord_only = sign_keys(p, coord, NULL);
	hf_instr in;

	expect_accepted(two, &in);
	cr_assert_not(in.automatic);
	cr_assert_str_eq(in.node, "*");
	hf_instr_clear(&in);
	expect_refused(one, HF_REFUSE_THRESHOLD);
	expect_refused(one_plus_stranger, HF_REFUSE_THRESHOLD);
	expect_refused(one_plus_coord, HF_REFUSE_THRESHOLD);
	expect_refused(coord_only, HF_REFUSE_ROLE);
	free(two); free(one); free(one_plus_stranger); free(one_plus_coord); free(coord_only);
	free(p);
}

Test(instr, duplicate_signatures_by_one_key_count_once)
{
	char *p = payload_with("*", NOW, NOW + 600000, NULL);
	json_t *j = jparse_free(sign_keys(p, op1, NULL));
	json_t *sigs = json_object_get(j, "signatures");
	char *env;

	json_array_append(sigs, json_array_get(sigs, 0));
	json_array_append(sigs, json_array_get(sigs, 0));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_THRESHOLD);
	free(env);
	free(p);
}

Test(instr, hold_refuses_automatic_but_not_manual)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *autom = sign_keys(p, coord, NULL), *manual = sign_keys(p, op2, NULL);
	hf_instr_policy pol = policy();
	hf_instr in;

	pol.hold_until_ms = NOW + 1;
	expect_refused_p(autom, &pol, HF_REFUSE_HELD);
	expect_accepted_p(manual, &pol, &in);
	hf_instr_clear(&in);
	pol.hold_until_ms = NOW; /* a pin ends at its time */
	expect_accepted_p(autom, &pol, &in);
	hf_instr_clear(&in);
	free(autom);
	free(manual);
	free(p);
}

Test(instr, only_operators_set_holds)
{
	char *p = payload_with("n1", NOW, NOW + 600000, ",\"hold_until_ms\":1700003600000");
	char *by_op = sign_keys(p, op1, NULL), *by_coord = sign_keys(p, coord, NULL);
	hf_instr in;

	expect_accepted(by_op, &in);
	cr_assert(in.has_hold);
	cr_assert_eq(in.hold_until_ms, 1700003600000ull);
	hf_instr_clear(&in);
	expect_refused(by_coord, HF_REFUSE_ROLE);
	free(by_op);
	free(by_coord);
	free(p);
}

/* ---- refusals: signatures ---- */

Test(instr, unknown_key)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, stranger, NULL), *mixed = sign_keys(p, stranger, op1, NULL);
	hf_instr_policy pol = policy();
	hf_instr_refusal why;
	hf_errbuf eb;
	hf_instr in;

	expect_refused(env, HF_REFUSE_UNKNOWN_KEY);
	expect_accepted(mixed, &in); /* an unknown signature beside a trusted one is ignored */
	hf_instr_clear(&in);
	/* no trust file: everything is refused */
	cr_assert_eq(hf_instr_verify(NULL, mixed, strlen(mixed), &pol, &in, &why, &eb), HF_EREFUSED);
	cr_assert_eq(why, HF_REFUSE_UNKNOWN_KEY);
	cr_assert_not_null(strstr(eb.msg, "no trust file"), "%s", eb.msg);
	free(env);
	free(mixed);
	free(p);
}

/* Replaces the payload's base64url with that of text (signatures untouched). */
static char *with_payload(const char *env, const char *text)
{
	json_t *j = jparse(env);
	char *b64 = malloc(strlen(text) * 2 + 8);
	hf_b64url_encode((const uint8_t *)text, strlen(text), b64);
	json_object_set_new(j, "payload", json_string(b64));
	free(b64);
	return jdump(j);
}

Test(instr, tampered_payload_byte)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, op1, NULL), *bad;
	char *q = strdup(p);

	/* flip one digit of expires_ms: the payload stays valid, only the signature breaks */
	*(strstr(q, "\"expires_ms\":") + 13) = '2';
	bad = with_payload(env, q);
	expect_refused(bad, HF_REFUSE_BAD_SIGNATURE);
	free(bad);
	free(q);
	free(env);
	free(p);
}

Test(instr, tampered_signature_byte)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	json_t *j = jparse_free(sign_keys(p, op1, NULL));
	json_t *sig = json_object_get(json_array_get(json_object_get(j, "signatures"), 0), "sig");
	uint8_t raw[64];
	char b64[100], *env;
	size_t n;

	cr_assert(hf_b64url_decode(json_string_value(sig), json_string_length(sig), raw, 64, &n));
	raw[10] ^= 0x04;
	hf_b64url_encode(raw, 64, b64);
	json_string_set(sig, b64);
	env = jdump(j);
	expect_refused(env, HF_REFUSE_BAD_SIGNATURE);
	free(env);
	free(p);
}

Test(instr, valid_signature_over_another_payload_and_swapped_signatures)
{
	char *pa = payload_with("n1", NOW, NOW + 600000, NULL);
	char *pb = payload_with("n1", NOW + 1, NOW + 600000, NULL);
	json_t *a = jparse_free(sign_keys(pa, op1, NULL)), *b = jparse_free(sign_keys(pb, op2, NULL));
	json_t *sa = json_incref(json_object_get(a, "signatures"));
	char *ea, *eb_;

	json_object_set(a, "signatures", json_object_get(b, "signatures"));
	json_object_set_new(b, "signatures", sa);
	ea = jdump(a);
	eb_ = jdump(b);
	expect_refused(ea, HF_REFUSE_BAD_SIGNATURE);
	expect_refused(eb_, HF_REFUSE_BAD_SIGNATURE);
	free(ea);
	free(eb_);
	free(pa);
	free(pb);
}

Test(instr, bad_signature_under_trusted_id_refuses_even_with_enough_others)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	json_t *j = jparse_free(sign_keys(p, op1, op2, NULL));
	json_t *s1 = json_array_get(json_object_get(j, "signatures"), 1);
	char *env;

	/* op2's id with op1's signature: a forged signature under a trusted id */
	json_object_set(s1, "sig", json_object_get(json_array_get(json_object_get(j, "signatures"), 0),
						   "sig"));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_BAD_SIGNATURE);
	free(env);
	free(p);
}

/* ---- refusals: binding, ordering, time ---- */

Test(instr, wrong_fleet_and_wrong_node)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, op1, NULL);
	hf_instr_policy pol = policy();
	hf_instr in;

	pol.fleet = "f2";
	expect_refused_p(env, &pol, HF_REFUSE_WRONG_FLEET);
	pol = policy();
	pol.node = "n2";
	expect_refused_p(env, &pol, HF_REFUSE_WRONG_NODE);
	free(env);
	free(p);
	/* "*" addresses every node of the fleet */
	p = payload_with("*", NOW, NOW + 600000, NULL);
	env = sign_keys(p, op1, op2, NULL);
	expect_accepted_p(env, &pol, &in);
	hf_instr_clear(&in);
	free(env);
	free(p);
}

Test(instr, replay)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, op1, NULL);
	hf_instr_policy pol = policy();
	hf_instr in;

	pol.last_issued_ms = NOW;
	expect_refused_p(env, &pol, HF_REFUSE_REPLAY);
	pol.last_issued_ms = NOW + 5;
	expect_refused_p(env, &pol, HF_REFUSE_REPLAY);
	pol.last_issued_ms = NOW - 1;
	expect_accepted_p(env, &pol, &in);
	hf_instr_clear(&in);
	free(env);
	free(p);
}

Test(instr, future_beyond_skew)
{
	uint64_t edge = NOW + HF_INSTR_DEFAULT_SKEW_MS;
	char *ok_p = payload_with("n1", edge, edge + 600000, NULL);
	char *bad_p = payload_with("n1", edge + 1, edge + 600000, NULL);
	char *ok = sign_keys(ok_p, op1, NULL), *bad = sign_keys(bad_p, op1, NULL);
	hf_instr in;

	expect_accepted(ok, &in);
	hf_instr_clear(&in);
	expect_refused(bad, HF_REFUSE_FUTURE);
	free(ok); free(bad); free(ok_p); free(bad_p);
}

Test(instr, expired_exactly_at_now)
{
	char *at_p = payload_with("n1", NOW - 1000, NOW, NULL);
	char *after_p = payload_with("n1", NOW - 1000, NOW + 1, NULL);
	char *at = sign_keys(at_p, op1, NULL), *after = sign_keys(after_p, op1, NULL);
	hf_instr in;

	expect_refused(at, HF_REFUSE_EXPIRED);
	expect_accepted(after, &in);
	hf_instr_clear(&in);
	free(at); free(after); free(at_p); free(after_p);
}

Test(instr, policy_order)
{
	/* expired, replayed, wrong node: the first check in order wins */
	char *p = payload_with("n9", NOW - 1000, NOW, NULL);
	char *env = sign_keys(p, op1, NULL), *unknown = sign_keys(p, stranger, NULL);
	char *coord_fw_p = payload_with("*", NOW - 1000, NOW, NULL);
	char *coord_fw = sign_keys(coord_fw_p, coord, NULL);
	hf_instr_policy pol = policy();

	pol.last_issued_ms = NOW;
	pol.fleet = "other";
	expect_refused_p(env, &pol, HF_REFUSE_WRONG_FLEET);
	pol.fleet = "f1";
	expect_refused_p(env, &pol, HF_REFUSE_WRONG_NODE);
	expect_refused_p(unknown, &pol, HF_REFUSE_UNKNOWN_KEY);
	expect_refused_p(coord_fw, &pol, HF_REFUSE_ROLE);
	free(env); free(unknown); free(p); free(coord_fw); free(coord_fw_p);
	/* malformed comes before signatures: an unsigned attacker learns only "malformed" */
	env = sign_keys("{\"v\":2}", stranger, NULL);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);
}

/* ---- refusals: malformed and oversize ---- */

Test(instr, malformed_payloads)
{
	static const char *bad[] = {
		"not json",
		"[1,2]",
		"{\"v\":1," B ",\"mode\":\"idle\"}",                      /* duplicate key */
		"{" B ",\"mode\":\"idle\",\"colour\":1}",                 /* extra field */
		"{\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,\"mode\":\"idle\"}",
		"{" B "}",                                                 /* no mode */
		"{\"v\":2,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":\"1\",\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":9007199254740992,"
		"\"expires_ms\":9007199254740993,\"mode\":\"idle\"}",     /* 2^53: not exact everywhere */
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,"
		"\"expires_ms\":18446744073709551615,\"mode\":\"idle\"}", /* 2^64-1 */
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":1e30,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":-5,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":1.5,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":\"1\",\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":5,\"expires_ms\":5,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":5,\"expires_ms\":4,\"mode\":\"idle\"}",
		"{" B ",\"mode\":\"turbo\"}",
		"{" B ",\"mode\":\"idle\",\"hold_until_ms\":-1}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"n 1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f1\",\"node\":\"\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"*\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{\"v\":1,\"fleet\":\"f\\u0000\",\"node\":\"n1\",\"issued_ms\":1,\"expires_ms\":2,\"mode\":\"idle\"}",
		"{" B ",\"mode\":\"idle\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\",\"user\":\"u\"}]}}",
		"{" B ",\"mode\":\"mining\",\"inference\":{\"models\":[\"m\"]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":[]}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"http://h:1\",\"user\":\"u\"}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://\",\"user\":\"u\"}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\"}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\",\"user\":\"\"}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\",\"user\":\"u\",\"x\":1}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\",\"user\":\"u\",\"pass\":\"a\\nb\"}]}}",
		"{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://h:1\",\"user\":\"u\"}],\"x\":1}}",
		"{" B ",\"mode\":\"inference\",\"inference\":{\"models\":[]}}",
		"{" B ",\"mode\":\"inference\",\"inference\":{\"models\":[1]}}",
		"{" B ",\"mode\":\"inference\",\"inference\":{\"models\":[\"\"]}}",
		"{" B ",\"mode\":\"inference\",\"inference\":{}}",
	};
	hf_instr out;
	hf_errbuf eb;

	for (size_t i = 0; i < HF_ARRAY_SIZE(bad); i++) {
		char *env = sign_keys(bad[i], op1, NULL);
		cr_assert_eq(hf_instr_parse_payload(bad[i], strlen(bad[i]), &out, &eb), HF_EPARSE,
			     "payload %zu accepted: %s", i, bad[i]);
		cr_assert_null(out.payload);
		expect_refused(env, HF_REFUSE_MALFORMED);
		free(env);
	}
}

Test(instr, pool_and_model_bounds)
{
	char pools[2048] = "", models[2048] = "", payload[4096];
	hf_instr out;
	hf_errbuf eb;

	for (int i = 0; i < 9; i++)
		snprintf(pools + strlen(pools), sizeof pools - strlen(pools),
			 "%s{\"url\":\"stratum+ssl://p%d:3333\",\"user\":\"u\"}", i ? "," : "", i);
	snprintf(payload, sizeof payload, "{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[%s]}}",
		 pools);
	cr_assert_eq(hf_instr_parse_payload(payload, strlen(payload), &out, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "mining.pools"), "%s", eb.msg);
	for (char *c = strstr(pools, ",{"), *last = NULL; c || last; c = strstr(c + 1, ",{")) {
		if (!c) {
			*last = '\0'; /* drop the 9th: 8 pools */
			break;
		}
		last = c;
	}
	snprintf(payload, sizeof payload, "{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":[%s]}}",
		 pools);
	cr_assert_eq(hf_instr_parse_payload(payload, strlen(payload), &out, &eb), 0, "%s", eb.msg);
	hf_instr_clear(&out);
	for (int i = 0; i < 17; i++)
		snprintf(models + strlen(models), sizeof models - strlen(models), "%s\"m%d\"",
			 i ? "," : "", i);
	snprintf(payload, sizeof payload,
		 "{" B ",\"mode\":\"inference\",\"inference\":{\"models\":[%s]}}", models);
	cr_assert_eq(hf_instr_parse_payload(payload, strlen(payload), &out, &eb), HF_EPARSE);
	*strrchr(models, ',') = '\0';
	snprintf(payload, sizeof payload,
		 "{" B ",\"mode\":\"inference\",\"inference\":{\"models\":[%s]}}", models);
	cr_assert_eq(hf_instr_parse_payload(payload, strlen(payload), &out, &eb), 0, "%s", eb.msg);
	cr_assert_eq(out.mode, HF_INSTR_INFERENCE);
	cr_assert_eq(json_array_size(json_object_get(out.inference, "models")), 16);
	hf_instr_clear(&out);
	/* the three stratum schemes and a long but bounded user */
	snprintf(payload, sizeof payload, "{" B ",\"mode\":\"mining\",\"mining\":{\"pools\":["
		 "{\"url\":\"stratum+tcp://a:1\",\"user\":\"u\"},{\"url\":\"stratum+tls://b:2\","
		 "\"user\":\"%0255d\",\"pass\":\"\"}]},\"reason\":[1,\"any\",{\"x\":null}]}", 7);
	cr_assert_eq(hf_instr_parse_payload(payload, strlen(payload), &out, &eb), 0, "%s", eb.msg);
	cr_assert(json_is_array(out.reason));
	hf_instr_clear(&out);
	hf_instr_clear(NULL);
}

static char *valid_env(void)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, op1, NULL);
	free(p);
	return env;
}

Test(instr, malformed_envelopes)
{
	char *good = valid_env(), *env;
	json_t *j, *sig;
	const char *raw[] = { "", "null", "[]", "{}", "{\"payload\":\"e30\"}",
			      "{\"payload\":\"e30\",\"signatures\":[]}",
			      "{\"payload\":\"\",\"signatures\":[{\"keyid\":\"0000000000000000\",\"sig\":\"\"}]}" };
	char payload_b64[2048];

	for (size_t i = 0; i < HF_ARRAY_SIZE(raw); i++)
		expect_refused(raw[i], HF_REFUSE_MALFORMED);

	/* extra key, duplicate key, NUL byte */
	j = jparse(good);
	json_object_set_new(j, "comment", json_string("hi"));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);
	env = malloc(strlen(good) + 32);
	sprintf(env, "{\"payload\":\"e30\",%s", good + 1);
	expect_refused(env, HF_REFUSE_MALFORMED);
	{
		hf_instr in;
		hf_instr_refusal why;
		hf_instr_policy pol = policy();
		hf_errbuf eb;
		cr_assert_eq(verify(good, strlen(good) + 1, &pol, &in, &why, &eb), HF_EREFUSED);
		cr_assert_eq(why, HF_REFUSE_MALFORMED, "trailing NUL byte: %s", eb.msg);
	}
	free(env);

	/* keyid in upper case, short signature, padded signature, too many signatures */
	j = jparse(good);
	sig = json_array_get(json_object_get(j, "signatures"), 0);
	char id[17];
	hf_key_id(op1, id);
	for (char *c = id; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 32);
	json_object_set_new(sig, "keyid", json_string(id));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);

	j = jparse(good);
	sig = json_array_get(json_object_get(j, "signatures"), 0);
	char s[100];
	snprintf(s, sizeof s, "%s==", json_string_value(json_object_get(sig, "sig")));
	json_object_set_new(sig, "sig", json_string(s));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);
	j = jparse(good);
	sig = json_array_get(json_object_get(j, "signatures"), 0);
	snprintf(s, sizeof s, "%.84s", json_string_value(json_object_get(sig, "sig")));
	json_object_set_new(sig, "sig", json_string(s));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);
	j = jparse(good);
	sig = json_array_get(json_object_get(j, "signatures"), 0);
	json_object_set_new(sig, "extra", json_true());
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);
	j = jparse(good);
	for (int i = 0; i < 8; i++)
		json_array_append(json_object_get(j, "signatures"),
				  json_array_get(json_object_get(j, "signatures"), 0));
	env = jdump(j);
	expect_refused(env, HF_REFUSE_MALFORMED);
	free(env);

	/* payload: padding, truncation (every length), non-canonical last character, '+' */
	j = jparse(good);
	snprintf(payload_b64, sizeof payload_b64, "%s", json_string_value(json_object_get(j, "payload")));
	json_decref(j);
	for (size_t cut = 1; cut <= 3; cut++) {
		char trunc[2048];
		snprintf(trunc, sizeof trunc, "%.*s", (int)(strlen(payload_b64) - cut), payload_b64);
		j = jparse(good);
		json_object_set_new(j, "payload", json_string(trunc));
		env = jdump(j);
		expect_refused(env, HF_REFUSE_MALFORMED);
		free(env);
	}
	{
		static const char *pre[] = { "", "", "+", "", " " }, *post[] = { "=", "==", "", "\n", "" };
		for (size_t v = 0; v < HF_ARRAY_SIZE(pre); v++) {
			char x[2100];
			snprintf(x, sizeof x, "%s%s%s", pre[v], payload_b64, post[v]);
			j = jparse(good);
			json_object_set_new(j, "payload", json_string(x));
			env = jdump(j);
			expect_refused(env, HF_REFUSE_MALFORMED);
			free(env);
		}
	}
	free(good);
}

Test(instr, non_canonical_payload_encoding)
{
	/* "{}" is e30; "e31" decodes to the same two bytes with non-zero unused bits */
	const char *env = "{\"payload\":\"e31\",\"signatures\":[{\"keyid\":\"0000000000000000\","
			  "\"sig\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}";
	hf_instr_envelope e;
	hf_errbuf eb;
	expect_refused(env, HF_REFUSE_MALFORMED);
	cr_assert_eq(hf_instr_envelope_decode(env, strlen(env), &e, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "payload"), "%s", eb.msg);
}

Test(instr, size_cap)
{
	char *good = valid_env();
	size_t n = strlen(good);
	char *big = malloc(HF_INSTR_MAX_ENVELOPE + 2);
	hf_instr_policy pol = policy();
	hf_instr_refusal why;
	hf_errbuf eb;
	hf_instr in;

	/* pad with JSON whitespace: exactly at the cap is fine, one byte over is oversize */
	memcpy(big, good, n);
	memset(big + n, ' ', HF_INSTR_MAX_ENVELOPE - n);
	big[HF_INSTR_MAX_ENVELOPE] = '\0';
	expect_accepted(big, &in);
	hf_instr_clear(&in);
	big[HF_INSTR_MAX_ENVELOPE] = ' ';
	big[HF_INSTR_MAX_ENVELOPE + 1] = '\0';
	expect_refused(big, HF_REFUSE_OVERSIZE);
	/* oversize is checked before anything is parsed */
	memset(big, 'x', HF_INSTR_MAX_ENVELOPE + 1);
	cr_assert_eq(hf_instr_verify(trust, big, HF_INSTR_MAX_ENVELOPE + 1, &pol, &in, &why, &eb),
		     HF_EREFUSED);
	cr_assert_eq(why, HF_REFUSE_OVERSIZE);
	free(big);
	free(good);
}

Test(instr, sign_refuses_bad_inputs)
{
	char *pem = NULL, *env = NULL;
	hf_key *pub = NULL;
	hf_key *keys[9];
	char *huge = malloc(HF_INSTR_MAX_ENVELOPE + 2);
	hf_errbuf eb;

	cr_assert_eq(hf_key_public_pem(op1, &pem, NULL), 0);
	cr_assert_eq(hf_key_from_pem(pem, strlen(pem), &pub, NULL), 0);
	keys[0] = pub;
	cr_assert_eq(hf_instr_sign("{}", 2, keys, 1, &env, &eb), HF_EINVAL);
	keys[0] = op1;
	keys[1] = op1;
	cr_assert_eq(hf_instr_sign("{}", 2, keys, 2, &env, &eb), HF_EINVAL);
	cr_assert_eq(hf_instr_sign("{}", 2, keys, 0, &env, &eb), HF_EINVAL);
	for (int i = 0; i < 9; i++)
		keys[i] = op1;
	cr_assert_eq(hf_instr_sign("{}", 2, keys, 9, &env, &eb), HF_EINVAL);
	/* 12 KiB of payload encodes past the 16 KiB envelope cap */
	memset(huge, ' ', HF_INSTR_MAX_ENVELOPE);
	cr_assert_eq(hf_instr_sign(huge, 12500, keys, 1, &env, &eb), HF_ETOOBIG, "%s", eb.msg);
	cr_assert_null(env);
	free(huge);
	free(pem);
	hf_key_free(pub);
}

Test(instr, envelope_decode_and_signed_message)
{
	char *p = payload_with("n1", NOW, NOW + 600000, NULL);
	char *env = sign_keys(p, op1, coord, NULL);
	hf_instr_envelope e;
	char id[17];
	uint8_t *msg;
	size_t mlen;

	cr_assert_eq(hf_instr_envelope_decode(env, strlen(env), &e, NULL), 0);
	cr_assert_eq(e.nsigs, 2);
	cr_assert_eq(e.payload_len, strlen(p));
	cr_assert_str_eq((char *)e.payload, p);
	hf_key_id(coord, id);
	cr_assert_str_eq(e.sigs[1].keyid, id);
	cr_assert_eq(hf_instr_signed_message(e.payload, e.payload_len, &msg, &mlen, NULL), 0);
	cr_assert_eq(mlen, strlen(HF_INSTR_DOMAIN) + strlen(p));
	cr_assert_eq(memcmp(msg, "hashflop-instruction-v1\n", 24), 0);
	cr_assert(hf_key_verify(coord, msg, mlen, e.sigs[1].sig));
	cr_assert_not(hf_key_verify(coord, e.payload, e.payload_len, e.sigs[1].sig),
		      "the domain string is part of what is signed");
	free(msg);
	hf_instr_envelope_clear(&e);
	free(env);
	free(p);
}

Test(instr, refusal_and_mode_names)
{
	static const char *want[HF_REFUSE_COUNT] = {
		"none", "bad_signature", "unknown_key", "role", "threshold", "replay", "expired",
		"future", "wrong_node", "wrong_fleet", "malformed", "oversize", "held",
	};
	hf_instr_mode m;
	for (int i = 0; i < HF_REFUSE_COUNT; i++)
		cr_assert_str_eq(hf_instr_refusal_name((hf_instr_refusal)i), want[i]);
	cr_assert(hf_instr_mode_parse("inference", &m) && m == HF_INSTR_INFERENCE);
	cr_assert_not(hf_instr_mode_parse("Mining", &m));
	cr_assert_str_eq(hf_instr_mode_name(HF_INSTR_IDLE), "idle");
	cr_assert_str_eq(hf_instr_mode_name(HF_INSTR_MINING), "mining");
}
