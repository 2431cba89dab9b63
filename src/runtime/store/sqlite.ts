import Database from 'better-sqlite3';
import { migrateSqlite } from './sqlite-migrations.js';
import {
  isSqliteError,
  isUniqueViolation,
  jobParams,
  jobUpdateParams,
  prepareStatements,
  toEvent,
  toJob,
  toMessage,
  toOpenTurn,
  toSession,
  toStoreError,
  UNAVAILABLE_CODE,
  utf8,
  type Statements,
} from './sqlite-sql.js';
import {
  checkPruneArgs,
  DuplicateFollowUpError,
  FencedError,
  StoreConflictError,
  StoreWriteError,
} from './store.js';
import type {
  Batch,
  CommitResult,
  Iso,
  JobFilter,
  JobRow,
  JobWrite,
  MessageRow,
  OpenTurn,
  NewEvent,
  SessionRow,
  Store,
  StoredEvent,
} from './store.js';

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Database file, created when missing; `':memory:'` for a private in-memory database. */
  path: string;
  /**
   * How long a write waits for another connection's lock before failing with
   * {@link StoreWriteError}.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
}

/** The prepared statements of an open store and its commit and prune transactions. */
type Connection = Statements & {
  commitGroup(batches: Batch[]): GroupResult[];
  pruneEvents(before: Iso, limit: number): number;
};

type GroupResult = { ok: true; value: CommitResult } | { ok: false; error: unknown };

interface PendingCommit {
  batch: Batch;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

/**
 * The embedded {@link Store}: one SQLite file in WAL mode through better-sqlite3.
 *
 * better-sqlite3 is synchronous; the methods still return promises so that
 * callers are written once for this and the PostgreSQL backend.
 */
export class SqliteStore implements Store {
  /**
   * The open connection, or null before {@link SqliteStore.init} and after
   * {@link SqliteStore.close}. Protected so that tests can inject faults.
   */
  protected db: Database.Database | null = null;
  private conn: Connection | null = null;
  private closed = false;
  private readonly pending: PendingCommit[] = [];
  private readonly path: string;
  private readonly busyTimeoutMs: number;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  }

  async init(): Promise<void> {
    if (this.closed) throw new StoreWriteError('SQLite store is closed');
    if (this.db) return;
    let db: Database.Database | null = null;
    try {
      db = new Database(this.path, { timeout: this.busyTimeoutMs });
      db.pragma('journal_mode = WAL');
      // In WAL mode NORMAL syncs only at checkpoints, so a commit that already
      // returned can vanish on power loss. FULL syncs the WAL on every commit:
      // a stored follow-up or feed event that was acknowledged stays stored.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      // A batch written in a savepoint (see commitGroup) makes SQLite keep a
      // sub-journal of the pages it changes, to be able to roll it back alone.
      // In a temporary file that sub-journal took half the commit's time; in
      // memory it is bounded by the pages one group touches.
      db.pragma('temp_store = MEMORY');
      // A checkpoint copies each page changed since the last one back into
      // the database file. A job's row and the feed's index pages change again
      // and again, so checkpointing every 4000 pages (16 MB of WAL) instead of
      // SQLite's 1000 copies each of them fewer times: the replayed commits of
      // a throughput round took 12% less CPU. The WAL file grows to about that.
      db.pragma('wal_autocheckpoint = 4000');
      migrateSqlite(db);
      const statements = prepareStatements(db);
      const open = db;
      const perBatch: TakeSeqs = (owner, count) => {
        const last = statements.takeSeqs.get(owner, count);
        if (last === undefined) throw new Error(`no seq allocated for owner ${owner}`);
        return last - count + 1;
      };
      // Called inside the group transaction below, each batch becomes a
      // savepoint: a batch that fails rolls back alone, the others still commit.
      const one = db.transaction((batch: Batch) => this.writeBatch(statements, batch, perBatch));
      const isolated = db.transaction((batches: Batch[]) =>
        batches.map((batch): GroupResult => {
          try {
            return { ok: true, value: one(batch) };
          } catch (error) {
            // A full disk or an I/O error can roll back the whole transaction
            // (SQLite does so on its own): then every batch of the group fails.
            if (!open.inTransaction || isUnavailable(error)) throw error;
            return { ok: false, error };
          }
        }),
      );
      // The common case, every batch of the group goes through, runs without
      // the savepoints (a sixth of a group's CPU in the throughput bench) and
      // takes each owner's event numbers once for the whole group. Any
      // failure rolls it all back.
      const whole = db.transaction((batches: Batch[]) => {
        const take = groupSeqs(batches, perBatch);
        return batches.map((batch): GroupResult => ({
          ok: true,
          value: this.writeBatch(statements, batch, take),
        }));
      });
      // IMMEDIATE takes the write lock up front: a deferred transaction that
      // upgrades from read to write fails at once with SQLITE_BUSY in WAL mode,
      // without waiting out busy_timeout.
      const commitGroup = (batches: Batch[]): GroupResult[] => {
        try {
          return whole.immediate(batches);
        } catch (error) {
          if (isUnavailable(error)) throw error;
          // A batch failed and nothing of the group was written: a lone batch
          // has its answer; a group runs again, each batch in its savepoint.
          if (batches.length === 1) return [{ ok: false, error }];
          return isolated.immediate(batches);
        }
      };
      // One transaction per call: one fsync for the whole chunk, however
      // many owners it spans.
      const prune = db.transaction((before: Iso, limit: number): number => {
        let deleted = 0;
        for (const { owner, last_seq: last } of statements.seqOwners.all()) {
          if (deleted >= limit) break;
          const params = { owner, last, before, limit: limit - deleted };
          deleted += statements.pruneOwnerEvents.run(params).changes;
        }
        return deleted;
      });
      const pruneEvents = (before: Iso, limit: number) => prune.immediate(before, limit);
      this.conn = { ...statements, commitGroup, pruneEvents };
      this.db = db;
    } catch (err) {
      db?.close();
      throw toStoreError(err);
    }
  }

  /**
   * Group commit: batches handed in during the same turn of the event loop
   * share one transaction and so one fsync. When one of them fails, the
   * group is written again with each batch in its own savepoint, so only
   * that batch is refused. A batch's promise settles only after the shared
   * COMMIT is durable.
   */
  commit(batch: Batch): Promise<CommitResult> {
    // Refused at once when closed, not one turn later with the group.
    if (this.closed || !this.conn) return Promise.reject(toStoreError(this.unusable()));
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const group = this.pending.splice(0);
    if (group.length === 0) return;
    let results: GroupResult[];
    try {
      results = this.use((c) => c.commitGroup(group.map((p) => p.batch)));
    } catch (error) {
      for (const p of group) p.reject(error);
      return;
    }
    group.forEach((p, i) => {
      const result = results[i] as GroupResult;
      if (result.ok) p.resolve(result.value);
      else p.reject(toStoreError(result.error));
    });
  }

  async getSession(id: string): Promise<SessionRow | null> {
    const record = this.use((s) => s.getSession.get(id));
    return record ? toSession(record) : null;
  }

  async listSessions(owner: string): Promise<SessionRow[]> {
    return this.use((s) => s.listSessions.all(owner)).map(toSession);
  }

  async listMessages(sessionId: string): Promise<MessageRow[]> {
    return this.use((s) => s.listMessages.all(sessionId)).map(toMessage);
  }

  async listOpenTurns(sessionId?: string): Promise<OpenTurn[]> {
    const key = sessionId ?? null;
    return this.use((s) => s.listOpenTurns.all(key, key)).map(toOpenTurn);
  }

  async readJournal(turnKey: string): Promise<unknown[]> {
    return this.use((s) => s.readJournal.all(turnKey)).map((r) => JSON.parse(r.entry) as unknown);
  }

  async getJob(id: string): Promise<JobRow | null> {
    const record = this.use((s) => s.getJob.get(id));
    return record ? toJob(record) : null;
  }

  async listJobs(filter: JobFilter): Promise<JobRow[]> {
    const records = this.use((s) =>
      s.listJobs.all({
        owner: filter.owner ?? null,
        session_id: filter.sessionId ?? null,
        state: filter.state ?? null,
        unfinished: filter.unfinished ? 1 : 0,
      }),
    );
    return records.map(toJob);
  }

  async readEvents(
    owner: string,
    since: number,
    limit: number,
    sessionId?: string,
  ): Promise<StoredEvent[]> {
    const records = this.use((s) =>
      sessionId === undefined
        ? s.readEvents.all(owner, since, limit)
        : s.readSessionEvents.all(owner, sessionId, since, limit),
    );
    return records.map(toEvent);
  }

  async lastSeq(owner: string): Promise<number> {
    return this.use((s) => s.lastSeq.get(owner)) ?? 0;
  }

  async lastSeqs(): Promise<Map<string, number>> {
    const rows = this.use((s) => s.seqOwners.all());
    return new Map(rows.map((r) => [r.owner, r.last_seq]));
  }

  async firstSeq(owner: string): Promise<number> {
    return this.use((s) => s.firstSeq.get({ owner })) ?? 1;
  }

  /** Synchronous like every call here: `limit` bounds how long it holds the event loop. */
  async pruneEvents(before: Iso, limit: number): Promise<number> {
    checkPruneArgs(before, limit);
    return this.use((c) => c.pruneEvents(before, limit));
  }

  async close(): Promise<void> {
    // Commits already handed in are written (or fail) before the file closes.
    this.flush();
    const db = this.db;
    this.closed = true;
    this.db = null;
    this.conn = null;
    db?.close();
  }

  private unusable(): StoreWriteError {
    return new StoreWriteError(
      this.closed ? 'SQLite store is closed' : 'SQLite store is not open: call init() first',
    );
  }

  private use<T>(query: (c: Connection) => T): T {
    if (this.closed) throw new StoreWriteError('SQLite store is closed');
    if (!this.conn) throw new StoreWriteError('SQLite store is not open: call init() first');
    try {
      return query(this.conn);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** The body of the commit transaction; any throw rolls all of it back. */
  private writeBatch(s: Statements, batch: Batch, take: TakeSeqs): CommitResult {
    if (batch.fence) {
      const epoch = s.sessionEpoch.get(batch.fence.sessionId);
      if (epoch !== undefined && epoch !== batch.fence.epoch) throw new FencedError(batch.fence);
    }
    for (const session of batch.sessions ?? []) {
      s.insertSession.run(
        session.id,
        session.owner,
        utf8(session.title),
        utf8(session.systemPrompt),
        session.createdAt,
      );
    }
    for (const deletion of batch.sessionDeletes ?? []) {
      s.deleteSession.run(deletion.at, deletion.id);
    }

    const jobVersions: Record<string, number> = {};
    for (const write of batch.jobs ?? []) {
      jobVersions[write.row.id] = this.writeJob(s, write);
    }

    for (const message of batch.messages ?? []) {
      s.insertMessage.run(
        message.id,
        message.sessionId,
        message.owner,
        message.role,
        utf8(message.content),
        JSON.stringify(message.metadata),
        message.createdAt,
        message.queued ? 1 : 0,
      );
      (message.answersJobs ?? []).forEach((jobId, position) => {
        try {
          s.insertFollowUp.run(jobId, message.id, position);
        } catch (err) {
          throw isUniqueViolation(err) ? new DuplicateFollowUpError(jobId) : err;
        }
      });
    }

    for (const id of batch.enteredMessages ?? []) s.enterMessage.run(id);
    for (const turn of batch.openTurns ?? []) {
      s.openTurn.run(turn.turnId, turn.sessionId, turn.owner, turn.messageId);
    }
    for (const turnId of batch.closedTurns ?? []) s.closeTurn.run(turnId);
    for (const step of batch.journal ?? []) {
      s.insertJournal.run(step.turnKey, step.step, step.sessionId, JSON.stringify(step.entry));
    }

    return { events: this.appendEvents(s, batch.events ?? [], take), jobVersions };
  }

  private writeJob(s: Statements, write: JobWrite): number {
    if (write.expectedVersion === null) {
      try {
        s.insertJob.run(jobParams(write.row));
      } catch (err) {
        // The caller believed the job was new; someone else created it first.
        throw isUniqueViolation(err) ? new StoreConflictError(write.row.id, null) : err;
      }
      return 1;
    }
    const { changes } = s.updateJob.run(...jobUpdateParams(write.row, write.expectedVersion));
    if (changes === 0) throw new StoreConflictError(write.row.id, write.expectedVersion);
    return write.expectedVersion + 1;
  }

  /** Stores events in order; each owner's numbers are taken at once. */
  private appendEvents(s: Statements, events: NewEvent[], take: TakeSeqs): StoredEvent[] {
    const next = new Map<string, number>();
    for (const [owner, count] of countByOwner(events)) next.set(owner, take(owner, count));
    return events.map((event) => {
      const seq = next.get(event.owner) as number;
      next.set(event.owner, seq + 1);
      return this.appendEvent(s, event, seq);
    });
  }

  private appendEvent(s: Statements, event: NewEvent, seq: number): StoredEvent {
    const data = JSON.stringify(event.data);
    const sessionId = event.sessionId ?? null;
    const jobId = event.jobId ?? null;
    const turnId = event.turnId ?? null;
    s.insertEvent.run(event.owner, seq, event.at, event.type, sessionId, jobId, turnId, data);
    // Parsed back from what was stored, so a live event and its replay are equal.
    return toEvent({
      owner: event.owner,
      seq,
      at: event.at,
      type: event.type,
      session_id: sessionId,
      job_id: jobId,
      turn_id: turnId,
      data,
    });
  }
}

/** Gives `count` consecutive event numbers of an owner; returns the first. */
type TakeSeqs = (owner: string, count: number) => number;

function countByOwner(events: NewEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of events) counts.set(event.owner, (counts.get(event.owner) ?? 0) + 1);
  return counts;
}

/**
 * Takes the event numbers of a whole group, one statement per owner, and
 * hands them out in order. Only for a group that commits or rolls back as
 * one: a batch rolled back alone would leave a gap.
 */
function groupSeqs(batches: Batch[], take: TakeSeqs): TakeSeqs {
  const next = new Map<string, number>();
  for (const [owner, count] of countByOwner(batches.flatMap((b) => b.events ?? []))) {
    next.set(owner, take(owner, count));
  }
  return (owner, count) => {
    const first = next.get(owner);
    if (first === undefined) throw new Error(`no seq allocated for owner ${owner}`);
    next.set(owner, first + count);
    return first;
  };
}

function isUnavailable(error: unknown): boolean {
  return isSqliteError(error) && UNAVAILABLE_CODE.test(error.code);
}
