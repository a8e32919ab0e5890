/**
 * Real connected sockets for the tests: socketpair(2) through libc where there is one, a loopback
 * TCP pair through src/net on Windows. Reading, writing and closing go through src/net on every
 * OS, so a test reads the same everywhere.
 */
import * as net from '../../src/net/index.js';
import { errno, libc } from '../../src/sys/posix.js';

/** A connected, non-blocking pair of stream sockets. */
export const socketPair: () => [number, number] = process.platform === 'win32' ? loopbackPair : unixPairs();

/**
 * socketpair(2) through the same libc the backends use (Linux values; bound only off Windows).
 * No top-level await: a worker thread terminated while its module graph still evaluates
 * asynchronously crashes Node 22 and 24 (V8's AsyncModuleExecutionFulfilled check).
 */
function unixPairs(): () => [number, number] {
  const socketpair = libc().func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)') as (
    domain: number,
    type: number,
    protocol: number,
    sv: Int32Array,
  ) => number;
  // <sys/socket.h>, Linux: the tests that use socketpair run where epoll or libkqueue does.
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const SOCK_NONBLOCK = 0o4000;
  const SOCK_CLOEXEC = 0o2000000;
  return () => {
    const sv = new Int32Array(2);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) !== 0) {
      throw new Error(`socketpair failed: errno ${errno()}`);
    }
    return [sv[0]!, sv[1]!];
  };
}

/** This thread's listener for loopback pairs, opened on first use and kept. */
let listener = -1;
let listenerPort = 0;
const accepted = new Int32Array(1);
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Windows has no socketpair: connect to a listener on 127.0.0.1 and accept. One listener serves
 * every pair of a thread, so a pair costs two sockets, and the handle values a closed pair frees
 * are the next pair's (as the lowest free fds are on POSIX). Nagle is off on both ends, so a small
 * write is sent at once.
 */
function loopbackPair(): [number, number] {
  if (listener < 0) {
    listener = net.listen('127.0.0.1', 0, { backlog: 128 });
    listenerPort = net.localPort(listener);
  }
  const client = net.connect('127.0.0.1', listenerPort);
  const deadline = performance.now() + 10_000;
  for (;;) {
    const { count, error } = net.accept(listener, accepted);
    if (count === 1) break;
    if (error !== undefined || performance.now() > deadline) {
      net.close(client);
      throw new Error(`no loopback connection to accept: ${error ?? 'timed out after 10 s'}`);
    }
    Atomics.wait(pause, 0, 0, 1);
  }
  const server = accepted[0]!;
  net.setNoDelay(client, true);
  net.setNoDelay(server, true);
  return [client, server];
}

/** Writes what fits; returns the bytes written, or -1 when the socket buffer is full. */
export function send(fd: number, data: Uint8Array | string): number {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return net.send(fd, buf);
}

/** Reads what is there into buf; returns the byte count, 0 at end of stream, -1 when nothing is there. */
export function recv(fd: number, buf: Uint8Array): number {
  return net.recv(fd, buf);
}

/** Reads until the socket is empty; returns the bytes read. */
export function drain(fd: number): number {
  const buf = new Uint8Array(65536);
  let total = 0;
  for (let n = recv(fd, buf); n > 0; n = recv(fd, buf)) total += n;
  return total;
}

/** Closes a socket; one that is already closed is ignored. */
export function closeFd(fd: number): void {
  try {
    net.close(fd);
  } catch {
    // Closed already (EBADF): the tests close what they opened, some of it twice.
  }
}

/** Shuts down the write side: the peer reads end of stream. */
export function shutdownWrite(fd: number): void {
  net.shutdown(fd, 'write');
}
