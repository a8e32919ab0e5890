/**
 * The connections' buffers: one pool, shared by every thread, of fixed-size buffers that a
 * connection holds only while it keeps bytes from one delivery to the next (a request head not
 * all read, output the kernel refused). An idle connection holds none, so it costs its header.
 */

/**
 * Bytes of one buffer. HTTP keeps its request head in the first REQUEST_MAX bytes and its
 * answers after it (about a hundred pipelined ones); echo keeps output in all of it, a whole
 * read's worth, so a read is never cut short for room.
 */
export const BUFFER_BYTES = 16384;

/** Control words (Int32), at the end of the pool's memory. */
const COUNT = 0;
/** The first bitmap word that may have a free buffer: where take() starts looking. */
const FIRST_FREE = 1;
/** The control words fill a cache line of their own. */
const CONTROL_INTS = 16;

/** A bitmap word with every buffer in it taken. */
const FULL = -1;

/**
 * A buffer per connection the server can hold, so taking one never fails, in one
 * SharedArrayBuffer whose pages cost nothing until written. A bitmap says which are taken; a
 * take claims the first free one with a compareExchange, looking from the lowest word that may
 * have one, so that the few in use reuse pages already committed rather than touching new ones,
 * and no thread ever waits for another.
 */
export class BufferPool {
  /** Every buffer, BUFFER_BYTES each: buffer i starts at i * BUFFER_BYTES. */
  readonly bytes: Buffer;
  /** Bit i % 32 of word i >> 5 is set while buffer i is taken. */
  private readonly taken: Int32Array;
  private readonly control: Int32Array;

  static create(count: number): BufferPool {
    const words = Math.ceil(count / 32);
    const buffer = new SharedArrayBuffer(count * BUFFER_BYTES + (words + CONTROL_INTS) * 4);
    controlOf(buffer)[COUNT] = count;
    const pool = new BufferPool(buffer);
    // The last word's bits past the last buffer count as taken, so no take looks at them.
    if (count % 32 !== 0) pool.taken[words - 1] = FULL << count % 32;
    return pool;
  }

  /** This thread's view of the pool `buffer` made by `create`. */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.control = controlOf(buffer);
    const count = this.control[COUNT]!;
    // The buffers first, so that each starts on a page of its own.
    this.bytes = Buffer.from(buffer, 0, count * BUFFER_BYTES);
    this.taken = new Int32Array(buffer, count * BUFFER_BYTES, Math.ceil(count / 32));
  }

  /** Takes a free buffer, the first from FIRST_FREE on; returns its index. */
  take(): number {
    // FIRST_FREE only saves a scan: a race can leave it past a free buffer, so a miss looks again from 0.
    const index = this.takeFrom(Atomics.load(this.control, FIRST_FREE)) ?? this.takeFrom(0);
    // The pool has a buffer for every connection the reactor can hold: a leak, if this happens.
    if (index === undefined) throw new Error(`no buffer free: all ${this.control[COUNT]} are taken`);
    return index;
  }

  /** Gives buffer `index` back, to be taken again before any above it. */
  giveBack(index: number): void {
    const word = index >> 5;
    Atomics.and(this.taken, word, ~(1 << (index & 31)));
    for (let first = Atomics.load(this.control, FIRST_FREE); first > word; ) {
      const seen = Atomics.compareExchange(this.control, FIRST_FREE, first, word);
      if (seen === first) break;
      first = seen;
    }
  }

  /** Buffers taken and not given back: the bits set, less those past the last buffer. */
  inUse(): number {
    let set = 0;
    for (let word = 0; word < this.taken.length; word++) {
      for (let bits = Atomics.load(this.taken, word); bits !== 0; bits &= bits - 1) set++;
    }
    return set - (this.taken.length * 32 - this.control[COUNT]!);
  }

  private takeFrom(start: number): number | undefined {
    const taken = this.taken;
    for (let word = start; word < taken.length; word++) {
      for (let bits = Atomics.load(taken, word); bits !== FULL; ) {
        const lowest = ~bits & (bits + 1); // the lowest clear bit, alone
        const seen = Atomics.compareExchange(taken, word, bits, bits | lowest);
        if (seen === bits) return word * 32 + 31 - Math.clz32(lowest);
        bits = seen;
      }
      // Full: later takes start past it, unless a give-back has moved the start meanwhile.
      Atomics.compareExchange(this.control, FIRST_FREE, word, word + 1);
    }
    return undefined;
  }
}

function controlOf(buffer: SharedArrayBuffer): Int32Array {
  return new Int32Array(buffer, buffer.byteLength - CONTROL_INTS * 4, CONTROL_INTS);
}
