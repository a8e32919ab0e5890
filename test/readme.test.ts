/**
 * README.md's ts and js blocks, so the docs cannot drift from the code: each is type-checked
 * against the package's own types (the built `build/src`, reached as `evdispatch` and
 * `evdispatch/net` through the package's `exports`), and each runnable one runs as a module
 * with its hidden prelude and check (see test/support/readme.ts for the conventions).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { assemble, readmeBlocks, type AssembledBlock, type ReadmeBlock } from './support/readme.js';

// This file runs as build/test/readme.test.js.
const root = fileURLToPath(new URL('../../', import.meta.url));
const blocks = readmeBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
// Inside the package, so `evdispatch` resolves to the package itself (a self-reference).
const work = join(root, 'build', 'readme-blocks');
const sources = join(work, 'src');
const outputs = join(work, 'out');

const RUN_TIMEOUT_MS = 60_000;

/** The strictest settings a user may compile with. */
const compilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  allowJs: true,
  checkJs: true,
  types: ['node'],
  typeRoots: [join(root, 'node_modules', '@types')],
  rootDir: sources,
  outDir: outputs,
  skipLibCheck: true,
};

function fileName(block: ReadmeBlock): string {
  return `readme-line-${block.line}.${block.lang}`;
}

/** A diagnostic as `README.md:<line>: <message>`, placed on the README line it is about. */
function describeDiagnostic(d: ts.Diagnostic, assembled: AssembledBlock): string {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
  if (d.file === undefined || d.start === undefined) return message;
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  return `README.md:${assembled.readmeLines[line] ?? '?'}: TS${d.code}: ${message}`;
}

describe('README.md code blocks', () => {
  const problems = new Map<ReadmeBlock, string[]>();
  const assembled = new Map(blocks.map((b) => [b, assemble(b)]));

  beforeAll(() => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(sources, { recursive: true });
    for (const [block, module] of assembled) writeFileSync(join(sources, fileName(block)), module.text);
    const program = ts.createProgram(
      blocks.map((b) => join(sources, fileName(b))),
      compilerOptions,
    );
    const emitted = program.emit();
    const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
    for (const block of blocks) {
      const path = join(sources, fileName(block)).replaceAll('\\', '/');
      const own = diagnostics.filter((d) => d.file?.fileName === path || d.file === undefined);
      problems.set(
        block,
        own.map((d) => describeDiagnostic(d, assembled.get(block)!)),
      );
    }
  });

  it('has ts or js blocks to check', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  for (const block of blocks) {
    it(`README.md:${block.line} type-checks against the package's types`, () => {
      expect(problems.get(block)).toEqual([]);
    });

    const runs = `README.md:${block.line} runs, its check passing`;
    if (block.notRun !== undefined) {
      it.skip(`${runs} (not run: ${block.notRun})`, () => {});
      continue;
    }
    it(runs, () => {
      const script = join(outputs, fileName(block).replace(/\.ts$/, '.js'));
      const child = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
      const report = `exit ${String(child.status)}${child.signal ? ` (${child.signal})` : ''}\n${child.stderr}`;
      expect(child.error, `could not run ${script}`).toBeUndefined();
      expect(child.status, report).toBe(0);
    });
  }
});

describe('README.md error tables', () => {
  it('say when each ReactorErrorCode is raised, and name no other code', async () => {
    const { REACTOR_ERROR_CODES } = await import('../src/index.js');
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const rows = readme.split('\n').filter((line) => /^\| `E[A-Z]+`/.test(line));
    const documented = rows.flatMap((row) => [...row.split('|')[1]!.matchAll(/`(E[A-Z]+)`/g)].map((m) => m[1]!));
    expect([...documented].sort()).toEqual([...REACTOR_ERROR_CODES].sort());
  });
});
