/** Events: a reusable batch of delivered events, typed arrays with no object per event. */
import { ReactorError } from './errors.js';

/**
 * A batch that `wait` fills: `tokens[i]` and `flags[i]` (Ready bits) for i below the count
 * `wait` returned. Make one per waiting thread and reuse it for every wait.
 *
 * @example
 * const ev = new Events(256);
 * const n = reactor.wait(ev, 1000);
 * for (let i = 0; i < n; i++) handle(ev.token(i), ev.flag(i));
 */
export class Events {
  /** The token of each delivered event. */
  readonly tokens: Float64Array;
  /** The Ready bits of each delivered event. */
  readonly flags: Int32Array;
  /** How many events the last `wait` delivered. */
  length = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) {
      throw new ReactorError('EINVAL', `Events capacity must be an integer from 1 to 65536, got ${String(capacity)}`);
    }
    this.tokens = new Float64Array(capacity);
    this.flags = new Int32Array(capacity);
  }

  /** The token of event i. */
  token(i: number): number {
    return this.tokens[i]!;
  }

  /** The Ready bits of event i. */
  flag(i: number): number {
    return this.flags[i]!;
  }
}
