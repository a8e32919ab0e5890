/**
 * Who is inside the reactor's kernel objects, so that close frees them only after the last one
 * leaves; and which threads have joined the reactor, so that a thread that died can be counted
 * out and the events it held given to others.
 */
import { ReactorError } from './errors.js';

// Header words.
const CLOSED = 0;
const FINALIZED = 1;
/** Each attachment sits on its own 64-byte line, so threads do not bounce one counter. */
const ENTRY_INTS = 16;
const FIRST_ENTRY = ENTRY_INTS;
/** The most threads (Reactor objects) attached at once. */
export const MAX_ATTACHMENTS = 256;

// Words of an attachment entry.
const STATE = 0;
const THREAD = 1;
const USERS = 2;

// Attachment states.
const FREE = 0;
const LIVE = 1;
/** Its thread died: being released by `threadExited`. */
const DEAD = 2;

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
  private readonly words: Int32Array;
  /** This attachment's number, 1 to MAX_ATTACHMENTS: the holder a delivery records. */
  readonly attachment: number;
  private readonly users: number;

  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer((FIRST_ENTRY + MAX_ATTACHMENTS * ENTRY_INTS) * 4);
  }

  /** Whether the reactor whose lifetime is in `buffer` is closed, without joining it. */
  static isClosed(buffer: SharedArrayBuffer): boolean {
    return Atomics.load(new Int32Array(buffer, 0, 1), CLOSED) !== 0;
  }

  /** Joins the reactor as thread `threadId`: ENOSPC when MAX_ATTACHMENTS threads are live. */
  constructor(
    readonly buffer: SharedArrayBuffer,
    threadId: number,
  ) {
    const words = new Int32Array(buffer);
    this.words = words;
    // Reactor objects of one thread share its entry: they never run at once, and a thread's
    // holds are its own whichever object took them.
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = FIRST_ENTRY + i * ENTRY_INTS;
      if (Atomics.load(words, at + STATE) !== LIVE || Atomics.load(words, at + THREAD) !== threadId) continue;
      this.attachment = i + 1;
      this.users = at + USERS;
      return;
    }
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = FIRST_ENTRY + i * ENTRY_INTS;
      if (Atomics.compareExchange(words, at + STATE, FREE, LIVE) !== FREE) continue;
      Atomics.store(words, at + THREAD, threadId);
      Atomics.store(words, at + USERS, 0);
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
    return Atomics.load(this.words, CLOSED) !== 0;
  }

  /**
   * Counts the caller in; false if the reactor is closed (the caller must not touch it). Being
   * counted in, briefly, it may be the last user of a closed reactor as it leaves again: then it
   * finalizes, as any last user does.
   */
  enter(): boolean {
    Atomics.add(this.words, this.users, 1);
    if (Atomics.load(this.words, CLOSED) === 0) return true;
    this.leave();
    return false;
  }

  /** Counts the caller out; the last user out of a closed reactor finalizes. */
  leave(): void {
    Atomics.sub(this.words, this.users, 1);
    if (Atomics.load(this.words, CLOSED) !== 0 && this.claimFinalize()) this.finalizer();
  }

  /** Marks the reactor closed, and finalizes now if nobody is inside. */
  close(): void {
    if (Atomics.compareExchange(this.words, CLOSED, 0, 1) !== 0) return;
    if (this.claimFinalize()) this.finalizer();
  }

  /**
   * Thread `threadId` has exited: marks its attachments DEAD and counts them out of every call
   * they died in. Returns their numbers, for the caller to release what they held, then `free`.
   */
  exited(threadId: number): number[] {
    const words = this.words;
    const dead: number[] = [];
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const at = FIRST_ENTRY + i * ENTRY_INTS;
      if (i + 1 === this.attachment || Atomics.load(words, at + THREAD) !== threadId) continue;
      if (Atomics.compareExchange(words, at + STATE, LIVE, DEAD) !== LIVE) continue;
      Atomics.store(words, at + USERS, 0);
      dead.push(i + 1);
    }
    return dead;
  }

  /** Frees the entries `exited` returned, for new threads to join; finalizes a closed reactor nobody is in. */
  free(attachments: readonly number[]): void {
    for (const a of attachments) Atomics.store(this.words, FIRST_ENTRY + (a - 1) * ENTRY_INTS + STATE, FREE);
    if (this.closed && this.claimFinalize()) this.finalizer();
  }

  private claimFinalize(): boolean {
    const w = this.words;
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      if (Atomics.load(w, FIRST_ENTRY + i * ENTRY_INTS + USERS) !== 0) return false;
    }
    return Atomics.compareExchange(w, FINALIZED, 0, 1) === 0;
  }
}
