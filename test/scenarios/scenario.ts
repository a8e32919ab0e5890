/**
 * The behavioural scenarios, written once against the public API and run on every backend: by
 * vitest on Linux (test/behaviour.test.ts), and by a plain runner where vitest cannot run.
 */
import { Events, Interest, Mode, Reactor, type BackendKind, type OpenOptions } from '../../src/index.js';
import { closeFd, send, socketPair } from '../support/sockets.js';

export interface Context {
  readonly backend: BackendKind;
  /** Whether the reactor may use the native helper (OpenOptions.native); default true. */
  readonly native?: boolean;
  /** Whether the opening thread batches its re-arms (OpenOptions.batchRearms); default true. */
  readonly batchRearms?: boolean;
  /** The mode `add` uses when a scenario names none (OpenOptions.mode); default DISPATCH. */
  readonly mode?: Mode;
}

export interface Scenario {
  /** Named for the behaviour it proves. */
  readonly name: string;
  run(ctx: Context): void | Promise<void>;
}

/** How a run is named in the scenarios' printed lines: the backend, and EDGE when it is. */
export function runName(ctx: Context): string {
  return ctx.mode === Mode.EDGE ? `${ctx.backend} EDGE` : ctx.backend;
}

/** What a scenario body gets: a fresh reactor, connected pairs, all released afterwards. */
export interface Fixture {
  readonly r: Reactor;
  readonly ev: Events;
  /** A connected non-blocking pair, closed after the scenario (unless closed before). */
  pair(): [number, number];
  /** Closes an fd now and stops tracking it. */
  close(fd: number): void;
  /** A pair with `a` registered READABLE, a byte sent from `b`, and its event delivered: held. */
  held(): { a: number; b: number; t: number };
  /**
   * `count` pairs, each registered end READABLE with a byte never read: delivered on every re-arm
   * that says it is still ready (EDGE needs that; DISPATCH finds it in the kernel's level).
   */
  readable(count: number): Array<{ fd: number; t: number }>;
}

/**
 * Runs body with a fresh reactor on ctx's backend (64 registrations unless `options` say
 * otherwise); closes it and every pair afterwards.
 */
export async function withReactor(
  ctx: Context,
  body: (f: Fixture) => void | Promise<void>,
  options: Omit<OpenOptions, 'backend'> = {},
): Promise<void> {
  const r = Reactor.open({
    capacity: 64,
    batchRearms: ctx.batchRearms ?? true,
    mode: ctx.mode ?? Mode.DISPATCH,
    ...options,
    backend: ctx.backend,
    native: ctx.native ?? true,
  });
  const fds = new Set<number>();
  const fixture: Fixture = {
    r,
    ev: new Events(16),
    pair() {
      const p = socketPair();
      fds.add(p[0]);
      fds.add(p[1]);
      return p;
    },
    close(fd) {
      fds.delete(fd);
      closeFd(fd);
    },
    held() {
      const [a, b] = fixture.pair();
      const t = r.add(a, Interest.READABLE);
      send(b, 'x');
      const n = r.wait(fixture.ev, 1000);
      if (n !== 1 || fixture.ev.token(0) !== t) throw new Error(`expected the one delivery of token ${t}, got ${n} events`);
      return { a, b, t };
    },
    readable(count) {
      return Array.from({ length: count }, () => {
        const [fd, peer] = fixture.pair();
        send(peer, 'x');
        return { fd, t: r.add(fd, Interest.READABLE) };
      });
    },
  };
  try {
    await body(fixture);
  } finally {
    r.close();
    for (const fd of fds) closeFd(fd);
  }
}

/** Expects `fn` to throw a ReactorError with `code`. */
export function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    const actual = (e as { code?: unknown }).code;
    if (actual !== code) throw new Error(`expected ${code}, got ${String(actual)}: ${String(e)}`);
    if ((e as Error).name !== 'ReactorError') throw new Error(`expected a ReactorError, got ${(e as Error).name}`);
    return;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
