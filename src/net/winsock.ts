/**
 * Bindings to Winsock 2 (Windows): non-blocking TCP sockets that child processes do not inherit.
 * Arguments arrive checked by `index.ts`. Winsock's errors are raised under the errno names a
 * POSIX program sees for the same failure (WSAECONNREFUSED is ECONNREFUSED, ...), and its
 * WSAEWOULDBLOCK is the -1 that means EAGAIN, as in `posix.ts`.
 *
 * A SOCKET is a handle, pointer-sized, but 64-bit Windows keeps handle values in 32 bits for
 * interoperability with 32-bit processes ("Interprocess Communication Between 32-bit and 64-bit
 * Applications"), and they are small multiples of 4: they pass as the same non-negative
 * integers as POSIX fds, and fit the Int32Array that `accept` fills.
 */
import { ReactorError, systemError } from '../core/errors.js';
import {
  FIONBIO,
  HANDLE_FLAG_INHERIT,
  INVALID_SOCKET,
  IPPROTO_TCP,
  SD_BOTH,
  SD_RECEIVE,
  SD_SEND,
  SO_ERROR,
  SO_EXCLUSIVEADDRUSE,
  SOCK_STREAM,
  SOCKET_ERROR,
  SOL_SOCKET,
  TCP_NODELAY,
  WINSOCK_VERSION_2_2,
  WSA_FLAG_NO_HANDLE_INHERIT,
  WSA_FLAG_OVERLAPPED,
  WSADATA_SIZE,
  WSAEACCES,
  WSAEADDRINUSE,
  WSAEADDRNOTAVAIL,
  WSAEAFNOSUPPORT,
  WSAECONNABORTED,
  WSAECONNRESET,
  WSAEINTR,
  WSAEINVAL,
  WSAEMFILE,
  WSAENOBUFS,
  WSAENOTCONN,
  WSAENOTSOCK,
  WSAEOPNOTSUPP,
  WSAESHUTDOWN,
  WSAEWOULDBLOCK,
  win32,
  win32Error,
  win32ErrnoName,
  type Win32,
} from '../sys/win32.js';
import type { AcceptResult, NetImplementation, ShutdownHow } from './contract.js';
import { decodeSockaddr, encodeSockaddr, formatIp, SOCKADDR_STORAGE_SIZE, WINDOWS_SOCKADDR, type IpAddress } from './sockaddr.js';

const SHUT: Record<ShutdownHow, number> = { read: SD_RECEIVE, write: SD_SEND, both: SD_BOTH };

/** recv and send take an int length: a larger buffer is done in parts, as a short count says. */
const MAX_IO = 0x7fffffff;

// Per-thread scratch for the structs passed by pointer; every call fills what it reads.
const addrBuf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
const lenBuf = new Int32Array(1);
const intBuf = new Int32Array(1);
const nonBlocking = new Uint32Array([1]);

let bound: Win32 | undefined;

/**
 * The bindings, with Winsock started: WSAStartup once per thread that uses sockets (Winsock
 * counts the calls per process; this module never calls WSACleanup, so sockets outlive any
 * reactor whose IOCP backend balances its own WSAStartup with WSACleanup when it closes).
 */
function ws(): Win32 {
  if (bound !== undefined) return bound;
  const api = win32();
  const started = api.WSAStartup(WINSOCK_VERSION_2_2, new Uint8Array(WSADATA_SIZE));
  if (started !== 0) throw win32Error('WSAStartup', started, 'could not start Winsock 2.2');
  bound = api;
  return api;
}

/**
 * The errno name of a Winsock error in this API's terms. WSAENOTSOCK is EBADF: Winsock says it
 * for any number that is no open socket, closed ones included, where POSIX says EBADF.
 */
function errnoName(error: number): string {
  return error === WSAENOTSOCK ? 'EBADF' : win32ErrnoName(error);
}

function socketError(syscall: string, error: number, what: string): ReactorError {
  return systemError(syscall, errnoName(error), error, `Winsock error ${error}: ${what}`);
}

/** The calling thread's last Winsock error. */
function lastError(): number {
  return ws().WSAGetLastError();
}

/** A new non-blocking TCP socket of the address's family, not inherited by child processes. */
function openSocket(address: IpAddress): number {
  const api = ws();
  const af = address.family === 4 ? WINDOWS_SOCKADDR.AF_INET : WINDOWS_SOCKADDR.AF_INET6;
  const s = api.WSASocketW(af, SOCK_STREAM, IPPROTO_TCP, null, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s === INVALID_SOCKET) {
    const e = lastError();
    const hint = e === WSAEAFNOSUPPORT ? ': IPv6 is disabled on this machine' : '';
    throw socketError('WSASocketW', e, `could not create an IPv${address.family} TCP socket${hint}`);
  }
  if (api.ioctlsocket(s, FIONBIO, nonBlocking) === SOCKET_ERROR) {
    const e = lastError();
    api.closesocket(s);
    throw socketError('ioctlsocket', e, `could not make socket ${s} non-blocking (FIONBIO)`);
  }
  return s;
}

function setIntOption(s: number, level: number, name: number, value: number, what: string): void {
  intBuf[0] = value;
  if (ws().setsockopt(s, level, name, intBuf, 4) === SOCKET_ERROR) {
    throw socketError('setsockopt', lastError(), `could not set ${what} on socket ${s}`);
  }
}

function bindFailure(e: number, where: string): string {
  if (e === WSAEADDRINUSE) return `${where} is in use: pick another port, or pass port 0 for a free one`;
  if (e === WSAEACCES) return `${where} is held exclusively by another socket, or a firewall forbids it: use another port`;
  if (e === WSAEADDRNOTAVAIL) return `${where}: that address is not one of this machine's`;
  return `could not bind ${where}`;
}

/**
 * SO_EXCLUSIVEADDRUSE, not SO_REUSEADDR: on Windows SO_REUSEADDR lets any other socket bind the
 * same port and steal its connections, and a listener needs no option to rebind a port whose
 * old connections linger in TIME_WAIT. Windows has no SO_REUSEPORT, so `reusePort` (set "where
 * the OS has it") sets nothing: a second listener on the port fails with EADDRINUSE.
 */
function listen(address: IpAddress, port: number, backlog: number, _reusePort: boolean): number {
  const api = ws();
  const s = openSocket(address);
  try {
    setIntOption(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1, 'SO_EXCLUSIVEADDRUSE');
    const len = encodeSockaddr(WINDOWS_SOCKADDR, address, port, addrBuf);
    const where = `${formatIp(address)} port ${port}`;
    if (api.bind(s, addrBuf, len) === SOCKET_ERROR) {
      const e = lastError();
      throw socketError('bind', e, bindFailure(e, where));
    }
    if (api.listen(s, backlog) === SOCKET_ERROR) throw socketError('listen', lastError(), `could not listen on ${where}`);
  } catch (e) {
    api.closesocket(s);
    throw e;
  }
  return s;
}

function localPort(s: number): number {
  lenBuf[0] = addrBuf.length;
  if (ws().getsockname(s, addrBuf, lenBuf) === SOCKET_ERROR) {
    const e = lastError();
    // An unbound socket: Winsock says WSAEINVAL where POSIX reports port 0.
    if (e === WSAEINVAL) return 0;
    throw socketError('getsockname', e, `could not read the local address of socket ${s}: is it an open socket?`);
  }
  const decoded = decodeSockaddr(WINDOWS_SOCKADDR, addrBuf.subarray(0, Math.min(lenBuf[0]!, addrBuf.length)));
  if (decoded === undefined) throw new ReactorError('EAFNOSUPPORT', `socket ${s} is not an IPv4 or IPv6 socket`);
  return decoded.port;
}

/**
 * An accepted socket shares the listener's properties, non-blocking mode included, but that is
 * set again rather than relied on. Not inheriting it is best effort: SetHandleInformation can
 * fail on a socket a layered provider wraps, and refusing the connection for that would be worse.
 * Returns 0 or the Winsock error of the call that failed.
 */
function prepareAccepted(api: Win32, s: number): number {
  if (api.ioctlsocket(s, FIONBIO, nonBlocking) === SOCKET_ERROR) return api.WSAGetLastError();
  api.SetHandleInformation(s, HANDLE_FLAG_INHERIT, 0);
  return 0;
}

/**
 * accept() failures that end one pending connection, not the listener: skip it. WSAECONNRESET:
 * the peer reset it while it was queued (Windows' ECONNABORTED); WSAEINTR: a cancelled call.
 */
const ACCEPT_RETRY: ReadonlySet<number> = new Set([WSAECONNRESET, WSAECONNABORTED, WSAEINTR]);
/** Out of sockets or buffers: reported in AcceptResult.error, the listener stays usable. */
const ACCEPT_REPORT: ReadonlySet<number> = new Set([WSAEMFILE, WSAENOBUFS]);

function accept(listenFd: number, into: Int32Array): AcceptResult {
  const api = ws();
  let count = 0;
  while (count < into.length) {
    const s = api.accept(listenFd, null, null);
    const e = s === INVALID_SOCKET ? api.WSAGetLastError() : prepareAccepted(api, s);
    if (s !== INVALID_SOCKET && e !== 0) api.closesocket(s);
    if (e === 0) {
      into[count++] = s;
      continue;
    }
    if (e === WSAEWOULDBLOCK) break;
    if (ACCEPT_RETRY.has(e)) continue;
    if (ACCEPT_REPORT.has(e)) return { count, error: errnoName(e) };
    // Not listening, not a socket: the caller's mistake. Thrown only while nothing has been
    // accepted, so no accepted socket is lost; the next call throws.
    if (count > 0) return { count, error: errnoName(e) };
    throw socketError('accept', e, acceptFailure(e, listenFd));
  }
  return { count, error: undefined };
}

function acceptFailure(e: number, s: number): string {
  if (e === WSAEINVAL) return `socket ${s} is not listening: pass what listen() returned`;
  if (e === WSAEOPNOTSUPP) return `socket ${s} is not a stream socket: only TCP listeners accept`;
  if (e === WSAENOTSOCK) return `socket ${s} is not an open socket`;
  return `could not accept on socket ${s}`;
}

/** Non-blocking: Winsock says WSAEWOULDBLOCK where POSIX says EINPROGRESS. */
function connect(address: IpAddress, port: number): number {
  const api = ws();
  const s = openSocket(address);
  const len = encodeSockaddr(WINDOWS_SOCKADDR, address, port, addrBuf);
  if (api.connect(s, addrBuf, len) === 0) return s;
  const e = lastError();
  if (e === WSAEWOULDBLOCK) return s;
  api.closesocket(s);
  throw socketError('connect', e, `could not connect to ${formatIp(address)} port ${port}`);
}

/** After shutdown(SD_RECEIVE) Winsock fails with WSAESHUTDOWN; POSIX reads end of stream (0). */
function recv(s: number, buf: Uint8Array, offset: number, length: number): number {
  const view = offset === 0 ? buf : buf.subarray(offset);
  const n = ws().recv(s, view, Math.min(length, MAX_IO), 0);
  if (n >= 0) return n;
  const e = lastError();
  if (e === WSAEWOULDBLOCK) return -1;
  if (e === WSAESHUTDOWN) return 0;
  throw socketError('recv', e, ioFailure(e, s, 'read from'));
}

/** Windows raises no signal for a closed connection: a send to one fails with ECONNRESET or EPIPE. */
function send(s: number, buf: Uint8Array, offset: number, length: number): number {
  if (length === 0) return 0;
  const view = offset === 0 ? buf : buf.subarray(offset);
  const n = ws().send(s, view, Math.min(length, MAX_IO), 0);
  if (n >= 0) return n;
  const e = lastError();
  if (e === WSAEWOULDBLOCK) return -1;
  throw socketError('send', e, ioFailure(e, s, 'send on'));
}

function ioFailure(e: number, s: number, verb: string): string {
  if (e === WSAECONNRESET || e === WSAECONNABORTED) return `could not ${verb} socket ${s}: the connection was reset; close it`;
  if (e === WSAESHUTDOWN) return `could not ${verb} socket ${s}: the connection is closed for writing; close it`;
  if (e === WSAENOTCONN) return `could not ${verb} socket ${s}: it is not connected (has the connect completed?)`;
  if (e === WSAENOTSOCK) return `could not ${verb} socket ${s}: it is not an open socket`;
  return `could not ${verb} socket ${s}`;
}

function shutdown(s: number, how: ShutdownHow): void {
  if (ws().shutdown(s, SHUT[how]) === SOCKET_ERROR) {
    throw socketError('shutdown', lastError(), `could not shut down the ${how} side of socket ${s}`);
  }
}

/**
 * closesocket() releases the handle whatever else it reports, and is never retried (the number
 * may already be another socket's). Only WSAENOTSOCK is raised, as EBADF: closed twice?
 */
function close(s: number): void {
  if (ws().closesocket(s) === 0) return;
  const e = lastError();
  if (e === WSAENOTSOCK) throw socketError('closesocket', e, `socket ${s} is not an open socket (closed twice?)`);
}

function setNoDelay(s: number, on: boolean): void {
  setIntOption(s, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, 'TCP_NODELAY');
}

function pendingError(s: number): string | null {
  intBuf[0] = 0;
  lenBuf[0] = 4;
  if (ws().getsockopt(s, SOL_SOCKET, SO_ERROR, intBuf, lenBuf) === SOCKET_ERROR) {
    throw socketError('getsockopt', lastError(), `could not read SO_ERROR of socket ${s}: is it an open socket?`);
  }
  const value = intBuf[0]!;
  return value === 0 ? null : errnoName(value);
}

/** The Winsock implementation of the net contract. */
export const winsock: NetImplementation = {
  listen,
  localPort,
  accept,
  connect,
  recv,
  send,
  shutdown,
  close,
  setNoDelay,
  socketError: pendingError,
};
