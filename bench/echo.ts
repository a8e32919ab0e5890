/**
 * W3 echo: evdispatch's echo server (examples/echo-server) against a `node:net` echo server,
 * `node:cluster` with 2 workers, and a plain C epoll echo server (bench/c/echo-server.c), all
 * driven by one load generator (bench/c/echo-load.c) in the same run. The C server runs twice:
 * level-triggered with one thread (C, the cheapest correct epoll server), and dispatch-once
 * with two threads (C oneshot×2: EPOLLONESHOT, re-armed with EPOLL_CTL_MOD after each message),
 * which shows what dispatch-once itself costs in C.
 *
 * CONNECTIONS connections (64) in a closed loop: each sends SIZE bytes (64), waits for the whole
 * echo, and sends again at once. Each server runs in its own process, so its CPU time is its
 * own: read from /proc (every thread; for the cluster, primary and workers) over the measured
 * window. The generator records each round trip's latency in a histogram. Runs alternate
 * (C, node:net, evd T=1, cluster, evd T=2, C oneshot×2, the order rotated every round) for several rounds,
 * so a noisy neighbour hurts all alike, and the table shows medians.
 *
 * CPUs: the generator is pinned to CPU 0; a one-thread server to CPU 1, so they never share.
 * A two-thread server (evd T=2, the 2-worker cluster) is allowed CPUs 1 and 2 if the machine
 * has them; on a 2-CPU machine it gets CPUs 0 and 1 and so shares CPU 0 with the generator:
 * unavoidable, and the table says so ("gen cores" shows what the generator took). The
 * generator runs at nice -10 (where the user may raise priority): at equal priority a server
 * thread on CPU 0 preempts it, every connection waits for it, and the two CPUs sit idle a fifth
 * of the time (1.56 of 2 cores busy, measured); with it ahead, a two-thread server gets CPU 1
 * and whatever CPU 0 has left.
 *
 * Ratios (×net, ×C) are medians of each round's ratio, so the machine's drift between rounds
 * (large on a shared VM) cancels out. A row whose generator was saturated is marked: its rt/s
 * is then the generator's limit, a lower bound of the server's.
 *
 * Syscalls are counted by the kernel (perf stat on raw_syscalls:sys_enter, every thread of the
 * server's processes) over a short window after the timed one (tracing slows syscalls).
 *
 * Run: npm run bench:echo -- --rounds 5 --seconds 3
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { commandLine, compileC, grid, integer, killAll, median, ratio, seconds, UsageError } from './common.js';
import { Child, cpuOf, machineBusyNs, placement, startDemo, startNodeServer, START_MS, STOP_MS, type Cpu, type Placement, type Server } from './echo-processes.js';
import { perfCounted, SyscallCounter } from './perf.js';

const USAGE =
  'usage: node build/bench/echo.js [--rounds N] [--seconds S] [--warmup S] [--connections N] [--size BYTES] [--servers LIST] [--help]';

/** The servers, in the order each round starts from. */
const SERVERS = ['C', 'node:net', 'evd T=1', 'cluster×2', 'evd T=2', 'C oneshot×2'] as const;
type ServerName = (typeof SERVERS)[number];
const SERVER_KEYS: Record<string, ServerName> = { c: 'C', net: 'node:net', evd1: 'evd T=1', cluster2: 'cluster×2', evd2: 'evd T=2', coneshot2: 'C oneshot×2' };

const HELP = `${USAGE}

W3 echo: closed-loop round trips against evdispatch's echo server (1 and 2 threads), node:net,
node:cluster with 2 workers and a C epoll server (level-triggered with 1 thread, and
dispatch-once: EPOLLONESHOT with 2 threads), one load generator, interleaved, medians.
  --rounds N       rounds, each one run per server (default 3)
  --seconds S      measured seconds per run (default 2)
  --warmup S       seconds each run runs before measuring, for the JIT and the caches (default 1)
  --connections N  connections, each in a closed loop (default 64)
  --size BYTES     bytes per message (default 64)
  --servers LIST   comma-separated subset of c,net,evd1,cluster2,evd2,coneshot2 (default all)
The C programs are compiled with the machine's cc (-O2); without cc the C servers are skipped and
a Node load generator (bench/echo-load.ts) stands in for the C one. Linux only (/proc, epoll).`;

const LINUX_ONLY = 'W3 reads server CPU from /proc and compares with an epoll server in C: it runs on Linux only';

/** How long syscalls are counted, after each timed window. */
const SYSCALL_WINDOW_MS = 400;
/** What the table shows where perf cannot count. */
const WITHOUT_PERF = 'syscalls per round trip are not shown';
/** Bound on waiting for a mark of the generator, so that a stuck one ends the run instead of hanging it. */
const MARK_MS = 10_000;

const HOST = '127.0.0.1';
/** The Node programs it starts, found from build/bench/, where tsc emits this file. */
const NODE_LOAD = fileURLToPath(new URL('./echo-load.js', import.meta.url));

interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly connections: number;
  readonly size: number;
  readonly servers: readonly ServerName[];
}

/** The flags and their defaults. */
const FLAGS = { rounds: '3', seconds: '2', warmup: '1', connections: '64', size: '64', servers: Object.keys(SERVER_KEYS).join(',') };

function readOptions(values: Record<keyof typeof FLAGS, string>): Options {
  const servers = values.servers.split(',').map((key) => {
    const name = SERVER_KEYS[key.trim().toLowerCase()];
    if (name === undefined) throw new UsageError(`--servers takes names from ${Object.keys(SERVER_KEYS).join(', ')}; got '${key}'`);
    return name;
  });
  return {
    rounds: integer('rounds', values.rounds, 1, 1000),
    seconds: seconds('seconds', values.seconds, 0.1, 3600),
    warmup: seconds('warmup', values.warmup, 0, 3600),
    connections: integer('connections', values.connections, 1, 10000),
    size: integer('size', values.size, 1, 1 << 20),
    servers: SERVERS.filter((s) => servers.includes(s)),
  };
}

function serverThreads(name: ServerName): number {
  return name === 'evd T=2' || name === 'cluster×2' || name === 'C oneshot×2' ? 2 : 1;
}

async function startServer(name: ServerName, cServer: string | undefined, cpus: string | undefined): Promise<Server> {
  if (name === 'C' || name === 'C oneshot×2') {
    const args = name === 'C' ? ['0'] : ['0', '--oneshot', '--threads', '2'];
    const child = new Child(`the ${name} echo server`, cServer!, args, cpus);
    const [, port] = await child.line(/^port (\d+)$/, START_MS);
    return { port: Number(port), pids: [child.pid], stop: () => child.stop('SIGTERM', STOP_MS) };
  }
  if (name === 'node:net' || name === 'cluster×2') {
    return startNodeServer(`the ${name} echo server`, ['--workers', name === 'node:net' ? '0' : '2'], cpus);
  }
  return startDemo(serverThreads(name), 'echo', cpus);
}

/** What the generator reports for one interval (see bench/c/echo-load.c). */
interface Mark {
  readonly roundTrips: number;
  readonly wallNs: number;
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly maxNs: number;
  readonly userNs: number;
  readonly sysNs: number;
}

class Generator {
  private constructor(private readonly child: Child) {}

  static async start(load: string[], port: number, o: Options, place: Placement): Promise<Generator> {
    const [command, ...rest] = load;
    const args = [...rest, HOST, String(port), String(o.connections), String(o.size)];
    const child = new Child('the load generator', command!, args, place.generator, place.generatorNice);
    await child.line(/^ready$/, START_MS);
    return new Generator(child);
  }

  /** Ends the current interval and returns it. */
  async mark(): Promise<Mark> {
    this.child.send('mark\n');
    const [, json] = await this.child.line(/^mark (\{.*\})$/, MARK_MS);
    return JSON.parse(json!) as Mark;
  }

  stop(): Promise<void> {
    this.child.send('quit\n');
    return this.child.stop(undefined, STOP_MS);
  }
}

/** One measured run. */
interface Sample {
  readonly roundTrips: number;
  readonly wallNs: number;
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly serverCpuNs: number;
  readonly serverUserNs: number;
  readonly generatorCpuNs: number;
  /** CPU the rest of the machine used meanwhile: other processes, interrupts, softirq threads. */
  readonly otherCpuNs: number;
  readonly syscallsPerRoundTrip: number | undefined;
}

interface Setup {
  readonly o: Options;
  readonly dir: string;
  readonly cServer: string | undefined;
  readonly load: string[];
  readonly place: Placement;
}

async function run(name: ServerName, s: Setup): Promise<Sample> {
  const cpus = serverThreads(name) === 1 ? s.place.oneThread : s.place.twoThreads;
  const server = await startServer(name, s.cServer, cpus);
  let generator: Generator | undefined;
  try {
    generator = await Generator.start(s.load, server.port, s.o, s.place);
    // perf -p follows the threads there are when it attaches: start it once the server runs.
    const counter = SyscallCounter.start(s.dir, server.pids, WITHOUT_PERF);
    await sleep(s.o.warmup * 1e3);
    await generator.mark();
    const cpuA: Cpu = cpuOf(server.pids);
    const busyA = machineBusyNs();
    await sleep(s.o.seconds * 1e3);
    const busyB = machineBusyNs();
    const cpuB: Cpu = cpuOf(server.pids);
    const m = await generator.mark();
    const g = generator; // a const the closure can hold (generator is reassigned, for the finally)
    const syscalls = await counter?.perUnit(async () => {
      await g.mark();
      await sleep(SYSCALL_WINDOW_MS);
      return (await g.mark()).roundTrips;
    });
    return {
      roundTrips: m.roundTrips,
      wallNs: m.wallNs,
      p50Ns: m.p50Ns,
      p99Ns: m.p99Ns,
      serverCpuNs: cpuB.totalNs - cpuA.totalNs,
      serverUserNs: cpuB.userNs - cpuA.userNs,
      generatorCpuNs: m.userNs + m.sysNs,
      otherCpuNs: busyB - busyA - (cpuB.totalNs - cpuA.totalNs) - (m.userNs + m.sysNs),
      syscallsPerRoundTrip: syscalls,
    };
  } finally {
    await generator?.stop();
    await server.stop();
  }
}

/** Medians of one server's runs, per figure. */
interface Summary {
  readonly rate: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly cpuUs: number;
  readonly userUs: number;
  readonly syscalls: number | undefined;
  readonly serverCores: number;
  readonly generatorCores: number;
  readonly otherCores: number;
}

function summarize(samples: Sample[]): Summary {
  const syscalls = samples.map((s) => s.syscallsPerRoundTrip).filter((x): x is number => x !== undefined);
  return {
    rate: median(samples.map(rate)),
    p50Us: median(samples.map(p50)) / 1e3,
    p99Us: median(samples.map(p99)) / 1e3,
    cpuUs: median(samples.map(cpuPerRoundTrip)) / 1e3,
    userUs: median(samples.map((s) => s.serverUserNs / s.roundTrips / 1e3)),
    syscalls: syscalls.length === 0 ? undefined : median(syscalls),
    serverCores: median(samples.map((s) => s.serverCpuNs / s.wallNs)),
    generatorCores: median(samples.map((s) => s.generatorCpuNs / s.wallNs)),
    otherCores: median(samples.map((s) => Math.max(0, s.otherCpuNs / s.wallNs))),
  };
}

function describe(name: ServerName, round: number, s: Sample): string {
  const rate = (s.roundTrips / s.wallNs) * 1e9;
  return (
    `round ${round} ${name.padEnd(11)}: ${thousands(rate)} round trips/s, p50 ${(s.p50Ns / 1e3).toFixed(0)} µs, ` +
    `p99 ${(s.p99Ns / 1e3).toFixed(0)} µs, server ${(s.serverCpuNs / s.roundTrips / 1e3).toFixed(2)} CPU µs/rt ` +
    `(${(s.serverCpuNs / s.wallNs).toFixed(2)} cores), generator ${(s.generatorCpuNs / s.wallNs).toFixed(2)} cores, ` +
    `others ${Math.max(0, s.otherCpuNs / s.wallNs).toFixed(2)} cores` +
    (s.syscallsPerRoundTrip === undefined ? '' : `, ${s.syscallsPerRoundTrip.toFixed(2)} syscalls/rt`)
  );
}

function thousands(rate: number): string {
  return `${(rate / 1e3).toFixed(1)}k`;
}

/** A figure of one run, for the medians and the ratios. */
type Figure = (s: Sample) => number;
const rate: Figure = (s) => (s.roundTrips / s.wallNs) * 1e9;
const p50: Figure = (s) => s.p50Ns;
const p99: Figure = (s) => s.p99Ns;
const cpuPerRoundTrip: Figure = (s) => s.serverCpuNs / s.roundTrips;

/** Generator cores at or above this: the generator, not the server, set the pace. */
const SATURATED = 0.97;

function table(o: Options, samples: ReadonlyMap<ServerName, Sample[]>, s: Setup, notes: string[]): string {
  const net = samples.get('node:net');
  const c = samples.get('C');
  const fixed = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2));
  const rows: string[][] = [];
  let saturated = false;
  for (const [name, runs] of samples) {
    const x = summarize(runs);
    const cpus = serverThreads(name) === 1 ? s.place.oneThread : s.place.twoThreads;
    const genBound = x.generatorCores >= SATURATED;
    saturated ||= genBound;
    rows.push([
      name,
      cpus ?? 'any',
      `${thousands(x.rate)}${genBound ? '*' : ''}`,
      fixed(ratio(runs, net, rate)),
      fixed(ratio(runs, c, rate)),
      x.p50Us.toFixed(0),
      fixed(ratio(runs, net, p50)),
      fixed(ratio(runs, c, p50)),
      x.p99Us.toFixed(0),
      fixed(ratio(runs, net, p99)),
      fixed(ratio(runs, c, p99)),
      `${x.cpuUs.toFixed(2)} (${x.userUs.toFixed(2)})`,
      fixed(ratio(runs, net, cpuPerRoundTrip)),
      fixed(ratio(runs, c, cpuPerRoundTrip)),
      x.syscalls === undefined ? '-' : x.syscalls.toFixed(2),
      x.serverCores.toFixed(2),
      x.generatorCores.toFixed(2),
      x.otherCores.toFixed(2),
    ]);
  }
  const head = ['server', 'CPUs', 'rt/s', '×net', '×C', 'p50 µs', '×net', '×C', 'p99 µs', '×net', '×C', 'CPU µs/rt (user)', '×net', '×C', 'syscalls/rt', 'server cores', 'gen cores', 'other cores'];
  const evd2 = samples.get('evd T=2');
  const oneshot = samples.get('C oneshot×2');
  const target = (base: Sample[] | undefined, goal: number, label: string): string => {
    const r = evd2 === undefined ? undefined : ratio(evd2, base, rate);
    if (r === undefined) return `${label}: not measured`;
    return `${label} ${r.toFixed(2)} (target ≥ ${goal}: ${r >= goal ? 'met' : 'missed'})`;
  };
  return [
    `W3 echo: ${o.connections} connections × ${o.size}-byte messages, closed loop, on ${HOST}; ${o.warmup} s warm-up + ${o.seconds} s measured per run, medians of ${o.rounds} rounds`,
    `machine: ${availableParallelism()} CPUs, load average ${loadavg()[0]!.toFixed(2)} at the end; ${s.place.note}`,
    "rt/s: round trips per second; p50/p99: round-trip latency seen by the generator; CPU µs/rt: the server processes' CPU (all threads, user + system; user in brackets) per round trip",
    `syscalls/rt: ${perfCounted() ? 'counted by the kernel (perf, raw_syscalls:sys_enter), all threads of the server processes' : 'not counted (no perf)'}; server/gen cores: CPU time / wall time; other cores: the rest of the machine meanwhile (other processes, softirq threads: well above 0 means a noisy run)`,
    "×net, ×C: the figure over node:net's, over C's, the median of the rounds' ratios (rt/s above 1 is better; latency and CPU below 1 are better)",
    ...(saturated ? [`*: the generator was saturated (≥ ${SATURATED} cores): that server's rt/s is a lower bound of what it could serve`] : []),
    ...notes,
    '',
    ...grid(head, rows, 0), // the server's name left-aligned
    '',
    target(net, 1.2, 'evd T=2 rt/s ×net'),
    target(c, 0.9, 'evd T=2 rt/s ×C'),
    target(oneshot, 1.2, 'evd T=2 rt/s ×C oneshot×2'),
  ].join('\n');
}

async function main(): Promise<number> {
  const o = commandLine(FLAGS, readOptions, { usage: USAGE, help: HELP, linuxOnly: LINUX_ONLY });
  if (typeof o === 'number') return o;
  const dir = mkdtempSync(join(tmpdir(), 'evdispatch-echo-'));
  workDir = dir;
  try {
    const notes: string[] = [];
    const cServer = compileC('echo-server', dir, ['-pthread']);
    const cLoad = compileC('echo-load', dir);
    if (cServer === undefined || cLoad === undefined) {
      notes.push('no C compiler (`cc` is not on PATH): no C server, and the load generator is the Node one (apt-get install gcc)');
      console.log(notes[0]);
    }
    const setup: Setup = {
      o,
      dir,
      cServer,
      load: cLoad === undefined ? [process.execPath, NODE_LOAD] : [cLoad],
      place: placement(),
    };
    const servers = o.servers.filter((name) => !name.startsWith('C') || cServer !== undefined);
    const samples = new Map<ServerName, Sample[]>(servers.map((name) => [name, []]));
    for (let round = 1; round <= o.rounds; round++) {
      for (let i = 0; i < servers.length; i++) {
        const name = servers[(i + round - 1) % servers.length]!;
        const sample = await run(name, setup);
        console.log(describe(name, round, sample));
        samples.get(name)!.push(sample);
      }
    }
    console.log(`\n${table(o, samples, setup, notes)}`);
    return 0;
  } finally {
    cleanUp();
  }
}

/** The compiled programs and perf's fifos, removed however the run ends. */
let workDir: string | undefined;

function cleanUp(): void {
  killAll();
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
}

// Ctrl-C or a kill: stop every process started, then go.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping every process started`);
    cleanUp();
    process.exit(130);
  });
}
process.once('exit', cleanUp);
process.exitCode = await main().catch((e: unknown) => {
  console.error(`W3 echo failed: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
});
