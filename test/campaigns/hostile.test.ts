import { it } from 'vitest';
import { hostileCampaign } from '../reliability/campaigns/hostile-expect.js';

// The short form of test/reliability/hostile.test.ts.
it('survives 1,500 hostile requests and frames with no 5xx, no leak and the store unchanged', async () => {
  await hostileCampaign(
    {
      refused: 1000,
      wsConnections: 5,
      framesPerConnection: 20,
      valid: 90,
      flood: { requests: 200, sockets: 50, idle: 20 },
    },
    1500,
  );
}, 90_000);
