/**
 * What the server faults drive the demo server with: the server itself as a child process, client
 * connections over node:net, a curl probe, and the command-line tools they need.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as nodeNet from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { eventually, percentile, within } from './fault.js';

const MAIN = fileURLToPath(new URL('../../examples/echo-server/main.js', import.meta.url));

/** Fails, loudly, when `command` is not installed: the faults that need it cannot run without it. */
export function requireTool(command: string, versionFlag: string, debianPackage: string): void {
  const probe = spawnSync(command, [versionFlag], { stdio: 'ignore' });
  if (probe.error !== undefined) throw new Error(`${command} is not installed (Debian: apt-get install ${debianPackage})`);
}

/** The demo server (`npm start`'s) running as a child process. */
export interface Demo {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly echoPort: number;
  readonly httpPort: number;
  /** Everything it has printed so far. */
  readonly out: { stdout: string; stderr: string };
  /** Resolves with its exit code (null if a signal ended it). */
  readonly exited: Promise<number | null>;
}

/** Starts the demo server on free ports, under an open-file limit if `fdLimit` is given. */
export async function startDemo(args: readonly string[], fdLimit?: number): Promise<Demo> {
  const argv = [MAIN, '--port', '0', '--http-port', '0', ...args];
  // exec: the shell becomes the server, so the pid is the server's.
  const child =
    fdLimit === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -n ${fdLimit}; exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const listening = await eventually(() => out.stdout.includes('Ctrl-C stops') || child.exitCode !== null, 10_000);
  const ports = /echo on [^ ]+:(\d+), HTTP on [^ ]+:(\d+)/.exec(out.stdout);
  if (!listening || ports === null) {
    child.kill('SIGKILL');
    throw new Error(`the demo server did not start: ${out.stdout}${out.stderr}`);
  }
  return { child, pid: child.pid!, echoPort: Number(ports[1]), httpPort: Number(ports[2]), out, exited };
}

/** Sends SIGINT; resolves with the exit code, or kills the server and fails after `ms`. */
export async function interrupt(demo: Demo, ms: number): Promise<number | null> {
  demo.child.kill('SIGINT');
  try {
    return await within('the server to exit after SIGINT', demo.exited, ms);
  } catch (e) {
    demo.child.kill('SIGKILL');
    throw e;
  }
}

/** A client connection that records what it reads and how it ended. */
export class Peer {
  private readonly chunks: Buffer[] = [];
  received = 0;
  /** The server's end of stream arrived. */
  ended = false;
  closed = false;
  error: Error | undefined;

  private constructor(readonly socket: nodeNet.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
    socket.on('error', (e) => (this.error = e));
  }

  static async connect(port: number): Promise<Peer> {
    const socket = nodeNet.connect(port, '127.0.0.1');
    const failed = once(socket, 'error').then(([e]) => Promise.reject(e as Error));
    await within(`a connection to port ${port}`, Promise.race([once(socket, 'connect'), failed]), 10_000);
    failed.catch(() => {});
    return new Peer(socket);
  }

  /** `n` connections, at most `parallel` being made at once. */
  static async connectMany(port: number, n: number, parallel = 100): Promise<Peer[]> {
    const peers: Peer[] = [];
    for (let at = 0; at < n; at += parallel) {
      peers.push(...(await Promise.all(Array.from({ length: Math.min(parallel, n - at) }, () => Peer.connect(port)))));
    }
    return peers;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Whether `received` reaches `bytes` within `ms`. */
  receives(bytes: number, ms: number): Promise<boolean> {
    return eventually(() => this.received >= bytes, ms);
  }
}

/** How `status` and time of every probe went. */
export interface ProbeResults {
  readonly probes: number;
  readonly times: readonly number[];
  readonly failures: readonly string[];
  /** The phase the slowest probe was made in. */
  readonly slowestDuring: string;
}

/**
 * Requests http://127.0.0.1:port/ with curl every `everyMs` (the next one starts when both the
 * period and the last request are over) until stopped. A probe fails if it gets anything but 200,
 * or takes longer than `limitMs` (curl's own time, from the start of the connect to the end).
 */
export class CurlProbe {
  /** What is going on meanwhile, named in each failure. */
  phase = '';
  private stopped = false;
  private readonly times: number[] = [];
  private slowest = { ms: 0, phase: '' };
  private readonly failures: string[] = [];
  private readonly loop: Promise<void>;

  constructor(port: number, everyMs: number, limitMs: number) {
    const url = `http://127.0.0.1:${port}/`;
    this.loop = (async () => {
      while (!this.stopped) {
        const started = performance.now();
        const failure = await new Promise<string | undefined>((resolve) => {
          execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '--max-time', '2', url], (error, stdout) => {
            const [code, seconds] = stdout.split(' ');
            const took = Number(seconds) * 1000;
            if (Number.isFinite(took)) {
              this.times.push(took);
              if (took > this.slowest.ms) this.slowest = { ms: took, phase: this.phase };
            }
            if (error !== null) resolve(`curl failed (exit ${String(error.code)}) after ${Math.round(took)} ms`);
            else if (code !== '200') resolve(`status ${code}`);
            else if (took > limitMs) resolve(`200 after ${Math.round(took)} ms`);
            else resolve(undefined);
          });
        });
        if (failure !== undefined) this.failures.push(`${failure} (${this.phase})`);
        await sleep(Math.max(0, everyMs - (performance.now() - started)));
      }
    })();
  }

  async stop(): Promise<ProbeResults> {
    this.stopped = true;
    await this.loop;
    return { probes: this.times.length, times: this.times, failures: this.failures, slowestDuring: this.slowest.phase };
  }
}

/** p99 and max of a probe's times, for its line. */
export function probeFigures(r: ProbeResults): string {
  const p = (q: number): string => `${percentile(r.times, q).toFixed(1)} ms`;
  return `${r.probes} curl probes, ${r.probes - r.failures.length} got 200 within the limit, p50 ${p(0.5)}, p99 ${p(0.99)}, max ${p(1)} (during ${r.slowestDuring})`;
}
