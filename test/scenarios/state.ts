/** Per-registration shared state: visible from every thread, zeroed per registration, never truncated. */
import assert from 'node:assert/strict';
import { Interest, Reactor, Ready } from '../../src/index.js';
import { send } from '../support/sockets.js';
import { startWorker } from '../support/threads.js';
import { expectCode, withReactor, type Scenario } from './scenario.js';

/** 64 bytes of shared state per registration. */
const WITH_STATE = { capacity: 16, stateBytes: 64 } as const;

export const stateScenarios: Scenario[] = [
  {
    name: 'state_is_shared_across_threads',
    run: (ctx) =>
      withReactor(
        ctx,
        async ({ r, ev, pair }) => {
          const [a, b] = pair();
          const t = r.add(a, Interest.READABLE);
          assert.equal(r.stateBytes, 64);
          assert.deepEqual([...r.state(t)], new Array(64).fill(0), 'zeroed when added');
          send(b, 'x');
          assert.equal(r.wait(ev, 1000), 1);
          r.writeState(t, new TextEncoder().encode('half a request'), 4);
          r.rearm(t, undefined, Ready.READABLE); // 'x' is left unread
          // The next delivery goes to a worker thread: it sees what this thread left.
          const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 5000, readState: true });
          const got = await waiter.result;
          assert.equal(got.n, 1);
          assert.equal(got.state, 'half a request');
        },
        WITH_STATE,
      ),
  },
  {
    name: 'state_refuses_what_does_not_fit',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, pair }) => {
          const [a] = pair();
          const t = r.add(a, Interest.READABLE);
          const t3 = r.add(pair()[0], Interest.READABLE, { state: new Uint8Array([1, 2, 3]) });
          assert.deepEqual([...r.state(t3).subarray(0, 5)], [1, 2, 3, 0, 0], 'the first state, written before arming');
          const at = r.stateOffset(t3);
          assert.deepEqual([...r.stateBuffer.subarray(at, at + 3)], [1, 2, 3], 'one view of every state, at the offset');
          assert.equal(r.stateBuffer, r.stateBuffer, 'the same view every time: nothing allocated per event');
          expectCode(() => r.add(pair()[0], Interest.READABLE, { state: new Uint8Array(65) }), 'EMSGSIZE');
          r.writeState(t, new Uint8Array(64));
          r.writeState(t, new Uint8Array(1), 63);
          expectCode(() => r.writeState(t, new Uint8Array(65)), 'EMSGSIZE');
          expectCode(() => r.writeState(t, new Uint8Array(2), 63), 'EMSGSIZE');
          expectCode(() => r.writeState(t, new Uint8Array(1), -1), 'EINVAL');
          r.delete(t);
          expectCode(() => r.state(t), 'ENOENT');
          expectCode(() => r.stateOffset(t), 'ENOENT');
          const t2 = r.add(a, Interest.READABLE);
          r.writeState(t2, new Uint8Array([7]));
          assert.equal(r.state(t2)[0], 7);
          expectCode(() => Reactor.open({ stateBytes: -1 }), 'EINVAL');
          expectCode(() => Reactor.open({ stateBytes: 65537 }), 'EINVAL');
        },
        WITH_STATE,
      ),
  },
  {
    name: 'state_of_a_reused_slot_is_zero_again_on_every_page',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, pair }) => {
          // Three pages and a bit, at an offset no multiple of 4: the zeroing reads and writes
          // a page at a time, four bytes at a time where aligned.
          const bytes = 3 * 4096 + 101;
          const [a] = pair();
          const slots = new Set<number>();
          for (let round = 0; round < 8; round++) {
            const initial = round % 2 === 0 ? undefined : Uint8Array.of(9, 8, 7);
            const t = r.add(a, Interest.READABLE, initial === undefined ? {} : { state: initial });
            slots.add(r.stateOffset(t) / bytes);
            const expected = new Uint8Array(bytes);
            if (initial !== undefined) expected.set(initial);
            assert.ok(Buffer.from(r.state(t)).equals(expected), `round ${round}: the state is the first state given, the rest zero`);
            // Dirty some pages, and not others, for the slot's next registration.
            for (const at of round % 3 === 0 ? [0, 5000, bytes - 1] : [4095, 4096 + 2]) r.writeState(t, Uint8Array.of(0xff), at);
            r.delete(t);
          }
          assert.ok(slots.size < 8, `slots were reused (${slots.size} slots for 8 registrations)`);
        },
        { capacity: 2, stateBytes: 3 * 4096 + 101 },
      ),
  },
];
