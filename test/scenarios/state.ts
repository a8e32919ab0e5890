/** Per-registration shared state: visible from every thread, zeroed per registration, never truncated. */
import assert from 'node:assert/strict';
import { Events, Interest, Reactor } from '../../src/index.js';
import { closeFd, send, socketPair } from '../support/sockets.js';
import { startWorker } from '../support/threads.js';
import { expectCode, type Context, type Scenario } from './scenario.js';

/** A reactor with 64 bytes of state per registration, closed with its pairs afterwards. */
async function withState(ctx: Context, body: (r: Reactor, pair: [number, number]) => void | Promise<void>): Promise<void> {
  const r = Reactor.open({ backend: ctx.backend, capacity: 16, stateBytes: 64 });
  const pair = socketPair();
  try {
    await body(r, pair);
  } finally {
    r.close();
    for (const fd of pair) closeFd(fd);
  }
}

export const stateScenarios: Scenario[] = [
  {
    name: 'state_is_shared_across_threads',
    run: (ctx) =>
      withState(ctx, async (r, [a, b]) => {
        const ev = new Events(4);
        const t = r.add(a, Interest.READABLE);
        assert.equal(r.stateBytes, 64);
        assert.deepEqual([...r.state(t)], new Array(64).fill(0), 'zeroed when added');
        send(b, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        r.writeState(t, new TextEncoder().encode('half a request'), 4);
        r.rearm(t);
        // The next delivery goes to a worker thread: it sees what this thread left.
        const waiter = startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 5000, readState: true });
        const got = await waiter.result;
        assert.equal(got.n, 1);
        assert.equal(got.state, 'half a request');
      }),
  },
  {
    name: 'state_refuses_what_does_not_fit',
    run: (ctx) =>
      withState(ctx, (r, [a]) => {
        const t = r.add(a, Interest.READABLE);
        r.writeState(t, new Uint8Array(64));
        r.writeState(t, new Uint8Array(1), 63);
        expectCode(() => r.writeState(t, new Uint8Array(65)), 'EMSGSIZE');
        expectCode(() => r.writeState(t, new Uint8Array(2), 63), 'EMSGSIZE');
        expectCode(() => r.writeState(t, new Uint8Array(1), -1), 'EINVAL');
        r.delete(t);
        expectCode(() => r.state(t), 'ENOENT');
        const t2 = r.add(a, Interest.READABLE);
        r.writeState(t2, new Uint8Array([7]));
        assert.equal(r.state(t2)[0], 7);
        expectCode(() => Reactor.open({ stateBytes: -1 }), 'EINVAL');
        expectCode(() => Reactor.open({ stateBytes: 65537 }), 'EINVAL');
      }),
  },
];
