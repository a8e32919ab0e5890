/**
 * The reactor's API, the same on every OS: argument checks, then the table's transitions and
 * the engine. Which kernel queue and which event loop it drives are handed to it (src/reactor.ts).
 */
import type { Backend, BackendKind } from './backend.js';
import { closedError, notLive, ReactorError } from './errors.js';
import { Engine, backOff, type EngineOptions } from './engine.js';
import { Events } from './events.js';
import { checkFd, checkInterest, checkMode, checkReady, checkTimeout, Mode } from './flags.js';
import { checkOptions, type AddOptions } from './options.js';
import type { LoopDriver, StopWatching } from './loop.js';
import { describe, NOTIFIED, type ReactorHandle, type ReactorMemory } from './memory.js';
import {
  abortRearm,
  ALREADY_FORCED,
  beginDelete,
  beginRearm,
  BUSY,
  EDGE,
  endRearm,
  force,
  FORCED_PUSH,
  genOfToken,
  isLive,
  NOT_LIVE,
  OK,
  ONESHOT,
  slotOfToken,
} from './state-machine.js';

/**
 * A dispatch-once event reactor shared by many threads. Each registration's event is active in
 * at most one thread at a time: from its delivery until the handler calls `rearm` or `delete`.
 * `Reactor` (the package's export) opens it on this platform's kernel queue.
 */
export class CoreReactor {
  private readonly engine: Engine;

  protected constructor(
    private readonly backend: Backend,
    private readonly memory: ReactorMemory,
    private readonly loopDriver: LoopDriver,
    options: EngineOptions,
  ) {
    this.engine = new Engine(backend, memory, options);
  }

  /** The table's state words, as far as this thread's view of them reaches (see `slotOf`). */
  private get words(): Int32Array {
    return this.memory.table.words;
  }

  /** `flush`, bound once: the microtask that applies what a thread staged when it yields. */
  private readonly flushStaged = (): void => this.flush();

  /** The kernel queue in use. */
  get kind(): BackendKind {
    return this.backend.kind;
  }

  /** The most registrations alive at once. */
  get capacity(): number {
    return this.memory.table.capacity;
  }

  /** Bytes of shared state per registration, as chosen at `open`. */
  get stateBytes(): number {
    return this.memory.state.bytes;
  }

  /** True once any thread has called `close`. */
  get closed(): boolean {
    return this.memory.lifetime.closed;
  }

  /**
   * Registers fd, armed. Returns its token, a safe integer that is never reused for another
   * registration while this one lives, and never valid again after it is deleted.
   *
   * @example
   * const token = r.add(sock, Interest.READABLE, { mode: Mode.DISPATCH });
   */
  add(fd: number, interest: number, options: AddOptions = {}): number {
    checkFd(fd);
    checkInterest(interest);
    checkOptions(options, ADD_OPTIONS, 'add');
    const mode = options.mode === undefined ? this.memory.mode : checkMode(options.mode);
    // Without kernel edges (IOCP), EDGE is DISPATCH.
    const edge = mode === Mode.EDGE && this.backend.edges;
    const bits = mode === Mode.ONESHOT ? ONESHOT : edge ? EDGE : 0;
    const { table, state } = this.memory;
    state.checkInitial(options.state);
    const engine = this.engine;
    engine.enter();
    try {
      const token = table.allocate(fd, interest, bits);
      if (token === -1) {
        throw new ReactorError(
          'EEXIST',
          `fd ${fd} is already registered; closing an fd does not delete its registration: delete the old token first`,
        );
      }
      if (token === -2) {
        throw new ReactorError('ENOSPC', `all ${this.capacity} registrations are in use: delete some, or open with a larger capacity`);
      }
      const slot = slotOfToken(token);
      state.initialize(slot, options.state, table.lastFresh);
      // Not armed in the kernel until here, and its token not yet returned: nothing can be
      // delivered for it before its state is written.
      try {
        this.backend.add(fd, interest, token, edge);
      } catch (e) {
        beginDelete(this.words, slot, genOfToken(token));
        table.free(slot);
        throw e;
      }
      return token;
    } finally {
      engine.leave();
    }
  }

  /**
   * Ends the handling of a delivered event and re-arms it, optionally with a new interest.
   * DISPATCH: readiness still present is delivered again (level semantics). EDGE: no system
   * call; what arrived while it was held is delivered now, and `stillReady` (Ready bits the
   * handler left unconsumed, say READABLE when it stopped reading with data left) is delivered
   * again too. A force made meanwhile is delivered now. Only the thread holding the event may
   * call it.
   *
   * @example
   * r.rearm(token, Interest.READABLE | Interest.WRITABLE);
   */
  rearm(token: number, interest?: number, stillReady = 0): void {
    const slot = this.slotOf(token);
    const gen = genOfToken(token);
    const nextInterest = interest === undefined ? 0 : checkInterest(interest);
    const still = stillReady === 0 ? 0 : checkReady(stillReady); // DISPATCH re-checks readiness itself
    const { lifetime, table } = this.memory;
    // A closed reactor's table may be another's now (recycled by this thread, so a plain read sees it).
    if (lifetime.closedHere) throw closedError();
    const words = table.words;
    if ((words[slot]! & EDGE) !== 0) return this.engine.rearmEdge(token, slot, gen, nextInterest, still);
    // No lifetime count here, to keep the hot path short: a REARMING slot holds the kernel
    // objects open instead (finalize waits until no slot is REARMING), and CLOSED is read
    // after entering REARMING, so either this call sees it or the finalizer sees the slot.
    if (this.engine.heldByAnother(slot, gen)) throw this.engine.rearmError(token, slot, gen, false);
    const r = beginRearm(words, slot, gen);
    if (r !== OK) throw this.engine.rearmError(token, slot, gen, r === NOT_LIVE);
    if (lifetime.closed) {
      abortRearm(words, slot);
      throw closedError();
    }
    if (nextInterest !== 0) table.interests[slot] = nextInterest;
    const staged = this.engine.staged;
    if (staged !== undefined) {
      // The first staged re-arm counts this thread in as a user of the kernel objects until
      // the batch is applied, so close() frees them only after that (or after discarding it).
      if (staged.count === 0) {
        if (!lifetime.enter()) {
          abortRearm(words, slot);
          throw closedError();
        }
        // A thread that stops waiting still applies what it staged, once it yields.
        queueMicrotask(this.flushStaged);
      }
      if (staged.stage(table.fds[slot]!, table.interests[slot]!, token)) this.flush();
      return;
    }
    try {
      this.backend.rearm(table.fds[slot]!, table.interests[slot]!, token);
    } catch (e) {
      abortRearm(words, slot);
      throw e;
    }
    if (endRearm(words, slot)) this.engine.pushReady(slot);
  }

  /**
   * FORCEOS: delivers the registration exactly once more, flagged FORCED, to one thread: now if
   * it is armed, or right after its handler re-arms if one holds it, never concurrently.
   * Returns false if a force is already pending.
   *
   * @example
   * if (idle) r.forceOneShot(token); // the handler sees Ready.FORCED and tears down
   */
  forceOneShot(token: number): boolean {
    const slot = this.slotOf(token);
    const engine = this.engine;
    engine.enter();
    try {
      const r = force(this.words, slot, genOfToken(token), false);
      if (r === NOT_LIVE) throw notLive(token);
      if (r === ALREADY_FORCED) return false;
      if (r === FORCED_PUSH) engine.pushReady(slot);
      return true;
    } finally {
      engine.leave();
    }
  }

  /**
   * Sets, moves or (with null) cancels the registration's deadline, from any thread. When it
   * passes, the registration is forced once: delivered flagged FORCED and TIMEOUT, to one
   * waiter, or right after its handler re-arms if one holds it. A deadline fires once; set it
   * again for the next one. Thousands cost no fd: they share one heap, and waiters sleep no
   * longer than the earliest.
   *
   * @example
   * r.setDeadline(token, 30_000); // idle timeout: refresh it on every read
   */
  setDeadline(token: number, ms: number | null): void {
    const slot = this.slotOf(token);
    const gen = genOfToken(token);
    if (ms !== null && (typeof ms !== 'number' || !(ms >= 0) || ms > 0x7fffffff)) {
      throw new ReactorError('EINVAL', `a deadline is a number of milliseconds from 0 to 2^31-1, or null to cancel it; got ${String(ms)}`);
    }
    const engine = this.engine;
    const deadlines = this.memory.deadlines;
    engine.enter();
    try {
      if (!isLive(this.words, slot, gen)) throw notLive(token);
      if (ms === null) {
        deadlines.cancel(slot);
        return;
      }
      // Waiters sleep no longer than the earliest deadline: a new earliest must wake one.
      if (deadlines.set(slot, gen, deadlines.now() + ms)) engine.wakeSleeper();
    } finally {
      engine.leave();
    }
  }

  /**
   * The registration's shared state: a view of its `stateBytes` bytes, zeroed when it was
   * added. Read and write it while holding the event; writes past its end are dropped, as for
   * any typed array, so copy in with `writeState`, which refuses what does not fit.
   *
   * @example
   * const st = r.state(token); const pending = new DataView(st.buffer, st.byteOffset).getUint32(0, true);
   */
  state(token: number): Uint8Array {
    return this.memory.state.view(this.liveSlot(token));
  }

  /**
   * Where the registration's state starts in `stateBuffer`: for a handler that keeps one view
   * of every registration's state instead of making one per event.
   *
   * @example
   * const all = r.stateBuffer; const at = r.stateOffset(token); all[at] = 1;
   */
  stateOffset(token: number): number {
    return this.liveSlot(token) * this.memory.state.bytes;
  }

  /** Every registration's state, `stateBytes` each, slot after slot: one view for this thread. */
  get stateBuffer(): Uint8Array {
    if (this.closed) throw closedError();
    return this.memory.state.all;
  }

  /**
   * Copies `data` into the registration's shared state at `offset`. EMSGSIZE if it does not
   * fit: never a silent truncation.
   *
   * @example
   * r.writeState(token, unsent, 4);
   */
  writeState(token: number, data: Uint8Array, offset = 0): void {
    this.memory.state.write(this.liveSlot(token), data, offset);
  }

  /**
   * Applies this thread's staged re-arms now (with `batchRearms`; otherwise there are none).
   * `wait`, `delete` and `close` do it themselves.
   *
   * @example
   * r.flush(); // before this thread stops waiting for a while
   */
  flush(): void {
    this.engine.flush();
  }

  /**
   * Deletes a registration from any thread. Its token is dead at once: no event is delivered
   * for it afterwards and every call with it fails with ENOENT. Succeeds if the fd was already
   * closed.
   *
   * @example
   * r.delete(token); close(fd);
   */
  delete(token: number): void {
    const slot = this.slotOf(token);
    const gen = genOfToken(token);
    const engine = this.engine;
    engine.enter();
    try {
      engine.flush(); // a re-arm of this token staged by this thread would otherwise never end
      for (let spins = 0; ; spins++) {
        const r = beginDelete(this.words, slot, gen);
        if (r === OK) break;
        if (r !== BUSY) throw notLive(token);
        backOff(spins); // a rearm's kernel call is in flight: it ends in microseconds
      }
      engine.freeSlot(slot, token, false);
    } finally {
      engine.leave();
    }
  }

  /**
   * Waits for events and fills `events`; returns how many. -1 (the default) waits for ever.
   * Returns 0 on timeout, after `notify`, or when the reactor is closed meanwhile. Blocks the
   * calling thread: on the main thread prefer a timeout of 0.
   *
   * @example
   * const n = r.wait(ev, 1000);
   */
  wait(events: Events, timeoutMs: number = -1): number {
    if (!(events instanceof Events)) throw new ReactorError('EINVAL', 'wait needs an Events batch: new Events(capacity)');
    return this.engine.wait(events, checkTimeout(timeoutMs));
  }

  /**
   * Delivers on this thread's Node event loop, without blocking it: onEvents(events, n) runs
   * whenever events arrive, at most 16 batches or 4 ms per loop turn, until the returned function is
   * called or the reactor closes. The handler holds each event as usual (rearm or delete it),
   * and worker threads may wait on the same reactor meanwhile. On epoll and kqueue the
   * reactor's fd is polled by Node's own libuv; on IOCP, which has no pollable fd, it looks
   * every millisecond: there, prefer worker threads with `wait`.
   *
   * @example
   * const stop = r.watch((ev, n) => { for (let i = 0; i < n; i++) handle(ev.token(i), ev.readiness(i)); });
   */
  watch(onEvents: (events: Events, n: number) => void, options: { readonly capacity?: number } = {}): StopWatching {
    if (typeof onEvents !== 'function') throw new ReactorError('EINVAL', 'watch needs a function (events, n) => void');
    checkOptions(options, WATCH_OPTIONS, 'watch');
    const events = new Events(options.capacity === undefined ? 64 : options.capacity);
    if (this.closed) throw closedError();
    return this.loopDriver.watch(this.engine.loopSource(), events, onEvents);
  }

  /**
   * `wait` for the event loop: resolves with how many events were delivered into `events`, or
   * 0 on timeout, after `notify`, or when the reactor is closed meanwhile. Never blocks.
   *
   * @example
   * const n = await r.waitAsync(ev, 1000);
   */
  waitAsync(events: Events, timeoutMs: number = -1): Promise<number> {
    try {
      if (!(events instanceof Events)) throw new ReactorError('EINVAL', 'waitAsync needs an Events batch: new Events(capacity)');
      const timeout = checkTimeout(timeoutMs);
      if (this.closed) throw closedError();
      return this.loopDriver.waitAsync(this.engine.loopSource(), events, timeout);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Makes one blocked `wait` return (0 if it has nothing else), or the next one if none is
   * blocked.
   *
   * @example
   * r.notify();
   */
  notify(): void {
    const engine = this.engine;
    engine.enter();
    try {
      Atomics.store(this.memory.signals, NOTIFIED, 1);
      engine.wakeSleeper();
    } finally {
      engine.leave();
    }
  }

  /**
   * Closes the reactor for every thread: blocked waits return promptly, later calls fail with
   * ECLOSED, and the kernel objects are released once the last waiter has left. Idempotent.
   *
   * @example
   * r.close();
   */
  close(): void {
    const lifetime = this.memory.lifetime;
    if (!lifetime.enter()) return;
    this.engine.flush();
    lifetime.close();
    try {
      this.backend.wake();
    } finally {
      this.engine.leave();
    }
  }

  /**
   * Call from a Worker's `'exit'` event with its `threadId` (read when the Worker was made: it is
   * -1 once the thread is gone): every event that thread held, or was re-arming, is delivered
   * once more to a live waiter, flagged ABANDONED (and FORCED or TIMEOUT if a force or deadline
   * was pending), and the thread is counted out of any call it died in, so `close()` still frees
   * the kernel objects. `runWorkers` calls it itself. Returns how many events were handed on.
   *
   * @example
   * const worker = new Worker(file, { workerData: { reactor: r.share() } });
   * const id = worker.threadId;
   * worker.on('exit', () => r.threadExited(id));
   */
  threadExited(threadId: number): number {
    if (!Number.isSafeInteger(threadId) || threadId < 0) {
      throw new ReactorError('EINVAL', `threadExited takes the Worker's threadId, a non-negative integer; got ${String(threadId)}`);
    }
    return this.engine.threadExited(threadId);
  }

  /**
   * A structured-cloneable handle for `Reactor.attach` in a worker thread.
   *
   * @example
   * new Worker(file, { workerData: { reactor: r.share() } });
   */
  share(): ReactorHandle {
    if (this.closed) throw closedError();
    return describe(this.memory, this.backend.share());
  }

  private slotOf(token: number): number {
    if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 0) {
      throw new ReactorError('EINVAL', `a token is a non-negative safe integer returned by add(), got ${String(token)}`);
    }
    const slot = slotOfToken(token);
    // Past this thread's view: another thread may have taken it since, or no one ever did.
    if (!this.memory.table.covers(slot)) throw notLive(token);
    return slot;
  }

  /** The slot of a live token; ENOENT otherwise, ECLOSED once the reactor is closed. */
  private liveSlot(token: number): number {
    const slot = this.slotOf(token);
    if (this.closed) throw closedError();
    if (!isLive(this.words, slot, genOfToken(token))) throw notLive(token);
    return slot;
  }

}

const ADD_OPTIONS: readonly (keyof AddOptions)[] = ['mode', 'state'];
const WATCH_OPTIONS: readonly string[] = ['capacity'];
