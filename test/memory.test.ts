/**
 * A reactor's memory follows the registrations it has used, not the capacity it was opened
 * with: opening and closing many reactors stays flat, and a reactor of 2^20 registrations
 * works, its slots past 65,536 included, for the memory of the ones in use.
 *
 * Slots past 65,536 need that many live registrations, so that many fds: where RLIMIT_NOFILE
 * cannot be raised that far, the table, the deadlines and the ready queue are driven there
 * directly (no kernel is involved in them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, it } from 'vitest';
import { Events, Interest, Ready, Reactor, ReactorError } from '../src/index.js';
import { epollCalls, EFD_CLOEXEC, EFD_NONBLOCK } from '../src/sys/linux.js';
import { files, libc } from '../src/sys/posix.js';
import { Deadlines } from '../src/core/deadlines.js';
import { ReadyQueue } from '../src/core/ready-queue.js';
import { beginDelete, genOfToken, isLive, slotOfToken } from '../src/core/state-machine.js';
import { Table } from '../src/core/table.js';

const MiB = 2 ** 20;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
/** Where the slot sits in a token (docs/ARCHITECTURE.md, "The state word"). */
const SLOT_LIMIT = 2 ** 22;

function eventfds(count: number): number[] {
  const { eventfd } = epollCalls();
  return Array.from({ length: count }, () => {
    const fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw new Error(`eventfd failed after ${count} (RLIMIT_NOFILE?)`);
    return fd;
  });
}

function closeAll(fds: readonly number[]): void {
  const { close } = files();
  for (const fd of fds) close(fd);
}

/**
 * Sets a deadline on every token, then waits until each has been delivered once, flagged
 * FORCED | TIMEOUT, and a while longer to see that none comes twice.
 */
function deadlinesFireOnce(r: Reactor, tokens: readonly number[]): void {
  const ev = new Events(1024);
  for (const t of tokens) r.setDeadline(t, 20);
  const delivered = new Map<number, number>();
  const until = performance.now() + 30_000;
  let quietUntil = Infinity;
  while (performance.now() < Math.min(until, quietUntil)) {
    const n = r.wait(ev, 50);
    for (let i = 0; i < n; i++) {
      const t = ev.token(i);
      assert.equal(ev.readiness(i), Ready.FORCED | Ready.TIMEOUT, `token ${t}: a deadline's delivery, nothing else (the eventfd is not readable)`);
      delivered.set(t, (delivered.get(t) ?? 0) + 1);
      r.rearm(t);
    }
    if (delivered.size === tokens.length && quietUntil === Infinity) quietUntil = performance.now() + 200;
  }
  assert.equal(delivered.size, tokens.length, 'every deadline fired');
  for (const t of tokens) assert.equal(delivered.get(t), 1, `token ${t}: fired exactly once`);
}

/** RLIMIT_NOFILE raised to `want` (soft and hard) while `body` runs; false if not permitted here. */
function withFdLimit(want: number, body: () => void): boolean {
  const lib = libc();
  const getrlimit = lib.func('int getrlimit(int resource, void *rlim)') as (resource: number, rlim: BigUint64Array) => number;
  const setrlimit = lib.func('int setrlimit(int resource, void *rlim)') as (resource: number, rlim: BigUint64Array) => number;
  const RLIMIT_NOFILE = 7; // Linux, bits/resource.h
  const saved = new BigUint64Array(2);
  if (getrlimit(RLIMIT_NOFILE, saved) !== 0) throw new Error('getrlimit failed');
  const raised = BigInt(want) > saved[1]! ? BigInt(want) : saved[1]!;
  if (setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(want), raised])) !== 0) return false;
  try {
    body();
  } finally {
    // The hard limit stays raised: lowering it back is allowed, but the soft one is what counts.
    setrlimit(RLIMIT_NOFILE, new BigUint64Array([saved[0]!, raised]));
  }
  return true;
}

/** Registrations past slot 65,536 need more fds than that; raising the limit needs privilege. */
const HIGH_SLOT_FDS = 70_000;
const canRaiseFdLimit = process.platform === 'linux' && withFdLimit(HIGH_SLOT_FDS + 1000, () => {});

/** Runs test/support/memory-use.ts in a fresh process on this Node, and returns its figures. */
function memoryUse(what: 'churn' | 'capacity' | 'state'): Record<string, number> {
  const script = fileURLToPath(new URL('./support/memory-use.js', import.meta.url));
  const child = spawnSync(process.execPath, [script, what], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(child.status, 0, `memory-use ${what} failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as Record<string, number>;
}

describe.runIf(process.platform === 'linux')('memory', () => {
  it('open_close_10000_default_reactors_keeps_rss_flat', () => {
    // Without recycling, the shared buffers waited for the collector: 4.3 GiB at the end.
    const { start, peak, end, ms } = memoryUse('churn');
    console.log(
      `10,000 × Reactor.open().close() at the default capacity on node ${process.version}: rss ${mib(start!)} at the start, ${mib(peak!)} at the peak, ${mib(end!)} at the end, in ${(ms! / 1000).toFixed(1)} s`,
    );
    assert.ok(peak! - start! < 150 * MiB, `rss grew by ${mib(peak! - start!)}, more than 150 MiB`);
  });

  it('capacity_2_20_costs_memory_for_the_registrations_in_use', () => {
    const { before, opened, at1k, at10k, churned, fired } = memoryUse('capacity');
    console.log(
      `capacity 2^20 on node ${process.version}: rss +${mib(opened! - before!)} opened, +${mib(at1k! - before!)} with 1,000 registrations, +${mib(at10k! - before!)} with 10,000, +${mib(churned! - before!)} after churn and ${fired} deadlines`,
    );
    // Its buffers at full size would be about 64 bytes a slot: 64 MiB.
    assert.ok(opened! - before! < 8 * MiB, `opening it took ${mib(opened! - before!)}`);
    assert.ok(at10k! - before! < 24 * MiB, `10,000 registrations took ${mib(at10k! - before!)}`);
    assert.ok(churned! - before! < 32 * MiB, `after churn: ${mib(churned! - before!)}`);
    assert.ok(fired! >= 10_000, `${fired} of 10,000 deadlines fired`);
  });

  it('state_costs_the_pages_written_not_its_size', () => {
    const { before, added, again, reused } = memoryUse('state');
    const perAdd = (added! - before!) / 10_000;
    const perReuse = (again! - before!) / 10_000;
    console.log(
      `10,000 registrations of 16 KiB of state, 64 bytes written, on node ${process.version}: rss +${(perAdd / 1024).toFixed(1)} KiB each; ` +
        `+${(perReuse / 1024).toFixed(1)} KiB each with as many again (${reused} on reused slots)`,
    );
    assert.ok(reused! > 5_000, `${reused} of 10,000 on reused slots`);
    // One page for the bytes written, and the table's share: far from 16 KiB.
    assert.ok(perAdd < 6 * 1024, `${(perAdd / 1024).toFixed(1)} KiB a registration`);
    assert.ok(perReuse < 6 * 1024, `${(perReuse / 1024).toFixed(1)} KiB a registration, its slot reused`);
  });

  it('a_closed_reactors_memory_is_reused_only_when_no_other_thread_is_attached', async () => {
    const first = Reactor.open({ capacity: 1024 });
    const firstQueue = first.share().queue;
    const stale = Reactor.attach(first.share()); // this thread's second object: the same attachment
    first.close();
    const second = Reactor.open({ capacity: 1024 });
    try {
      assert.equal(second.share().queue, firstQueue, 'recycled: this thread was the only one attached');
      // Objects of the closed one never touch it: every call is ECLOSED.
      for (const call of [() => stale.rearm(1), () => stale.delete(1), () => stale.forceOneShot(1), () => stale.setDeadline(1, 5), () => stale.wait(new Events(1), 0)]) {
        assert.throws(call, (e: unknown) => e instanceof ReactorError && e.code === 'ECLOSED');
      }
      const [a, b] = [eventfds(1)[0]!, eventfds(1)[0]!];
      try {
        const t = second.add(a, Interest.READABLE);
        assert.throws(() => stale.rearm(t), (e: unknown) => e instanceof ReactorError && e.code === 'ECLOSED', 'a token of the new one, through the old object');
        second.delete(t);
        void b;
      } finally {
        closeAll([a, b]);
      }
    } finally {
      second.close();
    }
    // With a worker attached and alive at close, the memory is left to the collector.
    const third = Reactor.open({ capacity: 1024 });
    const thirdQueue = third.share().queue;
    const worker = new Worker(`const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then(({ Reactor }) => { Reactor.attach(workerData.handle); parentPort.postMessage('attached'); });`, {
      eval: true,
      workerData: { url: new URL('../src/index.js', import.meta.url).href, handle: third.share() },
    });
    try {
      await once(worker, 'message');
      third.close();
      const fourth = Reactor.open({ capacity: 1024 });
      assert.notEqual(fourth.share().queue, thirdQueue, 'not recycled: another thread could still reach it');
      fourth.close();
    } finally {
      await worker.terminate();
    }
  });

  const highSlots = 'slots_past_65536_add_delete_and_fire_deadlines';
  (canRaiseFdLimit ? it : it.skip)(canRaiseFdLimit ? highSlots : `${highSlots} [skipped: needs ${HIGH_SLOT_FDS} fds, and raising RLIMIT_NOFILE is not permitted here]`, () => {
    withFdLimit(HIGH_SLOT_FDS + 1000, () => {
      const capacity = 2 ** 20;
      const r = Reactor.open({ capacity });
      const fds = eventfds(HIGH_SLOT_FDS);
      try {
        const tokens = fds.map((fd) => r.add(fd, Interest.READABLE));
        const slots = tokens.map((t) => t % SLOT_LIMIT);
        assert.ok(Math.max(...slots) >= 65_536, 'registrations past slot 65,536');
        // Delete every other one, spread over all the slots, and add their fds again.
        const stale: number[] = [];
        for (let i = 0; i < fds.length; i += 2) {
          stale.push(tokens[i]!);
          r.delete(tokens[i]!);
        }
        for (let i = 0; i < fds.length; i += 2) tokens[i] = r.add(fds[i]!, Interest.READABLE);
        for (const t of stale) {
          assert.throws(() => r.rearm(t), (e: unknown) => e instanceof ReactorError && e.code === 'ENOENT', `stale token ${t}`);
        }
        const high = tokens.filter((t) => t % SLOT_LIMIT >= 65_536);
        assert.ok(high.length > 2_000, `${high.length} live registrations past slot 65,536`);
        deadlinesFireOnce(r, high);
        for (const t of tokens) r.delete(t);
      } finally {
        r.close();
        closeAll(fds);
      }
    });
  });

  it('table_deadlines_and_queue_past_slot_65536_grow_and_stay_consistent_across_views', () => {
    const capacity = 2 ** 20;
    const count = 70_000;
    const table = Table.create(capacity);
    // A second thread's views, taken before any growth.
    const other = Table.attach(table.memory);
    const tokens = Array.from({ length: count }, (_, fd) => table.allocate(fd, Interest.READABLE, 0));
    assert.ok(tokens.every((t) => t > 0), 'all allocated');
    assert.equal(table.allocate(5, Interest.READABLE, 0), -1, 'one live registration per fd, past any growth of the fd index');
    const free = (t: number): void => {
      assert.equal(beginDelete(table.words, slotOfToken(t), genOfToken(t)), 0);
      table.free(slotOfToken(t));
    };
    // Delete every other one, spread over all the slots, and add their fds again.
    for (let fd = 0; fd < count; fd += 2) free(tokens[fd]!);
    const stale = tokens.filter((_, fd) => fd % 2 === 0);
    for (let fd = 0; fd < count; fd += 2) tokens[fd] = table.allocate(fd, Interest.READABLE, 0);
    assert.equal(new Set(tokens).size, count, 'no token twice');
    for (const t of stale) assert.ok(!other.covers(slotOfToken(t)) || !isLive(other.words, slotOfToken(t), genOfToken(t)), `stale token ${t}`);
    const high = tokens.filter((t) => slotOfToken(t) >= 65_536);
    assert.ok(high.length > 2_000, `${high.length} registrations past slot 65,536`);
    for (const t of high) {
      assert.ok(other.covers(slotOfToken(t)), 'the other view reaches it once it looks');
      assert.ok(isLive(other.words, slotOfToken(t), genOfToken(t)), `token ${t} live in the other view`);
    }

    // Deadlines on the high slots fire once each, from another thread's views too.
    const deadlines = Deadlines.create(capacity);
    const otherDeadlines = new Deadlines(deadlines.memory);
    high.forEach((t, i) => deadlines.set(slotOfToken(t), genOfToken(t), i));
    const fired = new Map<number, number>();
    otherDeadlines.takeDue(high.length, (slot) => fired.set(slot, (fired.get(slot) ?? 0) + 1));
    otherDeadlines.takeDue(Infinity, (slot) => fired.set(slot, (fired.get(slot) ?? 0) + 1));
    assert.equal(fired.size, high.length);
    assert.ok([...fired.values()].every((n) => n === 1), 'each fired once');

    // The ready queue holds every slot that can be queued, from any thread's views.
    const queue = ReadyQueue.create(capacity);
    const otherQueue = new ReadyQueue(queue.buffer);
    for (const t of tokens) queue.push(slotOfToken(t));
    const popped: number[] = [];
    for (let slot = otherQueue.pop(); slot >= 0; slot = otherQueue.pop()) popped.push(slot);
    assert.deepEqual(popped, tokens.map(slotOfToken), 'first in, first out');
  });
});
