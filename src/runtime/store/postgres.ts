import pg from 'pg';
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { migratePostgres, quoteSchema } from './postgres-migrations.js';
import { notifyChannels } from './notify-channels.js';
import {
  ignoreConnectionError,
  statements,
  storeTypes,
  toEvent,
  toJob,
  toMessage,
  toOpenTurn,
  toSession,
  toStoreError,
} from './postgres-sql.js';
import type {
  EventRecord,
  JobRecord,
  MessageRecord,
  OpenTurnRecord,
  Named,
  SessionRecord,
  Statements,
} from './postgres-sql.js';
import { GroupCommitWriter } from './postgres-writer.js';
import { checkPruneArgs, StoreWriteError } from './store.js';
import type {
  Batch,
  CommitResult,
  Iso,
  JobFilter,
  JobRow,
  MessageRow,
  OpenTurn,
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

/**
 * The shared {@link Store}: PostgreSQL through a `pg` pool, for several Baton
 * processes on one database.
 *
 * Commits go through one {@link GroupCommitWriter}, so that batches are
 * applied in call order; reads share the rest of the pool.
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
  private readonly writer: GroupCommitWriter;

  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'baton';
    this.quotedSchema = quoteSchema(this.schema);
    this.sql = statements(this.quotedSchema, notifyChannels(this.schema).commandDone);
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
    this.writer = new GroupCommitWriter(this.pool, this.sql);
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
    return this.writer.commit(batch);
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

  async listOpenTurns(sessionId?: string): Promise<OpenTurn[]> {
    const rows = await this.read<OpenTurnRecord>('listOpenTurns', [sessionId ?? null]);
    return rows.map(toOpenTurn);
  }

  async readJournal(turnKey: string): Promise<unknown[]> {
    // json columns arrive as text (see rows.ts).
    const rows = await this.read<{ entry: string }>('readJournal', [turnKey]);
    return rows.map((r) => JSON.parse(r.entry) as unknown);
  }

  async getJob(id: string): Promise<JobRow | null> {
    const [record] = await this.read<JobRecord>('getJob', [id]);
    return record ? toJob(record) : null;
  }

  async listJobs(filter: JobFilter): Promise<JobRow[]> {
    return (await this.query<JobRecord>(this.sql.listJobs(filter))).map(toJob);
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

  async lastSeqs(): Promise<Map<string, number>> {
    const rows = await this.read<{ owner: string; last_seq: number }>('seqOwners', []);
    return new Map(rows.map((r) => [r.owner, r.last_seq]));
  }

  async firstSeq(owner: string): Promise<number> {
    const [record] = await this.read<{ first_seq: number }>('firstSeq', [owner]);
    return record?.first_seq ?? 1;
  }

  /**
   * Plain deletes beside the commit queue: they touch only events that no
   * commit writes again, and another process pruning at the same time
   * deletes the same rows at most once.
   */
  async pruneEvents(before: Iso, limit: number): Promise<number> {
    checkPruneArgs(before, limit);
    let deleted = 0;
    const owners = await this.read<{ owner: string; last_seq: number }>('seqOwners', []);
    for (const { owner, last_seq: last } of owners) {
      if (deleted >= limit) break;
      deleted += await this.change('pruneOwnerEvents', [owner, last, before, limit - deleted]);
    }
    return deleted;
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
    await this.writer.settled();
    await this.pool.end();
  }

  /**
   * Drops the store's schema with every table in it (`DROP SCHEMA … CASCADE`).
   * For tests that give each run its own schema; works before {@link init}.
   */
  async dropSchema(): Promise<void> {
    if (this.closed) throw new StoreWriteError('PostgreSQL store is closed');
    await this.writer.settled();
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

  private read<R extends QueryResultRow>(name: Named, values: unknown[]): Promise<R[]> {
    return this.query<R>({ name, text: this.sql[name], values });
  }

  private async query<R extends QueryResultRow>(config: QueryConfig): Promise<R[]> {
    return (await this.execute<R>(config)).rows;
  }

  /** Runs a named statement that changes rows and returns how many it changed. */
  private async change(name: Named, values: unknown[]): Promise<number> {
    return (await this.execute({ name, text: this.sql[name], values })).rowCount ?? 0;
  }

  private async execute<R extends QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>> {
    const unusable = this.unusable();
    if (unusable) throw unusable;
    try {
      return await this.pool.query<R>(config);
    } catch (err) {
      throw toStoreError(err);
    }
  }
}
