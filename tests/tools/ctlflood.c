/* Sends malformed control requests to netextd and checks that every one gets a typed
 * error reply. Usage: netext-ctlflood SOCKET COUNT [SEED]. Exit 0 when all were answered
 * with {"ok":false,"error":{"code":...}}; prints a summary. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define LINE_MAX_TEST (64 * 1024)

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(2);
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one reply line into buf; returns its length or -1. */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		ssize_t n = recv(fd, buf + len, 1, 0);

		if (n <= 0)
			return -1;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return (ssize_t)len;
		}
		len++;
	}
	return -1;
}

static size_t make_request(char *buf, size_t cap, unsigned kind)
{
	size_t n, i;

	switch (kind) {
	case 0: /* random bytes */
		n = 1 + (size_t)rand() % 200;
		for (i = 0; i < n; i++) {
			buf[i] = (char)(rand() & 0xff);
			if (buf[i] == '\n' || buf[i] == 0)
				buf[i] = '{';
		}
		return n;
	case 1: return (size_t)snprintf(buf, cap, "[1,2,3]");
	case 2: return (size_t)snprintf(buf, cap, "{\"id\":%d,\"method\":%d}", rand(), rand());
	case 3: return (size_t)snprintf(buf, cap, "{\"id\":\"x%d\",\"method\":\"no.such.%d\"}", rand(), rand());
	case 4: return (size_t)snprintf(buf, cap, "{\"method\":\"status\",\"params\":[%d]}", rand());
	case 5: return (size_t)snprintf(buf, cap, "{\"method\":\"config.start\",\"params\":{\"name\":%d}}", rand());
	case 6:
		n = 5000;
		for (i = 0; i < n; i++)
			buf[i] = '[';
		return n;
	case 7: return (size_t)snprintf(buf, cap, "{\"method\":\"st\xff\xfe\"}");
	case 8: return (size_t)snprintf(buf, cap, "{\"method\":\"status\",\"method\":\"logs\"}");
	case 9: return (size_t)snprintf(buf, cap, "{\"method\":\"config.add\",\"params\":{\"name\":\"../../etc\",\"extension\":\"x\",\"provider\":\"message\"}}");
	default: return (size_t)snprintf(buf, cap, "{\"method\":\"config.message\",\"params\":{\"name\":\"nosuch\",\"data\":%d}}", rand());
	}
}

int main(int argc, char **argv)
{
	static char req[LINE_MAX_TEST + 2], rep[65536];
	unsigned long count, i, typed = 0, bad = 0, toolarge = 0;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET COUNT [SEED]\n", argv[0]);
		return 2;
	}
	count = strtoul(argv[2], NULL, 10);
	srand(argc > 3 ? (unsigned)atoi(argv[3]) : 1);
	fd = connect_to(argv[1]);
	for (i = 0; i < count; i++) {
		size_t n;

		if (i % 1000 == 999) {
			/* An oversized line: refused as request-too-large and the connection closed. */
			memset(req, 'x', LINE_MAX_TEST + 1);
			send_all(fd, req, LINE_MAX_TEST + 1);
			if (read_line(fd, rep, sizeof(rep)) > 0 && strstr(rep, "\"request-too-large\""))
				toolarge++;
			else
				bad++;
			close(fd);
			fd = connect_to(argv[1]);
			continue;
		}
		n = make_request(req, sizeof(req) - 1, (unsigned)(i % 11));
		req[n++] = '\n';
		if (send_all(fd, req, n) < 0 || read_line(fd, rep, sizeof(rep)) < 0) {
			fprintf(stderr, "request %lu (kind %lu): no reply\n", i, i % 11);
			bad++;
			close(fd);
			fd = connect_to(argv[1]);
			continue;
		}
		if (strstr(rep, "\"ok\":false") && strstr(rep, "\"code\":"))
			typed++;
		else {
			fprintf(stderr, "request %lu (kind %lu): unexpected reply %.200s\n", i, i % 11, rep);
			bad++;
		}
	}
	close(fd);
	printf("ctlflood: %lu requests, %lu typed errors, %lu too-large refusals, %lu bad\n", count,
	       typed, toolarge, bad);
	return bad ? 1 : 0;
}
