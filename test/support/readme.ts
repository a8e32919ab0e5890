/**
 * The README's TypeScript and JavaScript code blocks, as the README test and the consumer test
 * check them. A block is type-checked and run as an ES module; what it needs around it is
 * written in HTML comments, which Markdown does not show:
 *
 *   <!-- test: not run: <reason> -->    before a block: type-check it only
 *   <!-- test: prelude                  before a block: code that runs first (sockets, imports)
 *   ...
 *   -->
 *   <!-- test: check                    after a block: code that runs last (its assertions)
 *   ...
 *   -->
 *
 * Only blank lines may stand between a comment and its block. A `test:` comment that does not
 * attach to a ts/js block, or that names no known directive, is an error, so a typo cannot
 * quietly stop a block being checked.
 */

/** One README code block with its hidden prelude and check. */
export interface ReadmeBlock {
  /** The line of the opening fence in README.md (1-based): the block's name in reports. */
  readonly line: number;
  /** `ts` or `js`: how it is compiled and checked. */
  readonly lang: 'ts' | 'js';
  /** Code that runs before the block, with the README line of its first line. */
  readonly prelude: Section | undefined;
  readonly code: Section;
  /** Code that runs after the block. */
  readonly check: Section | undefined;
  /** Why the block is type-checked but not run, if it is not run. */
  readonly notRun: string | undefined;
}

/** Some lines of README.md, and where they start. */
export interface Section {
  readonly text: string;
  readonly firstLine: number;
}

/** A block as one module: its text, and the README line of every line of it (0-based index). */
export interface AssembledBlock {
  readonly text: string;
  readonly readmeLines: readonly number[];
}

const LANGS: Readonly<Record<string, 'ts' | 'js'>> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' };

type Directive = { kind: 'prelude' | 'check'; section: Section } | { kind: 'not run'; reason: string };

/** Parses `<!-- test: ... -->` (its text after `test:`) starting at README line `firstLine`. */
function directive(body: string, firstLine: number): Directive {
  const notRun = /^not run:\s*(\S.*?)\s*$/s.exec(body);
  if (notRun !== null) return { kind: 'not run', reason: notRun[1]! };
  const code = /^(prelude|check)[ \t]*\n/.exec(body);
  if (code !== null) {
    return { kind: code[1] as 'prelude' | 'check', section: { text: body.slice(code[0].length), firstLine: firstLine + 1 } };
  }
  throw new Error(`README.md:${firstLine}: unknown test directive "${body.split('\n')[0]}" (prelude, check or not run: <reason>)`);
}

/** Every ts/js block of a README, in order, with its directives. */
export function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  let pending: Directive[] = [];
  let pendingLine = 0;
  // The block a `check` after it may still attach to, until anything but a blank line comes.
  let last: { block: ReadmeBlock; index: number } | undefined;

  const orphan = (what: string): never => {
    throw new Error(`README.md:${pendingLine}: a test directive must stand just before a ts or js block (${what})`);
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const lineNo = i + 1;

    const comment = /^<!--\s*test:\s*/.exec(line);
    if (comment !== null) {
      let end = i;
      while (end < lines.length && !lines[end]!.includes('-->')) end++;
      if (end === lines.length) throw new Error(`README.md:${lineNo}: test directive without its closing -->`);
      const body = [line.slice(comment[0].length), ...lines.slice(i + 1, end + 1)].join('\n').replace(/\s*-->\s*$/, '');
      const found = directive(body, lineNo);
      if (found.kind === 'check') {
        if (last === undefined || pending.length > 0) {
          pendingLine = lineNo;
          orphan('a check follows the block it checks');
        }
        blocks[last!.index] = { ...last!.block, check: found.section };
        last = undefined;
      } else {
        if (pending.length === 0) pendingLine = lineNo;
        pending.push(found);
      }
      i = end;
      continue;
    }
    last = undefined;

    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence === null) {
      if (pending.length > 0) orphan(`found text: "${line.slice(0, 40)}"`);
      continue;
    }
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    const lang = LANGS[fence[1]!];
    if (lang === undefined) {
      if (pending.length > 0) orphan(`found a \`\`\`${fence[1]} block`);
    } else {
      const prelude = pending.find((d) => d.kind === 'prelude');
      const notRun = pending.find((d) => d.kind === 'not run');
      const block: ReadmeBlock = {
        line: lineNo,
        lang,
        prelude: prelude?.kind === 'prelude' ? prelude.section : undefined,
        code: { text: lines.slice(i + 1, end).join('\n'), firstLine: lineNo + 1 },
        check: undefined,
        notRun: notRun?.kind === 'not run' ? notRun.reason : undefined,
      };
      last = { block, index: blocks.length };
      blocks.push(block);
    }
    pending = [];
    i = end;
  }
  if (pending.length > 0) orphan('found the end of the file');
  return blocks;
}

/** The block as the module that runs: prelude, block, check. */
export function assemble(block: ReadmeBlock): AssembledBlock {
  const text: string[] = [];
  const readmeLines: number[] = [];
  for (const section of [block.prelude, block.code, block.check]) {
    if (section === undefined) continue;
    section.text.split('\n').forEach((line, k) => {
      text.push(line);
      readmeLines.push(section.firstLine + k);
    });
  }
  return { text: text.join('\n') + '\n', readmeLines };
}

/** The package entry points (`evdispatch`, `evdispatch/...`) the blocks and their preludes import. */
export function entryPoints(blocks: readonly ReadmeBlock[], packageName: string): string[] {
  const found = new Set<string>();
  const pattern = new RegExp(`from\\s+['"](${packageName}(?:/[\\w./-]+)?)['"]`, 'g');
  for (const block of blocks) {
    for (const match of assemble(block).text.matchAll(pattern)) found.add(match[1]!);
  }
  return [...found].sort();
}
