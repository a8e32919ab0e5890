/** The options of the reactor's calls, and the checks every options argument gets. */
import type { BackendChoice } from './backend.js';
import { ReactorError } from './errors.js';
import type { Mode } from './flags.js';

/**
 * Checks an options argument: an object (not null, not an array) whose every own key is one of
 * `known`, so a misspelt option is EINVAL rather than silently a default. An option set to
 * undefined is absent.
 */
export function checkOptions(options: unknown, known: readonly string[], call: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ReactorError('EINVAL', `${call}'s options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ReactorError('EINVAL', `${call} has no option ${JSON.stringify(key)}: its options are ${known.join(', ')}`);
    }
  }
}

/** A boolean option: `fallback` when undefined, EINVAL unless a boolean. */
export function booleanOption(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ReactorError('EINVAL', `${name} must be true or false, got ${describeValue(value)}`);
  return value;
}

/** A value as a message shows it: String() for what has one, the type for the rest. */
export function describeValue(value: unknown): string {
  if (value === null || Array.isArray(value)) return value === null ? 'null' : 'an array';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  if (typeof value === 'function') return 'a function';
  return String(value);
}

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
  /** The mode `add` uses when its options name none (default DISPATCH), in every thread. */
  readonly mode?: Mode;
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
