/*
 * W3 echo load generator: CONNECTIONS TCP connections to HOST:PORT in a closed loop. Each
 * connection sends SIZE bytes, waits until all SIZE bytes have come back (checked byte for
 * byte), records the round trip's latency, and sends the next message at once. One thread, one
 * level-triggered epoll set, so that bench/echo.ts can pin it to one CPU.
 *
 * Latencies go into a log-linear histogram (128 buckets per power of two: under 0.8 % error).
 * bench/echo.ts drives it through stdin, one command a line:
 *   mark   print "mark {json}" for the interval since the previous mark (or since "ready"):
 *          round trips, wall time, p50 / p99 / max latency, this process's CPU; then start a
 *          new interval
 *   quit   exit (as does end of file on stdin, so it never outlives the benchmark)
 * It prints "ready" once every connection is connected and has sent its first message.
 *
 * usage: echo-load HOST PORT CONNECTIONS SIZE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define STDIN_KEY UINT64_MAX

/* Log-linear histogram: values below SUB are exact; above, SUB buckets per power of two. */
#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define BUCKETS (SUB + (64 - SUB_BITS) * SUB)

static uint64_t histogram[BUCKETS];
static uint64_t max_ns;

static int bucket_of(uint64_t v)
{
	if (v < SUB) return (int)v;
	int e = 63 - __builtin_clzll(v); /* e >= SUB_BITS */
	return SUB + (e - SUB_BITS) * SUB + (int)((v >> (e - SUB_BITS)) - SUB);
}

/* The middle of a bucket's range. */
static double value_of(int b)
{
	if (b < SUB) return b;
	int e = (b - SUB) / SUB + SUB_BITS;
	uint64_t low = ((uint64_t)(SUB + (b - SUB) % SUB)) << (e - SUB_BITS);
	return (double)low + (double)(1ULL << (e - SUB_BITS)) / 2;
}

static double percentile(uint64_t count, double p)
{
	if (count == 0) return 0;
	uint64_t rank = (uint64_t)(p * (double)count);
	if (rank >= count) rank = count - 1;
	uint64_t seen = 0;
	for (int b = 0; b < BUCKETS; b++) {
		seen += histogram[b];
		if (seen > rank) return value_of(b);
	}
	return (double)max_ns;
}

struct conn {
	int fd;
	int index;
	uint32_t seq;
	/* Bytes of the current message written, and of its echo read. */
	size_t sent, got;
	int want_out;
	uint64_t start_ns;
	uint8_t *msg;
};

static int epfd;
static size_t size;
static uint64_t round_trips;
static uint8_t *inbuf;

static void die(const char *what)
{
	fprintf(stderr, "echo-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *why, int index)
{
	fprintf(stderr, "echo-load: connection %d: %s\n", index, why);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void interest(struct conn *c, int out)
{
	if (c->want_out == out) return;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
	c->want_out = out;
}

/* Writes what is left of the current message; asks for EPOLLOUT if the kernel takes no more. */
static void push(struct conn *c)
{
	while (c->sent < size) {
		ssize_t w = send(c->fd, c->msg + c->sent, size - c->sent, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN) break;
			fail(strerror(errno), c->index);
		}
		c->sent += (size_t)w;
	}
	interest(c, c->sent < size);
}

/* The next message: its bytes depend on the connection and the sequence number. */
static void start(struct conn *c)
{
	uint8_t base = (uint8_t)(c->seq * 131u + (uint32_t)c->index * 7u);
	for (size_t i = 0; i < size; i++) c->msg[i] = (uint8_t)(base + i);
	c->sent = 0;
	c->got = 0;
	c->start_ns = now_ns();
	push(c);
}

static void receive(struct conn *c)
{
	for (;;) {
		size_t room = size - c->got;
		if (room == 0) {
			fail("the server sent more bytes than the message had", c->index);
		}
		ssize_t n = recv(c->fd, inbuf, room, 0);
		if (n == 0) fail("the server closed the connection", c->index);
		if (n < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN) return;
			fail(strerror(errno), c->index);
		}
		if (c->got + (size_t)n > c->sent) fail("the server echoed bytes that were not sent yet", c->index);
		if (memcmp(inbuf, c->msg + c->got, (size_t)n) != 0) fail("the echo differs from what was sent", c->index);
		c->got += (size_t)n;
		if (c->got < size) continue;
		uint64_t took = now_ns() - c->start_ns;
		histogram[bucket_of(took)]++;
		if (took > max_ns) max_ns = took;
		round_trips++;
		c->seq++;
		start(c);
		return; /* level-triggered: anything more is reported again */
	}
}

static double tv_ns(struct timeval t)
{
	return (double)t.tv_sec * 1e9 + (double)t.tv_usec * 1e3;
}

struct mark {
	uint64_t at_ns;
	double user_ns, sys_ns;
};

static struct mark take_mark(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (struct mark){ now_ns(), tv_ns(ru.ru_utime), tv_ns(ru.ru_stime) };
}

/* Reads stdin's commands; returns 0 when it is time to exit. */
static int command(struct mark *last)
{
	char line[256];
	ssize_t n = read(STDIN_FILENO, line, sizeof line - 1);
	if (n <= 0) return n < 0 && errno == EINTR;
	line[n] = '\0';
	for (char *cmd = strtok(line, "\n"); cmd != NULL; cmd = strtok(NULL, "\n")) {
		if (strcmp(cmd, "quit") == 0) return 0;
		if (strcmp(cmd, "mark") != 0) {
			fprintf(stderr, "echo-load: unknown command '%s'\n", cmd);
			continue;
		}
		struct mark m = take_mark();
		printf("mark {\"roundTrips\":%llu,\"wallNs\":%llu,\"p50Ns\":%.0f,\"p99Ns\":%.0f,\"maxNs\":%llu,"
		       "\"userNs\":%.0f,\"sysNs\":%.0f}\n",
		       (unsigned long long)round_trips, (unsigned long long)(m.at_ns - last->at_ns),
		       percentile(round_trips, 0.50), percentile(round_trips, 0.99), (unsigned long long)max_ns,
		       m.user_ns - last->user_ns, m.sys_ns - last->sys_ns);
		fflush(stdout);
		memset(histogram, 0, sizeof histogram);
		max_ns = 0;
		round_trips = 0;
		*last = take_mark();
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: echo-load HOST PORT CONNECTIONS SIZE\n");
		return 2;
	}
	int port = atoi(argv[2]), connections = atoi(argv[3]);
	long sz = atol(argv[4]);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || port < 1 || port > 65535 || connections < 1 ||
	    sz < 1 || sz > (1 << 24)) {
		fprintf(stderr, "echo-load: bad arguments (HOST must be an IPv4 address)\n");
		return 2;
	}
	size = (size_t)sz;
	inbuf = malloc(size);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (inbuf == NULL) die("malloc");
	if (epfd < 0) die("epoll_create1");

	struct conn *conns = calloc((size_t)connections, sizeof *conns);
	if (conns == NULL) die("calloc");
	for (int i = 0; i < connections; i++) {
		struct conn *c = &conns[i];
		c->index = i;
		c->msg = malloc(size);
		if (c->msg == NULL) die("malloc");
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0) die("socket");
		if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
	}
	struct epoll_event in = { .events = EPOLLIN, .data.u64 = STDIN_KEY };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &in) < 0) die("epoll_ctl stdin (commands come on stdin: a pipe or a terminal)");

	for (int i = 0; i < connections; i++) start(&conns[i]);
	struct mark last = take_mark();
	printf("ready\n");
	fflush(stdout);

	struct epoll_event ev[BATCH];
	for (;;) {
		int n = epoll_wait(epfd, ev, BATCH, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == STDIN_KEY) {
				if (!command(&last)) return 0;
				continue;
			}
			struct conn *c = ev[i].data.ptr;
			if (ev[i].events & EPOLLOUT) push(c);
			if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) receive(c);
		}
	}
}
