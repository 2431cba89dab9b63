import { defineConfig } from 'vitest/config';

// The long reliability campaigns (`npm run test:reliability`): minutes, not
// seconds. Their short forms run in `npm test` from test/campaigns/. One file
// at a time: the campaigns measure memory and spawn many processes, and each
// should have the machine's two cores to itself.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
