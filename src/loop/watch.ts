/**
 * Deliveries on Node's own event loop, for the main thread: `watch` and `waitAsync` poll the
 * reactor's fd with Node's libuv (through koffi's uv_poll binding) and take events with
 * non-blocking waits, so the loop never blocks and no thread-pool slot is used.
 */
import { clock } from '../core/deadlines.js';
import type { Events } from '../core/events.js';
import type { LoopDriver, LoopSource, StopWatching } from '../core/loop.js';
import { pollReadable } from '../sys/uv.js';

/** Batches, and milliseconds, handled per loop turn before yielding, so timers and I/O keep their turn. */
const BATCHES_PER_TURN = 16;
const MS_PER_TURN = 4;
/** How often the fallback looks when the reactor has no pollable fd. */
const FALLBACK_POLL_MS = 1;

/** What a look at the reactor found: nothing more now, more to take at once, or the end. */
type Look = 'idle' | 'busy' | 'done';

/**
 * Calls `look` whenever the reactor may have something (its fd polls readable, a deadline is
 * due, or, with no pollable fd, every millisecond) until it answers 'done' or is stopped.
 */
function onReady(source: LoopSource, look: () => Look): StopWatching {
  if (!source.attachWatcher()) {
    look();
    return () => {};
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // koffi calls back from libuv outside any Node callback scope, so nothing drains the microtasks
  // a look queues (waitAsync's resolve, a handler's promises) until some other callback runs: on
  // Node 26 that was waitAsync's own timeout. The look runs as an immediate instead, right after
  // this poll phase, and Node drains the microtasks after it.
  let looking = false;
  const lookSoon = (): void => {
    if (looking) return;
    looking = true;
    setImmediate(() => {
      looking = false;
      run();
    });
  };
  const handle = source.pollFd === null ? undefined : pollReadable(source.pollFd, lookSoon);

  function run(): void {
    if (stopped) return;
    const found = look();
    if (found === 'done' || source.closed) return stop();
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const untilDeadline = source.untilDeadline();
    let delay = found === 'busy' ? 0 : handle === undefined ? FALLBACK_POLL_MS : -1;
    if (untilDeadline >= 0 && (delay < 0 || untilDeadline < delay)) delay = untilDeadline;
    if (delay >= 0) timer = setTimeout(run, delay);
  }

  function stop(): void {
    if (stopped) return;
    stopped = true;
    handle?.close();
    if (timer !== undefined) clearTimeout(timer);
    source.detachWatcher();
  }

  run();
  return stop;
}

/**
 * Calls onEvents(events, n) on the loop thread whenever the reactor delivers, until stopped or
 * the reactor is closed. Each delivery is held as usual: the handler re-arms or deletes it.
 */
function watch(source: LoopSource, events: Events, onEvents: (events: Events, n: number) => void): StopWatching {
  return onReady(source, () => {
    const start = clock.now();
    try {
      for (let batch = 0; batch < BATCHES_PER_TURN && clock.now() - start < MS_PER_TURN; batch++) {
        const n = source.poll(events);
        if (n === 0) return 'idle';
        onEvents(events, n);
      }
      return 'busy';
    } finally {
      // A re-arm staged by the last handlers must not wait for the fd to poll readable: until
      // it is applied, its registration cannot make the fd readable at all.
      source.flush();
    }
  });
}

/**
 * Resolves with the number of events delivered into `events`, or 0 on timeout, on `notify`, or
 * when the reactor is closed meanwhile.
 */
function waitAsync(source: LoopSource, events: Events, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (n: number): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      stop?.();
      resolve(n);
    };
    // A look that settles at once also stops at once (it answers 'done'), before stop is set.
    let stop: StopWatching | undefined;
    stop = onReady(source, () => {
      const n = source.poll(events);
      if (n > 0 || source.notified || source.closed || timeoutMs === 0) {
        settle(n);
        return 'done';
      }
      return 'idle';
    });
    if (!settled && timeoutMs > 0) timer = setTimeout(() => settle(0), timeoutMs);
  });
}

/** Node's event loop, as the core's reactors use it. */
export const nodeLoop: LoopDriver = { watch, waitAsync };
