/**
 * The reactor's contract as a property (fast-check): random sequences of add, rearm, delete,
 * forceOneShot, setDeadline, wait, flush, socket reads, writes and closes, and close, over a few
 * real socketpairs, run on one thread against the real reactor and checked against a model
 * after every step; then a drain that re-arms what is held until every accepted force has come.
 *
 * The model is a set of possible worlds. Everything the kernel does here is deterministic
 * (AF_UNIX socketpairs under epoll, one thread), except whether a deadline that came due during
 * a wait fired in that wait: that depends on the clock, so such a deadline splits a world in
 * two, and what the reactor does next (a delivery flagged TIMEOUT or not, forceOneShot's answer)
 * rules worlds out. A step that no world explains fails the property with the sequence's trace;
 * fast-check then shrinks it and reports the seed and path, which FC_SEED and FC_PATH replay.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { availableBackends, Events, Interest, Mode, Reactor, ReactorError, Ready } from '../src/index.js';
import { closeFd, recv, send, socketPair } from './support/sockets.js';

/** The reactor's variants: re-arms batched or applied at once; batches through the native helper or not. */
const VARIANTS = [
  { name: 'batched re-arms through the native helper', batchRearms: true, native: true },
  { name: 'batched re-arms, native helper off', batchRearms: true, native: false },
  // The native helper only applies batches: with re-arms at once, one variant covers both.
  { name: 're-arms at once', batchRearms: false, native: false },
] as const;

/** Sequences per variant: at least 2,000 in all. */
const RUNS = 1000;
const PAIRS = 3;
const ENDS = PAIRS * 2;
/** Fewer registrations than socket ends, so ENOSPC comes up. */
const CAPACITY = 4;
/** A socket takes at most this many writes its peer has not read, so it stays writable. */
const UNREAD_WRITES = 8;
/** Rounds of the final drain after every deadline is surely past: each waits, re-arms what may be forced, deletes the rest. */
const DRAIN_ROUNDS = 16;
/** A deadline fires at the first wait after its due time, rounded up to a millisecond by the heap. */
const DEADLINE_SLACK_MS = 1.5;

const R = Interest.READABLE;
const W = Interest.WRITABLE;
const KNOWN_FLAGS = Ready.READABLE | Ready.WRITABLE | Ready.HANGUP | Ready.ERROR | Ready.FORCED | Ready.TIMEOUT;

// ---- Operations ---------------------------------------------------------------------------

/** Which token an operation targets: the index-th (modulo) of those held, live, or ever returned. */
interface Pick {
  readonly among: 'held' | 'live' | 'any';
  readonly index: number;
}

type Op =
  | { readonly kind: 'add'; readonly end: number; readonly interest: number; readonly oneshot: boolean }
  | { readonly kind: 'rearm'; readonly pick: Pick; readonly interest: number | null }
  | { readonly kind: 'delete'; readonly pick: Pick }
  | { readonly kind: 'force'; readonly pick: Pick }
  | { readonly kind: 'deadline'; readonly pick: Pick; readonly ms: number | null }
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'flush' }
  | { readonly kind: 'write'; readonly end: number; readonly bytes: number }
  | { readonly kind: 'read'; readonly end: number; readonly bytes: number }
  | { readonly kind: 'closeSocket'; readonly end: number }
  | { readonly kind: 'reopen'; readonly pair: number }
  | { readonly kind: 'closeReactor' };

const pickArb = fc.record({ among: fc.constantFrom('held', 'held', 'held', 'live', 'live', 'any'), index: fc.nat(7) });
const endArb = fc.nat(ENDS - 1);
const interestArb = fc.constantFrom(R, R, R, W, Interest.BOTH);
const weighted = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  weighted(16, fc.record({ kind: fc.constant('add'), end: endArb, interest: interestArb, oneshot: fc.constantFrom(false, false, false, true) })),
  weighted(24, fc.record({ kind: fc.constant('rearm'), pick: pickArb, interest: fc.option(interestArb, { freq: 3 }) })),
  weighted(8, fc.record({ kind: fc.constant('delete'), pick: pickArb })),
  weighted(16, fc.record({ kind: fc.constant('force'), pick: pickArb })),
  weighted(12, fc.record({ kind: fc.constant('deadline'), pick: pickArb, ms: fc.option(fc.integer({ min: 0, max: 5 }), { freq: 4 }) })),
  weighted(30, fc.record({ kind: fc.constant('wait'), ms: fc.constant(0) })),
  weighted(6, fc.record({ kind: fc.constant('wait'), ms: fc.integer({ min: 1, max: 3 }) })),
  weighted(4, fc.record({ kind: fc.constant('flush') })),
  weighted(16, fc.record({ kind: fc.constant('write'), end: endArb, bytes: fc.integer({ min: 1, max: 64 }) })),
  weighted(8, fc.record({ kind: fc.constant('read'), end: endArb, bytes: fc.integer({ min: 1, max: 64 }) })),
  weighted(4, fc.record({ kind: fc.constant('closeSocket'), end: endArb })),
  weighted(4, fc.record({ kind: fc.constant('reopen'), pair: fc.nat(PAIRS - 1) })),
  // Rare (1 operation in 149): most sequences end in the drain; the others check ECLOSED after close.
  weighted(1, fc.constant({ kind: 'closeReactor' as const })),
);

const sequenceArb = fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' });

// ---- The model ----------------------------------------------------------------------------

/** One end of a socketpair: the same in every world (sockets are deterministic). */
interface Sock {
  readonly fd: number;
  open: boolean;
  peer: Sock;
  /** Bytes written by the peer and not read here. */
  unread: number;
  /** Writes by the peer not yet read in full. */
  unreadWrites: number;
  /** The peer closed with bytes unread: once this end's data is read, a read fails ECONNRESET (once). */
  reset: boolean;
}

/** When a deadline set at [before, after] for ms fires: never before `early`, at the latest at the first wait after `late`. */
interface Due {
  readonly early: number;
  readonly late: number;
}

/** A registration as the model knows it. */
interface Reg {
  readonly token: number;
  readonly sock: Sock;
  readonly oneshot: boolean;
  interest: number;
  /** held: delivered and neither re-armed nor deleted; staged: re-armed, batch not yet applied. */
  state: 'armed' | 'held' | 'staged' | 'dead';
  /** A force is pending: accepted by forceOneShot, or a deadline fired. */
  force: boolean;
  /** The pending force came from (or was joined by) a deadline: delivered with TIMEOUT. */
  timeout: boolean;
  deadline: Due | null;
  /** A ONESHOT freed at delivery: the world's ONESHOT retirement count then; else 0. */
  retiredAt: number;
}

interface ForceCounts {
  delivered: number;
  /** Pending when its registration was deleted, or when the reactor closed. */
  dropped: number;
  timeouts: number;
}

/** Raised by the model when a world cannot explain what the reactor did. */
class Mismatch extends Error {}

class World {
  regs = new Map<number, Reg>();
  /** Tokens whose batched re-arm failed: handed back flagged ERROR by the next wait. */
  failed: number[] = [];
  closed = false;
  retirements = 0;
  counts: ForceCounts = { delivered: 0, dropped: 0, timeouts: 0 };

  clone(): World {
    const w = new World();
    for (const [token, reg] of this.regs) w.regs.set(token, { ...reg });
    w.failed = [...this.failed];
    w.closed = this.closed;
    w.retirements = this.retirements;
    w.counts = { ...this.counts };
    return w;
  }

  /** What tells worlds apart (not the counts): identical worlds are kept once. */
  key(): string {
    const regs = [...this.regs.values()].map((r) => `${r.token}:${r.state}:${+r.force}${+r.timeout}:${r.deadline?.early ?? '-'}`);
    return `${regs.join(',')}|${this.failed.join(',')}|${+this.closed}`;
  }

  reg(token: number): Reg {
    const reg = this.regs.get(token);
    if (reg === undefined) throw new Error(`the model has no token ${token}`);
    return reg;
  }

  live(): Reg[] {
    return [...this.regs.values()].filter((r) => r.state !== 'dead');
  }

  /** Applies this thread's staged re-arms, as wait, flush, delete and close do. */
  applyStaged(): void {
    for (const reg of this.regs.values()) {
      if (reg.state !== 'staged') continue;
      if (reg.sock.open) {
        reg.state = 'armed';
      } else {
        // The fd is gone: the kernel refuses the re-arm, and the holder holds it again.
        reg.state = 'held';
        this.failed.push(reg.token);
      }
    }
  }

  /** A deadline passed: a force with TIMEOUT, or TIMEOUT joining the pending force. */
  fire(reg: Reg): void {
    reg.deadline = null;
    reg.force = true;
    reg.timeout = true;
  }

  kill(reg: Reg): void {
    if (reg.force) this.counts.dropped++;
    reg.state = 'dead';
    reg.force = false;
    reg.timeout = false;
    reg.deadline = null;
    // A deleted token's failed re-arm is never handed back.
    this.failed = this.failed.filter((t) => t !== reg.token);
  }
}

/** Whether the kernel reports the registration's fd ready (AF_UNIX stream semantics). */
function kernelReady(reg: Reg): boolean {
  const sock = reg.sock;
  if (!sock.open) return false; // closing the fd took its epoll entry with it
  if (!sock.peer.open) return true; // EPOLLHUP, whatever the interest
  return (reg.interest & W) !== 0 || ((reg.interest & R) !== 0 && sock.unread > 0);
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly code: string };

/** Runs an API call; a ReactorError is an outcome to check, anything else escapes and fails the property. */
function call(fn: () => unknown): Outcome {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof ReactorError) return { ok: false, code: e.code };
    throw e;
  }
}

function show(out: Outcome): string {
  return out.ok ? String(out.value ?? 'ok') : out.code;
}

function expectOk(out: Outcome, what: string): void {
  if (!out.ok) throw new Mismatch(`${what}: expected success, got ${out.code}`);
}

function expectCode(out: Outcome, codes: readonly string[], what: string): void {
  if (out.ok || !codes.includes(out.code)) {
    throw new Mismatch(`${what}: expected a ReactorError ${codes.join(' or ')}, got ${show(out)}`);
  }
}

function flagNames(flags: number): string {
  const names = Object.entries(Ready).filter(([, bit]) => flags & bit).map(([name]) => name);
  return names.length > 0 ? names.join('|') : '0';
}

/** What one wait observed. */
interface WaitSeen {
  readonly ms: number;
  /** performance.now() before the call and after it. */
  readonly start: number;
  readonly end: number;
  readonly out: Outcome;
  readonly deliveries: ReadonlyArray<readonly [number, number]>;
}

/**
 * The worlds a wait leads to from w: deadlines surely due by its start fire; those that may
 * have come due during it split the world; each branch must explain every delivery.
 */
function afterWait(w: World, seen: WaitSeen): World[] {
  if (w.closed) {
    expectCode(seen.out, ['ECLOSED'], 'wait after close');
    return [w];
  }
  expectOk(seen.out, 'wait');
  const sure: Reg[] = [];
  const maybe: Reg[] = [];
  for (const reg of w.live()) {
    if (reg.deadline === null) continue;
    if (reg.deadline.late <= seen.start) sure.push(reg);
    else if (reg.deadline.early <= seen.end) maybe.push(reg);
  }
  const worlds: World[] = [];
  const why: string[] = [];
  for (let fired = 0; fired < 1 << maybe.length; fired++) {
    const c = maybe.length === 0 ? w : w.clone();
    for (const reg of sure) c.fire(c.reg(reg.token));
    maybe.forEach((reg, i) => {
      if (fired & (1 << i)) c.fire(c.reg(reg.token));
    });
    try {
      deliver(c, seen);
      worlds.push(c);
    } catch (e) {
      if (!(e instanceof Mismatch)) throw e;
      const branch = maybe.map((reg, i) => `the deadline of ${reg.token} ${fired & (1 << i) ? 'fired' : 'had not fired'}`);
      why.push(branch.length > 0 ? `(if ${branch.join(' and ')}) ${e.message}` : e.message);
    }
  }
  if (worlds.length === 0) throw new Mismatch(why.join('\n  '));
  return worlds;
}

/** Checks a wait's deliveries against world w (its deadlines fired), and moves w past them. */
function deliver(w: World, seen: WaitSeen): void {
  // Re-arms that failed earlier are handed back first; the staged ones are applied next, and
  // those failing now come back in this wait only if it loops again (a timeout, nothing else
  // delivered), else in the next.
  const owedErrors = w.failed;
  w.failed = [];
  w.applyStaged();
  for (const [token, flags] of seen.deliveries) {
    if (flags === Ready.ERROR) {
      const old = owedErrors.indexOf(token);
      if (old >= 0) {
        owedErrors.splice(old, 1);
        continue;
      }
      const now = w.failed.indexOf(token);
      if (now >= 0 && seen.ms > 0) {
        w.failed.splice(now, 1);
        continue;
      }
    }
    const reg = w.regs.get(token);
    const what = `token ${token} delivered ${flagNames(flags)}`;
    if (reg === undefined) throw new Mismatch(`${what}: add never returned it`);
    if (reg.state === 'held') throw new Mismatch(`${what} while held: delivered twice without a re-arm between`);
    if (reg.state === 'dead') throw new Mismatch(`${what}, but it is dead (deleted, or a ONESHOT already delivered)`);
    if (reg.state === 'staged') throw new Mismatch(`${what} while its staged re-arm is unapplied`);
    checkFlags(reg, flags, what);
    if (reg.force) w.counts.delivered++;
    if (reg.timeout) w.counts.timeouts++;
    reg.force = false;
    reg.timeout = false;
    if (reg.oneshot) {
      reg.state = 'dead';
      reg.deadline = null;
      reg.retiredAt = ++w.retirements;
    } else {
      reg.state = 'held';
    }
  }
  if (owedErrors.length > 0) {
    throw new Mismatch(`the failed re-arm of token ${owedErrors.join(', ')} was not handed back flagged ERROR by this wait`);
  }
  for (const reg of w.live()) {
    if (reg.state !== 'armed') continue;
    if (reg.force) throw new Mismatch(`token ${reg.token} is armed with a pending ${reg.timeout ? 'deadline' : 'force'}, but this wait did not deliver it`);
    if (kernelReady(reg)) throw new Mismatch(`token ${reg.token} is armed and its fd ready, but this wait did not deliver it (readiness lost)`);
  }
}

function checkFlags(reg: Reg, flags: number, what: string): void {
  if (flags & ~KNOWN_FLAGS) throw new Mismatch(`${what}: unknown flag bits`);
  const forced = (flags & Ready.FORCED) !== 0;
  if (forced && !reg.force) throw new Mismatch(`${what}: FORCED with no accepted force or passed deadline pending (a force delivered twice?)`);
  if (!forced && reg.force) throw new Mismatch(`${what}: a ${reg.timeout ? 'deadline' : 'force'} is pending, but the delivery is not FORCED`);
  if (((flags & Ready.TIMEOUT) !== 0) !== (forced && reg.timeout)) {
    throw new Mismatch(`${what}: TIMEOUT must come exactly when a passed deadline is delivered (pending: ${reg.timeout ? 'deadline' : 'force'})`);
  }
  if ((flags & Ready.READABLE) !== 0 && (reg.interest & R) === 0) throw new Mismatch(`${what}: READABLE without READABLE interest`);
  if ((flags & Ready.WRITABLE) !== 0 && (reg.interest & W) === 0) throw new Mismatch(`${what}: WRITABLE without WRITABLE interest`);
  if (!forced && !kernelReady(reg)) throw new Mismatch(`${what}: not forced, and its fd is not ready (a spurious delivery)`);
}

// ---- One sequence against the real reactor ------------------------------------------------

interface Stats {
  sequences: number;
  steps: number;
  deliveries: number;
  forcesAccepted: number;
  timeoutsDelivered: number;
  forcesDelivered: number;
  forcesDropped: number;
  errorsChecked: number;
  maxWorlds: number;
}

class Sequence {
  private readonly r: Reactor;
  private readonly ev = new Events(64);
  private readonly ends: Sock[] = [];
  /** Every socket this sequence opened, to close what is still open at the end. */
  private readonly socks: Sock[] = [];
  /** Every token add returned, in order: stale ones stay, for the ENOENT checks. */
  private readonly tokens: number[] = [];
  private worlds: World[];
  private readonly trace: string[] = [];

  /** Whether rearm stages (applied by the next wait, flush, delete or close) or applies at once. */
  private readonly batched: boolean;

  constructor(
    variant: { readonly batchRearms: boolean; readonly native: boolean },
    private readonly stats: Stats,
  ) {
    this.batched = variant.batchRearms;
    this.worlds = [new World()];
    this.r = Reactor.open({ backend: 'epoll', capacity: CAPACITY, batchRearms: variant.batchRearms, native: variant.native });
    try {
      for (let p = 0; p < PAIRS; p++) this.openPair(p);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** The worlds agree on every registration's state (deliveries are observed); world 0 speaks for them. */
  private get model(): World {
    return this.worlds[0]!;
  }

  run(op: Op): void {
    switch (op.kind) {
      case 'add':
        return this.add(op.end, op.interest, op.oneshot);
      case 'rearm':
        return this.withToken(op.pick, (t) => this.rearm(t, op.interest));
      case 'delete':
        return this.withToken(op.pick, (t) => this.delete(t));
      case 'force':
        return this.withToken(op.pick, (t) => this.force(t));
      case 'deadline':
        return this.withToken(op.pick, (t) => this.deadline(t, op.ms));
      case 'wait':
        return this.wait(op.ms);
      case 'flush':
        return this.flush();
      case 'write':
        return this.write(op.end, op.bytes);
      case 'read':
        return this.read(op.end, op.bytes);
      case 'closeSocket':
        return this.closeSocket(op.end);
      case 'reopen':
        return this.reopen(op.pair);
      case 'closeReactor':
        return this.closeReactor();
    }
  }

  /**
   * The end of a sequence: wait (until the next deadline, if one is pending) and re-arm what is
   * held while a force may be pending, keep what is held with a deadline to come, delete the
   * rest (or what has its fd closed), until no force or deadline is left: every force was
   * delivered (once: a second FORCED delivery fails its wait's check) or dropped with its
   * registration. Then delete what is still live, and a last wait must deliver nothing.
   */
  drain(): void {
    if (this.model.closed) return;
    for (let round = 0; ; ) {
      const dues = this.worlds.flatMap((w) => w.live().flatMap((reg) => (reg.deadline === null ? [] : [reg.deadline.late])));
      const start = performance.now();
      // A round counts once no deadline may still be to come: a ready fd ends a wait at once, and
      // many rounds can pass inside one deadline's slack, each leaving a world where it fired.
      if (dues.every((late) => late <= start)) round++;
      this.wait(dues.length === 0 ? 0 : Math.max(1, Math.ceil(Math.min(...dues) - start)));
      const owed = this.model.live().filter((reg) => this.worlds.some((w) => w.reg(reg.token).force || w.failed.includes(reg.token)));
      const due = this.model.live().filter((reg) => this.worlds.some((w) => w.reg(reg.token).deadline !== null));
      if (owed.length === 0 && due.length === 0) break;
      if (round > DRAIN_ROUNDS) {
        this.fail(`after ${DRAIN_ROUNDS} rounds of waiting and re-arming, forces still owed to tokens ${owed.map((r) => r.token).join(', ')}`);
      }
      for (const reg of this.model.live()) {
        if (reg.state !== 'held') continue;
        if (!reg.sock.open) this.delete(reg.token);
        else if (this.worlds.some((w) => w.reg(reg.token).force)) this.rearm(reg.token, null);
        else if (!due.includes(reg)) this.delete(reg.token);
      }
    }
    for (const reg of this.model.live()) this.delete(reg.token);
    this.wait(0);
  }

  /** Closes the reactor and every socket; adds this sequence's counts to the stats. */
  dispose(): void {
    this.r.close();
    for (const sock of this.socks) {
      if (sock.open) closeFd(sock.fd);
      sock.open = false;
    }
    const counts = this.model.counts;
    this.stats.sequences++;
    this.stats.forcesDelivered += counts.delivered;
    this.stats.forcesDropped += counts.dropped;
    this.stats.timeoutsDelivered += counts.timeouts;
  }

  private withToken(pick: Pick, use: (token: number) => void): void {
    const live = this.model.live();
    const pool =
      pick.among === 'held' ? live.filter((r) => r.state === 'held').map((r) => r.token) : pick.among === 'live' ? live.map((r) => r.token) : this.tokens;
    const from = pool.length > 0 ? pool : this.tokens;
    if (from.length > 0) use(from[pick.index % from.length]!);
  }

  private add(end: number, interest: number, oneshot: boolean): void {
    const sock = this.ends[end]!;
    if (!sock.open) return; // a closed number may be any file by now: only add what this sequence owns
    const out = call(() => this.r.add(sock.fd, interest, { mode: oneshot ? Mode.ONESHOT : Mode.DISPATCH }));
    const token = out.ok ? (out.value as number) : -1;
    if (out.ok && this.tokens.includes(token)) this.fail(`add returned token ${token} a second time`);
    if (out.ok) this.tokens.push(token);
    this.step(`add(fd ${sock.fd}, interest ${interest}${oneshot ? ', ONESHOT' : ''}) → ${show(out)}`, out, (w) => {
      if (w.closed) return expectCode(out, ['ECLOSED'], 'add after close');
      const live = w.live();
      if (live.some((r) => r.sock.fd === sock.fd)) return expectCode(out, ['EEXIST'], `add of fd ${sock.fd}, which has a live registration`);
      if (live.length >= CAPACITY) return expectCode(out, ['ENOSPC'], `add with all ${CAPACITY} registrations live`);
      expectOk(out, 'add');
      const reg: Reg = { token, sock, oneshot, interest, state: 'armed', force: false, timeout: false, deadline: null, retiredAt: 0 };
      w.regs.set(token, reg);
    });
  }

  private rearm(token: number, interest: number | null): void {
    const out = call(() => (interest === null ? this.r.rearm(token) : this.r.rearm(token, interest)));
    this.step(`rearm(${token}${interest === null ? '' : `, interest ${interest}`}) → ${show(out)}`, out, (w) => {
      if (w.closed) return expectCode(out, ['ECLOSED'], 'rearm after close');
      const reg = w.reg(token);
      if (reg.state === 'dead') {
        if (reg.retiredAt === 0) return expectCode(out, ['ENOENT'], 'rearm of a deleted token');
        // Freed at delivery: EINVAL says so, unless a later ONESHOT of the same slot took its place.
        return expectCode(out, reg.retiredAt === w.retirements ? ['EINVAL'] : ['EINVAL', 'ENOENT'], 'rearm of a delivered ONESHOT');
      }
      if (reg.state !== 'held') return expectCode(out, ['EINVAL'], `rearm of a token no handler holds (${reg.state})`);
      if (interest !== null) reg.interest = interest;
      if (this.batched) {
        expectOk(out, 'rearm (staged)');
        reg.state = 'staged';
        // Re-armed again before its last failure was handed back: this re-arm supersedes it.
        w.failed = w.failed.filter((t) => t !== token);
      } else if (reg.sock.open) {
        expectOk(out, 'rearm');
        reg.state = 'armed';
      } else {
        // The kernel refuses: EBADF if the number is free, ENOENT if another file has it now.
        expectCode(out, ['EBADF', 'ENOENT'], 'rearm of a registration whose fd was closed');
      }
    });
  }

  private delete(token: number): void {
    const out = call(() => this.r.delete(token));
    this.step(`delete(${token}) → ${show(out)}`, out, (w) => {
      if (w.closed) return expectCode(out, ['ECLOSED'], 'delete after close');
      w.applyStaged(); // delete applies this thread's staged re-arms first, whatever the token
      const reg = w.reg(token);
      if (reg.state === 'dead') return expectCode(out, ['ENOENT'], 'delete of a dead token');
      expectOk(out, 'delete');
      w.kill(reg);
    });
  }

  private force(token: number): void {
    const out = call(() => this.r.forceOneShot(token));
    if (out.ok && out.value === true) this.stats.forcesAccepted++;
    this.step(`forceOneShot(${token}) → ${show(out)}`, out, (w) => {
      if (w.closed) return expectCode(out, ['ECLOSED'], 'forceOneShot after close');
      const reg = w.reg(token);
      if (reg.state === 'dead') return expectCode(out, ['ENOENT'], 'forceOneShot of a dead token');
      expectOk(out, 'forceOneShot');
      if (out.ok && out.value !== !reg.force) {
        throw new Mismatch(`forceOneShot returned ${String(out.value)}, but a force was ${reg.force ? '' : 'not '}pending`);
      }
      reg.force = true;
    });
  }

  private deadline(token: number, ms: number | null): void {
    const before = performance.now();
    const out = call(() => this.r.setDeadline(token, ms));
    const after = performance.now();
    this.step(`setDeadline(${token}, ${ms}) → ${show(out)}`, out, (w) => {
      if (w.closed) return expectCode(out, ['ECLOSED'], 'setDeadline after close');
      const reg = w.reg(token);
      if (reg.state === 'dead') return expectCode(out, ['ENOENT'], 'setDeadline of a dead token');
      expectOk(out, 'setDeadline');
      reg.deadline = ms === null ? null : { early: before + ms, late: after + ms + DEADLINE_SLACK_MS };
    });
  }

  private wait(ms: number): void {
    const start = performance.now();
    const out = call(() => this.r.wait(this.ev, ms));
    const end = performance.now();
    const n = out.ok ? (out.value as number) : 0;
    const deliveries = Array.from({ length: n }, (_, i) => [this.ev.token(i), this.ev.readiness(i)] as const);
    this.stats.deliveries += n;
    const shown = out.ok ? `[${deliveries.map(([t, f]) => `${t} ${flagNames(f)}`).join('; ')}]` : out.code;
    this.step(`wait(${ms}) → ${shown}`, out, (w) => afterWait(w, { ms, start, end, out, deliveries }));
  }

  private flush(): void {
    const out = call(() => this.r.flush());
    this.step(`flush() → ${show(out)}`, out, (w) => {
      // After close there is nothing left to apply: close applied it.
      if (w.closed) return out.ok ? undefined : expectCode(out, ['ECLOSED'], 'flush after close');
      expectOk(out, 'flush');
      w.applyStaged();
    });
  }

  private closeReactor(): void {
    const out = call(() => this.r.close());
    this.step(`close() → ${show(out)}`, out, (w) => {
      expectOk(out, 'close (idempotent)');
      if (w.closed) return;
      w.applyStaged();
      for (const reg of w.live()) if (reg.force) w.counts.dropped++;
      w.closed = true;
    });
  }

  private write(end: number, bytes: number): void {
    const sock = this.ends[end]!;
    if (!sock.open || !sock.peer.open || sock.peer.unreadWrites >= UNREAD_WRITES) return;
    const sent = send(sock.fd, new Uint8Array(bytes));
    this.socketStep(`write(fd ${sock.fd}, ${bytes}) → ${sent}`, sent === bytes);
    sock.peer.unread += bytes;
    sock.peer.unreadWrites++;
  }

  private read(end: number, bytes: number): void {
    const sock = this.ends[end]!;
    if (!sock.open) return;
    const out = call(() => recv(sock.fd, new Uint8Array(bytes)));
    const expected = sock.unread > 0 ? Math.min(bytes, sock.unread) : sock.reset ? 'ECONNRESET' : sock.peer.open ? -1 : 0;
    const got = out.ok ? (out.value as number) : out.code;
    this.socketStep(`read(fd ${sock.fd}, ${bytes}) → ${got}`, got === expected);
    if (typeof got === 'number' && got > 0) sock.unread -= got;
    if (got === 'ECONNRESET') sock.reset = false;
    if (sock.unread === 0) sock.unreadWrites = 0;
  }

  private closeSocket(end: number): void {
    const sock = this.ends[end]!;
    if (!sock.open) return;
    closeFd(sock.fd);
    sock.open = false;
    // AF_UNIX: closing with bytes unread resets the peer.
    if (sock.unread > 0) sock.peer.reset = true;
    sock.unread = 0;
    this.socketStep(`close socket fd ${sock.fd}`, true);
  }

  /** Closes a pair's ends and opens a new pair in their place: its numbers are usually reused ones. */
  private reopen(pair: number): void {
    for (const end of [2 * pair, 2 * pair + 1]) this.closeSocket(end);
    this.openPair(pair);
    this.socketStep(`reopen pair ${pair}: fds ${this.ends[2 * pair]!.fd}, ${this.ends[2 * pair + 1]!.fd}`, true);
  }

  private openPair(pair: number): void {
    const [a, b] = socketPair();
    const sa = { fd: a, open: true, unread: 0, unreadWrites: 0, reset: false } as Sock;
    const sb: Sock = { fd: b, open: true, peer: sa, unread: 0, unreadWrites: 0, reset: false };
    sa.peer = sb;
    this.ends[2 * pair] = sa;
    this.ends[2 * pair + 1] = sb;
    this.socks.push(sa, sb);
  }

  private socketStep(what: string, asModelled: boolean): void {
    this.trace.push(what);
    this.stats.steps++;
    if (!asModelled) this.fail(`the socket did not do what the model expects: ${what}`);
  }

  /** Records a step, checks it in every world, and keeps the worlds that explain it. */
  private step(what: string, out: Outcome, check: (w: World) => World[] | void): void {
    this.trace.push(what);
    this.stats.steps++;
    if (!out.ok) this.stats.errorsChecked++;
    const next: World[] = [];
    const seen = new Set<string>();
    const why = new Set<string>();
    for (const w of this.worlds) {
      try {
        for (const n of check(w) ?? [w]) {
          const key = n.key();
          if (!seen.has(key)) next.push(n);
          seen.add(key);
        }
      } catch (e) {
        if (!(e instanceof Mismatch)) throw e;
        why.add(e.message);
      }
    }
    if (next.length === 0) this.fail([...why].join('\n  '));
    this.worlds = next;
    this.stats.maxWorlds = Math.max(this.stats.maxWorlds, next.length);
  }

  private fail(why: string): never {
    throw new Error(`${why}\n  sequence so far:\n    ${this.trace.join('\n    ')}`);
  }
}

// ---- The test -----------------------------------------------------------------------------

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** FC_SEED and FC_PATH replay a failure that fast-check reported. */
function replay(): { seed?: number; path?: string } {
  const seed = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  return { ...(seed !== undefined ? { seed: Number(seed) } : {}), ...(path !== undefined ? { path } : {}) };
}

function newStats(): Stats {
  return {
    sequences: 0,
    steps: 0,
    deliveries: 0,
    forcesAccepted: 0,
    timeoutsDelivered: 0,
    forcesDelivered: 0,
    forcesDropped: 0,
    errorsChecked: 0,
    maxWorlds: 1,
  };
}

/** Runs each sequence against a fresh reactor of the variant, then drains it; always disposes it. */
function runSequences(variant: { readonly batchRearms: boolean; readonly native: boolean }, stats: Stats) {
  return (ops: Op[]): void => {
    const seq = new Sequence(variant, stats);
    try {
      for (const op of ops) seq.run(op);
      seq.drain();
    } finally {
      seq.dispose();
    }
  };
}

/**
 * The shortest sequence of a bug the property found, as fast-check shrank it: a batched re-arm
 * that failed was delivered (ERROR) after its token was deleted.
 */
const ERROR_AFTER_DELETE: Op[] = [
  { kind: 'add', end: 0, interest: R, oneshot: false },
  { kind: 'force', pick: { among: 'live', index: 0 } },
  { kind: 'wait', ms: 0 },
  { kind: 'closeSocket', end: 0 },
  { kind: 'rearm', pick: { among: 'held', index: 0 }, interest: null },
  { kind: 'delete', pick: { among: 'live', index: 0 } },
  { kind: 'wait', ms: 0 },
];

const epoll = availableBackends().includes('epoll');

if (!epoll) {
  it.skip('property: random operation sequences [skipped: the model is of AF_UNIX sockets under epoll, and this OS has no epoll]', () => {});
} else {
  describe('property: random operation sequences against the model', () => {
    const fdsBefore = openFds();
    let sequences = 0;

    for (const variant of VARIANTS) {
      it(`${variant.name}: never twice without a re-arm, every accepted force once, stale tokens ENOENT, only ReactorError`, () => {
        const stats = newStats();
        const started = performance.now();
        fc.assert(fc.property(sequenceArb, runSequences(variant, stats)), { numRuns: RUNS, ...replay() });
        sequences += stats.sequences;
        const probe = Reactor.open({ backend: 'epoll', capacity: 1, native: variant.native });
        const nativeInUse = (probe.share().backend as { native?: unknown }).native === true;
        probe.close();
        console.log(
          `property [${variant.name}; native helper ${nativeInUse ? 'in use' : 'not in use'}]: ${stats.sequences} sequences, ` +
            `${stats.steps} steps, ${stats.deliveries} deliveries, ${stats.forcesAccepted} forces accepted, ` +
            `${stats.forcesDelivered} forced deliveries (${stats.timeoutsDelivered} of them deadlines), ` +
            `${stats.forcesDropped} forces dropped by delete or close, ${stats.errorsChecked} ReactorErrors checked, ` +
            `at most ${stats.maxWorlds} possible worlds, ` +
            `${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        assert.ok(stats.forcesDelivered > 0 && stats.timeoutsDelivered > 0, 'the sequences exercised forces and deadlines');
      });
    }

    it('a failed batched re-arm of a token deleted since is never delivered (the shrunk sequence)', () => {
      for (const variant of VARIANTS) {
        fc.assert(fc.property(sequenceArb, runSequences(variant, newStats())), { examples: [[ERROR_AFTER_DELETE]], numRuns: 1 });
      }
    });

    it('closes every socket and reactor it opened (the fd count is back where it started)', () => {
      assert.ok(sequences >= 2000, `at least 2,000 sequences ran (${sequences})`);
      assert.equal(openFds(), fdsBefore);
    });
  });
}
