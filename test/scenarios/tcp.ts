/** TCP through src/net, driven by the reactor: accept, read, write, hang-up, refused connects. */
import assert from 'node:assert/strict';
import { Interest, Ready, type Reactor, type Events } from '../../src/index.js';
import * as net from '../../src/net/index.js';
import { expectCode, withReactor, type Scenario } from './scenario.js';

/** A number no open fd or socket has: far above any fd limit; never a Windows handle (not a multiple of 4). */
const NEVER_OPEN = 0x7ffffff1;

/** Waits until every token in `want` has been delivered; returns each one's flags. */
function collect(r: Reactor, ev: Events, want: readonly number[], timeoutMs = 5000): Map<number, number> {
  const seen = new Map<number, number>();
  const deadline = performance.now() + timeoutMs;
  while (want.some((t) => !seen.has(t))) {
    const left = Math.ceil(deadline - performance.now());
    assert.ok(left > 0, `delivered ${[...seen.keys()].join(', ') || 'nothing'} of ${want.join(', ')} within ${timeoutMs} ms`);
    const n = r.wait(ev, left);
    for (let i = 0; i < n; i++) {
      assert.ok(!seen.has(ev.token(i)), `token ${ev.token(i)} delivered twice without a rearm`);
      seen.set(ev.token(i), ev.readiness(i));
    }
  }
  return seen;
}

/** Reads what is there as text; '' when nothing is. */
function recvText(fd: number): string {
  const buf = new Uint8Array(256);
  const n = net.recv(fd, buf);
  return n > 0 ? Buffer.from(buf.subarray(0, n)).toString() : '';
}

export const tcpScenarios: Scenario[] = [
  {
    name: 'tcp_accept_read_write_hangup',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        const server = net.listen('127.0.0.1', 0);
        const sockets = [server];
        try {
          const tl = r.add(server, Interest.READABLE);
          const client = net.connect('127.0.0.1', net.localPort(server));
          sockets.push(client);
          const tc = r.add(client, Interest.WRITABLE);
          const first = collect(r, ev, [tl, tc]);
          assert.equal(first.get(tl), Ready.READABLE, 'the listener has a connection to accept');
          assert.equal(first.get(tc), Ready.WRITABLE, 'the connect completed');
          assert.equal(net.socketError(client), null, 'and succeeded');

          const into = new Int32Array(4);
          const got = net.accept(server, into);
          assert.deepEqual(got, { count: 1, error: undefined });
          const conn = into[0]!;
          sockets.push(conn);
          assert.deepEqual(net.accept(server, into), { count: 0, error: undefined }, 'the backlog is empty');
          r.rearm(tl);
          const tconn = r.add(conn, Interest.READABLE);
          assert.equal(r.wait(ev, 50), 0, 'nothing to read, nothing to accept');

          assert.equal(net.send(client, Buffer.from('hello')), 5);
          assert.equal(collect(r, ev, [tconn]).get(tconn), Ready.READABLE);
          assert.equal(recvText(conn), 'hello');
          assert.equal(net.recv(conn, new Uint8Array(8)), -1, 'drained: -1, as EAGAIN');

          r.rearm(tconn);
          r.rearm(tc, Interest.READABLE);
          assert.equal(net.send(conn, Buffer.from('world')), 5);
          assert.equal(collect(r, ev, [tc]).get(tc), Ready.READABLE, 'the reply reaches the client');
          assert.equal(recvText(client), 'world');

          r.delete(tc);
          net.close(client);
          sockets.splice(sockets.indexOf(client), 1);
          const flags = collect(r, ev, [tconn]).get(tconn)!;
          assert.equal(flags & (Ready.READABLE | Ready.HANGUP), Ready.READABLE | Ready.HANGUP, `the peer closed: flags ${flags}`);
          assert.equal(net.recv(conn, new Uint8Array(8)), 0, 'end of stream');
          r.delete(tconn);
        } finally {
          for (const s of sockets) net.close(s);
        }
      }),
  },
  {
    name: 'tcp_accept_drains_the_backlog',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        const server = net.listen('127.0.0.1', 0, { backlog: 16 });
        const sockets = [server];
        try {
          const port = net.localPort(server);
          for (let i = 0; i < 5; i++) sockets.push(net.connect('127.0.0.1', port));
          const tl = r.add(server, Interest.READABLE);
          assert.equal(collect(r, ev, [tl]).get(tl), Ready.READABLE);
          const into = new Int32Array(8);
          let total = 0;
          // The five handshakes may still be completing: accept what is there, re-arm, repeat.
          for (let round = 0; total < 5; round++) {
            assert.ok(round < 50, `accepted ${total} of 5 connections`);
            const { count, error } = net.accept(server, into);
            assert.equal(error, undefined);
            for (let i = 0; i < count; i++) {
              sockets.push(into[i]!);
              assert.equal(net.recv(into[i]!, new Uint8Array(8)), -1, 'an accepted socket is non-blocking');
            }
            total += count;
            if (total < 5) {
              r.rearm(tl);
              collect(r, ev, [tl]);
            }
          }
          assert.equal(total, 5);
          assert.deepEqual(net.accept(server, into), { count: 0, error: undefined });
          r.rearm(tl);
          assert.equal(r.wait(ev, 50), 0, 'an empty backlog is not readable');
        } finally {
          for (const s of sockets) net.close(s);
        }
      }),
  },
  {
    name: 'tcp_refused_connect_is_an_error_event',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        const probe = net.listen('127.0.0.1', 0);
        const port = net.localPort(probe);
        net.close(probe); // nobody listens on the port now
        let client: number;
        try {
          client = net.connect('127.0.0.1', port);
        } catch (e) {
          // Where the OS refuses a loopback connect at once, connect throws it.
          assert.equal((e as { code?: unknown }).code, 'ECONNREFUSED', String(e));
          return;
        }
        try {
          const t = r.add(client, Interest.WRITABLE);
          // Windows retries a refused SYN for about a second before it gives up.
          const flags = collect(r, ev, [t], 10_000).get(t)!;
          assert.equal(flags & (Ready.WRITABLE | Ready.ERROR), Ready.WRITABLE | Ready.ERROR, `flags ${flags}`);
          assert.equal(net.socketError(client), 'ECONNREFUSED');
          r.delete(t);
        } finally {
          net.close(client);
        }
      }),
  },
  {
    name: 'tcp_failures_are_errno_codes',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        const server = net.listen('127.0.0.1', 0);
        const sockets = [server];
        try {
          const port = net.localPort(server);
          expectCode(() => net.listen('127.0.0.1', port), 'EADDRINUSE');
          const client = net.connect('127.0.0.1', port);
          sockets.push(client);
          const tc = r.add(client, Interest.WRITABLE);
          collect(r, ev, [tc]);
          net.shutdown(client, 'write');
          expectCode(() => net.send(client, new Uint8Array(1)), 'EPIPE');
          const buf = new Uint8Array(8);
          for (const call of [
            () => net.recv(NEVER_OPEN, buf),
            () => net.send(NEVER_OPEN, buf),
            () => net.localPort(NEVER_OPEN),
            () => net.socketError(NEVER_OPEN),
            () => net.close(NEVER_OPEN),
          ]) {
            expectCode(call, 'EBADF');
          }
          const extra = net.listen('127.0.0.1', 0);
          net.close(extra);
          expectCode(() => net.close(extra), 'EBADF');
          r.delete(tc);
        } finally {
          for (const s of sockets) net.close(s);
        }
      }),
  },
];
