/**
 * The Node baselines of the W3 echo benchmark (bench/echo.ts) and of the HTTP one (bench/http.ts,
 * with --http): a `node:net` echo server, or a `node:http` server, in one process, or
 * (`--workers N`) the same server in N `node:cluster` workers sharing one port.
 *
 * Each echo connection echoes what it reads with `socket.write`, pausing while a write is
 * buffered (back-pressure), with TCP_NODELAY as evdispatch's server sets it. The HTTP server
 * answers every request with the bytes the demo's responder sends (examples/echo-server/http.ts):
 * 200, `ok\n`, the same three fields in the same order, no Date. Listens on 127.0.0.1 (port
 * 0: any free one) and prints "port P pids A,B,..." (this process, then every worker) once
 * every process listens. Stops on SIGTERM or SIGINT, or when its stdin ends (so it never
 * outlives the benchmark that started it); a cluster's workers go with their primary.
 *
 * usage: node build/bench/echo-node-server.js [--http] [--workers N] [--port P]
 */
import cluster from 'node:cluster';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

function echo(socket: Socket): void {
  socket.on('data', (chunk: Buffer) => {
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  });
  socket.on('error', () => socket.destroy());
}

const BODY = 'ok\n';

function answer(_request: IncomingMessage, response: ServerResponse): void {
  response.sendDate = false;
  // Connection set here, node adds no Keep-Alive field: the demo sends none.
  response.writeHead(200, {
    'Content-Type': 'text/plain',
    'Content-Length': String(BODY.length),
    Connection: response.shouldKeepAlive ? 'keep-alive' : 'close',
  });
  response.end(BODY);
}

/** Listens; resolves with the port. */
function listen(port: number, http: boolean): Promise<number> {
  const server = http ? createHttpServer({ noDelay: true }, answer) : createServer({ noDelay: true }, echo);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, backlog: 511 }, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Ends this process when the benchmark goes away: stdin at its end, or a signal. */
function stopWith(stop: () => void): void {
  process.stdin.on('end', stop).on('close', stop).on('error', stop).resume();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (cluster.isWorker) {
  // A cluster worker: listen (the primary shares one port among all), report it, echo.
  const port = await listen(Number(process.env['ECHO_PORT'] ?? '0'), process.env['ECHO_HTTP'] === '1');
  process.send!({ port });
} else {
  const { values } = parseArgs({
    options: { workers: { type: 'string', default: '0' }, port: { type: 'string', default: '0' }, http: { type: 'boolean', default: false } },
    strict: true,
    allowPositionals: false,
  });
  const workers = Number(values.workers);
  const port = Number(values.port);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64 || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: node build/bench/echo-node-server.js [--http] [--workers N (0-64)] [--port P]\n');
    process.exit(2);
  }
  if (workers === 0) {
    const bound = await listen(port, values.http);
    stopWith(() => process.exit(0));
    process.stdout.write(`port ${bound} pids ${process.pid}\n`);
  } else {
    // Workers inherit no stdin: they end through the primary (cluster workers exit on disconnect).
    cluster.setupPrimary({ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const forked = Array.from({ length: workers }, () => cluster.fork({ ECHO_PORT: String(port), ECHO_HTTP: values.http ? '1' : '0' }));
    stopWith(() => {
      for (const w of forked) w.process.kill('SIGKILL');
      process.exit(0);
    });
    const ports = await Promise.all(
      forked.map(
        (w) =>
          new Promise<number>((resolve, reject) => {
            w.once('message', (m: { port: number }) => resolve(m.port));
            w.once('exit', (code) => reject(new Error(`a cluster worker exited (code ${String(code)}) before it listened`)));
          }),
      ),
    );
    if (new Set(ports).size !== 1) throw new Error(`the cluster workers listen on different ports: ${ports.join(', ')}`);
    const pids = [process.pid, ...forked.map((w) => w.process.pid!)];
    process.stdout.write(`port ${ports[0]!} pids ${pids.join(',')}\n`);
  }
}
