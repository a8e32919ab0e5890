/** The shared queue of software deliveries (forces, handed-on readiness) for any waiter. */
import { lock, unlock } from './mutex.js';

const LOCK = 0;
const HEAD = 1;
const LENGTH = 2;
const HEADER = 4;

/**
 * A FIFO ring of slot numbers in shared memory. A slot is pushed only by whoever sets its Q
 * bit and popped by whoever clears it, so it is in the ring at most once and a ring as large
 * as the table never overflows. `length` is read without the lock, to keep the empty check
 * off the lock on every wait.
 */
export class ReadyQueue {
  private readonly header: Int32Array;
  private readonly ring: Int32Array;

  static create(capacity: number): ReadyQueue {
    return new ReadyQueue(new SharedArrayBuffer(ReadyQueue.byteLength(capacity)));
  }

  /** The bytes a queue for `capacity` slots takes. */
  static byteLength(capacity: number): number {
    return (HEADER + capacity) * 4;
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER);
    this.ring = new Int32Array(buffer, HEADER * 4);
  }

  get length(): number {
    return Atomics.load(this.header, LENGTH);
  }

  push(slot: number): void {
    lock(this.header, LOCK);
    const h = this.header;
    const length = h[LENGTH]!;
    this.ring[(h[HEAD]! + length) % this.ring.length] = slot;
    Atomics.store(h, LENGTH, length + 1);
    unlock(this.header, LOCK);
  }

  /** The oldest slot, or -1 when empty. */
  pop(): number {
    if (Atomics.load(this.header, LENGTH) === 0) return -1;
    lock(this.header, LOCK);
    const h = this.header;
    const length = h[LENGTH]!;
    let slot = -1;
    if (length > 0) {
      const head = h[HEAD]!;
      slot = this.ring[head]!;
      h[HEAD] = (head + 1) % this.ring.length;
      Atomics.store(h, LENGTH, length - 1);
    }
    unlock(this.header, LOCK);
    return slot;
  }
}
