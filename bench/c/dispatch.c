/*
 * W1 "dispatch churn" in plain C: the baseline bench/dispatch.ts compares evdispatch with.
 *
 * PAIRS AF_UNIX socketpairs, one byte written into each so the registered end stays readable
 * for ever; each registered end is in one epoll set with EPOLLONESHOT, and THREADS threads loop
 * epoll_wait(64) + one EPOLL_CTL_MOD re-arm per event, which is what evdispatch's epoll backend
 * asks of the kernel. After WARMUP seconds the counters and the process's CPU time are sampled,
 * and again SECONDS later; the difference is printed as one JSON line.
 *
 * usage: dispatch PAIRS THREADS WARMUP_SECONDS SECONDS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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
/* The same interest bits evdispatch's epoll backend sets for Interest.READABLE. */
#define INTEREST (EPOLLIN | EPOLLRDHUP | EPOLLONESHOT)

/* One thread's counters on their own cache line: the sampling thread reads them while they run. */
struct waiter {
	_Alignas(64) atomic_uint_fast64_t events;
	atomic_uint_fast64_t waits;
	atomic_uint_fast64_t ctls;
	pthread_t thread;
};

static int epfd;
static atomic_int stop;

static void die(const char *what)
{
	fprintf(stderr, "dispatch: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *run(void *arg)
{
	struct waiter *w = arg;
	struct epoll_event ev[BATCH];
	uint64_t events = 0, waits = 0, ctls = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int n = epoll_wait(epfd, ev, BATCH, 100);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		waits++;
		for (int i = 0; i < n; i++) {
			struct epoll_event re = { .events = INTEREST, .data = ev[i].data };
			if (epoll_ctl(epfd, EPOLL_CTL_MOD, (int)ev[i].data.u64, &re) < 0) die("epoll_ctl");
			ctls++;
		}
		events += (uint64_t)n;
		/* Published once per batch, like the TypeScript loop does: a relaxed store is a plain mov. */
		atomic_store_explicit(&w->events, events, memory_order_relaxed);
		atomic_store_explicit(&w->waits, waits, memory_order_relaxed);
		atomic_store_explicit(&w->ctls, ctls, memory_order_relaxed);
	}
	return NULL;
}

struct sample {
	uint64_t events, waits, ctls;
	double wall_ns, user_ns, sys_ns;
};

static double ns(struct timespec t)
{
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double tv_ns(struct timeval t)
{
	return (double)t.tv_sec * 1e9 + (double)t.tv_usec * 1e3;
}

static struct sample take(struct waiter *ws, int threads)
{
	struct sample s = { 0 };
	struct timespec now;
	struct rusage ru;
	for (int i = 0; i < threads; i++) {
		s.events += atomic_load_explicit(&ws[i].events, memory_order_relaxed);
		s.waits += atomic_load_explicit(&ws[i].waits, memory_order_relaxed);
		s.ctls += atomic_load_explicit(&ws[i].ctls, memory_order_relaxed);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* RUSAGE_SELF, the whole process: what process.cpuUsage() reports on the Node side. */
	getrusage(RUSAGE_SELF, &ru);
	s.wall_ns = ns(now);
	s.user_ns = tv_ns(ru.ru_utime);
	s.sys_ns = tv_ns(ru.ru_stime);
	return s;
}

static void sleep_seconds(double seconds)
{
	struct timespec t = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
	while (nanosleep(&t, &t) < 0 && errno == EINTR) {}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: dispatch PAIRS THREADS WARMUP_SECONDS SECONDS\n");
		return 2;
	}
	int pairs = atoi(argv[1]), threads = atoi(argv[2]);
	double warmup = atof(argv[3]), seconds = atof(argv[4]);
	if (pairs < 1 || threads < 1 || warmup < 0 || seconds <= 0) {
		fprintf(stderr, "dispatch: bad arguments\n");
		return 2;
	}

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) die("epoll_create1");
	for (int i = 0; i < pairs; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
		if (write(sv[1], "x", 1) != 1) die("write");
		struct epoll_event ev = { .events = INTEREST, .data.u64 = (uint64_t)sv[0] };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, sv[0], &ev) < 0) die("epoll_ctl add");
	}

	struct waiter *ws = aligned_alloc(64, sizeof *ws * (size_t)threads);
	if (ws == NULL) die("aligned_alloc");
	memset(ws, 0, sizeof *ws * (size_t)threads);
	for (int i = 0; i < threads; i++) {
		if ((errno = pthread_create(&ws[i].thread, NULL, run, &ws[i])) != 0) die("pthread_create");
	}

	sleep_seconds(warmup);
	struct sample a = take(ws, threads);
	sleep_seconds(seconds);
	struct sample b = take(ws, threads);
	atomic_store(&stop, 1);
	for (int i = 0; i < threads; i++) pthread_join(ws[i].thread, NULL);

	printf("{\"events\":%llu,\"waits\":%llu,\"ctls\":%llu,\"wallNs\":%.0f,\"userNs\":%.0f,\"sysNs\":%.0f}\n",
	       (unsigned long long)(b.events - a.events), (unsigned long long)(b.waits - a.waits),
	       (unsigned long long)(b.ctls - a.ctls), b.wall_ns - a.wall_ns, b.user_ns - a.user_ns,
	       b.sys_ns - a.sys_ns);
	return 0;
}
