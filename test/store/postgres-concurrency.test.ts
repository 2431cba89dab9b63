import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresStore } from '../../src/runtime/store/postgres.js';
import { StoreConflictError } from '../../src/runtime/store/store.js';
import type { CommitResult } from '../../src/runtime/store/store.js';
import { eventOf, failure, jobRow, namespace, sessionRow } from './fixtures.js';
import {
  RawClient,
  dropSchema,
  requirePostgres,
  storeOn,
  uniqueSchema,
  urlWithOptions,
} from './postgres-env.js';

const schema = uniqueSchema('concurrency');

beforeEach(requirePostgres);
afterAll(() => dropSchema(schema));

/** Two stores on one schema, each with its own pool: two Baton processes. */
describe('PostgresStore across processes', () => {
  let a: PostgresStore;
  let b: PostgresStore;
  const open: PostgresStore[] = [];

  beforeEach(async () => {
    a = storeOn(schema);
    b = storeOn(schema);
    open.push(a, b);
    await a.init();
    await b.init();
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((store) => store.close()));
  });

  /** A session with one job at version 1, created through `a`. */
  async function withJob() {
    const ns = namespace();
    const sessionId = ns.id('session');
    const job = jobRow(ns.owner, sessionId, ns.id('j'));
    await a.commit({
      sessions: [sessionRow(ns.owner, sessionId)],
      jobs: [{ row: job, expectedVersion: null }],
    });
    return { ...ns, sessionId, job };
  }

  it('allocates seqs 1..n with no gap and no duplicate when two stores commit at once', async () => {
    const { owner, otherOwner } = namespace();
    const n = 200;
    // Two events a batch, one of them for another owner half the time, so
    // that batches lock several owner rows in both stores.
    const fire = (store: PostgresStore, tag: string) =>
      Array.from({ length: n }, (_, i) =>
        store.commit({
          events: [
            eventOf(owner, `${tag}${i}`),
            eventOf(i % 2 === 0 ? otherOwner : owner, `${tag}${i}x`),
          ],
        }),
      );
    const [fromA, fromB] = await Promise.all([
      Promise.all(fire(a, 'a')),
      Promise.all(fire(b, 'b')),
    ]);

    const seqsOf = (results: CommitResult[], who: string) =>
      results.flatMap((r) => r.events.filter((e) => e.owner === who).map((e) => e.seq));
    const all = [...seqsOf(fromA, owner), ...seqsOf(fromB, owner)].sort((x, y) => x - y);
    const total = n * 2 + n;
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // Each store applied its own batches in call order.
    for (const mine of [seqsOf(fromA, owner), seqsOf(fromB, owner)]) {
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
    const stored = await b.readEvents(owner, 0, total + 10);
    expect(stored.map((e) => e.seq)).toEqual(all);
    expect(await a.lastSeq(owner)).toBe(total);
    expect(await a.lastSeq(otherOwner)).toBe(n);
  });

  it('applies one store’s commits in call order when none is awaited', async () => {
    const { owner, job } = await withJob();
    const n = 50;
    // Commit i moves the job from version i to i + 1: only call order succeeds.
    const pending = Array.from({ length: n }, (_, i) =>
      a.commit({
        jobs: [{ row: { ...job, attempts: i + 1 }, expectedVersion: i + 1 }],
        events: [eventOf(owner, `e${i}`)],
      }),
    );
    const results = await Promise.all(pending);

    expect(results.map((r) => r.jobVersions[job.id])).toEqual(
      Array.from({ length: n }, (_, i) => i + 2),
    );
    expect(results.map((r) => r.events[0]?.seq)).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
    expect(await a.getJob(job.id)).toMatchObject({ attempts: n, version: n + 1 });
  });

  it('rolls back only the failing batch of a burst and keeps seq gap-free', async () => {
    const { owner, job } = await withJob();
    const batches = Array.from({ length: 9 }, (_, i) =>
      a.commit({
        // The fifth batch carries a stale version; the others touch no job.
        jobs: i === 4 ? [{ row: job, expectedVersion: 9 }] : [],
        events: [eventOf(owner, `e${i}`)],
      }),
    );
    const outcomes = await Promise.allSettled(batches);

    expect(outcomes.map((o) => o.status)).toEqual([
      ...Array<string>(4).fill('fulfilled'),
      'rejected',
      ...Array<string>(4).fill('fulfilled'),
    ]);
    const failed = outcomes[4];
    expect(failed?.status === 'rejected' && failed.reason).toBeInstanceOf(StoreConflictError);
    const events = await a.readEvents(owner, 0, 100);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events.map((e) => e.type)).toEqual(['e0', 'e1', 'e2', 'e3', 'e5', 'e6', 'e7', 'e8']);
  });

  it('refuses a stale version written through another store (fencing)', async () => {
    const { job } = await withJob();
    const seenByA = await a.getJob(job.id);
    expect(seenByA?.version).toBe(1);
    await b.commit({ jobs: [{ row: { ...job, state: 'cancelled' }, expectedVersion: 1 }] });

    const err = await failure(
      a.commit({ jobs: [{ row: { ...job, state: 'completed' }, expectedVersion: 1 }] }),
    );

    expect(err).toBeInstanceOf(StoreConflictError);
    expect(err).toMatchObject({ jobId: job.id, expected: 1 });
    expect(await a.getJob(job.id)).toMatchObject({ state: 'cancelled', version: 2 });
  });

  it('lets exactly one of two stores win a race on the same version', async () => {
    const { job } = await withJob();
    const outcomes = await Promise.allSettled([
      a.commit({ jobs: [{ row: { ...job, state: 'completed' }, expectedVersion: 1 }] }),
      b.commit({ jobs: [{ row: { ...job, state: 'cancelled' }, expectedVersion: 1 }] }),
    ]);

    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(StoreConflictError);
    expect(await b.getJob(job.id)).toMatchObject({ version: 2 });
  });

  it('runs a transaction again when the server aborts it to break a deadlock', async () => {
    const ns = namespace();
    const sessionId = ns.id('session');
    const first = jobRow(ns.owner, sessionId, ns.id('j', 1));
    const second = jobRow(ns.owner, sessionId, ns.id('j', 2));
    await a.commit({
      sessions: [sessionRow(ns.owner, sessionId)],
      jobs: [first, second].map((row) => ({ row, expectedVersion: null })),
    });
    // A deadlock is found by the waiter whose deadlock_timeout runs out first
    // while the cycle exists. The store waits first, and `other` closes the
    // cycle well within the store's timeout and far within its own, so the
    // store's transaction is the one aborted.
    const fast = storeOn(schema, {
      connectionString: urlWithOptions('-c deadlock_timeout=500ms'),
    });
    await fast.init();
    const other = await new RawClient().connect();
    const observer = await new RawClient().connect();
    const jobs = `${pg.escapeIdentifier(schema)}.jobs`;
    try {
      await other.rows(`SET deadlock_timeout = '10s'`);
      const otherPid = await other.pid();
      await other.rows('BEGIN');
      await other.rows(`UPDATE ${jobs} SET why = why WHERE id = $1`, [second.id]);
      const commit = fast.commit({
        jobs: [
          { row: { ...first, state: 'completed' }, expectedVersion: 1 },
          { row: { ...second, state: 'completed' }, expectedVersion: 1 },
        ],
      });
      await observer.waitForBlocked(otherPid);
      // Closes the cycle: `other` waits for the store, which waits for `other`.
      await other.rows(`UPDATE ${jobs} SET why = why WHERE id = $1`, [first.id]);
      await other.rows('COMMIT');

      expect((await commit).jobVersions).toEqual({ [first.id]: 2, [second.id]: 2 });
      expect(await a.getJob(second.id)).toMatchObject({ state: 'completed', version: 2 });
    } finally {
      await other.end();
      await observer.end();
      await fast.close();
    }
  });
});
