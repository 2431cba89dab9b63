import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from '../support/wait.js';
import {
  FeedClient,
  field,
  openFeed,
  startServer,
  TOKENS,
  type Frame,
  type TestServer,
} from './helpers.js';

const FRAME_KEYS = ['seq', 'at', 'type', 'sessionId', 'jobId', 'turnId', 'data'];

describe('WebSocket feed', () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  const createSession = async (server: TestServer, title = 'feed') =>
    String(field((await server.call('POST', '/v1/sessions', { body: { title } })).body, 'id'));

  it('refuses an upgrade without a valid token with HTTP 401, and a bad since with 400', async () => {
    s = await startServer();
    for (const [query, status] of [
      ['', 401],
      ['token=nope', 401],
      [`token=${TOKENS.alice}&since=-1`, 400],
      [`token=${TOKENS.alice}&since=abc`, 400],
    ] as const) {
      const client = new FeedClient(`${s.wsUrl}/v1/events?${query}`);
      await expect(client.opened, query).rejects.toThrow(`unexpected response ${status}`);
    }
    const wrongPath = new FeedClient(`${s.wsUrl}/v1/other?token=${TOKENS.alice}`);
    await expect(wrongPath.opened).rejects.toThrow('unexpected response 404');
  });

  it('sends frames of exactly the documented shape, ephemeral ones without seq', async () => {
    s = await startServer();
    const client = await openFeed(s, `token=${TOKENS.alice}`);
    const id = await createSession(s);
    await s.call('POST', `/v1/sessions/${id}/messages`, { body: { content: 'stream me' } });
    const frames = await client.until((all) => all.some((f) => f['type'] === 'turn.finished'));
    for (const frame of frames) {
      expect(
        Object.keys(frame).every((k) => FRAME_KEYS.includes(k)),
        JSON.stringify(frame),
      ).toBe(true);
      expect(typeof frame['at']).toBe('string');
      expect(typeof frame['data']).toBe('object');
    }
    const deltas = frames.filter((f) => f['type'] === 'turn.delta');
    expect(deltas.length).toBeGreaterThan(0);
    expect(
      deltas.every((f) => !('seq' in f) && typeof field(f['data'], 'delta') === 'string'),
    ).toBe(true);
    const durable = frames.filter((f) => 'seq' in f).map((f) => f['type']);
    expect(durable).toEqual(
      expect.arrayContaining([
        'session.created',
        'message.created',
        'turn.started',
        'turn.finished',
      ]),
    );
    const seqs = client.seqs();
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    client.close();
  });

  it('delivers every durable event exactly once, in order, across a drop and a resume with since', async () => {
    // A tiny page size makes the replay span many store reads.
    s = await startServer({ feed: { pageSize: 3 } });
    const server = s;
    const first = await openFeed(server, `token=${TOKENS.alice}&since=0`);
    const rounds = 25;
    const sessions: string[] = [];
    const generate = (async () => {
      for (let i = 0; i < rounds; i += 1) {
        const id = await createSession(server, `round ${i}`);
        sessions.push(id);
        await server.call('POST', `/v1/sessions/${id}/messages`, {
          body: { content: `hello ${i}` },
        });
      }
    })();
    // Drop the socket mid-stream, while events are still being written.
    await first.until((frames) => frames.filter((f) => 'seq' in f).length >= 20);
    first.ws.terminate();
    await first.closed;
    const seen = first.seqs();
    const since = seen.at(-1) ?? 0;
    const second = await openFeed(server, `token=${TOKENS.alice}&since=${since}`);
    await generate;
    // Every live turn answered: nothing more will be written.
    await waitFor(async () => {
      for (const id of sessions) {
        if ((await server.t.store.listMessages(id)).length < 2) return false;
      }
      const events = await server.t.store.readEvents('alice', 0, 10_000);
      return events.filter((e) => e.type === 'turn.finished').length === rounds;
    });
    const last = await server.t.store.lastSeq('alice');
    await second.until(() => second.seqs().at(-1) === last);
    const stored = (await server.t.store.readEvents('alice', 0, 10_000)).map((e) => e.seq);
    expect(stored.length).toBeGreaterThan(rounds * 4);
    expect([...seen, ...second.seqs()]).toEqual(stored);
    second.close();
  });

  it('replays from since then continues live with no gap and no duplicate', async () => {
    s = await startServer({ feed: { pageSize: 2 } });
    for (let i = 0; i < 5; i += 1) await createSession(s, `before ${i}`);
    const client = await openFeed(s, `token=${TOKENS.alice}&since=2`);
    await createSession(s, 'after');
    await client.until(() => client.seqs().length === 4);
    expect(client.seqs()).toEqual([3, 4, 5, 6]);
    const live = await openFeed(s, `token=${TOKENS.alice}`);
    await createSession(s, 'live only');
    await live.until(() => live.seqs().length === 1);
    expect(live.seqs()).toEqual([7]);
    client.close();
    live.close();
  });

  it('neither loses nor repeats events committed while the replay reads the store', async () => {
    s = await startServer();
    const server = s;
    await createSession(server, 'old 1');
    await createSession(server, 'old 2');
    const store = server.t.store;
    const read = store.readEvents.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reading!: () => void;
    const readStarted = new Promise<void>((resolve) => (reading = resolve));
    const spy = vi.spyOn(store, 'readEvents').mockImplementationOnce(async (...args) => {
      reading();
      // Committed and published before the read: the replay and the live buffer both hold them.
      await gate;
      const page = await read(...args);
      // Committed after the read: only the live buffer holds it.
      await server.t.baton.createSession('alice', { title: 'during' });
      return page;
    });
    const client = await openFeed(server, `token=${TOKENS.alice}&since=0`);
    await readStarted;
    await createSession(server, 'new 1');
    await createSession(server, 'new 2');
    release();
    await client.until(() => client.seqs().length >= 5);
    await createSession(server, 'live');
    await client.until(() => client.seqs().at(-1) === 6);
    expect(client.seqs()).toEqual([1, 2, 3, 4, 5, 6]);
    spy.mockRestore();
    client.close();
  });

  it('filters by sessionId and by subscribe frames (empty list: every session)', async () => {
    s = await startServer();
    const a = await createSession(s, 'a');
    const b = await createSession(s, 'b');
    const onlyA = await openFeed(s, `token=${TOKENS.alice}&since=0&sessionId=${a}`);
    await onlyA.until(() => onlyA.seqs().length === 1);
    expect(onlyA.frames.map((f) => f['sessionId'])).toEqual([a]);

    const client = await openFeed(s, `token=${TOKENS.alice}`);
    client.send({ type: 'subscribe', sessionIds: [b] });
    await client.until((frames) => frames.some((f) => f['type'] === 'subscribed'));
    await s.call('DELETE', `/v1/sessions/${a}`);
    await s.call('DELETE', `/v1/sessions/${b}`);
    await client.until((frames) => frames.some((f) => f['type'] === 'session.deleted'));
    const durable = (frames: Frame[]) => frames.filter((f) => 'seq' in f);
    expect(durable(client.frames).map((f) => f['sessionId'])).toEqual([b]);

    client.send({ type: 'subscribe', sessionIds: [] });
    await client.until((frames) => frames.filter((f) => f['type'] === 'subscribed').length === 2);
    const c = await createSession(s, 'c');
    await client.until((frames) => frames.some((f) => f['sessionId'] === c));
    expect(durable(client.frames).map((f) => f['sessionId'])).toEqual([b, c]);
    onlyA.close();
    client.close();
  });

  it('answers ping with pong', async () => {
    s = await startServer();
    const client = await openFeed(s, `token=${TOKENS.alice}`);
    client.send({ type: 'ping' });
    await client.until((frames) => frames.length === 1);
    expect(client.frames).toEqual([{ type: 'pong' }]);
    client.close();
  });

  it('answers bad frames with an error frame and keeps the connection open', async () => {
    s = await startServer();
    const client = await openFeed(s, `token=${TOKENS.alice}`);
    const bad: [string | Buffer, string][] = [
      ['not json', 'invalid_json'],
      ['{"type":"dance"}', 'invalid_request'],
      ['{"type":"subscribe","sessionIds":"s_1"}', 'invalid_request'],
      ['{"type":"subscribe","sessionIds":[1]}', 'invalid_request'],
      ['{"type":"ping","extra":true}', 'invalid_request'],
      ['[1,2]', 'invalid_request'],
      ['null', 'invalid_request'],
    ];
    for (const [frame] of bad) client.ws.send(frame);
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    client.send({ type: 'ping' });
    const frames = await client.until((all) => all.length === bad.length + 2);
    const errors = frames.slice(0, -1);
    expect(errors.map((f) => f['type'])).toEqual(Array(bad.length + 1).fill('error'));
    expect(errors.map((f) => field(f['error'], 'code'))).toEqual([
      ...bad.map(([, code]) => code),
      'invalid_request',
    ]);
    expect(errors.every((f) => typeof field(f['error'], 'message') === 'string')).toBe(true);
    expect(frames.at(-1)).toEqual({ type: 'pong' });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    client.close();
  });

  it('closes a client that does not read with 4008, and it can resume with since', async () => {
    s = await startServer({
      feed: { maxBufferedBytes: 64 * 1024 },
      metricsAccess: (header) => header === `Bearer ${TOKENS.alice}`,
    });
    const id = await createSession(s);
    const client = await openFeed(s, `token=${TOKENS.alice}&since=0`);
    await client.until(() => client.seqs().length === 1);
    client.ws.pause();
    // Large live frames, far more than socket buffers hold.
    const chunk = 'x'.repeat(512 * 1024);
    for (let i = 0; i < 64; i += 1) {
      s.t.baton.feed.ephemeral('alice', {
        at: new Date().toISOString(),
        type: 'turn.delta',
        sessionId: id,
        turnId: 't_flood',
        data: { delta: chunk },
      });
    }
    const metrics = async () => String((await s!.call('GET', '/metrics')).body);
    await waitFor(async () => /^baton_feed_slow_consumer_closes_total 1$/m.test(await metrics()));
    client.ws.resume();
    const { code } = await client.closed;
    expect(code).toBe(4008);
    // Nothing durable was lost: a resume from the last seq seen gets what came after.
    await createSession(s, 'after');
    const resumed = await openFeed(s, `token=${TOKENS.alice}&since=${client.seqs().at(-1)}`);
    await resumed.until(() => resumed.seqs().length === 1);
    expect(resumed.seqs()).toEqual([2]);
    resumed.close();
  });

  it('pings clients and drops one that does not answer', async () => {
    s = await startServer({ feed: { heartbeatMs: 40 } });
    const healthy = await openFeed(s, `token=${TOKENS.alice}`);
    let pings = 0;
    const threePings = new Promise<void>((resolve) =>
      healthy.ws.on('ping', () => {
        pings += 1;
        if (pings === 3) resolve();
      }),
    );
    const silent = new FeedClient(`${s.wsUrl}/v1/events?token=${TOKENS.alice}`, {
      autoPong: false,
    });
    await silent.opened;
    const { code } = await silent.closed;
    expect(code).toBe(1006);
    await threePings;
    expect(healthy.ws.readyState).toBe(WebSocket.OPEN);
    healthy.close();
  });

  it('closes feeds with 1001 when the app shuts down', async () => {
    const server = await startServer();
    const client = await openFeed(server, `token=${TOKENS.alice}`);
    await server.close();
    const { code } = await client.closed;
    expect(code).toBe(1001);
  });
});
