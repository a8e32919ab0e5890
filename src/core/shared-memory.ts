/**
 * The reactor's shared memory: each structure's buffer is made at its full size, of which the
 * kernel commits only the pages first touched, and each structure fills its buffer from the
 * start and records how far it reaches, so memory follows the registrations used, not the
 * capacity. Where the reach is part of the structure (the table's rings and fd hash, the ready
 * queue's ring, each doubled as slots are used), threads index fixed-length views of it, made
 * again when they meet an index past them; the deadline heap only records it, for recycling.
 *
 * A closed reactor's buffers are recycled by the thread that frees it, when no other thread is
 * attached: a SharedArrayBuffer dropped is freed only by the garbage collector, which V8 does not
 * hurry for shared memory (it is not counted as external memory), so 10,000 reactors opened and
 * closed in a loop held 4.3 GiB. Growable SharedArrayBuffers are no way out: each takes two
 * memory mappings, and the collector's lag ran the process into vm.max_map_count (65,530), which
 * V8 survives only by aborting.
 */

/** The reach a structure starts with, in bytes: the kernel hands out memory by the page anyway. */
export const FIRST_BYTES = 4096;

/** The most bytes of buffers one thread keeps for reuse. */
const POOL_BYTES = 64 * 2 ** 20;

/** This thread's recycled buffers, all zero, by size. */
const pool = new Map<number, SharedArrayBuffer[]>();
let pooledBytes = 0;

/** A zeroed buffer of `bytes`: a recycled one of that size if this thread has one, else a new one. */
export function sharedBuffer(bytes: number): SharedArrayBuffer {
  const recycled = pool.get(bytes)?.pop();
  if (recycled === undefined) return new SharedArrayBuffer(bytes);
  pooledBytes -= bytes;
  return recycled;
}

/**
 * Keeps `buffer` for reuse, its first `usedBytes` (all its owner ever wrote) zeroed again, unless
 * the pool is full. Only for a buffer no other thread can reach any more.
 */
export function recycle(buffer: SharedArrayBuffer, usedBytes: number): void {
  const bytes = buffer.byteLength;
  if (pooledBytes + bytes > POOL_BYTES) return;
  new Uint8Array(buffer, 0, Math.min(usedBytes, bytes)).fill(0);
  let same = pool.get(bytes);
  if (same === undefined) pool.set(bytes, (same = []));
  same.push(buffer);
  pooledBytes += bytes;
}

/** A fixed-length Int32Array over the first `length` Int32s of `buffer`. */
export function int32s(buffer: SharedArrayBuffer, length: number): Int32Array {
  return new Int32Array(buffer, 0, length);
}

/** What is wrong with `buffer` as a SharedArrayBuffer of exactly `bytes`, or undefined. */
export function fixedProblem(name: string, buffer: unknown, bytes: number): string | undefined {
  if (!(buffer instanceof SharedArrayBuffer)) return `its ${name} is not a SharedArrayBuffer`;
  if (buffer.byteLength !== bytes) return `its ${name} has ${buffer.byteLength} bytes, not ${bytes}`;
  return undefined;
}
