/**
 * The idle connections of bench/echo.ts --idle: COUNT TCP connections to HOST:PORT that send
 * nothing and are held open, in a process of their own, so that the load generator's
 * descriptors and CPU are not theirs. It connects BATCH at a time (a burst of thousands
 * would overflow the server's accept backlog, and each dropped SYN waits a second for its
 * retransmission), prints "ready" once all are connected, then answers stdin's commands:
 *   count  print "open N": how many are still open (the server closes one when its idle
 *          deadline passes; the benchmark checks that none did during its window)
 *   quit   exit (as does end of file on stdin, so it never outlives the benchmark)
 *
 * usage: node build/bench/echo-idle.js HOST PORT COUNT
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

/** Connections being set up at once. */
const BATCH = 256;

const [host, portText, countText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
if (host === undefined || !(port >= 1 && port <= 65535) || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: node build/bench/echo-idle.js HOST PORT COUNT\n');
  process.exit(2);
}

let open = 0;

function opened(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host, port }, () => {
      open++;
      socket.once('close', () => open--);
      resolve();
    });
    // Before the connection: a failure; after it, a reset is seen as the 'close' that follows.
    socket.on('error', reject);
    // Whatever the server sends (nothing, from an echo server) is dropped.
    socket.on('data', () => {});
  });
}

try {
  for (let done = 0; done < count; done += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, count - done) }, opened));
  }
} catch (e) {
  process.stderr.write(`echo-idle: connecting: ${(e as Error).message} (after ${open} connections)\n`);
  process.exit(1);
}
process.stdout.write('ready\n');

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'quit') process.exit(0);
  if (line === 'count') process.stdout.write(`open ${open}\n`);
  else process.stderr.write(`echo-idle: unknown command '${line}'\n`);
});
lines.on('close', () => process.exit(0));
