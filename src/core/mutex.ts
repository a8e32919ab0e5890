/** A futex-style mutex over one Int32 of shared memory, usable from every thread. */

const UNLOCKED = 0;
const LOCKED = 1;
/** Locked, and some thread may be sleeping in Atomics.wait on it. */
const CONTENDED = 2;

/**
 * Drepper's three-state mutex ("Futexes Are Tricky", mutex2): the uncontended path is one
 * compareExchange to lock and one sub to unlock; only contention sleeps. Node allows
 * Atomics.wait on the main thread, so every thread may take it. Critical sections here are a
 * few array writes and never a blocking call.
 */
export class Mutex {
  constructor(
    private readonly words: Int32Array,
    private readonly index: number,
  ) {}

  lock(): void {
    const w = this.words;
    const i = this.index;
    let c = Atomics.compareExchange(w, i, UNLOCKED, LOCKED);
    if (c === UNLOCKED) return;
    do {
      if (c === CONTENDED || Atomics.compareExchange(w, i, LOCKED, CONTENDED) !== UNLOCKED) {
        Atomics.wait(w, i, CONTENDED);
      }
      c = Atomics.compareExchange(w, i, UNLOCKED, CONTENDED);
    } while (c !== UNLOCKED);
  }

  unlock(): void {
    const w = this.words;
    const i = this.index;
    if (Atomics.sub(w, i, 1) !== LOCKED) {
      Atomics.store(w, i, UNLOCKED);
      Atomics.notify(w, i, 1);
    }
  }
}
