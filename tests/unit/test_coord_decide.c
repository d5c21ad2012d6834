/* Unit tests for the coordinator's fleet-wide decisions (hf_coord_decide with "*"): every node's
 * envelope, signed from the payload template over several chunks, verifies as a node would,
 * carries exactly the payload bytes jansson would have written, and its record's payload_sha256
 * matches; and hf_instr_sign's envelope bytes are what json_dumps wrote before.
 * Threading: the test thread only (the coordinator's signing threads run inside decide). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_coord.h"
#include "hf_coord_config.h"
#include "hf_coord_store.h"
#include "hf_instr.h"
#include "hf_util.h"

#define NODES 1100 /* over two chunks of 512: both pipeline buffers, a short last chunk */

static char dir[] = "/tmp/hf-coord-decide-XXXXXX";
static hf_key *ckey, *okey;

static char *path_in(const char *name)
{
	static char p[16][512];
	static int k;
	char *out = p[k++ & 15]; /* rotating: a few paths at a time */
	snprintf(out, sizeof p[0], "%s/%s", dir, name);
	return out;
}

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
	json_t *trust;
	hf_coord_store *s;
	hf_coord_store_opts so = { 0 };
	hf_errbuf eb;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(hf_key_generate(&ckey, NULL), 0);
	cr_assert_eq(hf_key_generate(&okey, NULL), 0);
	cr_assert_eq(hf_key_write_private_pem(ckey, path_in("coord.pem"), NULL), 0);
	trust = json_pack("{s:[o, o], s:i}", "keys", trust_entry(ckey, "coordinator"),
			  trust_entry(okey, "operator"), "fleet_threshold", 1);
	cr_assert_eq(json_dump_file(trust, path_in("trust.json"), 0), 0);
	json_decref(trust);
	so.path = path_in("coord.db");
	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_store_open_sqlite(&so, &s, &eb), 0, "%s", eb.msg);
	for (int i = 0; i < NODES; i++) {
		hf_coord_node_rec n;
		memset(&n, 0, sizeof n);
		snprintf(n.id, sizeof n.id, "rack-%02d.node_%04d", i % 7, i);
		hf_coord_token_hash(n.id, strlen(n.id), n.token_hash);
		n.added_ms = 1;
		cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), 0, "%s", eb.msg);
	}
	hf_coord_store_free(s);
}

static void teardown(void)
{
	const char *names[] = { "coord.pem", "trust.json", "coord.db", "coord.db-wal",
				"coord.db-shm", "coord-api.json" };
	for (size_t i = 0; i < HF_ARRAY_SIZE(names); i++)
		unlink(path_in(names[i]));
	rmdir(dir);
	hf_key_free(ckey);
	hf_key_free(okey);
}

TestSuite(coord_decide, .init = setup, .fini = teardown);

static hf_coord *coord_open(void)
{
	hf_coord_config cfg;
	hf_coord *c = NULL;
	hf_errbuf eb;
	json_t *j = json_pack("{s:s, s:{s:s, s:i}, s:s, s:s, s:s}", "fleet_id", "fleet-1", "listen",
			      "address", "127.0.0.1", "port", 0, "signing_key", path_in("coord.pem"),
			      "trust_file", path_in("trust.json"), "database", path_in("coord.db"));

	hf_errbuf_clear(&eb);
	hf_coord_config_defaults(&cfg);
	cr_assert_eq(hf_coord_config_from_json(&cfg, j, &eb), 0, "%s", eb.msg);
	json_decref(j);
	cr_assert_eq(hf_coord_new(&cfg, &c, &eb), 0, "%s", eb.msg);
	return c;
}

/* The payload bytes of an envelope (malloc'ed, NUL-terminated). */
static char *payload_of(const char *env)
{
	hf_instr_envelope ev;
	char *p;
	cr_assert_eq(hf_instr_envelope_decode(env, strlen(env), &ev, NULL), 0);
	p = malloc(ev.payload_len + 1);
	memcpy(p, ev.payload, ev.payload_len);
	p[ev.payload_len] = '\0';
	hf_instr_envelope_clear(&ev);
	return p;
}

Test(coord_decide, fleet_wide_envelopes_verify_and_match_jansson)
{
	json_t *mining = json_loads("{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\","
				    "\"user\":\"w\\\"1\\u00e9\",\"pass\":\"x\"}]}", 0, NULL);
	json_t *reason = json_loads("{\"price\":0.0015,\"note\":\"a\\nb\",\"n\":[1,2.25,true,null],"
				    "\"big\":18446744073709551}", 0, NULL);
	hf_coord_decision_req q = { .node = "*", .mode = "mining", .mining = mining,
				    .reason = reason, .source = "api" };
	hf_coord_decision_res res;
	hf_coord_decision_rec *recs = NULL;
	hf_coord_store_opts so = { .path = path_in("coord.db") };
	hf_coord_store *s;
	hf_trust *trust;
	hf_errbuf eb;
	size_t n = 0;
	hf_coord *c = coord_open();

	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_decide(c, &q, &res, &eb), 0, "%s", eb.msg);
	cr_assert_eq(res.nseq, NODES);
	for (size_t i = 1; i < res.nseq; i++)
		cr_assert_gt(res.seq[i], res.seq[i - 1]);
	hf_coord_free(c);

	cr_assert_eq(hf_trust_load(path_in("trust.json"), &trust, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_open_sqlite(&so, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &recs, &n, &eb), 0, "%s", eb.msg);
	cr_assert_eq(n, NODES);
	for (size_t i = 0; i < n; i++) {
		hf_instr_policy pol = { .fleet = "fleet-1", .node = recs[i].node,
					.now_ms = res.issued_ms, .skew_ms = 1000 };
		hf_instr in;
		hf_instr_refusal why;
		char *payload = payload_of(recs[i].envelope), *again, hex[65];
		unsigned char md[32];
		json_t *want;

		cr_assert_eq(recs[i].seq, res.seq[i]);
		cr_assert_eq(hf_instr_verify(trust, recs[i].envelope, strlen(recs[i].envelope), &pol,
					     &in, &why, &eb), 0, "%s: %s", recs[i].node, eb.msg);
		cr_assert(in.automatic);
		cr_assert_str_eq(in.node, recs[i].node);
		cr_assert_eq(in.issued_ms, res.issued_ms);
		cr_assert(json_equal(in.mining, mining));
		cr_assert(json_equal(in.reason, reason));
		/* the bytes the jansson path writes for this node */
		want = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:O, s:O}", "v", 1, "fleet",
				 "fleet-1", "node", recs[i].node, "issued_ms",
				 (json_int_t)in.issued_ms, "expires_ms", (json_int_t)in.expires_ms,
				 "mode", "mining", "mining", mining, "reason", reason);
		again = json_dumps(want, JSON_COMPACT);
		cr_assert_str_eq(payload, again);
		SHA256((const unsigned char *)payload, strlen(payload), md);
		hf_hex_encode(md, 32, hex);
		cr_assert_str_eq(recs[i].payload_sha256, hex);
		cr_assert_str_eq(in.payload_sha256, hex);
		free(again);
		json_decref(want);
		free(payload);
		hf_instr_clear(&in);
		hf_coord_decision_rec_clear(&recs[i]);
	}
	free(recs);
	hf_coord_store_free(s);
	hf_trust_free(trust);
	hf_coord_decision_res_clear(&res);
	json_decref(mining);
	json_decref(reason);
}

Test(coord_decide, sign_writes_the_bytes_json_dumps_wrote)
{
	const char *payloads[] = { "{\"v\":1}", "{\"v\":1} ", "{\"v\":1}  ", "x" };
	hf_key *keys[3] = { ckey, okey, NULL };

	cr_assert_eq(hf_key_generate(&keys[2], NULL), 0);
	for (size_t nk = 1; nk <= 3; nk++) {
		for (size_t i = 0; i < HF_ARRAY_SIZE(payloads); i++) {
			size_t len = strlen(payloads[i]);
			char *env = NULL, *want, b64[32], sigb64[100], id[HF_INSTR_KEYID_LEN + 1];
			json_t *root, *sigs = json_array();
			uint8_t *msg, sig[HF_INSTR_SIG_LEN];
			size_t msglen;

			cr_assert_eq(hf_instr_sign(payloads[i], len, keys, nk, &env, NULL), 0);
			cr_assert_eq(hf_instr_signed_message((const uint8_t *)payloads[i], len, &msg,
							     &msglen, NULL), 0);
			for (size_t k = 0; k < nk; k++) {
				/* Ed25519 is deterministic: the same signature again */
				cr_assert_eq(hf_key_sign(keys[k], msg, msglen, sig, NULL), 0);
				hf_b64url_encode(sig, sizeof sig, sigb64);
				hf_key_id(keys[k], id);
				json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", id,
								      "sig", sigb64));
			}
			hf_b64url_encode((const uint8_t *)payloads[i], len, b64);
			root = json_pack("{s:s, s:o}", "payload", b64, "signatures", sigs);
			want = json_dumps(root, JSON_COMPACT);
			cr_assert_str_eq(env, want, "%zu keys, payload %zu", nk, i);
			free(want);
			json_decref(root);
			free(msg);
			free(env);
		}
	}
	hf_key_free(keys[2]);
}
