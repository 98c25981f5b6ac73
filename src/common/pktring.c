/* Shared-memory packet rings (see pktring.h).
 *
 * Trust: the peer can write any byte of the mapping at any time, including the other side's
 * index and the records being read. Every index and record header is loaded once into a
 * local, checked there and only the local is used; record bodies stay the caller's problem
 * (pktring.h). The memfd is sealed against resizing, so no access inside the mapped length
 * can fault. Sizes are read from the control page only when a mapping is made or a ring is
 * attached (both before the peer has the memfd, on the daemon's side). */
#include "pktring.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(struct pr_shared) <= PR_CTL_SIZE, "control page overflows");
_Static_assert(sizeof(struct pr_rec) == PR_ALIGN, "record header is one alignment unit");
_Static_assert(sizeof(struct pr_packet) % PR_ALIGN == 0, "pr_packet keeps data aligned");

#define PR_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static bool ring_size_ok(uint32_t size)
{
	return size >= PR_RING_MIN && size <= PR_RING_MAX && (size & (size - 1)) == 0;
}

int pr_shm_create(uint32_t pkt_size, uint32_t vd_size, int *ret_memfd, void **ret_map, size_t *ret_len)
{
	struct pr_shared *sh;
	size_t len;
	void *map;
	int fd, r;

	if (!ring_size_ok(pkt_size) || !ring_size_ok(vd_size))
		return -EINVAL;
	len = (size_t)PR_CTL_SIZE + pkt_size + vd_size;
	fd = memfd_create("netext-pktring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0 || fcntl(fd, F_ADD_SEALS, PR_SEALS) < 0) {
		r = -errno;
		goto fail;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	/* A fresh memfd reads as zeros: indexes and flags start at 0. */
	sh = map;
	sh->magic = PR_MAGIC;
	sh->version = PR_VERSION;
	sh->pkt_size = pkt_size;
	sh->vd_size = vd_size;
	*ret_memfd = fd;
	*ret_map = map;
	*ret_len = len;
	return 0;
fail:
	close(fd);
	return r;
}

int pr_shm_map(int memfd, void **ret_map, size_t *ret_len)
{
	struct pr_shared hdr;
	struct stat st;
	uint64_t want;
	void *map;
	int seals;

	if (fstat(memfd, &st) < 0)
		return -errno;
	/* Without these seals the daemon could shrink the file under us and we would fault. */
	seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EPERM;
	if (st.st_size < PR_CTL_SIZE || (uint64_t)st.st_size > (uint64_t)PR_CTL_SIZE + 2ull * PR_RING_MAX)
		return -EBADMSG;
	if (pread(memfd, &hdr, offsetof(struct pr_shared, pad), 0) != (ssize_t)offsetof(struct pr_shared, pad))
		return -EBADMSG;
	if (hdr.magic != PR_MAGIC || hdr.version != PR_VERSION)
		return -EPROTO;
	if (!ring_size_ok(hdr.pkt_size) || !ring_size_ok(hdr.vd_size))
		return -EBADMSG;
	want = (uint64_t)PR_CTL_SIZE + hdr.pkt_size + hdr.vd_size;
	if ((uint64_t)st.st_size != want)
		return -EBADMSG;
	map = mmap(NULL, (size_t)want, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (map == MAP_FAILED)
		return -errno;
	/* The header may have changed between pread and mmap: the sizes pr_ring_attach() will
	 * read must still be the ones we checked against the file. */
	if (((struct pr_shared *)map)->pkt_size != hdr.pkt_size ||
	    ((struct pr_shared *)map)->vd_size != hdr.vd_size) {
		munmap(map, (size_t)want);
		return -EBADMSG;
	}
	*ret_map = map;
	*ret_len = (size_t)want;
	return 0;
}

void pr_shm_unmap(void *map, size_t len)
{
	if (map)
		munmap(map, len);
}

void pr_ring_attach(struct pr_ring *r, void *map, int ring, bool producer)
{
	struct pr_shared *sh = map;
	uint32_t pkt_size = sh->pkt_size, vd_size = sh->vd_size;

	memset(r, 0, sizeof(*r));
	/* A size that fails the checks pr_shm_map() made leaves size 0: every operation on
	 * the ring then fails instead of reaching outside the mapping. */
	if (!ring_size_ok(pkt_size) || !ring_size_ok(vd_size))
		return;
	r->ctl = ring == 0 ? &sh->pkt : &sh->vd;
	r->data = (uint8_t *)map + PR_CTL_SIZE + (ring == 0 ? 0 : pkt_size);
	r->size = ring == 0 ? pkt_size : vd_size;
	if (producer)
		r->pos = atomic_load_explicit(&r->ctl->tail, memory_order_relaxed);
	else
		r->pos = atomic_load_explicit(&r->ctl->head, memory_order_relaxed);
	r->pos &= ~(uint32_t)(PR_ALIGN - 1);
}

/* Bytes the consumer has not yet released, from a head the peer may have forged. */
static int64_t producer_used(const struct pr_ring *r)
{
	uint32_t head, used;

	if (!r->size)
		return -EBADMSG;
	head = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
	used = r->pos - head;
	if (used > r->size || head % PR_ALIGN)
		return -EBADMSG;
	return used;
}

int64_t pr_free_bytes(const struct pr_ring *r)
{
	int64_t used = producer_used(r);

	return used < 0 ? used : (int64_t)r->size - used;
}

void *pr_reserve(struct pr_ring *r, uint32_t len)
{
	uint32_t off, contig;
	struct pr_rec *rec;
	int64_t room;

	if (len < sizeof(struct pr_rec) || len > r->size)
		return NULL;
	len = (len + PR_ALIGN - 1) & ~(uint32_t)(PR_ALIGN - 1);
	room = pr_free_bytes(r);
	if (room < len)
		return NULL;
	off = r->pos & (r->size - 1);
	contig = r->size - off;
	if (contig < len) {
		if (room < (int64_t)contig + len)
			return NULL;
		rec = (struct pr_rec *)(r->data + off);
		rec->len = contig;
		rec->type = PR_REC_PAD;
		rec->flags = 0;
		r->pos += contig;
		off = 0;
	}
	rec = (struct pr_rec *)(r->data + off);
	memset(rec, 0, sizeof(*rec));
	rec->len = len;
	/* The peer can rewrite rec->len before pr_commit(): keep our own copy. */
	r->peek_len = len;
	return rec;
}

void pr_commit(struct pr_ring *r, void *rec)
{
	struct pr_rec *h = (struct pr_rec *)(r->data + (r->pos & (r->size - 1)));

	(void)rec;
	if (!r->peek_len)
		return;
	/* The length the consumer checks is the one we reserved, whatever the caller (or the
	 * peer, through the shared page) wrote there meanwhile. */
	h->len = r->peek_len;
	r->pos += r->peek_len;
	r->peek_len = 0;
}

int pr_publish(struct pr_ring *r)
{
	uint32_t head, used;

	if (!r->size)
		return -EBADMSG;
	atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_release);
	/* Pairs with the fence in pr_prepare_wait(): either we see `waiting`, or the
	 * consumer sees our tail before it sleeps. */
	atomic_thread_fence(memory_order_seq_cst);
	head = atomic_load_explicit(&r->ctl->head, memory_order_relaxed);
	used = r->pos - head;
	if (used > r->size || head % PR_ALIGN)
		return -EBADMSG;
	return atomic_load_explicit(&r->ctl->waiting, memory_order_relaxed) ? 1 : 0;
}

static bool rec_header_ok(const struct pr_rec *h, uint32_t off, uint32_t avail, uint32_t size)
{
	if (h->len < sizeof(*h) || h->len % PR_ALIGN || h->len > size - off || h->len > avail)
		return false;
	switch (h->type) {
	case PR_REC_PAD:
		/* A PAD only ever fills the rest of the ring. */
		return h->len == size - off;
	case PR_REC_PACKET:
		return h->len >= sizeof(struct pr_packet);
	case PR_REC_VERDICT:
		return h->len >= sizeof(struct pr_verdict);
	default:
		return false;
	}
}

const struct pr_rec *pr_peek(struct pr_ring *r, int *err)
{
	uint32_t tail, avail, off;
	struct pr_rec h;
	int i;

	if (err)
		*err = 0;
	r->peek_len = 0;
	if (!r->size)
		goto bad;
	/* At most one PAD precedes a record: the one after it starts at offset 0. */
	for (i = 0; i < 2; i++) {
		tail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
		avail = tail - r->pos;
		if (!avail)
			return NULL;
		if (avail > r->size || tail % PR_ALIGN)
			goto bad;
		off = r->pos & (r->size - 1);
		memcpy(&h, r->data + off, sizeof(h));
		if (!rec_header_ok(&h, off, avail, r->size))
			goto bad;
		if (h.type != PR_REC_PAD) {
			r->peek_len = h.len;
			return (const struct pr_rec *)(r->data + off);
		}
		r->pos += h.len;
	}
bad:
	if (err)
		*err = -EBADMSG;
	return NULL;
}

void pr_consume(struct pr_ring *r)
{
	r->pos += r->peek_len;
	r->peek_len = 0;
}

void pr_release(struct pr_ring *r)
{
	if (r->size)
		atomic_store_explicit(&r->ctl->head, r->pos, memory_order_release);
}

bool pr_prepare_wait(struct pr_ring *r)
{
	uint32_t tail;

	if (!r->size)
		return false;
	atomic_store_explicit(&r->ctl->waiting, 1, memory_order_relaxed);
	/* Dekker with pr_publish(): store waiting, fence, load tail. */
	atomic_thread_fence(memory_order_seq_cst);
	tail = atomic_load_explicit(&r->ctl->tail, memory_order_relaxed);
	if (tail != r->pos) {
		atomic_store_explicit(&r->ctl->waiting, 0, memory_order_relaxed);
		return false;
	}
	return true;
}

void pr_wake_done(struct pr_ring *r)
{
	if (r->size)
		atomic_store_explicit(&r->ctl->waiting, 0, memory_order_relaxed);
}
