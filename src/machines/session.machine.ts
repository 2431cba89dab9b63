import { assign, setup } from 'xstate';

/** Who may hold a session's lock: a live user turn or a job follow-up. */
export type HolderKind = 'live' | 'followUp';

export interface LockHolder {
  kind: HolderKind;
  id: string;
  /** Epoch ms when the lock was granted. */
  since: number;
}

export interface LockWaiter {
  kind: HolderKind;
  id: string;
  /** Epoch ms when the request was queued. */
  at: number;
}

/** Why a holder let go; every path out of holding the lock is one of these. */
export type ReleaseReason = 'done' | 'error' | 'aborted' | 'timeout';

export interface SessionContext {
  sessionId: string;
  holder: LockHolder | null;
  queue: LockWaiter[];
  /** A holder that keeps the lock longer than this loses it to the next waiter. */
  leaseMs: number;
}

export interface SessionInput {
  sessionId: string;
  leaseMs: number;
}

export type SessionEvent =
  | { type: 'ACQUIRE'; kind: HolderKind; id: string }
  | { type: 'RELEASE'; id: string; reason: ReleaseReason }
  | { type: 'DELETE' };

/** The lock as SPEC §3 reports it. */
export interface LockView {
  lock: 'idle' | 'busy';
  holder: { kind: HolderKind; id: string; since: string } | null;
  queue: { kind: HolderKind; id: string }[];
}

export interface SessionMachineDeps {
  now: () => number;
}

const defaultDeps: SessionMachineDeps = { now: () => Date.now() };

/** setTimeout fires at once for delays past 2^31-1 ms; a longer lease means "never". */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Inserts a waiter: live turns go before waiting follow-ups (a person is
 * waiting on them), and each kind keeps its own arrival order.
 */
export function enqueue(queue: readonly LockWaiter[], waiter: LockWaiter): LockWaiter[] {
  if (waiter.kind === 'followUp') return [...queue, waiter];
  const firstFollowUp = queue.findIndex((w) => w.kind === 'followUp');
  if (firstFollowUp === -1) return [...queue, waiter];
  return [...queue.slice(0, firstFollowUp), waiter, ...queue.slice(firstFollowUp)];
}

/** Reports a session's lock the way the API shows it. */
export function lockView(context: SessionContext, deleted = false): LockView {
  return {
    lock: context.holder && !deleted ? 'busy' : 'idle',
    holder:
      context.holder && !deleted
        ? {
            kind: context.holder.kind,
            id: context.holder.id,
            since: new Date(context.holder.since).toISOString(),
          }
        : null,
    queue: deleted ? [] : context.queue.map(({ kind, id }) => ({ kind, id })),
  };
}

/**
 * The session machine of SPEC §3: a mutex with one holder at a time and a
 * queue. Grants, revocations and "the session is gone" are named actions that
 * the runtime supplies with `.provide()`; the machine itself does no I/O.
 *
 * @param deps - the clock that stamps grants and queue entries
 */
export function createSessionMachine(deps: SessionMachineDeps = defaultDeps) {
  return setup({
    types: {
      context: {} as SessionContext,
      events: {} as SessionEvent,
      input: {} as SessionInput,
    },
    actions: {
      lockGranted: (_, _params: { holder: LockHolder }) => {},
      lockRevoked: (_, _params: { holder: LockHolder; reason: ReleaseReason }) => {},
      sessionGone: (_, _params: { ids: string[] }) => {},
      grantNext: assign(({ context }) => {
        const [next, ...rest] = context.queue;
        return {
          holder: next ? { kind: next.kind, id: next.id, since: deps.now() } : null,
          queue: rest,
        };
      }),
    },
    delays: {
      lease: ({ context }) => Math.min(Math.max(0, context.leaseMs), MAX_TIMER_MS),
    },
    guards: {
      isHolder: ({ context, event }) => event.type === 'RELEASE' && context.holder?.id === event.id,
      isLastHolder: ({ context, event }) =>
        event.type === 'RELEASE' && context.holder?.id === event.id && context.queue.length === 0,
      isWaiter: ({ context, event }) =>
        event.type === 'RELEASE' && context.queue.some((w) => w.id === event.id),
      isNew: ({ context, event }) =>
        event.type === 'ACQUIRE' &&
        context.holder?.id !== event.id &&
        !context.queue.some((w) => w.id === event.id),
      queueEmpty: ({ context }) => context.queue.length === 0,
    },
  }).createMachine({
    id: 'session',
    context: ({ input }) => ({
      sessionId: input.sessionId,
      holder: null,
      queue: [],
      leaseMs: input.leaseMs,
    }),
    initial: 'idle',
    states: {
      idle: {
        on: {
          ACQUIRE: {
            target: 'busy',
            actions: assign(({ event }) => ({
              holder: { kind: event.kind, id: event.id, since: deps.now() },
            })),
          },
        },
      },
      busy: {
        // Entered once per holder (hand-overs re-enter), so each holder gets its own lease.
        entry: {
          type: 'lockGranted',
          params: ({ context }) => ({ holder: context.holder as LockHolder }),
        },
        after: {
          lease: [
            {
              guard: 'queueEmpty',
              target: 'idle',
              actions: [
                {
                  type: 'lockRevoked',
                  params: ({ context }) => ({
                    holder: context.holder as LockHolder,
                    reason: 'timeout' as const,
                  }),
                },
                assign({ holder: null }),
              ],
            },
            {
              target: 'busy',
              reenter: true,
              actions: [
                {
                  type: 'lockRevoked',
                  params: ({ context }) => ({
                    holder: context.holder as LockHolder,
                    reason: 'timeout' as const,
                  }),
                },
                'grantNext',
              ],
            },
          ],
        },
        on: {
          ACQUIRE: {
            guard: 'isNew',
            actions: assign(({ context, event }) => ({
              queue: enqueue(context.queue, { kind: event.kind, id: event.id, at: deps.now() }),
            })),
          },
          RELEASE: [
            // Checked first so that "holder leaves, nobody waits" ends in idle.
            { guard: 'isLastHolder', target: 'idle', actions: assign({ holder: null }) },
            { guard: 'isHolder', target: 'busy', reenter: true, actions: 'grantNext' },
            {
              // A waiter that gives up (aborted request, cancelled job) leaves the queue.
              guard: 'isWaiter',
              actions: assign(({ context, event }) => ({
                queue: context.queue.filter((w) => event.type !== 'RELEASE' || w.id !== event.id),
              })),
            },
          ],
        },
      },
      deleted: {
        type: 'final',
        entry: [
          {
            type: 'sessionGone',
            params: ({ context }) => ({
              ids: [
                ...(context.holder ? [context.holder.id] : []),
                ...context.queue.map((w) => w.id),
              ],
            }),
          },
        ],
      },
    },
    on: {
      DELETE: { target: '.deleted' },
    },
  });
}

/** The session machine with the real clock, for tools and the runtime. */
export const sessionMachine = createSessionMachine();
export type SessionMachine = ReturnType<typeof createSessionMachine>;
