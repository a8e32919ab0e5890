/**
 * Registration slots in shared memory and their state machine (docs/ARCHITECTURE.md, "The state word").
 *
 * Each slot has one Int32 state word holding the state, its F, T, Q, P and ONESHOT bits and the generation, so that
 * every transition is a single compareExchange that also checks the generation: an operation
 * with a stale token can never touch a newer registration of the same slot.
 *
 * The transitions are plain functions over the words array, with the side effects (kernel
 * calls, ready-queue pushes) left to the caller, so a test can drive them through every
 * interleaving.
 */
import { lock, unlock } from './mutex.js';
import { Ready } from './flags.js';
import { FIRST_BYTES, fixedProblem, growable, growableProblem, growTo, int32s } from './growable.js';

// ---- The state word -------------------------------------------------------------------------

/** Bits 0-2: the state. */
export const STATE = 0b111;
export const FREE = 0;
export const ARMED = 1;
export const ACTIVE = 2;
export const REARMING = 3;
export const DELETING = 4;

/** F: a forced delivery (FORCEOS) is pending. */
export const FORCE = 1 << 3;
/** T: the pending force came from a deadline; delivered as TIMEOUT. Only with F. */
export const TIMEOUT = 1 << 4;
/** Q: the slot sits in the ready queue. Survives free and reuse: the entry names the slot. */
export const QUEUED = 1 << 5;
/** The registration is ONESHOT: freed at delivery. */
export const ONESHOT = 1 << 6;
/** P: readiness the kernel reported while the slot was REARMING (Ready bits, shifted). */
export const PENDING_SHIFT = 7;
export const PENDING = 0xf << PENDING_SHIFT;
/** A: its holder's thread died; delivered once more, as ABANDONED, to a live waiter. */
export const ABANDONED = 1 << 11;
/** Bits 12-31: the generation, 1 to 2^20 - 1; it changes every time the slot is freed. */
export const GEN_SHIFT = 12;
export const GEN_LIMIT = 1 << 20;

/** Tokens are `generation * SLOT_LIMIT + slot`: at most 43 bits, a safe integer. */
export const SLOT_BITS = 22;
export const SLOT_LIMIT = 1 << SLOT_BITS;

export function stateOf(word: number): number {
  return word & STATE;
}

export function genOf(word: number): number {
  return word >>> GEN_SHIFT;
}

export function nextGen(gen: number): number {
  return gen + 1 < GEN_LIMIT ? gen + 1 : 1;
}

export function tokenOf(slot: number, gen: number): number {
  return gen * SLOT_LIMIT + slot;
}

/**
 * The slot of a token. `&` truncates the double to its low 32 bits, which keep the low 22, and
 * compiles to integer instructions where `%` on a double above 2^31 would call fmod.
 */
export function slotOfToken(token: number): number {
  return token & (SLOT_LIMIT - 1);
}

/** The generation of a token: below 2^20, so `| 0` floors the exact quotient. */
export function genOfToken(token: number): number {
  return (token / SLOT_LIMIT) | 0;
}

/** The Ready bits a delivery carries for the force and abandon bits of a word. */
function forcedReady(word: number): number {
  const abandoned = (word & ABANDONED) !== 0 ? Ready.ABANDONED : 0;
  if ((word & FORCE) === 0) return abandoned;
  return ((word & TIMEOUT) !== 0 ? Ready.FORCED | Ready.TIMEOUT : Ready.FORCED) | abandoned;
}

// ---- Transitions ----------------------------------------------------------------------------
// Each returns what the caller must do; none performs a syscall. Each starts from a plain read
// of the word (tear-free for an aligned Int32): the compareExchange validates it, and only a
// retry pays for an atomic load.

/** `claim` result: the event is not for a live, armed registration; drop it. */
export const DROPPED = 0;
/** `claim` result: the slot is REARMING; the readiness was left for the re-arming thread. */
export const HANDED_ON = -1;
/** Bit in a delivery result: the registration is ONESHOT and now DELETING; remove and free it. */
export const MUST_FREE = 1 << 8;

/**
 * A waiter got a kernel event for (slot, gen). ARMED → ACTIVE (delivered); REARMING → +P
 * (handed on); anything else, or another generation: dropped, which loses nothing because a
 * re-arm re-checks readiness. Returns the delivered Ready bits, possibly with MUST_FREE.
 */
export function claim(words: Int32Array, slot: number, gen: number, readiness: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return DROPPED;
    const state = w & STATE;
    if (state === ARMED) {
      const next = activate(w);
      if (Atomics.compareExchange(words, slot, w, next) === w) return deliveredReady(w, readiness);
    } else if (state === REARMING) {
      const next = w | ((readiness << PENDING_SHIFT) & PENDING);
      if (next === w || Atomics.compareExchange(words, slot, w, next) === w) return HANDED_ON;
    } else {
      return DROPPED;
    }
  }
}

/**
 * A waiter popped `slot` from the ready queue. Clears Q, then delivers if the slot is ARMED
 * with a force or handed-on readiness pending, whatever its generation (the entry names the
 * slot, so a stale entry never hides a newer registration's force). Returns the word it
 * delivered from (never 0: generations start at 1), for `deliveredReady` and `genOf`, or
 * DROPPED.
 */
export function claimQueued(words: Int32Array, slot: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const cleared = w & ~QUEUED;
    const deliver = (w & STATE) === ARMED && (w & (FORCE | PENDING | ABANDONED)) !== 0;
    const next = deliver ? activate(cleared) : cleared;
    if (Atomics.compareExchange(words, slot, w, next) === w) return deliver ? w : DROPPED;
  }
}

/** ARMED → ACTIVE, or → DELETING for ONESHOT; the force, pending and abandon bits are consumed. */
function activate(word: number): number {
  const rest = word & ~(STATE | FORCE | TIMEOUT | PENDING | ABANDONED);
  return rest | ((word & ONESHOT) !== 0 ? DELETING : ACTIVE);
}

/** The Ready bits delivered from `word` with kernel `readiness`, plus MUST_FREE for ONESHOT. */
export function deliveredReady(word: number, readiness: number): number {
  const ready = readiness | ((word & PENDING) >>> PENDING_SHIFT) | forcedReady(word);
  return (word & ONESHOT) !== 0 ? ready | MUST_FREE : ready;
}

/** `beginRearm` / `force` / `beginDelete` result: no live registration has that token. */
export const NOT_LIVE = -1;
/** `beginRearm` result: the registration is live but not held by a handler. */
export const NOT_ACTIVE = -2;
/** `beginDelete` result: a rearm is in flight; try again once it ends. */
export const BUSY = -3;
export const OK = 0;

/** The holder re-arms: ACTIVE[+F] → REARMING[+F]. The kernel enable comes next. */
export function beginRearm(words: Int32Array, slot: number, gen: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return NOT_LIVE;
    const state = w & STATE;
    if (state !== ACTIVE) return state === FREE || state === DELETING ? NOT_LIVE : NOT_ACTIVE;
    if (Atomics.compareExchange(words, slot, w, (w & ~STATE) | REARMING) === w) return OK;
  }
}

/**
 * The kernel enable is done: REARMING[+F][+P] → ARMED[+F][+P]. Returns true when the caller
 * must push the slot to the ready queue (a force or handed-on readiness is pending and the slot
 * was not queued yet; Q is now set).
 */
export function endRearm(words: Int32Array, slot: number): boolean {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const pending = (w & (FORCE | PENDING)) !== 0;
    const push = pending && (w & QUEUED) === 0;
    const next = ((w & ~STATE) | ARMED) | (push ? QUEUED : 0);
    if (Atomics.compareExchange(words, slot, w, next) === w) return push;
  }
}

/** The kernel enable failed: REARMING → ACTIVE, the holder still holds it. Pending bits stay. */
export function abortRearm(words: Int32Array, slot: number): void {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (Atomics.compareExchange(words, slot, w, (w & ~STATE) | ACTIVE) === w) return;
  }
}

/** `force` result: forced, and the caller must push the slot to the ready queue (Q is set). */
export const FORCED_PUSH = 1;
/** `force` result: forced; the delivery comes when the holder re-arms, or from the queue. */
export const FORCED_LATER = 2;
/** `force` result: a force is already pending. */
export const ALREADY_FORCED = 3;

/**
 * FORCEOS from any thread: sets F (and T for a deadline). ARMED: queued for one waiter;
 * ACTIVE or REARMING: delivered after the holder re-arms. One force at a time: a second one
 * answers ALREADY_FORCED, and a deadline's adds T to the pending force.
 */
export function force(words: Int32Array, slot: number, gen: number, timeout: boolean): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return NOT_LIVE;
    const state = w & STATE;
    if (state === FREE || state === DELETING) return NOT_LIVE;
    if ((w & FORCE) !== 0) {
      // A deadline passing while a force is pending joins it: the one delivery says TIMEOUT.
      if (!timeout || (w & TIMEOUT) !== 0) return ALREADY_FORCED;
      if (Atomics.compareExchange(words, slot, w, w | TIMEOUT) === w) return ALREADY_FORCED;
      continue;
    }
    const push = state === ARMED && (w & QUEUED) === 0;
    const next = w | FORCE | (timeout ? TIMEOUT : 0) | (push ? QUEUED : 0);
    if (Atomics.compareExchange(words, slot, w, next) === w) return push ? FORCED_PUSH : FORCED_LATER;
  }
}

/**
 * The holder of `slot` died holding it (ACTIVE) or re-arming it (REARMING, perhaps staged and
 * never applied): → ARMED+A, its F, T and P bits kept, for one more delivery flagged ABANDONED.
 * Returns whether the caller must push the slot to the ready queue (Q is now set), or
 * NOT_LIVE if the slot is no longer held (deleted meanwhile, say) and nothing was done.
 */
export function abandon(words: Int32Array, slot: number, gen: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const state = w & STATE;
    if (genOf(w) !== gen || (state !== ACTIVE && state !== REARMING)) return NOT_LIVE;
    const push = (w & QUEUED) === 0;
    const next = (w & ~STATE) | ARMED | ABANDONED | (push ? QUEUED : 0);
    if (Atomics.compareExchange(words, slot, w, next) === w) return push ? FORCED_PUSH : FORCED_LATER;
  }
}

/** Whether (slot, gen) is a live registration: armed, held or re-arming. */
export function isLive(words: Int32Array, slot: number, gen: number): boolean {
  const w = Atomics.load(words, slot);
  const state = w & STATE;
  return genOf(w) === gen && state !== FREE && state !== DELETING;
}

/** ARMED or ACTIVE → DELETING. A REARMING slot answers BUSY: wait it out and call again. */
export function beginDelete(words: Int32Array, slot: number, gen: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return NOT_LIVE;
    const state = w & STATE;
    if (state === REARMING) return BUSY;
    if (state !== ARMED && state !== ACTIVE) return NOT_LIVE;
    if (Atomics.compareExchange(words, slot, w, (w & ~STATE) | DELETING) === w) return OK;
  }
}

/** DELETING → FREE with the next generation. Only Q survives (a queue entry may still name it). */
export function release(words: Int32Array, slot: number): void {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const next = (w & QUEUED) | (nextGen(genOf(w)) << GEN_SHIFT) | FREE;
    if (Atomics.compareExchange(words, slot, w, next) === w) return;
  }
}

/** FREE → ARMED, keeping the generation set at release and Q. Returns the new token. */
export function arm(words: Int32Array, slot: number, oneshot: boolean): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const next = (w & (QUEUED | ~((1 << GEN_SHIFT) - 1))) | ARMED | (oneshot ? ONESHOT : 0);
    if (Atomics.compareExchange(words, slot, w, next) === w) return tokenOf(slot, genOf(w));
  }
}

// ---- The shared table -----------------------------------------------------------------------

/**
 * The generation the next table's slots start at: random, then a step of about 0.618 of the
 * generations per table, so two reactors' tokens differ and a token of another reactor is
 * refused (ENOENT) rather than naming this reactor's registration of the same slot.
 */
let firstGen = 1 + Math.floor(Math.random() * (GEN_LIMIT - 1));
const FIRST_GEN_STEP = 648001; // about 0.618 of GEN_LIMIT - 1 and coprime with it: every generation is a start in turn

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
 * The per-slot Int32 arrays, each in its own growable buffer and each a field of `Table` by the
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
 * have been used, every other free slot is taken once), and its generation (2^20 - 1 values)
 * comes round only after (2^20 - 1) × (K - 1), about 2^30, frees in the table.
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

  static create(capacity: number): Table {
    const slots = Math.min(capacity, FIRST_SLOTS);
    const buckets = Math.min(fdBuckets(capacity), FIRST_SLOTS);
    const ints = (n: number, max: number): SharedArrayBuffer => growable(n * 4, max * 4);
    const columns = Object.fromEntries(COLUMNS.map((c) => [c, ints(slots, capacity)])) as Record<Column, SharedArrayBuffer>;
    const memory: TableMemory = {
      capacity,
      header: new SharedArrayBuffer(HEADER * 4),
      columns,
      freeRing: ints(slots, capacity),
      fdKeys: ints(buckets, fdBuckets(capacity)),
      fdSlots: ints(buckets, fdBuckets(capacity)),
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
      const problem = growableProblem(`table's ${c}`, columns[c], capacity * 4);
      if (problem !== undefined) return problem;
    }
    return (
      fixedProblem("table's header", memory.header, HEADER * 4) ??
      growableProblem("table's free ring", memory.freeRing, capacity * 4) ??
      growableProblem("table's fd keys", memory.fdKeys, fdBuckets(capacity) * 4) ??
      growableProblem("table's fd slots", memory.fdSlots, fdBuckets(capacity) * 4)
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
   * Takes a slot for fd and arms it. Returns the token, or -1 when fd already has a live
   * registration, or -2 when the table is full.
   */
  allocate(fd: number, interest: number, oneshot: boolean): number {
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
      } else if (used < this.capacity) {
        slot = used;
        if (slot === this.words.length) this.grow();
        this.words[slot] = h[FIRST_GEN]! << GEN_SHIFT;
        h[USED] = used + 1;
      } else {
        return -2;
      }
      if ((used - free + 1) * 2 > this.fdKeys.length) this.rehash();
      this.insert(fd, slot);
      this.fds[slot] = fd;
      this.interests[slot] = interest;
      return arm(this.words, slot, oneshot);
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

  /** Under the lock, every slot in use: the per-slot arrays and the free ring cover twice as many. */
  private grow(): void {
    const { columns, freeRing, capacity } = this.memory;
    const before = this.words.length;
    const size = Math.min(capacity, before * 2);
    for (const c of COLUMNS) growTo(columns[c], size * 4);
    growTo(freeRing, size * 4);
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
    growTo(this.memory.fdKeys, buckets * 4);
    growTo(this.memory.fdSlots, buckets * 4);
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
