import { it } from 'vitest';
import { resourcesCampaign } from '../reliability/campaigns/resources-expect.js';

// The short form of test/reliability/resources.test.ts (needs dist/: npm test builds it first).
it('keeps memory flat under 256 MiB outputs, kills whole groups, and survives a full disk', async () => {
  await resourcesCampaign({ bytesPerJob: 256 * 1024 * 1024, forkingJobs: 2 });
}, 90_000);
