/**
 * Shared memory that starts small and grows in place (a growable SharedArrayBuffer), so that a
 * reactor costs memory for the registrations it has used, not for the capacity it was opened
 * with: an unused SharedArrayBuffer is only freed by the garbage collector, which does not hurry.
 *
 * Growth is seen by every thread, since it is the same buffer. Threads index fixed-length views
 * of it, made again when they meet an index past them: on Node 20's V8, length-tracking views
 * index several times slower.
 */
import { ReactorError } from './errors.js';

/** The bytes a growable buffer first commits: the kernel hands out memory by the page anyway. */
export const FIRST_BYTES = 4096;

/**
 * Whether buffers are made growable. Not yet: made and dropped by the thousand (10,000
 * `Reactor.open().close()`), growable SharedArrayBuffers crashed Node 22's V8 ("Check failed:
 * (result.ptr) != nullptr" in a full collection) about one run in three, Node 24's (out of memory
 * in a GC worklist) and once a Node 20 test worker. Until that is understood every buffer is
 * made at its full size, as before memory grew with use; the growth code stays exercised by
 * attach's checks and the views' refresh, which work the same on a full-size buffer.
 */
export const GROWABLE = false;

/** A buffer of `bytes`, growable up to `maxBytes` (or of `maxBytes` at once, where not GROWABLE). */
export function growable(bytes: number, maxBytes: number): SharedArrayBuffer {
  return GROWABLE ? new SharedArrayBuffer(Math.min(bytes, maxBytes), { maxByteLength: maxBytes }) : new SharedArrayBuffer(maxBytes);
}

/**
 * Grows `buffer` to at least `bytes` (at least doubling it, at most to its maximum), from any
 * thread, with or without a lock: if another thread grew it meanwhile, its growth counts.
 * ENOMEM when the memory cannot be had.
 */
export function growTo(buffer: SharedArrayBuffer, bytes: number): void {
  for (;;) {
    const now = buffer.byteLength;
    if (now >= bytes) return;
    try {
      buffer.grow(Math.min(buffer.maxByteLength, Math.max(bytes, now * 2)));
      return;
    } catch (e) {
      if (buffer.byteLength !== now) continue;
      throw new ReactorError('ENOMEM', `could not grow shared memory to ${bytes} bytes: ${(e as Error).message}`);
    }
  }
}

/** A fixed-length Int32Array over the first `length` Int32s of `buffer`. */
export function int32s(buffer: SharedArrayBuffer, length: number): Int32Array {
  return new Int32Array(buffer, 0, length);
}

/** What is wrong with `buffer` as one `growable` made for at most `maxBytes`, or undefined. */
export function growableProblem(name: string, buffer: unknown, maxBytes: number): string | undefined {
  if (!(buffer instanceof SharedArrayBuffer)) return `its ${name} is not a SharedArrayBuffer`;
  const max = buffer.growable ? buffer.maxByteLength : buffer.byteLength;
  if (max !== maxBytes) return `its ${name} holds up to ${max} bytes, not the ${maxBytes} its capacity needs`;
  return undefined;
}

/** What is wrong with `buffer` as a SharedArrayBuffer of exactly `bytes`, or undefined. */
export function fixedProblem(name: string, buffer: unknown, bytes: number): string | undefined {
  if (!(buffer instanceof SharedArrayBuffer)) return `its ${name} is not a SharedArrayBuffer`;
  if (buffer.byteLength !== bytes) return `its ${name} has ${buffer.byteLength} bytes, not ${bytes}`;
  return undefined;
}
