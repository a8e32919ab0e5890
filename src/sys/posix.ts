/** koffi handles to the C library of POSIX systems, and errno as ReactorError. */
import koffi, { type LibraryHandle } from 'koffi';
import { systemError, type ReactorError } from '../core/errors.js';
import { onFirstUse } from './once.js';
import { platform } from './platform.js';

/**
 * The C library by name, or else the symbols already in the process (dlopen(NULL)): Node links
 * the C library, so every libc function is there even where its file name differs (musl).
 */
function loadLibc(): LibraryHandle {
  try {
    return koffi.load(platform.libc);
  } catch {
    return koffi.load(null);
  }
}

/** The C library, loaded on first use (never at import, so importing this on Windows is safe). */
export const libc: () => LibraryHandle = onFirstUse(loadLibc);

/** The few file calls every POSIX backend makes. */
export interface FileCalls {
  readonly close: (fd: number) => number;
  readonly read: (fd: number, buf: ArrayBufferView, count: number) => number;
  readonly write: (fd: number, buf: ArrayBufferView, count: number) => number;
}

/** close, read and write, bound on first use. */
export const files: () => FileCalls = onFirstUse(() => {
  const lib = libc();
  return {
    close: lib.func('int close(int fd)') as FileCalls['close'],
    read: lib.func('long read(int fd, void *buf, size_t count)') as FileCalls['read'],
    write: lib.func('long write(int fd, void *buf, size_t count)') as FileCalls['write'],
  };
});

/** Sets errno to 0: for calls that can fail without setting it. */
export function clearErrno(): void {
  koffi.errno(0);
}

/** The calling thread's errno after a failed call. */
export function errno(): number {
  return koffi.errno();
}

const errnoNames = new Map<number, string>(Object.entries(koffi.os.errno).map(([name, value]) => [value, name]));

/** errno constants of this OS, by name (EAGAIN, EINTR, ...). */
export const Errno = koffi.os.errno;

/** The symbolic name of an errno value, e.g. 9 → EBADF on Linux. */
export function errnoName(value: number): string {
  return errnoNames.get(value) ?? `E${value}`;
}

/** A ReactorError for a syscall that failed with `value`, saying what was attempted. */
export function syscallError(syscall: string, value: number, what: string): ReactorError {
  return systemError(syscall, errnoName(value), value, what);
}
