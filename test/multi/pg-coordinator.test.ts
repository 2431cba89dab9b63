import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { CoordinatorEvents } from '../../src/runtime/coordinator.js';
import { PgCoordinator } from '../../src/runtime/pg-coordinator.js';
import { silentLogger } from '../../src/runtime/policy.js';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import { FencedError } from '../../src/runtime/store/store.js';
import { DATABASE_URL, requirePostgres, uniqueSchema } from '../store/postgres-env.js';
import { waitFor } from '../support/wait.js';

function recorder(): CoordinatorEvents & { claimed_: string[]; lost_: string[] } {
  const claimed_: string[] = [];
  const lost_: string[] = [];
  return {
    claimed_,
    lost_,
    claimed: async (id) => void claimed_.push(id),
    lost: (id) => void lost_.push(id),
    commands: () => {},
    stored: () => {},
    ephemeral: () => {},
  };
}

describe('PgCoordinator', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function setup() {
    await requirePostgres();
    const schema = uniqueSchema('coord');
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
    await store.init();
    cleanup.push(async () => {
      await store.dropSchema();
      await store.close();
    });
    const coordinator = (hostId: string) => {
      const c = new PgCoordinator({
        connectionString: DATABASE_URL,
        schema,
        hostId,
        sweepMs: 100,
        logger: silentLogger,
      });
      cleanup.push(() => c.close());
      return c;
    };
    return { schema, store, coordinator };
  }

  it('gives a session to one process at a time and raises its epoch on every claim', async () => {
    const { store, coordinator } = await setup();
    await store.commit({
      sessions: [{ id: 's1', owner: 'o', title: 't', systemPrompt: null, createdAt: 'x' }],
    });
    const a = coordinator('A');
    const b = coordinator('B');
    await a.start(recorder());
    await b.start(recorder());
    expect(await a.claim('s1')).toBe(1);
    expect(await b.claim('s1')).toBeNull();
    await a.close();
    expect(await b.claim('s1')).toBe(2);
  });

  it('moves a session to another process when its owner’s connection dies, and fences the old owner', async () => {
    const { store, coordinator } = await setup();
    await store.commit({
      sessions: [{ id: 's1', owner: 'o', title: 't', systemPrompt: null, createdAt: 'x' }],
      jobs: [],
    });
    const a = coordinator('A');
    const b = coordinator('B');
    const seenByA = recorder();
    const seenByB = recorder();
    await a.start(seenByA);
    const epochA = await a.claim('s1');
    // Work is waiting in the session, so the sweep of B wants it.
    await store.commit({
      fence: { sessionId: 's1', epoch: epochA! },
      jobs: [
        {
          expectedVersion: null,
          row: {
            id: 'j1',
            sessionId: 's1',
            owner: 'o',
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
            createdAt: 'x',
            finishedAt: null,
            followedUpAt: null,
            history: [],
            why: '',
            snapshot: {},
            process: null,
          },
        },
      ],
    });
    await b.start(seenByB);
    expect(seenByB.claimed_).toEqual([]);
    // The owner "dies": PostgreSQL drops its connection, and its advisory lock with it.
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'baton A'`,
    );
    await admin.end();
    await waitFor(() => seenByA.lost_.includes('s1'), { what: 'A to drop the session' });
    await waitFor(() => seenByB.claimed_.includes('s1'), { what: 'B to take the session' });
    expect(b.epoch('s1')).toBe(epochA! + 1);
    // A write still carrying A's epoch is refused whole.
    const refused = await store
      .commit({
        fence: { sessionId: 's1', epoch: epochA! },
        events: [{ owner: 'o', at: 'x', type: 'late', data: {} }],
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FencedError);
    expect(await store.lastSeq('o')).toBe(0);
  });
});
