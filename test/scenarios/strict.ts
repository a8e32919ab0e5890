/** Strict input: every bad argument is a ReactorError with its own errno-style code. */
import assert from 'node:assert/strict';
import { Events, Interest, Reactor, ReactorError } from '../../src/index.js';
import { expectCode, withReactor, type Scenario } from './scenario.js';

export const strictScenarios: Scenario[] = [
  {
    name: 'strict_flags_and_fds',
    run: (ctx) =>
      withReactor(ctx, ({ r, pair }) => {
        const [a] = pair();
        expectCode(() => r.add(a, 4), 'EINVAL'); // an unknown interest bit
        expectCode(() => r.add(a, Interest.READABLE | 0x100), 'EINVAL');
        expectCode(() => r.add(a, 0), 'EINVAL'); // empty interest
        expectCode(() => r.add(a, -1), 'EINVAL');
        expectCode(() => r.add(a, 1.5), 'EINVAL');
        expectCode(() => r.add(a, Interest.READABLE, { mode: 'level' as never }), 'EINVAL');
        expectCode(() => r.add(-1, Interest.READABLE), 'EBADF');
        expectCode(() => r.add(2.5, Interest.READABLE), 'EBADF');
        expectCode(() => r.add('3' as never, Interest.READABLE), 'EBADF');
        expectCode(() => r.add(2 ** 31, Interest.READABLE), 'EBADF');
        // A number no open file has: the kernel refuses it, and the slot is given back.
        expectCode(() => r.add(1_000_000, Interest.READABLE), 'EBADF');
        const t = r.add(a, Interest.READABLE);
        expectCode(() => r.add(a, Interest.READABLE), 'EEXIST');
        expectCode(() => r.rearm(t, 8), 'EINVAL');
        expectCode(() => r.rearm(t), 'EINVAL'); // armed, not held by a handler
        r.delete(t);
      }),
  },
  {
    name: 'strict_tokens',
    run: (ctx) =>
      withReactor(ctx, ({ r }) => {
        for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, '1' as never, undefined as never]) {
          expectCode(() => r.rearm(bad), 'EINVAL');
          expectCode(() => r.forceOneShot(bad), 'EINVAL');
          expectCode(() => r.delete(bad), 'EINVAL');
        }
        // Well formed but never returned by add: a free slot, a slot past the capacity.
        for (const dead of [0, 4194304 + 3, 4194304 * 7 + 1000]) {
          expectCode(() => r.rearm(dead), 'ENOENT');
          expectCode(() => r.forceOneShot(dead), 'ENOENT');
          expectCode(() => r.delete(dead), 'ENOENT');
        }
      }),
  },
  {
    name: 'strict_wait_and_open',
    run: (ctx) =>
      withReactor(ctx, ({ r, ev }) => {
        expectCode(() => r.wait(ev, -2), 'EINVAL');
        expectCode(() => r.wait(ev, 1.5), 'EINVAL');
        expectCode(() => r.wait(ev, NaN), 'EINVAL');
        expectCode(() => r.wait({} as never, 0), 'EINVAL');
        expectCode(() => new Events(0), 'EINVAL');
        expectCode(() => new Events(1.5), 'EINVAL');
        expectCode(() => Reactor.open({ capacity: 0 }), 'EINVAL');
        expectCode(() => Reactor.open({ capacity: 2 ** 22 + 1 }), 'EINVAL');
        expectCode(() => Reactor.open({ backend: 'poll' as never }), 'EINVAL');
        expectCode(() => Reactor.attach({} as never), 'EINVAL');
        expectCode(() => Reactor.attach(null as never), 'EINVAL');
        const err = (() => {
          try {
            r.rearm(-1);
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        assert.ok(err instanceof ReactorError);
        assert.match(err.message, /token/, 'the message says what was wrong');
      }),
  },
  {
    name: 'table_full_is_enospc',
    run: (ctx) =>
      withReactor(
        ctx,
        ({ r, pair }) => {
          const tokens: number[] = [];
          for (let i = 0; i < 4; i++) tokens.push(r.add(pair()[0], Interest.READABLE));
          const [extra] = pair();
          expectCode(() => r.add(extra, Interest.READABLE), 'ENOSPC');
          r.delete(tokens[0]!);
          r.add(extra, Interest.READABLE); // a freed slot is usable again
        },
        { capacity: 4 },
      ),
  },
];
