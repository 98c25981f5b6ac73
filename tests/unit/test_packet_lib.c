/* libnetext's filter-packet side through the harness (real rings, real worker threads):
 * registration and settings checks, the packet accessors on IPv4/IPv6 TCP/UDP, verdicts as
 * returned, ne_packet_build, delay then resume from another thread (and from inside the
 * handler, before the delay is even sent), the resumes that must refuse, a truncated packet,
 * the batch handler, bad verdicts (sent as an empty modify), a stop while packets are
 * delayed, and fds on a frame other than PACKET_QUEUE (a protocol fault). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <netext/harness.h>

#include "pktring.h"
#include "testpkt.h"
#include "wire.h"

#define v4 testpkt_v4
#define v6 testpkt_v6
#define be16 testpkt_be16

/* --- the provider under test ------------------------------------------------------------ */

/* What the handler saw of the last packet. */
static struct {
	int family, protocol;
	unsigned sport, dport, queue;
	ne_packet_direction direction;
	size_t len, orig_len;
	int payload_r, build_r;
	char payload[256];
} seen;

static ne_provider *the_provider;
static atomic_uint_fast64_t delayed_id;
static int early_resume_r;
static uint8_t built[2048];

static void note(const ne_packet *pkt)
{
	struct sockaddr_storage src, dst;
	const uint8_t *pl;
	size_t n;

	memset(&seen, 0, sizeof(seen));
	seen.family = ne_packet_family(pkt);
	seen.protocol = ne_packet_protocol(pkt);
	if (ne_packet_source(pkt, &src) == 0 && ne_packet_destination(pkt, &dst) == 0) {
		seen.sport = ntohs(src.ss_family == AF_INET ? ((struct sockaddr_in *)&src)->sin_port
							    : ((struct sockaddr_in6 *)&src)->sin6_port);
		seen.dport = ntohs(dst.ss_family == AF_INET ? ((struct sockaddr_in *)&dst)->sin_port
							    : ((struct sockaddr_in6 *)&dst)->sin6_port);
	}
	seen.queue = ne_packet_queue(pkt);
	seen.direction = ne_packet_get_direction(pkt);
	seen.len = ne_packet_length(pkt);
	seen.orig_len = ne_packet_original_length(pkt);
	seen.payload_r = ne_packet_payload(pkt, &pl, &n);
	if (seen.payload_r == 0) {
		n = n < sizeof(seen.payload) - 1 ? n : sizeof(seen.payload) - 1;
		memcpy(seen.payload, pl, n);
	}
}

/* The payload says what to do. */
static ne_packet_verdict on_packet(ne_provider *p, const ne_packet *pkt, void *ud)
{
	static const char repl[] = "HELLO, WORLD";
	long n;

	note(pkt);
	if (!strcmp(seen.payload, "drop"))
		return ne_packet_drop();
	if (!strcmp(seen.payload, "hello")) {
		n = ne_packet_build(pkt, repl, strlen(repl), built, sizeof(built));
		seen.build_r = (int)n;
		return n > 0 ? ne_packet_modify(built, (size_t)n) : ne_packet_drop();
	}
	if (!strcmp(seen.payload, "delay")) {
		atomic_store(&delayed_id, ne_packet_id(pkt));
		return ne_packet_delay();
	}
	if (!strcmp(seen.payload, "early")) {
		/* Resumed before the delay is returned: only the final verdict goes out. */
		early_resume_r = ne_packet_resume(p, ne_packet_id(pkt), ne_packet_drop());
		return ne_packet_delay();
	}
	if (!strcmp(seen.payload, "bad"))
		return ne_packet_modify(NULL, 10);
	if (!strcmp(seen.payload, "kind0")) {
		ne_packet_verdict v = { 0, NULL, 0 };
		return v;
	}
	if (ne_packet_length(pkt) < ne_packet_original_length(pkt))
		seen.build_r = (int)ne_packet_build(pkt, "x", 1, built, sizeof(built));
	return ne_packet_allow();
}

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	ne_provider_start_done(p, error, message);
}

static int settings_r;

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	static const struct ne_packet_rule rules[] = {
		{ .direction = NE_PACKET_OUTBOUND, .family = AF_INET, .protocol = IPPROTO_TCP, .remote_port = 80 },
		{ .direction = NE_PACKET_INBOUND, .family = AF_INET6, .protocol = IPPROTO_UDP,
		  .interface = "eth0", .local_network = "2001:db8::/32" },
		{ .direction = NE_PACKET_ANY },
	};
	const char *cr = ne_options_get(o, "copy_range");
	struct ne_packet_settings s = { .size = sizeof(s), .rules = rules, .n_rules = 3, .queues = 2,
					.copy_range = cr ? (uint32_t)atoi(cr) : 0 };

	the_provider = p;
	settings_r = ne_packet_apply_settings(p, &s, settings_done, NULL);
	if (settings_r < 0)
		ne_provider_start_done(p, settings_r, "settings");
}

static ne_extension *ext;
static ne_harness *h;

static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start };
static const struct ne_packet_filter_ops pops = { .size = sizeof(pops), .handle_packet = on_packet };

static int setup(void **state)
{
	int err = -1;

	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_packet_filter(ext, &ops, &pops, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	assert_int_equal(ne_harness_start(h, "pf", NE_PROVIDER_FILTER_PACKET, NULL, &err), 0);
	assert_int_equal(err, 0);
	return 0;
}

static int teardown(void **state)
{
	ne_harness_free(h);
	ne_extension_free(ext);
	return 0;
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_register_checks(void **state)
{
	struct ne_packet_filter_ops none = { .size = sizeof(none) };
	struct ne_packet_filter_ops small = { .size = 8, .handle_packet = on_packet };
	ne_extension *e;

	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &none, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &small, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, NULL, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &pops, NULL), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &pops, NULL), -EEXIST);
	ne_extension_free(e);
}

static void test_settings(void **state)
{
	struct ne_packet_rule bad = { .family = 7 };
	struct ne_packet_settings s = { .size = sizeof(s) };
	uint32_t copy_range = 1;
	unsigned queues = 0;
	size_t n = 0;

	assert_int_equal(settings_r, 0);
	assert_int_equal(ne_harness_packet_settings(h, "pf", &n, &queues, &copy_range), 0);
	assert_int_equal(n, 3);
	assert_int_equal(queues, 2);
	assert_int_equal(copy_range, 0);
	/* Checked before anything is sent. */
	s.copy_range = 100;
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -EINVAL);
	s.copy_range = 0;
	s.queues = NE_PACKET_QUEUES_MAX + 1;
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -EINVAL);
	s.queues = 1; /* the first settings fixed 2 */
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -EINVAL);
	s.queues = 2;
	s.rules = &bad;
	s.n_rules = 1;
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -EINVAL);
	s.n_rules = NE_PACKET_RULES_MAX + 1;
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -E2BIG);
	s.size = 4;
	assert_int_equal(ne_packet_apply_settings(the_provider, &s, NULL, NULL), -EINVAL);
	assert_int_equal(ne_packet_apply_settings(NULL, &s, NULL, NULL), -EINVAL);
}

static void test_accessors_and_verdicts(void **state)
{
	ne_packet_verdict v;
	uint8_t pkt[256];
	uint64_t id;
	size_t n;

	n = v4(pkt, IPPROTO_TCP, 40000, 80, "drop");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_DROP);
	assert_int_equal(seen.family, AF_INET);
	assert_int_equal(seen.protocol, IPPROTO_TCP);
	assert_int_equal(seen.sport, 40000);
	assert_int_equal(seen.dport, 80);
	assert_int_equal(seen.direction, NE_PACKET_OUTBOUND);
	assert_int_equal(seen.queue, 0);
	assert_int_equal(seen.len, n);
	assert_int_equal(seen.orig_len, n);

	n = v6(pkt, IPPROTO_UDP, 5353, 53, "other");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_INBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	assert_int_equal(seen.family, AF_INET6);
	assert_int_equal(seen.protocol, IPPROTO_UDP);
	assert_int_equal(seen.sport, 5353);
	assert_int_equal(seen.dport, 53);
	assert_int_equal(seen.direction, NE_PACKET_INBOUND);
	assert_string_equal(seen.payload, "other");

	/* Not IP at all: the views say so, the verdict still comes. */
	memset(pkt, 0xff, 40);
	assert_int_equal(ne_harness_packet(h, "pf", pkt, 40, NE_PACKET_FORWARD, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	assert_int_equal(seen.family, -1);
	assert_int_equal(seen.protocol, -1);
	assert_int_equal(seen.payload_r, -EPROTO);
}

static void check_modified(const ne_packet_verdict *v, int family, int proto)
{
	size_t ip = family == AF_INET ? 20 : 40, l4 = proto == IPPROTO_TCP ? 20 : 8;

	assert_int_equal(v->kind, NE_PACKET_MODIFY);
	assert_int_equal(v->len, ip + l4 + 12);
	assert_memory_equal((const uint8_t *)v->bytes + ip + l4, "HELLO, WORLD", 12);
	if (family == AF_INET)
		assert_int_equal(be16((const uint8_t *)v->bytes + 2), v->len);
	else
		assert_int_equal(be16((const uint8_t *)v->bytes + 4), v->len - 40);
	if (proto == IPPROTO_UDP)
		assert_int_equal(be16((const uint8_t *)v->bytes + ip + 4), 8 + 12);
}

static void test_modify_build(void **state)
{
	static const int protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	ne_packet_verdict v;
	uint8_t pkt[256];
	uint64_t id;
	size_t n, i;

	for (i = 0; i < 2; i++) {
		n = v4(pkt, protos[i], 40000, 80, "hello");
		assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
		check_modified(&v, AF_INET, protos[i]);
		n = v6(pkt, protos[i], 40000, 80, "hello");
		assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
		check_modified(&v, AF_INET6, protos[i]);
	}
}

static void *resume_later(void *arg)
{
	usleep(20000);
	return (void *)(intptr_t)ne_packet_resume(the_provider, atomic_load(&delayed_id),
						   ne_packet_modify("\x45", 1));
}

static void test_delay_resume(void **state)
{
	ne_packet_verdict v;
	uint8_t pkt[256];
	pthread_t t;
	void *ret;
	uint64_t id, pid;
	size_t n;

	n = v4(pkt, IPPROTO_UDP, 1000, 2000, "delay");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_DELAY);
	pid = atomic_load(&delayed_id);
	assert_int_equal(pthread_create(&t, NULL, resume_later, NULL), 0);
	assert_int_equal(ne_harness_packet_verdict(h, id, &v), 0);
	pthread_join(t, &ret);
	assert_int_equal((intptr_t)ret, 0);
	assert_int_equal(v.kind, NE_PACKET_MODIFY);
	assert_int_equal(v.len, 1);
	/* Once only; never for an id that was not delayed; never DELAY again. */
	assert_int_equal(ne_packet_resume(the_provider, pid, ne_packet_allow()), -ENOENT);
	assert_int_equal(ne_packet_resume(the_provider, pid + 1000, ne_packet_allow()), -ENOENT);
	assert_int_equal(ne_packet_resume(the_provider, 7ULL << 56, ne_packet_allow()), -ENOENT);
	assert_int_equal(ne_packet_resume(the_provider, pid, ne_packet_delay()), -EINVAL);
	assert_int_equal(ne_packet_resume(the_provider, pid, ne_packet_modify(NULL, 3)), -EINVAL);
	assert_int_equal(ne_packet_resume(NULL, pid, ne_packet_allow()), -EINVAL);

	/* Resumed inside the handler, before DELAY went out. */
	n = v4(pkt, IPPROTO_UDP, 1000, 2000, "early");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(early_resume_r, 0);
	assert_int_equal(v.kind, NE_PACKET_DROP);
}

static void test_bad_verdicts(void **state)
{
	ne_packet_verdict v;
	uint8_t pkt[256];
	uint64_t id;
	size_t n;

	n = v4(pkt, IPPROTO_TCP, 1, 2, "bad");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_MODIFY);
	assert_int_equal(v.len, 0);
	n = v4(pkt, IPPROTO_TCP, 1, 2, "kind0");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_MODIFY);
	assert_int_equal(v.len, 0);
}

static void test_many_packets(void **state)
{
	ne_packet_verdict v;
	uint64_t ids[500];
	uint8_t pkt[256];
	size_t n, i;

	for (i = 0; i < 500; i++) {
		n = v4(pkt, IPPROTO_TCP, (uint16_t)(1000 + i), 80, i % 2 ? "drop" : "pass");
		assert_int_equal(ne_harness_packet_send(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &ids[i]), 0);
	}
	for (i = 0; i < 500; i++) {
		assert_int_equal(ne_harness_packet_verdict(h, ids[i], &v), 0);
		assert_int_equal(v.kind, i % 2 ? NE_PACKET_DROP : NE_PACKET_ALLOW);
	}
}

static void test_truncated(void **state)
{
	const char *opts[] = { "copy_range", "128", NULL };
	char big[1001];
	ne_packet_verdict v;
	uint8_t pkt[1100];
	uint64_t id;
	size_t n;
	int err = -1;

	assert_int_equal(ne_harness_stop(h, "pf", NE_STOP_REASON_USER_INITIATED), 0);
	assert_int_equal(ne_harness_start(h, "pf", NE_PROVIDER_FILTER_PACKET, opts, &err), 0);
	assert_int_equal(err, 0);
	memset(big, 'a', 1000);
	big[1000] = '\0';
	n = v4(pkt, IPPROTO_TCP, 1, 2, big);
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	assert_int_equal(seen.len, 128);
	assert_int_equal(seen.orig_len, n);
	assert_int_equal(seen.payload_r, -ENODATA);
	assert_int_equal(seen.build_r, -ENODATA);
	assert_int_equal(seen.sport, 1);
}

static void test_stop_with_delayed(void **state)
{
	ne_packet_verdict v;
	uint8_t pkt[256];
	uint64_t id, pid;
	size_t n;

	n = v6(pkt, IPPROTO_TCP, 1, 2, "delay");
	assert_int_equal(ne_harness_packet(h, "pf", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_DELAY);
	pid = atomic_load(&delayed_id);
	assert_int_equal(ne_harness_stop(h, "pf", NE_STOP_REASON_USER_INITIATED), 0);
	/* The provider handle is gone: the lookup refuses it without touching it. */
	assert_int_equal(ne_packet_resume(the_provider, pid, ne_packet_allow()), -EINVAL);
}

/* --- batches ----------------------------------------------------------------------------- */

static atomic_size_t batch_max, batch_total;

static void on_packets(ne_provider *p, const ne_packet *const *pkts, ne_packet_verdict *v, size_t n,
		       void *ud)
{
	size_t i, m = atomic_load(&batch_max);

	if (n > m)
		atomic_store(&batch_max, n);
	atomic_fetch_add(&batch_total, n);
	usleep(2000); /* let the next packets queue up behind this batch */
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].kind, NE_PACKET_ALLOW);
		if (ne_packet_protocol(pkts[i]) == IPPROTO_UDP)
			v[i] = ne_packet_drop();
	}
}

static void test_batches(void **state)
{
	static const struct ne_packet_filter_ops bops = { .size = sizeof(bops), .handle_packets = on_packets };
	ne_extension *e;
	ne_harness *bh;
	ne_packet_verdict v;
	uint64_t ids[200];
	uint8_t pkt[256];
	size_t n, i;
	int err = -1;

	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &bops, NULL), 0);
	assert_int_equal(ne_harness_new(e, &bh), 0);
	assert_int_equal(ne_harness_start(bh, "b", NE_PROVIDER_FILTER_PACKET, NULL, &err), 0);
	assert_int_equal(err, 0);
	for (i = 0; i < 200; i++) {
		n = v4(pkt, i % 3 ? IPPROTO_TCP : IPPROTO_UDP, 1, 2, "x");
		assert_int_equal(ne_harness_packet_send(bh, "b", pkt, n, NE_PACKET_OUTBOUND, &ids[i]), 0);
	}
	for (i = 0; i < 200; i++) {
		assert_int_equal(ne_harness_packet_verdict(bh, ids[i], &v), 0);
		assert_int_equal(v.kind, i % 3 ? NE_PACKET_ALLOW : NE_PACKET_DROP);
	}
	assert_int_equal(atomic_load(&batch_total), 200);
	assert_true(atomic_load(&batch_max) > 1);
	assert_true(atomic_load(&batch_max) <= 64);
	/* Freed with its workers running. */
	ne_harness_free(bh);
	ne_extension_free(e);
}

/* --- fds where they do not belong -------------------------------------------------------- */

static void test_fds_on_other_frames(void **state)
{
	struct ne_msg_welcome m = { NE_WIRE_VERSION, { "x", 1 }, 1000 };
	uint8_t buf[NE_WIRE_MAX];
	struct ne_wbuf b = { buf, 0, sizeof(buf), 0 };
	ne_extension *e;
	int sv[2], fd, r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &pops, NULL), 0);
	assert_int_equal(ne_extension_connect_fd(e, sv[0]), 0);
	fd = eventfd(0, EFD_CLOEXEC);
	r = ne_msg_welcome_encode(&b, &m);
	assert_true(r > 0);
	assert_int_equal(ne_wire_send(sv[1], buf, (size_t)r, &fd, 1), r);
	close(fd);
	assert_int_equal(ne_extension_dispatch(e), -EBADMSG);
	ne_extension_free(e);
	close(sv[1]);
}


/* --- a fake daemon on a raw channel: PACKET_QUEUE replaced, and refused ------------------ */

struct fake {
	int fd;
	uint8_t buf[NE_WIRE_MAX];
	struct ne_msg_hdr h;
};

static void fake_send(struct fake *f, int len, const int *fds, size_t nfds)
{
	assert_true(len > 0);
	assert_int_equal(ne_wire_send(f->fd, f->buf, (size_t)len, fds, nfds), len);
}

/* The next frame from the extension (after letting it dispatch). */
static void fake_recv(struct fake *f, ne_extension *e, uint16_t type)
{
	int n;

	assert_int_equal(ne_extension_dispatch(e), 0);
	n = ne_wire_recv(f->fd, f->buf, sizeof(f->buf), NULL, NULL);
	assert_true(n > 0);
	assert_int_equal(ne_msg_hdr_decode(f->buf, (size_t)n, &f->h), 0);
	assert_int_equal(f->h.type, type);
}

struct fake_queue {
	int memfd, efd_pkt, efd_vd;
	void *map;
	size_t len;
	struct pr_ring pkt, vd;
};

static void fake_queue_send(struct fake *f, struct fake_queue *q, uint32_t map_size_delta)
{
	struct ne_msg_packet_queue m = { 1, 0, 1, 0 };
	struct ne_wbuf b = { f->buf, 0, sizeof(f->buf), 0 };
	int fds[3];

	assert_int_equal(pr_shm_create(PR_RING_MIN, PR_RING_MIN, &q->memfd, &q->map, &q->len), 0);
	q->efd_pkt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->efd_vd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pr_ring_attach(&q->pkt, q->map, 0, true);
	pr_ring_attach(&q->vd, q->map, 1, false);
	m.map_size = (uint32_t)q->len + map_size_delta;
	fds[0] = q->memfd, fds[1] = q->efd_pkt, fds[2] = q->efd_vd;
	fake_send(f, ne_msg_packet_queue_encode(&b, &m), fds, 3);
}

static void fake_queue_close(struct fake_queue *q)
{
	pr_shm_unmap(q->map, q->len);
	close(q->memfd);
	close(q->efd_pkt);
	close(q->efd_vd);
}

/* One packet through queue q: its verdict's kind. */
static int fake_packet(struct fake_queue *q)
{
	uint8_t bytes[128];
	size_t n = v4(bytes, IPPROTO_UDP, 1, 2, "other");
	struct pr_packet *rec = pr_reserve(&q->pkt, (uint32_t)(sizeof(*rec) + n));
	const struct pr_rec *vr = NULL;
	uint64_t one = 1;
	int err = 0, i, kind;

	assert_non_null(rec);
	rec->rec.type = PR_REC_PACKET;
	rec->slot = 5;
	rec->id = 77;
	rec->len = rec->orig_len = (uint32_t)n;
	rec->direction = NE_PACKET_OUTBOUND;
	memcpy(rec->data, bytes, n);
	pr_commit(&q->pkt, rec);
	if (pr_publish(&q->pkt) > 0)
		assert_int_equal(write(q->efd_pkt, &one, sizeof(one)), 8);
	for (i = 0; i < 2000 && !(vr = pr_peek(&q->vd, &err)); i++)
		usleep(1000);
	assert_non_null(vr);
	assert_int_equal(((const struct pr_verdict *)vr)->slot, 5);
	assert_int_equal(((const struct pr_verdict *)vr)->id, 77);
	kind = ((const struct pr_verdict *)vr)->kind;
	pr_consume(&q->vd);
	pr_release(&q->vd);
	return kind;
}

static void test_queue_replaced_and_refused(void **state)
{
	struct ne_msg_welcome w = { NE_WIRE_VERSION, { "x", 1 }, 60000 };
	struct ne_msg_start st = { .provider = 1, .type = NE_PROVIDER_FILTER_PACKET, .config = { "pf", 2 } };
	struct ne_msg_result res = { 0, { "", 0 } };
	struct fake f = { 0 };
	struct fake_queue q1, q2, q3;
	struct ne_wbuf b;
	ne_extension *e;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f.fd = sv[1];
	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &ops, &pops, NULL), 0);
	assert_int_equal(ne_extension_connect_fd(e, sv[0]), 0);
	fake_recv(&f, e, NE_MSG_HELLO);
	b = (struct ne_wbuf){ f.buf, 0, sizeof(f.buf), 0 };
	fake_send(&f, ne_msg_welcome_encode(&b, &w), NULL, 0);
	b = (struct ne_wbuf){ f.buf, 0, sizeof(f.buf), 0 };
	fake_send(&f, ne_msg_start_encode(&b, 9, &st), NULL, 0);
	fake_recv(&f, e, NE_MSG_PACKET_SETTINGS);

	/* Two queues for index 0: the second replaces the first (its worker stops). */
	fake_queue_send(&f, &q1, 0);
	fake_queue_send(&f, &q2, 0);
	b = (struct ne_wbuf){ f.buf, 0, sizeof(f.buf), 0 };
	fake_send(&f, ne_msg_result2_encode(&b, NE_MSG_RESULT, f.h.id, &res), NULL, 0);
	fake_recv(&f, e, NE_MSG_START_DONE);
	assert_int_equal(fake_packet(&q2), NE_PACKET_ALLOW);

	/* A memfd whose size is not the one announced: a protocol fault. */
	fake_queue_send(&f, &q3, 4096);
	assert_int_equal(ne_extension_dispatch(e), -EPROTO);
	ne_extension_free(e);
	fake_queue_close(&q1);
	fake_queue_close(&q2);
	fake_queue_close(&q3);
	close(sv[1]);
}

/* --- many threads resuming while the worker delays --------------------------------------- */

#define STRESS_N 3000
#define STRESS_THREADS 4

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t ids[STRESS_N];
	size_t head, tail;
	bool done;
} sq = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
static atomic_size_t stress_resumed, stress_errors;
static ne_provider *stress_provider;

/* Every packet is delayed; its id goes to the resumers before the handler returns, so some
 * resumes come before the delay is sent. */
static ne_packet_verdict stress_packet(ne_provider *p, const ne_packet *pkt, void *ud)
{
	pthread_mutex_lock(&sq.lock);
	sq.ids[sq.tail++ % STRESS_N] = ne_packet_id(pkt);
	pthread_cond_signal(&sq.cond);
	pthread_mutex_unlock(&sq.lock);
	return ne_packet_delay();
}

static void *stress_resumer(void *arg)
{
	uint64_t id;
	int r;

	for (;;) {
		pthread_mutex_lock(&sq.lock);
		while (sq.head == sq.tail && !sq.done)
			pthread_cond_wait(&sq.cond, &sq.lock);
		if (sq.head == sq.tail) {
			pthread_mutex_unlock(&sq.lock);
			return NULL;
		}
		id = sq.ids[sq.head++ % STRESS_N];
		pthread_mutex_unlock(&sq.lock);
		while ((r = ne_packet_resume(stress_provider, id, id % 2 ? ne_packet_drop() : ne_packet_allow())) == -EAGAIN)
			usleep(50);
		if (r == 0)
			atomic_fetch_add(&stress_resumed, 1);
		else
			atomic_fetch_add(&stress_errors, 1);
	}
}

static void stress_start(ne_provider *p, const ne_options *o, void *ud)
{
	struct ne_packet_settings s = { .size = sizeof(s) };

	stress_provider = p;
	assert_int_equal(ne_packet_apply_settings(p, &s, settings_done, NULL), 0);
}

static void test_resume_stress(void **state)
{
	static const struct ne_provider_ops sops = { .size = sizeof(sops), .start = stress_start };
	static const struct ne_packet_filter_ops spops = { .size = sizeof(spops), .handle_packet = stress_packet };
	pthread_t t[STRESS_THREADS];
	uint64_t ids[STRESS_N];
	ne_packet_verdict v;
	uint8_t pkt[256];
	ne_extension *e;
	ne_harness *sh;
	size_t i, n;
	int err = -1;

	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_packet_filter(e, &sops, &spops, NULL), 0);
	assert_int_equal(ne_harness_new(e, &sh), 0);
	assert_int_equal(ne_harness_start(sh, "s", NE_PROVIDER_FILTER_PACKET, NULL, &err), 0);
	assert_int_equal(err, 0);
	for (i = 0; i < STRESS_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_resumer, NULL), 0);
	n = v4(pkt, IPPROTO_UDP, 1, 2, "x");
	for (i = 0; i < STRESS_N; i++)
		assert_int_equal(ne_harness_packet_send(sh, "s", pkt, n, NE_PACKET_OUTBOUND, &ids[i]), 0);
	/* The library's ids are 1.. on queue 0, in the order sent: the harness's too. */
	ne_harness_set_timeout(sh, 30000); /* sanitizers are slow */
	for (i = 0; i < STRESS_N; i++) {
		assert_int_equal(ne_harness_packet_verdict(sh, ids[i], &v), 0);
		assert_int_equal(v.kind, (i + 1) % 2 ? NE_PACKET_DROP : NE_PACKET_ALLOW);
	}
	pthread_mutex_lock(&sq.lock);
	sq.done = true;
	pthread_cond_broadcast(&sq.cond);
	pthread_mutex_unlock(&sq.lock);
	for (i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&stress_resumed), STRESS_N);
	assert_int_equal(atomic_load(&stress_errors), 0);
	ne_harness_free(sh);
	ne_extension_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_checks),
		cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accessors_and_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modify_build, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_delayed, setup, teardown),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_fds_on_other_frames),
		cmocka_unit_test(test_queue_replaced_and_refused),
		cmocka_unit_test(test_resume_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
