/* hf_key: Ed25519 keys for signed instructions (OpenSSL 3 EVP), key ids, and strict base64url.
 *
 * Decisions (contract v1, see runtime/common/INSTRUCTIONS.md):
 * - PEM is what `openssl genpkey -algorithm ed25519` (PKCS#8 "PRIVATE KEY") and
 *   `openssl pkey -pubout` ("PUBLIC KEY", SubjectPublicKeyInfo) write. Encrypted private keys
 *   are refused (no passphrase prompt ever runs). Any key type but Ed25519 is HF_ECRYPTO.
 * - keyid = the first 16 lower-case hex digits of SHA-256 over the raw 32-byte public key,
 *   computed once at load time.
 * - base64url (RFC 4648 section 5) without padding. The decoder is strict so that one byte string
 *   has exactly one encoding: alphabet [A-Za-z0-9_-] only (no '=', '+', '/', whitespace), no
 *   length of 1 mod 4, and the unused low bits of the last character must be zero.
 * - Private key PEM goes through a secure-memory BIO and is written atomically with mode 0600.
 * - Verification fails closed: any OpenSSL error counts as an invalid signature.
 * Threading: an hf_key is immutable after creation; sign and verify use a per-call EVP_MD_CTX,
 * so one key may be shared by threads.
 */
#include "hf_instr.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "hf_file.h"
#include "hf_util.h"

/* Largest PEM file read (an Ed25519 PEM is about 120 bytes). */
#define KEY_PEM_MAX 65536

struct hf_key {
	EVP_PKEY *pkey;
	bool priv;
	uint8_t pub[32];
	char id[HF_INSTR_KEYID_LEN + 1];
};

/* Takes ownership of pkey (freed on failure). */
static int key_wrap(EVP_PKEY *pkey, bool priv, hf_key **out, hf_errbuf *eb)
{
	uint8_t digest[32];
	char hex[65];
	size_t publen = sizeof ((hf_key *)0)->pub;
	unsigned dlen = 0;
	hf_key *k;

	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return hf_fail(eb, HF_ECRYPTO, "not an Ed25519 key");
	}
	k = calloc(1, sizeof *k);
	if (!k) {
		EVP_PKEY_free(pkey);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	k->pkey = pkey;
	k->priv = priv;
	if (EVP_PKEY_get_raw_public_key(pkey, k->pub, &publen) != 1 || publen != 32 ||
	    EVP_Digest(k->pub, 32, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32) {
		ERR_clear_error();
		hf_key_free(k);
		return hf_fail(eb, HF_ECRYPTO, "cannot read the raw public key");
	}
	hf_hex_encode(digest, 32, hex);
	memcpy(k->id, hex, HF_INSTR_KEYID_LEN);
	k->id[HF_INSTR_KEYID_LEN] = '\0';
	*out = k;
	return 0;
}

int hf_key_generate(hf_key **out, hf_errbuf *eb)
{
	EVP_PKEY *pkey;

	*out = NULL;
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey) {
		ERR_clear_error();
		return hf_fail(eb, HF_ECRYPTO, "Ed25519 key generation failed");
	}
	return key_wrap(pkey, true, out, eb);
}

/* Never prompts: an encrypted private key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

int hf_key_from_pem(const char *pem, size_t len, hf_key **out, hf_errbuf *eb)
{
	EVP_PKEY *pkey = NULL;
	bool priv = false;
	BIO *bio;

	*out = NULL;
	if (!pem || len == 0 || len > KEY_PEM_MAX)
		return hf_fail(eb, HF_EINVAL, "empty or oversized PEM (%zu bytes)", len);
	if (memmem(pem, len, "ENCRYPTED PRIVATE KEY", 21))
		return hf_fail(eb, HF_ECRYPTO, "encrypted private keys are not supported "
			       "(write one with `openssl genpkey -algorithm ed25519`)");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if (memmem(pem, len, "PRIVATE KEY-----", 16)) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		priv = pkey != NULL;
	} else {
		pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (!pkey)
		return hf_fail(eb, HF_ECRYPTO, "no Ed25519 PRIVATE KEY or PUBLIC KEY in PEM form");
	return key_wrap(pkey, priv, out, eb);
}

int hf_key_load_pem(const char *path, hf_key **out, hf_errbuf *eb)
{
	char *text;
	size_t len;
	int r;

	*out = NULL;
	r = hf_file_read(path, KEY_PEM_MAX, &text, &len, eb);
	if (r < 0)
		return r;
	r = hf_key_from_pem(text, len, out, eb);
	OPENSSL_cleanse(text, len);
	free(text);
	if (r < 0)
		return hf_fail_prefix(eb, r, "%s", path);
	return 0;
}

int hf_key_from_raw_public(const uint8_t pub[32], hf_key **out, hf_errbuf *eb)
{
	EVP_PKEY *pkey;

	*out = NULL;
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	if (!pkey) {
		ERR_clear_error();
		return hf_fail(eb, HF_ECRYPTO, "invalid raw Ed25519 public key");
	}
	return key_wrap(pkey, false, out, eb);
}

int hf_key_from_raw_private(const uint8_t priv[32], hf_key **out, hf_errbuf *eb)
{
	EVP_PKEY *pkey;

	*out = NULL;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
	if (!pkey) {
		ERR_clear_error();
		return hf_fail(eb, HF_ECRYPTO, "invalid raw Ed25519 private key");
	}
	return key_wrap(pkey, true, out, eb);
}

/* Writes PEM into a malloc'ed NUL-terminated string (secure memory BIO for private keys).
 * *pem and *pemlen are always set: NULL and 0 on failure. */
static int key_pem(const hf_key *k, bool priv, char **pem, size_t *pemlen, hf_errbuf *eb)
{
	BIO *bio = BIO_new(priv ? BIO_s_secmem() : BIO_s_mem());
	char *data = NULL;
	long n;
	int ok, r = 0;

	*pem = NULL;
	*pemlen = 0;
	if (!bio)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	ok = priv ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
		  : PEM_write_bio_PUBKEY(bio, k->pkey);
	n = BIO_get_mem_data(bio, &data);
	if (ok != 1 || n <= 0) {
		ERR_clear_error();
		r = hf_fail(eb, HF_ECRYPTO, "cannot encode the key as PEM");
		goto free_bio;
	}
	*pem = malloc((size_t)n + 1);
	if (!*pem) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto free_bio;
	}
	memcpy(*pem, data, (size_t)n);
	(*pem)[n] = '\0';
	*pemlen = (size_t)n;
free_bio:
	BIO_free(bio);
	return r;
}

int hf_key_write_private_pem(const hf_key *k, const char *path, hf_errbuf *eb)
{
	char *pem;
	size_t len;
	int r;

	if (!k || !k->priv)
		return hf_fail(eb, HF_EINVAL, "%s: this key has no private part", path);
	r = key_pem(k, true, &pem, &len, eb);
	if (r < 0)
		return r;
	r = hf_file_write_atomic(path, pem, len, 0600, eb);
	OPENSSL_cleanse(pem, len);
	free(pem);
	return r;
}

int hf_key_public_pem(const hf_key *k, char **pem, hf_errbuf *eb)
{
	size_t len;
	return key_pem(k, false, pem, &len, eb);
}

void hf_key_raw_public(const hf_key *k, uint8_t pub[32])
{
	memcpy(pub, k->pub, 32);
}

void hf_key_id(const hf_key *k, char out[HF_INSTR_KEYID_LEN + 1])
{
	memcpy(out, k->id, HF_INSTR_KEYID_LEN + 1);
}

bool hf_key_has_private(const hf_key *k)
{
	return k && k->priv;
}

void hf_key_free(hf_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int hf_key_sign(const hf_key *k, const void *msg, size_t len, uint8_t sig[HF_INSTR_SIG_LEN],
		hf_errbuf *eb)
{
	EVP_MD_CTX *ctx;
	size_t siglen = HF_INSTR_SIG_LEN;
	int r = 0;

	if (!k || !k->priv)
		return hf_fail(eb, HF_EINVAL, "signing needs a private key");
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != HF_INSTR_SIG_LEN) {
		ERR_clear_error();
		r = hf_fail(eb, HF_ECRYPTO, "Ed25519 signing failed");
	}
	EVP_MD_CTX_free(ctx);
	return r;
}

bool hf_key_verify(const hf_key *k, const void *msg, size_t len,
		   const uint8_t sig[HF_INSTR_SIG_LEN])
{
	EVP_MD_CTX *ctx;
	bool ok;

	if (!k)
		return false;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return false;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, HF_INSTR_SIG_LEN, msg, len) == 1;
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return ok;
}

bool hf_keyid_valid(const char *s)
{
	size_t i;
	if (!s)
		return false;
	for (i = 0; s[i]; i++)
		if (i >= HF_INSTR_KEYID_LEN ||
		    !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == HF_INSTR_KEYID_LEN;
}

/* ---- base64url ---- */

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t hf_b64url_encode(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

bool hf_b64url_decode(const char *in, size_t len, uint8_t *out, size_t outmax, size_t *outlen)
{
	size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0), o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (outlen)
		*outlen = 0;
	if (len % 4 == 1 || need > outmax)
		return false;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(in[i]);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits (2 or 4) must be zero: otherwise two encodings would give one byte string. */
	if (acc != 0)
		return false;
	if (outlen)
		*outlen = o;
	return true;
}
