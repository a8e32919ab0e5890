/**
 * `npm start`: the echo server's command line. Prints a live status line, and on SIGINT or
 * SIGTERM stops gracefully, prints a summary and exits 0. Bad options: usage, exit code 2.
 */
import { parseArgs } from 'node:util';
import { ReactorError } from '../../src/index.js';
import { raiseFdLimit } from '../../src/sys/limits.js';
import { FD_MARGIN, startServer, type ServerMode, type ServerOptions, type Stats, type Summary } from './server.js';

const USAGE =
  'usage: node build/examples/echo-server/main.js [--threads N] [--host ADDR] [--port N] [--http-port N] [--idle-ms N] [--header-timeout-ms N] [--mode edge|dispatch] [--max-connections N] [--help]';

const HELP = `${USAGE}

A multi-threaded TCP echo server on evdispatch, with an HTTP/1.1 keep-alive responder.
  --threads N    worker threads waiting on the one reactor (default 2)
  --host ADDR    the IPv4 or IPv6 address to listen on (default 127.0.0.1)
  --port N       the echo port (default 7070; 0 picks a free one)
  --http-port N  the HTTP port (default 7071; 0 picks a free one)
  --idle-ms N    close a connection when nothing was read from it for N ms (default 30000)
  --header-timeout-ms N
                 answer 408 and close when an HTTP request head is not complete N ms
                 after its first byte (default 10000)
  --mode edge|dispatch
                 how connections are registered: edge (the default) re-arms with no
                 system call, remembering what arrives while a thread handles one;
                 dispatch re-arms in the kernel (EPOLLONESHOT, EV_DISPATCH), for comparison
  --max-connections N
                 the most connections open at once; more are closed at once and counted
                 as refused (default: the descriptor limit, raised to its hard limit,
                 less ${FD_MARGIN}, or less a quarter of a small limit)
  --help         this text
Try it: nc 127.0.0.1 7070, or curl -s http://127.0.0.1:7071/. Ctrl-C stops it gracefully.`;

/** Status lines: every second on a terminal (rewritten in place), every 5 s in a log. */
const TTY = process.stdout.isTTY === true;
const STATUS_MS = TTY ? 1000 : 5000;

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function integer(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) usageError(`--${name} takes a non-negative integer, got '${text}'`);
  return Number(text);
}

/** The flags as parseArgs reads them; usage and exit 2 for any it does not know. */
function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        threads: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'http-port': { type: 'string' },
        'idle-ms': { type: 'string' },
        'header-timeout-ms': { type: 'string' },
        mode: { type: 'string' },
        'max-connections': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    return usageError((e as Error).message);
  }
}

/** The options, or undefined after --help. */
function parseOptions(argv: string[]): ServerOptions | undefined {
  const values = parseFlags(argv);
  if (values.help) return undefined;
  const options = {
    host: values.host,
    threads: integer('threads', values.threads),
    port: integer('port', values.port),
    httpPort: integer('http-port', values['http-port']),
    idleMs: integer('idle-ms', values['idle-ms']),
    headerTimeoutMs: integer('header-timeout-ms', values['header-timeout-ms']),
    mode: values.mode as ServerMode | undefined, // startServer checks it
    maxConnections: integer('max-connections', values['max-connections']),
  };
  // Only what was given: the server's own defaults stand for the rest.
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as ServerOptions;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

const count = (n: number): string => n.toLocaleString('en-US');

function statusLine(s: Stats, eventsPerSecond: number): string {
  return (
    `open ${count(s.open)} | accepted ${count(s.accepted)} | in ${bytes(s.bytesIn)} | out ${bytes(s.bytesOut)} | ` +
    `${count(Math.round(eventsPerSecond))} events/s | idle-closed ${count(s.idleClosed)} | refused ${count(s.refused)} | accept errors ${count(s.acceptErrors)}`
  );
}

function summaryText(s: Summary): string {
  const seconds = s.durationMs / 1000;
  const rows: [string, string][] = [
    [
      'connections',
      `${count(s.accepted)} accepted, ${count(s.idleClosed)} closed idle (forced), ${count(s.resets)} reset, ` +
        `${count(s.refused)} refused, ${count(s.cut)} cut at shutdown`,
    ],
    ['bytes', `${bytes(s.bytesIn)} in, ${bytes(s.bytesOut)} out, ${bytes(s.discarded)} dropped after stop`],
    [
      'events',
      `${count(s.events)} (${count(Math.round(s.events / Math.max(seconds, 0.001)))}/s), ${count(s.handoffs)} handed between threads`,
    ],
    ['http', `${count(s.requests)} requests, ${count(s.rejected)} rejected, ${count(s.headTimeouts)} head timeouts`],
    ['back-pressure', `${count(s.partialSends)} partial sends, ${count(s.readStalls)} read stalls`],
    ['errors', `${count(s.acceptErrors)} accept, ${count(s.handlerErrors)} handler`],
  ];
  return [`summary after ${seconds.toFixed(1)} s`, ...rows.map(([label, text]) => `  ${label.padEnd(14)}${text}`)].join('\n');
}

const options = parseOptions(process.argv.slice(2));
if (options === undefined) {
  process.stdout.write(`${HELP}\n`);
} else {
  // Before anything opens a descriptor: the default connection limit is sized from it.
  const fdLimit = raiseFdLimit();
  const server = await startServer(options).catch((e: unknown): never => {
    // A value out of range (--threads 0, --port 70000, --mode other) or a host that is no address: usage.
    if (e instanceof RangeError || (e instanceof ReactorError && e.code === 'EINVAL')) usageError(e.message);
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`); // EADDRINUSE, say
    process.exit(1);
  });
  let last = { at: performance.now(), events: 0 };
  const timer = setInterval(() => {
    const s = server.stats();
    const at = performance.now();
    const line = statusLine(s, ((s.events - last.events) * 1000) / (at - last.at));
    last = { at, events: s.events };
    process.stdout.write(TTY ? `\r${line}\x1b[K` : `${line}\n`);
  }, STATUS_MS);

  const shutdown = async (signal: string): Promise<void> => {
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM'); // a second signal now ends the process at once
    clearInterval(timer);
    process.stdout.write(`${TTY ? '\n' : ''}${signal}: stopping\n`);
    console.log(summaryText(await server.stop()));
  };
  // Before the line below: a signal sent as soon as it is read must find its handler.
  process.once('SIGINT', (signal) => void shutdown(signal));
  process.once('SIGTERM', (signal) => void shutdown(signal));
  const host = options.host ?? '127.0.0.1';
  console.log(
    `echo on ${host}:${server.echoPort}, HTTP on ${host}:${server.httpPort}, ${options.threads ?? 2} threads, ${options.mode ?? 'edge'} mode, ` +
      `at most ${count(server.maxConnections)} connections (descriptor limit ${count(fdLimit.soft)}); Ctrl-C stops`,
  );
}
