/** koffi handles to the C library of POSIX systems, and errno as ReactorError. */
import koffi, { type LibraryHandle } from 'koffi';
import { ReactorError } from '../../core/errors.js';

/** The C library, per OS; loaded once for the life of the process. */
function libcName(): string {
  switch (process.platform) {
    case 'linux':
      return 'libc.so.6';
    case 'darwin':
      return 'libSystem.B.dylib';
    case 'freebsd':
      return 'libc.so.7';
    default:
      return 'libc.so';
  }
}

/**
 * The C library by name, or else the symbols already in the process (dlopen(NULL)): Node links
 * the C library, so every libc function is there even where its file name differs (musl).
 */
function loadLibc(): LibraryHandle {
  try {
    return koffi.load(libcName());
  } catch {
    return koffi.load(null);
  }
}

export const libc = loadLibc();

export const close = libc.func('int close(int fd)') as (fd: number) => number;
export const read = libc.func('long read(int fd, void *buf, size_t count)') as (fd: number, buf: ArrayBufferView, count: number) => number;
export const write = libc.func('long write(int fd, void *buf, size_t count)') as (fd: number, buf: ArrayBufferView, count: number) => number;

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
  return new ReactorError(errnoName(value), `${syscall} failed: ${what}`, { syscall, errno: value });
}
