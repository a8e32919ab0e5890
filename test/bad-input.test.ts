/**
 * Bad input, function by function: each bad value and the ReactorError code it gets. Nothing but
 * a ReactorError may leave the API for bad input, and a rejected call changes nothing: the
 * registration, socket or reactor it was given still works afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, Events, Interest, Mode, Ready, Reactor, ReactorError, runWorkers, type ReactorErrorCode, type ReactorHandle } from '../src/index.js';
import * as net from '../src/net/index.js';
import { closeFd, drain, send, socketPair } from './support/sockets.js';

/** The values every argument is tried with, by label. */
const BAD_VALUES: readonly [string, unknown][] = [
  ['undefined', undefined],
  ['null', null],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['-1', -1],
  ['1.5', 1.5],
  ['2**31', 2 ** 31],
  ['2**32', 2 ** 32],
  ['2**53', 2 ** 53],
  ["'1'", '1'],
  ['{}', {}],
  ['[]', []],
  ['Symbol()', Symbol('bad')],
  ['1n', 1n],
  ['a function', () => 1],
  ['an Int8Array', new Int8Array(4)],
];

type Case = [label: string, value: unknown, code: ReactorErrorCode];

/**
 * Every bad value with `code`, but for the labels `valid` names (a default or a real setting of
 * that argument, tested as accepted elsewhere) and those `codes` gives another code; then `extra`.
 */
function table(code: ReactorErrorCode, valid: readonly string[] = [], codes: Record<string, ReactorErrorCode> = {}, extra: readonly Case[] = []): Case[] {
  const labels = new Set(BAD_VALUES.map(([label]) => label));
  for (const label of [...valid, ...Object.keys(codes)]) if (!labels.has(label)) throw new Error(`no bad value is labelled ${label}`);
  const cases = BAD_VALUES.filter(([label]) => !valid.includes(label)).map(([label, value]): Case => [label, value, codes[label] ?? code]);
  return [...cases, ...extra];
}

function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}: ${e.message}`;
  return `a thrown ${typeof e}`;
}

/** Calls `call`, which must throw a ReactorError with `code`: anything else fails. */
function expectError(call: () => unknown, code: ReactorErrorCode): ReactorError {
  let thrown: unknown;
  let threw = false;
  try {
    call();
  } catch (e) {
    thrown = e;
    threw = true;
  }
  if (!threw) throw new Error(`expected ReactorError ${code}, but the call returned`);
  if (!(thrown instanceof ReactorError)) throw new Error(`expected ReactorError ${code}, got ${describeThrown(thrown)}`);
  expect(thrown.code).toBe(code);
  return thrown;
}

/** As `expectError`, for a call that answers with a promise: it must reject with a ReactorError with `code`. */
async function expectRejection(call: () => Promise<unknown>, code: ReactorErrorCode): Promise<void> {
  let settled: Promise<unknown>;
  try {
    settled = call();
  } catch (e) {
    throw new Error(`expected a rejected promise, but the call threw ${describeThrown(e)}`);
  }
  const outcome = await settled.then(
    () => ({ rejected: false as const }),
    (e: unknown) => ({ rejected: true as const, e }),
  );
  if (!outcome.rejected) throw new Error(`expected ReactorError ${code}, but the promise resolved`);
  if (!(outcome.e instanceof ReactorError)) throw new Error(`expected ReactorError ${code}, got ${describeThrown(outcome.e)}`);
  expect(outcome.e.code).toBe(code);
}

const STATE_BYTES = 16;
const fds: number[] = [];
const reactors: Reactor[] = [];

/** The number of a socket just closed: EBADF until something opens an fd (nothing does before the call). */
function closedFd(): number {
  const [a, b] = socketPair();
  fds.push(b);
  net.close(a);
  return a;
}

function pair(): [number, number] {
  const p = socketPair();
  fds.push(...p);
  return p;
}

function open(options: Parameters<typeof Reactor.open>[0] = {}): Reactor {
  const r = Reactor.open(options);
  reactors.push(r);
  return r;
}

afterAll(() => {
  reactors.forEach((r) => r.close());
  fds.forEach(closeFd);
});

/** Waits (up to 5 s) until `token` is delivered; returns its Ready bits. */
function delivered(r: Reactor, token: number): number {
  const ev = new Events(16);
  const until = performance.now() + 5000;
  while (performance.now() < until) {
    const n = r.wait(ev, 100);
    for (let i = 0; i < n; i++) if (ev.token(i) === token) return ev.readiness(i);
  }
  throw new Error(`token ${token} was not delivered within 5 s`);
}

/** A token of `r`, delivered and held by this thread (the socket is writable at once). */
function held(r: Reactor): number {
  const [a] = pair();
  const t = r.add(a, Interest.WRITABLE);
  expect(delivered(r, t) & Ready.WRITABLE).toBe(Ready.WRITABLE);
  return t;
}

/** Bad tokens, on a reactor with nothing registered: malformed is EINVAL; well formed but not live, ENOENT. */
const BAD_TOKENS = table('EINVAL', [], { '2**31': 'ENOENT', '2**32': 'ENOENT' }, [
  ['0 (generation 0: never a token)', 0, 'ENOENT'],
  ['a slot past the capacity', 2 ** 22 + 100, 'ENOENT'],
]);

describe('token arguments', () => {
  // Nothing is registered in `empty` while the tables run, so no well-formed token is live there.
  let empty: Reactor;
  beforeAll(() => {
    empty = open({ capacity: 64, stateBytes: STATE_BYTES });
  });
  const calls: Record<string, (r: Reactor, token: unknown) => unknown> = {
    rearm: (r, t) => r.rearm(t as number),
    forceOneShot: (r, t) => r.forceOneShot(t as number),
    delete: (r, t) => r.delete(t as number),
    setDeadline: (r, t) => r.setDeadline(t as number, 1000),
    state: (r, t) => r.state(t as number),
    stateOffset: (r, t) => r.stateOffset(t as number),
    writeState: (r, t) => r.writeState(t as number, new Uint8Array(1)),
  };
  for (const [name, call] of Object.entries(calls)) {
    describe(name, () => {
      it.each(BAD_TOKENS)('token %s: %s', (_label, token, code) => {
        expectError(() => call(empty, token), code);
      });

      it('a stale token (deleted) is ENOENT, and the slot\u2019s new registration is untouched', () => {
        const r = open({ capacity: 1, stateBytes: STATE_BYTES });
        const [a, b] = pair();
        const stale = r.add(a, Interest.READABLE);
        r.delete(stale);
        const live = r.add(b, Interest.READABLE); // the same slot, the next generation; nothing to read
        expectError(() => call(r, stale), 'ENOENT');
        expect(r.forceOneShot(live)).toBe(true);
        expect(delivered(r, live) & Ready.FORCED).toBe(Ready.FORCED);
      });

      it('a token of another reactor is ENOENT, though both have a registration in that slot', () => {
        const mine = open({ capacity: 1, stateBytes: STATE_BYTES });
        const other = open({ capacity: 1, stateBytes: STATE_BYTES });
        const [a, b] = pair();
        const own = mine.add(a, Interest.READABLE); // nothing to read: only a force delivers it
        const foreign = other.add(b, Interest.READABLE);
        expectError(() => call(mine, foreign), 'ENOENT');
        expect(mine.forceOneShot(own)).toBe(true); // still armed, and still this reactor's
        expect(delivered(mine, own) & Ready.FORCED).toBe(Ready.FORCED);
      });
    });
  }
});

describe('Reactor.open', () => {
  it.each(table('EINVAL', ['undefined', '{}']))('options %s: %s', (_label, options, code) => {
    expectError(() => open(options as never), code);
  });
  const optionTables: Record<string, Case[]> = {
    capacity: table('EINVAL', ['undefined'], {}, [['0', 0, 'EINVAL'], ['2**22 + 1', 2 ** 22 + 1, 'EINVAL']]),
    stateBytes: table('EINVAL', ['undefined'], {}, [['65537', 65537, 'EINVAL']]),
    backend: table('EINVAL', ['undefined'], {}, [["'poll'", 'poll', 'EINVAL'], ["'toString'", 'toString', 'EINVAL']]),
    batchRearms: table('EINVAL', ['undefined']),
    native: table('EINVAL', ['undefined']),
  };
  for (const [option, cases] of Object.entries(optionTables)) {
    it.each(cases)(`${option} %s: %s`, (_label, value, code) => {
      expectError(() => open({ [option]: value } as never), code);
    });
  }
  it('an unknown option is EINVAL', () => {
    expectError(() => open({ capcity: 16 } as never), 'EINVAL');
  });
  it('capacity × stateBytes over 2 GiB is EINVAL', () => {
    expectError(() => open({ capacity: 2 ** 22, stateBytes: 1024 }), 'EINVAL');
  });
  it('the defaults and every valid option open a working reactor', () => {
    const r = open({ capacity: 8, stateBytes: 4, backend: 'auto', batchRearms: false, native: false });
    expect([r.capacity, r.stateBytes]).toEqual([8, 4]);
    const t = held(r);
    r.rearm(t);
    expect(delivered(r, t) & Ready.WRITABLE).toBe(Ready.WRITABLE);
  });
});

describe('Reactor.attach', () => {
  let source: Reactor;
  let real: ReactorHandle;
  beforeAll(() => {
    source = open({ capacity: 8, stateBytes: 8 });
    real = source.share();
  });

  it.each(table('EINVAL'))('handle %s: %s', (_label, handle, code) => {
    expectError(() => Reactor.attach(handle as never), code);
  });

  /** A real handle with one part replaced. */
  const part = (h: Record<string, unknown>, key: string): Record<string, unknown> => h[key] as Record<string, unknown>;
  const forged = (change: (h: Record<string, unknown>) => void) => (): ReactorHandle => {
    const h: Record<string, unknown> = { ...real };
    for (const key of ['backend', 'table', 'deadlines', 'state'] as const) h[key] = { ...(real[key] as object) };
    part(h, 'table')['columns'] = { ...real.table.columns };
    change(h);
    return h as unknown as ReactorHandle;
  };
  const other = (): ReactorHandle => open({ capacity: 16, stateBytes: 8 }).share();
  const forgeries: [string, () => ReactorHandle][] = [
    ['table capacity 2^20 (buffers sized for 8)', forged((h) => (part(h, 'table')['capacity'] = 2 ** 20))],
    ['table capacity 16 (buffers sized for 8)', forged((h) => (part(h, 'table')['capacity'] = 16))],
    ['table capacity 0', forged((h) => (part(h, 'table')['capacity'] = 0))],
    ['table capacity 1.5', forged((h) => (part(h, 'table')['capacity'] = 1.5))],
    ['table capacity 2^23', forged((h) => (part(h, 'table')['capacity'] = 2 ** 23))],
    ['table capacity a string', forged((h) => (part(h, 'table')['capacity'] = '8'))],
    ['stateBytes 1e6', forged((h) => (part(h, 'state')['bytes'] = 1e6))],
    ['stateBytes 16 (buffer sized for 8)', forged((h) => (part(h, 'state')['bytes'] = 16))],
    ['stateBytes -1', forged((h) => (part(h, 'state')['bytes'] = -1))],
    ['deadlines capacity 16', forged((h) => (part(h, 'deadlines')['capacity'] = 16))],
    ['deadlines base NaN', forged((h) => (part(h, 'deadlines')['base'] = NaN))],
    ['the table words of a larger reactor', forged((h) => (part(part(h, 'table'), 'columns')['words'] = other().table.columns.words))],
    ['the queue of a larger reactor', forged((h) => (h['queue'] = other().queue))],
    ['the deadline times of a larger reactor', forged((h) => (part(h, 'deadlines')['times'] = other().deadlines.times))],
    ['the state buffer of a larger reactor', forged((h) => (part(h, 'state')['buffer'] = other().state.buffer))],
    ['a 16-byte table header', forged((h) => (part(h, 'table')['header'] = new SharedArrayBuffer(16)))],
    ['a 16-byte table words column', forged((h) => (part(part(h, 'table'), 'columns')['words'] = new SharedArrayBuffer(16)))],
    ['a 4-byte signals buffer', forged((h) => (h['signals'] = new SharedArrayBuffer(4)))],
    ['a 4-byte lifetime buffer', forged((h) => (h['lifetime'] = new SharedArrayBuffer(4)))],
    ['an ArrayBuffer for the queue', forged((h) => (h['queue'] = new ArrayBuffer(real.queue.byteLength)))],
    ['no backend', forged((h) => (h['backend'] = null))],
    ["backend kind 'poll'", forged((h) => (part(h, 'backend')['kind'] = 'poll'))],
    ["backend kind 'toString'", forged((h) => (part(h, 'backend')['kind'] = 'toString'))],
  ];
  if (availableBackends()[0] === 'epoll') {
    forgeries.push(
      ['a negative epoll fd', forged((h) => (part(h, 'backend')['epfd'] = -1))],
      ['a negative eventfd', forged((h) => (part(h, 'backend')['wakefd'] = -5))],
      ['an epoll fd of 2^32', forged((h) => (part(h, 'backend')['epfd'] = 2 ** 32))],
      ["native 'yes'", forged((h) => (part(h, 'backend')['native'] = 'yes'))],
    );
  }
  it.each(forgeries)('a forged handle, %s: EINVAL', (_label, make) => {
    expectError(() => Reactor.attach(make()), 'EINVAL');
  });

  it("a closed reactor's handle is ECLOSED", () => {
    const r = open({ capacity: 4 });
    const handle = r.share();
    r.close();
    expectError(() => Reactor.attach(handle), 'ECLOSED');
  });

  it.each(table('EINVAL', ['undefined', '{}']))('options %s: %s', (_label, options, code) => {
    expectError(() => Reactor.attach(real, options as never), code);
  });
  it.each(table('EINVAL', ['undefined']))('batchRearms %s: %s', (_label, value, code) => {
    expectError(() => Reactor.attach(real, { batchRearms: value as boolean }), code);
  });
  it('an unknown option is EINVAL', () => {
    expectError(() => Reactor.attach(real, { batchrearms: false } as never), 'EINVAL');
  });

  it('the real handle attaches, and drives the same registrations', () => {
    const [a] = pair();
    const t = source.add(a, Interest.READABLE);
    const joined = Reactor.attach(real, { batchRearms: false });
    expect(joined.forceOneShot(t)).toBe(true);
    expect(delivered(source, t) & Ready.FORCED).toBe(Ready.FORCED);
    source.delete(t);
  });
});

describe('Events', () => {
  it.each(table('EINVAL', [], {}, [['0', 0, 'EINVAL'], ['65537', 65537, 'EINVAL']]))('capacity %s: %s', (_label, capacity, code) => {
    expectError(() => new Events(capacity as number), code);
  });
});

describe('add', () => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64, stateBytes: STATE_BYTES });
  });
  /** After a rejected add the fd is still unregistered: it can be added, and it fires. */
  function stillAddable(fd: number): void {
    const t = r.add(fd, Interest.WRITABLE);
    expect(delivered(r, t) & Ready.WRITABLE).toBe(Ready.WRITABLE);
    r.delete(t);
  }

  it.each(table('EBADF'))('fd %s: %s', (_label, fd, code) => {
    expectError(() => r.add(fd as number, Interest.READABLE), code);
  });
  it('a closed fd is EBADF', () => {
    expectError(() => r.add(closedFd(), Interest.READABLE), 'EBADF');
  });

  it.each(
    table('EINVAL', [], {}, [
      ['0 (empty)', 0, 'EINVAL'],
      ['4 (an unknown bit)', 4, 'EINVAL'],
      ['2**32 + 1', 2 ** 32 + 1, 'EINVAL'],
      ['2**32 + 3', 2 ** 32 + 3, 'EINVAL'],
      ['-2**32 + 1', -(2 ** 32) + 1, 'EINVAL'],
    ]),
  )('interest %s: %s', (_label, interest, code) => {
    const [a] = pair();
    expectError(() => r.add(a, interest as number), code);
    stillAddable(a);
  });

  it.each(table('EINVAL', ['undefined', '{}'], {}, [['{ mdoe: ONESHOT } (unknown)', { mdoe: 'oneshot' }, 'EINVAL']]))(
    'options %s: %s',
    (_label, options, code) => {
      const [a] = pair();
      expectError(() => r.add(a, Interest.READABLE, options as never), code);
      stillAddable(a);
    },
  );
  it.each(table('EINVAL', ['undefined'], {}, [["'level'", 'level', 'EINVAL']]))('mode %s: %s', (_label, mode, code) => {
    const [a] = pair();
    expectError(() => r.add(a, Interest.READABLE, { mode: mode as never }), code);
    stillAddable(a);
  });
  it.each(
    table('EINVAL', ['undefined'], {}, [
      ['a Uint8ClampedArray', new Uint8ClampedArray(4), 'EINVAL'],
      ['a Uint8Array longer than stateBytes', new Uint8Array(STATE_BYTES + 1), 'EMSGSIZE'],
    ]),
  )('state %s: %s', (_label, state, code) => {
    const [a] = pair();
    expectError(() => r.add(a, Interest.READABLE, { state: state as never }), code);
    stillAddable(a);
  });
});

describe('rearm interest', () => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64 });
  });
  it.each(
    table('EINVAL', ['undefined'], {}, [
      ['0 (empty)', 0, 'EINVAL'],
      ['8 (an unknown bit)', 8, 'EINVAL'],
      ['2**32 + 1', 2 ** 32 + 1, 'EINVAL'],
      ['2**32 + 2', 2 ** 32 + 2, 'EINVAL'],
    ]),
  )('interest %s: %s, and the handler still holds the event', (_label, interest, code) => {
    const t = held(r);
    expectError(() => r.rearm(t, interest as number), code);
    r.rearm(t, Interest.WRITABLE); // still held: a rearm by a thread that does not hold it is EINVAL
    expect(delivered(r, t) & Ready.WRITABLE).toBe(Ready.WRITABLE);
    r.delete(t);
  });
});

describe.each([Mode.DISPATCH, Mode.EDGE])('rearm stillReady, %s', (mode) => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64, mode });
  });
  it.each(
    table('EINVAL', ['undefined'], {}, [
      ['16 (not a readiness P keeps)', 16, 'EINVAL'],
      ['Ready.FORCED', Ready.FORCED, 'EINVAL'],
    ]),
  )('stillReady %s: %s, and the handler still holds the event', (_label, stillReady, code) => {
    const t = held(r);
    expectError(() => r.rearm(t, undefined, stillReady as number), code);
    r.rearm(t, Interest.WRITABLE, Ready.WRITABLE); // still held: only its holder may re-arm it
    expect(delivered(r, t) & Ready.WRITABLE).toBe(Ready.WRITABLE);
    r.delete(t);
  });
});

describe('setDeadline', () => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64 });
  });
  it.each(table('EINVAL', ['null', '1.5']))('ms %s: %s', (_label, ms, code) => {
    const [a] = pair();
    const t = r.add(a, Interest.READABLE);
    expectError(() => r.setDeadline(t, ms as number), code);
    r.setDeadline(t, 0); // the rejected call set nothing; a real deadline fires
    expect(delivered(r, t) & Ready.TIMEOUT).toBe(Ready.TIMEOUT);
    r.delete(t);
  });
});

describe('writeState', () => {
  let r: Reactor;
  let t: number;
  beforeAll(() => {
    r = open({ capacity: 64, stateBytes: STATE_BYTES });
    t = r.add(pair()[0], Interest.READABLE);
  });
  it.each(
    table('EINVAL', [], {}, [
      ['a Uint8ClampedArray', new Uint8ClampedArray(1), 'EINVAL'],
      ['a DataView', new DataView(new ArrayBuffer(1)), 'EINVAL'],
      ['a Uint8Array longer than stateBytes', new Uint8Array(STATE_BYTES + 1), 'EMSGSIZE'],
    ]),
  )('data %s: %s', (_label, data, code) => {
    expectError(() => r.writeState(t, data as Uint8Array), code);
  });
  it.each(
    table('EINVAL', ['undefined'], { '2**31': 'EMSGSIZE', '2**32': 'EMSGSIZE', '2**53': 'EMSGSIZE' }, [
      ['stateBytes (no room for a byte)', STATE_BYTES, 'EMSGSIZE'],
    ]),
  )('offset %s: %s, and the state is unchanged', (_label, offset, code) => {
    r.writeState(t, new Uint8Array(STATE_BYTES).fill(7));
    expectError(() => r.writeState(t, new Uint8Array([1]), offset as number), code);
    expect([...r.state(t)]).toEqual(new Array(STATE_BYTES).fill(7));
  });
});

describe('wait and waitAsync', () => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64 });
  });
  const badEvents = table('EINVAL', [], {}, [['an object shaped like Events', { tokens: new Float64Array(4), ready: new Int32Array(4), capacity: 4, length: 0 }, 'EINVAL']]);
  // undefined, Infinity and -1 wait for ever: valid, and not waited for here.
  const badTimeouts = table('EINVAL', ['undefined', 'Infinity', '-1'], {}, [['-2', -2, 'EINVAL']]);
  it.each(badEvents)('wait events %s: %s', (_label, events, code) => {
    expectError(() => r.wait(events as Events, 0), code);
  });
  it.each(badTimeouts)('wait timeout %s: %s', (_label, timeout, code) => {
    expectError(() => r.wait(new Events(4), timeout as number), code);
  });
  it.each(badEvents)('waitAsync events %s: %s', async (_label, events, code) => {
    await expectRejection(() => r.waitAsync(events as Events, 0), code);
  });
  it.each(badTimeouts)('waitAsync timeout %s: %s', async (_label, timeout, code) => {
    await expectRejection(() => r.waitAsync(new Events(4), timeout as number), code);
  });
});

describe('watch', () => {
  let r: Reactor;
  beforeAll(() => {
    r = open({ capacity: 64 });
  });
  it.each(table('EINVAL', ['a function']))('onEvents %s: %s', (_label, onEvents, code) => {
    expectError(() => r.watch(onEvents as never), code);
  });
  it.each(table('EINVAL', ['undefined', '{}'], {}, [['{ capcity: 8 } (unknown)', { capcity: 8 }, 'EINVAL']]))('options %s: %s', (_label, options, code) => {
    expectError(() => r.watch(() => {}, options as never), code);
  });
  it.each(table('EINVAL', ['undefined'], {}, [['0', 0, 'EINVAL']]))('capacity %s: %s', (_label, capacity, code) => {
    expectError(() => r.watch(() => {}, { capacity: capacity as number }), code);
  });
});

describe('watch and waitAsync, several at once in one thread', () => {
  // libuv allows one poll per fd per loop, and koffi aborted the process when asked for a second.
  it('two watches, then two pending waitAsyncs, of one reactor in one thread both deliver', async () => {
    const r = open({ capacity: 8 });
    const [a, b] = pair();
    const t = r.add(a, Interest.READABLE);
    let deliveries = 0;
    const take = (ev: Events, n: number): void => {
      for (let i = 0; i < n; i++) {
        deliveries++;
        r.rearm(ev.token(i)); // stays readable: delivered again, to either watcher
      }
    };
    const stops = [r.watch(take), Reactor.attach(r.share()).watch(take)];
    send(b, 'x');
    const until = performance.now() + 5000;
    while (deliveries < 4 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
    stops.forEach((stop) => stop());
    expect(deliveries).toBeGreaterThanOrEqual(4);
    drain(a);
    const pending = [r.waitAsync(new Events(4), 5000), r.waitAsync(new Events(4), 5000)];
    r.forceOneShot(t);
    const n = await Promise.race(pending);
    expect(n).toBe(1);
    r.notify();
    r.notify();
    await Promise.all(pending);
  });
});

describe('after close', () => {
  let r: Reactor;
  let t: number;
  let fd: number;
  beforeAll(() => {
    r = open({ capacity: 8, stateBytes: STATE_BYTES });
    [fd] = pair();
    t = r.add(fd, Interest.READABLE);
    r.close();
  });
  const calls: [string, () => unknown][] = [
    ['add', () => r.add(pair()[0], Interest.READABLE)],
    ['rearm', () => r.rearm(t)],
    ['forceOneShot', () => r.forceOneShot(t)],
    ['setDeadline', () => r.setDeadline(t, 10)],
    ['delete', () => r.delete(t)],
    ['state', () => r.state(t)],
    ['stateOffset', () => r.stateOffset(t)],
    ['stateBuffer', () => r.stateBuffer],
    ['writeState', () => r.writeState(t, new Uint8Array(1))],
    ['wait', () => r.wait(new Events(4), 0)],
    ['watch', () => r.watch(() => {})],
    ['notify', () => r.notify()],
    ['share', () => r.share()],
  ];
  it.each(calls)('%s is ECLOSED', (_name, call) => {
    expectError(call, 'ECLOSED');
  });
  it('waitAsync rejects with ECLOSED', async () => {
    await expectRejection(() => r.waitAsync(new Events(4), 0), 'ECLOSED');
  });
  it('close, flush and the getters still answer', () => {
    r.close();
    r.flush();
    expect([r.closed, r.capacity, r.stateBytes, typeof r.kind]).toEqual([true, 8, STATE_BYTES, 'string']);
  });
});

describe('runWorkers', () => {
  const HANDLER = new URL('./support/pool-handler.js', import.meta.url);
  // A reactor of its own each: a pool that did start would close it.
  const valid = () => ({ reactor: open({ capacity: 8 }), threads: 1, handler: HANDLER });

  it.each(table('EINVAL', [], {}, [['{ treads: 1 } (unknown)', { ...valid(), treads: 1 }, 'EINVAL']]))('options %s: %s', async (_label, options, code) => {
    await expectRejection(() => runWorkers(options as never), code);
  });
  const optionTables: Record<string, Case[]> = {
    reactor: table('EINVAL'),
    threads: table('EINVAL', [], {}, [['0', 0, 'EINVAL'], ['257', 257, 'EINVAL']]),
    handler: table('EINVAL', [], { "'1'": 'ENOENT' }, [
      ["''", '', 'EINVAL'],
      ['an http URL', new URL('http://127.0.0.1/handler.js'), 'EINVAL'],
      ['a path to no file', '/nonexistent/evdispatch-handler.js', 'ENOENT'],
      ['a file URL to no file', new URL('./support/no-such-handler.js', import.meta.url), 'ENOENT'],
    ]),
    batch: table('EINVAL', ['undefined'], {}, [['0', 0, 'EINVAL']]),
    batchRearms: table('EINVAL', ['undefined']),
    onError: table('EINVAL', ['undefined', 'a function']),
    data: [
      ['a function (not cloneable)', () => 1, 'EINVAL'],
      ['a Symbol (not cloneable)', Symbol('data'), 'EINVAL'],
    ],
  };
  for (const [option, cases] of Object.entries(optionTables)) {
    it.each(cases)(`${option} %s: %s`, async (_label, value, code) => {
      await expectRejection(() => runWorkers({ ...valid(), [option]: value } as never), code);
    });
  }
  it('a closed reactor is ECLOSED', async () => {
    const closed = open({ capacity: 4 });
    closed.close();
    await expectRejection(() => runWorkers({ ...valid(), reactor: closed }), 'ECLOSED');
  });
});

describe('evdispatch/net', () => {
  let server: number;
  let port: number;
  beforeAll(() => {
    server = net.listen('127.0.0.1', 0);
    fds.push(server);
    port = net.localPort(server);
  });
  /** A connected socket and its accepted peer. */
  function connection(): [number, number] {
    const client = net.connect('127.0.0.1', port);
    fds.push(client);
    const into = new Int32Array(1);
    const until = performance.now() + 5000;
    while (net.accept(server, into).count === 0) {
      if (performance.now() > until) throw new Error('no connection to accept within 5 s');
    }
    fds.push(into[0]!);
    return [client, into[0]!];
  }
  const fdTable = table('EBADF');

  describe('listen', () => {
    it.each(table('EINVAL', [], {}, [["''", '', 'EINVAL'], ["'example.com' (names are not resolved)", 'example.com', 'EINVAL']]))('host %s: %s', (_label, host, code) => {
      expectError(() => net.listen(host as string, 0), code);
    });
    it.each(table('EINVAL', [], {}, [['65536', 65536, 'EINVAL']]))('port %s: %s', (_label, p, code) => {
      expectError(() => net.listen('127.0.0.1', p as number), code);
    });
    it.each(table('EINVAL', ['undefined', '{}'], {}, [['{ backlg: 1 } (unknown)', { backlg: 1 }, 'EINVAL']]))('options %s: %s', (_label, options, code) => {
      expectError(() => net.listen('127.0.0.1', 0, options as never), code);
    });
    it.each(table('EINVAL', ['undefined'], {}, [['0', 0, 'EINVAL']]))('backlog %s: %s', (_label, backlog, code) => {
      expectError(() => net.listen('127.0.0.1', 0, { backlog: backlog as number }), code);
    });
    it.each(table('EINVAL', ['undefined']))('reusePort %s: %s', (_label, reusePort, code) => {
      expectError(() => net.listen('127.0.0.1', 0, { reusePort: reusePort as boolean }), code);
    });
  });

  describe('connect', () => {
    it.each(table('EINVAL'))('host %s: %s', (_label, host, code) => {
      expectError(() => net.connect(host as string, port), code);
    });
    it.each(table('EINVAL', [], {}, [['0', 0, 'EINVAL'], ['65536', 65536, 'EINVAL']]))('port %s: %s', (_label, p, code) => {
      expectError(() => net.connect('127.0.0.1', p as number), code);
    });
  });

  const fdCalls: Record<string, (fd: unknown) => unknown> = {
    localPort: (fd) => net.localPort(fd as number),
    socketError: (fd) => net.socketError(fd as number),
    accept: (fd) => net.accept(fd as number, new Int32Array(1)),
    recv: (fd) => net.recv(fd as number, new Uint8Array(1)),
    send: (fd) => net.send(fd as number, new Uint8Array(1)),
    shutdown: (fd) => net.shutdown(fd as number, 'both'),
    setNoDelay: (fd) => net.setNoDelay(fd as number, true),
    close: (fd) => net.close(fd as number),
  };
  for (const [name, call] of Object.entries(fdCalls)) {
    describe(name, () => {
      it.each(fdTable)('fd %s: %s', (_label, fd, code) => {
        expectError(() => call(fd), code);
      });
      it('a closed socket is EBADF', () => {
        expectError(() => call(closedFd()), 'EBADF');
      });
    });
  }

  describe('accept', () => {
    it.each(table('EINVAL', [], {}, [['an empty Int32Array', new Int32Array(0), 'EINVAL'], ['a Uint32Array', new Uint32Array(1), 'EINVAL']]))(
      'into %s: %s',
      (_label, into, code) => {
        expectError(() => net.accept(server, into as Int32Array), code);
      },
    );
  });

  describe('recv and send', () => {
    let client: number;
    let peer: number;
    beforeAll(() => {
      [client, peer] = connection();
    });
    const bufTable = table('EINVAL', [], {}, [['a Uint16Array', new Uint16Array(4), 'EINVAL'], ['a plain array of bytes', [1, 2, 3], 'EINVAL']]);
    const offsetTable = table('EINVAL', ['undefined'], {}, [['5 (past the end of 4 bytes)', 5, 'EINVAL']]);
    const lengthTable = table('EINVAL', ['undefined'], {}, [['5 (past the end of 4 bytes)', 5, 'EINVAL']]);
    it.each(bufTable)('recv buf %s: %s', (_label, buf, code) => {
      expectError(() => net.recv(peer, buf as Uint8Array), code);
    });
    it.each(offsetTable)('recv offset %s: %s', (_label, offset, code) => {
      expectError(() => net.recv(peer, new Uint8Array(4), offset as number), code);
    });
    it.each([...lengthTable, ['0 (would look like end of stream)', 0, 'EINVAL'] as Case])('recv length %s: %s', (_label, length, code) => {
      expectError(() => net.recv(peer, new Uint8Array(4), 0, length as number), code);
    });
    it.each(bufTable)('send buf %s: %s, and nothing is sent', (_label, buf, code) => {
      expectError(() => net.send(client, buf as Uint8Array), code);
      expect(drain(peer)).toBe(0);
    });
    it.each(offsetTable)('send offset %s: %s, and nothing is sent', (_label, offset, code) => {
      expectError(() => net.send(client, new Uint8Array(4), offset as number), code);
      expect(drain(peer)).toBe(0);
    });
    it.each(lengthTable)('send length %s: %s, and nothing is sent', (_label, length, code) => {
      expectError(() => net.send(client, new Uint8Array(4), 0, length as number), code);
      expect(drain(peer)).toBe(0);
    });
    it('the connection still carries data after every rejected call', () => {
      expect(send(client, 'ok')).toBe(2);
      const buf = new Uint8Array(8);
      const until = performance.now() + 5000;
      let n = net.recv(peer, buf);
      while (n < 0 && performance.now() < until) n = net.recv(peer, buf);
      expect(Buffer.from(buf.subarray(0, n)).toString()).toBe('ok');
    });
  });

  describe('shutdown and setNoDelay', () => {
    let client: number;
    beforeAll(() => {
      [client] = connection();
    });
    it.each(table('EINVAL', [], {}, [["'write '", 'write ', 'EINVAL'], ["'WRITE'", 'WRITE', 'EINVAL']]))('shutdown how %s: %s', (_label, how, code) => {
      expectError(() => net.shutdown(client, how as never), code);
    });
    it.each(table('EINVAL', [], {}, [['0', 0, 'EINVAL'], ['1', 1, 'EINVAL']]))('setNoDelay on %s: %s', (_label, on, code) => {
      expectError(() => net.setNoDelay(client, on as boolean), code);
    });
  });
});
