/** The public flag sets and their strict validation: an unknown bit is always EINVAL. */
import { ReactorError } from './errors.js';

/** What a registration waits for. Combine with `|`. */
export const Interest = {
  /** Data to read, a connection to accept, or end of stream. */
  READABLE: 1,
  /** Room to write, or a connect that completed. */
  WRITABLE: 2,
  /** Both of the above. */
  BOTH: 3,
} as const;

/** What a delivered event reports, per token. Combine with `|`. */
export const Ready = {
  READABLE: 1,
  WRITABLE: 2,
  /** The peer closed or shut down its side. */
  HANGUP: 4,
  /** The socket has a pending error (read it with SO_ERROR). */
  ERROR: 8,
  /** Delivered because of `forceOneShot` (FORCEOS), whatever the fd's readiness. */
  FORCED: 16,
  /** Delivered because the registration's deadline passed; always with `FORCED`. */
  TIMEOUT: 32,
  /**
   * The thread that held this event died before re-arming it (`threadExited`): it is yours now,
   * whatever the fd's readiness. Tear the connection down, or resume it.
   */
  ABANDONED: 64,
} as const;

/** How a registration behaves after a delivery. */
export const Mode = {
  /** Disabled on delivery; the handler re-arms it with `rearm` (EV_DISPATCH, EPOLLONESHOT). */
  DISPATCH: 'dispatch',
  /** Freed on delivery; the token is dead once delivered (EV_ONESHOT). */
  ONESHOT: 'oneshot',
  /**
   * Dispatch-once without a system call per event: the kernel reports edges (EPOLLET, EV_CLEAR)
   * for both directions, and the reactor keeps one handler per event, remembering what arrives
   * while it is held and delivering it right after `rearm`, which makes no system call. A
   * handler reads until the call would block (or a read comes up short, unless the delivery
   * says HANGUP: data and the peer's shutdown may come as one edge, and the end of stream is
   * still to read) before it re-arms, or re-arms with what is still ready
   * (`rearm(token, interest, Ready.READABLE)`). IOCP has no edges: there EDGE behaves as DISPATCH.
   */
  EDGE: 'edge',
} as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/**
 * Checks an interest argument: a non-empty combination of READABLE and WRITABLE. Three strict
 * comparisons on the hot path (rearm): anything else, of any type or size, is EINVAL.
 */
export function checkInterest(interest: unknown): number {
  if (interest === Interest.READABLE || interest === Interest.WRITABLE || interest === Interest.BOTH) return interest;
  throw badInterest(interest);
}

function badInterest(interest: unknown): ReactorError {
  if (interest === 0) return new ReactorError('EINVAL', 'interest is empty: pass Interest.READABLE, Interest.WRITABLE or both');
  return new ReactorError('EINVAL', `interest must be Interest.READABLE, Interest.WRITABLE or both (1, 2 or 3), got ${String(interest)}`);
}

/** Checks a mode argument. */
export function checkMode(mode: unknown): Mode {
  if (mode === Mode.DISPATCH || mode === Mode.ONESHOT || mode === Mode.EDGE) return mode;
  throw new ReactorError('EINVAL', `mode must be Mode.DISPATCH, Mode.ONESHOT or Mode.EDGE, got ${String(mode)}`);
}

/** Checks a file descriptor (or a Windows SOCKET): a non-negative 32-bit integer. */
export function checkFd(fd: unknown): number {
  if (typeof fd !== 'number' || !Number.isInteger(fd)) {
    throw new ReactorError('EBADF', `fd must be a non-negative integer file descriptor, got ${String(fd)}`);
  }
  if (fd < 0 || fd > 0x7fffffff) {
    throw new ReactorError('EBADF', `fd ${fd} is out of range: pass an open file descriptor`);
  }
  return fd;
}

/** Checks a timeout in milliseconds: -1 (or Infinity) waits forever, 0 polls. */
export function checkTimeout(timeoutMs: unknown): number {
  if (timeoutMs === Infinity || timeoutMs === -1) return -1;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0x7fffffff) {
    throw new ReactorError('EINVAL', `timeout must be -1, Infinity or an integer number of milliseconds from 0 to 2^31-1, got ${String(timeoutMs)}`);
  }
  return timeoutMs;
}

/** Checks readiness a handler says is still there: Ready bits READABLE, WRITABLE, HANGUP, ERROR. */
export function checkReady(ready: unknown): number {
  if (ready === 0) return 0;
  if (typeof ready !== 'number' || !Number.isInteger(ready) || ready < 0 || ready > 15) {
    throw new ReactorError('EINVAL', `stillReady must be Ready bits READABLE, WRITABLE, HANGUP or ERROR, or 0; got ${String(ready)}`);
  }
  return ready;
}
