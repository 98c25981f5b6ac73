/* Shared-memory packet rings between netextd and a filter-packet extension (one pair per
 * queue): a sealed memfd holding a control page, the packet ring (daemon → extension) and the
 * verdict ring (extension → daemon), plus two eventfds for wake-ups. docs/packet-filter.md.
 *
 * Layout of the memfd (all offsets fixed by the control page, checked by pr_shm_map()):
 *     [0, PR_CTL_SIZE)                      struct pr_shared
 *     [PR_CTL_SIZE, + pkt_size)             packet ring data
 *     [PR_CTL_SIZE + pkt_size, + vd_size)   verdict ring data
 * Each ring is single-producer single-consumer. head (consumer) and tail (producer) are
 * free-running u32 byte counters; the ring size is a power of two; records are 8-byte
 * aligned and never wrap: a producer that lacks contiguous room at the end writes a PAD
 * record up to the end and starts again at offset 0.
 *
 * Wake-ups: a consumer about to sleep sets its ring's `waiting` flag, then checks the ring
 * once more (pr_prepare_wait); a producer, after publishing, writes the consumer's eventfd
 * only when that flag is set (pr_publish returns true). So a busy pipeline makes no
 * syscalls for notification.
 *
 * Trust: the daemon creates the memfd and seals it against shrinking and growing, so a
 * hostile extension cannot make the daemon fault with SIGBUS. Everything the daemon reads
 * from the shared pages (the extension's head of the packet ring, the tail and records of the
 * verdict ring) may change under it at any time: pr_peek() copies the record header before it
 * checks it and the caller must copy any field or byte it uses before trusting it. A ring
 * found inconsistent (-EBADMSG) is a protocol fault of the extension. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PR_MAGIC 0x4e455052u /* "NEPR" */
#define PR_VERSION 1
#define PR_CTL_SIZE 4096
#define PR_RING_MIN (64u * 1024)
#define PR_RING_MAX (256u * 1024 * 1024)
#define PR_ALIGN 8

/* One ring's indexes, each on its own cache line. */
struct pr_ring_ctl {
	_Atomic uint32_t head; /* consumer: bytes consumed */
	uint8_t pad0[60];
	_Atomic uint32_t tail; /* producer: bytes published */
	uint8_t pad1[60];
	_Atomic uint32_t waiting; /* consumer is (about to be) asleep on its eventfd */
	uint8_t pad2[60];
};

struct pr_shared {
	uint32_t magic;    /* PR_MAGIC */
	uint32_t version;  /* PR_VERSION */
	uint32_t pkt_size; /* packet ring bytes (power of two) */
	uint32_t vd_size;  /* verdict ring bytes (power of two) */
	uint8_t pad[48];
	struct pr_ring_ctl pkt;
	struct pr_ring_ctl vd;
};

enum pr_rec_type {
	PR_REC_PAD = 0,     /* skip to the end of the ring */
	PR_REC_PACKET = 1,  /* struct pr_packet */
	PR_REC_VERDICT = 2, /* struct pr_verdict */
};

struct pr_rec {
	uint32_t len;  /* the whole record, header included, a multiple of PR_ALIGN, ≥ 8 */
	uint16_t type; /* enum pr_rec_type */
	uint16_t flags;
};

/* pr_packet.flags */
#define PR_PKT_GSO (1u << 0)            /* large packet, segmented later */
#define PR_PKT_CSUM_NOT_READY (1u << 1) /* transport checksum not filled in yet */
#define PR_PKT_TRUNCATED (1u << 2)      /* len < orig_len: cut by the copy range */

/* Daemon → extension: one queued packet. */
struct pr_packet {
	struct pr_rec rec;
	uint32_t slot;      /* the daemon's token: echo it with id in the verdict */
	uint32_t id;        /* NFQUEUE packet id */
	uint32_t len;       /* bytes in data */
	uint32_t orig_len;  /* the packet's length in the kernel */
	uint32_t indev, outdev; /* ifindex, 0 when none */
	uint8_t direction;  /* ne_packet_direction */
	uint8_t flags;      /* PR_PKT_* */
	uint16_t reserved;
	uint32_t reserved2;
	uint8_t data[];     /* the packet from its IP header */
};

/* pr_verdict.kind: ne_packet_verdict_kind values (1 allow, 2 drop, 3 delay, 4 modify). */

/* Extension → daemon: the verdict for a packet (slot and id as received). For DELAY a second
 * verdict follows later. MODIFY carries the new packet in data. */
struct pr_verdict {
	struct pr_rec rec;
	uint32_t slot;
	uint32_t id;
	uint8_t kind;
	uint8_t reserved[3];
	uint32_t len; /* bytes in data (MODIFY), else 0 */
	uint8_t data[];
};

/* One side's view of one ring. `pos` is private to its side: the producer's tail or the
 * consumer's head, published with pr_publish() / pr_release(). */
struct pr_ring {
	struct pr_ring_ctl *ctl;
	uint8_t *data;
	uint32_t size;
	uint32_t pos;
	/* consumer: the checked length of the record pr_peek() returned (use this, never
	 * rec->len re-read from shared memory); producer: the length pr_reserve() handed out */
	uint32_t peek_len;
};

/* Daemon side: a sealed memfd of PR_CTL_SIZE + pkt_size + vd_size bytes (sizes powers of two
 * within PR_RING_MIN..PR_RING_MAX), initialised and mapped. */
int pr_shm_create(uint32_t pkt_size, uint32_t vd_size, int *ret_memfd, void **ret_map, size_t *ret_len);
/* Extension side: maps a memfd received from the daemon, checking magic, version, sizes and
 * the file's size. */
int pr_shm_map(int memfd, void **ret_map, size_t *ret_len);
void pr_shm_unmap(void *map, size_t len);

/* Views of the two rings of a mapping (ring = 0: packet ring, 1: verdict ring). A producer
 * view starts at the ring's tail, a consumer view at its head. The ring sizes are read from
 * the control page here: the daemon attaches both rings before it passes the memfd on (the
 * extension could rewrite them afterwards); sizes that fail the checks leave a dead view on
 * which every operation fails. */
void pr_ring_attach(struct pr_ring *r, void *map, int ring, bool producer);

/* Producer: a record of `len` bytes (header included; rounded up to PR_ALIGN), or NULL when
 * the ring lacks room (a PAD may have been written). rec.len is set (rounded) and rec.type
 * is 0: the caller sets rec.type and fills the rest, then pr_commit() makes it part of the
 * next publish (writing rec.len once more, from the producer's private copy). */
void *pr_reserve(struct pr_ring *r, uint32_t len);
void pr_commit(struct pr_ring *r, void *rec);
/* Publishes committed records; returns true when the consumer asked to be woken. Fails
 * with -EBADMSG (as a negative value) when the consumer's head is impossible. */
int pr_publish(struct pr_ring *r);
/* Bytes free for the producer, or -EBADMSG. */
int64_t pr_free_bytes(const struct pr_ring *r);

/* Consumer: the next record (PAD records are skipped), NULL when the ring is empty, or NULL
 * with *err = -EBADMSG when the producer wrote garbage. The returned pointer is into shared
 * memory; its header was checked once. */
const struct pr_rec *pr_peek(struct pr_ring *r, int *err);
/* Moves past the record pr_peek() returned; pr_release() publishes the head so the producer
 * can reuse the space (call it after a batch, once the bytes are no longer needed). */
void pr_consume(struct pr_ring *r);
void pr_release(struct pr_ring *r);
/* Sets `waiting` and returns true when the ring is still empty (sleep on the eventfd), or
 * clears it and returns false when records arrived meanwhile. pr_wake_done() clears it after
 * waking. */
bool pr_prepare_wait(struct pr_ring *r);
void pr_wake_done(struct pr_ring *r);
