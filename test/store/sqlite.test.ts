import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { SQLITE_MIGRATIONS, migrateSqlite } from '../../src/runtime/store/sqlite-migrations.js';
import { StoreWriteError } from '../../src/runtime/store/store.js';
import type { NewEvent, SessionRow } from '../../src/runtime/store/store.js';
import { storeContract } from './contract.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function freshPath(): string {
  files += 1;
  return join(dir, `store-${files}.db`);
}

storeContract('SqliteStore (temp file)', async () => new SqliteStore({ path: freshPath() }));
storeContract('SqliteStore (:memory:)', async () => new SqliteStore({ path: ':memory:' }));

/** Reaches the store's own connection, where per-connection pragmas live. */
class ProbedSqliteStore extends SqliteStore {
  pragma(source: string): unknown {
    if (!this.db) throw new Error('store is not open');
    return this.db.pragma(source, { simple: true });
  }
}

const session: SessionRow = {
  id: 's1',
  owner: 'alice',
  title: 'kept',
  systemPrompt: null,
  createdAt: '2026-11-25T10:00:00.000Z',
};

function eventOf(type: string, extra: Partial<NewEvent> = {}): NewEvent {
  return { owner: 'alice', at: '2026-11-25T10:00:00.000Z', type, data: {}, ...extra };
}

function migrationRows(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT version, name, applied_at FROM schema_migrations').all();
  } finally {
    db.close();
  }
}

describe('SqliteStore', () => {
  it('keeps data and does not re-run migrations when the same file is reopened', async () => {
    const path = freshPath();
    const first = new SqliteStore({ path });
    await first.init();
    await first.commit({ sessions: [session], events: [eventOf('a'), eventOf('b')] });
    await first.close();
    const migrationsAfterFirstOpen = migrationRows(path);

    const second = new SqliteStore({ path });
    await second.init();
    try {
      expect(await second.getSession(session.id)).toEqual(session);
      const next = await second.commit({ events: [eventOf('c')] });
      expect(next.events.map((e) => e.seq)).toEqual([3]);
    } finally {
      await second.close();
    }
    expect(migrationsAfterFirstOpen).toHaveLength(SQLITE_MIGRATIONS.length);
    expect(migrationRows(path)).toEqual(migrationsAfterFirstOpen);
  });

  it('applies every migration to a new database and none to a current one', () => {
    const db = new Database(':memory:');
    try {
      const all = SQLITE_MIGRATIONS.map((m) => m.version);
      expect(migrateSqlite(db)).toEqual(all);
      expect(migrateSqlite(db)).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('numbers the migration steps 1..n in order', () => {
    expect(SQLITE_MIGRATIONS.map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((_, i) => i + 1));
  });

  it('refuses a database whose schema is newer than this build', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    await store.init();
    await store.close();
    const db = new Database(path);
    db.prepare(`INSERT INTO schema_migrations VALUES (999, 'from the future', 'x')`).run();
    db.close();

    await expect(new SqliteStore({ path }).init()).rejects.toThrow(/newer than this build/);
  });

  it('runs in WAL mode with FULL synchronous, foreign keys, the busy timeout, in-memory sub-journals and 16 MB checkpoints', async () => {
    const store = new ProbedSqliteStore({ path: freshPath(), busyTimeoutMs: 1234 });
    await store.init();
    try {
      expect(store.pragma('journal_mode')).toBe('wal');
      // 2 is FULL: every commit syncs the WAL before returning.
      expect(store.pragma('synchronous')).toBe(2);
      expect(store.pragma('foreign_keys')).toBe(1);
      expect(store.pragma('busy_timeout')).toBe(1234);
      // 2 is MEMORY: the savepoints' sub-journals stay out of temporary files.
      expect(store.pragma('temp_store')).toBe(2);
      expect(store.pragma('wal_autocheckpoint')).toBe(4000);
    } finally {
      await store.close();
    }
  });

  it('uses a 5 second busy timeout by default', async () => {
    const store = new ProbedSqliteStore({ path: ':memory:' });
    await store.init();
    try {
      expect(store.pragma('busy_timeout')).toBe(5000);
    } finally {
      await store.close();
    }
  });

  it('reports a full disk as StoreWriteError and leaves earlier data intact', async () => {
    const store = new ProbedSqliteStore({ path: freshPath() });
    await store.init();
    try {
      await store.commit({ sessions: [session], events: [eventOf('a')] });
      const pages = store.pragma('page_count');
      store.pragma(`max_page_count = ${Number(pages)}`);

      const err: unknown = await store
        .commit({
          sessions: [{ ...session, id: 's2' }],
          messages: [
            {
              id: 'm1',
              sessionId: session.id,
              owner: 'alice',
              role: 'assistant',
              content: 'x'.repeat(256 * 1024),
              metadata: {},
              createdAt: session.createdAt,
              answersJobs: ['j1'],
            },
          ],
          events: [eventOf('b')],
        })
        .catch((e: unknown) => e);

      expect(err).toBeInstanceOf(StoreWriteError);
      expect(err).toMatchObject({ code: 'store_unavailable', cause: { code: 'SQLITE_FULL' } });
      expect(await store.getSession(session.id)).toEqual(session);
      expect(await store.getSession('s2')).toBeNull();
      expect(await store.listMessages(session.id)).toEqual([]);
      expect(await store.lastSeq('alice')).toBe(1);

      store.pragma('max_page_count = 1073741823');
      const next = await store.commit({ events: [eventOf('c')] });
      expect(next.events.map((e) => e.seq)).toEqual([2]);
    } finally {
      await store.close();
    }
  });

  it('reports a read-only connection as StoreWriteError', async () => {
    const store = new ProbedSqliteStore({ path: freshPath() });
    await store.init();
    try {
      await store.commit({ events: [eventOf('a')] });
      store.pragma('query_only = ON');

      const err = await store.commit({ events: [eventOf('b')] }).catch((e: unknown) => e);

      expect(err).toBeInstanceOf(StoreWriteError);
      expect(await store.lastSeq('alice')).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('keeps seq gapless when two stores write the same file in turn', async () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const b = new SqliteStore({ path });
    await a.init();
    await b.init();
    try {
      const seqs: number[] = [];
      for (let i = 0; i < 6; i += 1) {
        const writer = i % 2 === 0 ? a : b;
        const result = await writer.commit({ events: [eventOf(`e${i}`), eventOf(`f${i}`)] });
        seqs.push(...result.events.map((e) => e.seq));
      }
      expect(seqs).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect((await b.readEvents('alice', 0, 100)).map((e) => e.seq)).toEqual(seqs);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('rejects calls before init with StoreWriteError', async () => {
    const store = new SqliteStore({ path: ':memory:' });
    await expect(store.lastSeq('alice')).rejects.toBeInstanceOf(StoreWriteError);
    await expect(store.commit({})).rejects.toBeInstanceOf(StoreWriteError);
    await store.close();
  });

  it('refuses to reopen once closed', async () => {
    const store = new SqliteStore({ path: ':memory:' });
    await store.init();
    await store.close();
    await expect(store.init()).rejects.toBeInstanceOf(StoreWriteError);
  });

  it('enforces foreign keys from messages and jobs to sessions', async () => {
    const store = new SqliteStore({ path: ':memory:' });
    await store.init();
    try {
      const orphan = store.commit({
        messages: [
          {
            id: 'm1',
            sessionId: 'missing',
            owner: 'alice',
            role: 'user',
            content: 'hi',
            metadata: {},
            createdAt: session.createdAt,
          },
        ],
        events: [eventOf('message.created')],
      });
      await expect(orphan).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
      const orphanJob = store.commit({
        jobs: [
          {
            expectedVersion: null,
            row: {
              id: 'j1',
              sessionId: 'missing',
              owner: 'alice',
              command: null,
              cwd: null,
              timeoutS: null,
              external: true,
              name: null,
              labels: {},
              state: 'running',
              outcome: null,
              exitCode: null,
              attempts: 0,
              output: '',
              createdAt: session.createdAt,
              finishedAt: null,
              followedUpAt: null,
              history: [],
              why: '',
              snapshot: null,
              process: null,
            },
          },
        ],
        events: [eventOf('job.created')],
      });
      await expect(orphanJob).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
      expect(await store.lastSeq('alice')).toBe(0);
      expect(await store.getJob('j1')).toBeNull();
    } finally {
      await store.close();
    }
  });
});
