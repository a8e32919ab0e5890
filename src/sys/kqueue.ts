/**
 * The kqueue implementations a process can load: the C library's on macOS and the BSDs, with
 * the struct layout of its OS, or libkqueue on Linux from EVDISPATCH_KQUEUE_LIB.
 */
import koffi, { type LibraryHandle } from 'koffi';
import { ReactorError } from '../core/errors.js';
import { FREEBSD, LIBKQUEUE, MACOS, NETBSD10, NETBSD11, OPENBSD, type KeventProfile } from './kqueue-layouts.js';
import { KQUEUE_LIB_ENV, platform } from './platform.js';
import { libc } from './posix.js';

export type KeventFn = (
  kq: number,
  changelist: Uint8Array | null,
  nchanges: number,
  eventlist: Uint8Array | null,
  nevents: number,
  timeout: BigInt64Array | null,
) => number;

/** One loaded kqueue implementation. */
export interface KqueueLibrary {
  readonly profile: KeventProfile;
  readonly path: string | null;
  readonly kqueue: () => number;
  readonly kevent: KeventFn;
}

/**
 * Every library loaded, kept for the life of the process: koffi unloads a library whose handle
 * is collected, and libkqueue's monitoring thread crashes at exit once its code is unmapped.
 */
const libraries = new Map<string, KqueueLibrary>();
const pinned: unknown[] = [];

function bind(lib: LibraryHandle, profile: KeventProfile, path: string | null): KqueueLibrary {
  const count = profile.countType;
  return {
    profile,
    path,
    kqueue: lib.func('int kqueue(void)') as () => number,
    kevent: lib.func(profile.symbol, 'int', ['int', 'void *', count, 'void *', count, 'void *']) as KeventFn,
  };
}

/** The C library's kqueue on macOS and the BSDs, with the layout of this OS (and release, on NetBSD). */
function nativeLibrary(): KqueueLibrary {
  switch (platform.kqueue) {
    case 'macos':
      return bind(libc(), MACOS, null);
    // FreeBSD's default `kevent` symbol version (FBSD_1.5) is the 64-byte layout of 12.0 and later.
    case 'freebsd':
      return bind(libc(), FREEBSD, null);
    case 'openbsd':
      return bind(libc(), OPENBSD, null);
    case 'netbsd':
      // NetBSD 11 has __kevent100 (72-byte struct); 6 to 10 only __kevent50 (40 bytes).
      try {
        return bind(libc(), NETBSD11, null);
      } catch {
        return bind(libc(), NETBSD10, null);
      }
    case undefined:
      throw new ReactorError(
        'ENOSYS',
        `kqueue is not native on ${platform.os}: set ${KQUEUE_LIB_ENV} to the path of a libkqueue shared library, or use another backend`,
      );
  }
}

/** libkqueue from `path`, pinned with a dlopen that is never closed. */
function libkqueueLibrary(path: string): KqueueLibrary {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new ReactorError('ENOENT', `could not load libkqueue from ${KQUEUE_LIB_ENV}=${path}: ${(e as Error).message}`);
  }
  const dlopen = libc().func('void *dlopen(const char *path, int mode)') as (path: string, mode: number) => unknown;
  const RTLD_NOW = 2;
  pinned.push(lib, dlopen(path, RTLD_NOW));
  try {
    return bind(lib, LIBKQUEUE, path);
  } catch (e) {
    throw new ReactorError('ENOENT', `${path} is not a libkqueue library (no kqueue/kevent symbols): ${(e as Error).message}`);
  }
}

/** Loads (once) the kqueue implementation: the C library's, or libkqueue's on Linux. */
export function libraryAt(path: string | null): KqueueLibrary {
  const cacheKey = path ?? '';
  const cached = libraries.get(cacheKey);
  if (cached !== undefined) return cached;
  if (koffi.sizeof('void *') !== 8) {
    throw new ReactorError('ENOSYS', 'the kqueue backend supports 64-bit processes only (its struct layouts are LP64)');
  }
  const loaded = path === null ? nativeLibrary() : libkqueueLibrary(path);
  libraries.set(cacheKey, loaded);
  return loaded;
}

/** The library `open` uses here: libkqueue on Linux (from the environment), libc elsewhere. */
export function kqueueLibrary(): KqueueLibrary {
  if (platform.kqueue !== undefined) return libraryAt(null);
  const path = process.env[KQUEUE_LIB_ENV];
  if (path === undefined || path === '') {
    throw new ReactorError(
      'ENOSYS',
      `kqueue is not native on Linux: set ${KQUEUE_LIB_ENV} to the path of a libkqueue shared library (libkqueue.so), or use the epoll backend`,
    );
  }
  return libraryAt(path);
}
