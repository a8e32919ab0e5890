/*
 * evdispatch's optional native fast path, loaded through koffi when a prebuild for the running
 * platform exists (prebuilds/<platform>-<arch>/). Not a Node addon: plain C functions that do in
 * one call what would otherwise take one FFI crossing each. The TypeScript backends stay the
 * reference and the fallback; these functions must behave exactly as the loops they replace.
 */
#include <errno.h>
#include <stdint.h>

#if defined(_WIN32)
#define EVD_EXPORT __declspec(dllexport)
#else
#define EVD_EXPORT __attribute__((visibility("default")))
#endif

/* The Interest bits of src/core/flags.ts. */
#define EVD_READABLE 1
#define EVD_WRITABLE 2

/* The version of this interface: the loader refuses a prebuild with another. */
EVD_EXPORT int evd_version(void) { return 1; }

#if defined(__linux__)
#include <sys/epoll.h>

/* As src/backends/epoll.ts: always dispatch-once; RDHUP so a peer's shutdown reads as hang-up. */
static uint32_t epoll_events_of(int32_t interest) {
  uint32_t events = EPOLLONESHOT;
  if (interest & EVD_READABLE) events |= EPOLLIN | EPOLLRDHUP;
  if (interest & EVD_WRITABLE) events |= EPOLLOUT;
  return events;
}

/*
 * Re-arms n registrations (EPOLL_CTL_MOD with each one's events and key), then takes what is
 * ready without blocking. errors[i] is 0, or the errno re-arm i failed with. keys are the core's
 * tokens, safe integers carried as doubles. Returns epoll_wait's count, or -errno.
 */
EVD_EXPORT int evd_epoll_rearm_poll(int epfd, int n, const int32_t *fds, const int32_t *interests, const double *keys,
                                    int32_t *errors, struct epoll_event *out, int max) {
  for (int i = 0; i < n; i++) {
    struct epoll_event ev;
    ev.events = epoll_events_of(interests[i]);
    ev.data.u64 = (uint64_t)keys[i];
    errors[i] = epoll_ctl(epfd, EPOLL_CTL_MOD, fds[i], &ev) == 0 ? 0 : errno;
  }
  int got;
  do {
    got = epoll_wait(epfd, out, max, 0);
  } while (got < 0 && errno == EINTR);
  return got < 0 ? -errno : got;
}
#endif
