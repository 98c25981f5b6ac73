/* Test packets for the packet-filter unit tests: IPv4 and IPv6 packets with a TCP or UDP
 * header and a text payload, from 198.18.0.1 to 198.18.0.2 (2001:db8::1 to 2001:db8::2).
 * Checksums are left zero: netextd rebuilds them, and the tests do not look at them. */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t testpkt_l4(uint8_t *p, int proto, uint16_t sport, uint16_t dport,
				const void *payload, size_t n)
{
	size_t hl = proto == IPPROTO_TCP ? 20 : 8;

	memset(p, 0, hl);
	p[0] = (uint8_t)(sport >> 8), p[1] = (uint8_t)sport;
	p[2] = (uint8_t)(dport >> 8), p[3] = (uint8_t)dport;
	if (proto == IPPROTO_TCP) {
		p[12] = 5 << 4;
		p[13] = 0x18; /* PSH ACK */
	} else {
		p[4] = (uint8_t)((8 + n) >> 8), p[5] = (uint8_t)(8 + n);
	}
	memcpy(p + hl, payload, n);
	return hl + n;
}

static inline size_t testpkt_v4n(uint8_t *p, int proto, uint16_t sport, uint16_t dport,
				 const void *payload, size_t len)
{
	size_t n = 20 + testpkt_l4(p + 20, proto, sport, dport, payload, len);

	memset(p, 0, 20);
	p[0] = 0x45;
	p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
	p[8] = 64;
	p[9] = (uint8_t)proto;
	inet_pton(AF_INET, "198.18.0.1", p + 12);
	inet_pton(AF_INET, "198.18.0.2", p + 16);
	return n;
}

static inline size_t testpkt_v6n(uint8_t *p, int proto, uint16_t sport, uint16_t dport,
				 const void *payload, size_t len)
{
	size_t n = 40 + testpkt_l4(p + 40, proto, sport, dport, payload, len);

	memset(p, 0, 40);
	p[0] = 0x60;
	p[4] = (uint8_t)((n - 40) >> 8), p[5] = (uint8_t)(n - 40);
	p[6] = (uint8_t)proto;
	p[7] = 64;
	inet_pton(AF_INET6, "2001:db8::1", p + 8);
	inet_pton(AF_INET6, "2001:db8::2", p + 24);
	return n;
}

static inline size_t testpkt_v4(uint8_t *p, int proto, uint16_t sport, uint16_t dport, const char *payload)
{
	return testpkt_v4n(p, proto, sport, dport, payload, strlen(payload));
}

static inline size_t testpkt_v6(uint8_t *p, int proto, uint16_t sport, uint16_t dport, const char *payload)
{
	return testpkt_v6n(p, proto, sport, dport, payload, strlen(payload));
}

static inline unsigned testpkt_be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}
