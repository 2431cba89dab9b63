import { fromPromise } from 'xstate';
import { createJobMachine, deadlineOf, type JobMachine } from '../machines/job.machine.js';
import type { ReleaseReason } from '../machines/session.machine.js';
import type { Clock } from './clock.js';
import { runFollowUp, SessionGoneError, type FollowUpDeps } from './follow-up.js';
import type { JobActor } from './job-actor.js';
import type { JobProcesses } from './job-processes.js';
import type { SessionLocks } from './session-locks.js';

export interface JobEffectsDeps {
  clock: Clock;
  random: () => number;
  locks: SessionLocks;
  processes: JobProcesses;
  followUp: FollowUpDeps;
  job(id: string): JobActor | undefined;
}

/**
 * The job machine's effects, supplied with `.provide()`. Each action only
 * queues its effect on the job; the effect runs once the transition that
 * asked for it is stored (see {@link JobActor}), except asking for and giving
 * back the session lock: the lock lives in memory, and what it leads to is
 * written after the transition in the session's write queue.
 */
export class JobEffects {
  private readonly retryTimers = new Map<string, unknown>();
  private readonly deadlineTimers = new Map<string, unknown>();
  readonly machine: JobMachine;

  constructor(private readonly deps: JobEffectsDeps) {
    const later = (jobId: string, effect: (job: JobActor) => void) => {
      const job = deps.job(jobId);
      job?.enqueue(() => effect(job));
    };
    const now = (jobId: string, effect: (job: JobActor) => void) => {
      const job = deps.job(jobId);
      job?.enqueueNow(() => effect(job));
    };
    this.machine = createJobMachine({ now: () => deps.clock.now(), random: deps.random }).provide({
      actions: {
        startProcess: ({ context }) => later(context.jobId, (j) => void deps.processes.start(j)),
        killProcess: ({ context }) => later(context.jobId, (j) => deps.processes.cancel(j)),
        requestLock: ({ context }) => now(context.jobId, (j) => this.requestLock(j)),
        withdrawLock: ({ context }) =>
          later(context.jobId, (j) => deps.locks.release(j.sessionId, j.id, 'aborted')),
        releaseLock: ({ context }) =>
          now(context.jobId, (j) => deps.locks.release(j.sessionId, j.id, 'done')),
        scheduleRetry: ({ context }) => later(context.jobId, (j) => this.scheduleRetry(j)),
        clearRetry: ({ context }) => later(context.jobId, (j) => this.clearRetry(j.id)),
        armDeadline: ({ context }) => later(context.jobId, (j) => this.armDeadline(j)),
        clearDeadline: ({ context }) => later(context.jobId, (j) => this.clearDeadline(j.id)),
      },
      actors: {
        followUp: fromPromise(async ({ input, signal }) => {
          const job = deps.job(input.jobId);
          if (!job) throw new Error(`job ${input.jobId} is not loaded`);
          try {
            return await runFollowUp(deps.followUp, job, signal);
          } catch (error) {
            if (error instanceof SessionGoneError) {
              queueMicrotask(() => job.send({ type: 'SESSION_DELETED' }));
            }
            throw error;
          }
        }),
      },
    });
  }

  /** Queues the job for its session's lock; what the lock says becomes a job event. */
  requestLock(job: JobActor): void {
    this.deps.locks.acquire(job.sessionId, 'followUp', job.id, {
      granted: () => {
        if (job.state === 'awaitingIdleSession' && !job.finalCommitted) {
          job.send({ type: 'LOCK_GRANTED' });
        } else {
          this.deps.locks.release(job.sessionId, job.id, 'aborted');
        }
      },
      revoked: (reason: ReleaseReason) =>
        job.send({ type: 'INTERRUPTED', reason: `the session lock was taken back (${reason})` }),
      gone: () => job.send({ type: 'SESSION_DELETED' }),
    });
  }

  /** Arms the retry at the absolute time in the job's context (at once if it has passed). */
  scheduleRetry(job: JobActor): void {
    const clock = this.deps.clock;
    const at = job.context.nextRetryAt ?? clock.now();
    this.clearRetry(job.id);
    const timer = clock.setTimeout(() => {
      this.retryTimers.delete(job.id);
      job.send({ type: 'RETRY_DUE' });
    }, at - clock.now());
    this.retryTimers.set(job.id, timer);
  }

  /**
   * Arms a running external job's deadline at the absolute time its context
   * gives (at once if it has passed): no heartbeat in time ends it `lost`, no
   * completion by its timeout ends it `timedOut`; either is followed up.
   */
  armDeadline(job: JobActor): void {
    this.clearDeadline(job.id);
    const deadline = deadlineOf(job.context);
    if (deadline === null) return;
    const clock = this.deps.clock;
    const timer = clock.setTimeout(() => {
      this.deadlineTimers.delete(job.id);
      if (job.state !== 'running') return;
      const { heartbeatS } = job.context;
      job.extras.output =
        deadline.outcome === 'lost'
          ? `no heartbeat for ${String(heartbeatS)} s: the job is taken for lost`
          : `not completed before its timeout of ${String(job.row.timeoutS)} s`;
      job.send({ type: 'FINISHED', outcome: deadline.outcome, exitCode: null, at: clock.now() });
    }, deadline.at - clock.now());
    this.deadlineTimers.set(job.id, timer);
  }

  clearDeadline(jobId: string): void {
    const timer = this.deadlineTimers.get(jobId);
    if (timer !== undefined) this.deps.clock.clearTimeout(timer);
    this.deadlineTimers.delete(jobId);
  }

  /**
   * After a restart, restarts what a stored state implies: re-adopt the
   * process (or re-arm an external job's deadline), ask for the lock again,
   * count a follow-up cut off mid-way as a failed attempt, re-arm the backoff
   * at its stored time.
   */
  async resume(job: JobActor): Promise<void> {
    switch (job.state) {
      case 'running':
        if (job.row.external) return this.armDeadline(job);
        return this.deps.processes.readopt(job);
      case 'awaitingIdleSession':
        return this.requestLock(job);
      case 'continuing':
        return job.send({
          type: 'INTERRUPTED',
          reason: 'the service restarted during the follow-up',
        });
      case 'retrying':
        return this.scheduleRetry(job);
      default:
        return;
    }
  }

  clearRetry(jobId: string): void {
    const timer = this.retryTimers.get(jobId);
    if (timer !== undefined) this.deps.clock.clearTimeout(timer);
    this.retryTimers.delete(jobId);
  }

  clearAll(): void {
    for (const jobId of [...this.retryTimers.keys()]) this.clearRetry(jobId);
    for (const jobId of [...this.deadlineTimers.keys()]) this.clearDeadline(jobId);
  }
}
