import { afterAll, describe, expect, it } from 'vitest';
import { getInitialSnapshot, transition } from 'xstate';
import type { ActorLogic } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { createSessionMachine } from '../../src/machines/session.machine.js';
import type { SessionInput } from '../../src/machines/session.machine.js';
import { CoverageRecorder } from './coverage.js';
import { coveringPaths } from './paths.js';
import { LEASE_MS, sessionModelLogic, startSession } from './session.driver.js';
import type { SessionEffect, SessionModelEvent, SessionSnapshot } from './session.driver.js';

/** One live turn and two follow-ups: enough for a queue where the live turn jumps ahead. */
const samples: Partial<Record<string, readonly SessionModelEvent[]>> = {
  ACQUIRE: [
    { type: 'ACQUIRE', kind: 'live', id: 'L' },
    { type: 'ACQUIRE', kind: 'followUp', id: 'F1' },
    { type: 'ACQUIRE', kind: 'followUp', id: 'F2' },
  ],
  RELEASE: [
    { type: 'RELEASE', id: 'L', reason: 'done' },
    { type: 'RELEASE', id: 'L', reason: 'timeout' },
    { type: 'RELEASE', id: 'F1', reason: 'error' },
    { type: 'RELEASE', id: 'F2', reason: 'aborted' },
  ],
  DELETE: [{ type: 'DELETE' }],
  'xstate.after.lease.session.busy': [{ type: 'xstate.after.lease.session.busy' }],
};

const input: SessionInput = { sessionId: 's_1', leaseMs: LEASE_MS };

const serialize = (snapshot: SessionSnapshot): string =>
  JSON.stringify([
    snapshot.value,
    snapshot.context.holder?.id ?? null,
    snapshot.context.queue.map((waiter) => waiter.id),
  ]);

/** In order: "the session is gone", or the old holder's revocation, then the new holder's grant. */
function expectedEffects(
  prev: SessionSnapshot | undefined,
  event: SessionModelEvent,
  next: SessionSnapshot,
): SessionEffect[] {
  const effects: SessionEffect[] = [];
  const before = prev?.context.holder ?? null;
  if (prev && event.type === 'DELETE') {
    const waiters = prev.context.queue.map((waiter) => waiter.id);
    effects.push({ type: 'sessionGone', ids: before ? [before.id, ...waiters] : waiters });
  }
  if (before && event.type === 'xstate.after.lease.session.busy') {
    effects.push({ type: 'lockRevoked', holder: before, reason: 'timeout' });
  }
  const after = next.context.holder;
  if (next.value === 'busy' && after && after.id !== before?.id) {
    effects.push({ type: 'lockGranted', holder: after });
  }
  return effects;
}

function walk(path: StatePath<SessionSnapshot, SessionModelEvent>, recorder: CoverageRecorder) {
  const [first, ...rest] = path.steps;
  if (!first) throw new Error('empty path');
  const session = startSession({ inspect: recorder.inspect });
  recorder.visit(session.actor.getSnapshot());
  // The exact expected snapshot: the pure machine on the same clock, replaying the path.
  const logic = createSessionMachine({ now: () => session.clock.now() }) as unknown as ActorLogic<
    SessionSnapshot,
    SessionModelEvent,
    SessionInput
  >;
  let prev: SessionSnapshot | undefined;
  let expected = getInitialSnapshot(logic, input);
  const check = (event: SessionModelEvent, where: string) => {
    const real = session.actor.getSnapshot();
    expect(real.value, where).toEqual(expected.value);
    expect(real.status, where).toBe(expected.status);
    expect(real.context, where).toEqual(expected.context);
    expect(session.takeEffects(), where).toEqual(expectedEffects(prev, event, expected));
  };
  check(first.event, 'start');
  for (const [i, step] of rest.entries()) {
    const where = `${path.steps.map((s) => s.event.type).join(' → ')} (step ${i + 1})`;
    if (step.event.type === 'xstate.after.lease.session.busy') {
      // Nothing happens a millisecond before the lease runs out.
      session.clock.increment(LEASE_MS - 1);
      expect(session.actor.getSnapshot().context, where).toEqual(expected.context);
      expect(session.takeEffects(), where).toEqual([]);
      session.clock.increment(1);
    } else {
      session.apply(step.event);
    }
    prev = expected;
    [expected] = transition(logic, expected, step.event);
    expect(serialize(expected), where).toBe(serialize(step.state));
    check(step.event, where);
  }
  session.actor.stop();
}

describe('session machine (model-based)', () => {
  const recorder = new CoverageRecorder(createSessionMachine());
  afterAll(() => console.log(recorder.report('session').line));

  it('takes every edge of the lock graph on a real actor', () => {
    const { paths, added } = coveringPaths({
      logic: sessionModelLogic(),
      input,
      samples,
      serialize,
      base: 'shortest',
    });
    // Hand-overs between holders and lease expiries revisit states: shortest paths miss them.
    expect(added).toBeGreaterThan(0);
    for (const path of paths) walk(path, recorder);
  });

  it('reaches every state and takes every transition of the definition', () => {
    const report = recorder.report('session');
    expect(report.missingStates).toEqual([]);
    expect(report.missingTransitions).toEqual([]);
  });
});
