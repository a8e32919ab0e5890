/**
 * Bindings to BSD sockets in the C library (Linux, macOS, FreeBSD, OpenBSD, NetBSD): non-blocking
 * TCP, every socket close-on-exec. Arguments arrive checked by `index.ts`.
 */
import { ReactorError } from '../core/errors.js';
import { Errno, errno, errnoName, files, libc, syscallError } from '../sys/posix.js';
import { platform } from '../sys/platform.js';
import type { AcceptResult, NetImplementation, ShutdownHow } from './contract.js';
import {
  decodeSockaddr,
  encodeSockaddr,
  formatIp,
  FREEBSD_SOCKADDR,
  LINUX_SOCKADDR,
  MACOS_SOCKADDR,
  NETBSD_SOCKADDR,
  OPENBSD_SOCKADDR,
  SOCKADDR_STORAGE_SIZE,
  type IpAddress,
  type SockaddrLayout,
} from './sockaddr.js';

/** The socket numbers that differ between systems. */
export interface SocketConstants {
  readonly sockaddr: SockaddrLayout;
  readonly SOL_SOCKET: number;
  readonly SO_REUSEADDR: number;
  readonly SO_REUSEPORT: number;
  readonly SO_ERROR: number;
  readonly O_NONBLOCK: number;
  /**
   * `socket()` and `accept4()` type flags that make the new fd non-blocking and close-on-exec
   * atomically; 0 where this file sets both with fcntl instead.
   */
  readonly SOCK_NONBLOCK: number;
  readonly SOCK_CLOEXEC: number;
  /** Whether to call accept4(2); otherwise accept(2) then fcntl(2). */
  readonly accept4: boolean;
  /** send(2) flag: fail with EPIPE instead of raising SIGPIPE; 0 where SO_NOSIGPIPE does it. */
  readonly MSG_NOSIGNAL: number;
  /** Socket option with the same effect for the socket's life (macOS); 0 where unused. */
  readonly SO_NOSIGPIPE: number;
}

/**
 * Linux, the asm-generic ABI: `include/uapi/asm-generic/socket.h` (SOL_SOCKET 1, SO_REUSEADDR 2,
 * SO_ERROR 4, SO_REUSEPORT 15), `include/uapi/asm-generic/fcntl.h` (O_NONBLOCK 00004000), glibc
 * `bits/socket_type.h` (SOCK_NONBLOCK 00004000, SOCK_CLOEXEC 02000000), glibc `bits/socket.h`
 * (MSG_NOSIGNAL 0x4000). Checked with a C program
 * against this machine's glibc headers. It holds for x64, ia32, arm, arm64, ppc64 (powerpc moves
 * only SO_RCVLOWAT..SO_PEERCRED), s390x, riscv64 and loong64; MIPS differs (SOCK_STREAM 2,
 * SOL_SOCKET 0xffff, O_NONBLOCK 0x80) and is refused.
 */
export const LINUX_SOCKETS: SocketConstants = {
  sockaddr: LINUX_SOCKADDR,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_REUSEPORT: 15,
  SO_ERROR: 4,
  O_NONBLOCK: 0o4000,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  accept4: true,
  MSG_NOSIGNAL: 0x4000,
  SO_NOSIGPIPE: 0,
};

/**
 * macOS: xnu `bsd/sys/socket.h` (SOL_SOCKET 0xffff, SO_REUSEADDR 0x0004, SO_REUSEPORT 0x0200,
 * SO_ERROR 0x1007, SO_NOSIGPIPE 0x1022), `bsd/sys/fcntl.h` (O_NONBLOCK 0x00000004). No
 * SOCK_NONBLOCK, no accept4. Recent headers add MSG_NOSIGNAL (0x80000), but SO_NOSIGPIPE is the
 * option every macOS release honours, so it is set on each socket instead.
 */
export const MACOS_SOCKETS: SocketConstants = {
  sockaddr: MACOS_SOCKADDR,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x0004,
  SO_REUSEPORT: 0x0200,
  SO_ERROR: 0x1007,
  O_NONBLOCK: 0x0004,
  SOCK_NONBLOCK: 0,
  SOCK_CLOEXEC: 0,
  accept4: false,
  MSG_NOSIGNAL: 0,
  SO_NOSIGPIPE: 0x1022,
};

/**
 * FreeBSD: `sys/sys/socket.h` (the same SOL_/SO_ values as macOS; SOCK_CLOEXEC 0x10000000,
 * SOCK_NONBLOCK 0x20000000, MSG_NOSIGNAL 0x20000), `sys/sys/fcntl.h` (O_NONBLOCK 0x0004); accept4
 * since 10.0.
 * SO_REUSEPORT lets sockets share a port but does not balance load (that is SO_REUSEPORT_LB).
 */
export const FREEBSD_SOCKETS: SocketConstants = {
  ...MACOS_SOCKETS,
  sockaddr: FREEBSD_SOCKADDR,
  SOCK_NONBLOCK: 0x20000000,
  SOCK_CLOEXEC: 0x10000000,
  accept4: true,
  MSG_NOSIGNAL: 0x20000,
  SO_NOSIGPIPE: 0,
};

/**
 * OpenBSD and NetBSD: `sys/sys/socket.h` (the same SOL_/SO_ values as macOS, MSG_NOSIGNAL
 * 0x400 on both), `sys/sys/fcntl.h` (O_NONBLOCK 0x0004). Both have SOCK_NONBLOCK and accept4 in
 * recent releases; the portable fcntl path is used instead, as on macOS, because no test
 * machine checks them.
 */
const OLDER_BSD: SocketConstants = { ...MACOS_SOCKETS, MSG_NOSIGNAL: 0x400, SO_NOSIGPIPE: 0 };
export const OPENBSD_SOCKETS: SocketConstants = { ...OLDER_BSD, sockaddr: OPENBSD_SOCKADDR };
export const NETBSD_SOCKETS: SocketConstants = { ...OLDER_BSD, sockaddr: NETBSD_SOCKADDR };

// The same on every system above: <sys/socket.h>, <netinet/in.h>, <netinet/tcp.h>, <fcntl.h>.
const SOCK_STREAM = 1;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const SHUT: Readonly<Record<ShutdownHow, number>> = { read: 0, write: 1, both: 2 };

/** The constants for an OS and CPU, or undefined where this file has none. */
export function socketConstants(platform: string, arch: string): SocketConstants | undefined {
  switch (platform) {
    case 'linux':
    case 'android':
      return arch.startsWith('mips') ? undefined : LINUX_SOCKETS;
    case 'darwin':
      return MACOS_SOCKETS;
    case 'freebsd':
      return FREEBSD_SOCKETS;
    case 'openbsd':
      return OPENBSD_SOCKETS;
    case 'netbsd':
      return NETBSD_SOCKETS;
    default:
      return undefined;
  }
}

const K = socketConstants(platform.os, platform.arch);

type Fn<A extends unknown[]> = (...args: A) => number;
type Buf = ArrayBufferView | null;

let socket: Fn<[number, number, number]>;
let bind: Fn<[number, Uint8Array, number]>;
let listenFn: Fn<[number, number]>;
let connectFn: Fn<[number, Uint8Array, number]>;
let acceptFn: Fn<[number, Buf, Buf]>;
let accept4: Fn<[number, Buf, Buf, number]> | undefined;
let getsockname: Fn<[number, Uint8Array, Uint32Array]>;
let getsockopt: Fn<[number, number, number, Int32Array, Uint32Array]>;
let setsockopt: Fn<[number, number, number, Int32Array, number]>;
let sendFn: Fn<[number, Uint8Array, number, number]>;
let shutdownFn: Fn<[number, number]>;
/** Variadic in C: on Apple arm64 the third argument goes on the stack, so it is declared `...`. */
let fcntl: Fn<[number, number, ...(string | number)[]]>;

/** Binds the socket calls, once, on first use: importing this file binds nothing. */
function bindCalls(): void {
  const lib = libc();
  socket = lib.func('int socket(int domain, int type, int protocol)') as typeof socket;
  bind = lib.func('int bind(int fd, void *addr, uint32_t len)') as typeof bind;
  listenFn = lib.func('int listen(int fd, int backlog)') as typeof listenFn;
  connectFn = lib.func('int connect(int fd, void *addr, uint32_t len)') as typeof connectFn;
  acceptFn = lib.func('int accept(int fd, void *addr, void *len)') as typeof acceptFn;
  accept4 = K?.accept4
    ? (lib.func('int accept4(int fd, void *addr, void *len, int flags)') as NonNullable<typeof accept4>)
    : undefined;
  getsockname = lib.func('int getsockname(int fd, void *addr, void *len)') as typeof getsockname;
  getsockopt = lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)') as typeof getsockopt;
  setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)') as typeof setsockopt;
  sendFn = lib.func('long send(int fd, void *buf, size_t len, int flags)') as typeof sendFn;
  shutdownFn = lib.func('int shutdown(int fd, int how)') as typeof shutdownFn;
  fcntl = lib.func('int fcntl(int fd, int cmd, ...)') as typeof fcntl;
}

// Per-thread scratch for the structs passed by pointer; every call fills what it reads.
const addrBuf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
const lenBuf = new Uint32Array(1);
const intBuf = new Int32Array(1);

function errnoValue(name: string): number | undefined {
  return Errno[name];
}

function errnoSet(names: readonly string[]): ReadonlySet<number> {
  return new Set(names.map(errnoValue).filter((v): v is number => v !== undefined));
}

const EAGAIN = errnoValue('EAGAIN');
const EWOULDBLOCK = errnoValue('EWOULDBLOCK');
const EINTR = errnoValue('EINTR');
const EINPROGRESS = errnoValue('EINPROGRESS');
const EBADF = errnoValue('EBADF');

/**
 * accept(2) failures that end one pending connection, not the listener: skip it and accept the
 * next. EINTR: a signal, retry. ECONNABORTED: the peer reset the connection while it was queued.
 */
const ACCEPT_RETRY = errnoSet(['EINTR', 'ECONNABORTED']);

/**
 * Also skipped, but at most `into.length` times per call: Linux's accept(2) passes the pending
 * network errors of a new connection through accept and says to retry on them as on EAGAIN
 * (EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ENETDOWN),
 * and EPERM means a firewall rule refused one. The same codes can also be lasting (EOPNOTSUPP
 * for a socket that is not TCP), so past the bound they are raised instead of looped on.
 */
const ACCEPT_SKIP = errnoSet([
  'EPROTO',
  'ENOPROTOOPT',
  'EHOSTDOWN',
  'ENONET',
  'EHOSTUNREACH',
  'EOPNOTSUPP',
  'ENETUNREACH',
  'ENETDOWN',
  'EPERM',
]);

/** accept(2) failures of resources: reported in AcceptResult.error, the listener stays usable. */
const ACCEPT_REPORT = errnoSet(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

function constants(): SocketConstants {
  if (K === undefined) {
    throw new ReactorError('ENOSYS', `evdispatch/net has no socket constants for ${platform.os} on ${platform.arch}`);
  }
  return K;
}

function wouldBlock(e: number): boolean {
  return e === EAGAIN || e === EWOULDBLOCK;
}

/** The call `prepare` failed in, for the error message. */
let prepareCall = '';

/**
 * What a new socket needs beyond what socket()/accept4() flags gave it: O_NONBLOCK and
 * FD_CLOEXEC through fcntl where the OS has no SOCK_NONBLOCK (macOS here), and SO_NOSIGPIPE
 * where send() has no MSG_NOSIGNAL (macOS). Returns 0 or the errno of the call that failed.
 */
function prepare(k: SocketConstants, fd: number): number {
  if (k.SOCK_NONBLOCK === 0) {
    prepareCall = 'fcntl';
    const flags = fcntl(fd, F_GETFL);
    if (flags < 0) return errno();
    if (fcntl(fd, F_SETFL, 'int', flags | k.O_NONBLOCK) < 0) return errno();
    if (fcntl(fd, F_SETFD, 'int', FD_CLOEXEC) < 0) return errno();
  }
  if (k.SO_NOSIGPIPE !== 0) {
    prepareCall = 'setsockopt';
    intBuf[0] = 1;
    if (setsockopt(fd, k.SOL_SOCKET, k.SO_NOSIGPIPE, intBuf, 4) < 0) return errno();
  }
  return 0;
}

/** A new non-blocking, close-on-exec TCP socket of the address's family. */
function openSocket(k: SocketConstants, address: IpAddress): number {
  const domain = address.family === 4 ? k.sockaddr.AF_INET : k.sockaddr.AF_INET6;
  const fd = socket(domain, SOCK_STREAM | k.SOCK_NONBLOCK | k.SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    const e = errno();
    const hint = e === Errno.EAFNOSUPPORT ? ': IPv6 is disabled on this machine' : '';
    throw syscallError('socket', e, `could not create an IPv${address.family} TCP socket${hint}`);
  }
  const e = prepare(k, fd);
  if (e !== 0) {
    files().close(fd);
    throw syscallError(prepareCall, e, `could not make socket ${fd} non-blocking, close-on-exec and free of SIGPIPE`);
  }
  return fd;
}

function setIntOption(fd: number, level: number, name: number, value: number, what: string): void {
  intBuf[0] = value;
  if (setsockopt(fd, level, name, intBuf, 4) < 0) throw syscallError('setsockopt', errno(), `could not set ${what} on fd ${fd}`);
}

function bindFailure(e: number, where: string): string {
  if (e === Errno.EADDRINUSE) return `${where} is in use: pick another port, or pass port 0 for a free one`;
  if (e === Errno.EACCES) return `${where} needs privileges (ports below 1024 do): use a higher port`;
  if (e === Errno.EADDRNOTAVAIL) return `${where}: that address is not one of this machine's`;
  return `could not bind ${where}`;
}

function listen(address: IpAddress, port: number, backlog: number, reusePort: boolean): number {
  const k = constants();
  const fd = openSocket(k, address);
  try {
    setIntOption(fd, k.SOL_SOCKET, k.SO_REUSEADDR, 1, 'SO_REUSEADDR');
    if (reusePort) setIntOption(fd, k.SOL_SOCKET, k.SO_REUSEPORT, 1, 'SO_REUSEPORT');
    const len = encodeSockaddr(k.sockaddr, address, port, addrBuf);
    const where = `${formatIp(address)} port ${port}`;
    if (bind(fd, addrBuf, len) < 0) {
      const e = errno();
      throw syscallError('bind', e, bindFailure(e, where));
    }
    if (listenFn(fd, backlog) < 0) throw syscallError('listen', errno(), `could not listen on ${where}`);
  } catch (e) {
    files().close(fd);
    throw e;
  }
  return fd;
}

function localPort(fd: number): number {
  const k = constants();
  lenBuf[0] = addrBuf.length;
  if (getsockname(fd, addrBuf, lenBuf) < 0) {
    throw syscallError('getsockname', errno(), `could not read the local address of fd ${fd}: is it an open socket?`);
  }
  const decoded = decodeSockaddr(k.sockaddr, addrBuf.subarray(0, Math.min(lenBuf[0]!, addrBuf.length)));
  if (decoded === undefined) throw new ReactorError('EAFNOSUPPORT', `fd ${fd} is not an IPv4 or IPv6 socket`);
  return decoded.port;
}

/**
 * One object per call, not per connection: a call drains a whole backlog, so it allocates once
 * per readiness of a listener, which is far off the per-event hot path; and a result that is
 * returned cannot be overwritten by the next call on another listener, as a shared field could.
 */
function accept(listenFd: number, into: Int32Array): AcceptResult {
  const k = constants();
  let count = 0;
  let skipped = 0;
  while (count < into.length) {
    const fd = accept4 !== undefined ? accept4(listenFd, null, null, k.SOCK_NONBLOCK | k.SOCK_CLOEXEC) : acceptFn(listenFd, null, null);
    const e = fd < 0 ? errno() : prepare(k, fd);
    if (fd >= 0 && e !== 0) files().close(fd); // a new socket fcntl refuses: handled as a failed accept
    if (e === 0) {
      into[count++] = fd;
      continue;
    }
    if (wouldBlock(e)) break;
    if (ACCEPT_RETRY.has(e)) continue;
    if (ACCEPT_SKIP.has(e) && ++skipped <= into.length) continue;
    if (ACCEPT_REPORT.has(e)) return { count, error: errnoName(e) };
    // EBADF, ENOTSOCK, EINVAL (not listening): the caller's mistake. Throw only while nothing has
    // been accepted, so no accepted socket is lost; the next call throws.
    if (count > 0) return { count, error: errnoName(e) };
    throw syscallError('accept', e, acceptFailure(e, listenFd));
  }
  return { count, error: undefined };
}

function acceptFailure(e: number, fd: number): string {
  if (e === Errno.EINVAL) return `fd ${fd} is not listening: pass what listen() returned`;
  if (e === Errno.ENOTSOCK) return `fd ${fd} is not a socket`;
  if (e === EBADF) return `fd ${fd} is not an open file descriptor`;
  return `could not accept on fd ${fd}`;
}

function connect(address: IpAddress, port: number): number {
  const k = constants();
  const fd = openSocket(k, address);
  const len = encodeSockaddr(k.sockaddr, address, port, addrBuf);
  if (connectFn(fd, addrBuf, len) === 0) return fd; // connected at once (loopback may)
  const e = errno();
  // EINTR: a non-blocking connect goes on in the background, the same as EINPROGRESS.
  if (e === EINPROGRESS || e === EINTR) return fd;
  files().close(fd);
  throw syscallError('connect', e, `could not connect to ${formatIp(address)} port ${port}`);
}

/** Reads with read(2): the same as recv(2) with no flags on a connected socket. */
function recv(fd: number, buf: Uint8Array, offset: number, length: number): number {
  const view = offset === 0 ? buf : buf.subarray(offset);
  for (;;) {
    const n = files().read(fd, view, length);
    if (n >= 0) return n;
    const e = errno();
    if (wouldBlock(e)) return -1;
    if (e !== EINTR) throw syscallError('read', e, ioFailure(e, fd, 'read from'));
  }
}

/**
 * Writes with send(2) and MSG_NOSIGNAL (SO_NOSIGPIPE on macOS). Without them, a write to a
 * connection the peer has closed raises SIGPIPE, whose default action kills the process. Node
 * does set SIGPIPE to SIG_IGN at startup (doc/api/process.md: "'SIGPIPE' is ignored by
 * default"; a node process shows signal 13 in SigIgn of /proc/self/status), but that is not
 * enough: once a process.on('SIGPIPE') listener has been added and removed again, Node 20
 * leaves SIGPIPE at SIG_DFL (checked on v20.20.2: neither ignored nor caught afterwards), and
 * the next EPIPE would kill the process. The flag costs nothing, so the claim that Node's
 * default makes it unneeded is not relied on.
 */
function send(fd: number, buf: Uint8Array, offset: number, length: number): number {
  if (length === 0) return 0;
  const k = constants();
  const view = offset === 0 ? buf : buf.subarray(offset);
  for (;;) {
    const n = sendFn(fd, view, length, k.MSG_NOSIGNAL);
    if (n >= 0) return n;
    const e = errno();
    if (wouldBlock(e)) return -1;
    if (e !== EINTR) throw syscallError('send', e, ioFailure(e, fd, 'send on'));
  }
}

function ioFailure(e: number, fd: number, verb: string): string {
  if (e === Errno.ECONNRESET) return `could not ${verb} fd ${fd}: the peer reset the connection; close it`;
  if (e === Errno.EPIPE) return `could not ${verb} fd ${fd}: the connection is closed for writing; close it`;
  if (e === Errno.ENOTCONN) return `could not ${verb} fd ${fd}: it is not connected (has the connect completed?)`;
  if (e === EBADF) return `could not ${verb} fd ${fd}: it is not an open file descriptor`;
  return `could not ${verb} fd ${fd}`;
}

function shutdown(fd: number, how: ShutdownHow): void {
  if (shutdownFn(fd, SHUT[how]) < 0) throw syscallError('shutdown', errno(), `could not shut down the ${how} side of fd ${fd}`);
}

/**
 * close(2) is never retried: on Linux and the BSDs the descriptor is released whatever it
 * returns, EINTR included (libuv's uv__close_nocheckstdio, src/unix/core.c, treats EINTR and
 * EINPROGRESS from close as closed on every Unix), and a retry could close a number another
 * thread has just been given. Only EBADF is raised: the caller closed something twice or never
 * had it; other errors (a reset peer's ECONNRESET on FreeBSD, EIO) come after the release and
 * leave nothing to do.
 */
function close(fd: number): void {
  if (files().close(fd) === 0) return;
  const e = errno();
  if (e === EBADF) throw syscallError('close', e, `fd ${fd} is not an open file descriptor (closed twice?)`);
}

function setNoDelay(fd: number, on: boolean): void {
  setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, 'TCP_NODELAY');
}

function socketError(fd: number): string | null {
  const k = constants();
  intBuf[0] = 0;
  lenBuf[0] = 4;
  if (getsockopt(fd, k.SOL_SOCKET, k.SO_ERROR, intBuf, lenBuf) < 0) {
    throw syscallError('getsockopt', errno(), `could not read SO_ERROR of fd ${fd}: is it an open socket?`);
  }
  const value = intBuf[0]!;
  return value === 0 ? null : errnoName(value);
}

const implementation: NetImplementation = {
  listen,
  localPort,
  accept,
  connect,
  recv,
  send,
  shutdown,
  close,
  setNoDelay,
  socketError,
};

let bound = false;

/** The POSIX implementation of the net contract, its calls bound on first use. */
export function posixSockets(): NetImplementation {
  if (!bound) {
    bindCalls();
    bound = true;
  }
  return implementation;
}
