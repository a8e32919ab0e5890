/** The body of each runWorkers thread: attach, set the handler module up, wait and dispatch until closed. */
import { isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { ReactorError } from '../core/errors.js';
import { Events } from '../core/events.js';
import { Reactor } from '../reactor.js';
import {
  START,
  WAITING,
  type EventHandler,
  type HandlerModule,
  type PostedError,
  type ThreadData,
  type ThreadMessage,
  type WorkerContext,
} from './protocol.js';

function post(message: ThreadMessage): void {
  parentPort!.postMessage(message);
}

function posted(e: unknown): PostedError {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack, code: (e as { code?: unknown }).code };
  return { name: 'Error', message: `a non-Error was thrown: ${String(e)}`, stack: undefined, code: undefined };
}

/** Loads the module and returns this thread's handler. */
async function setUp(context: WorkerContext, moduleUrl: string): Promise<EventHandler> {
  const mod = (await import(moduleUrl)) as HandlerModule;
  if (typeof mod.setup === 'function') {
    const handler = await mod.setup(context);
    if (typeof handler !== 'function') throw new TypeError(`setup() of ${moduleUrl} must return a (token, ready) => void handler`);
    return handler;
  }
  const handle = mod.handle;
  if (typeof handle === 'function') return (token, ready) => handle(context, token, ready);
  throw new TypeError(`${moduleUrl} exports neither setup(context) nor handle(context, token, ready)`);
}

/** Waits and dispatches until the reactor closes; returns how many events it handled. */
function serve(reactor: Reactor, handler: EventHandler, batch: number, counter: BigInt64Array, index: number): number {
  const ev = new Events(batch);
  let events = 0;
  for (;;) {
    let n: number;
    try {
      n = reactor.wait(ev, -1);
    } catch (e) {
      if (e instanceof ReactorError && e.code === 'ECLOSED') return events;
      throw e;
    }
    // Every delivered event goes to the handler, even after a close: it may be holding state.
    for (let i = 0; i < n; i++) {
      const token = ev.tokens[i]!;
      const ready = ev.ready[i]!;
      try {
        handler(token, ready);
      } catch (e) {
        // The pool is closing: the handler's rearm or delete found the reactor closed.
        if (reactor.closed && e instanceof ReactorError && e.code === 'ECLOSED') continue;
        post({ kind: 'error', token, ready, error: posted(e) });
      }
    }
    events += n;
    Atomics.store(counter, index, BigInt(events));
    if (reactor.closed) return events;
  }
}

if (isMainThread) throw new Error('src/workers/thread.js is the body of runWorkers threads: start it through runWorkers');
const data = workerData as ThreadData;
const reactor = attach();

/** Attaches; a replacement thread that finds the pool closed leaves quietly. */
function attach(): Reactor {
  try {
    return Reactor.attach(data.reactor, { batchRearms: data.batchRearms });
  } catch (e) {
    if (!(e instanceof ReactorError) || e.code !== 'ECLOSED') throw e;
    post({ kind: 'done', events: 0 });
    process.exit(0);
  }
}
/**
 * Sets the handler up, then serves. Called, not awaited, at the top: a thread's module must
 * finish evaluating before it serves, because terminating a worker whose module evaluation is
 * still pending (a top-level await) crashes Node 22 and 24.
 */
async function main(): Promise<void> {
  const context: WorkerContext = { reactor, index: data.index, threadId, threads: data.threads, data: data.data };
  const handler = await setUp(context, data.moduleUrl).catch((e: unknown) => {
    post({ kind: 'error', token: undefined, ready: undefined, error: posted(e) });
    return undefined;
  });
  if (handler === undefined) return;
  post({ kind: 'ready' });
  Atomics.wait(data.start, 0, WAITING);
  const go = Atomics.load(data.start, 0) === START;
  const events = go ? serve(reactor, handler, data.batch, data.eventCounts, data.index) : 0;
  reactor.flush(); // what the last handlers re-armed (batchRearms), before this thread goes
  post({ kind: 'done', events });
}

void main();
