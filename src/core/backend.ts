/** The contract every kernel queue answers to (docs/ARCHITECTURE.md, "The Backend contract"). */

/** Which kernel queue a backend drives. */
export type BackendKind = 'epoll' | 'kqueue' | 'iocp';

/** Which backend an `open` asks for: `auto` is the platform's default. */
export type BackendChoice = 'auto' | BackendKind;

/** A file descriptor, or a Windows SOCKET handle value. */
export type Fd = number;

/**
 * A registration's token, which the backend stores as the kernel's user data and hands back
 * with each event: a safe integer below 2^53 whose meaning only the core knows.
 */
export type Token = number;

/** Never a token: the user data a backend gives its own wake-ups. */
export const WAKE_TOKEN: Token = 0;

/** Preallocated output of `Backend.wait`: the i-th event is (tokens[i], ready[i]). */
export class RawEvents {
  readonly tokens: Float64Array;
  /** `Ready` bits (READABLE, WRITABLE, HANGUP, ERROR) as the kernel reported them. */
  readonly ready: Int32Array;

  constructor(readonly capacity: number) {
    this.tokens = new Float64Array(capacity);
    this.ready = new Int32Array(capacity);
  }
}

/**
 * Re-arms a thread has staged, for a backend to apply in one trip with its next poll (a kevent
 * changelist; the native helper's batch on epoll). Each slot stays REARMING in the core until
 * applied, so no deferred enable can land on an fd number that was closed and reused.
 */
export class Rearms {
  count = 0;
  readonly fds: Int32Array;
  readonly interests: Int32Array;
  readonly tokens: Float64Array;
  /** After `rearmAndPoll`: 0 for a re-arm applied, else the errno (or -1) it failed with. */
  readonly errors: Int32Array;

  constructor(readonly capacity: number) {
    this.fds = new Int32Array(capacity);
    this.interests = new Int32Array(capacity);
    this.tokens = new Float64Array(capacity);
    this.errors = new Int32Array(capacity);
  }

  /** Stages one re-arm; true when the batch is now full and must be applied. */
  push(fd: Fd, interest: number, token: Token): boolean {
    const i = this.count++;
    this.fds[i] = fd;
    this.interests[i] = interest;
    this.tokens[i] = token;
    return this.count === this.capacity;
  }
}

/** Applies each staged re-arm with `rearm`, for backends with no batched form. */
export function rearmEach(backend: Backend, rearms: Rearms): void {
  for (let i = 0; i < rearms.count; i++) {
    try {
      backend.rearm(rearms.fds[i]!, rearms.interests[i]!, rearms.tokens[i]!);
      rearms.errors[i] = 0;
    } catch (e) {
      rearms.errors[i] = (e as { errno?: number }).errno ?? -1;
    }
  }
}

/** A structured-cloneable description of a backend, for `attach` in another thread. */
export interface BackendHandle {
  readonly kind: BackendKind;
  readonly [field: string]: unknown;
}

/** What the core decides when it opens a backend. */
export interface BackendOptions {
  /** The most registrations alive at once. */
  readonly capacity: number;
  /** Whether batched re-arms may go through the native helper, where its prebuild exists. */
  readonly native: boolean;
  /**
   * The registration's index, from 0 to capacity - 1, for a backend that keeps a record per
   * registration (IOCP): the core says how a token names it, so the backend need not know.
   */
  readonly indexOf: (token: Token) => number;
}

/**
 * One kernel queue. It knows nothing of FORCEOS, threads or what a token means: every
 * registration is armed dispatch-once (disabled on delivery), and the core does the rest.
 * Failures are thrown as `ReactorError` with the errno name and the syscall.
 */
export interface Backend {
  readonly kind: BackendKind;
  /** Whether `add` can register edge-triggered (EPOLLET, EV_CLEAR); without, EDGE is DISPATCH. */
  readonly edges: boolean;
  /**
   * Registers fd, armed, dispatch-once; or, with `edge`, edge-triggered for both directions
   * whatever the interest, never to be re-armed (the core filters and holds the events).
   */
  add(fd: Fd, interest: number, token: Token, edge: boolean): void;
  /** Re-arms fd after a delivery, possibly with a new interest. */
  rearm(fd: Fd, interest: number, token: Token): void;
  /** Deletes fd's registration; succeeds if the fd was already closed (its kernel entry is gone). */
  delete(fd: Fd, token: Token): void;
  /**
   * Waits up to timeoutMs (-1: forever) and fills `out` with at most `max` events. Its own
   * wake-ups are consumed here and not reported, so it may return 0 before the timeout.
   */
  wait(out: RawEvents, max: number, timeoutMs: number): number;
  /**
   * Applies the staged re-arms (filling `rearms.errors`), then takes what is ready without
   * blocking into `out`, like `wait` with timeout 0: in one kernel trip where the backend can.
   */
  rearmAndPoll(rearms: Rearms, out: RawEvents, max: number): number;
  /** Makes one blocked `wait` return (at least one, if any is blocked). */
  wake(): void;
  /** Releases the kernel objects. Called once, when no thread uses them any more. */
  close(): void;
  /** A handle from which `attach` in another thread makes a backend over the same queue. */
  share(): BackendHandle;
  /**
   * An fd that polls readable while `wait` would return something (epoll and kqueue fds
   * do), for watching from Node's own event loop; null where there is none (IOCP).
   */
  pollFd(): Fd | null;
}
