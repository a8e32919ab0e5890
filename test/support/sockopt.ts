/**
 * Socket options for the tests (POSIX only): a small receive buffer, so that a peer's sends come
 * up short as soon as the reader slows down; and TCP_CORK, to send bytes and a FIN as one segment.
 */
import * as net from '../../src/net/index.js';
import { errno, errnoName, libc } from '../../src/sys/posix.js';

const setsockopt = libc().func('int setsockopt(int fd, int level, int name, _In_ int *value, uint32_t len)') as (
  fd: number,
  level: number,
  name: number,
  value: Int32Array,
  len: number,
) => number;

// <sys/socket.h>: Linux's asm-generic values; macOS and the BSDs share theirs.
const [SOL_SOCKET, SO_RCVBUF] = process.platform === 'linux' ? [1, 8] : [0xffff, 0x1002];
// <netinet/tcp.h>, Linux.
const IPPROTO_TCP = 6;
const TCP_CORK = 3;

function set(fd: number, level: number, name: number, value: number, what: string): void {
  if (setsockopt(fd, level, name, Int32Array.of(value), 4) !== 0) {
    throw new Error(`setsockopt(${what}) failed: ${errnoName(errno())}`);
  }
}

/** Caps the socket's receive buffer (the kernel may round it; Linux doubles it). */
export function setReceiveBuffer(fd: number, bytes: number): void {
  set(fd, SOL_SOCKET, SO_RCVBUF, bytes, 'SO_RCVBUF');
}

/**
 * Sends `bytes` (up to a segment's worth) and shuts down the write side, corked so that the FIN
 * rides on the data's segment (Linux): the peer sees the data and the end of stream at once, as
 * one readiness change, as a loaded server often does when the two arrive while it is busy.
 */
export function sendWithFin(fd: number, bytes: Uint8Array): void {
  set(fd, IPPROTO_TCP, TCP_CORK, 1, 'TCP_CORK');
  const sent = net.send(fd, bytes);
  if (sent !== bytes.length) throw new Error(`sent ${sent} of ${bytes.length} bytes`);
  net.shutdown(fd, 'write');
}
