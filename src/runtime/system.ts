import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fromPromise, type InspectionEvent } from 'xstate';
import { createJobMachine, type JobMachine, type JobState } from '../machines/job.machine.js';
import type { LockView, ReleaseReason } from '../machines/session.machine.js';
import type { Agent, AgentTools } from './agents/agent.js';
import { capResult, describeOutcome } from './agents/trigger.js';
import { iso, systemClock, type Clock } from './clock.js';
import { BatonError, notFound } from './errors.js';
import { Feed } from './feed.js';
import { runFollowUp, SessionGoneError, type FollowUpDeps } from './follow-up.js';
import { randomIds, type Ids } from './ids.js';
import { JobActor, type JobActorHost, type PersistedJob } from './job-actor.js';
import { DEFAULT_LIMITS, RunningJobs, type JobLimits } from './job-limits.js';
import { ProcessRunner, type ProcessExit } from './jobs/process-runner.js';
import { startLiveTurn, type LiveTurnDeps } from './live-turn.js';
import { runCommand } from './run-command.js';
import { SessionLocks, type LockRecord } from './session-locks.js';
import { SerialQueue } from './serial-queue.js';
import type { Batch, JobRow, MessageRow, SessionRow, Store } from './store/store.js';
import { FINAL_JOB_STATES } from './store/store.js';
import {
  jobView,
  messageView,
  sessionView,
  type JobView,
  type MessageView,
  type SessionView,
} from './views.js';
import { describeWhy } from './why.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** The follow-up policy and limits (SPEC §4 options). */
export interface BatonPolicy {
  /** @defaultValue 5 */
  maxAttempts: number;
  /** @defaultValue 2000 */
  retryBaseMs: number;
  /** @defaultValue 300000 */
  retryMaxMs: number;
  /** One attempt's deadline. @defaultValue 600 */
  agentTimeoutS: number;
  /** A lock holder that keeps the lock longer loses it. @defaultValue agentTimeoutS + 60 s */
  leaseMs: number;
  /** @defaultValue 3600 */
  defaultJobTimeoutS: number;
  /** @defaultValue 12 */
  maxRounds: number;
  limits: JobLimits;
  /** How long shutdown waits for running follow-ups and turns. @defaultValue 10000 */
  drainMs: number;
  /** Time between SIGTERM and SIGKILL when a job is killed. @defaultValue 5000 */
  killGraceMs: number;
}

export interface BatonOptions {
  store: Store;
  agent: Agent;
  /** Holds each job's directory (wrapper, log, exit file) under `jobs/`. */
  dataDir: string;
  /** Working directory of jobs that name none, and of `run_command`. @defaultValue process.cwd() */
  workDir?: string;
  policy?: Partial<BatonPolicy>;
  clock?: Clock;
  ids?: Ids;
  random?: () => number;
  logger?: Logger;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** Sees every lock grant and release (tests assert that holders never overlap). */
  onLockRecord?: (sessionId: string, record: LockRecord) => void;
}

export type StartJobBody =
  | { command: string; timeoutS?: number | undefined; cwd?: string | undefined }
  | { external: true; name?: string | undefined };

export interface CompleteJobBody {
  exitCode: number;
  output?: string | undefined;
  outcome?: 'succeeded' | 'failed' | 'timedOut' | 'lost' | undefined;
}

export function resolvePolicy(partial: Partial<BatonPolicy> = {}): BatonPolicy {
  const agentTimeoutS = partial.agentTimeoutS ?? 600;
  return {
    maxAttempts: partial.maxAttempts ?? 5,
    retryBaseMs: partial.retryBaseMs ?? 2000,
    retryMaxMs: partial.retryMaxMs ?? 300_000,
    agentTimeoutS,
    leaseMs: partial.leaseMs ?? agentTimeoutS * 1000 + 60_000,
    defaultJobTimeoutS: partial.defaultJobTimeoutS ?? 3600,
    maxRounds: partial.maxRounds ?? 12,
    limits: partial.limits ?? DEFAULT_LIMITS,
    drainMs: partial.drainMs ?? 10_000,
    killGraceMs: partial.killGraceMs ?? 5000,
  };
}

/**
 * The runtime: the machines wired to the store, the process runner, the
 * agent and the feed. Transports call its methods; every method checks that
 * the owner may see what it asks for (another owner's resource is "not found").
 */
export class Baton {
  readonly feed = new Feed();
  readonly policy: BatonPolicy;
  readonly store: Store;
  readonly agent: Agent;
  private readonly clock: Clock;
  private readonly ids: Ids;
  private readonly logger: Logger;
  private readonly queue = new SerialQueue();
  private readonly jobs = new Map<string, JobActor>();
  private readonly retryTimers = new Map<string, unknown>();
  private readonly turns = new Map<string, { done: Promise<void>; abort: () => void }>();
  private readonly owners = new Map<string, string>();
  private readonly running: RunningJobs;
  private readonly runner: ProcessRunner;
  private readonly locks: SessionLocks;
  private readonly machine: JobMachine;
  private readonly host: JobActorHost;
  private readonly followUpDeps: FollowUpDeps;
  private readonly liveDeps: LiveTurnDeps;
  private readonly workDir: string;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: BatonOptions) {
    this.store = options.store;
    this.agent = options.agent;
    this.policy = resolvePolicy(options.policy);
    this.clock = options.clock ?? systemClock;
    this.ids = options.ids ?? randomIds;
    this.logger = options.logger ?? silent;
    this.workDir = resolve(options.workDir ?? process.cwd());
    this.running = new RunningJobs(this.policy.limits);
    const now = () => this.clock.now();
    this.runner = new ProcessRunner({
      onExit: (jobId, exit) => this.onProcessExit(jobId, exit),
      now,
      killGraceMs: this.policy.killGraceMs,
      logger: this.logger,
    });
    this.locks = new SessionLocks({
      clock: this.clock,
      leaseMs: this.policy.leaseMs,
      persist: (sessionId, view) => this.persistLock(sessionId, view),
      inspect: options.inspect,
      onRecord: options.onLockRecord,
      onError: (error) => this.logger.error({ err: error }, 'session lock effect failed'),
    });
    this.machine = this.provideJobMachine(now, options.random ?? Math.random);
    this.host = {
      machine: this.machine,
      now,
      write: (job, batch) => this.writeJob(job, batch),
      why: (job) =>
        describeWhy(job, {
          lock: this.locks.view(job.sessionId),
          heldBy: this.running.blocker(job.owner, job.sessionId),
        }),
      transitionWrites: (job, entered, row) => this.transitionWrites(job, entered, row),
      inspect: options.inspect,
      onError: (job, error) =>
        this.logger.error({ err: error, jobId: job.id }, 'job write or actor failed'),
    };
    const common = {
      store: this.store,
      agent: this.agent,
      feed: this.feed,
      ids: this.ids,
      now,
      agentTimeoutMs: this.policy.agentTimeoutS * 1000,
      maxRounds: this.policy.maxRounds,
      commit: (sessionId: string, build: () => Batch | null) => this.commit(sessionId, build),
      tools: (owner: string, sessionId: string) => this.tools(owner, sessionId),
    };
    this.followUpDeps = {
      ...common,
      machine: this.machine,
      jobsOf: (sessionId) => [...this.jobs.values()].filter((j) => j.sessionId === sessionId),
    };
    this.liveDeps = {
      ...common,
      locks: this.locks,
      track: (turnId, run) => {
        this.turns.set(turnId, run);
        void run.done.finally(() => this.turns.delete(turnId));
      },
      onError: (error) => this.logger.error({ err: error }, 'live turn failed'),
    };
  }

  // ---- sessions -------------------------------------------------------------------------------

  async createSession(
    owner: string,
    body: { title?: string | undefined; systemPrompt?: string | undefined },
  ): Promise<SessionView> {
    this.assertOpen();
    const row: SessionRow = {
      id: this.ids.session(),
      owner,
      title: body.title ?? 'Untitled session',
      systemPrompt: body.systemPrompt ?? null,
      createdAt: iso(this.clock.now()),
    };
    this.owners.set(row.id, owner);
    await this.commit(row.id, () => ({
      sessions: [row],
      events: [this.event(owner, 'session.created', { session: sessionView(row) }, row.id)],
    }));
    return sessionView(row, this.locks.view(row.id));
  }

  async listSessions(owner: string): Promise<SessionView[]> {
    const rows = await this.store.listSessions(owner);
    return rows.map((row) => sessionView(row, this.locks.view(row.id)));
  }

  async getSession(owner: string, id: string): Promise<SessionView> {
    return sessionView(await this.sessionOf(owner, id), this.locks.view(id));
  }

  async deleteSession(owner: string, id: string): Promise<void> {
    this.assertOpen();
    await this.sessionOf(owner, id);
    const at = iso(this.clock.now());
    await this.commit(id, () => ({
      sessionDeletes: [{ id, at }],
      events: [this.event(owner, 'session.deleted', {}, id)],
    }));
    this.locks.delete(id);
    for (const job of [...this.jobs.values()]) {
      if (job.sessionId === id) job.send({ type: 'SESSION_DELETED' });
    }
  }

  // ---- messages and live turns ------------------------------------------------------------------

  async listMessages(owner: string, sessionId: string): Promise<MessageView[]> {
    await this.sessionOf(owner, sessionId);
    return (await this.store.listMessages(sessionId)).map(messageView);
  }

  /** Stores the user's message at once; the live turn runs when the session's lock is granted. */
  async sendMessage(
    owner: string,
    sessionId: string,
    content: string,
  ): Promise<{ turnId: string; message: MessageView }> {
    this.assertOpen();
    const session = await this.sessionOf(owner, sessionId);
    const turnId = this.ids.turn();
    const message: MessageRow = {
      id: this.ids.message(),
      sessionId,
      owner,
      role: 'user',
      content,
      metadata: { turnId },
      createdAt: iso(this.clock.now()),
    };
    await this.commit(sessionId, () => ({
      messages: [message],
      events: [
        this.event(owner, 'message.created', { message: messageView(message) }, sessionId, {
          turnId,
        }),
      ],
    }));
    startLiveTurn(this.liveDeps, session, turnId);
    return { turnId, message: messageView(message) };
  }

  // ---- jobs -------------------------------------------------------------------------------------

  async startJob(owner: string, sessionId: string, body: StartJobBody): Promise<JobView> {
    this.assertOpen();
    await this.sessionOf(owner, sessionId);
    const external = 'external' in body;
    let cwd: string | null = null;
    if (!external) {
      cwd = resolve(this.workDir, body.cwd ?? '.');
      const info = await stat(cwd).catch(() => null);
      if (!info?.isDirectory()) {
        throw new BatonError('invalid_request', `cwd ${body.cwd ?? cwd} is not a directory`);
      }
    }
    const id = this.ids.job();
    const blocker = external ? null : this.running.blocker(owner, sessionId);
    const row: JobRow = {
      id,
      sessionId,
      owner,
      command: external ? null : body.command,
      cwd,
      timeoutS: external ? null : (body.timeoutS ?? this.policy.defaultJobTimeoutS),
      external,
      name: external ? (body.name ?? null) : null,
      state: 'running',
      outcome: null,
      exitCode: null,
      attempts: 0,
      output: '',
      createdAt: iso(this.clock.now()),
      finishedAt: null,
      followedUpAt: null,
      history: [],
      why: '',
      snapshot: null,
      process: null,
      version: 0,
    };
    // Taken before the actor starts, so that a burst of jobs cannot all pass the limit check.
    if (!external && !blocker) this.running.take(id, owner, sessionId);
    const job = this.register(
      new JobActor(this.host, row, {
        input: {
          jobId: id,
          sessionId,
          maxAttempts: this.policy.maxAttempts,
          retryBaseMs: this.policy.retryBaseMs,
          retryMaxMs: this.policy.retryMaxMs,
          held: blocker !== null,
        },
      }),
    );
    try {
      await job.start();
    } catch (error) {
      this.unregister(job);
      this.running.free(id);
      job.actor.stop();
      throw error;
    }
    return this.view(job);
  }

  async completeJob(owner: string, jobId: string, body: CompleteJobBody): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobRowOf(owner, jobId);
    if (!row.external) throw new BatonError('job_not_external', `job ${jobId} runs a process here`);
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running') {
      throw new BatonError('job_finished', `job ${jobId} was already completed (${row.state})`);
    }
    job.extras.output = capResult(body.output ?? '', 8000);
    const outcome = body.outcome ?? (body.exitCode === 0 ? 'succeeded' : 'failed');
    job.send({ type: 'FINISHED', outcome, exitCode: body.exitCode, at: this.clock.now() });
    await job.persisted();
    return this.view(job);
  }

  async cancelJob(owner: string, jobId: string): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobRowOf(owner, jobId);
    const job = this.jobs.get(jobId);
    if (!job || FINAL_JOB_STATES.includes(job.state)) {
      throw new BatonError('job_finished', `job ${jobId} is ${row.state}; nothing to cancel`);
    }
    job.send({ type: 'CANCEL' });
    await job.persisted();
    return this.view(job);
  }

  /** Re-drives a `failed` job: its attempts start over. */
  async retryJob(owner: string, jobId: string): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobRowOf(owner, jobId);
    if (row.state !== 'failed') {
      throw new BatonError(
        'job_not_failed',
        `job ${jobId} is ${row.state}; only a failed job can be retried`,
      );
    }
    const job = this.jobs.get(jobId) ?? (await this.rehydrate(row));
    // A failed job leaves memory once its state is written; it is back in play now.
    this.register(job);
    job.send({ type: 'RETRY' });
    await job.persisted();
    return this.view(job);
  }

  async getJob(owner: string, jobId: string): Promise<JobView> {
    const row = await this.jobRowOf(owner, jobId);
    const job = this.jobs.get(jobId);
    return job ? this.view(job) : jobView(row);
  }

  async listJobs(
    owner: string,
    filter: { sessionId?: string | undefined; state?: string | undefined },
  ): Promise<JobView[]> {
    if (filter.sessionId) await this.sessionOf(owner, filter.sessionId);
    const rows = await this.store.listJobs({
      owner,
      ...(filter.sessionId ? { sessionId: filter.sessionId } : {}),
      ...(filter.state ? { state: filter.state } : {}),
    });
    return rows.map((row) => {
      const job = this.jobs.get(row.id);
      return job && job.state === row.state ? this.view(job) : jobView(row);
    });
  }

  // ---- start and stop ---------------------------------------------------------------------------

  /**
   * Rebuilds every unfinished job from the store and resumes it: running
   * processes are re-adopted (or found finished, or lost), a follow-up cut off
   * mid-way counts as a failed attempt, a backoff resumes at its stored time.
   */
  async recover(): Promise<{ recovered: number }> {
    const rows = await this.store.listJobs({ unfinished: true });
    for (const row of rows) {
      try {
        await this.recoverJob(row);
      } catch (error) {
        this.logger.error({ err: error, jobId: row.id }, 'could not recover job');
      }
    }
    this.pump();
    return { recovered: rows.length };
  }

  /** Graceful shutdown; safe to call twice. Every step runs even when one fails. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- internals --------------------------------------------------------------------------------

  private async shutdown(): Promise<void> {
    const step = async (name: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (error) {
        this.logger.error({ err: error, step: name }, 'shutdown step failed');
      }
    };
    await step('drain', () => this.drain());
    await step('timers', () => {
      for (const timer of this.retryTimers.values()) this.clock.clearTimeout(timer);
      this.retryTimers.clear();
    });
    await step('actors', () => {
      for (const job of this.jobs.values()) job.actor.stop();
      this.jobs.clear();
      this.locks.stop();
    });
    await step('writes', () => this.queue.drain());
    await step('runner', () => this.runner.close());
    await step('store', () => this.store.close());
  }

  /** Waits for follow-ups and live turns to end, up to the drain deadline, then aborts them. */
  private async drain(): Promise<void> {
    const deadline = this.clock.now() + this.policy.drainMs;
    const busy = () =>
      this.turns.size > 0 || [...this.jobs.values()].some((j) => j.state === 'continuing');
    while (busy() && this.clock.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const turn of this.turns.values()) turn.abort();
    await Promise.allSettled([...this.turns.values()].map((t) => t.done));
  }

  private assertOpen(): void {
    if (this.closing) throw new BatonError('shutting_down', 'the service is shutting down');
  }

  private async sessionOf(owner: string, id: string): Promise<SessionRow> {
    const row = await this.store.getSession(id);
    if (!row || row.owner !== owner) throw notFound('session', id);
    this.owners.set(id, owner);
    return row;
  }

  private async jobRowOf(owner: string, id: string): Promise<JobRow> {
    const live = this.jobs.get(id);
    if (live && live.owner === owner) return live.row;
    const row = await this.store.getJob(id);
    if (!row || row.owner !== owner) throw notFound('job', id);
    return row;
  }

  private view(job: JobActor): JobView {
    return jobView(job.row, this.host.why(job));
  }

  private event(
    owner: string,
    type: string,
    data: Record<string, unknown>,
    sessionId?: string,
    extra: { jobId?: string; turnId?: string } = {},
  ) {
    return { owner, at: iso(this.clock.now()), type, sessionId: sessionId ?? null, ...extra, data };
  }

  /** Runs a commit in the session's write queue, then fans its events out. */
  private commit(sessionId: string, build: () => Batch | null): Promise<void> {
    return this.queue.run(sessionId, async () => {
      const batch = build();
      if (!batch) return;
      const result = await this.store.commit(batch);
      this.feed.publish(result.events);
    });
  }

  private writeJob(job: JobActor, batch: Batch): Promise<void> {
    return this.commit(job.sessionId, () => (isEmpty(batch) ? null : batch)).then(() => {
      if (FINAL_JOB_STATES.includes(job.state) && this.jobs.get(job.id) === job) {
        this.unregister(job);
      }
    });
  }

  private async persistLock(sessionId: string, view: LockView): Promise<void> {
    const owner = this.owners.get(sessionId) ?? (await this.store.getSession(sessionId))?.owner;
    if (!owner) return;
    await this.commit(sessionId, () => ({
      events: [this.event(owner, 'session.lock', { ...view }, sessionId)],
    }));
  }

  private transitionWrites(
    job: JobActor,
    entered: JobState[],
    row: Omit<JobRow, 'version'>,
  ): Batch {
    if (!entered.includes('failed')) return {};
    const context = job.context;
    const what = row.command ? `\`${row.command}\`` : (row.name ?? 'external job');
    const error = context.lastError
      ? `${context.lastError.code}: ${context.lastError.message}`
      : 'unknown error';
    const message: MessageRow = {
      id: this.ids.message(),
      sessionId: job.sessionId,
      owner: job.owner,
      role: 'system',
      content:
        `Background job ${job.id} (${what}) ${describeOutcome(triggerFacts(row))}, but the agent ` +
        `could not continue after ${context.attempts} attempts (${error}). ` +
        `Retry it with POST /v1/jobs/${job.id}/retry.`,
      metadata: {
        bgJobId: job.id,
        kind: 'followUpFailed',
        attempts: context.attempts,
        error: context.lastError,
      },
      createdAt: iso(this.clock.now()),
    };
    return {
      messages: [message],
      events: [
        this.event(job.owner, 'message.created', { message: messageView(message) }, job.sessionId, {
          jobId: job.id,
        }),
      ],
    };
  }

  private provideJobMachine(now: () => number, random: () => number): JobMachine {
    const job = (jobId: string) => this.jobs.get(jobId);
    const later = (jobId: string, effect: (j: JobActor) => void) => {
      const j = job(jobId);
      j?.enqueue(() => effect(j));
    };
    return createJobMachine({ now, random }).provide({
      actions: {
        startProcess: ({ context }) => later(context.jobId, (j) => void this.startProcess(j)),
        killProcess: ({ context }) =>
          later(context.jobId, (j) => {
            this.running.free(j.id);
            void this.runner.cancel(j.id).catch(() => undefined);
            this.pump();
          }),
        requestLock: ({ context }) => later(context.jobId, (j) => this.requestLock(j)),
        withdrawLock: ({ context }) =>
          later(context.jobId, (j) => this.locks.release(j.sessionId, j.id, 'aborted')),
        releaseLock: ({ context }) =>
          later(context.jobId, (j) => this.locks.release(j.sessionId, j.id, 'done')),
        scheduleRetry: ({ context }) => later(context.jobId, (j) => this.scheduleRetry(j)),
        clearRetry: ({ context }) =>
          later(context.jobId, (j) => {
            const timer = this.retryTimers.get(j.id);
            if (timer !== undefined) this.clock.clearTimeout(timer);
            this.retryTimers.delete(j.id);
          }),
      },
      actors: {
        followUp: fromPromise(async ({ input, signal }) => {
          const j = job(input.jobId);
          if (!j) throw new Error(`job ${input.jobId} is not loaded`);
          try {
            return await runFollowUp(this.followUpDeps, j, signal);
          } catch (error) {
            if (error instanceof SessionGoneError) {
              queueMicrotask(() => j.send({ type: 'SESSION_DELETED' }));
            }
            throw error;
          }
        }),
      },
    });
  }

  private requestLock(job: JobActor): void {
    this.locks.acquire(job.sessionId, 'followUp', job.id, {
      granted: () => {
        if (job.state === 'awaitingIdleSession' && !job.finalCommitted) {
          job.send({ type: 'LOCK_GRANTED' });
        } else {
          this.locks.release(job.sessionId, job.id, 'aborted');
        }
      },
      revoked: (reason: ReleaseReason) =>
        job.send({ type: 'INTERRUPTED', reason: `the session lock was taken back (${reason})` }),
      gone: () => job.send({ type: 'SESSION_DELETED' }),
    });
  }

  private scheduleRetry(job: JobActor): void {
    const at = job.context.nextRetryAt ?? this.clock.now();
    const previous = this.retryTimers.get(job.id);
    if (previous !== undefined) this.clock.clearTimeout(previous);
    const timer = this.clock.setTimeout(() => {
      this.retryTimers.delete(job.id);
      job.send({ type: 'RETRY_DUE' });
    }, at - this.clock.now());
    this.retryTimers.set(job.id, timer);
  }

  private async startProcess(job: JobActor): Promise<void> {
    const row = job.row;
    if (row.external || row.command === null) return;
    this.running.take(job.id, job.owner, job.sessionId);
    try {
      const handle = await this.runner.start({
        jobId: job.id,
        command: row.command,
        cwd: row.cwd ?? this.workDir,
        timeoutS: row.timeoutS ?? this.policy.defaultJobTimeoutS,
        dir: this.jobDir(job.id),
      });
      job.extras.process = {
        pid: handle.pid,
        startTime: handle.startTime,
        dir: handle.dir,
        startedAt: iso(handle.startedAt),
      };
      if (job.state === 'running') await job.touch();
    } catch (error) {
      this.running.free(job.id);
      job.extras.output = `could not start the process: ${error instanceof Error ? error.message : String(error)}`;
      job.send({ type: 'FINISHED', outcome: 'failed', exitCode: null, at: this.clock.now() });
      this.pump();
    }
  }

  private onProcessExit(jobId: string, exit: ProcessExit): void {
    this.running.free(jobId);
    const job = this.jobs.get(jobId);
    if (job && job.state === 'running') {
      job.extras.output = exit.output;
      job.send({
        type: 'FINISHED',
        outcome: exit.outcome,
        exitCode: exit.exitCode,
        at: exit.finishedAt,
      });
    }
    this.pump();
  }

  /** Starts queued jobs, oldest first, while the limits allow. */
  private pump(): void {
    if (this.closing) return;
    const queued = [...this.jobs.values()]
      .filter((j) => j.context.held && j.state === 'running')
      .sort((a, b) => a.row.createdAt.localeCompare(b.row.createdAt));
    for (const job of queued) {
      if (this.running.blocker(job.owner, job.sessionId) !== null) continue;
      this.running.take(job.id, job.owner, job.sessionId);
      job.send({ type: 'START' });
    }
  }

  private tools(owner: string, sessionId: string): AgentTools {
    return {
      runCommand: (command, signal) => runCommand(command, { cwd: this.workDir, signal }),
      startBackgroundJob: async (command) => {
        const job = await this.startJob(owner, sessionId, { command });
        return { jobId: job.id };
      },
    };
  }

  private jobDir(jobId: string): string {
    return join(this.options.dataDir, 'jobs', jobId);
  }

  private register(job: JobActor): JobActor {
    this.jobs.set(job.id, job);
    this.owners.set(job.sessionId, job.owner);
    return job;
  }

  private unregister(job: JobActor): void {
    this.jobs.delete(job.id);
    const timer = this.retryTimers.get(job.id);
    if (timer !== undefined) this.clock.clearTimeout(timer);
    this.retryTimers.delete(job.id);
  }

  private async rehydrate(row: JobRow): Promise<JobActor> {
    const persisted = row.snapshot as PersistedJob;
    const job = this.register(new JobActor(this.host, row, { persisted }));
    await job.start();
    return job;
  }

  private async recoverJob(row: JobRow): Promise<void> {
    const session = await this.store.getSession(row.sessionId);
    const job = await this.rehydrate(row);
    if (!session) {
      job.send({ type: 'SESSION_DELETED' });
      return;
    }
    this.owners.set(session.id, session.owner);
    switch (job.state) {
      case 'running':
        return this.readopt(job);
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

  private async readopt(job: JobActor): Promise<void> {
    const row = job.row;
    if (row.external || job.context.held) return;
    const info = row.process;
    if (!info || row.command === null) {
      job.extras.output = 'the service stopped before the process was started';
      job.send({ type: 'FINISHED', outcome: 'lost', exitCode: null, at: this.clock.now() });
      return;
    }
    const startedAt = Date.parse(info.startedAt);
    const spec = {
      jobId: job.id,
      command: row.command,
      cwd: row.cwd ?? this.workDir,
      timeoutS: row.timeoutS ?? this.policy.defaultJobTimeoutS,
      dir: info.dir,
      startedAt,
    };
    const result = await this.runner.adopt(spec, { ...info, startedAt });
    if (result === 'watching') {
      this.running.take(job.id, job.owner, job.sessionId);
      return;
    }
    job.extras.output = result.output;
    job.send({
      type: 'FINISHED',
      outcome: result.outcome,
      exitCode: result.exitCode,
      at: result.finishedAt,
    });
  }
}

function isEmpty(batch: Batch): boolean {
  return (
    !batch.sessions?.length &&
    !batch.sessionDeletes?.length &&
    !batch.messages?.length &&
    !batch.jobs?.length &&
    !batch.events?.length
  );
}

function triggerFacts(row: Omit<JobRow, 'version'>) {
  return {
    outcome: (row.outcome ?? 'lost') as 'succeeded' | 'failed' | 'timedOut' | 'lost' | 'cancelled',
    exitCode: row.exitCode,
    timeoutS: row.timeoutS,
  };
}
