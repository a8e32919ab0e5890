/**
 * Faults done to the demo server (`npm start`'s, build/examples/echo-server/main.js) as a child
 * process on free ports: out of descriptors; then, on one server, 2,000 idle connections,
 * slowloris, a 10 MB header, garbage, resets mid-response, half-closes and `ab` churn while curl
 * probes it, and SIGINT. The lost connection a fault is made of is no loss; any other is.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CurlProbe, interrupt, Peer, probeFigures, requireTool, startDemo, type Demo } from './clients.js';
import { count, eventually, Losses, ms, openFds, type FaultGroup, type Outcome, type Report } from './fault.js';

const GET = 'GET / HTTP/1.1\r\nHost: faults\r\n\r\n';
const OK_LENGTH = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n'.length;

/** Whether the server answers one echo and one HTTP request: checked after each fault. */
async function serving(demo: Demo): Promise<boolean> {
  const [echo, http] = await Promise.all([Peer.connect(demo.echoPort), Peer.connect(demo.httpPort)]);
  echo.socket.write('still there?');
  http.socket.write(GET);
  const answered = (await echo.receives(12, 5000)) && (await http.receives(OK_LENGTH, 5000));
  echo.socket.destroy();
  http.socket.destroy();
  return answered && echo.text() === 'still there?' && http.text().startsWith('HTTP/1.1 200 OK');
}

/** The checks every fault against the running server ends with: it still serves, and logged nothing. */
async function stillServing(demo: Demo, losses: Losses): Promise<void> {
  losses.check(demo.child.exitCode === null, `the server exited (code ${demo.child.exitCode})`);
  if (demo.child.exitCode === null) losses.check(await serving(demo), 'the server stopped answering');
  losses.check(demo.out.stderr === '', `the server logged: ${demo.out.stderr.trim().split('\n')[0]}`);
}

/** Descriptors the server under ulimit -n may hold: fewer than the connections thrown at it. */
const FD_LIMIT = 64;
const HAMMER = 120;

/**
 * The server under `ulimit -n 64`, and 120 connections at once, each sending a byte: it reports
 * EMFILE, echoes on the ones it has, and takes the rest from the backlog as those close.
 */
async function outOfFds(): Promise<Outcome> {
  const losses = new Losses();
  const demo = await startDemo([], FD_LIMIT);
  const peers: Peer[] = [];
  try {
    peers.push(...(await Peer.connectMany(demo.echoPort, HAMMER)));
    for (const p of peers) p.socket.write('x');
    const emfile = await eventually(() => demo.out.stderr.includes('EMFILE'), 5000);
    losses.check(emfile, 'no EMFILE was reported');
    await sleep(200); // what was accepted echoes
    const firstServed = peers.filter((p) => p.received > 0).length;
    losses.check(firstServed > 0 && firstServed < HAMMER, `${firstServed} of ${HAMMER} served before any closed`);
    let rounds = 0;
    let kept = true;
    // Round after round: those served echo once more, then close, and the backlog moves up.
    for (const end = performance.now() + 20_000; peers.some((p) => !p.closed) && performance.now() < end; rounds++) {
      await eventually(() => peers.some((p) => !p.closed && p.received === 1), 3000);
      const served = peers.filter((p) => !p.closed && p.received === 1);
      for (const p of served) p.socket.write('y');
      kept &&= (await Promise.all(served.map((p) => p.receives(2, 3000)))).every(Boolean);
      for (const p of served) p.socket.destroy();
      await eventually(() => served.every((p) => p.closed), 1000);
    }
    const served = peers.filter((p) => p.received === 2 && p.text() === 'xy').length;
    losses.check(kept, 'a connection it had stopped echoing');
    losses.check(served === HAMMER, `${HAMMER - served} of ${HAMMER} connections never served`);
    const code = await interrupt(demo, 10_000);
    losses.check(code === 0, `exit code ${code} after SIGINT`);
    losses.check(new RegExp(` ${HAMMER} accepted`).test(demo.out.stdout), `the summary does not say ${HAMMER} accepted: ${demo.out.stdout}`);
    return losses.outcome(`limit ${FD_LIMIT} fds, ${HAMMER} connections: ${firstServed} served at first, the rest in ${rounds} rounds as fds freed, all echoed, exit ${code}`);
  } finally {
    for (const p of peers) p.socket.destroy();
    demo.child.kill('SIGKILL');
  }
}

export const fdsExhausted: FaultGroup = {
  name: 'fds',
  limitMs: 40_000,
  async run(report) {
    report('fds-exhausted', await outOfFds());
  },
};

const IDLE = 2000;
const HEADER_TIMEOUT_MS = 1000;

/** 2,000 connections, half echo, half HTTP, opened and left idle; each must still be served. */
async function openIdle(demo: Demo): Promise<{ echo: Peer[]; http: Peer[] }> {
  const echo = await Peer.connectMany(demo.echoPort, IDLE / 2);
  const http = await Peer.connectMany(demo.httpPort, IDLE / 2);
  return { echo, http };
}

/**
 * Each idle connection sends once more (the `round`th time) and must get its answer, still open.
 * A hundred at a time: a burst of 2,000 requests at once would be a load test, not idle clients.
 * Returns how many were answered.
 */
async function serveIdle(idle: { echo: Peer[]; http: Peer[] }, round: number): Promise<number> {
  const all = [...idle.echo.map((p) => [p, 'i', round] as const), ...idle.http.map((p) => [p, GET, round * OK_LENGTH] as const)];
  let answered = 0;
  for (let at = 0; at < all.length; at += 100) {
    const batch = all.slice(at, at + 100);
    for (const [p, request] of batch) p.socket.write(request);
    const got = await Promise.all(batch.map(([p, , bytes]) => p.receives(bytes, 10_000)));
    answered += batch.filter(([p], i) => got[i] && !p.ended).length;
  }
  return answered;
}

async function idleConnections(demo: Demo, idle: { echo: Peer[]; http: Peer[] }): Promise<Outcome> {
  const losses = new Losses();
  const start = performance.now();
  await sleep(1000); // idle
  const served = await serveIdle(idle, 1);
  losses.check(served === IDLE, `${IDLE - served} of ${IDLE} idle connections closed or not answered`);
  await stillServing(demo, losses);
  return losses.outcome(`${count(IDLE)} connections open, idle 1 s, each then answered and left open for the faults below (${ms(performance.now() - start)})`);
}

const SLOWLORIS = 100;

/** Clients sending a request head a byte every 100 ms: each gets 408 and is closed by the header timeout. */
async function slowloris(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const peers = await Peer.connectMany(demo.httpPort, SLOWLORIS);
  const head = `GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ${'s'.repeat(1000)}`;
  const start = performance.now();
  const closedAt = new Map<Peer, number>();
  const timers = peers.map((p) => {
    let at = 0;
    const timer = setInterval(() => {
      if (p.ended || p.closed || p.error) {
        closedAt.set(p, performance.now() - start);
        clearInterval(timer);
        p.socket.destroy();
      } else if (at < head.length) p.socket.write(head[at++]!);
    }, 100);
    return timer;
  });
  const limit = HEADER_TIMEOUT_MS + 2000;
  await eventually(() => closedAt.size === SLOWLORIS, limit);
  timers.forEach(clearInterval);
  for (const p of peers) p.socket.destroy();
  const times = [...closedAt.values()];
  losses.check(closedAt.size === SLOWLORIS, `${SLOWLORIS - closedAt.size} slowloris connections still open after ${limit} ms`);
  const got408 = peers.filter((p) => p.text().startsWith('HTTP/1.1 408 ')).length;
  losses.check(got408 === SLOWLORIS, `${SLOWLORIS - got408} slowloris connections closed without a 408`);
  await stillServing(demo, losses);
  const closed = times.length === 0 ? 'none closed' : `closed after ${ms(Math.min(...times))} to ${ms(Math.max(...times))}`;
  return losses.outcome(`${SLOWLORIS} clients at a byte per 100 ms, header timeout ${HEADER_TIMEOUT_MS} ms: ${got408} got 408, ${closed}`);
}

const BIG_HEADERS = 4;
const BIG = 10 << 20;

/** Clients sending a 10 MB header: each gets 431, what it sends is dropped, and its close is clean. */
async function bigHeader(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const peers = await Peer.connectMany(demo.httpPort, BIG_HEADERS);
  const start = performance.now();
  const filler = Buffer.alloc(BIG, 'h');
  const prefix = 'GET / HTTP/1.1\r\nHost: big\r\nX-Big: ';
  for (const p of peers) {
    p.socket.write(prefix);
    p.socket.end(filler);
  }
  const closed = await eventually(() => peers.every((p) => p.closed), 20_000);
  losses.check(closed, `${peers.filter((p) => !p.closed).length} connections still open after 20 s`);
  const refused = peers.filter((p) => p.text().startsWith('HTTP/1.1 431 ')).length;
  losses.check(refused === BIG_HEADERS, `${BIG_HEADERS - refused} of ${BIG_HEADERS} got no 431`);
  const written = peers.reduce((sum, p) => sum + p.socket.bytesWritten, 0);
  losses.check(written === BIG_HEADERS * (prefix.length + BIG), `${count(written)} of ${count(BIG_HEADERS * (prefix.length + BIG))} bytes sent`);
  const resets = peers.filter((p) => p.error !== undefined).length;
  losses.check(resets === 0, `${resets} ended in ${peers.find((p) => p.error)?.error?.message}`);
  for (const p of peers) p.socket.destroy();
  await stillServing(demo, losses);
  return losses.outcome(`${BIG_HEADERS} clients, ${(written / 2 ** 20).toFixed(1)} MiB sent: ${refused} got 431, all sent bytes taken and dropped, closed in ${ms(performance.now() - start)}`);
}

/** Requests no HTTP/1.x server may answer with 200, with the status each gets. */
const GARBAGE: readonly (readonly [string, number])[] = [
  ['GET / HTTP/1.1\nHost: x\n\n', 400],
  ['GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n', 400],
  ['GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400],
  ['GET  / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['GET /\r\n\r\n', 400],
  ['GET / HTTP/1.1\r\n\r\n', 400],
  ['\0\0\0\0\r\n\r\n', 400],
  ['G\x7fT / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
  ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
  ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', 501],
  ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 400],
];
const RANDOM_GARBAGE = 200;
const ECHO_GARBAGE = 1 << 20;

/** Random bytes with no CR or LF in them, ending in a blank line. */
function randomHead(): Buffer {
  const body = randomBytes(1 + Math.floor(Math.random() * 2000)).map((b) => (b === 13 || b === 10 ? 0x20 : b));
  return Buffer.concat([body, Buffer.from('\r\n\r\n')]);
}

/**
 * Malformed requests (the table, and random bytes ending in a blank line) get their refusal and
 * a close, never a 200; and a megabyte of random bytes to the echo port comes back byte-exact.
 */
async function garbage(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const requests: [Buffer, number | undefined][] = [
    ...GARBAGE.map(([text, status]): [Buffer, number] => [Buffer.from(text, 'latin1'), status]),
    ...Array.from({ length: RANDOM_GARBAGE }, (): [Buffer, undefined] => [randomHead(), undefined]),
  ];
  const peers = await Peer.connectMany(demo.httpPort, requests.length);
  requests.forEach(([bytes], i) => peers[i]!.socket.write(bytes));
  await eventually(() => peers.every((p) => p.ended), 5000);
  let refused = 0;
  requests.forEach(([bytes, status], i) => {
    const answer = peers[i]!.text();
    const got = /^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1];
    const right = status === undefined ? got !== undefined && got[0] === '4' : got === String(status);
    if (right && peers[i]!.ended) refused++;
    else if (losses.lost.length < 3) losses.lost.push(`${JSON.stringify(bytes.toString('latin1').slice(0, 40))} got ${JSON.stringify(answer.slice(0, 40))}${peers[i]!.ended ? '' : ', left open'}`);
  });
  for (const p of peers) p.socket.destroy();
  const echo = await Peer.connect(demo.echoPort);
  const sent = randomBytes(ECHO_GARBAGE);
  echo.socket.write(sent);
  await echo.receives(ECHO_GARBAGE, 10_000);
  losses.check(echo.bytes().equals(sent), `random bytes echoed wrong: ${echo.received} bytes back of ${ECHO_GARBAGE}`);
  echo.socket.destroy();
  await stillServing(demo, losses);
  return losses.outcome(`${requests.length} malformed requests (${GARBAGE.length} kinds, ${RANDOM_GARBAGE} random): ${refused} refused (400, 501, 505) and closed, none got 200; 1 MiB of random bytes echoed byte-exact`);
}

const RESET_WRITERS = 30;
const RESET_AFTER_REQUEST = 300;
const RESET_PIPELINE = 2000;

/**
 * Connections reset (SO_LINGER 0 close) while the server is writing to them: echo clients that
 * sent 4 MiB and read none of it, HTTP clients that pipelined 2,000 requests and read no answer;
 * and clients that reset right after sending a request. Only they are lost.
 */
async function resets(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const echo = await Peer.connectMany(demo.echoPort, RESET_WRITERS);
  const http = await Peer.connectMany(demo.httpPort, RESET_WRITERS);
  const writers = [...echo, ...http];
  for (const p of writers) p.socket.pause(); // reads nothing: the server's sends fill up
  const payload = randomBytes(4 << 20);
  for (const p of echo) p.socket.write(payload);
  const pipeline = GET.repeat(RESET_PIPELINE);
  for (const p of http) p.socket.write(pipeline);
  await sleep(300); // the server is writing, partially, into full sockets
  for (const p of writers) p.socket.resetAndDestroy();
  let quick = 0;
  for (let at = 0; at < RESET_AFTER_REQUEST; at += 50) {
    const batch = await Peer.connectMany(demo.httpPort, Math.min(50, RESET_AFTER_REQUEST - at));
    await Promise.all(batch.map((p) => new Promise<void>((resolve) => p.socket.write(GET, () => (p.socket.resetAndDestroy(), resolve())))));
    quick += batch.length;
  }
  await stillServing(demo, losses);
  return losses.outcome(`${writers.length} reset mid-response (${RESET_WRITERS} echo with 4 MiB unread, ${RESET_WRITERS} HTTP with ${count(RESET_PIPELINE)} answers unread), ${quick} reset right after a request`);
}

const HALF_CLOSES = 150;

/** Clients that send, then shut down their side: each gets all its answer, then the server's close. */
async function halfCloses(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const echo = await Peer.connectMany(demo.echoPort, HALF_CLOSES);
  const http = await Peer.connectMany(demo.httpPort, HALF_CLOSES);
  const sent = echo.map(() => randomBytes(1000));
  echo.forEach((p, i) => p.socket.end(sent[i]!));
  for (const p of http) p.socket.end(GET);
  await eventually(() => [...echo, ...http].every((p) => p.ended), 5000);
  const echoed = echo.filter((p, i) => p.ended && p.bytes().equals(sent[i]!)).length;
  const answered = http.filter((p) => p.ended && p.text().startsWith('HTTP/1.1 200 OK') && p.received === OK_LENGTH).length;
  losses.check(echoed === HALF_CLOSES, `${HALF_CLOSES - echoed} of ${HALF_CLOSES} half-closed echo clients lost bytes or were not closed`);
  losses.check(answered === HALF_CLOSES, `${HALF_CLOSES - answered} of ${HALF_CLOSES} half-closed HTTP clients lost their answer or were not closed`);
  for (const p of [...echo, ...http]) p.socket.destroy();
  await stillServing(demo, losses);
  return losses.outcome(`${HALF_CLOSES} echo clients sent 1000 bytes and shut down: ${echoed} got them all back, then the close; ${HALF_CLOSES} HTTP: ${answered} answered, then the close`);
}

const AB_REQUESTS = 20_000;
const AB_CONCURRENCY = 50;

/** apache2-utils' ab: HTTP/1.0, one connection per request, 50 at a time. */
async function churn(demo: Demo): Promise<Outcome> {
  const losses = new Losses();
  const start = performance.now();
  const { error, stdout, stderr } = await new Promise<{ error: Error | null; stdout: string; stderr: string }>((resolve) =>
    execFile('ab', ['-q', '-s', '10', '-n', String(AB_REQUESTS), '-c', String(AB_CONCURRENCY), `http://127.0.0.1:${demo.httpPort}/`], { timeout: 60_000 }, (e, out, err) =>
      resolve({ error: e, stdout: out, stderr: err }),
    ),
  );
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(stdout)?.[1] ?? NaN);
  const complete = field('Complete requests');
  const failed = field('Failed requests');
  const non2xx = field('Non-2xx responses'); // printed only when there are some
  losses.check(error === null, `ab failed: ${error?.message.split('\n')[0]} ${stderr.trim()}`);
  losses.check(complete === AB_REQUESTS, `${AB_REQUESTS - complete} of ${AB_REQUESTS} requests not completed`);
  losses.check(failed === 0, `${failed} requests failed`);
  losses.check(Number.isNaN(non2xx), `${non2xx} answers were not 2xx`);
  const rate = /^Requests per second:\s+([\d.]+)/m.exec(stdout)?.[1];
  await stillServing(demo, losses);
  return losses.outcome(`ab -n ${AB_REQUESTS} -c ${AB_CONCURRENCY}: ${count(complete)} complete, ${failed} failed, ${rate} requests/s, ${ms(performance.now() - start)}`);
}

/** The faults that run on one server while the probe runs, in order. */
const UNDER_PROBE: readonly (readonly [string, (demo: Demo) => Promise<Outcome>])[] = [
  ['slowloris', slowloris],
  ['10mb-header', bigHeader],
  ['garbage', garbage],
  ['rst-mid-response', resets],
  ['half-close', halfCloses],
  ['ab-churn', churn],
];

/** A probe slower than this fails. */
const PROBE_LIMIT_MS = 100;

/** What the server's summary says, from the lines main.ts prints. */
function summaryFigures(stdout: string): { accepted: number; resets: number; cut: number; handlerErrors: number } | undefined {
  const n = (s: string | undefined): number => Number(s?.replaceAll(',', ''));
  const c = /connections +([\d,]+) accepted, .* ([\d,]+) reset, .* ([\d,]+) cut at shutdown/.exec(stdout);
  const e = /errors +[\d,]+ accept, ([\d,]+) handler/.exec(stdout);
  if (c === null || e === null) return undefined;
  return { accepted: n(c[1]), resets: n(c[2]), cut: n(c[3]), handlerErrors: n(e[1]) };
}

async function runOnOneServer(report: Report): Promise<void> {
  requireTool('curl', '--version', 'curl');
  requireTool('ab', '-V', 'apache2-utils');
  const demo = await startDemo(['--threads', '2', '--idle-ms', '60000', '--header-timeout-ms', String(HEADER_TIMEOUT_MS)]);
  const idle = { echo: [] as Peer[], http: [] as Peer[] };
  try {
    // The baseline once the server has served: whatever it opens lazily is open by then.
    await serving(demo);
    await sleep(100);
    const fdsBefore = openFds(demo.pid);
    const probe = new CurlProbe(demo.httpPort, 100, PROBE_LIMIT_MS);
    probe.phase = 'idle-2000';
    Object.assign(idle, await openIdle(demo));
    report('idle-2000', await idleConnections(demo, idle));
    for (const [name, fault] of UNDER_PROBE) {
      probe.phase = name;
      report(name, await fault(demo));
    }

    const probed = await probe.stop();
    report('curl-probe', { lost: probed.failures.slice(0, 3).concat(probed.failures.length > 3 ? [`${probed.failures.length - 3} more`] : []), figures: probeFigures(probed) });

    const losses = new Losses();
    const stillServed = await serveIdle(idle, 2);
    losses.check(stillServed === IDLE, `${IDLE - stillServed} of the ${IDLE} idle connections lost by the end`);
    for (const p of [...idle.echo, ...idle.http]) p.socket.end();
    const back = await eventually(() => openFds(demo.pid) === fdsBefore, 10_000);
    const fdsAfter = openFds(demo.pid);
    losses.check(back, `${fdsAfter - fdsBefore} descriptors more than before the faults, 10 s after every client closed`);
    report('server-fds', losses.outcome(`the ${count(IDLE)} idle connections answered again after every fault, then closed; ${fdsBefore} fds before the faults, ${fdsAfter} after`));

    const stop = new Losses();
    const start = performance.now();
    const code = await interrupt(demo, 15_000);
    const summary = summaryFigures(demo.out.stdout);
    stop.check(code === 0, `exit code ${code}`);
    stop.check(summary !== undefined, `no summary: ${demo.out.stdout.slice(-200)}`);
    stop.check(summary?.cut === 0, `${summary?.cut} connections cut at shutdown`);
    stop.check(summary?.handlerErrors === 0, `${summary?.handlerErrors} handler errors`);
    stop.check(demo.out.stderr === '', `the server logged: ${demo.out.stderr.trim().split('\n')[0]}`);
    report(
      'sigint',
      stop.outcome(`exit ${code} in ${ms(performance.now() - start)}, summary: ${count(summary?.accepted ?? 0)} accepted, ${count(summary?.resets ?? 0)} reset, ${summary?.cut} cut, ${summary?.handlerErrors} handler errors`),
    );
  } finally {
    for (const p of [...idle.echo, ...idle.http]) p.socket.destroy();
    demo.child.kill('SIGKILL');
  }
}

export const serverFaults: FaultGroup = {
  name: 'server',
  limitMs: 90_000,
  run: runOnOneServer,
};
