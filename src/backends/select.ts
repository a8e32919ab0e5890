/** Picks the kernel queue for this platform, loading only the bindings this OS has. */
import type { Backend, BackendHandle, BackendKind } from '../core/backend.js';
import { ReactorError } from '../core/errors.js';

/** Which backend an `open` asks for. */
export type BackendChoice = 'auto' | BackendKind;

interface BackendModule {
  /** Opens a backend for at most `capacity` registrations; `native`: use the native helper if present. */
  open(capacity: number, native: boolean): Backend;
  attach(handle: BackendHandle): Backend;
}

// Each backend binds its OS's libraries when imported, so import only the platform's own.
// The first one listed is the default.
const modules: Partial<Record<BackendKind, BackendModule>> = {};
const kqueueOs = ['darwin', 'freebsd', 'openbsd', 'netbsd'].includes(process.platform);
if (process.platform === 'linux') modules.epoll = (await import('./epoll.js')).EpollBackend;
// On Linux, kqueue is there only through a libkqueue the environment names (for testing).
if (kqueueOs || (process.platform === 'linux' && process.env['EVDISPATCH_KQUEUE_LIB'])) {
  modules.kqueue = (await import('./kqueue.js')).KqueueBackend;
}
if (process.platform === 'win32') modules.iocp = (await import('./iocp.js')).IocpBackend;

/** The backends this process can open, the default first. */
export function availableBackends(): BackendKind[] {
  return Object.keys(modules) as BackendKind[];
}

/** The backend kind `auto` means here. */
function defaultKind(): BackendKind {
  const kind = Object.keys(modules)[0] as BackendKind | undefined;
  if (kind === undefined) {
    throw new ReactorError('ENOSYS', `no kernel event queue is supported on ${process.platform}`);
  }
  return kind;
}

function module(kind: BackendKind): BackendModule {
  const found = modules[kind];
  if (found === undefined) {
    throw new ReactorError('ENOSYS', `the ${kind} backend is not available on ${process.platform}; use backend: 'auto'`);
  }
  return found;
}

export function openBackend(choice: BackendChoice, capacity: number, native: boolean): Backend {
  if (choice !== 'auto' && choice !== 'epoll' && choice !== 'kqueue' && choice !== 'iocp') {
    throw new ReactorError('EINVAL', `backend must be 'auto', 'epoll', 'kqueue' or 'iocp', got ${String(choice)}`);
  }
  return module(choice === 'auto' ? defaultKind() : choice).open(capacity, native);
}

export function attachBackend(handle: BackendHandle): Backend {
  return module(handle.kind).attach(handle);
}
