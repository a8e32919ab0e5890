/**
 * What the benchmarks (bench/dispatch.ts, bench/echo.ts) share: reading the command line,
 * compiling the C side, the children to stop on the way out, medians and the table's grid.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** A flag the user got wrong: reported with the usage line, exit code 2. */
export class UsageError extends Error {}

/**
 * Reads a benchmark's command line: the options, or the exit code to end with at once (0 after
 * --help; 2 after a usage error, reported with `usage`; 1 off Linux, after `linuxOnly`).
 * Every flag but --help takes a value; `defaults` names them, `read` turns their text into
 * options and throws UsageError for a value it refuses.
 */
export function commandLine<K extends string, O extends object>(
  defaults: Record<K, string>,
  read: (values: Record<K, string>) => O,
  text: { readonly usage: string; readonly help: string; readonly linuxOnly: string },
): O | number {
  let o: O | 'help';
  try {
    const flags = Object.fromEntries(Object.entries<string>(defaults).map(([flag, value]) => [flag, { type: 'string' as const, default: value }]));
    const { values } = parseArgs({ args: process.argv.slice(2), strict: true, allowPositionals: false, options: { ...flags, help: { type: 'boolean', default: false } } });
    // Every flag in `defaults` has its default, so each value is there, and a string.
    o = values['help'] === true ? 'help' : read(values as Record<K, string>);
  } catch (e) {
    if (!(e instanceof UsageError) && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') !== true) throw e;
    console.error(`${(e as Error).message}\n${text.usage}`);
    return 2;
  }
  if (o === 'help') {
    console.log(text.help);
    return 0;
  }
  if (process.platform !== 'linux') {
    console.error(text.linuxOnly);
    return 1;
  }
  return o;
}

/** The value of --`flag`, an integer from min to max. */
export function integer(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got '${text}'`);
  return n;
}

/** The value of --`flag`, a number of seconds from min (to max, if one is given). */
export function seconds(flag: string, text: string, min: number, max = Infinity): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    const range = max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${flag} must be a number of seconds ${range}, got '${text}'`);
  }
  return n;
}

/**
 * Compiles bench/c/`name`.c with the machine's cc (-O2 and `flags`) into dir: the program's
 * path, or undefined without cc (no cc on PATH).
 */
export function compileC(name: string, dir: string, flags: readonly string[] = []): string | undefined {
  // tsc emits this file to build/bench/; the C sources stay in the tree.
  const source = fileURLToPath(new URL(`../../bench/c/${name}.c`, import.meta.url));
  const exe = join(dir, name);
  const cc = spawnSync('cc', ['-O2', ...flags, '-o', exe, source], { encoding: 'utf8' });
  if ((cc.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
  if (cc.error !== undefined) throw cc.error;
  if (cc.status !== 0) throw new Error(`cc failed on ${source}:\n${cc.stderr}`);
  return exe;
}

/** Every child still running, so that an error or a signal stops them all. */
const children = new Set<ChildProcess>();

/** Keeps `child` among those killAll stops, until it exits. */
export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Kills every tracked child still running (SIGKILL: nothing is left to wait for). */
export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A table's lines: a header row, then the rows; columns right-aligned but the one at `left`. */
export function grid(head: string[], rows: string[][], left: number): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i === left ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)];
}

/**
 * The ratio of a server's figure to a baseline's: the median over rounds of each round's ratio,
 * so that the machine's own drift between rounds cancels out (the two runs of a round are close
 * in time); undefined without the baseline.
 */
export function ratio<S>(runs: readonly S[], base: readonly S[] | undefined, f: (s: S) => number): number | undefined {
  if (base === undefined) return undefined;
  const ratios = runs.flatMap((x, i) => (base[i] === undefined ? [] : [f(x) / f(base[i])]));
  return ratios.length === 0 ? undefined : median(ratios);
}
