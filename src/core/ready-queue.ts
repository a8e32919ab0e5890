/** The shared queue of software deliveries (forces, handed-on readiness) for any waiter. */
import { FIRST_BYTES, fixedProblem, recycle, sharedBuffer } from './shared-memory.js';
import { lock, unlock } from './mutex.js';

const LOCK = 0;
const HEAD = 1;
const LENGTH = 2;
/** Entries the ring holds now: it grows, up to the table's capacity, when a push finds it full. */
const SIZE = 3;
const HEADER = 4;

/**
 * A FIFO ring of slot numbers in shared memory, after a small header in the same buffer. A slot
 * is pushed only by whoever sets its Q bit and popped by whoever clears it, so it is in the ring
 * at most once and a ring as large as the table never overflows; its reach starts small and
 * doubles when full. `length` is read without the lock, to keep the empty check off the lock
 * on every wait.
 */
export class ReadyQueue {
  private readonly header: Int32Array;
  private ring: Int32Array;

  static create(capacity: number): ReadyQueue {
    const buffer = sharedBuffer((HEADER + capacity) * 4);
    new Int32Array(buffer, 0, HEADER)[SIZE] = Math.min(capacity, FIRST_BYTES / 4 - HEADER);
    return new ReadyQueue(buffer);
  }

  /** What is wrong with `buffer` as the queue of `capacity` slots, or undefined. */
  static problem(buffer: unknown, capacity: number): string | undefined {
    return fixedProblem('queue', buffer, (HEADER + capacity) * 4);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER);
    this.ring = this.view();
  }

  get length(): number {
    return Atomics.load(this.header, LENGTH);
  }

  push(slot: number): void {
    lock(this.header, LOCK);
    try {
      const h = this.header;
      const length = h[LENGTH]!;
      if (length === h[SIZE]) this.grow();
      else if (this.ring.length !== h[SIZE]) this.ring = this.view();
      this.ring[(h[HEAD]! + length) % this.ring.length] = slot;
      Atomics.store(h, LENGTH, length + 1);
    } finally {
      unlock(this.header, LOCK);
    }
  }

  /** The oldest slot, or -1 when empty. */
  pop(): number {
    if (Atomics.load(this.header, LENGTH) === 0) return -1;
    lock(this.header, LOCK);
    const h = this.header;
    const length = h[LENGTH]!;
    let slot = -1;
    if (length > 0) {
      if (this.ring.length !== h[SIZE]) this.ring = this.view();
      const head = h[HEAD]!;
      slot = this.ring[head]!;
      h[HEAD] = (head + 1) % this.ring.length;
      Atomics.store(h, LENGTH, length - 1);
    }
    unlock(this.header, LOCK);
    return slot;
  }

  /** Gives the buffer to this thread's pool, once no thread can reach the queue any more. */
  recycle(): void {
    recycle(this.buffer, (HEADER + Atomics.load(this.header, SIZE)) * 4);
  }

  private view(): Int32Array {
    return new Int32Array(this.buffer, HEADER * 4, this.header[SIZE]!);
  }

  /** Under the lock, the ring full: twice the room, its oldest entries moved to its new end. */
  private grow(): void {
    const h = this.header;
    const before = h[SIZE]!;
    const size = Math.min(this.buffer.byteLength / 4 - HEADER, before * 2);
    h[SIZE] = size;
    this.ring = this.view();
    const head = h[HEAD]!;
    this.ring.copyWithin(size - (before - head), head, before);
    h[HEAD] = size - (before - head);
  }
}
