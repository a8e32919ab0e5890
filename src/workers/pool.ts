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
}

/** How one thread did. */
export interface ThreadSummary {
  readonly index: number;
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
}

/** A running pool. */
export interface Workers {
  /** Resolves once every thread has exited; rejects with the first error if it was fatal. */
  readonly done: Promise<WorkersSummary>;
  /** The `threadId` of each thread, by index. */
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
  let fatal: HandlerError | undefined;
  let onFatal: () => void = () => {};
  const failed = new Promise<false>((resolve) => (onFatal = () => resolve(false)));
  /** A fatal error (a failed setup, a lost thread, or any error without onError) closes the pool. */
  const report = (error: HandlerError, fatalError: boolean): void => {
    errorCounts[error.index]! += 1;
    if (errors.length < KEPT_ERRORS) errors.push(error);
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
  const workers: Worker[] = [];
  try {
    for (let index = 0; index < threads; index++) {
      const data: ThreadData = { reactor: handle, moduleUrl, data: options.data, index, threads, batch, batchRearms, eventCounts, start };
      workers.push(new Worker(THREAD, { workerData: data }));
    }
  } catch (e) {
    go(ABORT); // let the threads already started leave
    if (e instanceof Error && e.name === 'DataCloneError') {
      throw new ReactorError('EINVAL', `data must be structured-cloneable (no functions or symbols): ${e.message}`);
    }
    throw e;
  }
  const threadIds = workers.map((w) => w.threadId);
  const started = workers.map((worker, index) => follow(worker, index, report));
  const exited = Promise.all(started.map((s) => s.exited));

  const done = exited.then((events): WorkersSummary => {
    if (fatal !== undefined) throw fatal;
    const perThread = events.map((n, index) => ({ index, threadId: threadIds[index]!, events: n, errors: errorCounts[index]! }));
    return { events: perThread.reduce((sum, t) => sum + t.events, 0), threads: perThread, errors };
  });

  const ready = await Promise.race([Promise.all(started.map((s) => s.ready)).then(() => true), failed]);
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
    events: () => eventCounts.reduce((sum, n) => sum + Number(n), 0),
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

const RUN_WORKERS_OPTIONS: readonly (keyof RunWorkersOptions)[] = ['reactor', 'threads', 'handler', 'data', 'batch', 'batchRearms', 'onError'];

/**
 * Follows one thread's messages: `ready` once it is set up, `exited` with its event count once
 * it has exited. Errors go to `report`: a failed setup, a crash, or an exit that did not come
 * from the pool closing are fatal.
 */
function follow(
  worker: Worker,
  index: number,
  report: (error: HandlerError, fatal: boolean) => void,
): { ready: Promise<void>; exited: Promise<number> } {
  const { threadId } = worker;
  let events: number | undefined;
  let reported = false;
  const fail = (e: Error): void => {
    reported = true;
    report(new HandlerError(index, threadId, undefined, undefined, e), true);
  };
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  const exited = new Promise<number>((resolveExit) => {
    worker.on('message', (m: ThreadMessage) => {
      if (m.kind === 'ready') onReady();
      else if (m.kind === 'done') events = m.events;
      else if (m.token === undefined) fail(revive(m.error));
      else report(new HandlerError(index, threadId, m.token, m.ready, revive(m.error)), false);
    });
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (events === undefined && !reported) fail(new Error(`the thread exited (code ${code}) before it was done`));
      resolveExit(events ?? 0);
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
