/* Shared-memory rings: mapping checks, record framing, wrap-around, the wake-up protocol
 * under two threads, and a hostile peer writing garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pktring.h"

struct shm {
	int fd;
	void *map;
	size_t len;
};

static void shm_new(struct shm *s, uint32_t pkt_size, uint32_t vd_size)
{
	assert_int_equal(pr_shm_create(pkt_size, vd_size, &s->fd, &s->map, &s->len), 0);
	assert_int_equal(s->len, PR_CTL_SIZE + pkt_size + vd_size);
}

static void shm_free(struct shm *s)
{
	pr_shm_unmap(s->map, s->len);
	close(s->fd);
}

/* A hand-made memfd with the given header and file size, sealed or not. */
static int fake_memfd(uint32_t magic, uint32_t version, uint32_t pkt_size, uint32_t vd_size, off_t size,
		      bool seal)
{
	struct pr_shared hdr = { .magic = magic, .version = version, .pkt_size = pkt_size, .vd_size = vd_size };
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(pwrite(fd, &hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
	return fd;
}

static void expect_map(int fd, int err)
{
	void *map = NULL;
	size_t len = 0;

	assert_int_equal(pr_shm_map(fd, &map, &len), err);
	if (!err)
		pr_shm_unmap(map, len);
	close(fd);
}

static void test_create_and_map(void **state)
{
	const off_t good = PR_CTL_SIZE + 2 * PR_RING_MIN;
	struct shm s;
	void *map;
	size_t len;
	int seals;

	shm_new(&s, PR_RING_MIN, 2 * PR_RING_MIN);
	seals = fcntl(s.fd, F_GET_SEALS);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_true(fcntl(s.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(ftruncate(s.fd, 4096), -1);
	assert_int_equal(pr_shm_map(s.fd, &map, &len), 0);
	assert_int_equal(len, s.len);
	/* Both mappings are the same memory. */
	((uint8_t *)s.map)[len - 1] = 0xa5;
	assert_int_equal(((uint8_t *)map)[len - 1], 0xa5);
	pr_shm_unmap(map, len);
	shm_free(&s);

	assert_int_equal(pr_shm_create(PR_RING_MIN + 8, PR_RING_MIN, &s.fd, &s.map, &s.len), -EINVAL);
	assert_int_equal(pr_shm_create(PR_RING_MIN / 2, PR_RING_MIN, &s.fd, &s.map, &s.len), -EINVAL);
	assert_int_equal(pr_shm_create(PR_RING_MIN, PR_RING_MAX * 2u, &s.fd, &s.map, &s.len), -EINVAL);

	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN, PR_RING_MIN, good, true), 0);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN, PR_RING_MIN, good + 4096, true), -EBADMSG);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN, PR_RING_MIN, good - 8, true), -EBADMSG);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN, PR_RING_MIN, 100, true), -EBADMSG);
	expect_map(fake_memfd(PR_MAGIC ^ 1, PR_VERSION, PR_RING_MIN, PR_RING_MIN, good, true), -EPROTO);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION + 1, PR_RING_MIN, PR_RING_MIN, good, true), -EPROTO);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN + PR_RING_MIN / 2, PR_RING_MIN / 2, good, true),
		   -EBADMSG);
	expect_map(fake_memfd(PR_MAGIC, PR_VERSION, PR_RING_MIN, PR_RING_MIN, good, false), -EPERM);
	(void)state;
}

static struct pr_packet *put_packet(struct pr_ring *r, uint32_t id, uint32_t n)
{
	struct pr_packet *pk = pr_reserve(r, (uint32_t)sizeof(*pk) + n);

	if (!pk)
		return NULL;
	assert_int_equal((uintptr_t)pk % PR_ALIGN, 0);
	assert_true(pk->rec.len >= sizeof(*pk) + n);
	pk->rec.type = PR_REC_PACKET;
	pk->id = id;
	pk->len = n;
	for (uint32_t i = 0; i < n; i++)
		pk->data[i] = (uint8_t)(id + i);
	pr_commit(r, pk);
	return pk;
}

static void check_packet(const struct pr_ring *r, const struct pr_rec *rec, uint32_t id)
{
	struct pr_packet pk;

	assert_non_null(rec);
	assert_int_equal(rec->type, PR_REC_PACKET);
	assert_true(r->peek_len >= sizeof(pk));
	memcpy(&pk, rec, sizeof(pk));
	assert_int_equal(pk.id, id);
	assert_true(pk.len <= r->peek_len - sizeof(pk));
	for (uint32_t i = 0; i < pk.len; i++)
		assert_int_equal(((const struct pr_packet *)rec)->data[i], (uint8_t)(id + i));
}

static void test_fill_drain(void **state)
{
	struct pr_ring p, c;
	struct shm s;
	uint32_t n = 0, i;
	int err;

	shm_new(&s, PR_RING_MIN, PR_RING_MIN);
	pr_ring_attach(&p, s.map, 0, true);
	pr_ring_attach(&c, s.map, 0, false);
	assert_int_equal(pr_free_bytes(&p), PR_RING_MIN);
	assert_null(pr_peek(&c, &err));
	assert_int_equal(err, 0);
	/* 40 + 24 bytes: exactly 1024 records fill the ring. */
	while (put_packet(&p, n, 24))
		n++;
	assert_int_equal(n, PR_RING_MIN / 64);
	assert_int_equal(pr_free_bytes(&p), 0);
	/* Nothing visible before the publish. */
	assert_null(pr_peek(&c, &err));
	assert_int_equal(pr_publish(&p), 0);
	for (i = 0; i < n; i++) {
		check_packet(&c, pr_peek(&c, &err), i);
		pr_consume(&c);
	}
	assert_null(pr_peek(&c, &err));
	assert_int_equal(err, 0);
	/* Still full for the producer until the consumer releases. */
	assert_int_equal(pr_free_bytes(&p), 0);
	assert_null(pr_reserve(&p, 64));
	pr_release(&c);
	assert_int_equal(pr_free_bytes(&p), PR_RING_MIN);
	/* Sizes round up to 8; nonsense sizes are refused. */
	assert_null(pr_reserve(&p, 4));
	assert_null(pr_reserve(&p, PR_RING_MIN + 1));
	assert_null(pr_reserve(&p, UINT32_MAX));
	assert_non_null(put_packet(&p, 1, 1));
	assert_int_equal(pr_free_bytes(&p), PR_RING_MIN - 48);
	/* A length scribbled over the reserved record (by the caller, or by the peer through
	 * the shared page) before the commit does not reach the consumer. */
	{
		struct pr_packet *pk = pr_reserve(&p, sizeof(*pk) + 3);

		assert_non_null(pk);
		pk->rec.type = PR_REC_PACKET;
		pk->id = 2;
		pk->len = 0;
		pk->rec.len = 9999;
		pr_commit(&p, pk);
		pr_publish(&p);
		check_packet(&c, pr_peek(&c, &err), 1);
		pr_consume(&c);
		check_packet(&c, pr_peek(&c, &err), 2);
		assert_int_equal(c.peek_len, 48);
	}
	shm_free(&s);
	(void)state;
}

static void test_wrap_with_pad(void **state)
{
	const uint32_t big = 40000;
	struct pr_ring p, c;
	const struct pr_rec *rec;
	struct pr_packet *pk;
	struct shm s;
	int err;

	shm_new(&s, PR_RING_MIN, PR_RING_MIN);
	pr_ring_attach(&p, s.map, 1, true);
	pr_ring_attach(&c, s.map, 1, false);
	assert_non_null(put_packet(&p, 1, big));
	pr_publish(&p);
	check_packet(&c, pr_peek(&c, &err), 1);
	/* Not released yet: no room for the PAD plus a record at 0. */
	assert_null(pr_reserve(&p, big));
	pr_consume(&c);
	pr_release(&c);
	/* 25536 bytes left at the end: the next big record goes to offset 0 after a PAD. */
	pk = put_packet(&p, 2, big);
	assert_ptr_equal(pk, (void *)c.data);
	assert_int_equal(((struct pr_rec *)(c.data + 40040))->type, PR_REC_PAD);
	assert_int_equal(((struct pr_rec *)(c.data + 40040))->len, PR_RING_MIN - 40040);
	/* PAD and record fill the ring exactly. */
	assert_null(pr_reserve(&p, 8));
	pr_publish(&p);
	rec = pr_peek(&c, &err);
	assert_ptr_equal(rec, (void *)c.data);
	check_packet(&c, rec, 2);
	pr_consume(&c);
	assert_null(pr_peek(&c, &err));
	assert_int_equal(err, 0);
	pr_release(&c);
	assert_int_equal(pr_free_bytes(&p), PR_RING_MIN);

	/* Many laps with sizes that do not divide the ring. */
	for (uint32_t i = 0; i < 20000; i++) {
		assert_non_null(put_packet(&p, i, (i * 131) % 3000));
		pr_publish(&p);
		check_packet(&c, pr_peek(&c, &err), i);
		pr_consume(&c);
		pr_release(&c);
	}
	/* The free-running counters wrap around 2^32 too. */
	atomic_store(&c.ctl->head, UINT32_MAX - 63);
	atomic_store(&c.ctl->tail, UINT32_MAX - 63);
	pr_ring_attach(&p, s.map, 1, true);
	pr_ring_attach(&c, s.map, 1, false);
	for (uint32_t i = 0; i < 100; i++) {
		assert_non_null(put_packet(&p, i, 100));
		pr_publish(&p);
		check_packet(&c, pr_peek(&c, &err), i);
		pr_consume(&c);
		pr_release(&c);
	}
	shm_free(&s);
	(void)state;
}

static void test_waiting_flag(void **state)
{
	struct pr_ring p, c;
	struct shm s;
	int err;

	shm_new(&s, PR_RING_MIN, PR_RING_MIN);
	pr_ring_attach(&p, s.map, 0, true);
	pr_ring_attach(&c, s.map, 0, false);
	/* Nobody waits: no wake-up. */
	put_packet(&p, 1, 10);
	assert_int_equal(pr_publish(&p), 0);
	/* Records pending: do not sleep, flag left clear. */
	assert_false(pr_prepare_wait(&c));
	assert_int_equal(atomic_load(&c.ctl->waiting), 0);
	check_packet(&c, pr_peek(&c, &err), 1);
	pr_consume(&c);
	pr_release(&c);
	/* Empty: sleep, and the next publish asks for a wake-up. */
	assert_true(pr_prepare_wait(&c));
	assert_int_equal(atomic_load(&c.ctl->waiting), 1);
	put_packet(&p, 2, 10);
	assert_int_equal(pr_publish(&p), 1);
	pr_wake_done(&c);
	assert_int_equal(atomic_load(&c.ctl->waiting), 0);
	assert_int_equal(pr_publish(&p), 0);
	check_packet(&c, pr_peek(&c, &err), 2);
	shm_free(&s);
	(void)state;
}

/* --- two threads ------------------------------------------------------------------ */

#define STRESS_N 1000000u

struct stress {
	struct pr_ring p, c;
	int efd; /* the consumer's eventfd */
	uint32_t received;
	_Atomic bool failed;
};

static uint32_t stress_size(uint32_t i)
{
	return (i * 2654435761u) % 700;
}

static void *stress_consumer(void *arg)
{
	struct stress *st = arg;
	const struct pr_rec *rec;
	struct pr_packet pk;
	uint64_t v;
	int err;

	while (st->received < STRESS_N) {
		rec = pr_peek(&st->c, &err);
		if (!rec) {
			if (err) {
				st->failed = true;
				return NULL;
			}
			pr_release(&st->c);
			if (pr_prepare_wait(&st->c)) {
				if (read(st->efd, &v, sizeof(v)) != sizeof(v))
					st->failed = true;
				pr_wake_done(&st->c);
			}
			continue;
		}
		memcpy(&pk, rec, sizeof(pk));
		if (pk.id != st->received || pk.len != stress_size(pk.id) ||
		    st->c.peek_len < sizeof(pk) + pk.len) {
			st->failed = true;
			return NULL;
		}
		for (uint32_t j = 0; j < pk.len; j++)
			if (((const struct pr_packet *)rec)->data[j] != (uint8_t)(pk.id + j)) {
				st->failed = true;
				return NULL;
			}
		pr_consume(&st->c);
		if (++st->received % 64 == 0)
			pr_release(&st->c);
	}
	pr_release(&st->c);
	return NULL;
}

static void stress_publish(struct stress *st)
{
	uint64_t one = 1;
	int r = pr_publish(&st->p);

	assert_true(r >= 0);
	if (r == 1)
		assert_int_equal(write(st->efd, &one, sizeof(one)), sizeof(one));
}

static void test_two_threads(void **state)
{
	struct stress st = { 0 };
	pthread_t th;
	struct shm s;
	uint32_t i, batch = 0;

	shm_new(&s, PR_RING_MIN, PR_RING_MIN);
	pr_ring_attach(&st.p, s.map, 0, true);
	pr_ring_attach(&st.c, s.map, 0, false);
	st.efd = eventfd(0, EFD_CLOEXEC);
	assert_true(st.efd >= 0);
	assert_int_equal(pthread_create(&th, NULL, stress_consumer, &st), 0);
	for (i = 0; i < STRESS_N && !st.failed; i++) {
		while (!put_packet(&st.p, i, stress_size(i)) && !st.failed) {
			stress_publish(&st);
			batch = 0;
			sched_yield();
		}
		/* Publish in batches of varying size, as the daemon does per NFQUEUE read. */
		if (++batch >= 1 + i % 37) {
			stress_publish(&st);
			batch = 0;
		}
	}
	stress_publish(&st);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_false(st.failed);
	assert_int_equal(st.received, STRESS_N);
	close(st.efd);
	shm_free(&s);
	(void)state;
}

/* --- a hostile peer ----------------------------------------------------------------- */

static void write_rec(uint8_t *at, uint32_t len, uint16_t type)
{
	struct pr_rec h = { len, type, 0 };

	memcpy(at, &h, sizeof(h));
}

/* The extension writes garbage into the verdict ring the daemon reads. */
static void test_hostile_producer(void **state)
{
	const uint32_t size = PR_RING_MIN;
	struct {
		uint32_t pos, tail, len;
		uint16_t type;
	} bad[] = {
		{ 0, 64, 0, PR_REC_VERDICT },                 /* zero length */
		{ 0, 64, 4, PR_REC_VERDICT },                 /* shorter than a header */
		{ 0, 64, 36, PR_REC_VERDICT },                /* not aligned */
		{ 0, 64, 72, PR_REC_VERDICT },                /* past the tail */
		{ 0, 64, 8, PR_REC_VERDICT },                 /* shorter than a verdict */
		{ 0, 64, 64, 7 },                             /* unknown type */
		{ 0, 64, 64, PR_REC_PAD },                    /* PAD short of the end */
		{ size - 64, size + 64, 128, PR_REC_VERDICT }, /* runs past the ring end */
		{ size - 64, size + 64, UINT32_MAX & ~7u, PR_REC_VERDICT },
		{ 0, 61, 56, PR_REC_VERDICT },                /* tail not aligned */
		{ 0, size + 8, 64, PR_REC_VERDICT },          /* more than the ring */
		{ 8, 0, 64, PR_REC_VERDICT },                 /* tail behind the head */
		{ size - 64, size + 64, 64, PR_REC_PAD },      /* PAD then garbage at 0 */
	};
	struct pr_ring c;
	struct shm s;
	int err;

	shm_new(&s, PR_RING_MIN, size);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pr_ring_attach(&c, s.map, 1, false);
		c.pos = bad[i].pos;
		write_rec(c.data + (bad[i].pos & (size - 1)), bad[i].len, bad[i].type);
		memset(c.data, 0xff, 8);
		if (bad[i].pos == 0)
			write_rec(c.data, bad[i].len, bad[i].type);
		atomic_store(&c.ctl->tail, bad[i].tail);
		assert_null(pr_peek(&c, &err));
		assert_int_equal(err, -EBADMSG);
	}

	/* Random headers and tails: a record is either refused or lies inside the ring. */
	srand(1);
	for (int i = 0; i < 200000; i++) {
		const struct pr_rec *rec;
		uint32_t pos = (uint32_t)rand() * 8u;

		pr_ring_attach(&c, s.map, 1, false);
		c.pos = pos;
		write_rec(c.data + (pos & (size - 1)), (uint32_t)rand() % (2 * size),
			  (uint16_t)(rand() % 4));
		write_rec(c.data, (uint32_t)rand() % (2 * size), (uint16_t)(rand() % 4));
		atomic_store(&c.ctl->tail, pos + (uint32_t)(rand() % (3 * size)) - size);
		rec = pr_peek(&c, &err);
		if (rec) {
			assert_int_equal(err, 0);
			assert_true((const uint8_t *)rec >= c.data);
			assert_true((const uint8_t *)rec + c.peek_len <= c.data + size);
			assert_true(c.peek_len >= sizeof(struct pr_verdict));
		}
	}
	shm_free(&s);
	(void)state;
}

/* The extension forges the packet ring's head the daemon produces into. */
static void test_hostile_consumer(void **state)
{
	uint32_t heads[] = { 4, 8, PR_RING_MIN * 2, UINT32_MAX - 3 };
	struct pr_shared *sh;
	struct pr_ring p;
	struct shm s;

	shm_new(&s, PR_RING_MIN, PR_RING_MIN);
	pr_ring_attach(&p, s.map, 0, true);
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		atomic_store(&p.ctl->head, heads[i]);
		assert_int_equal(pr_free_bytes(&p), -EBADMSG);
		assert_null(pr_reserve(&p, 64));
		assert_int_equal(pr_publish(&p), -EBADMSG);
	}
	/* Ring sizes rewritten in the control page: a later attach yields a dead view. */
	sh = s.map;
	sh->pkt_size = 3 * PR_RING_MIN;
	pr_ring_attach(&p, s.map, 0, true);
	assert_int_equal(p.size, 0);
	assert_null(pr_reserve(&p, 64));
	assert_int_equal(pr_publish(&p), -EBADMSG);
	sh->pkt_size = 12345;
	pr_ring_attach(&p, s.map, 1, false);
	assert_int_equal(p.size, 0);
	assert_false(pr_prepare_wait(&p));
	shm_free(&s);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_map),
		cmocka_unit_test(test_fill_drain),
		cmocka_unit_test(test_wrap_with_pad),
		cmocka_unit_test(test_waiting_flag),
		cmocka_unit_test(test_two_threads),
		cmocka_unit_test(test_hostile_producer),
		cmocka_unit_test(test_hostile_consumer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
