/** FORCEOS: exactly one forced delivery, to one thread, never while a handler holds the event. */
import assert from 'node:assert/strict';
import { Interest, Ready } from '../../src/index.js';
import { startWorker } from '../support/threads.js';
import { withReactor, type Scenario } from './scenario.js';

export const forceScenarios: Scenario[] = [
  {
    name: 'force_armed_delivers_once',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        assert.equal(r.forceOneShot(t), true);
        assert.equal(r.forceOneShot(t), false, 'a second force before delivery returns false');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.FORCED, 'forced with no readiness: FORCED alone');
        assert.equal(r.wait(ev, 50), 0, 'delivered exactly once');
        r.rearm(t);
        assert.equal(r.wait(ev, 50), 0, 'the force is spent: the rearm brings nothing back');
      }),
  },
  {
    name: 'force_active_waits_for_rearm',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, held }) => {
        const { t } = held();
        assert.equal(r.forceOneShot(t), true, 'a force while a handler holds it is accepted');
        assert.equal(r.forceOneShot(t), false);
        assert.equal(r.wait(ev, 50), 0, 'never delivered while the handler holds it');
        r.rearm(t);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.ok(ev.readiness(0) & Ready.FORCED, 'delivered right after the rearm, flagged FORCED');
        assert.equal(r.wait(ev, 50), 0, 'once');
        assert.equal(r.forceOneShot(t), true, 'a new force is accepted once the last was delivered');
        r.rearm(t);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0) & Ready.FORCED, Ready.FORCED, 'the second force');
        r.rearm(t, undefined, Ready.READABLE); // the byte is still unread (EDGE needs to be told)
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), Ready.READABLE, 'the unread data is still delivered: a force hides no readiness');
      }),
  },
  {
    name: 'force_from_another_thread',
    run: (ctx) =>
      withReactor(ctx, async ({ r, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 5000 });
        await waiter.ready;
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(r.forceOneShot(t), true);
        const got = await waiter.result;
        assert.equal(got.n, 1, 'the blocked waiter in the other thread gets the forced event');
        assert.equal(got.tokens[0], t);
        assert.equal(got.flags[0], Ready.FORCED);
        assert.ok(got.elapsedMs < 4000, `the waiter woke promptly (${got.elapsedMs.toFixed(0)} ms)`);
      }),
  },
  {
    name: 'force_survives_delete_and_reuse',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        // A forced registration deleted before delivery: its queue entry must neither deliver
        // for the dead token nor hide a force of the slot's next registration.
        const [a] = pair();
        const t = r.add(a, Interest.READABLE);
        assert.equal(r.forceOneShot(t), true);
        r.delete(t);
        assert.equal(r.wait(ev, 20), 0, 'nothing is delivered for a deleted token');
        const t2 = r.add(a, Interest.READABLE);
        assert.equal(r.forceOneShot(t2), true);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t2);
        assert.equal(ev.readiness(0), Ready.FORCED);
      }),
  },
];
