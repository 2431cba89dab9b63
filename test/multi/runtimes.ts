/**
 * Baton runtimes in this test process, on one PostgreSQL schema, each with
 * its own coordinator: a session's owner can be made to die at an exact
 * point (after a command's effect, before it says the command is done),
 * which a SIGKILL of a real `baton serve` can only hit by chance.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Agent } from '../../src/runtime/agents/agent.js';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import { PgCoordinator, type PgCoordinatorOptions } from '../../src/runtime/pg-coordinator.js';
import { silentLogger } from '../../src/runtime/policy.js';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import type { Batch } from '../../src/runtime/store/store.js';
import { Baton } from '../../src/runtime/system.js';
import { DATABASE_URL, requirePostgres, uniqueSchema } from '../store/postgres-env.js';
import { killProcessesUnder } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

export const OWNER = 'alice';

/** A coordinator whose process dies before it can store that a command is done. */
class SilentCoordinator extends PgCoordinator {
  override finishCommand(): Promise<void> {
    return new Promise(() => {});
  }
}

/**
 * A store that writes a command's effect but not its result, as an owner of
 * a build before results were recorded with effects did.
 */
class ResultlessStore extends PostgresStore {
  override commit(batch: Batch) {
    const { commands: _, ...rest } = batch;
    return super.commit(rest);
  }
}

export interface Runtime {
  baton: Baton;
  store: PostgresStore;
  coordinator: PgCoordinator;
  hostId: string;
  /**
   * Dies as a SIGKILL would leave it: its database connection (and so its
   * claim on every session) is cut, nothing is handed over, it stops.
   */
  kill(): Promise<void>;
}

export interface RuntimeOptions {
  agent?: Agent;
  /** Never stores that a command is done (it dies first). */
  silent?: boolean;
  /** Stores a command's effect without its result. */
  resultless?: boolean;
  forwardTimeoutMs?: number;
}

/** Runtimes on one fresh schema; `close` ends them all and drops the schema. */
export async function runtimes() {
  await requirePostgres();
  const schema = uniqueSchema('fwd');
  const started: { runtime: Runtime; dir: string; closed: () => Promise<void> }[] = [];

  const start = async (name: string, options: RuntimeOptions = {}): Promise<Runtime> => {
    const hostId = `${name}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const dir = mkdtempSync(join(tmpdir(), `baton-fwd-${name}-`));
    const storeOptions = { connectionString: DATABASE_URL, schema, poolSize: 4 };
    const store = options.resultless
      ? new ResultlessStore(storeOptions)
      : new PostgresStore(storeOptions);
    await store.init();
    const coordinatorOptions: PgCoordinatorOptions = {
      connectionString: DATABASE_URL,
      schema,
      hostId,
      sweepMs: 100,
      logger: silentLogger,
      ...(options.forwardTimeoutMs ? { forwardTimeoutMs: options.forwardTimeoutMs } : {}),
    };
    const coordinator = options.silent
      ? new SilentCoordinator(coordinatorOptions)
      : new PgCoordinator(coordinatorOptions);
    const baton = new Baton({
      store,
      coordinator,
      agent: options.agent ?? new OfflineAgent(),
      dataDir: dir,
      policy: { retryBaseMs: 20, retryMaxMs: 200, killGraceMs: 200, drainMs: 200 },
    });
    await baton.recover();
    let closing: Promise<void> | null = null;
    const closed = () => (closing ??= baton.close());
    const runtime: Runtime = {
      baton,
      store,
      coordinator,
      hostId,
      kill: async () => {
        const admin = new pg.Client({ connectionString: DATABASE_URL });
        await admin.connect();
        try {
          await admin.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
            [`baton ${hostId}`],
          );
        } finally {
          await admin.end();
        }
        // The lost connection took every session with it; then the process stops.
        await waitFor(
          async () => (await sessionIds(store)).every((id) => coordinator.epoch(id) === undefined),
          { what: `${name} to lose its sessions` },
        );
        await closed();
      },
    };
    started.push({ runtime, dir, closed });
    return runtime;
  };

  const close = async () => {
    for (const { closed, dir } of started.reverse()) {
      await closed().catch(() => undefined);
      killProcessesUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
    await store.dropSchema();
    await store.close();
  };

  /** The forwarded commands as stored: kind, whether done, and the result. */
  const commands = async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ kind: string; done: boolean; result: unknown }>(
        `SELECT command->>'kind' AS kind, done_at IS NOT NULL AS done, result
           FROM ${pg.escapeIdentifier(schema)}.commands ORDER BY id`,
      );
      return rows;
    } finally {
      await client.end();
    }
  };

  return { schema, start, close, commands };
}

async function sessionIds(store: PostgresStore): Promise<string[]> {
  return (await store.listSessions(OWNER)).map((s) => s.id);
}

/** An agent that never answers: its turn holds the session until it is aborted. */
export class StuckAgent implements Agent {
  readonly kind = 'stuck';
  readonly model = 'stuck';
  runs = 0;

  run(input: { signal: AbortSignal }): Promise<never> {
    this.runs += 1;
    return new Promise((_, reject) => {
      const abort = () => reject(new Error('aborted'));
      if (input.signal.aborted) abort();
      else input.signal.addEventListener('abort', abort, { once: true });
    });
  }
}
