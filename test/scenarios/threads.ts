/** Many threads waiting on one reactor: never two holders, nothing lost. */
import assert from 'node:assert/strict';
import { SlotCounters, slotOf, startWorker } from '../support/threads.js';
import { runName, sleep, withReactor, type Context, type Scenario } from './scenario.js';

/**
 * `threads` workers serve `pairs` always-readable sockets (each handler holds the event a
 * moment, then re-arms without reading) while the main thread forces at random; then every
 * counter is checked.
 */
async function manyWaiters(ctx: Context, threads: number, pairs: number, ms: number): Promise<void> {
  await withReactor(
    ctx,
    async ({ r, readable }) => {
      const counters = new SlotCounters(pairs + 1);
      const fds = new Int32Array(pairs + 1);
      const tokens: number[] = [];
      for (const { fd, t } of readable(pairs)) {
        fds[slotOf(t)] = fd;
        tokens.push(t);
      }
      const workers = Array.from({ length: threads }, () =>
        startWorker(r.share(), { kind: 'serve', counters: counters.buffer, slots: pairs + 1, fds, read: false, holdSpins: 200 }),
      );
      await Promise.all(workers.map((w) => w.ready));
      let forces = 0;
      const end = performance.now() + ms;
      while (performance.now() < end) {
        for (let k = 0; k < 20; k++) if (r.forceOneShot(tokens[Math.floor(Math.random() * pairs)]!)) forces++;
        await sleep(1);
      }
      // Let every accepted force be delivered before stopping.
      for (let tries = 0; counters.total(counters.forced) < forces && tries < 500; tries++) await sleep(10);
      r.close();
      const results = await Promise.all(workers.map((w) => w.result));
      const deliveries = counters.total(counters.delivered);
      const perThread = results.map((x) => x.n);
      console.log(
        `${runName(ctx)} ${threads} waiters: ${deliveries} deliveries (${perThread.join(' + ')}), ${forces} forces, ` +
          `${counters.total(counters.forced)} forced deliveries, ${counters.doubleActive[0]} double-active`,
      );
      assert.equal(counters.doubleActive[0], 0, 'never two holders of one registration');
      assert.equal(counters.total(counters.forced), forces, 'every force delivered exactly once');
      assert.ok(deliveries > pairs, 'every registration keeps being delivered');
      for (let i = 0; i < pairs; i++) assert.ok(counters.delivered[slotOf(tokens[i]!)]! > 0, `registration ${i} was delivered`);
      assert.ok(perThread.every((n) => n > 0), `every thread took events: ${perThread.join(', ')}`);
    },
    { capacity: pairs + 8 },
  );
}

export const threadScenarios: Scenario[] = [
  { name: 'two_waiters_never_double_active', run: (ctx) => manyWaiters(ctx, 2, 64, 700) },
  { name: 'four_waiters_never_double_active', run: (ctx) => manyWaiters(ctx, 4, 128, 700) },
];
