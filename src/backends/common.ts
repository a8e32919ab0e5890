/** What the POSIX backends share: their kernel-call failure messages, growable buffers and handle checks. */
import { Errno } from '../sys/posix.js';

/** What a POSIX backend was doing when a registration's kernel call failed. */
export type Change = 'register' | 're-arm' | 'delete';

/**
 * The message for a registration change that failed with errno `e`: the causes every POSIX
 * queue shares, then `own`, the queue's own readings of an errno.
 */
export function changeFailure(change: Change, fd: number, e: number, own: Readonly<Record<number, string>> = {}): string {
  const why =
    own[e] ??
    (e === Errno.EBADF
      ? 'it is not an open file descriptor'
      : e === Errno.ENOENT
        ? 'the kernel has no entry for it (was it closed?)'
        : undefined);
  return why === undefined ? `could not ${change} fd ${fd}` : `could not ${change} fd ${fd}: ${why}`;
}

/** Whether a handle's field can be a file descriptor: an integer from 0 to 2^31 - 1. */
export function isFd(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0x7fffffff;
}

/** `buffer` if it holds `bytes`, else a larger one: the event and change lists grow to the largest batch seen. */
export function atLeast(buffer: Uint8Array<ArrayBuffer>, bytes: number): Uint8Array<ArrayBuffer> {
  return buffer.byteLength >= bytes ? buffer : new Uint8Array(bytes);
}
