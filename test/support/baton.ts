import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../../src/runtime/agents/agent.js';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { killProcessesUnder } from './processes.js';
import { Baton, type BatonOptions } from '../../src/runtime/system.js';

export interface TestBaton {
  baton: Baton;
  store: SqliteStore;
  dir: string;
  /** Closes the runtime (and by default removes its data dir). */
  close(opts?: { keep?: boolean }): Promise<void>;
}

/** A real runtime on a temp SQLite file, with fast retries unless told otherwise. */
export async function startTestBaton(
  options: Partial<BatonOptions> & {
    agent?: Agent;
    dir?: string;
    makeStore?: (path: string) => SqliteStore;
  } = {},
): Promise<TestBaton> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'baton-test-'));
  const path = join(dir, 'baton.db');
  const store = options.makeStore ? options.makeStore(path) : new SqliteStore({ path });
  await store.init();
  const baton = new Baton({
    ...options,
    store,
    agent: options.agent ?? new OfflineAgent(),
    dataDir: dir,
    policy: { retryBaseMs: 20, retryMaxMs: 200, killGraceMs: 200, drainMs: 500, ...options.policy },
  });
  await baton.recover();
  return {
    baton,
    store,
    dir,
    close: async ({ keep = false } = {}) => {
      await baton.close();
      if (keep) return;
      // Jobs outlive the runtime on purpose (a restart adopts them); a test's do not.
      killProcessesUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
