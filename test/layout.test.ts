/** The shape docs/ARCHITECTURE.md promises of src/core: small files, one concept each. */
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

// This file runs as build/test/layout.test.js.
const core = new URL('../../src/core/', import.meta.url);

it('core_files_stay_under_450_lines', () => {
  const long = readdirSync(core)
    .filter((name) => name.endsWith('.ts'))
    .map((name) => [name, readFileSync(new URL(name, core), 'utf8').split('\n').length - 1] as const)
    .filter(([, lines]) => lines > 450);
  expect(long).toEqual([]);
});
