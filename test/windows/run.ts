/**
 * The behavioural scenarios without vitest, for node.exe on Windows or under Wine (where vitest
 * cannot run): each scenario of test/scenarios/all.ts runs against one backend (IOCP by default),
 * one line per scenario is printed, and the results go to a JSON file, rewritten after every
 * scenario so that a run cut short still says how far it got.
 *
 * usage: node build/test/windows/run.js [--backend iocp] [--json results.json] [name ...]
 */
import { writeFileSync } from 'node:fs';
import koffi from 'koffi';
import type { BackendKind } from '../../src/index.js';
import { scenarios } from '../scenarios/all.js';
import type { Context, Scenario } from '../scenarios/scenario.js';

/** What the JSON file holds. */
export interface SuiteResult {
  readonly suite: string;
  readonly backend: BackendKind;
  readonly platform: string;
  readonly node: string;
  /** Wine's version when running under Wine, else null. */
  readonly wine: string | null;
  /** false until the last scenario has run. */
  complete: boolean;
  passed: number;
  failed: number;
  skipped: number;
  durationMs: number;
  readonly scenarios: ScenarioResult[];
}

export interface ScenarioResult {
  /** The scenario's name, the same as in the vitest run. */
  readonly name: string;
  readonly status: 'passed' | 'failed' | 'skipped';
  readonly durationMs: number;
  /** Why it failed (the error's stack), or why it was skipped. */
  readonly error?: string;
}

/**
 * Scenarios Wine cannot run, with the reason; a skipped one is named `name [skipped: reason]`
 * in the output. Empty: Wine 8 runs them all.
 */
const UNDER_WINE_SKIP: ReadonlyMap<string, string> = new Map();

/** A scenario that has not finished by then is failed, and the run goes on without it. */
const SCENARIO_TIMEOUT_MS = 120_000;

function parseArgs(argv: readonly string[]): { backend: BackendKind; json: string | undefined; only: string[] } {
  let backend: BackendKind = 'iocp';
  let json: string | undefined;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--backend') backend = argv[++i] as BackendKind;
    else if (arg === '--json') json = argv[++i];
    else only.push(arg);
  }
  return { backend, json, only };
}

/** Wine's version (ntdll's wine_get_version), or null on Windows itself. */
function wineVersion(): string | null {
  if (process.platform !== 'win32') return null;
  try {
    const ntdll = koffi.load('ntdll.dll');
    const get = ntdll.func('const char *wine_get_version(void)') as () => string;
    return get();
  } catch {
    return null;
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

async function runOne(s: Scenario, ctx: Context): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS);
  });
  try {
    await Promise.race([s.run(ctx), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  const { backend, json, only } = parseArgs(process.argv.slice(2));
  const wine = wineVersion();
  const selected = only.length === 0 ? scenarios : scenarios.filter((s) => only.includes(s.name));
  const result: SuiteResult = {
    suite: `behaviour ${backend}`,
    backend,
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    wine,
    complete: false,
    passed: 0,
    failed: 0,
    skipped: 0,
    durationMs: 0,
    scenarios: [],
  };
  const save = (): void => {
    if (json !== undefined) writeFileSync(json, JSON.stringify(result, null, 2) + '\n');
  };
  console.log(
    `behaviour scenarios on ${backend}: node ${process.version}, ${result.platform}` +
      (wine === null ? '' : `, Wine ${wine}`) +
      `, ${selected.length} scenarios`,
  );
  save();
  const suiteStart = performance.now();
  for (const s of selected) {
    const skip = wine === null ? undefined : UNDER_WINE_SKIP.get(s.name);
    if (skip !== undefined) {
      result.scenarios.push({ name: s.name, status: 'skipped', durationMs: 0, error: skip });
      result.skipped++;
      console.log(`  skip ${s.name} [skipped: ${skip}]`);
      save();
      continue;
    }
    const start = performance.now();
    let error: string | undefined;
    try {
      await runOne(s, { backend });
    } catch (e) {
      error = errorText(e);
    }
    const durationMs = Math.round(performance.now() - start);
    if (error === undefined) {
      result.scenarios.push({ name: s.name, status: 'passed', durationMs });
      result.passed++;
      console.log(`  ok   ${s.name} (${durationMs} ms)`);
    } else {
      result.scenarios.push({ name: s.name, status: 'failed', durationMs, error });
      result.failed++;
      console.log(`  FAIL ${s.name} (${durationMs} ms)\n${error.replace(/^/gm, '       ')}`);
    }
    save();
  }
  result.durationMs = Math.round(performance.now() - suiteStart);
  result.complete = true;
  save();
  const skipped = result.skipped > 0 ? `, ${result.skipped} skipped` : '';
  console.log(`${result.passed} passed, ${result.failed} failed${skipped} (${(result.durationMs / 1000).toFixed(1)} s)`);
  return result.failed > 0 || selected.length === 0 ? 1 : 0;
}

// Exit explicitly: a failed scenario may leave a worker thread or a handle behind.
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(errorText(e));
    process.exit(2);
  },
);
