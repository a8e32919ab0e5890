/** Per-registration deadlines that fire FORCEOS with TIMEOUT: a shared min-heap, no fd each. */
import { fixedProblem, recycle, sharedBuffer } from './shared-memory.js';
import { lock, unlock } from './mutex.js';

/**
 * The monotonic clock. The global `performance` is a lazy accessor of globalThis, so each read
 * of it calls a getter; read once here, `clock.now()` is a plain method call on every wait.
 */
export const clock: { now(): number } = performance;

const LOCK = 0;
const COUNT = 1;
/** The earliest deadline, whole ms after the clock's base (rounded up), or NONE. Read without the lock. */
const EARLIEST = 2;
/**
 * The highest slot ever given a deadline, plus one: how far the arrays were written (the heap
 * never holds more entries than that), so that recycling zeroes no more.
 */
const REACH = 3;
const HEADER = 4;

/** No deadline pending. */
export const NONE = 0x7fffffff;

/** Shared memory of the deadlines, for `attach` in another thread. */
export interface DeadlineMemory {
  readonly capacity: number;
  readonly header: SharedArrayBuffer;
  /** The heap's times (Float64), slots and generations, and each slot's position in it. */
  readonly times: SharedArrayBuffer;
  readonly slots: SharedArrayBuffer;
  readonly gens: SharedArrayBuffer;
  readonly position: SharedArrayBuffer;
  /** The monotonic clock's reading (ms) that deadlines are counted from. */
  readonly base: number;
}

/** Milliseconds on the process-wide monotonic clock (the same in every thread). */
function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

/**
 * A binary min-heap of (time, slot, generation) with a slot → position index, so setting,
 * moving and cancelling a registration's deadline are O(log n), under a mutex. Each thread
 * reads the clock as `clock.now()` plus an offset taken once, so `now()` costs no
 * allocation; the earliest time sits in one Int32 that waiters read with a single atomic load.
 */
export class Deadlines {
  private readonly header: Int32Array;
  private readonly times: Float64Array;
  private readonly slots: Int32Array;
  private readonly gens: Int32Array;
  /** Per slot: its position in the heap plus one, or 0 when it has no deadline. */
  private readonly position: Int32Array;
  /** clock.now() + offset = ms since the base, in this thread. */
  private readonly offset: number;

  static create(capacity: number): Deadlines {
    const ints = (): SharedArrayBuffer => sharedBuffer(capacity * 4);
    const memory = {
      capacity,
      header: new SharedArrayBuffer(HEADER * 4),
      times: sharedBuffer(capacity * 8),
      slots: ints(),
      gens: ints(),
      position: ints(),
      base: monotonicMs(),
    };
    const header = new Int32Array(memory.header);
    header[EARLIEST] = NONE;
    return new Deadlines(memory);
  }

  /** What is wrong with `memory` as the deadlines of `capacity` slots, or undefined. */
  static problem(memory: DeadlineMemory, capacity: number): string | undefined {
    if (memory.capacity !== capacity) return 'the deadlines are for another capacity';
    if (typeof memory.base !== 'number' || !Number.isFinite(memory.base)) return 'no clock base for the deadlines';
    return (
      fixedProblem('deadlines header', memory.header, HEADER * 4) ??
      fixedProblem('deadline times', memory.times, capacity * 8) ??
      fixedProblem('deadline slots', memory.slots, capacity * 4) ??
      fixedProblem('deadline generations', memory.gens, capacity * 4) ??
      fixedProblem('deadline positions', memory.position, capacity * 4)
    );
  }

  constructor(readonly memory: DeadlineMemory) {
    this.header = new Int32Array(memory.header);
    this.times = new Float64Array(memory.times);
    this.slots = new Int32Array(memory.slots);
    this.gens = new Int32Array(memory.gens);
    this.position = new Int32Array(memory.position);
    this.offset = monotonicMs() - memory.base - clock.now();
  }

  /** Gives the buffers to this thread's pool, once no thread can reach the deadlines any more. */
  recycle(): void {
    const { times, slots, gens, position } = this.memory;
    const reach = Atomics.load(this.header, REACH);
    recycle(times, reach * 8);
    for (const ints of [slots, gens, position]) recycle(ints, reach * 4);
  }

  /** Milliseconds since the base, in this thread. */
  now(): number {
    return clock.now() + this.offset;
  }

  /** The earliest deadline (ms since the base, rounded up), or NONE. */
  earliest(): number {
    return Atomics.load(this.header, EARLIEST);
  }

  /** Sets or moves slot's deadline to `at` (ms since the base). True if it is now the earliest. */
  set(slot: number, gen: number, at: number): boolean {
    lock(this.header, LOCK);
    try {
      if (slot >= this.header[REACH]!) this.header[REACH] = slot + 1;
      let i = this.position[slot]! - 1;
      const added = i < 0;
      if (added) {
        i = this.header[COUNT]!++;
        this.slots[i] = slot;
        this.position[slot] = i + 1;
      }
      const earlier = added || at < this.times[i]!;
      this.gens[i] = gen;
      this.times[i] = at;
      if (earlier) this.up(i);
      else this.down(i);
      this.publish();
      return this.position[slot] === 1;
    } finally {
      unlock(this.header, LOCK);
    }
  }

  /** Removes slot's deadline, if it has one. */
  cancel(slot: number): void {
    if (this.position[slot] === 0) return;
    lock(this.header, LOCK);
    try {
      const i = this.position[slot]! - 1;
      if (i >= 0) this.removeAt(i);
      this.publish();
    } finally {
      unlock(this.header, LOCK);
    }
  }

  /**
   * Takes every deadline due at `now`, calling fire(slot, gen) for each, in time order. The
   * callback runs under the lock: it must not take this lock again.
   */
  takeDue(now: number, fire: (slot: number, gen: number) => void): void {
    lock(this.header, LOCK);
    try {
      while (this.header[COUNT]! > 0 && this.times[0]! <= now) {
        const slot = this.slots[0]!;
        const gen = this.gens[0]!;
        this.removeAt(0);
        fire(slot, gen);
      }
      this.publish();
    } finally {
      unlock(this.header, LOCK);
    }
  }

  private publish(): void {
    const earliest = this.header[COUNT]! > 0 ? Math.min(NONE - 1, Math.ceil(this.times[0]!)) : NONE;
    Atomics.store(this.header, EARLIEST, earliest);
  }

  private removeAt(i: number): void {
    const last = --this.header[COUNT]!;
    this.position[this.slots[i]!] = 0;
    if (i === last) return;
    this.move(last, i);
    this.up(i);
    this.down(this.position[this.slots[i]!]! - 1);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent]! <= this.times[i]!) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const count = this.header[COUNT]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= count) return;
      const right = left + 1;
      const child = right < count && this.times[right]! < this.times[left]! ? right : left;
      if (this.times[i]! <= this.times[child]!) return;
      this.swap(i, child);
      i = child;
    }
  }

  private swap(a: number, b: number): void {
    const time = this.times[a]!;
    const slot = this.slots[a]!;
    const gen = this.gens[a]!;
    this.move(b, a);
    this.times[b] = time;
    this.slots[b] = slot;
    this.gens[b] = gen;
    this.position[slot] = b + 1;
  }

  /** Copies entry `from` into position `to`. */
  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.slots[to] = this.slots[from]!;
    this.gens[to] = this.gens[from]!;
    this.position[this.slots[to]!] = to + 1;
  }
}
