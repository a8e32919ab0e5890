/**
 * The state machine of a registration slot (docs/ARCHITECTURE.md, "The state word"), and how a
 * token names a slot and its generation.
 *
 * Each slot has one Int32 state word holding the state, its F, T, Q, P, A and ONESHOT bits and
 * the generation, so that every transition is a single compareExchange that also checks the
 * generation: an operation with a stale token can never touch a newer registration of the same
 * slot.
 *
 * The transitions are plain functions over the words array, with the side effects (kernel
 * calls, ready-queue pushes) left to the caller, so a test can drive them through every
 * interleaving.
 */
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
