/**
 * W1 "dispatch churn": how fast evdispatch delivers and re-arms, against the same epoll loop
 * written in C (bench/c/dispatch.c), in one run.
 *
 * PAIRS AF_UNIX socketpairs each get one byte, so the registered end (one per pair) stays
 * readable for ever; it is added READABLE in DISPATCH mode. T worker threads wait with a batch
 * of 64 and re-arm every delivered event at once, without reading: each event costs one
 * delivery and one re-arm, with no I/O. The C program does the same with epoll_wait and
 * EPOLL_CTL_MOD. Runs alternate (C T=1, evdispatch T=1, C T=2, ...) for several rounds, so a
 * noisy neighbour hurts both sides alike, and the table shows medians.
 *
 * evdispatch runs in three ways: re-arming at once (batchRearms: false), with batched re-arms
 * (applied with the thread's next poll) in TypeScript (native: false), and batched through the
 * native helper (one FFI call for a batch's re-arms and its poll): the default.
 *
 * CPU is the whole process's user + system time (getrusage RUSAGE_SELF in C, process.cpuUsage()
 * here): a Node process's cost includes its GC and JIT threads, which a per-thread figure hides.
 * Syscalls are counted by the kernel (perf stat on raw_syscalls:sys_enter, every thread of the
 * process) where perf can, over a short window after the timed one (tracing slows syscalls);
 * otherwise the loop's own count is shown.
 *
 * Run: npm run bench -- --rounds 5 --seconds 2 --threads 1,2 --pairs 1000
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Interest, Mode, Reactor } from '../src/index.js';
import { errno, errnoName, files, libc } from '../src/sys/posix.js';
import { nativeHelper } from '../src/sys/native.js';
import { commandLine, compileC, grid, integer, median, seconds, UsageError } from './common.js';
import { perfCounted, SyscallCounter } from './perf.js';

const USAGE = 'usage: node build/bench/dispatch.js [--rounds N] [--seconds S] [--warmup S] [--threads 1,2] [--pairs 1000] [--backend epoll|kqueue]';

const HELP = `${USAGE}

W1 dispatch churn: evdispatch against the same epoll loop in C, interleaved, medians.
  --rounds N     rounds of runs, each round one run per implementation and thread count (default 3)
  --seconds S    measured seconds per run (default 2)
  --warmup S     seconds each run runs before measuring, for the JIT and the caches (default 0.5)
  --threads LIST comma-separated counts of waiting threads (default 1,2)
  --pairs N      socketpairs, one registration each (default 1000)
  --backend B    evdispatch's backend: epoll (default) or kqueue (on Linux: EVDISPATCH_KQUEUE_LIB=libkqueue.so)
The C program is compiled with the machine's cc (-O2 -pthread); without cc its column is skipped.
To check the syscall counts from outside: strace -c -f node build/bench/dispatch.js --rounds 1`;

const LINUX_ONLY = 'W1 compares evdispatch with an epoll program in C: it runs on Linux only';

/** How long syscalls are counted, after each timed window. */
const SYSCALL_WINDOW_MS = 300;
/** What the table shows where perf cannot count. */
const WITHOUT_PERF = "syscalls/ev below are the loop's own count";
const NO_CC = 'no C compiler: `cc` is not on PATH, so the C column is skipped (apt-get install gcc)';

/** Events per wait, the same on both sides. */
const BATCH = 64;

// <sys/socket.h>, <bits/socket_type.h> (Linux)
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

const socketpair = libc().func('int socketpair(int, int, int, _Out_ int *sv)') as (
  domain: number,
  type: number,
  protocol: number,
  sv: Int32Array,
) => number;

const WORKER = new URL('./dispatch-worker.js', import.meta.url);

/** Control words: STOP, then each worker's (events, waits) on its own 64-byte line. */
const STOP = 0;
const LINE_INTS = 16;

interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly threads: readonly number[];
  readonly pairs: number;
  readonly backend: 'epoll' | 'kqueue';
}

/** One measured run: counts and times over the measured window only. */
interface Sample {
  readonly events: number;
  /** Syscalls per event: counted by the kernel, or else the loop's waits and re-arms. */
  readonly syscallsPerEvent: number;
  readonly wallNs: number;
  readonly userNs: number;
  readonly sysNs: number;
}

/** C, and evdispatch re-arming at once, batched, and batched through the native helper. */
type Impl = 'C' | 'evd at once' | 'evd batched' | 'evd native';
const EVD_MODES: readonly Impl[] = ['evd at once', 'evd batched', 'evd native'];

/** The flags and their defaults. */
const FLAGS = { rounds: '3', seconds: '2', warmup: '0.5', threads: '1,2', pairs: '1000', backend: 'epoll' };

function readOptions(values: Record<keyof typeof FLAGS, string>): Options {
  const threads = values.threads.split(',').map((t) => integer('threads', t, 1, 64));
  return {
    rounds: integer('rounds', values.rounds, 1, 1000),
    seconds: seconds('seconds', values.seconds, 0.1),
    warmup: seconds('warmup', values.warmup, 0),
    threads,
    pairs: integer('pairs', values.pairs, 1, 100000),
    backend: backendFlag(values.backend),
  };
}

function backendFlag(text: string): 'epoll' | 'kqueue' {
  if (text === 'epoll' || text === 'kqueue') return text;
  throw new UsageError(`--backend must be epoll or kqueue, got '${text}'`);
}

function runC(exe: string, threads: number, o: Options): Sample {
  const run = spawnSync(exe, [String(o.pairs), String(threads), String(o.warmup), String(o.seconds)], { encoding: 'utf8' });
  if (run.error !== undefined) throw run.error;
  if (run.status !== 0) throw new Error(`the C program failed (status ${String(run.status)}):\n${run.stderr}`);
  const r = JSON.parse(run.stdout) as { events: number; waits: number; ctls: number; wallNs: number; userNs: number; sysNs: number };
  return { events: r.events, syscallsPerEvent: (r.waits + r.ctls) / r.events, wallNs: r.wallNs, userNs: r.userNs, sysNs: r.sysNs };
}

/** Counts of every worker, and the clocks, at one instant. */
interface Snapshot {
  readonly counts: number[];
  readonly wallNs: number;
  readonly cpu: NodeJS.CpuUsage;
}

function snapshot(control: Int32Array, threads: number): Snapshot {
  const counts: number[] = [];
  for (let i = 1; i <= threads; i++) counts.push(Atomics.load(control, i * LINE_INTS), Atomics.load(control, i * LINE_INTS + 1));
  return { counts, wallNs: performance.now() * 1e6, cpu: process.cpuUsage() };
}

/** The sample between two snapshots; `syscallsPerEvent` as counted by perf, if it could. */
function between(a: Snapshot, b: Snapshot, syscallsPerEvent: number | undefined): Sample {
  let events = 0;
  let waits = 0;
  for (let i = 0; i < a.counts.length; i += 2) {
    // The workers' counters are Int32 and wrap: the difference modulo 2^32 is the count.
    events += (b.counts[i]! - a.counts[i]!) >>> 0;
    waits += (b.counts[i + 1]! - a.counts[i + 1]!) >>> 0;
  }
  return {
    events,
    // Without perf: one epoll_wait per wait and one epoll_ctl per rearm, as in the C loop.
    syscallsPerEvent: syscallsPerEvent ?? (waits + events) / events,
    wallNs: b.wallNs - a.wallNs,
    userNs: (b.cpu.user - a.cpu.user) * 1e3,
    sysNs: (b.cpu.system - a.cpu.system) * 1e3,
  };
}

/** One run of evdispatch in `mode`; `dir` holds perf's control fifos. */
async function runEvdispatch(mode: Impl, threads: number, o: Options, dir: string): Promise<Sample> {
  const reactor = Reactor.open({ backend: o.backend, capacity: o.pairs, native: mode === 'evd native' });
  const fds: number[] = [];
  const control = new Int32Array(new SharedArrayBuffer((threads + 1) * LINE_INTS * 4));
  try {
    const sv = new Int32Array(2);
    const byte = new Uint8Array([1]);
    for (let i = 0; i < o.pairs; i++) {
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) !== 0) {
        throw new Error(`socketpair failed with ${errnoName(errno())} after ${i} pairs: raise the fd limit (ulimit -n) or lower --pairs`);
      }
      fds.push(sv[0]!, sv[1]!);
      if (files().write(sv[1]!, byte, 1) !== 1) throw new Error(`write to a socketpair failed with ${errnoName(errno())}`);
      reactor.add(sv[0]!, Interest.READABLE, { mode: Mode.DISPATCH });
    }
    const workers: Worker[] = [];
    for (let i = 1; i <= threads; i++) {
      const batchRearms = mode !== 'evd at once';
      const workerData = { reactor: reactor.share(), control: control.buffer, counter: i * LINE_INTS, batch: BATCH, batchRearms };
      workers.push(new Worker(WORKER, { workerData }));
    }
    const exits = workers.map((w) => once(w, 'exit'));
    await Promise.all(workers.map((w) => once(w, 'message')));
    // perf -p follows the threads there are when it attaches: start it once the workers run.
    const counter = SyscallCounter.start(dir, [process.pid], WITHOUT_PERF);
    await sleep(o.warmup * 1e3);
    const start = snapshot(control, threads);
    await sleep(o.seconds * 1e3);
    const end = snapshot(control, threads);
    // Syscalls are counted after the timed window, over a short one of their own: tracing them
    // slows every syscall.
    const syscalls = await counter?.perUnit(async () => {
      const a = snapshot(control, threads);
      await sleep(SYSCALL_WINDOW_MS);
      return between(a, snapshot(control, threads), undefined).events;
    });
    Atomics.store(control, STOP, 1);
    for (const [code] of await Promise.all(exits)) {
      if (code !== 0) throw new Error(`a worker exited with code ${String(code)}`);
    }
    return between(start, end, syscalls);
  } finally {
    Atomics.store(control, STOP, 1);
    reactor.close();
    for (const fd of fds) files().close(fd);
  }
}

/** The medians of one implementation at one thread count, per metric. */
interface Summary {
  readonly eventsPerSec: number;
  readonly cpuNs: number;
  readonly userNs: number;
  readonly syscalls: number;
}

function summarize(samples: Sample[]): Summary {
  return {
    eventsPerSec: median(samples.map((s) => (s.events / s.wallNs) * 1e9)),
    cpuNs: median(samples.map((s) => (s.userNs + s.sysNs) / s.events)),
    userNs: median(samples.map((s) => s.userNs / s.events)),
    syscalls: median(samples.map((s) => s.syscallsPerEvent)),
  };
}

/** One run's line. "cores busy" (CPU time / wall time) well under T means neighbours took the CPU. */
function describe(impl: Impl, threads: number, round: number, s: Sample): string {
  const rate = (s.events / s.wallNs) * 1e9;
  const cpu = (s.userNs + s.sysNs) / s.events;
  const busy = (s.userNs + s.sysNs) / s.wallNs;
  return `round ${round} ${impl.padEnd(11)} T=${threads}: ${millions(rate)} events/s, ${cpu.toFixed(0)} CPU ns/event (${(s.userNs / s.events).toFixed(0)} user), ${busy.toFixed(2)} cores busy`;
}

function millions(rate: number): string {
  return `${(rate / 1e6).toFixed(3)}M`;
}

/** Medians per implementation and thread count, keyed `${impl} ${threads}`. */
type Summaries = ReadonlyMap<string, Summary>;

function table(o: Options, sums: Summaries, missingC: string | undefined): string {
  const head = ['T', 'implementation', 'events/s', 'CPU ns/ev (user)', 'syscalls/ev', 'events/s ×C', 'CPU/ev ×C'];
  const rows: string[][] = [];
  for (const t of o.threads) {
    const c = sums.get(`C ${t}`);
    for (const impl of ['C', ...EVD_MODES] as Impl[]) {
      const s = sums.get(`${impl} ${t}`);
      if (s === undefined) continue;
      const vsC = (f: (x: Summary) => number): string => (c === undefined ? '-' : (f(s) / f(c)).toFixed(2));
      rows.push([
        String(t),
        impl,
        millions(s.eventsPerSec),
        `${s.cpuNs.toFixed(0)} (${s.userNs.toFixed(0)})`,
        s.syscalls.toFixed(3),
        vsC((x) => x.eventsPerSec),
        vsC((x) => x.cpuNs),
      ]);
    }
  }
  return [
    `W1 dispatch churn on ${o.backend}${o.backend === 'kqueue' && process.platform === 'linux' ? ' (libkqueue)' : ''}: ${o.pairs} socketpairs, ${BATCH} events per wait, ${o.warmup} s warm-up + ${o.seconds} s measured per run, medians of ${o.rounds} rounds`,
    `machine: ${availableParallelism()} CPUs, load average ${loadavg()[0]!.toFixed(2)} at the end (events/s suffers from neighbours; CPU per event much less)`,
    'evd at once: batchRearms false; evd batched: batched re-arms in TypeScript (native false); evd native: the default, batched through the native helper',
    `CPU: whole process, user + system (user in brackets); syscalls/ev: ${perfCounted() ? 'counted by the kernel (perf), all threads' : "the loop's waits and re-arms"} (C: its own count)`,
    '×C: against the C loop at the same T (target: events/s ×C ≥ 0.75; CPU/ev ×C above 1 means more CPU per event than C)',
    ...(missingC === undefined ? [] : [missingC]),
    '',
    ...grid(head, rows, 1), // T right-aligned, the implementation's name left
  ].join('\n');
}

async function main(): Promise<number> {
  const o = commandLine(FLAGS, readOptions, { usage: USAGE, help: HELP, linuxOnly: LINUX_ONLY });
  if (typeof o === 'number') return o;
  const dir = mkdtempSync(join(tmpdir(), 'evdispatch-bench-'));
  try {
    const cExe = compileC('dispatch', dir, ['-pthread']);
    const missingC = cExe === undefined ? NO_CC : undefined;
    if (missingC !== undefined) console.log(missingC);
    const samples = new Map<string, Sample[]>();
    const record = (impl: Impl, t: number, round: number, s: Sample): void => {
      console.log(describe(impl, t, round, s));
      const key = `${impl} ${t}`;
      samples.set(key, [...(samples.get(key) ?? []), s]);
    };
    for (let round = 1; round <= o.rounds; round++) {
      for (const t of o.threads) {
        if (cExe !== undefined) record('C', t, round, runC(cExe, t, o));
        for (const mode of EVD_MODES) {
          // The native helper batches epoll's re-arms; kqueue batches in its own kevent call.
          if (mode === 'evd native' && (nativeHelper() === undefined || o.backend !== 'epoll')) continue;
          record(mode, t, round, await runEvdispatch(mode, t, o, dir));
        }
      }
    }
    if (nativeHelper() === undefined) console.log('no native helper prebuild for this platform: the evd native rows are skipped');
    const sums = new Map([...samples].map(([key, runs]) => [key, summarize(runs)]));
    console.log(`\n${table(o, sums, missingC)}`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
