/* The WireGuard engine: peers, sessions, cookies, timers and the transport data path.
 *
 * Trust: every datagram given to wg_recv_udp comes from anyone on the network. It is checked
 * in a fixed order — size and type, MAC1 (proves knowledge of our public key), MAC2 when
 * under load (proves the source address), then the AEADs; the replay window is consulted
 * only after authentication, and a decrypted packet must carry a source address its peer is
 * allowed to use. Packets given to wg_send_ip come from the local host.
 *
 * Locks, in the order they nest: peer->hs_lock (handshake, cookie, staged queue, timer
 * state), peer->kp_lock (rwlock: the three keypairs and the endpoint), e->idx_lock (index
 * table), keypair->replay_lock. No lock is held across a callback. Keypairs are freed only
 * under kp_lock held for writing, and readers use them only under kp_lock held for reading,
 * which is what lets encryption and decryption run in parallel without reference counts. */
#include "wg.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wg_allowedips.h"
#include "wg_noise.h"
#include "wg_replay.h"

#define NSEC 1000000000ULL
/* Paper §6.1 and the kernel's messages.h. */
#define REKEY_AFTER_MESSAGES (1ULL << 60)
#define REJECT_AFTER_MESSAGES (UINT64_MAX - (1ULL << 13)) /* 2^64 - 2^13 - 1 */
#define REKEY_AFTER_TIME (120 * NSEC)
#define REJECT_AFTER_TIME (180 * NSEC)
#define REKEY_ATTEMPT_TIME (90 * NSEC)
#define REKEY_TIMEOUT (5 * NSEC)
#define KEEPALIVE_TIMEOUT (10 * NSEC)
#define MAX_TIMER_HANDSHAKES (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)
#define COOKIE_SECRET_MAX_AGE (120 * NSEC)
#define COOKIE_SECRET_LATENCY (5 * NSEC)
#define INITIATION_MIN_INTERVAL (NSEC / 50)
#define DEFAULT_LOAD_THRESHOLD 1000
#define STAGED_MAX 64
#define MAX_PACKET 65535

#define CNT(field) (offsetof(struct wg_counters, field) / sizeof(uint64_t))
#define NCOUNTERS (sizeof(struct wg_counters) / sizeof(uint64_t))

struct counters {
	_Atomic uint64_t v[NCOUNTERS];
};

struct keypair {
	uint8_t send[32], recv[32];
	uint32_t local_index, remote_index;
	uint64_t birth;
	bool initiator;
	_Atomic uint64_t send_counter;
	pthread_mutex_t replay_lock;
	struct wg_replay replay;
};

enum hs_state { HS_NONE, HS_INIT_SENT };

struct staged {
	uint8_t *pkt;
	size_t len;
};

struct peer {
	struct wg_engine *e;
	size_t idx;
	uint8_t pub[32], psk[32];
	uint8_t ss[32]; /* DH(our static, its static), fixed for the engine's life */
	bool ss_ok;
	uint8_t mac1_key[WG_HASH_LEN], cookie_key[WG_HASH_LEN];
	uint64_t keepalive_ns;

	pthread_rwlock_t kp_lock;
	struct keypair *cur, *prev, *next;
	struct wg_endpoint ep;

	pthread_mutex_t hs_lock;
	enum hs_state hs_state;
	struct wg_handshake hs;
	uint64_t last_init_sent, retransmit_at;
	unsigned attempts;
	uint8_t latest_ts[WG_TAI64N_LEN]; /* greatest initiation timestamp accepted */
	uint8_t sent_ts[WG_TAI64N_LEN];   /* greatest one we sent */
	uint64_t last_init_rx;
	uint8_t cookie[WG_MAC_LEN];
	uint64_t cookie_birth;
	bool has_cookie;
	uint8_t last_mac1[WG_MAC_LEN];
	bool has_last_mac1;
	struct staged staged[STAGED_MAX];
	unsigned staged_head, staged_n;

	/* Timer inputs the data path writes without a lock (times on cb->now's clock). */
	_Atomic uint64_t t_tx_auth, t_rx_auth, t_new_handshake, t_session;
	/* Armed by the first data packet received after we last sent anything. */
	_Atomic uint64_t t_keepalive;
	atomic_bool lastminute_rekey;
	struct counters cnt;
};

struct idx_slot {
	uint32_t index;
	struct peer *peer; /* NULL: empty */
};

struct wg_engine {
	struct wg_callbacks cb;
	void *ud;
	struct wg_static st;
	unsigned mtu;
	uint32_t load_threshold;
	struct peer *peers;
	size_t n_peers;
	struct wg_allowedips aip;

	pthread_rwlock_t idx_lock;
	struct idx_slot *slots;
	size_t slot_mask;

	pthread_mutex_t cookie_lock;
	uint8_t cookie_secret[32];
	uint64_t cookie_secret_birth;
	bool cookie_secret_set;

	pthread_mutex_t load_lock;
	uint64_t load_sec, load_cur, load_prev;
	atomic_bool forced_load;
	struct counters cnt;
};

static _Thread_local uint8_t tls_buf[WG_HEADROOM + MAX_PACKET + WG_OVERHEAD];

/* ---- small helpers ------------------------------------------------------------------ */

static void count(struct wg_engine *e, struct peer *p, size_t c, uint64_t n)
{
	atomic_fetch_add_explicit(&e->cnt.v[c], n, memory_order_relaxed);
	if (p)
		atomic_fetch_add_explicit(&p->cnt.v[c], n, memory_order_relaxed);
}

static void counters_read(struct counters *c, struct wg_counters *ret)
{
	uint64_t *out = (uint64_t *)ret;

	for (size_t i = 0; i < NCOUNTERS; i++)
		out[i] = atomic_load_explicit(&c->v[i], memory_order_relaxed);
}

static void emit(struct wg_engine *e, struct peer *p, enum wg_event ev)
{
	if (e->cb.event)
		e->cb.event(e->ud, p->idx, ev);
}

/* Time since t; 0 when another thread stamped t with a slightly later clock reading. */
static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

static uint64_t now_ns(struct wg_engine *e)
{
	return e->cb.now(e->ud);
}

static uint64_t realtime_ns(struct wg_engine *e)
{
	struct timespec ts;

	if (e->cb.realtime)
		return e->cb.realtime(e->ud);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static void send_udp(struct wg_engine *e, const struct wg_endpoint *to, const uint8_t *buf,
		     size_t len)
{
	if (e->cb.send_udp)
		e->cb.send_udp(e->ud, to, buf, len);
}

static bool ep_equal(const struct wg_endpoint *a, const struct wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_port == b->in4.sin_port &&
		       a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return a->in6.sin6_port == b->in6.sin6_port &&
		       a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
		       memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	return true;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The family and source/destination addresses of an IP packet, and its length from the
 * header (the rest is padding). */
struct ip_info {
	int family;
	const uint8_t *src, *dst;
	size_t len;
};

static int ip_parse(const uint8_t *pkt, size_t len, struct ip_info *ret)
{
	if (len >= 20 && pkt[0] >> 4 == 4) {
		size_t tot = be16(pkt + 2);

		if ((pkt[0] & 15) < 5 || tot < 20 || tot > len)
			return -EINVAL;
		*ret = (struct ip_info){ AF_INET, pkt + 12, pkt + 16, tot };
		return 0;
	}
	if (len >= 40 && pkt[0] >> 4 == 6) {
		size_t tot = (size_t)be16(pkt + 4) + 40;

		if (tot > len)
			return -EINVAL;
		*ret = (struct ip_info){ AF_INET6, pkt + 8, pkt + 24, tot };
		return 0;
	}
	return -EINVAL;
}

/* ---- the index table: our receiver indices → peers ----------------------------------- */

static size_t slot_of(const struct wg_engine *e, uint32_t index)
{
	return (size_t)(index * 0x9e3779b1u) & e->slot_mask;
}

static struct peer *idx_lookup(struct wg_engine *e, uint32_t index)
{
	struct peer *p = NULL;

	pthread_rwlock_rdlock(&e->idx_lock);
	for (size_t i = slot_of(e, index); e->slots[i].peer; i = (i + 1) & e->slot_mask)
		if (e->slots[i].index == index) {
			p = e->slots[i].peer;
			break;
		}
	pthread_rwlock_unlock(&e->idx_lock);
	return p;
}

/* A fresh random index for p. The table has room for 8 per peer and a peer holds at most 4
 * (a handshake and three keypairs), so the probe always ends. */
static uint32_t idx_add(struct wg_engine *e, struct peer *p)
{
	uint32_t index;
	size_t i;

	pthread_rwlock_wrlock(&e->idx_lock);
again:
	index = randombytes_random();
	for (i = slot_of(e, index); e->slots[i].peer; i = (i + 1) & e->slot_mask)
		if (e->slots[i].index == index)
			goto again;
	e->slots[i] = (struct idx_slot){ index, p };
	pthread_rwlock_unlock(&e->idx_lock);
	return index;
}

/* Linear probing with backward-shift deletion: no tombstones to accumulate. */
static void idx_del(struct wg_engine *e, uint32_t index)
{
	size_t i, j, k;

	pthread_rwlock_wrlock(&e->idx_lock);
	for (i = slot_of(e, index); e->slots[i].peer; i = (i + 1) & e->slot_mask)
		if (e->slots[i].index == index)
			break;
	if (!e->slots[i].peer)
		goto out;
	e->slots[i].peer = NULL;
	for (j = (i + 1) & e->slot_mask; e->slots[j].peer; j = (j + 1) & e->slot_mask) {
		k = slot_of(e, e->slots[j].index);
		/* Leave j if its home k lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		e->slots[i] = e->slots[j];
		e->slots[j].peer = NULL;
		i = j;
	}
out:
	pthread_rwlock_unlock(&e->idx_lock);
}

/* ---- keypairs ------------------------------------------------------------------------ */

static struct keypair *keypair_new(const struct wg_session_keys *k, bool initiator,
				   uint64_t now)
{
	struct keypair *kp = calloc(1, sizeof(*kp));

	if (!kp)
		return NULL;
	memcpy(kp->send, k->send, 32);
	memcpy(kp->recv, k->recv, 32);
	kp->local_index = k->local_index;
	kp->remote_index = k->remote_index;
	kp->birth = now;
	kp->initiator = initiator;
	pthread_mutex_init(&kp->replay_lock, NULL);
	wg_replay_init(&kp->replay);
	return kp;
}

/* Under kp_lock for writing. */
static void keypair_drop(struct wg_engine *e, struct keypair **slot)
{
	struct keypair *kp = *slot;

	if (!kp)
		return;
	*slot = NULL;
	idx_del(e, kp->local_index);
	pthread_mutex_destroy(&kp->replay_lock);
	sodium_memzero(kp, sizeof(*kp));
	free(kp);
}

static struct keypair *keypair_find(struct peer *p, uint32_t index)
{
	if (p->cur && p->cur->local_index == index)
		return p->cur;
	if (p->prev && p->prev->local_index == index)
		return p->prev;
	if (p->next && p->next->local_index == index)
		return p->next;
	return NULL;
}

/* The initiator uses a new session at once; the responder waits for the initiator's first
 * transport packet (paper §5.4.6), keeping the new one as "next". */
static void keypair_install(struct peer *p, struct keypair *kp)
{
	struct wg_engine *e = p->e;

	pthread_rwlock_wrlock(&p->kp_lock);
	if (kp->initiator) {
		if (p->next) {
			keypair_drop(e, &p->prev);
			p->prev = p->next;
			p->next = NULL;
			keypair_drop(e, &p->cur);
		} else {
			keypair_drop(e, &p->prev);
			p->prev = p->cur;
		}
		p->cur = kp;
	} else {
		keypair_drop(e, &p->next);
		keypair_drop(e, &p->prev);
		p->next = kp;
	}
	pthread_rwlock_unlock(&p->kp_lock);
	atomic_store(&p->t_session, kp->birth);
	atomic_store(&p->lastminute_rekey, false);
}

static void keypairs_zero(struct peer *p)
{
	pthread_rwlock_wrlock(&p->kp_lock);
	keypair_drop(p->e, &p->cur);
	keypair_drop(p->e, &p->prev);
	keypair_drop(p->e, &p->next);
	pthread_rwlock_unlock(&p->kp_lock);
}

/* ---- cookies (paper §5.4.7) ----------------------------------------------------------- */

/* The cookie of a source: MAC(Rm, address || port), Rm replaced every two minutes. */
static void cookie_of(struct wg_engine *e, const struct wg_endpoint *from, uint64_t now,
		      uint8_t out[WG_MAC_LEN])
{
	uint8_t am[18];
	size_t n;

	if (from->sa.sa_family == AF_INET) {
		memcpy(am, &from->in4.sin_addr, 4);
		memcpy(am + 4, &from->in4.sin_port, 2);
		n = 6;
	} else {
		memcpy(am, &from->in6.sin6_addr, 16);
		memcpy(am + 16, &from->in6.sin6_port, 2);
		n = 18;
	}
	pthread_mutex_lock(&e->cookie_lock);
	if (!e->cookie_secret_set || since(now, e->cookie_secret_birth) >= COOKIE_SECRET_MAX_AGE) {
		randombytes_buf(e->cookie_secret, sizeof(e->cookie_secret));
		e->cookie_secret_birth = now;
		e->cookie_secret_set = true;
	}
	wg_mac(out, e->cookie_secret, 32, am, n);
	pthread_mutex_unlock(&e->cookie_lock);
}

static bool mac1_ok(struct wg_engine *e, const uint8_t *msg, size_t len)
{
	uint8_t mac[WG_MAC_LEN];

	wg_mac(mac, e->st.mac1_key, WG_HASH_LEN, msg, WG_MAC1_OFF(len));
	return wg_ct_equal(mac, msg + WG_MAC1_OFF(len), WG_MAC_LEN);
}

static bool mac2_ok(struct wg_engine *e, const struct wg_endpoint *from, const uint8_t *msg,
		    size_t len, uint64_t now)
{
	uint8_t cookie[WG_MAC_LEN], mac[WG_MAC_LEN];

	cookie_of(e, from, now, cookie);
	wg_mac(mac, cookie, WG_MAC_LEN, msg, WG_MAC2_OFF(len));
	return wg_ct_equal(mac, msg + WG_MAC2_OFF(len), WG_MAC_LEN);
}

/* Message 3 to the sender of msg: its cookie, sealed under HASH(LABEL_COOKIE || our public
 * key) with msg's MAC1 as associated data. */
static void cookie_reply(struct wg_engine *e, const struct wg_endpoint *from,
			 const uint8_t *msg, size_t len, uint64_t now)
{
	uint8_t out[WG_COOKIE_LEN] = { WG_MSG_COOKIE }, cookie[WG_MAC_LEN];

	memcpy(out + 4, msg + 4, 4); /* their sender index */
	randombytes_buf(out + 8, WG_XNONCE_LEN);
	cookie_of(e, from, now, cookie);
	wg_xaead_seal(out + 32, e->st.cookie_key, out + 8, cookie, WG_MAC_LEN,
		      msg + WG_MAC1_OFF(len), WG_MAC_LEN);
	count(e, NULL, CNT(cookies_sent), 1);
	send_udp(e, from, out, sizeof(out));
}

/* MAC1 and MAC2 of a handshake message we send to p. Under hs_lock. */
static void add_macs(struct peer *p, uint8_t *msg, size_t len, uint64_t now)
{
	wg_mac(msg + WG_MAC1_OFF(len), p->mac1_key, WG_HASH_LEN, msg, WG_MAC1_OFF(len));
	memcpy(p->last_mac1, msg + WG_MAC1_OFF(len), WG_MAC_LEN);
	p->has_last_mac1 = true;
	if (p->has_cookie && since(now, p->cookie_birth) < COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY)
		wg_mac(msg + WG_MAC2_OFF(len), p->cookie, WG_MAC_LEN, msg, WG_MAC2_OFF(len));
	else
		memset(msg + WG_MAC2_OFF(len), 0, WG_MAC_LEN);
}

/* "Under load": more handshake messages in this second or the last one than the threshold
 * (or forced). Each call counts one message. */
static bool under_load(struct wg_engine *e, uint64_t now)
{
	uint64_t sec = now / NSEC, n;

	pthread_mutex_lock(&e->load_lock);
	if (sec != e->load_sec) {
		e->load_prev = sec == e->load_sec + 1 ? e->load_cur : 0;
		e->load_cur = 0;
		e->load_sec = sec;
	}
	n = ++e->load_cur;
	if (e->load_prev > n)
		n = e->load_prev;
	pthread_mutex_unlock(&e->load_lock);
	return atomic_load(&e->forced_load) || n > e->load_threshold;
}

/* Anything authenticated went to p: no passive keepalive needed. */
static void sent_auth(struct peer *p, uint64_t now)
{
	atomic_store_explicit(&p->t_tx_auth, now, memory_order_relaxed);
	if (atomic_load_explicit(&p->t_keepalive, memory_order_relaxed))
		atomic_store_explicit(&p->t_keepalive, 0, memory_order_relaxed);
}

/* ---- staged packets ------------------------------------------------------------------- */

/* Keeps a copy of a packet until a session exists; the oldest goes when full. */
static void stage(struct peer *p, const uint8_t *pkt, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct staged *s;

	if (!copy) {
		count(p->e, p, CNT(drop_no_session), 1);
		return;
	}
	memcpy(copy, pkt, len);
	pthread_mutex_lock(&p->hs_lock);
	if (p->staged_n == STAGED_MAX) {
		s = &p->staged[p->staged_head];
		free(s->pkt);
		p->staged_head = (p->staged_head + 1) % STAGED_MAX;
		p->staged_n--;
		count(p->e, p, CNT(drop_no_session), 1);
	}
	s = &p->staged[(p->staged_head + p->staged_n) % STAGED_MAX];
	*s = (struct staged){ copy, len };
	p->staged_n++;
	pthread_mutex_unlock(&p->hs_lock);
}

/* Under hs_lock. */
static void staged_clear(struct peer *p)
{
	for (unsigned i = 0; i < p->staged_n; i++)
		free(p->staged[(p->staged_head + i) % STAGED_MAX].pkt);
	p->staged_head = p->staged_n = 0;
}

/* ---- handshake: sending --------------------------------------------------------------- */

/* TAI64N now, rounded down to 2^24 ns as the kernel does (timing must not leak through
 * the timestamp), but always above the last one we sent to this peer. Under hs_lock. */
static void next_timestamp(struct peer *p, uint8_t ts[WG_TAI64N_LEN])
{
	uint64_t t = realtime_ns(p->e);
	uint64_t ns = t % NSEC;

	wg_tai64n(ts, t - ns + (ns & ~((1ULL << 24) - 1)));
	if (memcmp(ts, p->sent_ts, WG_TAI64N_LEN) <= 0) {
		memcpy(ts, p->sent_ts, WG_TAI64N_LEN);
		for (int i = WG_TAI64N_LEN - 1; i >= 0 && ++ts[i] == 0; i--)
			;
	}
	memcpy(p->sent_ts, ts, WG_TAI64N_LEN);
}

/* Sends an initiation unless one went out less than REKEY_TIMEOUT ago (retries from the
 * retransmit timer are exempt). */
static void initiate(struct peer *p, uint64_t now, bool retry)
{
	struct wg_engine *e = p->e;
	uint8_t msg[WG_INIT_LEN], ts[WG_TAI64N_LEN];
	struct wg_endpoint to;

	pthread_mutex_lock(&p->hs_lock);
	if (!retry && p->last_init_sent && since(now, p->last_init_sent) < REKEY_TIMEOUT)
		goto unlock;
	pthread_rwlock_rdlock(&p->kp_lock);
	to = p->ep;
	pthread_rwlock_unlock(&p->kp_lock);
	if (to.sa.sa_family == AF_UNSPEC || !p->ss_ok)
		goto unlock;
	if (!retry && !p->retransmit_at)
		p->attempts = 0;
	if (p->hs_state == HS_INIT_SENT)
		idx_del(e, p->hs.local_index);
	next_timestamp(p, ts);
	wg_noise_init_create(&p->hs, &e->st, p->pub, p->ss, ts, idx_add(e, p), msg);
	p->hs_state = HS_INIT_SENT;
	add_macs(p, msg, sizeof(msg), now);
	p->last_init_sent = now;
	p->retransmit_at = now + REKEY_TIMEOUT + randombytes_uniform(334) * 1000000ULL;
	p->attempts++;
	pthread_mutex_unlock(&p->hs_lock);
	count(e, p, CNT(handshakes_sent), 1);
	sent_auth(p, now);
	send_udp(e, &to, msg, sizeof(msg));
	emit(e, p, WG_EV_HANDSHAKE_SENT);
	return;
unlock:
	pthread_mutex_unlock(&p->hs_lock);
}

/* ---- transport: sending --------------------------------------------------------------- */

static size_t padded_len(const struct wg_engine *e, size_t len)
{
	size_t up = (len + 15) & ~(size_t)15;
	size_t cap = len > e->mtu ? len : e->mtu;

	return up < cap ? up : cap;
}

/* Encrypts buf[WG_HEADROOM..+len) in place with p's current session. -EAGAIN without a
 * usable session or endpoint. */
static int peer_encrypt(struct peer *p, uint8_t *buf, size_t cap, size_t len, uint64_t now,
			size_t *ret_len, struct wg_endpoint *ret_to, bool *ret_rekey)
{
	size_t plen = padded_len(p->e, len);
	uint8_t nonce[12] = { 0 };
	struct keypair *kp;
	uint64_t ctr;

	if (WG_HEADROOM + plen + WG_TAG_LEN > cap)
		return -ENOBUFS;
	pthread_rwlock_rdlock(&p->kp_lock);
	kp = p->cur;
	if (!kp || p->ep.sa.sa_family == AF_UNSPEC || since(now, kp->birth) >= REJECT_AFTER_TIME)
		goto again;
	ctr = atomic_fetch_add_explicit(&kp->send_counter, 1, memory_order_relaxed);
	if (ctr >= REJECT_AFTER_MESSAGES)
		goto again;
	buf[0] = WG_MSG_DATA;
	buf[1] = buf[2] = buf[3] = 0;
	wg_put_le32(buf + 4, kp->remote_index);
	wg_put_le64(buf + 8, ctr);
	memset(buf + WG_HEADROOM + len, 0, plen - len);
	wg_put_le64(nonce + 4, ctr);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf + WG_HEADROOM,
		buf + WG_HEADROOM + plen, NULL, buf + WG_HEADROOM, plen, NULL, 0, NULL, nonce,
		kp->send);
	*ret_to = p->ep;
	*ret_rekey = kp->initiator &&
		     (ctr >= REKEY_AFTER_MESSAGES || since(now, kp->birth) >= REKEY_AFTER_TIME);
	pthread_rwlock_unlock(&p->kp_lock);
	*ret_len = WG_HEADROOM + plen + WG_TAG_LEN;
	return 0;
again:
	pthread_rwlock_unlock(&p->kp_lock);
	return -EAGAIN;
}

/* Bookkeeping after a packet (len 0: a keepalive) was encrypted for p. */
static void sent_data(struct peer *p, size_t len, uint64_t now)
{
	uint64_t zero = 0;

	count(p->e, p, len ? CNT(tx_packets) : CNT(keepalives_tx), 1);
	count(p->e, p, CNT(tx_bytes), len);
	sent_auth(p, now);
	/* No answer within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT of the first packet sent since
	 * we last heard from the peer: try a new handshake. */
	if (len && atomic_load_explicit(&p->t_new_handshake, memory_order_relaxed) == 0)
		atomic_compare_exchange_strong(&p->t_new_handshake, &zero,
					       now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
}

/* Encrypts and sends one packet to p, or stages it and starts a handshake. */
static void peer_send(struct peer *p, const uint8_t *pkt, size_t len, uint64_t now)
{
	struct wg_endpoint to;
	size_t out_len;
	bool rekey = false;
	uint8_t *buf = tls_buf;

	if (len && pkt != buf + WG_HEADROOM)
		memmove(buf + WG_HEADROOM, pkt, len);
	if (peer_encrypt(p, buf, sizeof(tls_buf), len, now, &out_len, &to, &rekey) < 0) {
		stage(p, buf + WG_HEADROOM, len);
		initiate(p, now, false);
		return;
	}
	sent_data(p, len, now);
	send_udp(p->e, &to, buf, out_len);
	/* Only now: the handshake's callbacks may re-enter the engine and reuse tls_buf. */
	if (rekey)
		initiate(p, now, false);
}

static void send_keepalive(struct peer *p, uint64_t now)
{
	peer_send(p, NULL, 0, now);
}

/* Sends what waited for the session; returns how many. */
static unsigned flush_staged(struct peer *p, uint64_t now)
{
	struct staged q[STAGED_MAX];
	unsigned n;

	pthread_mutex_lock(&p->hs_lock);
	n = p->staged_n;
	for (unsigned i = 0; i < n; i++)
		q[i] = p->staged[(p->staged_head + i) % STAGED_MAX];
	p->staged_head = p->staged_n = 0;
	pthread_mutex_unlock(&p->hs_lock);
	for (unsigned i = 0; i < n; i++) {
		peer_send(p, q[i].pkt, q[i].len, now);
		free(q[i].pkt);
	}
	return n;
}

static struct peer *route(struct wg_engine *e, const uint8_t *pkt, size_t len)
{
	struct ip_info ip;
	long idx;

	if (ip_parse(pkt, len, &ip) < 0) {
		/* The TUN device gives whole packets: trust its length over the header's. */
		if (len >= 20 && pkt[0] >> 4 == 4)
			ip = (struct ip_info){ AF_INET, pkt + 12, pkt + 16, len };
		else if (len >= 40 && pkt[0] >> 4 == 6)
			ip = (struct ip_info){ AF_INET6, pkt + 8, pkt + 24, len };
		else
			return NULL;
	}
	idx = wg_aip_lookup(&e->aip, ip.family, ip.dst);
	return idx < 0 ? NULL : &e->peers[idx];
}

/* wg_encrypt_inplace without the rekeying handshake, which is left to the caller (*ret_rekey
 * with the peer in *ret_peer) so that it can send the datagram first. */
static int encrypt_packet(struct wg_engine *e, uint8_t *buf, size_t cap, size_t len,
			  size_t *ret_len, struct wg_endpoint *ret_to, struct peer **ret_peer,
			  bool *ret_rekey)
{
	uint8_t *pkt = buf + WG_HEADROOM;
	uint64_t now;
	struct peer *p;
	int r;

	if (len == 0 || len > MAX_PACKET || cap < WG_HEADROOM + len) {
		count(e, NULL, CNT(drop_malformed), 1);
		return -EINVAL;
	}
	p = route(e, pkt, len);
	if (!p) {
		count(e, NULL, pkt[0] >> 4 == 4 || pkt[0] >> 4 == 6 ? CNT(drop_no_peer) :
		      CNT(drop_malformed), 1);
		return -ENETUNREACH;
	}
	now = now_ns(e);
	*ret_rekey = false;
	r = peer_encrypt(p, buf, cap, len, now, ret_len, ret_to, ret_rekey);
	if (r == -EAGAIN) {
		stage(p, pkt, len);
		initiate(p, now, false);
		return -EAGAIN;
	}
	if (r < 0)
		return r;
	sent_data(p, len, now);
	*ret_peer = p;
	return 0;
}

int wg_encrypt_inplace(struct wg_engine *e, uint8_t *buf, size_t cap, size_t len,
		       size_t *ret_len, struct wg_endpoint *ret_to)
{
	struct peer *p;
	bool rekey;
	int r = encrypt_packet(e, buf, cap, len, ret_len, ret_to, &p, &rekey);

	/* The caller's buffer is not tls_buf: the handshake may go out before the packet. */
	if (r == 0 && rekey)
		initiate(p, now_ns(e), false);
	return r;
}

int wg_encrypt_into(struct wg_engine *e, const uint8_t *pkt, size_t len, uint8_t *out,
		    size_t cap, size_t *ret_len, struct wg_endpoint *ret_to)
{
	if (len > MAX_PACKET || cap < WG_HEADROOM + len) {
		count(e, NULL, CNT(drop_malformed), 1);
		return len > MAX_PACKET ? -EINVAL : -ENOBUFS;
	}
	/* One copy of the plaintext: the padding must follow it, and the AEAD then works in
	 * place. Copying costs a tenth of ChaCha20-Poly1305 over the same bytes. */
	memcpy(out + WG_HEADROOM, pkt, len);
	return wg_encrypt_inplace(e, out, cap, len, ret_len, ret_to);
}

int wg_send_ip(struct wg_engine *e, const uint8_t *pkt, size_t len)
{
	struct wg_endpoint to;
	struct peer *p;
	size_t out_len;
	bool rekey;
	int r;

	if (len > MAX_PACKET) {
		count(e, NULL, CNT(drop_malformed), 1);
		return -EINVAL;
	}
	memcpy(tls_buf + WG_HEADROOM, pkt, len);
	r = encrypt_packet(e, tls_buf, sizeof(tls_buf), len, &out_len, &to, &p, &rekey);
	if (r == -EAGAIN)
		return 0;
	if (r < 0)
		return r;
	send_udp(e, &to, tls_buf, out_len);
	if (rekey)
		initiate(p, now_ns(e), false);
	return 0;
}

/* ---- handshake: receiving ------------------------------------------------------------- */

static struct peer *peer_by_key(struct wg_engine *e, const uint8_t pub[32])
{
	for (size_t i = 0; i < e->n_peers; i++)
		if (sodium_memcmp(e->peers[i].pub, pub, 32) == 0)
			return &e->peers[i];
	return NULL;
}

static void set_endpoint(struct peer *p, const struct wg_endpoint *from)
{
	bool changed;

	pthread_rwlock_rdlock(&p->kp_lock);
	changed = !ep_equal(&p->ep, from);
	pthread_rwlock_unlock(&p->kp_lock);
	if (!changed)
		return;
	pthread_rwlock_wrlock(&p->kp_lock);
	p->ep = *from;
	pthread_rwlock_unlock(&p->kp_lock);
	emit(p->e, p, WG_EV_ENDPOINT_CHANGED);
}

/* The initiation's timestamp must be newer than any before from this peer (replay), and
 * initiations may not come faster than 50 a second (flood). Under hs_lock. */
static bool fresh_initiation(struct peer *p, const uint8_t ts[WG_TAI64N_LEN], uint64_t now)
{
	if (memcmp(ts, p->latest_ts, WG_TAI64N_LEN) <= 0)
		return false;
	if (p->last_init_rx && since(now, p->last_init_rx) < INITIATION_MIN_INTERVAL)
		return false;
	memcpy(p->latest_ts, ts, WG_TAI64N_LEN);
	p->last_init_rx = now;
	return true;
}

/* Responder: message 1 passed its MACs. */
static int rx_initiation(struct wg_engine *e, const struct wg_endpoint *from,
			 const uint8_t *msg, uint64_t now)
{
	uint8_t ts[WG_TAI64N_LEN], resp[WG_RESPONSE_LEN];
	struct wg_session_keys keys;
	struct wg_handshake hs;
	struct keypair *kp;
	struct peer *p;
	uint32_t local;
	int r;

	if (wg_noise_init_open_static(&hs, &e->st, msg) < 0) {
		count(e, NULL, CNT(drop_decrypt), 1);
		r = -EBADMSG;
		goto out;
	}
	p = peer_by_key(e, hs.remote_static);
	if (!p || !p->ss_ok) {
		count(e, NULL, CNT(drop_unknown_peer), 1);
		r = -ENOENT;
		goto out;
	}
	if (wg_noise_init_open_timestamp(&hs, p->ss, msg, ts) < 0) {
		count(e, p, CNT(drop_decrypt), 1);
		r = -EBADMSG;
		goto out;
	}
	pthread_mutex_lock(&p->hs_lock);
	if (!fresh_initiation(p, ts, now)) {
		pthread_mutex_unlock(&p->hs_lock);
		count(e, p, CNT(drop_replay), 1);
		r = -EALREADY;
		goto out;
	}
	/* A crossing initiation of ours is abandoned: theirs wins here, ours may win there. */
	if (p->hs_state == HS_INIT_SENT)
		idx_del(e, p->hs.local_index);
	p->hs_state = HS_NONE;
	local = idx_add(e, p);
	r = wg_noise_response_create(&hs, p->psk, local, resp, &keys);
	kp = r < 0 ? NULL : keypair_new(&keys, false, now);
	if (!kp) {
		idx_del(e, local);
		pthread_mutex_unlock(&p->hs_lock);
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	add_macs(p, resp, sizeof(resp), now);
	/* A response counts as our handshake for the REKEY_TIMEOUT rate limit, so the responder
	 * does not start a crossing handshake while it waits for confirmation. */
	p->last_init_sent = now;
	keypair_install(p, kp);
	pthread_mutex_unlock(&p->hs_lock);
	set_endpoint(p, from);
	count(e, p, CNT(handshakes_received), 1);
	count(e, p, CNT(handshakes_sent), 1);
	count(e, p, CNT(handshakes_completed), 1);
	atomic_store(&p->t_rx_auth, now);
	sent_auth(p, now);
	send_udp(e, from, resp, sizeof(resp));
	emit(e, p, WG_EV_SESSION_RESPONDER);
	r = 0;
out:
	sodium_memzero(&hs, sizeof(hs));
	sodium_memzero(&keys, sizeof(keys));
	return r;
}

/* Initiator: message 2 passed its MACs. */
static int rx_response(struct wg_engine *e, const struct wg_endpoint *from,
		       const uint8_t *msg, uint64_t now)
{
	uint32_t receiver = wg_get_le32(msg + 8);
	struct peer *p = idx_lookup(e, receiver);
	struct wg_session_keys keys;
	struct keypair *kp = NULL;
	int r = -ENOENT;

	if (!p) {
		count(e, NULL, CNT(drop_unknown_index), 1);
		return -ENOENT;
	}
	pthread_mutex_lock(&p->hs_lock);
	if (p->hs_state != HS_INIT_SENT || p->hs.local_index != receiver) {
		count(e, p, CNT(drop_unknown_index), 1);
		goto unlock;
	}
	r = wg_noise_response_consume(&p->hs, &e->st, p->psk, msg, &keys);
	if (r < 0) {
		count(e, p, CNT(drop_decrypt), 1);
		goto unlock;
	}
	kp = keypair_new(&keys, true, now);
	sodium_memzero(&keys, sizeof(keys));
	p->hs_state = HS_NONE;
	if (!kp) {
		idx_del(e, receiver);
		r = -ENOMEM;
		goto unlock;
	}
	p->retransmit_at = 0;
	p->attempts = 0;
	keypair_install(p, kp);
unlock:
	pthread_mutex_unlock(&p->hs_lock);
	if (!kp)
		return r;
	set_endpoint(p, from);
	count(e, p, CNT(handshakes_received), 1);
	count(e, p, CNT(handshakes_completed), 1);
	atomic_store(&p->t_rx_auth, now);
	atomic_store(&p->t_new_handshake, 0);
	emit(e, p, WG_EV_SESSION_INITIATOR);
	/* The responder needs a transport packet to confirm the session. */
	if (flush_staged(p, now) == 0)
		send_keepalive(p, now);
	return 0;
}

static int rx_cookie(struct wg_engine *e, const uint8_t *msg)
{
	struct peer *p = idx_lookup(e, wg_get_le32(msg + 4));
	uint8_t cookie[WG_MAC_LEN];
	int r = -ENOENT;

	if (!p) {
		count(e, NULL, CNT(drop_unknown_index), 1);
		return -ENOENT;
	}
	pthread_mutex_lock(&p->hs_lock);
	if (!p->has_last_mac1) {
		count(e, p, CNT(drop_unknown_index), 1);
		goto unlock;
	}
	r = wg_xaead_open(cookie, p->cookie_key, msg + 8, msg + 32, WG_MAC_LEN + WG_AEAD_TAG,
			  p->last_mac1, WG_MAC_LEN);
	if (r < 0) {
		count(e, p, CNT(drop_decrypt), 1);
		goto unlock;
	}
	memcpy(p->cookie, cookie, WG_MAC_LEN);
	p->cookie_birth = now_ns(e);
	p->has_cookie = true;
	p->has_last_mac1 = false;
	count(e, p, CNT(cookies_received), 1);
unlock:
	pthread_mutex_unlock(&p->hs_lock);
	return r;
}

/* Messages 1 and 2: size, MAC1, then MAC2 if under load, then the handshake itself. */
static int rx_handshake(struct wg_engine *e, const struct wg_endpoint *from,
			const uint8_t *msg, size_t len, uint64_t now)
{
	if (len != (msg[0] == WG_MSG_INIT ? WG_INIT_LEN : WG_RESPONSE_LEN)) {
		count(e, NULL, CNT(drop_malformed), 1);
		return -EINVAL;
	}
	if (!mac1_ok(e, msg, len)) {
		count(e, NULL, CNT(drop_bad_mac1), 1);
		return -EBADMSG;
	}
	if (under_load(e, now) && !mac2_ok(e, from, msg, len, now)) {
		count(e, NULL, CNT(drop_needs_cookie), 1);
		cookie_reply(e, from, msg, len, now);
		return -EBUSY;
	}
	return msg[0] == WG_MSG_INIT ? rx_initiation(e, from, msg, now) :
				       rx_response(e, from, msg, now);
}

/* ---- transport: receiving ------------------------------------------------------------- */

/* The responder's first transport packet on "next" makes it current. */
static void confirm(struct peer *p, struct keypair *kp, uint64_t now)
{
	bool moved = false;

	pthread_rwlock_wrlock(&p->kp_lock);
	if (p->next == kp) {
		keypair_drop(p->e, &p->prev);
		p->prev = p->cur;
		p->cur = p->next;
		p->next = NULL;
		moved = true;
	}
	pthread_rwlock_unlock(&p->kp_lock);
	if (!moved)
		return;
	pthread_mutex_lock(&p->hs_lock);
	p->retransmit_at = 0;
	p->attempts = 0;
	pthread_mutex_unlock(&p->hs_lock);
	emit(p->e, p, WG_EV_SESSION_CONFIRMED);
	flush_staged(p, now);
}

struct rx_result {
	bool was_next, initiator, roamed;
	uint64_t birth;
	struct keypair *kp;
};

/* Authenticates and decrypts in place, then consults the replay window. */
static int decrypt(struct peer *p, const struct wg_endpoint *from, uint8_t *buf, size_t len,
		   uint64_t now, struct rx_result *ret)
{
	uint32_t receiver = wg_get_le32(buf + 4);
	uint64_t ctr = wg_get_le64(buf + 8);
	uint8_t nonce[12] = { 0 };
	struct keypair *kp;
	bool fresh;
	int r;

	pthread_rwlock_rdlock(&p->kp_lock);
	kp = keypair_find(p, receiver);
	if (!kp || since(now, kp->birth) >= REJECT_AFTER_TIME || ctr >= REJECT_AFTER_MESSAGES) {
		r = -ENOENT;
		goto out;
	}
	wg_put_le64(nonce + 4, ctr);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(buf + WG_DATA_HDR, NULL,
		buf + WG_DATA_HDR, len - WG_DATA_HDR - WG_TAG_LEN, buf + len - WG_TAG_LEN, NULL, 0,
		nonce, kp->recv) != 0) {
		r = -EBADMSG;
		goto out;
	}
	pthread_mutex_lock(&kp->replay_lock);
	fresh = wg_replay_check(&kp->replay, ctr, REJECT_AFTER_MESSAGES);
	pthread_mutex_unlock(&kp->replay_lock);
	r = fresh ? 0 : -EALREADY;
	*ret = (struct rx_result){ kp == p->next, kp->initiator, !ep_equal(&p->ep, from),
				   kp->birth, kp };
out:
	pthread_rwlock_unlock(&p->kp_lock);
	return r;
}

/* A decrypted packet: a keepalive (0), or an IP packet whose source the peer may use (1,
 * with its length without padding in *ret_len). */
static int deliver(struct peer *p, uint8_t *pkt, size_t len, uint64_t now, size_t *ret_len)
{
	struct wg_engine *e = p->e;
	struct ip_info ip;

	if (len == 0) {
		count(e, p, CNT(keepalives_rx), 1);
		return 0;
	}
	if (ip_parse(pkt, len, &ip) < 0) {
		count(e, p, CNT(drop_malformed), 1);
		return -EINVAL;
	}
	if (wg_aip_lookup(&e->aip, ip.family, ip.src) != (long)p->idx) {
		count(e, p, CNT(drop_allowed_ip), 1);
		return -EPERM;
	}
	if (atomic_load_explicit(&p->t_keepalive, memory_order_relaxed) == 0) {
		uint64_t zero = 0;

		atomic_compare_exchange_strong(&p->t_keepalive, &zero, now + KEEPALIVE_TIMEOUT);
	}
	count(e, p, CNT(rx_packets), 1);
	count(e, p, CNT(rx_bytes), ip.len);
	*ret_len = ip.len;
	return 1;
}

static int rx_data(struct wg_engine *e, const struct wg_endpoint *from, uint8_t *buf,
		   size_t len, uint64_t now, size_t *ret_len)
{
	struct peer *p = idx_lookup(e, wg_get_le32(buf + 4));
	struct rx_result res;
	int r;

	if (!p) {
		count(e, NULL, CNT(drop_unknown_index), 1);
		return -ENOENT;
	}
	r = decrypt(p, from, buf, len, now, &res);
	if (r < 0) {
		count(e, p, r == -ENOENT ? CNT(drop_unknown_index) :
			    r == -EBADMSG ? CNT(drop_decrypt) : CNT(drop_replay), 1);
		return r;
	}
	if (res.was_next)
		confirm(p, res.kp, now);
	if (res.roamed)
		set_endpoint(p, from);
	atomic_store_explicit(&p->t_rx_auth, now, memory_order_relaxed);
	atomic_store_explicit(&p->t_new_handshake, 0, memory_order_relaxed);
	/* The initiator renews a session nearing REJECT_AFTER_TIME even when only receiving. */
	if (res.initiator &&
	    since(now, res.birth) >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT &&
	    !atomic_exchange(&p->lastminute_rekey, true))
		initiate(p, now, false);
	return deliver(p, buf + WG_DATA_HDR, len - WG_DATA_HDR - WG_TAG_LEN, now, ret_len);
}

int wg_decrypt_inplace(struct wg_engine *e, const struct wg_endpoint *from, uint8_t *buf,
		       size_t len, uint8_t **ret_pkt, size_t *ret_len)
{
	uint64_t now;

	if (len < 4 || (from->sa.sa_family != AF_INET && from->sa.sa_family != AF_INET6) ||
	    buf[1] || buf[2] || buf[3]) {
		count(e, NULL, CNT(drop_malformed), 1);
		return -EINVAL;
	}
	now = now_ns(e);
	switch (buf[0]) {
	case WG_MSG_INIT:
	case WG_MSG_RESPONSE:
		return rx_handshake(e, from, buf, len, now);
	case WG_MSG_COOKIE:
		if (len != WG_COOKIE_LEN)
			break;
		return rx_cookie(e, buf);
	case WG_MSG_DATA:
		if (len < WG_DATA_HDR + WG_TAG_LEN)
			break;
		*ret_pkt = buf + WG_DATA_HDR;
		return rx_data(e, from, buf, len, now, ret_len);
	}
	count(e, NULL, CNT(drop_malformed), 1);
	return -EINVAL;
}

int wg_recv_udp(struct wg_engine *e, const struct wg_endpoint *from, uint8_t *buf, size_t len)
{
	uint8_t *pkt;
	size_t plen;
	int r = wg_decrypt_inplace(e, from, buf, len, &pkt, &plen);

	if (r == 1 && e->cb.write_ip)
		e->cb.write_ip(e->ud, pkt, plen);
	return r < 0 ? r : 0;
}

/* ---- timers --------------------------------------------------------------------------- */

/* Retransmission (REKEY_TIMEOUT + jitter) until REKEY_ATTEMPT_TIME, then give up. */
static void tick_retransmit(struct peer *p, uint64_t now)
{
	bool retry = false, gave_up = false;

	pthread_mutex_lock(&p->hs_lock);
	if (p->retransmit_at && now >= p->retransmit_at) {
		if (p->attempts >= MAX_TIMER_HANDSHAKES) {
			p->retransmit_at = 0;
			if (p->hs_state == HS_INIT_SENT)
				idx_del(p->e, p->hs.local_index);
			p->hs_state = HS_NONE;
			staged_clear(p);
			gave_up = true;
		} else {
			retry = true;
		}
	}
	pthread_mutex_unlock(&p->hs_lock);
	if (retry)
		initiate(p, now, true);
	if (gave_up)
		emit(p->e, p, WG_EV_HANDSHAKE_GAVE_UP);
}

static bool has_session(struct peer *p)
{
	bool r;

	pthread_rwlock_rdlock(&p->kp_lock);
	r = p->cur != NULL;
	pthread_rwlock_unlock(&p->kp_lock);
	return r;
}

static void tick_peer(struct peer *p, uint64_t now)
{
	uint64_t tx = atomic_load(&p->t_tx_auth), rx = atomic_load(&p->t_rx_auth);
	uint64_t ka = atomic_load(&p->t_keepalive), nh = atomic_load(&p->t_new_handshake);
	uint64_t session = atomic_load(&p->t_session);

	tick_retransmit(p, now);
	/* Passive keepalive: data came in and we sent nothing back for KEEPALIVE_TIMEOUT. */
	if (ka && now >= ka && atomic_compare_exchange_strong(&p->t_keepalive, &ka, 0) &&
	    has_session(p)) {
		send_keepalive(p, now);
		tx = now;
	}
	if (nh && now >= nh && atomic_compare_exchange_strong(&p->t_new_handshake, &nh, 0))
		initiate(p, now, false);
	if (session && since(now, session) >= 3 * REJECT_AFTER_TIME &&
	    atomic_compare_exchange_strong(&p->t_session, &session, 0)) {
		keypairs_zero(p);
		pthread_mutex_lock(&p->hs_lock);
		if (p->hs_state == HS_INIT_SENT)
			idx_del(p->e, p->hs.local_index);
		p->hs_state = HS_NONE;
		sodium_memzero(&p->hs, sizeof(p->hs));
		pthread_mutex_unlock(&p->hs_lock);
		emit(p->e, p, WG_EV_KEYS_ZEROED);
	}
	/* Persistent keepalive: nothing authenticated went either way for the interval. */
	if (p->keepalive_ns && since(now, tx > rx ? tx : rx) >= p->keepalive_ns) {
		if (has_session(p))
			send_keepalive(p, now);
		else
			initiate(p, now, false);
	}
}

void wg_tick(struct wg_engine *e, uint64_t now_ns)
{
	for (size_t i = 0; i < e->n_peers; i++)
		tick_peer(&e->peers[i], now_ns);
}

/* ---- life cycle and status ------------------------------------------------------------ */

/* Readers (every packet, from several threads) would otherwise starve the rare writer that
 * installs a new session. No thread ever takes one of these locks twice. */
static void rwlock_init(pthread_rwlock_t *l)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(l, &a);
	pthread_rwlockattr_destroy(&a);
}

static int peer_init(struct wg_engine *e, struct peer *p, size_t idx,
		     const struct wg_peer_config *pc)
{
	p->e = e;
	p->idx = idx;
	memcpy(p->pub, pc->public_key, 32);
	memcpy(p->psk, pc->preshared_key, 32);
	/* A peer whose key gives a zero DH can never complete a handshake; it stays inert. */
	p->ss_ok = wg_dh(p->ss, e->st.priv, p->pub) == 0;
	wg_label_key(p->mac1_key, wg_label_mac1, p->pub);
	wg_label_key(p->cookie_key, wg_label_cookie, p->pub);
	p->keepalive_ns = pc->persistent_keepalive * NSEC;
	p->ep = pc->endpoint;
	if (p->ep.sa.sa_family != AF_INET && p->ep.sa.sa_family != AF_INET6)
		p->ep.sa.sa_family = AF_UNSPEC;
	rwlock_init(&p->kp_lock);
	pthread_mutex_init(&p->hs_lock, NULL);
	for (size_t i = 0; i < pc->n_allowed_ips; i++) {
		const struct wg_allowedip *a = &pc->allowed_ips[i];
		int r = wg_aip_insert(&e->aip, a->family, a->addr, a->cidr, (uint32_t)idx);

		if (r < 0)
			return r;
	}
	return 0;
}

int wg_engine_new(const struct wg_config *cfg, const struct wg_callbacks *cb, void *ud,
		  struct wg_engine **ret_engine)
{
	struct wg_engine *e;
	size_t slots = 16;
	int r = -ENOMEM;

	if (!cfg || !cb || cb->size < offsetof(struct wg_callbacks, realtime) || !cb->now)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	memcpy(&e->cb, cb, cb->size < sizeof(e->cb) ? cb->size : sizeof(e->cb));
	e->ud = ud;
	wg_static_init(&e->st, cfg->private_key);
	e->mtu = cfg->mtu ? cfg->mtu : WG_DEFAULT_MTU;
	e->load_threshold = cfg->load_threshold ? cfg->load_threshold : DEFAULT_LOAD_THRESHOLD;
	rwlock_init(&e->idx_lock);
	pthread_mutex_init(&e->cookie_lock, NULL);
	pthread_mutex_init(&e->load_lock, NULL);
	while (slots < cfg->n_peers * 8)
		slots *= 2;
	e->slots = calloc(slots, sizeof(*e->slots));
	e->slot_mask = slots - 1;
	e->peers = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*e->peers));
	if (!e->slots || !e->peers)
		goto fail;
	for (; e->n_peers < cfg->n_peers; e->n_peers++) {
		r = peer_init(e, &e->peers[e->n_peers], e->n_peers, &cfg->peers[e->n_peers]);
		if (r < 0) {
			e->n_peers++;
			goto fail;
		}
	}
	*ret_engine = e;
	return 0;
fail:
	wg_engine_free(e);
	return r;
}

void wg_engine_free(struct wg_engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_peers; i++) {
		struct peer *p = &e->peers[i];

		keypairs_zero(p);
		staged_clear(p);
		pthread_rwlock_destroy(&p->kp_lock);
		pthread_mutex_destroy(&p->hs_lock);
	}
	wg_aip_free(&e->aip);
	pthread_rwlock_destroy(&e->idx_lock);
	pthread_mutex_destroy(&e->cookie_lock);
	pthread_mutex_destroy(&e->load_lock);
	if (e->peers)
		sodium_memzero(e->peers, e->n_peers * sizeof(*e->peers));
	free(e->peers);
	free(e->slots);
	sodium_memzero(e, sizeof(*e));
	free(e);
}

void wg_set_under_load(struct wg_engine *e, bool forced)
{
	atomic_store(&e->forced_load, forced);
}

void wg_get_counters(struct wg_engine *e, struct wg_counters *ret)
{
	counters_read(&e->cnt, ret);
}

size_t wg_peer_count(struct wg_engine *e)
{
	return e->n_peers;
}

int wg_peer_status(struct wg_engine *e, size_t peer, struct wg_peer_status *ret)
{
	struct peer *p;

	if (peer >= e->n_peers)
		return -ENOENT;
	p = &e->peers[peer];
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->public_key, p->pub, 32);
	pthread_rwlock_rdlock(&p->kp_lock);
	ret->endpoint = p->ep;
	ret->has_session = p->cur != NULL;
	pthread_rwlock_unlock(&p->kp_lock);
	ret->last_handshake_ns = atomic_load(&p->t_session);
	counters_read(&p->cnt, &ret->counters);
	return 0;
}

void wg_public_key(struct wg_engine *e, uint8_t ret_key[WG_KEY_LEN])
{
	memcpy(ret_key, e->st.pub, WG_KEY_LEN);
}

int wg_key_from_base64(const char *b64, uint8_t ret_key[WG_KEY_LEN])
{
	uint8_t key[WG_KEY_LEN];
	size_t n = 0;
	const char *end;

	if (sodium_init() < 0)
		return -EIO;
	if (strlen(b64) != 44 ||
	    sodium_base642bin(key, sizeof(key), b64, 44, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != WG_KEY_LEN || *end != '\0')
		return -EINVAL;
	memcpy(ret_key, key, WG_KEY_LEN);
	sodium_memzero(key, sizeof(key));
	return 0;
}

void wg_key_to_base64(const uint8_t key[WG_KEY_LEN], char ret_b64[45])
{
	sodium_bin2base64(ret_b64, 45, key, WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

int wg_public_from_private(const uint8_t priv[WG_KEY_LEN], uint8_t ret_pub[WG_KEY_LEN])
{
	if (sodium_init() < 0)
		return -EIO;
	return crypto_scalarmult_base(ret_pub, priv) == 0 ? 0 : -EINVAL;
}
