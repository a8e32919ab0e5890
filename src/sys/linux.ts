/** koffi bindings to epoll and eventfd (Linux). */
import { onFirstUse } from './once.js';
import { platform } from './platform.js';
import { libc } from './posix.js';

/** The epoll and eventfd calls. */
export interface EpollCalls {
  readonly epoll_create1: (flags: number) => number;
  readonly epoll_ctl: (epfd: number, op: number, fd: number, event: Uint32Array) => number;
  readonly epoll_wait: (epfd: number, events: Uint32Array, maxevents: number, timeout: number) => number;
  readonly eventfd: (initval: number, flags: number) => number;
}

/** The epoll calls, bound on first use. */
export const epollCalls: () => EpollCalls = onFirstUse(() => {
  const lib = libc();
  return {
    epoll_create1: lib.func('int epoll_create1(int flags)') as EpollCalls['epoll_create1'],
    epoll_ctl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as EpollCalls['epoll_ctl'],
    epoll_wait: lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as EpollCalls['epoll_wait'],
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)') as EpollCalls['eventfd'],
  };
});

// <sys/epoll.h>
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLONESHOT = 1 << 30;
export const EPOLLET = 1 << 31;

/**
 * struct epoll_event { uint32_t events; epoll_data_t data; } is __EPOLL_PACKED on x86-64 (12
 * bytes, data at 4); i386 aligns uint64_t to 4, the same; every other ABI pads it to 16 with
 * data at 8. Both are multiples of 4, so a Uint32Array reads it without DataView.
 */
const packed = platform.arch === 'x64' || platform.arch === 'ia32';
export const EPOLL_EVENT_SIZE = packed ? 12 : 16;
export const EPOLL_EVENT_DATA_OFFSET = packed ? 4 : 8;

// <sys/eventfd.h>
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
