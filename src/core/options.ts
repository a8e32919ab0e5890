/** The options of the reactor's calls. */
import type { BackendChoice } from './backend.js';
import type { Mode } from './flags.js';

/** Options of `Reactor.open`. */
export interface OpenOptions {
  /** The kernel queue: `auto` (the platform's own, the default), `epoll`, `kqueue` or `iocp`. */
  readonly backend?: BackendChoice;
  /** The most registrations alive at once (default 65536, at most 2^22). */
  readonly capacity?: number;
  /**
   * Bytes of shared state per registration (default 0, at most 65536), visible from every
   * thread: what a handler leaves there (a half-read request, output a partial send left) is
   * there for the next handler of that registration, in whatever thread it runs.
   */
  readonly stateBytes?: number;
  /** Batch this thread's re-arms (default true): see `AttachOptions.batchRearms`. */
  readonly batchRearms?: boolean;
  /**
   * Apply batched re-arms through the native helper where its prebuild for this platform
   * exists (default true; also off when EVDISPATCH_NATIVE=0). Every thread of the reactor
   * follows this choice.
   */
  readonly native?: boolean;
}

/** Options of `Reactor.attach`: how this thread uses the shared reactor. */
export interface AttachOptions {
  /**
   * Stage this thread's re-arms and apply them together with its next poll, in one kernel trip
   * where the backend can (kqueue's changelist; epoll with the native helper), instead of one
   * call per re-arm (default true). A staged re-arm is applied by this thread's next `wait`,
   * `flush`, `delete` or `close`, or else as soon as the thread returns to its event loop (a
   * microtask), and until then its registration is neither armed nor deletable by other
   * threads. A re-arm that fails when applied comes back from `wait` as a delivery flagged
   * ERROR. False applies every re-arm in `rearm` itself, and throws its kernel errors there.
   */
  readonly batchRearms?: boolean;
}

/** Options of `Reactor.add`. */
export interface AddOptions {
  /** DISPATCH (default): disabled on delivery until `rearm`. ONESHOT: freed on delivery. */
  readonly mode?: Mode;
  /**
   * The registration's first shared state (at most `stateBytes`; the rest is zeroed), written
   * before it is armed: whichever thread gets its first event finds it there.
   */
  readonly state?: Uint8Array;
}
