#include "wg_noise.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

const char wg_construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const char wg_identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
const char wg_label_mac1[] = "mac1----";
const char wg_label_cookie[] = "cookie--";

/* Offsets inside the messages (paper §5.4.2, §5.4.3). */
enum {
	I_SENDER = 4, I_EPH = 8, I_STATIC = 40, I_TS = 88,
	R_SENDER = 4, R_RECEIVER = 8, R_EPH = 12, R_EMPTY = 44,
};

void wg_label_key(uint8_t out[WG_HASH_LEN], const char *label, const uint8_t pub[32])
{
	wg_hash2(out, label, 8, pub, 32);
}

void wg_static_init(struct wg_static *s, const uint8_t priv[32])
{
	memcpy(s->priv, priv, 32);
	crypto_scalarmult_base(s->pub, s->priv);
	wg_label_key(s->mac1_key, wg_label_mac1, s->pub);
	wg_label_key(s->cookie_key, wg_label_cookie, s->pub);
}

/* C0 = HASH(CONSTRUCTION), H0 = HASH(C0 || IDENTIFIER), then H = HASH(H0 || responder's
 * static key): both sides start here. */
static void start(struct wg_handshake *hs, const uint8_t responder_pub[32])
{
	wg_hash2(hs->ck, wg_construction, strlen(wg_construction), NULL, 0);
	wg_hash2(hs->hash, hs->ck, WG_HASH_LEN, wg_identifier, strlen(wg_identifier));
	wg_hash2(hs->hash, hs->hash, WG_HASH_LEN, responder_pub, 32);
}

static void mix_hash(struct wg_handshake *hs, const uint8_t *data, size_t len)
{
	wg_hash2(hs->hash, hs->hash, WG_HASH_LEN, data, len);
}

/* ck = KDF1(ck, data) */
static void mix_key(struct wg_handshake *hs, const uint8_t *data, size_t len)
{
	wg_kdf(hs->ck, NULL, NULL, hs->ck, data, len);
}

/* (ck, k) = KDF2(ck, DH(priv, pub)) */
static int mix_dh(struct wg_handshake *hs, uint8_t key[32], const uint8_t priv[32],
		  const uint8_t pub[32])
{
	uint8_t dh[32];

	if (wg_dh(dh, priv, pub) < 0)
		return -EINVAL;
	wg_kdf(hs->ck, key, NULL, hs->ck, dh, 32);
	sodium_memzero(dh, sizeof(dh));
	return 0;
}

/* ck = KDF1(ck, DH(priv, pub)) */
static int mix_dh1(struct wg_handshake *hs, const uint8_t priv[32], const uint8_t pub[32])
{
	uint8_t dh[32];

	if (wg_dh(dh, priv, pub) < 0)
		return -EINVAL;
	mix_key(hs, dh, 32);
	sodium_memzero(dh, sizeof(dh));
	return 0;
}

int wg_noise_init_create(struct wg_handshake *hs, const struct wg_static *s,
			 const uint8_t peer_pub[32], const uint8_t ss[32],
			 const uint8_t tai64n[WG_TAI64N_LEN], uint32_t local_index,
			 uint8_t msg[WG_INIT_LEN])
{
	uint8_t key[32];
	int r;

	memset(msg, 0, WG_INIT_LEN);
	msg[0] = WG_MSG_INIT;
	wg_put_le32(msg + I_SENDER, local_index);
	start(hs, peer_pub);
	wg_dh_generate(hs->e_priv, hs->e_pub);
	memcpy(msg + I_EPH, hs->e_pub, 32);
	mix_key(hs, hs->e_pub, 32);
	mix_hash(hs, hs->e_pub, 32);
	r = mix_dh(hs, key, hs->e_priv, peer_pub);
	if (r < 0)
		goto out;
	wg_aead_seal(msg + I_STATIC, key, 0, s->pub, 32, hs->hash, WG_HASH_LEN);
	mix_hash(hs, msg + I_STATIC, 32 + WG_AEAD_TAG);
	/* (ck, k) = KDF2(ck, ss) with the precomputed static-static DH. */
	wg_kdf(hs->ck, key, NULL, hs->ck, ss, 32);
	wg_aead_seal(msg + I_TS, key, 0, tai64n, WG_TAI64N_LEN, hs->hash, WG_HASH_LEN);
	mix_hash(hs, msg + I_TS, WG_TAI64N_LEN + WG_AEAD_TAG);
	memcpy(hs->remote_static, peer_pub, 32);
	hs->local_index = local_index;
out:
	sodium_memzero(key, sizeof(key));
	return r;
}

int wg_noise_init_open_static(struct wg_handshake *hs, const struct wg_static *s,
			      const uint8_t msg[WG_INIT_LEN])
{
	uint8_t key[32];
	int r;

	start(hs, s->pub);
	memcpy(hs->remote_e, msg + I_EPH, 32);
	mix_key(hs, hs->remote_e, 32);
	mix_hash(hs, hs->remote_e, 32);
	r = mix_dh(hs, key, s->priv, hs->remote_e);
	if (r < 0)
		goto out;
	r = wg_aead_open(hs->remote_static, key, 0, msg + I_STATIC, 32 + WG_AEAD_TAG, hs->hash,
			 WG_HASH_LEN);
	if (r < 0)
		goto out;
	mix_hash(hs, msg + I_STATIC, 32 + WG_AEAD_TAG);
	hs->remote_index = wg_get_le32(msg + I_SENDER);
out:
	sodium_memzero(key, sizeof(key));
	return r;
}

int wg_noise_init_open_timestamp(struct wg_handshake *hs, const uint8_t ss[32],
				 const uint8_t msg[WG_INIT_LEN],
				 uint8_t ret_tai64n[WG_TAI64N_LEN])
{
	uint8_t key[32], ts[WG_TAI64N_LEN];
	int r;

	wg_kdf(hs->ck, key, NULL, hs->ck, ss, 32);
	r = wg_aead_open(ts, key, 0, msg + I_TS, WG_TAI64N_LEN + WG_AEAD_TAG, hs->hash,
			 WG_HASH_LEN);
	sodium_memzero(key, sizeof(key));
	if (r < 0)
		return r;
	mix_hash(hs, msg + I_TS, WG_TAI64N_LEN + WG_AEAD_TAG);
	memcpy(ret_tai64n, ts, sizeof(ts));
	return 0;
}

/* (ck, t, k) = KDF3(ck, psk); H = HASH(H || t); the empty AEAD uses k. */
static void mix_psk(struct wg_handshake *hs, const uint8_t psk[32], uint8_t key[32])
{
	uint8_t t[32];

	wg_kdf(hs->ck, t, key, hs->ck, psk, 32);
	mix_hash(hs, t, 32);
	sodium_memzero(t, sizeof(t));
}

/* (T_initiator→responder, T_responder→initiator) = KDF2(ck, ε) */
static void derive(struct wg_handshake *hs, bool initiator, struct wg_session_keys *k)
{
	wg_kdf(initiator ? k->send : k->recv, initiator ? k->recv : k->send, NULL, hs->ck, NULL,
	       0);
	k->local_index = hs->local_index;
	k->remote_index = hs->remote_index;
}

int wg_noise_response_create(struct wg_handshake *hs, const uint8_t psk[32],
			     uint32_t local_index, uint8_t msg[WG_RESPONSE_LEN],
			     struct wg_session_keys *ret_keys)
{
	uint8_t key[32];
	int r;

	memset(msg, 0, WG_RESPONSE_LEN);
	msg[0] = WG_MSG_RESPONSE;
	wg_put_le32(msg + R_SENDER, local_index);
	wg_put_le32(msg + R_RECEIVER, hs->remote_index);
	wg_dh_generate(hs->e_priv, hs->e_pub);
	memcpy(msg + R_EPH, hs->e_pub, 32);
	mix_key(hs, hs->e_pub, 32);
	mix_hash(hs, hs->e_pub, 32);
	r = mix_dh1(hs, hs->e_priv, hs->remote_e);
	if (r == 0)
		r = mix_dh1(hs, hs->e_priv, hs->remote_static);
	if (r < 0)
		goto out;
	mix_psk(hs, psk, key);
	wg_aead_seal(msg + R_EMPTY, key, 0, NULL, 0, hs->hash, WG_HASH_LEN);
	mix_hash(hs, msg + R_EMPTY, WG_AEAD_TAG);
	hs->local_index = local_index;
	derive(hs, false, ret_keys);
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hs, sizeof(*hs));
	return r;
}

int wg_noise_response_consume(struct wg_handshake *hs, const struct wg_static *s,
			      const uint8_t psk[32], const uint8_t msg[WG_RESPONSE_LEN],
			      struct wg_session_keys *ret_keys)
{
	struct wg_handshake t = *hs; /* hs stays intact if the message is a forgery */
	uint8_t key[32];
	int r;

	memcpy(t.remote_e, msg + R_EPH, 32);
	mix_key(&t, t.remote_e, 32);
	mix_hash(&t, t.remote_e, 32);
	r = mix_dh1(&t, t.e_priv, t.remote_e);
	if (r == 0)
		r = mix_dh1(&t, s->priv, t.remote_e);
	if (r < 0)
		goto out;
	mix_psk(&t, psk, key);
	r = wg_aead_open(NULL, key, 0, msg + R_EMPTY, WG_AEAD_TAG, t.hash, WG_HASH_LEN);
	if (r < 0)
		goto out;
	mix_hash(&t, msg + R_EMPTY, WG_AEAD_TAG);
	t.remote_index = wg_get_le32(msg + R_SENDER);
	derive(&t, true, ret_keys);
	sodium_memzero(hs, sizeof(*hs));
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(&t, sizeof(t));
	return r;
}
