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
/**
 * P: readiness not yet delivered (Ready bits, shifted): reported while the slot was REARMING,
 * or, for an EDGE registration, while it was held, or armed but not wanted by its interest.
 */
export const PENDING_SHIFT = 7;
export const PENDING = 0xf << PENDING_SHIFT;
/** Every readiness P holds: READABLE, WRITABLE, HANGUP, ERROR. */
export const ANY_READY = 0xf;
/** A: its holder's thread died; delivered once more, as ABANDONED, to a live waiter. */
export const ABANDONED = 1 << 11;
/**
 * E: an EDGE registration. The kernel reports edges, for both directions, and is never re-armed:
 * what arrives while the slot is held is remembered in P, and the interest is applied here.
 */
export const EDGE = 1 << 12;
/** Bits 13-31: the generation, 1 to 2^19 - 1; it changes every time the slot is freed. */
export const GEN_SHIFT = 13;
export const GEN_LIMIT = 1 << 19;

/** Tokens are `generation * SLOT_LIMIT + slot`: at most 41 bits, a safe integer. */
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

/** The generation of a token: below 2^19, so `| 0` floors the exact quotient. */
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
/**
 * `claim` result: an EDGE registration remembered the readiness in P, undelivered: it is held,
 * or armed with an interest that does not want it. (Armed: the caller checks the interest again
 * with `queueIfWanted`, in case it changed meanwhile.)
 */
export const REMEMBERED = -2;
/** Bit in a delivery result: the registration is ONESHOT and now DELETING; remove and free it. */
export const MUST_FREE = 1 << 8;

/**
 * A slot's holder word: the attachment its event was delivered to (1 to 256) and the
 * generation delivered, so that a claim's late store, after its registration was deleted and
 * the slot taken again, can never pass for a holder of the newer generation.
 */
export function holderOf(attachment: number, gen: number): number {
  return attachment | (gen << 9);
}

/** The attachment a holder word names. */
export function holderAttachment(holder: number): number {
  return holder & 0x1ff;
}

/** The generation a holder word names. */
export function holderGen(holder: number): number {
  return holder >>> 9;
}

/**
 * Stores `holder` (holderOf the claimer and `gen`) in the slot's holder word after a won claim,
 * unless the registration was deleted since: a late store must not overwrite the holder of the
 * slot's next registration, which its own claimer may have stored already. `seen` is the holder
 * word read before the claim: if it is unchanged, nobody has stored since, and one
 * compareExchange does it (the common case, on every delivery).
 */
export function storeHolder(holders: Int32Array, words: Int32Array, slot: number, gen: number, holder: number, seen: number): void {
  if (Atomics.compareExchange(holders, slot, seen, holder) === seen) return;
  for (let h = Atomics.load(holders, slot); genOf(Atomics.load(words, slot)) === gen; h = Atomics.load(holders, slot)) {
    if (Atomics.compareExchange(holders, slot, h, holder) === h) return;
  }
}

/** The readiness an interest wants delivered: its directions, and HANGUP and ERROR always. */
export function wantOf(interest: number): number {
  return interest | Ready.HANGUP | Ready.ERROR;
}

/** The readiness in a word's P bits. */
function pendingOf(word: number): number {
  return (word & PENDING) >>> PENDING_SHIFT;
}

/** What of P and `readiness` a delivery from `word` may carry: for EDGE, only what `want` names. */
function wanted(word: number, readiness: number, want: number): number {
  const seen = readiness | pendingOf(word);
  return (word & EDGE) !== 0 ? seen & want : seen;
}

/**
 * A waiter got a kernel event for (slot, gen); `want` is the registration's interest with
 * HANGUP and ERROR, which only an EDGE registration applies here (the kernel filters the rest).
 * ARMED → ACTIVE (delivered); REARMING → +P (handed on); for EDGE, ACTIVE → +P, and ARMED with
 * nothing wanted → +P (remembered). Anything else, or another generation: dropped, which loses
 * nothing because a re-arm re-checks readiness (and an EDGE registration is then not armed).
 * Returns the delivered Ready bits, possibly with MUST_FREE.
 */
export function claim(words: Int32Array, slot: number, gen: number, readiness: number, want: number = ANY_READY): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return DROPPED;
    const state = w & STATE;
    const edge = (w & EDGE) !== 0;
    if (state === ARMED && (!edge || wanted(w, readiness, want) !== 0 || (w & (FORCE | ABANDONED)) !== 0)) {
      const next = activate(w, readiness, want);
      if (Atomics.compareExchange(words, slot, w, next) === w) return deliveredReady(w, readiness, want);
    } else if (state === REARMING || (edge && (state === ARMED || state === ACTIVE))) {
      const next = w | ((readiness << PENDING_SHIFT) & PENDING);
      if (next === w || Atomics.compareExchange(words, slot, w, next) === w) return state === REARMING ? HANDED_ON : REMEMBERED;
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
export function claimQueued(words: Int32Array, slot: number, want: number = ANY_READY): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const cleared = w & ~QUEUED;
    const deliver = (w & STATE) === ARMED && ((w & (FORCE | ABANDONED)) !== 0 || wanted(w, 0, want) !== 0);
    const next = deliver ? activate(cleared, 0, want) : cleared;
    if (Atomics.compareExchange(words, slot, w, next) === w) return deliver ? w : DROPPED;
  }
}

/**
 * ARMED → ACTIVE, or → DELETING for ONESHOT; the force, pending and abandon bits are consumed,
 * except, for EDGE, the readiness `want` does not name, which stays in P.
 */
function activate(word: number, readiness: number, want: number): number {
  const rest = word & ~(STATE | FORCE | TIMEOUT | PENDING | ABANDONED);
  const kept = (word & EDGE) !== 0 ? (((readiness | pendingOf(word)) & ~want) << PENDING_SHIFT) & PENDING : 0;
  return rest | kept | ((word & ONESHOT) !== 0 ? DELETING : ACTIVE);
}

/** The Ready bits delivered from `word` with kernel `readiness`, plus MUST_FREE for ONESHOT. */
export function deliveredReady(word: number, readiness: number, want: number = ANY_READY): number {
  const ready = wanted(word, readiness, want) | forcedReady(word);
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
    const pending = (w & (FORCE | PENDING | ABANDONED)) !== 0;
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

/** `force` and `rearmEdge` result: the caller must push the slot to the ready queue (Q is set). */
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

/**
 * The holder re-arms an EDGE registration: ACTIVE → ARMED, with no kernel call (its kernel entry
 * stays armed). `still` is readiness the handler left unconsumed, added to P; `want` is the
 * interest (with HANGUP and ERROR) from now on. Returns OK, FORCED_PUSH when a force, an
 * abandon or wanted readiness is pending (Q is now set), NOT_LIVE or NOT_ACTIVE.
 */
export function rearmEdge(words: Int32Array, slot: number, gen: number, still: number, want: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen) return NOT_LIVE;
    const state = w & STATE;
    if (state !== ACTIVE) return state === FREE || state === DELETING ? NOT_LIVE : NOT_ACTIVE;
    const armed = (w & ~STATE) | ARMED | ((still << PENDING_SHIFT) & PENDING);
    const push = (armed & QUEUED) === 0 && ((armed & (FORCE | ABANDONED)) !== 0 || (pendingOf(armed) & want) !== 0);
    if (Atomics.compareExchange(words, slot, w, armed | (push ? QUEUED : 0)) === w) return push ? FORCED_PUSH : OK;
  }
}

/** `dropUnwanted` result: the event was given back, and the caller must push the slot (Q is set). */
export const GIVEN_BACK_PUSH = -1;

/**
 * A waiter won an EDGE claim delivering `ready` (from `claim` or `deliveredReady`). The claim
 * applied the interest read before its compareExchange, and the holder may have turned a
 * direction off since, as it re-armed; `want` is the interest read again now that the event is
 * this waiter's (only its holder writes the interest). What `want` does not name goes back to P
 * for the next rearm; if nothing is left to deliver, the event is given back, ACTIVE → ARMED.
 * Returns the Ready bits to deliver, or 0 (given back, or deleted meanwhile), or GIVEN_BACK_PUSH.
 */
export function dropUnwanted(words: Int32Array, slot: number, gen: number, ready: number, want: number): number {
  const unwanted = ready & ANY_READY & ~want;
  if (unwanted === 0) return ready;
  const rest = ready & ~unwanted;
  if ((rest & (MUST_FREE - 1)) !== 0) {
    claim(words, slot, gen, unwanted, want); // held: remembered for the rearm
    return rest;
  }
  return rearmEdge(words, slot, gen, unwanted, want) === FORCED_PUSH ? GIVEN_BACK_PUSH : 0;
}

/**
 * An armed EDGE registration remembered readiness its interest did not want (`claim` said
 * REMEMBERED): queues it if `want`, read again, wants it after all, since the interest may have
 * changed as the holder re-armed. True when the caller must push the slot (Q is now set).
 */
export function queueIfWanted(words: Int32Array, slot: number, gen: number, want: number): boolean {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    if (genOf(w) !== gen || (w & STATE) !== ARMED || (w & QUEUED) !== 0 || (pendingOf(w) & want) === 0) return false;
    if (Atomics.compareExchange(words, slot, w, w | QUEUED) === w) return true;
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

/** FREE → ARMED, keeping the generation set at release and Q; `mode` is ONESHOT, EDGE or 0. Returns the new token. */
export function arm(words: Int32Array, slot: number, mode: number): number {
  for (let w = words[slot]!; ; w = Atomics.load(words, slot)) {
    const next = (w & (QUEUED | ~((1 << GEN_SHIFT) - 1))) | ARMED | mode;
    if (Atomics.compareExchange(words, slot, w, next) === w) return tokenOf(slot, genOf(w));
  }
}
