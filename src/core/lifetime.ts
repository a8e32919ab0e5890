/**
 * Who is inside the reactor's kernel objects, so that close frees them only after the last one
 * leaves; and which threads have joined the reactor, so that a thread that died can be counted
 * out and the events it held given to others.
 */
import { closedError, ReactorError } from './errors.js';
import { recycle, sharedBuffer } from './shared-memory.js';

// Header words: a buffer of their own, never recycled, so that a closed reactor stays closed to
// every object that knew it, whatever its attachments' memory serves next.
const CLOSED = 0;
const FINALIZED = 1;
const HEADER_BYTES = 8;
/** Each attachment sits on its own 64-byte line, so threads do not bounce one counter. */
const ENTRY_INTS = 16;
/** The most threads (Reactor objects) attached at once. */
export const MAX_ATTACHMENTS = 256;
const ATTACHMENTS_BYTES = MAX_ATTACHMENTS * ENTRY_INTS * 4;

// Words of an attachment entry.
const STATE = 0;
const THREAD = 1;
const USERS = 2;

// Attachment states.
const FREE = 0;
const LIVE = 1;
/** Its thread died: being released by `threadExited`. */
const DEAD = 2;

/** A lifetime's shared memory: the header, and the attachments. */
export interface LifetimeMemory {
  readonly header: SharedArrayBuffer;
  readonly attachments: SharedArrayBuffer;
}

/**
 * Every call that touches a kernel object (a wait, a rearm, an add, a wake) is bracketed by
 * `enter` and `leave`. `close` sets CLOSED; from then on `enter` refuses, and whoever brings the
 * count of users to zero (close itself, the last one to leave, or `threadExited` for a thread
 * that died inside a call) finalizes exactly once. Each attachment (a Reactor object, one per
 * thread as a rule) counts on its own line, so the hot path is one uncontended atomic add and
 * sub; sequentially consistent Atomics make "set CLOSED, then sum" against "count in, then read
 * CLOSED" safe.
 */
export class Lifetime {
  /**
   * Frees the kernel objects: called once, by whichever thread brings the count of users of a
   * closed reactor to zero, wherever that happens (a refused `enter` included). Set by the engine.
   */
  finalizer: () => void = () => {};
  private readonly header: Int32Array;
  private readonly entries: Int32Array;
  /** This attachment's number, 1 to MAX_ATTACHMENTS: the holder a delivery records. */
  readonly attachment: number;
  private readonly users: number;

  static memory(): LifetimeMemory {
    return { header: new SharedArrayBuffer(HEADER_BYTES), attachments: sharedBuffer(ATTACHMENTS_BYTES) };
  }

  /** The sizes `memory()` makes, for checking a handle. */
  static readonly HEADER_BYTES = HEADER_BYTES;
  static readonly ATTACHMENTS_BYTES = ATTACHMENTS_BYTES;

  /** Whether the reactor whose lifetime header is `header` is closed, without joining it. */
  static isClosed(header: SharedArrayBuffer): boolean {
    return Atomics.load(new Int32Array(header, 0, 1), CLOSED) !== 0;
  }

  /**
   * Joins the reactor as thread `threadId`: ENOSPC when MAX_ATTACHMENTS threads are live,
   * ECLOSED when it closed meanwhile.
   */
  constructor(
    readonly memory: LifetimeMemory,
    threadId: number,
  ) {
    this.header = new Int32Array(memory.header);
    const entries = new Int32Array(memory.attachments);
    this.entries = entries;
    // Reactor objects of one thread share its entry: they never run at once, and a thread's
    // holds are its own whichever object took them.
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = i * ENTRY_INTS;
      if (Atomics.load(entries, at + STATE) !== LIVE || Atomics.load(entries, at + THREAD) !== threadId) continue;
      if (this.closed) throw closedError(); // the entry may be another reactor's
      this.attachment = i + 1;
      this.users = at + USERS;
      return;
    }
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = i * ENTRY_INTS;
      if (Atomics.compareExchange(entries, at + STATE, FREE, LIVE) !== FREE) continue;
      if (this.closed) {
        // Closed while joining: the attachments may have been recycled, the entry is given back.
        Atomics.store(entries, at + STATE, FREE);
        throw closedError();
      }
      Atomics.store(entries, at + THREAD, threadId);
      Atomics.store(entries, at + USERS, 0);
      this.attachment = i + 1;
      this.users = at + USERS;
      return;
    }
    throw new ReactorError(
      'ENOSPC',
      `${MAX_ATTACHMENTS} threads are attached to this reactor: call threadExited(threadId) from each Worker's 'exit' event`,
    );
  }

  get closed(): boolean {
    return Atomics.load(this.header, CLOSED) !== 0;
  }

  /**
   * `closed` by a plain read, for the hot path: sure to see a close made by this thread (the
   * only one that recycles the memory of a reactor it alone was attached to), not another's.
   */
  get closedHere(): boolean {
    return this.header[CLOSED] !== 0;
  }

  /**
   * Counts the caller in; false if the reactor is closed (the caller must not touch it). Being
   * counted in, briefly, it may be the last user of a closed reactor as it leaves again: then it
   * finalizes, as any last user does. Once closed, the attachments are not touched: they may
   * be another reactor's by then.
   */
  enter(): boolean {
    if (Atomics.load(this.header, CLOSED) !== 0) return false;
    Atomics.add(this.entries, this.users, 1);
    if (Atomics.load(this.header, CLOSED) === 0) return true;
    this.leave();
    return false;
  }

  /** Counts the caller out; the last user out of a closed reactor finalizes. */
  leave(): void {
    Atomics.sub(this.entries, this.users, 1);
    if (Atomics.load(this.header, CLOSED) !== 0 && this.claimFinalize()) this.finalizer();
  }

  /** Marks the reactor closed, and finalizes now if nobody is inside. */
  close(): void {
    if (Atomics.compareExchange(this.header, CLOSED, 0, 1) !== 0) return;
    if (this.claimFinalize()) this.finalizer();
  }

  /**
   * Thread `threadId` has exited: marks its attachments DEAD and counts them out of every call
   * they died in. Returns their numbers, for the caller to release what they held, then `free`.
   * None once finalized: nobody is inside, and the attachments may be another reactor's.
   */
  exited(threadId: number): number[] {
    if (Atomics.load(this.header, FINALIZED) !== 0) return [];
    const entries = this.entries;
    const dead: number[] = [];
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = i * ENTRY_INTS;
      if (i + 1 === this.attachment || Atomics.load(entries, at + THREAD) !== threadId) continue;
      if (Atomics.compareExchange(entries, at + STATE, LIVE, DEAD) !== LIVE) continue;
      Atomics.store(entries, at + USERS, 0);
      dead.push(i + 1);
    }
    return dead;
  }

  /** Frees the entries `exited` returned, for new threads to join; finalizes a closed reactor nobody is in. */
  free(attachments: readonly number[]): void {
    for (const a of attachments) Atomics.store(this.entries, (a - 1) * ENTRY_INTS + STATE, FREE);
    if (this.closed && this.claimFinalize()) this.finalizer();
  }

  /** Whether this attachment is the only one: every other entry FREE (no thread live, none dead uncounted). */
  alone(): boolean {
    const entries = this.entries;
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      if (i + 1 !== this.attachment && Atomics.load(entries, i * ENTRY_INTS + STATE) !== FREE) return false;
    }
    return true;
  }

  /** Gives the attachments to this thread's pool: for a finalized reactor no other thread can reach. */
  recycle(): void {
    recycle(this.memory.attachments, ATTACHMENTS_BYTES);
  }

  private claimFinalize(): boolean {
    const entries = this.entries;
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      if (Atomics.load(entries, i * ENTRY_INTS + USERS) !== 0) return false;
    }
    return Atomics.compareExchange(this.header, FINALIZED, 0, 1) === 0;
  }
}
