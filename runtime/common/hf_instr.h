/* hf_instr: the signed instruction, contract v1 (see ../shared/DESIGN.md and
 * runtime/common/INSTRUCTIONS.md): Ed25519 keys in PEM, key ids, the JSON envelope with
 * base64url (no padding) payload and signatures over "hashflop-instruction-v1\n" || payload,
 * strict payload parsing, the trust file, and the node's acceptance policy (roles, thresholds,
 * anti-replay, expiry, skew, holds).
 *
 * Invariants: nothing here trusts a field before the signatures that cover it verified; every
 * refusal has exactly one reason from hf_instr_refusal; sizes are capped (envelope 16 KiB).
 * Threading: keys and trust objects are immutable after load and may be shared by threads;
 * everything else is reentrant.
 */
#ifndef HF_INSTR_H
#define HF_INSTR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_INSTR_DOMAIN "hashflop-instruction-v1\n"
#define HF_INSTR_MAX_ENVELOPE 16384
#define HF_INSTR_MAX_SIGNATURES 8
#define HF_INSTR_KEYID_LEN 16
#define HF_INSTR_DEFAULT_SKEW_MS 120000u

/* ---- keys ---- */
typedef struct hf_key hf_key;

int hf_key_generate(hf_key **out, hf_errbuf *eb);
/* Loads a private or public Ed25519 key in PEM (as `openssl genpkey -algorithm ed25519` and
 * `openssl pkey -pubout` write them). Any other key type is HF_ECRYPTO. */
int hf_key_load_pem(const char *path, hf_key **out, hf_errbuf *eb);
int hf_key_from_pem(const char *pem, size_t len, hf_key **out, hf_errbuf *eb);
/* From the raw 32-byte public key. */
int hf_key_from_raw_public(const uint8_t pub[32], hf_key **out, hf_errbuf *eb);
/* Writes the private key PEM atomically with mode 0600 (HF_EINVAL for a public-only key). */
int hf_key_write_private_pem(const hf_key *k, const char *path, hf_errbuf *eb);
/* The public key PEM (malloc'ed). */
int hf_key_public_pem(const hf_key *k, char **pem, hf_errbuf *eb);
void hf_key_raw_public(const hf_key *k, uint8_t pub[32]);
/* First 16 hex digits of SHA-256 over the raw 32-byte public key, NUL-terminated. */
void hf_key_id(const hf_key *k, char out[HF_INSTR_KEYID_LEN + 1]);
bool hf_key_has_private(const hf_key *k);
void hf_key_free(hf_key *k);

/* ---- base64url without padding ---- */
/* out must hold 4*ceil(len/3)+1 bytes; returns the length written. */
size_t hf_b64url_encode(const uint8_t *in, size_t len, char *out);
/* Strict: no padding, no whitespace, canonical trailing bits. false on any bad input or when the
 * decoded size would exceed outmax. */
bool hf_b64url_decode(const char *in, size_t len, uint8_t *out, size_t outmax, size_t *outlen);

/* ---- trust file ---- */
typedef enum hf_role {
	HF_ROLE_COORDINATOR = 1 << 0,
	HF_ROLE_OPERATOR = 1 << 1,
} hf_role;

typedef struct hf_trust hf_trust;

/* trust.json: {"keys": [{"keyid"?: "...", "role": "coordinator"|"operator",
 *   "public_key_pem": "-----BEGIN PUBLIC KEY-----..." , "name"?: "..."}],
 *   "fleet_threshold": N}   (operator signatures required for node "*"; default 2)
 * A given keyid must match the key; errors name the entry ("keys[2].role: ..."). */
int hf_trust_load(const char *path, hf_trust **out, hf_errbuf *eb);
int hf_trust_from_json(const json_t *root, hf_trust **out, hf_errbuf *eb);
size_t hf_trust_count(const hf_trust *t);
unsigned hf_trust_fleet_threshold(const hf_trust *t);
void hf_trust_free(hf_trust *t);

/* ---- payload ---- */
typedef enum hf_instr_mode {
	HF_INSTR_IDLE = 0,
	HF_INSTR_MINING = 1,
	HF_INSTR_INFERENCE = 2,
} hf_instr_mode;

typedef struct hf_instr {
	char fleet[64];
	char node[64];            /* a node id or "*" */
	uint64_t issued_ms, expires_ms;
	bool has_hold;
	uint64_t hold_until_ms;
	hf_instr_mode mode;
	json_t *mining;           /* owned or NULL: {"pools":[{"url","user","pass"}]} */
	json_t *inference;        /* owned or NULL: {"models":[...]} */
	json_t *reason;           /* owned or NULL: free JSON kept for audit */
	json_t *payload;          /* owned: the whole parsed payload */
	char payload_sha256[65];  /* hex, identifies the instruction in logs and acks */
	unsigned roles;           /* hf_role bits of the keys whose signatures verified */
	bool automatic;           /* accepted on coordinator authority (not operator) */
} hf_instr;

void hf_instr_clear(hf_instr *in);
/* Parses and validates payload bytes alone (no signatures): every field typed and bounded,
 * unknown top-level fields refused. */
int hf_instr_parse_payload(const char *payload, size_t len, hf_instr *out, hf_errbuf *eb);

/* ---- signing ---- */
/* Builds an envelope (malloc'ed, NUL-terminated JSON) over payload bytes with every key. */
int hf_instr_sign(const char *payload, size_t len, hf_key *const *keys, size_t nkeys,
		  char **envelope, hf_errbuf *eb);

/* ---- verification and policy ---- */
typedef enum hf_instr_refusal {
	HF_REFUSE_NONE = 0,
	HF_REFUSE_BAD_SIGNATURE,
	HF_REFUSE_UNKNOWN_KEY,
	HF_REFUSE_ROLE,
	HF_REFUSE_THRESHOLD,
	HF_REFUSE_REPLAY,
	HF_REFUSE_EXPIRED,
	HF_REFUSE_FUTURE,
	HF_REFUSE_WRONG_NODE,
	HF_REFUSE_WRONG_FLEET,
	HF_REFUSE_MALFORMED,
	HF_REFUSE_OVERSIZE,
	HF_REFUSE_HELD,
} hf_instr_refusal;
#define HF_REFUSE_COUNT 13

/* "bad_signature", "unknown_key", "role", "threshold", "replay", "expired", "future",
 * "wrong_node", "wrong_fleet", "malformed", "oversize", "held" ("none" for HF_REFUSE_NONE). */
const char *hf_instr_refusal_name(hf_instr_refusal r);

typedef struct hf_instr_policy {
	const char *fleet;           /* this node's fleet */
	const char *node;            /* this node's id */
	uint64_t now_ms;             /* wall clock */
	uint64_t last_issued_ms;     /* last accepted issued_ms (0: none yet) */
	uint64_t skew_ms;            /* allowed clock skew into the future */
	uint64_t hold_until_ms;      /* operator pin in force (0: none) */
} hf_instr_policy;

/* Verifies an envelope against the trust file and the policy. 0 and *out filled when accepted;
 * HF_EREFUSED with *why and detail in eb otherwise (*out is left empty). An instruction is
 * manual when enough operator signatures verify (one for a single node, the fleet threshold for
 * node "*"), else automatic when a coordinator signature verifies (single node only); automatic
 * ones are refused as "held" while policy->hold_until_ms is in the future. */
__attribute__((warn_unused_result))
int hf_instr_verify(const hf_trust *trust, const char *envelope, size_t len,
		    const hf_instr_policy *policy, hf_instr *out, hf_instr_refusal *why,
		    hf_errbuf *eb);

/* ---- additions (hf_key.c, hf_trust.c, hf_instr.c) ---- */
#define HF_INSTR_SIG_LEN 64
#define HF_INSTR_MAX_TRUST_KEYS 64

/* From the raw 32-byte private key (seed), as RFC 8032 test vectors give it. */
int hf_key_from_raw_private(const uint8_t priv[32], hf_key **out, hf_errbuf *eb);
/* Ed25519 signature of msg (HF_EINVAL for a public-only key). */
int hf_key_sign(const hf_key *k, const void *msg, size_t len, uint8_t sig[HF_INSTR_SIG_LEN],
		hf_errbuf *eb);
/* true only when sig is a valid Ed25519 signature of msg under k (any library error: false). */
__attribute__((warn_unused_result))
bool hf_key_verify(const hf_key *k, const void *msg, size_t len,
		   const uint8_t sig[HF_INSTR_SIG_LEN]);
/* true when s is a key id: exactly 16 lower-case hex digits. */
bool hf_keyid_valid(const char *s);

/* "coordinator" or "operator" (NULL for anything else). */
const char *hf_role_name(hf_role r);
/* The trusted key with this key id (NULL if none) and its role and name ("" when unnamed). */
const hf_key *hf_trust_find(const hf_trust *t, const char *keyid, hf_role *role,
			    const char **name);
/* Entry i (0 <= i < hf_trust_count); false when out of range. */
bool hf_trust_entry(const hf_trust *t, size_t i, const hf_key **key, hf_role *role,
		    const char **name);
/* How many keys have this role (a fleet_threshold above the operator count is allowed but
 * makes node "*" instructions impossible: callers should warn). */
size_t hf_trust_count_role(const hf_trust *t, hf_role role);

/* The envelope decoded without any trust decision (for verify, inspect and fuzzing). */
typedef struct hf_instr_sig {
	char keyid[HF_INSTR_KEYID_LEN + 1];
	uint8_t sig[HF_INSTR_SIG_LEN];
} hf_instr_sig;

typedef struct hf_instr_envelope {
	uint8_t *payload;         /* owned, NUL-terminated (the NUL is not part of payload_len) */
	size_t payload_len;
	size_t nsigs;             /* 1..HF_INSTR_MAX_SIGNATURES */
	hf_instr_sig sigs[HF_INSTR_MAX_SIGNATURES];
} hf_instr_envelope;

/* HF_ETOOBIG over the size cap, HF_EPARSE for anything not exactly
 * {"payload": b64url, "signatures": [{"keyid", "sig"}, ...]}. out need not be initialised. */
int hf_instr_envelope_decode(const char *envelope, size_t len, hf_instr_envelope *out,
			     hf_errbuf *eb);
void hf_instr_envelope_clear(hf_instr_envelope *e);
/* The bytes each signature covers: HF_INSTR_DOMAIN || payload (malloc'ed). */
int hf_instr_signed_message(const uint8_t *payload, size_t len, uint8_t **msg, size_t *msglen,
			    hf_errbuf *eb);
const char *hf_instr_mode_name(hf_instr_mode m);
/* Parses "idle", "mining", "inference"; false otherwise. */
bool hf_instr_mode_parse(const char *s, hf_instr_mode *out);

#endif
