import { fromPromise } from 'xstate';
import { createJobMachine, type JobMachine } from '../machines/job.machine.js';
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
   * After a restart, restarts what a stored state implies: re-adopt the
   * process, ask for the lock again, count a follow-up cut off mid-way as a
   * failed attempt, re-arm the backoff at its stored time.
   */
  async resume(job: JobActor): Promise<void> {
    switch (job.state) {
      case 'running':
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
  }
}
