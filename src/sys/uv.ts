/** Node's own libuv, through koffi's uv_poll binding: an fd watched by the thread's event loop. */
import koffi from 'koffi';

/** A watch on an fd; `close` ends it. */
export interface PollHandle {
  close(): void;
}

/**
 * This thread's uv polls, one per fd with every watcher of it. libuv allows one poll per fd per
 * loop, and koffi aborts the process when asked for a second: two `watch`es, or two pending
 * `waitAsync`s, of one reactor in one thread share one.
 */
const polls = new Map<number, { readonly handle: PollHandle; readonly watchers: Set<() => void> }>();

/** Calls `onReadable` on this thread's event loop whenever `fd` polls readable, until closed. */
export function pollReadable(fd: number, onReadable: () => void): PollHandle {
  let poll = polls.get(fd);
  if (poll === undefined) {
    const watchers = new Set<() => void>();
    const handle = koffi.node.poll(fd, { readable: true }, () => {
      for (const watcher of watchers) watcher();
    });
    poll = { handle, watchers };
    polls.set(fd, poll);
  }
  // A function of its own, so one callback given twice is two watches.
  const watcher = (): void => onReadable();
  const { handle, watchers } = poll;
  watchers.add(watcher);
  return {
    close() {
      if (!watchers.delete(watcher) || watchers.size > 0) return;
      polls.delete(fd);
      handle.close();
    },
  };
}
