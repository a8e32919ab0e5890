/**
 * A worker thread that dies holding events: it takes every event delivered to it until it holds
 * `claim` of them (or 5 s pass), re-arms every other one (staged: batchRearms is on, so no
 * re-arm reaches the kernel until a wait, flush or microtask that may never come), posts
 * { held, staged }, and dies as `how` says: throwing out of the thread, process.exit, or spinning
 * in its handler until terminated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Events, Reactor, type ReactorHandle } from '../../src/index.js';

export interface HolderData {
  readonly reactor: ReactorHandle;
  readonly claim: number;
  readonly how: 'throw' | 'exit' | 'terminate';
}

const { reactor, claim, how } = workerData as HolderData;
const r = Reactor.attach(reactor, { batchRearms: true });
const ev = new Events(claim);
const held: number[] = [];
const staged: number[] = [];
const end = performance.now() + 5000;
while (held.length < claim && performance.now() < end) {
  const n = r.wait(ev, 100);
  for (let i = 0; i < n; i++) held.push(ev.token(i));
}
for (let i = 1; i < held.length; i += 2) {
  r.rearm(held[i]!);
  staged.push(held[i]!);
}
parentPort!.postMessage({ held, staged });
if (how === 'exit') process.exit(3);
if (how === 'throw') throw new Error('a handler failed while holding its events');
for (;;) Atomics.load(ev.ready, 0); // stuck in its own work: no microtask runs until terminated
