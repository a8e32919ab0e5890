/** The body of the tests' worker threads: attach to the shared reactor, run one task, report. */
import { parentPort, workerData, threadId } from 'node:worker_threads';
import { Events, Reactor, ReactorError, Ready, type ReactorHandle } from '../../src/index.js';
import { drain, recv, send } from './sockets.js';
import { BAD_SEQUENCE, BALL_BYTES, BYTES_READ, BYTES_WRITTEN, DELIVERIES, SlotCounters, slotOf, STOP } from './threads.js';

export type Task =
  /** One wait; reports what it got and how long it blocked. */
  | {
      readonly kind: 'waitOnce';
      readonly timeoutMs: number;
      readonly capacity?: number;
      /** Also report the first event's shared state, as text up to its first NUL, from offset 4. */
      readonly readState?: boolean;
    }
  /**
   * Handle events until the reactor closes: count each delivery in the shared counters, hold it
   * for `holdSpins` busy iterations (widening any race), drain the fd if `read`, then rearm.
   */
  | {
      readonly kind: 'serve';
      readonly counters: SharedArrayBuffer;
      readonly slots: number;
      readonly fds: Int32Array;
      readonly read: boolean;
      readonly holdSpins: number;
    }
  /**
   * The stress handler: read the pair's ball (an 8-byte message: sequence number, pair) until
   * the read would block, check it is the one expected, send the next one back on the same
   * socket, rearm; count everything
   * in shared memory; stop once `stats[STOP]` is set.
   */
  | {
      readonly kind: 'pingPong';
      readonly counters: SharedArrayBuffer;
      readonly slots: number;
      readonly fds: Int32Array;
      /** The pair each slot's socket belongs to. */
      readonly pairOf: Int32Array;
      /** Per pair, the sequence number of the ball in flight. */
      readonly sequence: SharedArrayBuffer;
      readonly stats: SharedArrayBuffer;
      /** Attach with batchRearms: re-arms applied together with the next poll. */
      readonly batchRearms: boolean;
    }
  /**
   * Take one event and die holding it: by throwing out of the thread, by process.exit, by
   * blocking in another wait until terminated, or by spinning in its handler until terminated.
   * With `stageRearm`, first re-arm it with batched re-arms on, so that (spinning) it dies with
   * the re-arm staged and never applied. Posts { holding: token }.
   */
  | {
      readonly kind: 'holdThenDie';
      readonly how: 'throw' | 'exit' | 'block' | 'spin';
      readonly stageRearm: boolean;
    };


export interface TaskResult {
  readonly threadId: number;
  readonly n: number;
  readonly tokens: number[];
  readonly flags: number[];
  readonly elapsedMs: number;
  /** 'closed' when a call failed with ECLOSED or wait returned after close. */
  readonly ended: 'returned' | 'closed';
  readonly state?: string;
}

const { reactor: handle, task } = workerData as { reactor: ReactorHandle; task: Task };
const r = Reactor.attach(handle, {
  batchRearms: (task.kind === 'pingPong' && task.batchRearms) || (task.kind === 'holdThenDie' && task.stageRearm),
});
parentPort!.postMessage({ ready: true });

function waitOnce(timeoutMs: number, capacity: number, readState: boolean): TaskResult {
  const ev = new Events(capacity);
  const start = performance.now();
  let n = 0;
  let ended: TaskResult['ended'] = 'returned';
  try {
    n = r.wait(ev, timeoutMs);
    if (r.closed) ended = 'closed';
  } catch (e) {
    if (!(e instanceof ReactorError) || e.code !== 'ECLOSED') throw e;
    ended = 'closed';
  }
  const tokens = Array.from(ev.tokens.subarray(0, n));
  const flags = Array.from(ev.ready.subarray(0, n));
  const elapsedMs = performance.now() - start;
  if (!readState || n === 0) return { threadId, n, tokens, flags, elapsedMs, ended };
  const bytes = r.state(tokens[0]!).subarray(4);
  const state = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  return { threadId, n, tokens, flags, elapsedMs, ended, state };
}

function serve(t: Extract<Task, { kind: 'serve' }>): TaskResult {
  const counters = new SlotCounters(t.slots, t.counters);
  const ev = new Events(32);
  const start = performance.now();
  let total = 0;
  while (!r.closed) {
    let n: number;
    try {
      n = r.wait(ev, 1000);
    } catch (e) {
      if (e instanceof ReactorError && e.code === 'ECLOSED') break;
      throw e;
    }
    for (let i = 0; i < n; i++) {
      const token = ev.tokens[i]!;
      const slot = slotOf(token);
      counters.enter(slot, ev.ready[i]!, Ready.FORCED);
      for (let s = 0; s < t.holdSpins; s++) Atomics.load(counters.active, slot);
      if (t.read) drain(t.fds[slot]!);
      counters.leave(slot);
      try {
        r.rearm(token, undefined, t.read ? 0 : Ready.READABLE); // what was not read is still ready
      } catch (e) {
        // Deleted by another thread meanwhile, or the reactor closed under us.
        if (!(e instanceof ReactorError) || (e.code !== 'ENOENT' && e.code !== 'ECLOSED')) throw e;
      }
    }
    total += n;
  }
  return { threadId, n: total, tokens: [], flags: [], elapsedMs: performance.now() - start, ended: 'closed' };
}

function pingPong(t: Extract<Task, { kind: 'pingPong' }>): TaskResult {
  const counters = new SlotCounters(t.slots, t.counters);
  const sequence = new Int32Array(t.sequence);
  const stats = new Int32Array(t.stats);
  const ev = new Events(32);
  const ball = new Uint8Array(BALL_BYTES);
  const ballWords = new Int32Array(ball.buffer);
  const start = performance.now();
  let total = 0;
  while (Atomics.load(stats, STOP) === 0) {
    const n = r.wait(ev, 100);
    for (let i = 0; i < n; i++) {
      const token = ev.tokens[i]!;
      const slot = slotOf(token);
      counters.enter(slot, ev.ready[i]!, Ready.FORCED);
      const fd = t.fds[slot]!;
      // Read until the read would block (EDGE's contract: no edge comes for what is left). A
      // buffer of one ball takes at most one ball per read.
      for (let got = recv(fd, ball); got > 0; got = recv(fd, ball)) {
        // One ball per pair, 8 bytes sent in one write (one segment over loopback TCP): a short
        // read would be a broken stream, and counts as out of sequence.
        const pair = t.pairOf[slot]!;
        if (got !== BALL_BYTES || ballWords[0] !== Atomics.load(sequence, pair) || ballWords[1] !== pair) {
          Atomics.add(stats, BAD_SEQUENCE, 1);
        }
        ballWords[0] = Atomics.add(sequence, pair, 1) + 1;
        Atomics.add(stats, BYTES_READ, got);
        const sent = send(fd, ball);
        if (sent !== BALL_BYTES) Atomics.add(stats, BAD_SEQUENCE, 1);
        else Atomics.add(stats, BYTES_WRITTEN, sent);
      }
      counters.leave(slot);
      r.rearm(token);
    }
    total += n;
    Atomics.add(stats, DELIVERIES, n);
  }
  r.flush(); // a thread that stops waiting applies what it staged (batchRearms)
  return { threadId, n: total, tokens: [], flags: [], elapsedMs: performance.now() - start, ended: 'returned' };
}

function holdThenDie(how: 'throw' | 'exit' | 'block' | 'spin', stageRearm: boolean): never {
  const ev = new Events(1);
  if (r.wait(ev, 10_000) !== 1) throw new Error('holdThenDie: no event to hold');
  const token = ev.token(0);
  // Staged: applied by the next wait, flush or microtask, none of which comes. Nothing was read.
  if (stageRearm) r.rearm(token, undefined, Ready.READABLE);
  parentPort!.postMessage({ holding: token });
  if (how === 'exit') process.exit(3);
  if (how === 'throw') throw new Error('a handler failed while holding its event');
  // A handler stuck in its own work: no microtask (the staged re-arm's flush) ever runs.
  if (how === 'spin') for (;;) Atomics.load(ev.ready, 0);
  for (;;) r.wait(ev, -1); // nothing else is registered: blocks until terminated
}

if (task.kind === 'holdThenDie') holdThenDie(task.how, task.stageRearm);
const result =
  task.kind === 'waitOnce' ? waitOnce(task.timeoutMs, task.capacity ?? 16, task.readState ?? false) : task.kind === 'serve' ? serve(task) : pingPong(task);
parentPort!.postMessage({ result });
