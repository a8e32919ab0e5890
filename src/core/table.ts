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
/** Bits 11-31: the generation, 1 to 2^21 - 1; it changes every time the slot is freed. */
export const GEN_SHIFT = 11;
export const GEN_LIMIT = 1 << 21;

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

/** The generation of a token: below 2^21, so `| 0` floors the exact quotient. */
export function genOfToken(token: number): number {
  return (token / SLOT_LIMIT) | 0;
}

/** The Ready bits a delivery carries for the force bits of a word. */
function forcedReady(word: number): number {
  if ((word & FORCE) === 0) return 0;
  return (word & TIMEOUT) !== 0 ? Ready.FORCED | Ready.TIMEOUT : Ready.FORCED;
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
    const deliver = (w & STATE) === ARMED && (w & (FORCE | PENDING)) !== 0;
    const next = deliver ? activate(cleared) : cleared;
    if (Atomics.compareExchange(words, slot, w, next) === w) return deliver ? w : DROPPED;
  }
}

/** ARMED → ACTIVE, or → DELETING for ONESHOT; the force and pending bits are consumed. */
function activate(word: number): number {
  const rest = word & ~(STATE | FORCE | TIMEOUT | PENDING);
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
const FIRST_GEN_STEP = 1296081; // coprime with GEN_LIMIT - 1: every generation is a start in turn

function nextFirstGen(): number {
  const gen = firstGen;
  firstGen = ((gen - 1 + FIRST_GEN_STEP) % (GEN_LIMIT - 1)) + 1;
  return gen;
}

/** Int32 words of the table's header, before the per-slot arrays. */
const LOCK = 0;
const FREE_HEAD = 1;
const FREE_TAIL = 2;
const HEADER = 4;

/** Shared memory a table needs: handed to `Table.attach` in another thread. */
export interface TableMemory {
  readonly capacity: number;
  readonly buffer: SharedArrayBuffer;
}

/**
 * The registrations of one reactor: state words, fds, interests, a FIFO free list (so a slot's
 * generation wraps only after 2^21 reuses of every slot) and an fd → slot index enforcing one
 * live registration per fd. Allocation and freeing take a mutex; transitions never do.
 */
export class Table {
  /** The state words, indexed by slot. */
  readonly words: Int32Array;
  readonly fds: Int32Array;
  readonly interests: Int32Array;
  /** Per slot, the generation of the last ONESHOT registration freed at delivery. */
  readonly retired: Int32Array;
  private readonly header: Int32Array;
  private readonly freeRing: Int32Array;
  /** Open addressing by fd: keys hold fd + 1 (0 is empty), values the slot. */
  private readonly fdKeys: Int32Array;
  private readonly fdSlots: Int32Array;
  private readonly fdMask: number;

  static create(capacity: number): Table {
    const buffer = new SharedArrayBuffer(Table.byteLength(capacity));
    const table = new Table({ capacity, buffer });
    table.words.fill(nextFirstGen() << GEN_SHIFT);
    for (let i = 0; i < capacity; i++) table.freeRing[i] = i;
    table.header[FREE_TAIL] = capacity;
    return table;
  }

  /** The bytes a table of `capacity` slots takes: what `attach` checks a handle against. */
  static byteLength(capacity: number): number {
    return (HEADER + capacity * 5 + fdBuckets(capacity) * 2) * 4;
  }

  static attach(memory: TableMemory): Table {
    return new Table(memory);
  }

  private constructor(readonly memory: TableMemory) {
    const { capacity, buffer } = memory;
    const buckets = fdBuckets(capacity);
    let at = 0;
    const take = (n: number): Int32Array => {
      const view = new Int32Array(buffer, at * 4, n);
      at += n;
      return view;
    };
    this.header = take(HEADER);
    this.words = take(capacity);
    this.fds = take(capacity);
    this.interests = take(capacity);
    this.retired = take(capacity);
    this.freeRing = take(capacity);
    this.fdKeys = take(buckets);
    this.fdSlots = take(buckets);
    this.fdMask = buckets - 1;
  }

  get capacity(): number {
    return this.memory.capacity;
  }

  /**
   * Takes a free slot for fd and arms it. Returns the token, or -1 when fd already has a live
   * registration, or -2 when the table is full.
   */
  allocate(fd: number, interest: number, oneshot: boolean): number {
    lock(this.header, LOCK);
    try {
      if (this.lookup(fd) >= 0) return -1;
      const h = this.header;
      if (h[FREE_HEAD] === h[FREE_TAIL]) return -2;
      const head = h[FREE_HEAD]!;
      const slot = this.freeRing[head % this.capacity]!;
      h[FREE_HEAD] = (head + 1) % (2 * this.capacity);
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
      this.remove(this.fds[slot]!);
      release(this.words, slot);
      const h = this.header;
      const tail = h[FREE_TAIL]!;
      this.freeRing[tail % this.capacity] = slot;
      h[FREE_TAIL] = (tail + 1) % (2 * this.capacity);
    } finally {
      unlock(this.header, LOCK);
    }
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
