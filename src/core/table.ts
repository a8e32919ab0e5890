/**
 * The registrations of one reactor in shared memory: each slot's state word (its transitions are
 * in state-machine.ts), fd, interest and holder, the free list and the fd index.
 */
import { arm, GEN_LIMIT, GEN_SHIFT, release } from './state-machine.js';
import { lock, unlock } from './mutex.js';
import { FIRST_BYTES, fixedProblem, int32s, recycle, sharedBuffer } from './shared-memory.js';

/**
 * The generation the next table's slots start at: random, then a step of about 0.618 of the
 * generations per table, so two reactors' tokens differ and a token of another reactor is
 * refused (ENOENT) rather than naming this reactor's registration of the same slot.
 */
let firstGen = 1 + Math.floor(Math.random() * (GEN_LIMIT - 1));
const FIRST_GEN_STEP = 324019; // about 0.618 of GEN_LIMIT - 1, which is prime: every generation is a start in turn

function nextFirstGen(): number {
  const gen = firstGen;
  firstGen = ((gen - 1 + FIRST_GEN_STEP) % (GEN_LIMIT - 1)) + 1;
  return gen;
}

/** Int32 words of the table's header. */

const LOCK = 0;
/** The free ring: where its oldest entry is, and how many it holds. */
const FREE_HEAD = 1;
const FREE_COUNT = 2;
/** Slots ever handed out: slots 0 to USED - 1. */
const USED = 3;
/** Slots the per-slot arrays and the free ring cover (≥ USED), and buckets of the fd index. */
const SIZE = 4;
const BUCKETS = 5;
/** The generation this table's slots start at (see `nextFirstGen`). */
const FIRST_GEN = 6;
const HEADER = 8;

/**
 * The per-slot Int32 arrays, each in its own buffer and each a field of `Table` by the
 * same name: one more name here (and its field below) adds one.
 */
const COLUMNS = ['words', 'fds', 'interests', 'retired', 'holders'] as const;
type Column = (typeof COLUMNS)[number];

/** Slots the arrays first cover: one page of Int32s. */
const FIRST_SLOTS = FIRST_BYTES / 4;

/**
 * A freed slot is reused only while at least this many are free (or once every slot has been
 * used); below that a slot never used is taken, so the table grows to what is in use plus this.
 */
const REUSE_AFTER = 1024;

/** Shared memory a table needs: handed to `Table.attach` in another thread. */
export interface TableMemory {
  readonly capacity: number;
  readonly header: SharedArrayBuffer;
  readonly columns: Readonly<Record<Column, SharedArrayBuffer>>;
  readonly freeRing: SharedArrayBuffer;
  readonly fdKeys: SharedArrayBuffer;
  readonly fdSlots: SharedArrayBuffer;
}

/**
 * The registrations of one reactor: state words, fds, interests, a FIFO free list and an fd →
 * slot index enforcing one live registration per fd. Memory grows with the slots ever used, not
 * with the capacity; each thread's views cover the slots it has met (`covers`). Allocation,
 * freeing and growth take a mutex; transitions never do.
 *
 * A freed slot waits its turn in FIFO order, and is taken again only while at least
 * K = min(REUSE_AFTER, capacity) slots are free, or once all `capacity` slots have been used.
 * So between two registrations of one slot, at least K - 1 other slots are freed (or, once all
 * have been used, every other free slot is taken once), and its generation (2^19 - 1 values)
 * comes round only after (2^19 - 1) × (K - 1), about 2^29, frees in the table.
 */
export class Table {
  /** The state words, indexed by slot. */
  readonly words!: Int32Array;
  readonly fds!: Int32Array;
  readonly interests!: Int32Array;
  /** Per slot, the generation of the last ONESHOT registration freed at delivery. */
  readonly retired!: Int32Array;
  /** Per slot, the attachment (Lifetime.attachment) its last delivery went to; 0 when none yet. */
  readonly holders!: Int32Array;
  private readonly header: Int32Array;
  private freeRing!: Int32Array;
  /** Open addressing by fd: keys hold fd + 1 (0 is empty), values the slot. */
  private fdKeys!: Int32Array;
  private fdSlots!: Int32Array;
  private fdMask = 0;
  private readonly reuseAfter: number;
  /** Whether the slot this object's last `allocate` took had never been used: its memory is all zero. */
  lastFresh = false;

  static create(capacity: number): Table {
    const slots = Math.min(capacity, FIRST_SLOTS);
    const buckets = Math.min(fdBuckets(capacity), FIRST_SLOTS);
    const ints = (n: number): SharedArrayBuffer => sharedBuffer(n * 4);
    const columns = Object.fromEntries(COLUMNS.map((c) => [c, ints(capacity)])) as Record<Column, SharedArrayBuffer>;
    const memory: TableMemory = {
      capacity,
      header: new SharedArrayBuffer(HEADER * 4),
      columns,
      freeRing: ints(capacity),
      fdKeys: ints(fdBuckets(capacity)),
      fdSlots: ints(fdBuckets(capacity)),
    };
    const header = new Int32Array(memory.header);
    header[SIZE] = slots;
    header[BUCKETS] = buckets;
    header[FIRST_GEN] = nextFirstGen();
    return new Table(memory);
  }

  /** What is wrong with `memory` as a table's, or undefined: what `attach` checks a handle with. */
  static problem(memory: TableMemory): string | undefined {
    const { capacity, columns } = memory;
    if (typeof columns !== 'object' || columns === null) return 'no table columns';
    for (const c of COLUMNS) {
      const problem = fixedProblem(`table's ${c}`, columns[c], capacity * 4);
      if (problem !== undefined) return problem;
    }
    return (
      fixedProblem("table's header", memory.header, HEADER * 4) ??
      fixedProblem("table's free ring", memory.freeRing, capacity * 4) ??
      fixedProblem("table's fd keys", memory.fdKeys, fdBuckets(capacity) * 4) ??
      fixedProblem("table's fd slots", memory.fdSlots, fdBuckets(capacity) * 4)
    );
  }

  static attach(memory: TableMemory): Table {
    return new Table(memory);
  }

  private constructor(readonly memory: TableMemory) {
    this.header = new Int32Array(memory.header);
    this.reuseAfter = Math.min(REUSE_AFTER, memory.capacity);
    this.refresh();
    this.refreshBuckets();
  }

  get capacity(): number {
    return this.memory.capacity;
  }

  /**
   * Whether this thread's views reach `slot`, made again if the table grew: a slot handed out
   * by another thread may lie past them. False for a slot never handed out past the last growth.
   */
  covers(slot: number): boolean {
    if (slot < this.words.length) return true;
    this.refresh();
    return slot < this.words.length;
  }

  /** Makes this thread's per-slot views cover every slot the table has grown to. */
  refresh(): void {
    const size = Atomics.load(this.header, SIZE);
    const self = this as unknown as Record<Column, Int32Array>;
    for (const c of COLUMNS) self[c] = int32s(this.memory.columns[c], size);
    this.freeRing = int32s(this.memory.freeRing, size);
  }

  private refreshBuckets(): void {
    const buckets = Atomics.load(this.header, BUCKETS);
    this.fdKeys = int32s(this.memory.fdKeys, buckets);
    this.fdSlots = int32s(this.memory.fdSlots, buckets);
    this.fdMask = buckets - 1;
  }

  /**
   * Takes a slot for fd and arms it in `mode` (ONESHOT, EDGE or 0, the state word's bits).
   * Returns the token, or -1 when fd already has a live
   * registration, or -2 when the table is full.
   */
  allocate(fd: number, interest: number, mode: number): number {
    lock(this.header, LOCK);
    try {
      const h = this.header;
      if (this.words.length !== h[SIZE]) this.refresh();
      if (this.fdKeys.length !== h[BUCKETS]) this.refreshBuckets();
      if (this.lookup(fd) >= 0) return -1;
      const free = h[FREE_COUNT]!;
      const used = h[USED]!;
      let slot: number;
      if (free > 0 && (free >= this.reuseAfter || used === this.capacity)) {
        const head = h[FREE_HEAD]!;
        slot = this.freeRing[head]!;
        h[FREE_HEAD] = head + 1 === this.freeRing.length ? 0 : head + 1;
        h[FREE_COUNT] = free - 1;
        this.lastFresh = false;
      } else if (used < this.capacity) {
        slot = used;
        if (slot === this.words.length) this.grow();
        this.words[slot] = h[FIRST_GEN]! << GEN_SHIFT;
        h[USED] = used + 1;
        this.lastFresh = true;
      } else {
        return -2;
      }
      if ((used - free + 1) * 2 > this.fdKeys.length) this.rehash();
      this.insert(fd, slot);
      this.fds[slot] = fd;
      this.interests[slot] = interest;
      return arm(this.words, slot, mode);
    } finally {
      unlock(this.header, LOCK);
    }
  }

  /** Frees a DELETING slot: next generation, fd index entry gone, slot back on the free list. */
  free(slot: number): void {
    lock(this.header, LOCK);
    try {
      const h = this.header;
      if (this.words.length !== h[SIZE]) this.refresh();
      if (this.fdKeys.length !== h[BUCKETS]) this.refreshBuckets();
      this.remove(this.fds[slot]!);
      release(this.words, slot);
      const free = h[FREE_COUNT]!;
      this.freeRing[(h[FREE_HEAD]! + free) % this.freeRing.length] = slot;
      h[FREE_COUNT] = free + 1;
    } finally {
      unlock(this.header, LOCK);
    }
  }

  /**
   * Gives the buffers to this thread's pool (shared-memory.ts), once no thread can reach the table
   * any more: zeroed as far as the table ever reached.
   */
  recycle(): void {
    const { columns, freeRing, fdKeys, fdSlots } = this.memory;
    const reach = Atomics.load(this.header, SIZE) * 4;
    for (const c of COLUMNS) recycle(columns[c], reach);
    recycle(freeRing, reach);
    const buckets = Atomics.load(this.header, BUCKETS) * 4;
    recycle(fdKeys, buckets);
    recycle(fdSlots, buckets);
  }

  /** Under the lock, every slot in use: the per-slot arrays and the free ring reach twice as many. */
  private grow(): void {
    const { freeRing, capacity } = this.memory;
    const before = this.words.length;
    const size = Math.min(capacity, before * 2);
    const h = this.header;
    const head = h[FREE_HEAD]!;
    if (head + h[FREE_COUNT]! > before) {
      // The free ring wraps round its end: its oldest entries move to its new end.
      int32s(freeRing, size).copyWithin(size - (before - head), head, before);
      h[FREE_HEAD] = size - (before - head);
    }
    Atomics.store(h, SIZE, size);
    this.refresh();
  }

  /** Under the lock, the fd index at half full: twice the buckets, every entry placed again. */
  private rehash(): void {
    const keys = Array.from(this.fdKeys);
    const slots = Array.from(this.fdSlots);
    const buckets = this.fdKeys.length * 2;
    Atomics.store(this.header, BUCKETS, buckets);
    this.refreshBuckets();
    this.fdKeys.fill(0);
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.insert(keys[i]! - 1, slots[i]!);
  }

  private lookup(fd: number): number {
    for (let i = hashFd(fd) & this.fdMask; ; i = (i + 1) & this.fdMask) {
      const key = this.fdKeys[i]!;
      if (key === 0) return -1;
      if (key === fd + 1) return this.fdSlots[i]!;
    }
  }

  private insert(fd: number, slot: number): void {
    let i = hashFd(fd) & this.fdMask;
    while (this.fdKeys[i] !== 0) i = (i + 1) & this.fdMask;
    this.fdKeys[i] = fd + 1;
    this.fdSlots[i] = slot;
  }

  /** Linear-probing delete by backward shift, so lookups never need tombstones. */
  private remove(fd: number): void {
    const keys = this.fdKeys;
    const mask = this.fdMask;
    let i = hashFd(fd) & mask;
    while (keys[i] !== fd + 1) {
      if (keys[i] === 0) return;
      i = (i + 1) & mask;
    }
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = hashFd(keys[j]! - 1) & mask;
      // Move j back to the hole at i unless its home lies cyclically in (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        keys[i] = keys[j]!;
        this.fdSlots[i] = this.fdSlots[j]!;
        i = j;
      }
    }
    keys[i] = 0;
  }
}

/** Twice the capacity, rounded up to a power of two: probe chains stay short. */
function fdBuckets(capacity: number): number {
  let n = 16;
  while (n < capacity * 2) n *= 2;
  return n;
}

/** fd numbers are dense and small: multiply and fold so they spread over every bucket. */
function hashFd(fd: number): number {
  const h = Math.imul(fd, 0x9e3779b1);
  return (h ^ (h >>> 16)) >>> 0;
}
