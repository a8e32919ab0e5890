/**
 * A worker thread of the buffer pool test: takes and gives back buffers of a shared BufferPool,
 * marking each one it holds with its id, and counts the buffers it found marked by another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BUFFER_BYTES, BufferPool } from '../../examples/echo-server/buffers.js';

export interface PoolWork {
  readonly buffer: SharedArrayBuffer;
  /** Non-zero: the mark this thread writes into the first byte of each buffer it holds. */
  readonly id: number;
  readonly rounds: number;
  /** The most buffers this thread holds at once. */
  readonly most: number;
}

export interface PoolWorkDone {
  readonly takes: number;
  /** Buffers taken while another thread's mark was in them, or found with another's mark when given back. */
  readonly clashes: number;
}

const { buffer, id, rounds, most } = workerData as PoolWork;
const pool = new BufferPool(buffer);
const held: number[] = [];
let takes = 0;
let clashes = 0;

function giveBack(b: number): void {
  if (pool.bytes[b * BUFFER_BYTES] !== id) clashes++;
  pool.bytes[b * BUFFER_BYTES] = 0;
  pool.giveBack(b);
}

for (let i = 0; i < rounds; i++) {
  // Two takes for one give-back, until it holds `most`: the pool sees both at every level.
  if (held.length < most && (held.length === 0 || i % 3 !== 0)) {
    const b = pool.take();
    takes++;
    if (pool.bytes[b * BUFFER_BYTES] !== 0) clashes++;
    pool.bytes[b * BUFFER_BYTES] = id;
    held.push(b);
  } else {
    giveBack(held.shift()!);
  }
}
held.forEach(giveBack);
parentPort!.postMessage({ takes, clashes } satisfies PoolWorkDone);
