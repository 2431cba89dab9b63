import { expect } from 'vitest';
import type { CrashSummary } from './crash.js';

/** The assertions of the crash campaign, shared by its short and long forms. */
export function expectCleanCrash(s: CrashSummary, planned: { jobs: number; kills: number }): void {
  const context = `seed ${s.seed}`;
  expect(s.unexpectedExits, context).toEqual([]);
  expect(s.driver.unexpected, context).toEqual([]);
  expect(s.misaccounted, context).toEqual([]);
  expect(s.orphans, context).toEqual([]);
  expect(s.finalExitCode, context).toBe(0);
  expect(s.kills).toHaveLength(planned.kills);
  expect(s.jobs, context).toBeGreaterThanOrEqual(planned.jobs);
  expect(
    {
      lost: s.lost,
      duplicated: s.duplicated,
      interleaved: s.interleaved,
      messagesTwice: s.messagesTwice,
      unfinished: s.unfinished,
      ackMissing: s.ackMissing,
      eventGaps: s.eventGaps,
      lostProcesses: s.lostProcesses,
      turnsCut: s.turnsCut,
    },
    context,
  ).toEqual({
    lost: 0,
    duplicated: 0,
    interleaved: 0,
    messagesTwice: 0,
    unfinished: 0,
    ackMissing: 0,
    eventGaps: 0,
    lostProcesses: 0,
    // Every user message has its answer or a notice, kills or not.
    turnsCut: 0,
  });
  // Every job is final and answered once: followed up or failed with its notice.
  expect(s.followedUp + s.failed, context).toBeLessThanOrEqual(s.jobs);
  // The kills landed where they were aimed, not only at quiet moments.
  expect(s.kills.filter((k) => k.beforeListening).length, context).toBeGreaterThan(0);
  expect(s.kills.filter((k) => !k.beforeListening).length, context).toBeGreaterThan(0);
}
