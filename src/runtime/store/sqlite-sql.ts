/**
 * The SQL of the embedded store: rows as SQLite holds them, the prepared
 * statements, and the mapping between rows and the Store's types.
 */
import Database from 'better-sqlite3';
import { FINAL_JOB_STATES, StoreWriteError } from './store.js';
import type { JobRow, JobWrite, MessageRow } from './store.js';
import * as rows from './rows.js';
import type { EventRecord, OpenTurnRecord, SessionRecord } from './rows.js';

export { toEvent, toOpenTurn, toSession } from './rows.js';
export type { EventRecord, OpenTurnRecord, SessionRecord } from './rows.js';

/** A job row as SQLite holds it: booleans are integers. */
export type JobRecord = Omit<rows.JobRecord, 'external'> & { external: number };

/** A message row as SQLite selects it: the answered job ids as JSON text. */
export type MessageRecord = Omit<rows.MessageRecord, 'answers_jobs'> & { answers_jobs: string };

export function toJob(r: JobRecord): JobRow {
  return rows.toJob({ ...r, external: r.external !== 0 });
}

export function toMessage(r: MessageRecord): MessageRow {
  return rows.toMessage({ ...r, answers_jobs: JSON.parse(r.answers_jobs) as string[] });
}

export type JobParams = Omit<JobRecord, 'version'>;

/** The changing columns of a job, then its id and the version the write expects. */
export type JobUpdateParams = [
  state: string,
  outcome: string | null,
  exitCode: number | null,
  attempts: number,
  output: string,
  finishedAt: string | null,
  followedUpAt: string | null,
  history: string,
  why: string,
  snapshot: string,
  process: string | null,
  id: string,
  expected: number,
];

/**
 * Codes meaning the database cannot take the write at all (disk full, I/O
 * failure, read-only file, lock held past the busy timeout, damaged file), as
 * opposed to a bug in what was written. Extended codes such as
 * `SQLITE_IOERR_FSYNC` count too.
 */
export const UNAVAILABLE_CODE =
  /^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN|CORRUPT|NOTADB|NOMEM|PERM)(_|$)/;

export const JOB_COLUMNS = `id, session_id, owner, command, cwd, timeout_s, external, name, state, outcome,
  exit_code, attempts, output, created_at, finished_at, followed_up_at, history, why, snapshot,
  process, labels, version`;

export const EVENT_COLUMNS = 'owner, seq, at, type, session_id, job_id, turn_id, data';

export const FINAL_STATES_JSON = JSON.stringify(FINAL_JOB_STATES);

/** One owner's share of `Store.pruneEvents`: `last` is its newest seq, which stays. */
export interface PruneParams {
  owner: string;
  last: number;
  before: string;
  limit: number;
}

/**
 * Deletes the head of one owner's events up to the first that is not older
 * than `before`, at most `limit` of them. The head is read through the
 * primary key (owner, seq) from the oldest, so no index on `at` is needed
 * and every commit is spared from keeping one up to date.
 */
export const PRUNE_OWNER_EVENTS = `
  WITH head AS (
    SELECT seq, at FROM events WHERE owner = @owner AND seq < @last ORDER BY seq LIMIT @limit
  )
  DELETE FROM events WHERE owner = @owner AND seq < coalesce(
    (SELECT min(seq) FROM head WHERE at >= @before),
    (SELECT max(seq) + 1 FROM head))`;

export function prepareStatements(db: Database.Database) {
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
    insertMessage: db.prepare<[string, string, string, string, string, string, string, number]>(
      `INSERT INTO messages (id, session_id, owner, role, content, metadata, created_at, queued)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // AUTOINCREMENT numbers a later insert past the largest ordinal in the
    // table as well as past every one it gave out, so the moved row keeps its place.
    enterMessage: db.prepare<[string]>(
      `UPDATE messages SET ordinal = (SELECT max(ordinal) FROM messages) + 1, queued = 0
       WHERE id = ? AND queued = 1`,
    ),
    insertJournal: db.prepare<[string, number, string, string]>(
      `INSERT INTO turn_journal (turn_key, step, session_id, entry) VALUES (?, ?, ?, ?)`,
    ),
    readJournal: db.prepare<[string], { entry: string }>(
      `SELECT entry FROM turn_journal WHERE turn_key = ? ORDER BY step`,
    ),
    openTurn: db.prepare<[string, string, string, string]>(
      `INSERT INTO open_turns (turn_id, session_id, owner, message_id) VALUES (?, ?, ?, ?)`,
    ),
    closeTurn: db.prepare<[string]>(`DELETE FROM open_turns WHERE turn_id = ?`),
    listOpenTurns: db.prepare<[string | null, string | null], OpenTurnRecord>(
      `SELECT t.turn_id, t.session_id, t.owner, t.message_id FROM open_turns t
       JOIN messages m ON m.id = t.message_id
       WHERE ? IS NULL OR t.session_id = ? ORDER BY m.queued, m.ordinal`,
    ),
    insertFollowUp: db.prepare<[string, string, number]>(
      `INSERT INTO follow_ups (job_id, message_id, position) VALUES (?, ?, ?)`,
    ),
    listMessages: db.prepare<[string], MessageRecord>(
      `SELECT m.id, m.session_id, m.owner, m.role, m.content, m.metadata, m.created_at, m.queued,
         (SELECT json_group_array(f.job_id ORDER BY f.position) FROM follow_ups f
          WHERE f.message_id = m.id) AS answers_jobs
       FROM messages m WHERE m.session_id = ? ORDER BY m.queued, m.ordinal`,
    ),
    insertJob: db.prepare<JobParams>(
      `INSERT INTO jobs (${JOB_COLUMNS}) VALUES (@id, @session_id, @owner, @command, @cwd,
         @timeout_s, @external, @name, @state, @outcome, @exit_code, @attempts, @output,
         @created_at, @finished_at, @followed_up_at, @history, @why, @snapshot, @process, @labels,
         1)`,
    ),
    // Only what changes after a job is created: leaving the indexed identity
    // columns out of SET spares SQLite from touching their indexes.
    updateJob: db.prepare<JobUpdateParams>(
      `UPDATE jobs SET state = ?, outcome = ?, exit_code = ?, attempts = ?, output = ?,
         finished_at = ?, followed_up_at = ?, history = ?, why = ?, snapshot = ?, process = ?,
         version = version + 1
       WHERE id = ? AND version = ?`,
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
    // Takes `count` numbers at once and returns the last of them.
    takeSeqs: db
      .prepare<[string, number], number>(
        `INSERT INTO owner_seq (owner, last_seq) VALUES (?, ?)
       ON CONFLICT (owner) DO UPDATE SET last_seq = last_seq + excluded.last_seq
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
    // An owner that never had an event starts at 1; one whose events were all
    // pruned cannot exist (the newest is kept), but would start after its last.
    firstSeq: db
      .prepare<{ owner: string }, number>(
        `SELECT coalesce((SELECT min(seq) FROM events WHERE owner = @owner),
           (SELECT last_seq + 1 FROM owner_seq WHERE owner = @owner), 1)`,
      )
      .pluck(),
    seqOwners: db.prepare<[], { owner: string; last_seq: number }>(
      `SELECT owner, last_seq FROM owner_seq ORDER BY owner`,
    ),
    pruneOwnerEvents: db.prepare<PruneParams>(PRUNE_OWNER_EVENTS),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

export function isSqliteError(err: unknown): err is InstanceType<typeof Database.SqliteError> {
  return err instanceof Database.SqliteError;
}

export function isUniqueViolation(err: unknown): boolean {
  return (
    isSqliteError(err) &&
    (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE')
  );
}

/** Turns "the database cannot write" failures into {@link StoreWriteError}; leaves the rest. */
export function toStoreError(err: unknown): unknown {
  if (isSqliteError(err) && UNAVAILABLE_CODE.test(err.code)) {
    return new StoreWriteError(`SQLite store cannot write: ${err.message}`, { cause: err });
  }
  return err;
}

export const LONE_SURROGATE =
  /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Text as UTF-8 can hold it: a lone surrogate (JSON may carry one as an
 * escape) becomes U+FFFD. Bound as is, better-sqlite3 would write it as
 * invalid UTF-8 bytes, read back as three replacement characters.
 */
export function utf8<T extends string | null>(text: T): T {
  return (text === null ? null : text.replace(LONE_SURROGATE, '\ufffd')) as T;
}

export function jobUpdateParams(row: JobWrite['row'], expected: number): JobUpdateParams {
  return [
    row.state,
    row.outcome,
    row.exitCode,
    row.attempts,
    utf8(row.output),
    row.finishedAt,
    row.followedUpAt,
    JSON.stringify(row.history),
    utf8(row.why),
    JSON.stringify(row.snapshot ?? null),
    row.process === null ? null : JSON.stringify(row.process),
    row.id,
    expected,
  ];
}

export function jobParams(row: JobWrite['row']): JobParams {
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
    labels: JSON.stringify(row.labels),
  };
}
