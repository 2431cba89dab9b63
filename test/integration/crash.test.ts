import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { crashCampaign } from '../support/crash-campaign.js';

it('loses and doubles no follow-up when the runtime is killed at random instants', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-crash-'));
  try {
    const summary = await crashCampaign({
      dir,
      kills: 12,
      sessions: 6,
      perSession: 4,
      maxDelayMs: 900,
    });
    console.log(
      `crash: ${summary.kills} kills (${summary.killsAfterReady} after recovery), ${summary.jobs} jobs, ${summary.lost} lost, ` +
        `${summary.duplicated} duplicated, ${summary.interleaved} interleaved, ${summary.orphans} orphans`,
    );
    expect(summary.jobs).toBe(24);
    // Every third kill waits for recovery to be over (see crashCampaign).
    expect(summary.killsAfterReady).toBeGreaterThanOrEqual(4);
    expect(summary).toMatchObject({
      lost: 0,
      duplicated: 0,
      interleaved: 0,
      orphans: 0,
      unfinished: 0,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
