import { afterEach, expect, it } from 'vitest';
import type { CoordinatorEvents } from '../../src/runtime/coordinator.js';
import { PgCoordinator } from '../../src/runtime/pg-coordinator.js';
import { silentLogger } from '../../src/runtime/policy.js';
import { PostgresStore } from '../../src/runtime/store/postgres.js';
import { DATABASE_URL, requirePostgres, uniqueSchema } from '../store/postgres-env.js';
import { waitFor } from '../support/wait.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

/** A coordinator on a fresh schema of the test database, recording the seq notices it hears. */
async function coordinatorOnOwnSchema(label: string) {
  const schema = uniqueSchema(label);
  const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
  await store.init();
  cleanup.push(async () => {
    await store.dropSchema();
    await store.close();
  });
  const heard: string[] = [];
  const events: CoordinatorEvents = {
    claimed: async () => undefined,
    lost: () => undefined,
    commands: () => undefined,
    stored: (owner, seq) => void heard.push(`${owner} ${seq}`),
    ephemeral: () => undefined,
  };
  const coordinator = new PgCoordinator({
    connectionString: DATABASE_URL,
    schema,
    hostId: label,
    logger: silentLogger,
  });
  cleanup.push(() => coordinator.close());
  await coordinator.start(events);
  return { coordinator, heard };
}

// Found while writing the cluster campaign: channels belong to the database,
// and their names were fixed, so a process heard the notices of every other
// schema's processes (another schema's seq moved its feed tail).
it("a process hears no notice of another schema's processes on the same database", async () => {
  await requirePostgres();
  const a = await coordinatorOnOwnSchema('chan_a');
  const b = await coordinatorOnOwnSchema('chan_b');
  // A listener hears its own notices: once A has heard its own, it is in the queue.
  a.coordinator.announce('alice', 5);
  await waitFor(() => a.heard.includes('alice 5'));
  // Every listener reads the one queue in commit order: had B been told of A's
  // notice, it would have heard it before this one of its own.
  b.coordinator.announce('bob', 7);
  await waitFor(() => b.heard.includes('bob 7'));
  expect(b.heard).toEqual(['bob 7']);
  expect(a.heard).toEqual(['alice 5']);
});
