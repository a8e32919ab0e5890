/** evdispatch: a dispatch-once reactor with FORCEOS over epoll, kqueue and IOCP. */
export { Reactor } from './reactor.js';
export type { OpenOptions, AttachOptions, AddOptions } from './core/options.js';
export type { ReactorHandle } from './core/memory.js';
export { Events } from './core/events.js';
export type { StopWatching } from './core/loop.js';
export { Interest, Ready, Mode } from './core/flags.js';
export { ReactorError, REACTOR_ERROR_CODES, type ReactorErrorCode, type ReactorErrorOptions } from './core/errors.js';
export type { BackendKind, BackendChoice } from './core/backend.js';
export { availableBackends } from './backends/index.js';
export {
  runWorkers,
  HandlerError,
  type RunWorkersOptions,
  type Workers,
  type WorkersSummary,
  type ThreadSummary,
  type ThreadDeath,
  type WorkerContext,
  type EventHandler,
  type HandlerModule,
} from './workers/pool.js';
