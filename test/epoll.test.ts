/** What only the epoll backend can show: its kernel objects and their release. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { startWorker } from './support/threads.js';

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe.runIf(process.platform === 'linux')('epoll', () => {
  it('close_releases_epoll_and_eventfd', () => {
    const before = openFds();
    const r = Reactor.open({ capacity: 8 });
    assert.equal(r.kind, 'epoll');
    assert.equal(openFds(), before + 2, 'an epoll fd and a wake-up eventfd');
    r.close();
    assert.equal(openFds(), before, 'both closed at once when no thread is waiting');
  });

  it('close_releases_after_the_last_waiter_leaves', async () => {
    const before = openFds();
    const r = Reactor.open({ capacity: 8 });
    const waiters = [1, 2].map(() => startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 }));
    await Promise.all(waiters.map((w) => w.ready));
    await new Promise((resolve) => setTimeout(resolve, 50));
    r.close();
    const results = await Promise.all(waiters.map((w) => w.result));
    assert.deepEqual(
      results.map((x) => x.ended),
      ['closed', 'closed'],
    );
    assert.equal(openFds(), before, 'released by the last waiter to leave');
  });
});
