/*
 * W3 echo in plain C: the baseline bench/echo.ts compares evdispatch's echo server with.
 *
 * One thread, one epoll set, level-triggered (no EPOLLONESHOT, no EPOLLET): a readable
 * connection is read once (up to 64 KiB) and what was read is written back at once, so a
 * 64-byte round trip costs one read(2) and one write(2), plus its share of an epoll_wait(2);
 * level triggering re-reports a socket that still holds data, so nothing is read until
 * EAGAIN and no epoll_ctl(2) is needed per message. This is the cheapest correct way to serve
 * the closed loop on epoll, which is why it is the baseline. Output the kernel refuses waits
 * in a per-connection buffer; meanwhile the connection stops reading and waits for EPOLLOUT
 * only (back-pressure), as evdispatch's server does. Accepted sockets get TCP_NODELAY, as there.
 *
 * With --oneshot it is dispatch-once in C instead, what evdispatch's DISPATCH mode does: every
 * registration has EPOLLONESHOT, THREADS threads (--threads, default 1) wait on the one epoll
 * set, and each event is active in one thread only until that thread re-arms the connection
 * with EPOLL_CTL_MOD after serving it: one epoll_ctl(2) per message, the price of dispatch-once.
 *
 * It listens on 127.0.0.1:PORT (0: any free port), prints "port N" on stdout, and serves until
 * SIGTERM or SIGINT, or until its stdin reaches end of file (so it never outlives the
 * benchmark that started it).
 *
 * usage: echo-server PORT [--oneshot] [--threads N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define READ_SIZE 65536
/* epoll data of the listener and of stdin; a connection's data is its struct. */
#define LISTENER_KEY 1
#define STDIN_KEY 2

struct conn {
	int fd;
	/* What the connection waits for: EPOLLIN | EPOLLRDHUP, or EPOLLOUT under back-pressure. */
	uint32_t interest;
	/* Output write(2) did not take: pending[0 .. len). */
	uint8_t *pending;
	size_t len, cap;
};

static int epfd;
static int listener;
static volatile sig_atomic_t stop;
/* EPOLLONESHOT with --oneshot (every registration is re-armed after each event), else 0. */
static uint32_t oneshot;

static void die(const char *what)
{
	fprintf(stderr, "echo-server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void ctl(int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(epfd, op, fd, &ev) < 0) die("epoll_ctl");
}

static void drop(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set: nobody else holds the fd */
	free(c->pending);
	free(c);
}

/* Sends what is pending until it is gone or the kernel takes no more; false if the connection failed. */
static int flush(struct conn *c)
{
	while (c->len > 0) {
		ssize_t w = send(c->fd, c->pending, c->len, MSG_NOSIGNAL);
		if (w < 0) return errno == EAGAIN || errno == EINTR;
		memmove(c->pending, c->pending + w, c->len - (size_t)w);
		c->len -= (size_t)w;
	}
	return 1;
}

static int keep(struct conn *c, const uint8_t *buf, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap == 0 ? READ_SIZE : c->cap;
		while (cap < c->len + n) cap *= 2;
		uint8_t *p = realloc(c->pending, cap);
		if (p == NULL) return 0;
		c->pending = p;
		c->cap = cap;
	}
	memcpy(c->pending + c->len, buf, n);
	c->len += n;
	return 1;
}

static void accept_all(int listener)
{
	for (;;) {
		int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
			if (errno == EMFILE || errno == ENFILE) return; /* stays readable: retried */
			die("accept4");
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL) die("calloc");
		c->fd = fd;
		c->interest = EPOLLIN | EPOLLRDHUP;
		ctl(EPOLL_CTL_ADD, fd, c->interest | oneshot, (uint64_t)(uintptr_t)c);
	}
}

/* Serves one event; the interest the connection waits for next, or 0 once it is dropped. */
static uint32_t serve(struct conn *c, uint32_t events, uint8_t *buf)
{
	if (c->len > 0) {
		/* Back-pressure: writable again, or failed. */
		if (!flush(c)) return drop(c), 0;
		return c->len == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) return c->interest;
	ssize_t n = read(c->fd, buf, READ_SIZE);
	if (n == 0) return drop(c), 0;
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) return c->interest;
		return drop(c), 0; /* ECONNRESET and the like */
	}
	ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) return drop(c), 0;
		w = 0;
	}
	if (w < n) {
		if (!keep(c, buf + w, (size_t)(n - w))) return drop(c), 0;
		return EPOLLOUT;
	}
	return EPOLLIN | EPOLLRDHUP;
}

/* Serves events until stopped; with EPOLLONESHOT each registration is re-armed once served. */
static void *loop(void *unused)
{
	(void)unused;
	uint8_t *buf = malloc(READ_SIZE);
	if (buf == NULL) die("malloc");
	struct epoll_event ev[BATCH];
	while (!stop) {
		int n = epoll_wait(epfd, ev, BATCH, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			uint64_t key = ev[i].data.u64;
			if (key == LISTENER_KEY) {
				accept_all(listener);
				if (oneshot) ctl(EPOLL_CTL_MOD, listener, EPOLLIN | oneshot, LISTENER_KEY);
			} else if (key == STDIN_KEY) {
				/* The benchmark has gone (end of file), or wrote to us: either way, stop. */
				stop = 1;
			} else {
				struct conn *c = (struct conn *)(uintptr_t)key;
				uint32_t next = serve(c, ev[i].events, buf);
				/* Level-triggered, the registration changes only with the interest. */
				if (next != 0 && (oneshot || next != c->interest)) {
					c->interest = next;
					ctl(EPOLL_CTL_MOD, c->fd, next | oneshot, key);
				}
			}
		}
	}
	free(buf);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: echo-server PORT [--oneshot] [--threads N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2) usage();
	int port = atoi(argv[1]);
	if (port < 0 || port > 65535) {
		fprintf(stderr, "echo-server: bad port\n");
		return 2;
	}
	int threads = 1;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--oneshot") == 0) {
			oneshot = EPOLLONESHOT;
		} else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			threads = atoi(argv[++i]);
			if (threads < 1 || threads > 64) usage();
		} else {
			usage();
		}
	}
	/* Level-triggered, two threads could serve one connection at once. */
	if (threads > 1 && !oneshot) {
		fprintf(stderr, "echo-server: --threads above 1 needs --oneshot\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0) die("socket");
	int one = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
	if (listen(listener, 511) < 0) die("listen");
	socklen_t len = sizeof addr;
	if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) die("epoll_create1");
	ctl(EPOLL_CTL_ADD, listener, EPOLLIN | oneshot, LISTENER_KEY);
	/* A pipe or a terminal; epoll refuses /dev/null and regular files (EPERM): not watched then.
	 * Level-triggered in every mode: end of file stays readable, so it wakes every thread. */
	struct epoll_event in = { .events = EPOLLIN, .data.u64 = STDIN_KEY };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &in) < 0 && errno != EPERM) die("epoll_ctl stdin");
	printf("port %d\n", ntohs(addr.sin_port));
	fflush(stdout);

	/* The other threads block the stop signals, so they interrupt the main thread's wait; the
	 * process ends when main returns, whatever the others are waiting for. */
	sigset_t stops, old;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	for (int i = 1; i < threads; i++) {
		pthread_t t;
		if ((errno = pthread_create(&t, NULL, loop, NULL)) != 0) die("pthread_create");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	loop(NULL);
	return 0;
}
