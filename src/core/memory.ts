/**
 * A reactor's shared memory: made at `open`, described by `share`, and joined from another
 * thread by `attach`, which checks the handle it is given before trusting any of it.
 */
import type { BackendHandle } from './backend.js';
import { Deadlines, type DeadlineMemory } from './deadlines.js';
import { Mode } from './flags.js';
import { fixedProblem } from './shared-memory.js';
import { closedError, ReactorError } from './errors.js';
import { Lifetime, type LifetimeMemory } from './lifetime.js';
import { ReadyQueue } from './ready-queue.js';
import { SharedState, STATE_BYTES_LIMIT, type StateMemory } from './state.js';
import { SLOT_LIMIT } from './state-machine.js';
import { Table, type TableMemory } from './table.js';

/** What `share` returns: structured-cloneable, for `Reactor.attach` in a worker thread. */
export interface ReactorHandle {
  readonly backend: BackendHandle;
  readonly table: TableMemory;
  readonly queue: SharedArrayBuffer;
  readonly signals: SharedArrayBuffer;
  readonly lifetime: LifetimeMemory;
  readonly deadlines: DeadlineMemory;
  readonly state: StateMemory;
  /** The mode `add` uses when its options name none. */
  readonly mode: Mode;
}

/** One thread's views of a reactor's shared memory. */
export interface ReactorMemory {
  readonly table: Table;
  readonly queue: ReadyQueue;
  readonly signals: Int32Array;
  readonly lifetime: Lifetime;
  readonly deadlines: Deadlines;
  readonly state: SharedState;
  /** The mode `add` uses when its options name none. */
  readonly mode: Mode;
}

/** Int32 words of the signals buffer, each on its own cache line. */
export const NOTIFIED = 0;
export const SLEEPERS = 16;
const SIGNAL_INTS = 32;

/** The registrations a reactor holds when `open` does not say. */
export const DEFAULT_CAPACITY = 65536;

/** Checks `open`'s sizes: the capacity and the state bytes per registration. */
export function checkSizes(capacity: number, stateBytes: number): void {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > SLOT_LIMIT) {
    throw new ReactorError('EINVAL', `capacity must be an integer from 1 to ${SLOT_LIMIT}, got ${String(capacity)}`);
  }
  if (!Number.isInteger(stateBytes) || stateBytes < 0 || stateBytes > STATE_BYTES_LIMIT || capacity * stateBytes > 2 ** 31) {
    throw new ReactorError(
      'EINVAL',
      `stateBytes must be an integer from 0 to ${STATE_BYTES_LIMIT}, and capacity × stateBytes at most 2 GiB; got ${String(stateBytes)}`,
    );
  }
}

/**
 * New memory for `capacity` registrations with `stateBytes` of state each (checked by
 * `checkSizes`) and `mode` for `add` by default, joined by thread `threadId`.
 */
export function createMemory(capacity: number, stateBytes: number, mode: Mode, threadId: number): ReactorMemory {
  return {
    mode,
    table: Table.create(capacity),
    queue: ReadyQueue.create(capacity),
    signals: new Int32Array(new SharedArrayBuffer(SIGNAL_INTS * 4)),
    lifetime: new Lifetime(Lifetime.memory(), threadId),
    deadlines: Deadlines.create(capacity),
    state: SharedState.create(capacity, stateBytes),
  };
}

/**
 * Gives a freed reactor's buffers to this thread's pool, if no other thread is attached (none can
 * reach them then: a thread attaching meanwhile finds the reactor closed). Its state is the
 * user's to keep views of, so it is never recycled; nor are the small fixed buffers.
 */
export function recycleMemory(memory: ReactorMemory): void {
  if (!memory.lifetime.alone()) return;
  memory.table.recycle();
  memory.queue.recycle();
  memory.deadlines.recycle();
  memory.lifetime.recycle();
}

/** The handle that describes `memory` and its backend. */
export function describe(memory: ReactorMemory, backend: BackendHandle): ReactorHandle {
  return {
    backend,
    table: memory.table.memory,
    queue: memory.queue.buffer,
    signals: memory.signals.buffer as SharedArrayBuffer,
    lifetime: memory.lifetime.memory,
    deadlines: memory.deadlines.memory,
    state: memory.state.memory,
    mode: memory.mode,
  };
}

/**
 * The handle, checked: EINVAL for anything `share` did not make, ECLOSED for a closed reactor.
 * Every buffer must be a SharedArrayBuffer that grows to exactly the size the capacity and
 * stateBytes it claims need (or has that size, for the fixed ones), so no view of it can reach
 * past its end.
 */
export function checkHandle(handle: unknown): ReactorHandle {
  const problem = handleProblem(handle);
  if (problem !== undefined) throw new ReactorError('EINVAL', `not a reactor handle (${problem}): pass what reactor.share() returned`);
  return handle as ReactorHandle;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** What is wrong with a handle, or undefined. */
function handleProblem(handle: unknown): string | undefined {
  if (!isObject(handle)) return 'not an object';
  const { backend, table, queue, signals, lifetime, deadlines, state } = handle;
  if (!isObject(backend) || typeof backend['kind'] !== 'string') return 'no backend';
  if (!isObject(table) || !isObject(deadlines) || !isObject(state) || !isObject(lifetime)) return 'no table, deadlines, state or lifetime';
  if (handle['mode'] !== Mode.DISPATCH && handle['mode'] !== Mode.ONESHOT && handle['mode'] !== Mode.EDGE) return 'no mode';
  const capacity = table['capacity'];
  const stateBytes = state['bytes'];
  if (typeof capacity !== 'number' || typeof stateBytes !== 'number') return 'no capacity or stateBytes';
  try {
    checkSizes(capacity, stateBytes);
  } catch (e) {
    return (e as Error).message;
  }
  return (
    Table.problem(table as unknown as TableMemory) ??
    ReadyQueue.problem(queue, capacity) ??
    fixedProblem('signals', signals, SIGNAL_INTS * 4) ??
    fixedProblem('lifetime header', lifetime['header'], Lifetime.HEADER_BYTES) ??
    fixedProblem('attachments', lifetime['attachments'], Lifetime.ATTACHMENTS_BYTES) ??
    Deadlines.problem(deadlines as unknown as DeadlineMemory, capacity) ??
    SharedState.problem(state as unknown as StateMemory, capacity)
  );
}

/** Thread `threadId`'s views of the memory a checked handle describes. */
export function attachMemory(handle: ReactorHandle, threadId: number): ReactorMemory {
  if (Lifetime.isClosed(handle.lifetime.header)) throw closedError();
  return {
    mode: handle.mode,
    table: Table.attach(handle.table),
    queue: new ReadyQueue(handle.queue),
    signals: new Int32Array(handle.signals),
    lifetime: new Lifetime(handle.lifetime, threadId),
    deadlines: new Deadlines(handle.deadlines),
    state: new SharedState(handle.state),
  };
}
