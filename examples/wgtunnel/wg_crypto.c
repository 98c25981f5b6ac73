/* The WireGuard primitives over libsodium (X25519, ChaCha20-Poly1305, XChaCha20-Poly1305)
 * and libb2 (BLAKE2s). */
#include "wg_crypto.h"

#include <blake2.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

void wg_hash2(uint8_t out[WG_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen)
{
	blake2s_state s;

	blake2s_init(&s, WG_HASH_LEN);
	blake2s_update(&s, a, alen);
	if (blen)
		blake2s_update(&s, b, blen);
	blake2s_final(&s, out, WG_HASH_LEN);
}

void wg_mac(uint8_t out[WG_MAC_LEN], const uint8_t *key, size_t keylen, const void *in,
	    size_t len)
{
	blake2s(out, in, key, WG_MAC_LEN, len, keylen);
}

/* The protocol's HKDF is built on HMAC (RFC 2104) over BLAKE2s, not on BLAKE2s's own keyed
 * mode: keyed BLAKE2s here would not interoperate. */
void wg_hmac(uint8_t out[WG_HASH_LEN], const uint8_t *key, size_t keylen, const void *in,
	     size_t len)
{
	uint8_t pad[BLAKE2S_BLOCKBYTES], inner[WG_HASH_LEN];
	blake2s_state s;

	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, keylen);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	blake2s_init(&s, WG_HASH_LEN);
	blake2s_update(&s, pad, sizeof(pad));
	blake2s_update(&s, in, len);
	blake2s_final(&s, inner, WG_HASH_LEN);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	blake2s_init(&s, WG_HASH_LEN);
	blake2s_update(&s, pad, sizeof(pad));
	blake2s_update(&s, inner, sizeof(inner));
	blake2s_final(&s, out, WG_HASH_LEN);
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&s, sizeof(s));
}

void wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t key[WG_HASH_LEN],
	    const void *in, size_t len)
{
	uint8_t t0[WG_HASH_LEN], buf[WG_HASH_LEN + 1], out[WG_HASH_LEN];

	wg_hmac(t0, key, WG_HASH_LEN, in, len);
	buf[0] = 1;
	wg_hmac(out, t0, WG_HASH_LEN, buf, 1);
	if (t1)
		memcpy(t1, out, WG_HASH_LEN);
	if (t2 || t3) {
		memcpy(buf, out, WG_HASH_LEN);
		buf[WG_HASH_LEN] = 2;
		wg_hmac(out, t0, WG_HASH_LEN, buf, sizeof(buf));
		if (t2)
			memcpy(t2, out, WG_HASH_LEN);
	}
	if (t3) {
		memcpy(buf, out, WG_HASH_LEN);
		buf[WG_HASH_LEN] = 3;
		wg_hmac(t3, t0, WG_HASH_LEN, buf, sizeof(buf));
	}
	sodium_memzero(t0, sizeof(t0));
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(out, sizeof(out));
}

int wg_dh(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32])
{
	static const uint8_t zero[32];

	/* libsodium already refuses an all-zero result; the explicit check keeps the
	 * protocol's requirement visible and independent of the library version. */
	if (crypto_scalarmult(out, priv, pub) != 0 || sodium_memcmp(out, zero, 32) == 0) {
		sodium_memzero(out, 32);
		return -EINVAL;
	}
	return 0;
}

void wg_dh_generate(uint8_t priv[32], uint8_t pub[32])
{
	randombytes_buf(priv, 32);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
}

static void nonce96(uint8_t n[12], uint64_t counter)
{
	memset(n, 0, 4);
	for (int i = 0; i < 8; i++)
		n[4 + i] = (uint8_t)(counter >> (8 * i));
}

void wg_aead_seal(uint8_t *out, const uint8_t key[32], uint64_t counter, const uint8_t *plain,
		  size_t len, const uint8_t *ad, size_t adlen)
{
	uint8_t n[12];

	nonce96(n, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, plain, len, ad, adlen, NULL, n, key);
}

int wg_aead_open(uint8_t *out, const uint8_t key[32], uint64_t counter, const uint8_t *in,
		 size_t len, const uint8_t *ad, size_t adlen)
{
	uint8_t n[12];

	if (len < WG_AEAD_TAG)
		return -EBADMSG;
	nonce96(n, counter);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, adlen, n,
						      key) != 0)
		return -EBADMSG;
	return 0;
}

void wg_xaead_seal(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WG_XNONCE_LEN],
		   const uint8_t *plain, size_t len, const uint8_t *ad, size_t adlen)
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, plain, len, ad, adlen, NULL, nonce,
						   key);
}

int wg_xaead_open(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WG_XNONCE_LEN],
		  const uint8_t *in, size_t len, const uint8_t *ad, size_t adlen)
{
	if (len < WG_AEAD_TAG)
		return -EBADMSG;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, adlen,
						       nonce, key) != 0)
		return -EBADMSG;
	return 0;
}

void wg_tai64n(uint8_t out[WG_TAI64N_LEN], uint64_t unix_ns)
{
	uint64_t secs = unix_ns / 1000000000u + 0x400000000000000aULL;
	uint32_t nsec = (uint32_t)(unix_ns % 1000000000u);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(secs >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

bool wg_ct_equal(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len) == 0;
}
