import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { createJobMachine } from '../../src/machines/job.machine.js';
import { createInspection } from '../../src/transport/inspect.js';
import type { Inspection } from '../../src/transport/inspect.js';

/** A stand-in for the inspector's bridge: a local WebSocket server that keeps what it receives. */
interface FakeInspector {
  url: string;
  messages: Record<string, unknown>[];
  connections: number;
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

async function startFakeInspector(): Promise<FakeInspector> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const fake: FakeInspector = {
    url: `ws://127.0.0.1:${port}`,
    messages: [],
    connections: 0,
    sockets: new Set(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of fake.sockets) socket.terminate();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket) => {
    fake.connections++;
    fake.sockets.add(socket);
    socket.on('close', () => fake.sockets.delete(socket));
    socket.on('message', (data) => {
      const parsed: unknown = JSON.parse(String(data));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        fake.messages.push(parsed as Record<string, unknown>);
      }
    });
  });
  return fake;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const input = { jobId: 'j_1', sessionId: 's_1', maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 100 };

describe('createInspection', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  const open = (fake: FakeInspector, reconnectMs = 5_000): Inspection => {
    const inspection = createInspection({ enabled: true, url: fake.url, reconnectMs });
    cleanup.push(() => inspection.close());
    return inspection;
  };

  it('observes nothing when disabled', () => {
    const inspection = createInspection({ enabled: false, url: 'ws://127.0.0.1:1' });
    expect(inspection.inspect).toBeUndefined();
    inspection.close();
  });

  it('streams a job actor’s registration, events and snapshots to the inspector', async () => {
    const fake = await startFakeInspector();
    cleanup.push(() => fake.close());
    const inspection = open(fake);
    const actor = createActor(createJobMachine(), {
      input,
      ...(inspection.inspect ? { inspect: inspection.inspect } : {}),
    });
    actor.start();
    actor.send({ type: 'FINISHED', outcome: 'succeeded', exitCode: 0, at: 1 });
    cleanup.push(() => actor.stop());

    const snapshotIn = (state: string) =>
      fake.messages.some((m) => {
        const snapshot = m['snapshot'];
        return (
          m['type'] === '@xstate.snapshot' &&
          typeof snapshot === 'object' &&
          snapshot !== null &&
          'value' in snapshot &&
          snapshot.value === state
        );
      });
    await until(() => snapshotIn('awaitingIdleSession'), 'the awaitingIdleSession snapshot');

    // Registered before the socket was open: kept, then delivered.
    const registration = fake.messages.find((m) => m['type'] === '@xstate.actor');
    expect(registration).toMatchObject({ name: 'job', sessionId: actor.sessionId });
    expect(String(registration?.['definition'])).toContain('awaitingIdleSession');
    expect(fake.messages).toContainEqual(
      expect.objectContaining({
        type: '@xstate.event',
        sessionId: actor.sessionId,
        event: { type: 'FINISHED', outcome: 'succeeded', exitCode: 0, at: 1 },
      }),
    );
    // In the Stately inspector's protocol, not raw XState inspection events.
    expect(fake.messages.every((m) => typeof m['_version'] === 'string')).toBe(true);
  });

  it('connects again when the inspector drops it, and stops for good once closed', async () => {
    const fake = await startFakeInspector();
    cleanup.push(() => fake.close());
    const inspection = open(fake, 20);
    await until(() => fake.connections === 1 && fake.sockets.size === 1, 'the first connection');

    for (const socket of fake.sockets) socket.terminate();
    await until(() => fake.connections === 2, 'a second connection');
    const actor = createActor(createJobMachine(), {
      input,
      ...(inspection.inspect ? { inspect: inspection.inspect } : {}),
    });
    actor.start();
    cleanup.push(() => actor.stop());
    await until(() => fake.messages.some((m) => m['type'] === '@xstate.actor'), 'the actor');

    inspection.close();
    inspection.close();
    await until(() => fake.sockets.size === 0, 'the socket to close');
    actor.send({ type: 'CANCEL' });
    await sleep(100);
    expect(fake.connections).toBe(2);
    const cancel = fake.messages.filter(
      (m) => m['type'] === '@xstate.event' && JSON.stringify(m['event']).includes('CANCEL'),
    );
    expect(cancel).toEqual([]);
  });
});
