/** watch() and waitAsync(): deliveries on Node's own event loop, which never blocks. */
import assert from 'node:assert/strict';
import { Events, Interest, Ready } from '../../src/index.js';
import { send } from '../support/sockets.js';
import { SlotCounters, slotOf, startWorker } from '../support/threads.js';
import { expectCode, runName, sleep, withReactor, type Scenario } from './scenario.js';

export const loopScenarios: Scenario[] = [
  {
    name: 'watch_keeps_the_event_loop_responsive',
    run: (ctx) =>
      withReactor(
        ctx,
        async ({ r, readable }) => {
          readable(100);
          let ticks = 0;
          const tick = setInterval(() => ticks++, 5);
          let delivered = 0;
          const stop = r.watch((ev, n) => {
            for (let i = 0; i < n; i++) r.rearm(ev.token(i), undefined, Ready.READABLE); // never read
            delivered += n;
          });
          await sleep(500);
          stop();
          clearInterval(tick);
          console.log(`${runName(ctx)} watch: ${delivered} deliveries and ${ticks} timer ticks (of about 100) in 500 ms`);
          assert.ok(delivered >= 1000, `${delivered} deliveries`);
          // A loop that watch() starved would tick about once; a loaded machine (Wine, neighbours)
          // takes some ticks away even from a free one, so the bound is generous.
          assert.ok(ticks >= 8, `timers kept firing while events flowed: ${ticks} ticks`);
        },
        { capacity: 128 },
      ),
  },
  {
    name: 'watch_with_batched_rearms_keeps_delivering',
    run: (ctx) =>
      withReactor(
        ctx,
        async ({ r, readable }) => {
          readable(10);
          let delivered = 0;
          const stop = r.watch((ev, n) => {
            // Staged in DISPATCH: applied before the loop idles. Never read: still ready.
            for (let i = 0; i < n; i++) r.rearm(ev.token(i), undefined, Ready.READABLE);
            delivered += n;
          });
          await sleep(300);
          stop();
          assert.ok(delivered >= 100, `staged re-arms were applied and delivered again: ${delivered} deliveries`);
        },
        { capacity: 16, batchRearms: true },
      ),
  },
  {
    name: 'watch_delivers_forces_and_deadlines',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair }) => {
        const [a] = pair();
        const [c] = pair();
        const ta = r.add(a, Interest.READABLE);
        const tc = r.add(c, Interest.READABLE);
        const seen: Array<[number, number]> = [];
        const stop = r.watch((ev, n) => {
          for (let i = 0; i < n; i++) seen.push([ev.token(i), ev.readiness(i)]);
        });
        r.forceOneShot(ta);
        r.setDeadline(tc, 30);
        for (let tries = 0; seen.length < 2 && tries < 200; tries++) await sleep(10);
        stop();
        assert.deepEqual(
          seen.sort((x, y) => x[0] - y[0]),
          [
            [ta, Ready.FORCED],
            [tc, Ready.FORCED | Ready.TIMEOUT],
          ].sort((x, y) => x[0]! - y[0]!),
        );
      }),
  },
  {
    name: 'watch_beside_worker_threads_never_double_active',
    run: (ctx) =>
      withReactor(
        ctx,
        async ({ r, readable }) => {
          const pairs = 64;
          const counters = new SlotCounters(pairs + 8);
          const fds = new Int32Array(pairs + 8);
          for (const { fd, t } of readable(pairs)) fds[slotOf(t)] = fd;
          const workers = [1, 2].map(() =>
            startWorker(r.share(), { kind: 'serve', counters: counters.buffer, slots: pairs + 8, fds, read: false, holdSpins: 100 }),
          );
          await Promise.all(workers.map((w) => w.ready));
          let mine = 0;
          const stop = r.watch((ev, n) => {
            for (let i = 0; i < n; i++) {
              const slot = slotOf(ev.token(i));
              counters.enter(slot, ev.readiness(i), Ready.FORCED);
              counters.leave(slot);
              r.rearm(ev.token(i), undefined, Ready.READABLE); // never read
            }
            mine += n;
          });
          await sleep(500);
          stop();
          r.close();
          const results = await Promise.all(workers.map((w) => w.result));
          console.log(`${runName(ctx)} watch + 2 workers: ${mine} + ${results.map((x) => x.n).join(' + ')} deliveries, ${counters.doubleActive[0]} double-active`);
          assert.equal(counters.doubleActive[0], 0);
          assert.ok(mine > 0, 'the watching main thread took events too');
        },
        { capacity: 72 },
      ),
  },
  {
    name: 'wait_async_resolves_on_events_timeout_notify_and_close',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair }) => {
        const ev = new Events(8);
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        assert.equal(await r.waitAsync(ev, 30), 0, 'timeout');
        const pending = r.waitAsync(ev, 5000);
        send(b, 'x');
        assert.equal(await pending, 1);
        assert.equal(ev.token(0), t);
        const notified = r.waitAsync(ev, 5000);
        r.notify();
        const start = performance.now();
        assert.equal(await notified, 0, 'notify');
        assert.ok(performance.now() - start < 4000);
        const closing = r.waitAsync(ev, -1);
        r.close();
        assert.equal(await closing, 0, 'close');
        await assert.rejects(r.waitAsync(ev, 0), (e: Error & { code?: string }) => e.code === 'ECLOSED');
        expectCode(() => r.watch(() => {}), 'ECLOSED');
      }),
  },
];

