/** The kernel queues this platform has (from the platform table), opened by kind. */
import type { Backend, BackendChoice, BackendHandle, BackendKind, BackendOptions } from '../core/backend.js';
import { ReactorError } from '../core/errors.js';
import { platform } from '../sys/platform.js';
import { EpollBackend } from './epoll.js';
import { IocpBackend } from './iocp.js';
import { KqueueBackend } from './kqueue.js';

/** How a backend is opened, and joined from another thread. Each binds its OS's calls on first open. */
interface BackendModule {
  open(options: BackendOptions): Backend;
  attach(handle: BackendHandle, indexOf: BackendOptions['indexOf']): Backend;
}

const MODULES: Readonly<Record<BackendKind, BackendModule>> = {
  epoll: EpollBackend,
  kqueue: KqueueBackend,
  iocp: IocpBackend,
};

/** The backends this process can open, the default first. */
export function availableBackends(): BackendKind[] {
  return [...platform.backends];
}

function moduleOf(kind: BackendKind): BackendModule {
  if (!platform.backends.includes(kind)) {
    const none = platform.backends.length === 0;
    throw new ReactorError(
      'ENOSYS',
      none ? `no kernel event queue is supported on ${platform.os}` : `the ${kind} backend is not available on ${platform.os}; use backend: 'auto'`,
    );
  }
  return MODULES[kind];
}

/** Opens the backend `choice` names (`auto`: the platform's default). */
export function openBackend(choice: BackendChoice, options: BackendOptions): Backend {
  if (choice !== 'auto' && !Object.hasOwn(MODULES, choice)) {
    throw new ReactorError('EINVAL', `backend must be 'auto', 'epoll', 'kqueue' or 'iocp', got ${String(choice)}`);
  }
  const kind = choice === 'auto' ? platform.backends[0] : choice;
  if (kind === undefined) throw new ReactorError('ENOSYS', `no kernel event queue is supported on ${platform.os}`);
  return moduleOf(kind).open(options);
}

/** Joins, from another thread, the backend `handle` describes. */
export function attachBackend(handle: BackendHandle, indexOf: BackendOptions['indexOf']): Backend {
  if (!Object.hasOwn(MODULES, handle.kind)) {
    throw new ReactorError('EINVAL', `not a reactor handle (no backend is called ${String(handle.kind)}): pass what reactor.share() returned`);
  }
  return moduleOf(handle.kind).attach(handle, indexOf);
}
