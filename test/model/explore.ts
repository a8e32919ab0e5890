/** An exhaustive explorer: depth-first over every interleaving of a model's atomic steps. */

/** Thrown by a model when an invariant breaks; the explorer adds the interleaving that led there. */
export class Violation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

/** Throws a Violation of `invariant` unless `ok`. */
export function expect(ok: boolean, invariant: string, detail: () => string): void {
  if (!ok) throw new Violation(invariant, detail());
}

/** One atomic step some actor can take from a state. */
export interface Step<S> {
  /** Who does what, for the printed interleaving: "W1: claim(kernel event gen 1) -> ACTIVE". */
  readonly label: string;
  /**
   * The state after the step (a fresh copy) and what the step's call returned, for the printed
   * interleaving (" -> FORCED_PUSH"). Runs the step's own checks: may throw Violation.
   */
  readonly next: () => { readonly state: S; readonly result: string };
}

/** What the explorer needs to know about a model. */
export interface Model<S> {
  /** The whole state as a string: two states with the same key have the same futures. */
  key(state: S): string;
  /** Every step any actor can take now. None: the run has quiesced. */
  steps(state: S): readonly Step<S>[];
  /** Invariants that hold in every state. */
  checkState(state: S): void;
  /** Invariants that hold once nothing can move. */
  checkEnd(state: S): void;
  /** A one-line description of a state, for reports. */
  describe(state: S): string;
}

export interface Exploration {
  /** Complete interleavings: distinct step sequences from the start to a quiescent state. */
  readonly paths: bigint;
  /** Distinct states reached (each expanded and checked once). */
  readonly states: number;
  /** Quiescent states. */
  readonly ends: number;
  /** The longest interleaving. */
  readonly depth: number;
}

/**
 * Explores every interleaving from `initial`. States are memoized by key, so each is expanded
 * once and every edge (step) is checked once, while `paths` still counts every interleaving
 * (the number of paths through the state graph). A step that leaves the state unchanged (a
 * retry after BUSY) is a stutter, not a new interleaving. The model must be finite and acyclic:
 * a cycle or a path longer than `maxDepth` is reported as a violation, so a bound can never
 * silently cut the search short.
 */
export function explore<S>(initial: S, model: Model<S>, maxDepth: number): Exploration {
  const memo = new Map<string, bigint>();
  const onPath = new Set<string>();
  const trace: string[] = [];
  let ends = 0;
  let deepest = 0;

  const visit = (state: S, key: string, depth: number): bigint => {
    const known = memo.get(key);
    if (known !== undefined) return known;
    if (onPath.has(key)) throw new Violation('finite runs', 'the model can return to an earlier state: a livelock');
    if (depth > maxDepth) throw new Violation('finite runs', `an interleaving is longer than the bound ${maxDepth}`);
    model.checkState(state); // once per state: the step's own checks ran on the edge already
    deepest = Math.max(deepest, depth);
    onPath.add(key);
    let total = 0n;
    let moved = false;
    for (const step of model.steps(state)) {
      trace.push(step.label);
      const { state: next, result } = step.next();
      trace[trace.length - 1] = step.label + result;
      const nextKey = model.key(next);
      if (nextKey !== key) {
        moved = true;
        total += visit(next, nextKey, depth + 1);
      }
      trace.pop();
    }
    if (!moved) {
      model.checkEnd(state);
      ends++;
      total = 1n;
    }
    onPath.delete(key);
    memo.set(key, total);
    return total;
  };

  try {
    const paths = visit(initial, model.key(initial), 0);
    return { paths, states: memo.size, ends, depth: deepest };
  } catch (e) {
    if (!(e instanceof Violation)) throw e;
    // Depth-first finds some interleaving; report a shortest one, which is easier to read.
    const shortest = e.invariant === 'finite runs' ? undefined : findShortest(initial, model);
    const [violation, steps] = shortest ?? [e, trace];
    const lines = steps.map((label, i) => `  ${String(i + 1).padStart(3)}. ${label}`).join('\n');
    throw new Error(`invariant broken: ${violation.message}\ninterleaving (from ${model.describe(initial)}):\n${lines}`);
  }
}

/** Breadth-first, with the same checks: a shortest interleaving that breaks an invariant. */
function findShortest<S>(initial: S, model: Model<S>): [Violation, string[]] | undefined {
  const parents = new Map<string, { readonly from: string; readonly label: string } | null>();
  const traceTo = (key: string): string[] => {
    const labels: string[] = [];
    for (let p = parents.get(key); p; p = parents.get(p.from)) labels.unshift(p.label);
    return labels;
  };
  const attempt = (key: string, label: string | undefined, check: () => void): [Violation, string[]] | undefined => {
    try {
      check();
      return undefined;
    } catch (e) {
      if (!(e instanceof Violation)) throw e;
      const labels = traceTo(key);
      return [e, label === undefined ? labels : [...labels, label]];
    }
  };
  let frontier: [S, string][] = [[initial, model.key(initial)]];
  parents.set(frontier[0]![1], null);
  while (frontier.length > 0) {
    const next: [S, string][] = [];
    for (const [state, key] of frontier) {
      const broken = attempt(key, undefined, () => model.checkState(state));
      if (broken) return broken;
      let moved = false;
      for (const step of model.steps(state)) {
        let after: { readonly state: S; readonly result: string } | undefined;
        const failed = attempt(key, step.label, () => (after = step.next()));
        if (failed || after === undefined) return failed;
        const nextKey = model.key(after.state);
        if (nextKey === key) continue;
        moved = true;
        if (parents.has(nextKey)) continue;
        parents.set(nextKey, { from: key, label: step.label + after.result });
        next.push([after.state, nextKey]);
      }
      if (!moved) {
        const ended = attempt(key, undefined, () => model.checkEnd(state));
        if (ended) return ended;
      }
    }
    frontier = next;
  }
  return undefined;
}
