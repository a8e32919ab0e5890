/**
 * The contract every platform's socket implementation answers to (`posix.ts` and `winsock.ts`),
 * and the types of the public API in `index.ts`. `index.ts` validates every argument
 * and parses every host before it calls an implementation, so an implementation only ever
 * sees well-formed input and does only the system calls.
 */
import type { IpAddress } from './sockaddr.js';

/** Options of `listen`. */
export interface ListenOptions {
  /** The kernel's queue of completed connections not yet accepted (default 511; the OS may cap it). */
  readonly backlog?: number;
  /** Sets SO_REUSEPORT where the OS has it, so several sockets may listen on one port. */
  readonly reusePort?: boolean;
}

/**
 * What one `accept` call did: `count` sockets were stored at the start of `into`, and `error`
 * says why it stopped early, if it did.
 */
export interface AcceptResult {
  /** How many accepted sockets were written to `into[0]`..`into[count - 1]`. */
  readonly count: number;
  /**
   * undefined when the backlog was drained (or `into` was filled); otherwise the errno-style
   * code that stopped accepting: `EMFILE`, `ENFILE` (out of file descriptors), `ENOBUFS`,
   * `ENOMEM` (out of memory). The listener is still usable. Rarely another code (EBADF,
   * EINVAL...): a failure that is thrown when it comes first is reported here instead when
   * sockets were already accepted, so that they are not lost; the next call throws it.
   */
  readonly error: string | undefined;
}

/** Which direction `shutdown` ends. */
export type ShutdownHow = 'read' | 'write' | 'both';

/**
 * One platform's sockets. Every argument is already checked: fds are non-negative integers,
 * ports are in range, buffer ranges lie inside their buffer, `into` is a non-empty Int32Array.
 */
export interface NetImplementation {
  listen(address: IpAddress, port: number, backlog: number, reusePort: boolean): number;
  localPort(fd: number): number;
  accept(listenFd: number, into: Int32Array): AcceptResult;
  connect(address: IpAddress, port: number): number;
  recv(fd: number, buf: Uint8Array, offset: number, length: number): number;
  send(fd: number, buf: Uint8Array, offset: number, length: number): number;
  shutdown(fd: number, how: ShutdownHow): void;
  close(fd: number): void;
  setNoDelay(fd: number, on: boolean): void;
  socketError(fd: number): string | null;
}
