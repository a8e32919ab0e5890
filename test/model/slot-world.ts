/**
 * A model of one registration slot, built around the real transitions of src/core/table.ts:
 * the state word lives in a real Int32Array and every transition is the real function. Around
 * it, models of what reactor.ts and engine.ts do with the results: a kernel entry with
 * dispatch-once semantics, events in flight from the kernel to the waiters, the ready queue, the
 * slot's holder word and the recovery of a dead thread's events.
 *
 * Actors (waiters, one of which may die holding the event, the recovery that runs when it has
 * died, a forcer, a deleter, the kernel, the peer writing to the fd) are small programs: a table
 * from a program counter to the steps possible there. One step is one transition call or one
 * kernel, queue or holder-word operation, so the explorer tries every order of them.
 */
import { Ready } from '../../src/core/flags.js';
import {
  abandon,
  ABANDONED,
  abortRearm,
  ACTIVE,
  ANY_READY,
  ALREADY_FORCED,
  arm,
  ARMED,
  beginDelete,
  beginRearm,
  BUSY,
  claim,
  claimQueued,
  DELETING,
  deliveredReady,
  DROPPED,
  dropUnwanted,
  EDGE,
  endRearm,
  force,
  FORCE,
  FORCED_LATER,
  FORCED_PUSH,
  FREE,
  GEN_SHIFT,
  genOf,
  genOfToken,
  GIVEN_BACK_PUSH,
  HANDED_ON,
  holderAttachment,
  holderGen,
  holderOf,
  MUST_FREE,
  nextGen,
  NOT_ACTIVE,
  NOT_LIVE,
  OK,
  ONESHOT,
  PENDING,
  PENDING_SHIFT,
  QUEUED,
  queueIfWanted,
  REARMING,
  rearmEdge,
  release,
  REMEMBERED,
  slotOfToken,
  stateOf,
  storeHolder,
  TIMEOUT,
  wantOf,
} from '../../src/core/state-machine.js';
import { expect, type Model, type Step } from './explore.js';

/** The slot every scenario uses: one slot, reused by a re-add, is the worst case for staleness. */
export const SLOT = 0;

/** The real memory the transitions run on; a state's word is loaded into it for each call. */
const words = new Int32Array(new SharedArrayBuffer(4 * (SLOT + 1)));

/** Interesting outcomes reached while exploring, so a test can assert the races really ran. */
export const coverage = new Map<string, number>();

function saw(what: string): void {
  coverage.set(what, (coverage.get(what) ?? 0) + 1);
}

// ---- The state ------------------------------------------------------------------------------

/** The kernel's entry for the slot's fd (epoll with EPOLLONESHOT, kqueue with EV_DISPATCH). */
interface KernelEntry {
  present: boolean;
  /** Fires once when armed and the fd is ready, which disarms it. */
  armed: boolean;
  /** The generation in the entry's user data (the token it was added or enabled with). */
  key: number;
  /** EDGE (EPOLLET, both directions): readiness that arrived and is not reported yet. */
  edges: number;
}

/** One thread (or the kernel, or the peer): a program and where it is in it. */
export interface Actor {
  readonly name: string;
  readonly program: Program;
  pc: string;
  /** The generation the actor works on: held, forced, deleted or re-added. 0 for none. */
  gen: number;
  /** Waiter: deliveries it will still take. Forcer: forces left. Peer: writes left. */
  budget: number;
  /** Waiter: kernel-enable failures it may still suffer. Deleter: the re-added generation. */
  spare: number;
  /**
   * EDGE waiter: the kernel event it took (generation × 16 + readiness), then the want it read
   * with it; once a claim is won, what it delivers;
   * once delivered, the readiness it has not consumed yet. Peer: room-to-write events left.
   */
  data?: number;
  want?: number;
  /** Waiter: the holder word it read before its claim, for storeHolder. */
  seen?: number;
  /** EDGE waiter between a won claim and its dropUnwanted: the claim was of a ready-queue entry. */
  fromQueue?: boolean;
}

/** The highest generation a scenario reaches, plus one (arrays below are indexed by generation). */
const GENS = 4;

export class World {
  /** The slot's state word (src/core/table.ts). */
  word = 0;
  /** Whether the fd has data: a peer write sets it, a handler's read clears it. */
  fdReady = false;
  entry: KernelEntry = { present: false, armed: false, key: 0, edges: 0 };
  /** Whether the fd has room to write: the peer reading makes it so, a handler's writes fill it. */
  fdWritable = false;
  /** The slot's interest (Table.interests): only the holder writes it, before its rearm. */
  interest: number = Ready.READABLE;
  /** EDGE events the kernel returned and no waiter has taken yet: generation × 16 + readiness, sorted. */
  edgeInFlight: number[] = [];
  /** Bit g: generation g was armed EDGE. */
  edge = 0;
  /** Generations of events the kernel returned and no waiter has claimed yet (a multiset, sorted). */
  inFlight: number[] = [];
  /** The ready queue: a FIFO of slot numbers. */
  queue: number[] = [];
  /** Per generation: forces that returned FORCED_PUSH or FORCED_LATER. */
  forcesAccepted: number[] = new Array<number>(GENS).fill(0);
  /** Per generation: deliveries flagged FORCED. */
  forcesDelivered: number[] = new Array<number>(GENS).fill(0);
  /** Per generation: whether the force pending now came from a deadline (TIMEOUT). */
  forceIsDeadline: boolean[] = new Array<boolean>(GENS).fill(false);
  /** The slot's holder word (ReactorMemory.holders): the index + 1 of the last actor a delivery recorded, 0 for none. */
  holder = 0;
  /** The generation the holder word names with it. */
  holderGen = 0;
  /** Per generation: abandons that handed a dead holder's event on (abandon did not return NOT_LIVE). */
  abandons: number[] = new Array<number>(GENS).fill(0);
  /** Per generation: deliveries flagged ABANDONED. */
  abandonsDelivered: number[] = new Array<number>(GENS).fill(0);
  /** Bit g: the kernel's readiness of generation g was handed on (P) and not yet delivered. */
  handedOn = 0;
  /** Bit g: generation g is dead (beginDelete succeeded, or a ONESHOT delivery retired it). */
  deleted = 0;
  /** Bit g: generation g was released (freed). */
  released = 0;
  /** Bit g: generation g was armed ONESHOT. */
  oneshot = 0;
  actors: Actor[] = [];
  /** What the last step's call returned, for the printed interleaving (not part of the state). */
  result = '';

  clone(): World {
    const w = new World();
    w.word = this.word;
    w.fdReady = this.fdReady;
    w.fdWritable = this.fdWritable;
    w.interest = this.interest;
    w.edgeInFlight = [...this.edgeInFlight];
    w.edge = this.edge;
    w.entry = { ...this.entry };
    w.inFlight = [...this.inFlight];
    w.queue = [...this.queue];
    w.forcesAccepted = [...this.forcesAccepted];
    w.forcesDelivered = [...this.forcesDelivered];
    w.forceIsDeadline = [...this.forceIsDeadline];
    w.holder = this.holder;
    w.holderGen = this.holderGen;
    w.abandons = [...this.abandons];
    w.abandonsDelivered = [...this.abandonsDelivered];
    w.handedOn = this.handedOn;
    w.deleted = this.deleted;
    w.released = this.released;
    w.oneshot = this.oneshot;
    w.actors = this.actors.map((a) => ({ ...a }));
    return w;
  }

  key(): string {
    const e = this.entry;
    const actors = this.actors.map((a) => `${a.pc}/${a.gen}/${a.budget}/${a.spare}/${a.data ?? ''}/${a.want ?? ''}/${a.seen ?? ''}/${a.fromQueue ? 'q' : ''}`).join(' ');
    return (
      `${this.word}|${this.fdReady ? 1 : 0}|${e.present ? 1 : 0}${e.armed ? 1 : 0}${e.key}|${this.inFlight.join(',')}` +
      `|${this.queue.join(',')}|${this.forcesAccepted.join(',')}|${this.forcesDelivered.join(',')}` +
      `|${this.forceIsDeadline.map((d) => (d ? 1 : 0)).join('')}|${this.holder}.${this.holderGen}|${this.abandons.join(',')}` +
      `|${this.abandonsDelivered.join(',')}|${this.handedOn}|${this.deleted}|${this.released}|${this.oneshot}|${actors}` +
      `|${this.fdWritable ? 1 : 0}${this.interest}|${e.edges}|${this.edgeInFlight.join(',')}|${this.edge}`
    );
  }

  describe(): string {
    const e = this.entry;
    const kernel = !e.present ? 'none' : this.isEdge(e.key) ? `edge gen ${e.key}, edges ${e.edges}` : `${e.armed ? 'armed' : 'disarmed'} gen ${e.key}`;
    const actors = this.actors.map((a) => `${a.name}@${a.pc}${a.gen !== 0 ? `(gen ${a.gen})` : ''}`).join(' ');
    return (
      `word ${describeWord(this.word)}; fd ${this.fdReady ? 'ready' : 'idle'}${this.fdWritable ? ', writable' : ''}; ` +
      `interest ${this.interest}; kernel entry ${kernel}; in flight [${this.inFlight.join(',')}]` +
      `${this.edgeInFlight.length > 0 ? ` edges [${this.edgeInFlight.map(edgeName).join(',')}]` : ''}; queue [${this.queue.join(',')}]; holder word ${this.holderName()}; ${actors}`
    );
  }

  /** Runs a real transition on the real Int32Array, with this state's word. */
  run<T>(transition: (words: Int32Array) => T): T {
    words[SLOT] = this.word;
    const result = transition(words);
    this.word = words[SLOT]!;
    return result;
  }

  get gen(): number {
    return genOf(this.word);
  }

  /** The holder word as the engine keeps it: attachment and generation. */
  get holderWord(): number {
    return holderOf(this.holder, this.holderGen);
  }

  get state(): number {
    return stateOf(this.word);
  }

  /** ARMED, ACTIVE or REARMING: a registration a token can name. */
  get live(): boolean {
    const s = this.state;
    return s === ARMED || s === ACTIVE || s === REARMING;
  }

  isEdge(gen: number): boolean {
    return (this.edge & (1 << gen)) !== 0;
  }

  /** The fd's readiness now, as Ready bits. */
  get fdReadiness(): number {
    return (this.fdReady ? Ready.READABLE : 0) | (this.fdWritable ? Ready.WRITABLE : 0);
  }

  isDeleted(gen: number): boolean {
    return (this.deleted & (1 << gen)) !== 0;
  }

  /** The actor the holder word names, for reports. */
  holderName(): string {
    return this.holder === 0 ? 'none' : (this.actors[this.holder - 1]?.name ?? `#${this.holder}`);
  }

  /** 1 when a dead holder's event of `gen` was handed on and not yet delivered. */
  abandonPending(gen: number): number {
    return this.abandons[gen]! - this.abandonsDelivered[gen]!;
  }

  /** 1 when a force of `gen` was accepted and not yet delivered. */
  forcePending(gen: number): number {
    return this.forcesAccepted[gen]! - this.forcesDelivered[gen]!;
  }

  /** The actors that hold `gen` (got it delivered and have not yet ended their rearm). */
  holders(gen: number): Actor[] {
    return this.actors.filter((a) => HOLDING.has(a.pc) && a.gen === gen);
  }

  // ---- The model kernel: dispatch-once, level-triggered ------------------------------------

  /** An EDGE entry (EPOLLET) reports at once the readiness the fd already has. */
  kernelAdd(gen: number): void {
    this.entry = { present: true, armed: true, key: gen, edges: this.isEdge(gen) ? this.fdReadiness : 0 };
  }

  /** Re-arms the entry; it fires again at once if the fd is still ready. False: no entry (ENOENT). */
  kernelEnable(gen: number): boolean {
    if (!this.entry.present) return false;
    this.entry = { present: true, armed: true, key: gen, edges: 0 };
    return true;
  }

  kernelRemove(gen: number): void {
    expect(this.entry.present && this.entry.key === gen, 'the kernel entry is removed once, by whoever frees', () =>
      `removing gen ${gen} but the kernel entry is ${this.entry.present ? `gen ${this.entry.key}` : 'gone'}: ${this.describe()}`,
    );
    this.entry = { present: false, armed: false, key: 0, edges: 0 };
  }

  // ---- The ready queue ---------------------------------------------------------------------

  push(slot: number): void {
    this.queue.push(slot);
  }
}

const STATE_NAMES = ['FREE', 'ARMED', 'ACTIVE', 'REARMING', 'DELETING'];

export function describeWord(word: number): string {
  let s = `gen ${genOf(word)} ${STATE_NAMES[stateOf(word)] ?? `state ${stateOf(word)}`}`;
  if (word & FORCE) s += '+F';
  if (word & TIMEOUT) s += '+T';
  if (word & PENDING) s += '+P';
  if (word & QUEUED) s += '+Q';
  if (word & ABANDONED) s += '+A';
  if (word & ONESHOT) s += ' oneshot';
  if (word & EDGE) s += ` edge${word & PENDING ? ` P=${(word & PENDING) >>> PENDING_SHIFT}` : ''}`;
  return s;
}

/** An EDGE event in flight: generation × 16 + readiness. */
function edgeName(event: number): string {
  return `gen ${event >> 4}:${event & 15}`;
}

// ---- Programs -------------------------------------------------------------------------------

/** From a program counter, the steps the actor can take (none: blocked or finished). */
export type Program = Readonly<Record<string, (w: World, me: Actor) => readonly Move[]>>;

/** One step of one actor; `run` mutates a fresh copy of the state and checks what it may. */
interface Move {
  readonly label: string;
  readonly run: (w: World, me: Actor) => void;
}

function move(label: string, run: (w: World, me: Actor) => void): Move {
  return { label, run };
}

/** A waiter pops the ready queue; what it popped is handled at 'popped'. */
const popReadyQueue = move('pop ready queue', (w, me) => {
  const slot = w.queue.shift();
  expect(slot === SLOT, 'the queue holds slots', () => `popped ${String(slot)}`);
  me.pc = 'popped';
});

/**
 * Program counters at which a waiter holds the registration `gen` it was delivered. A waiter
 * that died holding it ('dead') holds it until recovery hands it on ('buried').
 */
const HOLDING = new Set([
  'record',
  'handle',
  'enable',
  'endRearm',
  'kept',
  'oneshot-remove',
  'oneshot-release',
  'oneshot-rearm',
  'dead',
  'edge-recheck',
  'edge-handle',
  'edge-rearm',
]);

/** Program counters of a live thread holding the registration, once its holder word is stored. */
const LIVE_HOLDING = new Set(['handle', 'enable', 'endRearm', 'kept', 'edge-handle', 'edge-rearm']);

/** Program counters between arm and kernel add of a re-add. */
const ADDING = new Set(['add']);

/** Program counters at which an actor owes the ready queue a push (its transition set Q). */
const OWES_PUSH = new Set(['push', 'clear-then-push']);

/** What a delivered waiter does next: free a ONESHOT registration at once, or handle it. */
function afterDelivery(w: World, me: Actor): string {
  if ((w.oneshot & (1 << me.gen)) !== 0) return 'oneshot-remove';
  return w.isEdge(me.gen) ? 'edge-handle' : 'handle';
}

/** The delivered waiter stores itself in the slot's holder word, as the engine does after a claim. */
function recordHolder(w: World, me: Actor): void {
  // The engine's storeHolder on the word: not once the registration was deleted (the slot's
  // next one may have its holder already).
  const holders = Int32Array.of(w.holderWord);
  w.run((words) => storeHolder(holders, words, SLOT, me.gen, holderOf(w.actors.indexOf(me) + 1, me.gen), me.seen ?? w.holderWord));
  w.holder = holderAttachment(holders[0]!);
  w.holderGen = holderGen(holders[0]!);
  delete me.seen;
}

/**
 * A delivery to waiter `me`: the checks every delivery must pass, then the handler starts.
 * `flags` is what claim or deliveredReady returned. The holder word is stored with the
 * delivery, or by a step of its own when `recordsApart`.
 */
function deliver(w: World, me: Actor, gen: number, flags: number, via: string, recordsApart = false): void {
  const forced = (flags & Ready.FORCED) !== 0;
  const abandoned = (flags & Ready.ABANDONED) !== 0;
  // An EDGE claim delivers when it is won; a delete before its dropUnwanted comes after that.
  expect(me.pc === 'edge-recheck' || !w.isDeleted(gen), 'nothing is delivered for a deleted token', () => `${via} delivered dead gen ${gen}: ${w.describe()}`);
  const others = w.holders(gen).filter((a) => a !== me);
  expect(others.length === 0, 'never two holders of one registration', () =>
    `${me.name} got gen ${gen} (${via}) while ${others.map((a) => a.name).join(', ')} holds it: ${w.describe()}`,
  );
  expect((flags & (Ready.READABLE | Ready.WRITABLE | Ready.FORCED | Ready.ABANDONED)) !== 0, 'every delivery has a cause', () =>
    `${via} delivered gen ${gen} with neither readiness, FORCED nor ABANDONED (flags ${flags}): ${w.describe()}`,
  );
  const oneshot = (w.oneshot & (1 << gen)) !== 0;
  expect(((flags & MUST_FREE) !== 0) === oneshot, 'a ONESHOT delivery, and only one, must free', () =>
    `gen ${gen} is ${oneshot ? '' : 'not '}ONESHOT but the delivery says ${flags & MUST_FREE ? '' : 'not '}MUST_FREE`,
  );
  // EDGE keeps in P what the want its claim read does not name, for a later interest that does
  // (its holder's rearmEdge queues it then); the carriers invariant checks that nothing is lost.
  const kept = !w.isEdge(gen) && (w.word & PENDING) !== 0;
  // After an EDGE claim's dropUnwanted, F and T are a newer force's: the claim consumed its own.
  const newer = me.pc === 'edge-recheck' ? FORCE | TIMEOUT : 0;
  expect((w.word & (FORCE | TIMEOUT | ABANDONED) & ~newer) === 0 && !kept, 'a delivery consumes the force, abandon and handed-on readiness it carries', () =>
    `${via} left ${describeWord(w.word)}: they would be delivered again`,
  );
  if (w.isEdge(gen)) {
    // The interest is the holder's to change, so at a delivery it is the one the claim had to apply.
    const want = wantOf(w.interest);
    expect((flags & ANY_READY & ~want) === 0, 'no delivery of readiness the interest does not want', () =>
      `${via} delivered gen ${gen} flags ${flags} with interest ${w.interest}: ${w.describe()}`,
    );
    if ((w.word & PENDING) !== 0) saw('delivery kept unwanted readiness in P');
    me.data = flags & ANY_READY;
  }
  // An EDGE claim's force was counted when the claim was won (see `recheck`).
  if (me.pc !== 'edge-recheck') countForce(w, gen, flags, via);
  const abandonPending = w.abandonPending(gen);
  expect(abandoned === (abandonPending === 1), "a dead holder's event is delivered exactly once more, flagged ABANDONED", () =>
    `${via} delivered gen ${gen} ${abandoned ? 'ABANDONED' : 'not ABANDONED'} with ${abandonPending} abandon(s) pending: ${w.describe()}`,
  );
  if (abandoned) {
    w.abandonsDelivered[gen]!++;
    saw(via.startsWith('claimQueued') ? 'abandoned delivered via queue' : 'abandoned delivered via kernel event');
    if (forced) saw((flags & Ready.TIMEOUT) !== 0 ? 'abandoned delivered with TIMEOUT' : 'abandoned delivered with FORCED');
    if ((flags & Ready.READABLE) !== 0) saw('abandoned delivered with readiness');
  }
  if (w.handedOn & (1 << gen)) {
    expect((flags & Ready.READABLE) !== 0, 'readiness handed on is delivered with the next delivery', () =>
      `${via} delivered gen ${gen} without READABLE (flags ${flags}): ${w.describe()}`,
    );
    w.handedOn &= ~(1 << gen);
  }
  if (flags & MUST_FREE) {
    w.deleted |= 1 << gen; // retired: its token is dead from this delivery on
    saw('ONESHOT delivery');
  }
  me.gen = gen;
  me.budget--;
  if (recordsApart) {
    me.pc = 'record';
  } else {
    recordHolder(w, me);
    me.pc = afterDelivery(w, me);
  }
}

/** The checks on any operation made with a token: a dead one is refused, a live one is not. */
function checkTokenResult(w: World, gen: number, result: number, op: string): void {
  if (w.isDeleted(gen)) {
    expect(result === NOT_LIVE, "a stale token's operations return NOT_LIVE", () => `${op}(gen ${gen}) returned ${result} after its delete: ${w.describe()}`);
    saw('stale token refused');
  }
}

/** force() and its bookkeeping, as Reactor.forceOneShot does it. Returns the result. */
function doForce(w: World, gen: number, deadline: boolean): number {
  const pendingBefore = w.forcePending(gen);
  const live = !w.isDeleted(gen);
  const r = w.run((words) => force(words, SLOT, gen, deadline));
  w.result = ` -> ${forceLabel(r)}`;
  checkTokenResult(w, gen, r, 'force');
  if (live) {
    expect(r !== NOT_LIVE, 'a live token is accepted', () => `force(gen ${gen}) returned NOT_LIVE: ${w.describe()}`);
  }
  if (r === ALREADY_FORCED) {
    expect(pendingBefore === 1, 'one force at a time', () => `ALREADY_FORCED with no force pending: ${w.describe()}`);
    // A deadline joins the pending force: its one delivery must then say TIMEOUT.
    if (deadline) w.forceIsDeadline[gen] = true;
    saw('already forced');
  }
  if (r === FORCED_PUSH || r === FORCED_LATER) {
    expect(pendingBefore === 0, 'one force at a time', () => `a second force accepted while one is pending: ${w.describe()}`);
    w.forcesAccepted[gen]!++;
    w.forceIsDeadline[gen] = deadline;
    saw(r === FORCED_PUSH ? 'force pushed' : 'force not pushed (FORCED_LATER)');
  }
  return r;
}

function forceLabel(r: number): string {
  return ['NOT_LIVE', '?', 'FORCED_PUSH', 'FORCED_LATER', 'ALREADY_FORCED'][r + 1] ?? String(r);
}

function resultLabel(r: number): string {
  return ['BUSY', 'NOT_ACTIVE', 'NOT_LIVE', 'OK'][r + 3] ?? String(r);
}

/** A claim result: DROPPED, HANDED_ON, or the delivered Ready flags by name. */
function claimLabel(r: number): string {
  if (r === DROPPED) return 'DROPPED';
  if (r === HANDED_ON) return 'HANDED_ON (+P)';
  const names = Object.entries(Ready).filter(([, bit]) => (r & bit) !== 0).map(([name]) => name);
  return `delivered ${names.join('|')}${r & MUST_FREE ? ' MUST_FREE' : ''}`;
}

export interface WaiterOptions {
  /** The handler may read the fd dry before it re-arms (otherwise readiness stays: level). */
  readonly mayRead: boolean;
  /** The handler may end without re-arming: it keeps the registration for good. */
  readonly mayKeep: boolean;
  /**
   * The thread may stop for good while it holds the event (handling it) or re-arms it (before
   * or after its kernel enable, e.g. a staged re-arm applied or not): it has died.
   */
  readonly mayDie?: boolean;
  /**
   * The holder word is stored by a step of its own after the winning claim, as in the engine:
   * the window recovery's grace exists for. (Elsewhere it only multiplies the interleavings.)
   */
  readonly recordsApart?: boolean;
}

/** The step by which a waiter dies where it stands: it holds `gen` until recovery hands it on. */
function dies(where: string): Move {
  return move(`dies ${where}`, (_w, me) => {
    me.pc = 'dead';
    saw(`died ${where}`);
  });
}

/**
 * A thread in wait(): takes a kernel event (claim) or pops the ready queue (claimQueued), and
 * when it is delivered the registration, runs a handler ending in rearm (beginRearm, kernel
 * enable, endRearm, push if told), or for ONESHOT frees it (kernel remove, release). It stops
 * after `budget` deliveries. `spare` kernel enables may fail (abortRearm, then it retries).
 */
export function waiter(options: WaiterOptions): Program {
  return {
    wait: (w, me) => {
      if (me.budget === 0) return [];
      const moves: Move[] = [];
      for (const gen of new Set(w.inFlight)) {
        moves.push(
          move(`claim(kernel event gen ${gen})`, (w, me) => {
            w.inFlight.splice(w.inFlight.indexOf(gen), 1);
            const before = w.word;
            const r = w.run((words) => claim(words, SLOT, gen, Ready.READABLE));
            w.result = ` -> ${claimLabel(r)}`;
            if (gen !== genOf(before)) {
              expect(r === DROPPED, 'a stale kernel event is dropped', () => `claim(gen ${gen}) on ${describeWord(before)} returned ${r}`);
              saw('stale kernel event dropped');
            }
            if (r === HANDED_ON) {
              w.handedOn |= 1 << gen;
              saw('readiness handed on to the re-arming thread');
            }
            if (r > 0) {
              me.seen = w.holderWord; // as read before the claim: nothing came between, in one step
              deliver(w, me, gen, r, `claim(kernel event gen ${gen})`, options.recordsApart);
            }
          }),
        );
      }
      if (w.queue.length > 0) moves.push(popReadyQueue);
      return moves;
    },
    popped: () => [
      move('claimQueued', (w, me) => {
        const seen = w.holderWord;
        const word = w.run((words) => claimQueued(words, SLOT));
        w.result = word === DROPPED ? ' -> DROPPED' : ` -> ${claimLabel(deliveredReady(word, 0))} from ${describeWord(word)}`;
        me.pc = 'wait';
        if (word === DROPPED) return saw('queue entry dropped');
        const gen = genOf(word);
        const flags = deliveredReady(word, 0);
        me.seen = seen;
        deliver(w, me, gen, flags, `claimQueued (word ${describeWord(word)})`, options.recordsApart);
      }),
    ],
    record: () => [move('store holder word', (w, me) => (recordHolder(w, me), (me.pc = afterDelivery(w, me))))],
    handle: (w) => {
      const moves: Move[] = [];
      if (options.mayRead && w.fdReady) {
        moves.push(move('handler reads the fd dry', (w) => (w.fdReady = false)));
      }
      moves.push(
        move('beginRearm', (w, me) => {
          // Reactor.rearm refuses a thread the holder word does not name, before any transition.
          if (w.holder !== w.actors.indexOf(me) + 1) {
            w.result = ` -> refused, holder word names ${w.holderName()}`;
            const held = w.gen === me.gen && w.state === ACTIVE;
            expect(!held, 'the holder may rearm', () => `EPERM for ${me.name}, which holds gen ${me.gen}: ${w.describe()}`);
            expect(w.isDeleted(me.gen), 'a live token is accepted', () => `rearm(gen ${me.gen}) refused: ${w.describe()}`);
            saw('holder found its registration deleted');
            me.pc = 'wait';
            return;
          }
          const r = w.run((words) => beginRearm(words, SLOT, me.gen));
          w.result = ` -> ${resultLabel(r)}`;
          checkTokenResult(w, me.gen, r, 'beginRearm');
          expect(r !== NOT_ACTIVE, 'the holder may rearm', () => `beginRearm(gen ${me.gen}) by its holder returned NOT_ACTIVE: ${w.describe()}`);
          expect(r === OK || w.isDeleted(me.gen), 'a live token is accepted', () => `beginRearm(gen ${me.gen}) returned ${r}: ${w.describe()}`);
          if (r === OK) {
            me.pc = 'enable';
          } else {
            saw('holder found its registration deleted');
            me.pc = 'wait';
          }
        }),
      );
      if (options.mayKeep) {
        moves.push(
          move('handler keeps it (no rearm)', (_w, me) => {
            me.pc = 'kept';
            saw('handler kept it');
          }),
        );
      }
      if (options.mayDie) moves.push(dies('holding it'));
      return moves;
    },
    enable: (_w, me) => {
      const moves = [
        move('kernel enable', (w, me) => {
          if (w.kernelEnable(me.gen)) {
            me.pc = 'endRearm';
          } else {
            w.run((words) => abortRearm(words, SLOT));
            me.pc = 'handle';
            saw('kernel enable found no entry');
          }
        }),
      ];
      if (me.spare > 0) {
        moves.push(
          move('kernel enable fails -> abortRearm', (w, me) => {
            w.run((words) => abortRearm(words, SLOT));
            me.spare--;
            me.pc = 'handle';
            saw('rearm aborted');
          }),
        );
      }
      if (options.mayDie) moves.push(dies('re-arming, before its kernel enable'));
      return moves;
    },
    endRearm: () => [
      move('endRearm', (w, me) => {
        const mustPush = w.run((words) => endRearm(words, SLOT));
        w.result = mustPush ? ' -> push' : ' -> no push';
        me.pc = mustPush ? 'push' : 'wait';
        if (mustPush) saw('endRearm pushed');
      }),
      ...(options.mayDie ? [dies('re-arming, after its kernel enable')] : []),
    ],
    push: () => [move('push ready queue', (w, me) => (w.push(SLOT), (me.pc = 'wait')))],
    kept: () => [],
    dead: () => [],
    buried: () => [],
    // ONESHOT: the waiter frees the slot at once (Reactor.freeSlot), then its handler runs.
    'oneshot-remove': () => [move('kernel remove (ONESHOT)', (w, me) => (w.kernelRemove(me.gen), (me.pc = 'oneshot-release')))],
    'oneshot-release': () => [move('release (ONESHOT)', (w, me) => (doRelease(w, me.gen), (me.pc = 'oneshot-rearm')))],
    'oneshot-rearm': () => [
      move('beginRearm (ONESHOT, must fail)', (w, me) => {
        const r = w.run((words) => beginRearm(words, SLOT, me.gen));
        expect(r === NOT_LIVE, 'a ONESHOT registration is dead after its delivery', () => `beginRearm returned ${r}: ${w.describe()}`);
        me.pc = 'wait';
      }),
    ],
  };
}

export interface EdgeWaiterOptions {
  /**
   * At a rearm the handler may turn WRITABLE on in its interest (READABLE → READABLE|WRITABLE),
   * or also off again ('both').
   */
  readonly toggle: 'none' | 'on' | 'both';
}

/**
 * A thread in wait() on EDGE registrations, as engine.ts does it: takes a kernel edge and reads
 * the interest, then claims it (REMEMBERED: reads the interest again and queueIfWanted); or pops
 * the ready queue, reads the interest, then claimQueued. Its handler reads (or writes) until
 * would-block, or re-arms saying what is still ready; it may change the interest first
 * (Reactor.rearm writes it, then rearmEdge). It stops after `budget` deliveries.
 */
export function edgeWaiter(options: EdgeWaiterOptions): Program {
  return {
    wait: (w, me) => {
      if (me.budget === 0) return [];
      const moves: Move[] = [];
      for (const event of new Set(w.edgeInFlight)) {
        moves.push(
          move(`take kernel edge (${edgeName(event)}), read interest`, (w, me) => {
            w.edgeInFlight.splice(w.edgeInFlight.indexOf(event), 1);
            me.data = event;
            me.want = wantOf(w.interest);
            me.seen = w.holderWord;
            me.pc = 'edge-claim';
          }),
        );
      }
      if (w.queue.length > 0) moves.push(popReadyQueue);
      return moves;
    },
    'edge-claim': (_w, me) => [
      move(`claim(edge ${edgeName(me.data!)}, want ${me.want!})`, (w, me) => {
        const gen = me.data! >> 4;
        const before = w.word;
        const r = w.run((words) => claim(words, SLOT, gen, me.data! & 15, me.want!));
        w.result = ` -> ${r === REMEMBERED ? 'REMEMBERED (+P)' : claimLabel(r)}`;
        me.data = 0;
        me.want = 0;
        if (r <= 0) delete me.seen;
        me.pc = 'wait';
        if (gen !== genOf(before)) {
          expect(r === DROPPED, 'a stale kernel event is dropped', () => `claim(gen ${gen}) on ${describeWord(before)} returned ${r}`);
          return saw('stale kernel event dropped');
        }
        expect(r !== HANDED_ON, 'an EDGE registration is never REARMING', () => describeWord(before));
        if (r === DROPPED && stateOf(before) === DELETING) saw('edge dropped while deleting');
        if (r === REMEMBERED && w.actors.some((a) => a.pc === 'edge-rearm' && a.gen === gen)) saw('edge remembered while re-arming');
        if (r === REMEMBERED) {
          saw(stateOf(before) === ARMED ? 'edge remembered while armed, unwanted' : 'edge remembered while held');
          if (stateOf(before) === ARMED) {
            me.gen = gen;
            me.pc = 'requeue';
          }
          return;
        }
        if (r > 0) recheck(w, me, gen, r, false);
      }),
    ],
    // The claim is won: the interest, read again (only this holder writes it now), decides.
    'edge-recheck': (_w, me) => [
      move(`dropUnwanted(gen ${me.gen}, ready ${me.data!}), interest read again`, (w, me) => {
        const flags = me.data!;
        const r = w.isEdge(me.gen) ? w.run((words) => dropUnwanted(words, SLOT, me.gen, flags, wantOf(w.interest))) : flags;
        w.result = ` -> ${r === GIVEN_BACK_PUSH ? 'given back, push' : r === 0 ? 'given back' : claimLabel(r)}`;
        if (r !== flags) saw(r > 0 ? 'claim kept what the interest dropped in P' : 'claim gave back what the interest dropped');
        me.data = 0;
        const via = me.fromQueue ? 'claimQueued, then dropUnwanted' : 'claim, then dropUnwanted';
        delete me.fromQueue;
        if (r > 0) return deliver(w, me, me.gen, r, via);
        me.pc = r === GIVEN_BACK_PUSH ? 'push' : 'wait';
      }),
    ],
    requeue: (_w, me) => [
      move(`queueIfWanted(gen ${me.gen})`, (w, me) => {
        const push = w.run((words) => queueIfWanted(words, SLOT, me.gen, wantOf(w.interest)));
        w.result = push ? ' -> push' : ' -> nothing';
        if (push) saw('queueIfWanted queued it');
        me.pc = push ? 'push' : 'wait';
      }),
    ],
    popped: () => [move('read interest', (w, me) => ((me.want = wantOf(w.interest)), (me.seen = w.holderWord), (me.pc = 'popped-want')))],
    'popped-want': (_w, me) => [
      move(`claimQueued(want ${me.want!})`, (w, me) => {
        const want = me.want!;
        const word = w.run((words) => claimQueued(words, SLOT, want));
        w.result = word === DROPPED ? ' -> DROPPED' : ` -> ${claimLabel(deliveredReady(word, 0, want))} from ${describeWord(word)}`;
        me.want = 0;
        me.pc = 'wait';
        if (word === DROPPED) {
          // The engine then looks at the interest again (queueIfWanted), as after a REMEMBERED claim.
          delete me.seen;
          me.gen = w.gen;
          me.pc = 'requeue';
          return saw('queue entry dropped');
        }
        recheck(w, me, genOf(word), deliveredReady(word, 0, want), true);
      }),
    ],
    'edge-handle': (w, me) => {
      const moves: Move[] = [];
      // Reading until would-block consumes READABLE (stale, it costs that one would-block).
      if (me.data! & Ready.READABLE) moves.push(move('handler reads until would-block', (w, me) => ((w.fdReady = false), (me.data! &= ~Ready.READABLE))));
      if (me.data! & Ready.WRITABLE) moves.push(move('handler writes until would-block', (w, me) => ((w.fdWritable = false), (me.data! &= ~Ready.WRITABLE))));
      const still = me.data! & (Ready.READABLE | Ready.WRITABLE);
      const toggled = w.interest ^ Ready.WRITABLE;
      const mayToggle = options.toggle === 'both' || (options.toggle === 'on' && (toggled & Ready.WRITABLE) !== 0);
      for (const next of mayToggle ? [0, toggled] : [0]) {
        // With nothing left unconsumed a plain rearm; with readiness left, rearm saying "still ready".
        moves.push(
          move(`rearm${next !== 0 ? ` (interest ${next})` : ''}${still !== 0 ? `, still ${still}` : ''}`, (w, me) => {
            // Reactor.rearm refuses a thread the holder word does not name, before any transition.
            if (w.holder !== w.actors.indexOf(me) + 1 || w.gen !== me.gen || w.state !== ACTIVE) {
              w.result = ' -> refused';
              expect(w.isDeleted(me.gen), 'a live token is accepted', () => `rearm(gen ${me.gen}) refused: ${w.describe()}`);
              saw('holder found its registration deleted');
              me.pc = 'wait';
              return;
            }
            if (next !== 0) {
              w.interest = next;
              saw(next & Ready.WRITABLE ? 'interest gained WRITABLE' : 'interest lost WRITABLE');
            }
            me.want = still;
            me.pc = 'edge-rearm';
          }),
        );
      }
      return moves;
    },
    'edge-rearm': (_w, me) => [
      move(`rearmEdge(gen ${me.gen}, still ${me.want!})`, (w, me) => {
        const r = w.run((words) => rearmEdge(words, SLOT, me.gen, me.want!, wantOf(w.interest)));
        w.result = ` -> ${r === FORCED_PUSH ? 'FORCED_PUSH' : resultLabel(r)}`;
        checkTokenResult(w, me.gen, r, 'rearmEdge');
        expect(r === OK || r === FORCED_PUSH || w.isDeleted(me.gen), 'the holder may rearm', () => `rearmEdge returned ${r}: ${w.describe()}`);
        me.want = 0;
        me.data = 0;
        me.pc = r === FORCED_PUSH ? 'push' : 'wait';
        if (r === FORCED_PUSH) saw('rearmEdge pushed pending');
        if (r === NOT_LIVE) saw('holder found its registration deleted');
      }),
    ],
    push: () => [move('push ready queue', (w, me) => (w.push(SLOT), (me.pc = 'wait')))],
  };
}

/**
 * A delivery's force: exactly one was pending, and a deadline's says TIMEOUT. Counted delivered
 * from here: a force set again in F from now on is a newer one.
 */
function countForce(w: World, gen: number, flags: number, via: string): void {
  const forced = (flags & Ready.FORCED) !== 0;
  const pending = w.forcePending(gen);
  expect(forced === (pending === 1), 'a force is delivered exactly once', () =>
    `${via} delivered gen ${gen} ${forced ? 'FORCED' : 'not FORCED'} with ${pending} force(s) pending: ${w.describe()}`,
  );
  if (!forced) return;
  expect(((flags & Ready.TIMEOUT) !== 0) === w.forceIsDeadline[gen], 'a deadline force is delivered as TIMEOUT', () =>
    `flags ${flags} for a ${w.forceIsDeadline[gen] ? 'deadline' : 'plain'} force`,
  );
  w.forcesDelivered[gen]!++;
  w.forceIsDeadline[gen] = false;
  saw('forced delivery');
}

/**
 * An EDGE waiter won a claim delivering `flags`: it looks at the interest again before delivering.
 * A force it carries is counted now: dropUnwanted never gives back an event with a force.
 */
function recheck(w: World, me: Actor, gen: number, flags: number, fromQueue: boolean): void {
  countForce(w, gen, flags, fromQueue ? 'claimQueued' : 'claim');
  me.gen = gen;
  me.data = flags;
  me.fromQueue = fromQueue;
  me.pc = 'edge-recheck';
}

/** release(), checked: only a DELETING slot of that generation, once. */
function doRelease(w: World, gen: number): void {
  expect(w.state === DELETING && w.gen === gen, 'only a DELETING slot is freed', () => `release for gen ${gen} on ${describeWord(w.word)}`);
  expect((w.released & (1 << gen)) === 0, 'a slot is freed once per generation', () => `gen ${gen} released twice`);
  w.run((words) => release(words, SLOT));
  w.released |= 1 << gen;
  expect(w.state === FREE && w.gen === nextGen(gen), 'release moves to the next generation', () => describeWord(w.word));
}

/**
 * FORCEOS from a thread holding the token of generation `me.gen`: force, push if told. Its
 * forces alternate plain and deadline (TIMEOUT), `me.budget` of them.
 */
export function forcer(total: number): Program {
  return {
    force: (_w, me) => {
      if (me.budget === 0) return [];
      const deadline = (total - me.budget) % 2 === 1;
      return [
        move(`force(gen ${me.gen}${deadline ? ', deadline' : ''})`, (w, me) => {
          const r = doForce(w, me.gen, deadline);
          me.budget--;
          if (r === FORCED_PUSH) me.pc = 'push';
        }),
      ];
    },
    push: () => [move('push ready queue', (w, me) => (w.push(SLOT), (me.pc = 'force')))],
  };
}

export interface DeleterOptions {
  /** After the delete, add the fd again: the same slot, the next generation. */
  readonly readd: boolean;
  /** The re-added registration is ONESHOT. */
  readonly readdOneshot: boolean;
  /** After the re-add, force the new token (must not be hidden by a stale queue entry). */
  readonly forceNew: boolean;
  /** The re-added registration is EDGE. */
  readonly readdEdge?: boolean;
}

/**
 * Reactor.delete from any thread: beginDelete (retried while BUSY), kernel remove, release.
 * Then optionally a re-add (arm, kernel add), and the old token used again, which must be
 * refused everywhere.
 */
export function deleter(options: DeleterOptions): Program {
  return {
    delete: () => [
      move('beginDelete', (w, me) => {
        const wasDeleted = w.isDeleted(me.gen);
        const r = w.run((words) => beginDelete(words, SLOT, me.gen));
        w.result = ` -> ${resultLabel(r)}`;
        checkTokenResult(w, me.gen, r, 'beginDelete');
        if (r === BUSY) {
          expect(w.state === REARMING, 'BUSY only while a rearm is in flight', () => describeWord(w.word));
          if (w.holders(me.gen).some((a) => a.pc === 'dead')) saw('delete BUSY until recovery: a dead thread was re-arming');
          return saw('delete BUSY while re-arming'); // retried: a stutter, the state is unchanged
        }
        expect(r === OK || wasDeleted, 'a live token is accepted', () => `beginDelete(gen ${me.gen}) returned ${r}: ${w.describe()}`);
        if (r === OK) {
          w.deleted |= 1 << me.gen;
          w.handedOn &= ~(1 << me.gen); // deleted with it
          if (w.holders(me.gen).length > 0) saw('deleted while held');
          me.pc = 'remove';
        } else {
          saw('delete lost to a ONESHOT delivery');
          me.pc = 'stale';
        }
      }),
    ],
    remove: () => [move('kernel remove', (w, me) => (w.kernelRemove(me.gen), (me.pc = 'release')))],
    release: () => [move('release', (w, me) => (doRelease(w, me.gen), (me.pc = options.readd ? 'arm' : 'stale')))],
    arm: () => [
      move(`arm(${options.readdOneshot ? 'oneshot' : options.readdEdge ? 'edge' : 'dispatch'}) (re-add)`, (w, me) => {
        const token = w.run((words) => arm(words, SLOT, options.readdOneshot ? ONESHOT : options.readdEdge ? EDGE : 0));
        expect(slotOfToken(token) === SLOT && genOfToken(token) === nextGen(me.gen), 'a re-add gets the next generation', () => `token ${token}`);
        me.spare = genOfToken(token);
        if (options.readdOneshot) w.oneshot |= 1 << me.spare;
        if (options.readdEdge) w.edge |= 1 << me.spare;
        if (w.word & QUEUED) saw('re-added under a stale queue entry');
        me.pc = 'add';
      }),
    ],
    add: () => [move('kernel add (re-add)', (w, me) => (w.kernelAdd(me.spare), (me.pc = 'stale')))],
    stale: () => [
      move('old token: force, beginDelete, beginRearm', (w, me) => {
        const before = w.word;
        const results = [
          w.run((words) => force(words, SLOT, me.gen, false)),
          w.run((words) => beginDelete(words, SLOT, me.gen)),
          w.run((words) => beginRearm(words, SLOT, me.gen)),
        ];
        for (const r of results) checkTokenResult(w, me.gen, r, 'old token');
        expect(w.word === before, "a stale token's operations change nothing", () => `${describeWord(before)} -> ${describeWord(w.word)}`);
        me.pc = me.spare !== 0 && options.forceNew ? 'force-new' : 'done'; // only after a re-add
      }),
    ],
    'force-new': (_w, me) => [
      move(`force(gen ${me.spare}) (new token)`, (w, me) => {
        const r = doForce(w, me.spare, false);
        me.pc = r === FORCED_PUSH ? 'push' : 'done';
      }),
    ],
    push: () => [move('push ready queue', (w, me) => (w.push(SLOT), (me.pc = 'done')))],
    done: () => [],
  };
}

/**
 * A thread calling rearm with a live token it does not hold, while nobody holds it (ARMED) or
 * its holder is re-arming: refused with NOT_ACTIVE (EINVAL), changing nothing. (While another
 * thread holds it, the table cannot tell the callers apart; that misuse is the user's.)
 */
export const strayRearm: Program = {
  run: (w, me) =>
    me.budget > 0 && (w.state === ARMED || w.state === REARMING) && w.gen === me.gen
      ? [
          move(`beginRearm(gen ${me.gen}) without holding it`, (w, me) => {
            const before = w.word;
            const r = w.run((words) => beginRearm(words, SLOT, me.gen));
            expect(r === NOT_ACTIVE && w.word === before, 'only the holder may rearm', () => `beginRearm returned ${r} on ${describeWord(before)}`);
            me.budget--;
            saw('stray rearm refused');
          }),
        ]
      : [],
};

/** The engine's compareExchange of the holder word from the dead thread to 0: a live claim's store stays. */
function clearHolder(w: World, dead: number): void {
  if (w.holder === dead) w.holder = 0;
  else saw('holder word kept: a live thread claimed it first');
}

function abandonLabel(r: number): string {
  return r === NOT_LIVE ? 'NOT_LIVE' : r === FORCED_PUSH ? 'push' : 'no push (already queued)';
}

/**
 * Engine.threadExited for the thread of waiter `target`, once that thread has died or ended:
 * collects the slot, with its generation, if the holder word names the thread and the slot is
 * ACTIVE or REARMING; after the grace (every claim already won has stored its holder word)
 * checks the holder word again; abandons the collected generation; clears the holder word
 * unless a live claim stored its own; pushes when told. The model's waiters never sleep, so
 * its wake-up is not a step.
 */
export function recoverer(target: string): Program {
  const deadOf = (w: World): number => w.actors.findIndex((a) => a.name === target) + 1;
  return {
    idle: (w) => {
      const t = w.actors[deadOf(w) - 1]!;
      if (t.pc !== 'dead' && !(t.pc === 'wait' && t.budget === 0)) return [];
      return [
        move(`threadExited(${target}): collect`, (w, me) => {
          const s = w.state;
          const collected = w.holder === deadOf(w) && (s === ACTIVE || s === REARMING);
          w.result = collected ? ` -> held (gen ${w.gen})` : ' -> nothing held';
          me.gen = w.gen;
          me.pc = collected ? 'check' : 'done';
          if (collected && w.holders(w.gen).some((a) => a.pc === 'record')) saw('collected a live claim before its holder store');
        }),
      ];
    },
    // The grace: a live thread that won a claim stores its holder word within it.
    check: (w) =>
      w.actors.some((a) => a.pc === 'record')
        ? []
        : [
            move('grace, then holder word check', (w, me) => {
              const still = w.holder === deadOf(w);
              w.result = still ? ' -> still the dead thread' : ` -> ${w.holderName()}: skipped`;
              me.pc = still ? 'abandon' : 'done';
              if (!still) saw('recovery skipped: a live thread claimed it meanwhile');
            }),
          ],
    abandon: (_w, me) => [
      move(`abandon(gen ${me.gen})`, (w, me) => {
        const gen = me.gen;
        const forcePending = (w.word & FORCE) !== 0;
        const handedOn = (w.word & PENDING) !== 0;
        const r = w.run((words) => abandon(words, SLOT, gen));
        w.result = ` -> ${abandonLabel(r)}`;
        if (r === NOT_LIVE) {
          expect(w.isDeleted(gen), "a dead holder's event is handed on unless deleted", () => `abandon(gen ${gen}) returned NOT_LIVE: ${w.describe()}`);
          saw('abandon after delete: NOT_LIVE');
          me.pc = 'done';
          return;
        }
        // What the call changed is the registration it handed on: gen, live, held by the dead thread.
        const held = w.holders(w.gen);
        const deadHolder = held.length === 1 && held[0]!.pc === 'dead';
        expect(w.gen === gen && !w.isDeleted(gen) && deadHolder, "only a dead thread's live event is handed on", () =>
          `abandon(gen ${gen}) handed on gen ${w.gen}${w.isDeleted(w.gen) ? ' (deleted)' : ''}, held by ` +
          `${held.map((a) => `${a.name}@${a.pc}`).join(', ') || 'nobody'}: ${w.describe()}`,
        );
        held[0]!.pc = 'buried';
        w.abandons[gen]!++;
        if (forcePending) saw('abandon while a force pending');
        if (handedOn) saw('abandon with readiness handed on');
        if (r === FORCED_LATER) saw('abandon found it queued already');
        me.pc = r === FORCED_PUSH ? 'clear-then-push' : 'clear';
      }),
    ],
    clear: () => [move('clear holder word', (w, me) => (clearHolder(w, deadOf(w)), (me.pc = 'done')))],
    'clear-then-push': () => [move('clear holder word', (w, me) => (clearHolder(w, deadOf(w)), (me.pc = 'push')))],
    push: () => [move('push ready queue', (w, me) => (w.push(SLOT), (me.pc = 'done')))],
    done: () => [],
  };
}

/** The kernel: an armed entry on a ready fd fires once (dispatch-once disarms it). */
export const kernel: Program = {
  run: (w) =>
    w.entry.present && w.entry.armed && w.fdReady
      ? [
          move(`kernel fires (gen ${w.entry.key})`, (w) => {
            w.entry.armed = false;
            w.inFlight.push(w.entry.key);
            w.inFlight.sort((a, b) => a - b);
          }),
        ]
      : [],
};

/** An EDGE kernel entry (EPOLLET, both directions): reports what arrived, never needs re-arming. */
export const edgeKernel: Program = {
  run: (w) =>
    w.entry.present && w.entry.edges !== 0
      ? [
          move(`kernel reports edges ${w.entry.edges} (gen ${w.entry.key})`, (w) => {
            w.edgeInFlight.push(w.entry.key * 16 + w.entry.edges);
            w.edgeInFlight.sort((a, b) => a - b);
            w.entry.edges = 0;
          }),
        ]
      : [],
};

/**
 * The other end, for EDGE: writes data `budget` times (each an edge, readable or not already)
 * and, `data` times, reads, giving the fd room to write again after a handler filled it.
 */
export const edgePeer: Program = {
  run: (w, me) => {
    const moves: Move[] = [];
    if (me.budget > 0) moves.push(move('peer writes', (w, me) => (arrive(w, Ready.READABLE), me.budget--)));
    if (me.data! > 0 && !w.fdWritable) moves.push(move('peer reads: room to write', (w, me) => (arrive(w, Ready.WRITABLE), me.data!--)));
    return moves;
  },
};

/** New readiness on the fd: an edge for the kernel entry to report. */
function arrive(w: World, bit: number): void {
  if (bit === Ready.READABLE) w.fdReady = true;
  else w.fdWritable = true;
  if (w.entry.present) w.entry.edges |= bit;
}

/** The other end of the connection: makes the fd ready, `budget` times. */
export const peer: Program = {
  run: (w, me) => (me.budget > 0 && !w.fdReady ? [move('peer writes', (w, me) => ((w.fdReady = true), me.budget--))] : []),
};

// ---- Invariants -----------------------------------------------------------------------------

/** Invariants of every state, by name: each returns null or what is wrong. */
const stateInvariants: Readonly<Record<string, (w: World) => string | null>> = {
  'never two holders of one registration': (w) => {
    const gens = w.actors.filter((a) => HOLDING.has(a.pc)).map((a) => a.gen);
    return new Set(gens).size === gens.length ? null : `holders of gens ${gens.join(',')}`;
  },

  // ACTIVE or REARMING exactly when some thread holds the registration; ARMED when none does.
  'the word agrees with its holder': (w) => {
    const held = w.holders(w.gen);
    const s = w.state;
    if (s === ARMED && held.length > 0) return `ARMED but held by ${held[0]!.name}`;
    if (s === ACTIVE && (held.length !== 1 || !['record', 'handle', 'kept', 'dead', 'edge-recheck', 'edge-handle', 'edge-rearm'].includes(held[0]!.pc))) {
      return 'ACTIVE but nobody handles it';
    }
    if (s === REARMING && (held.length !== 1 || !['enable', 'endRearm', 'dead'].includes(held[0]!.pc))) return 'REARMING but nobody re-arms it';
    return null;
  },

  // A live thread handling or re-arming the registration is the one its holder word names.
  'the holder word names the live holder': (w) => {
    if (!w.live) return null;
    const live = w.holders(w.gen).filter((a) => LIVE_HOLDING.has(a.pc));
    if (live.length === 0 || w.holder === w.actors.indexOf(live[0]!) + 1) return null;
    return `${live[0]!.name} holds gen ${w.gen}, the holder word names ${w.holderName()}`;
  },

  // A is set exactly while a dead holder's event, handed on once, awaits its delivery.
  'a pending abandon is the A bit': (w) => {
    for (let g = 0; g < GENS; g++) {
      const p = w.abandonPending(g);
      if (p < 0 || p > 1) return `gen ${g}: ${w.abandons[g]} abandons, ${w.abandonsDelivered[g]} delivered`;
    }
    if (!w.live) return null;
    const a = (w.word & ABANDONED) !== 0;
    return a === (w.abandonPending(w.gen) === 1) ? null : `A is ${a ? 'set' : 'clear'} with ${w.abandonPending(w.gen)} abandon pending`;
  },

  // F is set exactly while one accepted force awaits its delivery; T only with a deadline's.
  'a pending force is the F bit': (w) => {
    for (let g = 0; g < GENS; g++) {
      const p = w.forcePending(g);
      if (p < 0 || p > 1) return `gen ${g}: ${w.forcesAccepted[g]} forces accepted, ${w.forcesDelivered[g]} delivered`;
    }
    if (!w.live) return null;
    const f = (w.word & FORCE) !== 0;
    if (f !== (w.forcePending(w.gen) === 1)) return `F is ${f ? 'set' : 'clear'} with ${w.forcePending(w.gen)} force pending`;
    if (((w.word & TIMEOUT) !== 0) !== (f && w.forceIsDeadline[w.gen]!)) return 'T does not match the pending force';
    return null;
  },

  // Q is set exactly while the slot is in the ring, or about to be pushed, or popped and not yet
  // claimed: so it is in the ring at most once and a ring as large as the table never overflows.
  'Q is one ready-queue entry': (w) => {
    const inRing = w.queue.filter((s) => s === SLOT).length;
    const owed = w.actors.filter((a) => OWES_PUSH.has(a.pc)).length;
    const popped = w.actors.filter((a) => a.pc === 'popped' || a.pc === 'popped-want').length;
    const q = (w.word & QUEUED) !== 0 ? 1 : 0;
    return inRing + owed + popped === q ? null : `Q=${q} but ${inRing} in the ring, ${owed} pushes owed, ${popped} popped`;
  },

  // Every readiness that exists while armed is delivered: checked in every state, not only at
  // the end, as "it has a carrier". Readiness of an ARMED registration nobody holds is carried by
  // the armed kernel entry, an event in flight, or handed-on readiness (P) in the ready queue; a
  // pending force, abandon or P is always in the ready queue (Q: in the ring, about to be, or
  // popped). An abandoned event carries the readiness too: its next holder re-arms (a dead
  // thread's re-arm may never have reached the kernel). Not while an add is in progress (the
  // slot is armed, its kernel entry not added yet).
  'every readiness that exists while armed is delivered': (w) => {
    if (w.state !== ARMED || w.actors.some((a) => ADDING.has(a.pc))) return null;
    if (w.isEdge(w.gen)) return edgeCarriers(w);
    const queued = (w.word & QUEUED) !== 0;
    if ((w.word & (FORCE | PENDING | ABANDONED)) !== 0 && !queued) return 'a force, abandon or handed-on readiness is pending and not queued';
    if (!w.fdReady) return null;
    const kernelWillFire = w.entry.present && w.entry.armed && w.entry.key === w.gen;
    const eventInFlight = w.inFlight.includes(w.gen);
    const handedOn = (w.word & (PENDING | ABANDONED)) !== 0 && queued;
    return kernelWillFire || eventInFlight || handedOn ? null : 'the fd is ready and nothing will deliver it';
  },

  // The kernel's entry always carries the slot's current generation (stale keys are impossible).
  'the kernel entry is the live registration': (w) => {
    if (!w.entry.present) return null;
    if (w.entry.key !== w.gen) return `entry has gen ${w.entry.key}, slot has ${describeWord(w.word)}`;
    return w.state === FREE ? 'entry for a FREE slot' : null;
  },
};

/**
 * EDGE: what is pending (a force, an abandon, readiness in P the interest wants) is queued, or
 * about to be by a waiter's queueIfWanted; and each readiness the fd has and the interest wants
 * has a carrier: an edge the kernel has yet to report, an event in flight or being claimed, P
 * in the queue, or P a queueIfWanted is about to look at. (Readiness in P the fd no longer has is
 * stale: delivering it costs one would-block.)
 */
function edgeCarriers(w: World): string | null {
  const gen = w.gen;
  const want = wantOf(w.interest);
  const pending = (w.word & PENDING) >>> PENDING_SHIFT;
  const queued = (w.word & QUEUED) !== 0;
  const requeuing = w.actors.some((a) => a.pc === 'requeue' && a.gen === gen);
  if ((w.word & (FORCE | ABANDONED)) !== 0 && !queued) return 'a force or abandon is pending and not queued';
  if ((pending & want) !== 0 && !queued && !requeuing) return 'wanted readiness is pending in P and not queued';
  const e = w.entry;
  const claiming = w.actors.filter((a) => a.pc === 'edge-claim').map((a) => a.data!);
  for (const bit of [Ready.READABLE, Ready.WRITABLE]) {
    if ((w.fdReadiness & want & bit) === 0) continue;
    const inKernel = e.present && e.key === gen && (e.edges & bit) !== 0;
    const inFlight = [...w.edgeInFlight, ...claiming].some((ev) => ev >> 4 === gen && (ev & bit) !== 0);
    const inP = (pending & bit) !== 0 && (queued || requeuing);
    if (!inKernel && !inFlight && !inP) return `the fd has readiness ${bit} the interest wants and nothing will deliver it`;
  }
  return null;
}

export function checkState(w: World): void {
  for (const [name, check] of Object.entries(stateInvariants)) {
    const wrong = check(w);
    expect(wrong === null, name, () => `${wrong ?? ''}: ${w.describe()}`);
  }
}

/**
 * Invariants once nothing can move (the waiters are out of budget or have nothing to take).
 * - A deleted registration was freed.
 * - No lost wake-up: a live registration nobody holds, with readiness, a force or handed-on
 *   readiness pending, is armed in the kernel on a ready fd, or has an event in flight, or is
 *   queued; and one more waiter (the kernel still firing) is delivered it.
 * - A force is delivered exactly once: then FORCED deliveries equal the forces that returned
 *   FORCED_PUSH or FORCED_LATER. (Not for a registration deleted with a force pending, which
 *   cancels it, nor for one a handler keeps, whose force waits for its rearm.)
 * - Nothing is stuck: a live registration is ARMED, or kept by a live handler (never ACTIVE or
 *   REARMING under a dead holder once recovery ran), and a dead holder's event handed on was
 *   delivered, flagged ABANDONED, as many times as it was handed on: once.
 */
export function checkEnd(w: World): void {
  for (let g = 1; g < GENS; g++) {
    if (!w.isDeleted(g)) continue;
    expect((w.released & (1 << g)) !== 0, 'a deleted registration is freed', () => `gen ${g} deleted, never released: ${w.describe()}`);
  }
  const gen = w.gen;
  const held = w.holders(gen);
  expect(!w.live || w.state === ARMED || held.some((a) => a.pc === 'kept'), 'the slot never gets stuck', () =>
    `${describeWord(w.word)} held by ${held.map((a) => `${a.name}@${a.pc}`).join(', ') || 'nobody'} at the end: ${w.describe()}`,
  );
  if (!w.live || held.length > 0) return;
  let settled = w;
  if (w.isEdge(gen)) {
    const want = wantOf(w.interest);
    if ((w.word & (FORCE | ABANDONED)) !== 0 || ((((w.word & PENDING) >>> PENDING_SHIFT) | w.fdReadiness) & want) !== 0) {
      const wrong = edgeCarriers(w);
      expect(wrong === null, 'no lost wake-up', () => `${wrong ?? ''}: ${w.describe()}`);
      settled = drain(w, edgeWaiter({ toggle: 'none' }), edgeKernel);
      saw(w.forcePending(gen) === 1 ? 'force delivered by the final drain' : 'readiness delivered by the final drain');
    }
  } else if (w.fdReady || (w.word & (FORCE | PENDING | ABANDONED)) !== 0) {
    const armedAndReady = w.entry.present && w.entry.armed && w.fdReady;
    const inFlight = w.inFlight.includes(gen);
    const queued = w.queue.includes(SLOT) && (w.word & (FORCE | PENDING | ABANDONED)) !== 0;
    expect(armedAndReady || inFlight || queued, 'no lost wake-up', () => `readiness or a force pending, nothing to deliver it: ${w.describe()}`);
    settled = drain(w, waiter({ mayRead: false, mayKeep: false }), kernel);
    if (w.abandonPending(gen) === 1) saw('abandoned delivered by the final drain');
    saw(w.forcePending(gen) === 1 ? 'force delivered by the final drain' : 'readiness delivered by the final drain');
  }
  expect(settled.forcesAccepted[gen] === settled.forcesDelivered[gen], 'a force is delivered exactly once', () =>
    `${settled.forcesAccepted[gen]} forces accepted, ${settled.forcesDelivered[gen]} delivered: ${settled.describe()}`,
  );
  expect(settled.abandons[gen] === settled.abandonsDelivered[gen], "a dead holder's event is delivered exactly once more, flagged ABANDONED", () =>
    `${settled.abandons[gen]} handed on, ${settled.abandonsDelivered[gen]} delivered: ${settled.describe()}`,
  );
}

/**
 * One more waiter takes whatever is there, the kernel still firing, until it is delivered
 * something; every step is checked like any other. Returns the state after that delivery.
 */
function drain(end: World, program: Program, kernelProgram: Program): World {
  const w = end.clone();
  const drainer: Actor = { name: 'drain', program, pc: 'wait', gen: 0, budget: 1, spare: 0 };
  w.actors.push(drainer);
  while (drainer.budget > 0) {
    const first = [...drainer.program[drainer.pc]!(w, drainer), ...kernelProgram.run!(w, drainer)][0];
    expect(first !== undefined, 'no lost wake-up', () => `draining delivered nothing: ${end.describe()}`);
    first!.run(w, drainer);
    checkState(w);
  }
  return w;
}

// ---- The model for the explorer -------------------------------------------------------------

export const slotModel: Model<World> = {
  key: (w) => w.key(),
  steps: (w) => {
    const steps: Step<World>[] = [];
    w.actors.forEach((actor, i) => {
      const at = actor.program[actor.pc];
      if (at === undefined) throw new Error(`${actor.name} has no step at ${actor.pc}`);
      for (const m of at(w, actor)) {
        steps.push({
          label: `${actor.name}: ${m.label}`,
          next: () => {
            const next = w.clone();
            m.run(next, next.actors[i]!);
            return { state: next, result: next.result };
          },
        });
      }
    });
    return steps;
  },
  checkState,
  checkEnd,
  describe: (w) => w.describe(),
};

// ---- Building a start state -----------------------------------------------------------------

export interface Start {
  readonly oneshot: boolean;
  /** EDGE, with the fd writable at the add (so the kernel reports WRITABLE the interest does not want). */
  readonly edge?: boolean;
  readonly fdReady: boolean;
  /** Start with the registration already delivered to the first waiter (it is handling it). */
  readonly firstWaiterHolds: boolean;
}

/**
 * A fresh slot (generation 1; Table.create starts each table at its own generation, and any one
 * does here), armed and added to the kernel with the real `arm`; the actors all work on generation 1.
 */
export function startWorld(start: Start, actors: readonly Omit<Actor, 'gen'>[]): World {
  const w = new World();
  w.word = 1 << GEN_SHIFT;
  const token = w.run((words) => arm(words, SLOT, start.oneshot ? ONESHOT : start.edge ? EDGE : 0));
  const gen = genOfToken(token);
  if (start.oneshot) w.oneshot |= 1 << gen;
  if (start.edge) w.edge |= 1 << gen;
  w.fdReady = start.fdReady;
  w.fdWritable = start.edge === true;
  w.kernelAdd(gen);
  w.actors = actors.map((a) => ({ ...a, gen }));
  if (start.firstWaiterHolds) {
    // The kernel fired and the first waiter claimed it: it now runs its handler.
    w.entry.armed = false;
    const first = w.actors[0]!;
    first.budget++;
    const edges = w.entry.edges;
    w.entry.edges = 0;
    deliver(w, first, gen, w.run((words) => claim(words, SLOT, gen, start.edge ? edges : Ready.READABLE, wantOf(w.interest))), 'start');
  }
  return w;
}
