import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type {
  FollowUpOutput,
  JobEvent,
  JobInput,
  JobOutcome,
} from '../../src/machines/job.machine.js';
import { startJob, topState } from './job.driver.js';
import type { JobDriver } from './job.driver.js';

/** A job event, or the running follow-up settling (a no-op when none runs). */
type Move = JobEvent | { type: 'settle'; ok: boolean };

const followUp: FollowUpOutput = {
  messageId: 'm_1',
  jobIds: ['j_1'],
  content: 'done',
  metadata: {},
};
const outcome = fc.constantFrom<JobOutcome>('succeeded', 'failed', 'timedOut', 'lost', 'cancelled');

const move: fc.Arbitrary<Move> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom<Move>(
      { type: 'START' },
      { type: 'LOCK_GRANTED' },
      { type: 'RETRY_DUE' },
      { type: 'RETRY' },
      { type: 'INTERRUPTED', reason: 'restart' },
      { type: 'COALESCED', leaderId: 'j_0', followUp },
      { type: 'settle', ok: true },
      { type: 'settle', ok: false },
      { type: 'settle', ok: false },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('FINISHED' as const),
      outcome,
      exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: null }),
      at: fc.nat(),
    }),
  },
  // Rare, so that most sequences get deep into the retry loop first.
  { weight: 1, arbitrary: fc.constantFrom<Move>({ type: 'CANCEL' }, { type: 'SESSION_DELETED' }) },
);

const jobInput = fc.record({
  jobId: fc.constant('j_1'),
  sessionId: fc.constant('s_1'),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  retryBaseMs: fc.constant(100),
  retryMaxMs: fc.constant(1_000),
  held: fc.boolean(),
}) satisfies fc.Arbitrary<JobInput>;

async function play(job: JobDriver, next: Move): Promise<void> {
  if (next.type !== 'settle') return job.apply(next);
  const call = job.calls.at(-1);
  if (!call || call.settled || topState(job.actor.getSnapshot()) !== 'continuing') return;
  await job.apply(
    next.ok
      ? { type: 'xstate.done.actor.followUp', output: followUp }
      : { type: 'xstate.error.actor.followUp', error: { code: 'agent_error', message: 'boom' } },
  );
}

const ENDS = ['followedUp', 'failed', 'cancelled', 'skipped'] as const;
const isEnd = (top: string) => ENDS.some((end) => end === top);

describe('job machine (properties)', () => {
  it('never counts more attempts than maxAttempts, whatever arrives in whatever order', async () => {
    await fc.assert(
      fc.asyncProperty(jobInput, fc.array(move, { maxLength: 40 }), async (input, moves) => {
        const job = startJob(input);
        for (const next of moves) {
          await play(job, next);
          const { attempts, maxAttempts } = job.actor.getSnapshot().context;
          expect(attempts).toBeLessThanOrEqual(maxAttempts);
          expect(
            job.calls.filter((call) => !call.settled && !call.signal.aborted).length,
          ).toBeLessThanOrEqual(1);
        }
        job.actor.stop();
      }),
      { numRuns: 150 },
    );
  });

  it('ends in exactly one of followedUp, failed, cancelled or skipped when locks are granted and retries fired', async () => {
    await fc.assert(
      fc.asyncProperty(
        jobInput,
        fc.array(move, { maxLength: 15 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }),
        outcome,
        async (input, prefix, results, finished) => {
          const job = startJob(input);
          for (const next of prefix) await play(job, next);
          const state = () => job.actor.getSnapshot();
          // A cooperative runtime: starts, finishes, grants every lock, fires every retry.
          for (let i = 0; i < 100 && !isEnd(topState(state())); i++) {
            const top = topState(state());
            if (state().matches({ running: 'queued' })) await play(job, { type: 'START' });
            else if (top === 'running') {
              await play(job, { type: 'FINISHED', outcome: finished, exitCode: 0, at: 1 });
            } else if (top === 'awaitingIdleSession') await play(job, { type: 'LOCK_GRANTED' });
            else if (top === 'retrying') await play(job, { type: 'RETRY_DUE' });
            else await play(job, { type: 'settle', ok: results[i % results.length] ?? true });
          }
          const end = topState(state());
          expect(ENDS.filter((name) => state().matches(name))).toEqual([end]);
          // An end stays an end for the runtime's own events.
          await play(job, { type: 'LOCK_GRANTED' });
          await play(job, { type: 'RETRY_DUE' });
          expect(topState(state())).toBe(end);
          if (end === 'followedUp') expect(state().context.followUp).toEqual(followUp);
          if (end === 'failed') expect(state().context.attempts).toBe(state().context.maxAttempts);
          job.actor.stop();
        },
      ),
      { numRuns: 150 },
    );
  });
});
