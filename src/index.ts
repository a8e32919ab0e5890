/** evdispatch: a dispatch-once reactor with FORCEOS over epoll, kqueue and IOCP. */
export { Reactor, type OpenOptions, type AttachOptions, type AddOptions, type ReactorHandle } from './core/reactor.js';
export { Events } from './core/events.js';
export type { StopWatching } from './loop/watch.js';
export { Interest, Ready, Mode } from './core/flags.js';
export { ReactorError, type ReactorErrorCode, type ReactorErrorOptions } from './core/errors.js';
export type { BackendKind } from './core/backend.js';
export type { BackendChoice } from './backends/select.js';
export {
  runWorkers,
  HandlerError,
  type RunWorkersOptions,
  type Workers,
  type WorkersSummary,
  type ThreadSummary,
  type WorkerContext,
  type EventHandler,
  type HandlerModule,
} from './workers/pool.js';
