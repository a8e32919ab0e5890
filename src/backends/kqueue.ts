/**
 * Bindings to kqueue (macOS, FreeBSD, OpenBSD, NetBSD; libkqueue on Linux when
 * EVDISPATCH_KQUEUE_LIB names it): EV_DISPATCH knotes re-armed with EV_ENABLE, EVFILT_USER wake-ups.
 */
import { rearmEach, WAKE_TOKEN, type Backend, type BackendHandle, type Fd, type RawEvents, type Rearms, type Token } from '../core/backend.js';
import { ReactorError, systemError } from '../core/errors.js';
import { Interest, Ready } from '../core/flags.js';
import { kqueueLibrary, libraryAt, type KqueueLibrary } from '../sys/kqueue.js';
import { clearErrno, Errno, errno, errnoName, files } from '../sys/posix.js';
import { atLeast, changeFailure as describeChange, isFd, type Change } from './common.js';
import {
  PROFILES,
  readField,
  writeKevent,
  type KeventProfile,
  type KqueueConstants,
  type KqueueOs,
} from '../sys/kqueue-layouts.js';

/** The EVFILT_USER ident of the wake-up knote (its own filter, so it never meets an fd's knote). */
const USER_IDENT = 0;
/** The most changes one operation stages: a delete and an add for each of the two filters. */
const MAX_CHANGES = 4;
/** The most changes one `rearmAndPoll` sends in a single kevent() call (two per re-arm). */
const MAX_BATCH_CHANGES = 1024;
/** Stands for "kevent failed and left errno at 0" (libkqueue does, see `add`). */
const NO_ERRNO = -1;

/** What `share` returns: enough for another thread to drive the same kqueue. */
export interface KqueueHandle extends BackendHandle {
  readonly kind: 'kqueue';
  readonly kq: number;
  readonly userIdent: number;
  /** The struct layout in use (a key of `PROFILES`). */
  readonly os: KqueueOs;
  /** The libkqueue library on Linux; null where kqueue is the C library's. */
  readonly library: string | null;
  /** Whether changes go in one batched call with EV_RECEIPT (native) or one call each (libkqueue). */
  readonly receipts: boolean;
}

/** A ReactorError for a kevent() change or wait that failed with `e`. */
function keventError(e: number, what: string): ReactorError {
  if (e === NO_ERRNO) {
    return new ReactorError('EIO', `kevent failed without setting errno: ${what}`, { syscall: 'kevent' });
  }
  return systemError('kevent', errnoName(e), e, what);
}

/** What kevent's own errnos mean for a registration. */
const KEVENT_FAILURES: Readonly<Record<number, string>> = {
  [Errno.ENOENT!]: 'the kqueue has no knote for it (was it closed?)',
  [Errno.EINVAL!]: 'this kind of file cannot be watched by kqueue',
  [NO_ERRNO]: 'libkqueue refused the change (a stale knote of a closed fd?)',
};

function changeFailure(change: Change, fd: number, e: number): string {
  return describeChange(change, fd, e, KEVENT_FAILURES);
}

/** kevent filter and flags → Ready bits. The socket error on EOF comes back in fflags. */
function readyOf(c: KqueueConstants, filter: number, flags: number, fflags: number): number {
  let ready = filter === c.EVFILT_READ ? Ready.READABLE : filter === c.EVFILT_WRITE ? Ready.WRITABLE : 0;
  if (flags & c.EV_EOF) {
    ready |= Ready.HANGUP;
    if (fflags !== 0) ready |= Ready.ERROR;
  }
  if (flags & c.EV_ERROR) ready |= Ready.ERROR;
  return ready;
}

/**
 * A kqueue. Each fd is one EV_DISPATCH knote per filter (EVFILT_READ, EVFILT_WRITE) with the
 * token in udata; both may fire, in two threads: the core keeps one of them active.
 */
export class KqueueBackend implements Backend {
  readonly kind = 'kqueue';
  readonly edges = true;
  private readonly p: KeventProfile;
  private readonly c: KqueueConstants;
  /** Staged changes, and one view per slot for one-change calls. */
  private readonly changes: Uint8Array;
  private readonly changeView: DataView;
  private readonly changeSlots: Uint8Array[] = [];
  /** EV_RECEIPT results, one per change. */
  private readonly receiptList: Uint8Array;
  private readonly receiptView: DataView;
  /** errno of each staged change after `apply` (0: done). */
  private readonly errs = new Int32Array(MAX_CHANGES);
  private staged = 0;
  private events = new Uint8Array(0);
  /** The changelist of `rearmAndPoll`. */
  private batch = new Uint8Array(0);
  private batchView = new DataView(this.batch.buffer);
  private eventView = new DataView(this.events.buffer);
  /** struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit words on every LP64 ABI. */
  private readonly timeout = new BigInt64Array(2);
  private readonly zeroTimeout = new BigInt64Array(2);

  /**
   * Opens a kqueue with its wake-up knote (EVFILT_USER, EV_CLEAR).
   *
   * @example
   * const b = KqueueBackend.open(); // on Linux: EVDISPATCH_KQUEUE_LIB=/path/to/libkqueue.so
   */
  static open(): KqueueBackend {
    const lib = kqueueLibrary();
    const kq = lib.kqueue();
    if (kq < 0) throw keventError(errno(), 'kqueue() could not create a kqueue');
    // libkqueue runs an EV_ENABLE|EV_RECEIPT through the filter's modify, which fails for sockets
    // without setting errno, so the receipt reads as success (data 0): a receipt there cannot be
    // trusted. With libkqueue every change is its own call, whose failure is its return value.
    const backend = new KqueueBackend(lib, kq, USER_IDENT, lib.path === null);
    try {
      backend.registerWake();
    } catch (e) {
      files().close(kq);
      throw e;
    }
    return backend;
  }

  /**
   * Drives, from another thread, the kqueue that `share()` described.
   *
   * @example
   * const b = KqueueBackend.attach(workerData.backend);
   */
  static attach(handle: BackendHandle): KqueueBackend {
    const h = handle as Partial<KqueueHandle>;
    const os = h.os;
    if (
      h.kind !== 'kqueue' ||
      !isFd(h.kq) ||
      h.userIdent !== USER_IDENT ||
      typeof h.receipts !== 'boolean' ||
      typeof os !== 'string' ||
      !Object.hasOwn(PROFILES, os) ||
      (h.library !== null && typeof h.library !== 'string')
    ) {
      throw new ReactorError('EINVAL', 'not a kqueue handle: pass what share() returned');
    }
    const lib = libraryAt(h.library);
    if (lib.profile.os !== os) {
      throw new ReactorError('EINVAL', `the handle's kqueue uses the ${os} layout, this thread loaded ${lib.profile.os}`);
    }
    return new KqueueBackend(lib, h.kq, h.userIdent, h.receipts);
  }

  private constructor(
    private readonly lib: KqueueLibrary,
    private readonly kq: number,
    private readonly userIdent: number,
    private readonly receipts: boolean,
  ) {
    this.p = lib.profile;
    this.c = lib.profile.constants;
    const size = this.p.size;
    this.changes = new Uint8Array(MAX_CHANGES * size);
    this.changeView = new DataView(this.changes.buffer);
    for (let i = 0; i < MAX_CHANGES; i++) this.changeSlots.push(this.changes.subarray(i * size, (i + 1) * size));
    this.receiptList = new Uint8Array(MAX_CHANGES * size);
    this.receiptView = new DataView(this.receiptList.buffer);
  }

  add(fd: Fd, interest: number, token: Token, edge: boolean): void {
    const c = this.c;
    // libkqueue never hears of a close(): a knote of a closed fd outlives it, and an EV_ADD on
    // the reused number fails (with errno 0). Deleting first clears any such leftover.
    if (this.lib.path !== null) {
      this.stage(fd, c.EVFILT_READ, c.EV_DELETE, 0, token);
      this.stage(fd, c.EVFILT_WRITE, c.EV_DELETE, 0, token);
    }
    const first = this.staged;
    // EDGE: both filters, EV_CLEAR (reported once per change of state), never re-armed.
    const flags = edge ? c.EV_ADD | c.EV_CLEAR : c.EV_ADD | c.EV_DISPATCH;
    if (edge || interest & Interest.READABLE) this.stage(fd, c.EVFILT_READ, flags, 0, token);
    if (edge || interest & Interest.WRITABLE) this.stage(fd, c.EVFILT_WRITE, flags, 0, token);
    const n = this.apply();
    let failed = 0;
    let added = 0;
    for (let i = first; i < n; i++) {
      const filter = this.filterAt(i);
      if (this.errs[i] === 0) added |= filter === c.EVFILT_READ ? Interest.READABLE : Interest.WRITABLE;
      else if (failed === 0) failed = this.errs[i]!;
    }
    if (failed === 0) return;
    // Leave nothing half-registered: drop the filter that was added.
    if (added & Interest.READABLE) this.stage(fd, c.EVFILT_READ, c.EV_DELETE, 0, token);
    if (added & Interest.WRITABLE) this.stage(fd, c.EVFILT_WRITE, c.EV_DELETE, 0, token);
    this.apply();
    throw keventError(failed, changeFailure('register', fd, failed));
  }

  rearm(fd: Fd, interest: number, token: Token): void {
    const c = this.c;
    const read = (interest & Interest.READABLE) !== 0;
    const write = (interest & Interest.WRITABLE) !== 0;
    this.stage(fd, c.EVFILT_READ, read ? c.EV_ENABLE : c.EV_DISABLE, 0, token);
    this.stage(fd, c.EVFILT_WRITE, write ? c.EV_ENABLE : c.EV_DISABLE, 0, token);
    const n = this.apply();
    // ENOENT: that filter has no knote. Disabling, it was never added; enabling, the interest
    // gained it, so add it now, unless neither filter has a knote: then the fd was closed (and
    // its number perhaps reused), and adding would watch some other file.
    let grow = 0;
    let present = false;
    for (let i = 0; i < n; i++) {
      const e = this.errs[i]!;
      if (e === 0) {
        present = true;
        continue;
      }
      if (e !== Errno.ENOENT) throw keventError(e, changeFailure('re-arm', fd, e));
      if (i === 0 ? read : write) grow |= i === 0 ? Interest.READABLE : Interest.WRITABLE;
    }
    if (grow === 0) return;
    if (!present) throw keventError(Errno.ENOENT!, changeFailure('re-arm', fd, Errno.ENOENT!));
    if (grow & Interest.READABLE) this.stage(fd, c.EVFILT_READ, c.EV_ADD | c.EV_DISPATCH, 0, token);
    if (grow & Interest.WRITABLE) this.stage(fd, c.EVFILT_WRITE, c.EV_ADD | c.EV_DISPATCH, 0, token);
    const m = this.apply();
    for (let i = 0; i < m; i++) {
      const e = this.errs[i]!;
      if (e !== 0) throw keventError(e, changeFailure('re-arm', fd, e));
    }
  }

  delete(fd: Fd, token: Token): void {
    const c = this.c;
    this.stage(fd, c.EVFILT_READ, c.EV_DELETE, 0, token);
    this.stage(fd, c.EVFILT_WRITE, c.EV_DELETE, 0, token);
    const n = this.apply();
    for (let i = 0; i < n; i++) {
      const e = this.errs[i]!;
      // ENOENT: no knote for that filter (never added, or gone with a close()).
      // EBADF: the fd was closed, and its knotes with it.
      if (e !== 0 && e !== Errno.ENOENT && e !== Errno.EBADF) throw keventError(e, changeFailure('delete', fd, e));
    }
  }

  wait(out: RawEvents, max: number, timeoutMs: number): number {
    let timeout: BigInt64Array | null = null;
    if (timeoutMs >= 0) {
      const seconds = Math.floor(timeoutMs / 1000);
      this.timeout[0] = BigInt(seconds);
      this.timeout[1] = BigInt((timeoutMs - seconds * 1000) * 1_000_000);
      timeout = this.timeout;
    }
    const n = this.lib.kevent(this.kq, null, 0, this.eventList(max), max, timeout);
    if (n < 0) {
      const e = errno();
      if (e === Errno.EINTR) return 0;
      throw keventError(e, 'waiting on the kqueue failed');
    }
    return this.decode(n, out, null);
  }

  /**
   * The staged re-arms as one changelist (EV_ENABLE for each filter of the interest, EV_DISABLE
   * for the other), applied by the same kevent() call that polls: one syscall for the batch.
   * A failed change comes back in the event list with EV_ERROR. libkqueue reports them
   * unreliably (see `open`), so there each re-arm is its own call, as `enable` makes it.
   */
  rearmAndPoll(rearms: Rearms, out: RawEvents, max: number): number {
    const c = this.c;
    if (!this.receipts || 2 * rearms.count > MAX_BATCH_CHANGES) {
      rearmEach(this, rearms);
      return this.wait(out, max, 0);
    }
    const view = this.batchChanges(2 * rearms.count * this.p.size);
    for (let i = 0; i < rearms.count; i++) {
      const fd = rearms.fds[i]!;
      const interest = rearms.interests[i]!;
      const token = rearms.tokens[i]!;
      rearms.errors[i] = 0;
      writeKevent(view, 2 * i, this.p, fd, c.EVFILT_READ, interest & Interest.READABLE ? c.EV_ENABLE : c.EV_DISABLE, 0, 0, token);
      writeKevent(view, 2 * i + 1, this.p, fd, c.EVFILT_WRITE, interest & Interest.WRITABLE ? c.EV_ENABLE : c.EV_DISABLE, 0, 0, token);
    }
    // Change errors take event slots: leave room for all of them beside the events.
    const room = max + 2 * rearms.count;
    const n = this.lib.kevent(this.kq, this.batch, 2 * rearms.count, this.eventList(room), room, this.zeroTimeout);
    if (n < 0) {
      // The changes were not all applied; applying them again one by one is harmless.
      rearmEach(this, rearms);
      return this.wait(out, max, 0);
    }
    return this.decode(n, out, rearms);
  }

  /**
   * Decodes n entries of the event list into `out`. With `rearms`, EV_ERROR entries are the
   * failures of those changes: a disable of a filter never added (ENOENT) is no failure; an
   * enable of one is an interest that grew, added now as `enable` adds it.
   */
  private decode(n: number, out: RawEvents, rearms: Rearms | null): number {
    const p = this.p;
    const c = this.c;
    const view = this.eventView;
    let count = 0;
    for (let i = 0, base = 0; i < n; i++, base += p.size) {
      const filter = readField(view, base, p.filter);
      if (filter === c.EVFILT_USER) continue; // a wake-up: EV_CLEAR has already reset it
      const token = readField(view, base, p.udata);
      const flags = readField(view, base, p.flags);
      if (rearms !== null && flags & c.EV_ERROR) {
        this.changeFailed(rearms, token, filter, readField(view, base, p.data));
        continue;
      }
      const ready = readyOf(c, filter, flags, readField(view, base, p.fflags));
      // An fd's two knotes ready together come back one after the other: report them as one
      // event, as epoll would. (Apart, or in two threads, they stay two: the core drops the later.)
      if (count > 0 && out.tokens[count - 1] === token) {
        out.ready[count - 1]! |= ready;
        continue;
      }
      out.tokens[count] = token;
      out.ready[count] = ready;
      count++;
    }
    return count;
  }

  private changeFailed(rearms: Rearms, token: Token, filter: number, e: number): void {
    const i = rearms.tokens.subarray(0, rearms.count).indexOf(token);
    if (i < 0 || e === 0) return;
    const wanted = filter === this.c.EVFILT_READ ? Interest.READABLE : Interest.WRITABLE;
    if (e === Errno.ENOENT && (rearms.interests[i]! & wanted) === 0) return;
    if (e === Errno.ENOENT) {
      try {
        this.rearm(rearms.fds[i]!, rearms.interests[i]!, token);
        return;
      } catch (err) {
        rearms.errors[i] = (err as { errno?: number }).errno ?? e;
        return;
      }
    }
    rearms.errors[i] = e;
  }

  /** The event list, grown to hold max entries. */
  private eventList(max: number): Uint8Array {
    const events = atLeast(this.events, max * this.p.size);
    if (events !== this.events) {
      this.events = events;
      this.eventView = new DataView(events.buffer);
    }
    return events;
  }

  /** The changelist of a batch, grown to `bytes`. */
  private batchChanges(bytes: number): DataView {
    const batch = atLeast(this.batch, bytes);
    if (batch !== this.batch) {
      this.batch = batch;
      this.batchView = new DataView(batch.buffer);
    }
    return this.batchView;
  }

  wake(): void {
    this.stage(this.userIdent, this.c.EVFILT_USER, 0, this.c.NOTE_TRIGGER, WAKE_TOKEN);
    this.apply();
    const e = this.errs[0]!;
    if (e !== 0) throw keventError(e, 'could not trigger the wake-up knote (EVFILT_USER, NOTE_TRIGGER)');
  }

  close(): void {
    files().close(this.kq);
  }

  /**
   * A kqueue fd polls readable while events are pending (kqueue(2)); libkqueue's does not
   * (seen on Linux: neither a NOTE_TRIGGER nor a ready socket makes it readable), so there
   * the loop integration falls back to looking every millisecond.
   */
  pollFd(): number | null {
    return this.lib.path === null ? this.kq : null;
  }

  share(): KqueueHandle {
    return {
      kind: 'kqueue',
      kq: this.kq,
      userIdent: this.userIdent,
      os: this.p.os,
      library: this.lib.path,
      receipts: this.receipts,
    };
  }

  /** Adds the EVFILT_USER knote `wake` triggers; EV_CLEAR resets it on delivery, to one waiter. */
  private registerWake(): void {
    const c = this.c;
    this.stage(this.userIdent, c.EVFILT_USER, c.EV_ADD | c.EV_CLEAR, c.NOTE_FFNOP, WAKE_TOKEN);
    this.apply();
    const e = this.errs[0]!;
    if (e !== 0) {
      throw keventError(e, `could not add the EVFILT_USER wake-up knote (this ${this.p.os} kqueue needs ${this.p.since})`);
    }
  }

  /** Appends one change (EV_SET) to the next `apply`. */
  private stage(ident: number, filter: number, flags: number, fflags: number, udata: number): void {
    const receipt = this.receipts ? this.c.EV_RECEIPT : 0;
    writeKevent(this.changeView, this.staged++, this.p, ident, filter, flags | receipt, fflags, 0, udata);
  }

  private filterAt(i: number): number {
    return readField(this.changeView, i * this.p.size, this.p.filter);
  }

  /**
   * Submits the staged changes; fills `errs` with each one's errno (0: applied) and returns
   * their count. With receipts, one call: every change comes back as an EV_ERROR entry, in
   * order, with the errno in data (0 for success), and no event is dequeued. Without, one call
   * per change, with no event list: its errno is the call's.
   */
  private apply(): number {
    const n = this.staged;
    this.staged = 0;
    const errs = this.errs;
    if (this.receipts) {
      const r = this.lib.kevent(this.kq, this.changes, n, this.receiptList, n, this.zeroTimeout);
      if (r < 0) throw keventError(errno(), 'could not apply changes to the kqueue');
      const p = this.p;
      for (let i = 0; i < n; i++) {
        const base = i * p.size;
        if (i >= r || !(readField(this.receiptView, base, p.flags) & this.c.EV_ERROR)) {
          errs[i] = NO_ERRNO;
          continue;
        }
        errs[i] = readField(this.receiptView, base, p.data);
      }
      return n;
    }
    for (let i = 0; i < n; i++) {
      // libkqueue fails some changes without setting errno: clear it, so no stale value shows.
      clearErrno();
      const r = this.lib.kevent(this.kq, this.changeSlots[i]!, 1, null, 0, null);
      errs[i] = r >= 0 ? 0 : errno() || NO_ERRNO;
    }
    return n;
  }
}
