/** The kernel objects of a reactor are freed by close() even when threads died inside its calls. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { it } from 'vitest';
import { Reactor } from '../src/index.js';
import { startWorker } from './support/threads.js';
import { sleep } from './scenarios/scenario.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

it.skipIf(process.platform !== 'linux')(`close_frees_kernel_objects_after_threads_died_in_calls${process.platform === 'linux' ? '' : ' [skipped: needs Linux, counts fds in /proc]'}`, async () => {
  const before = openFds();
  const r = Reactor.open({ capacity: 16 });
  assert.equal(openFds(), before + 2, 'an epoll fd and an eventfd');
  const waiters = Array.from({ length: 3 }, () => startWorker(r.share(), { kind: 'waitOnce', timeoutMs: -1 }));
  const ids = waiters.map((w) => w.worker.threadId);
  for (const w of waiters) w.result.catch(() => {}); // terminated: no result
  await Promise.all(waiters.map((w) => w.ready));
  await sleep(100); // each blocked in wait(), counted in as a user of the kernel objects
  await Promise.all(waiters.map((w) => w.worker.terminate()));
  r.close();
  assert.equal(openFds(), before + 2, 'still counted in: the dead threads never left their wait');
  for (const id of ids) assert.equal(r.threadExited(id), 0, 'they held no event');
  assert.equal(openFds(), before, 'freed once the last dead thread was counted out');
});
