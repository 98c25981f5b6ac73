/* The name cache: owner and "any process" lookups, replacement, TTLs, the memory bound, and
 * learning from answers (CNAME chains, records nobody asked about, unusable answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dns_build.h"
#include "namecache.h"

static const struct nc_owner alice = { 100, 5000 }, bob = { 200, 6000 }, carol = { 300, 7000 };
static const struct nc_owner anyone = { 0, 0 };

static struct dns_msg msg;
static struct tb b;

static struct namecache *cache(size_t max_bytes)
{
	struct namecache *nc = NULL;

	assert_int_equal(namecache_new(max_bytes, &nc), 0);
	return nc;
}

static void v4(const char *text, uint8_t out[4])
{
	assert_int_equal(inet_pton(AF_INET, text, out), 1);
}

static int add4(struct namecache *nc, const struct nc_owner *o, const char *addr, const char *name,
		uint32_t ttl, uint64_t now)
{
	uint8_t a[4];

	v4(addr, a);
	return namecache_add(nc, o, AF_INET, a, name, ttl, now);
}

/* Looks addr up; returns the name or NULL (in a static buffer). */
static const char *look(struct namecache *nc, const struct nc_owner *o, const char *addr, uint64_t now)
{
	static char name[DNS_NAME_TEXT_MAX];
	uint8_t a[16];
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(inet_pton(family, addr, a), 1);
	if (namecache_lookup(nc, o, family, a, now, name, sizeof(name)) < 0)
		return NULL;
	return name;
}

static void test_owner_and_any(void **state)
{
	struct namecache *nc = cache(1 << 20);
	struct namecache_stats st;

	assert_int_equal(add4(nc, &alice, "192.0.2.1", "a.example", 300, 10), 0);
	assert_string_equal(look(nc, &alice, "192.0.2.1", 11), "a.example");
	assert_string_equal(look(nc, &bob, "192.0.2.1", 11), "a.example");
	assert_string_equal(look(nc, &anyone, "192.0.2.1", 11), "a.example");
	assert_string_equal(look(nc, NULL, "192.0.2.1", 11), "a.example");
	assert_null(look(nc, &alice, "192.0.2.2", 11));
	/* Bob resolves another name to the same address: alice keeps hers, others get bob's. */
	assert_int_equal(add4(nc, &bob, "192.0.2.1", "b.example", 300, 12), 0);
	assert_string_equal(look(nc, &alice, "192.0.2.1", 13), "a.example");
	assert_string_equal(look(nc, &bob, "192.0.2.1", 13), "b.example");
	assert_string_equal(look(nc, &carol, "192.0.2.1", 13), "b.example");
	/* An unknown owner stores only under "any". */
	assert_int_equal(add4(nc, &anyone, "192.0.2.3", "c.example", 300, 12), 0);
	namecache_get_stats(nc, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.learned, 3);
	assert_int_equal(st.hits_owner, 3);
	assert_int_equal(st.hits_any, 4);
	assert_int_equal(st.misses, 1);
	/* Names must be normalized; families known. */
	assert_int_equal(add4(nc, &alice, "192.0.2.1", "A.example", 300, 12), -EINVAL);
	assert_int_equal(add4(nc, &alice, "192.0.2.1", "a\\000.example", 300, 12), -EINVAL);
	assert_int_equal(namecache_add(nc, &alice, AF_UNIX, "abcd", "a.example", 300, 12), -EINVAL);
	namecache_free(nc);
	(void)state;
}

static void test_most_recent_wins(void **state)
{
	struct namecache *nc = cache(1 << 20);
	struct namecache_stats st;
	char small[4];
	uint8_t a[4];

	assert_int_equal(add4(nc, &alice, "192.0.2.1", "first.example", 300, 10), 0);
	assert_int_equal(add4(nc, &alice, "192.0.2.1", "a-much-longer-second-name.example", 300, 11), 0);
	assert_string_equal(look(nc, &alice, "192.0.2.1", 12), "a-much-longer-second-name.example");
	assert_int_equal(add4(nc, &alice, "192.0.2.1", "third.example", 300, 12), 0);
	assert_string_equal(look(nc, &alice, "192.0.2.1", 12), "third.example");
	assert_string_equal(look(nc, &bob, "192.0.2.1", 12), "third.example");
	namecache_get_stats(nc, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evicted, 0);
	v4("192.0.2.1", a);
	assert_int_equal(namecache_lookup(nc, &alice, AF_INET, a, 12, small, sizeof(small)), -ENOBUFS);
	namecache_free(nc);
	(void)state;
}

static void test_ttl(void **state)
{
	struct namecache *nc = cache(1 << 20);
	struct namecache_stats st;

	assert_int_equal(add4(nc, &alice, "192.0.2.1", "a.example", 100, 1000), 0);
	assert_non_null(look(nc, &alice, "192.0.2.1", 1099));
	assert_null(look(nc, &alice, "192.0.2.1", 1100));
	assert_null(look(nc, &bob, "192.0.2.1", 1100));
	namecache_get_stats(nc, &st);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	/* TTL 0 still lasts NAMECACHE_TTL_MIN; a week lasts NAMECACHE_TTL_MAX. */
	assert_int_equal(add4(nc, &alice, "192.0.2.2", "b.example", 0, 1000), 0);
	assert_non_null(look(nc, &alice, "192.0.2.2", 1000 + NAMECACHE_TTL_MIN - 1));
	assert_null(look(nc, &alice, "192.0.2.2", 1000 + NAMECACHE_TTL_MIN));
	assert_int_equal(add4(nc, &alice, "192.0.2.3", "c.example", 7 * 24 * 3600, 1000), 0);
	assert_non_null(look(nc, &alice, "192.0.2.3", 1000 + NAMECACHE_TTL_MAX - 1));
	assert_null(look(nc, &alice, "192.0.2.3", 1000 + NAMECACHE_TTL_MAX));
	namecache_free(nc);
	(void)state;
}

static void test_memory_bound(void **state)
{
	const size_t max = 4096;
	struct namecache *nc = cache(max);
	struct namecache_stats st;
	char addr[32];
	int i;

	/* Many more mappings than fit: the bound holds, the oldest go, the newest stay. */
	for (i = 0; i < 2000; i++) {
		snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(add4(nc, &anyone, addr, "host.example", 300, 10), 0);
		namecache_get_stats(nc, &st);
		assert_true(st.bytes <= max);
	}
	assert_true(st.evicted > 1900);
	assert_int_equal(st.entries + st.evicted, 2000);
	assert_null(look(nc, &anyone, "10.0.0.0", 11));
	assert_non_null(look(nc, &anyone, "10.0.7.207", 11)); /* number 1999 */
	/* Learning again refreshes: an old entry re-learned outlives newer ones. */
	assert_int_equal(add4(nc, &anyone, "10.0.7.200", "host.example", 300, 10), 0);
	for (i = 0; i < (int)st.entries - 1; i++) {
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 256, i % 256);
		assert_int_equal(add4(nc, &anyone, addr, "host.example", 300, 10), 0);
	}
	assert_non_null(look(nc, &anyone, "10.0.7.200", 11));
	assert_null(look(nc, &anyone, "10.0.7.201", 11));
	namecache_free(nc);
	(void)state;
}

/* Many addresses (enough to grow the table several times) all found again. */
static void test_many(void **state)
{
	struct namecache *nc = cache(64 << 20);
	char addr[64];
	int i;

	for (i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "2001:db8::%x:%x", i >> 8, i & 0xff);
		uint8_t a[16];

		assert_int_equal(inet_pton(AF_INET6, addr, a), 1);
		assert_int_equal(namecache_add(nc, &alice, AF_INET6, a, "v6.example", 300, 1), 0);
	}
	for (i = 0; i < 20000; i += 7) {
		snprintf(addr, sizeof(addr), "2001:db8::%x:%x", i >> 8, i & 0xff);
		assert_string_equal(look(nc, &alice, addr, 2), "v6.example");
	}
	namecache_free(nc);
	(void)state;
}

static int parse(void)
{
	return dns_parse(b.p, b.n, &msg);
}

/* www.example.com → cdn.example.net → edge.cdn.net → two A and one AAAA; plus an A record
 * for a name nobody asked about, and an A for a chain name in the additional section. */
static void build_chain(void)
{
	size_t q, cdn, edge;

	tb_header(&b, 9, TB_RESPONSE, 1, 6, 0, 1);
	q = tb_question(&b, "WWW.example.com", DNS_TYPE_A);
	cdn = tb_cname_rr(&b, q, "cdn.example.net", 600);
	edge = tb_cname_rr(&b, cdn, "Edge.CDN.net", 30);
	tb_addr_rr(&b, edge, "198.51.100.1", 300);
	tb_labels(&b, "evil");
	tb_ptr(&b, edge + 5);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_u32(&b, 300);
	tb_u16(&b, 4);
	tb_bytes(&b, "\xc6\x33\x64\x66", 4); /* evil.cdn.net A 198.51.100.102 */
	tb_addr_rr(&b, edge, "198.51.100.2", 300);
	tb_addr_rr(&b, edge, "2001:db8::2", 300);
	tb_addr_rr(&b, edge, "198.51.100.3", 300);
}

static void test_learn_chain(void **state)
{
	struct namecache *nc = cache(1 << 20);

	build_chain();
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 100), 3);
	assert_string_equal(look(nc, &alice, "198.51.100.1", 101), "www.example.com");
	assert_string_equal(look(nc, &bob, "198.51.100.2", 101), "www.example.com");
	assert_string_equal(look(nc, &alice, "2001:db8::2", 101), "www.example.com");
	assert_null(look(nc, &alice, "198.51.100.102", 101)); /* evil.cdn.net: not on the chain */
	assert_null(look(nc, &alice, "198.51.100.3", 101));   /* additional section */
	/* The chain's smallest TTL (30) bounds the mapping. */
	assert_non_null(look(nc, &alice, "198.51.100.1", 129));
	assert_null(look(nc, &alice, "198.51.100.1", 130));
	namecache_free(nc);
	(void)state;
}

/* A record straight for the question; records owned by other names are ignored. */
static void test_learn_unrelated(void **state)
{
	struct namecache *nc = cache(1 << 20);
	size_t q, other;

	tb_header(&b, 9, TB_RESPONSE, 1, 3, 0, 0);
	q = tb_question(&b, "bank.example", DNS_TYPE_A);
	other = b.n;
	tb_name(&b, "other.example");
	tb_rr(&b, DNS_TYPE_A, 300);
	tb_set16(&b, b.n - 2, 4);
	tb_bytes(&b, "\x0a\0\0\x63", 4);
	tb_cname_rr(&b, other, "bank.example", 300); /* other → bank: not from the question */
	tb_addr_rr(&b, q, "10.0.0.1", 300);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), 1);
	assert_string_equal(look(nc, &alice, "10.0.0.1", 2), "bank.example");
	assert_null(look(nc, &alice, "10.0.0.99", 2));
	namecache_free(nc);
	(void)state;
}

static void test_learn_refused(void **state)
{
	struct namecache *nc = cache(1 << 20);
	struct namecache_stats st;

	/* A query (qr = 0). */
	tb_answer_a(&b, 1, "a.example", "10.0.0.1");
	tb_set16(&b, 2, TB_RD);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	/* NXDOMAIN, SERVFAIL. */
	tb_set16(&b, 2, TB_RESPONSE | DNS_RCODE_NXDOMAIN);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	tb_set16(&b, 2, TB_RESPONSE | DNS_RCODE_SERVFAIL);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	/* An extended rcode (BADVERS) through OPT. */
	tb_set16(&b, 2, TB_RESPONSE);
	tb_set16(&b, 10, 1);
	tb_opt_rr(&b, 1232, 1);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	/* ...whereas with rcode 0 it is learned. */
	b.p[b.n - 6] = 0;
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), 1);
	/* No question; a question name that is no hostname. */
	tb_header(&b, 1, TB_RESPONSE, 0, 0, 0, 0);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	tb_answer_a(&b, 1, "a b.example", "10.0.0.1");
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), -EINVAL);
	namecache_get_stats(nc, &st);
	assert_int_equal(st.learned, 1);
	namecache_free(nc);
	(void)state;
}

/* A chain of 16 links is followed; 17 is too long. */
static void test_learn_chain_limit(void **state)
{
	struct namecache *nc = cache(1 << 20);
	char name[32];
	size_t prev, at;
	int links, i;

	for (links = 16; links <= 17; links++) {
		tb_header(&b, 1, TB_RESPONSE, 1, (uint16_t)(links + 1), 0, 0);
		prev = tb_question(&b, "start.example", DNS_TYPE_A);
		for (i = 0; i < links; i++) {
			snprintf(name, sizeof(name), "n%d.example", i);
			prev = tb_cname_rr(&b, prev, name, 300);
		}
		tb_addr_rr(&b, prev, links == 16 ? "10.0.0.16" : "10.0.0.17", 300);
		assert_int_equal(parse(), 0);
		assert_int_equal(namecache_learn(nc, &alice, &msg, 1), links == 16 ? 1 : 0);
	}
	assert_string_equal(look(nc, &alice, "10.0.0.16", 2), "start.example");
	assert_null(look(nc, &alice, "10.0.0.17", 2));
	/* A CNAME loop ends at the limit too. */
	tb_header(&b, 1, TB_RESPONSE, 1, 3, 0, 0);
	prev = tb_question(&b, "loop.example", DNS_TYPE_A);
	prev = tb_cname_rr(&b, prev, "back.example", 300);
	tb_ptr(&b, prev);
	at = tb_rr(&b, DNS_TYPE_CNAME, 300);
	tb_ptr(&b, 12); /* back.example → loop.example */
	tb_rr_end(&b, at);
	tb_addr_rr(&b, 12, "10.0.0.18", 300);
	assert_int_equal(parse(), 0);
	assert_int_equal(namecache_learn(nc, &alice, &msg, 1), 1);
	namecache_free(nc);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owner_and_any),
		cmocka_unit_test(test_most_recent_wins),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_learn_chain),
		cmocka_unit_test(test_learn_unrelated),
		cmocka_unit_test(test_learn_refused),
		cmocka_unit_test(test_learn_chain_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
