/**
 * A thread that dies holding an event: its events are handed to live waiters, flagged ABANDONED,
 * once its exit is reported with threadExited; and a waiting thread can be terminated promptly.
 */
import assert from 'node:assert/strict';
import { Events, Interest, Mode, Ready, type Reactor } from '../../src/index.js';
import { send } from '../support/sockets.js';
import { startWorker } from '../support/threads.js';
import type { Task } from '../support/worker.js';
import { expectCode, sleep, withReactor, type Scenario } from './scenario.js';

/** Starts a worker that takes one event and dies as `task` says; resolves once it has exited, holding `token`. */
async function dieHolding(r: Reactor, task: Extract<Task, { kind: 'holdThenDie' }>, ready: () => void): Promise<{ threadId: number; token: number }> {
  const started = startWorker(r.share(), task);
  const threadId = started.worker.threadId;
  started.result.catch(() => {}); // it dies without a result, by design
  const holding = new Promise<number>((resolve) => started.worker.on('message', (m: { holding?: number }) => m.holding !== undefined && resolve(m.holding)));
  const exited = new Promise((resolve) => started.worker.on('exit', resolve));
  await started.ready;
  ready();
  const token = await holding;
  if (task.how === 'block' || task.how === 'spin') {
    await sleep(20); // blocked in its second wait, or deep in its handler
    await started.worker.terminate();
  }
  await exited;
  return { threadId, token };
}

/** One wait on this thread; the single event it delivers. */
function deliveredOne(r: Reactor, ev: Events): { token: number; ready: number } {
  assert.equal(r.wait(ev, 2000), 1);
  return { token: ev.token(0), ready: ev.readiness(0) };
}

export const deadThreadScenarios: readonly Scenario[] = [
  {
    name: 'thread_that_throws_holding_hands_its_event_on',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair, ev }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        const dead = await dieHolding(r, { kind: 'holdThenDie', how: 'throw', stageRearm: false }, () => send(b, 'x'));
        assert.equal(dead.token, t);
        send(b, 'y');
        assert.equal(r.wait(ev, 300), 0, 'held by the dead thread until its exit is reported');
        expectCode(() => r.rearm(t), 'EPERM');
        assert.equal(r.threadExited(dead.threadId), 1);
        if (ctx.mode === Mode.EDGE) {
          // The edge of 'y', remembered while the dead thread held the event, comes with it.
          assert.deepEqual(deliveredOne(r, ev), { token: t, ready: Ready.ABANDONED | Ready.READABLE });
        } else {
          assert.deepEqual(deliveredOne(r, ev), { token: t, ready: Ready.ABANDONED });
        }
        r.rearm(t, undefined, Ready.READABLE); // nothing read yet (EDGE needs to be told)
        assert.deepEqual(deliveredOne(r, ev), { token: t, ready: Ready.READABLE }, 'its unread data, after the re-arm');
        r.rearm(t);
      }),
  },
  {
    name: 'thread_that_exits_holding_with_a_force_pending',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair, ev }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        const dead = await dieHolding(r, { kind: 'holdThenDie', how: 'exit', stageRearm: false }, () => send(b, 'x'));
        assert.ok(r.forceOneShot(t), 'a force on an event held by a dead thread is accepted');
        assert.equal(r.wait(ev, 200), 0);
        assert.equal(r.threadExited(dead.threadId), 1);
        assert.deepEqual(deliveredOne(r, ev), { token: t, ready: Ready.ABANDONED | Ready.FORCED });
        r.delete(t);
      }),
  },
  {
    name: 'thread_that_dies_with_its_rearm_staged_loses_nothing',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair, ev }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        const dead = await dieHolding(r, { kind: 'holdThenDie', how: 'spin', stageRearm: true }, () => send(b, 'x'));
        // Node runs the thread's pending microtasks as it tears it down, so the staged re-arm is
        // applied and the unread byte comes back from the kernel; had it not been, the event
        // would come back ABANDONED. Either way, once. (EDGE stages nothing: the re-arm, saying
        // the byte is still ready, took effect at once.)
        const handedOn = r.threadExited(dead.threadId);
        const got = deliveredOne(r, ev);
        assert.equal(got.token, t);
        assert.equal(got.ready, handedOn === 1 ? Ready.ABANDONED : Ready.READABLE);
        r.rearm(t);
        r.delete(t);
      }),
  },
  {
    name: 'terminated_waiting_thread_hands_its_event_on',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair, ev }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        const start = performance.now();
        const dead = await dieHolding(r, { kind: 'holdThenDie', how: 'block', stageRearm: false }, () => send(b, 'x'));
        // terminate() returns once the thread is back from its kernel wait: one slice, 50 ms.
        assert.ok(performance.now() - start < 5000, `terminate took ${Math.round(performance.now() - start)} ms`);
        assert.equal(r.threadExited(dead.threadId), 1);
        assert.deepEqual(deliveredOne(r, ev), { token: t, ready: Ready.ABANDONED });
        r.delete(t);
      }),
  },
  {
    name: 'terminate_of_a_thread_blocked_in_wait_is_prompt',
    run: (ctx) =>
      withReactor(ctx, async ({ r }) => {
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 });
        const id = waiter.worker.threadId;
        waiter.result.catch(() => {});
        await waiter.ready;
        await sleep(100); // blocked in the kernel, with nothing registered
        const start = performance.now();
        await waiter.worker.terminate();
        const ms = performance.now() - start;
        // One wait slice (50 ms) plus thread teardown; without slices it never returns.
        assert.ok(ms < 1000, `terminate took ${Math.round(ms)} ms`);
        assert.equal(r.threadExited(id), 0, 'it held nothing');
      }),
  },
];
