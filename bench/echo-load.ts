/**
 * The W3 echo load generator in Node, for machines without a C compiler: the same closed loop
 * and the same stdin/stdout protocol as bench/c/echo-load.c (see there), on `node:net`. It
 * costs more CPU per round trip than the C one, so with it the servers are measured under a
 * heavier neighbour; bench/echo.ts says so when it falls back to it.
 *
 * usage: node build/bench/echo-load.js HOST PORT CONNECTIONS SIZE
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Histogram } from './echo-histogram.js';

const [host, portText, connectionsText, sizeText] = process.argv.slice(2);
const port = Number(portText);
const connections = Number(connectionsText);
const size = Number(sizeText);
if (host === undefined || !(port >= 1 && port <= 65535) || !(connections >= 1) || !(size >= 1 && size <= 1 << 24)) {
  process.stderr.write('usage: node build/bench/echo-load.js HOST PORT CONNECTIONS SIZE\n');
  process.exit(2);
}

const histogram = new Histogram();
let roundTrips = 0;

function fail(index: number, why: string): never {
  process.stderr.write(`echo-load: connection ${index}: ${why}\n`);
  process.exit(1);
}

/** One connection's closed loop: send a message, take its whole echo back, send the next. */
function run(socket: Socket, index: number): void {
  const msg = Buffer.alloc(size);
  let seq = 0;
  let got = 0;
  let start = 0n;
  const send = (): void => {
    const base = (seq * 131 + index * 7) & 0xff;
    for (let i = 0; i < size; i++) msg[i] = (base + i) & 0xff;
    got = 0;
    start = process.hrtime.bigint();
    socket.write(msg);
  };
  socket.on('data', (chunk: Buffer) => {
    if (got + chunk.length > size) fail(index, 'the server sent more bytes than the message had');
    if (!chunk.equals(msg.subarray(got, got + chunk.length))) fail(index, 'the echo differs from what was sent');
    got += chunk.length;
    if (got < size) return;
    histogram.record(Number(process.hrtime.bigint() - start));
    roundTrips++;
    seq++;
    send();
  });
  socket.on('close', () => fail(index, 'the server closed the connection'));
  socket.on('error', (e) => fail(index, e.message));
  send();
}

const sockets = await Promise.all(
  Array.from(
    { length: connections },
    () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect({ host, port, noDelay: true }, () => resolve(s));
        s.once('error', reject);
      }),
  ),
);
sockets.forEach(run);

interface Mark {
  readonly atNs: bigint;
  readonly cpu: NodeJS.CpuUsage;
}
const takeMark = (): Mark => ({ atNs: process.hrtime.bigint(), cpu: process.cpuUsage() });
let last = takeMark();
process.stdout.write('ready\n');

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'quit') process.exit(0);
  if (line !== 'mark') {
    process.stderr.write(`echo-load: unknown command '${line}'\n`);
    return;
  }
  const m = takeMark();
  const result = {
    roundTrips,
    wallNs: Number(m.atNs - last.atNs),
    p50Ns: histogram.percentile(0.5),
    p99Ns: histogram.percentile(0.99),
    maxNs: histogram.max,
    userNs: (m.cpu.user - last.cpu.user) * 1e3,
    sysNs: (m.cpu.system - last.cpu.system) * 1e3,
  };
  process.stdout.write(`mark ${JSON.stringify(result)}\n`);
  histogram.reset();
  roundTrips = 0;
  last = takeMark();
});
lines.on('close', () => process.exit(0));
