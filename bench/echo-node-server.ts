/**
 * The Node baselines of the W3 echo benchmark (bench/echo.ts): a `node:net` echo server in one
 * process, or (`--workers N`) the same server in N `node:cluster` workers sharing one port.
 *
 * Each connection echoes what it reads with `socket.write`, pausing while a write is buffered
 * (back-pressure), with TCP_NODELAY as evdispatch's server sets it. Listens on 127.0.0.1 (port
 * 0: any free one) and prints "port P pids A,B,..." (this process, then every worker) once
 * every process listens. Stops on SIGTERM or SIGINT, or when its stdin ends (so it never
 * outlives the benchmark that started it); a cluster's workers go with their primary.
 *
 * usage: node build/bench/echo-node-server.js [--workers N] [--port P]
 */
import cluster from 'node:cluster';
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

/** Listens; resolves with the port. */
function listen(port: number): Promise<number> {
  const server = createServer({ noDelay: true }, echo);
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
  const port = await listen(Number(process.env['ECHO_PORT'] ?? '0'));
  process.send!({ port });
} else {
  const { values } = parseArgs({
    options: { workers: { type: 'string', default: '0' }, port: { type: 'string', default: '0' } },
    strict: true,
    allowPositionals: false,
  });
  const workers = Number(values.workers);
  const port = Number(values.port);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64 || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: node build/bench/echo-node-server.js [--workers N (0-64)] [--port P]\n');
    process.exit(2);
  }
  if (workers === 0) {
    const bound = await listen(port);
    stopWith(() => process.exit(0));
    process.stdout.write(`port ${bound} pids ${process.pid}\n`);
  } else {
    // Workers inherit no stdin: they end through the primary (cluster workers exit on disconnect).
    cluster.setupPrimary({ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const forked = Array.from({ length: workers }, () => cluster.fork({ ECHO_PORT: String(port) }));
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
