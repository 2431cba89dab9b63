import fc from 'fast-check';
import { expect } from 'vitest';
import { raceAction } from './races-actions.js';
import { checkRace } from './races-check.js';
import { endRace, playRace } from './races.js';

/** Runs the races property `numRuns` times, asserts it, and prints the summary last. */
export async function racesCampaign(opts: { numRuns: number; maxActions: number }): Promise<void> {
  const totals = {
    runs: 0,
    actions: 0,
    restarts: 0,
    grants: 0,
    jobs: 0,
    events: 0,
    problems: 0,
    failed: 0,
  };
  const landed: Record<string, number> = {};
  await fc.assert(
    fc.asyncProperty(
      fc.array(raceAction, {
        minLength: Math.ceil(opts.maxActions / 4),
        maxLength: opts.maxActions,
        size: 'max',
      }),
      fc.integer({ min: 1, max: 2 ** 30 }),
      async (actions, seed) => {
        const run = await playRace(actions, seed);
        try {
          const verdict = await checkRace(run);
          totals.runs++;
          totals.actions += actions.length;
          totals.restarts += verdict.restarts;
          totals.grants += verdict.grants;
          totals.jobs += verdict.jobs;
          totals.events += verdict.events;
          totals.problems += verdict.problems.length;
          totals.failed += verdict.failed;
          for (const [kind, n] of Object.entries(verdict.landed))
            landed[kind] = (landed[kind] ?? 0) + n;
          expect(verdict.problems).toEqual([]);
        } finally {
          await endRace(run);
        }
      },
    ),
    { numRuns: opts.numRuns, endOnFailure: true },
  );
  console.log(
    `races: ${totals.runs} runs, ${totals.actions} actions, ${totals.restarts} restarts, ` +
      `${totals.jobs} jobs (${totals.failed} failed), ${totals.grants} lock grants, ${totals.events} events; ` +
      `landed: ${['message', 'complete', 'cancel', 'retry', 'delete'].map((k) => `${landed[k] ?? 0} ${k}`).join(', ')}; ` +
      `${totals.problems} ` +
      'problems (overlapping lock holders, unreleased locks, unfinished jobs, seq gaps or duplicates ' +
      'on the store or the feed, interleavings, missing or doubled answers, unexpected errors)',
  );
}
