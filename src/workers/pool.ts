/**
 * runWorkers: N worker threads waiting on one reactor, each running a handler module, with a
 * graceful shutdown and every handler error reported.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ReactorError } from '../core/errors.js';
import type { ReactorHandle } from '../core/memory.js';
import { booleanOption, checkOptions, describeValue } from '../core/options.js';
import { Reactor } from '../reactor.js';
import { ABORT, START, type PostedError, type ThreadData, type ThreadMessage } from './protocol.js';

export type { EventHandler, HandlerModule, WorkerContext } from './protocol.js';

/** Options of `runWorkers`. */
export interface RunWorkersOptions<D = unknown> {
  /** The reactor the threads wait on: a Reactor of this thread, or a handle from `share()`. */
  readonly reactor: Reactor | ReactorHandle;
  /** How many threads (1 to 256). */
  readonly threads: number;
  /** The handler module: a file URL, or a path (a relative path resolves from the current directory). */
  readonly handler: URL | string;
  /** Passed to every thread's context, structured-cloned (SharedArrayBuffers are shared). */
  readonly data?: D;
  /** Events claimed per wait, per thread (default 32): larger saves calls, smaller spreads load. */
  readonly batch?: number;
  /**
   * Whether each thread batches its re-arms (AttachOptions.batchRearms: applied with its next
   * wait, through the native helper where there is one). Default true: pool threads always
   * wait again, and apply what they staged when they exit.
   */
  readonly batchRearms?: boolean;
  /**
   * Called, in this thread, for each error a handler throws; the threads keep running. Without
   * it the first error is fatal: the pool closes and `done` rejects with it.
   */
  readonly onError?: (error: HandlerError) => void;
  /**
   * Whether a thread that dies (throws out of its loop, exits, is terminated) is replaced by a
   * new one at its index (default true). Either way the events it held are handed to the other
   * threads, flagged ABANDONED (`threadExited`), and the death is in the summary.
   */
  readonly restart?: boolean;
}

/** A thread that died while the pool ran. */
export interface ThreadDeath {
  readonly index: number;
  readonly threadId: number;
  /** What ended it: its uncaught error, or an Error saying how it exited. */
  readonly error: Error;
  /** Events it held, handed to the other threads flagged ABANDONED. */
  readonly handedOn: number;
  /** The threadId of the thread that replaced it, if one did. */
  readonly replacedBy: number | undefined;
}

/** How the thread at one index did (with the threads that replaced it, if any died). */
export interface ThreadSummary {
  readonly index: number;
  /** The last thread at this index. */
  readonly threadId: number;
  /** Events delivered to its handler. */
  readonly events: number;
  /** Errors its handler threw. */
  readonly errors: number;
}

/** What `done` resolves with once every thread has exited. */
export interface WorkersSummary {
  /** Events delivered to handlers, all threads. */
  readonly events: number;
  readonly threads: readonly ThreadSummary[];
  /** The first errors handlers threw (at most 100; `threads[i].errors` counts them all). */
  readonly errors: readonly HandlerError[];
  /** Threads that died while the pool ran. */
  readonly deaths: readonly ThreadDeath[];
}

/** A running pool. */
export interface Workers {
  /** Resolves once every thread has exited; rejects with the first error if it was fatal. */
  readonly done: Promise<WorkersSummary>;
  /** The `threadId` of each thread, by index (a replacement's, once one has started). */
  readonly threadIds: readonly number[];
  /** Events delivered to handlers so far, all threads (updated after each batch). */
  events(): number;
  /** Closes the reactor, which wakes every thread; each finishes its batch and exits. Returns `done`. */
  close(): Promise<WorkersSummary>;
}

/** An error a handler module threw, with where it happened; the original is its `cause`. */
export class HandlerError extends Error {
  constructor(
    /** The thread's index in the pool. */
    readonly index: number,
    readonly threadId: number,
    /** The token being handled; undefined when `setup` (or the thread itself) failed. */
    readonly token: number | undefined,
    /** The Ready bits of that delivery. */
    readonly ready: number | undefined,
    cause: Error,
  ) {
    const where = token === undefined ? 'outside a handler' : `handling token ${token} (ready ${ready})`;
    super(`thread ${index} (threadId ${threadId}) failed ${where}: ${cause.message}`, { cause });
    this.name = 'HandlerError';
  }
}

const MAX_THREADS = 256;
const KEPT_ERRORS = 100;
const THREAD = new URL('./thread.js', import.meta.url);

/**
 * Starts `threads` worker threads on one reactor. Each imports the handler module, calls its
 * `setup` once, then waits and calls the handler for every delivered event. The promise
 * resolves once every thread is set up; if a `setup` fails, the pool closes and it rejects.
 *
 * The handler owns each event it is given, as with `wait`: it must `rearm` or `delete` the
 * token itself; the pool never does, so a handler that throws leaves its registration held.
 * `close()` closes the reactor: a handler still running finishes, and an `ECLOSED` it then
 * meets (from `rearm`, say) is not an error.
 *
 * @example
 * // handler.js, imported by each thread:
 * export function setup({ reactor, index }) {
 *   const buf = new Uint8Array(65536);
 *   return (token, ready) => {
 *     // ...read, write; then hand the event back (or reactor.delete(token) and close):
 *     reactor.rearm(token);
 *   };
 * }
 * // main.js:
 * const workers = await runWorkers({ reactor, threads: 4, handler: new URL('./handler.js', import.meta.url) });
 * process.once('SIGINT', async () => console.log(await workers.close()));
 */
export async function runWorkers<D = unknown>(options: RunWorkersOptions<D>): Promise<Workers> {
  checkOptions(options, RUN_WORKERS_OPTIONS, 'runWorkers');
  const { threads, batch = 32, onError } = options;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new ReactorError('EINVAL', `threads must be an integer from 1 to ${MAX_THREADS}, got ${describeValue(threads)}`);
  }
  if (!Number.isInteger(batch) || batch < 1 || batch > 65536) {
    throw new ReactorError('EINVAL', `batch must be an integer from 1 to 65536, got ${describeValue(batch)}`);
  }
  const batchRearms = booleanOption(options.batchRearms, 'batchRearms', true);
  const restart = booleanOption(options.restart, 'restart', true);
  if (onError !== undefined && typeof onError !== 'function') {
    throw new ReactorError('EINVAL', `onError must be a function (error) => void, got ${describeValue(onError)}`);
  }
  const moduleUrl = moduleHref(options.handler);
  const reactor = options.reactor instanceof Reactor ? options.reactor : Reactor.attach(options.reactor);
  const handle = reactor.share();
  const eventCounts = new BigInt64Array(new SharedArrayBuffer(8 * threads));
  const start = new Int32Array(new SharedArrayBuffer(4));

  const errors: HandlerError[] = [];
  const errorCounts = new Array<number>(threads).fill(0);
  const deaths: ThreadDeath[] = [];
  /** Per index, the events of the threads there that are gone. */
  const earlier = new Array<number>(threads).fill(0);
  let fatal: HandlerError | undefined;
  let onFatal: () => void = () => {};
  const failed = new Promise<false>((resolve) => (onFatal = () => resolve(false)));
  const record = (error: HandlerError): void => {
    errorCounts[error.index]! += 1;
    if (errors.length < KEPT_ERRORS) errors.push(error);
  };
  /** A fatal error (a failed setup, or a handler's error without onError) closes the pool. */
  const report = (error: HandlerError, fatalError: boolean): void => {
    record(error);
    if (onError === undefined || fatalError) {
      fatal ??= error;
      reactor.close();
      onFatal();
    } else {
      onError(error);
    }
  };

  const go = (value: number): void => {
    Atomics.store(start, 0, value);
    Atomics.notify(start, 0);
  };
  const spawn = (index: number): Worker => {
    const data: ThreadData = { reactor: handle, moduleUrl, data: options.data, index, threads, batch, batchRearms, eventCounts, start };
    return new Worker(THREAD, { workerData: data });
  };
  const workers: Worker[] = [];
  try {
    for (let index = 0; index < threads; index++) workers.push(spawn(index));
  } catch (e) {
    go(ABORT); // let the threads already started leave
    if (e instanceof Error && e.name === 'DataCloneError') {
      throw new ReactorError('EINVAL', `data must be structured-cloneable (no functions or symbols): ${e.message}`);
    }
    throw e;
  }
  const threadIds = workers.map((w) => w.threadId);
  const first = workers.map((worker, index) => follow(worker, index, report));

  /** The threads at one index, one after another: each that dies is replaced while the pool runs. */
  const line = async (index: number): Promise<number> => {
    let followed = first[index]!;
    for (;;) {
      const end = await followed.exited;
      if (end.died === undefined) return earlier[index]! + end.events;
      const threadId = threadIds[index]!;
      earlier[index]! += Number(Atomics.load(eventCounts, index));
      Atomics.store(eventCounts, index, 0n);
      const handedOn = reactor.closed ? 0 : reactor.threadExited(threadId);
      const replace = restart && !reactor.closed && fatal === undefined;
      const next = replace ? spawn(index) : undefined;
      deaths.push({ index, threadId, error: end.died, handedOn, replacedBy: next?.threadId });
      // A death is never fatal: what the thread held is handed on, and the pool goes on.
      const error = new HandlerError(index, threadId, undefined, undefined, end.died);
      record(error);
      onError?.(error);
      if (next === undefined) return earlier[index]!;
      threadIds[index] = next.threadId;
      followed = follow(next, index, report);
    }
  };
  const exited = Promise.all(threadIds.map((_, index) => line(index)));

  const done = exited.then((events): WorkersSummary => {
    if (fatal !== undefined) throw fatal;
    const perThread = events.map((n, index) => ({ index, threadId: threadIds[index]!, events: n, errors: errorCounts[index]! }));
    return { events: perThread.reduce((sum, t) => sum + t.events, 0), threads: perThread, errors, deaths };
  });

  const ready = await Promise.race([Promise.all(first.map((s) => s.ready)).then(() => true), failed]);
  // No thread handles an event before every one is set up: a setup failure is this promise's
  // rejection, and any later error is `done`'s.
  go(ready ? START : ABORT);
  if (!ready) {
    done.catch(() => {}); // the same error, thrown below
    await exited;
    throw fatal!;
  }
  return {
    done,
    threadIds,
    events: () => eventCounts.reduce((sum, n, index) => sum + Number(n) + earlier[index]!, 0),
    close: () => {
      reactor.close();
      return done;
    },
  };
}

/** A handler option as the URL string a thread imports: EINVAL unless a file URL or path, ENOENT if no file is there. */
function moduleHref(handler: URL | string): string {
  const path = handlerPath(handler);
  if (path === undefined) {
    throw new ReactorError('EINVAL', `handler must be a file URL or a path to a module, got ${describeValue(handler)}`);
  }
  if (!existsSync(path)) throw new ReactorError('ENOENT', `handler ${String(handler)} names no file`);
  if (handler instanceof URL) return handler.href;
  return handler.startsWith('file:') ? handler : pathToFileURL(path).href;
}

/** How a thread ended: with its event count, or dead (no `done` message), with what killed it. */
interface ThreadEnd {
  readonly events: number;
  readonly died: Error | undefined;
}

/** The file a handler option names, or undefined if it is neither a file URL nor a path. */
function handlerPath(handler: unknown): string | undefined {
  if (typeof handler === 'string' && handler !== '' && !handler.startsWith('file:')) return resolve(handler);
  if (!(handler instanceof URL) && typeof handler !== 'string') return undefined;
  try {
    return fileURLToPath(handler); // throws for any other URL, or a malformed one
  } catch {
    return undefined;
  }
}

const RUN_WORKERS_OPTIONS: readonly (keyof RunWorkersOptions)[] = ['reactor', 'threads', 'handler', 'data', 'batch', 'batchRearms', 'onError', 'restart'];

/**
 * Follows one thread's messages: `ready` once it is set up, `exited` once it has exited. Errors
 * go to `report`: a failed setup is fatal; a handler's error is not. A thread that exits before
 * it is set up has failed its setup; one that dies later ends `exited` with `died`.
 */
function follow(worker: Worker, index: number, report: (error: HandlerError, fatal: boolean) => void): { ready: Promise<void>; exited: Promise<ThreadEnd> } {
  const { threadId } = worker;
  let events: number | undefined;
  let isReady = false;
  let setupFailed = false;
  let uncaught: Error | undefined;
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  const failSetup = (e: Error): void => {
    setupFailed = true;
    report(new HandlerError(index, threadId, undefined, undefined, e), true);
  };
  const exited = new Promise<ThreadEnd>((resolveExit) => {
    worker.on('message', (m: ThreadMessage) => {
      if (m.kind === 'ready') {
        isReady = true;
        onReady();
      } else if (m.kind === 'done') events = m.events;
      else if (m.token === undefined) failSetup(revive(m.error));
      else report(new HandlerError(index, threadId, m.token, m.ready, revive(m.error)), false);
    });
    worker.on('error', (e) => {
      if (isReady) uncaught = e;
      else failSetup(e);
    });
    worker.on('exit', (code) => {
      if (events !== undefined || setupFailed) return resolveExit({ events: events ?? 0, died: undefined });
      if (!isReady) {
        failSetup(new Error(`the thread exited (code ${code}) before it was done`));
        return resolveExit({ events: 0, died: undefined });
      }
      resolveExit({ events: 0, died: uncaught ?? new Error(`the thread exited (code ${code}) before it was done`) });
    });
  });
  return { ready, exited };
}

/** An error as a thread posted it: structured cloning would drop `code`, so it comes as fields. */
function revive(posted: PostedError): Error {
  const e = new Error(posted.message);
  e.name = posted.name;
  if (posted.stack !== undefined) e.stack = posted.stack;
  if (posted.code !== undefined) Object.assign(e, { code: posted.code });
  return e;
}
