/* A WireGuard protocol engine (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, as described in the
 * WireGuard paper and at wireguard.com/protocol). It owns no sockets and no TUN device: the
 * caller feeds it IP packets (wg_send_ip, wg_encrypt_inplace) and UDP datagrams
 * (wg_recv_udp), calls wg_tick a few times a second, and gets datagrams and decrypted
 * packets back through callbacks.
 *
 * Thread safety: after wg_engine_new, every function here may be called from any thread,
 * concurrently, except wg_engine_free (nothing else may run). The engine never holds one
 * of its locks while it calls a callback, so a callback may call into the engine (but the
 * buffer it was handed is not valid after such a call).
 * Several threads may encrypt and decrypt at once; handshakes of one peer are serialised.
 *
 * Errors are negative errno values. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define WG_KEY_LEN 32
/* Bytes in front of a packet that wg_encrypt_inplace writes the transport header into. */
#define WG_HEADROOM 16
/* A transport datagram is at most WG_HEADROOM + (len rounded up to 16) + WG_TAG_LEN. */
#define WG_TAG_LEN 16
#define WG_OVERHEAD (WG_HEADROOM + WG_TAG_LEN + 15)
#define WG_DEFAULT_MTU 1420

struct wg_engine;

/* An address and port, IPv4 or IPv6 (family AF_UNSPEC: none). */
struct wg_endpoint {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	};
};

struct wg_allowedip {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t cidr;
};

struct wg_peer_config {
	uint8_t public_key[WG_KEY_LEN];
	uint8_t preshared_key[WG_KEY_LEN]; /* all zero when not set, as in the protocol */
	struct wg_endpoint endpoint;       /* AF_UNSPEC: learnt from the peer's first handshake */
	uint16_t persistent_keepalive;     /* seconds, 0 = off */
	const struct wg_allowedip *allowed_ips;
	size_t n_allowed_ips;
};

struct wg_config {
	uint8_t private_key[WG_KEY_LEN];
	uint16_t listen_port;   /* informational: the caller owns the socket */
	unsigned mtu;           /* the tunnel MTU, caps the padding; 0 = WG_DEFAULT_MTU */
	/* Handshake messages per second above which the engine is "under load" and demands
	 * cookies (MAC2); 0 = the default (1000), UINT32_MAX = never. */
	uint32_t load_threshold;
	const struct wg_peer_config *peers;
	size_t n_peers;
};

enum wg_event {
	WG_EV_HANDSHAKE_SENT,      /* an initiation went out */
	WG_EV_SESSION_INITIATOR,   /* we completed a handshake as initiator */
	WG_EV_SESSION_RESPONDER,   /* we answered an initiation: a session is waiting confirmation */
	WG_EV_SESSION_CONFIRMED,   /* the responder's session was confirmed by a transport packet */
	WG_EV_ENDPOINT_CHANGED,    /* the peer roamed */
	WG_EV_HANDSHAKE_GAVE_UP,   /* REKEY_ATTEMPT_TIME passed without an answer */
	WG_EV_KEYS_ZEROED,         /* no handshake for 3 x REJECT_AFTER_TIME */
};

/* The callback table begins with its size so it can grow; unknown trailing members are
 * treated as NULL. now is required, the others may be NULL. */
struct wg_callbacks {
	size_t size; /* sizeof(struct wg_callbacks) */
	/* Monotonic nanoseconds, read for every packet: a coarse clock (a few ms) is enough.
	 * Tests substitute their own clock. */
	uint64_t (*now)(void *ud);
	/* Wall-clock nanoseconds since 1970 for TAI64N timestamps; NULL: CLOCK_REALTIME. */
	uint64_t (*realtime)(void *ud);
	/* A datagram for the peer at to. The bytes are valid during the call only. */
	void (*send_udp)(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len);
	/* A decrypted, authenticated, source-checked IP packet for the TUN device. */
	void (*write_ip)(void *ud, uint8_t *pkt, size_t len);
	void (*event)(void *ud, size_t peer, enum wg_event ev);
};

/* Counters, per engine and per peer (the drop counters of a peer count what could be
 * attributed to it). All monotonic. */
struct wg_counters {
	uint64_t rx_packets, rx_bytes;     /* transport packets and plaintext bytes delivered */
	uint64_t tx_packets, tx_bytes;     /* transport packets and plaintext bytes encrypted */
	uint64_t keepalives_rx, keepalives_tx;
	uint64_t handshakes_sent;          /* initiations and responses sent */
	uint64_t handshakes_received;      /* valid initiations and responses accepted */
	uint64_t handshakes_completed;     /* sessions derived */
	uint64_t cookies_sent, cookies_received;
	uint64_t drop_bad_mac1;
	uint64_t drop_needs_cookie;        /* under load with a missing or wrong MAC2 */
	uint64_t drop_decrypt;             /* AEAD failures, handshake or transport */
	uint64_t drop_replay;              /* transport counters seen before; stale timestamps */
	uint64_t drop_allowed_ip;          /* decrypted source not in the peer's allowed IPs */
	uint64_t drop_unknown_index;       /* no session or handshake under that receiver index */
	uint64_t drop_malformed;           /* short, wrong type or size, not IPv4/IPv6 */
	uint64_t drop_no_peer;             /* outgoing: no peer routes the destination */
	uint64_t drop_no_session;          /* outgoing: queue full or no endpoint / expired key */
	uint64_t drop_unknown_peer;        /* an initiation from a static key we do not know */
};

struct wg_peer_status {
	uint8_t public_key[WG_KEY_LEN];
	struct wg_endpoint endpoint;
	uint64_t last_handshake_ns;   /* monotonic time of the last session, 0 = never */
	bool has_session;             /* a current keypair usable for sending */
	struct wg_counters counters;
};

int wg_engine_new(const struct wg_config *cfg, const struct wg_callbacks *cb, void *ud,
		  struct wg_engine **ret_engine);
void wg_engine_free(struct wg_engine *e);

/* Plaintext IP packet (from the TUN device) → peer by destination → encrypted → send_udp.
 * Without a session the packet is queued (a few per peer) and a handshake starts.
 * Returns 0 when sent or queued, -ENETUNREACH without a peer, -EINVAL for non-IP input. */
int wg_send_ip(struct wg_engine *e, const uint8_t *pkt, size_t len);

/* The batch path, without copies: the packet is at buf + WG_HEADROOM (len bytes) and buf
 * holds cap bytes. Encrypts in place; on success buf[0..*ret_len) is the datagram for
 * *ret_to and the caller sends it (sendmmsg). -EAGAIN: no session yet, the packet was copied
 * into the peer's queue and a handshake started (nothing to send now). -ENOBUFS: cap is
 * short (needs len + WG_OVERHEAD). */
int wg_encrypt_inplace(struct wg_engine *e, uint8_t *buf, size_t cap, size_t len,
		       size_t *ret_len, struct wg_endpoint *ret_to);

/* The same from a read-only packet (a provider's read_packets batch): pkt is copied into
 * out (cap bytes, at least len + WG_OVERHEAD) and encrypted there; the datagram is
 * out[0..*ret_len). Returns as wg_encrypt_inplace. */
int wg_encrypt_into(struct wg_engine *e, const uint8_t *pkt, size_t len, uint8_t *out,
		    size_t cap, size_t *ret_len, struct wg_endpoint *ret_to);

/* A datagram from the UDP socket. buf is decrypted in place (it is modified). Results go to
 * write_ip (packets) and send_udp (handshake replies, queued packets). Returns 0 or a
 * negative errno saying why it was dropped (counted either way). */
int wg_recv_udp(struct wg_engine *e, const struct wg_endpoint *from, uint8_t *buf, size_t len);

/* The batch path of wg_recv_udp: the same checks and replies, but a decrypted packet is
 * returned instead of passed to write_ip, so the caller can write several at once. Returns
 * 1 with the packet at *ret_pkt (inside buf, *ret_len bytes), 0 when the datagram was
 * consumed (handshake, cookie, keepalive), or a negative errno when it was dropped. */
int wg_decrypt_inplace(struct wg_engine *e, const struct wg_endpoint *from, uint8_t *buf,
		       size_t len, uint8_t **ret_pkt, size_t *ret_len);

/* Timers: retransmissions, keepalives, rekeying, key expiry, cookie secret rotation.
 * Call every 100–250 ms with the same clock as cb->now. */
void wg_tick(struct wg_engine *e, uint64_t now_ns);

/* Tests and operators: force "under load" (cookies demanded) on or back to the rate rule. */
void wg_set_under_load(struct wg_engine *e, bool forced);

void wg_get_counters(struct wg_engine *e, struct wg_counters *ret);
size_t wg_peer_count(struct wg_engine *e);
int wg_peer_status(struct wg_engine *e, size_t peer, struct wg_peer_status *ret);
/* Our public key (derived from the private key). */
void wg_public_key(struct wg_engine *e, uint8_t ret_key[WG_KEY_LEN]);

/* Key helpers: base64 (44 characters) to 32 bytes and back; the public key of a private key. */
int wg_key_from_base64(const char *b64, uint8_t ret_key[WG_KEY_LEN]);
void wg_key_to_base64(const uint8_t key[WG_KEY_LEN], char ret_b64[45]);
int wg_public_from_private(const uint8_t priv[WG_KEY_LEN], uint8_t ret_pub[WG_KEY_LEN]);
