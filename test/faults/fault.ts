/** What the fault suite's groups share: how a fault reports, and the measures they all take. */
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** What one fault cost: every loss it found (none, to pass), and the figures that show it. */
export interface Outcome {
  readonly lost: readonly string[];
  readonly figures: string;
}

/** Prints one fault's line. */
export type Report = (name: string, outcome: Outcome) => void;

/** Faults that run together (on one server, say): each reports its own line. */
export interface FaultGroup {
  readonly name: string;
  /** The whole group is abandoned, as a loss, past this. */
  readonly limitMs: number;
  run(report: Report): Promise<void>;
}

/** Collects a fault's losses: each check that fails names what was lost. */
export class Losses {
  readonly lost: string[] = [];

  check(held: boolean, lost: string): void {
    if (!held) this.lost.push(lost);
  }

  outcome(figures: string): Outcome {
    return { lost: this.lost, figures };
  }
}

/** Open descriptors of a process, from /proc. */
export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** `promise`, or a rejection naming `what` once `ms` have passed. */
export async function within<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 5 ms; false if it still does not hold after `ms`. */
export async function eventually(condition: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/** The value below which `p` (0 to 1) of `values` lie. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

export const count = (n: number): string => n.toLocaleString('en-US');
export const ms = (n: number): string => `${Math.round(n)} ms`;
