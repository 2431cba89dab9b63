import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { crashSummaryLine, runCrashCampaign } from '../reliability/campaigns/crash.js';
import { expectCleanCrash } from '../reliability/campaigns/crash-expect.js';
import { campaignSeed } from '../reliability/campaigns/rng.js';

// The short form of test/reliability/crash.test.ts (needs dist/: npm test builds it first).
it('loses, doubles and interleaves nothing when baton serve is killed 16 times', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-crash-short-'));
  try {
    const size = { sessions: 10, jobs: 100, kills: 16, maxRandomMs: 250 };
    const summary = await runCrashCampaign({ dir, ...size, seed: campaignSeed() });
    expectCleanCrash(summary, size);
    console.log(crashSummaryLine(summary));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
