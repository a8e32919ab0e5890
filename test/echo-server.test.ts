/**
 * The echo server of examples/echo-server, started in-process on free ports, against clients
 * made with Node's own net module: real sockets, real worker threads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as nodeNet from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, it } from 'vitest';
import { startServer, type Server, type ServerOptions } from '../examples/echo-server/server.js';
import * as net from '../src/net/index.js';
import { setReceiveBuffer } from './support/receive-buffer.js';
import { until } from './support/wait.js';

const MAIN = fileURLToPath(new URL('../examples/echo-server/main.js', import.meta.url));

const servers: Server[] = [];
const sockets: nodeNet.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.stop({ drainMs: 0 })));
});

async function serve(options: ServerOptions = {}): Promise<Server> {
  const server = await startServer({ port: 0, httpPort: 0, ...options });
  servers.push(server);
  return server;
}

/** A client connection that records what it reads and how it ended. */
class Client {
  private readonly chunks: Buffer[] = [];
  received = 0;
  /** The server's end of stream arrived. */
  ended = false;
  error: Error | undefined;

  constructor(readonly socket: nodeNet.Socket) {
    sockets.push(socket);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', (e) => (this.error = e));
  }

  static async connect(port: number): Promise<Client> {
    const socket = nodeNet.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new Client(socket);
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  text(): string {
    return this.bytes().toString('latin1');
  }
}

/**
 * A client over src/net with a 64 KiB receive buffer: it writes `size` random bytes as fast as
 * its socket takes them, reads at most 64 KiB a millisecond, and checks every byte it reads
 * against what it sent, in order.
 */
async function slowEchoClient(port: number, size: number): Promise<void> {
  const fd = net.connect('127.0.0.1', port);
  try {
    setReceiveBuffer(fd, 64 << 10);
    const sent = randomBytes(size);
    const buf = new Uint8Array(64 << 10);
    let written = 0;
    let read = 0;
    const end = performance.now() + 20_000;
    while (read < size) {
      assert.ok(performance.now() < end, `echoed ${read} of ${size} bytes in 20 s`);
      // -1 while the connect is still under way, or the socket is full.
      if (written < size) written += Math.max(0, net.send(fd, sent, written));
      const n = net.recv(fd, buf);
      assert.notEqual(n, 0, `end of stream after ${read} bytes`);
      if (n > 0) {
        assert.ok(Buffer.from(buf.buffer, 0, n).equals(sent.subarray(read, read + n)), `the echo differs from what was sent in bytes ${read} to ${read + n}`);
        read += n;
      }
      await sleep(1);
    }
  } finally {
    net.close(fd);
  }
}

it('slow_reader_gets_every_byte_in_order_through_partial_sends', async () => {
  const server = await serve({ threads: 4 });
  // The server's send buffer grows to 4 MiB (Linux's tcp_wmem): past that, what the slow reader
  // has not taken waits in the registration's state, many times over.
  const SIZE = 16 << 20;
  await Promise.all([slowEchoClient(server.echoPort, SIZE), slowEchoClient(server.echoPort, SIZE)]);
  const s = server.stats();
  assert.equal(s.bytesIn, 2 * SIZE);
  assert.equal(s.bytesOut, 2 * SIZE);
  assert.ok(s.partialSends > 0, 'sends were partial: the rest waited in the state');
  assert.ok(s.readStalls > 0, 'the state filled up: reading paused until it drained');
  assert.ok(s.handoffs > 0, 'connections moved between threads with their pending bytes');
});

it('idle_connection_is_closed_while_a_busy_one_stays_open', async () => {
  const server = await serve({ idleMs: 300 });
  const idle = await Client.connect(server.echoPort);
  const busy = await Client.connect(server.echoPort);
  const start = performance.now();
  let pings = 0;
  const pinger = setInterval(() => {
    busy.socket.write('ping\n');
    pings++;
  }, 50);
  await until('the idle connection to be closed', () => idle.ended, 2000);
  const idleFor = performance.now() - start;
  await sleep(400); // the busy one outlives its idle time again
  clearInterval(pinger);
  await until('the last echo', () => busy.received === pings * 5);
  assert.ok(idleFor >= 290, `closed after ${idleFor.toFixed(0)} ms, before its idle time`);
  assert.equal(busy.ended, false, 'the busy connection stays open');
  assert.equal(busy.text(), 'ping\n'.repeat(pings));
  assert.deepEqual([server.stats().idleClosed, server.stats().open], [1, 1]);
});

const GET = 'GET / HTTP/1.1\r\nHost: test\r\n\r\n';
const HEAD = 'HEAD / HTTP/1.1\r\nHost: test\r\n\r\n';
const HEADERS = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n';
const OK = `${HEADERS}ok\n`;

it('http_answers_a_request_split_byte_by_byte', async () => {
  const server = await serve({ threads: 4 });
  const client = await Client.connect(server.httpPort);
  for (const byte of GET) {
    client.socket.write(byte);
    await sleep(1);
  }
  await until('the answer', () => client.received >= OK.length);
  client.socket.write(GET); // and the connection is kept alive for the next one
  await until('the second answer', () => client.received >= 2 * OK.length);
  await sleep(20);
  assert.equal(client.text(), OK + OK);
  assert.equal(server.stats().requests, 2);
});

it('http_answers_pipelined_requests_in_order', async () => {
  const server = await serve();
  const client = await Client.connect(server.httpPort);
  client.socket.write(GET + HEAD + GET);
  const expected = OK + HEADERS + OK; // HEAD's answer has no body: the order shows
  await until('three answers', () => client.received >= expected.length);
  await sleep(20);
  assert.equal(client.text(), expected);
  assert.equal(client.ended, false);
});

it('http_answers_431_and_closes_for_an_oversized_head', async () => {
  const server = await serve();
  const client = await Client.connect(server.httpPort);
  client.socket.write(`GET / HTTP/1.1\r\nX-Filler: ${'x'.repeat(5000)}`);
  await until('the end of the connection', () => client.ended);
  assert.match(client.text(), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[^]*Connection: close\r\n\r\n$/);
});

/**
 * "No lost byte" at shutdown: every byte the server read from a connection is echoed back to
 * it, in order, before the connection ends with a clean end of stream; and every byte a client
 * had sent before stop() was called is read. So a client that sent everything before stop()
 * gets all of it back; one that keeps sending gets back a prefix of what it sent, exactly the
 * bytes the server read (the server's totals in and out are equal, and equal to what the
 * clients received), and the rest is read and dropped after the server stopped reading.
 */
it('stop_echoes_every_byte_read_and_closes_cleanly', async () => {
  const server = await serve({ threads: 2 });
  const before = await Client.connect(server.echoPort);
  const streaming = await Client.connect(server.echoPort);
  const quiet = await Client.connect(server.echoPort);
  const first = randomBytes(32 << 10);
  await new Promise((resolve) => before.socket.write(first, resolve));
  const stream = randomBytes(8 << 20);
  let streamed = 0;
  const writer = setInterval(() => {
    if (streaming.ended || streamed >= stream.length) return;
    streaming.socket.write(stream.subarray(streamed, streamed + 4096));
    streamed += 4096;
  }, 1);
  await until('the stream to be under way', () => streaming.received > 64 << 10);

  const summary = await server.stop();
  clearInterval(writer);
  servers.splice(servers.indexOf(server), 1);

  for (const c of [before, streaming, quiet]) {
    assert.equal(c.error, undefined, 'closed cleanly, without a reset');
    assert.ok(c.ended, 'end of stream after the last echoed byte');
  }
  assert.ok(before.bytes().equals(first), 'everything sent before stop() came back');
  assert.ok(streaming.bytes().equals(stream.subarray(0, streaming.received)), 'a prefix of the stream, in order');
  assert.equal(quiet.received, 0);
  const received = before.received + streaming.received;
  assert.equal(summary.bytesIn, received, 'every byte read was echoed and arrived');
  assert.equal(summary.bytesOut, received);
  assert.deepEqual([summary.open, summary.cut, summary.resets], [0, 0, 0]);
  const refused = nodeNet.connect(server.echoPort, '127.0.0.1');
  const [e] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(e.code, 'ECONNREFUSED', 'no longer accepting');
});

/**
 * Starts the CLI, under an open-file limit if `fdLimit` is given; collects its output.
 * `exited` resolves with its exit code.
 */
function startCli(args: string[], fdLimit?: number) {
  const argv = [MAIN, ...args];
  const child =
    fdLimit === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, out, exited };
}

/** The CLI on free ports; resolves once it listens, with its ports. */
async function startListeningCli(fdLimit?: number) {
  const cli = startCli(['--port', '0', '--http-port', '0'], fdLimit);
  await until('the server to listen', () => cli.out.stdout.includes('Ctrl-C stops') || cli.child.exitCode !== null);
  const ports = /echo on [^ ]+:(\d+), HTTP on [^ ]+:(\d+)/.exec(cli.out.stdout);
  assert.ok(ports, `no listening line: ${cli.out.stdout}${cli.out.stderr}`);
  return { ...cli, echoPort: Number(ports[1]) };
}

it('bad_flags_exit_2_with_usage', async () => {
  for (const args of [['--bogus'], ['--threads', 'many'], ['--threads', '0'], ['stray']]) {
    const { out, exited } = startCli(args);
    assert.equal(await exited, 2, `${args.join(' ')}: exit code`);
    assert.match(out.stderr, /usage: node build\/examples\/echo-server\/main\.js/, args.join(' '));
    assert.equal(out.stdout, '');
  }
});

it('help_exits_0', async () => {
  const { out, exited } = startCli(['--help']);
  assert.equal(await exited, 0);
  assert.match(out.stdout, /^usage: [^]*--idle-ms N/);
});

it('sigint_stops_the_cli_gracefully_with_a_summary', async () => {
  const { child, out, exited } = await startListeningCli();
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.match(out.stdout, /SIGINT: stopping\nsummary after [\d.]+ s\n {2}connections +0 accepted/);
});

it.skipIf(process.platform === 'win32')('running_out_of_fds_does_not_stop_accepting', async () => {
  const fdLimit = 64;
  const { child, out, exited, echoPort } = await startListeningCli(fdLimit);
  // How many of the limit Node holds itself depends on its version (22 and later add libuv's
  // io_uring rings): clients connect one at a time until accept runs out, which finds what is free.
  const clients: Client[] = [];
  while (!out.stderr.includes('EMFILE')) {
    assert.ok(clients.length < fdLimit, `accept never failed: ${clients.length} connections echoed`);
    const c = await Client.connect(echoPort);
    clients.push(c);
    c.socket.write('x');
    await until('an echo or an accept failure', () => c.received > 0 || out.stderr.includes('EMFILE'));
  }
  // Half as many again wait in the backlog: all of them fit once the served ones close.
  const more = await Promise.all(Array.from({ length: Math.ceil(clients.length / 2) }, () => Client.connect(echoPort)));
  for (const c of more) c.socket.write('x');
  clients.push(...more);
  await sleep(100); // the accepted ones echo
  const served = clients.filter((c) => c.received > 0);
  const waiting = clients.filter((c) => c.received === 0);
  assert.ok(served.length > 0 && waiting.length > 0 && waiting.length <= served.length, `${served.length} served, ${waiting.length} waiting`);
  for (const c of served) c.socket.destroy();
  await until('the connections left in the backlog to be accepted and echoed', () => waiting.every((c) => c.received === 1));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.equal(out.stderr.match(/accept failed with EMFILE/g)?.length, 1, `logged once: ${out.stderr}`);
  assert.match(out.stdout, new RegExp(` ${clients.length} accepted`));
});
