/**
 * The one platform table: everything that differs between operating systems is decided here,
 * once, from `process.platform` and `process.arch`. Nothing is bound or loaded by reading it.
 */
import type { BackendKind } from '../core/backend.js';

/** The systems whose kqueue struct layouts `kqueue-layouts.ts` knows. */
export type KqueueSystem = 'macos' | 'freebsd' | 'openbsd' | 'netbsd';

/** Which socket API `net/` binds. */
export type SocketApi = 'posix' | 'winsock';

/** What this process can use. */
export interface Platform {
  readonly os: string;
  readonly arch: string;
  /** The kernel queues, the default first; kqueue on Linux only through libkqueue (below). */
  readonly backends: readonly BackendKind[];
  /** The C library's file name (POSIX), tried before the process's own symbols. */
  readonly libc: string;
  /** Which kqueue ABI the C library has, where it has one. */
  readonly kqueue: KqueueSystem | undefined;
  /** The socket API, where `net/` has one for this OS. */
  readonly sockets: SocketApi | undefined;
  /** Whether the native helper (src/native) exists for this OS: it drives epoll. */
  readonly nativeHelper: boolean;
  /** RLIMIT_NOFILE for getrlimit/setrlimit (POSIX): Linux bits/resource.h, BSD sys/resource.h. */
  readonly rlimitNofile: number | undefined;
}

/** The environment variable naming a libkqueue shared library: the only way to kqueue on Linux. */
export const KQUEUE_LIB_ENV = 'EVDISPATCH_KQUEUE_LIB';

const KQUEUE_OS: Readonly<Record<string, KqueueSystem>> = { darwin: 'macos', freebsd: 'freebsd', openbsd: 'openbsd', netbsd: 'netbsd' };

const LIBC: Readonly<Record<string, string>> = {
  linux: 'libc.so.6',
  android: 'libc.so',
  darwin: 'libSystem.B.dylib',
  freebsd: 'libc.so.7',
  openbsd: 'libc.so',
  netbsd: 'libc.so',
};

/** The table for an OS and CPU; `kqueueLib` is the libkqueue path from the environment, if any. */
export function platformOf(os: string, arch: string, kqueueLib: string | undefined): Platform {
  const kqueue = KQUEUE_OS[os];
  const backends: BackendKind[] = [];
  if (os === 'linux' || os === 'android') backends.push('epoll');
  if (kqueue !== undefined || (os === 'linux' && kqueueLib !== undefined && kqueueLib !== '')) backends.push('kqueue');
  if (os === 'win32') backends.push('iocp');
  return {
    os,
    arch,
    backends,
    libc: LIBC[os] ?? 'libc.so',
    kqueue,
    sockets: os === 'win32' ? 'winsock' : os in LIBC ? 'posix' : undefined,
    nativeHelper: os === 'linux',
    rlimitNofile: os === 'linux' || os === 'android' ? 7 : os in LIBC ? 8 : undefined,
  };
}

/** This process's platform. */
export const platform: Platform = platformOf(process.platform, process.arch, process.env[KQUEUE_LIB_ENV]);
