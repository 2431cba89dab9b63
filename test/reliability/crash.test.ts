import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { crashSummaryLine, runCrashCampaign } from './campaigns/crash.js';
import { expectCleanCrash } from './campaigns/crash-expect.js';
import { campaignSeed } from './campaigns/rng.js';

it('loses, doubles and interleaves nothing over 2,000 jobs when baton serve is killed 220 times', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-crash-long-'));
  try {
    const size = { sessions: 200, jobs: 2000, kills: 220 };
    const summary = await runCrashCampaign({ dir, ...size, seed: campaignSeed() });
    expectCleanCrash(summary, size);
    console.log(crashSummaryLine(summary));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 600_000);
