import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import type { Batch, CommitResult } from '../../src/runtime/store/store.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

/** The real store, keeping the event types of every batch it was handed. */
class RecordingStore extends SqliteStore {
  batches: string[][] = [];
  override commit(batch: Batch): Promise<CommitResult> {
    this.batches.push((batch.events ?? []).map((e) => lockOrState(e.type, e.data)));
    return super.commit(batch);
  }
}

function lockOrState(type: string, data: Record<string, unknown>): string {
  if (type === 'job.state') return `job.state:${String(data['state'])}`;
  if (type === 'session.lock') return `session.lock:${String(data['lock'])}`;
  return type;
}

describe('session.lock events', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('ride in the batch of the write that moved the lock, right after its events', async () => {
    let store: RecordingStore | undefined;
    t = await startTestBaton({ makeStore: (path) => (store = new RecordingStore({ path })) });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    store!.batches = [];
    await t.baton.completeJob('alice', job.id, { exitCode: 0, output: 'done' });
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    await t.baton.settled();

    // The job asks for the lock as it reaches awaitingIdleSession: the lock event is in that batch.
    expect(store!.batches).toContainEqual([
      'job.state:completed',
      'job.state:awaitingIdleSession',
      'session.lock:busy',
    ]);
    expect(store!.batches).not.toContainEqual(['session.lock:busy']);
    // The lock's changes are stored in the order they happened, and the feed order follows it.
    const events = await t.store.readEvents('alice', 0, 1000, session.id);
    const flow = events.map((e) => lockOrState(e.type, e.data)).filter((x) => x !== 'turn.started');
    expect(flow.indexOf('session.lock:busy')).toBe(
      flow.indexOf('job.state:awaitingIdleSession') + 1,
    );
    expect(flow.indexOf('job.state:continuing')).toBeGreaterThan(flow.indexOf('session.lock:busy'));
    expect(flow.at(-1)).toBe('session.lock:idle');
    expect(flow.lastIndexOf('session.lock:idle')).toBeGreaterThan(
      flow.indexOf('job.state:followedUp'),
    );
  });

  it('are one per batch: the view the lock had when the batch was built, the view the lock had when the batch was built', async () => {
    let store: RecordingStore | undefined;
    t = await startTestBaton({ makeStore: (path) => (store = new RecordingStore({ path })) });
    const session = await t.baton.createSession('alice', {});
    const jobs = [];
    for (let i = 0; i < 4; i++) {
      jobs.push(await t.baton.startJob('alice', session.id, { external: true }));
    }
    store!.batches = [];
    // All at once: the first takes the lock, the others queue behind it and
    // are answered together, and the lock's view changes several times while
    // a write of the session waits to be built.
    await Promise.all(
      jobs.map((job) => t!.baton.completeJob('alice', job.id, { exitCode: 0, output: 'done' })),
    );
    await waitFor(async () =>
      (await t!.baton.listJobs('alice', { sessionId: session.id })).every(
        (j) => j.state === 'followedUp',
      ),
    );
    await t.baton.settled();

    for (const batch of store!.batches) {
      expect(batch.filter((e) => e.startsWith('session.lock')).length).toBeLessThanOrEqual(1);
    }
    const events = await t.store.readEvents('alice', 0, 1000, session.id);
    const locks = events.filter((e) => e.type === 'session.lock');
    expect(locks.at(-1)?.data).toMatchObject({ lock: 'idle' });
    expect((await t.baton.getSession('alice', session.id)).lock).toMatchObject({ lock: 'idle' });
  });
});
