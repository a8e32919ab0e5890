// Tests are compiled by tsc first (npm test does both), so vitest runs exactly the JS that ships,
// and worker threads can load their compiled scripts directly.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['build/test/**/*.test.js'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    // Suites start worker threads of their own and measure under load: one file at a time.
    fileParallelism: false,
  },
});
