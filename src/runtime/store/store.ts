/**
 * The durable store's contract. Every backend (SQLite now, PostgreSQL later)
 * implements it and passes the same contract suite in `test/store/`.
 *
 * All writes go through {@link Store.commit}: one call is one transaction, so a
 * state change, the messages it stores and the feed events that describe it are
 * either all durable or none is.
 */

import { BatonError } from '../errors.js';

/** ISO-8601 timestamp string, e.g. `2026-11-25T10:00:00.000Z`. */
export type Iso = string;

export type MessageRole = 'user' | 'assistant' | 'system';

export interface SessionRow {
  id: string;
  owner: string;
  title: string;
  systemPrompt: string | null;
  createdAt: Iso;
}

export interface MessageRow {
  id: string;
  sessionId: string;
  owner: string;
  role: MessageRole;
  content: string;
  metadata: Record<string, unknown>;
  createdAt: Iso;
  /**
   * Job ids this message answers (a follow-up or a failure notice). The store
   * keeps a unique key per job id: a second message for the same job makes the
   * whole commit fail with {@link DuplicateFollowUpError}.
   */
  answersJobs?: string[];
  /**
   * A user message accepted while it waits for its turn to take the session
   * lock: stored, but not yet in the history. It enters the history (after
   * every message stored so far) when its turn starts, so the stored order is
   * the order the model saw. Listed after the history until then.
   */
  queued?: boolean;
}

export interface JobHistoryEntry {
  state: string;
  at: Iso;
}

/** Where a detached process lives, so that it can be re-adopted after a restart. */
export interface JobProcessInfo {
  pid: number;
  /** Process start time as read from the OS (with the boot id), to prove identity. */
  startTime: string;
  /** Directory holding the wrapper, log and exit files. */
  dir: string;
  startedAt: Iso;
  /** The Baton process that started it (its coordinator's host id). */
  host?: string;
}

export interface JobRow {
  id: string;
  sessionId: string;
  owner: string;
  /** Null for an external job. */
  command: string | null;
  cwd: string | null;
  timeoutS: number | null;
  external: boolean;
  name: string | null;
  /** Small key → value tags given at creation, to find jobs by (`GET /v1/jobs?label=`). */
  labels: Record<string, string>;
  /** Top-level state of the job machine. */
  state: string;
  outcome: string | null;
  exitCode: number | null;
  attempts: number;
  /** Capped output (head and tail) kept for the result. */
  output: string;
  createdAt: Iso;
  finishedAt: Iso | null;
  followedUpAt: Iso | null;
  history: JobHistoryEntry[];
  why: string;
  /** Persisted machine snapshot: `{ value, context }` as JSON-safe data. */
  snapshot: unknown;
  process: JobProcessInfo | null;
  /** Incremented by the store on every write; used as a fencing token. */
  version: number;
}

export interface NewEvent {
  owner: string;
  at: Iso;
  type: string;
  sessionId?: string | null;
  jobId?: string | null;
  turnId?: string | null;
  data: Record<string, unknown>;
}

export interface StoredEvent extends NewEvent {
  /** Increases by exactly one per owner; allocated inside the commit. */
  seq: number;
}

export interface JobWrite {
  row: Omit<JobRow, 'version'>;
  /**
   * `null` inserts a new job; a number updates the job only if its stored
   * version equals it (else the commit fails with {@link StoreConflictError}).
   */
  expectedVersion: number | null;
}

/**
 * The commit applies only while the session's `owner_epoch` is `epoch`: a
 * process that lost the session to another can no longer write for it.
 */
export interface Fence {
  sessionId: string;
  epoch: number;
}

/**
 * A command forwarded to the session's owner (SPEC §8) that the commit
 * answers or ends, in the same transaction as the command's effect: an owner
 * that dies after the commit leaves nothing to do again. Only a store that
 * several processes share holds forwarded commands; the embedded store,
 * alone with its process, never gets one and has nothing to record.
 */
export interface CommandWrite {
  /** The command's row. */
  id: number;
  /** What its caller is answered (JSON); the first one recorded stays. */
  result?: unknown;
  /** Nothing of the command is left to do: no other process takes it up again. */
  done: boolean;
}

/**
 * One step of an agent turn (a model round that called tools, or a tool's
 * result), stored before the next step runs so that a retried or recovered
 * turn resumes instead of doing it again. `entry` is the agent's own record.
 */
export interface JournalWrite {
  /** The turn: `live:<turnId>` or `followUp:<jobId>`. */
  turnKey: string;
  sessionId: string;
  /** 0, 1, 2… within the turn; a step written twice fails the batch. */
  step: number;
  entry: unknown;
}

/** A user message's live turn that has neither an answer nor a notice yet. */
export interface OpenTurn {
  turnId: string;
  sessionId: string;
  owner: string;
  messageId: string;
}

export interface Batch {
  fence?: Fence;
  sessions?: SessionRow[];
  sessionDeletes?: { id: string; at: Iso }[];
  messages?: MessageRow[];
  /**
   * Queued messages that enter the history now, in this order, each after
   * every message stored so far. A message that is not queued (any more) is
   * left as it is, so a turn run again does not move its message twice.
   */
  enteredMessages?: string[];
  jobs?: JobWrite[];
  events?: NewEvent[];
  commands?: CommandWrite[];
  journal?: JournalWrite[];
  /** Live turns that start waiting for an answer (with their user message). */
  openTurns?: OpenTurn[];
  /** Live turns that got their answer or notice. */
  closedTurns?: string[];
}

export interface CommitResult {
  /** The batch's events with their sequence numbers, in batch order. */
  events: StoredEvent[];
  /** New version of each written job, by job id. */
  jobVersions: Record<string, number>;
}

export interface JobFilter {
  owner?: string;
  sessionId?: string;
  state?: string;
  /** Only jobs whose state is not final (`followedUp`, `failed`, `cancelled`, `skipped`). */
  unfinished?: boolean;
}

export interface Store {
  /** Opens the database and applies pending migrations. Safe to call once. */
  init(): Promise<void>;
  /**
   * Applies the whole batch in one transaction, or nothing of it. Batches are
   * applied in the order of the calls, even when an earlier call has not
   * resolved yet (a backend may share one transaction among several batches).
   */
  commit(batch: Batch): Promise<CommitResult>;
  getSession(id: string): Promise<SessionRow | null>;
  listSessions(owner: string): Promise<SessionRow[]>;
  listMessages(sessionId: string): Promise<MessageRow[]>;
  /** The stored steps of a turn, in step order (see {@link JournalWrite}). */
  readJournal(turnKey: string): Promise<unknown[]>;
  /**
   * Live turns still to answer, of one session or all: the one whose message
   * is in the history first, then the queued ones in the order they came.
   */
  listOpenTurns(sessionId?: string): Promise<OpenTurn[]>;
  getJob(id: string): Promise<JobRow | null>;
  listJobs(filter: JobFilter): Promise<JobRow[]>;
  /** Events of one owner with `seq > since`, in order, at most `limit`. */
  readEvents(
    owner: string,
    since: number,
    limit: number,
    sessionId?: string,
  ): Promise<StoredEvent[]>;
  /** Highest seq stored for the owner, 0 when none. */
  lastSeq(owner: string): Promise<number>;
  /** {@link Store.lastSeq} of every owner that ever had an event, read at one instant. */
  lastSeqs(): Promise<Map<string, number>>;
  /**
   * Lowest seq still stored for the owner: 1 until {@link Store.pruneEvents}
   * removed some of its events, `lastSeq + 1` for an owner without any. A
   * replay from `since` is whole only when `since >= firstSeq - 1`.
   */
  firstSeq(owner: string): Promise<number>;
  /**
   * Deletes feed events whose `at` is before `before`, at most `limit` of them,
   * and returns how many it deleted: fewer than `limit` means none is left.
   * Each owner's events go oldest seq first, and stop at the first one that
   * is not old enough, so what an owner keeps is one unbroken run of seqs
   * (a replay never skips an event in the middle). An owner's newest event
   * is always kept: a replay can then tell from the store alone that events
   * before it are gone. Seqs are taken from a counter, so new events go on
   * numbering after the pruned ones.
   */
  pruneEvents(before: Iso, limit: number): Promise<number>;
  /** Closes the database; safe to call twice. */
  close(): Promise<void>;
}

/** A job's stored version no longer matches: another writer moved it on. */
export class StoreConflictError extends Error {
  override readonly name = 'StoreConflictError';
  readonly code = 'store_conflict';
  constructor(
    readonly jobId: string,
    readonly expected: number | null,
    message = `job ${jobId} was changed by another writer (expected version ${expected})`,
  ) {
    super(message);
  }
}

/** The batch's fence failed: another process owns the session now. */
export class FencedError extends StoreConflictError {
  constructor(fence: Fence) {
    super(
      '',
      fence.epoch,
      `session ${fence.sessionId} has a newer owner than epoch ${fence.epoch}; nothing was written`,
    );
  }
}

/** A message answering this job is stored already: the commit would double it. */
export class DuplicateFollowUpError extends Error {
  override readonly name = 'DuplicateFollowUpError';
  readonly code = 'duplicate_follow_up';
  constructor(readonly jobId: string) {
    super(`job ${jobId} already has a stored follow-up`);
  }
}

/** The store cannot write (disk full, read-only, closed). Nothing was written. */
export class StoreWriteError extends Error {
  override readonly name = 'StoreWriteError';
  readonly code = 'store_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const FINAL_JOB_STATES: readonly string[] = ['followedUp', 'failed', 'cancelled', 'skipped'];

/** The exact form `Date#toISOString` gives, which sorts as text in time order. */
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * Refuses bad arguments of {@link Store.pruneEvents} before anything is
 * deleted. Stores compare `at` as text, so only the one ISO form is taken:
 * another form of the same instant would compare wrong.
 */
export function checkPruneArgs(before: Iso, limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new BatonError('invalid_request', `limit must be a positive whole number, got ${limit}`);
  }
  if (!ISO_UTC.test(before) || Number.isNaN(Date.parse(before))) {
    throw new BatonError(
      'invalid_request',
      `before must be an ISO time such as 2026-11-25T10:00:00.000Z, got ${JSON.stringify(before)}`,
    );
  }
}
