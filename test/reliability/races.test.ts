import { it } from 'vitest';
import { racesCampaign } from './campaigns/races-campaign.js';

it('keeps one lock holder, final jobs and a gapless feed over 200 random interleavings with restarts', async () => {
  await racesCampaign({ numRuns: 200, maxActions: 60 });
}, 600_000);
