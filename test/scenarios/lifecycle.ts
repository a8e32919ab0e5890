/** Delete, stale tokens and fd reuse, notify, close, share and attach. */
import assert from 'node:assert/strict';
import { Events, Interest, Ready } from '../../src/index.js';
import { send } from '../support/sockets.js';
import { startWorker } from '../support/threads.js';
import { expectCode, sleep, withReactor, type Scenario } from './scenario.js';

export const lifecycleScenarios: Scenario[] = [
  {
    name: 'delete_stops_events',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        r.delete(t);
        send(b, 'x');
        assert.equal(r.wait(ev, 50), 0);
        expectCode(() => r.rearm(t), 'ENOENT');
        expectCode(() => r.forceOneShot(t), 'ENOENT');
        expectCode(() => r.delete(t), 'ENOENT');
      }),
  },
  {
    name: 'delete_while_held',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, held }) => {
        const { t } = held();
        r.delete(t);
        expectCode(() => r.rearm(t), 'ENOENT');
        assert.equal(r.wait(ev, 50), 0);
      }),
  },
  {
    name: 'fd_reuse_is_safe',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair, close }) => {
        const [a, b] = pair();
        const old = r.add(a, Interest.READABLE);
        close(a);
        close(b);
        // The kernel hands out the lowest free numbers: the next pair reuses a's number.
        const [c, d] = pair();
        assert.ok(c === a || d === a, `fd ${a} was reused (got ${c}, ${d})`);
        const reused = c === a ? c : d;
        const peer = reused === c ? d : c;
        expectCode(() => r.add(reused, Interest.READABLE), 'EEXIST');
        r.delete(old);
        const fresh = r.add(reused, Interest.READABLE);
        assert.notEqual(fresh, old);
        expectCode(() => r.rearm(old), 'ENOENT');
        expectCode(() => r.forceOneShot(old), 'ENOENT');
        send(peer, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), fresh, 'the event carries the new token, never the old one');
      }),
  },
  {
    name: 'notify_wakes_a_blocked_waiter',
    run: (ctx) =>
      withReactor(ctx, async ({ r }) => {
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 10_000 });
        await waiter.ready;
        await sleep(50);
        r.notify();
        const got = await waiter.result;
        assert.equal(got.n, 0);
        assert.ok(got.elapsedMs < 5000, `woke after ${got.elapsedMs.toFixed(0)} ms`);
      }),
  },
  {
    name: 'notify_before_wait',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        r.notify();
        const start = performance.now();
        assert.equal(r.wait(ev, 10_000), 0);
        assert.ok(performance.now() - start < 5000, 'a pending notification makes the next wait return');
        assert.equal(r.wait(ev, 0), 0);
      }),
  },
  {
    name: 'close_wakes_every_thread',
    run: async (ctx) => {
      await withReactor(ctx, async ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        const waiters = [1, 2, 3].map(() => startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 }));
        await Promise.all(waiters.map((w) => w.ready));
        await sleep(100);
        r.close();
        const results = await Promise.all(waiters.map((w) => w.result));
        for (const got of results) {
          assert.equal(got.n, 0);
          assert.equal(got.ended, 'closed');
        }
        expectCode(() => r.wait(ev, 0), 'ECLOSED');
        expectCode(() => r.add(a, Interest.READABLE), 'ECLOSED');
        expectCode(() => r.rearm(t), 'ECLOSED');
        expectCode(() => r.forceOneShot(t), 'ECLOSED');
        expectCode(() => r.delete(t), 'ECLOSED');
        expectCode(() => r.notify(), 'ECLOSED');
        r.close();
        assert.equal(r.closed, true);
      });
    },
  },
  {
    name: 'attach_in_worker_sees_registrations',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 5000 });
        const waiterId = waiter.worker.threadId;
        await waiter.ready;
        send(b, 'x');
        const got = await waiter.result;
        assert.equal(got.n, 1);
        assert.equal(got.tokens[0], t);
        assert.equal(got.flags[0], Ready.READABLE);
        // The worker exited holding t: only it could re-arm t, until its exit is reported.
        expectCode(() => r.rearm(t), 'EPERM');
        assert.equal(r.threadExited(waiterId), 1);
        const ev = new Events(4);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.ABANDONED);
        r.rearm(t); // handed to this thread, which now holds it
      }),
  },
];
