import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { JobMachine, JobState } from '../machines/job.machine.js';
import type { LockView } from '../machines/session.machine.js';
import type { Agent, AgentTools } from './agents/agent.js';
import { capResult } from './agents/trigger.js';
import { failureNotice } from './failure-notice.js';
import { iso, systemClock, type Clock } from './clock.js';
import { BatonError, notFound } from './errors.js';
import { Feed } from './feed.js';
import type { FollowUpDeps } from './follow-up.js';
import { JobEffects } from './job-effects.js';
import { randomIds, type Ids } from './ids.js';
import { JobActor, type JobActorHost, type PersistedJob } from './job-actor.js';
import { JobProcesses } from './job-processes.js';
import { startLiveTurn, type LiveTurnDeps } from './live-turn.js';
import { runCommand } from './run-command.js';
import { SessionLocks } from './session-locks.js';
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
import type { BatonOptions, CompleteJobBody, StartJobBody } from './options.js';
import { resolvePolicy, silentLogger, type BatonPolicy, type Logger } from './policy.js';

export { resolvePolicy, type BatonPolicy, type Logger } from './policy.js';
export type { BatonOptions, CompleteJobBody, StartJobBody } from './options.js';

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
  private readonly turns = new Map<string, { done: Promise<void>; abort: () => void }>();
  private readonly owners = new Map<string, string>();
  private readonly reloading = new Set<string>();
  private readonly processes: JobProcesses;
  private readonly locks: SessionLocks;
  private readonly effects: JobEffects;
  private readonly host: JobActorHost;
  private readonly liveDeps: LiveTurnDeps;
  private readonly workDir: string;
  private closing: Promise<void> | null = null;

  constructor(options: BatonOptions) {
    this.store = options.store;
    this.agent = options.agent;
    this.policy = resolvePolicy(options.policy);
    this.clock = options.clock ?? systemClock;
    this.ids = options.ids ?? randomIds;
    this.logger = options.logger ?? silentLogger;
    this.workDir = resolve(options.workDir ?? process.cwd());
    const now = () => this.clock.now();
    this.processes = new JobProcesses({
      dataDir: options.dataDir,
      workDir: this.workDir,
      defaultTimeoutS: this.policy.defaultJobTimeoutS,
      killGraceMs: this.policy.killGraceMs,
      limits: this.policy.limits,
      now,
      logger: this.logger,
      jobs: () => this.jobs.values(),
      job: (id) => this.jobs.get(id),
      closing: () => this.closing !== null,
    });
    this.locks = new SessionLocks({
      clock: this.clock,
      leaseMs: this.policy.leaseMs,
      persist: (sessionId, view) => this.persistLock(sessionId, view),
      inspect: options.inspect,
      onRecord: options.onLockRecord,
      onError: (error) => this.logger.error({ err: error }, 'session lock effect failed'),
    });
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
    const followUp: FollowUpDeps = {
      ...common,
      // Filled in just below: the follow-up needs the provided machine to compute snapshots.
      machine: undefined as unknown as JobMachine,
      jobsOf: (sessionId) => [...this.jobs.values()].filter((j) => j.sessionId === sessionId),
    };
    this.effects = new JobEffects({
      clock: this.clock,
      random: options.random ?? Math.random,
      locks: this.locks,
      processes: this.processes,
      followUp,
      job: (id) => this.jobs.get(id),
    });
    followUp.machine = this.effects.machine;
    this.host = {
      machine: this.effects.machine,
      now,
      write: (job, batch) => this.writeJob(job, batch),
      why: (job) =>
        describeWhy(job, {
          lock: this.locks.view(job.sessionId),
          heldBy: this.processes.blocker(job.owner, job.sessionId),
        }),
      transitionWrites: (job, entered, row) => this.transitionWrites(job, entered, row),
      inspect: options.inspect,
      onError: (job, error) => {
        this.logger.error({ err: error, jobId: job.id }, 'job write or actor failed');
        this.scheduleReload(job);
      },
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
    const blocker = external ? null : this.processes.blocker(owner, sessionId);
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
    if (!external && !blocker) this.processes.reserve({ id, owner, sessionId });
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
      this.processes.release(id);
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
    this.processes.pump();
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
      this.effects.clearAll();
    });
    await step('actors', () => {
      for (const job of this.jobs.values()) job.actor.stop();
      this.jobs.clear();
      this.locks.stop();
    });
    await step('writes', () => this.queue.drain());
    await step('processes', () => this.processes.close());
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
  private commit(
    sessionId: string,
    build: () => Batch | null | Promise<Batch | null>,
  ): Promise<void> {
    const handed = this.queue.run(sessionId, async () => {
      const batch = await build();
      // Handed over without waiting for the session's previous batch to be
      // durable: the store applies batches in the order it receives them, so
      // the session's writes stay in order and can share one fsync.
      return batch ? { durable: this.store.commit(batch) } : null;
    });
    return handed.then(async (handle) => {
      if (!handle) return;
      const result = await handle.durable;
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

  /** Queues the lock event at once (its place in the session's writes is what matters). */
  private persistLock(sessionId: string, view: LockView): Promise<void> {
    return this.commit(sessionId, async () => {
      const owner = this.owners.get(sessionId) ?? (await this.store.getSession(sessionId))?.owner;
      return owner ? { events: [this.event(owner, 'session.lock', { ...view }, sessionId)] } : null;
    });
  }

  private transitionWrites(job: JobActor, entered: JobState[], row: Omit<JobRow, 'version'>) {
    if (!entered.includes('failed')) return {};
    return failureNotice(job, row, this.ids.message(), iso(this.clock.now()));
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

  private register(job: JobActor): JobActor {
    this.jobs.set(job.id, job);
    this.owners.set(job.sessionId, job.owner);
    return job;
  }

  private unregister(job: JobActor): void {
    this.jobs.delete(job.id);
    this.effects.clearRetry(job.id);
  }

  private async rehydrate(row: JobRow): Promise<JobActor> {
    const persisted = row.snapshot as PersistedJob;
    const job = this.register(new JobActor(this.host, row, { persisted }));
    await job.start();
    return job;
  }

  /**
   * A job whose write failed (full disk, lost database) is ahead of the store
   * in memory. After a pause it is dropped and rebuilt from what is stored,
   * exactly as a restart would, so it goes on once the store can write again.
   */
  private scheduleReload(job: JobActor): void {
    if (this.reloading.has(job.id) || this.closing) return;
    this.reloading.add(job.id);
    this.clock.setTimeout(() => {
      this.reloading.delete(job.id);
      if (this.closing || this.jobs.get(job.id) !== job) return;
      job.actor.stop();
      this.unregister(job);
      this.locks.release(job.sessionId, job.id, 'aborted');
      this.store
        .getJob(job.id)
        .then((row) =>
          row && !FINAL_JOB_STATES.includes(row.state) ? this.recoverJob(row) : undefined,
        )
        .catch((error: unknown) => {
          this.logger.error({ err: error, jobId: job.id }, 'could not reload job');
          this.scheduleReload(job);
        });
    }, this.policy.reloadDelayMs);
  }

  private async recoverJob(row: JobRow): Promise<void> {
    const session = await this.store.getSession(row.sessionId);
    const job = await this.rehydrate(row);
    if (!session) {
      job.send({ type: 'SESSION_DELETED' });
      return;
    }
    this.owners.set(session.id, session.owner);
    await this.effects.resume(job);
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
