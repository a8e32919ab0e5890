/** The one error type of evdispatch: an errno-style code, the failing syscall, and what to do. */

/** Codes evdispatch raises itself; a failing syscall may add any errno name (`EMFILE`, `EPERM`, ...). */
export type ReactorErrorCode =
  | 'EINVAL'
  | 'EBADF'
  | 'ENOENT'
  | 'EEXIST'
  | 'ENOSPC'
  | 'ECLOSED'
  | (string & {});

/** Options that say where an error came from. */
export interface ReactorErrorOptions {
  /** The system call that failed, when one did. */
  readonly syscall?: string;
  /** The raw OS error number, when one is known. */
  readonly errno?: number;
}

/**
 * Raised for every bad input and every failed system call.
 *
 * @example
 * try { r.rearm(token); } catch (e) { if (e instanceof ReactorError && e.code === 'ENOENT') { ... } }
 */
export class ReactorError extends Error {
  /** errno-style code, e.g. `EINVAL`. */
  readonly code: ReactorErrorCode;
  /** The system call that failed, if any. */
  readonly syscall: string | undefined;
  /** The raw OS error number, if any. */
  readonly errno: number | undefined;

  constructor(code: ReactorErrorCode, message: string, options: ReactorErrorOptions = {}) {
    super(`${code}: ${message}`);
    this.name = 'ReactorError';
    this.code = code;
    this.syscall = options.syscall;
    this.errno = options.errno;
  }
}

/** ECLOSED: the reactor was closed, by this thread or another. */
export function closedError(): ReactorError {
  return new ReactorError('ECLOSED', 'the reactor is closed: open a new one');
}

/** ENOENT: a token whose registration is gone. */
export function notLive(token: number): ReactorError {
  return new ReactorError('ENOENT', `token ${token} is not live: its registration was deleted, or freed at delivery`);
}
