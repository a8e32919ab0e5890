/** Waiting in async tests: poll a condition without blocking the event loop. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/** Resolves once `condition()` holds; fails the test, naming `what`, after `timeoutMs`. */
export async function until(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!condition()) {
    assert.ok(performance.now() < end, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}
