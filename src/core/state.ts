/**
 * Per-registration shared state: `bytes` for each slot, slot after slot, in one SharedArrayBuffer
 * whose pages are committed as they are written: an idle registration that wrote a few bytes of
 * its state costs a page, not all its bytes. Never recycled: the user holds views of it.
 */
import { ReactorError } from './errors.js';
import { fixedProblem, sharedBuffer } from './shared-memory.js';

/** The kernel's unit of memory: a page never written reads as zeros and costs none. */
const PAGE = 4096;

/** The most bytes of state a registration may have. */
export const STATE_BYTES_LIMIT = 65536;

/** The state's memory, as `share` passes it to another thread. */
export interface StateMemory {
  readonly bytes: number;
  readonly buffer: SharedArrayBuffer;
}

/** One thread's access to the shared state of every registration. */
export class SharedState {
  private whole: Uint8Array | undefined;
  private ints: Int32Array | undefined;

  constructor(readonly memory: StateMemory) {}

  static create(capacity: number, bytes: number): SharedState {
    return new SharedState({ bytes, buffer: sharedBuffer(capacity * bytes) });
  }

  /** What is wrong with `memory` as the state of `capacity` slots, or undefined. */
  static problem(memory: StateMemory, capacity: number): string | undefined {
    return fixedProblem('state', memory.buffer, capacity * memory.bytes);
  }

  get bytes(): number {
    return this.memory.bytes;
  }

  /** Every registration's state: one view for this thread. */
  get all(): Uint8Array {
    this.whole ??= new Uint8Array(this.memory.buffer);
    return this.whole;
  }

  /** The state of `slot`. */
  view(slot: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, slot * this.memory.bytes, this.memory.bytes);
  }

  /** Checks a registration's first state, given at `add`, before anything is allocated. */
  checkInitial(initial: Uint8Array | undefined): void {
    if (initial === undefined || (initial instanceof Uint8Array && initial.length <= this.memory.bytes)) return;
    throw new ReactorError(
      initial instanceof Uint8Array ? 'EMSGSIZE' : 'EINVAL',
      `state must be a Uint8Array of at most the ${this.memory.bytes} bytes per registration chosen at open`,
    );
  }

  /**
   * A new registration's state: `initial`, the rest zero. A slot never used (`fresh`) is zero
   * already; a used one is zeroed page by page where it is not, so that pages its last
   * registration never wrote stay uncommitted.
   */
  initialize(slot: number, initial: Uint8Array | undefined, fresh: boolean): void {
    const bytes = this.memory.bytes;
    if (bytes === 0) return;
    if (initial !== undefined) this.view(slot).set(initial);
    if (fresh) return;
    const all = this.all;
    const end = (slot + 1) * bytes;
    for (let at = slot * bytes + (initial?.length ?? 0); at < end; ) {
      const next = Math.min(end, (Math.floor(at / PAGE) + 1) * PAGE);
      if (!this.zeroed(at, next)) all.fill(0, at, next);
      at = next;
    }
  }

  /** Whether bytes [from, to) of the state are all zero: read four at a time where aligned. */
  private zeroed(from: number, to: number): boolean {
    const all = this.all;
    const ints = (this.ints ??= new Int32Array(this.memory.buffer, 0, this.memory.buffer.byteLength >> 2));
    let i = from;
    for (; i < to && (i & 3) !== 0; i++) if (all[i] !== 0) return false;
    for (; i + 4 <= to; i += 4) if (ints[i >> 2] !== 0) return false;
    for (; i < to; i++) if (all[i] !== 0) return false;
    return true;
  }

  /** Copies `data` into the state of `slot` at `offset`; EMSGSIZE if it does not fit. */
  write(slot: number, data: Uint8Array, offset: number): void {
    if (!(data instanceof Uint8Array)) throw new ReactorError('EINVAL', 'writeState takes a Uint8Array');
    if (!Number.isInteger(offset) || offset < 0) throw new ReactorError('EINVAL', `offset must be a non-negative integer, got ${String(offset)}`);
    const bytes = this.memory.bytes;
    if (offset + data.length > bytes) {
      throw new ReactorError(
        'EMSGSIZE',
        `${data.length} bytes at offset ${offset} do not fit the ${bytes} bytes of state per registration: open with a larger stateBytes`,
      );
    }
    new Uint8Array(this.memory.buffer, slot * bytes + offset, data.length).set(data);
  }
}
