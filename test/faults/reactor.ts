/**
 * Faults of the reactor itself, in this process with real threads and real sockets: threads that
 * die holding events, threads terminated while they wait, and close() under load.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Events, Interest, Reactor, Ready } from '../../src/index.js';
import { closeFd, drain, send, socketPair } from '../support/sockets.js';
import { SlotCounters, slotOf, startWorker, type Started } from '../support/threads.js';
import type { TaskResult } from '../support/worker.js';
import type { HolderData } from './holder.js';
import { count, Losses, ms, openFds, percentile, within, type FaultGroup, type Outcome } from './fault.js';

/** Pairs a dying thread holds, bytes sent on each before it takes them and again while it holds them. */
const HELD = 64;
const CHUNK = 1024;
const DEATH_ROUNDS = 5;

interface DeathRound {
  held: number;
  staged: number;
  handedOn: number;
  abandoned: number;
  deliveries: number;
  sent: number;
  read: number;
}

/**
 * One thread takes HELD readable registrations and dies holding them (half with their re-arms
 * staged); more data arrives meanwhile. Until threadExited nothing it held may be delivered (a
 * staged re-arm the thread's teardown applied aside); after it, each registration exactly once,
 * ABANDONED if it was handed on, and every byte is read.
 */
async function dieHolding(how: HolderData['how'], losses: Losses): Promise<DeathRound> {
  const r = Reactor.open({ capacity: 2 * HELD });
  const pairs = Array.from({ length: HELD }, () => socketPair());
  const ev = new Events(HELD);
  try {
    const tokens = pairs.map(([a]) => r.add(a, Interest.READABLE));
    const fdOf = new Map(tokens.map((t, i) => [t, pairs[i]![0]]));
    const chunk = new Uint8Array(CHUNK).fill(how.length);
    let sent = 0;
    const sendAll = (): void => pairs.forEach(([, b]) => (sent += send(b, chunk)));
    sendAll();
    const data: HolderData = { reactor: r.share(), claim: HELD, how };
    const worker = new Worker(new URL('./holder.js', import.meta.url), { workerData: data });
    const threadId = worker.threadId;
    worker.on('error', () => {}); // 'throw' dies of its error, by design
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    const taken = new Promise<{ held: number[]; staged: number[] }>((resolve) => worker.once('message', resolve));
    const { held, staged } = await within('the dying thread to take its events', taken, 10_000);
    sendAll();
    if (how === 'terminate') await within('terminate', worker.terminate(), 5000);
    await within('the thread to die', exited, 5000);

    const deliveries = new Map<number, number>();
    let abandoned = 0;
    let read = 0;
    const take = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const t = ev.token(i);
        deliveries.set(t, (deliveries.get(t) ?? 0) + 1);
        if (ev.readiness(i) & Ready.ABANDONED) abandoned++;
        read += drain(fdOf.get(t)!);
        r.rearm(t);
      }
      r.flush();
    };
    // Held by a dead thread: nothing comes but a staged re-arm its teardown applied.
    for (let n = r.wait(ev, 200); n > 0; n = r.wait(ev, 50)) take(n);
    const early = [...deliveries.keys()].filter((t) => !staged.includes(t));
    const handedOn = r.threadExited(threadId);
    const end = performance.now() + 3000;
    while (deliveries.size < HELD && performance.now() < end) take(r.wait(ev, 50));
    for (let n = r.wait(ev, 100); n > 0; n = r.wait(ev, 100)) take(n); // anything delivered twice

    losses.check(held.length === HELD, `${how}: the thread took ${held.length} of ${HELD} events`);
    losses.check(early.length === 0, `${how}: ${early.length} events delivered while a dead thread held them`);
    losses.check(handedOn === abandoned, `${how}: ${handedOn} handed on, ${abandoned} delivered ABANDONED`);
    losses.check(handedOn >= HELD - staged.length, `${how}: ${handedOn} handed on of ${HELD - staged.length} held without a re-arm`);
    const stranded = tokens.filter((t) => !deliveries.has(t)).length;
    const twice = [...deliveries.values()].filter((n) => n > 1).length;
    losses.check(stranded === 0, `${how}: ${stranded} events stranded`);
    losses.check(twice === 0, `${how}: ${twice} events delivered twice`);
    losses.check(read === sent, `${how}: ${count(read)} of ${count(sent)} bytes read`);
    losses.check(r.threadExited(threadId) === 0, `${how}: a second threadExited handed events on again`);
    return { held: held.length, staged: staged.length, handedOn, abandoned, deliveries: [...deliveries.values()].reduce((a, b) => a + b, 0), sent, read };
  } finally {
    r.close();
    for (const [a, b] of pairs) {
      closeFd(a);
      closeFd(b);
    }
  }
}

async function threadDiesHolding(how: HolderData['how']): Promise<Outcome> {
  const losses = new Losses();
  const total: DeathRound = { held: 0, staged: 0, handedOn: 0, abandoned: 0, deliveries: 0, sent: 0, read: 0 };
  for (let round = 0; round < DEATH_ROUNDS; round++) {
    const got = await dieHolding(how, losses);
    for (const key of Object.keys(total) as (keyof DeathRound)[]) total[key] += got[key];
  }
  return losses.outcome(
    `${DEATH_ROUNDS} threads, ${count(total.held)} events held (${count(total.staged)} with re-arms staged), ` +
      `${count(total.handedOn)} handed on and delivered ABANDONED, ${count(total.deliveries)} deliveries, ` +
      `${count(total.read)} of ${count(total.sent)} bytes read`,
  );
}

const TERMINATE_ROUNDS = 10;
/** Generous: a terminate waits for one kernel wait slice (50 ms) and the thread's teardown. */
const TERMINATE_LIMIT_MS = 1000;

/**
 * Two threads wait on a reactor; one is terminated. The terminate completes promptly, the other
 * still gets the next event, and close() frees every descriptor the reactor opened.
 */
async function terminatedWhileWaiting(): Promise<Outcome> {
  const losses = new Losses();
  const times: number[] = [];
  for (let round = 0; round < TERMINATE_ROUNDS; round++) {
    const before = openFds();
    const r = Reactor.open({ capacity: 8 });
    const [a, b] = socketPair();
    let waiters: Started[] = [];
    try {
      const t = r.add(a, Interest.READABLE);
      waiters = [startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 }), startWorker(r.share(), { kind: 'waitOnce', timeoutMs: 5000 })];
      const [victim, survivor] = waiters as [Started, Started];
      victim.result.catch(() => {}); // terminated: no result, by design
      await within('the waiters to start', Promise.all(waiters.map((w) => w.ready)), 10_000);
      await sleep(50); // both blocked in the kernel
      const id = victim.worker.threadId;
      const start = performance.now();
      await within('terminate', victim.worker.terminate(), 5000);
      times.push(performance.now() - start);
      losses.check(r.threadExited(id) === 0, 'a waiting thread held events');
      send(b, 'x');
      const got: TaskResult = await within('the surviving waiter', survivor.result, 5000);
      losses.check(got.n === 1 && got.tokens[0] === t, `the surviving waiter got ${got.n} events instead of the one sent`);
    } finally {
      r.close();
      closeFd(a);
      closeFd(b);
      for (const w of waiters) await w.worker.terminate();
    }
    const after = openFds();
    losses.check(after === before, `round ${round}: ${after - before} descriptors left open after close()`);
  }
  const max = Math.max(...times);
  losses.check(max < TERMINATE_LIMIT_MS, `a terminate took ${ms(max)}`);
  return losses.outcome(`${TERMINATE_ROUNDS} terminates, median ${ms(percentile(times, 0.5))}, max ${ms(max)}; the other waiter got each event; descriptors back after each close()`);
}

const CLOSE_ROUNDS = 50;
const CLOSE_THREADS = 3;
const CLOSE_PAIRS = 16;

/**
 * CLOSE_ROUNDS times: CLOSE_THREADS threads serve CLOSE_PAIRS sockets kept readable (every re-arm
 * delivers again), and close() comes in the middle of it. Every thread returns, none with an error
 * (the serve task lets only ECLOSED and ENOENT through, and nothing here deletes), no event is
 * active in two threads, and the descriptors are back where they were.
 */
async function closeUnderLoad(): Promise<Outcome> {
  const losses = new Losses();
  let deliveries = 0;
  let errors = 0;
  let hung = 0;
  for (let round = 0; round < CLOSE_ROUNDS; round++) {
    const before = openFds();
    const r = Reactor.open({ capacity: 2 * CLOSE_PAIRS });
    const pairs = Array.from({ length: CLOSE_PAIRS }, () => socketPair());
    const counters = new SlotCounters(r.capacity);
    const fds = new Int32Array(r.capacity);
    let threads: Started[] = [];
    try {
      for (const [fd, peer] of pairs) {
        send(peer, 'x');
        fds[slotOf(r.add(fd, Interest.READABLE))] = fd;
      }
      threads = Array.from({ length: CLOSE_THREADS }, () =>
        startWorker(r.share(), { kind: 'serve', counters: counters.buffer, slots: r.capacity, fds, read: false, holdSpins: 100 }),
      );
      await within('the threads to start', Promise.all(threads.map((t) => t.ready)), 10_000);
      await sleep(5 + (round % 5) * 5);
      r.close();
      for (const t of threads) {
        try {
          deliveries += (await within('a thread to return after close()', t.result, 5000)).n;
        } catch (e) {
          if ((e as Error).message.includes('did not finish')) hung++;
          else errors++;
          if (losses.lost.length < 3) losses.lost.push(`round ${round}: ${(e as Error).message}`);
        }
      }
    } finally {
      r.close();
      for (const t of threads) await t.worker.terminate();
      for (const [a, b] of pairs) {
        closeFd(a);
        closeFd(b);
      }
    }
    losses.check(counters.doubleActive[0] === 0, `round ${round}: ${counters.doubleActive[0]} events active in two threads`);
    const after = openFds();
    losses.check(after === before, `round ${round}: ${after - before} descriptors left open`);
  }
  return losses.outcome(
    `${CLOSE_ROUNDS} closes of ${CLOSE_THREADS} threads on ${CLOSE_PAIRS} busy sockets, ${count(deliveries)} deliveries, ` +
      `${hung} hung, ${errors} errors, descriptors back each time`,
  );
}

export const reactorFaults: FaultGroup = {
  name: 'reactor',
  limitMs: 90_000,
  async run(report) {
    report('thread-throws-holding', await threadDiesHolding('throw'));
    report('thread-exits-holding', await threadDiesHolding('exit'));
    report('thread-terminated-holding', await threadDiesHolding('terminate'));
    report('thread-terminated-waiting', await terminatedWhileWaiting());
    report('close-under-load', await closeUnderLoad());
  },
};
