import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { iso } from '../../src/runtime/clock.js';
import {
  field,
  openFeed,
  startServer,
  TOKENS,
  type FeedClient,
  type Frame,
  type TestServer,
} from './helpers.js';

/** Later than every event a test stores: pruning before it keeps only each owner's newest. */
const future = () => iso(Date.now() + 3_600_000);

const isError = (f: Frame) => f['type'] === 'error';
const codeOf = (f: Frame) => field(f['error'], 'code');
const messageOf = (f: Frame) => String(field(f['error'], 'message'));

describe('WebSocket feed after retention pruned events', () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await s?.close();
    s = undefined;
  });

  const createSession = async (server: TestServer, title: string, token: string = TOKENS.alice) =>
    String(
      field((await server.call('POST', '/v1/sessions', { body: { title }, token })).body, 'id'),
    );

  /** Frames in arrival order as `error:<code>` or the seq, ignoring anything else. */
  const trace = (client: FeedClient): (string | number)[] =>
    client.frames.flatMap((f): (string | number)[] => {
      if (isError(f)) return [`error:${String(codeOf(f))}`];
      return typeof f['seq'] === 'number' ? [f['seq']] : [];
    });

  it('sends one since_pruned frame naming the first retained seq, then goes on from it and stays open', async () => {
    s = await startServer();
    for (let i = 1; i <= 4; i += 1) await createSession(s, `alice ${i}`);
    await createSession(s, 'bob 1', TOKENS.bob);
    expect(await s.t.store.pruneEvents(future(), 1000)).toBe(3);
    expect(await s.t.store.firstSeq('alice')).toBe(4);

    const client = await openFeed(s, `token=${TOKENS.alice}&since=1`);
    await client.until(() => client.seqs().length === 1);
    await createSession(s, 'alice live');
    await client.until(() => client.seqs().length === 2);

    expect(trace(client)).toEqual(['error:since_pruned', 4, 5]);
    const error = client.frames[0] as Frame;
    expect(Object.keys(error).sort()).toEqual(['error', 'type']);
    expect(messageOf(error)).toContain('reload');
    expect(messageOf(error)).toContain('HTTP');
    expect(messageOf(error)).toContain('seq 4');
    expect(messageOf(error)).toContain('since=3');
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    client.send({ type: 'ping' });
    await client.until((frames) => frames.some((f) => f['type'] === 'pong'));
    client.close();
  });

  it('answers since=0 the same way, and a since within what is kept without an error', async () => {
    s = await startServer();
    for (let i = 1; i <= 3; i += 1) await createSession(s, `alice ${i}`);
    await s.t.store.pruneEvents(future(), 1000);

    const fromZero = await openFeed(s, `token=${TOKENS.alice}&since=0`);
    await fromZero.until(() => fromZero.seqs().length === 1);
    const kept = await openFeed(s, `token=${TOKENS.alice}&since=2`);
    await kept.until(() => kept.seqs().length === 1);
    const current = await openFeed(s, `token=${TOKENS.alice}&since=3`);
    await createSession(s, 'alice live');
    await current.until(() => current.seqs().length === 1);
    await kept.until(() => kept.seqs().length === 2);
    await fromZero.until(() => fromZero.seqs().length === 2);

    expect(trace(fromZero)).toEqual(['error:since_pruned', 3, 4]);
    expect(messageOf(fromZero.frames[0] as Frame)).toContain('since=2');
    expect(trace(kept)).toEqual([3, 4]);
    expect(trace(current)).toEqual([4]);
    // Another owner's pruning is not this owner's: bob never had an event.
    const bob = await openFeed(s, `token=${TOKENS.bob}&since=0`);
    bob.send({ type: 'ping' });
    await bob.until((frames) => frames.length === 1);
    expect(bob.frames).toEqual([{ type: 'pong' }]);
    for (const client of [fromZero, kept, current, bob]) client.close();
  });

  it('tells a client filtered to one session too, though its seqs jump anyway', async () => {
    s = await startServer();
    const a = await createSession(s, 'a');
    await createSession(s, 'b');
    await createSession(s, 'c');
    await s.t.store.pruneEvents(future(), 1000);

    const client = await openFeed(s, `token=${TOKENS.alice}&since=0&sessionId=${a}`);
    await client.until((frames) => frames.length === 1);
    await s.call('DELETE', `/v1/sessions/${a}`);
    await client.until(() => client.seqs().length === 1);

    expect(trace(client)).toEqual(['error:since_pruned', 4]);
    expect(client.frames[1]?.['sessionId']).toBe(a);
    client.close();
  });

  it('notices events pruned while it replays, between two pages', async () => {
    s = await startServer({ feed: { pageSize: 2 } });
    const server = s;
    for (let i = 1; i <= 6; i += 1) await createSession(server, `alice ${i}`);
    const store = server.t.store;
    const read = store.readEvents.bind(store);
    vi.spyOn(store, 'readEvents').mockImplementationOnce(async (...args) => {
      const page = await read(...args);
      // The retention runs after the first page was read: 3..5 go.
      await store.pruneEvents(future(), 1000);
      return page;
    });

    const client = await openFeed(server, `token=${TOKENS.alice}&since=0`);
    await client.until(() => client.seqs().length === 3);

    expect(trace(client)).toEqual([1, 2, 'error:since_pruned', 6]);
    expect(messageOf(client.frames[2] as Frame)).toContain('since=5');
    client.close();
  });
});
