import { expect } from 'vitest';
import { hostileSummaryLine, runHostile, type HostileSize } from './hostile.js';
import { campaignSeed } from './rng.js';

/** Runs the hostile-input campaign, asserts its counts, prints the summary last. */
export async function hostileCampaign(
  size: Omit<HostileSize, 'seed'>,
  minimum: number,
): Promise<void> {
  const seed = campaignSeed();
  const h = await runHostile({ ...size, seed });
  const context = `seed ${seed}`;
  expect(h.wrongStatus, context).toEqual([]);
  expect(h.valid.problems, context).toEqual([]);
  expect(h.ws.upgradeWrong, context).toEqual([]);
  expect(
    {
      status5xx: h.status5xx,
      leaks: h.leaks,
      storeChanged: h.storeChanged,
      unanswered: h.ws.unanswered,
      closed: h.ws.closed,
      oversizedClosed: h.ws.oversizedClosed,
      floodOk: h.flood.ok,
      opened: h.flood.opened,
      healthy: h.healthy,
      integrity: h.integrity,
    },
    context,
  ).toEqual({
    status5xx: 0,
    leaks: 0,
    storeChanged: false,
    unanswered: 0,
    closed: 0,
    oversizedClosed: true,
    floodOk: size.flood.requests,
    opened: size.flood.sockets,
    healthy: true,
    integrity: 'ok',
  });
  expect(h.valid.intact).toBe(h.valid.sent);
  expect(h.requests + h.frames, context).toBeGreaterThanOrEqual(minimum);
  console.log(hostileSummaryLine(h));
}
