/** Worker threads for the tests: each attaches to a shared reactor and runs one task of worker.ts. */
import { Worker } from 'node:worker_threads';
import type { ReactorHandle } from '../../src/index.js';
import type { Task, TaskResult } from './worker.js';

export const SLOT_LIMIT = 2 ** 22;

/** Int32 words of the pingPong stats buffer. */
export const STOP = 0;
export const DELIVERIES = 1;
export const BYTES_READ = 2;
export const BYTES_WRITTEN = 3;
export const BAD_SEQUENCE = 4;
export const STATS_INTS = 5;
export const BALL_BYTES = 8;


/** The slot a token names (the low 22 bits), for per-slot counters. */
export function slotOf(token: number): number {
  return token % SLOT_LIMIT;
}

export interface Started {
  readonly worker: Worker;
  /** Resolves with the task's result when the thread exits; rejects with its error. */
  readonly result: Promise<TaskResult>;
  /** Resolves once the thread has attached and is about to start its task. */
  readonly ready: Promise<void>;
}

/** Starts a worker thread running `task` on the reactor `handle` describes. */
export function startWorker(reactor: ReactorHandle, task: Task): Started {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { reactor, task } });
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<TaskResult>((resolve, reject) => {
    let value: TaskResult | undefined;
    worker.on('message', (m: { ready?: true; result?: TaskResult }) => {
      if (m.ready) onReady();
      if (m.result) value = m.result;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (value !== undefined) resolve(value);
      else reject(new Error(`worker exited with code ${code} and no result`));
    });
  });
  return { worker, result, ready };
}

/** Per-slot counters shared by every thread of a test. */
export class SlotCounters {
  readonly active: Int32Array;
  readonly delivered: Int32Array;
  readonly forced: Int32Array;
  /** [0]: how many times a handler found its registration already active elsewhere. */
  readonly doubleActive: Int32Array;

  constructor(readonly slots: number, buffer?: SharedArrayBuffer) {
    const b = buffer ?? new SharedArrayBuffer((3 * slots + 1) * 4);
    this.buffer = b;
    this.active = new Int32Array(b, 0, slots);
    this.delivered = new Int32Array(b, slots * 4, slots);
    this.forced = new Int32Array(b, slots * 8, slots);
    this.doubleActive = new Int32Array(b, slots * 12, 1);
  }

  readonly buffer: SharedArrayBuffer;

  /** Marks the slot held by the caller; counts a double-active if someone else holds it. */
  enter(slot: number, flags: number, forcedBit: number): void {
    if (Atomics.add(this.active, slot, 1) !== 0) Atomics.add(this.doubleActive, 0, 1);
    Atomics.add(this.delivered, slot, 1);
    if (flags & forcedBit) Atomics.add(this.forced, slot, 1);
  }

  leave(slot: number): void {
    Atomics.sub(this.active, slot, 1);
  }

  total(array: Int32Array): number {
    let sum = 0;
    for (let i = 0; i < array.length; i++) sum += array[i]!;
    return sum;
  }
}
