/**
 * What the echo server's threads share: the layout of each registration's state bytes and of
 * a connection's buffer, the counters, the control words, and the table of open connections
 * that `stop` walks.
 */
/** The largest HTTP request head; a longer one is answered 431 and the connection closed. */
export const REQUEST_MAX = 4096;

/** Header fields: byte offsets in a registration's state. */
export const KIND = 0; // i32, a Kind
export const FLAGS = 4; // u8, Flag bits
export const LAST_THREAD = 5; // u8, the index + 1 of the thread that last handled it
export const FD = 8; // i32
export const CELL = 12; // i32, the connection's cell in the Connections table
export const OUT_LEN = 16; // u32, bytes of pending output
export const REQ_LEN = 20; // u32, bytes of the HTTP request being read
export const LAST_ACTIVE = 24; // f64, the monotonic clock (ms) at the last byte read
export const HEAD_STARTED = 32; // f64, the clock at the first byte of the HTTP request head being read; 0: none
export const DEADLINE_AT = 40; // f64, the clock when the deadline now set passes
export const BODY_LEFT = 48; // f64, bytes of the current HTTP request's body still to drop
export const BUFFER = 56; // i32, the index + 1 of the pool buffer holding its pending bytes; 0: none
export const HEADER = 64;
/**
 * Bytes of reactor state per registration: the header alone. The bytes a connection keeps
 * between deliveries are in a pool buffer it holds only meanwhile (buffers.ts), so an idle
 * connection costs 64 bytes here, not a page.
 */
export const STATE_BYTES = HEADER;
/** Where each kind keeps its request bytes and its pending output in a buffer. */
export const REQ_AT = 0;
export const ECHO_OUT_AT = 0;
export const HTTP_OUT_AT = REQUEST_MAX;

/** What a registration is (the KIND word). */
export const Kind = { ECHO_LISTENER: 1, HTTP_LISTENER: 2, ECHO: 3, HTTP: 4 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** FLAGS bits. */
export const Flag = {
  /** The peer shut down its side: nothing more to read. */
  PEER_DONE: 1,
  /** This server reads no more: stopping, a refused request, or a `Connection: close` answered. */
  NO_MORE_INPUT: 2,
  /** Our side is shut down; input is read and dropped until the peer closes (no RST for it). */
  LINGERING: 4,
} as const;

/**
 * A new registration's header, for `add(fd, interest, { state })`: the reactor writes it before
 * arming the registration, so whichever thread gets its first event finds it complete.
 */
export function header(kind: Kind, fd: number, cell: number, now: number, deadlineAt = Infinity): Uint8Array {
  const bytes = new Uint8Array(HEADER);
  const view = new DataView(bytes.buffer);
  view.setInt32(KIND, kind, true);
  view.setInt32(FD, fd, true);
  view.setInt32(CELL, cell, true);
  view.setFloat64(LAST_ACTIVE, now, true);
  view.setFloat64(DEADLINE_AT, deadlineAt, true);
  return bytes;
}

/** Milliseconds on the process-wide monotonic clock, the same in every thread. */
export const now: () => number = (() => {
  const [s, ns] = process.hrtime();
  const clock = performance; // read once: the global is an accessor that calls a getter each time
  const offset = s * 1e3 + ns / 1e6 - clock.now();
  return () => clock.now() + offset;
})();

/** The counters, in the order of the shared BigInt64Array. */
export const COUNTERS = [
  'accepted',
  'open',
  'bytesIn',
  'bytesOut',
  /** Connections closed by the idle timeout (a FORCED | TIMEOUT delivery). */
  'idleClosed',
  /** HTTP requests answered 200. */
  'requests',
  /** HTTP request heads refused (400, 431, 501, 505): the connection closed after the answer. */
  'rejected',
  /** HTTP connections closed because a request head was not complete within the header timeout. */
  'headTimeouts',
  /** send() calls that took less than offered: the rest waited in the state for WRITABLE. */
  'partialSends',
  /** Deliveries that stopped reading because the pending output was full (back-pressure). */
  'readStalls',
  /** Deliveries of a connection to another thread than its previous one. */
  'handoffs',
  /** Connections that failed (reset, broken pipe). */
  'resets',
  /** Bytes read and dropped from a peer that kept sending after this server stopped reading. */
  'discarded',
  'acceptErrors',
  /** Connections closed at once because the reactor was full. */
  'refused',
  'handlerErrors',
] as const;
export type Counter = (typeof COUNTERS)[number];
export type Counts = Record<Counter, number>;

/** Control words (Int32, after the counters). */
const STOPPING = 0;
const LISTENERS = 1; // one bit per listener Kind still open
const ACCEPT_ERROR_LOGGED = 2;
const CONTROL_INTS = 4;

/** Each counter's index in a row: a number, so the hot path looks nothing up by name. */
export const C = Object.fromEntries(COUNTERS.map((name, i) => [name, i])) as { readonly [K in Counter]: number };

/** Doubles per counter row: the counters, padded to whole 64-byte lines. */
const ROW = Math.ceil(COUNTERS.length / 8) * 8;

/**
 * The counters and control words, one SharedArrayBuffer for every thread. Each thread counts in
 * its own row (row 0 is the main thread's), with plain writes: no atomic and no shared cache
 * line on the per-message path. A reader sums the rows; a row's double is written by one thread
 * only, and the totals are read exactly once the threads have stopped.
 */
export class Shared {
  private readonly rows: Float64Array;
  private readonly mine: number;
  private readonly control: Int32Array;

  static create(threads: number): Shared {
    return new Shared(new SharedArrayBuffer((threads + 1) * ROW * 8 + CONTROL_INTS * 4), 0);
  }

  /** This thread's view; `row` 0 is the main thread's, thread i counts in row i + 1. */
  constructor(
    readonly buffer: SharedArrayBuffer,
    row: number,
  ) {
    const rowsBytes = buffer.byteLength - CONTROL_INTS * 4;
    this.rows = new Float64Array(buffer, 0, rowsBytes / 8);
    this.mine = row * ROW;
    this.control = new Int32Array(buffer, rowsBytes, CONTROL_INTS);
  }

  add(counter: number, n: number): void {
    this.rows[this.mine + counter]! += n;
  }

  counts(): Counts {
    const totals = new Array<number>(COUNTERS.length).fill(0);
    for (let at = 0; at < this.rows.length; at += ROW) {
      for (let i = 0; i < COUNTERS.length; i++) totals[i]! += this.rows[at + i]!;
    }
    return Object.fromEntries(COUNTERS.map((name, i) => [name, totals[i]!])) as Counts;
  }

  get stopping(): boolean {
    return Atomics.load(this.control, STOPPING) !== 0;
  }

  stop(): void {
    Atomics.store(this.control, STOPPING, 1);
  }

  listenerOpened(kind: Kind): void {
    Atomics.or(this.control, LISTENERS, 1 << kind);
  }

  listenerClosed(kind: Kind): void {
    Atomics.and(this.control, LISTENERS, ~(1 << kind));
  }

  isListenerOpen(kind: Kind): boolean {
    return (Atomics.load(this.control, LISTENERS) & (1 << kind)) !== 0;
  }

  /** True the first time only: for a log line that must not repeat. */
  firstAcceptError(): boolean {
    return Atomics.compareExchange(this.control, ACCEPT_ERROR_LOGGED, 0, 1) === 0;
  }
}

/** Cell states. */
const FREE = 0;
/** Claimed; its registration is being made. */
const FILLING = 1;
const LIVE = 2;
/** Its connection closed before the cell was published: `publish` frees it. */
const CLOSED = 3;

/**
 * The open connections, so that `stop` can reach each one: a cell per connection holding its
 * token and fd, claimed with a compareExchange, freed when the connection closes. A connection's
 * header remembers its cell, so nothing is ever searched but a free cell.
 *
 * A connection is armed before its token is known, so the thread its first event goes to may
 * close it before the accepting thread publishes the cell. Every change of a claimed cell is
 * therefore a compareExchange, and a cell becomes free only once both have had their turn:
 * never published for an fd that is closed (stop would close the number again), never leaked.
 */
export class Connections {
  private readonly next: Int32Array;
  private readonly cells: Int32Array;
  private readonly fds: Int32Array;
  private readonly tokens: Float64Array;
  /** Each cell's connection's BUFFER word, for `stop` to give back what it cuts. */
  private readonly buffers: Int32Array;

  static create(capacity: number): Connections {
    return new Connections(new SharedArrayBuffer(8 + capacity * (4 + 4 + 4 + 8)));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    const capacity = (buffer.byteLength - 8) / 20;
    this.next = new Int32Array(buffer, 0, 1);
    this.tokens = new Float64Array(buffer, 8, capacity);
    this.cells = new Int32Array(buffer, 8 + capacity * 8, capacity);
    this.fds = new Int32Array(buffer, 8 + capacity * 12, capacity);
    this.buffers = new Int32Array(buffer, 8 + capacity * 16, capacity);
  }

  /** Claims a cell for fd, before its registration exists; -1 if every cell is taken. */
  reserve(fd: number): number {
    const n = this.cells.length;
    // Start where the last claim left off, so a claim rarely meets a taken cell.
    const start = (Atomics.add(this.next, 0, 1) >>> 0) % n;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      if (Atomics.compareExchange(this.cells, i, FREE, FILLING) !== FREE) continue;
      this.fds[i] = fd;
      this.buffers[i] = 0;
      return i;
    }
    return -1;
  }

  /** Gives back a reserved cell whose registration was never made. */
  unreserve(cell: number): void {
    Atomics.store(this.cells, cell, FREE);
  }

  /** The reserved cell's registration now exists: `forEach` sees it from here on, unless it closed already. */
  publish(cell: number, token: number): void {
    this.tokens[cell] = token;
    if (Atomics.compareExchange(this.cells, cell, FILLING, LIVE) === CLOSED) Atomics.store(this.cells, cell, FREE);
  }

  /** Its connection closed: frees the cell, or leaves that to `publish` if it is still to come. */
  remove(cell: number): void {
    if (Atomics.compareExchange(this.cells, cell, FILLING, CLOSED) !== FILLING) Atomics.store(this.cells, cell, FREE);
  }

  /** Notes the BUFFER word of the cell's connection, as its header has it. */
  setBuffer(cell: number, buffer: number): void {
    this.buffers[cell] = buffer;
  }

  /** Calls fn for every open connection, with its BUFFER word. */
  forEach(fn: (token: number, fd: number, cell: number, buffer: number) => void): void {
    for (let i = 0; i < this.cells.length; i++) {
      if (Atomics.load(this.cells, i) === LIVE) fn(this.tokens[i]!, this.fds[i]!, i, this.buffers[i]!);
    }
  }
}
