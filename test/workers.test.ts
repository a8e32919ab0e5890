/** runWorkers: N threads on one reactor, graceful close, handler errors reported with thread and token. */
import assert from 'node:assert/strict';
import { afterEach, it } from 'vitest';
import { HandlerError, Interest, Reactor, runWorkers, type RunWorkersOptions } from '../src/index.js';
import { closeFd, send, socketPair } from './support/sockets.js';
import { ABANDONED, FINISHED, SHARED_COUNTERS, STARTED, type PoolTestData } from './support/pool-handler.js';
import { until } from './support/wait.js';

const HANDLER = new URL('./support/pool-handler.js', import.meta.url);

const opened: { reactor: Reactor; fds: number[] }[] = [];
afterEach(() => {
  for (const { reactor, fds } of opened.splice(0)) {
    reactor.close();
    fds.forEach(closeFd);
  }
});

/** A reactor with `pairs` always-readable registrations, the pool's test data, and its counters. */
function fixture(pairs: number, threads: number, behaviour: PoolTestData['behaviour'], holdMs: number) {
  const reactor = Reactor.open({ capacity: pairs + 1 });
  const fds: number[] = [];
  opened.push({ reactor, fds });
  const tokens = Array.from({ length: pairs }, () => {
    const [a, b] = socketPair();
    fds.push(a, b);
    send(b, 'x'); // never read: the registration stays readable, delivered after every rearm
    return reactor.add(a, Interest.READABLE);
  });
  const data: PoolTestData = {
    behaviour,
    counters: new SharedArrayBuffer(4 * (threads + SHARED_COUNTERS)),
    holdMs,
    throwOn: new SharedArrayBuffer(8),
  };
  const counters = new Int32Array(data.counters);
  const options: RunWorkersOptions<PoolTestData> = { reactor, threads, handler: HANDLER, data };
  return { reactor, tokens, data, counters, options };
}

it('close_resolves_once_every_thread_has_finished_its_handler', async () => {
  const threads = 3;
  const { counters, options } = fixture(1, threads, 'serve', 200);
  const workers = await runWorkers(options);
  await until('a handler to start', () => Atomics.load(counters, threads + STARTED) > 0);
  const summary = await workers.close();
  // The handler held its event 200 ms and was still inside when close() was called.
  assert.equal(Atomics.load(counters, threads + FINISHED), Atomics.load(counters, threads + STARTED), 'every handler ran to its end');
  assert.equal(summary.threads.length, threads);
  assert.deepEqual(summary.errors, [], 'the ECLOSED of a rearm after close is no error');
  assert.equal(summary.events, Atomics.load(counters, threads + STARTED));
});

it('handler_error_is_reported_with_thread_and_token', async () => {
  const threads = 2;
  const { tokens, data, counters, options } = fixture(4, threads, 'throw', 1);
  const bad = tokens[2]!;
  new Float64Array(data.throwOn)[0] = bad;
  const reported: HandlerError[] = [];
  const workers = await runWorkers({ ...options, onError: (e) => reported.push(e) });
  await until('an error', () => reported.length > 0);
  const afterError = Atomics.load(counters, threads + FINISHED);
  await until('the threads to keep serving the other tokens', () => Atomics.load(counters, threads + FINISHED) > afterError + 10);
  const summary = await workers.close();

  const e = reported[0]!;
  assert.ok(e instanceof HandlerError);
  assert.equal(e.token, bad);
  assert.ok(e.index >= 0 && e.index < threads);
  assert.equal(e.threadId, workers.threadIds[e.index]);
  assert.match(e.message, new RegExp(`thread ${e.index} \\(threadId ${e.threadId}\\) failed handling token ${bad}`));
  assert.equal((e.cause as Error).message, `no handler for token ${bad}`);
  assert.ok((e.cause as Error).stack?.includes('pool-handler'), 'the stack of the thread that threw');
  // The handler did not rearm the bad token: held, so delivered once.
  assert.equal(reported.length, 1);
  assert.deepEqual(summary.errors, reported);
  assert.equal(summary.threads[e.index]!.errors, 1);
});

it('handler_error_without_onError_closes_the_pool_and_rejects_done', async () => {
  const { reactor, tokens, data, options } = fixture(2, 2, 'throw', 1);
  new Float64Array(data.throwOn)[0] = tokens[0]!;
  const workers = await runWorkers(options);
  await assert.rejects(workers.done, (e: unknown) => e instanceof HandlerError && e.token === tokens[0]);
  assert.ok(reactor.closed);
});

it('failed_setup_rejects_runWorkers', async () => {
  const { reactor, options } = fixture(1, 2, 'failSetup', 1);
  await assert.rejects(runWorkers(options), (e: unknown) => {
    return e instanceof HandlerError && e.token === undefined && /setup refused on purpose/.test(e.message);
  });
  assert.ok(reactor.closed, 'the pool closed what it could not run');
});

it('thread_that_exits_during_setup_rejects_runWorkers', async () => {
  const { reactor, options } = fixture(1, 3, 'exitInSetup', 1);
  await assert.rejects(runWorkers(options), (e: unknown) => {
    return e instanceof HandlerError && e.index === 0 && /exited \(code 3\) before it was done/.test(e.message);
  });
  assert.ok(reactor.closed);
});

it('every_thread_takes_events', async () => {
  const threads = 4;
  const { counters, options } = fixture(32, threads, 'serve', 1);
  const workers = await runWorkers(options);
  await until('every thread to take events', () => Array.from(counters.subarray(0, threads)).every((n) => n >= 5));
  assert.ok(workers.events() > 0, 'events() counts live');
  const summary = await workers.close();
  for (const t of summary.threads) {
    assert.ok(t.events >= 5, `thread ${t.index} took ${t.events} events`);
    assert.equal(t.events, Atomics.load(counters, t.index));
  }
  assert.equal(summary.events, summary.threads.reduce((sum, t) => sum + t.events, 0));
});

for (const restart of [true, false]) {
  it(`thread_that_dies_holding_is_reported_and_its_event_handed_on${restart ? '_and_replaced' : '_not_replaced'}`, async () => {
    const threads = 2;
    const { tokens, data, counters, options } = fixture(4, threads, 'exitHolding', 1);
    new Float64Array(data.throwOn)[0] = tokens[0]!;
    const workers = await runWorkers({ ...options, restart, onError: () => {} });
    const firstIds = [...workers.threadIds];
    await until('the events it held to come back ABANDONED to a live thread', () => Atomics.load(counters, threads + ABANDONED) > 0);
    const before = workers.events();
    await until('the threads to keep serving', () => workers.events() > before + 20);
    const summary = await workers.close();
    assert.equal(summary.deaths.length, 1);
    const death = summary.deaths[0]!;
    assert.equal(death.threadId, firstIds[death.index]);
    assert.match(death.error.message, /exited \(code 5\)/);
    // It held the whole batch its last wait delivered, the token it died on among them.
    assert.ok(death.handedOn >= 1);
    assert.equal(Atomics.load(counters, threads + ABANDONED), death.handedOn, 'each delivered once more, flagged ABANDONED');
    if (restart) {
      assert.notEqual(death.replacedBy, undefined);
      assert.equal(summary.threads[death.index]!.threadId, death.replacedBy);
    } else {
      assert.equal(death.replacedBy, undefined);
    }
    assert.equal(summary.events, workers.events());
    console.log(`pool death (restart ${restart}): thread ${death.index} died holding ${death.handedOn} events, each handed on once; ${summary.events} events in all`);
  });
}
