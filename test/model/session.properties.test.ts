import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { HolderKind, ReleaseReason } from '../../src/machines/session.machine.js';
import { startSession } from './session.driver.js';
import type { SessionEffect, SessionSnapshot } from './session.driver.js';

const LEASE_MS = 1_000;
const IDS = ['a', 'b', 'c', 'd'] as const;

type Command =
  | { type: 'acquire'; kind: HolderKind; id: string }
  | { type: 'release'; id: string; reason: ReleaseReason }
  | { type: 'advance'; ms: number }
  | { type: 'delete' };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      type: fc.constant('acquire' as const),
      kind: fc.constantFrom<HolderKind>('live', 'followUp'),
      id: fc.constantFrom(...IDS),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('release' as const),
      id: fc.constantFrom(...IDS),
      reason: fc.constantFrom<ReleaseReason>('done', 'error', 'aborted', 'timeout'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: LEASE_MS * 1.5 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'delete' as const }) },
);

const scenario = fc.array(command, { maxLength: 40 });
const runs = { numRuns: 300 };

interface Step {
  command: Command;
  before: SessionSnapshot;
  after: SessionSnapshot;
  effects: SessionEffect[];
  now: number;
}

/**
 * Plays the commands on a real session actor, then drains it: every holder
 * left releases until nobody holds the lock. A deleted session takes no more
 * requests (the runtime answers those itself), but its clock keeps running.
 */
function play(commands: readonly Command[]): Step[] {
  const session = startSession({ leaseMs: LEASE_MS });
  const steps: Step[] = [];
  const run = (next: Command) => {
    const before = session.actor.getSnapshot();
    if (next.type === 'advance') session.clock.increment(next.ms);
    else if (before.status === 'active') {
      if (next.type === 'acquire') session.apply({ type: 'ACQUIRE', kind: next.kind, id: next.id });
      if (next.type === 'release') {
        session.apply({ type: 'RELEASE', id: next.id, reason: next.reason });
      }
      if (next.type === 'delete') session.apply({ type: 'DELETE' });
    }
    const after = session.actor.getSnapshot();
    steps.push({
      command: next,
      before,
      after,
      effects: session.takeEffects(),
      now: session.clock.now(),
    });
  };
  commands.forEach(run);
  for (;;) {
    const { status, context } = session.actor.getSnapshot();
    if (status !== 'active' || !context.holder) break;
    run({ type: 'release', id: context.holder.id, reason: 'done' });
  }
  session.actor.stop();
  return steps;
}

const granted = (step: Step) =>
  step.effects.flatMap((effect) => (effect.type === 'lockGranted' ? [effect.holder] : []));

describe('session mutex (properties)', () => {
  it('never has two holders: each grant waits for the last holder to release, be revoked or be deleted', () => {
    fc.assert(
      fc.property(scenario, (commands) => {
        let holding: string | null = null;
        for (const step of play(commands)) {
          const { holder, queue } = step.after.context;
          const ids = [...(holder ? [holder.id] : []), ...queue.map((waiter) => waiter.id)];
          expect(new Set(ids).size).toBe(ids.length);
          if (step.command.type === 'release' && step.command.id === holding) holding = null;
          for (const effect of step.effects) {
            if (effect.type === 'lockGranted') {
              expect(holding).toBeNull();
              holding = effect.holder.id;
            } else if (effect.type === 'lockRevoked') {
              expect(effect.holder.id).toBe(holding);
              holding = null;
            } else {
              holding = null;
            }
          }
          if (step.after.status === 'active') expect(holder?.id ?? null).toBe(holding);
        }
      }),
      runs,
    );
  });

  it('answers every waiter with a grant or "the session is gone", unless it withdrew', () => {
    fc.assert(
      fc.property(scenario, (commands) => {
        const waiting = new Set<string>();
        for (const { command: c, before, effects } of play(commands)) {
          const id = c.type === 'acquire' || c.type === 'release' ? c.id : null;
          const holds = before.context.holder?.id === id;
          const queued = before.context.queue.some((waiter) => waiter.id === id);
          if (before.status === 'active' && c.type === 'acquire' && !holds && !queued) {
            waiting.add(c.id);
          }
          // A waiter that gives up leaves the queue: that is its answer.
          if (before.status === 'active' && c.type === 'release' && queued) waiting.delete(c.id);
          for (const effect of effects) {
            if (effect.type === 'lockGranted') waiting.delete(effect.holder.id);
            if (effect.type === 'sessionGone') effect.ids.forEach((id) => waiting.delete(id));
          }
        }
        expect([...waiting]).toEqual([]);
      }),
      runs,
    );
  });

  it('grants a waiting live turn before any waiting follow-up, each kind in arrival order', () => {
    fc.assert(
      fc.property(scenario, (commands) => {
        const arrival = new Map<string, number>();
        for (const [n, step] of play(commands).entries()) {
          const c = step.command;
          const queued = (id: string) => step.after.context.queue.some((w) => w.id === id);
          if (c.type === 'acquire' && !arrival.has(c.id) && queued(c.id)) arrival.set(c.id, n);
          const waiters = step.before.context.queue;
          for (const holder of granted(step)) {
            if (waiters.length === 0) continue;
            const lives = waiters.filter((w) => w.kind === 'live');
            const pool = lives.length > 0 ? lives : waiters;
            const first = pool.reduce((a, b) =>
              (arrival.get(a.id) ?? Infinity) <= (arrival.get(b.id) ?? Infinity) ? a : b,
            );
            expect(holder).toMatchObject({ id: first.id, kind: first.kind, since: step.now });
          }
          for (const waiter of waiters) if (!queued(waiter.id)) arrival.delete(waiter.id);
        }
      }),
      runs,
    );
  });

  it('revokes a holder only when its lease has run out', () => {
    fc.assert(
      fc.property(scenario, (commands) => {
        for (const step of play(commands)) {
          for (const effect of step.effects) {
            if (effect.type !== 'lockRevoked') continue;
            expect(step.command.type).toBe('advance');
            expect(effect).toEqual({
              type: 'lockRevoked',
              holder: step.before.context.holder,
              reason: 'timeout',
            });
            expect(step.now - effect.holder.since).toBeGreaterThanOrEqual(LEASE_MS);
          }
        }
      }),
      runs,
    );
  });

  it('tells every holder and waiter that the session is gone, then grants nothing', () => {
    fc.assert(
      fc.property(scenario, (commands) => {
        let deleted = false;
        for (const step of play(commands)) {
          if (deleted) {
            expect(step.effects).toEqual([]);
            expect(step.after.status).toBe('done');
            continue;
          }
          if (step.command.type !== 'delete') continue;
          const { holder, queue } = step.before.context;
          const everyone = [...(holder ? [holder.id] : []), ...queue.map((w) => w.id)];
          expect(step.effects).toEqual([{ type: 'sessionGone', ids: everyone }]);
          expect(step.after.status).toBe('done');
          deleted = true;
        }
      }),
      runs,
    );
  });
});
