import pg from 'pg';
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { migratePostgres, quoteSchema } from './postgres-migrations.js';
import {
  isRetryable,
  isUnavailable,
  jobParams,
  statements,
  storeTypes,
  toEvent,
  toJob,
  toMessage,
  toSession,
  toStoreError,
} from './postgres-sql.js';
import type {
  EventRecord,
  JobRecord,
  MessageRecord,
  SessionRecord,
  Statements,
} from './postgres-sql.js';
import {
  DuplicateFollowUpError,
  FINAL_JOB_STATES,
  StoreConflictError,
  StoreWriteError,
} from './store.js';
import type {
  Batch,
  CommitResult,
  JobFilter,
  JobRow,
  JobWrite,
  MessageRow,
  NewEvent,
  SessionRow,
  Store,
  StoredEvent,
} from './store.js';

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** A libpq-style URL, e.g. `postgres://baton@db.internal:5432/baton`. */
  connectionString: string;
  /**
   * Schema holding every table, created when missing. Stores on different
   * schemas of one database never see each other's rows.
   * @defaultValue 'baton'
   */
  schema?: string;
  /**
   * Connections in the pool. Commits use one at a time; reads share the rest.
   * @defaultValue 10
   */
  poolSize?: number;
  /**
   * How long a call waits for a connection before failing with
   * {@link StoreWriteError}.
   * @defaultValue 5000
   */
  connectTimeoutMs?: number;
}

/** Most batches one transaction takes, so that one transaction stays short. */
const MAX_GROUP = 100;
/** Runs of one group when the server aborts it for a deadlock or serialization failure. */
const MAX_ATTEMPTS = 5;

type GroupResult = { ok: true; value: CommitResult } | { ok: false; error: unknown };

interface PendingCommit {
  batch: Batch;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

/** The fixed statements, which run as named prepared statements. */
type Named = Exclude<keyof Statements, 'listJobs'>;

interface Queryable {
  query<R extends QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>>;
}

/**
 * Listener for the 'error' events that pg emits when the server drops a
 * connection. The failed query rejects on its own; without a listener the
 * event would crash the process.
 */
function ignoreConnectionError(): void {}

/**
 * The shared {@link Store}: PostgreSQL through a `pg` pool, for several Baton
 * processes on one database.
 *
 * Commits go through one writer chain, so that batches are applied in call
 * order: the batches handed in while a transaction runs share the next one,
 * each in its own savepoint, as the SQLite store's group commit does.
 */
export class PostgresStore implements Store {
  /** The schema holding the store's tables. */
  readonly schema: string;
  /** Protected so that tests can reach the server through the store's own pool. */
  protected readonly pool: Pool;
  private readonly quotedSchema: string;
  private readonly sql: Statements;
  private opened = false;
  private closed = false;
  private opening: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private draining: Promise<void> | null = null;
  private readonly pending: PendingCommit[] = [];

  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'baton';
    this.quotedSchema = quoteSchema(this.schema);
    this.sql = statements(this.quotedSchema);
    // The pool connects lazily: nothing touches the network before init().
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      fallback_application_name: 'baton',
      types: storeTypes(),
    });
    // An idle connection that the server drops (restart, admin shutdown) is
    // reported here; the pool discards it and the next call opens a new one.
    this.pool.on('error', ignoreConnectionError);
  }

  init(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreWriteError('PostgreSQL store is closed'));
    if (this.opened) return Promise.resolve();
    this.opening ??= this.open().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async open(): Promise<void> {
    let client: PoolClient | undefined;
    try {
      client = await this.pool.connect();
      client.on('error', ignoreConnectionError);
      await migratePostgres(client, this.schema);
      client.off('error', ignoreConnectionError);
      client.release();
    } catch (err) {
      client?.off('error', ignoreConnectionError);
      // The connection may be broken or still hold the migration lock: drop it.
      client?.release(true);
      throw toStoreError(err);
    }
    if (!this.closed) this.opened = true;
  }

  commit(batch: Batch): Promise<CommitResult> {
    const unusable = this.unusable();
    if (unusable) return Promise.reject(unusable);
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /** The writer chain: one group transaction at a time, in call order. */
  private async drain(): Promise<void> {
    // Commits handed in during this turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      await this.writeGroup(this.pending.splice(0, MAX_GROUP));
    }
    this.draining = null;
  }

  /** Writes a group and settles every promise in it; never throws. */
  private async writeGroup(group: PendingCommit[]): Promise<void> {
    const batches = group.map((p) => p.batch);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const results = await this.transaction(batches);
        group.forEach((p, i) => {
          const result = results[i];
          if (result?.ok) p.resolve(result.value);
          else p.reject(toStoreError(result ? result.error : new Error('batch was not written')));
        });
        return;
      } catch (error) {
        // The server aborted the whole transaction to break a deadlock with
        // another process: nothing was written, so the same group runs again.
        if (attempt < MAX_ATTEMPTS && isRetryable(error)) continue;
        const mapped = toStoreError(error);
        for (const p of group) p.reject(mapped);
        return;
      }
    }
  }

  /** Runs the group in one transaction on one connection; ROLLBACK on any throw. */
  private async transaction(batches: Batch[]): Promise<GroupResult[]> {
    const client = await this.pool.connect();
    client.on('error', ignoreConnectionError);
    let broken: Error | undefined;
    try {
      return await this.writeGroupIn(client, batches);
    } catch (error) {
      broken = await client.query('ROLLBACK').then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
      );
      throw error;
    } finally {
      client.off('error', ignoreConnectionError);
      // A connection that cannot even roll back is destroyed, not pooled.
      client.release(broken);
    }
  }

  private async writeGroupIn(client: PoolClient, batches: Batch[]): Promise<GroupResult[]> {
    await client.query('BEGIN');
    const many = batches.length > 1;
    const results: GroupResult[] = [];
    for (const batch of batches) {
      if (many) await client.query('SAVEPOINT batch');
      try {
        const value = await this.writeBatch(client, batch);
        if (many) await client.query('RELEASE SAVEPOINT batch');
        results.push({ ok: true, value });
      } catch (error) {
        // Alone, a failing batch fails the transaction. In a group it rolls
        // back to its savepoint and the others still commit, unless the whole
        // transaction is lost (connection, disk, deadlock): then all fail.
        if (!many || isUnavailable(error) || isRetryable(error)) throw error;
        await client.query('ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch');
        results.push({ ok: false, error });
      }
    }
    const done = await client.query('COMMIT');
    // COMMIT of a transaction in the aborted state answers ROLLBACK, not an error.
    if (done.command !== 'COMMIT') throw new Error(`transaction ended with ${done.command}`);
    return results;
  }

  /** The body of one batch; any throw rolls all of it back. */
  private async writeBatch(client: PoolClient, batch: Batch): Promise<CommitResult> {
    for (const s of batch.sessions ?? []) {
      await this.run(client, 'insertSession', [s.id, s.owner, s.title, s.systemPrompt, s.createdAt]);
    }
    for (const deletion of batch.sessionDeletes ?? []) {
      await this.run(client, 'deleteSession', [deletion.at, deletion.id]);
    }

    const jobVersions: Record<string, number> = {};
    for (const write of batch.jobs ?? []) {
      jobVersions[write.row.id] = await this.writeJob(client, write);
    }
    for (const message of batch.messages ?? []) {
      await this.writeMessage(client, message);
    }

    const events = await this.appendEvents(client, batch.events ?? []);
    return { events, jobVersions };
  }

  private async writeJob(client: PoolClient, write: JobWrite): Promise<number> {
    const params = jobParams(write.row);
    if (write.expectedVersion === null) {
      const { rowCount } = await this.run(client, 'insertJob', params);
      // The caller believed the job was new; someone else created it first.
      if (rowCount === 0) throw new StoreConflictError(write.row.id, null);
      return 1;
    }
    const { rows } = await this.run<{ version: number }>(client, 'updateJob', [
      ...params,
      write.expectedVersion,
    ]);
    const version = rows[0]?.version;
    if (version === undefined) throw new StoreConflictError(write.row.id, write.expectedVersion);
    return version;
  }

  private async writeMessage(client: PoolClient, m: MessageRow): Promise<void> {
    const metadata = JSON.stringify(m.metadata);
    await this.run(client, 'insertMessage', [
      m.id,
      m.sessionId,
      m.owner,
      m.role,
      m.content,
      metadata,
      m.createdAt,
    ]);
    for (const [position, jobId] of (m.answersJobs ?? []).entries()) {
      const { rowCount } = await this.run(client, 'insertFollowUp', [jobId, m.id, position]);
      if (rowCount === 0) throw new DuplicateFollowUpError(jobId);
    }
  }

  /**
   * Takes each owner's seqs from `owner_seq` inside the transaction: the row
   * lock makes concurrent writers of an owner take turns, and a rollback
   * returns the numbers, so seq stays gap-free across processes.
   */
  private async appendEvents(client: PoolClient, events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const counts = new Map<string, number>();
    for (const e of events) counts.set(e.owner, (counts.get(e.owner) ?? 0) + 1);
    const { rows } = await this.run<{ owner: string; last_seq: number }>(client, 'bumpSeqs', [
      [...counts.keys()],
      [...counts.values()],
    ]);
    const next = new Map<string, number>();
    for (const r of rows) next.set(r.owner, r.last_seq - (counts.get(r.owner) ?? 0) + 1);

    const records = events.map((e): EventRecord => {
      const seq = next.get(e.owner);
      if (seq === undefined) throw new Error(`no seq allocated for owner ${e.owner}`);
      next.set(e.owner, seq + 1);
      const { owner, at, type } = e;
      const ids = { session_id: e.sessionId ?? null, job_id: e.jobId ?? null };
      return { owner, seq, at, type, ...ids, turn_id: e.turnId ?? null, data: JSON.stringify(e.data) };
    });
    await this.run(client, 'insertEvents', [
      records.map((r) => r.owner),
      records.map((r) => r.seq),
      records.map((r) => r.at),
      records.map((r) => r.type),
      records.map((r) => r.session_id),
      records.map((r) => r.job_id),
      records.map((r) => r.turn_id),
      records.map((r) => r.data),
    ]);
    // Parsed back from what was stored, so a live event and its replay are equal.
    return records.map(toEvent);
  }

  async getSession(id: string): Promise<SessionRow | null> {
    const [record] = await this.read<SessionRecord>('getSession', [id]);
    return record ? toSession(record) : null;
  }

  async listSessions(owner: string): Promise<SessionRow[]> {
    return (await this.read<SessionRecord>('listSessions', [owner])).map(toSession);
  }

  async listMessages(sessionId: string): Promise<MessageRow[]> {
    return (await this.read<MessageRecord>('listMessages', [sessionId])).map(toMessage);
  }

  async getJob(id: string): Promise<JobRow | null> {
    const [record] = await this.read<JobRecord>('getJob', [id]);
    return record ? toJob(record) : null;
  }

  async listJobs(filter: JobFilter): Promise<JobRow[]> {
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
    const text = this.sql.listJobs(where.length > 0 ? `WHERE ${where.join(' AND ')}` : '');
    return (await this.query<JobRecord>({ text, values })).map(toJob);
  }

  async readEvents(
    owner: string,
    since: number,
    limit: number,
    sessionId?: string,
  ): Promise<StoredEvent[]> {
    const records =
      sessionId === undefined
        ? await this.read<EventRecord>('readEvents', [owner, since, limit])
        : await this.read<EventRecord>('readSessionEvents', [owner, sessionId, since, limit]);
    return records.map(toEvent);
  }

  async lastSeq(owner: string): Promise<number> {
    const [record] = await this.read<{ last_seq: number }>('lastSeq', [owner]);
    return record?.last_seq ?? 0;
  }

  /** Waits for the commits already handed in, then ends the pool; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.opened = false;
    await this.opening?.catch(() => undefined);
    // Commits already handed in are written (or fail) before the pool ends.
    await this.draining;
    await this.pool.end();
  }

  /**
   * Drops the store's schema with every table in it (`DROP SCHEMA … CASCADE`).
   * For tests that give each run its own schema; works before {@link init}.
   */
  async dropSchema(): Promise<void> {
    if (this.closed) throw new StoreWriteError('PostgreSQL store is closed');
    await this.draining;
    try {
      await this.pool.query(`DROP SCHEMA IF EXISTS ${this.quotedSchema} CASCADE`);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  private unusable(): StoreWriteError | null {
    if (this.closed) return new StoreWriteError('PostgreSQL store is closed');
    if (!this.opened) return new StoreWriteError('PostgreSQL store is not open: call init() first');
    return null;
  }

  /** Runs a fixed statement as a prepared statement of the connection. */
  private run<R extends QueryResultRow>(
    db: Queryable,
    name: Named,
    values: unknown[],
  ): Promise<QueryResult<R>> {
    return db.query<R>({ name, text: this.sql[name], values });
  }

  private read<R extends QueryResultRow>(name: Named, values: unknown[]): Promise<R[]> {
    return this.query<R>({ name, text: this.sql[name], values });
  }

  private async query<R extends QueryResultRow>(config: QueryConfig): Promise<R[]> {
    const unusable = this.unusable();
    if (unusable) throw unusable;
    try {
      return (await this.pool.query<R>(config)).rows;
    } catch (err) {
      throw toStoreError(err);
    }
  }
}
