/** Bindings to epoll (Linux): EPOLLONESHOT registrations re-armed with EPOLL_CTL_MOD, eventfd wake-ups. */
import {
  rearmEach,
  WAKE_TOKEN,
  type Backend,
  type BackendHandle,
  type BackendOptions,
  type Fd,
  type RawEvents,
  type Rearms,
  type Token,
} from '../core/backend.js';
import { Interest, Ready } from '../core/flags.js';
import { ReactorError } from '../core/errors.js';
import { Errno, errno, files, syscallError, type FileCalls } from '../sys/posix.js';
import { nativeHelper, type Native } from '../sys/native.js';
import { changeFailure, isFd } from './common.js';
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLET,
  EPOLLONESHOT,
  EPOLLOUT,
  EPOLLPRI,
  EPOLLRDHUP,
  epollCalls,
  type EpollCalls,
} from '../sys/linux.js';

/** struct epoll_event in 32-bit words. */
const STRIDE = EPOLL_EVENT_SIZE / 4;
const DATA_LO = EPOLL_EVENT_DATA_OFFSET / 4;
const DATA_HI = DATA_LO + 1;
const TWO_32 = 2 ** 32;

export interface EpollHandle extends BackendHandle {
  readonly kind: 'epoll';
  readonly epfd: number;
  readonly wakefd: number;
  /** Whether batched re-arms go through the native helper, in every thread alike. */
  readonly native: boolean;
}

/** Interest → epoll events: always dispatch-once; RDHUP so a peer's shutdown reads as hang-up. */
function epollEvents(interest: number): number {
  let events = EPOLLONESHOT;
  if (interest & Interest.READABLE) events |= EPOLLIN | EPOLLRDHUP;
  if (interest & Interest.WRITABLE) events |= EPOLLOUT;
  return events;
}

/** epollEvents for every interest (1 to 3), so a re-arm looks it up. */
const EVENTS_OF_INTEREST = [0, epollEvents(1), epollEvents(2), epollEvents(3)];

/** An EDGE registration: both directions, edge-triggered, never re-armed; the core filters. */
const EDGE_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

/** epoll events → Ready bits. */
function readyOf(events: number): number {
  let ready = 0;
  if (events & (EPOLLIN | EPOLLPRI)) ready |= Ready.READABLE;
  if (events & EPOLLOUT) ready |= Ready.WRITABLE;
  if (events & (EPOLLHUP | EPOLLRDHUP)) ready |= Ready.HANGUP;
  if (events & EPOLLERR) ready |= Ready.ERROR;
  return ready;
}

export class EpollBackend implements Backend {
  readonly kind = 'epoll';
  readonly edges = true;
  /** Scratch struct epoll_event for epoll_ctl. */
  private readonly ctlEvent = new Uint32Array(4);
  private events = new Uint32Array(0);
  private readonly counter = new BigUint64Array(1);
  private readonly one = new BigUint64Array([1n]);
  private readonly sys: EpollCalls = epollCalls();
  private readonly files: FileCalls = files();

  /** Opens an epoll instance; with `native`, batched re-arms go through the native helper if present. */
  static open(options: BackendOptions): EpollBackend {
    const { epoll_create1, eventfd } = epollCalls();
    const epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw syscallError('epoll_create1', errno(), 'could not create an epoll instance');
    const wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd < 0) {
      const e = errno();
      files().close(epfd);
      throw syscallError('eventfd', e, 'could not create the wake-up eventfd');
    }
    const backend = new EpollBackend(epfd, wakefd, options.native ? nativeHelper() : undefined);
    try {
      backend.ctl(EPOLL_CTL_ADD, wakefd, EPOLLIN | EPOLLONESHOT, WAKE_TOKEN);
    } catch (e) {
      backend.close();
      throw e;
    }
    return backend;
  }

  static attach(handle: BackendHandle): EpollBackend {
    const { epfd, wakefd } = handle;
    if (!isFd(epfd) || !isFd(wakefd) || typeof handle['native'] !== 'boolean') {
      throw new ReactorError('EINVAL', 'not an epoll handle: pass what share() returned');
    }
    return new EpollBackend(epfd, wakefd, handle['native'] ? nativeHelper() : undefined);
  }

  private constructor(
    private readonly epfd: number,
    private readonly wakefd: number,
    /** The native helper, when this reactor uses it. */
    private readonly fast: Native | undefined,
  ) {}

  add(fd: Fd, interest: number, token: Token, edge: boolean): void {
    this.ctl(EPOLL_CTL_ADD, fd, edge ? EDGE_EVENTS : EVENTS_OF_INTEREST[interest]!, token);
  }

  rearm(fd: Fd, interest: number, token: Token): void {
    this.ctl(EPOLL_CTL_MOD, fd, EVENTS_OF_INTEREST[interest]!, token);
  }

  delete(fd: Fd, token: Token): void {
    try {
      this.ctl(EPOLL_CTL_DEL, fd, 0, token);
    } catch (e) {
      // The fd was closed (EBADF), or closed and its number reused by a file not in this epoll
      // set (ENOENT): either way the kernel entry is already gone.
      if (!(e instanceof ReactorError) || (e.code !== 'EBADF' && e.code !== 'ENOENT')) throw e;
    }
  }

  wait(out: RawEvents, max: number, timeoutMs: number): number {
    const n = this.sys.epoll_wait(this.epfd, this.eventBuffer(max), max, timeoutMs);
    if (n < 0) {
      const e = errno();
      if (e === Errno.EINTR) return 0;
      throw syscallError('epoll_wait', e, 'waiting on the epoll instance failed');
    }
    return this.decode(n, out);
  }

  /** With the native helper, every re-arm and the poll in one FFI call; else one call each. */
  rearmAndPoll(rearms: Rearms, out: RawEvents, max: number): number {
    const fast = this.fast;
    if (fast === undefined) {
      rearmEach(this, rearms);
      return this.wait(out, max, 0);
    }
    const buf = this.eventBuffer(max);
    const n = fast.epollRearmPoll(this.epfd, rearms.count, rearms.fds, rearms.interests, rearms.tokens, rearms.errors, buf, max);
    if (n < 0) throw syscallError('epoll_wait', -n, 'waiting on the epoll instance failed');
    return this.decode(n, out);
  }

  /** The kernel's event buffer, grown to hold max events. */
  private eventBuffer(max: number): Uint32Array {
    if (this.events.length < max * STRIDE) this.events = new Uint32Array(max * STRIDE);
    return this.events;
  }

  /** Decodes n struct epoll_event into `out`, consuming the wake-up eventfd's. */
  private decode(n: number, out: RawEvents): number {
    const buf = this.events;
    let count = 0;
    for (let i = 0, at = 0; i < n; i++, at += STRIDE) {
      const token = buf[at + DATA_HI]! * TWO_32 + buf[at + DATA_LO]!;
      if (token === WAKE_TOKEN) {
        this.consumeWake();
        continue;
      }
      out.tokens[count] = token;
      out.ready[count] = readyOf(buf[at]!);
      count++;
    }
    return count;
  }

  wake(): void {
    if (this.files.write(this.wakefd, this.one, 8) < 0) {
      const e = errno();
      // EAGAIN: the counter is near 2^64, so a wake-up is pending anyway.
      if (e !== Errno.EAGAIN) throw syscallError('write', e, 'could not signal the wake-up eventfd');
    }
  }

  close(): void {
    this.files.close(this.wakefd);
    this.files.close(this.epfd);
  }

  pollFd(): number {
    return this.epfd;
  }

  share(): EpollHandle {
    return { kind: 'epoll', epfd: this.epfd, wakefd: this.wakefd, native: this.fast !== undefined };
  }

  /** Resets the eventfd and re-arms it: EPOLLONESHOT lets exactly one waiter see each wake-up. */
  private consumeWake(): void {
    this.files.read(this.wakefd, this.counter, 8);
    this.ctl(EPOLL_CTL_MOD, this.wakefd, EPOLLIN | EPOLLONESHOT, WAKE_TOKEN);
  }

  private ctl(op: number, fd: number, events: number, token: Token): void {
    const ev = this.ctlEvent;
    ev[0] = events;
    ev[DATA_LO] = token >>> 0;
    ev[DATA_HI] = (token / TWO_32) >>> 0;
    if (this.sys.epoll_ctl(this.epfd, op, fd, ev) === 0) return;
    const e = errno();
    const change = op === EPOLL_CTL_ADD ? 'register' : op === EPOLL_CTL_MOD ? 're-arm' : 'delete';
    throw syscallError('epoll_ctl', e, changeFailure(change, fd, e, EPOLL_FAILURES));
  }
}

/** What epoll_ctl's own errnos mean for a registration. */
const EPOLL_FAILURES: Readonly<Record<number, string>> = {
  [Errno.EPERM!]: 'epoll does not support this kind of file (a regular file or directory?)',
  [Errno.EEXIST!]: 'the kernel already has it in this epoll set',
};
