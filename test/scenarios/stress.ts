/**
 * A small stress run for every backend: worker threads bounce one ball per socket pair (read,
 * check, write back, rearm) while the main thread forces at random; nothing may be held twice,
 * lost, or delivered out of sequence. test/stress.test.ts is the large one.
 */
import assert from 'node:assert/strict';
import { Interest } from '../../src/index.js';
import { drain, send } from '../support/sockets.js';
import {
  BAD_SEQUENCE,
  BALL_BYTES,
  BYTES_READ,
  BYTES_WRITTEN,
  DELIVERIES,
  SlotCounters,
  slotOf,
  startWorker,
  STATS_INTS,
  STOP,
} from '../support/threads.js';
import { runName, sleep, withReactor, type Context, type Scenario } from './scenario.js';

/** The size of one run. */
export interface StressSize {
  readonly threads: number;
  readonly pairs: number;
  /** Whether the handlers' threads batch their re-arms (AttachOptions.batchRearms). */
  readonly batchRearms?: boolean;
  /** Deliveries to reach before stopping. */
  readonly deliveries: number;
}

/** Runs the ping-pong stress at `size` on ctx's backend and checks every counter. */
export async function pingPongStress(ctx: Context, size: StressSize): Promise<void> {
  const { threads, pairs, deliveries: target } = size;
  await withReactor(
    ctx,
    async ({ r, pair }) => {
      const slots = r.capacity;
      const counters = new SlotCounters(slots);
      const fds = new Int32Array(slots);
      const pairOf = new Int32Array(slots);
      const sequence = new Int32Array(new SharedArrayBuffer(pairs * 4));
      const stats = new Int32Array(new SharedArrayBuffer(STATS_INTS * 4));
      const forcesIssued = new Int32Array(slots);
      const tokens: number[] = [];
      const sockets: number[] = [];
      let bytesSeeded = 0;
      for (let p = 0; p < pairs; p++) {
        const [a, b] = pair();
        for (const fd of [a, b]) {
          const t = r.add(fd, Interest.READABLE);
          fds[slotOf(t)] = fd;
          pairOf[slotOf(t)] = p;
          tokens.push(t);
          sockets.push(fd);
        }
        // Serve the ball: sequence 0, into the first socket, so the second one reads it.
        bytesSeeded += send(a, new Uint8Array(new Int32Array([0, p]).buffer));
      }
      const workers = Array.from({ length: threads }, () =>
        startWorker(r.share(), {
          kind: 'pingPong',
          batchRearms: size.batchRearms ?? false,
          counters: counters.buffer,
          slots,
          fds,
          pairOf,
          sequence: sequence.buffer as SharedArrayBuffer,
          stats: stats.buffer as SharedArrayBuffer,
        }),
      );
      await Promise.all(workers.map((w) => w.ready));
      const start = performance.now();
      let forces = 0;
      while (Atomics.load(stats, DELIVERIES) < target) {
        // About one force a millisecond: most deliveries stay the kernel's (the ball's).
        const t = tokens[Math.floor(Math.random() * tokens.length)]!;
        if (r.forceOneShot(t)) {
          forces++;
          forcesIssued[slotOf(t)]!++;
        }
        await sleep(1);
      }
      // Every accepted force must still arrive: give the last ones time, then stop the handlers.
      for (let tries = 0; counters.total(counters.forced) < forces && tries < 1000; tries++) await sleep(5);
      Atomics.store(stats, STOP, 1);
      const results = await Promise.all(workers.map((w) => w.result));
      const seconds = (performance.now() - start) / 1000;
      r.close();
      // One ball per pair is still in flight: in a socket, or (TCP) on its way to one.
      let bytesLeft = 0;
      for (let tries = 0; tries < 200; tries++) {
        for (const fd of sockets) bytesLeft += drain(fd);
        if (bytesLeft >= pairs * BALL_BYTES) break;
        await sleep(5);
      }
      const delivered = counters.total(counters.delivered);
      const forcedDelivered = counters.total(counters.forced);
      let forceMismatches = 0;
      for (let s = 0; s < slots; s++) if (counters.forced[s] !== forcesIssued[s]) forceMismatches++;
      const written = bytesSeeded + stats[BYTES_WRITTEN]!;
      const lost = written - stats[BYTES_READ]! - bytesLeft;
      console.log(
        `stress ${runName(ctx)}${size.batchRearms ? ' (batched re-arms)' : ''}: ${threads} threads, ${sockets.length} sockets, ${delivered} deliveries ` +
          `(${results.map((x) => x.n).join(' + ')}) in ${seconds.toFixed(1)} s, ${forces} forces, ` +
          `${forcedDelivered} forced deliveries, ${counters.doubleActive[0]} double-active, ` +
          `${written} bytes written, ${stats[BYTES_READ]} read + ${bytesLeft} left in sockets, ${lost} lost, ` +
          `${stats[BAD_SEQUENCE]} out-of-sequence`,
      );
      assert.ok(delivered >= target, `${delivered} deliveries`);
      assert.equal(counters.doubleActive[0], 0, 'never two holders of one registration');
      assert.equal(forcedDelivered, forces, 'every force delivered');
      assert.equal(forceMismatches, 0, 'every force delivered exactly once, to its own registration');
      assert.equal(lost, 0, 'no byte lost');
      assert.equal(stats[BAD_SEQUENCE], 0, 'every ball arrived whole and in sequence');
      assert.equal(bytesLeft, pairs * BALL_BYTES, 'exactly one ball per pair still in flight');
      for (let i = 0; i < tokens.length; i++) assert.ok(counters.delivered[slotOf(tokens[i]!)]! > 0, `registration ${i} was delivered`);
    },
    { capacity: pairs * 2 + 16 },
  );
}

export const stressScenarios: Scenario[] = [
  {
    name: 'stress_two_threads_128_sockets_20000_deliveries',
    run: (ctx) => pingPongStress(ctx, { threads: 2, pairs: 64, deliveries: 20_000 }),
  },
  {
    name: 'stress_two_threads_128_sockets_batched_rearms',
    run: (ctx) => pingPongStress(ctx, { threads: 2, pairs: 64, deliveries: 20_000, batchRearms: true }),
  },
];
