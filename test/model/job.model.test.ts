import { afterAll, describe, expect, it } from 'vitest';
import { getInitialSnapshot, transition } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { createJobMachine } from '../../src/machines/job.machine.js';
import type { FollowUpOutput, JobInput } from '../../src/machines/job.machine.js';
import { CoverageRecorder } from './coverage.js';
import { coveringPaths } from './paths.js';
import { jobDeps, jobModelLogic, startJob, topState } from './job.driver.js';
import type { JobEffect, JobModelEvent, JobSnapshot } from './job.driver.js';

const followUp: FollowUpOutput = {
  messageId: 'm_1',
  jobIds: ['j_1'],
  content: 'The install finished.',
  metadata: { bgJobId: 'j_1' },
};

const samples: Partial<Record<string, readonly JobModelEvent[]>> = {
  START: [{ type: 'START' }],
  FINISHED: [
    { type: 'FINISHED', outcome: 'timedOut', exitCode: null, at: 500 },
    { type: 'FINISHED', outcome: 'cancelled', exitCode: 143, at: 500 },
  ],
  CANCEL: [{ type: 'CANCEL' }],
  SESSION_DELETED: [{ type: 'SESSION_DELETED' }],
  LOCK_GRANTED: [{ type: 'LOCK_GRANTED' }],
  COALESCED: [{ type: 'COALESCED', leaderId: 'j_0', followUp }],
  RETRY_DUE: [{ type: 'RETRY_DUE' }],
  RETRY: [{ type: 'RETRY' }],
  INTERRUPTED: [{ type: 'INTERRUPTED', reason: 'service restarted' }],
  HEARTBEAT: [{ type: 'HEARTBEAT', at: 700 }],
  'xstate.done.actor.followUp': [{ type: 'xstate.done.actor.followUp', output: followUp }],
  'xstate.error.actor.followUp': [
    { type: 'xstate.error.actor.followUp', error: { code: 'rate_limited', message: '429' } },
  ],
};

const input = (held: boolean): JobInput => ({
  jobId: 'j_1',
  sessionId: 's_1',
  maxAttempts: 2,
  retryBaseMs: 100,
  retryMaxMs: 1_000,
  held,
});

/** Attempts tell the retry loop's rounds apart; a re-driven job is a second lap of the graph. */
const serialize = (snapshot: JobSnapshot): string =>
  JSON.stringify([snapshot.value, snapshot.context.attempts, snapshot.context.redrives > 0]);

/** What the runtime must see for a step, in order: exit actions, transition actions, entry actions. */
function expectedEffects(
  prev: JobSnapshot | undefined,
  event: JobModelEvent,
  next: JobSnapshot,
): JobEffect[] {
  const from = prev ? topState(prev) : undefined;
  const to = topState(next);
  const left = (state: string) => from === state && to !== state;
  const entered = (state: string) => to === state && from !== state;
  const effects: JobEffect[] = [];
  if (left('running')) effects.push('clearDeadline');
  if (left('continuing')) effects.push('releaseLock');
  if (left('retrying')) effects.push('clearRetry');
  if (from === 'running' && (event.type === 'CANCEL' || event.type === 'SESSION_DELETED')) {
    effects.push('killProcess');
  }
  if (left('awaitingIdleSession') && to !== 'continuing') effects.push('withdrawLock');
  if (from === 'running' && event.type === 'HEARTBEAT') effects.push('armDeadline');
  if (entered('running')) effects.push('armDeadline');
  if (next.matches({ running: 'active' }) && !prev?.matches({ running: 'active' })) {
    effects.push('startProcess');
  }
  if (entered('awaitingIdleSession')) effects.push('requestLock');
  if (entered('retrying')) effects.push('scheduleRetry');
  return effects;
}

async function walk(
  path: StatePath<JobSnapshot, JobModelEvent>,
  held: boolean,
  recorder: CoverageRecorder,
) {
  const [first, ...rest] = path.steps;
  if (!first) throw new Error('empty path');
  const logic = jobModelLogic();
  const job = startJob(input(held), { inspect: recorder.inspect });
  recorder.visit(job.actor.getSnapshot());
  let prev: JobSnapshot | undefined;
  // The graph's vertices forget details (which error came last), so the exact
  // expected snapshot is the pure machine replaying the path's events.
  let expected = getInitialSnapshot(logic, input(held));
  const check = (event: JobModelEvent, where: string) => {
    const real = job.actor.getSnapshot();
    expect(real.value, where).toEqual(expected.value);
    expect(real.status, where).toBe(expected.status);
    expect(real.context, where).toEqual(expected.context);
    expect(job.takeEffects(), where).toEqual(expectedEffects(prev, event, expected));
  };
  check(first.event, 'start');
  for (const [i, step] of rest.entries()) {
    const where = `${path.steps.map((s) => s.event.type).join(' → ')} (step ${i + 1})`;
    const calls = job.calls.length;
    prev = expected;
    [expected] = transition(logic, expected, step.event);
    expect(serialize(expected), where).toBe(serialize(step.state));
    await job.apply(step.event);
    check(step.event, where);
    const from = topState(prev);
    const to = topState(expected);
    if (to === 'continuing' && from !== 'continuing') {
      expect(job.calls.length, where).toBe(calls + 1);
      expect(job.calls.at(-1)?.input, where).toEqual({
        jobId: 'j_1',
        sessionId: 's_1',
        attempt: expected.context.attempts,
      });
    } else {
      expect(job.calls.length, where).toBe(calls);
    }
    if (from === 'continuing' && to !== 'continuing') {
      // Abandoned follow-ups are aborted; one that settled by itself has nothing to abort.
      const abandoned = !step.event.type.startsWith('xstate.');
      expect(job.calls.at(-1)?.signal.aborted, where).toBe(abandoned);
    }
  }
  job.actor.stop();
}

describe('job machine (model-based)', () => {
  const recorder = new CoverageRecorder(createJobMachine(jobDeps));
  afterAll(() => console.log(recorder.report('job').line));

  for (const held of [true, false]) {
    it(`follows every path from a ${held ? 'held' : 'started'} job on a real actor`, async () => {
      const { paths, added } = coveringPaths({
        logic: jobModelLogic(),
        input: input(held),
        samples,
        serialize,
        base: 'simple',
      });
      // The retry loop and the re-drive close cycles that simple paths cannot take.
      expect(added).toBeGreaterThan(0);
      for (const path of paths) await walk(path, held, recorder);
    });
  }

  it('reaches every state and takes every transition of the definition', () => {
    const report = recorder.report('job');
    expect(report.missingStates).toEqual([]);
    expect(report.missingTransitions).toEqual([]);
  });
});
