/** Deadlines: FORCEOS with TIMEOUT, exactly once, never while a handler holds the event. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { Interest, Ready } from '../../src/index.js';
import { startWorker } from '../support/threads.js';
import { expectCode, runName, sleep, withReactor, type Scenario } from './scenario.js';

const TIMED_OUT = Ready.FORCED | Ready.TIMEOUT;

/** Open fds of this process, where the OS shows them (Linux). */
function openFds(): number | undefined {
  return existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : undefined;
}

export const deadlineScenarios: Scenario[] = [
  {
    name: 'deadline_fires_once_when_armed',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        const start = performance.now();
        r.setDeadline(t, 50);
        assert.equal(r.wait(ev, 5000), 1);
        const elapsed = performance.now() - start;
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), TIMED_OUT);
        assert.ok(elapsed >= 49, `fired after ${elapsed.toFixed(1)} ms, before its 50 ms`);
        assert.ok(elapsed < 2000, `fired after ${elapsed.toFixed(1)} ms`);
        r.rearm(t);
        assert.equal(r.wait(ev, 100), 0, 'a deadline fires once');
      }),
  },
  {
    name: 'deadline_while_held_fires_after_rearm',
    run: (ctx) =>
      withReactor(ctx, async ({ r, ev, held }) => {
        const { t } = held();
        r.setDeadline(t, 10);
        await sleep(50);
        assert.equal(r.wait(ev, 30), 0, 'never delivered while the handler holds it');
        r.rearm(t);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0) & TIMED_OUT, TIMED_OUT, 'delivered right after the rearm');
        r.rearm(t, undefined, Ready.READABLE); // the byte is still unread (EDGE needs to be told)
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), Ready.READABLE, 'then plain readiness again: the timeout came once');
      }),
  },
  {
    name: 'deadline_cancel_and_move',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        const [c] = pair();
        const ta = r.add(a, Interest.READABLE);
        const tc = r.add(c, Interest.READABLE);
        r.setDeadline(ta, 30);
        r.setDeadline(ta, null);
        r.setDeadline(tc, 10_000);
        r.setDeadline(tc, 40);
        assert.equal(r.wait(ev, 3000), 1);
        assert.equal(ev.token(0), tc, 'the moved deadline fires at its new time');
        assert.equal(r.wait(ev, 100), 0, 'the cancelled one never fires');
      }),
  },
  {
    name: 'deadline_joins_a_pending_force',
    run: (ctx) =>
      withReactor(ctx, async ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        assert.equal(r.forceOneShot(t), true);
        r.setDeadline(t, 0);
        await sleep(5); // past due before the wait: it fires while the force is still pending
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), TIMED_OUT, 'one delivery carries both');
        assert.equal(r.wait(ev, 50), 0);
      }),
  },
  {
    name: 'deadline_set_from_another_thread_wakes_a_blocked_waiter',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 });
        await waiter.ready;
        await sleep(50);
        r.setDeadline(t, 30);
        const got = await waiter.result;
        assert.equal(got.n, 1, 'a waiter blocked with no timeout still fires the deadline');
        assert.equal(got.tokens[0], t);
        assert.equal(got.flags[0], TIMED_OUT);
      }),
  },
  {
    name: 'deadline_deleted_registration_never_fires',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        r.setDeadline(t, 20);
        r.delete(t);
        const t2 = r.add(a, Interest.READABLE);
        assert.equal(r.wait(ev, 100), 0, 'the old deadline went with its registration');
        expectCode(() => r.setDeadline(t, 10), 'ENOENT');
        r.setDeadline(t2, 10);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t2);
      }),
  },
  {
    name: 'thousands_of_deadlines_fire_once_each_with_no_fd',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, ev, pair }) => {
          const count = 1000;
          const due = new Map<number, number>();
          for (let i = 0; i < count; i++) due.set(r.add(pair()[0], Interest.READABLE), 0);
          const fdsBefore = openFds();
          const start = performance.now();
          let k = 0;
          for (const t of due.keys()) r.setDeadline(t, 20 + (k++ % 200));
          assert.equal(openFds(), fdsBefore, 'deadlines cost no fd');
          let late = 0;
          while (performance.now() - start < 10_000) {
            const n = r.wait(ev, 500);
            if (n === 0 && [...due.values()].every((v) => v > 0)) break;
            for (let i = 0; i < n; i++) {
              assert.equal(ev.readiness(i), TIMED_OUT);
              due.set(ev.token(i), due.get(ev.token(i))! + 1);
              late = Math.max(late, performance.now() - start);
            }
          }
          const counts = [...due.values()];
          assert.ok(counts.every((c) => c === 1), `each fired exactly once (${counts.filter((c) => c !== 1).length} did not)`);
          console.log(`${runName(ctx)} deadlines: ${count} fired once each, the last ${late.toFixed(0)} ms after the first was set (due by 219 ms)`);
        },
        { capacity: 1024 },
      ),
  },
  {
    name: 'strict_deadlines',
    run: (ctx) =>
      withReactor(ctx, ({ r, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        for (const bad of [-1, NaN, Infinity, 2 ** 31, '10' as never, undefined as never]) expectCode(() => r.setDeadline(t, bad), 'EINVAL');
        expectCode(() => r.setDeadline(-5, 10), 'EINVAL');
        expectCode(() => r.setDeadline(t + 4194304, 10), 'ENOENT');
      }),
  },
];
