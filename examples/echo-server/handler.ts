/**
 * The echo server's handler module, run by runWorkers in every thread: accepts on the
 * listeners, echoes, answers HTTP, closes idle connections. Everything a connection carries
 * from one delivery to the next is shared memory, because the next delivery may go to another
 * thread: its header (fd, flags, timers) in its registration's state, and its bytes (a
 * half-read request, output a send left over) in a pool buffer it holds only while it has any.
 * A delivery works in this thread's scratch, or in the buffer the connection holds; what is
 * left in the scratch when it ends moves to a buffer.
 */
import { Interest, type Mode, ReactorError, Ready, type EventHandler, type WorkerContext } from '../../src/index.js';
import * as net from '../../src/net/index.js';
import { BUFFER_BYTES, BufferPool } from './buffers.js';
import { answer, BLANK, headLength, HttpRequest, MALFORMED, MAX_ANSWER, PARSED, parseHead, refuse, type Answer } from './http.js';
import {
  BODY_LEFT,
  BUFFER,
  CELL,
  Connections,
  ECHO_OUT_AT,
  FD,
  Flag,
  FLAGS,
  header,
  HTTP_OUT_AT,
  Kind,
  KIND,
  LAST_ACTIVE,
  LAST_THREAD,
  now,
  OUT_LEN,
  REQ_AT,
  REQ_LEN,
  REQUEST_MAX,
  Shared,
  C,
  DEADLINE_AT,
  HEAD_STARTED,
} from './shared.js';

/** What every thread is given. */
export interface ServerData {
  readonly shared: SharedArrayBuffer;
  readonly connections: SharedArrayBuffer;
  /** The BufferPool's memory. */
  readonly buffers: SharedArrayBuffer;
  readonly idleMs: number;
  readonly headerTimeoutMs: number;
  /** How connections are registered: EDGE, or DISPATCH for comparison. */
  readonly mode: Mode;
}

/** Failures that end one connection, not the server. */
const LOST: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTCONN',
  'ENETRESET',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
]);

/** Bytes one delivery reads before re-arming, so that one fast sender does not hold a thread. */
const READ_BUDGET = 256 * 1024;
/** Accept calls per listener delivery (each takes up to ACCEPT_BATCH connections). */
const ACCEPT_ROUNDS = 16;
const ACCEPT_BATCH = 64;
/** After an accept failure (out of fds): the pending connection keeps the listener readable. */
const ACCEPT_BACKOFF_MS = 10;

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** This thread's copy of the connection it is handling: the header's fields, loaded and saved. */
class Connection {
  token = 0;
  kind: Kind = Kind.ECHO;
  /** Where its header starts in the reactor's state. */
  private at = 0;
  fd = 0;
  cell = 0;
  flags = 0;
  outLen = 0;
  reqLen = 0;
  headStarted = 0;
  deadlineAt = 0;
  bodyLeft = 0;
  /** The BUFFER word: the index + 1 of the pool buffer it holds; 0: none. */
  private buffer = 0;
  /** Where this delivery keeps its bytes: the pool's buffer it holds, or else the scratch. */
  mem: Buffer;
  /** Where its request bytes start in `mem`. */
  reqAt = 0;
  /** Where its pending output starts in `mem`. */
  outAt = 0;
  /** Where its area of `mem` ends. */
  private end = 0;

  constructor(
    /** Every registration's state, the reactor's one SharedArrayBuffer. */
    private readonly view: DataView,
    private readonly pool: BufferPool,
    private readonly connections: Connections,
    /** This thread's scratch: BUFFER_BYTES, laid out as a pool buffer. */
    private readonly scratch: Buffer,
  ) {
    this.mem = scratch;
  }

  load(token: number, kind: Kind, at: number): void {
    const v = this.view;
    this.token = token;
    this.kind = kind;
    this.at = at;
    this.fd = v.getInt32(at + FD, true);
    this.cell = v.getInt32(at + CELL, true);
    this.flags = v.getUint8(at + FLAGS);
    this.outLen = v.getUint32(at + OUT_LEN, true);
    this.reqLen = v.getUint32(at + REQ_LEN, true);
    this.headStarted = v.getFloat64(at + HEAD_STARTED, true);
    this.deadlineAt = v.getFloat64(at + DEADLINE_AT, true);
    this.bodyLeft = v.getFloat64(at + BODY_LEFT, true);
    this.buffer = v.getInt32(at + BUFFER, true);
    this.mem = this.buffer === 0 ? this.scratch : this.pool.bytes;
    const base = this.buffer === 0 ? 0 : (this.buffer - 1) * BUFFER_BYTES;
    this.reqAt = base + REQ_AT;
    this.outAt = base + (kind === Kind.ECHO ? ECHO_OUT_AT : HTTP_OUT_AT);
    this.end = base + BUFFER_BYTES;
  }

  /**
   * Stores what changed, bytes left in the scratch in a buffer taken for them, and gives back a
   * buffer left empty; before a rearm, which hands the connection to whichever thread is next.
   */
  save(): void {
    const pending = this.outLen > 0 || this.reqLen > 0;
    if (pending && this.buffer === 0) this.takeBuffer();
    else if (!pending && this.buffer !== 0) this.giveBackBuffer();
    const v = this.view;
    v.setUint8(this.at + FLAGS, this.flags);
    v.setUint32(this.at + OUT_LEN, this.outLen, true);
    v.setUint32(this.at + REQ_LEN, this.reqLen, true);
    v.setFloat64(this.at + HEAD_STARTED, this.headStarted, true);
    v.setFloat64(this.at + DEADLINE_AT, this.deadlineAt, true);
    v.setFloat64(this.at + BODY_LEFT, this.bodyLeft, true);
    v.setInt32(this.at + BUFFER, this.buffer, true);
  }

  /** Moves the bytes pending in the scratch to a buffer of the pool, at the same offsets. */
  private takeBuffer(): void {
    const index = this.pool.take();
    const to = index * BUFFER_BYTES;
    this.pool.bytes.set(this.scratch.subarray(this.reqAt, this.reqAt + this.reqLen), to + this.reqAt);
    this.pool.bytes.set(this.scratch.subarray(this.outAt, this.outAt + this.outLen), to + this.outAt);
    this.setBuffer(index + 1);
  }

  /** Gives back the buffer it holds, if any: it has nothing pending, or it is closing. */
  giveBackBuffer(): void {
    if (this.buffer === 0) return;
    this.pool.giveBack(this.buffer - 1);
    this.setBuffer(0);
  }

  private setBuffer(buffer: number): void {
    this.buffer = buffer;
    this.connections.setBuffer(this.cell, buffer);
  }

  get outRoom(): number {
    return this.end - this.outAt - this.outLen;
  }

  /** Marks this thread as the one handling it; true if another thread handled it last. */
  handledBy(thread: number): boolean {
    const last = this.view.getUint8(this.at + LAST_THREAD);
    this.view.setUint8(this.at + LAST_THREAD, thread);
    return last !== 0 && last !== thread;
  }

  get lastActive(): number {
    return this.view.getFloat64(this.at + LAST_ACTIVE, true);
  }

  set lastActive(ms: number) {
    this.view.setFloat64(this.at + LAST_ACTIVE, ms, true);
  }
}

/** Sets this thread up; returns its handler. */
export function setup({ reactor, index, data }: WorkerContext<ServerData>): EventHandler {
  const shared = new Shared(data.shared, index + 1);
  const connections = new Connections(data.connections);
  const { idleMs, headerTimeoutMs, mode } = data;
  const thread = index + 1;
  // Every registration's state lies in one SharedArrayBuffer of fixed size: one view serves all.
  const all = reactor.stateBuffer;
  const states = new DataView(all.buffer, all.byteOffset, all.byteLength);
  const scratch = Buffer.alloc(BUFFER_BYTES);
  // The scratch's HTTP output area as a view made once: a send from an offset makes a view per call.
  const httpOut = scratch.subarray(HTTP_OUT_AT);
  const c = new Connection(states, new BufferPool(data.buffers), connections, scratch);
  const accepted = new Int32Array(ACCEPT_BATCH);
  const request = new HttpRequest();
  /**
   * Whether the socket may hold more after this delivery's last read: it filled what it asked
   * for, or the peer has shut down, so the end of stream is still to read. An EDGE registration
   * is delivered again for that input only if the re-arm says it is still ready; a DISPATCH one
   * is re-checked by the kernel and ignores it.
   */
  let mayHaveMore = false;
  /**
   * Whether this delivery reported HANGUP. Its data and the peer's FIN may have come as one edge:
   * a short read then leaves the end of stream unread, and no edge will announce it again.
   */
  let hangup = false;
  /** Whether a send of this delivery took less than offered: the socket is full until WRITABLE. */
  let full = false;

  function onListener(token: number, kind: Kind, at: number): void {
    const fd = states.getInt32(at + FD, true);
    if (shared.stopping) {
      try {
        reactor.delete(token);
      } finally {
        net.close(fd);
        shared.listenerClosed(kind);
      }
      return;
    }
    const connectionKind = kind === Kind.ECHO_LISTENER ? Kind.ECHO : Kind.HTTP;
    for (let round = 0; round < ACCEPT_ROUNDS; round++) {
      const { count, error } = net.accept(fd, accepted);
      let i = 0;
      try {
        for (; i < count; i++) register(accepted[i]!, connectionKind);
      } finally {
        // register closed the one it failed on; close the ones after it, or they would leak.
        for (i++; i < count; i++) net.close(accepted[i]!);
      }
      if (error !== undefined) {
        acceptFailed(error);
        break;
      }
      if (count < accepted.length) break;
    }
    reactor.rearm(token);
  }

  function register(fd: number, kind: Kind): void {
    // A cell is always free: the table has a cell per registration the reactor can hold.
    const cell = connections.reserve(fd);
    let token: number;
    try {
      net.setNoDelay(fd, true); // echoes and answers are small writes: send them at once
      const at = now();
      token = reactor.add(fd, Interest.READABLE, { mode, state: header(kind, fd, cell, at, at + firstDeadline(kind)) });
    } catch (e) {
      net.close(fd);
      connections.unreserve(cell);
      if (!(e instanceof ReactorError)) throw e;
      if (e.code === 'ENOSPC') shared.add(C.refused, 1);
      else if (LOST.has(e.code)) shared.add(C.resets, 1); // gone before it was registered
      else throw e;
      return;
    }
    shared.add(C.accepted, 1);
    shared.add(C.open, 1);
    connections.publish(cell, token); // the thread its first event went to may have closed it already
    try {
      reactor.setDeadline(token, firstDeadline(kind));
    } catch (e) {
      // The thread it was delivered to has closed it already (the peer came and went at once).
      if (!(e instanceof ReactorError && e.code === 'ENOENT')) throw e;
    }
  }

  /** A new connection's first deadline: for HTTP, a head that starts at once must not wait for the idle one (see onTimeout). */
  function firstDeadline(kind: Kind): number {
    return kind === Kind.HTTP ? Math.min(idleMs, headerTimeoutMs) : idleMs;
  }

  function acceptFailed(error: string): void {
    shared.add(C.acceptErrors, 1);
    if (shared.firstAcceptError()) {
      console.error(`accept failed with ${error}; connections wait in the backlog until descriptors free up (logged once)`);
    }
    // The connections still pending keep the listener readable: without a pause this thread
    // would spin on it while the others close connections and free descriptors.
    Atomics.wait(PAUSE, 0, 0, ACCEPT_BACKOFF_MS);
  }

  function onConnection(token: number, flags: number, kind: Kind, at: number): void {
    c.load(token, kind, at);
    mayHaveMore = false;
    hangup = (flags & Ready.HANGUP) !== 0;
    full = false;
    if (c.handledBy(thread)) shared.add(C.handoffs, 1);
    if (flags & Ready.TIMEOUT && onTimeout()) return;
    let finished: boolean;
    try {
      if (c.flags & Flag.LINGERING) linger();
      else if (kind === Kind.ECHO) echo();
      else http();
      flush();
      finished = settle();
    } catch (e) {
      release();
      if (e instanceof ReactorError && LOST.has(e.code)) shared.add(C.resets, 1);
      else throw e;
      return;
    }
    if (finished) release();
  }

  /**
   * A deadline passed; true if it closed the connection. One deadline serves both timeouts: it
   * is set for the earlier of the idle one (nothing read for idleMs) and the head one (a request
   * head not complete headerTimeoutMs after its first byte), and moved here, lazily, when bytes
   * or a finished head put that time off, rather than on every read. The accepting thread sets
   * the first deadline after the connection is armed, over any a faster thread set meanwhile:
   * it is at most headerTimeoutMs away, so a head that started at once is not left waiting for
   * the idle one.
   */
  function onTimeout(): boolean {
    const at = now();
    // The deadline rounds to whole milliseconds; a millisecond early is late enough.
    if (c.headStarted > 0 && at - c.headStarted >= headerTimeoutMs - 1) {
      shared.add(C.headTimeouts, 1);
      timedOut();
      return true;
    }
    if (at - c.lastActive >= idleMs - 1) {
      shared.add(C.idleClosed, 1);
      release();
      return true;
    }
    c.deadlineAt = Infinity; // this one is spent
    deadlineBy(Math.min(c.lastActive + idleMs, c.headStarted > 0 ? c.headStarted + headerTimeoutMs : Infinity));
    return false;
  }

  /** Makes the deadline pass by `at` (on the clock of now()), unless it does already. */
  function deadlineBy(at: number): void {
    if (at >= c.deadlineAt) return;
    reactor.setDeadline(c.token, Math.max(0, at - now()));
    c.deadlineAt = at;
  }

  /**
   * Closes a connection whose request head took too long: a 408 if the socket takes it at once,
   * then our FIN right behind it, so that a client still sending sees the answer and the end of
   * stream even if the close, with its latest bytes unread, resets; what it sent is dropped
   * first, so that the close is usually a FIN alone; and the socket is closed.
   */
  function timedOut(): void {
    try {
      // With answers pending the client is not reading: it gets no 408, and may get a reset.
      if (c.outLen === 0) {
        shared.add(C.bytesOut, Math.max(0, net.send(c.fd, refuse(408).bytes)));
        net.shutdown(c.fd, 'write');
        linger();
      }
    } catch (e) {
      if (!(e instanceof ReactorError && LOST.has(e.code))) throw e;
    } finally {
      release();
    }
  }

  /** Whether the connection reads now: not after it is done, nor when its answer may not fit. */
  function canRead(): boolean {
    if (c.flags & (Flag.PEER_DONE | Flag.NO_MORE_INPUT)) return false;
    return c.kind === Kind.ECHO ? c.outRoom > 0 : c.outRoom >= MAX_ANSWER;
  }

  /** recv, noting whether the socket may hold more than it gave. */
  function read(into: Uint8Array, at: number, length: number): number {
    const n = net.recv(c.fd, into, at, length);
    mayHaveMore = n === length || (hangup && n > 0);
    return n;
  }

  /** Counts what recv returned; false when there is nothing more to read now. */
  function received(n: number): boolean {
    if (n > 0) {
      shared.add(C.bytesIn, n);
      c.lastActive = now();
      return true;
    }
    if (n === 0) c.flags |= Flag.PEER_DONE;
    else emptied();
    return false;
  }

  /** The socket has nothing more now; stopping, it is read no more. */
  function emptied(): void {
    if (shared.stopping) c.flags |= Flag.NO_MORE_INPUT;
  }

  /**
   * Echoes what the socket has: reads after the pending output (in the scratch when there is
   * none, the common case) and sends, so order is kept and only what the socket refused stays
   * to be kept. A short read means the socket is empty, unless the delivery said HANGUP:
   * reading again would only cost an EAGAIN. What comes after is not missed: DISPATCH re-checks
   * readiness at the re-arm, and under EDGE its arrival is an edge. Stopping while the socket
   * may hold more (the budget, no room, or an end of stream not yet read), the re-arm says it is
   * still ready.
   */
  function echo(): void {
    for (let budget = READ_BUDGET; budget > 0 && canRead(); ) {
      const n = read(c.mem, c.outAt + c.outLen, c.outRoom);
      if (!received(n)) return;
      budget -= n;
      c.outLen += n;
      flush();
      if (!mayHaveMore) return emptied();
    }
  }

  /**
   * Answers every complete request head buffered, dropping the bodies after them, reading more
   * while the answers fit; then starts the head timer if a head is left half-read.
   */
  function http(): void {
    let searched = 0; // bytes of the buffered request known to hold no blank line
    let drained = false;
    let partial = false; // what is buffered ends in a head not all read (not a body, nor heads waiting for room)
    for (let budget = READ_BUDGET; ; ) {
      partial = false;
      while (c.outRoom >= MAX_ANSWER && dropBody()) {
        const length = headLength(c.mem, c.reqAt, c.reqLen, searched);
        if (length === -1) {
          partial = c.reqLen > 0;
          break;
        }
        if (length === MALFORMED) reject(400);
        else respond(length);
        searched = 0;
      }
      searched = c.reqLen; // unless answers stopped fitting, but then canRead() is false
      if (budget <= 0 || drained || !canRead()) break;
      if (c.reqLen === REQUEST_MAX) {
        reject(431);
        break;
      }
      const room = REQUEST_MAX - c.reqLen;
      const n = read(c.mem, c.reqAt + c.reqLen, room);
      if (!received(n)) break;
      c.reqLen += n;
      budget -= n;
      // As in echo(): a short read means the socket is empty (without a HANGUP); answer what
      // came and re-arm.
      drained = !mayHaveMore;
      if (drained) emptied();
    }
    if (!partial || c.flags & Flag.NO_MORE_INPUT) c.headStarted = 0;
    else if (c.headStarted === 0) {
      c.headStarted = now();
      deadlineBy(c.headStarted + headerTimeoutMs);
    }
  }

  /** Drops what is buffered of the current request's body; true once none is left to come. */
  function dropBody(): boolean {
    const n = Math.min(c.bodyLeft, c.reqLen);
    if (n > 0) {
      if (n < c.reqLen) c.mem.copyWithin(c.reqAt, c.reqAt + n, c.reqAt + c.reqLen);
      c.reqLen -= n;
      c.bodyLeft -= n;
    }
    return c.bodyLeft === 0;
  }

  /** Parses the head of `length` bytes at the start of the buffer and queues its answer. */
  function respond(length: number): void {
    const status = parseHead(c.mem, c.reqAt, c.reqAt + length, request);
    // copyWithin is a call into the runtime even for no bytes: most heads are all that was read.
    if (length < c.reqLen) c.mem.copyWithin(c.reqAt, c.reqAt + length, c.reqAt + c.reqLen);
    c.reqLen -= length;
    c.headStarted = 0; // the next head's timer starts when this delivery ends
    if (status === BLANK) return;
    if (status !== PARSED) return reject(status);
    shared.add(C.requests, 1);
    c.bodyLeft = request.contentLength;
    queue(answer(request));
  }

  function reject(status: number): void {
    shared.add(C.rejected, 1);
    queue(refuse(status));
  }

  /** Appends an answer to the pending output; one that closes ends the reading. */
  function queue(a: Answer): void {
    c.mem.set(a.bytes, c.outAt + c.outLen);
    c.outLen += a.bytes.length;
    if (a.close) {
      c.flags |= Flag.NO_MORE_INPUT;
      c.reqLen = 0; // requests pipelined after it are not answered
    }
  }

  /**
   * Sends the pending output until it is gone or the socket takes no more. Once a send was
   * partial, the rest waits for WRITABLE: another try in this delivery would only fail.
   */
  function flush(): void {
    while (c.outLen > 0 && !full) {
      const n = c.mem === scratch && c.outAt === HTTP_OUT_AT ? net.send(c.fd, httpOut, 0, c.outLen) : net.send(c.fd, c.mem, c.outAt, c.outLen);
      if (n > 0) {
        shared.add(C.bytesOut, n);
        if (n < c.outLen) c.mem.copyWithin(c.outAt, c.outAt + n, c.outAt + c.outLen);
        c.outLen -= n;
      }
      if (c.outLen > 0) {
        shared.add(C.partialSends, 1);
        full = true;
      }
    }
  }

  /** Our side is shut: read and drop what the peer still sends, until it closes. */
  function linger(): void {
    for (let budget = READ_BUDGET; budget > 0; ) {
      // Nothing is pending (a lingering connection sends and answers no more): the scratch is free.
      const n = read(scratch, 0, scratch.length);
      if (n <= 0) {
        if (n === 0) c.flags |= Flag.PEER_DONE;
        return;
      }
      shared.add(C.discarded, n);
      budget -= n;
    }
  }

  /** Re-arms for what the connection waits for next; true when it waits for nothing: close it. */
  function settle(): boolean {
    if (c.outLen > 0) {
      const reading = !(c.flags & (Flag.PEER_DONE | Flag.NO_MORE_INPUT));
      if (reading && !canRead()) shared.add(C.readStalls, 1);
      c.save();
      reactor.rearm(c.token, canRead() ? Interest.BOTH : Interest.WRITABLE, stillReady());
      return false;
    }
    if (c.flags & Flag.PEER_DONE) return true;
    if (c.flags & Flag.NO_MORE_INPUT && !(c.flags & Flag.LINGERING)) {
      // Closing now with input unread would send a reset, which may destroy the answers still
      // in flight: end our side and close once the peer has closed its own (or the idle timeout).
      net.shutdown(c.fd, 'write');
      c.flags |= Flag.LINGERING;
      c.reqLen = 0; // what is left of a request is answered no more: its buffer can go back
    }
    c.save();
    reactor.rearm(c.token, Interest.READABLE, stillReady());
    return false;
  }

  /**
   * What an EDGE re-arm must deliver again: input this delivery left in the socket has had its
   * edge. Kept while the interest leaves reading out, it is delivered once reading is back.
   */
  function stillReady(): number {
    return mayHaveMore ? Ready.READABLE : 0;
  }

  /** Deletes the registration and closes the socket. */
  function release(): void {
    try {
      reactor.delete(c.token);
    } catch (e) {
      // The pool is closing and the reactor with it: closing the fd is all that is left to do.
      if (!(e instanceof ReactorError && e.code === 'ECLOSED')) throw e;
    } finally {
      net.close(c.fd);
      c.giveBackBuffer();
      connections.remove(c.cell);
      shared.add(C.open, -1);
    }
  }

  return (token, flags) => {
    const at = reactor.stateOffset(token);
    const kind = all[at + KIND]! as Kind; // one byte: the kinds are small
    if (kind === Kind.ECHO_LISTENER || kind === Kind.HTTP_LISTENER) {
      onListener(token, kind, at);
    } else {
      onConnection(token, flags, kind, at);
    }
  };
}
