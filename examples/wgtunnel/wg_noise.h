/* The Noise_IKpsk2 handshake of WireGuard (paper §5.4.2–5.4.4): building and consuming the
 * initiation and response messages and deriving the transport keys. MAC1/MAC2 are the
 * engine's business (they depend on cookies); these functions leave them zero and never
 * look at them. No locks, no clocks: the engine serialises per peer. */
#pragma once

#include <stdint.h>

#include "wg_crypto.h"

#define WG_MSG_INIT 1
#define WG_MSG_RESPONSE 2
#define WG_MSG_COOKIE 3
#define WG_MSG_DATA 4
#define WG_INIT_LEN 148
#define WG_RESPONSE_LEN 92
#define WG_COOKIE_LEN 64
#define WG_DATA_HDR 16
/* MAC1 covers everything before it, MAC2 everything before MAC2 (the last 32 bytes). */
#define WG_MAC1_OFF(len) ((len) - 32)
#define WG_MAC2_OFF(len) ((len) - 16)

extern const char wg_construction[];
extern const char wg_identifier[];
extern const char wg_label_mac1[];
extern const char wg_label_cookie[];

struct wg_static {
	uint8_t priv[32], pub[32];
	uint8_t mac1_key[WG_HASH_LEN];   /* HASH(LABEL_MAC1 || pub): checks MAC1 sent to us */
	uint8_t cookie_key[WG_HASH_LEN]; /* HASH(LABEL_COOKIE || pub): seals our cookie replies */
};

/* Between the messages of one handshake (one per peer). */
struct wg_handshake {
	uint8_t hash[WG_HASH_LEN], ck[WG_HASH_LEN];
	uint8_t e_priv[32], e_pub[32]; /* ours */
	uint8_t remote_e[32];
	uint8_t remote_static[32];
	uint32_t local_index, remote_index;
};

struct wg_session_keys {
	uint8_t send[32], recv[32];
	uint32_t local_index, remote_index;
};

void wg_static_init(struct wg_static *s, const uint8_t priv[32]);
/* Both sides' precomputed HASH(label || key). */
void wg_label_key(uint8_t out[WG_HASH_LEN], const char *label, const uint8_t pub[32]);

/* Initiator, message 1. ss = DH(our static, peer static), precomputed. */
int wg_noise_init_create(struct wg_handshake *hs, const struct wg_static *s,
			 const uint8_t peer_pub[32], const uint8_t ss[32],
			 const uint8_t tai64n[WG_TAI64N_LEN], uint32_t local_index,
			 uint8_t msg[WG_INIT_LEN]);
/* Responder, message 1 in two steps: first the initiator's static key (to find the peer),
 * then, with that peer's precomputed ss, its timestamp. */
int wg_noise_init_open_static(struct wg_handshake *hs, const struct wg_static *s,
			      const uint8_t msg[WG_INIT_LEN]);
int wg_noise_init_open_timestamp(struct wg_handshake *hs, const uint8_t ss[32],
				 const uint8_t msg[WG_INIT_LEN],
				 uint8_t ret_tai64n[WG_TAI64N_LEN]);
/* Responder, message 2, and its keys; hs is wiped. */
int wg_noise_response_create(struct wg_handshake *hs, const uint8_t psk[32],
			     uint32_t local_index, uint8_t msg[WG_RESPONSE_LEN],
			     struct wg_session_keys *ret_keys);
/* Initiator, message 2, and its keys; hs is wiped on success only. */
int wg_noise_response_consume(struct wg_handshake *hs, const struct wg_static *s,
			      const uint8_t psk[32], const uint8_t msg[WG_RESPONSE_LEN],
			      struct wg_session_keys *ret_keys);

static inline uint32_t wg_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wg_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t wg_get_le64(const uint8_t *p)
{
	return (uint64_t)wg_get_le32(p) | (uint64_t)wg_get_le32(p + 4) << 32;
}

static inline void wg_put_le64(uint8_t *p, uint64_t v)
{
	wg_put_le32(p, (uint32_t)v);
	wg_put_le32(p + 4, (uint32_t)(v >> 32));
}
