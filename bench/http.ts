/**
 * HTTP keep-alive: the demo's HTTP server (examples/echo-server, 1 and 2 threads) against a
 * `node:http` server answering the same bytes, and the same under `node:cluster` with 2 workers,
 * all driven by wrk (a real HTTP client) in the same run.
 *
 * wrk keeps CONNECTIONS connections (64) open and sends each request as soon as the answer to
 * the one before has come (GET /, HTTP/1.1 keep-alive). Each run warms up with a wrk run of its
 * own, then measures one of --seconds with --latency: requests/s and wrk's p50 and p99 (wrk
 * measures latency from each request's send). Runs alternate (the order rotated every round)
 * so a noisy neighbour hurts all alike; the table shows medians, and ratios that are the median
 * of each round's ratio. Before each run one request is answered over a plain socket, to show
 * the servers send the same bytes (node:http would add a Date field otherwise).
 *
 * CPUs as in bench/echo.ts: wrk on CPU 0 (at nice -10 where allowed), one-thread servers on
 * CPU 1, two-thread ones on CPUs 1-2 (0-1 on a 2-CPU machine, shared with wrk).
 *
 * Without wrk (apt-get install wrk) it says so and exits 0: there is no figure to give.
 *
 * Run: npm run bench:http -- --rounds 5 --seconds 5
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { commandLine, grid, integer, killAll, median, ratio, UsageError } from './common.js';
import { Child, cpuOf, placement, startDemo, startNodeServer, STOP_MS, type Placement, type Server } from './echo-processes.js';

const USAGE = 'usage: node build/bench/http.js [--rounds N] [--seconds S] [--warmup S] [--connections N] [--wrk-threads N] [--servers LIST] [--help]';

/** The servers, in the order each round starts from. */
const SERVERS = ['node:http', 'evd T=1', 'cluster×2', 'evd T=2'] as const;
type ServerName = (typeof SERVERS)[number];
const SERVER_KEYS: Record<string, ServerName> = { http: 'node:http', evd1: 'evd T=1', cluster2: 'cluster×2', evd2: 'evd T=2' };

const HELP = `${USAGE}

HTTP keep-alive under wrk: evdispatch's demo HTTP server (1 and 2 threads), node:http, and
node:http under node:cluster with 2 workers, interleaved, medians: requests/s and p99.
  --rounds N       rounds, each one run per server (default 3)
  --seconds S      measured whole seconds per run (default 3)
  --warmup S       whole seconds of wrk before each measured run, for the JIT (default 1; 0: none)
  --connections N  keep-alive connections (default 64)
  --wrk-threads N  wrk's threads (default 1)
  --servers LIST   comma-separated subset of http,evd1,cluster2,evd2 (default all)
Needs wrk on PATH (apt-get install wrk); without it, says so and exits 0. Linux only (/proc).`;

const LINUX_ONLY = 'the HTTP benchmark reads server CPU from /proc: it runs on Linux only';

const HOST = '127.0.0.1';
/** wrk's own bound past its --duration before the run is taken as stuck. */
const WRK_SLACK_MS = 15_000;


interface Options {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly connections: number;
  readonly wrkThreads: number;
  readonly servers: readonly ServerName[];
}

const FLAGS = { rounds: '3', seconds: '3', warmup: '1', connections: '64', 'wrk-threads': '1', servers: Object.keys(SERVER_KEYS).join(',') };

function readOptions(values: Record<keyof typeof FLAGS, string>): Options {
  const servers = values.servers.split(',').map((key) => {
    const name = SERVER_KEYS[key.trim().toLowerCase()];
    if (name === undefined) throw new UsageError(`--servers takes names from ${Object.keys(SERVER_KEYS).join(', ')}; got '${key}'`);
    return name;
  });
  const connections = integer('connections', values.connections, 1, 10000);
  const wrkThreads = integer('wrk-threads', values['wrk-threads'], 1, 64);
  // wrk gives each thread connections / threads of them.
  if (wrkThreads > connections) throw new UsageError('--wrk-threads must not exceed --connections');
  return {
    rounds: integer('rounds', values.rounds, 1, 1000),
    seconds: integer('seconds', values.seconds, 1, 3600),
    warmup: integer('warmup', values.warmup, 0, 3600),
    connections,
    wrkThreads,
    servers: SERVERS.filter((s) => servers.includes(s)),
  };
}

function serverThreads(name: ServerName): number {
  return name === 'evd T=2' || name === 'cluster×2' ? 2 : 1;
}

async function startServer(name: ServerName, cpus: string | undefined): Promise<Server> {
  if (name === 'node:http' || name === 'cluster×2') {
    return startNodeServer(`the ${name} server`, ['--http', '--workers', name === 'node:http' ? '0' : '2'], cpus);
  }
  return startDemo(serverThreads(name), 'HTTP', cpus);
}

/** The bytes of the answer to one GET over a fresh connection (the server closes it after). */
async function probe(port: number): Promise<string> {
  const socket = connect({ host: HOST, port });
  socket.end(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

/** What wrk reports for one run. */
interface Sample {
  readonly rate: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly serverCpuUsPerRequest: number;
  /** Socket errors and answers other than 2xx/3xx, as wrk counts them. */
  readonly errors: number;
}

/** wrk's latency, "812.00us", "1.23ms", "1.01s", in µs. */
function micros(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (m === null) throw new Error(`wrk printed a latency it is not known to print: '${text}'`);
  return Number(m[1]) * { us: 1, ms: 1e3, s: 1e6 }[m[2] as 'us' | 'ms' | 's'];
}

/** Runs wrk for `seconds` against `port`; the figures of its report. */
async function wrk(port: number, seconds: number, o: Options, place: Placement): Promise<Omit<Sample, 'serverCpuUsPerRequest'> & { readonly requests: number }> {
  const args = ['-t', String(o.wrkThreads), '-c', String(o.connections), '-d', `${seconds}s`, '--latency', `http://${HOST}:${port}/`];
  const child = new Child('wrk', 'wrk', args, place.generator, place.generatorNice);
  // wrk pads a latency in seconds with a space after it.
  const report = /^\s*(50%|99%)\s+(\S+)\s*$|^\s*(\d+) requests in|^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)|^\s*Non-2xx or 3xx responses: (\d+)|^Requests\/sec:\s+([\d.]+)/;
  const timeout = seconds * 1e3 + WRK_SLACK_MS;
  let p50Us = NaN;
  let p99Us = NaN;
  let requests = NaN;
  let errors = 0;
  for (;;) {
    const m = await child.line(report, timeout);
    if (m[1] === '50%') p50Us = micros(m[2]!);
    else if (m[1] === '99%') p99Us = micros(m[2]!);
    else if (m[3] !== undefined) requests = Number(m[3]);
    else if (m[4] !== undefined) errors += [m[4], m[5], m[6], m[7]].reduce((sum, n) => sum + Number(n), 0);
    else if (m[8] !== undefined) errors += Number(m[8]);
    else {
      await child.stop(undefined, STOP_MS);
      if ([p50Us, p99Us, requests].some(Number.isNaN)) throw new Error('wrk ended its report without its p50, p99 or request count');
      return { rate: Number(m[9]), p50Us, p99Us, errors, requests };
    }
  }
}

/** One warmed-up, measured run against a fresh server, and the answer it gave the probe. */
async function run(name: ServerName, o: Options, place: Placement): Promise<{ sample: Sample; answer: string }> {
  const server = await startServer(name, serverThreads(name) === 1 ? place.oneThread : place.twoThreads);
  try {
    const answer = await probe(server.port);
    if (o.warmup > 0) await wrk(server.port, o.warmup, o, place);
    const before = cpuOf(server.pids).totalNs;
    const w = await wrk(server.port, o.seconds, o, place);
    const cpuNs = cpuOf(server.pids).totalNs - before;
    return { sample: { rate: w.rate, p50Us: w.p50Us, p99Us: w.p99Us, errors: w.errors, serverCpuUsPerRequest: cpuNs / w.requests / 1e3 }, answer };
  } finally {
    await server.stop();
  }
}

function describe(name: ServerName, round: number, s: Sample): string {
  return (
    `round ${round} ${name.padEnd(9)}: ${thousands(s.rate)} requests/s, p50 ${s.p50Us.toFixed(0)} µs, p99 ${s.p99Us.toFixed(0)} µs, ` +
    `server ${s.serverCpuUsPerRequest.toFixed(2)} CPU µs/request` +
    (s.errors === 0 ? '' : `, ${s.errors} errors`)
  );
}

function thousands(rate: number): string {
  return `${(rate / 1e3).toFixed(1)}k`;
}

const rate = (s: Sample): number => s.rate;
const p99 = (s: Sample): number => s.p99Us;

function table(o: Options, samples: ReadonlyMap<ServerName, Sample[]>, place: Placement, notes: readonly string[]): string {
  const http = samples.get('node:http');
  const cluster = samples.get('cluster×2');
  const fixed = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2));
  const rows = [...samples].map(([name, runs]) => [
    name,
    (serverThreads(name) === 1 ? place.oneThread : place.twoThreads) ?? 'any',
    thousands(median(runs.map(rate))),
    fixed(ratio(runs, http, rate)),
    fixed(ratio(runs, cluster, rate)),
    median(runs.map((s) => s.p50Us)).toFixed(0),
    median(runs.map(p99)).toFixed(0),
    fixed(ratio(runs, http, p99)),
    fixed(ratio(runs, cluster, p99)),
    median(runs.map((s) => s.serverCpuUsPerRequest)).toFixed(2),
    String(runs.reduce((sum, s) => sum + s.errors, 0)),
  ]);
  const head = ['server', 'CPUs', 'req/s', '×http', '×cluster', 'p50 µs', 'p99 µs', '×http', '×cluster', 'CPU µs/req', 'errors'];
  const targets = (['evd T=1', 'evd T=2'] as const).flatMap((name) => {
    const runs = samples.get(name);
    if (runs === undefined) return [];
    const line = (base: Sample[] | undefined, goal: number, label: string): string => {
      const r = ratio(runs, base, rate);
      return r === undefined ? `${name} req/s ${label}: not measured` : `${name} req/s ${label} ${r.toFixed(2)} (target ≥ ${goal}: ${r >= goal ? 'met' : 'missed'})`;
    };
    return [line(http, 2.5, '×node:http'), line(cluster, 1.6, '×cluster×2')];
  });
  return [
    `HTTP keep-alive under wrk (${o.wrkThreads} thread(s)): ${o.connections} connections, GET /; ${o.warmup} s warm-up + ${o.seconds} s measured per run, medians of ${o.rounds} rounds`,
    `machine: ${availableParallelism()} CPUs, load average ${loadavg()[0]!.toFixed(2)} at the end; ${place.note.replaceAll('the generator', 'wrk').replaceAll('generator', 'wrk')}`,
    "req/s: requests answered per second; p50/p99: wrk's latency (--latency); CPU µs/req: the server processes' CPU (all threads) per request; errors: wrk's socket errors and non-2xx answers, all rounds",
    "×http, ×cluster: the figure over node:http's, over node:http under cluster×2's, the median of the rounds' ratios (req/s above 1 is better; p99 below 1 is better)",
    ...notes,
    '',
    ...grid(head, rows, 0),
    '',
    ...targets,
  ].join('\n');
}

async function main(): Promise<number> {
  const o = commandLine(FLAGS, readOptions, { usage: USAGE, help: HELP, linuxOnly: LINUX_ONLY });
  if (typeof o === 'number') return o;
  if ((spawnSync('wrk', ['--version']).error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    console.log('no figures: wrk is not on PATH, and this benchmark measures with wrk only (apt-get install wrk)');
    return 0;
  }
  const place = placement();
  const samples = new Map<ServerName, Sample[]>(o.servers.map((name) => [name, []]));
  const answers = new Map<string, Set<ServerName>>();
  for (let round = 1; round <= o.rounds; round++) {
    for (let i = 0; i < o.servers.length; i++) {
      const name = o.servers[(i + round - 1) % o.servers.length]!;
      const { sample, answer } = await run(name, o, place);
      console.log(describe(name, round, sample));
      samples.get(name)!.push(sample);
      answers.set(answer, (answers.get(answer) ?? new Set()).add(name));
    }
  }
  const notes =
    answers.size === 1
      ? ['every server answered a probe GET with the same bytes']
      : [...answers].map(([bytes, names]) => `the servers answer differently: ${[...names].join(', ')} sent ${JSON.stringify(bytes)}`);
  console.log(`\n${table(o, samples, place, notes)}`);
  return 0;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping every process started`);
    killAll();
    process.exit(130);
  });
}
process.once('exit', killAll);
process.exitCode = await main().catch((e: unknown) => {
  console.error(`HTTP benchmark failed: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
});
