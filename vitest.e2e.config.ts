import { defineConfig } from 'vitest/config';

// End-to-end tests: a real `baton serve` child process and a real Chromium
// (the system one at /usr/bin/chromium). Run with `npm run test:e2e`.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
