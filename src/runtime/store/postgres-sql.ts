/**
 * The SQL of the PostgreSQL store, the rows it reads and how they map to the
 * store's types, and which server errors mean "cannot write". Kept apart from
 * `postgres.ts`, which holds the connection handling and the commit queue.
 */
import pg from 'pg';
import type { CustomTypesConfig, QueryConfig } from 'pg';
import { FINAL_JOB_STATES, StoreWriteError } from './store.js';
import type { JobFilter, JobWrite } from './store.js';
import type { EventRecord } from './rows.js';

// Rows and their mapping are shared with the SQLite store.
export { toEvent, toJob, toMessage, toOpenTurn, toSession } from './rows.js';
export type {
  EventRecord,
  JobRecord,
  MessageRecord,
  OpenTurnRecord,
  SessionRecord,
} from './rows.js';

const INT8_OID = 20;
const JSON_OID = 114;

/**
 * Type parsers of the store's pool, apart from pg's process-wide registry so
 * that nobody else's `setTypeParser` changes what the store reads. bigint
 * (seq) becomes a number: a per-owner counter never nears 2^53. `json` stays
 * text and is parsed by the mappers below, as the SQLite store does.
 */
export function storeTypes(): CustomTypesConfig {
  const types = new pg.TypeOverrides();
  types.setTypeParser(INT8_OID, (value: string) => Number(value));
  types.setTypeParser(JSON_OID, (value: string) => value);
  return types;
}

const JOB_COLUMNS = `id, session_id, owner, command, cwd, timeout_s, external, name, state, outcome,
  exit_code, attempts, output, created_at, finished_at, followed_up_at, history, why, snapshot,
  process, labels, version`;

const EVENT_COLUMNS = 'owner, seq, at, type, session_id, job_id, turn_id, data';

/**
 * Every statement of the store, qualified with the quoted schema `s`;
 * `commandDone` is the schema's channel for finished commands (see
 * notify-channels.ts: letters, digits and underscores only).
 */
export function statements(s: string, commandDone: string) {
  return {
    insertSession: `INSERT INTO ${s}.sessions (id, owner, title, system_prompt, created_at)
      VALUES ($1, $2, $3, $4, $5)`,
    // The first deletion time wins: deleting twice must not move it.
    sessionEpoch: `SELECT owner_epoch FROM ${s}.sessions WHERE id = $1 FOR SHARE`,
    deleteSession: `UPDATE ${s}.sessions SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL`,
    getSession: `SELECT id, owner, title, system_prompt, created_at FROM ${s}.sessions
      WHERE id = $1 AND deleted_at IS NULL`,
    listSessions: `SELECT id, owner, title, system_prompt, created_at FROM ${s}.sessions
      WHERE owner = $1 AND deleted_at IS NULL ORDER BY created_at, id`,
    insertMessage: `INSERT INTO ${s}.messages (id, session_id, owner, role, content, metadata, created_at, queued)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    // DEFAULT draws the identity's next value: after every message stored so far.
    enterMessage: `UPDATE ${s}.messages SET ordinal = DEFAULT, queued = false
      WHERE id = $1 AND queued`,
    insertJournal: `INSERT INTO ${s}.turn_journal (turn_key, step, session_id, entry)
      VALUES ($1, $2, $3, $4)`,
    readJournal: `SELECT entry FROM ${s}.turn_journal WHERE turn_key = $1 ORDER BY step`,
    openTurn: `INSERT INTO ${s}.open_turns (turn_id, session_id, owner, message_id)
      VALUES ($1, $2, $3, $4)`,
    closeTurn: `DELETE FROM ${s}.open_turns WHERE turn_id = $1`,
    listOpenTurns: `SELECT t.turn_id, t.session_id, t.owner, t.message_id FROM ${s}.open_turns t
      JOIN ${s}.messages m ON m.id = t.message_id
      WHERE $1::text IS NULL OR t.session_id = $1 ORDER BY m.queued, m.ordinal`,
    // DO NOTHING rather than an error: the transaction stays usable, and a
    // concurrent insert of the same job id waits for the other commit first,
    // so "no row" means "already answered" in every interleaving.
    insertFollowUp: `INSERT INTO ${s}.follow_ups (job_id, message_id, position) VALUES ($1, $2, $3)
      ON CONFLICT (job_id) DO NOTHING`,
    listMessages: `SELECT m.id, m.session_id, m.owner, m.role, m.content, m.metadata, m.created_at, m.queued,
        ARRAY(SELECT f.job_id FROM ${s}.follow_ups f WHERE f.message_id = m.id ORDER BY f.position)
          AS answers_jobs
      FROM ${s}.messages m WHERE m.session_id = $1 ORDER BY m.queued, m.ordinal`,
    insertJob: `INSERT INTO ${s}.jobs (${JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
        $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, 1)
      ON CONFLICT (id) DO NOTHING`,
    // In READ COMMITTED a row changed by a concurrent commit is re-checked
    // against this WHERE once that commit is done: a stale version matches no
    // row, which is what makes `version` a fencing token across processes.
    updateJob: `UPDATE ${s}.jobs SET session_id = $2, owner = $3, command = $4, cwd = $5,
        timeout_s = $6, external = $7, name = $8, state = $9, outcome = $10, exit_code = $11,
        attempts = $12, output = $13, created_at = $14, finished_at = $15, followed_up_at = $16,
        history = $17, why = $18, snapshot = $19, process = $20, version = version + 1
      WHERE id = $1 AND version = $21
      RETURNING version`,
    getJob: `SELECT ${JOB_COLUMNS} FROM ${s}.jobs WHERE id = $1`,
    // The first result recorded stays: it is what the caller was answered.
    // The waiting caller hears of it once this transaction commits.
    recordCommand: `WITH c AS (
        UPDATE ${s}.commands SET result = coalesce(result, $2::json),
          done_at = CASE WHEN $3::boolean THEN now() END
        WHERE id = $1 AND done_at IS NULL
        RETURNING id)
      SELECT pg_notify('${commandDone}', id::text) FROM c WHERE $2::json IS NOT NULL`,
    listJobs: (filter: JobFilter): QueryConfig => {
      // Only the filters given become conditions, so each query gets the plan
      // of its own index rather than one generic plan for every combination.
      const values: unknown[] = [];
      const where: string[] = [];
      const add = (condition: (n: string) => string, value: unknown) => {
        values.push(value);
        where.push(condition(`$${values.length}`));
      };
      if (filter.owner !== undefined) add((n) => `owner = ${n}`, filter.owner);
      if (filter.sessionId !== undefined) add((n) => `session_id = ${n}`, filter.sessionId);
      if (filter.state !== undefined) add((n) => `state = ${n}`, filter.state);
      if (filter.unfinished) add((n) => `state <> ALL (${n}::text[])`, [...FINAL_JOB_STATES]);
      const condition = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
      return {
        text: `SELECT ${JOB_COLUMNS} FROM ${s}.jobs ${condition} ORDER BY created_at, id`,
        values,
      };
    },
    // One row per owner of the batch, taken in a fixed order so that two
    // processes locking the same owners cannot deadlock on them.
    bumpSeqs: `INSERT INTO ${s}.owner_seq AS o (owner, last_seq)
        SELECT owner, n FROM unnest($1::text[], $2::bigint[]) AS c (owner, n)
        ORDER BY owner COLLATE "C"
      ON CONFLICT (owner) DO UPDATE SET last_seq = o.last_seq + EXCLUDED.last_seq
      RETURNING owner, last_seq`,
    insertEvents: `INSERT INTO ${s}.events (${EVENT_COLUMNS})
      SELECT owner, seq, at, type, session_id, job_id, turn_id, data::json
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[]) AS e (owner, seq, at, type, session_id, job_id, turn_id, data)`,
    readEvents: `SELECT ${EVENT_COLUMNS} FROM ${s}.events
      WHERE owner = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    readSessionEvents: `SELECT ${EVENT_COLUMNS} FROM ${s}.events
      WHERE owner = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
    lastSeq: `SELECT last_seq FROM ${s}.owner_seq WHERE owner = $1`,
    firstSeq: `SELECT coalesce((SELECT min(seq) FROM ${s}.events WHERE owner = $1),
        (SELECT last_seq + 1 FROM ${s}.owner_seq WHERE owner = $1), 1) AS first_seq`,
    seqOwners: `SELECT owner, last_seq FROM ${s}.owner_seq ORDER BY owner`,
    // As in the SQLite store: the head of one owner's events ($1) below its
    // newest seq ($2), up to the first not older than $3, at most $4 rows,
    // read through the primary key. `at` is compared bytewise, as SQLite does.
    pruneOwnerEvents: `WITH head AS (
        SELECT seq, at FROM ${s}.events WHERE owner = $1 AND seq < $2 ORDER BY seq LIMIT $4
      )
      DELETE FROM ${s}.events WHERE owner = $1 AND seq < coalesce(
        (SELECT min(seq) FROM head WHERE at COLLATE "C" >= $3),
        (SELECT max(seq) + 1 FROM head))`,
  };
}

/** The store's statements for one schema. */
export type Statements = ReturnType<typeof statements>;

/** The fixed statements, which run as named prepared statements of each connection. */
export type Named = Exclude<keyof Statements, 'listJobs'>;

/**
 * Listener for the 'error' events that pg emits when the server drops a
 * connection. The failed query rejects on its own; the pool listens only
 * while a connection is idle, and an unheard 'error' event would crash the
 * process.
 */
export function ignoreConnectionError(): void {}

/** The first twenty parameters of `insertJob` (then the labels) and of `updateJob`, in column order. */
export function jobParams(row: JobWrite['row']): unknown[] {
  return [
    row.id,
    row.sessionId,
    row.owner,
    row.command,
    row.cwd,
    row.timeoutS,
    row.external,
    row.name,
    row.state,
    row.outcome,
    row.exitCode,
    row.attempts,
    row.output,
    row.createdAt,
    row.finishedAt,
    row.followedUpAt,
    JSON.stringify(row.history),
    row.why,
    // JSON has no `undefined`; a missing snapshot is stored as null.
    JSON.stringify(row.snapshot ?? null),
    row.process === null ? null : JSON.stringify(row.process),
  ];
}

/** The parameters of `insertEvents`: one array per column, rows in batch order. */
export function eventColumns(records: EventRecord[]): unknown[] {
  return [
    records.map((r) => r.owner),
    records.map((r) => r.seq),
    records.map((r) => r.at),
    records.map((r) => r.type),
    records.map((r) => r.session_id),
    records.map((r) => r.job_id),
    records.map((r) => r.turn_id),
    records.map((r) => r.data),
  ];
}

/**
 * SQLSTATE classes and codes meaning the server cannot take the write at all,
 * as opposed to a bug in what was written: connection exceptions (08), auth
 * (28), insufficient resources such as a full disk (53), operator
 * intervention such as an admin shutdown or a statement timeout (57), system
 * I/O errors (58), internal errors such as corruption (XX), a read-only
 * transaction (25006), a lock wait past lock_timeout (55P03) and a missing
 * database (3D000).
 */
const UNAVAILABLE_SQLSTATE = /^(08|28|53|57|58|XX)|^(25006|55P03|3D000)$/;

/** Errors pg raises without a SQLSTATE when the connection itself is gone. */
const CONNECTION_LOST =
  /^(Connection terminated|timeout exceeded when trying to connect|Client (was closed|has encountered a connection error) and is not queryable|Cannot use a pool after calling end)/;

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** True when `err` means the database cannot be reached or cannot write. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) return UNAVAILABLE_SQLSTATE.test(err.code ?? '');
  // A socket error (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND…).
  if (/^E[A-Z]+$/.test(errorCode(err) ?? '')) return true;
  return err instanceof Error && CONNECTION_LOST.test(err.message);
}

/**
 * True when the transaction lost a race that the server resolved by aborting
 * it (deadlock, serialization failure): nothing was written, and running the
 * same transaction again is correct.
 */
export function isRetryable(err: unknown): boolean {
  return err instanceof pg.DatabaseError && (err.code === '40P01' || err.code === '40001');
}

/** Turns "the database cannot write" failures into {@link StoreWriteError}; leaves the rest. */
export function toStoreError(err: unknown): unknown {
  if (err instanceof StoreWriteError || !isUnavailable(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StoreWriteError(`PostgreSQL store cannot write: ${message}`, { cause: err });
}
