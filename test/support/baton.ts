import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../../src/runtime/agents/agent.js';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { killProcessesUnder } from './processes.js';
import { Baton, type BatonOptions } from '../../src/runtime/system.js';
import { chooseSandbox } from '../../src/runtime/sandbox/choose-sandbox.js';
import type { Sandbox } from '../../src/runtime/sandbox/sandbox.js';
import {
  DEFAULT_RESOURCE_LIMITS,
  type ResourceLimits,
} from '../../src/runtime/sandbox/sandbox-config.js';

export interface TestBaton {
  baton: Baton;
  store: SqliteStore;
  dir: string;
  /** Closes the runtime (and by default removes its data dir). */
  close(opts?: { keep?: boolean }): Promise<void>;
}

/** The bubblewrap sandbox `baton serve` would take for one owner on this machine. */
export async function bwrapSandbox(
  dir: string,
  limits: Partial<ResourceLimits> = {},
): Promise<Sandbox> {
  const choice = await chooseSandbox({
    kind: 'bwrap',
    network: undefined,
    owners: 1,
    env: {},
    limits: { ...DEFAULT_RESOURCE_LIMITS, ...limits },
    readOnlyPaths: [],
    supportDir: join(dir, 'sandbox'),
    workRoot: join(dir, 'work'),
  });
  return choice.sandbox;
}

/** A real runtime on a temp SQLite file, with fast retries unless told otherwise. */
export async function startTestBaton(
  options: Partial<BatonOptions> & {
    agent?: Agent;
    dir?: string;
    makeStore?: (path: string) => SqliteStore;
    /**
     * Runs jobs under bubblewrap as `baton serve` would choose it (it must
     * work here), with these limits besides the defaults.
     */
    sandboxed?: boolean | Partial<ResourceLimits>;
  } = {},
): Promise<TestBaton> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'baton-test-'));
  const path = join(dir, 'baton.db');
  const store = options.makeStore ? options.makeStore(path) : new SqliteStore({ path });
  await store.init();
  const { sandboxed } = options;
  const sandbox = sandboxed
    ? await bwrapSandbox(dir, sandboxed === true ? {} : sandboxed)
    : options.sandbox;
  const baton = new Baton({
    ...options,
    ...(sandbox ? { sandbox } : {}),
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
