/* fuzz_instr: libFuzzer target for the signed-instruction parsers and policy (hf_instr).
 *
 * The first input byte picks what the rest is: 0 an envelope verified as a node would, 1 a
 * payload parsed alone, 2 a payload signed here with a trusted key (operator, coordinator or
 * both, by the byte's high bits) and then verified, so the fuzzer reaches the checks that
 * only run after the signatures verify. Any crash, leak or sanitizer report is a bug.
 * Threading: libFuzzer calls the target from one thread; the keys and trust are built once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_instr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hf_key *op_key, *coord_key;
static hf_trust *trust;

static json_t *entry(hf_key *k, const char *role)
{
	char *pem = NULL;
	json_t *e;
	if (hf_key_public_pem(k, &pem, NULL) < 0)
		abort();
	e = json_pack("{s:s, s:s}", "role", role, "public_key_pem", pem);
	free(pem);
	return e;
}

static void init_once(void)
{
	uint8_t seed[32];
	json_t *root;

	if (trust)
		return;
	memset(seed, 0x11, sizeof seed);
	if (hf_key_from_raw_private(seed, &op_key, NULL) < 0)
		abort();
	memset(seed, 0x22, sizeof seed);
	if (hf_key_from_raw_private(seed, &coord_key, NULL) < 0)
		abort();
	root = json_pack("{s:[o, o], s:i}", "keys", entry(op_key, "operator"),
			 entry(coord_key, "coordinator"), "fleet_threshold", 1);
	if (hf_trust_from_json(root, &trust, NULL) < 0)
		abort();
	json_decref(root);
}

static void verify(const char *env, size_t len, uint8_t knob)
{
	hf_instr_policy pol = { .fleet = "f1", .node = "n1", .now_ms = 1700000000000ull,
				.last_issued_ms = (knob & 4) ? 1699999990000ull : 0,
				.skew_ms = HF_INSTR_DEFAULT_SKEW_MS,
				.hold_until_ms = (knob & 8) ? 1700000100000ull : 0 };
	hf_instr_refusal why;
	hf_errbuf eb;
	hf_instr in;

	if (hf_instr_verify(trust, env, len, &pol, &in, &why, &eb) == 0) {
		if (!in.payload || in.expires_ms <= pol.now_ms || why != HF_REFUSE_NONE)
			abort(); /* accepted must mean valid and unexpired */
		hf_instr_clear(&in);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hf_instr in;
	hf_key *keys[2];
	char *env = NULL;
	size_t nkeys;

	if (size < 1)
		return 0;
	init_once();
	switch (data[0] % 3) {
	case 0:
		verify((const char *)data + 1, size - 1, data[0]);
		break;
	case 1:
		if (hf_instr_parse_payload((const char *)data + 1, size - 1, &in, NULL) == 0)
			hf_instr_clear(&in);
		break;
	default:
		nkeys = 0;
		if (!(data[0] & 0x40))
			keys[nkeys++] = op_key;
		if (data[0] & 0xc0)
			keys[nkeys++] = coord_key;
		if (hf_instr_sign((const char *)data + 1, size - 1, keys, nkeys, &env, NULL) == 0) {
			verify(env, strlen(env), data[0]);
			free(env);
		}
		break;
	}
	return 0;
}
