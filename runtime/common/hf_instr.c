/* hf_instr: the signed instruction, contract v1: envelope decoding, strict payload parsing,
 * signing, and the node's acceptance policy (keys and base64url: hf_key.c; trust: hf_trust.c).
 *
 * Decisions (documented for operators in runtime/common/INSTRUCTIONS.md):
 * - Envelope: at most HF_INSTR_MAX_ENVELOPE bytes, no NUL byte, a JSON object with exactly the
 *   keys "payload" (non-empty strict base64url) and "signatures" (1..8 objects with exactly
 *   "keyid", 16 lower-case hex digits, and "sig", base64url of exactly 64 bytes). Duplicate JSON
 *   keys are refused everywhere.
 * - Payload: a JSON object; unknown keys refused. Integers are 0..2^53-1 (exact in every JSON
 *   implementation), so "huge", negative and fractional numbers are malformed. fleet is an id
 *   (hf_id_valid), node an id or "*"; expires_ms > issued_ms. mining is only allowed with mode
 *   "mining" and inference only with mode "inference". mining = {"pools": 1..8 of {"url", "user",
 *   "pass"?}}, url stratum+tcp:// | stratum+ssl:// | stratum+tls:// with a non-empty rest, strings
 *   at most 255 bytes without control characters, user non-empty. inference = {"models": 1..16
 *   strings of 1..255 bytes without control characters}. reason is any JSON value.
 * - Signatures: a signature whose keyid is not in the trust file is ignored (key rotation); if
 *   none is by a trusted key the refusal is unknown_key. A signature by a trusted key that does
 *   not verify refuses the whole envelope (bad_signature), even if others would suffice: a
 *   forged signature under a trusted id means tampering. Several signatures by one key count once.
 * - Authority: manual when enough distinct operator keys verified (1 for a node, the trust file's
 *   fleet_threshold for "*"); else automatic when a coordinator key verified (single node only).
 *   Too few operator signatures for "*" is threshold; coordinator-only for "*" is role; an
 *   automatic instruction carrying hold_until_ms is role (only operators pin).
 * - Policy checks run in this order, the first failure is the reason: oversize, malformed,
 *   signatures (unknown_key, bad_signature), role/threshold, wrong_fleet, wrong_node, replay
 *   (issued_ms <= last accepted), future (issued_ms > now + skew), expired (expires_ms <= now),
 *   held (automatic while policy hold_until_ms > now).
 * - A return other than 0 or HF_EREFUSED (out of memory, bad arguments) accepts nothing and sets
 *   *why to HF_REFUSE_NONE.
 * Threading: reentrant; trust objects may be shared (read only).
 */
#include "hf_instr.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

#define MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1 */
#define MAX_POOLS 8
#define MAX_MODELS 16
#define MAX_FIELD 256 /* bytes with the NUL: strings in mining and inference */
#define B64_SIG_LEN 86 /* base64url of 64 bytes without padding */

static const char *const mode_names[] = { "idle", "mining", "inference", NULL };

const char *hf_instr_mode_name(hf_instr_mode m)
{
	return (unsigned)m < 3 ? mode_names[m] : "unknown";
}

bool hf_instr_mode_parse(const char *s, hf_instr_mode *out)
{
	for (int i = 0; s && mode_names[i]; i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (hf_instr_mode)i;
			return true;
		}
	}
	return false;
}

const char *hf_instr_refusal_name(hf_instr_refusal r)
{
	switch (r) {
	case HF_REFUSE_NONE: return "none";
	case HF_REFUSE_BAD_SIGNATURE: return "bad_signature";
	case HF_REFUSE_UNKNOWN_KEY: return "unknown_key";
	case HF_REFUSE_ROLE: return "role";
	case HF_REFUSE_THRESHOLD: return "threshold";
	case HF_REFUSE_REPLAY: return "replay";
	case HF_REFUSE_EXPIRED: return "expired";
	case HF_REFUSE_FUTURE: return "future";
	case HF_REFUSE_WRONG_NODE: return "wrong_node";
	case HF_REFUSE_WRONG_FLEET: return "wrong_fleet";
	case HF_REFUSE_MALFORMED: return "malformed";
	case HF_REFUSE_OVERSIZE: return "oversize";
	case HF_REFUSE_HELD: return "held";
	}
	return "unknown";
}

void hf_instr_clear(hf_instr *in)
{
	if (!in)
		return;
	json_decref(in->mining);
	json_decref(in->inference);
	json_decref(in->reason);
	json_decref(in->payload);
	memset(in, 0, sizeof *in);
}

/* ---- payload ---- */

static bool no_controls(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* A bounded string without control characters; len 1.. when nonempty. */
static int check_text(const json_t *v, const char *path, bool nonempty, hf_errbuf *eb)
{
	char got[96];

	hf_cfg_describe(v, got, sizeof got);
	if (!json_is_string(v))
		return hf_fail(eb, HF_EPARSE, "%s: expected a string, got %s", path, got);
	if (json_string_length(v) >= MAX_FIELD)
		return hf_fail(eb, HF_EPARSE, "%s: string too long (%zu bytes, at most %d)", path,
			       json_string_length(v), MAX_FIELD - 1);
	if (nonempty && json_string_length(v) == 0)
		return hf_fail(eb, HF_EPARSE, "%s: must not be empty", path);
	if (strlen(json_string_value(v)) != json_string_length(v) ||
	    !no_controls(json_string_value(v)))
		return hf_fail(eb, HF_EPARSE, "%s: control characters are not allowed", path);
	return 0;
}

static int check_pool(const json_t *pool, const char *path, hf_errbuf *eb)
{
	static const char *const schemes[] = { "stratum+tcp://", "stratum+ssl://", "stratum+tls://" };
	char url[MAX_FIELD], user[MAX_FIELD], pass[MAX_FIELD], fp[HF_CFG_PATH_MAX];
	const hf_cfg_field fields[] = {
		{ .key = "url", .type = HF_CFG_STRING, .required = true, .dst = url, .dst_size = MAX_FIELD },
		{ .key = "user", .type = HF_CFG_STRING, .required = true, .dst = user, .dst_size = MAX_FIELD },
		{ .key = "pass", .type = HF_CFG_STRING, .dst = pass, .dst_size = MAX_FIELD },
	};
	int r = hf_cfg_read(pool, path, fields, HF_ARRAY_SIZE(fields), eb);

	if (r < 0)
		return r;
	for (size_t i = 0; i < HF_ARRAY_SIZE(fields); i++) {
		const json_t *v = json_object_get(pool, fields[i].key);
		hf_cfg_path_key(fp, sizeof fp, path, fields[i].key);
		if (v && (r = check_text(v, fp, i < 2, eb)) < 0)
			return r;
	}
	for (size_t i = 0; i < HF_ARRAY_SIZE(schemes); i++) {
		size_t n = strlen(schemes[i]);
		if (strncmp(url, schemes[i], n) == 0 && url[n] != '\0')
			return 0;
	}
	return hf_fail(eb, HF_EPARSE, "%s.url: expected stratum+tcp://, stratum+ssl:// or "
		       "stratum+tls:// followed by host:port, got \"%.64s\"", path, url);
}

static int check_mining(const json_t *m, hf_errbuf *eb)
{
	const json_t *pools = NULL;
	char path[HF_CFG_PATH_MAX];
	const hf_cfg_field fields[] = {
		{ .key = "pools", .type = HF_CFG_ARRAY, .required = true, .dst = &pools, .min = 1,
		  .max = MAX_POOLS },
	};
	int r = hf_cfg_read(m, "mining", fields, HF_ARRAY_SIZE(fields), eb);

	for (size_t i = 0; r == 0 && i < json_array_size(pools); i++) {
		hf_cfg_path_index(path, sizeof path, "mining.pools", i);
		r = check_pool(json_array_get(pools, i), path, eb);
	}
	return r;
}

static int check_inference(const json_t *inf, hf_errbuf *eb)
{
	const json_t *models = NULL;
	char path[HF_CFG_PATH_MAX];
	const hf_cfg_field fields[] = {
		{ .key = "models", .type = HF_CFG_ARRAY, .required = true, .dst = &models, .min = 1,
		  .max = MAX_MODELS },
	};
	int r = hf_cfg_read(inf, "inference", fields, HF_ARRAY_SIZE(fields), eb);

	for (size_t i = 0; r == 0 && i < json_array_size(models); i++) {
		hf_cfg_path_index(path, sizeof path, "inference.models", i);
		r = check_text(json_array_get(models, i), path, true, eb);
	}
	return r;
}

/* Field table pass over the payload (reason removed: it may be any JSON value). */
static int read_fields(const json_t *root, hf_instr *out, hf_errbuf *eb)
{
	const json_t *mining = NULL, *inference = NULL;
	uint64_t v = 0;
	int mode = 0;
	json_t *copy = json_copy((json_t *)root);
	const hf_cfg_field fields[] = {
		{ .key = "v", .type = HF_CFG_UINT, .required = true, .dst = &v, .min = 1, .max = 1 },
		{ .key = "fleet", .type = HF_CFG_STRING, .required = true, .dst = out->fleet,
		  .dst_size = sizeof out->fleet, .min = 1 },
		{ .key = "node", .type = HF_CFG_STRING, .required = true, .dst = out->node,
		  .dst_size = sizeof out->node, .min = 1 },
		{ .key = "issued_ms", .type = HF_CFG_UINT, .required = true, .dst = &out->issued_ms,
		  .max = MAX_SAFE_INT },
		{ .key = "expires_ms", .type = HF_CFG_UINT, .required = true, .dst = &out->expires_ms,
		  .max = MAX_SAFE_INT },
		{ .key = "mode", .type = HF_CFG_ENUM, .required = true, .dst = &mode,
		  .choices = mode_names },
		{ .key = "hold_until_ms", .type = HF_CFG_UINT, .dst = &out->hold_until_ms,
		  .max = MAX_SAFE_INT, .present = &out->has_hold },
		{ .key = "mining", .type = HF_CFG_OBJECT, .dst = &mining },
		{ .key = "inference", .type = HF_CFG_OBJECT, .dst = &inference },
	};
	int r;

	if (!copy)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	json_object_del(copy, "reason");
	r = hf_cfg_read(copy, "", fields, HF_ARRAY_SIZE(fields), eb);
	json_decref(copy); /* shallow: the values stay alive in root */
	if (r < 0)
		return r == HF_ECONFIG ? HF_EPARSE : r;
	out->mode = (hf_instr_mode)mode;
	if (!hf_id_valid(out->fleet))
		return hf_fail(eb, HF_EPARSE, "fleet: \"%s\" is not an id ([A-Za-z0-9._-], 1-63, "
			       "starting alphanumeric)", out->fleet);
	if (strcmp(out->node, "*") != 0 && !hf_id_valid(out->node))
		return hf_fail(eb, HF_EPARSE, "node: \"%s\" is neither a node id nor \"*\"", out->node);
	if (out->expires_ms <= out->issued_ms)
		return hf_fail(eb, HF_EPARSE, "expires_ms (%llu) must be after issued_ms (%llu)",
			       (unsigned long long)out->expires_ms, (unsigned long long)out->issued_ms);
	if (mining && out->mode != HF_INSTR_MINING)
		return hf_fail(eb, HF_EPARSE, "mining: only allowed with mode \"mining\"");
	if (inference && out->mode != HF_INSTR_INFERENCE)
		return hf_fail(eb, HF_EPARSE, "inference: only allowed with mode \"inference\"");
	if (mining && (r = check_mining(mining, eb)) < 0)
		return r == HF_ECONFIG ? HF_EPARSE : r;
	if (inference && (r = check_inference(inference, eb)) < 0)
		return r == HF_ECONFIG ? HF_EPARSE : r;
	out->mining = json_incref((json_t *)mining);
	out->inference = json_incref((json_t *)inference);
	return 0;
}

int hf_instr_parse_payload(const char *payload, size_t len, hf_instr *out, hf_errbuf *eb)
{
	uint8_t digest[32];
	unsigned dlen = 0;
	json_error_t jerr;
	json_t *root;
	int r;

	memset(out, 0, sizeof *out);
	if (!payload)
		return hf_fail(eb, HF_EINVAL, "no payload");
	if (len > HF_INSTR_MAX_ENVELOPE)
		return hf_fail(eb, HF_ETOOBIG, "payload: %zu bytes, at most %d", len,
			       HF_INSTR_MAX_ENVELOPE);
	if (memchr(payload, '\0', len))
		return hf_fail(eb, HF_EPARSE, "payload: contains a NUL byte");
	root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return hf_fail(eb, HF_EPARSE, "payload: invalid JSON at %d:%d: %s", jerr.line,
			       jerr.column, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return hf_fail(eb, HF_EPARSE, "payload: expected a JSON object");
	}
	r = read_fields(root, out, eb);
	if (r < 0)
		goto fail;
	if (EVP_Digest(payload, len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32) {
		r = hf_fail(eb, HF_ECRYPTO, "SHA-256 failed");
		goto fail;
	}
	hf_hex_encode(digest, 32, out->payload_sha256);
	out->reason = json_incref(json_object_get(root, "reason"));
	out->payload = root;
	return 0;
fail:
	json_decref(root);
	hf_instr_clear(out);
	return r;
}

/* ---- envelope ---- */

static int decode_sig(const json_t *s, size_t i, hf_instr_sig *out, hf_errbuf *eb)
{
	const json_t *kid = json_object_get(s, "keyid"), *sig = json_object_get(s, "sig");
	size_t n = 0;

	if (!json_is_object(s) || json_object_size(s) != 2 || !kid || !sig)
		return hf_fail(eb, HF_EPARSE, "signatures[%zu]: expected exactly {\"keyid\", \"sig\"}", i);
	if (!json_is_string(kid) || !hf_keyid_valid(json_string_value(kid)))
		return hf_fail(eb, HF_EPARSE, "signatures[%zu].keyid: expected 16 lower-case hex "
			       "digits", i);
	if (!json_is_string(sig) || json_string_length(sig) != B64_SIG_LEN ||
	    !hf_b64url_decode(json_string_value(sig), B64_SIG_LEN, out->sig, sizeof out->sig, &n) ||
	    n != HF_INSTR_SIG_LEN)
		return hf_fail(eb, HF_EPARSE, "signatures[%zu].sig: expected base64url (no padding) "
			       "of a 64-byte Ed25519 signature", i);
	memcpy(out->keyid, json_string_value(kid), HF_INSTR_KEYID_LEN + 1);
	return 0;
}

static int decode_payload(const json_t *p, hf_instr_envelope *out, hf_errbuf *eb)
{
	size_t n = json_is_string(p) ? json_string_length(p) : 0;

	if (n == 0)
		return hf_fail(eb, HF_EPARSE, "payload: expected a non-empty base64url string");
	out->payload = malloc(n / 4 * 3 + 3);
	if (!out->payload)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if (!hf_b64url_decode(json_string_value(p), n, out->payload, n / 4 * 3 + 2,
			      &out->payload_len))
		return hf_fail(eb, HF_EPARSE, "payload: not canonical base64url without padding");
	out->payload[out->payload_len] = '\0';
	return 0;
}

int hf_instr_envelope_decode(const char *envelope, size_t len, hf_instr_envelope *out,
			     hf_errbuf *eb)
{
	const json_t *sigs;
	json_error_t jerr;
	const char *key;
	json_t *root, *v;
	int r = 0;

	memset(out, 0, sizeof *out);
	if (!envelope)
		return hf_fail(eb, HF_EINVAL, "no envelope");
	if (len > HF_INSTR_MAX_ENVELOPE)
		return hf_fail(eb, HF_ETOOBIG, "envelope: %zu bytes, at most %d", len,
			       HF_INSTR_MAX_ENVELOPE);
	if (memchr(envelope, '\0', len))
		return hf_fail(eb, HF_EPARSE, "envelope: contains a NUL byte");
	root = json_loadb(envelope, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return hf_fail(eb, HF_EPARSE, "envelope: invalid JSON at %d:%d: %s", jerr.line,
			       jerr.column, jerr.text);
	if (!json_is_object(root)) {
		r = hf_fail(eb, HF_EPARSE, "envelope: expected a JSON object");
		goto free_root;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "payload") != 0 && strcmp(key, "signatures") != 0) {
			r = hf_fail(eb, HF_EPARSE, "envelope.%.64s: unknown key (expected one of: "
				    "payload, signatures)", key);
			goto free_root;
		}
	}
	sigs = json_object_get(root, "signatures");
	if (!json_is_array(sigs) || json_array_size(sigs) < 1 ||
	    json_array_size(sigs) > HF_INSTR_MAX_SIGNATURES) {
		r = hf_fail(eb, HF_EPARSE, "signatures: expected an array of 1 to %d signatures",
			    HF_INSTR_MAX_SIGNATURES);
		goto free_root;
	}
	for (size_t i = 0; i < json_array_size(sigs); i++)
		if ((r = decode_sig(json_array_get(sigs, i), i, &out->sigs[i], eb)) < 0)
			goto free_root;
	out->nsigs = json_array_size(sigs);
	r = decode_payload(json_object_get(root, "payload"), out, eb);
free_root:
	json_decref(root);
	if (r < 0)
		hf_instr_envelope_clear(out);
	return r;
}

void hf_instr_envelope_clear(hf_instr_envelope *e)
{
	if (!e)
		return;
	free(e->payload);
	memset(e, 0, sizeof *e);
}

int hf_instr_signed_message(const uint8_t *payload, size_t len, uint8_t **msg, size_t *msglen,
			    hf_errbuf *eb)
{
	size_t dl = strlen(HF_INSTR_DOMAIN);

	*msg = malloc(dl + len + 1);
	if (!*msg)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	memcpy(*msg, HF_INSTR_DOMAIN, dl);
	if (len)
		memcpy(*msg + dl, payload, len);
	*msglen = dl + len;
	return 0;
}

/* ---- signing ---- */

/* Appends {"keyid":"...","sig":"..."} for k at out (room for SIG_ENTRY_MAX bytes); the length
 * written. The bytes are what json_dumps(JSON_COMPACT) wrote before: hex and base64url need
 * no escaping. */
#define SIG_ENTRY_MAX (sizeof "{\"keyid\":\"\",\"sig\":\"\"}," + HF_INSTR_KEYID_LEN + B64_SIG_LEN)
static int add_signature(char *out, size_t *n, const hf_key *k, const uint8_t *msg, size_t msglen,
			 hf_errbuf *eb)
{
	uint8_t sig[HF_INSTR_SIG_LEN];
	char b64[B64_SIG_LEN + 2], id[HF_INSTR_KEYID_LEN + 1];
	int r = hf_key_sign(k, msg, msglen, sig, eb);

	if (r < 0)
		return r;
	hf_b64url_encode(sig, sizeof sig, b64);
	hf_key_id(k, id);
	*n = (size_t)snprintf(out, SIG_ENTRY_MAX, "{\"keyid\":\"%s\",\"sig\":\"%s\"}", id, b64);
	return 0;
}

static int check_sign_keys(hf_key *const *keys, size_t nkeys, hf_errbuf *eb)
{
	char a[HF_INSTR_KEYID_LEN + 1], b[HF_INSTR_KEYID_LEN + 1];

	if (nkeys < 1 || nkeys > HF_INSTR_MAX_SIGNATURES)
		return hf_fail(eb, HF_EINVAL, "between 1 and %d keys needed, got %zu",
			       HF_INSTR_MAX_SIGNATURES, nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		if (!hf_key_has_private(keys[i]))
			return hf_fail(eb, HF_EINVAL, "key %zu has no private part", i + 1);
		hf_key_id(keys[i], a);
		for (size_t j = 0; j < i; j++) {
			hf_key_id(keys[j], b);
			if (strcmp(a, b) == 0)
				return hf_fail(eb, HF_EINVAL, "key %s given twice", a);
		}
	}
	return 0;
}

int hf_instr_sign(const char *payload, size_t len, hf_key *const *keys, size_t nkeys,
		  char **envelope, hf_errbuf *eb)
{
	static const char head[] = "{\"payload\":\"", mid[] = "\",\"signatures\":[", tail[] = "]}";
	uint8_t *msg = NULL;
	size_t msglen = 0, n, cap;
	char *env;
	int r;

	*envelope = NULL;
	if ((r = check_sign_keys(keys, nkeys, eb)) < 0)
		return r;
	if (!payload || len == 0 || len > HF_INSTR_MAX_ENVELOPE)
		return hf_fail(eb, HF_ETOOBIG, "payload: %zu bytes, expected 1 to %d", len,
			       HF_INSTR_MAX_ENVELOPE);
	if ((r = hf_instr_signed_message((const uint8_t *)payload, len, &msg, &msglen, eb)) < 0)
		return r;
	/* {"payload":"B64","signatures":[{"keyid":..,"sig":..},...]}: payload first, signatures
	 * second (the envelope reads in the order it is checked) */
	cap = sizeof head + (len + 2) / 3 * 4 + sizeof mid + nkeys * SIG_ENTRY_MAX + sizeof tail;
	env = malloc(cap);
	if (!env) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto cleanup;
	}
	memcpy(env, head, sizeof head - 1);
	n = sizeof head - 1;
	n += hf_b64url_encode((const uint8_t *)payload, len, env + n);
	memcpy(env + n, mid, sizeof mid - 1);
	n += sizeof mid - 1;
	for (size_t i = 0; i < nkeys && r == 0; i++) {
		size_t m = 0;
		if (i > 0)
			env[n++] = ',';
		r = add_signature(env + n, &m, keys[i], msg, msglen, eb);
		n += m;
	}
	if (r < 0)
		goto cleanup;
	memcpy(env + n, tail, sizeof tail); /* with its NUL */
	n += sizeof tail - 1;
	if (n > HF_INSTR_MAX_ENVELOPE) {
		r = hf_fail(eb, HF_ETOOBIG, "envelope would be %zu bytes, at most %d", n,
			    HF_INSTR_MAX_ENVELOPE);
		goto cleanup;
	}
	*envelope = env;
	env = NULL;
cleanup:
	free(env);
	free(msg);
	return r;
}

/* ---- verification and policy ---- */

__attribute__((format(printf, 4, 5)))
static int refuse(hf_instr_refusal *why, hf_instr_refusal r, hf_errbuf *eb, const char *fmt, ...)
{
	*why = r;
	if (eb) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
		va_end(ap);
	}
	return HF_EREFUSED;
}

/* A refusal whose detail is already in the error buffer. */
static int refuse_kept(hf_instr_refusal *why, hf_instr_refusal r)
{
	*why = r;
	return HF_EREFUSED;
}

/* Counts distinct verified operator keys and whether a coordinator key verified. */
static int check_signatures(const hf_trust *t, const hf_instr_envelope *env, unsigned *ops,
			    bool *coord, hf_instr_refusal *why, hf_errbuf *eb)
{
	const hf_key *seen[HF_INSTR_MAX_SIGNATURES];
	size_t nseen = 0, msglen = 0;
	bool trusted = false;
	uint8_t *msg;
	int r = hf_instr_signed_message(env->payload, env->payload_len, &msg, &msglen, eb);

	if (r < 0)
		return r;
	for (size_t i = 0; i < env->nsigs && r == 0; i++) {
		hf_role role = HF_ROLE_OPERATOR;
		const char *name = "";
		const hf_key *k = hf_trust_find(t, env->sigs[i].keyid, &role, &name);
		bool dup = false;

		if (!k)
			continue; /* not ours: ignored (the refusal is unknown_key if none is) */
		trusted = true;
		if (!hf_key_verify(k, msg, msglen, env->sigs[i].sig)) {
			r = refuse(why, HF_REFUSE_BAD_SIGNATURE, eb, "signatures[%zu]: invalid signature "
				   "under trusted %s key %s%s%s", i, hf_role_name(role),
				   env->sigs[i].keyid, *name ? " " : "", name);
			break;
		}
		for (size_t j = 0; j < nseen; j++)
			dup = dup || seen[j] == k;
		if (dup)
			continue; /* one key counts once */
		seen[nseen++] = k;
		if (role == HF_ROLE_OPERATOR)
			(*ops)++;
		else
			*coord = true;
	}
	free(msg);
	if (r == 0 && !trusted)
		r = refuse(why, HF_REFUSE_UNKNOWN_KEY, eb, t ? "no signature is by a key in the trust "
			   "file (first keyid %s)" : "no trust file: every instruction is refused "
			   "(first keyid %s)", env->sigs[0].keyid);
	return r;
}

static int decide_authority(const hf_trust *t, hf_instr *in, unsigned ops, bool coord,
			    hf_instr_refusal *why, hf_errbuf *eb)
{
	bool fleet_wide = strcmp(in->node, "*") == 0;
	unsigned need = fleet_wide ? hf_trust_fleet_threshold(t) : 1;

	in->roles = (ops ? HF_ROLE_OPERATOR : 0u) | (coord ? HF_ROLE_COORDINATOR : 0u);
	if (ops >= need) {
		in->automatic = false;
		return 0;
	}
	if (fleet_wide && ops > 0)
		return refuse(why, HF_REFUSE_THRESHOLD, eb, "node \"*\" needs %u operator signatures, "
			      "%u verified", need, ops);
	if (fleet_wide)
		return refuse(why, HF_REFUSE_ROLE, eb, "a coordinator key cannot sign for node \"*\" "
			      "(it needs %u operator signatures)", need);
	if (in->has_hold)
		return refuse(why, HF_REFUSE_ROLE, eb, "hold_until_ms is an operator pin; a "
			      "coordinator-signed instruction may not carry it");
	in->automatic = true;
	return 0;
}

static int check_policy(const hf_instr *in, const hf_instr_policy *p, hf_instr_refusal *why,
			hf_errbuf *eb)
{
	uint64_t latest = p->now_ms + p->skew_ms < p->now_ms ? UINT64_MAX : p->now_ms + p->skew_ms;

	if (strcmp(in->fleet, p->fleet) != 0)
		return refuse(why, HF_REFUSE_WRONG_FLEET, eb, "fleet \"%s\" is not this node's fleet "
			      "\"%s\"", in->fleet, p->fleet);
	if (strcmp(in->node, "*") != 0 && strcmp(in->node, p->node) != 0)
		return refuse(why, HF_REFUSE_WRONG_NODE, eb, "node \"%s\" is not this node \"%s\"",
			      in->node, p->node);
	if (in->issued_ms <= p->last_issued_ms)
		return refuse(why, HF_REFUSE_REPLAY, eb, "issued_ms %llu is not after the last "
			      "accepted %llu", (unsigned long long)in->issued_ms,
			      (unsigned long long)p->last_issued_ms);
	if (in->issued_ms > latest)
		return refuse(why, HF_REFUSE_FUTURE, eb, "issued_ms %llu is %llu ms ahead of this "
			      "node's clock (%llu ms skew allowed)", (unsigned long long)in->issued_ms,
			      (unsigned long long)(in->issued_ms - p->now_ms),
			      (unsigned long long)p->skew_ms);
	if (in->expires_ms <= p->now_ms)
		return refuse(why, HF_REFUSE_EXPIRED, eb, "expired at %llu, now %llu",
			      (unsigned long long)in->expires_ms, (unsigned long long)p->now_ms);
	if (in->automatic && p->hold_until_ms > p->now_ms)
		return refuse(why, HF_REFUSE_HELD, eb, "automatic instructions are held by an operator "
			      "pin for %llu ms more (until %llu)",
			      (unsigned long long)(p->hold_until_ms - p->now_ms),
			      (unsigned long long)p->hold_until_ms);
	return 0;
}

int hf_instr_verify(const hf_trust *trust, const char *envelope, size_t len,
		    const hf_instr_policy *policy, hf_instr *out, hf_instr_refusal *why,
		    hf_errbuf *eb)
{
	hf_instr_envelope env;
	hf_instr in;
	unsigned ops = 0;
	bool coord = false;
	int r;

	*why = HF_REFUSE_NONE;
	memset(out, 0, sizeof *out);
	memset(&in, 0, sizeof in);
	if (!policy || !policy->fleet || !policy->node)
		return hf_fail(eb, HF_EINVAL, "no policy (fleet and node are required)");
	r = hf_instr_envelope_decode(envelope, len, &env, eb);
	if (r == HF_ETOOBIG || r == HF_EPARSE)
		return refuse_kept(why, r == HF_ETOOBIG ? HF_REFUSE_OVERSIZE : HF_REFUSE_MALFORMED);
	if (r < 0)
		return r;
	r = hf_instr_parse_payload((const char *)env.payload, env.payload_len, &in, eb);
	if (r == HF_EPARSE || r == HF_ETOOBIG)
		r = refuse_kept(why, HF_REFUSE_MALFORMED);
	if (r == 0)
		r = check_signatures(trust, &env, &ops, &coord, why, eb);
	if (r == 0)
		r = decide_authority(trust, &in, ops, coord, why, eb);
	if (r == 0)
		r = check_policy(&in, policy, why, eb);
	hf_instr_envelope_clear(&env);
	if (r < 0) {
		hf_instr_clear(&in);
		return r;
	}
	hf_errbuf_clear(eb);
	*out = in;
	return 0;
}
