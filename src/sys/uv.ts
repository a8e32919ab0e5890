/** Node's own libuv, through koffi's uv_poll binding: an fd watched by the thread's event loop. */
import koffi from 'koffi';

/** A watch on an fd; `close` ends it. */
export interface PollHandle {
  close(): void;
}

/** Calls `onReadable` on this thread's event loop whenever `fd` polls readable, until closed. */
export function pollReadable(fd: number, onReadable: () => void): PollHandle {
  return koffi.node.poll(fd, { readable: true }, onReadable);
}
