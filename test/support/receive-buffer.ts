/**
 * SO_RCVBUF for the tests (POSIX only): a reader with a small receive buffer fills it at once,
 * so its peer's sends come up short as soon as the reader slows down.
 */
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

/** Caps the socket's receive buffer (the kernel may round it; Linux doubles it). */
export function setReceiveBuffer(fd: number, bytes: number): void {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, Int32Array.of(bytes), 4) !== 0) {
    throw new Error(`setsockopt(SO_RCVBUF) failed: ${errnoName(errno())}`);
  }
}
