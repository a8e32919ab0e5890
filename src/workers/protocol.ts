/** What the pool and its threads share: the handler module's shape, and the messages between them. */
import type { ReactorHandle } from '../core/memory.js';
import type { Reactor } from '../reactor.js';

/** What a handler module's `setup` (or `handle`) gets, in its own thread. */
export interface WorkerContext<D = unknown> {
  /** The reactor, attached in this thread. */
  readonly reactor: Reactor;
  /** This thread's index, 0 to `threads - 1`. */
  readonly index: number;
  /** This thread's `worker_threads` id. */
  readonly threadId: number;
  /** How many threads the pool runs. */
  readonly threads: number;
  /** The pool's `data` option, structured-cloned into this thread. */
  readonly data: D;
}

/** Handles one delivered event: `ready` is its `Ready` bits. */
export type EventHandler = (token: number, ready: number) => void;

/**
 * The shape of a handler module: it exports `setup`, called once per thread, returning that
 * thread's handler; or `handle`, called for every event with the thread's context.
 */
export interface HandlerModule<D = unknown> {
  setup?(context: WorkerContext<D>): EventHandler | Promise<EventHandler>;
  handle?(context: WorkerContext<D>, token: number, ready: number): void;
}

/** Values of ThreadData.start[0]: waiting, go, give up (a setup failed). */
export const WAITING = 0;
export const START = 1;
export const ABORT = 2;
/** An error as a thread posts it to the pool. */
export interface PostedError {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  readonly code: unknown;
}

/** What the pool hands each thread. */
export interface ThreadData {
  readonly reactor: ReactorHandle;
  readonly moduleUrl: string;
  readonly data: unknown;
  readonly index: number;
  readonly threads: number;
  readonly batch: number;
  readonly batchRearms: boolean;
  /** One counter per thread, written by its thread after each batch, read by the pool. */
  readonly eventCounts: BigInt64Array;
  /** Set by the pool once every thread is set up: START, or ABORT when one failed. */
  readonly start: Int32Array;
}

/** What a thread tells the pool; an error without a token is a failed setup. */
export type ThreadMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'error'; readonly token: number | undefined; readonly ready: number | undefined; readonly error: PostedError }
  | { readonly kind: 'done'; readonly events: number };

