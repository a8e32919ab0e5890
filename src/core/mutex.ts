/** A futex-style mutex over one Int32 of shared memory, usable from every thread. */

const UNLOCKED = 0;
const LOCKED = 1;
/** Locked, and some thread may be sleeping in Atomics.wait on it. */
const CONTENDED = 2;

/**
 * Drepper's three-state mutex ("Futexes Are Tricky", mutex2) on `words[index]`: the uncontended
 * path is one compareExchange to lock and one sub to unlock; only contention sleeps. Node allows
 * Atomics.wait on the main thread, so every thread may take it. Critical sections here are a
 * few array writes or one non-blocking call, never a blocking one.
 */
export function lock(words: Int32Array, index: number): void {
  let c = Atomics.compareExchange(words, index, UNLOCKED, LOCKED);
  if (c === UNLOCKED) return;
  do {
    if (c === CONTENDED || Atomics.compareExchange(words, index, LOCKED, CONTENDED) !== UNLOCKED) {
      Atomics.wait(words, index, CONTENDED);
    }
    c = Atomics.compareExchange(words, index, UNLOCKED, CONTENDED);
  } while (c !== UNLOCKED);
}

export function unlock(words: Int32Array, index: number): void {
  if (Atomics.sub(words, index, 1) !== LOCKED) {
    Atomics.store(words, index, UNLOCKED);
    Atomics.notify(words, index, 1);
  }
}
