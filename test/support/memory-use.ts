/**
 * Memory figures of a fresh process, for test/memory.test.ts: run as a child, so that neither
 * the test runner's heap nor what earlier tests left to the allocator is counted. Prints one
 * line of JSON.
 *
 * - `churn`: 10,000 × Reactor.open().close() at the default capacity: RSS at the start, at the
 *   peak and at the end.
 * - `capacity`: a reactor of 2^20 registrations: RSS opened, with 1,000 and with 10,000
 *   registrations (eventfds), then after churn with a deadline on each.
 * - `state`: 10,000 registrations with 16 KiB of state each, of which they write 64 bytes: RSS
 *   before, with them, and with as many again on their reused slots.
 */
import { Events, Interest, Reactor } from '../../src/index.js';
import { epollCalls, EFD_CLOEXEC, EFD_NONBLOCK } from '../../src/sys/linux.js';
import { files } from '../../src/sys/posix.js';

const rss = (): number => process.memoryUsage().rss;

function churn(): object {
  const start = rss();
  let peak = start;
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) {
    Reactor.open().close();
    if (i % 100 === 0) peak = Math.max(peak, rss());
  }
  const end = rss();
  return { start, peak: Math.max(peak, end), end, ms: performance.now() - t0 };
}

function capacity(): object {
  const { eventfd } = epollCalls();
  const fds = Array.from({ length: 10_000 }, () => eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (fds.some((fd) => fd < 0)) throw new Error('eventfd failed (RLIMIT_NOFILE?)');
  const before = rss();
  const r = Reactor.open({ capacity: 2 ** 20 });
  try {
    const opened = rss();
    const tokens = fds.slice(0, 1_000).map((fd) => r.add(fd, Interest.READABLE));
    const at1k = rss();
    for (const fd of fds.slice(1_000)) tokens.push(r.add(fd, Interest.READABLE));
    const at10k = rss();
    // Churn over the same fds, with a deadline on every registration, each fired once.
    for (let round = 0; round < 3; round++) {
      for (let i = round; i < tokens.length; i += 3) {
        r.delete(tokens[i]!);
        tokens[i] = r.add(fds[i]!, Interest.READABLE);
      }
    }
    for (const t of tokens) r.setDeadline(t, 10);
    const ev = new Events(1024);
    let fired = 0;
    for (const end = performance.now() + 30_000; fired < tokens.length && performance.now() < end; ) {
      const n = r.wait(ev, 50);
      for (let i = 0; i < n; i++) r.rearm(ev.token(i));
      fired += n;
    }
    return { before, opened, at1k, at10k, churned: rss(), fired };
  } finally {
    r.close();
    const { close } = files();
    for (const fd of fds) close(fd);
  }
}

function state(): object {
  const { eventfd } = epollCalls();
  const fds = Array.from({ length: 10_000 }, () => eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (fds.some((fd) => fd < 0)) throw new Error('eventfd failed (RLIMIT_NOFILE?)');
  const r = Reactor.open({ capacity: 16_384, stateBytes: 16_384 });
  try {
    const header = new Uint8Array(64).fill(1);
    const before = rss();
    let tokens = fds.map((fd) => r.add(fd, Interest.READABLE, { state: header }));
    const added = rss();
    for (const t of tokens) r.delete(t);
    // Slots come back once enough are free: these registrations take the ones just used.
    tokens = fds.map((fd) => r.add(fd, Interest.READABLE, { state: header }));
    const reused = tokens.filter((t) => r.stateOffset(t) / 16_384 < 10_000).length;
    return { before, added, again: rss(), reused };
  } finally {
    r.close();
    const { close } = files();
    for (const fd of fds) close(fd);
  }
}

const modes: Record<string, () => object> = { churn, capacity, state };
const figures = (modes[process.argv[2] ?? ''] ?? capacity)();
process.stdout.write(`${JSON.stringify(figures)}\n`);
