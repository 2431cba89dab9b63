import { expect } from 'vitest';
import type { ClusterSummary } from './cluster-campaign.js';

/** The assertions of the cluster campaign, shared by its short and long forms. */
export function expectCleanCluster(
  s: ClusterSummary,
  planned: { jobs: number; kills: number },
): void {
  const context = `seed ${s.seed}`;
  expect(
    {
      lost: s.store.lost,
      duplicated: s.store.duplicated,
      interleaved: s.store.interleavings,
      unfinished: s.store.unfinished,
      feedGaps: s.feed.gaps,
      leaks: s.leaks,
      messagesTwice: s.store.messagesTwice,
      ackMissing: s.store.ackMissing,
      framesTwice: s.feed.duplicates,
      outOfOrder: s.feed.outOfOrder,
      foreignFrames: s.feed.foreign,
      feedDetails: s.feed.details,
      feedErrors: s.feed.errors,
      storeGaps: s.store.storeGaps,
      pendingCommands: s.pendingCommands,
      misaccounted: s.store.misaccounted,
      lostProcesses: s.store.lostProcesses,
      unexpectedAnswers: s.driver.unexpected,
      unexpectedExits: s.unexpectedExits,
      remaining: s.remaining,
    },
    context,
  ).toEqual({
    lost: 0,
    duplicated: 0,
    interleaved: [],
    unfinished: 0,
    feedGaps: 0,
    leaks: { orphans: [], serves: [] },
    messagesTwice: 0,
    ackMissing: 0,
    framesTwice: 0,
    outOfOrder: 0,
    foreignFrames: 0,
    feedDetails: [],
    feedErrors: [],
    storeGaps: 0,
    pendingCommands: 0,
    misaccounted: [],
    lostProcesses: 0,
    unexpectedAnswers: [],
    unexpectedExits: [],
    remaining: [],
  });
  expect(s.settled, context).toBe(true);
  expect(s.finalExitCodes, context).toEqual([0, 0, 0]);
  // The work was done and the kills were of every kind.
  expect(s.store.jobs, context).toBeGreaterThanOrEqual(planned.jobs);
  expect(s.store.followedUp + s.store.failed, context).toBe(s.store.jobs);
  expect(new Set(s.kills.map((k) => k.event)).size, context).toBe(planned.kills);
  expect(s.kills.length, context).toBeGreaterThanOrEqual(planned.kills);
  for (const kind of ['kill', 'term', 'double', 'afterRestart'] as const) {
    expect(s.kills.filter((k) => k.kind === kind).length, `${kind}, ${context}`).toBeGreaterThan(0);
  }
  expect(s.kills.filter((k) => k.signal === 'SIGTERM').length, context).toBeGreaterThan(0);
  // Each feed client resumed at least once: its process was killed under it.
  expect(s.feed.connections, context).toBeGreaterThan(s.feed.clients);
}
