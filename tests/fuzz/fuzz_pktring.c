/* Fuzz harness for the shared-memory rings (src/common/pktring.c) as the daemon uses them:
 * reading the verdict ring an extension writes, and producing into the packet ring whose head
 * an extension controls.
 *
 * Input: u32 consumer position, u32 tail, u32 head (host order), then the verdict ring's
 * bytes. Besides what ASan/UBSan catch, it checks that every record pr_peek() returns lies
 * inside the ring with its checked length, that the consumer never passes the tail, and that
 * every reservation lies inside the ring and inside the free space. */
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pktring.h"

static void *map;
static size_t map_len;

static void die(const char *why)
{
	fprintf(stderr, "fuzz-pktring: %s\n", why);
	abort();
}

static void setup(void)
{
	int fd;

	if (map)
		return;
	if (pr_shm_create(PR_RING_MIN, PR_RING_MIN, &fd, &map, &map_len) < 0)
		die("pr_shm_create failed");
	close(fd);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void consume(uint32_t pos, uint32_t tail, const uint8_t *bytes, size_t n)
{
	const struct pr_rec *rec;
	struct pr_verdict v;
	struct pr_ring c;
	int err, i;

	pr_ring_attach(&c, map, 1, false);
	memset(c.data, 0, c.size);
	memcpy(c.data, bytes, n < c.size ? n : c.size);
	c.pos = pos & ~(uint32_t)(PR_ALIGN - 1);
	atomic_store(&c.ctl->tail, tail);
	for (i = 0; i < 100000; i++) {
		rec = pr_peek(&c, &err);
		if (!rec)
			break;
		if (err)
			die("a record with an error");
		if ((const uint8_t *)rec < c.data || c.peek_len > c.size ||
		    (const uint8_t *)rec + c.peek_len > c.data + c.size)
			die("a record outside the ring");
		if (c.peek_len > tail - c.pos)
			die("a record past the tail");
		if (c.peek_len < sizeof(struct pr_verdict))
			die("a record shorter than its type");
		/* As the daemon does: copy, then check the copy against the checked length. */
		memcpy(&v, rec, sizeof(v));
		if (v.len <= c.peek_len - sizeof(v) && v.len)
			(void)((const struct pr_verdict *)rec)->data[v.len - 1];
		pr_consume(&c);
	}
	pr_release(&c);
}

static void produce(uint32_t head, uint32_t tail, const uint8_t *sizes, size_t n)
{
	struct pr_ring p;
	int64_t room;
	uint8_t *r;
	uint32_t len;
	size_t i;
	int pub;

	pr_ring_attach(&p, map, 0, true);
	p.pos = tail & ~(uint32_t)(PR_ALIGN - 1);
	atomic_store(&p.ctl->head, head);
	for (i = 0; i + 2 <= n && i < 64; i += 2) {
		len = (uint32_t)(sizes[i] | sizes[i + 1] << 8) * 2;
		room = pr_free_bytes(&p);
		r = pr_reserve(&p, len);
		if (!r)
			continue;
		if (room < 0 || (int64_t)len > room)
			die("a reservation without room");
		if (r < p.data || r + ((len + 7) & ~7u) > p.data + p.size)
			die("a reservation outside the ring");
		memset(r + sizeof(struct pr_rec), 0xab, ((len + 7) & ~7u) - sizeof(struct pr_rec));
		pr_commit(&p, r);
	}
	pub = pr_publish(&p);
	if (pub != -EBADMSG && pub != 0 && pub != 1)
		die("pr_publish returned nonsense");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 12)
		return 0;
	consume(get_u32(data), get_u32(data + 4), data + 12, size - 12);
	produce(get_u32(data + 8), get_u32(data + 4), data + 12, size - 12);
	return 0;
}

/* Seeds: a well-formed verdict ring with a PAD at the end. */
void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static uint8_t in[12 + 256];
	struct pr_verdict v = { .rec = { 32, PR_REC_VERDICT, 0 }, .slot = 1, .id = 7, .kind = 1 };
	uint32_t pos = 0, tail = 64, head = 0;

	memcpy(in, &pos, 4);
	memcpy(in + 4, &tail, 4);
	memcpy(in + 8, &head, 4);
	memcpy(in + 12, &v, sizeof(v));
	v.rec.len = 32;
	v.kind = 4;
	v.len = 8;
	memcpy(in + 12 + 32, &v, sizeof(v));
	add(in, sizeof(in), userdata);
}
