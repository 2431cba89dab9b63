import { afterEach, describe, expect, it } from 'vitest';
import { StoreWriteError, type Batch, type CommitResult } from '../../src/runtime/store/store.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

/** The real store, with writes that fail on demand (a full disk, as the runtime sees it). */
class FailingWrites extends SqliteStore {
  failing = false;
  override commit(batch: Batch): Promise<CommitResult> {
    if (this.failing) return Promise.reject(new StoreWriteError('disk full (injected)'));
    return super.commit(batch);
  }
}

describe('store write failures', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('answers a write that fails with store_unavailable and recovers once writes work again', async () => {
    let store: FailingWrites | undefined;
    t = await startTestBaton({
      policy: { reloadDelayMs: 20 },
      makeStore: (path) => (store = new FailingWrites({ path })),
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    const before = await t.store.readEvents('alice', 0, 1000);

    store!.failing = true;
    await expect(t.baton.completeJob('alice', job.id, { exitCode: 0 })).rejects.toBeInstanceOf(
      StoreWriteError,
    );
    await expect(t.baton.createSession('alice', {})).rejects.toBeInstanceOf(StoreWriteError);
    expect(await t.store.readEvents('alice', 0, 1000)).toEqual(before);

    // Readers see the job as stored; calls on it answer store_unavailable until it is rebuilt.
    expect((await t.baton.getJob('alice', job.id)).state).toBe('running');
    store!.failing = false;
    await waitFor(
      () =>
        t!.baton.completeJob('alice', job.id, { exitCode: 0 }).then(
          () => true,
          (error: { code?: string }) => {
            if (error.code !== 'store_unavailable') throw error;
            return false;
          },
        ),
      { what: 'the job rebuilt from the store' },
    );
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    const answers = (await t.baton.listMessages('alice', session.id)).filter(
      (m) => m.metadata['bgJobId'] === job.id,
    );
    expect(answers).toHaveLength(1);
  });
});
