/** The contract between a reactor and an event loop that delivers its events (src/loop). */
import type { Events } from './events.js';

/** The little of a reactor the loop integration needs. */
export interface LoopSource {
  /** Takes what is ready now (a wait with timeout 0), applying the re-arms staged before. */
  poll(events: Events): number;
  /** Applies the re-arms this thread staged (batchRearms), before the loop goes idle. */
  flush(): void;
  /** An fd that polls readable when `poll` would find something, or null (IOCP). */
  readonly pollFd: number | null;
  /** Milliseconds until the earliest deadline, or -1 when none is set. */
  untilDeadline(): number;
  /**
   * Counts a watcher in: as a sleeper, so forces, notifications and new deadlines from other
   * threads signal the poll fd, and as a user, so the kernel objects outlive the watch.
   * False if the reactor is closed.
   */
  attachWatcher(): boolean;
  detachWatcher(): void;
  /** Whether the last `poll` returned because of a `notify`. */
  readonly notified: boolean;
  readonly closed: boolean;
}

/** Stops a watch; idempotent. */
export type StopWatching = () => void;

/** An event loop that polls a reactor without blocking: Node's, in src/loop. */
export interface LoopDriver {
  /** Calls onEvents(events, n) on the loop whenever the reactor delivers, until stopped or closed. */
  watch(source: LoopSource, events: Events, onEvents: (events: Events, n: number) => void): StopWatching;
  /** Resolves with the count delivered into `events`, or 0 on timeout, `notify` or close. */
  waitAsync(source: LoopSource, events: Events, timeoutMs: number): Promise<number>;
}
