/* Unit tests for hf_key: RFC 8032 vector, key ids against OpenSSL's SHA-256, PEM round trips,
 * wrong key types, and strict base64url. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_instr.h"
#include "hf_util.h"

static json_t *load_vector(void)
{
	char path[1024];
	json_error_t jerr;
	const char *dir = getenv("HF_VECTORS_DIR");
	json_t *v;

	cr_assert_not_null(dir, "HF_VECTORS_DIR is not set");
	snprintf(path, sizeof path, "%s/ed25519_rfc8032.json", dir);
	v = json_load_file(path, 0, &jerr);
	cr_assert_not_null(v, "%s: %s", path, jerr.text);
	return v;
}

static void hex_field(const json_t *v, const char *key, uint8_t *out, size_t n)
{
	const char *s = json_string_value(json_object_get(v, key));
	cr_assert_not_null(s, "vector lacks %s", key);
	cr_assert(hf_hex_decode(s, strlen(s), out, n), "vector %s is not %zu bytes of hex", key, n);
}

Test(key, rfc8032_test2)
{
	json_t *v = load_vector();
	uint8_t secret[32], pub[32], msg[1], sig[64], want_sig[64], got_pub[32];
	hf_key *k = NULL, *pk = NULL;
	hf_errbuf eb;

	hex_field(v, "secret_key", secret, 32);
	hex_field(v, "public_key", pub, 32);
	hex_field(v, "message", msg, 1);
	hex_field(v, "signature", want_sig, 64);
	cr_assert_eq(hf_key_from_raw_private(secret, &k, &eb), 0, "%s", eb.msg);
	cr_assert(hf_key_has_private(k));
	hf_key_raw_public(k, got_pub);
	cr_assert_eq(memcmp(got_pub, pub, 32), 0, "public key derived from the secret differs");
	cr_assert_eq(hf_key_sign(k, msg, 1, sig, &eb), 0, "%s", eb.msg);
	cr_assert_eq(memcmp(sig, want_sig, 64), 0, "signature differs from RFC 8032 test 2");

	cr_assert_eq(hf_key_from_raw_public(pub, &pk, &eb), 0, "%s", eb.msg);
	cr_assert_not(hf_key_has_private(pk));
	cr_assert(hf_key_verify(pk, msg, 1, want_sig));
	want_sig[63] ^= 0x01;
	cr_assert_not(hf_key_verify(pk, msg, 1, want_sig));
	want_sig[63] ^= 0x01;
	msg[0] ^= 0x80;
	cr_assert_not(hf_key_verify(pk, msg, 1, want_sig));
	cr_assert_eq(hf_key_sign(pk, msg, 1, sig, &eb), HF_EINVAL);
	hf_key_free(k);
	hf_key_free(pk);
	json_decref(v);
}

Test(key, keyid_is_sha256_prefix_of_raw_public_key)
{
	json_t *v = load_vector();
	uint8_t pub[32], digest[SHA256_DIGEST_LENGTH];
	char id[HF_INSTR_KEYID_LEN + 1], hex[65];
	hf_key *k = NULL;

	hex_field(v, "public_key", pub, 32);
	cr_assert_eq(hf_key_from_raw_public(pub, &k, NULL), 0);
	hf_key_id(k, id);
	SHA256(pub, 32, digest); /* OpenSSL's one-shot SHA-256, independent of hf_key */
	hf_hex_encode(digest, sizeof digest, hex);
	cr_assert_eq(strncmp(id, hex, 16), 0);
	cr_assert_eq(strlen(id), 16);
	/* and the value computed with `xxd -r -p | sha256sum` */
	cr_assert_str_eq(id, "39f713d0a644253f");
	cr_assert(hf_keyid_valid(id));
	cr_assert_not(hf_keyid_valid("39F713D0A644253F"));
	cr_assert_not(hf_keyid_valid("39f713d0a644253"));
	cr_assert_not(hf_keyid_valid("39f713d0a644253f0"));
	cr_assert_not(hf_keyid_valid("39f713d0a644253g"));
	cr_assert_not(hf_keyid_valid(""));
	cr_assert_not(hf_keyid_valid(NULL));
	hf_key_free(k);
	json_decref(v);
}

Test(key, generate_write_load_round_trip)
{
	char dir[] = "/tmp/hf_test_key_XXXXXX", path[256], id1[17], id2[17], id3[17];
	hf_key *k = NULL, *k2 = NULL, *pk = NULL;
	uint8_t sig[64];
	char *pem = NULL;
	struct stat st;
	hf_errbuf eb;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/op.pem", dir);
	cr_assert_eq(hf_key_generate(&k, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_key_write_private_pem(k, path, &eb), 0, "%s", eb.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "private key mode %o", st.st_mode & 0777);
	cr_assert_eq(hf_key_load_pem(path, &k2, &eb), 0, "%s", eb.msg);
	cr_assert(hf_key_has_private(k2));
	cr_assert_eq(hf_key_public_pem(k, &pem, &eb), 0, "%s", eb.msg);
	cr_assert_not_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	cr_assert_eq(hf_key_from_pem(pem, strlen(pem), &pk, &eb), 0, "%s", eb.msg);
	cr_assert_not(hf_key_has_private(pk));
	hf_key_id(k, id1);
	hf_key_id(k2, id2);
	hf_key_id(pk, id3);
	cr_assert_str_eq(id1, id2);
	cr_assert_str_eq(id1, id3);
	cr_assert_eq(hf_key_sign(k2, "abc", 3, sig, &eb), 0);
	cr_assert(hf_key_verify(pk, "abc", 3, sig));
	cr_assert_eq(hf_key_write_private_pem(pk, path, &eb), HF_EINVAL);
	free(pem);
	hf_key_free(k);
	hf_key_free(k2);
	hf_key_free(pk);
	unlink(path);
	rmdir(dir);
}

static char *pem_of(EVP_PKEY *p, bool priv)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;
	cr_assert(priv ? PEM_write_bio_PrivateKey(b, p, NULL, NULL, 0, NULL, NULL)
		       : PEM_write_bio_PUBKEY(b, p));
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	return out;
}

Test(key, refuses_other_key_types_and_garbage)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pub = pem_of(ec, false), *priv = pem_of(ec, true);
	const char *garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
	const char *enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
	hf_key *k = NULL;
	hf_errbuf eb;

	cr_assert_eq(hf_key_from_pem(pub, strlen(pub), &k, &eb), HF_ECRYPTO);
	cr_assert_not_null(strstr(eb.msg, "Ed25519"), "%s", eb.msg);
	cr_assert_eq(hf_key_from_pem(priv, strlen(priv), &k, &eb), HF_ECRYPTO);
	cr_assert_eq(hf_key_from_pem(garbage, strlen(garbage), &k, &eb), HF_ECRYPTO);
	cr_assert_eq(hf_key_from_pem(enc, strlen(enc), &k, &eb), HF_ECRYPTO);
	cr_assert_not_null(strstr(eb.msg, "encrypted"), "%s", eb.msg);
	cr_assert_eq(hf_key_from_pem("hello", 5, &k, &eb), HF_ECRYPTO);
	cr_assert_eq(hf_key_from_pem("", 0, &k, &eb), HF_EINVAL);
	cr_assert_null(k);
	cr_assert_eq(hf_key_load_pem("/nonexistent/k.pem", &k, &eb), HF_ENOTFOUND);
	free(pub);
	free(priv);
	EVP_PKEY_free(ec);
}

Test(b64url, rfc4648_vectors_every_length_0_to_5)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba" };
	static const char *enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE" };
	char out[16];
	uint8_t dec[16];
	size_t n;

	for (size_t i = 0; i < 6; i++) {
		cr_assert_eq(hf_b64url_encode((const uint8_t *)plain[i], i, out), strlen(enc[i]));
		cr_assert_str_eq(out, enc[i]);
		cr_assert(hf_b64url_decode(enc[i], strlen(enc[i]), dec, sizeof dec, &n), "%s", enc[i]);
		cr_assert_eq(n, i);
		cr_assert_eq(memcmp(dec, plain[i], i), 0);
	}
}

Test(b64url, url_alphabet_and_round_trip)
{
	const uint8_t special[] = { 0xfb, 0xff, 0xbf };
	uint8_t in[64], dec[64];
	char out[100];
	size_t n;

	hf_b64url_encode(special, 3, out);
	cr_assert_str_eq(out, "-_-_");
	for (size_t len = 0; len <= sizeof in; len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)(i * 37 + len * 11);
		size_t m = hf_b64url_encode(in, len, out);
		cr_assert_eq(m, (len * 4 + 2) / 3);
		cr_assert(hf_b64url_decode(out, m, dec, sizeof dec, &n));
		cr_assert_eq(n, len);
		cr_assert_eq(memcmp(in, dec, len), 0);
	}
}

Test(b64url, strict_rejects)
{
	uint8_t dec[16];
	size_t n = 99;

	cr_assert_not(hf_b64url_decode("Zg==", 4, dec, sizeof dec, &n), "padding");
	cr_assert_not(hf_b64url_decode("Zg=", 3, dec, sizeof dec, &n), "padding");
	cr_assert_not(hf_b64url_decode("Zm9+", 4, dec, sizeof dec, &n), "'+'");
	cr_assert_not(hf_b64url_decode("Zm9/", 4, dec, sizeof dec, &n), "'/'");
	cr_assert_not(hf_b64url_decode(" Zm9v", 5, dec, sizeof dec, &n), "space");
	cr_assert_not(hf_b64url_decode("Zm9v\n", 5, dec, sizeof dec, &n), "newline");
	cr_assert_not(hf_b64url_decode("Zm\r9v", 5, dec, sizeof dec, &n), "CR");
	cr_assert_not(hf_b64url_decode("Zm9v\0", 5, dec, sizeof dec, &n), "NUL");
	cr_assert_not(hf_b64url_decode("Z", 1, dec, sizeof dec, &n), "length 1 mod 4");
	cr_assert_not(hf_b64url_decode("Zm9vY", 5, dec, sizeof dec, &n), "length 1 mod 4");
	/* "Zh" decodes to 'f' too but with non-zero unused bits: only "Zg" is canonical */
	cr_assert_not(hf_b64url_decode("Zh", 2, dec, sizeof dec, &n), "non-canonical 2 chars");
	cr_assert_not(hf_b64url_decode("Zm9", 3, dec, sizeof dec, &n), "non-canonical 3 chars");
	cr_assert(hf_b64url_decode("Zm8", 3, dec, sizeof dec, &n));
	cr_assert_not(hf_b64url_decode("Zm9vYmFy", 8, dec, 5, &n), "outmax");
	cr_assert(hf_b64url_decode("Zm9vYmFy", 8, dec, 6, &n) && n == 6);
	cr_assert(hf_b64url_decode("", 0, dec, 0, &n) && n == 0);
}
