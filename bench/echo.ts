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
 * Memory: the server's RSS (VmRSS of its processes) at the end of the timed window, less its RSS
 * just after it started, before anything connected, per connection open. Memory the kernel
 * holds for the sockets (buffers, socket structures) is not in RSS, so it is not counted.
 *
 * Scale: --connections takes a list (64,1000,10000); each round then runs every server at every
 * count, so the runs a ratio compares are close in time, a table follows per count, and a scale
 * table sets the counts side by side, with each server's CPU per round trip over its own at the
 * first count (×first, the median of the rounds' ratios). The benchmark raises its soft
 * descriptor limit to the hard one, which every process it starts inherits (the demo raises
 * its own), and checks that the generator's and the server's descriptors, and the loopback's
 * ephemeral ports, suffice before it starts. The generator connects every connection before
 * it reports ready, so connecting is never in the timed window.
 *
 * Idle connections (--idle N): each server also runs beside N idle connections, opened and held
 * by a process of their own (bench/echo-idle.ts) before the generator connects, and each round
 * runs it both ways, so the idle table compares the active connections' rt/s, p99 and CPU per
 * round trip with and without them, and gives the RSS each idle connection adds. With --idle,
 * the demo runs with its default idle timeout (30 s) in both: every idle connection holds a
 * deadline 30 s away, live through the timed window (the run checks that none closed).
 *
 * Run: npm run bench:echo -- --rounds 5 --seconds 3
 * Scale: npm run bench:echo -- --rounds 3 --connections 64,1000,10000 --servers c,net,evd1,evd2,coneshot2
 * Idle: npm run bench:echo -- --rounds 3 --connections 64 --idle 15000 --servers evd1,evd2,c
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { raiseFdLimit } from '../src/sys/limits.js';
import { commandLine, compileC, grid, integer, killAll, median, ratio, seconds, UsageError } from './common.js';
import { Child, cpuOf, machineBusyNs, placement, rssOf, startDemo, startNodeServer, START_MS, STOP_MS, type Cpu, type Placement, type Server } from './echo-processes.js';
import { perfCounted, SyscallCounter } from './perf.js';

const USAGE =
  'usage: node build/bench/echo.js [--rounds N] [--seconds S] [--warmup S] [--connections N[,N...]] [--idle N] [--size BYTES] [--servers LIST] [--help]';

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
  --connections N  connections, each in a closed loop (default 64); a comma-separated list
                   (64,1000,10000) runs every count in each round, and adds a scale table
  --idle N         also run each server beside N idle connections (30 s idle deadlines in the
                   demo), for an idle table: with and without them, side by side (default 0)
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
/** Added to START_MS per connection to open, for the generator and the idle process to be ready. */
const CONNECT_MS = 2;
/** The demo's idle timeout with --idle: its default, the deadline every idle connection holds. */
const IDLE_DEADLINE_MS = 30_000;
/** The longest warm-up + timed window with --idle, so that the idle deadlines are still ahead at its end. */
const IDLE_WINDOW_S = 20;
/** The most connections of each kind (the fd limit and the ephemeral ports are checked at start). */
const MAX_CONNECTIONS = 1_000_000;
/** Descriptors a process needs besides its connections: stdio, epoll, listeners, Node's own. */
const SPARE_FDS = 64;

const HOST = '127.0.0.1';
/** The Node programs it starts, found from build/bench/, where tsc emits this file. */
const NODE_LOAD = fileURLToPath(new URL('./echo-load.js', import.meta.url));
const NODE_IDLE = fileURLToPath(new URL('./echo-idle.js', import.meta.url));

interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmup: number;
  /** The connection counts, in the order given. */
  readonly connections: readonly number[];
  readonly idle: number;
  readonly size: number;
  readonly servers: readonly ServerName[];
}

/** The flags and their defaults. */
const FLAGS = { rounds: '3', seconds: '2', warmup: '1', connections: '64', idle: '0', size: '64', servers: Object.keys(SERVER_KEYS).join(',') };

function readOptions(values: Record<keyof typeof FLAGS, string>): Options {
  const servers = values.servers.split(',').map((key) => {
    const name = SERVER_KEYS[key.trim().toLowerCase()];
    if (name === undefined) throw new UsageError(`--servers takes names from ${Object.keys(SERVER_KEYS).join(', ')}; got '${key}'`);
    return name;
  });
  const connections = [...new Set(values.connections.split(',').map((n) => integer('connections', n.trim(), 1, MAX_CONNECTIONS)))];
  const o = {
    rounds: integer('rounds', values.rounds, 1, 1000),
    seconds: seconds('seconds', values.seconds, 0.1, 3600),
    warmup: seconds('warmup', values.warmup, 0, 3600),
    connections,
    idle: integer('idle', values.idle, 0, MAX_CONNECTIONS),
    size: integer('size', values.size, 1, 1 << 20),
    servers: SERVERS.filter((s) => servers.includes(s)),
  };
  if (o.idle > 0 && o.warmup + o.seconds > IDLE_WINDOW_S) {
    throw new UsageError(`with --idle, --warmup + --seconds must be at most ${IDLE_WINDOW_S} s, so that the idle connections' ${IDLE_DEADLINE_MS / 1000} s deadlines are still ahead at the end of the run`);
  }
  return o;
}

/**
 * Checks, before any run, that the largest run fits: the generator's connections and the
 * server's (active and idle) within the descriptor limit every process starts with (the soft
 * one, raised to the hard one here), and every connection's local port within the loopback's
 * ephemeral range (all go to one address and port). Throws UsageError if not.
 */
function checkCapacity(o: Options): void {
  const soft = raiseFdLimit().soft;
  const most = Math.max(...o.connections);
  const need = (what: string, n: number): void => {
    if (n + SPARE_FDS > soft) throw new UsageError(`${what} needs ${n} descriptors and a few more; the limit is ${soft} (ulimit -n, raised to the hard limit)`);
  };
  need('the load generator', most);
  need('the server', most + o.idle);
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const ports = high! - low! + 1;
  if (most + o.idle > ports) throw new UsageError(`${most + o.idle} connections to one port need as many local ports; the ephemeral range has ${ports} (net.ipv4.ip_local_port_range)`);
}

function serverThreads(name: ServerName): number {
  return name === 'evd T=2' || name === 'cluster×2' || name === 'C oneshot×2' ? 2 : 1;
}

/** One server at one connection count, alone or beside idle connections: a row of a table. */
interface Case {
  readonly server: ServerName;
  readonly connections: number;
  readonly idle: number;
  readonly label: string;
  readonly samples: Sample[];
}

function cases(o: Options, servers: readonly ServerName[], connections: number): Case[] {
  return servers.flatMap((server) =>
    [0, o.idle]
      .filter((idle, i) => i === 0 || idle > 0)
      .map((idle) => ({ server, connections, idle, label: idle === 0 ? server : `${server} +idle`, samples: [] })),
  );
}

async function startServer(name: ServerName, cServer: string | undefined, cpus: string | undefined, demoIdleMs: number | undefined): Promise<Server> {
  if (name === 'C' || name === 'C oneshot×2') {
    const args = name === 'C' ? ['0'] : ['0', '--oneshot', '--threads', '2'];
    const child = new Child(`the ${name} echo server`, cServer!, args, cpus);
    const [, port] = await child.line(/^port (\d+)$/, START_MS);
    return { port: Number(port), pids: [child.pid], stop: () => child.stop('SIGTERM', STOP_MS) };
  }
  if (name === 'node:net' || name === 'cluster×2') {
    return startNodeServer(`the ${name} echo server`, ['--workers', name === 'node:net' ? '0' : '2'], cpus);
  }
  return startDemo(serverThreads(name), 'echo', cpus, demoIdleMs);
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

  static async start(load: string[], port: number, connections: number, o: Options, place: Placement): Promise<Generator> {
    const [command, ...rest] = load;
    const args = [...rest, HOST, String(port), String(connections), String(o.size)];
    const child = new Child('the load generator', command!, args, place.generator, place.generatorNice);
    await child.line(/^ready$/, START_MS + connections * CONNECT_MS);
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

/** Idle connections held open by bench/echo-idle.ts. */
class IdleConnections {
  private constructor(
    private readonly child: Child,
    readonly count: number,
  ) {}

  static async open(port: number, count: number): Promise<IdleConnections> {
    const child = new Child('the idle connections', process.execPath, [NODE_IDLE, HOST, String(port), String(count)], undefined);
    await child.line(/^ready$/, START_MS + count * CONNECT_MS);
    return new IdleConnections(child, count);
  }

  /** Fails if the server closed any of them. */
  async checkOpen(): Promise<void> {
    this.child.send('count\n');
    const [, open] = await this.child.line(/^open (\d+)$/, MARK_MS);
    if (Number(open) !== this.count) throw new Error(`the server closed ${this.count - Number(open)} of the ${this.count} idle connections during the run`);
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
  /** Server RSS growth, bytes, per connection open (active and idle): at the end of the timed window, less just after start. */
  readonly rssPerConnection: number;
  /** Server RSS growth, bytes, per idle connection, once they were open (before the active ones); NaN without. */
  readonly rssPerIdle: number;
}

interface Setup {
  readonly o: Options;
  readonly dir: string;
  readonly cServer: string | undefined;
  readonly load: string[];
  readonly place: Placement;
}

/** Lets a server just started settle (worker threads, JIT) before its RSS is the base. */
const SETTLE_MS = 300;

async function run(c: Case, s: Setup): Promise<Sample> {
  const name = c.server;
  const cpus = serverThreads(name) === 1 ? s.place.oneThread : s.place.twoThreads;
  // With --idle the demo keeps its default idle timeout in both runs, so only the idle connections differ.
  const server = await startServer(name, s.cServer, cpus, s.o.idle > 0 ? IDLE_DEADLINE_MS : undefined);
  let generator: Generator | undefined;
  let idle: IdleConnections | undefined;
  try {
    await sleep(SETTLE_MS);
    const rssStart = rssOf(server.pids);
    if (c.idle > 0) idle = await IdleConnections.open(server.port, c.idle);
    const rssIdle = rssOf(server.pids);
    generator = await Generator.start(s.load, server.port, c.connections, s.o, s.place);
    // perf -p follows the threads there are when it attaches: start it once the server runs.
    const counter = SyscallCounter.start(s.dir, server.pids, WITHOUT_PERF);
    await sleep(s.o.warmup * 1e3);
    await generator.mark();
    const cpuA: Cpu = cpuOf(server.pids);
    const busyA = machineBusyNs();
    await sleep(s.o.seconds * 1e3);
    const busyB = machineBusyNs();
    const cpuB: Cpu = cpuOf(server.pids);
    const rssLoaded = rssOf(server.pids);
    const m = await generator.mark();
    await idle?.checkOpen();
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
      rssPerConnection: (rssLoaded - rssStart) / (c.connections + c.idle),
      rssPerIdle: c.idle > 0 ? (rssIdle - rssStart) / c.idle : NaN,
    };
  } finally {
    await generator?.stop();
    await idle?.stop();
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
  /** KiB of server RSS per connection open (see Sample.rssPerConnection). */
  readonly rssKiB: number;
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
    rssKiB: median(samples.map((s) => s.rssPerConnection)) / 1024,
  };
}

function describe(c: Case, round: number, s: Sample): string {
  const rate = (s.roundTrips / s.wallNs) * 1e9;
  const idle = c.idle > 0 ? ` + ${c.idle} idle (${(s.rssPerIdle / 1024).toFixed(2)} KiB RSS each)` : '';
  return (
    `round ${round} ${c.label.padEnd(11)} ${c.connections} connections${idle}: ${thousands(rate)} round trips/s, p50 ${(s.p50Ns / 1e3).toFixed(0)} µs, ` +
    `p99 ${(s.p99Ns / 1e3).toFixed(0)} µs, server ${(s.serverCpuNs / s.roundTrips / 1e3).toFixed(2)} CPU µs/rt ` +
    `(${(s.serverCpuNs / s.wallNs).toFixed(2)} cores), generator ${(s.generatorCpuNs / s.wallNs).toFixed(2)} cores, ` +
    `others ${Math.max(0, s.otherCpuNs / s.wallNs).toFixed(2)} cores` +
    (s.syscallsPerRoundTrip === undefined ? '' : `, ${s.syscallsPerRoundTrip.toFixed(2)} syscalls/rt`) +
    `, RSS ${(s.rssPerConnection / 1024).toFixed(2)} KiB/connection`
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

/** A ratio for a table: two decimals, or '-' where there is no baseline. */
const fixed = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2));

/** A figure's two ratio cells: over node:net's, over C's. */
function versus(runs: readonly Sample[], net: readonly Sample[] | undefined, c: readonly Sample[] | undefined, f: Figure): string[] {
  return [fixed(ratio(runs, net, f)), fixed(ratio(runs, c, f))];
}

/** Generator cores at or above this: the generator, not the server, set the pace. */
const SATURATED = 0.97;

/** The runs of the row labelled `label` among `all`, if it was run. */
function runsOf(all: readonly Case[], label: string): Sample[] | undefined {
  return all.find((c) => c.label === label)?.samples;
}

/**
 * The table of one connection count: every server there, alone and beside the idle connections;
 * with `legend`, what the columns mean (the first table of a run only).
 */
function table(o: Options, connections: number, all: readonly Case[], s: Setup, notes: string[], legend: boolean): string {
  const net = runsOf(all, 'node:net');
  const c = runsOf(all, 'C');
  const rows: string[][] = [];
  let saturated = false;
  for (const { server: name, label, samples: runs } of all) {
    const x = summarize(runs);
    const cpus = serverThreads(name) === 1 ? s.place.oneThread : s.place.twoThreads;
    const genBound = x.generatorCores >= SATURATED;
    saturated ||= genBound;
    rows.push([
      label,
      cpus ?? 'any',
      `${thousands(x.rate)}${genBound ? '*' : ''}`,
      ...versus(runs, net, c, rate),
      x.p50Us.toFixed(0),
      ...versus(runs, net, c, p50),
      x.p99Us.toFixed(0),
      ...versus(runs, net, c, p99),
      `${x.cpuUs.toFixed(2)} (${x.userUs.toFixed(2)})`,
      ...versus(runs, net, c, cpuPerRoundTrip),
      x.syscalls === undefined ? '-' : x.syscalls.toFixed(2),
      x.serverCores.toFixed(2),
      x.generatorCores.toFixed(2),
      x.otherCores.toFixed(2),
      x.rssKiB.toFixed(2),
    ]);
  }
  const head = ['server', 'CPUs', 'rt/s', '×net', '×C', 'p50 µs', '×net', '×C', 'p99 µs', '×net', '×C', 'CPU µs/rt (user)', '×net', '×C', 'syscalls/rt', 'server cores', 'gen cores', 'other cores', 'RSS KiB/conn'];
  const evd2 = runsOf(all, 'evd T=2');
  const oneshot = runsOf(all, 'C oneshot×2');
  const target = (base: Sample[] | undefined, goal: number, label: string): string => {
    const r = evd2 === undefined ? undefined : ratio(evd2, base, rate);
    if (r === undefined) return `${label}: not measured`;
    return `${label} ${r.toFixed(2)} (target ≥ ${goal}: ${r >= goal ? 'met' : 'missed'})`;
  };
  const explained = [
    `machine: ${availableParallelism()} CPUs, load average ${loadavg()[0]!.toFixed(2)} at the end; ${s.place.note}`,
    "rt/s: round trips per second; p50/p99: round-trip latency seen by the generator; CPU µs/rt: the server processes' CPU (all threads, user + system; user in brackets) per round trip",
    `syscalls/rt: ${perfCounted() ? 'counted by the kernel (perf, raw_syscalls:sys_enter), all threads of the server processes' : 'not counted (no perf)'}; server/gen cores: CPU time / wall time; other cores: the rest of the machine meanwhile (other processes, softirq threads: well above 0 means a noisy run)`,
    "×net, ×C: the figure over node:net's, over C's, the median of the rounds' ratios (rt/s above 1 is better; latency and CPU below 1 are better)",
    RSS_NOTE,
    ...(o.idle > 0 ? [`+idle: the same server beside ${o.idle} idle connections; its RSS/conn counts them too`] : []),
    ...notes,
  ];
  return [
    `W3 echo: ${connections} connections × ${o.size}-byte messages, closed loop, on ${HOST}; ${o.warmup} s warm-up + ${o.seconds} s measured per run, medians of ${o.rounds} rounds`,
    ...(legend ? explained : []),
    ...(saturated ? [`*: the generator was saturated (≥ ${SATURATED} cores): that server's rt/s is a lower bound of what it could serve`] : []),
    '',
    ...grid(head, rows, 0), // the server's name left-aligned
    '',
    target(net, 1.2, 'evd T=2 rt/s ×net'),
    target(c, 0.9, 'evd T=2 rt/s ×C'),
    target(oneshot, 1.2, 'evd T=2 rt/s ×C oneshot×2'),
  ].join('\n');
}

const RSS_NOTE =
  "RSS KiB/conn: the server's RSS at the end of the timed window less just after it started, per connection open (the kernel's socket memory is not in RSS; at small counts, the server's own warm-up dominates)";

/** The connection counts side by side: each server's figures at each count, and how they grow. */
function scaleTable(o: Options, byCount: ReadonlyMap<number, Case[]>): string {
  const first = o.connections[0]!;
  const rows: string[][] = [];
  const lines: string[] = [];
  for (const server of o.servers) {
    const base = runsOf(byCount.get(first) ?? [], server);
    for (const [connections, all] of byCount) {
      const runs = runsOf(all, server);
      if (runs === undefined) continue;
      const net = runsOf(all, 'node:net');
      const c = runsOf(all, 'C');
      const x = summarize(runs);
      const growth = ratio(runs, base, cpuPerRoundTrip);
      rows.push([
        server,
        String(connections),
        thousands(x.rate),
        ...versus(runs, net, c, rate),
        x.p99Us.toFixed(0),
        ...versus(runs, net, c, p99),
        x.cpuUs.toFixed(2),
        ...versus(runs, net, c, cpuPerRoundTrip),
        fixed(growth),
        x.rssKiB.toFixed(2),
      ]);
      if (server.startsWith('evd') && connections === Math.max(...o.connections) && connections !== first) {
        const overNet = ratio(runs, net, rate);
        lines.push(
          `${server} at ${connections}: CPU µs/rt ×${first} ${fixed(growth)} (target ≤ 1.15: ${growth === undefined ? 'not measured' : growth <= 1.15 ? 'met' : 'missed'}), ` +
            `rt/s ×net ${fixed(overNet)} (target ≥ 1.5: ${overNet === undefined ? 'not measured' : overNet >= 1.5 ? 'met' : 'missed'})`,
        );
      }
    }
  }
  const head = ['server', 'conns', 'rt/s', '×net', '×C', 'p99 µs', '×net', '×C', 'CPU µs/rt', '×net', '×C', `×${first}`, 'RSS KiB/conn'];
  return [
    `Scale: ${o.connections.join(', ')} connections, the same runs as the tables above`,
    `×${first}: CPU per round trip over the same server's at ${first} connections, the median of the rounds' ratios (the runs of a round are close in time)`,
    '',
    ...grid(head, rows, 0),
    '',
    ...lines,
  ].join('\n');
}

/** Each server with and without the idle connections, side by side. */
function idleTable(o: Options, byCount: ReadonlyMap<number, Case[]>): string {
  const rows: string[][] = [];
  const lines: string[] = [];
  for (const [connections, all] of byCount) {
    for (const server of o.servers) {
      const alone = runsOf(all, server);
      const beside = runsOf(all, `${server} +idle`);
      if (alone === undefined || beside === undefined) continue;
      const a = summarize(alone);
      const b = summarize(beside);
      const rates = ratio(beside, alone, rate);
      const cpu = ratio(beside, alone, cpuPerRoundTrip);
      rows.push([
        server,
        String(connections),
        thousands(a.rate),
        thousands(b.rate),
        fixed(rates),
        a.p99Us.toFixed(0),
        b.p99Us.toFixed(0),
        fixed(ratio(beside, alone, p99)),
        a.cpuUs.toFixed(2),
        b.cpuUs.toFixed(2),
        fixed(cpu),
        (median(beside.map((s) => s.rssPerIdle)) / 1024).toFixed(2),
      ]);
      if (server.startsWith('evd') && rates !== undefined && cpu !== undefined) {
        const met = rates >= 0.9 && cpu <= 1.1;
        lines.push(`${server}, ${connections} active: rt/s ×alone ${fixed(rates)}, CPU µs/rt ×alone ${fixed(cpu)} (target: within 10 %: ${met ? 'met' : 'missed'})`);
      }
    }
  }
  const head = ['server', 'active', 'rt/s alone', `+${o.idle} idle`, '×alone', 'p99 µs alone', '+idle', '×alone', 'CPU µs/rt alone', '+idle', '×alone', 'RSS KiB/idle conn'];
  return [
    `Idle: the active connections alone and beside ${o.idle} idle ones (held by another process, opened before the active ones; in the demo each holds a ${IDLE_DEADLINE_MS / 1000} s idle deadline)`,
    "×alone: beside the idle connections over alone, the median of the rounds' ratios; RSS KiB/idle conn: the server's RSS growth once the idle connections were open, per idle connection (kernel socket memory not included)",
    '',
    ...grid(head, rows, 0),
    '',
    ...lines,
  ].join('\n');
}

async function main(): Promise<number> {
  const o = commandLine(FLAGS, readOptions, { usage: USAGE, help: HELP, linuxOnly: LINUX_ONLY });
  if (typeof o === 'number') return o;
  try {
    checkCapacity(o);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    return 2;
  }
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
    const byCount = new Map(o.connections.map((n) => [n, cases(o, servers, n)]));
    for (let round = 1; round <= o.rounds; round++) {
      for (const all of byCount.values()) {
        for (let i = 0; i < all.length; i++) {
          const c = all[(i + round - 1) % all.length]!;
          const sample = await run(c, setup);
          console.log(describe(c, round, sample));
          c.samples.push(sample);
        }
      }
    }
    for (const [connections, all] of byCount) console.log(`\n${table(o, connections, all, setup, notes, connections === o.connections[0])}`);
    if (byCount.size > 1) console.log(`\n${scaleTable(o, byCount)}`);
    if (o.idle > 0) console.log(`\n${idleTable(o, byCount)}`);
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
