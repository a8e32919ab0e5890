/**
 * The processes of the W3 echo and HTTP benchmarks (bench/echo.ts, bench/http.ts): where they
 * run, starting them pinned with taskset, reading their lines and their CPU time from /proc,
 * and stopping every one of them, also when the benchmark fails or is interrupted (each is
 * tracked for common.ts killAll).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { track } from './common.js';

/** A child process whose stdout is read a line at a time. */
export class Child {
  readonly process: ChildProcess;
  private readonly lines: string[] = [];
  private waiting: (() => void) | undefined;
  private stderr = '';
  private exited = false;

  /**
   * Starts `command args`, pinned to `cpus` (a taskset list) unless undefined, at niceness
   * `nice` unless undefined. taskset and nice exec the command, so the pid is the command's own.
   */
  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    cpus: string | undefined,
    nice?: number,
  ) {
    let argv = [command, ...args];
    if (cpus !== undefined) argv = ['taskset', '-c', cpus, ...argv];
    if (nice !== undefined) argv = ['nice', '-n', String(nice), ...argv];
    this.process = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    track(this.process);
    this.process.once('exit', () => {
      this.exited = true;
      this.waiting?.();
    });
    this.process.stdin!.on('error', () => {}); // EPIPE once it has exited: seen through 'exit'
    this.process.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      this.lines.push(line);
      this.waiting?.();
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** The next line that matches, skipping others; fails if the child exits or time runs out. */
  async line(match: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      while (this.lines.length > 0) {
        const m = match.exec(this.lines.shift()!);
        if (m !== null) return m;
      }
      if (this.exited) throw new Error(`${this.name} exited (code ${String(this.process.exitCode)}):\n${this.stderr.trim()}`);
      const left = until - performance.now();
      if (left <= 0) throw new Error(`${this.name} printed nothing matching ${String(match)} within ${timeoutMs} ms:\n${this.stderr.trim()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = undefined;
    }
  }

  send(text: string): void {
    this.process.stdin!.write(text);
  }

  /** Sends `signal` (none: just closes stdin), waits up to `graceMs`, then kills. */
  async stop(signal: NodeJS.Signals | undefined, graceMs: number): Promise<void> {
    if (this.exited) return;
    const exit = once(this.process, 'exit');
    this.process.stdin!.end();
    if (signal !== undefined) this.process.kill(signal);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await exit;
    clearTimeout(timer);
  }
}

/** CPU time of a set of processes, every thread. */
export interface Cpu {
  /** On-CPU time, ns: the sum of each thread's /proc schedstat (exact), or else utime + stime. */
  readonly totalNs: number;
  /** User time, ns, from /proc/<pid>/stat (clock ticks). */
  readonly userNs: number;
}

const TICK_NS = 1e9 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || '100');

/** /proc/<pid>/<file> of a server process; its absence means the process has exited. */
function serverProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    throw new Error(`process ${pid} of the server under test has exited during the run`);
  }
}

export function cpuOf(pids: readonly number[]): Cpu {
  let totalNs = 0;
  let userNs = 0;
  for (const pid of pids) {
    // Fields after the command (which may hold spaces) : state is field 3, utime 14, stime 15.
    const stat = serverProc(pid, 'stat');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]) * TICK_NS;
    const stime = Number(fields[12]) * TICK_NS;
    userNs += utime;
    let sched = 0;
    let exact = true;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        sched += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        exact = false; // no schedstat here, or the thread just exited
      }
    }
    totalNs += exact ? sched : utime + stime;
  }
  return { totalNs, userNs };
}

/**
 * Resident memory of a set of processes, bytes: the sum of VmRSS in /proc/<pid>/status. Memory
 * the kernel holds for their sockets (buffers, socket structures) is not in it.
 */
export function rssOf(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    kib += Number(/^VmRSS:\s+(\d+) kB$/m.exec(serverProc(pid, 'status'))?.[1] ?? 0);
  }
  return kib * 1024;
}

/** CPU time the whole machine spent busy (not idle, not waiting for I/O), ns, from /proc/stat. */
export function machineBusyNs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is in user already)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) * TICK_NS;
}

/** The command line of a live process, or undefined. */
export function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

/** Whether taskset can pin here (installed, and CPU 0 allowed). */
export function canPin(): boolean {
  return spawnSync('taskset', ['-c', '0', 'true']).status === 0;
}

/** Whether this user may raise a process's priority to niceness `nice` (root may). */
export function canRenice(nice: number): boolean {
  const r = spawnSync('nice', ['-n', String(nice), 'nice'], { encoding: 'utf8' });
  return r.status === 0 && r.stderr.trim() === ''; // nice warns, and runs it anyway, when it may not
}

/** Where each kind of process runs: taskset CPU lists, or undefined for anywhere. */
export interface Placement {
  readonly generator: string | undefined;
  /** The generator's niceness, when it may be raised. */
  readonly generatorNice: number | undefined;
  readonly oneThread: string | undefined;
  readonly twoThreads: string | undefined;
  /** How the processes share the CPUs, in words, for the table. */
  readonly note: string;
}

/** The generator's niceness: ahead of a server thread that shares its CPU. */
const GENERATOR_NICE = -10;

/**
 * The load generator on CPU 0, one-thread servers on CPU 1, two-thread servers on CPUs 1-2
 * (0-1 on a 2-CPU machine, sharing with the generator), where taskset can pin.
 */
export function placement(): Placement {
  const cpus = availableParallelism();
  const nice = canRenice(GENERATOR_NICE) ? GENERATOR_NICE : undefined;
  const priority =
    nice === undefined
      ? 'the generator runs at normal priority (raising it needs root), so a server thread on its CPU competes with it as an equal'
      : `the generator runs at nice ${nice}, so that a server thread on its CPU takes only the time the generator leaves`;
  if (cpus < 2 || !canPin()) {
    return { generator: undefined, generatorNice: nice, oneThread: undefined, twoThreads: undefined, note: `not pinned (${cpus} CPU(s), or no taskset): everything shares; ${priority}` };
  }
  if (cpus === 2) {
    return {
      generator: '0',
      generatorNice: nice,
      oneThread: '1',
      twoThreads: '0,1',
      note: `generator on CPU 0; one-thread servers on CPU 1; two-thread servers on CPUs 0-1, sharing CPU 0 with the generator (2 CPUs); ${priority}`,
    };
  }
  return {
    generator: '0',
    generatorNice: nice,
    oneThread: '1',
    twoThreads: '1,2',
    note: `generator on CPU 0; one-thread servers on CPU 1; two-thread servers on CPUs 1-2; ${priority}`,
  };
}

/** Bounds on waiting for a child to be ready, and to stop, so that a stuck one ends the run. */
export const START_MS = 15_000;
export const STOP_MS = 5_000;

/** A server process (or a cluster) ready for connections. */
export interface Server {
  readonly port: number;
  /** Every process whose CPU counts: the server, or a cluster's primary and workers. */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/** The programs started, found from build/bench/, where tsc emits this file. */
const NODE_SERVER = fileURLToPath(new URL('./echo-node-server.js', import.meta.url));
const WATCHDOG = new URL('./echo-watchdog.js', import.meta.url).href;
const DEMO = fileURLToPath(new URL('../examples/echo-server/main.js', import.meta.url));

/** bench/echo-node-server.ts with `args` (--workers, --http), `label` naming it in errors. */
export async function startNodeServer(label: string, args: readonly string[], cpus: string | undefined): Promise<Server> {
  const child = new Child(label, process.execPath, [NODE_SERVER, ...args], cpus);
  const [, port, pids] = await child.line(/^port (\d+) pids ([\d,]+)$/, START_MS);
  const all = pids!.split(',').map(Number);
  return {
    port: Number(port),
    pids: all,
    stop: async () => {
      await child.stop('SIGTERM', STOP_MS);
      // The primary kills its workers as it stops; any it could not are killed here.
      for (const pid of all.slice(1)) if (commandOf(pid)?.includes('echo-node-server') === true) process.kill(pid, 'SIGKILL');
    },
  };
}

/**
 * The demo (examples/echo-server) with `threads` threads, on free ports; its echo or HTTP port.
 * Its idle timeout is `idleMs` (by default 10 minutes, beyond any run).
 */
export async function startDemo(threads: number, serving: 'echo' | 'HTTP', cpus: string | undefined, idleMs = 600_000): Promise<Server> {
  const args = ['--import', WATCHDOG, DEMO, '--threads', String(threads), '--port', '0', '--http-port', '0', '--idle-ms', String(idleMs)];
  const child = new Child(`evdispatch's demo server (${threads} threads)`, process.execPath, args, cpus);
  // "echo on HOST:PORT, HTTP on HOST:PORT, ..."
  const [, echo, http] = await child.line(/^echo on [^ ]*:(\d+), HTTP on [^ ]*:(\d+),/, START_MS);
  // SIGTERM: its graceful stop, quick once the load's connections are gone.
  return { port: Number(serving === 'echo' ? echo : http), pids: [child.pid], stop: () => child.stop('SIGTERM', STOP_MS) };
}
