/**
 * Per-registration shared state: `bytes` for each slot, slot after slot, in one SharedArrayBuffer
 * whose pages are committed as slots are used. Never recycled: the user holds views of it.
 */
import { ReactorError } from './errors.js';
import { fixedProblem, sharedBuffer } from './shared-memory.js';

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

  /** A new registration's state: `initial`, the rest zeroed. */
  initialize(slot: number, initial: Uint8Array | undefined): void {
    if (this.memory.bytes === 0) return;
    const state = this.view(slot);
    state.fill(0, initial?.length ?? 0);
    if (initial !== undefined) state.set(initial);
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
