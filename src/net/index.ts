/**
 * Minimal non-blocking TCP for servers and tests, the same API on every OS: sockets are plain
 * numbers (an fd, or a Winsock SOCKET), buffers are Uint8Array. Readiness comes from the
 * reactor; these functions never block. Arguments are checked here, once, for every platform.
 */
import { ReactorError } from '../core/errors.js';
import { checkFd } from '../core/flags.js';
import { booleanOption, checkOptions } from '../core/options.js';
import type { AcceptResult, ListenOptions, NetImplementation, ShutdownHow } from './contract.js';
import { platform } from '../sys/platform.js';
import { posixSockets } from './posix.js';
import { parseHost } from './sockaddr.js';
import { winsock } from './winsock.js';

export type { AcceptResult, ListenOptions, ShutdownHow } from './contract.js';

/** An implementation for a platform that has none yet: every call is ENOSYS. */
function unavailable(why: string): NetImplementation {
  const fail = (): never => {
    throw new ReactorError('ENOSYS', why);
  };
  return {
    listen: fail,
    localPort: fail,
    accept: fail,
    connect: fail,
    recv: fail,
    send: fail,
    shutdown: fail,
    close: fail,
    setNoDelay: fail,
    socketError: fail,
  };
}

let chosen: NetImplementation | undefined;

/** This platform's sockets, bound on first use. */
function impl(): NetImplementation {
  if (chosen !== undefined) return chosen;
  const api = platform.sockets;
  chosen = api === 'winsock' ? winsock : api === 'posix' ? posixSockets() : unavailable(`evdispatch/net does not support ${platform.os}`);
  return chosen;
}

const DEFAULT_BACKLOG = 511; // as Node's net and libuv
const LISTEN_OPTIONS: readonly (keyof ListenOptions)[] = ['backlog', 'reusePort'];

function checkPort(port: unknown, allowZero: boolean): number {
  const min = allowZero ? 0 : 1;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    const range = allowZero ? '0 (any free port) to 65535' : '1 to 65535';
    throw new ReactorError('EINVAL', `port must be an integer from ${range}, got ${String(port)}`);
  }
  return port;
}

function checkBuffer(buf: unknown, offset: unknown, length: unknown): number {
  if (!(buf instanceof Uint8Array)) {
    throw new ReactorError('EINVAL', `buf must be a Uint8Array (a Buffer is one), got ${typeName(buf)}`);
  }
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset > buf.length) {
    throw new ReactorError('EINVAL', `offset must be an integer from 0 to buf.length (${buf.length}), got ${String(offset)}`);
  }
  const len = length === undefined ? buf.length - offset : length;
  if (typeof len !== 'number' || !Number.isInteger(len) || len < 0 || len > buf.length - offset) {
    throw new ReactorError(
      'EINVAL',
      `length must be an integer from 0 to buf.length - offset (${buf.length - offset}), got ${String(length)}`,
    );
  }
  return len;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}

/**
 * Opens a non-blocking TCP socket listening on `host` (an IPv4 or IPv6 literal, or
 * 'localhost' for 127.0.0.1) and `port` (0 picks a free one: read it with `localPort`).
 * A restarted server can rebind at once: SO_REUSEADDR is set on POSIX systems (on Windows,
 * where that would let another socket take the port over, SO_EXCLUSIVEADDRUSE is set instead);
 * `reusePort` sets SO_REUSEPORT where the OS has it (not on Windows). Returns the socket; accept connections when the reactor
 * reports it READABLE.
 *
 * @example
 * const server = listen('127.0.0.1', 0, { backlog: 1024 });
 * const token = reactor.add(server, Interest.READABLE);
 */
export function listen(host: string, port: number, options: ListenOptions = {}): number {
  const address = parseHost(host);
  checkPort(port, true);
  checkOptions(options, LISTEN_OPTIONS, 'listen');
  const backlog = options.backlog === undefined ? DEFAULT_BACKLOG : options.backlog;
  if (typeof backlog !== 'number' || !Number.isInteger(backlog) || backlog < 1 || backlog > 0x7fffffff) {
    throw new ReactorError('EINVAL', `backlog must be a positive integer, got ${String(options.backlog)}`);
  }
  const reusePort = booleanOption(options.reusePort, 'reusePort', false);
  return impl().listen(address, port, backlog, reusePort);
}

/**
 * The local port a socket is bound to: the one the OS picked after `listen(host, 0)`, or a
 * connected socket's ephemeral port.
 *
 * @example
 * const port = localPort(listen('::1', 0));
 */
export function localPort(fd: number): number {
  return impl().localPort(checkFd(fd));
}

/**
 * Accepts every pending connection of a listening socket, up to `into.length`, in one call:
 * the new sockets, non-blocking and close-on-exec, go to `into[0]`..`into[count - 1]`.
 * Stopping early for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
 * reported in `error`, not thrown: the listener stays usable, but the connections still
 * pending keep it READABLE, so free descriptors (or wait) before re-arming it. Connections
 * that died while queued (ECONNABORTED, and the network errors Linux's accept(2) passes on) are
 * skipped. When `count === into.length` there may be more: re-arm and the reactor reports the
 * listener again. Other failures (EBADF, EINVAL: not listening) are thrown, but only when no
 * socket has been accepted yet, so none is lost.
 *
 * @example
 * const fds = new Int32Array(64);
 * const { count, error } = accept(server, fds);
 * for (let i = 0; i < count; i++) reactor.add(fds[i]!, Interest.READABLE);
 * if (error !== undefined) console.warn(`accept stopped: ${error}`);
 */
export function accept(listenFd: number, into: Int32Array): AcceptResult {
  checkFd(listenFd);
  if (!(into instanceof Int32Array) || into.length === 0) {
    throw new ReactorError('EINVAL', `into must be a non-empty Int32Array for the accepted sockets, got ${typeName(into)}`);
  }
  return impl().accept(listenFd, into);
}

/**
 * Starts a non-blocking TCP connection to `host` (an IPv4 or IPv6 literal, or 'localhost')
 * and `port`, and returns the socket at once. The connection is complete when the reactor
 * reports the socket WRITABLE; then `socketError` says whether it succeeded (null) or how it
 * failed ('ECONNREFUSED', 'ETIMEDOUT', ...). Errors the OS reports at once are thrown.
 *
 * @example
 * const fd = connect('127.0.0.1', port);
 * const token = reactor.add(fd, Interest.WRITABLE);
 * // ...delivered WRITABLE:
 * if (socketError(fd) !== null) { reactor.delete(token); close(fd); }
 */
export function connect(host: string, port: number): number {
  const address = parseHost(host);
  return impl().connect(address, checkPort(port, false));
}

/**
 * Reads into `buf[offset .. offset + length)`. Returns the bytes read; 0 at end of stream (the
 * peer shut down its side); -1 when nothing is there yet (EAGAIN: wait for READABLE). Throws
 * ReactorError for a failed connection (ECONNRESET, ETIMEDOUT, ...). `length` must be at least
 * 1, or 0 could not be told from end of stream.
 *
 * @example
 * const n = recv(fd, buf);
 * if (n > 0) handle(buf.subarray(0, n));
 * if (n === 0) { reactor.delete(token); close(fd); } else reactor.rearm(token); // end of stream, or more to come
 */
export function recv(fd: number, buf: Uint8Array, offset: number = 0, length?: number): number {
  checkFd(fd);
  const len = checkBuffer(buf, offset, length);
  if (len === 0) {
    throw new ReactorError('EINVAL', 'recv needs room for at least 1 byte: a read of 0 bytes would look like end of stream');
  }
  return impl().recv(fd, buf, offset, len);
}

/**
 * Writes `buf[offset .. offset + length)`. Returns the bytes written, which may be fewer than
 * asked (send the rest when the reactor reports WRITABLE), or -1 when the socket's buffer is
 * full (EAGAIN). Throws ReactorError when the connection is gone: EPIPE, ECONNRESET. Never
 * raises SIGPIPE.
 *
 * @example
 * let at = 0;
 * while (at < data.length) { const n = send(fd, data, at); if (n < 0) break; at += n; }
 */
export function send(fd: number, buf: Uint8Array, offset: number = 0, length?: number): number {
  checkFd(fd);
  const len = checkBuffer(buf, offset, length);
  return impl().send(fd, buf, offset, len);
}

/**
 * Ends one or both directions of a connection: after 'write' the peer reads end of stream once
 * it has read everything sent before. Throws ENOTCONN if the socket is not connected.
 *
 * @example
 * shutdown(fd, 'write'); // half-close: still readable
 */
export function shutdown(fd: number, how: ShutdownHow): void {
  checkFd(fd);
  if (how !== 'read' && how !== 'write' && how !== 'both') {
    throw new ReactorError('EINVAL', `how must be 'read', 'write' or 'both', got ${String(how)}`);
  }
  impl().shutdown(fd, how);
}

/**
 * Closes a socket. Delete its reactor registration first: closing does not delete it. Throws
 * EBADF for a socket that is not open (closed twice?); never retried, so it cannot close a
 * number another thread has just been given.
 *
 * @example
 * reactor.delete(token);
 * close(fd);
 */
export function close(fd: number): void {
  impl().close(checkFd(fd));
}

/**
 * Turns Nagle's algorithm off (`on` true: TCP_NODELAY) so small writes go out at once, or back on.
 *
 * @example
 * setNoDelay(fd, true);
 */
export function setNoDelay(fd: number, on: boolean): void {
  checkFd(fd);
  if (typeof on !== 'boolean') throw new ReactorError('EINVAL', `on must be a boolean, got ${String(on)}`);
  impl().setNoDelay(fd, on);
}

/**
 * The socket's pending error (SO_ERROR), cleared by reading it: null if none, else its code,
 * e.g. 'ECONNREFUSED' after a failed `connect`.
 *
 * @example
 * const err = socketError(fd);
 * if (err !== null) throw new Error(`connect failed: ${err}`);
 */
export function socketError(fd: number): string | null {
  return impl().socketError(checkFd(fd));
}
