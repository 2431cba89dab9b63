import { afterEach, expect, it } from 'vitest';
import type { CoordinatorEvents } from '../../src/runtime/coordinator.js';
import { PgCoordinator } from '../../src/runtime/pg-coordinator.js';
import { silentLogger } from '../../src/runtime/policy.js';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import { DATABASE_URL, requirePostgres, uniqueSchema } from '../store/postgres-env.js';
import { waitFor } from '../support/wait.js';

/**
 * pg warns once per process, so this file holds this one test: any query
 * made on the coordinator's connection while another runs would be its first.
 */
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

it('never sends a query on its connection while another one runs', async () => {
  await requirePostgres();
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  cleanup.push(async () => void process.off('warning', onWarning));
  const schema = uniqueSchema('coordq');
  const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
  await store.init();
  cleanup.push(async () => {
    await store.dropSchema();
    await store.close();
  });
  const ids = Array.from({ length: 20 }, (_, i) => `s${i}`);
  await store.commit({
    sessions: ids.map((id) => ({ id, owner: 'o', title: 't', systemPrompt: null, createdAt: 'x' })),
  });
  const start = async (name: string, events: Partial<CoordinatorEvents> = {}) => {
    const c = new PgCoordinator({
      connectionString: DATABASE_URL,
      schema,
      hostId: `${name}_${process.pid}`,
      sweepMs: 50,
      logger: silentLogger,
    });
    cleanup.push(() => c.close());
    await c.start({
      claimed: async () => {},
      lost: () => {},
      commands: () => {},
      stored: () => {},
      ephemeral: () => {},
      ...events,
    });
    return c;
  };
  const heard: number[] = [];
  const relayed: unknown[] = [];
  await start('listener', {
    stored: (_, seq) => void heard.push(seq),
    ephemeral: (_, frame) => void relayed.push(frame),
  });
  const coordinator = await start('busy');

  // What a busy process does at once: claims, feed notices, relayed deltas.
  const claims = ids.map((id) => coordinator.claim(id));
  for (let seq = 1; seq <= 50; seq++) {
    coordinator.announce('o', seq);
    coordinator.broadcast('o', { type: 'turn.delta', data: { delta: String(seq) } });
  }
  expect(await Promise.all(claims)).toEqual(ids.map(() => 1));
  // Sent together, every notice still reaches the other processes, in order.
  await waitFor(() => heard.length === 50 && relayed.length === 50, { what: 'every notice' });
  expect(heard).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));

  expect(warnings.filter((w) => w.includes('already executing a query'))).toEqual([]);
});
