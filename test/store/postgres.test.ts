import pg from 'pg';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  POSTGRES_MIGRATIONS,
  migratePostgres,
} from '../../src/runtime/store/postgres-migrations.js';
import { toStoreError } from '../../src/runtime/store/postgres-sql.js';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import { StoreWriteError } from '../../src/runtime/store/store.js';
import { storeContract } from './contract.js';
import { eventOf, failure, jobRow, messageRow, namespace, sessionRow } from './fixtures.js';
import {
  DATABASE_URL,
  RawClient,
  dropSchema,
  requirePostgres,
  storeOn,
  uniqueSchema,
  urlWithOptions,
} from './postgres-env.js';

const schema = uniqueSchema('contract');
const extraSchemas: string[] = [];

/** A schema of its own for one test, dropped with the run's. */
function freshSchema(label: string): string {
  const name = uniqueSchema(label);
  extraSchemas.push(name);
  return name;
}

// Runs before every test of this file, the contract's included: when the
// server is down, each test fails with this message instead of skipping.
beforeEach(requirePostgres);
afterAll(async () => {
  for (const name of [schema, ...extraSchemas]) await dropSchema(name);
});

storeContract('PostgresStore', async () => storeOn(schema));

interface MigrationRow {
  version: number;
  name: string;
  applied_at: Date;
}

async function migrationRows(name: string): Promise<MigrationRow[]> {
  const raw = await new RawClient().connect();
  try {
    return await raw.rows<MigrationRow>(
      `SELECT version, name, applied_at FROM ${pg.escapeIdentifier(name)}.schema_migrations
       ORDER BY version`,
    );
  } finally {
    await raw.end();
  }
}

describe('PostgresStore migrations', () => {
  it('applies the migrations once and a second store on the schema does not re-run them', async () => {
    const name = freshSchema('migrate');
    const { owner, id } = namespace();
    const first = storeOn(name);
    await first.init();
    await first.commit({ sessions: [sessionRow(owner, id('s'))], events: [eventOf(owner, 'a')] });
    await first.close();
    const afterFirst = await migrationRows(name);

    const second = storeOn(name);
    await second.init();
    try {
      expect(await second.getSession(id('s'))).toEqual(sessionRow(owner, id('s')));
      const next = await second.commit({ events: [eventOf(owner, 'b')] });
      expect(next.events.map((e) => e.seq)).toEqual([2]);
    } finally {
      await second.close();
    }
    expect(afterFirst.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(await migrationRows(name)).toEqual(afterFirst);
  });

  it('applies every step to a new schema and none to a current one', async () => {
    const name = freshSchema('steps');
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      expect(await migratePostgres(client, name)).toEqual(
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
      expect(await migratePostgres(client, name)).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it('applies each step once when several stores open a new schema at the same time', async () => {
    const name = freshSchema('race');
    const stores = Array.from({ length: 5 }, () => storeOn(name, { poolSize: 1 }));
    try {
      await Promise.all(stores.map((s) => s.init()));
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    expect((await migrationRows(name)).map((r) => r.version)).toEqual(
      POSTGRES_MIGRATIONS.map((m) => m.version),
    );
  });

  it('numbers the migration steps 1..n in order', () => {
    expect(POSTGRES_MIGRATIONS.map((m) => m.version)).toEqual(
      POSTGRES_MIGRATIONS.map((_, i) => i + 1),
    );
  });

  it('refuses a schema that is newer than this build', async () => {
    const name = freshSchema('future');
    const store = storeOn(name);
    await store.init();
    await store.close();
    const raw = await new RawClient().connect();
    await raw
      .rows(`INSERT INTO ${pg.escapeIdentifier(name)}.schema_migrations VALUES (999, 'x', now())`)
      .finally(() => raw.end());

    const later = storeOn(name);
    await expect(later.init()).rejects.toThrow(/newer than this build/);
    await later.close();
  });

  it('keeps the rows of one schema invisible to a store on another', async () => {
    const a = storeOn(freshSchema('iso_a'));
    const b = storeOn(freshSchema('iso_b'));
    await a.init();
    await b.init();
    try {
      const { owner, id } = namespace();
      await a.commit({ sessions: [sessionRow(owner, id('s'))], events: [eventOf(owner, 'x')] });

      expect(await a.listSessions(owner)).toHaveLength(1);
      expect(await b.listSessions(owner)).toEqual([]);
      expect(await b.lastSeq(owner)).toBe(0);
      expect((await b.commit({ events: [eventOf(owner, 'y')] })).events[0]?.seq).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('PostgresStore lifecycle', () => {
  it('rejects calls before init with StoreWriteError', async () => {
    const store = storeOn(schema);
    await expect(store.lastSeq('alice')).rejects.toBeInstanceOf(StoreWriteError);
    await expect(store.commit({})).rejects.toBeInstanceOf(StoreWriteError);
    await store.close();
  });

  it('refuses to reopen once closed', async () => {
    const store = storeOn(schema);
    await store.init();
    await store.close();
    await expect(store.init()).rejects.toBeInstanceOf(StoreWriteError);
  });

  it('writes the commits handed in before close, then ends the pool', async () => {
    const store = storeOn(schema);
    await store.init();
    const { owner } = namespace();
    const pending = [1, 2, 3].map((n) => store.commit({ events: [eventOf(owner, `e${n}`)] }));
    await store.close();

    const results = await Promise.all(pending);
    expect(results.map((r) => r.events[0]?.seq)).toEqual([1, 2, 3]);
    expect(await failure(store.commit({}))).toBeInstanceOf(StoreWriteError);
  });

  it('enforces foreign keys from messages and jobs to sessions', async () => {
    const store = storeOn(schema);
    await store.init();
    try {
      const { owner, id } = namespace();
      const orphan = store.commit({
        messages: [messageRow(owner, id('missing'), id('m'))],
        events: [eventOf(owner, 'message.created')],
      });
      await expect(orphan).rejects.toMatchObject({ code: '23503', table: 'messages' });
      const orphanJob = store.commit({
        jobs: [{ row: jobRow(owner, id('missing'), id('j')), expectedVersion: null }],
        events: [eventOf(owner, 'job.created')],
      });
      await expect(orphanJob).rejects.toMatchObject({ code: '23503', table: 'jobs' });
      expect(await store.lastSeq(owner)).toBe(0);
      expect(await store.getJob(id('j'))).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('round-trips JSON exactly: key order, \\u0000 escapes, floats and deep nesting', async () => {
    const store = storeOn(schema);
    await store.init();
    try {
      const { owner, id } = namespace();
      const metadata = {
        z: 1,
        a: 'nul\u0000byte',
        m: [0.1, 1e-7, 1e21, -0.5],
        deep: { b: { c: [] } },
      };
      await store.commit({ sessions: [sessionRow(owner, id('s'))] });
      await store.commit({ messages: [messageRow(owner, id('s'), id('m'), { metadata })] });

      const [stored] = await store.listMessages(id('s'));
      expect(JSON.stringify(stored?.metadata)).toBe(JSON.stringify(metadata));
    } finally {
      await store.close();
    }
  });
});

describe('PostgresStore unavailable database', () => {
  it('fails init with StoreWriteError when nothing listens at the address', async () => {
    const store = new PostgresStore({
      connectionString: 'postgres://postgres@127.0.0.1:1/test',
      schema,
      connectTimeoutMs: 2000,
    });
    const err = await failure(store.init());
    expect(err).toBeInstanceOf(StoreWriteError);
    expect(err).toMatchObject({ code: 'store_unavailable' });
    await store.close();
  });

  it('reports a read-only connection as StoreWriteError and still reads', async () => {
    const { owner } = namespace();
    const writer = storeOn(schema);
    await writer.init();
    await writer.commit({ events: [eventOf(owner, 'a')] });
    await writer.close();
    const readOnly = storeOn(schema, {
      connectionString: urlWithOptions('-c default_transaction_read_only=on'),
    });
    await readOnly.init();
    try {
      const err = await failure(readOnly.commit({ events: [eventOf(owner, 'b')] }));

      expect(err).toBeInstanceOf(StoreWriteError);
      expect(err).toMatchObject({ cause: { code: '25006' } });
      expect(await readOnly.lastSeq(owner)).toBe(1);
    } finally {
      await readOnly.close();
    }
  });

  it('fails a commit whose connection is terminated with StoreWriteError and recovers', async () => {
    const { owner } = namespace();
    const store = storeOn(schema);
    await store.init();
    const blocker = await new RawClient().connect();
    const observer = await new RawClient().connect();
    try {
      await store.commit({ events: [eventOf(owner, 'a')] });
      const ownerSeq = `${pg.escapeIdentifier(schema)}.owner_seq`;
      await blocker.rows('BEGIN');
      await blocker.rows(`SELECT 1 FROM ${ownerSeq} WHERE owner = $1 FOR UPDATE`, [owner]);
      const stuck = failure(store.commit({ events: [eventOf(owner, 'b')] }));
      const victim = await observer.waitForBlocked(await blocker.pid());
      await observer.rows('SELECT pg_terminate_backend($1)', [victim]);

      const err = await stuck;
      expect(err).toBeInstanceOf(StoreWriteError);
      expect(err).toMatchObject({ cause: { code: '57P01' } });
      await blocker.rows('ROLLBACK');
      const next = await store.commit({ events: [eventOf(owner, 'c')] });
      expect(next.events.map((e) => e.seq)).toEqual([2]);
      expect((await store.readEvents(owner, 0, 10)).map((e) => e.type)).toEqual(['a', 'c']);
    } finally {
      await blocker.end();
      await observer.end();
      await store.close();
    }
  });

  it('maps only the errors that mean the server cannot write to StoreWriteError', () => {
    const dbError = (code: string) =>
      Object.assign(new pg.DatabaseError('x', 0, 'error'), { code });
    const unavailable = [
      dbError('53100'),
      dbError('57P01'),
      dbError('25006'),
      dbError('08006'),
      dbError('58030'),
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
    ];
    const other = [dbError('23505'), dbError('23503'), dbError('40P01'), new TypeError('bug')];

    for (const err of unavailable) expect(toStoreError(err)).toBeInstanceOf(StoreWriteError);
    for (const err of other) expect(toStoreError(err)).toBe(err);
  });
});
