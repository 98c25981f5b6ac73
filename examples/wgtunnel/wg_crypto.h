/* The WireGuard primitives (paper §5.4): HASH, MAC, HMAC, KDF1..3, DH, AEAD, XAEAD, TAI64N.
 * Pure functions over caller memory; they never fail except DH (a low-order point) and the
 * AEAD opens (authentication). Internal to the engine. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WG_HASH_LEN 32
#define WG_MAC_LEN 16
#define WG_TAI64N_LEN 12
#define WG_AEAD_TAG 16
#define WG_XNONCE_LEN 24

/* HASH(a || b): BLAKE2s-256 of the concatenation (b may be NULL with blen 0). */
void wg_hash2(uint8_t out[WG_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen);
/* MAC(key, in): keyed BLAKE2s with a 16-byte output (keys of 32 bytes, or 16 for cookies). */
void wg_mac(uint8_t out[WG_MAC_LEN], const uint8_t *key, size_t keylen, const void *in,
	    size_t len);
/* HMAC-BLAKE2s per RFC 2104 (64-byte blocks), key at most 64 bytes. */
void wg_hmac(uint8_t out[WG_HASH_LEN], const uint8_t *key, size_t keylen, const void *in,
	     size_t len);
/* KDFn(key, in): n outputs of 32 bytes each (t1, t2, t3); unused outputs may be NULL. */
void wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t key[WG_HASH_LEN],
	    const void *in, size_t len);

/* DH(priv, pub); -EINVAL when the result is all zero (a low-order public key). */
int wg_dh(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]);
void wg_dh_generate(uint8_t priv[32], uint8_t pub[32]);

/* AEAD(key, counter, plain, ad): ChaCha20-Poly1305 IETF, nonce = 4 zero bytes || LE64(counter).
 * out holds len + 16 bytes. */
void wg_aead_seal(uint8_t *out, const uint8_t key[32], uint64_t counter, const uint8_t *plain,
		  size_t len, const uint8_t *ad, size_t adlen);
/* in holds len bytes including the tag; out gets len - 16. 0 or -EBADMSG. */
int wg_aead_open(uint8_t *out, const uint8_t key[32], uint64_t counter, const uint8_t *in,
		 size_t len, const uint8_t *ad, size_t adlen);
void wg_xaead_seal(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WG_XNONCE_LEN],
		   const uint8_t *plain, size_t len, const uint8_t *ad, size_t adlen);
int wg_xaead_open(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WG_XNONCE_LEN],
		  const uint8_t *in, size_t len, const uint8_t *ad, size_t adlen);

/* TAI64N of a wall-clock time in nanoseconds since 1970: 8 bytes big-endian seconds with the
 * TAI64 offset 2^62 + 10, then 4 bytes big-endian nanoseconds. */
void wg_tai64n(uint8_t out[WG_TAI64N_LEN], uint64_t unix_ns);

bool wg_ct_equal(const void *a, const void *b, size_t len);
