/**
 * Where the PostgreSQL store tests find their server, and the schemas that keep
 * each run's rows apart from every other run's.
 */
import pg from 'pg';
import type { QueryResultRow } from 'pg';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import type { PostgresStoreOptions } from '../../src/runtime/store/postgres.js';

/** The test server; CI starts it before the tests (see `.ci/run`). */
export const DATABASE_URL =
  process.env['BATON_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The test server's URL with server settings for the session, e.g. `-c deadlock_timeout=500ms`. */
export function urlWithOptions(options: string): string {
  const url = new URL(DATABASE_URL);
  url.searchParams.set('options', options);
  return url.toString();
}

/** A schema name no other test run uses. */
export function uniqueSchema(label: string): string {
  return `baton_${label}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * Fails with a message that says what to do when the server is not there. The
 * PostgreSQL tests must fail, never skip, when it is down: CI relies on them.
 * Checked once per file; every later call answers the same.
 */
export function requirePostgres(): Promise<void> {
  reachable ??= checkReachable();
  return reachable;
}

let reachable: Promise<void> | undefined;

async function checkReachable(): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    const reason = err instanceof Error ? err.message || err.name : String(err);
    throw new Error(
      `PostgreSQL is not reachable at ${DATABASE_URL} (${reason}). The PostgreSQL store tests ` +
        'need a running server: start it (`pg_ctlcluster --skip-systemctl-redirect ' +
        '$(ls /etc/postgresql) main start`, as .ci/run does) or point BATON_TEST_DATABASE_URL at one.',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A store on the test server; not initialised yet. */
export function storeOn(schema: string, extra: Partial<PostgresStoreOptions> = {}): PostgresStore {
  return new PostgresStore({ connectionString: DATABASE_URL, schema, poolSize: 4, ...extra });
}

/** Drops `schema` through a store of its own; nothing to do when the server is down. */
export async function dropSchema(schema: string): Promise<void> {
  if (
    !(await requirePostgres().then(
      () => true,
      () => false,
    ))
  )
    return;
  const store = storeOn(schema);
  try {
    await store.dropSchema();
  } finally {
    await store.close();
  }
}

/** A plain connection for what a test does behind the store's back. */
export class RawClient {
  private readonly client = new pg.Client({ connectionString: DATABASE_URL });

  async connect(): Promise<this> {
    this.client.on('error', () => undefined);
    await this.client.connect();
    return this;
  }

  async rows<R extends QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.client.query<R>(text, values)).rows;
  }

  /** The server process of this connection, as `pg_stat_activity` names it. */
  async pid(): Promise<number> {
    const [row] = await this.rows<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    if (!row) throw new Error('no backend pid');
    return row.pid;
  }

  /** Resolves with the pid of a backend waiting for a lock that `blockerPid` holds. */
  async waitForBlocked(blockerPid: number, timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await this.rows<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))',
        [blockerPid],
      );
      if (row) return row.pid;
      if (Date.now() > deadline) throw new Error(`nothing waited on backend ${blockerPid}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async end(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
