import { join } from 'node:path';
import type { LockView } from '../machines/session.machine.js';
import type { Agent } from './agents/agent.js';
import { iso, systemClock, type Clock } from './clock.js';
import { unwrap, type Command, type StoredCommand } from './commands.js';
import { LocalCoordinator, type Coordinator } from './coordinator.js';
import { BatonError, notFound } from './errors.js';
import { Feed, type FeedFrame } from './feed.js';
import { FeedTail } from './feed-tail.js';
import type { FollowUpDeps } from './follow-up.js';
import { randomIds, type Ids } from './ids.js';
import { JobEffects } from './job-effects.js';
import { JobOutputTail, readJobOutput, type JobOutputView } from './job-output.js';
import { Retention } from './retention.js';
import { agentTools } from './agent-tools.js';
import { JobProcesses } from './job-processes.js';
import { OwnedSessions } from './owned-sessions.js';
import { JobRegistry } from './job-registry.js';
import { startLiveTurn, type LiveTurnDeps, type TurnAbort } from './live-turn.js';
import { sendMessageHere } from './send-message.js';
import type { BatonOptions, CompleteJobBody, StartJobBody } from './options.js';
import { resolvePolicy, silentLogger, type BatonPolicy, type Logger } from './policy.js';
import { Sandbox } from './sandbox/sandbox.js';
import { NO_SANDBOX } from './sandbox/sandbox-config.js';
import { WorkDirs } from './sandbox/work-dirs.js';
import { SessionWriter } from './session-writer.js';
import { SessionLocks } from './session-locks.js';
import { StoreConflictError, type Batch, type SessionRow, type Store } from './store/store.js';
import {
  hasLabels,
  messageView,
  sessionView,
  type JobView,
  type MessageView,
  type SessionView,
} from './views.js';

export { resolvePolicy, type BatonPolicy, type Logger } from './policy.js';
export type { BatonOptions, CompleteJobBody, StartJobBody } from './options.js';

/**
 * The runtime: the machines wired to the store, the process runner, the
 * agent and the feed. Transports call its methods; every method checks that
 * the owner may see what it asks for (another owner's resource is "not found").
 *
 * Calls that change a session run where the session's actors live: here
 * with the embedded store; with a shared store, on the process that owns the
 * session, to which other processes forward them (SPEC §8).
 */
export class Baton {
  readonly feed = new Feed();
  readonly policy: BatonPolicy;
  readonly store: Store;
  readonly agent: Agent;
  readonly coordinator: Coordinator;
  private readonly clock: Clock;
  private readonly ids: Ids;
  private readonly logger: Logger;
  private readonly writer: SessionWriter;
  private readonly turns = new Map<
    string,
    { sessionId: string; done: Promise<void>; abort: (reason: TurnAbort) => void }
  >();
  private readonly owned: OwnedSessions;
  private readonly processes: JobProcesses;
  private readonly locks: SessionLocks;
  private readonly jobs: JobRegistry;
  private readonly liveDeps: LiveTurnDeps;
  private readonly tail: FeedTail;
  private readonly dataDir: string;
  private readonly outputTail: JobOutputTail;
  /** Prunes old feed events and finished jobs' directories (`--retain-days`). */
  readonly retention: Retention;
  /** Each owner's work directory. */
  readonly workDirs: WorkDirs;
  /** What jobs and `run_command` run in. */
  readonly sandbox: Sandbox;
  private closing: Promise<void> | null = null;

  constructor(options: BatonOptions) {
    this.store = options.store;
    this.agent = options.agent;
    this.coordinator = options.coordinator ?? new LocalCoordinator();
    this.policy = resolvePolicy(options.policy);
    this.clock = options.clock ?? systemClock;
    this.ids = options.ids ?? randomIds;
    this.logger = options.logger ?? silentLogger;
    this.dataDir = options.dataDir;
    this.sandbox = options.sandbox ?? new Sandbox(NO_SANDBOX, join(options.dataDir, 'sandbox'));
    this.workDirs = new WorkDirs(
      options.workRoot ?? join(options.dataDir, 'work'),
      options.workDirs ?? {},
      this.sandbox.config.runAs,
    );
    this.tail = new FeedTail(this.store, this.feed, (error) =>
      this.logger.warn({ err: error }, 'feed tail failed'),
    );
    if (this.coordinator.shared) {
      this.feed.relay = (owner, frame) => this.coordinator.broadcast(owner, frame);
    }
    this.writer = new SessionWriter(this.store, this.coordinator, this.feed, this.tail, this.clock);
    const now = () => this.clock.now();
    const commit = (sessionId: string, build: () => Batch | null) =>
      this.writer.commit(sessionId, build);
    this.jobs = new JobRegistry({
      store: this.store,
      clock: this.clock,
      ids: this.ids,
      logger: this.logger,
      policy: this.policy,
      workDirs: this.workDirs,
      commit,
      inspect: options.inspect,
      closing: () => this.closing !== null,
    });
    this.processes = new JobProcesses({
      hostId: this.coordinator.hostId,
      dataDir: options.dataDir,
      workDirs: this.workDirs,
      sandbox: this.sandbox,
      defaultTimeoutS: this.policy.defaultJobTimeoutS,
      killGraceMs: this.policy.killGraceMs,
      limits: this.policy.limits,
      now,
      logger: this.logger,
      jobs: () => this.jobs.all(),
      job: (id) => this.jobs.get(id),
      closing: () => this.closing !== null,
    });
    this.locks = new SessionLocks({
      clock: this.clock,
      leaseMs: this.policy.leaseMs,
      persist: (sessionId, view) => this.writer.lock(sessionId, view),
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
      commit,
      tools: (owner: string, sessionId: string, turnKey: string) =>
        agentTools(
          {
            workDirs: this.workDirs,
            sandbox: this.sandbox,
            startJobOnce: (o, s, jobId, command) => this.startJobOnce(o, s, jobId, command),
          },
          owner,
          sessionId,
          turnKey,
        ),
    };
    const followUp: FollowUpDeps = {
      ...common,
      jobsOf: (sessionId) => this.jobs.ofSession(sessionId),
    };
    const effects = new JobEffects({
      clock: this.clock,
      random: options.random ?? Math.random,
      locks: this.locks,
      processes: this.processes,
      followUp,
      job: (id) => this.jobs.get(id),
    });
    this.jobs.wire({ effects, processes: this.processes, locks: this.locks });
    this.liveDeps = {
      ...common,
      locks: this.locks,
      random: options.random ?? Math.random,
      retry: {
        maxAttempts: this.policy.maxAttempts,
        baseMs: this.policy.retryBaseMs,
        maxMs: this.policy.retryMaxMs,
        leaseMs: this.policy.leaseMs,
      },
      started: new Map(),
      track: (turnId, sessionId, run) => {
        this.turns.set(turnId, { ...run, sessionId });
        void run.done.finally(() => this.turns.delete(turnId));
      },
      onError: (error) => this.logger.error({ err: error }, 'live turn failed'),
    };
    this.owned = new OwnedSessions({
      store: this.store,
      coordinator: this.coordinator,
      jobs: this.jobs,
      processes: this.processes,
      locks: this.locks,
      logger: this.logger,
      run: (command, from) => this.here(command, from),
      resumeTurns: (sessionId, commandOf) => this.resumeTurns(sessionId, commandOf),
      abortTurns: (sessionId) => {
        // Another process runs them now, from what they stored. Those still
        // waiting for the lock went with it: if the session comes back, they run again.
        for (const turn of this.turns.values()) {
          if (turn.sessionId === sessionId) turn.abort('handover');
        }
        for (const [turnId, of] of this.liveDeps.started) {
          if (of === sessionId) this.liveDeps.started.delete(turnId);
        }
      },
    });
    this.outputTail = new JobOutputTail({
      feed: this.feed,
      clock: this.clock,
      dataDir: this.dataDir,
      intervalMs: this.policy.outputFrameMs,
      running: () =>
        [...this.jobs.all()].filter(
          (j) => j.state === 'running' && j.row.command !== null && !j.context.held,
        ),
    });
    this.outputTail.start();
    this.retention = new Retention({
      store: this.store,
      clock: this.clock,
      dataDir: this.dataDir,
      retainMs: options.retainMs ?? 7 * 86_400_000,
      logger: this.logger,
    });
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
    this.writer.knowOwner(row.id, owner);
    // Nobody owns a session before it exists: this first write is not fenced.
    await this.writer.commit(
      row.id,
      () => ({
        sessions: [row],
        events: [
          this.writer.event(owner, 'session.created', { session: sessionView(row) }, row.id),
        ],
      }),
      false,
    );
    if (this.coordinator.shared && (await this.coordinator.claim(row.id)) !== null) {
      this.owned.created(row.id);
    }
    return sessionView(row, this.locks.view(row.id));
  }

  async listSessions(owner: string): Promise<SessionView[]> {
    const rows = await this.store.listSessions(owner);
    return rows.map((row) => sessionView(row, this.locks.view(row.id)));
  }

  async getSession(owner: string, id: string): Promise<SessionView> {
    const row = await this.sessionOf(owner, id);
    const lock = this.coordinator.shared
      ? await this.onOwner<LockView>({ kind: 'lockView', owner, sessionId: id })
      : this.locks.view(id);
    return sessionView(row, lock);
  }

  async deleteSession(owner: string, id: string): Promise<void> {
    this.assertOpen();
    await this.onOwner({ kind: 'deleteSession', owner, sessionId: id });
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
    options: { onBusy?: 'enqueue' | 'reject' | undefined } = {},
  ): Promise<{ turnId: string; message: MessageView }> {
    this.assertOpen();
    return this.onOwner({
      kind: 'sendMessage',
      owner,
      sessionId,
      content,
      turnId: this.ids.turn(),
      messageId: this.ids.message(),
      ...(options.onBusy ? { onBusy: options.onBusy } : {}),
    });
  }

  // ---- jobs -------------------------------------------------------------------------------------

  async startJob(owner: string, sessionId: string, body: StartJobBody): Promise<JobView> {
    this.assertOpen();
    return this.onOwner({ kind: 'startJob', owner, sessionId, jobId: this.ids.job(), body });
  }

  /**
   * A job that an agent's tool call starts, under an id that the call
   * determines: asked again (the turn was retried or recovered), it answers
   * with the job already started, in whatever state it is now.
   */
  private async startJobOnce(
    owner: string,
    sessionId: string,
    jobId: string,
    command: string,
  ): Promise<JobView> {
    this.assertOpen();
    const existing = await this.store.getJob(jobId);
    if (existing?.owner === owner && existing.sessionId === sessionId) {
      return this.jobs.viewOf(existing);
    }
    return this.onOwner({ kind: 'startJob', owner, sessionId, jobId, body: { command } });
  }

  async completeJob(owner: string, jobId: string, body: CompleteJobBody): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobs.rowOf(owner, jobId);
    return this.onOwner({ kind: 'completeJob', owner, sessionId: row.sessionId, jobId, body });
  }

  async cancelJob(owner: string, jobId: string): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobs.rowOf(owner, jobId);
    return this.onOwner({ kind: 'cancelJob', owner, sessionId: row.sessionId, jobId });
  }

  /** A sign of life from an external job (SPEC §5 heartbeat). */
  async heartbeatJob(owner: string, jobId: string): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobs.rowOf(owner, jobId);
    return this.onOwner({ kind: 'heartbeatJob', owner, sessionId: row.sessionId, jobId });
  }

  /** Re-drives a `failed` job: its attempts start over. */
  async retryJob(owner: string, jobId: string): Promise<JobView> {
    this.assertOpen();
    const row = await this.jobs.rowOf(owner, jobId);
    return this.onOwner({ kind: 'retryJob', owner, sessionId: row.sessionId, jobId });
  }

  async getJob(owner: string, jobId: string): Promise<JobView> {
    return this.jobs.viewOf(await this.jobs.rowOf(owner, jobId));
  }

  /** A page of a job's output from byte `since`, while it runs and after. */
  async jobOutput(owner: string, jobId: string, since: number): Promise<JobOutputView> {
    return readJobOutput(this.dataDir, await this.getJob(owner, jobId), since);
  }

  async listJobs(
    owner: string,
    filter: {
      sessionId?: string | undefined;
      state?: string | undefined;
      /** Every one must match: a key alone asks for the label, with a value for that value. */
      label?: { key: string; value: string | null }[] | undefined;
    },
  ): Promise<JobView[]> {
    if (filter.sessionId) await this.sessionOf(owner, filter.sessionId);
    const rows = await this.store.listJobs({
      owner,
      ...(filter.sessionId ? { sessionId: filter.sessionId } : {}),
      ...(filter.state ? { state: filter.state } : {}),
    });
    const wanted = filter.label ?? [];
    return rows.filter((row) => hasLabels(row, wanted)).map((row) => this.jobs.viewOf(row));
  }

  // ---- start and stop ---------------------------------------------------------------------------

  /**
   * Rebuilds every unfinished job from the store and resumes it: running
   * processes are re-adopted (or found finished, or lost), a follow-up cut off
   * mid-way counts as a failed attempt, a backoff resumes at its stored time.
   * With a shared store, only the sessions this process comes to own.
   */
  async recover(): Promise<{ recovered: number }> {
    if (this.coordinator.shared) {
      // Before any notice can arrive and before the feed has a client: see FeedTail.
      await this.tail.start();
      await this.coordinator.start({
        claimed: (sessionId) => this.owned.load(sessionId),
        lost: (sessionId) => this.owned.forget(sessionId),
        commands: (sessionId) =>
          void this.owned
            .runCommands(sessionId)
            .catch((error: unknown) =>
              this.logger.warn({ err: error, sessionId }, 'could not run forwarded commands'),
            ),
        stored: (owner, seq) => this.tail.stored(owner, seq),
        ephemeral: (owner, frame) => this.feed.fromPeer(owner, frame as FeedFrame),
      });
      this.retention.start();
      return { recovered: this.owned.size };
    }
    // Live turns first: a person waits for them, and they go before follow-ups.
    await this.resumeTurns();
    const rows = await this.store.listJobs({ unfinished: true });
    for (const row of rows) {
      await this.jobs.recover(row).catch((error: unknown) => {
        this.logger.error({ err: error, jobId: row.id }, 'could not recover job');
      });
    }
    this.processes.pump();
    this.retention.start();
    return { recovered: rows.length };
  }

  /**
   * Resolves once every write this process queued so far is stored (the
   * `session.lock` event of a lock that was just released, for one), so a
   * caller that saw the runtime go quiet can read a store that stays as it is.
   */
  settled(): Promise<void> {
    return this.writer.settled();
  }

  /** Graceful shutdown; safe to call twice. Every step runs even when one fails. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- where a call runs ------------------------------------------------------------------------

  /** Runs a command here if this process owns (or can take) the session, else on its owner. */
  private async onOwner<T>(command: Command): Promise<T> {
    if (!this.coordinator.shared || (await this.own(command.sessionId))) {
      return (await this.here(command)) as T;
    }
    return unwrap<T>(await this.coordinator.forward(command.sessionId, command));
  }

  private async own(sessionId: string): Promise<boolean> {
    if (this.coordinator.epoch(sessionId) === undefined) {
      if ((await this.coordinator.claim(sessionId)) === null) return false;
    }
    await this.owned.load(sessionId);
    return true;
  }

  /**
   * The owner's side of every command, whether it was called here or
   * forwarded (`from`, its stored form). A forwarded command's result is
   * recorded in the transaction of its effect, so that an owner that dies
   * after the effect leaves the command done: nobody does it again.
   */
  private async here(command: Command, from?: StoredCommand): Promise<unknown> {
    const { owner, sessionId } = command;
    const id = from?.id;
    switch (command.kind) {
      case 'sendMessage':
        return sendMessageHere(
          {
            store: this.store,
            writer: this.writer,
            live: this.liveDeps,
            owned: this.owned,
            now: () => this.clock.now(),
          },
          await this.sessionOf(owner, sessionId),
          command,
          from,
        );
      case 'startJob':
        await this.sessionOf(owner, sessionId);
        return this.jobs
          .start(owner, sessionId, command.jobId, command.body, id)
          .catch(async (error: unknown) => {
            // Stored, without its result, by an owner of an older build that died since: that job.
            const stored = error instanceof StoreConflictError && from;
            const existing = stored ? await this.store.getJob(command.jobId) : null;
            if (existing?.sessionId === sessionId) return this.jobs.viewOf(existing);
            throw error;
          });
      case 'completeJob':
        return this.jobs.complete(await this.jobs.rowOf(owner, command.jobId), command.body, id);
      case 'cancelJob':
        return this.jobs.cancel(await this.jobs.rowOf(owner, command.jobId), id);
      case 'heartbeatJob':
        return this.jobs.heartbeat(await this.jobs.rowOf(owner, command.jobId), id);
      case 'retryJob':
        return this.jobs.retry(await this.jobs.rowOf(owner, command.jobId), id);
      case 'deleteSession':
        return this.deleteHere(owner, sessionId, id);
      case 'lockView':
        await this.sessionOf(owner, sessionId);
        return this.locks.view(sessionId);
    }
  }

  private async deleteHere(owner: string, id: string, command?: number): Promise<null> {
    await this.sessionOf(owner, id);
    const at = iso(this.clock.now());
    await this.writer.commit(id, () => ({
      sessionDeletes: [{ id, at }],
      events: [this.writer.event(owner, 'session.deleted', {}, id)],
      ...(command === undefined
        ? {}
        : { commands: [{ id: command, result: { ok: true, value: null }, done: true }] }),
    }));
    this.locks.delete(id);
    this.jobs.sessionDeleted(id);
    return null;
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
    await step('retention', () => this.retention.close());
    await step('output tail', () => this.outputTail.close());
    await step('drain', () => this.drain());
    await step('actors', () => {
      this.jobs.stopAll();
      this.locks.stop();
    });
    await step('writes', () => this.writer.drain());
    await step('agent', () => this.agent.close?.());
    await step('coordinator', () => this.coordinator.close());
    await step('processes', () => this.processes.close());
    await step('store', () => this.store.close());
  }

  /** Waits for follow-ups and live turns to end, up to the drain deadline, then aborts them. */
  private async drain(): Promise<void> {
    const deadline = this.clock.now() + this.policy.drainMs;
    const busy = () =>
      this.turns.size > 0 || [...this.jobs.all()].some((j) => j.state === 'continuing');
    while (busy() && this.clock.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // Left open in the store: the next start runs them again from their journal.
    for (const turn of this.turns.values()) turn.abort('handover');
    await Promise.allSettled([...this.turns.values()].map((t) => t.done));
  }

  /**
   * Runs again the live turns (of a session, or all) that a crash, a
   * shutdown or a lost session left with neither answer nor notice: each goes
   * on from its journal and ends answered or noticed. Those of a deleted
   * session are closed.
   */
  private async resumeTurns(
    sessionId?: string,
    commandOf: (turnId: string) => number | undefined = () => undefined,
  ): Promise<void> {
    for (const open of await this.store.listOpenTurns(sessionId)) {
      if (this.coordinator.shared && this.coordinator.epoch(open.sessionId) === undefined) continue;
      const session = await this.store.getSession(open.sessionId);
      if (!session) {
        await this.writer
          .commit(open.sessionId, () => ({ closedTurns: [open.turnId] }))
          .catch((error: unknown) => this.logger.warn({ err: error }, 'could not close a turn'));
        continue;
      }
      this.writer.knowOwner(session.id, session.owner);
      startLiveTurn(
        this.liveDeps,
        session,
        open.turnId,
        { id: open.messageId, row: null },
        Promise.resolve(),
        commandOf(open.turnId),
      );
    }
  }

  private assertOpen(): void {
    if (this.closing) throw new BatonError('shutting_down', 'the service is shutting down');
  }

  private async sessionOf(owner: string, id: string): Promise<SessionRow> {
    const row = await this.store.getSession(id);
    if (!row || row.owner !== owner) throw notFound('session', id);
    this.writer.knowOwner(id, owner);
    return row;
  }
}
