/** Who is inside the reactor's kernel objects, so that close frees them only after the last one leaves. */

const CLOSED = 0;
const FINALIZED = 1;
const NEXT_STRIPE = 2;
/** Each user count sits on its own 64-byte line, so threads do not bounce one counter. */
const STRIPE_INTS = 16;
const STRIPES = 16;
const FIRST_STRIPE = STRIPE_INTS;

/**
 * Every call that touches a kernel object (a wait, a rearm, an add, a wake) is bracketed by
 * `enter` and `leave`. `close` sets CLOSED; from then on `enter` refuses, and whoever brings the
 * count of users to zero (close itself, or the last one to leave) finalizes exactly once. The
 * count is striped per Reactor instance (one per thread, usually) so the hot path is one
 * uncontended atomic add and sub; sequentially consistent Atomics make "set CLOSED, then sum"
 * against "count in, then read CLOSED" safe.
 */
export class Lifetime {
  private readonly words: Int32Array;
  private readonly stripe: number;

  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer((FIRST_STRIPE + STRIPES * STRIPE_INTS) * 4);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.stripe = FIRST_STRIPE + (Atomics.add(this.words, NEXT_STRIPE, 1) % STRIPES) * STRIPE_INTS;
  }

  get closed(): boolean {
    return Atomics.load(this.words, CLOSED) !== 0;
  }

  /** Counts the caller in; false if the reactor is closed (the caller must not touch it). */
  enter(): boolean {
    Atomics.add(this.words, this.stripe, 1);
    if (Atomics.load(this.words, CLOSED) === 0) return true;
    this.leave();
    return false;
  }

  /** Counts the caller out; true if the caller must now finalize (free the kernel objects). */
  leave(): boolean {
    Atomics.sub(this.words, this.stripe, 1);
    return Atomics.load(this.words, CLOSED) !== 0 && this.claimFinalize();
  }

  /** Marks the reactor closed. True if the caller must finalize now (nobody is inside). */
  close(): boolean {
    if (Atomics.compareExchange(this.words, CLOSED, 0, 1) !== 0) return false;
    return this.claimFinalize();
  }

  private claimFinalize(): boolean {
    const w = this.words;
    for (let s = 0; s < STRIPES; s++) {
      if (Atomics.load(w, FIRST_STRIPE + s * STRIPE_INTS) !== 0) return false;
    }
    return Atomics.compareExchange(w, FINALIZED, 0, 1) === 0;
  }
}
