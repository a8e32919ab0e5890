/** Real connected sockets for the tests: socketpair(2) through the same libc the backends use. */
import { close, errno, Errno, libc, read, write } from '../../src/backends/ffi/posix.js';

const socketpair = libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)') as (
  domain: number,
  type: number,
  protocol: number,
  sv: Int32Array,
) => number;
const shutdownFn = libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number;

// <sys/socket.h> (Linux values; the tests that use socketpair run where epoll or libkqueue does)
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SHUT_WR = 1;

/** A connected, non-blocking pair of stream sockets. */
export function socketPair(): [number, number] {
  const sv = new Int32Array(2);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) !== 0) {
    throw new Error(`socketpair failed: errno ${errno()}`);
  }
  return [sv[0]!, sv[1]!];
}

/** Writes what fits; returns the bytes written, or -1 when the socket buffer is full. */
export function send(fd: number, data: Uint8Array | string): number {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const n = write(fd, buf, buf.byteLength);
  if (n < 0 && errno() !== Errno.EAGAIN) throw new Error(`write(${fd}) failed: errno ${errno()}`);
  return n;
}

/** Reads what is there into buf; returns the byte count, 0 at end of stream, -1 when nothing is there. */
export function recv(fd: number, buf: Uint8Array): number {
  const n = read(fd, buf, buf.byteLength);
  if (n < 0 && errno() !== Errno.EAGAIN) throw new Error(`read(${fd}) failed: errno ${errno()}`);
  return n;
}

/** Reads until the socket is empty; returns the bytes read. */
export function drain(fd: number): number {
  const buf = new Uint8Array(65536);
  let total = 0;
  for (let n = recv(fd, buf); n > 0; n = recv(fd, buf)) total += n;
  return total;
}

export function closeFd(fd: number): void {
  close(fd);
}

/** Shuts down the write side: the peer reads end of stream. */
export function shutdownWrite(fd: number): void {
  shutdownFn(fd, SHUT_WR);
}
