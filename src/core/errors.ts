/** The one error type of evdispatch: an errno-style code, the failing syscall, and what to do. */

/** The codes of evdispatch's own checks (README, "Errors", says when each is raised). */
const OWN_CODES = ['EINVAL', 'EBADF', 'ENOENT', 'EEXIST', 'ENOSPC', 'EMSGSIZE', 'ECLOSED', 'ENOSYS', 'EAFNOSUPPORT', 'EIO'] as const;

/**
 * The errnos the kernel calls evdispatch makes can fail with, by their man pages (epoll_ctl,
 * kevent, the socket calls; Win32 and Winsock errors by their POSIX names), passed on as they
 * are. Any other errno is raised as EIO, its own name in the message and its number in `errno`.
 */
const SYSTEM_CODES = [
  'EPERM',
  'EACCES',
  'EMFILE',
  'ENFILE',
  'ENOMEM',
  'ENOBUFS',
  'ELOOP',
  'ENOTSOCK',
  'EOPNOTSUPP',
  'ENOTSUP',
  'EPROTO',
  'ENOPROTOOPT',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTCONN',
  'EISCONN',
  'ETIMEDOUT',
  'ENETDOWN',
  'ENETUNREACH',
  'ENETRESET',
  'EHOSTDOWN',
  'EHOSTUNREACH',
] as const;

/** Every code a `ReactorError` can have. */
export type ReactorErrorCode = (typeof OWN_CODES)[number] | (typeof SYSTEM_CODES)[number];

/** Every code a `ReactorError` can have, for code that lists or checks them. */
export const REACTOR_ERROR_CODES: readonly ReactorErrorCode[] = [...OWN_CODES, ...SYSTEM_CODES];

const KNOWN: ReadonlySet<string> = new Set(REACTOR_ERROR_CODES);

/** The code for an errno name: itself where listed, else EIO. */
export function codeOf(errnoName: string): ReactorErrorCode {
  return KNOWN.has(errnoName) ? (errnoName as ReactorErrorCode) : 'EIO';
}

/**
 * A failed system call: `name` is the errno's (or Win32 error's POSIX) name, `errno` its number,
 * `what` what was attempted. An errno outside the list keeps its name in the message.
 */
export function systemError(syscall: string, name: string, errno: number, what: string): ReactorError {
  const code = codeOf(name);
  const failed = code === name ? `${syscall} failed` : `${syscall} failed with ${name}`;
  return new ReactorError(code, `${failed}: ${what}`, { syscall, errno });
}

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
