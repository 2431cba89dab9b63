import Database from 'better-sqlite3';
import { migrateSqlite } from './sqlite-migrations.js';
import {
  DuplicateFollowUpError,
  FencedError,
  FINAL_JOB_STATES,
  StoreConflictError,
  StoreWriteError,
} from './store.js';
import type {
  Batch,
  CommitResult,
  JobFilter,
  JobHistoryEntry,
  JobProcessInfo,
  JobRow,
  JobWrite,
  MessageRole,
  MessageRow,
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

interface SessionRecord {
  id: string;
  owner: string;
  title: string;
  system_prompt: string | null;
  created_at: string;
}

interface MessageRecord {
  id: string;
  session_id: string;
  owner: string;
  role: string;
  content: string;
  metadata: string;
  created_at: string;
  answers_jobs: string;
}

interface JobRecord {
  id: string;
  session_id: string;
  owner: string;
  command: string | null;
  cwd: string | null;
  timeout_s: number | null;
  external: number;
  name: string | null;
  state: string;
  outcome: string | null;
  exit_code: number | null;
  attempts: number;
  output: string;
  created_at: string;
  finished_at: string | null;
  followed_up_at: string | null;
  history: string;
  why: string;
  snapshot: string;
  process: string | null;
  version: number;
}

interface EventRecord {
  owner: string;
  seq: number;
  at: string;
  type: string;
  session_id: string | null;
  job_id: string | null;
  turn_id: string | null;
  data: string;
}

type JobParams = Omit<JobRecord, 'version'>;

/**
 * Codes meaning the database cannot take the write at all (disk full, I/O
 * failure, read-only file, lock held past the busy timeout, damaged file), as
 * opposed to a bug in what was written. Extended codes such as
 * `SQLITE_IOERR_FSYNC` count too.
 */
const UNAVAILABLE_CODE =
  /^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN|CORRUPT|NOTADB|NOMEM|PERM)(_|$)/;

const JOB_COLUMNS = `id, session_id, owner, command, cwd, timeout_s, external, name, state, outcome,
  exit_code, attempts, output, created_at, finished_at, followed_up_at, history, why, snapshot,
  process, version`;

const EVENT_COLUMNS = 'owner, seq, at, type, session_id, job_id, turn_id, data';

const FINAL_STATES_JSON = JSON.stringify(FINAL_JOB_STATES);

function prepareStatements(db: Database.Database) {
  return {
    insertSession: db.prepare<[string, string, string, string | null, string]>(
      `INSERT INTO sessions (id, owner, title, system_prompt, created_at) VALUES (?, ?, ?, ?, ?)`,
    ),
    // The first deletion time wins: deleting twice must not move it.
    sessionEpoch: db
      .prepare<[string], number>('SELECT owner_epoch FROM sessions WHERE id = ?')
      .pluck(),
    deleteSession: db.prepare<[string, string]>(
      `UPDATE sessions SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`,
    ),
    getSession: db.prepare<[string], SessionRecord>(
      `SELECT id, owner, title, system_prompt, created_at FROM sessions
       WHERE id = ? AND deleted_at IS NULL`,
    ),
    listSessions: db.prepare<[string], SessionRecord>(
      `SELECT id, owner, title, system_prompt, created_at FROM sessions
       WHERE owner = ? AND deleted_at IS NULL ORDER BY created_at, id`,
    ),
    insertMessage: db.prepare<[string, string, string, string, string, string, string]>(
      `INSERT INTO messages (id, session_id, owner, role, content, metadata, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertFollowUp: db.prepare<[string, string, number]>(
      `INSERT INTO follow_ups (job_id, message_id, position) VALUES (?, ?, ?)`,
    ),
    listMessages: db.prepare<[string], MessageRecord>(
      `SELECT m.id, m.session_id, m.owner, m.role, m.content, m.metadata, m.created_at,
         (SELECT json_group_array(f.job_id ORDER BY f.position) FROM follow_ups f
          WHERE f.message_id = m.id) AS answers_jobs
       FROM messages m WHERE m.session_id = ? ORDER BY m.ordinal`,
    ),
    insertJob: db.prepare<JobParams>(
      `INSERT INTO jobs (${JOB_COLUMNS}) VALUES (@id, @session_id, @owner, @command, @cwd,
         @timeout_s, @external, @name, @state, @outcome, @exit_code, @attempts, @output,
         @created_at, @finished_at, @followed_up_at, @history, @why, @snapshot, @process, 1)`,
    ),
    updateJob: db.prepare<JobParams & { expected: number }>(
      `UPDATE jobs SET session_id = @session_id, owner = @owner, command = @command, cwd = @cwd,
         timeout_s = @timeout_s, external = @external, name = @name, state = @state,
         outcome = @outcome, exit_code = @exit_code, attempts = @attempts, output = @output,
         created_at = @created_at, finished_at = @finished_at, followed_up_at = @followed_up_at,
         history = @history, why = @why, snapshot = @snapshot, process = @process,
         version = version + 1
       WHERE id = @id AND version = @expected`,
    ),
    getJob: db.prepare<[string], JobRecord>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`),
    // Each filter is optional: a NULL parameter switches its condition off.
    listJobs: db.prepare<
      { owner: string | null; session_id: string | null; state: string | null; unfinished: number },
      JobRecord
    >(
      `SELECT ${JOB_COLUMNS} FROM jobs
       WHERE (@owner IS NULL OR owner = @owner)
         AND (@session_id IS NULL OR session_id = @session_id)
         AND (@state IS NULL OR state = @state)
         AND (@unfinished = 0 OR state NOT IN (SELECT value FROM json_each('${FINAL_STATES_JSON}')))
       ORDER BY created_at, id`,
    ),
    nextSeq: db
      .prepare<[string], number>(
        `INSERT INTO owner_seq (owner, last_seq) VALUES (?, 1)
       ON CONFLICT (owner) DO UPDATE SET last_seq = last_seq + 1
       RETURNING last_seq`,
      )
      .pluck(),
    insertEvent: db.prepare<
      [string, number, string, string, string | null, string | null, string | null, string]
    >(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    readEvents: db.prepare<[string, number, number], EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE owner = ? AND seq > ? ORDER BY seq LIMIT ?`,
    ),
    readSessionEvents: db.prepare<[string, string, number, number], EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE owner = ? AND session_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    ),
    lastSeq: db.prepare<[string], number>(`SELECT last_seq FROM owner_seq WHERE owner = ?`).pluck(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/** The prepared statements of an open store and its commit transaction. */
type Connection = Statements & { commitGroup(batches: Batch[]): GroupResult[] };

type GroupResult = { ok: true; value: CommitResult } | { ok: false; error: unknown };

interface PendingCommit {
  batch: Batch;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

function isSqliteError(err: unknown): err is InstanceType<typeof Database.SqliteError> {
  return err instanceof Database.SqliteError;
}

function isUniqueViolation(err: unknown): boolean {
  return (
    isSqliteError(err) &&
    (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE')
  );
}

/** Turns "the database cannot write" failures into {@link StoreWriteError}; leaves the rest. */
function toStoreError(err: unknown): unknown {
  if (isSqliteError(err) && UNAVAILABLE_CODE.test(err.code)) {
    return new StoreWriteError(`SQLite store cannot write: ${err.message}`, { cause: err });
  }
  return err;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Text as UTF-8 can hold it: a lone surrogate (JSON may carry one as an
 * escape) becomes U+FFFD. Bound as is, better-sqlite3 would write it as
 * invalid UTF-8 bytes, read back as three replacement characters.
 */
function utf8<T extends string | null>(text: T): T {
  return (text === null ? null : text.replace(LONE_SURROGATE, '\ufffd')) as T;
}

function jobParams(row: JobWrite['row']): JobParams {
  return {
    id: row.id,
    session_id: row.sessionId,
    owner: row.owner,
    command: utf8(row.command),
    cwd: utf8(row.cwd),
    timeout_s: row.timeoutS,
    external: row.external ? 1 : 0,
    name: utf8(row.name),
    state: row.state,
    outcome: row.outcome,
    exit_code: row.exitCode,
    attempts: row.attempts,
    output: utf8(row.output),
    created_at: row.createdAt,
    finished_at: row.finishedAt,
    followed_up_at: row.followedUpAt,
    history: JSON.stringify(row.history),
    why: utf8(row.why),
    // JSON has no `undefined`; a missing snapshot is stored as null.
    snapshot: JSON.stringify(row.snapshot ?? null),
    process: row.process === null ? null : JSON.stringify(row.process),
  };
}

function toSession(r: SessionRecord): SessionRow {
  return {
    id: r.id,
    owner: r.owner,
    title: r.title,
    systemPrompt: r.system_prompt,
    createdAt: r.created_at,
  };
}

function toMessage(r: MessageRecord): MessageRow {
  const message: MessageRow = {
    id: r.id,
    sessionId: r.session_id,
    owner: r.owner,
    role: r.role as MessageRole,
    content: r.content,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    createdAt: r.created_at,
  };
  const answersJobs = JSON.parse(r.answers_jobs) as string[];
  if (answersJobs.length > 0) message.answersJobs = answersJobs;
  return message;
}

function toJob(r: JobRecord): JobRow {
  return {
    id: r.id,
    sessionId: r.session_id,
    owner: r.owner,
    command: r.command,
    cwd: r.cwd,
    timeoutS: r.timeout_s,
    external: r.external !== 0,
    name: r.name,
    state: r.state,
    outcome: r.outcome,
    exitCode: r.exit_code,
    attempts: r.attempts,
    output: r.output,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    followedUpAt: r.followed_up_at,
    history: JSON.parse(r.history) as JobHistoryEntry[],
    why: r.why,
    snapshot: JSON.parse(r.snapshot) as unknown,
    process: r.process === null ? null : (JSON.parse(r.process) as JobProcessInfo),
    version: r.version,
  };
}

function toEvent(r: EventRecord): StoredEvent {
  return {
    owner: r.owner,
    seq: r.seq,
    at: r.at,
    type: r.type,
    sessionId: r.session_id,
    jobId: r.job_id,
    turnId: r.turn_id,
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
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
      migrateSqlite(db);
      const statements = prepareStatements(db);
      const open = db;
      // Called inside the group transaction below, each batch becomes a
      // savepoint: a batch that fails rolls back alone, the others still commit.
      const one = db.transaction((batch: Batch) => this.writeBatch(statements, batch));
      const group = db.transaction((batches: Batch[]) =>
        batches.map((batch): GroupResult => {
          try {
            return { ok: true, value: one(batch) };
          } catch (error) {
            // A full disk or an I/O error can roll back the whole transaction
            // (SQLite does so on its own): then every batch of the group fails.
            if (
              !open.inTransaction ||
              (isSqliteError(error) && UNAVAILABLE_CODE.test(error.code))
            ) {
              throw error;
            }
            return { ok: false, error };
          }
        }),
      );
      // IMMEDIATE takes the write lock up front: a deferred transaction that
      // upgrades from read to write fails at once with SQLITE_BUSY in WAL mode,
      // without waiting out busy_timeout.
      this.conn = { ...statements, commitGroup: (batches) => group.immediate(batches) };
      this.db = db;
    } catch (err) {
      db?.close();
      throw toStoreError(err);
    }
  }

  /**
   * Group commit: batches handed in during the same turn of the event loop
   * share one transaction and so one fsync, each in its own savepoint. A
   * batch's promise settles only after the shared COMMIT is durable.
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
  private writeBatch(s: Statements, batch: Batch): CommitResult {
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
      );
      (message.answersJobs ?? []).forEach((jobId, position) => {
        try {
          s.insertFollowUp.run(jobId, message.id, position);
        } catch (err) {
          throw isUniqueViolation(err) ? new DuplicateFollowUpError(jobId) : err;
        }
      });
    }

    const events = (batch.events ?? []).map((event) => this.appendEvent(s, event));
    return { events, jobVersions };
  }

  private writeJob(s: Statements, write: JobWrite): number {
    const params = jobParams(write.row);
    if (write.expectedVersion === null) {
      try {
        s.insertJob.run(params);
      } catch (err) {
        // The caller believed the job was new; someone else created it first.
        throw isUniqueViolation(err) ? new StoreConflictError(write.row.id, null) : err;
      }
      return 1;
    }
    const { changes } = s.updateJob.run({ ...params, expected: write.expectedVersion });
    if (changes === 0) throw new StoreConflictError(write.row.id, write.expectedVersion);
    return write.expectedVersion + 1;
  }

  private appendEvent(s: Statements, event: NewEvent): StoredEvent {
    const seq = s.nextSeq.get(event.owner);
    if (seq === undefined) throw new Error(`no seq allocated for owner ${event.owner}`);
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
