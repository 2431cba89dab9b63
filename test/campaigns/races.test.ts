import { it } from 'vitest';
import { racesCampaign } from '../reliability/campaigns/races-campaign.js';

// The short form of test/reliability/races.test.ts.
it('keeps one lock holder, final jobs and a gapless feed under random interleavings and restarts', async () => {
  await racesCampaign({ numRuns: 12, maxActions: 30 });
}, 60_000);
