/**
 * The fault suite: each fault is done to the reactor or to the demo server for real, and what it
 * cost is measured. Prints one line per fault, `fault <name>: lost nothing (<figures>; <time>)` or
 * `fault <name>: LOST <what> (<figures>; <time>)`, then `faults: N passed, N failed`; exits 1 if
 * any fault lost anything. Linux only (it reads /proc). Needs curl and ab (apache2-utils) on
 * PATH: a missing one fails its faults, it is never skipped. Build first (tsc -p .), then:
 *   node build/test/faults/run.js [group ...]    groups: reactor, fds, server (default: all)
 *
 * Each group runs in a child process of its own, killed at its time limit: a fault that hangs a
 * thread in a synchronous call (a close() that never returns, say) fails its group, not the run.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FaultGroup, Outcome } from './fault.js';
import { reactorFaults } from './reactor.js';
import { fdsExhausted, serverFaults } from './server.js';

const GROUPS: readonly FaultGroup[] = [reactorFaults, fdsExhausted, serverFaults];
const CHILD_FLAG = '--group-child';

/** In a group's child: runs its faults, printing each line as it is known. */
async function runGroup(group: FaultGroup): Promise<void> {
  let since = performance.now();
  const report = (name: string, { lost, figures }: Outcome): void => {
    const verdict = lost.length === 0 ? 'lost nothing' : `LOST ${lost.join('; ')}`;
    const took = `${((performance.now() - since) / 1000).toFixed(1)} s`;
    since = performance.now();
    console.log(`fault ${name}: ${verdict} (${figures === '' ? '' : `${figures}; `}${took})`);
  };
  try {
    await group.run(report);
  } catch (e) {
    // A tool missing, a server that would not start, a check that threw: the rest is lost.
    report(group.name, { lost: [`the rest of the group: ${(e as Error).message}`], figures: '' });
  }
}

/** In the parent: runs a group's child, passes its lines on, and counts them. */
async function follow(group: FaultGroup, tally: { passed: number; failed: number }): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), CHILD_FLAG, group.name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let lines = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    console.log(line);
    if (!line.startsWith('fault ')) return;
    lines++;
    if (/^fault [^:]+: lost nothing/.test(line)) tally.passed++;
    else tally.failed++;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), group.limitMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  if (code === 0) return;
  // What did not run is lost too: the group's remaining faults count as one failure.
  const why = signal === 'SIGKILL' ? `timed out after ${group.limitMs / 1000} s` : `crashed (${signal ?? `exit ${code}`})`;
  const last = stderr.trim().split('\n').slice(-3).join(' | ');
  console.log(`fault ${group.name}: LOST the rest of the group after ${lines} faults: ${why}${last === '' ? '' : `: ${last}`}`);
  tally.failed++;
}

const args = process.argv.slice(2);
if (args[0] === CHILD_FLAG) {
  await runGroup(GROUPS.find((g) => g.name === args[1])!);
  // Sockets, children or threads a failed fault left behind must not keep the group alive.
  process.exit(0);
}
const unknown = args.filter((name) => !GROUPS.some((g) => g.name === name));
if (unknown.length > 0) {
  console.error(`unknown fault group ${unknown.join(', ')}; the groups: ${GROUPS.map((g) => g.name).join(', ')}`);
  process.exit(2);
}
const started = performance.now();
const tally = { passed: 0, failed: 0 };
for (const group of GROUPS) if (args.length === 0 || args.includes(group.name)) await follow(group, tally);
console.log(`faults took ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(`faults: ${tally.passed} passed, ${tally.failed} failed`);
process.exitCode = tally.failed > 0 ? 1 : 0;
