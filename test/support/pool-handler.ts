/**
 * The handler module of test/workers.test.ts, run by runWorkers in every thread. What it does
 * with each event is chosen by `data.behaviour`.
 */
import { Ready, type EventHandler, type WorkerContext } from '../../src/index.js';

export interface PoolTestData {
  /**
   * serve: count the event, hold it `holdMs`, re-arm. throw: the same, but throw for the token
   * in `throwOn[0]`. exitHolding: the same, but end the thread while holding that token, once.
   * failSetup: throw from setup. exitInSetup: end the thread from setup.
   */
  readonly behaviour: 'serve' | 'throw' | 'exitHolding' | 'failSetup' | 'exitInSetup';
  /** Int32 counters: [thread index] events, then [threads + STARTED] and [threads + FINISHED] handlers. */
  readonly counters: SharedArrayBuffer;
  readonly holdMs: number;
  /** The token to throw for, as a Float64Array of one. */
  readonly throwOn: SharedArrayBuffer;
}

/**
 * Counters after the per-thread ones: handlers started, handlers that ran to their end, threads
 * ended by exitHolding, deliveries flagged ABANDONED.
 */
export const STARTED = 0;
export const FINISHED = 1;
export const EXITED = 2;
export const ABANDONED = 3;
export const SHARED_COUNTERS = 4;

const pause = new Int32Array(new SharedArrayBuffer(4));

export function setup({ reactor, index, threads, data }: WorkerContext<PoolTestData>): EventHandler {
  if (data.behaviour === 'failSetup') throw new Error('setup refused on purpose');
  if (data.behaviour === 'exitInSetup' && index === 0) process.exit(3); // in a worker: ends the thread
  const counters = new Int32Array(data.counters);
  const throwOn = new Float64Array(data.throwOn);
  return (token, ready) => {
    Atomics.add(counters, index, 1);
    Atomics.add(counters, threads + STARTED, 1);
    if (ready & Ready.ABANDONED) Atomics.add(counters, threads + ABANDONED, 1);
    if (data.behaviour === 'throw' && token === throwOn[0]) throw new Error(`no handler for token ${token}`);
    if (data.behaviour === 'exitHolding' && token === throwOn[0] && Atomics.add(counters, threads + EXITED, 1) === 0) process.exit(5);
    // Holding the event a moment keeps it from being re-delivered at once to the same thread.
    Atomics.wait(pause, 0, 0, data.holdMs);
    Atomics.add(counters, threads + FINISHED, 1);
    reactor.rearm(token);
  };
}
