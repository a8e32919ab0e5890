/**
 * Bindings to I/O completion ports and AFD polling (Windows): one outstanding IOCTL_AFD_POLL
 * per registration, its completion the delivery, PostQueuedCompletionStatus wake-ups.
 *
 * Readiness on Windows is asked of the AFD driver (the kernel side of Winsock) the way wepoll,
 * mio and the Rust polling crate ask it: a handle to \Device\Afd, bound to the completion port,
 * takes IOCTL_AFD_POLL requests naming one socket each; a request completes once, through the
 * port, when the socket is ready. That is dispatch-once by construction: nothing more is
 * delivered until `rearm` issues the next request.
 *
 * The request's memory (IO_STATUS_BLOCK and AFD_POLL_INFO) belongs to the kernel from issue
 * until its completion is dequeued, and any thread may issue, cancel or dequeue. So it lives in
 * one native block per reactor (VirtualAlloc, outside every JS heap, its address passed in
 * `share()`), a 64-byte record per slot; the completion's lpOverlapped is the record's address,
 * which gives back the slot. Each slot's poll state sits in SharedArrayBuffers beside it (their
 * pages committed as slots are first used), behind a per-slot lock, so threads agree on whether
 * a request is in flight:
 *
 * | state      | meaning                                  | the completion, when dequeued   |
 * |------------|------------------------------------------|---------------------------------|
 * | IDLE       | no request; the record is ours           | (none comes)                    |
 * | POLLING    | a request for the slot's token is in flight| delivered, → IDLE               |
 * | CANCELLING | a cancelled request is still in flight   | swallowed, → IDLE, or if REPOLL |
 * |            |                                          | the next request is issued      |
 *
 * A slot freed by `delete` may be added again before its cancelled request has come home:
 * `add` then only records the new token (REPOLL), and the thread that dequeues the cancelled
 * completion issues the new request. The record is never written while a request is in flight.
 */
import {
  RawEvents,
  rearmEach,
  WAKE_TOKEN,
  type Backend,
  type BackendHandle,
  type BackendOptions,
  type Fd,
  type Rearms,
  type Token,
} from '../core/backend.js';
import { ReactorError } from '../core/errors.js';
import { fixedProblem, sharedBuffer } from '../core/shared-memory.js';
import { lock, unlock } from '../core/mutex.js';
import { Interest, Ready } from '../core/flags.js';
import { SLOT_LIMIT } from '../core/state-machine.js';
import {
  AFD_POLL_ABORT,
  AFD_POLL_ACCEPT,
  AFD_POLL_CONNECT,
  AFD_POLL_CONNECT_FAIL,
  AFD_POLL_DISCONNECT,
  AFD_POLL_INFO_EVENTS,
  AFD_POLL_INFO_EXCLUSIVE,
  AFD_POLL_INFO_HANDLE,
  AFD_POLL_INFO_NUMBER_OF_HANDLES,
  AFD_POLL_INFO_SIZE,
  AFD_POLL_INFO_STATUS,
  AFD_POLL_INFO_TIMEOUT,
  AFD_POLL_LOCAL_CLOSE,
  AFD_POLL_RECEIVE,
  AFD_POLL_SEND,
  ERROR_ABANDONED_WAIT_0,
  FILE_OPEN,
  FILE_SHARE_READ,
  FILE_SHARE_WRITE,
  FILE_SKIP_SET_EVENT_ON_HANDLE,
  INFINITE,
  IO_STATUS_BLOCK_INFORMATION,
  IO_STATUS_BLOCK_SIZE,
  IO_STATUS_BLOCK_STATUS,
  IOCTL_AFD_POLL,
  MEM_COMMIT,
  MEM_RELEASE,
  MEM_RESERVE,
  OBJECT_ATTRIBUTES_LENGTH,
  OBJECT_ATTRIBUTES_OBJECT_NAME,
  OBJECT_ATTRIBUTES_SIZE,
  OVERLAPPED_ENTRY_OVERLAPPED,
  OVERLAPPED_ENTRY_SIZE,
  PAGE_READWRITE,
  SIO_BASE_HANDLE,
  SIO_BSP_HANDLE_POLL,
  SOCKET_ERROR,
  STATUS_CANCELLED,
  STATUS_INVALID_HANDLE,
  STATUS_NOT_FOUND,
  STATUS_PENDING,
  STATUS_SUCCESS,
  SYNCHRONIZE,
  UNICODE_STRING_BUFFER,
  UNICODE_STRING_LENGTH,
  UNICODE_STRING_MAXIMUM_LENGTH,
  UNICODE_STRING_SIZE,
  WAIT_TIMEOUT,
  WINSOCK_VERSION_2_2,
  WSADATA_SIZE,
  WSAENOTSOCK,
  memoryAt,
  ntError,
  win32,
  win32Error,
  type Win32,
} from '../sys/win32.js';

/** The completion key the AFD handle is bound to the port with; its completions name a record instead. */
const AFD_KEY = 1;
/**
 * Threads the port lets run at once. Not 0 (one per CPU): a waiter must be released whenever a
 * completion or wake-up is queued, even while other waiters are busy in handlers, as epoll and
 * kqueue do.
 */
const PORT_CONCURRENCY = 0x7fffffff;
/** INVALID_HANDLE_VALUE, the "no file" argument of CreateIoCompletionPort. */
const INVALID_HANDLE_VALUE = 0xffffffffffffffffn;
/** The AFD device opened without extended attributes: a handle for polling, not a socket. */
const AFD_DEVICE_NAME = '\\Device\\Afd\\Evdispatch';

// The native block: one page of scratch for open(), then one record per slot.
const SCRATCH_SIZE = 4096;
const SCRATCH_OBJECT_ATTRIBUTES = 0;
const SCRATCH_UNICODE_STRING = SCRATCH_OBJECT_ATTRIBUTES + OBJECT_ATTRIBUTES_SIZE;
const SCRATCH_HANDLE = SCRATCH_UNICODE_STRING + UNICODE_STRING_SIZE;
const SCRATCH_IOSB = SCRATCH_HANDLE + 8;
const SCRATCH_NAME = SCRATCH_IOSB + IO_STATUS_BLOCK_SIZE;
/** A record: IO_STATUS_BLOCK, then AFD_POLL_INFO, padded to a cache line. */
const RECORD_SIZE = 64;
const RECORD_IOSB = 0;
const RECORD_POLL = IO_STATUS_BLOCK_SIZE;

// Shared words (Int32Array): a header, then [lock, state] per slot.
const OUTSTANDING = 0; // requests issued and not yet dequeued, for close()
const CLOSED = 1;
const HEADER_WORDS = 4;
const SLOT_WORDS = 2;
const LOCK = 0;
const STATE = 1;
// Shared values (Float64Array): [token, base socket] per slot.
const SLOT_VALUES = 2;
const VALUE_TOKEN = 0;
const VALUE_SOCKET = 1;
/** Never a token (WAKE_TOKEN is 0), so memory the values grow into reads as "no registration". */
const NO_TOKEN = 0;

// The state word.
const POLL_MASK = 0x3;
const IDLE = 0;
const POLLING = 1;
const CANCELLING = 2;
/** When the cancelled request comes home, issue one for the slot's current token. */
const REPOLL = 0x4;
/** AFD reported LOCAL_CLOSE: the socket handle is dead and its value may be reused. */
const SOCKET_CLOSED = 0x8;
const INTEREST_SHIFT = 4;

const TWO_32 = 2 ** 32;

/** What `share()` returns: the port, the AFD handle, the native block and the shared state. */
export interface IocpHandle extends BackendHandle {
  readonly kind: 'iocp';
  readonly port: number;
  readonly afd: number;
  readonly block: number;
  readonly capacity: number;
  readonly words: SharedArrayBuffer;
  readonly values: SharedArrayBuffer;
}

/**
 * Interest → the AFD events to poll for. Closing, reset, shutdown and failed connects are
 * always asked for, so a registration hears of them whatever it waits for.
 */
export function afdEvents(interest: number): number {
  let events = AFD_POLL_DISCONNECT | AFD_POLL_ABORT | AFD_POLL_LOCAL_CLOSE | AFD_POLL_CONNECT_FAIL;
  if (interest & Interest.READABLE) events |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT;
  if (interest & Interest.WRITABLE) events |= AFD_POLL_SEND;
  return events;
}

/**
 * AFD events → Ready bits, as epoll reports the same conditions: a shutdown reads as end of
 * stream (READABLE | HANGUP), a reset fails both directions (READABLE | WRITABLE | HANGUP), a
 * failed connect is WRITABLE | ERROR (SO_ERROR says why). READABLE and WRITABLE only where
 * the interest asked for them; HANGUP and ERROR always.
 */
export function readyOf(events: number, interest: number): number {
  let ready = 0;
  if (events & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT)) ready |= Ready.READABLE;
  if (events & (AFD_POLL_SEND | AFD_POLL_CONNECT)) ready |= Ready.WRITABLE;
  if (events & AFD_POLL_DISCONNECT) ready |= Ready.READABLE | Ready.HANGUP;
  if (events & AFD_POLL_ABORT) ready |= Ready.READABLE | Ready.WRITABLE | Ready.HANGUP;
  if (events & AFD_POLL_LOCAL_CLOSE) ready |= Ready.HANGUP;
  if (events & AFD_POLL_CONNECT_FAIL) ready |= Ready.WRITABLE | Ready.ERROR;
  return ready & (interest | Ready.HANGUP | Ready.ERROR);
}

/**
 * A completed request's NTSTATUS → Ready bits when it carries no AFD events: a request that
 * failed reports ERROR, a handle that died (closed under us) HANGUP; a cancelled or empty one
 * nothing, so it is quietly issued again.
 */
export function failureReadiness(status: number): number {
  if (status >= 0 || status === STATUS_CANCELLED) return 0;
  if (status === STATUS_INVALID_HANDLE) return Ready.HANGUP;
  return Ready.ERROR;
}

function pollState(state: number): number {
  return state & POLL_MASK;
}

function interestOf(state: number): number {
  return (state >>> INTEREST_SHIFT) & Interest.BOTH;
}

function issued(status: number): boolean {
  return status === STATUS_SUCCESS || status === STATUS_PENDING;
}

/** The sizes the shared words and values grow to for `capacity` registrations. */
function wordsBytes(capacity: number): number {
  return (HEADER_WORDS + capacity * SLOT_WORDS) * 4;
}

function valuesBytes(capacity: number): number {
  return capacity * SLOT_VALUES * 8;
}

/** A HANDLE or an address in a handle: a positive safe integer. */
function isHandleValue(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** An I/O completion port polling Winsock sockets through \Device\Afd. */
export class IocpBackend implements Backend {
  readonly kind = 'iocp';
  /** An AFD poll completes once per request: no edges, so EDGE registrations are DISPATCH here. */
  readonly edges = false;
  private readonly api: Win32;
  /** This thread's view of the native block. */
  private readonly mem: DataView;
  /** Address of record 0. */
  private readonly records: number;
  private readonly words: Int32Array;
  private readonly values: Float64Array;
  private entries = new Uint8Array(0);
  private entryView = new DataView(this.entries.buffer);
  private readonly removed = new Uint32Array(1);
  private readonly ioctlOut = new Uint32Array(2);
  private readonly ioctlBytes = new Uint32Array(1);
  private readonly cancelIosb = new Uint8Array(IO_STATUS_BLOCK_SIZE);

  /**
   * Opens a completion port and an AFD handle with a record for each of `capacity`
   * registrations, found by the index the core's `indexOf` gives a token.
   */
  static open(options: BackendOptions): IocpBackend {
    const { capacity, indexOf } = options;
    const api = win32();
    const wsadata = new Uint8Array(WSADATA_SIZE);
    const started = api.WSAStartup(WINSOCK_VERSION_2_2, wsadata);
    if (started !== 0) throw win32Error('WSAStartup', started, 'could not start Winsock 2.2');
    let port = 0;
    let block = 0;
    let afd = 0;
    try {
      const p = api.CreateIoCompletionPort(INVALID_HANDLE_VALUE, null, 0, PORT_CONCURRENCY);
      if (p === null) throw win32Error('CreateIoCompletionPort', api.GetLastError(), 'could not create a completion port');
      port = Number(p);
      const size = SCRATCH_SIZE + capacity * RECORD_SIZE;
      const b = api.VirtualAlloc(null, size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
      if (b === null) {
        throw win32Error('VirtualAlloc', api.GetLastError(), `could not allocate ${size} bytes for ${capacity} poll records`);
      }
      block = Number(b);
      afd = openAfd(api, block, port);
      const words = sharedBuffer(wordsBytes(capacity));
      const values = sharedBuffer(valuesBytes(capacity));
      return new IocpBackend({ kind: 'iocp', port, afd, block, capacity, words, values }, indexOf);
    } catch (e) {
      if (afd !== 0) api.CloseHandle(afd);
      if (block !== 0) api.VirtualFree(block, 0, MEM_RELEASE);
      if (port !== 0) api.CloseHandle(port);
      api.WSACleanup();
      throw e;
    }
  }

  /** A backend over the same port, AFD handle and records, for another thread. */
  static attach(handle: BackendHandle, indexOf: BackendOptions['indexOf']): IocpBackend {
    const h = handle as Partial<IocpHandle>;
    const capacity = h.capacity;
    if (
      h.kind !== 'iocp' ||
      !isHandleValue(h.port) ||
      !isHandleValue(h.afd) ||
      !isHandleValue(h.block) ||
      typeof capacity !== 'number' ||
      !Number.isInteger(capacity) ||
      capacity < 1 ||
      capacity > SLOT_LIMIT ||
      // The records' block is as large as the capacity says: sized words and values back that claim.
      fixedProblem('words', h.words, wordsBytes(capacity)) !== undefined ||
      fixedProblem('values', h.values, valuesBytes(capacity)) !== undefined
    ) {
      throw new ReactorError('EINVAL', 'not an IOCP handle: pass what share() returned');
    }
    return new IocpBackend(h as IocpHandle, indexOf);
  }

  private constructor(
    private readonly handle: IocpHandle,
    private readonly indexOf: BackendOptions['indexOf'],
  ) {
    this.api = win32();
    this.mem = new DataView(memoryAt(handle.block, SCRATCH_SIZE + handle.capacity * RECORD_SIZE));
    this.records = handle.block + SCRATCH_SIZE;
    this.words = new Int32Array(handle.words);
    this.values = new Float64Array(handle.values);
  }

  add(fd: Fd, interest: number, token: Token, _edge: boolean): void {
    const slot = this.indexOf(token);
    if (slot >= this.handle.capacity) {
      throw new ReactorError('ENOSPC', `slot ${slot} is past the ${this.handle.capacity} registrations this IOCP backend was opened for`);
    }
    const socket = this.baseSocket(fd);
    this.lock(slot);
    try {
      const state = this.state(slot);
      if (pollState(state) === POLLING) {
        throw new ReactorError('EEXIST', `slot ${slot} already has a poll in flight: remove its registration before adding`);
      }
      this.values[slot * SLOT_VALUES + VALUE_TOKEN] = token;
      this.values[slot * SLOT_VALUES + VALUE_SOCKET] = socket;
      if (pollState(state) === CANCELLING) {
        // The previous registration's cancelled request still owns the record: the thread that
        // dequeues it issues ours.
        this.setState(slot, CANCELLING | REPOLL, interest);
        return;
      }
      const status = this.issue(slot, socket, interest);
      if (!issued(status)) {
        this.values[slot * SLOT_VALUES + VALUE_TOKEN] = NO_TOKEN;
        throw ntError('NtDeviceIoControlFile', status, `could not poll socket ${fd} (IOCTL_AFD_POLL)`);
      }
      this.setState(slot, POLLING, interest);
    } finally {
      this.unlock(slot);
    }
  }

  rearm(fd: Fd, interest: number, token: Token): void {
    const slot = this.liveSlot(token, 're-arm');
    this.lock(slot);
    try {
      this.checkToken(slot, token, 're-arm');
      const state = this.state(slot);
      if (state & SOCKET_CLOSED) {
        throw new ReactorError('EBADF', `socket ${fd} was closed while registered: delete its registration`, { syscall: 'NtDeviceIoControlFile' });
      }
      switch (pollState(state)) {
        case POLLING:
          // Re-armed without a kernel delivery (a forced one): the request in flight already
          // polls; a different interest needs a new request, issued when this one comes home.
          if (interestOf(state) === interest) return;
          this.cancel(slot);
          this.setState(slot, CANCELLING | REPOLL, interest);
          return;
        case CANCELLING:
          this.setState(slot, CANCELLING | REPOLL, interest);
          return;
        default: {
          const status = this.issue(slot, this.values[slot * SLOT_VALUES + VALUE_SOCKET]!, interest);
          if (!issued(status)) throw ntError('NtDeviceIoControlFile', status, `could not re-arm socket ${fd} (IOCTL_AFD_POLL)`);
          this.setState(slot, POLLING, interest);
        }
      }
    } finally {
      this.unlock(slot);
    }
  }

  delete(fd: Fd, token: Token): void {
    const slot = this.liveSlot(token, 'remove');
    this.lock(slot);
    try {
      this.checkToken(slot, token, 'remove');
      this.values[slot * SLOT_VALUES + VALUE_TOKEN] = NO_TOKEN;
      this.values[slot * SLOT_VALUES + VALUE_SOCKET] = NO_TOKEN;
      const state = this.state(slot);
      switch (pollState(state)) {
        case POLLING: {
          // Its completion is swallowed when dequeued; till then the record is the kernel's.
          this.setState(slot, CANCELLING, 0);
          const status = this.cancel(slot);
          // NOT_FOUND: it completed just now and its completion is queued, swallowed all the same.
          if (status !== STATUS_SUCCESS && status !== STATUS_NOT_FOUND) {
            throw ntError('NtCancelIoFileEx', status, `could not cancel the poll of socket ${fd}; it ends when the socket is closed`);
          }
          return;
        }
        case CANCELLING:
          this.setState(slot, CANCELLING, 0);
          return;
        default:
          this.setState(slot, IDLE, 0);
      }
    } finally {
      this.unlock(slot);
    }
  }

  wait(out: RawEvents, max: number, timeoutMs: number): number {
    const limit = Math.min(max, out.capacity);
    if (limit <= 0) return 0;
    if (this.entries.length < limit * OVERLAPPED_ENTRY_SIZE) {
      this.entries = new Uint8Array(limit * OVERLAPPED_ENTRY_SIZE);
      this.entryView = new DataView(this.entries.buffer);
    }
    const start = timeoutMs > 0 ? performance.now() : 0;
    let remaining = timeoutMs;
    for (;;) {
      const got = this.dequeue(limit, remaining);
      if (got < 0) return 0;
      let count = 0;
      let woken = false;
      const view = this.entryView;
      for (let i = 0, at = 0; i < got; i++, at += OVERLAPPED_ENTRY_SIZE) {
        const overlapped =
          view.getUint32(at + OVERLAPPED_ENTRY_OVERLAPPED + 4, true) * TWO_32 + view.getUint32(at + OVERLAPPED_ENTRY_OVERLAPPED, true);
        if (overlapped === 0) {
          woken = true; // a wake-up (WAKE_TOKEN, no OVERLAPPED)
          continue;
        }
        const slot = this.slotOfRecord(overlapped);
        if (slot >= 0) count += this.complete(slot, out, count);
      }
      // Only swallowed completions (cancelled, or issued again): keep waiting out the time.
      if (count > 0 || woken || timeoutMs === 0) return count;
      if (timeoutMs > 0) {
        remaining = Math.ceil(timeoutMs - (performance.now() - start));
        if (remaining <= 0) return 0;
      }
    }
  }

  rearmAndPoll(rearms: Rearms, out: RawEvents, max: number): number {
    rearmEach(this, rearms);
    return this.wait(out, max, 0);
  }

  wake(): void {
    if (this.api.PostQueuedCompletionStatus(this.handle.port, 0, WAKE_TOKEN, null) === 0) {
      throw win32Error('PostQueuedCompletionStatus', this.api.GetLastError(), 'could not post a wake-up to the completion port');
    }
  }

  /**
   * Cancels every request, waits (a bounded time) for their completions, then closes the AFD
   * handle and the port and frees the block. A request that never came home keeps the block
   * allocated: the kernel may still write to it.
   */
  close(): void {
    const words = this.words;
    if (Atomics.exchange(words, CLOSED, 1) !== 0) return;
    for (let slot = 0; slot * SLOT_VALUES < this.values.length; slot++) {
      if (pollState(Atomics.load(words, HEADER_WORDS + slot * SLOT_WORDS + STATE)) === IDLE) continue;
      this.lock(slot);
      const state = this.state(slot);
      if (pollState(state) === POLLING) this.cancel(slot);
      if (pollState(state) !== IDLE) this.setState(slot, CANCELLING, 0);
      this.unlock(slot);
    }
    const deadline = performance.now() + 2000;
    const scratch = new RawEvents(64);
    while (Atomics.load(words, OUTSTANDING) > 0 && performance.now() < deadline) {
      if (this.entries.length < 64 * OVERLAPPED_ENTRY_SIZE) {
        this.entries = new Uint8Array(64 * OVERLAPPED_ENTRY_SIZE);
        this.entryView = new DataView(this.entries.buffer);
      }
      const got = this.dequeue(64, 50);
      for (let i = 0, at = 0; i < got; i++, at += OVERLAPPED_ENTRY_SIZE) {
        const view = this.entryView;
        const overlapped =
          view.getUint32(at + OVERLAPPED_ENTRY_OVERLAPPED + 4, true) * TWO_32 + view.getUint32(at + OVERLAPPED_ENTRY_OVERLAPPED, true);
        const slot = overlapped === 0 ? -1 : this.slotOfRecord(overlapped);
        if (slot >= 0) this.complete(slot, scratch, 0);
      }
    }
    const { api, handle } = this;
    api.CloseHandle(handle.afd);
    api.CloseHandle(handle.port);
    if (Atomics.load(words, OUTSTANDING) === 0) api.VirtualFree(handle.block, 0, MEM_RELEASE);
    api.WSACleanup();
  }

  /** A completion port is not a socket: Node's loop cannot poll it. */
  pollFd(): null {
    return null;
  }

  share(): IocpHandle {
    return this.handle;
  }

  /** Requests in flight (issued and not yet dequeued), for tests and close(). */
  outstanding(): number {
    return Atomics.load(this.words, OUTSTANDING);
  }

  /**
   * One GetQueuedCompletionStatusEx: the number of entries dequeued, or -1 on a timeout.
   * Not alertable: no APC of ours runs here.
   */
  private dequeue(limit: number, timeoutMs: number): number {
    const api = this.api;
    const ok = api.GetQueuedCompletionStatusEx(
      this.handle.port,
      this.entries,
      limit,
      this.removed,
      timeoutMs < 0 ? INFINITE : timeoutMs,
      0,
    );
    if (ok !== 0) return this.removed[0]!;
    const error = api.GetLastError();
    if (error === WAIT_TIMEOUT) return -1;
    throw win32Error(
      'GetQueuedCompletionStatusEx',
      error,
      error === ERROR_ABANDONED_WAIT_0 ? 'the completion port was closed while waiting' : 'waiting on the completion port failed',
    );
  }

  /**
   * A dequeued completion for `slot`: writes (token, readiness) at out[at] and returns 1 if it
   * is a delivery, else 0. Under the slot's lock, the record is ours again.
   */
  private complete(slot: number, out: RawEvents, at: number): number {
    this.lock(slot);
    try {
      const state = this.state(slot);
      const interest = interestOf(state);
      const token = this.values[slot * SLOT_VALUES + VALUE_TOKEN]!;
      switch (pollState(state)) {
        case POLLING: {
          Atomics.sub(this.words, OUTSTANDING, 1);
          const record = SCRATCH_SIZE + slot * RECORD_SIZE;
          const mem = this.mem;
          const status = mem.getInt32(record + RECORD_IOSB + IO_STATUS_BLOCK_STATUS, true);
          let ready = failureReadiness(status);
          let closed = false;
          if (status >= 0 && mem.getUint32(record + RECORD_POLL + AFD_POLL_INFO_NUMBER_OF_HANDLES, true) >= 1) {
            const events = mem.getUint32(record + RECORD_POLL + AFD_POLL_INFO_EVENTS, true);
            closed = (events & AFD_POLL_LOCAL_CLOSE) !== 0;
            ready = readyOf(events, interest);
          }
          closed ||= status === STATUS_INVALID_HANDLE;
          if (ready === 0) return this.reissue(slot, token, interest, out, at);
          this.setState(slot, IDLE | (closed ? SOCKET_CLOSED : 0), interest);
          out.tokens[at] = token;
          out.ready[at] = ready;
          return 1;
        }
        case CANCELLING:
          Atomics.sub(this.words, OUTSTANDING, 1);
          if ((state & REPOLL) === 0) {
            this.setState(slot, IDLE, 0);
            return 0;
          }
          return this.reissue(slot, token, interest, out, at);
        default:
          return 0; // not ours: no request of this slot was in flight
      }
    } finally {
      this.unlock(slot);
    }
  }

  /**
   * Issues the slot's request again from inside wait() (a completion without news, or the
   * first request of a registration added while the record was the kernel's). A failure has
   * no caller to throw to, so it is delivered: HANGUP for a closed socket, ERROR otherwise.
   */
  private reissue(slot: number, token: number, interest: number, out: RawEvents, at: number): number {
    const status = this.issue(slot, this.values[slot * SLOT_VALUES + VALUE_SOCKET]!, interest);
    if (issued(status)) {
      this.setState(slot, POLLING, interest);
      return 0;
    }
    const closed = status === STATUS_INVALID_HANDLE;
    this.setState(slot, IDLE | (closed ? SOCKET_CLOSED : 0), interest);
    out.tokens[at] = token;
    out.ready[at] = closed ? Ready.HANGUP : Ready.ERROR;
    return 1;
  }

  /** Fills the slot's record and issues IOCTL_AFD_POLL; the slot's lock is held. */
  private issue(slot: number, socket: number, interest: number): number {
    const mem = this.mem;
    const record = SCRATCH_SIZE + slot * RECORD_SIZE;
    mem.setInt32(record + RECORD_IOSB + IO_STATUS_BLOCK_STATUS, STATUS_PENDING, true);
    mem.setUint32(record + RECORD_IOSB + IO_STATUS_BLOCK_STATUS + 4, 0, true);
    mem.setUint32(record + RECORD_IOSB + IO_STATUS_BLOCK_INFORMATION, 0, true);
    mem.setUint32(record + RECORD_IOSB + IO_STATUS_BLOCK_INFORMATION + 4, 0, true);
    const poll = record + RECORD_POLL;
    // Timeout: INT64_MAX, never.
    mem.setUint32(poll + AFD_POLL_INFO_TIMEOUT, 0xffffffff, true);
    mem.setUint32(poll + AFD_POLL_INFO_TIMEOUT + 4, 0x7fffffff, true);
    mem.setUint32(poll + AFD_POLL_INFO_NUMBER_OF_HANDLES, 1, true);
    // Not exclusive: an exclusive poll would cancel other pollers' requests on this socket.
    mem.setUint32(poll + AFD_POLL_INFO_EXCLUSIVE, 0, true);
    mem.setUint32(poll + AFD_POLL_INFO_HANDLE, socket % TWO_32, true);
    mem.setUint32(poll + AFD_POLL_INFO_HANDLE + 4, Math.floor(socket / TWO_32), true);
    mem.setUint32(poll + AFD_POLL_INFO_EVENTS, afdEvents(interest), true);
    mem.setInt32(poll + AFD_POLL_INFO_STATUS, 0, true);
    const address = this.records + slot * RECORD_SIZE;
    // The record's address is both the IO_STATUS_BLOCK and the ApcContext, which the port
    // returns as the completion's lpOverlapped. Input and output are the same AFD_POLL_INFO.
    const status = this.api.NtDeviceIoControlFile(
      this.handle.afd,
      null,
      null,
      address + RECORD_IOSB,
      address + RECORD_IOSB,
      IOCTL_AFD_POLL,
      address + RECORD_POLL,
      AFD_POLL_INFO_SIZE,
      address + RECORD_POLL,
      AFD_POLL_INFO_SIZE,
    );
    // Done at once or pending, a completion is queued either way (the AFD handle does not
    // skip the port on success); a failure here queues none.
    if (issued(status)) Atomics.add(this.words, OUTSTANDING, 1);
    return status;
  }

  /** NtCancelIoFileEx on the slot's request: it completes with STATUS_CANCELLED, through the port. */
  private cancel(slot: number): number {
    const address = this.records + slot * RECORD_SIZE + RECORD_IOSB;
    return this.api.NtCancelIoFileEx(this.handle.afd, address, this.cancelIosb);
  }

  /**
   * The base service provider's socket: AFD polls it, not a layered provider's wrapper. An LSP
   * that mishandles SIO_BASE_HANDLE still answers SIO_BSP_HANDLE_POLL with the next layer's
   * socket, so that is unwrapped and the question asked again.
   */
  private baseSocket(fd: Fd): number {
    let socket = fd;
    for (let layers = 0; layers < 16; layers++) {
      if (this.socketIoctl(socket, SIO_BASE_HANDLE)) return this.ioctlResult();
      const error = this.api.WSAGetLastError();
      if (error === WSAENOTSOCK) {
        // EBADF, as on every backend: not an fd (here, a socket) the reactor can watch.
        throw new ReactorError('EBADF', `handle ${fd} is not an open socket: the IOCP backend polls Winsock sockets only`, {
          syscall: 'WSAIoctl',
          errno: error,
        });
      }
      if (!this.socketIoctl(socket, SIO_BSP_HANDLE_POLL) || this.ioctlResult() === socket) {
        throw win32Error('WSAIoctl', error, `could not find the base socket of ${fd} (SIO_BASE_HANDLE)`);
      }
      socket = this.ioctlResult();
    }
    throw new ReactorError('EINVAL', `socket ${fd} is wrapped in too many layered service providers`, { syscall: 'WSAIoctl' });
  }

  private socketIoctl(socket: number, code: number): boolean {
    const out = this.ioctlOut;
    return this.api.WSAIoctl(socket, code, null, 0, out, 8, this.ioctlBytes, null, null) !== SOCKET_ERROR;
  }

  private ioctlResult(): number {
    return this.ioctlOut[1]! * TWO_32 + this.ioctlOut[0]!;
  }

  /** The slot whose record starts at `address`, or -1 if it is none of ours. */
  private slotOfRecord(address: number): number {
    const offset = address - this.records - RECORD_IOSB;
    if (offset < 0 || offset % RECORD_SIZE !== 0) return -1;
    const slot = offset / RECORD_SIZE;
    return slot < this.handle.capacity ? slot : -1;
  }

  private liveSlot(token: Token, verb: string): number {
    const slot = this.indexOf(token);
    if (slot >= this.handle.capacity) throw noRegistration(token, verb);
    return slot;
  }

  private checkToken(slot: number, token: Token, verb: string): void {
    if (this.values[slot * SLOT_VALUES + VALUE_TOKEN] !== token) throw noRegistration(token, verb);
  }

  private state(slot: number): number {
    return Atomics.load(this.words, HEADER_WORDS + slot * SLOT_WORDS + STATE);
  }

  private setState(slot: number, flags: number, interest: number): void {
    Atomics.store(this.words, HEADER_WORDS + slot * SLOT_WORDS + STATE, flags | (interest << INTEREST_SHIFT));
  }

  private lock(slot: number): void {
    lock(this.words, HEADER_WORDS + slot * SLOT_WORDS + LOCK);
  }

  private unlock(slot: number): void {
    unlock(this.words, HEADER_WORDS + slot * SLOT_WORDS + LOCK);
  }
}

function noRegistration(token: Token, verb: string): ReactorError {
  return new ReactorError('ENOENT', `cannot ${verb} token ${token}: the IOCP backend has no registration with it`);
}

/**
 * Opens \Device\Afd with no extended attributes (a polling handle, not a socket), binds it to
 * the port and returns it. The scratch page at the start of the block holds the NT structs.
 */
function openAfd(api: Win32, block: number, port: number): number {
  const mem = new DataView(memoryAt(block, SCRATCH_SIZE));
  const nameBytes = AFD_DEVICE_NAME.length * 2;
  for (let i = 0; i < AFD_DEVICE_NAME.length; i++) mem.setUint16(SCRATCH_NAME + i * 2, AFD_DEVICE_NAME.charCodeAt(i), true);
  mem.setUint16(SCRATCH_UNICODE_STRING + UNICODE_STRING_LENGTH, nameBytes, true);
  mem.setUint16(SCRATCH_UNICODE_STRING + UNICODE_STRING_MAXIMUM_LENGTH, nameBytes, true);
  setAddress(mem, SCRATCH_UNICODE_STRING + UNICODE_STRING_BUFFER, block + SCRATCH_NAME);
  mem.setUint32(SCRATCH_OBJECT_ATTRIBUTES + OBJECT_ATTRIBUTES_LENGTH, OBJECT_ATTRIBUTES_SIZE, true);
  setAddress(mem, SCRATCH_OBJECT_ATTRIBUTES + OBJECT_ATTRIBUTES_OBJECT_NAME, block + SCRATCH_UNICODE_STRING);
  const status = api.NtCreateFile(
    block + SCRATCH_HANDLE,
    SYNCHRONIZE,
    block + SCRATCH_OBJECT_ATTRIBUTES,
    block + SCRATCH_IOSB,
    null,
    0,
    FILE_SHARE_READ | FILE_SHARE_WRITE,
    FILE_OPEN,
    0,
    null,
    0,
  );
  if (status !== STATUS_SUCCESS) throw ntError('NtCreateFile', status, `could not open ${AFD_DEVICE_NAME}`);
  const afd = mem.getUint32(SCRATCH_HANDLE + 4, true) * TWO_32 + mem.getUint32(SCRATCH_HANDLE, true);
  if (api.CreateIoCompletionPort(afd, port, AFD_KEY, 0) === null) {
    const error = api.GetLastError();
    api.CloseHandle(afd);
    throw win32Error('CreateIoCompletionPort', error, `could not bind ${AFD_DEVICE_NAME} to the completion port`);
  }
  // Only saves setting an event nobody waits on; a system without it polls the same.
  api.SetFileCompletionNotificationModes(afd, FILE_SKIP_SET_EVENT_ON_HANDLE);
  return afd;
}

function setAddress(mem: DataView, at: number, address: number): void {
  mem.setUint32(at, address % TWO_32, true);
  mem.setUint32(at + 4, Math.floor(address / TWO_32), true);
}
