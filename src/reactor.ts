/**
 * Reactor: the core's API over this platform's kernel queue and Node's event loop. The one
 * place that picks a backend and wires the loop: core is handed both.
 */
import { attachBackend, openBackend } from './backends/index.js';
import { checkHandle, attachMemory, checkSizes, createMemory, DEFAULT_CAPACITY, type ReactorHandle } from './core/memory.js';
import { booleanOption, checkOptions, type AttachOptions, type OpenOptions } from './core/options.js';
import { checkMode, Mode } from './core/flags.js';
import { CoreReactor } from './core/reactor.js';
import { slotOfToken } from './core/state-machine.js';
import { nodeLoop } from './loop/watch.js';
import { isMainThread, threadId } from 'node:worker_threads';

/**
 * How long one kernel wait may block in a worker thread: `worker.terminate()` takes effect once
 * the thread is back from the kernel, so this bounds how long it takes.
 */
const WORKER_WAIT_SLICE_MS = 50;

function engineOptions(batchRearms: boolean): { batchRearms: boolean; waitSliceMs: number } {
  return { batchRearms, waitSliceMs: isMainThread ? -1 : WORKER_WAIT_SLICE_MS };
}

/**
 * A dispatch-once event reactor shared by many threads. Each registration's event is active in
 * at most one thread at a time: from its delivery until the handler calls `rearm` or `delete`.
 *
 * @example
 * const r = Reactor.open();
 * const t = r.add(fd, Interest.READABLE);
 * const ev = new Events(64);
 * const n = r.wait(ev, 1000);
 * for (let i = 0; i < n; i++) { handle(ev.token(i), ev.readiness(i)); r.rearm(ev.token(i)); }
 */
export class Reactor extends CoreReactor {
  /**
   * Opens a reactor on this platform's kernel queue.
   *
   * @example
   * const r = Reactor.open({ capacity: 10000 });
   */
  static open(options: OpenOptions = {}): Reactor {
    checkOptions(options, OPEN_OPTIONS, 'open');
    const capacity = options.capacity === undefined ? DEFAULT_CAPACITY : options.capacity;
    const stateBytes = options.stateBytes === undefined ? 0 : options.stateBytes;
    checkSizes(capacity, stateBytes);
    const native = booleanOption(options.native, 'native', true);
    const batchRearms = booleanOption(options.batchRearms, 'batchRearms', true);
    const backend = openBackend(options.backend === undefined ? 'auto' : options.backend, { capacity, native, indexOf: slotOfToken });
    const mode = options.mode === undefined ? Mode.DISPATCH : checkMode(options.mode);
    return new Reactor(backend, createMemory(capacity, stateBytes, mode, threadId), nodeLoop, engineOptions(batchRearms));
  }

  /**
   * Joins, from another thread, the reactor that `share()` described.
   *
   * @example
   * // in a worker: const r = Reactor.attach(workerData.reactor);
   */
  static attach(handle: ReactorHandle, options: AttachOptions = {}): Reactor {
    checkOptions(options, ATTACH_OPTIONS, 'attach');
    const batchRearms = booleanOption(options.batchRearms, 'batchRearms', true);
    const checked = checkHandle(handle);
    const backend = attachBackend(checked.backend, slotOfToken);
    return new Reactor(backend, attachMemory(checked, threadId), nodeLoop, engineOptions(batchRearms));
  }
}

const OPEN_OPTIONS: readonly (keyof OpenOptions)[] = ['backend', 'capacity', 'stateBytes', 'mode', 'batchRearms', 'native'];
const ATTACH_OPTIONS: readonly (keyof AttachOptions)[] = ['batchRearms'];
