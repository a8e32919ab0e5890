/**
 * The many-thread stress test: 4 worker threads on one reactor, 1,000 registrations (500 socket
 * pairs, both ends registered) bouncing one ball per pair, handlers that read and write, and
 * random FORCEOS from the main thread. STRESS_DELIVERIES sets the size (default 1,000,000).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { Interest, Reactor } from '../src/index.js';
import { availableBackends } from '../src/backends/select.js';
import { closeFd, drain, send, socketPair } from './support/sockets.js';
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
} from './support/threads.js';

const THREADS = 4;
const PAIRS = 500;
const TARGET = Number(process.env['STRESS_DELIVERIES'] ?? 1_000_000);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe.each(availableBackends())('stress %s', (backend) => {
  it(`four_threads_${PAIRS * 2}_registrations_random_forces`, async () => {
    const r = Reactor.open({ backend, capacity: PAIRS * 2 + 16 });
    const slots = r.capacity;
    const counters = new SlotCounters(slots);
    const fds = new Int32Array(slots);
    const pairOf = new Int32Array(slots);
    const sequence = new Int32Array(new SharedArrayBuffer(PAIRS * 4));
    const stats = new Int32Array(new SharedArrayBuffer(STATS_INTS * 4));
    const forcesIssued = new Int32Array(slots);
    const tokens: number[] = [];
    const sockets: number[] = [];
    let bytesSeeded = 0;
    for (let p = 0; p < PAIRS; p++) {
      for (const fd of socketPair()) {
        const t = r.add(fd, Interest.READABLE);
        fds[slotOf(t)] = fd;
        pairOf[slotOf(t)] = p;
        tokens.push(t);
        sockets.push(fd);
      }
      // Serve the ball: sequence 0, into the first socket, so the second one reads it.
      const ball = new Int32Array([0, p]);
      bytesSeeded += send(sockets[sockets.length - 2]!, new Uint8Array(ball.buffer));
    }
    const workers = Array.from({ length: THREADS }, () =>
      startWorker(r.share(), {
        kind: 'pingPong',
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
    while (Atomics.load(stats, DELIVERIES) < TARGET) {
      for (let k = 0; k < 10; k++) {
        const t = tokens[Math.floor(Math.random() * tokens.length)]!;
        if (r.forceOneShot(t)) {
          forces++;
          forcesIssued[slotOf(t)]!++;
        }
      }
      await sleep(1);
    }
    // Every accepted force must still arrive: give the last ones time, then stop the handlers.
    const reached = performance.now();
    for (let tries = 0; counters.total(counters.forced) < forces && tries < 1000; tries++) await sleep(5);
    const settleMs = performance.now() - reached;
    Atomics.store(stats, STOP, 1);
    const results = await Promise.all(workers.map((w) => w.result));
    const seconds = (performance.now() - start) / 1000;
    r.close();
    let bytesLeft = 0;
    for (const fd of sockets) {
      bytesLeft += drain(fd);
      closeFd(fd);
    }
    const deliveries = counters.total(counters.delivered);
    const forcedDelivered = counters.total(counters.forced);
    let forceMismatches = 0;
    for (let s = 0; s < slots; s++) if (counters.forced[s] !== forcesIssued[s]) forceMismatches++;
    const written = bytesSeeded + stats[BYTES_WRITTEN]!;
    const lost = written - stats[BYTES_READ]! - bytesLeft;
    console.log(
      `stress ${backend}: ${THREADS} threads, ${tokens.length} registrations, ${deliveries} deliveries ` +
        `(${results.map((x) => x.n).join(' + ')}) in ${seconds.toFixed(1)} s, ${forces} forces, ` +
        `${forcedDelivered} forced deliveries (the last within ${settleMs.toFixed(0)} ms), ${counters.doubleActive[0]} double-active, ` +
        `${written} bytes written, ${stats[BYTES_READ]} read + ${bytesLeft} left in sockets, ${lost} lost, ` +
        `${stats[BAD_SEQUENCE]} out-of-sequence`,
    );
    assert.ok(deliveries >= TARGET, `${deliveries} deliveries`);
    assert.equal(counters.doubleActive[0], 0, 'never two holders of one registration');
    assert.equal(forcedDelivered, forces, 'every force delivered');
    assert.equal(forceMismatches, 0, 'every force delivered exactly once, to its own registration');
    assert.equal(lost, 0, 'no byte lost');
    assert.equal(stats[BAD_SEQUENCE], 0, 'every ball arrived whole and in sequence');
    assert.equal(bytesLeft, PAIRS * BALL_BYTES, 'exactly one ball per pair still in flight');
    for (let i = 0; i < tokens.length; i++) assert.ok(counters.delivered[slotOf(tokens[i]!)]! > 0, `registration ${i} was delivered`);
  });
});
