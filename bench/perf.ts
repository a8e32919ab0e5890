/**
 * Counting syscalls with perf for the benchmarks: every thread of the processes followed, counted
 * by the kernel (perf stat on raw_syscalls:sys_enter), exactly over one window.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { track } from './common.js';

/** Whether perf could count syscalls here; decided by the first try. */
let perfWorks: boolean | undefined;

/** Whether perf has counted syscalls here (the table says where the figures come from). */
export function perfCounted(): boolean {
  return perfWorks === true;
}

/**
 * Counts the syscalls of some processes (every thread they have when it starts) with perf,
 * exactly over a window: perf starts with counting disabled and is switched on and off through
 * its control fifo, each switch acknowledged, so the window matches the one the benchmark's own
 * counts are read over.
 */
export class SyscallCounter {
  private stderr = '';

  /**
   * A counter following `pids`, or undefined where perf cannot count (not installed, not
   * permitted); `instead` says, once, what the benchmark shows without it. perf is killed with
   * the other children (common.ts killAll) if the benchmark ends before the count.
   */
  static start(dir: string, pids: readonly number[], instead: string): SyscallCounter | undefined {
    if (perfWorks === false) return undefined;
    const ctl = join(dir, 'perf-ctl');
    const ack = join(dir, 'perf-ack');
    for (const fifo of [ctl, ack]) {
      rmSync(fifo, { force: true });
      if (spawnSync('mkfifo', [fifo]).status !== 0) return undefined;
    }
    const args = ['stat', '-x,', '-e', 'raw_syscalls:sys_enter', '-D', '-1', '--control', `fifo:${ctl},${ack}`, '-p', pids.join(',')];
    const perf = spawn('perf', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (perf.pid === undefined) {
      perf.once('error', () => {}); // ENOENT, said here: unheard, the 'error' event would end the benchmark
      perfWorks = false;
      console.log(`perf is not installed: ${instead}`);
      return undefined;
    }
    track(perf);
    // Opening the fifos waits for perf to open its ends: it does so at once, or it has failed.
    return new SyscallCounter(perf, openSync(ctl, 'w'), openSync(ack, 'r'), instead);
  }

  private constructor(
    private readonly perf: ChildProcess,
    private readonly ctl: number,
    private readonly ack: number,
    private readonly instead: string,
  ) {
    perf.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  /**
   * Counts over `window`, which returns how many units of work (events, round trips) it saw,
   * then stops perf: syscalls per unit, or undefined if perf could not count.
   */
  async perUnit(window: () => Promise<number>): Promise<number | undefined> {
    this.command('enable');
    const units = await window();
    this.command('disable');
    const count = await this.finish();
    return count === undefined ? undefined : count / units;
  }

  /** Stops perf and returns the count, or undefined if perf could not count. */
  private async finish(): Promise<number | undefined> {
    closeSync(this.ctl);
    closeSync(this.ack);
    const closed = once(this.perf, 'close');
    this.perf.kill('SIGINT');
    await closed;
    const line = this.stderr.split('\n').find((l) => l.includes('raw_syscalls:sys_enter'));
    const count = line === undefined ? NaN : Number(line.split(',')[0]);
    const works = Number.isFinite(count);
    if (!works) console.log(`perf cannot count syscalls here (${this.stderr.trim().split('\n')[0] ?? ''}): ${this.instead}`);
    perfWorks = works;
    return works ? count : undefined;
  }

  private command(word: string): void {
    writeSync(this.ctl, `${word}\n`);
    readSync(this.ack, Buffer.alloc(5)); // "ack\n"
  }
}
