/**
 * The connections' buffers: one pool, shared by every thread, of fixed-size buffers that a
 * connection holds only while it keeps bytes from one delivery to the next (a request head not
 * all read, output the kernel refused). An idle connection holds none, so it costs its header.
 */
import { lock, unlock } from '../../src/core/mutex.js';

/**
 * Bytes of one buffer. HTTP keeps its request head in the first REQUEST_MAX bytes and its
 * answers after it (about a hundred pipelined ones); echo keeps output in all of it, a whole
 * read's worth, so a read is never cut short for room.
 */
export const BUFFER_BYTES = 16384;

/** Control words (Int32). */
const LOCK = 0;
/** The index + 1 of the buffer given back last; 0: the free list is empty. */
const TOP = 1;
/** Buffers never taken yet are those from this index on: none of their pages is committed. */
const FRESH = 2;
const IN_USE = 3;
/** The control words fill a cache line of their own. */
const CONTROL_INTS = 16;

/**
 * A buffer per connection the server can hold, so taking one never fails, in one
 * SharedArrayBuffer whose pages cost nothing until written. The free buffers form a stack under
 * a mutex: the one given back last is taken first, so that the few in use reuse pages already
 * committed rather than touching new ones; and buffers never used are taken in order, after
 * the free list, so the list needs no setup. The mutex is held for a few array accesses.
 */
export class BufferPool {
  /** Every buffer, BUFFER_BYTES each: buffer i starts at i * BUFFER_BYTES. */
  readonly bytes: Buffer;
  private readonly control: Int32Array;
  /** The free list: next[i] is the index + 1 of the buffer below buffer i (0: none). */
  private readonly next: Int32Array;

  static create(count: number): BufferPool {
    return new BufferPool(new SharedArrayBuffer(count * (BUFFER_BYTES + 4) + CONTROL_INTS * 4));
  }

  /** This thread's view of the pool `buffer` made by `create`. */
  constructor(readonly buffer: SharedArrayBuffer) {
    const count = (buffer.byteLength - CONTROL_INTS * 4) / (BUFFER_BYTES + 4);
    // The buffers first, so that each starts on a page of its own.
    this.bytes = Buffer.from(buffer, 0, count * BUFFER_BYTES);
    this.next = new Int32Array(buffer, count * BUFFER_BYTES, count);
    this.control = new Int32Array(buffer, count * (BUFFER_BYTES + 4), CONTROL_INTS);
  }

  /** Takes a buffer; returns its index. */
  take(): number {
    const control = this.control;
    lock(control, LOCK);
    let index = control[TOP]! - 1;
    if (index >= 0) control[TOP] = this.next[index]!;
    else if (control[FRESH]! < this.next.length) index = control[FRESH]!++;
    if (index >= 0) control[IN_USE]!++;
    unlock(control, LOCK);
    // The pool has a buffer for every connection the reactor can hold: a leak, if this happens.
    if (index < 0) throw new Error(`no buffer free: all ${this.next.length} are taken`);
    return index;
  }

  /** Gives buffer `index` back, to be the next one taken. */
  giveBack(index: number): void {
    const control = this.control;
    lock(control, LOCK);
    this.next[index] = control[TOP]!;
    control[TOP] = index + 1;
    control[IN_USE]!--;
    unlock(control, LOCK);
  }

  /** Buffers taken and not given back. */
  inUse(): number {
    return Atomics.load(this.control, IN_USE);
  }
}
