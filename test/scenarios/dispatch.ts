/** Dispatch-once delivery, level re-delivery on rearm, interests, hang-up, ONESHOT, timeouts. */
import assert from 'node:assert/strict';
import { Interest, Mode, Ready } from '../../src/index.js';
import { drain, send, shutdownWrite } from '../support/sockets.js';
import { expectCode, withReactor, type Scenario } from './scenario.js';

export const dispatchScenarios: Scenario[] = [
  {
    name: 'dispatch_once',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE);
        // EDGE: the kernel reports the socket's WRITABLE edge at add; the registration wants only
        // READABLE, so it is remembered, not delivered.
        assert.equal(r.wait(ev, 50), 0, 'nothing is delivered before data arrives');
        send(b, 'ping');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.READABLE);
        send(b, 'more');
        assert.equal(r.wait(ev, 50), 0, 'disabled on delivery: no second event before rearm');
        if (ctx.mode !== Mode.EDGE) return;
        r.rearm(t, Interest.BOTH);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(
          ev.readiness(0),
          Ready.READABLE | Ready.WRITABLE,
          'EDGE: the data that came while held, and the WRITABLE edge kept back until WRITABLE was wanted',
        );
      }),
  },
  {
    name: 'rearm_redelivers_unread_data',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, held }) => {
        const { a, b, t } = held();
        if (ctx.mode === Mode.EDGE) {
          r.rearm(t);
          assert.equal(r.wait(ev, 50), 0, 'EDGE: unread data is not delivered again unless the handler says it is still ready');
          send(b, 'y'); // a new edge: delivered
          assert.equal(r.wait(ev, 1000), 1);
          assert.equal(ev.token(0), t);
          r.rearm(t, undefined, Ready.READABLE);
        } else {
          r.rearm(t);
        }
        assert.equal(r.wait(ev, 1000), 1, 'unread data is delivered again: the level (DISPATCH), or still ready (EDGE)');
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.READABLE);
        assert.equal(drain(a), ctx.mode === Mode.EDGE ? 2 : 1);
        r.rearm(t);
        assert.equal(r.wait(ev, 50), 0, 'nothing left to read, nothing delivered');
        send(b, 'y');
        assert.equal(r.wait(ev, 1000), 1, 'new data after the rearm is delivered');
        assert.equal(ev.readiness(0), Ready.READABLE);
      }),
  },
  {
    name: 'writable_interest',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        const t = r.add(a, Interest.WRITABLE);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.WRITABLE);
      }),
  },
  {
    name: 'rearm_changes_interest',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.WRITABLE);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), Ready.WRITABLE);
        r.rearm(t, Interest.READABLE);
        assert.equal(r.wait(ev, 50), 0, 'writable no longer wanted, nothing to read yet');
        send(b, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), Ready.READABLE);
        if (ctx.mode === Mode.EDGE) {
          // No new edge: the byte left unread and the writable socket are what the handler knows.
          r.rearm(t, Interest.BOTH, Ready.WRITABLE);
          assert.equal(r.wait(ev, 1000), 1);
          assert.equal(ev.readiness(0), Ready.WRITABLE, 'EDGE: WRITABLE, said still ready; the unread byte was not');
          r.rearm(t, undefined, Ready.READABLE | Ready.WRITABLE);
          assert.equal(r.wait(ev, 1000), 1, 'rearm without an interest keeps the last one');
          assert.equal(ev.readiness(0), Ready.READABLE | Ready.WRITABLE);
          r.rearm(t);
          assert.equal(r.wait(ev, 50), 0, 'EDGE: nothing said still ready, no new edge: nothing delivered');
          return;
        }
        r.rearm(t, Interest.BOTH);
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.readiness(0), Ready.READABLE | Ready.WRITABLE);
        r.rearm(t);
        assert.equal(r.wait(ev, 1000), 1, 'rearm without an interest keeps the last one');
        assert.equal(ev.readiness(0), Ready.READABLE | Ready.WRITABLE);
      }),
  },
  {
    name: 'peer_close_is_hangup',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair, close }) => {
        const [a, b] = pair();
        const [c, d] = pair();
        const ta = r.add(a, Interest.READABLE);
        const tc = r.add(c, Interest.READABLE);
        close(b);
        shutdownWrite(d);
        const seen = new Map<number, number>();
        for (let tries = 0; seen.size < 2 && tries < 10; tries++) {
          const n = r.wait(ev, 1000);
          for (let i = 0; i < n; i++) seen.set(ev.token(i), ev.readiness(i));
        }
        assert.ok((seen.get(ta)! & Ready.HANGUP) !== 0, `peer closed: got flags ${seen.get(ta)}`);
        assert.ok((seen.get(tc)! & Ready.HANGUP) !== 0, `peer shut down its write side: got flags ${seen.get(tc)}`);
        assert.equal(drain(c), 0, 'end of stream reads as 0 bytes');
      }),
  },
  {
    name: 'oneshot_frees_on_delivery',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, { mode: Mode.ONESHOT });
        expectCode(() => r.rearm(t), 'EINVAL');
        send(b, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        assert.equal(ev.readiness(0), Ready.READABLE);
        expectCode(() => r.rearm(t), 'EINVAL');
        expectCode(() => r.forceOneShot(t), 'ENOENT');
        expectCode(() => r.delete(t), 'ENOENT');
        send(b, 'y');
        assert.equal(r.wait(ev, 50), 0, 'a freed registration delivers nothing');
        const t2 = r.add(a, Interest.READABLE, { mode: Mode.ONESHOT });
        assert.notEqual(t2, t, 'the fd may be added again, under a new token');
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t2);
      }),
  },
  {
    name: 'wait_timeout',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a] = pair();
        r.add(a, Interest.READABLE);
        const start = performance.now();
        assert.equal(r.wait(ev, 100), 0);
        const elapsed = performance.now() - start;
        assert.ok(elapsed >= 95, `returned after ${elapsed.toFixed(1)} ms, before the 100 ms timeout`);
        assert.ok(elapsed < 5000, `returned after ${elapsed.toFixed(1)} ms`);
        assert.equal(r.wait(ev, 0), 0, 'a zero timeout polls');
      }),
  },
  {
    name: 'many_registrations',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, ev, pair }) => {
          const tokens = new Map<number, number>();
          for (let i = 0; i < 200; i++) {
            const [a, b] = pair();
            tokens.set(r.add(a, Interest.READABLE), b);
            send(b, 'x');
          }
          const seen = new Set<number>();
          for (let tries = 0; seen.size < tokens.size && tries < 100; tries++) {
            const n = r.wait(ev, 1000);
            for (let i = 0; i < n; i++) {
              assert.ok(!seen.has(ev.token(i)), 'each registration is delivered once');
              seen.add(ev.token(i));
            }
          }
          assert.equal(seen.size, 200);
          assert.equal(r.wait(ev, 20), 0);
        },
        { capacity: 256 },
      ),
  },
];
