import { it } from 'vitest';
import { resourcesCampaign } from './campaigns/resources-expect.js';

it('keeps memory flat under 1 GiB outputs, kills whole groups, and survives a full disk', async () => {
  await resourcesCampaign({ bytesPerJob: 1024 * 1024 * 1024, forkingJobs: 8 });
}, 300_000);
