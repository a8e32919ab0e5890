/** A thread's staged re-arms (batchRearms): applied with its next poll, then settled in the table. */
import { Rearms } from './backend.js';
import type { Events } from './events.js';
import { Ready } from './flags.js';
import { abortRearm, ACTIVE, endRearm, genOf, genOfToken, slotOfToken, STATE } from './state-machine.js';
import type { Table } from './table.js';

/** How many re-arms a thread stages before applying them. */
const STAGED_REARMS = 256;

/** What settling needs of its reactor. */
export interface BatchOwner {
  /** Queues a software delivery for `slot` (a force or readiness handed on meanwhile). */
  pushReady(slot: number): void;
  /** Counts this thread out of the kernel objects: it was counted in at the first re-arm staged. */
  leave(): void;
}

/**
 * The re-arms one thread staged, each slot REARMING until the batch is applied (by the
 * backend's `rearmAndPoll`, or `rearmEach`) and settled here: then each ends its REARMING as
 * an immediate rearm would, and one that failed goes back to its thread, flagged ERROR.
 */
export class RearmBatch {
  /** Made at the first re-arm staged: a thread that never stages one does not pay for it. */
  private batch: Rearms | undefined;
  /** Tokens whose re-arm failed: held by this thread again, delivered back flagged ERROR. */
  private readonly failed: number[] = [];

  constructor(
    private readonly table: Table,
    private readonly owner: BatchOwner,
  ) {}

  get rearms(): Rearms {
    return (this.batch ??= new Rearms(STAGED_REARMS));
  }

  get count(): number {
    return this.batch === undefined ? 0 : this.batch.count;
  }

  /** Stages a re-arm; true when the batch is full and must be applied now. */
  stage(fd: number, interest: number, token: number): boolean {
    // A token re-armed again before its last failure was handed back: this re-arm supersedes it.
    if (this.failed.length !== 0) this.forget(token);
    return this.rearms.push(fd, interest, token);
  }

  /** Drops a failure not yet handed back: its token was re-armed again, or deleted. */
  forget(token: number): void {
    const i = this.failed.indexOf(token);
    if (i >= 0) this.failed.splice(i, 1);
  }

  /** The batch was applied: end each slot's REARMING; count this thread out. */
  settle(): void {
    const rearms = this.rearms;
    // Every staged slot was reached by this thread's views when its rearm was staged.
    const words = this.table.words;
    for (let i = 0; i < rearms.count; i++) {
      const token = rearms.tokens[i]!;
      const slot = slotOfToken(token);
      if (rearms.errors[i] !== 0) {
        abortRearm(words, slot);
        this.failed.push(token);
      } else if (endRearm(words, slot)) {
        this.owner.pushReady(slot);
      }
    }
    rearms.count = 0;
    this.owner.leave();
  }

  /** The reactor closed with the batch unapplied: it never will be. */
  discard(): void {
    const rearms = this.rearms;
    for (let i = 0; i < rearms.count; i++) abortRearm(this.table.words, slotOfToken(rearms.tokens[i]!));
    rearms.count = 0;
    this.owner.leave();
  }

  /**
   * Delivers into `events` from index n the re-arms that failed, each to the thread that still
   * holds it; returns the new count. One deleted since, or handed on, is dropped.
   */
  deliverFailed(events: Events, n: number): number {
    const failed = this.failed;
    while (failed.length > 0 && n < events.capacity) {
      const token = failed.shift()!;
      const word = Atomics.load(this.table.words, slotOfToken(token));
      if (genOf(word) !== genOfToken(token) || (word & STATE) !== ACTIVE) continue;
      events.tokens[n] = token;
      events.ready[n++] = Ready.ERROR;
    }
    return n;
  }
}
