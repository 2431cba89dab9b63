import { createActor, type Actor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import type {
  JobContext,
  JobEvent,
  JobInput,
  JobMachine,
  JobState,
} from '../machines/job.machine.js';
import { iso } from './clock.js';
import type { Batch, JobRow, NewEvent } from './store/store.js';

type JobSnapshot = SnapshotFrom<JobMachine>;

/** The part of a job's row that the machine does not hold. */
export interface JobExtras {
  output: string;
  process: JobRow['process'];
}

/** What a job actor needs from the runtime around it. */
export interface JobActorHost {
  machine: JobMachine;
  now(): number;
  /** Runs a write in the session's serial queue, then applies its effects. */
  write(job: JobActor, batch: Batch): Promise<void>;
  why(job: JobActor): string;
  /** Messages and events that a transition stores with it (the failure notice). */
  transitionWrites(job: JobActor, entered: JobState[], row: Omit<JobRow, 'version'>): Batch;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  onError(job: JobActor, error: unknown): void;
}

/** Top-level state name of a job snapshot value (`{ running: 'queued' }` → `running`). */
export function topState(value: unknown): JobState {
  if (typeof value === 'string') return value as JobState;
  return Object.keys(value as Record<string, unknown>)[0] as JobState;
}

/** The persisted form of a job's machine: enough to rebuild the actor, nothing more. */
export interface PersistedJob {
  value: unknown;
  context: JobContext;
}

/**
 * A job's actor wired to the store: every change of its snapshot is written
 * (row + `job.state` events, one transaction) before the effects that the
 * transition asked for run. Effects are queued by the runtime's action
 * implementations and released by {@link JobActor.flushAfter}.
 */
export class JobActor {
  readonly id: string;
  readonly sessionId: string;
  readonly owner: string;
  readonly actor: Actor<JobMachine>;
  /**
   * The row as of the newest transition, ahead of the store while its write
   * is in flight (its version is the fencing token of the next write).
   */
  row: JobRow;
  /** The newest row known to be stored: what readers are shown. */
  durable: JobRow;
  extras: JobExtras;
  /** Set when a write failed: memory is ahead of the store until the job is rebuilt from it. */
  broken = false;
  /** Set when a commit made this job final before the actor moved there: later events are ignored. */
  finalCommitted = false;
  private pending: (() => void)[] = [];
  private immediate: (() => void)[] = [];
  private trail: JobState[] = [];
  private lastWritten: string;
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: JobActorHost,
    row: JobRow,
    start: { input: JobInput } | { persisted: PersistedJob },
  ) {
    this.id = row.id;
    this.sessionId = row.sessionId;
    this.owner = row.owner;
    this.row = row;
    this.durable = row;
    this.extras = { output: row.output, process: row.process };
    const inspect = (event: InspectionEvent) => {
      if (event.type === '@xstate.microstep' && event.actorRef === this.actor) {
        const state = topState((event.snapshot as JobSnapshot).value);
        if (this.trail[this.trail.length - 1] !== state) this.trail.push(state);
      }
      host.inspect?.(event);
    };
    if ('persisted' in start) {
      const snapshot = host.machine.resolveState({
        value: start.persisted.value as never,
        context: start.persisted.context,
      });
      const context = start.persisted.context;
      const input: JobInput = {
        jobId: context.jobId,
        sessionId: context.sessionId,
        maxAttempts: context.maxAttempts,
        retryBaseMs: context.retryBaseMs,
        retryMaxMs: context.retryMaxMs,
      };
      this.actor = createActor(host.machine, { snapshot, input, inspect });
      this.lastWritten = JSON.stringify(start.persisted);
    } else {
      this.actor = createActor(host.machine, { input: start.input, inspect });
      this.lastWritten = '';
    }
    this.actor.subscribe({
      next: () => this.onSnapshot(),
      error: (error) => host.onError(this, error),
    });
  }

  /** Starts the actor; for a new job this writes its first row. */
  start(): Promise<void> {
    this.actor.start();
    return this.lastWrite;
  }

  /** Sends an event from outside (process exit, lock grant, API call). */
  send(event: JobEvent): void {
    if (this.finalCommitted) return;
    this.actor.send(event);
  }

  /** Delivers an event whose outcome another commit already stored (a coalesced answer). */
  settle(event: JobEvent): void {
    this.actor.send(event);
  }

  get snapshot(): JobSnapshot {
    return this.actor.getSnapshot();
  }

  get state(): JobState {
    return topState(this.snapshot.value);
  }

  get context(): JobContext {
    return this.snapshot.context;
  }

  /** Queues an effect of the transition being taken; it runs once that transition is stored. */
  enqueue(effect: () => void): void {
    this.pending.push(effect);
  }

  /**
   * Queues an effect that changes memory only (the session lock): it runs as
   * soon as the transition's write is queued, not once it is stored. Whatever
   * it leads to is written through the same session queue, so after this
   * transition, and nothing leaves the process before those writes are
   * stored. Saves one commit round trip between a job's finish and its
   * follow-up.
   */
  enqueueNow(effect: () => void): void {
    this.immediate.push(effect);
  }

  /**
   * Resolves once the write of the current transition is durable. An effect
   * that starts as an invoked actor (the follow-up) awaits this before doing
   * anything, since actors start before the snapshot reaches subscribers.
   */
  async persisted(): Promise<void> {
    await Promise.resolve();
    await this.lastWrite;
  }

  persistedForm(snapshot: PersistedJob = this.snapshot): PersistedJob {
    return { value: snapshot.value, context: snapshot.context };
  }

  /**
   * Builds the row for a snapshot (the current one, or one computed ahead of
   * time for a commit that precedes the actor's own move).
   */
  buildRow(snapshot: PersistedJob, entered: JobState[]): Omit<JobRow, 'version'> {
    const now = this.host.now();
    const at = iso(now);
    const context = snapshot.context;
    const state = topState(snapshot.value);
    const history = [...this.row.history, ...entered.map((s) => ({ state: s, at }))];
    const row: Omit<JobRow, 'version'> = {
      ...this.row,
      state,
      outcome: context.outcome,
      exitCode: context.exitCode,
      attempts: context.attempts,
      output: this.extras.output,
      process: this.extras.process,
      finishedAt: context.finishedAt === null ? null : iso(context.finishedAt),
      followedUpAt: state === 'followedUp' ? (this.row.followedUpAt ?? at) : null,
      history,
      snapshot: this.persistedForm(snapshot),
      why: '',
    };
    return row;
  }

  stateEvents(row: Omit<JobRow, 'version'>, entered: JobState[]): NewEvent[] {
    return entered.map((state) => ({
      owner: this.owner,
      at: iso(this.host.now()),
      type: 'job.state',
      sessionId: this.sessionId,
      jobId: this.id,
      data: {
        state,
        outcome: row.outcome,
        exitCode: row.exitCode,
        attempts: row.attempts,
        finishedAt: row.finishedAt,
        why: row.why,
      },
    }));
  }

  /** Records that a commit made elsewhere (a follow-up's) stored `row` for this job. */
  stored(row: JobRow): void {
    if (row.version > this.durable.version) this.durable = row;
  }

  /** Remembers the written state, to be put back if a commit that moved it fails. */
  checkpoint(): () => void {
    const { row, lastWritten, finalCommitted } = this;
    return () => {
      this.row = row;
      this.lastWritten = lastWritten;
      this.finalCommitted = finalCommitted;
    };
  }

  /**
   * Records a row that another commit (a follow-up's) is writing for this job,
   * with the snapshot the actor will reach, so the actor's own write is skipped.
   */
  adoptWritten(row: Omit<JobRow, 'version'>, snapshot: PersistedJob): number {
    const expected = this.row.version;
    this.row = { ...row, version: expected + 1 };
    this.lastWritten = JSON.stringify(this.persistedForm(snapshot));
    return expected;
  }

  /** Writes the job's extras (process info, output) without a state change. */
  touch(): Promise<void> {
    this.lastWritten = '';
    this.onSnapshot();
    return this.lastWrite;
  }

  private onSnapshot(): void {
    const now = this.immediate.splice(0);
    this.write();
    runAll(now);
  }

  private write(): void {
    const effects = this.pending.splice(0);
    const entered = this.trail.splice(0);
    const snapshot = this.snapshot;
    const key = JSON.stringify(this.persistedForm(snapshot));
    if (key === this.lastWritten) {
      // Nothing of the job changed; only a lock event may ride in this write,
      // and its failure is reported by the lock's own writer. The job's
      // effects wait for it all the same, to stay in the session's order.
      this.lastWrite = this.host.write(this, {}).then(() => runAll(effects));
      // Callers that do not await still must not see an unhandled rejection.
      this.lastWrite.catch(() => undefined);
      return;
    }
    this.lastWritten = key;
    const insert = this.row.version === 0;
    const states = entered.length > 0 ? entered : insert ? [topState(snapshot.value)] : [];
    const row = this.buildRow(snapshot, states);
    row.why = this.host.why(this);
    const expectedVersion = insert ? null : this.row.version;
    const extra = this.host.transitionWrites(this, entered, row);
    // The row moves on at once: a transition taken before this write commits
    // builds on it (history, version) instead of on the stale stored one.
    this.row = { ...row, version: this.row.version + 1 };
    const written = this.row;
    const batch: Batch = {
      jobs: [{ row, expectedVersion }],
      messages: extra.messages ?? [],
      events: [
        ...(insert
          ? [
              {
                owner: this.owner,
                at: row.createdAt,
                type: 'job.created',
                sessionId: this.sessionId,
                jobId: this.id,
                data: {
                  command: row.command,
                  external: row.external,
                  name: row.name,
                  labels: row.labels,
                },
              },
            ]
          : []),
        ...this.stateEvents(
          row,
          entered.length > 0 ? entered : insert ? [row.state as JobState] : [],
        ),
        ...(extra.events ?? []),
      ],
    };
    this.lastWrite = this.host.write(this, batch).then(
      () => {
        if (written.version > this.durable.version) this.durable = written;
        runAll(effects);
      },
      (error: unknown) => {
        // Memory is now ahead of the store; the effects must not run, and a
        // restart resumes from the last durable state.
        this.broken = true;
        this.host.onError(this, error);
        throw error;
      },
    );
    // Callers that do not await still must not see an unhandled rejection.
    this.lastWrite.catch(() => undefined);
  }
}

function runAll(effects: (() => void)[]): void {
  for (const effect of effects) effect();
}
