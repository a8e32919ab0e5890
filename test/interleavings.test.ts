/**
 * Every interleaving of a few threads driving the real transitions of src/core/table.ts on a
 * real Int32Array, checked against the invariants of docs/ARCHITECTURE.md ("The state word"): never two holders of
 * one registration; every readiness that exists while armed is delivered; a force is delivered
 * exactly once, never concurrently with a handler; nothing is delivered for a deleted token; a
 * stale token is refused; a ONESHOT delivery frees the registration and nothing follows it; a
 * dead holder's event (threadExited, `abandon`) is delivered once more to a live waiter, flagged
 * ABANDONED, unless deleted, and never leaves its slot ACTIVE or REARMING.
 *
 * The model (test/model/slot-world.ts) supplies what reactor.ts does around the transitions: a
 * dispatch-once, level-triggered kernel entry, events in flight to the waiters, the ready queue,
 * the holder word and engine.ts's recovery of a dead thread's events. For EDGE registrations: an
 * edge-triggered entry reporting at any point (armed, held, re-arming, deleting), interests read
 * apart from the claims that apply them, and the invariants that wanted readiness always has a
 * carrier and that no delivery carries only readiness the interest does not want.
 * The explorer (test/model/explore.ts) tries every order of the actors' atomic steps.
 */
import { describe, expect, it } from 'vitest';
import { explore, type Exploration } from './model/explore.js';
import {
  coverage,
  deleter,
  edgeKernel,
  edgePeer,
  edgeWaiter,
  forcer,
  kernel,
  peer,
  recoverer,
  slotModel,
  startWorld,
  strayRearm,
  waiter,
  type Actor,
  type Program,
  type Start,
  type World,
} from './model/slot-world.js';

/** Far above the longest run of any scenario: reaching it fails the test (the model is finite). */
const MAX_DEPTH = 200;

const handler = waiter({ mayRead: true, mayKeep: false });
const handlerThatMayKeep = waiter({ mayRead: true, mayKeep: true });
/** A handler whose thread may die holding the event or re-arming it. */
const handlerThatMayDie = waiter({ mayRead: true, mayKeep: false, mayDie: true });
/** A live handler whose holder word store is a step of its own: recovery's grace races it. */
const liveHandler = waiter({ mayRead: true, mayKeep: false, recordsApart: true });

/** The kernel and a peer that writes to the fd `writes` times, in every scenario. */
function environment(writes: number): Omit<Actor, 'gen'>[] {
  return [
    { name: 'K', program: kernel, pc: 'run', budget: 0, spare: 0 },
    { name: 'peer', program: peer, pc: 'run', budget: writes, spare: 0 },
  ];
}

const edgeHandler = edgeWaiter({ toggle: 'none' });
/** An EDGE handler that may turn WRITABLE on as it re-arms. */
const edgeHandlerGainsWritable = edgeWaiter({ toggle: 'on' });
/** An EDGE handler that may turn WRITABLE on, and off again, as it re-arms. */
const edgeHandlerThatToggles = edgeWaiter({ toggle: 'both' });

/** The EDGE kernel entry and a peer that writes `writes` times and makes room to write `rooms` times. */
function edgeEnvironment(writes: number, rooms: number): Omit<Actor, 'gen'>[] {
  return [
    { name: 'K', program: edgeKernel, pc: 'run', budget: 0, spare: 0 },
    { name: 'peer', program: edgePeer, pc: 'run', budget: writes, spare: 0, data: rooms },
  ];
}

/**
 * EDGE: W1 running `first` (3 deliveries), a plain second waiter (2), a forcer (a plain force,
 * then a deadline's), the kernel, and a peer that writes `writes` times and makes room `rooms` times.
 */
function edgeWorld(first: Program, writes: number, rooms: number): World {
  return startWorld(edge, [
    { name: 'W1', program: first, pc: 'wait', budget: 3, spare: 0 },
    { name: 'W2', program: edgeHandler, pc: 'wait', budget: 2, spare: 0 },
    { name: 'F', program: forcer(2), pc: 'force', budget: 2, spare: 0 },
    ...edgeEnvironment(writes, rooms),
  ]);
}

interface Scenario {
  readonly name: string;
  readonly why: string;
  readonly world: () => World;
  /** Floors on what was explored, so a broken model cannot pass by exploring nothing. */
  readonly minPaths: bigint;
  readonly minStates: number;
  /** Races the scenario exists for: each must have been reached at least once. */
  readonly reached: readonly string[];
}

const dispatch: Start = { oneshot: false, fdReady: false, firstWaiterHolds: false };
const edge: Start = { ...dispatch, edge: true };

const scenarios: readonly Scenario[] = [
  {
    name: 'a',
    why: 'DISPATCH: two waiters (one may keep it), a forcer (plain, deadline, plain), a stray rearm, the kernel',
    world: () =>
      startWorld(dispatch, [
        { name: 'W1', program: handlerThatMayKeep, pc: 'wait', budget: 3, spare: 0 },
        { name: 'W2', program: handler, pc: 'wait', budget: 3, spare: 0 },
        { name: 'F', program: forcer(3), pc: 'force', budget: 3, spare: 0 },
        { name: 'X', program: strayRearm, pc: 'run', budget: 1, spare: 0 },
        ...environment(2),
      ]),
    minPaths: 100_000_000_000_000_000n,
    minStates: 100_000,
    reached: [
      'stray rearm refused',
      'handler kept it',
      'forced delivery',
      'force pushed',
      'force not pushed (FORCED_LATER)',
      'already forced',
      'readiness handed on to the re-arming thread',
      'endRearm pushed',
      'queue entry dropped',
      'force delivered by the final drain',
    ],
  },
  {
    name: 'b',
    why: 'two waiters, a deleter that re-adds the slot and forces the new token, a forcer of the old one, the kernel',
    world: () =>
      startWorld({ ...dispatch, fdReady: true }, [
        { name: 'W1', program: handler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'W2', program: handler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'D', program: deleter({ readd: true, readdOneshot: false, forceNew: true }), pc: 'delete', budget: 0, spare: 0 },
        { name: 'F', program: forcer(1), pc: 'force', budget: 1, spare: 0 },
        ...environment(2),
      ]),
    minPaths: 100_000_000_000_000n,
    minStates: 110_000,
    reached: [
      'stale kernel event dropped',
      'stale token refused',
      'deleted while held',
      'holder found its registration deleted',
      'delete BUSY while re-arming',
      're-added under a stale queue entry',
      'forced delivery',
    ],
  },
  {
    name: 'c',
    why: 'a holder re-arming (its kernel enable may fail once), a forcer, a deleter (then a re-add), kernel deliveries to a second waiter',
    world: () =>
      startWorld({ ...dispatch, fdReady: true, firstWaiterHolds: true }, [
        { name: 'H', program: handler, pc: 'wait', budget: 2, spare: 1 },
        { name: 'W2', program: handler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'F', program: forcer(2), pc: 'force', budget: 2, spare: 0 },
        { name: 'D', program: deleter({ readd: true, readdOneshot: false, forceNew: false }), pc: 'delete', budget: 0, spare: 0 },
        ...environment(2),
      ]),
    minPaths: 10_000_000_000_000_000n,
    minStates: 270_000,
    reached: [
      'rearm aborted',
      'delete BUSY while re-arming',
      'deleted while held',
      'force not pushed (FORCED_LATER)',
      'forced delivery',
      'readiness handed on to the re-arming thread',
      'stale token refused',
    ],
  },
  {
    name: 'd',
    why: 'ONESHOT: two waiters, a forcer, a deleter racing the delivery that frees it (then a ONESHOT re-add, forced)',
    world: () =>
      startWorld({ ...dispatch, oneshot: true }, [
        { name: 'W1', program: handler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'W2', program: handler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'F', program: forcer(2), pc: 'force', budget: 2, spare: 0 },
        { name: 'D', program: deleter({ readd: true, readdOneshot: true, forceNew: true }), pc: 'delete', budget: 0, spare: 0 },
        ...environment(1),
      ]),
    minPaths: 100_000_000n,
    minStates: 1_500,
    reached: ['ONESHOT delivery', 'delete lost to a ONESHOT delivery', 'forced delivery', 'stale token refused', 'queue entry dropped'],
  },
  {
    name: 'e',
    why: 'a waiter that may die holding or re-arming, its recovery (threadExited), two live waiters, a forcer (plain, deadline, plain), the kernel',
    world: () =>
      startWorld(dispatch, [
        { name: 'D', program: handlerThatMayDie, pc: 'wait', budget: 1, spare: 0 },
        { name: 'W1', program: liveHandler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'W2', program: liveHandler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'R', program: recoverer('D'), pc: 'idle', budget: 0, spare: 0 },
        { name: 'F', program: forcer(3), pc: 'force', budget: 3, spare: 0 },
        ...environment(2),
      ]),
    minPaths: 1_000_000_000_000_000_000n,
    minStates: 330_000,
    reached: [
      'died holding it',
      'died re-arming, before its kernel enable',
      'died re-arming, after its kernel enable',
      'abandoned delivered via queue',
      'abandoned delivered via kernel event',
      'abandoned delivered by the final drain',
      'abandon while a force pending',
      'abandoned delivered with FORCED',
      'abandoned delivered with TIMEOUT',
      'abandon with readiness handed on',
      'abandon found it queued already',
      'queue entry dropped',
      'collected a live claim before its holder store',
      'recovery skipped: a live thread claimed it meanwhile',
      'holder word kept: a live thread claimed it first',
    ],
  },
  {
    name: 'f',
    why: 'a holder that may die, its recovery, a live waiter, a deleter that re-adds the slot and forces the new token, a forcer (plain, deadline), the kernel',
    world: () =>
      startWorld({ ...dispatch, fdReady: true, firstWaiterHolds: true }, [
        { name: 'D', program: handlerThatMayDie, pc: 'wait', budget: 0, spare: 0 },
        { name: 'W', program: liveHandler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'R', program: recoverer('D'), pc: 'idle', budget: 0, spare: 0 },
        { name: 'Del', program: deleter({ readd: true, readdOneshot: false, forceNew: true }), pc: 'delete', budget: 0, spare: 0 },
        { name: 'F', program: forcer(2), pc: 'force', budget: 2, spare: 0 },
        ...environment(2),
      ]),
    minPaths: 10_000_000_000_000n,
    minStates: 175_000,
    reached: [
      'abandon after delete: NOT_LIVE',
      'delete BUSY until recovery: a dead thread was re-arming',
      'deleted while held',
      'abandoned delivered via queue',
      'abandoned delivered via kernel event',
      'abandon while a force pending',
      'recovery skipped: a live thread claimed it meanwhile',
      'collected a live claim before its holder store',
      're-added under a stale queue entry',
      'stale token refused',
    ],
  },
  {
    name: 'g',
    why: 'EDGE: two waiters (one turns WRITABLE on as it re-arms), a forcer (plain, deadline), kernel edges while armed and held, a peer',
    world: () => edgeWorld(edgeHandlerGainsWritable, 2, 1),
    minPaths: 10_000_000_000_000_000_000n,
    minStates: 300_000,
    reached: [
      'edge remembered while held',
      'edge remembered while re-arming',
      'edge remembered while armed, unwanted',
      'queueIfWanted queued it',
      'rearmEdge pushed pending',
      'delivery kept unwanted readiness in P',
      'interest gained WRITABLE',
      'forced delivery',
      'force not pushed (FORCED_LATER)',
      'queue entry dropped',
    ],
  },
  {
    name: 'h',
    why: 'EDGE: a holder, a second waiter, a forcer, a deleter that re-adds (EDGE) and forces the new token, kernel edges while held and deleting',
    world: () =>
      startWorld({ ...edge, fdReady: true, firstWaiterHolds: true }, [
        { name: 'H', program: edgeHandler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'W2', program: edgeHandler, pc: 'wait', budget: 2, spare: 0 },
        { name: 'F', program: forcer(1), pc: 'force', budget: 1, spare: 0 },
        { name: 'D', program: deleter({ readd: true, readdOneshot: false, forceNew: true, readdEdge: true }), pc: 'delete', budget: 0, spare: 0 },
        ...edgeEnvironment(1, 1),
      ]),
    minPaths: 100_000_000_000_000n,
    minStates: 380_000,
    reached: [
      'edge remembered while held',
      'edge dropped while deleting',
      'stale kernel event dropped',
      'stale token refused',
      'deleted while held',
      'holder found its registration deleted',
      're-added under a stale queue entry',
      'rearmEdge pushed pending',
      'forced delivery',
    ],
  },
  {
    name: 'i',
    why: 'EDGE: a waiter that turns WRITABLE on and off again as it re-arms, a second waiter, a forcer, kernel edges; a won claim drops what the interest no longer wants',
    world: () => edgeWorld(edgeHandlerThatToggles, 1, 2),
    minPaths: 10_000_000_000_000_000_000n,
    minStates: 100_000,
    reached: [
      'interest lost WRITABLE',
      'interest gained WRITABLE',
      'claim kept what the interest dropped in P',
      'claim gave back what the interest dropped',
      'forced delivery',
    ],
  },
];

describe('interleavings', () => {
  for (const s of scenarios) {
    const title = `scenario ${s.name}: ${s.why}`;
    it(title, () => {
      coverage.clear();
      const started = performance.now();
      const result: Exploration = explore(s.world(), slotModel, MAX_DEPTH);
      const ms = Math.round(performance.now() - started);
      console.log(
        `interleavings: scenario ${s.name}: ${result.paths} paths, ${result.states} states, ` +
          `${result.ends} quiescent, longest ${result.depth} steps, ${ms} ms`,
      );
      expect(result.paths).toBeGreaterThanOrEqual(s.minPaths);
      expect(result.states).toBeGreaterThanOrEqual(s.minStates);
      for (const race of s.reached) expect(coverage.get(race) ?? 0, `reached: ${race}`).toBeGreaterThan(0);
      if (process.env['INTERLEAVINGS_COVERAGE']) console.log(Object.fromEntries(coverage));
    });
  }
});
