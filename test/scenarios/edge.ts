/**
 * EDGE registrations: the kernel reports edges, the reactor keeps one handler per event and
 * remembers what arrives meanwhile. On IOCP, EDGE is DISPATCH: every scenario holds there too.
 */
import assert from 'node:assert/strict';
import { Interest, Mode, Ready } from '../../src/index.js';
import { drain, send } from '../support/sockets.js';
import * as net from '../../src/net/index.js';
import { withReactor, type Scenario } from './scenario.js';

const edge = { mode: Mode.EDGE } as const;

export const edgeScenarios: Scenario[] = [
  {
    name: 'edge_data_arriving_while_held_is_delivered_after_the_rearm',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, edge);
        send(b, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        assert.deepEqual([ev.token(0), ev.readiness(0)], [t, Ready.READABLE]);
        assert.equal(drain(a), 1, 'the handler reads until the read would block');
        send(b, 'y'); // arrives while the event is held
        assert.equal(r.wait(ev, 50), 0, 'held: not delivered to another waiter');
        r.rearm(t);
        assert.equal(r.wait(ev, 1000), 1, 'remembered, and delivered once the holder re-arms');
        assert.deepEqual([ev.token(0), ev.readiness(0) & Ready.READABLE], [t, Ready.READABLE]);
        assert.equal(drain(a), 1);
        r.rearm(t);
        assert.equal(r.wait(ev, 50), 0, 'drained and re-armed: nothing more');
      }),
  },
  {
    name: 'edge_drain_and_rearm_while_data_arrives_loses_nothing',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, edge);
        const buf = new Uint8Array(64);
        let sent = 0;
        let read = 0;
        for (let round = 0; round < 200; round++) {
          sent += send(b, `m${round};`);
          if (round % 3 === 0) sent += send(b, '+');
          const n = r.wait(ev, round % 2 === 0 ? 1000 : 0);
          if (n === 0) continue;
          assert.equal(ev.token(0), t);
          for (let got = net.recv(a, buf, 0, buf.length); got > 0; got = net.recv(a, buf, 0, buf.length)) read += got;
          if (round % 5 === 0) sent += send(b, '!'); // after the drain, before the rearm
          r.rearm(t);
        }
        for (let n = r.wait(ev, 200); n > 0; n = r.wait(ev, 200)) {
          for (let got = net.recv(a, buf, 0, buf.length); got > 0; got = net.recv(a, buf, 0, buf.length)) read += got;
          r.rearm(t);
        }
        assert.equal(read, sent, `every byte read: ${read} of ${sent}`);
      }),
  },
  {
    name: 'edge_rearm_with_data_left_says_still_ready',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, edge);
        send(b, 'abcdef');
        assert.equal(r.wait(ev, 1000), 1);
        const one = new Uint8Array(2);
        assert.equal(net.recv(a, one, 0, 2), 2, 'a read budget: two bytes, then give the thread up');
        r.rearm(t, Interest.READABLE, Ready.READABLE);
        assert.equal(r.wait(ev, 1000), 1, 'what the handler said is still ready comes back');
        assert.equal(drain(a), 4);
        r.rearm(t);
      }),
  },
  {
    name: 'edge_data_and_the_peers_shutdown_in_one_delivery_say_hangup',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, edge);
        send(b, 'abc');
        net.shutdown(b, 'write'); // both before the wait: one readiness change for both
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // a loopback TCP pair's FIN is on its way
        assert.equal(r.wait(ev, 1000), 1);
        assert.equal(ev.token(0), t);
        let readiness = ev.readiness(0);
        const buf = new Uint8Array(64);
        assert.equal(net.recv(a, buf, 0, buf.length), 3, 'a short read');
        if (ctx.backend === 'iocp' && !(readiness & Ready.HANGUP)) {
          // No edges (and Wine's AFD reports the disconnect once the data is read): the re-arm's
          // poll finds the end of stream, as DISPATCH does.
          r.rearm(t);
          assert.equal(r.wait(ev, 1000), 1);
          readiness = ev.readiness(0);
        }
        assert.equal(readiness & (Ready.READABLE | Ready.HANGUP), Ready.READABLE | Ready.HANGUP, 'the delivery says HANGUP');
        assert.equal(net.recv(a, buf, 0, buf.length), 0, 'the end of stream is still to read after the short read: HANGUP says to read on');
        r.delete(t);
      }),
  },
  {
    name: 'edge_stale_writable_costs_one_would_block',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev, pair }) => {
        const [a, b] = pair();
        const t = r.add(a, Interest.READABLE, edge); // writable already: the edge is remembered, not wanted
        send(b, 'x');
        assert.equal(r.wait(ev, 1000), 1);
        drain(a);
        const chunk = new Uint8Array(65536);
        while (net.send(a, chunk, 0, chunk.length) > 0); // fill the socket: writability is now stale
        r.rearm(t, Interest.WRITABLE);
        let wouldBlock = 0;
        for (let tries = 0; tries < 5 && r.wait(ev, 100) === 1; tries++) {
          assert.equal(ev.token(0), t);
          if (net.send(a, chunk, 0, 1) < 0) wouldBlock++;
          r.rearm(t, Interest.WRITABLE);
        }
        assert.ok(wouldBlock <= 1, `${wouldBlock} would-blocks: a stale WRITABLE costs at most one`);
        drain(b); // room again: the next WRITABLE is real
        assert.equal(r.wait(ev, 1000), 1);
        assert.ok(net.send(a, chunk, 0, 1) === 1, 'writable after the peer read');
        r.rearm(t, Interest.READABLE);
      }),
  },
];
