/** The TCP layer (src/net) with real sockets on 127.0.0.1 and ::1, driven by the real reactor. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { afterEach, describe, it } from 'vitest';
import { Events, Interest, Reactor, ReactorError, Ready } from '../src/index.js';
import * as net from '../src/net/index.js';
import {
  decodeSockaddr,
  encodeSockaddr,
  formatIp,
  FREEBSD_SOCKADDR,
  LINUX_SOCKADDR,
  MACOS_SOCKADDR,
  OPENBSD_SOCKADDR,
  parseHost,
  WINDOWS_SOCKADDR,
} from '../src/net/sockaddr.js';

const posix = process.platform !== 'win32';

/**
 * The libc calls and constants the tests read sockets back with. Imported only where there is
 * a libc: loading it fails on Windows, where only the pure sockaddr tests run.
 */
async function loadProbes() {
  const libc = (await import('../src/sys/posix.js')).libc();
  const { socketConstants } = await import('../src/net/posix.js');
  type IntOption = (fd: number, level: number, name: number, value: Int32Array, len: number) => number;
  type ReadOption = (fd: number, level: number, name: number, value: Int32Array, len: Uint32Array) => number;
  return {
    K: socketConstants(process.platform, process.arch)!,
    socketConstants,
    fcntl: libc.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number) => number,
    getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *value, void *len)') as ReadOption,
    setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)') as IntOption,
    socket: libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number,
  };
}
const probes = posix ? await loadProbes() : undefined;

const SOCK_DGRAM = 2;
const F_GETFD = 1;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
// asm-generic/socket.h; BSD sys/socket.h
const SO_LINGER = process.platform === 'linux' ? 13 : 0x0080;
const SO_SNDBUF = process.platform === 'linux' ? 7 : 0x1001;
const SO_RCVBUF = process.platform === 'linux' ? 8 : 0x1002;

/** A number in checkFd's range that is never an open descriptor (far above any RLIMIT_NOFILE). */
const NEVER_OPEN = 0x7ffffff0;

const opened: number[] = [];
const reactors: Reactor[] = [];

/** Registers a socket for closing after the test. */
function track(fd: number): number {
  opened.push(fd);
  return fd;
}

function openReactor(): Reactor {
  const r = Reactor.open({ capacity: 256 });
  reactors.push(r);
  return r;
}

afterEach(() => {
  for (const r of reactors.splice(0)) r.close();
  for (const fd of opened.splice(0)) {
    try {
      net.close(fd);
    } catch {
      // closed by the test already
    }
  }
});

/** Waits until every token in `tokens` is delivered once; returns each one's Ready bits. */
function waitAll(r: Reactor, tokens: readonly number[], timeoutMs = 10_000): Map<number, number> {
  const ev = new Events(64);
  const got = new Map<number, number>();
  const deadline = Date.now() + timeoutMs;
  while (got.size < tokens.length) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${tokens.length - got.size} of ${tokens.length} registrations not delivered in ${timeoutMs} ms`);
    const n = r.wait(ev, Math.min(left, 200));
    for (let i = 0; i < n; i++) got.set(ev.token(i), ev.readiness(i));
  }
  return got;
}

function waitOne(r: Reactor, token: number): number {
  return waitAll(r, [token]).get(token)!;
}

/** Asserts that `fn` throws a ReactorError with `code`. */
function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ReactorError, `expected a ReactorError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** A connected pair over `host`: [client, server side], both non-blocking; the listener is closed. */
function connectedPair(host: string): [number, number] {
  const r = openReactor();
  const listener = track(net.listen(host, 0));
  const client = track(net.connect(host, net.localPort(listener)));
  const flags = waitOne(r, r.add(client, Interest.WRITABLE));
  assert.ok(flags & Ready.WRITABLE);
  assert.equal(net.socketError(client), null);
  const into = new Int32Array(4);
  const t = r.add(listener, Interest.READABLE);
  waitOne(r, t);
  const { count, error } = net.accept(listener, into);
  assert.equal(count, 1);
  assert.equal(error, undefined);
  return [client, track(into[0]!)];
}

function ipv6Available(): boolean {
  try {
    net.close(net.listen('::1', 0));
    return true;
  } catch {
    return false;
  }
}

const hosts = ipv6Available() ? ['127.0.0.1', '::1'] : ['127.0.0.1'];

describe.runIf(posix)('net', () => {
  // Read at run time, not while collecting: on Windows this suite is collected, then skipped.
  const P = (): NonNullable<typeof probes> => probes!;
  describe.each(hosts)('over %s', (host) => {
    it('listen_on_port_zero_picks_a_free_port', () => {
      const fd = track(net.listen(host, 0));
      const port = net.localPort(fd);
      assert.ok(port > 0 && port <= 65535, `port ${port}`);
      throwsCode(() => track(net.listen(host, port)), 'EADDRINUSE');
    });

    it('reuse_port_lets_two_listeners_share_a_port', () => {
      const a = track(net.listen(host, 0, { reusePort: true }));
      const port = net.localPort(a);
      const b = track(net.listen(host, port, { reusePort: true }));
      assert.equal(net.localPort(b), port);
    });

    it('connect_completes_as_writable_through_the_reactor', () => {
      const r = openReactor();
      const listener = track(net.listen(host, 0));
      const client = track(net.connect(host, net.localPort(listener)));
      const flags = waitOne(r, r.add(client, Interest.WRITABLE));
      assert.ok(flags & Ready.WRITABLE, `flags ${flags}`);
      assert.equal(flags & Ready.ERROR, 0);
      assert.equal(net.socketError(client), null);
      assert.ok(net.localPort(client) > 0, 'a connected socket has an ephemeral port');
    });

    it('accept_drains_the_backlog_in_one_call', () => {
      const r = openReactor();
      const pending = 50;
      const listener = track(net.listen(host, 0, { backlog: 128 }));
      const port = net.localPort(listener);
      const clients = Array.from({ length: pending }, () => track(net.connect(host, port)));
      // Every handshake is complete once every client is writable: all 50 wait in the backlog.
      const delivered = waitAll(
        r,
        clients.map((fd) => r.add(fd, Interest.WRITABLE)),
      );
      for (const flags of delivered.values()) assert.ok(flags & Ready.WRITABLE);
      waitOne(r, r.add(listener, Interest.READABLE));

      const into = new Int32Array(64).fill(-1);
      const result = net.accept(listener, into);
      assert.deepEqual(result, { count: pending, error: undefined });
      const accepted = Array.from(into.subarray(0, pending), track);
      assert.equal(new Set(accepted).size, pending, 'distinct sockets');
      assert.ok(accepted.every((fd) => fd >= 0));
      assert.equal(into[pending], -1, 'nothing written past count');
      assert.deepEqual(net.accept(listener, into), { count: 0, error: undefined }, 'the backlog is empty');
    });

    it('accept_stops_when_into_is_full', () => {
      const r = openReactor();
      const listener = track(net.listen(host, 0));
      const port = net.localPort(listener);
      const clients = Array.from({ length: 5 }, () => track(net.connect(host, port)));
      waitAll(
        r,
        clients.map((fd) => r.add(fd, Interest.WRITABLE)),
      );
      const into = new Int32Array(3);
      assert.deepEqual(net.accept(listener, into), { count: 3, error: undefined });
      into.forEach((fd) => track(fd));
      assert.deepEqual(net.accept(listener, into), { count: 2, error: undefined });
      track(into[0]!);
      track(into[1]!);
    });

    it('accepted_sockets_are_nonblocking_and_close_on_exec', () => {
      const [client, server] = connectedPair(host);
      for (const fd of [client, server]) {
        assert.notEqual(P().fcntl(fd, F_GETFL) & P().K.O_NONBLOCK, 0, `fd ${fd} is non-blocking`);
        assert.notEqual(P().fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, `fd ${fd} is close-on-exec`);
      }
    });

    it('recv_on_an_empty_socket_is_minus_one', () => {
      const [client, server] = connectedPair(host);
      const buf = new Uint8Array(64);
      assert.equal(net.recv(server, buf), -1);
      assert.equal(net.recv(client, buf), -1);
    });

    it('send_and_recv_honour_offset_and_length', () => {
      const r = openReactor();
      const [client, server] = connectedPair(host);
      const out = new TextEncoder().encode('..hello world..');
      assert.equal(net.send(client, out, 2, 5), 5);
      const buf = new Uint8Array(16).fill(0x2a);
      waitOne(r, r.add(server, Interest.READABLE));
      assert.equal(net.recv(server, buf, 3, 4), 4, 'at most length bytes');
      assert.equal(net.recv(server, buf, 7), 1, 'the rest');
      assert.equal(new TextDecoder().decode(buf.subarray(3, 8)), 'hello');
      assert.equal(buf[2], 0x2a, 'nothing written before offset');
      assert.equal(buf[8], 0x2a, 'nothing written past what was read');
      assert.equal(net.send(client, out, out.length), 0, 'an empty range sends nothing');
    });

    it('a_mebibyte_crosses_intact_with_partial_writes_handled', () => {
      const r = openReactor();
      const [client, server] = connectedPair(host);
      // Small socket buffers, so a mebibyte takes many partial writes (loopback's defaults are
      // large enough on Linux to take it in one).
      assert.equal(P().setsockopt(client, P().K.SOL_SOCKET, SO_SNDBUF, new Int32Array([16384]), 4), 0);
      assert.equal(P().setsockopt(server, P().K.SOL_SOCKET, SO_RCVBUF, new Int32Array([16384]), 4), 0);
      const data = randomBytes(1 << 20);
      const got = new Uint8Array(data.length);
      const tw = r.add(client, Interest.WRITABLE);
      const tr = r.add(server, Interest.READABLE);
      const ev = new Events(8);
      let sent = 0;
      let received = 0;
      let partial = 0;
      let full = 0;
      const deadline = Date.now() + 20_000;
      while (received < data.length) {
        assert.ok(Date.now() < deadline, `stalled at ${sent} sent, ${received} received`);
        const n = r.wait(ev, 1000);
        for (let i = 0; i < n; i++) {
          if (ev.token(i) === tw) {
            for (;;) {
              const w = net.send(client, data, sent); // all that is left: the kernel takes what fits
              if (w < 0) {
                full++;
                break;
              }
              if (w < data.length - sent) partial++;
              sent += w;
              if (sent === data.length) break;
            }
            if (sent < data.length) r.rearm(tw);
          } else if (ev.token(i) === tr) {
            while (received < got.length) {
              const m = net.recv(server, got, received);
              assert.notEqual(m, 0, 'no end of stream before the last byte');
              if (m < 0) break;
              received += m;
            }
            if (received < data.length) r.rearm(tr);
          }
        }
      }
      assert.equal(sent, data.length);
      assert.ok(Buffer.from(got).equals(data), 'every byte arrived, in order');
      assert.ok(partial > 0, 'the kernel took less than asked');
      assert.ok(full > 0, 'and the buffer filled up (send returned -1)');
    });

    it('recv_reads_end_of_stream_as_zero_after_shutdown_write', () => {
      const r = openReactor();
      const [client, server] = connectedPair(host);
      assert.equal(net.send(client, new Uint8Array([1, 2, 3])), 3);
      net.shutdown(client, 'write');
      const flags = waitOne(r, r.add(server, Interest.READABLE));
      assert.ok(flags & Ready.READABLE);
      const buf = new Uint8Array(8);
      assert.equal(net.recv(server, buf), 3, 'data sent before the shutdown comes first');
      assert.equal(net.recv(server, buf), 0, 'then end of stream');
      assert.equal(net.recv(server, buf), 0, 'and it stays at end of stream');
      // The other direction is still open.
      assert.equal(net.send(server, new Uint8Array([9])), 1);
    });

    it('connect_to_a_closed_port_reports_ECONNREFUSED', () => {
      const r = openReactor();
      const probe = net.listen(host, 0);
      const port = net.localPort(probe);
      net.close(probe); // nobody listens on port now
      let client: number;
      try {
        client = track(net.connect(host, port));
      } catch (e) {
        // Where the OS refuses a loopback connect at once (FreeBSD may), connect throws it.
        assert.ok(e instanceof ReactorError && e.code === 'ECONNREFUSED', String(e));
        return;
      }
      const flags = waitOne(r, r.add(client, Interest.WRITABLE));
      assert.ok(flags & (Ready.WRITABLE | Ready.ERROR), `flags ${flags}`);
      assert.equal(net.socketError(client), 'ECONNREFUSED');
      assert.equal(net.socketError(client), null, 'reading SO_ERROR clears it');
    });

    it('a_reset_connection_makes_recv_throw_ECONNRESET', () => {
      const r = openReactor();
      const [client, server] = connectedPair(host);
      // SO_LINGER { on, 0 s }: close sends RST instead of FIN.
      assert.equal(P().setsockopt(client, P().K.SOL_SOCKET, SO_LINGER, new Int32Array([1, 0]), 8), 0);
      net.close(client);
      waitOne(r, r.add(server, Interest.READABLE));
      throwsCode(() => net.recv(server, new Uint8Array(8)), 'ECONNRESET');
    });

    it('set_no_delay_sets_TCP_NODELAY', () => {
      const [client] = connectedPair(host);
      const value = new Int32Array(1);
      const len = new Uint32Array([4]);
      net.setNoDelay(client, true);
      P().getsockopt(client, IPPROTO_TCP, TCP_NODELAY, value, len);
      assert.notEqual(value[0], 0);
      net.setNoDelay(client, false);
      P().getsockopt(client, IPPROTO_TCP, TCP_NODELAY, value, len);
      assert.equal(value[0], 0);
    });
  });

  it('socket_constants_are_chosen_per_os_and_cpu', () => {
    const of = P().socketConstants;
    assert.equal(of('linux', 'x64')?.SOL_SOCKET, 1);
    assert.equal(of('linux', 'arm64')?.SO_REUSEPORT, 15);
    assert.equal(of('linux', 'mipsel'), undefined, 'MIPS numbers its socket constants differently');
    assert.equal(of('darwin', 'arm64')?.accept4, false, 'macOS has no accept4: accept + fcntl');
    assert.equal(of('darwin', 'arm64')?.SO_NOSIGPIPE, 0x1022);
    assert.equal(of('freebsd', 'x64')?.sockaddr.AF_INET6, 28);
    assert.equal(of('win32', 'x64'), undefined);
  });

  it('localhost_means_127_0_0_1', () => {
    const fd = track(net.listen('localhost', 0));
    const client = track(net.connect('127.0.0.1', net.localPort(fd)));
    const r = openReactor();
    waitOne(r, r.add(client, Interest.WRITABLE));
    assert.equal(net.socketError(client), null);
  });

  it.runIf(process.platform === 'linux')('failed_calls_leave_no_descriptor_open', () => {
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    const listener = track(net.listen('127.0.0.1', 0));
    const port = net.localPort(listener);
    const before = openFds();
    for (let i = 0; i < 10; i++) {
      throwsCode(() => net.listen('127.0.0.1', port), 'EADDRINUSE'); // socket made, bind failed
      assert.throws(() => net.connect('255.255.255.255', 80), ReactorError); // refused at once
      if (hosts.includes('::1')) throwsCode(() => net.connect('fe80::1', 80), 'EINVAL'); // needs a zone
    }
    assert.equal(openFds(), before);
  });

  it('accept_reports_EMFILE_and_the_listener_stays_usable', () => {
    const result = runChild<EmfileResult>(EMFILE_CHILD);
    assert.equal(result.first.error, 'EMFILE', JSON.stringify(result));
    assert.ok(result.first.count >= 1 && result.first.count < result.pending, JSON.stringify(result));
    assert.ok(result.second.count >= 1, `after freeing descriptors it accepts again: ${JSON.stringify(result)}`);
    assert.equal(result.third.error, undefined);
    assert.equal(result.total, result.pending, 'every pending connection is accepted in the end');
    assert.equal(result.listenerPort, result.port, 'the listener is intact');
  });

  it('send_never_raises_SIGPIPE_even_after_a_SIGPIPE_listener_is_removed', () => {
    const result = runChild<{ code: string }>(SIGPIPE_CHILD);
    assert.ok(result.code === 'EPIPE' || result.code === 'ECONNRESET', JSON.stringify(result));
  });

  it('bad_arguments_are_refused_with_clear_codes', () => {
    const listener = track(net.listen('127.0.0.1', 0));
    const [client, server] = connectedPair('127.0.0.1');
    const buf = new Uint8Array(16);
    const loose = net as unknown as Record<string, (...args: unknown[]) => unknown>;

    throwsCode(() => net.listen('example.com', 0), 'EINVAL');
    throwsCode(() => net.listen('1.2.3', 0), 'EINVAL');
    throwsCode(() => net.listen('127.0.0.1', 65536), 'EINVAL');
    throwsCode(() => net.listen('127.0.0.1', -1), 'EINVAL');
    throwsCode(() => net.listen('127.0.0.1', 1.5), 'EINVAL');
    throwsCode(() => net.listen('127.0.0.1', 0, { backlog: 0 }), 'EINVAL');
    throwsCode(() => loose.listen!('127.0.0.1', 0, { reusePort: 'yes' }), 'EINVAL');
    throwsCode(() => loose.listen!(42, 0), 'EINVAL');
    throwsCode(() => net.connect('127.0.0.1', 0), 'EINVAL');
    throwsCode(() => net.connect('::1::', 80), 'EINVAL');

    throwsCode(() => net.recv(-1, buf), 'EBADF');
    throwsCode(() => net.recv(1.5, buf), 'EBADF');
    throwsCode(() => loose.recv!('3', buf), 'EBADF');
    throwsCode(() => loose.recv!(server, 'text'), 'EINVAL');
    throwsCode(() => loose.recv!(server, new Uint16Array(8)), 'EINVAL');
    throwsCode(() => net.recv(server, buf, 17), 'EINVAL');
    throwsCode(() => net.recv(server, buf, 0, 17), 'EINVAL');
    throwsCode(() => net.recv(server, buf, 8, 9), 'EINVAL');
    throwsCode(() => net.recv(server, buf, 16), 'EINVAL'); // no room: 0 would read as end of stream
    throwsCode(() => net.send(client, buf, -1), 'EINVAL');
    throwsCode(() => net.send(client, buf, 4, 13), 'EINVAL');

    throwsCode(() => net.accept(listener, new Int32Array(0)), 'EINVAL');
    throwsCode(() => loose.accept!(listener, [0, 0]), 'EINVAL');
    throwsCode(() => net.accept(client, new Int32Array(4)), 'EINVAL'); // the kernel: not listening
    const udp = P().socket(P().K.sockaddr.AF_INET, SOCK_DGRAM, 0);
    assert.ok(udp >= 0);
    track(udp);
    assert.throws(
      () => net.accept(udp, new Int32Array(4)), // a lasting EOPNOTSUPP is raised, not looped on
      (e: unknown) => e instanceof ReactorError && (e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP'),
    );
    throwsCode(() => loose.shutdown!(client, 'sideways'), 'EINVAL');
    throwsCode(() => loose.setNoDelay!(client, 1), 'EINVAL');

    throwsCode(() => net.recv(NEVER_OPEN, buf), 'EBADF');
    throwsCode(() => net.send(NEVER_OPEN, buf), 'EBADF');
    throwsCode(() => net.localPort(NEVER_OPEN), 'EBADF');
    throwsCode(() => net.socketError(NEVER_OPEN), 'EBADF');
    throwsCode(() => net.shutdown(NEVER_OPEN, 'both'), 'EBADF');
    throwsCode(() => net.close(NEVER_OPEN), 'EBADF');
    const fd = net.listen('127.0.0.1', 0);
    net.close(fd);
    throwsCode(() => net.close(fd), 'EBADF');

    // Everything above left the sockets usable.
    assert.equal(net.send(client, buf, 0, 1), 1);
  });
});

describe('sockaddr', () => {
  it('ip_literals_parse_strictly_and_format_canonically', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', '127.0.0.1'],
      ['0.0.0.0', '0.0.0.0'],
      ['255.255.255.255', '255.255.255.255'],
      ['localhost', '127.0.0.1'],
      ['::1', '::1'],
      ['::', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8::', '2001:db8::'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['fe80::1%2', 'fe80::1%2'],
    ];
    for (const [text, canonical] of cases) assert.equal(formatIp(parseHost(text)), canonical, text);
    assert.deepEqual(Array.from(parseHost('::1').bytes), [...new Array<number>(15).fill(0), 1]);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.4 ', ':::', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '::1:2:3:4:5:6:7:8', 'fe80::1%eth0', 'g::1', '[::1]', 'example.com']) {
      throwsCode(() => parseHost(bad), 'EINVAL');
    }
  });

  it('sockaddr_layouts_match_the_headers', () => {
    const buf = new Uint8Array(28);
    const v4 = parseHost('192.0.2.1');
    const v6 = parseHost('fe80::1%3');
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    const u16 = (x: number): number[] => (le ? [x & 0xff, x >> 8] : [x >> 8, x & 0xff]);
    const u32 = (x: number): number[] => (le ? [x, 0, 0, 0] : [0, 0, 0, x]); // small x

    // Linux: u16 sin_family at 0 (host order), port big-endian at 2, address at 4; 16 bytes.
    assert.equal(encodeSockaddr(LINUX_SOCKADDR, v4, 0x1f90, buf), 16);
    assert.deepEqual(Array.from(buf.subarray(0, 16)), [...u16(2), 0x1f, 0x90, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // macOS: u8 sin_len, u8 sin_family.
    assert.equal(encodeSockaddr(MACOS_SOCKADDR, v4, 80, buf), 16);
    assert.deepEqual(Array.from(buf.subarray(0, 8)), [16, 2, 0, 80, 192, 0, 2, 1]);
    // sockaddr_in6: flowinfo at 4, address at 8, scope_id at 24; 28 bytes. AF_INET6 per OS.
    const in6 = (family: number[]): number[] => [...family, 0x01, 0xbb, 0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, ...u32(3)];
    for (const [layout, family] of [
      [LINUX_SOCKADDR, u16(10)],
      [WINDOWS_SOCKADDR, u16(23)],
      [MACOS_SOCKADDR, [28, 30]],
      [FREEBSD_SOCKADDR, [28, 28]],
      [OPENBSD_SOCKADDR, [28, 24]],
    ] as const) {
      assert.equal(encodeSockaddr(layout, v6, 443, buf), 28);
      assert.deepEqual(Array.from(buf), in6([...family]));
      const back = decodeSockaddr(layout, buf);
      assert.ok(back !== undefined);
      assert.equal(back.port, 443);
      assert.equal(formatIp(back), 'fe80::1%3');
    }
    buf.fill(0);
    assert.equal(decodeSockaddr(LINUX_SOCKADDR, buf), undefined, 'AF_UNSPEC is not an IP address');
  });
});

// ---- Child processes: what could starve or kill the test process runs in its own node. ----

interface AcceptOutcome {
  count: number;
  error?: string;
}

interface EmfileResult {
  pending: number;
  port: number;
  listenerPort: number;
  first: AcceptOutcome;
  second: AcceptOutcome;
  third: AcceptOutcome;
  total: number;
}

// The children's sources are plain JavaScript: vitest rewrites the test's own functions
// (dynamic imports included), so their text could not be sent to another process.

/**
 * Fills the backlog, lowers RLIMIT_NOFILE so only about two more descriptors fit, and accepts;
 * then frees descriptors and accepts again, then restores the limit and accepts the rest.
 */
const EMFILE_CHILD = `
  const net = await import(NET_URL);
  const libc = (await import(FFI_URL)).libc();
  const { readdirSync } = await import('node:fs');
  const getrlimit = libc.func('int getrlimit(int resource, void *rlim)');
  const setrlimit = libc.func('int setrlimit(int resource, void *rlim)');
  const RLIMIT_NOFILE = process.platform === 'linux' ? 7 : 8; // bits/resource.h; BSD sys/resource.h
  const pending = 8;

  const listener = net.listen('127.0.0.1', 0);
  const port = net.localPort(listener);
  for (let i = 0; i < pending; i++) net.connect('127.0.0.1', port);
  await new Promise((resolve) => setTimeout(resolve, 200)); // loopback handshakes complete

  // The smallest limit that leaves two free descriptor numbers below it.
  const open = new Set(readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd').map(Number));
  let limit = 0;
  for (let below = 0; limit - below < 2; limit++) if (open.has(limit)) below++;
  const saved = new BigUint64Array(2);
  if (getrlimit(RLIMIT_NOFILE, saved) !== 0) throw new Error('getrlimit failed');
  if (setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(limit), saved[1]])) !== 0) throw new Error('setrlimit failed');

  const into = new Int32Array(pending);
  const first = net.accept(listener, into);
  for (let i = 0; i < first.count; i++) net.close(into[i]);
  const second = net.accept(listener, into); // room again for as many as were closed
  for (let i = 0; i < second.count; i++) net.close(into[i]);
  if (setrlimit(RLIMIT_NOFILE, saved) !== 0) throw new Error('setrlimit (restore) failed');
  const third = net.accept(listener, into);
  const total = first.count + second.count + third.count;
  return { pending, port, listenerPort: net.localPort(listener), first, second, third, total };
`;

/**
 * Breaks Node's SIGPIPE disposition the way any library can (a listener added, then removed:
 * Node 20 leaves SIG_DFL behind), then sends to a connection whose peer has closed.
 */
const SIGPIPE_CHILD = `
  const net = await import(NET_URL);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const onSigpipe = () => {};
  process.on('SIGPIPE', onSigpipe);
  process.removeListener('SIGPIPE', onSigpipe);
  await sleep(10);
  const server = net.listen('127.0.0.1', 0);
  const client = net.connect('127.0.0.1', net.localPort(server));
  await sleep(50);
  const into = new Int32Array(1);
  if (net.accept(server, into).count !== 1) throw new Error('no connection to accept');
  net.close(into[0]);
  await sleep(50);
  const buf = new Uint8Array(1024);
  for (let i = 0; i < 100; i++) {
    try {
      net.send(client, buf);
    } catch (e) {
      return { code: e.code };
    }
    await sleep(10);
  }
  return { code: 'none' };
`;

/**
 * Runs `body` (the text of an async function body that may use NET_URL and FFI_URL, the built
 * modules' URLs) in a fresh node process; returns what it returned.
 */
function runChild<T>(body: string): T {
  const netUrl = new URL('../src/net/index.js', import.meta.url).href;
  const ffiUrl = new URL('../src/sys/posix.js', import.meta.url).href;
  const source = `const NET_URL = ${JSON.stringify(netUrl)}; const FFI_URL = ${JSON.stringify(ffiUrl)};
    (async () => { ${body} })()
      .then((r) => { process.stdout.write(JSON.stringify(r)); }, (e) => { console.error(e); process.exit(1); });`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', source], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.signal, null, `the child was killed by ${child.signal}: ${child.stderr}`);
  assert.equal(child.status, 0, `the child failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as T;
}
