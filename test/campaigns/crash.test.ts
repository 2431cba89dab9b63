import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { crashSummaryLine, runCrashCampaign } from '../reliability/campaigns/crash.js';
import { expectCleanCrash } from '../reliability/campaigns/crash-expect.js';
import { campaignSeed } from '../reliability/campaigns/rng.js';

it('loses, doubles and interleaves nothing when baton serve is killed 20 times', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-crash-short-'));
  try {
    const summary = await runCrashCampaign({ dir, sessions: 10, jobs: 100, kills: 20, seed: campaignSeed() });
    console.log(JSON.stringify({ kills: summary.kills.map((k) => k.mode), drv: summary.driver, arrived: summary.arrivedDuringFollowUp, cut: summary.turnsCut, mis: summary.misaccounted, orph: summary.orphans, exits: summary.unexpectedExits, ms: summary.durationMs }));
    expectCleanCrash(summary, { jobs: 100, kills: 20 });
    console.log(crashSummaryLine(summary));
    rmSync(dir, { recursive: true, force: true });
  } finally {
    console.log('dir', dir);
  }
}, 120_000);
