import { assign, fromPromise, setup } from 'xstate';
import { retryDelayMs } from './retry-delay.js';

/** How a job's process (or external job) ended. */
export type JobOutcome = 'succeeded' | 'failed' | 'timedOut' | 'lost' | 'cancelled';

/** The nine top-level states of SPEC §2, in lifecycle order. */
export const JOB_STATES = [
  'running',
  'completed',
  'awaitingIdleSession',
  'continuing',
  'retrying',
  'followedUp',
  'failed',
  'cancelled',
  'skipped',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States after which nothing more happens on its own (`failed` can still be re-driven). */
export const FINAL_STATES: readonly JobState[] = ['followedUp', 'failed', 'cancelled', 'skipped'];

/** What a successful follow-up stored: the runtime commits it with the state change. */
export interface FollowUpOutput {
  messageId: string;
  /** Every job this one continuation answers (more than one when coalesced). */
  jobIds: string[];
  content: string;
  metadata: Record<string, unknown>;
}

export interface AttemptError {
  code: string;
  message: string;
}

export interface JobContext {
  jobId: string;
  sessionId: string;
  /** Follow-up attempts started so far (since the last operator re-drive). */
  attempts: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Held back by a limit on running jobs. */
  held: boolean;
  outcome: JobOutcome | null;
  exitCode: number | null;
  /** Epoch ms when the job finished. */
  finishedAt: number | null;
  lastError: AttemptError | null;
  /**
   * Epoch ms of the next attempt while `retrying`. Absolute, so an actor
   * rebuilt after a restart resumes its backoff instead of starting it over.
   */
  nextRetryAt: number | null;
  followUp: FollowUpOutput | null;
  /** The job whose follow-up answered this one, when coalesced. */
  coalescedInto: string | null;
  /** Times an operator re-drove the job out of `failed`. */
  redrives: number;
  /** An external job must show a sign of life this often (seconds), or it ends `lost`. */
  heartbeatS: number | null;
  /** Epoch ms of the last sign of life of an external job: its start or its last heartbeat. */
  heartbeatAt: number | null;
  /** Epoch ms by which an external job must be completed, or it ends `timedOut`. */
  timeoutAt: number | null;
}

/** When a running external job ends by itself if nothing arrives first, and how. */
export function deadlineOf(
  context: JobContext,
): { at: number; outcome: 'lost' | 'timedOut' } | null {
  // Snapshots stored before these fields existed lack them: no deadline.
  const heartbeatS = context.heartbeatS ?? null;
  const heartbeatAt = context.heartbeatAt ?? null;
  const timeoutAt = context.timeoutAt ?? null;
  const silent =
    heartbeatS !== null && heartbeatAt !== null ? heartbeatAt + heartbeatS * 1000 : null;
  if (silent !== null && (timeoutAt === null || silent < timeoutAt)) {
    return { at: silent, outcome: 'lost' };
  }
  return timeoutAt === null ? null : { at: timeoutAt, outcome: 'timedOut' };
}

export interface JobInput {
  jobId: string;
  sessionId: string;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Start in `running.queued` because a running-jobs limit is reached. */
  held?: boolean;
  /** An external job's heartbeat interval in seconds (see {@link JobContext.heartbeatS}). */
  heartbeatS?: number | null;
  /** An external job's completion deadline, epoch ms. */
  timeoutAt?: number | null;
}

export type JobEvent =
  | { type: 'START' }
  | { type: 'FINISHED'; outcome: JobOutcome; exitCode: number | null; at: number }
  | { type: 'CANCEL' }
  | { type: 'SESSION_DELETED' }
  | { type: 'LOCK_GRANTED' }
  | { type: 'COALESCED'; leaderId: string; followUp: FollowUpOutput }
  | { type: 'RETRY_DUE' }
  | { type: 'RETRY' }
  | { type: 'INTERRUPTED'; reason: string }
  | { type: 'HEARTBEAT'; at: number };

/** What the follow-up actor is given: the runtime builds the agent run from it. */
export interface FollowUpInput {
  jobId: string;
  sessionId: string;
  attempt: number;
}

/**
 * The context of a job that a follow-up answered: by its own follow-up
 * (`leaderId` null), or by another job's follow-up that answered it too. The
 * machine's own transitions use it, and so does the runtime when it stores the
 * answer before the actor moves, so the two cannot drift apart.
 */
export function answeredContext(
  context: JobContext,
  followUp: FollowUpOutput,
  leaderId: string | null,
): JobContext {
  return leaderId === null
    ? { ...context, followUp, lastError: null }
    : { ...context, followUp, coalescedInto: leaderId };
}

/** Injected sources of time and chance, so the machine stays deterministic under test. */
export interface JobMachineDeps {
  now: () => number;
  random: () => number;
}

const defaultDeps: JobMachineDeps = { now: () => Date.now(), random: () => Math.random() };

/**
 * Reads a failed attempt's reason from whatever the follow-up actor threw.
 * Agent errors carry a stable `code` and may carry the server's `retryAfterMs`.
 */
export function toAttemptError(error: unknown): AttemptError & { retryAfterMs: number } {
  if (typeof error === 'object' && error !== null) {
    const record = error as Record<string, unknown>;
    const code = typeof record['code'] === 'string' ? record['code'] : 'follow_up_error';
    const message = typeof record['message'] === 'string' ? record['message'] : String(error);
    const retryAfter = record['retryAfterMs'];
    const retryAfterMs = typeof retryAfter === 'number' && retryAfter > 0 ? retryAfter : 0;
    return { code, message, retryAfterMs };
  }
  return { code: 'follow_up_error', message: String(error), retryAfterMs: 0 };
}

/**
 * The job machine of SPEC §2. Pure: every effect is a named action or the
 * `followUp` actor, which the runtime supplies with `.provide()`.
 *
 * @param deps - clock and random source used for the retry schedule
 */
export function createJobMachine(deps: JobMachineDeps = defaultDeps) {
  return setup({
    types: {
      context: {} as JobContext,
      events: {} as JobEvent,
      input: {} as JobInput,
    },
    actors: {
      // Replaced by the runtime; the default makes a missing provide() loud.
      followUp: fromPromise<FollowUpOutput, FollowUpInput>(async () => {
        throw new Error('followUp actor was not provided');
      }),
    },
    actions: {
      startProcess: () => {},
      killProcess: () => {},
      requestLock: () => {},
      withdrawLock: () => {},
      releaseLock: () => {},
      scheduleRetry: () => {},
      clearRetry: () => {},
      armDeadline: () => {},
      clearDeadline: () => {},
    },
    guards: {
      attemptsRemain: ({ context }) => context.attempts < context.maxAttempts,
      notHeld: ({ context }) => !context.held,
      cancelledOutcome: ({ event }) => event.type === 'FINISHED' && event.outcome === 'cancelled',
    },
  }).createMachine({
    id: 'job',
    context: ({ input }) => ({
      jobId: input.jobId,
      sessionId: input.sessionId,
      attempts: 0,
      maxAttempts: Math.max(1, input.maxAttempts),
      retryBaseMs: input.retryBaseMs,
      retryMaxMs: input.retryMaxMs,
      held: input.held ?? false,
      outcome: null,
      exitCode: null,
      finishedAt: null,
      lastError: null,
      nextRetryAt: null,
      followUp: null,
      coalescedInto: null,
      redrives: 0,
      heartbeatS: input.heartbeatS ?? null,
      heartbeatAt: input.heartbeatS ? deps.now() : null,
      timeoutAt: input.timeoutAt ?? null,
    }),
    initial: 'running',
    states: {
      running: {
        // An external job's deadline (heartbeat or timeout) is the runtime's timer.
        entry: 'armDeadline',
        exit: 'clearDeadline',
        initial: 'queued',
        states: {
          queued: {
            always: { guard: 'notHeld', target: 'active' },
            on: { START: { target: 'active', actions: assign({ held: false }) } },
          },
          active: { entry: 'startProcess' },
        },
        on: {
          FINISHED: [
            {
              guard: 'cancelledOutcome',
              target: 'cancelled',
              actions: assign(({ event }) => ({
                outcome: event.outcome,
                exitCode: event.exitCode,
                finishedAt: event.at,
              })),
            },
            {
              target: 'completed',
              actions: assign(({ event }) => ({
                outcome: event.outcome,
                exitCode: event.exitCode,
                finishedAt: event.at,
              })),
            },
          ],
          // Killed: it has ended, and `finishedAt` says when, as for any ended job.
          CANCEL: {
            target: 'cancelled',
            actions: [
              'killProcess',
              assign(() => ({ outcome: 'cancelled', finishedAt: deps.now() })),
            ],
          },
          SESSION_DELETED: {
            target: 'skipped',
            actions: ['killProcess', assign(() => ({ finishedAt: deps.now() }))],
          },
          HEARTBEAT: {
            actions: [assign(({ event }) => ({ heartbeatAt: event.at })), 'armDeadline'],
          },
        },
      },
      // The result is in context now; nothing to wait for.
      completed: { always: 'awaitingIdleSession' },
      awaitingIdleSession: {
        entry: 'requestLock',
        on: {
          LOCK_GRANTED: {
            target: 'continuing',
            actions: assign(({ context }) => ({ attempts: context.attempts + 1 })),
          },
          COALESCED: {
            target: 'followedUp',
            actions: [
              'withdrawLock',
              assign(({ context, event }) =>
                answeredContext(context, event.followUp, event.leaderId),
              ),
            ],
          },
          CANCEL: { target: 'cancelled', actions: 'withdrawLock' },
          SESSION_DELETED: { target: 'skipped', actions: 'withdrawLock' },
        },
      },
      continuing: {
        exit: 'releaseLock',
        invoke: {
          id: 'followUp',
          src: 'followUp',
          input: ({ context }) => ({
            jobId: context.jobId,
            sessionId: context.sessionId,
            attempt: context.attempts,
          }),
          onDone: {
            target: 'followedUp',
            actions: assign(({ context, event }) => answeredContext(context, event.output, null)),
          },
          onError: [
            {
              guard: 'attemptsRemain',
              target: 'retrying',
              actions: assign(({ context, event }) => applyFailure(context, event.error, deps)),
            },
            {
              target: 'failed',
              actions: assign(({ context, event }) => applyFailure(context, event.error, deps)),
            },
          ],
        },
        on: {
          INTERRUPTED: [
            {
              guard: 'attemptsRemain',
              target: 'retrying',
              actions: assign(({ context, event }) =>
                applyFailure(context, { code: 'interrupted', message: event.reason }, deps),
              ),
            },
            {
              target: 'failed',
              actions: assign(({ context, event }) =>
                applyFailure(context, { code: 'interrupted', message: event.reason }, deps),
              ),
            },
          ],
          CANCEL: 'cancelled',
          SESSION_DELETED: 'skipped',
        },
      },
      retrying: {
        entry: 'scheduleRetry',
        exit: 'clearRetry',
        on: {
          RETRY_DUE: 'awaitingIdleSession',
          CANCEL: 'cancelled',
          SESSION_DELETED: 'skipped',
        },
      },
      followedUp: { type: 'final' },
      // Not an XState final state: an operator may re-drive it (SPEC §5 retry).
      failed: {
        on: {
          RETRY: {
            target: 'awaitingIdleSession',
            actions: assign(({ context }) => ({
              attempts: 0,
              nextRetryAt: null,
              redrives: context.redrives + 1,
            })),
          },
        },
      },
      cancelled: { type: 'final' },
      skipped: { type: 'final' },
    },
  });
}

/** Context changes for a failed attempt: record why, and when to try again. */
function applyFailure(
  context: JobContext,
  error: unknown,
  deps: JobMachineDeps,
): Partial<JobContext> {
  const reason = toAttemptError(error);
  const remain = context.attempts < context.maxAttempts;
  const delay = retryDelayMs(
    context.attempts,
    context.retryBaseMs,
    context.retryMaxMs,
    deps.random(),
    reason.retryAfterMs,
  );
  return {
    lastError: { code: reason.code, message: reason.message },
    nextRetryAt: remain ? deps.now() + delay : null,
  };
}

/** The job machine with the real clock and random source, for tools and the runtime. */
export const jobMachine = createJobMachine();
export type JobMachine = ReturnType<typeof createJobMachine>;
