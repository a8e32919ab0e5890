/** batchRearms: a thread's re-arms staged and applied with its next poll, in one kernel trip. */
import assert from 'node:assert/strict';
import { Interest, Mode, Ready } from '../../src/index.js';
import { drain, send } from '../support/sockets.js';
import { expectCode, withReactor, type Scenario } from './scenario.js';

/** The opening thread batches its re-arms. */
const BATCHED = { capacity: 16, batchRearms: true } as const;

export const batchScenarios: Scenario[] = [
  {
    name: 'batched_rearm_applies_with_the_next_wait',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, ev, pair }) => {
          const [a, b] = pair();
          const [c, d] = pair();
          const ta = r.add(a, Interest.READABLE);
          const tc = r.add(c, Interest.READABLE);
          send(b, 'x');
          send(d, 'y');
          const got = new Set<number>();
          for (let tries = 0; got.size < 2 && tries < 10; tries++) {
            const n = r.wait(ev, 1000);
            for (let i = 0; i < n; i++) got.add(ev.token(i));
          }
          assert.deepEqual([...got].sort(), [ta, tc].sort());
          // Left unread: still ready (EDGE, where a re-arm is no kernel call and nothing is staged).
          r.rearm(ta, undefined, Ready.READABLE);
          r.rearm(tc, undefined, Ready.READABLE);
          const again = new Set<number>();
          for (let tries = 0; again.size < 2 && tries < 10; tries++) {
            const n = r.wait(ev, 1000);
            for (let i = 0; i < n; i++) again.add(ev.token(i));
          }
          assert.equal(again.size, 2, 'both staged re-arms applied: the unread data is delivered again');
          drain(a);
          drain(c);
          r.rearm(ta);
          r.rearm(tc);
          assert.equal(r.wait(ev, 50), 0, 'and nothing more once read');
        },
        BATCHED,
      ),
  },
  {
    name: 'batched_rearm_that_fails_comes_back_as_error',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, ev, held, close }) => {
          const { a, t } = held();
          r.rearm(t); // staged
          close(a); // the registration's fd goes away before the re-arm is applied
          if (ctx.mode === Mode.EDGE) {
            // Nothing staged, nothing to fail: the registration is armed, and its kernel entry
            // went with the fd.
            assert.equal(r.wait(ev, 50), 0, 'EDGE: a re-arm makes no kernel call, so none fails');
            expectCode(() => r.rearm(t), 'EINVAL');
            r.delete(t);
            expectCode(() => r.rearm(t), 'ENOENT');
            return;
          }
          assert.equal(r.wait(ev, 1000), 1);
          assert.equal(ev.token(0), t);
          assert.equal(ev.readiness(0) & Ready.ERROR, Ready.ERROR, 'the failed re-arm is handed back, flagged ERROR');
          r.delete(t); // held again by this thread: it may delete it
          expectCode(() => r.rearm(t), 'ENOENT');
        },
        BATCHED,
      ),
  },
  {
    name: 'batched_rearm_then_delete_or_close_does_not_hang',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, ev, held }) => {
          const { a, t } = held();
          r.rearm(t); // staged: delete applies it first, then deletes
          r.delete(t);
          expectCode(() => r.forceOneShot(t), 'ENOENT');
          const t2 = r.add(a, Interest.READABLE);
          assert.equal(r.wait(ev, 1000), 1);
          r.rearm(t2); // staged: close applies it, then closes
          r.close();
          assert.equal(r.closed, true);
        },
        BATCHED,
      ),
  },
];
