/**
 * The multi-threaded TCP echo server with an HTTP/1.1 responder, as a function: tests start it
 * in-process on port 0; main.ts is its command line.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Interest, Mode, Reactor, ReactorError, runWorkers } from '../../src/index.js';
import * as net from '../../src/net/index.js';
import { raiseFdLimit } from '../../src/sys/limits.js';
import { BUFFER_BYTES, BufferPool } from './buffers.js';
import type { ServerData } from './handler.js';
import { C, Connections, header, Kind, now, Shared, STATE_BYTES, type Counts } from './shared.js';

/** Options of `startServer`. */
export interface ServerOptions {
  /** The address both ports listen on (default 127.0.0.1). */
  readonly host?: string;
  /** The echo port (default 7070; 0 picks a free one). */
  readonly port?: number;
  /** The HTTP port (default 7071; 0 picks a free one). */
  readonly httpPort?: number;
  /** Worker threads (default 2). */
  readonly threads?: number;
  /** A connection with nothing read for this long is closed (default 30,000 ms). */
  readonly idleMs?: number;
  /**
   * An HTTP request head not complete this long after its first byte gets a 408 and its
   * connection is closed (default 10,000 ms), however often bytes of it arrive.
   */
  readonly headerTimeoutMs?: number;
  /**
   * The most connections open at once; more are accepted, closed at once and counted as refused.
   * Default: what the descriptor limit (raised to its hard limit) leaves after FD_MARGIN (or a
   * quarter of a small limit), within MAX_CONNECTIONS.
   */
  readonly maxConnections?: number;
  /**
   * How connections are registered (default 'edge'): EDGE, with no system call per re-arm, or
   * DISPATCH (EPOLLONESHOT, EV_DISPATCH), for comparison. The listeners are DISPATCH either way.
   */
  readonly mode?: ServerMode;
}

/** The registration modes the server offers for its connections. */
export type ServerMode = typeof Mode.EDGE | typeof Mode.DISPATCH;

/** The modes `mode` takes. */
const SERVER_MODES: readonly ServerMode[] = [Mode.EDGE, Mode.DISPATCH];

/** The counters, live. */
export interface Stats extends Counts {
  /** Events delivered to handlers, all threads. */
  readonly events: number;
  /** Pool buffers held by connections: those with bytes kept between deliveries. */
  readonly buffersInUse: number;
}

/** What `stop` returns. */
export interface Summary extends Stats {
  readonly durationMs: number;
  /** Connections still open when the drain time ran out, closed by `stop` itself. */
  readonly cut: number;
}

/** The listeners: registrations beside the connections. */
const LISTENERS = 2;
/**
 * Descriptors kept back from connections for the process's own (Node, the reactor, the
 * listeners), or a quarter of a small limit: under `ulimit -n 64` the server still takes
 * connections until accept reports EMFILE, as a server should.
 */
export const FD_MARGIN = 64;
/** The buffer pool holds at most 2 GiB: a buffer for each of this many connections. */
export const MAX_CONNECTIONS = Math.floor(2 ** 31 / BUFFER_BYTES) - LISTENERS;

/** The default connection limit for a descriptor limit of `fdLimit` (Infinity: none). */
export function defaultMaxConnections(fdLimit: number): number {
  return Math.max(1, Math.min(fdLimit - Math.min(FD_MARGIN, Math.floor(fdLimit / 4)), MAX_CONNECTIONS));
}

/** A running server. */
export interface Server {
  readonly echoPort: number;
  readonly httpPort: number;
  /** The connection limit in force. */
  readonly maxConnections: number;
  stats(): Stats;
  /**
   * Stops gracefully: closes the listeners; then each connection reads what is already in its
   * socket and reads no more, sends everything it read (its echo, or its answers), shuts down its
   * side, and closes once the peer has closed (bytes it sends meanwhile are read and dropped).
   * Connections still open after `drainMs` (default 2000) are closed as they are. Then the
   * reactor closes, the threads finish their handlers and exit, and the summary is returned.
   */
  stop(options?: { readonly drainMs?: number }): Promise<Summary>;
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function checkMode(value: unknown): ServerMode {
  const mode = SERVER_MODES.find((m) => m === value);
  if (mode === undefined) throw new RangeError(`mode must be ${SERVER_MODES.map((m) => `'${m}'`).join(' or ')}, got ${String(value)}`);
  return mode;
}

/** Polls `done` every few ms until it holds or `until` (on the monotonic clock) passes. */
async function waitFor(done: () => boolean, until: number): Promise<void> {
  while (!done() && now() < until) await sleep(5);
}

/**
 * Starts the server: two listeners in one reactor, served by `threads` worker threads.
 *
 * @example
 * const server = await startServer({ port: 0, httpPort: 0, idleMs: 5000 });
 * console.log(server.echoPort, server.httpPort);
 * const summary = await server.stop();
 */
export async function startServer(options: ServerOptions = {}): Promise<Server> {
  const host = options.host ?? '127.0.0.1';
  const threads = checkInt('threads', options.threads ?? 2, 1, 64);
  const idleMs = checkInt('idleMs', options.idleMs ?? 30_000, 1, 0x7fffffff);
  const headerTimeoutMs = checkInt('headerTimeoutMs', options.headerTimeoutMs ?? 10_000, 1, 0x7fffffff);
  const maxConnections = checkInt('maxConnections', options.maxConnections ?? defaultMaxConnections(raiseFdLimit().soft), 1, MAX_CONNECTIONS);
  const mode = checkMode(options.mode ?? Mode.EDGE);
  const started = now();
  const reactor = Reactor.open({ capacity: maxConnections + LISTENERS, stateBytes: STATE_BYTES });
  const shared = Shared.create(threads);
  const connections = Connections.create(maxConnections + LISTENERS);
  // A buffer for every registration, so that the pool never runs out; untouched, they cost nothing.
  const buffers = BufferPool.create(maxConnections + LISTENERS);
  const listeners: { kind: Kind; fd: number; token: number }[] = [];
  try {
    for (const [kind, port] of [
      [Kind.ECHO_LISTENER, checkInt('port', options.port ?? 7070, 0, 65535)],
      [Kind.HTTP_LISTENER, checkInt('httpPort', options.httpPort ?? 7071, 0, 65535)],
    ] as const) {
      const listener = { kind, fd: net.listen(host, port), token: -1 };
      listeners.push(listener);
      // DISPATCH: an accept round may leave connections in the backlog, and after an accept
      // failure they are left there on purpose; a level re-check finds them.
      const state = header(kind, listener.fd, -1, started);
      listener.token = reactor.add(listener.fd, Interest.READABLE, { mode: Mode.DISPATCH, state });
      shared.listenerOpened(kind);
    }
  } catch (e) {
    reactor.close();
    for (const l of listeners) net.close(l.fd);
    throw e;
  }
  const data: ServerData = { shared: shared.buffer, connections: connections.buffer, buffers: buffers.buffer, idleMs, headerTimeoutMs, mode };
  const workers = await runWorkers({
    reactor,
    threads,
    handler: new URL('./handler.js', import.meta.url),
    data,
    onError: (e) => {
      shared.add(C.handlerErrors, 1);
      console.error(e.cause instanceof Error ? `${e.message}\n${e.cause.stack ?? ''}` : e.message);
    },
  });

  const stats = (): Stats => ({ ...shared.counts(), events: workers.events(), buffersInUse: buffers.inUse() });

  /** Forces a registration, unless it is gone already. */
  const force = (token: number): void => {
    try {
      reactor.forceOneShot(token);
    } catch (e) {
      if (!(e instanceof ReactorError && e.code === 'ENOENT')) throw e; // closed meanwhile
    }
  };

  let stopping: Promise<Summary> | undefined;
  const stop = async (drainMs: number): Promise<Summary> => {
    const until = now() + drainMs;
    shared.stop();
    // The listeners first: once they are closed no connection can appear behind the walk below.
    for (const l of listeners) force(l.token);
    await waitFor(() => listeners.every((l) => !shared.isListenerOpen(l.kind)), until);
    connections.forEach((token) => force(token));
    await waitFor(() => shared.counts().open === 0, until);
    await workers.close();
    // No thread runs now: what the drain time did not finish is closed here.
    let cut = 0;
    connections.forEach((_token, fd, cell, buffer) => {
      net.close(fd);
      if (buffer !== 0) buffers.giveBack(buffer - 1);
      connections.remove(cell);
      shared.add(C.open, -1);
      cut++;
    });
    for (const l of listeners) if (shared.isListenerOpen(l.kind)) net.close(l.fd);
    return { ...stats(), durationMs: now() - started, cut };
  };

  return {
    echoPort: net.localPort(listeners[0]!.fd),
    httpPort: net.localPort(listeners[1]!.fd),
    maxConnections,
    stats,
    stop: (o = {}) => (stopping ??= stop(checkInt('drainMs', o.drainMs ?? 2000, 0, 0x7fffffff))),
  };
}
