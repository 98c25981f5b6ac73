/* udptun: the root peer of tests/tools/testtunnel.c (a plaintext "VPN": each IP packet is one
 * UDP datagram). Tests and benchmarks only; never for real traffic.
 *
 *   udptun -i IFNAME -l PORT [-b ADDR] [-p IP:PORT] [-m MTU]
 *
 * Opens the TUN device IFNAME (IFF_TUN | IFF_NO_PI, created if missing, set up with MTU,
 * default 1420) and a UDP socket on PORT (ADDR, default "::" dual-stack; an IPv4 ADDR makes an
 * IPv4 socket), then relays: every datagram received is written to the TUN as one packet;
 * every packet read from the TUN is sent to the source of the last datagram received (or to
 * -p IP:PORT until one arrived). The caller adds addresses and routes with `ip`. On SIGUSR1,
 * and when SIGTERM/SIGINT end it, prints on stderr
 *     udptun: rx=N tx=N drop=N max_rx=BYTES max_tx=BYTES
 * (datagrams in, datagrams out, packets that had nowhere to go or that the TUN refused, the
 * largest datagram received and sent). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXPKT 65536

static volatile sig_atomic_t stop, report;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report = 1;
	else
		stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: udptun -i IFNAME -l PORT [-b ADDR] [-p IP:PORT] [-m MTU]\n");
	exit(2);
}

static void die(const char *what)
{
	fprintf(stderr, "udptun: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* "IP:PORT", "[IPv6]:PORT" or "IPv6:PORT" (the last colon separates the port). */
static int parse_endpoint(const char *s, struct sockaddr_in6 *ret)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t n;
	long port;
	char *end;
	struct in_addr a4;

	if (!colon || colon == s)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->sin6_family = AF_INET6;
	ret->sin6_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		/* v4-mapped, for the dual-stack socket */
		ret->sin6_addr.s6_addr[10] = 0xff;
		ret->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&ret->sin6_addr.s6_addr[12], &a4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, host, &ret->sin6_addr) == 1 ? 0 : -EINVAL;
}

static int tun_open(const char *name, int mtu)
{
	struct ifreq ifr;
	int fd, s;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF");
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket");
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		die("SIOCSIFMTU");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("SIOCSIFFLAGS");
	close(s);
	return fd;
}

static int udp_open(const char *bind_addr, int port, int *ret_family)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, off = 0, buf = 4 << 20;

	if (bind_addr && inet_pton(AF_INET, bind_addr, &s4.sin_addr) == 1) {
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&s4, sizeof(s4)) < 0)
			die("bind");
		*ret_family = AF_INET;
	} else {
		if (bind_addr && inet_pton(AF_INET6, bind_addr, &s6.sin6_addr) != 1) {
			fprintf(stderr, "udptun: bad address %s\n", bind_addr);
			exit(2);
		}
		fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		if (bind(fd, (struct sockaddr *)&s6, sizeof(s6)) < 0)
			die("bind");
		*ret_family = AF_INET6;
	}
	/* Best effort: bulk tests should not lose datagrams to a small default buffer. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf));
	return fd;
}

/* The peer address in the socket's own family (an IPv4 socket takes v4-mapped peers). */
static socklen_t peer_for(int family, const struct sockaddr_in6 *p6, struct sockaddr_storage *ret)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ret;

	memset(ret, 0, sizeof(*ret));
	if (family == AF_INET6) {
		memcpy(ret, p6, sizeof(*p6));
		return sizeof(*p6);
	}
	s4->sin_family = AF_INET;
	s4->sin_port = p6->sin6_port;
	memcpy(&s4->sin_addr, &p6->sin6_addr.s6_addr[12], 4);
	return sizeof(*s4);
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *bind_addr = NULL;
	struct sockaddr_storage peer;
	socklen_t peer_len = 0;
	struct sockaddr_in6 p6;
	unsigned long long rx = 0, tx = 0, drop = 0;
	size_t max_rx = 0, max_tx = 0;
	static unsigned char buf[MAXPKT];
	int opt, port = 0, mtu = 1420, tun, udp, family;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "i:l:b:p:m:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'l': port = atoi(optarg); break;
		case 'b': bind_addr = optarg; break;
		case 'm': mtu = atoi(optarg); break;
		case 'p':
			if (parse_endpoint(optarg, &p6) < 0) {
				fprintf(stderr, "udptun: bad endpoint %s\n", optarg);
				return 2;
			}
			peer_len = 1; /* resolved below, once the socket's family is known */
			break;
		default: usage();
		}
	}
	if (!ifname || port <= 0 || port > 65535 || strlen(ifname) >= IFNAMSIZ || mtu < 576)
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	tun = tun_open(ifname, mtu);
	udp = udp_open(bind_addr, port, &family);
	if (peer_len) {
		if (family == AF_INET && !IN6_IS_ADDR_V4MAPPED(&p6.sin6_addr)) {
			fprintf(stderr, "udptun: an IPv6 peer needs an IPv6 socket\n");
			return 2;
		}
		peer_len = peer_for(family, &p6, &peer);
	}
	fprintf(stderr, "udptun: %s <-> udp port %d\n", ifname, port);

	while (!stop) {
		struct pollfd pfd[2] = { { .fd = tun, .events = POLLIN }, { .fd = udp, .events = POLLIN } };
		ssize_t n;

		if (report) {
			report = 0;
			fprintf(stderr, "udptun: rx=%llu tx=%llu drop=%llu max_rx=%zu max_tx=%zu\n", rx,
				tx, drop, max_rx, max_tx);
		}

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[1].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t flen = sizeof(from);

			n = recvfrom(udp, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
			if (n > 0) {
				rx++;
				if ((size_t)n > max_rx)
					max_rx = (size_t)n;
				memcpy(&peer, &from, flen);
				peer_len = flen;
				if (write(tun, buf, (size_t)n) != n)
					drop++; /* not an IP packet the kernel takes */
			}
		}
		if (pfd[0].revents & POLLIN) {
			n = read(tun, buf, sizeof(buf));
			if (n > 0) {
				if (!peer_len ||
				    sendto(udp, buf, (size_t)n, 0, (struct sockaddr *)&peer, peer_len) != n)
					drop++;
				else
					tx++;
				if ((size_t)n > max_tx)
					max_tx = (size_t)n;
			}
		}
	}
	fprintf(stderr, "udptun: rx=%llu tx=%llu drop=%llu max_rx=%zu max_tx=%zu\n", rx, tx, drop,
		max_rx, max_tx);
	return 0;
}
