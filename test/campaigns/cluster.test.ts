import { it } from 'vitest';
import {
  clusterSummaryLine,
  runClusterCampaign,
} from '../reliability/campaigns/cluster-campaign.js';
import { expectCleanCluster } from '../reliability/campaigns/cluster-expect.js';
import { campaignSeed } from '../reliability/campaigns/rng.js';

// The short form of test/reliability/cluster.test.ts (needs dist/: npm test builds it first).
it('three processes on one schema lose, double and interleave nothing across 6 kill events', async () => {
  const size = {
    sessions: 12,
    jobs: 60,
    kills: 6,
    minGapMs: 200,
    maxGapMs: 900,
    deadlineMs: 165_000,
  };
  const summary = await runClusterCampaign({ ...size, seed: campaignSeed() });
  console.log(clusterSummaryLine(summary));
  expectCleanCluster(summary, size);
}, 180_000);
