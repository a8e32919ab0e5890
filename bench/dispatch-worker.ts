/**
 * One waiting thread of the W1 benchmark: attaches to the shared reactor and re-arms every
 * delivered event at once, publishing its counts once per batch for the main thread to sample.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Events, Reactor, type ReactorHandle } from '../src/index.js';

/** What bench/dispatch.ts passes: `control` word 0 is the stop flag, `counter` this thread's counts. */
interface Data {
  readonly reactor: ReactorHandle;
  readonly control: SharedArrayBuffer;
  readonly counter: number;
  readonly batch: number;
  /** Attach with batchRearms: re-arms applied with the next poll. */
  readonly batchRearms: boolean;
}

const STOP = 0;

/** The loop lives in a function, not at module top level, so V8 compiles it like user code. */
function run({ reactor, control, counter, batch, batchRearms }: Data): void {
  const r = Reactor.attach(reactor, { batchRearms });
  const ev = new Events(batch);
  const words = new Int32Array(control);
  let events = 0;
  let waits = 0;
  parentPort!.postMessage('ready');
  while (Atomics.load(words, STOP) === 0) {
    // The timeout only bounds how late a stop is seen: every registered fd is always readable.
    const n = r.wait(ev, 100);
    for (let i = 0; i < n; i++) r.rearm(ev.tokens[i]!);
    events = (events + n) | 0;
    waits = (waits + 1) | 0;
    // Plain stores, like the C loop's relaxed ones: tear-free for Int32, and no fence per batch.
    words[counter] = events;
    words[counter + 1] = waits;
  }
}

run(workerData as Data);
