/**
 * A log-linear latency histogram, as in bench/c/echo-load.c: values below 128 ns exact, then
 * 128 buckets per power of two (under 0.8 % error); a percentile is its bucket's middle.
 */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const BUCKETS = SUB + (53 - SUB_BITS) * SUB;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  max = 0;

  /** Records one value in nanoseconds (a non-negative integer below 2^53). */
  record(ns: number): void {
    this.counts[bucketOf(ns)]! += 1;
    this.total++;
    if (ns > this.max) this.max = ns;
  }

  /** The value at fraction p (0.5: the median) of what was recorded; 0 if nothing was. */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.min(Math.floor(p * this.total), this.total - 1);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen > rank) return valueOf(b);
    }
    return this.max;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.max = 0;
  }
}

function bucketOf(v: number): number {
  if (v < SUB) return Math.max(0, Math.floor(v));
  let e = Math.floor(Math.log2(v));
  if (Math.floor(v / 2 ** (e - SUB_BITS)) < SUB) e--; // log2 rounded up, just below a power of two
  return SUB + (e - SUB_BITS) * SUB + (Math.floor(v / 2 ** (e - SUB_BITS)) - SUB);
}

function valueOf(b: number): number {
  if (b < SUB) return b;
  const e = Math.floor((b - SUB) / SUB) + SUB_BITS;
  const width = 2 ** (e - SUB_BITS);
  return (SUB + ((b - SUB) % SUB)) * width + width / 2;
}
