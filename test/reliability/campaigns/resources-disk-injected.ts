/**
 * The full-disk flow where mounting a tmpfs is not allowed: the same steps
 * against an in-process server whose SQLite store refuses every write while
 * "full" (the error a full disk gives, injected).
 */

import type { AddressInfo } from 'node:net';
import { SqliteStore } from '../../../src/runtime/store/sqlite.js';
import {
  StoreWriteError,
  type Batch,
  type CommitResult,
} from '../../../src/runtime/store/store.js';
import { TokenAuth } from '../../../src/transport/auth.js';
import { buildApp } from '../../../src/transport/http.js';
import { startTestBaton } from '../../support/baton.js';
import { diskFlow, type DiskSummary } from './resources-disk.js';

class FullDiskStore extends SqliteStore {
  full = false;
  override commit(batch: Batch): Promise<CommitResult> {
    if (this.full)
      return Promise.reject(
        new StoreWriteError('SQLITE_FULL: database or disk is full (injected)'),
      );
    return super.commit(batch);
  }
}

export async function runInjectedFullDisk(): Promise<DiskSummary> {
  let store: FullDiskStore | null = null;
  const t = await startTestBaton({
    makeStore: (path) => (store = new FullDiskStore({ path })),
    policy: { reloadDelayMs: 200 },
  });
  const token = 'disk-token-0123456789';
  const app = await buildApp({
    baton: t.baton,
    auth: new TokenAuth([{ owner: 'default', token }]),
    logger: false,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const set = (full: boolean) => {
    if (store) store.full = full;
  };
  let stopped = false;
  try {
    return await diskFlow({
      url,
      token,
      dir: t.dir,
      fill: () => set(true),
      free: () => set(false),
      alive: () => !stopped,
      stop: async () => {
        await app.close();
        await t.close({ keep: true });
        stopped = true;
        return 0;
      },
    });
  } finally {
    if (!stopped) await app.close();
    await t.close();
  }
}
