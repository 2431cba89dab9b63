import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { StoreWriteError, type Batch, type CommitResult } from '../../src/runtime/store/store.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

/** Refuses the one write that records a started process (a disk that fills at that moment). */
class RefusesProcessRecord extends SqliteStore {
  refused = 0;
  override commit(batch: Batch): Promise<CommitResult> {
    const recordsProcess = (batch.jobs ?? []).some(
      (w) => w.row.process !== null && w.row.state === 'running',
    );
    if (recordsProcess && this.refused === 0) {
      this.refused++;
      return Promise.reject(new StoreWriteError('disk full (injected)'));
    }
    return super.commit(batch);
  }
}

/**
 * The gap the crash campaign found (a wrapper spawned but its pid never
 * stored), reached without a crash: the write that records the pid fails (a
 * disk that fills at that moment), the job is rebuilt from the store, where
 * it has no pid, and was ended `lost` while its command ran on.
 */
describe('a job whose process record cannot be written', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('still ends with the outcome of the process that ran', async () => {
    let store: RefusesProcessRecord | undefined;
    t = await startTestBaton({
      makeStore: (path) => (store = new RefusesProcessRecord({ path })),
      policy: { reloadDelayMs: 20 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, {
      command: 'sleep 0.3; echo ran-anyway',
    });
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', job.id);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(store?.refused).toBe(1);
    expect(final.output).toContain('ran-anyway');
    expect(final).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
  });
});
