import type { WorkDirs } from './sandbox/work-dirs.js';
import type { InspectionEvent } from 'xstate';
import type { JobState } from '../machines/job.machine.js';
import type { LockView } from '../machines/session.machine.js';
import { capResult } from './agents/trigger.js';
import { iso, type Clock } from './clock.js';
import { BatonError, notFound } from './errors.js';
import { failureNotice } from './failure-notice.js';
import type { Ids } from './ids.js';
import { JobActor, type JobActorHost, type PersistedJob } from './job-actor.js';
import { resolveJobCwd } from './job-cwd.js';
import type { JobEffects } from './job-effects.js';
import type { JobProcesses } from './job-processes.js';
import type { CompleteJobBody, StartJobBody } from './options.js';
import type { BatonPolicy, Logger } from './policy.js';
import type { SessionLocks } from './session-locks.js';
import { FINAL_JOB_STATES, type Batch, type JobRow, type Store } from './store/store.js';
import { jobView, type JobView } from './views.js';
import { describeWhy } from './why.js';

export interface JobRegistryDeps {
  store: Store;
  clock: Clock;
  ids: Ids;
  logger: Logger;
  policy: BatonPolicy;
  /** Each owner's work directory, which a job's `cwd` must not leave. */
  workDirs: WorkDirs;
  /** Runs a commit in the session's write queue. */
  commit(sessionId: string, build: () => Batch | null): Promise<void>;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  closing(): boolean;
}

/** The parts built after the registry, since they look jobs up in it. */
export interface JobRegistryParts {
  effects: JobEffects;
  processes: JobProcesses;
  locks: SessionLocks;
}

/**
 * The job actors that live in this process, and what changes them: start,
 * complete, cancel, retry, rebuild from the store. The caller has checked that
 * this process owns the job's session.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, JobActor>();
  /** The same jobs by session: a follow-up looks up its session's waiting jobs on a hot path. */
  private readonly bySession = new Map<string, Set<JobActor>>();
  private readonly reloading = new Set<string>();
  /**
   * Forwarded commands whose result rides in the next write of a job, by job
   * id: set around the event that makes that write, which the actor builds
   * at once, so that the command is done in the same transaction as its effect.
   */
  private readonly answering = new Map<string, number>();
  private parts: JobRegistryParts | null = null;
  private host: JobActorHost | null = null;

  constructor(private readonly deps: JobRegistryDeps) {}

  wire(parts: JobRegistryParts): void {
    this.parts = parts;
    const { effects, processes, locks } = parts;
    this.host = {
      machine: effects.machine,
      now: () => this.deps.clock.now(),
      write: (job, batch) => this.write(job, batch),
      why: (job) => this.why(job, locks.view(job.sessionId), processes),
      transitionWrites: (job, entered, row) => this.transitionWrites(job, entered, row),
      inspect: this.deps.inspect,
      onError: (job, error) => {
        this.deps.logger.error({ err: error, jobId: job.id }, 'job write or actor failed');
        this.scheduleReload(job);
      },
    };
  }

  get(id: string): JobActor | undefined {
    return this.jobs.get(id);
  }

  all(): IterableIterator<JobActor> {
    return this.jobs.values();
  }

  ofSession(sessionId: string): JobActor[] {
    return [...(this.bySession.get(sessionId) ?? [])];
  }

  /** A job's row as its owner may see it (in memory if loaded); another owner's is not found. */
  async rowOf(owner: string, id: string): Promise<JobRow> {
    const live = this.jobs.get(id);
    if (live && live.owner === owner) return live.row;
    const row = await this.deps.store.getJob(id);
    if (!row || row.owner !== owner) throw notFound('job', id);
    return row;
  }

  view(job: JobActor): JobView {
    return jobView(job.durable, this.requireHost().why(job));
  }

  /** The job as the API shows it: live when loaded here, else as stored. */
  viewOf(row: JobRow): JobView {
    const job = this.jobs.get(row.id);
    // A loaded job is shown as last stored, never ahead of what a reader could find.
    return job ? this.view(job) : jobView(row);
  }

  /**
   * Starts a job, or answers with the job already started under this id (the
   * id is the sender's, so a command run again names the same job): never
   * two actors for one job. `command` is the forwarded command to answer.
   */
  async start(
    owner: string,
    sessionId: string,
    id: string,
    body: StartJobBody,
    command?: number,
  ): Promise<JobView> {
    const { policy, clock } = this.deps;
    const processes = this.requireParts().processes;
    const external = 'external' in body;
    let cwd: string | null = null;
    if (!external) {
      cwd = await resolveJobCwd(await this.deps.workDirs.ensure(owner), body.cwd);
    }
    const live = this.jobs.get(id);
    if (live) return this.view(live);
    const blocker = external ? null : processes.blocker(owner, sessionId);
    const row: JobRow = {
      id,
      sessionId,
      owner,
      command: external ? null : body.command,
      cwd,
      timeoutS: external ? (body.timeoutS ?? null) : (body.timeoutS ?? policy.defaultJobTimeoutS),
      external,
      name: body.name ?? null,
      labels: body.labels ?? {},
      state: 'running',
      outcome: null,
      exitCode: null,
      attempts: 0,
      output: '',
      createdAt: iso(clock.now()),
      finishedAt: null,
      followedUpAt: null,
      history: [],
      why: '',
      snapshot: null,
      process: null,
      version: 0,
    };
    // Taken before the actor starts, so that a burst of jobs cannot all pass the limit check.
    if (!external && !blocker) processes.reserve({ id, owner, sessionId });
    const job = this.register(
      new JobActor(this.requireHost(), row, {
        input: {
          jobId: id,
          sessionId,
          maxAttempts: policy.maxAttempts,
          retryBaseMs: policy.retryBaseMs,
          retryMaxMs: policy.retryMaxMs,
          held: blocker !== null,
          ...(external
            ? {
                heartbeatS: body.heartbeatS ?? null,
                timeoutAt: body.timeoutS === undefined ? null : clock.now() + body.timeoutS * 1000,
              }
            : {}),
        },
      }),
    );
    try {
      await this.answer(job.id, command, () => job.start());
    } catch (error) {
      this.unregister(job);
      processes.release(id);
      job.actor.stop();
      throw error;
    }
    return this.view(job);
  }

  /** A job whose write failed answers nothing until it is rebuilt from the store. */
  private usable(id: string): JobActor | undefined {
    const job = this.jobs.get(id);
    if (job?.broken) {
      throw new BatonError(
        'store_unavailable',
        `job ${id} could not be stored; it is being rebuilt from the store, try again`,
      );
    }
    return job;
  }

  async complete(row: JobRow, body: CompleteJobBody, command?: number): Promise<JobView> {
    if (!row.external)
      throw new BatonError('job_not_external', `job ${row.id} runs a process here`);
    const job = this.jobs.get(row.id);
    if (!job || job.state !== 'running') {
      throw new BatonError('job_finished', `job ${row.id} was already completed (${row.state})`);
    }
    job.extras.output = capResult(body.output ?? '', 8000);
    const outcome = body.outcome ?? (body.exitCode === 0 ? 'succeeded' : 'failed');
    const at = this.deps.clock.now();
    this.answer(job.id, command, () =>
      job.send({ type: 'FINISHED', outcome, exitCode: body.exitCode, at }),
    );
    await job.persisted();
    return this.view(job);
  }

  /** A sign of life from an external job: its heartbeat deadline starts over. */
  async heartbeat(row: JobRow, command?: number): Promise<JobView> {
    if (!row.external) {
      throw new BatonError('job_not_external', `job ${row.id} runs a process here`);
    }
    const job = this.usable(row.id);
    if (!job || job.state !== 'running') {
      throw new BatonError('job_finished', `job ${row.id} has already ended (${row.state})`);
    }
    const at = this.deps.clock.now();
    this.answer(job.id, command, () => job.send({ type: 'HEARTBEAT', at }));
    await job.persisted();
    return this.view(job);
  }

  async cancel(row: JobRow, command?: number): Promise<JobView> {
    const job = this.usable(row.id);
    if (!job || FINAL_JOB_STATES.includes(job.state)) {
      throw new BatonError('job_finished', `job ${row.id} is ${row.state}; nothing to cancel`);
    }
    this.answer(job.id, command, () => job.send({ type: 'CANCEL' }));
    await job.persisted();
    return this.view(job);
  }

  /** Re-drives a `failed` job: its attempts start over. */
  async retry(row: JobRow, command?: number): Promise<JobView> {
    if (row.state !== 'failed') {
      throw new BatonError(
        'job_not_failed',
        `job ${row.id} is ${row.state}; only a failed job can be retried`,
      );
    }
    const job = this.usable(row.id) ?? (await this.rehydrate(row));
    // A failed job leaves memory once its state is written; it is back in play now.
    this.register(job);
    this.answer(job.id, command, () => job.send({ type: 'RETRY' }));
    await job.persisted();
    return this.view(job);
  }

  /** Tells every loaded job of the session that it is gone. */
  sessionDeleted(sessionId: string): void {
    for (const job of this.ofSession(sessionId)) job.send({ type: 'SESSION_DELETED' });
  }

  /**
   * Rebuilds a stored job and resumes what its state implies (re-adopt its
   * process, ask for the lock, count an interrupted follow-up as failed, re-arm
   * its backoff). A job of a deleted session ends `skipped`.
   */
  async recover(row: JobRow): Promise<void> {
    if (this.jobs.has(row.id)) return;
    const session = await this.deps.store.getSession(row.sessionId);
    // Loaded meanwhile by another path: one actor per job.
    if (this.jobs.has(row.id)) return;
    const job = await this.rehydrate(row);
    if (!session) {
      job.send({ type: 'SESSION_DELETED' });
      return;
    }
    await this.requireParts().effects.resume(job);
  }

  /** Drops the session's jobs from memory without a word (another process owns them now). */
  forget(sessionId: string): void {
    for (const job of this.ofSession(sessionId)) {
      job.actor.stop();
      this.unregister(job);
    }
  }

  stopAll(): void {
    for (const job of this.jobs.values()) job.actor.stop();
    this.jobs.clear();
    this.bySession.clear();
  }

  private why(job: JobActor, lock: LockView, processes: JobProcesses): string {
    return describeWhy(job, { lock, heldBy: processes.blocker(job.owner, job.sessionId) });
  }

  /** Runs `act`, whose write of the job (made at once) answers the forwarded `command`. */
  private answer<T>(jobId: string, command: number | undefined, act: () => T): T {
    if (command === undefined) return act();
    this.answering.set(jobId, command);
    try {
      return act();
    } finally {
      this.answering.delete(jobId);
    }
  }

  private write(job: JobActor, batch: Batch): Promise<void> {
    const command = this.answering.get(job.id);
    const written = batch.jobs?.find((w) => w.row.id === job.id);
    if (command !== undefined && written) {
      // Answered as a local call is once this write is stored: the job as written.
      this.answering.delete(job.id);
      const result = { ok: true, value: jobView(written.row) };
      batch = {
        ...batch,
        commands: [...(batch.commands ?? []), { id: command, result, done: true }],
      };
    }
    return this.deps
      .commit(job.sessionId, () => (isEmpty(batch) ? null : batch))
      .then(() => {
        if (FINAL_JOB_STATES.includes(job.state) && this.jobs.get(job.id) === job) {
          this.unregister(job);
        }
      });
  }

  private transitionWrites(job: JobActor, entered: JobState[], row: Omit<JobRow, 'version'>) {
    if (!entered.includes('failed')) return {};
    return failureNotice(job, row, this.deps.ids.message(), iso(this.deps.clock.now()));
  }

  private register(job: JobActor): JobActor {
    const other = this.jobs.get(job.id);
    // Two actors for one job would both write it, and one would lose it.
    if (other && other !== job) throw new Error(`job ${job.id} already has an actor`);
    this.jobs.set(job.id, job);
    let set = this.bySession.get(job.sessionId);
    if (!set) {
      set = new Set();
      this.bySession.set(job.sessionId, set);
    }
    set.add(job);
    return job;
  }

  private unregister(job: JobActor): void {
    if (this.jobs.get(job.id) === job) this.jobs.delete(job.id);
    const set = this.bySession.get(job.sessionId);
    set?.delete(job);
    if (set?.size === 0) this.bySession.delete(job.sessionId);
    this.parts?.effects.clearRetry(job.id);
  }

  private async rehydrate(row: JobRow): Promise<JobActor> {
    const persisted = row.snapshot as PersistedJob;
    const job = this.register(new JobActor(this.requireHost(), row, { persisted }));
    await job.start();
    return job;
  }

  /**
   * A job whose write failed (full disk, lost database) is ahead of the store
   * in memory. After a pause it is dropped and rebuilt from what is stored,
   * exactly as a restart would, so it goes on once the store can write again.
   */
  private scheduleReload(job: JobActor): void {
    const { clock, policy, store, logger } = this.deps;
    if (this.reloading.has(job.id) || this.deps.closing()) return;
    this.reloading.add(job.id);
    clock.setTimeout(() => {
      this.reloading.delete(job.id);
      if (this.deps.closing() || this.jobs.get(job.id) !== job) return;
      job.actor.stop();
      this.unregister(job);
      this.parts?.locks.release(job.sessionId, job.id, 'aborted');
      store
        .getJob(job.id)
        .then((row) =>
          row && !FINAL_JOB_STATES.includes(row.state) ? this.recover(row) : undefined,
        )
        .catch((error: unknown) => {
          logger.error({ err: error, jobId: job.id }, 'could not reload job');
          this.scheduleReload(job);
        });
    }, policy.reloadDelayMs);
  }

  private requireHost(): JobActorHost {
    if (!this.host) throw new Error('JobRegistry.wire() was not called');
    return this.host;
  }

  private requireParts(): JobRegistryParts {
    if (!this.parts) throw new Error('JobRegistry.wire() was not called');
    return this.parts;
  }
}

function isEmpty(batch: Batch): boolean {
  return (
    !batch.sessions?.length &&
    !batch.sessionDeletes?.length &&
    !batch.messages?.length &&
    !batch.jobs?.length &&
    !batch.events?.length &&
    !batch.commands?.length
  );
}
