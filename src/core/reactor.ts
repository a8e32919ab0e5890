/** Reactor: the public API, composing a Backend, the shared table and the ready queue. */
import { enableEach, RawEvents, type Backend, type BackendHandle, type BackendKind } from './backend.js';
import { ReactorError } from './errors.js';
import { Events } from './events.js';
import { checkFd, checkInterest, checkMode, checkTimeout, Mode } from './flags.js';
import { Deadlines, NONE, type DeadlineMemory } from './deadlines.js';
import { Lifetime } from './lifetime.js';
import { waitAsync, watch, type LoopSource, type StopWatching } from '../loop/watch.js';
import { ReadyQueue } from './ready-queue.js';
import { RearmBatch } from './rearm-batch.js';
import {
  abortRearm,
  ALREADY_FORCED,
  beginDelete,
  beginRearm,
  BUSY,
  claim,
  claimQueued,
  deliveredFlags,
  endRearm,
  force,
  FORCED_PUSH,
  genOf,
  genOfToken,
  isLive,
  slotOfToken,
  MUST_FREE,
  NOT_LIVE,
  OK,
  REARMING,
  SLOT_LIMIT,
  STATE,
  Table,
  tokenOf,
  type TableMemory,
} from './table.js';
import { attachBackend, openBackend, type BackendChoice } from '../backends/select.js';

/** Options of `Reactor.open`. */
export interface OpenOptions {
  /** The kernel queue: `auto` (the platform's own, the default), `epoll`, `kqueue` or `iocp`. */
  readonly backend?: BackendChoice;
  /** The most registrations alive at once (default 65536, at most 2^22). */
  readonly capacity?: number;
  /**
   * Bytes of shared state per registration (default 0, at most 65536), visible from every
   * thread: what a handler leaves there (a half-read request, output a partial send left) is
   * there for the next handler of that registration, in whatever thread it runs.
   */
  readonly stateBytes?: number;
  /** Batch this thread's re-arms (default true): see `AttachOptions.batchRearms`. */
  readonly batchRearms?: boolean;
  /**
   * Apply batched re-arms through the native helper where its prebuild for this platform
   * exists (default true; also off when EVDISPATCH_NATIVE=0). Every thread of the reactor
   * follows this choice.
   */
  readonly native?: boolean;
}

/** Options of `Reactor.attach`: how this thread uses the shared reactor. */
export interface AttachOptions {
  /**
   * Stage this thread's re-arms and apply them together with its next poll, in one kernel trip
   * where the backend can (kqueue's changelist; epoll with the native helper), instead of one
   * call per re-arm (default true). A staged re-arm is applied by this thread's next `wait`,
   * `flush`, `delete` or `close`, or else as soon as the thread returns to its event loop (a
   * microtask), and until then its registration is neither armed nor deletable by other
   * threads. A re-arm that fails when applied comes back from `wait` as a delivery flagged
   * ERROR. False applies every re-arm in `rearm` itself, and throws its kernel errors there.
   */
  readonly batchRearms?: boolean;
}

/** Options of `Reactor.add`. */
export interface AddOptions {
  /** DISPATCH (default): disabled on delivery until `rearm`. ONESHOT: freed on delivery. */
  readonly mode?: Mode;
  /**
   * The registration's first shared state (at most `stateBytes`; the rest is zeroed), written
   * before it is armed: whichever thread gets its first event finds it there.
   */
  readonly state?: Uint8Array;
}

/** What `share` returns: structured-cloneable, for `Reactor.attach` in a worker thread. */
export interface ReactorHandle {
  readonly backend: BackendHandle;
  readonly table: TableMemory;
  readonly queue: SharedArrayBuffer;
  readonly signals: SharedArrayBuffer;
  readonly lifetime: SharedArrayBuffer;
  readonly deadlines: DeadlineMemory;
  readonly state: StateMemory;
}

/** The per-registration state: `bytes` for each slot, slot after slot. */
interface StateMemory {
  readonly bytes: number;
  readonly buffer: SharedArrayBuffer;
}

/** Int32 words of the signals buffer, each on its own cache line. */
const NOTIFIED = 0;
const SLEEPERS = 16;
const SIGNAL_INTS = 32;

/** Ready bits a delivery result carries to the user (MUST_FREE and above stay inside). */
const USER_FLAGS = MUST_FREE - 1;

/**
 * A dispatch-once event reactor shared by many threads. Each registration's event is active in
 * at most one thread at a time: from its delivery until the handler calls `rearm` or `delete`.
 *
 * @example
 * const r = Reactor.open();
 * const t = r.add(fd, Interest.READABLE);
 * const ev = new Events(64);
 * const n = r.wait(ev, 1000);
 * for (let i = 0; i < n; i++) { handle(ev.token(i), ev.flag(i)); r.rearm(ev.token(i)); }
 */
export class Reactor {
  /** This thread's staged re-arms (batchRearms), applied with its next poll. */
  private readonly staged: RearmBatch | undefined;
  /** Whether the last wait returned because it consumed a `notify`. */
  private lastNotified = false;
  private loop: LoopSource | undefined;
  private stateView: Uint8Array | undefined;
  /** This thread's buffer for the backend's events, grown to the largest Events seen. */
  private raw = new RawEvents(1);
  private readonly words: Int32Array;
  private readonly signals: Int32Array;

  /**
   * Opens a reactor on this platform's kernel queue.
   *
   * @example
   * const r = Reactor.open({ capacity: 10000 });
   */
  static open(options: OpenOptions = {}): Reactor {
    const capacity = options.capacity ?? 65536;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > SLOT_LIMIT) {
      throw new ReactorError('EINVAL', `capacity must be an integer from 1 to ${SLOT_LIMIT}, got ${String(capacity)}`);
    }
    const stateBytes = options.stateBytes ?? 0;
    if (!Number.isInteger(stateBytes) || stateBytes < 0 || stateBytes > 65536 || capacity * stateBytes > 2 ** 31) {
      throw new ReactorError(
        'EINVAL',
        `stateBytes must be an integer from 0 to 65536, and capacity × stateBytes at most 2 GiB; got ${String(stateBytes)}`,
      );
    }
    const backend = openBackend(options.backend ?? 'auto', capacity, options.native ?? true);
    return new Reactor(
      backend,
      Table.create(capacity),
      ReadyQueue.create(capacity),
      new SharedArrayBuffer(SIGNAL_INTS * 4),
      Lifetime.memory(),
      Deadlines.create(capacity),
      { bytes: stateBytes, buffer: new SharedArrayBuffer(capacity * stateBytes) },
      options.batchRearms !== false,
    );
  }

  /**
   * Joins, from another thread, the reactor that `share()` described.
   *
   * @example
   * // in a worker: const r = Reactor.attach(workerData.reactor);
   */
  static attach(handle: ReactorHandle, options: AttachOptions = {}): Reactor {
    const h = handle as Partial<ReactorHandle> | null;
    if (
      h === null ||
      typeof h !== 'object' ||
      typeof h.backend?.kind !== 'string' ||
      !(h.table?.buffer instanceof SharedArrayBuffer) ||
      !(h.queue instanceof SharedArrayBuffer) ||
      !(h.signals instanceof SharedArrayBuffer) ||
      !(h.lifetime instanceof SharedArrayBuffer) ||
      !(h.deadlines?.buffer instanceof SharedArrayBuffer) ||
      !(h.state?.buffer instanceof SharedArrayBuffer)
    ) {
      throw new ReactorError('EINVAL', 'not a reactor handle: pass what reactor.share() returned');
    }
    const lifetime = new Lifetime(h.lifetime);
    if (lifetime.closed) throw closedError();
    return new Reactor(
      attachBackend(h.backend),
      Table.attach(h.table),
      new ReadyQueue(h.queue),
      h.signals,
      h.lifetime,
      new Deadlines(h.deadlines),
      h.state,
      options.batchRearms !== false,
    );
  }

  private readonly lifetime: Lifetime;

  private constructor(
    private readonly backend: Backend,
    private readonly table: Table,
    private readonly queue: ReadyQueue,
    signals: SharedArrayBuffer,
    lifetime: SharedArrayBuffer,
    private readonly deadlines: Deadlines,
    private readonly stateMemory: StateMemory,
    batchRearms: boolean,
  ) {
    this.words = table.words;
    const owner = { pushReady: (slot: number) => this.pushReady(slot), leave: () => this.leave() };
    this.staged = batchRearms ? new RearmBatch(this.words, owner) : undefined;
    this.signals = new Int32Array(signals);
    this.lifetime = new Lifetime(lifetime);
  }

  /** `flush`, bound once: the microtask that applies what a thread staged when it yields. */
  private readonly flushStaged = (): void => this.flush();

  /** The kernel queue in use. */
  get kind(): BackendKind {
    return this.backend.kind;
  }

  /** The most registrations alive at once. */
  get capacity(): number {
    return this.table.capacity;
  }

  /** Bytes of shared state per registration, as chosen at `open`. */
  get stateBytes(): number {
    return this.stateMemory.bytes;
  }

  /** True once any thread has called `close`. */
  get closed(): boolean {
    return this.lifetime.closed;
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
    const oneshot = checkMode(options.mode ?? Mode.DISPATCH) === Mode.ONESHOT;
    const initial = options.state;
    if (initial !== undefined && (!(initial instanceof Uint8Array) || initial.length > this.stateMemory.bytes)) {
      throw new ReactorError(
        initial instanceof Uint8Array ? 'EMSGSIZE' : 'EINVAL',
        `state must be a Uint8Array of at most the ${this.stateMemory.bytes} bytes per registration chosen at open`,
      );
    }
    this.enter();
    try {
      const token = this.table.allocate(fd, interest, oneshot);
      if (token === -1) {
        throw new ReactorError(
          'EEXIST',
          `fd ${fd} is already registered; closing an fd does not delete its registration: delete the old token first`,
        );
      }
      if (token === -2) {
        throw new ReactorError('ENOSPC', `all ${this.capacity} registrations are in use: delete some, or open with a larger capacity`);
      }
      const bytes = this.stateMemory.bytes;
      if (bytes > 0) {
        const state = new Uint8Array(this.stateMemory.buffer, slotOfToken(token) * bytes, bytes);
        state.fill(0, initial?.length ?? 0);
        if (initial !== undefined) state.set(initial);
      }
      // Not armed in the kernel until here, and its token not yet returned: nothing can be
      // delivered for it before its state is written.
      try {
        this.backend.add(fd, interest, token);
      } catch (e) {
        beginDelete(this.words, slotOfToken(token), genOfToken(token));
        this.table.free(slotOfToken(token));
        throw e;
      }
      return token;
    } finally {
      this.leave();
    }
  }

  /**
   * Ends the handling of a delivered event and re-arms it, optionally with a new interest.
   * Readiness still present is delivered again (level semantics); a force made meanwhile is
   * delivered now. Only the thread holding the event may call it.
   *
   * @example
   * r.rearm(token, Interest.READABLE | Interest.WRITABLE);
   */
  rearm(token: number, interest?: number): void {
    const slot = this.slotOf(token);
    const gen = genOfToken(token);
    const nextInterest = interest === undefined ? 0 : checkInterest(interest);
    const words = this.words;
    // No lifetime count here, to keep the hot path short: a REARMING slot holds the kernel
    // objects open instead (finalize waits until no slot is REARMING), and CLOSED is read
    // after entering REARMING, so either this call sees it or the finalizer sees the slot.
    const r = beginRearm(words, slot, gen);
    if (r !== OK) throw this.rearmError(token, slot, gen, r === NOT_LIVE);
    if (this.lifetime.closed) {
      abortRearm(words, slot);
      throw closedError();
    }
    const table = this.table;
    if (nextInterest !== 0) table.interests[slot] = nextInterest;
    const staged = this.staged;
    if (staged !== undefined) {
      // The first staged re-arm counts this thread in as a user of the kernel objects until
      // the batch is applied, so close() frees them only after that (or after discarding it).
      if (staged.count === 0) {
        if (!this.lifetime.enter()) {
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
      this.backend.enable(table.fds[slot]!, table.interests[slot]!, token);
    } catch (e) {
      abortRearm(words, slot);
      throw e;
    }
    if (endRearm(words, slot)) this.pushReady(slot);
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
    this.enter();
    try {
      const r = force(this.words, slot, genOfToken(token), false);
      if (r === NOT_LIVE) throw notLive(token);
      if (r === ALREADY_FORCED) return false;
      if (r === FORCED_PUSH) this.pushReady(slot);
      return true;
    } finally {
      this.leave();
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
    this.enter();
    try {
      if (!isLive(this.words, slot, gen)) throw notLive(token);
      if (ms === null) {
        this.deadlines.cancel(slot);
        return;
      }
      const earliest = this.deadlines.set(slot, gen, this.deadlines.now() + ms);
      // Waiters sleep no longer than the earliest deadline: a new earliest must wake one.
      if (earliest && Atomics.load(this.signals, SLEEPERS) > 0) this.backend.wake();
    } finally {
      this.leave();
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
    return new Uint8Array(this.stateMemory.buffer, this.stateOffset(token), this.stateMemory.bytes);
  }

  /**
   * Where the registration's state starts in `stateBuffer`: for a handler that keeps one view
   * of every registration's state instead of making one per event.
   *
   * @example
   * const all = r.stateBuffer; const at = r.stateOffset(token); all[at] = 1;
   */
  stateOffset(token: number): number {
    const slot = this.slotOf(token);
    if (!isLive(this.words, slot, genOfToken(token))) throw notLive(token);
    return slot * this.stateMemory.bytes;
  }

  /** Every registration's state, `stateBytes` each, slot after slot: one view for this thread. */
  get stateBuffer(): Uint8Array {
    this.stateView ??= new Uint8Array(this.stateMemory.buffer);
    return this.stateView;
  }

  /**
   * Copies `data` into the registration's shared state at `offset`. EMSGSIZE if it does not
   * fit: never a silent truncation.
   *
   * @example
   * r.writeState(token, unsent, 4);
   */
  writeState(token: number, data: Uint8Array, offset = 0): void {
    const view = this.state(token);
    if (!(data instanceof Uint8Array)) throw new ReactorError('EINVAL', 'writeState takes a Uint8Array');
    if (!Number.isInteger(offset) || offset < 0) throw new ReactorError('EINVAL', `offset must be a non-negative integer, got ${String(offset)}`);
    if (offset + data.length > view.length) {
      throw new ReactorError(
        'EMSGSIZE',
        `${data.length} bytes at offset ${offset} do not fit the ${view.length} bytes of state per registration: open with a larger stateBytes`,
      );
    }
    view.set(data, offset);
  }

  /**
   * Applies this thread's staged re-arms now (with `batchRearms`; otherwise there are none).
   * `wait`, `delete` and `close` do it themselves.
   *
   * @example
   * r.flush(); // before this thread stops waiting for a while
   */
  flush(): void {
    const staged = this.staged;
    if (staged === undefined || staged.count === 0) return;
    enableEach(this.backend, staged.rearms);
    staged.settle();
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
    this.enter();
    try {
      this.flush(); // a re-arm of this token staged by this thread would otherwise never end
      for (let spins = 0; ; spins++) {
        const r = beginDelete(this.words, slot, gen);
        if (r === OK) break;
        if (r !== BUSY) throw notLive(token);
        backOff(spins); // a rearm's kernel call is in flight: it ends in microseconds
      }
      this.freeSlot(slot, token, false);
    } finally {
      this.leave();
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
    const timeout = checkTimeout(timeoutMs);
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

  /**
   * Delivers on this thread's Node event loop, without blocking it: onEvents(events, n) runs
   * whenever events arrive, at most 16 batches or 4 ms per loop turn, until the returned function is
   * called or the reactor closes. The handler holds each event as usual (rearm or delete it),
   * and worker threads may wait on the same reactor meanwhile. On epoll and kqueue the
   * reactor's fd is polled by Node's own libuv; on IOCP, which has no pollable fd, it looks
   * every millisecond: there, prefer worker threads with `wait`.
   *
   * @example
   * const stop = r.watch((ev, n) => { for (let i = 0; i < n; i++) handle(ev.token(i), ev.flag(i)); });
   */
  watch(onEvents: (events: Events, n: number) => void, options: { readonly capacity?: number } = {}): StopWatching {
    if (typeof onEvents !== 'function') throw new ReactorError('EINVAL', 'watch needs a function (events, n) => void');
    const events = new Events(options.capacity ?? 64);
    if (this.lifetime.closed) throw closedError();
    return watch(this.loopSource(), events, onEvents);
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
      if (this.lifetime.closed) throw closedError();
      return waitAsync(this.loopSource(), events, timeout);
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
    this.enter();
    try {
      Atomics.store(this.signals, NOTIFIED, 1);
      if (Atomics.load(this.signals, SLEEPERS) > 0) this.backend.wake();
    } finally {
      this.leave();
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
    if (!this.lifetime.enter()) return;
    this.flush();
    this.lifetime.close();
    try {
      this.backend.wake();
    } finally {
      this.leave();
    }
  }

  /**
   * A structured-cloneable handle for `Reactor.attach` in a worker thread.
   *
   * @example
   * new Worker(file, { workerData: { reactor: r.share() } });
   */
  share(): ReactorHandle {
    return {
      backend: this.backend.share(),
      table: this.table.memory,
      queue: this.queue.buffer,
      signals: this.signals.buffer as SharedArrayBuffer,
      lifetime: this.lifetime.buffer,
      deadlines: this.deadlines.memory,
      state: this.stateMemory,
    };
  }

  /** This reactor as the loop integration sees it. */
  private loopSource(): LoopSource {
    if (this.loop !== undefined) return this.loop;
    const reactor = this;
    this.loop = {
      pollFd: this.backend.pollFd(),
      poll(events) {
        try {
          return reactor.wait(events, 0);
        } catch (e) {
          if (e instanceof ReactorError && e.code === 'ECLOSED') return 0;
          throw e;
        }
      },
      flush() {
        reactor.flush();
      },
      untilDeadline() {
        const due = reactor.deadlines.earliest();
        return due === NONE ? -1 : Math.max(0, Math.ceil(due - reactor.deadlines.now()));
      },
      attachWatcher() {
        if (!reactor.lifetime.enter()) return false;
        Atomics.add(reactor.signals, SLEEPERS, 1);
        return true;
      },
      detachWatcher() {
        Atomics.sub(reactor.signals, SLEEPERS, 1);
        reactor.leave();
      },
      get notified() {
        return reactor.lastNotified;
      },
      get closed() {
        return reactor.closed;
      },
    };
    return this.loop;
  }

  /** Kernel events first, then the ready queue, until something is delivered or time is up. */
  private collect(events: Events, timeout: number): number {
    const signals = this.signals;
    const start = timeout > 0 ? performance.now() : 0;
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
        got = room > 0 ? this.backend.rearmAndPoll(staged.rearms, this.raw, room) : (enableEach(this.backend, staged.rearms), 0);
        staged.settle();
      } else if (n === 0 && sleep !== 0 && this.queue.length === 0) {
        // Count in as a sleeper before the last checks: a push, notify or close that misses
        // this waiter's checks sees the count and wakes it.
        Atomics.add(signals, SLEEPERS, 1);
        const pending = this.queue.length !== 0 || Atomics.load(signals, NOTIFIED) !== 0 || this.lifetime.closed;
        try {
          got = this.backend.wait(this.raw, room, pending ? 0 : sleep);
        } finally {
          Atomics.sub(signals, SLEEPERS, 1);
        }
      } else {
        got = room > 0 ? this.backend.wait(this.raw, room, 0) : 0;
      }
      n = this.claimKernelEvents(events, n, got);
      n = this.claimQueued(events, n, events.capacity);
      // No room left for the rest of the queue: hand it to another waiter.
      if (this.queue.length !== 0 && Atomics.load(signals, SLEEPERS) > 0) this.backend.wake();
      // The backend may have swallowed a wake-up meant for a close or a notify: pass it on.
      if (this.lifetime.closed) {
        this.backend.wake();
        return n;
      }
      if (n > 0) {
        if (Atomics.load(signals, NOTIFIED) !== 0 && Atomics.load(signals, SLEEPERS) > 0) this.backend.wake();
        return n;
      }
      if (Atomics.exchange(signals, NOTIFIED, 0) !== 0) {
        this.lastNotified = true;
        return 0;
      }
      if (remaining === 0) return 0;
      if (remaining > 0) {
        remaining = Math.ceil(timeout - (performance.now() - start));
        if (remaining <= 0) return 0;
      }
    }
  }

  /**
   * Turns every passed deadline into a TIMEOUT force (queued if armed), and returns how long
   * the kernel wait may sleep: `remaining`, cut short by the next deadline.
   */
  private fireDeadlines(remaining: number): number {
    const deadlines = this.deadlines;
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
    if (force(this.words, slot, gen, true) === FORCED_PUSH) this.queue.push(slot);
  };

  /** Claims the backend's `got` raw events into `events` from index n; returns the new count. */
  private claimKernelEvents(events: Events, n: number, got: number): number {
    const raw = this.raw;
    const capacity = this.table.capacity;
    for (let i = 0; i < got; i++) {
      const key = raw.keys[i]!;
      const slot = slotOfToken(key);
      if (slot >= capacity) continue;
      const gen = genOfToken(key);
      const flags = claim(this.words, slot, gen, raw.readiness[i]!);
      if (flags <= 0) continue;
      events.tokens[n] = key;
      events.flags[n] = flags & USER_FLAGS;
      n++;
      if (flags & MUST_FREE) this.freeSlot(slot, key, true);
    }
    return n;
  }

  /** Pops the ready queue into `events` from index n up to `limit`; returns the new count. */
  private claimQueued(events: Events, n: number, limit: number): number {
    while (n < limit) {
      const slot = this.queue.pop();
      if (slot < 0) return n;
      const word = claimQueued(this.words, slot);
      if (word === 0) continue;
      const flags = deliveredFlags(word, 0);
      const token = tokenOf(slot, genOf(word));
      events.tokens[n] = token;
      events.flags[n] = flags & USER_FLAGS;
      n++;
      if (flags & MUST_FREE) this.freeSlot(slot, token, true);
    }
    return n;
  }

  /**
   * A DELETING slot: remove its kernel entry, then free it with the next generation. `retire`
   * (a ONESHOT delivery) remembers the generation, so a rearm of it says why it fails.
   */
  private freeSlot(slot: number, token: number, retire: boolean): void {
    const table = this.table;
    try {
      this.backend.remove(table.fds[slot]!, token);
    } finally {
      if (retire) table.retired[slot] = genOfToken(token);
      this.deadlines.cancel(slot);
      table.free(slot);
    }
  }

  /** Queues a software delivery and wakes a sleeping waiter, if the reactor is still open. */
  private pushReady(slot: number): void {
    this.queue.push(slot);
    if (Atomics.load(this.signals, SLEEPERS) === 0 || !this.lifetime.enter()) return;
    try {
      this.backend.wake();
    } finally {
      this.leave();
    }
  }

  private slotOf(token: number): number {
    if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 0) {
      throw new ReactorError('EINVAL', `a token is a non-negative safe integer returned by add(), got ${String(token)}`);
    }
    const slot = slotOfToken(token);
    if (slot >= this.table.capacity) throw notLive(token);
    return slot;
  }

  private rearmError(token: number, slot: number, gen: number, dead: boolean): ReactorError {
    if (this.lifetime.closed) return closedError();
    if (!dead) {
      return new ReactorError('EINVAL', `token ${token} is not held by a handler: rearm only after wait() delivered it, once`);
    }
    if (gen !== 0 && this.table.retired[slot] === gen) {
      return new ReactorError('EINVAL', `token ${token} was a ONESHOT registration, freed at delivery: add the fd again instead`);
    }
    return notLive(token);
  }

  private enter(): void {
    if (this.lifetime.enter()) return;
    if (this.staged !== undefined && this.staged.count > 0) this.staged.discard();
    throw closedError();
  }

  private leave(): void {
    if (this.lifetime.leave()) this.finalize();
  }

  /** The last user is gone: wait out any rearm still in its kernel call, then free the kernel objects. */
  private finalize(): void {
    const words = this.words;
    for (let slot = 0; slot < words.length; slot++) {
      for (let spins = 0; (Atomics.load(words, slot) & STATE) === REARMING; spins++) backOff(spins);
    }
    this.backend.close();
  }
}

function notLive(token: number): ReactorError {
  return new ReactorError('ENOENT', `token ${token} is not live: its registration was deleted, or freed at delivery`);
}

function closedError(): ReactorError {
  return new ReactorError('ECLOSED', 'the reactor is closed: open a new one');
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Spin briefly, then sleep in growing steps; Atomics.wait is allowed on every Node thread. */
function backOff(spins: number): void {
  if (spins < 64) return;
  Atomics.wait(pause, 0, 0, Math.min(1, (spins - 63) * 0.01));
}
