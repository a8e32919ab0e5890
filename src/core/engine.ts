/**
 * The wait engine of one thread's reactor: takes kernel events and ready-queue entries through
 * the table's transitions into an Events batch, fires deadlines, applies staged re-arms, and
 * keeps the kernel objects alive until the last thread has left them.
 */
import { rearmEach, RawEvents, type Backend } from './backend.js';
import { closedError, notLive, ReactorError } from './errors.js';
import type { Events } from './events.js';
import { clock, NONE } from './deadlines.js';
import type { LoopSource } from './loop.js';
import { NOTIFIED, recycleMemory, SLEEPERS, type ReactorMemory } from './memory.js';
import { RearmBatch } from './rearm-batch.js';
import {
  abandon,
  ACTIVE,
  claim,
  claimQueued,
  deliveredReady,
  dropUnwanted,
  EDGE,
  force,
  FORCED_PUSH,
  genOf,
  genOfToken,
  GIVEN_BACK_PUSH,
  holderAttachment,
  holderGen,
  holderOf,
  isLive,
  MUST_FREE,
  NOT_LIVE,
  OK,
  queueIfWanted,
  REARMING,
  rearmEdge,
  REMEMBERED,
  slotOfToken,
  STATE,
  storeHolder,
  tokenOf,
  wantOf,
} from './state-machine.js';

/** Ready bits a delivery result carries to the user (MUST_FREE and above stay inside). */
const USER_READY = MUST_FREE - 1;

/**
 * How long recovery lets a live thread finish a claim it began before looking again: a claim
 * records its holder a few instructions after winning the slot, and until then the slot still
 * names its previous holder, who may be the thread that died.
 */
const CLAIM_GRACE_MS = 2;

/** What the engine is told by the composition. */
export interface EngineOptions {
  /** Stage re-arms and apply them with the next poll. */
  readonly batchRearms: boolean;
  /**
   * The longest one kernel wait may block, in ms, or -1 for no limit. A worker thread's waits
   * are cut into slices so that `worker.terminate()` takes effect within one: a thread blocked
   * in the kernel cannot be interrupted.
   */
  readonly waitSliceMs: number;
}

export class Engine {
  /** This thread's staged re-arms (batchRearms), applied with its next poll. */
  readonly staged: RearmBatch | undefined;
  /** Whether the last wait returned because it consumed a `notify`. */
  lastNotified = false;
  /** This thread's buffer for the backend's events, grown to the largest Events seen. */
  private raw = new RawEvents(1);
  /** This thread's attachment: what a delivery to it records as the slot's holder. */
  readonly me: number;
  private readonly waitSliceMs: number;
  private loop: LoopSource | undefined;

  constructor(
    readonly backend: Backend,
    readonly memory: ReactorMemory,
    options: EngineOptions,
  ) {
    this.me = memory.lifetime.attachment;
    memory.lifetime.finalizer = () => this.finalize();
    this.waitSliceMs = options.waitSliceMs;
    this.staged = options.batchRearms ? new RearmBatch(memory.table, this) : undefined;
  }

  /** The table's state words, as far as this thread's view of them reaches. */
  private get words(): Int32Array {
    return this.memory.table.words;
  }

  /** Who holds each slot's event, as far as this thread's view reaches. */
  private get holders(): Int32Array {
    return this.memory.table.holders;
  }

  /** Counts this thread in as a user of the kernel objects; ECLOSED once closed. */
  enter(): void {
    if (this.memory.lifetime.enter()) return;
    if (this.staged !== undefined && this.staged.count > 0) this.staged.discard();
    throw closedError();
  }

  /** Counts this thread out; the last one out of a closed reactor frees the kernel objects. */
  leave(): void {
    this.memory.lifetime.leave();
  }

  /** Applies this thread's staged re-arms now, if any. */
  flush(): void {
    const staged = this.staged;
    if (staged === undefined || staged.count === 0) return;
    rearmEach(this.backend, staged.rearms);
    staged.settle();
  }

  /** Queues a software delivery and wakes a sleeping waiter, if the reactor is still open. */
  pushReady(slot: number): void {
    this.memory.queue.push(slot);
    const lifetime = this.memory.lifetime;
    if (Atomics.load(this.memory.signals, SLEEPERS) === 0 || !lifetime.enter()) return;
    try {
      this.backend.wake();
    } finally {
      this.leave();
    }
  }

  /** Makes one sleeping waiter return, if any sleeps. */
  wakeSleeper(): void {
    if (Atomics.load(this.memory.signals, SLEEPERS) > 0) this.backend.wake();
  }

  /**
   * A DELETING slot: delete its kernel entry, then free it with the next generation. `retire`
   * (a ONESHOT delivery) remembers the generation, so a rearm of it says why it fails.
   */
  freeSlot(slot: number, token: number, retire: boolean): void {
    const table = this.memory.table;
    try {
      this.backend.delete(table.fds[slot]!, token);
    } finally {
      if (retire) table.retired[slot] = genOfToken(token);
      this.memory.deadlines.cancel(slot);
      table.free(slot);
    }
  }

  /** Waits up to `timeout` ms (-1: for ever) and fills `events`; returns how many. */
  wait(events: Events, timeout: number): number {
    if (this.raw.capacity < events.capacity) this.raw = new RawEvents(events.capacity);
    this.enter();
    let n = 0;
    this.lastNotified = false;
    try {
      n = this.collect(events, timeout);
    } finally {
      this.leave();
    }
    events.length = n;
    return n;
  }

  /** This reactor as the loop integration sees it. */
  loopSource(): LoopSource {
    if (this.loop !== undefined) return this.loop;
    const engine = this;
    const { deadlines, signals, lifetime } = this.memory;
    this.loop = {
      pollFd: this.backend.pollFd(),
      poll(events) {
        try {
          return engine.wait(events, 0);
        } catch (e) {
          if (e instanceof ReactorError && e.code === 'ECLOSED') return 0;
          throw e;
        }
      },
      flush() {
        engine.flush();
      },
      untilDeadline() {
        const due = deadlines.earliest();
        return due === NONE ? -1 : Math.max(0, Math.ceil(due - deadlines.now()));
      },
      attachWatcher() {
        if (!lifetime.enter()) return false;
        Atomics.add(signals, SLEEPERS, 1);
        return true;
      },
      detachWatcher() {
        Atomics.sub(signals, SLEEPERS, 1);
        engine.leave();
      },
      get notified() {
        return engine.lastNotified;
      },
      get closed() {
        return lifetime.closed;
      },
    };
    return this.loop;
  }

  /** Kernel events first, then the ready queue, until something is delivered or time is up. */
  private collect(events: Events, timeout: number): number {
    const { signals, queue, lifetime } = this.memory;
    const backend = this.backend;
    const start = timeout > 0 ? clock.now() : 0;
    let remaining = timeout;
    for (;;) {
      const sleep = this.fireDeadlines(remaining);
      // Software deliveries first, up to half the batch, so that neither kind starves the other.
      let n = this.staged?.deliverFailed(events, 0) ?? 0;
      n = this.claimQueued(events, n, Math.max(1, events.capacity >> 1));
      const room = events.capacity - n;
      const staged = this.staged;
      let got: number;
      if (staged !== undefined && staged.count > 0) {
        // Staged re-arms go with a poll that does not block, so they stay REARMING briefly.
        got = room > 0 ? backend.rearmAndPoll(staged.rearms, this.raw, room) : (rearmEach(backend, staged.rearms), 0);
        staged.settle();
      } else if (n === 0 && sleep !== 0 && queue.length === 0) {
        // Count in as a sleeper before the last checks: a push, notify or close that misses
        // this waiter's checks sees the count and wakes it.
        Atomics.add(signals, SLEEPERS, 1);
        const pending = queue.length !== 0 || Atomics.load(signals, NOTIFIED) !== 0 || lifetime.closed;
        const slice = this.waitSliceMs;
        try {
          got = backend.wait(this.raw, room, pending ? 0 : slice >= 0 && (sleep < 0 || sleep > slice) ? slice : sleep);
        } finally {
          Atomics.sub(signals, SLEEPERS, 1);
        }
      } else {
        got = room > 0 ? backend.wait(this.raw, room, 0) : 0;
      }
      n = this.claimKernelEvents(events, n, got);
      n = this.claimQueued(events, n, events.capacity);
      // No room left for the rest of the queue: hand it to another waiter.
      if (queue.length !== 0) this.wakeSleeper();
      // The backend may have swallowed a wake-up meant for a close or a notify: pass it on.
      if (lifetime.closed) {
        backend.wake();
        return n;
      }
      if (n > 0) {
        if (Atomics.load(signals, NOTIFIED) !== 0) this.wakeSleeper();
        return n;
      }
      if (Atomics.exchange(signals, NOTIFIED, 0) !== 0) {
        this.lastNotified = true;
        return 0;
      }
      if (remaining === 0) return 0;
      if (remaining > 0) {
        remaining = Math.ceil(timeout - (clock.now() - start));
        if (remaining <= 0) return 0;
      }
    }
  }

  /**
   * Turns every passed deadline into a TIMEOUT force (queued if armed), and returns how long
   * the kernel wait may sleep: `remaining`, cut short by the next deadline.
   */
  private fireDeadlines(remaining: number): number {
    const deadlines = this.memory.deadlines;
    let due = deadlines.earliest();
    if (due === NONE) return remaining;
    const now = deadlines.now();
    if (now >= due) {
      deadlines.takeDue(now, this.forceTimeout);
      due = deadlines.earliest();
      if (due === NONE) return remaining;
    }
    const untilDue = Math.max(1, Math.ceil(due - now));
    return remaining < 0 ? untilDue : Math.min(remaining, untilDue);
  }

  /** A deadline passed: force with TIMEOUT. (Bound once: takeDue calls it per deadline.) */
  private readonly forceTimeout = (slot: number, gen: number): void => {
    if (!this.memory.table.covers(slot)) return;
    if (force(this.words, slot, gen, true) === FORCED_PUSH) this.memory.queue.push(slot);
  };

  /** Claims the backend's `got` raw events into `events` from index n; returns the new count. */
  private claimKernelEvents(events: Events, n: number, got: number): number {
    const raw = this.raw;
    const table = this.memory.table;
    // This thread's views, made again only when an event names a slot past them.
    let { words, interests, holders } = table;
    for (let i = 0; i < got; i++) {
      const token = raw.tokens[i]!;
      const slot = slotOfToken(token);
      if (slot >= words.length) {
        if (!table.covers(slot)) continue;
        ({ words, interests, holders } = table);
      }
      const gen = genOfToken(token);
      const seen = holders[slot]!;
      const ready = claim(words, slot, gen, raw.ready[i]!, wantOf(interests[slot]!));
      if (ready <= 0) {
        // An armed EDGE registration kept what its interest did not want: the holder may have
        // changed the interest as it re-armed, so look again (see queueIfWanted).
        if (ready === REMEMBERED && queueIfWanted(words, slot, gen, wantOf(interests[slot]!))) this.pushReady(slot);
        continue;
      }
      n = this.take(events, n, slot, gen, ready, seen);
    }
    return n;
  }

  /** Pops the ready queue into `events` from index n up to `limit`; returns the new count. */
  private claimQueued(events: Events, n: number, limit: number): number {
    const queue = this.memory.queue;
    while (n < limit) {
      const slot = queue.pop();
      if (slot < 0) return n;
      const table = this.memory.table;
      if (!table.covers(slot)) continue;
      const want = wantOf(table.interests[slot]!);
      const seen = this.holders[slot]!;
      const word = claimQueued(this.words, slot, want);
      if (word === 0) {
        // The interest read above may predate the last holder's rearm of an EDGE registration,
        // whose entry this pop just cleared: look again, as after a REMEMBERED claim.
        if (queueIfWanted(this.words, slot, genOf(Atomics.load(this.words, slot)), wantOf(table.interests[slot]!))) this.pushReady(slot);
        continue;
      }
      n = this.take(events, n, slot, genOf(word), deliveredReady(word, 0, want), seen);
    }
    return n;
  }

  /**
   * A won claim of (slot, gen) delivering `ready`: an EDGE one drops what the interest no longer
   * wants (`dropUnwanted`); then this thread is stored as its holder (`seen`: the holder word
   * read before the claim) and the event goes into `events` at n. Returns the new count.
   */
  private take(events: Events, n: number, slot: number, gen: number, ready: number, seen: number): number {
    const { words, interests, holders } = this.memory.table;
    if ((words[slot]! & EDGE) !== 0 && (ready = dropUnwanted(words, slot, gen, ready, wantOf(interests[slot]!))) <= 0) {
      if (ready === GIVEN_BACK_PUSH) this.pushReady(slot);
      return n;
    }
    storeHolder(holders, words, slot, gen, holderOf(this.me, gen), seen);
    const token = tokenOf(slot, gen);
    events.tokens[n] = token;
    events.ready[n] = ready & USER_READY;
    if (ready & MUST_FREE) this.freeSlot(slot, token, true);
    return n + 1;
  }

  /** Whether another thread holds generation `gen` of `slot`: only the holder may re-arm it. */
  heldByAnother(slot: number, gen: number): boolean {
    const holder = this.holders[slot]!;
    return holder !== holderOf(this.me, gen) && holderGen(holder) === gen;
  }

  /** `rearm` of an EDGE registration: a transition, and a push if something is pending. */
  rearmEdge(token: number, slot: number, gen: number, nextInterest: number, still: number): void {
    const table = this.memory.table;
    if (this.heldByAnother(slot, gen) || (Atomics.load(this.words, slot) & STATE) !== ACTIVE) {
      throw this.rearmError(token, slot, gen, false);
    }
    if (nextInterest !== 0) table.interests[slot] = nextInterest;
    const r = rearmEdge(this.words, slot, gen, still, wantOf(table.interests[slot]!));
    if (r === FORCED_PUSH) this.pushReady(slot);
    else if (r !== OK) throw this.rearmError(token, slot, gen, r === NOT_LIVE);
  }

  /** Why `rearm` of a token failed: ECLOSED, EPERM (another thread holds it), EINVAL or ENOENT. */
  rearmError(token: number, slot: number, gen: number, dead: boolean): ReactorError {
    if (this.memory.lifetime.closed) return closedError();
    const word = Atomics.load(this.words, slot);
    if (!dead && genOf(word) === gen && (word & STATE) === ACTIVE && this.heldByAnother(slot, gen)) {
      return new ReactorError('EPERM', `token ${token} is held by another thread: only the thread wait() delivered it to may rearm it`);
    }
    if (!dead && !isLive(this.words, slot, gen)) dead = true;
    if (!dead) {
      return new ReactorError('EINVAL', `token ${token} is not held by a handler: rearm only after wait() delivered it, once`);
    }
    if (gen !== 0 && this.memory.table.retired[slot] === gen) {
      return new ReactorError('EINVAL', `token ${token} was a ONESHOT registration, freed at delivery: add the fd again instead`);
    }
    return notLive(token);
  }

  /**
   * Thread `threadId` has exited: counts it out of any call it died in, and hands every event it
   * held (or was re-arming) to a live waiter, flagged ABANDONED. Returns how many it handed on.
   */
  threadExited(threadId: number): number {
    const { lifetime, table } = this.memory;
    const dead = lifetime.exited(threadId);
    if (dead.length === 0) return 0;
    table.refresh(); // every slot handed out so far, by any thread
    const words = this.words;
    const holders = this.holders;
    // Tokens, not slots: abandon only the generation the dead thread held, never a re-added one.
    const held: number[] = [];
    for (let slot = 0; slot < words.length; slot++) {
      if (!dead.includes(holderAttachment(holders[slot]!))) continue;
      const word = Atomics.load(words, slot);
      const state = word & STATE;
      if ((state === ACTIVE || state === REARMING) && holderGen(holders[slot]!) === genOf(word)) held.push(tokenOf(slot, genOf(word)));
    }
    if (held.length > 0) Atomics.wait(pause, 0, 0, CLAIM_GRACE_MS);
    let handedOn = 0;
    for (const token of held) {
      const slot = slotOfToken(token);
      const owner = holders[slot]!;
      // A live thread claimed it meanwhile, or the slot was taken again.
      if (!dead.includes(holderAttachment(owner)) || holderGen(owner) !== genOfToken(token)) continue;
      const r = abandon(words, slot, genOfToken(token));
      if (r === NOT_LIVE) continue;
      // A live waiter may have claimed the abandoned event already: its holder word stays.
      Atomics.compareExchange(holders, slot, owner, 0);
      handedOn++;
      if (r === FORCED_PUSH) this.memory.queue.push(slot);
    }
    if (handedOn > 0) this.backend.wake();
    lifetime.free(dead);
    return handedOn;
  }

  /**
   * The last user is gone: wait out any rearm still in its kernel call, then free the kernel
   * objects, and the memory too when no other thread can reach it.
   */
  private finalize(): void {
    this.memory.table.refresh();
    const words = this.words;
    for (let slot = 0; slot < words.length; slot++) {
      for (let spins = 0; (Atomics.load(words, slot) & STATE) === REARMING; spins++) backOff(spins);
    }
    this.backend.close();
    recycleMemory(this.memory);
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Spin briefly, then sleep in growing steps; Atomics.wait is allowed on every Node thread. */
export function backOff(spins: number): void {
  if (spins < 64) return;
  Atomics.wait(pause, 0, 0, Math.min(1, (spins - 63) * 0.01));
}
