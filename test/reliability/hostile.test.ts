import { it } from 'vitest';
import { hostileCampaign } from './campaigns/hostile-expect.js';

it('survives over 10,000 hostile requests and frames with no 5xx, no leak and the store unchanged', async () => {
  await hostileCampaign(
    {
      refused: 8000,
      wsConnections: 20,
      framesPerConnection: 60,
      valid: 600,
      flood: { requests: 800, sockets: 300, idle: 100 },
    },
    10_000,
  );
}, 600_000);
