import { it } from 'vitest';
import { clusterSummaryLine, runClusterCampaign } from './campaigns/cluster-campaign.js';
import { expectCleanCluster } from './campaigns/cluster-expect.js';
import { campaignSeed } from './campaigns/rng.js';

// Needs dist/ (npm run build) and PostgreSQL on 127.0.0.1:5432 (test/multi/cluster.ts).
it('three processes on one schema lose, double and interleave nothing, and every feed client sees its owner once, across 24 kill events', async () => {
  const size = {
    sessions: 40,
    jobs: 320,
    kills: 24,
    minGapMs: 300,
    maxGapMs: 2000,
    deadlineMs: 560_000,
  };
  const summary = await runClusterCampaign({ ...size, seed: campaignSeed() });
  // Printed before the assertions, so that a failing run still says what it counted.
  console.log(clusterSummaryLine(summary));
  expectCleanCluster(summary, size);
}, 600_000);
