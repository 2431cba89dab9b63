import { SimulatedClock, createActor } from 'xstate';
import type { ActorLogic, InspectionEvent, SnapshotFrom } from 'xstate';
import { createSessionMachine } from '../../src/machines/session.machine.js';
import type {
  LockHolder,
  ReleaseReason,
  SessionEvent,
  SessionInput,
  SessionMachine,
} from '../../src/machines/session.machine.js';

/** A real session actor on a simulated clock, whose grants, revocations and goodbyes are recorded. */

export type SessionSnapshot = SnapshotFrom<SessionMachine>;
/** The event the `lease` delay of `busy` raises when it runs out. */
export type LeaseExpiry = { type: 'xstate.after.lease.session.busy' };
export type SessionModelEvent = SessionEvent | LeaseExpiry;

export type SessionEffect =
  | { type: 'lockGranted'; holder: LockHolder }
  | { type: 'lockRevoked'; holder: LockHolder; reason: ReleaseReason }
  | { type: 'sessionGone'; ids: string[] };

export const LEASE_MS = 60_000;

/** The session machine as logic over the model's events, for @xstate/graph. */
export function sessionModelLogic() {
  // The machine does take its delayed event; its declared event type just omits it.
  return createSessionMachine({ now: () => 0 }) as unknown as ActorLogic<
    SessionSnapshot,
    SessionModelEvent,
    SessionInput
  >;
}

export interface SessionDriver {
  actor: ReturnType<typeof createActor<SessionMachine>>;
  clock: SimulatedClock;
  /** Returns the effects recorded since the last call, and forgets them. */
  takeEffects(): SessionEffect[];
  /** Sends an event; a lease expiry is the clock moving on by exactly the lease. */
  apply(event: SessionModelEvent): void;
}

export function startSession(
  options: { leaseMs?: number; inspect?: (event: InspectionEvent) => void } = {},
): SessionDriver {
  const clock = new SimulatedClock();
  const leaseMs = options.leaseMs ?? LEASE_MS;
  let effects: SessionEffect[] = [];
  const machine = createSessionMachine({ now: () => clock.now() }).provide({
    actions: {
      lockGranted: (_, params) => {
        effects.push({ type: 'lockGranted', holder: params.holder });
      },
      lockRevoked: (_, params) => {
        effects.push({ type: 'lockRevoked', holder: params.holder, reason: params.reason });
      },
      sessionGone: (_, params) => {
        effects.push({ type: 'sessionGone', ids: params.ids });
      },
    },
  });
  const actor = createActor(machine, {
    input: { sessionId: 's_1', leaseMs },
    clock,
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();
  return {
    actor,
    clock,
    takeEffects() {
      const taken = effects;
      effects = [];
      return taken;
    },
    apply(event) {
      if (event.type === 'xstate.after.lease.session.busy') clock.increment(leaseMs);
      else actor.send(event);
    },
  };
}
