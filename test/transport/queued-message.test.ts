import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startBaton, type BatonProcess } from '../support/baton-process.js';
import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from '../support/fake-openai.js';
import { httpApi } from '../support/http-api.js';
import { waitFor } from '../support/wait.js';

interface Message {
  id: string;
  role: string;
  content: string;
  metadata: Record<string, unknown>;
  queued?: boolean;
}
interface Frame {
  seq?: number;
  type: string;
  turnId?: string;
  data: { message?: Message };
}

/**
 * A user message sent while a follow-up holds the session (SPEC §3a
 * `enqueue`), over HTTP against `baton serve` in its own process and an
 * OpenAI-compatible endpoint whose first answer (the follow-up) waits until
 * the test lets it go.
 */
describe('a message sent while the session is busy', () => {
  let baton: BatonProcess | undefined;
  let fake: FakeOpenAI | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await baton?.stop();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function start(script: (index: number) => FakeReply | Promise<FakeReply>) {
    fake = await startFakeOpenAI((request) => script(request.index));
    dir = mkdtempSync(join(tmpdir(), 'baton-queued-'));
    baton = await startBaton({
      dataDir: dir,
      port: 0,
      extraArgs: ['--agent', 'openai', '--agent-url', fake.url, '--agent-model', 'm'],
    });
    const b = baton;
    const { call } = httpApi(() => b);
    const messages = async (sessionId: string): Promise<Message[]> =>
      (await call('GET', `/v1/sessions/${sessionId}/messages`)).body.messages;
    const frames = async (until: (f: Frame[]) => boolean): Promise<Frame[]> => {
      const seen: Frame[] = [];
      const ws = new WebSocket(`${b.url.replace('http', 'ws')}/v1/events?token=${b.token}&since=0`);
      ws.on('message', (data) => seen.push(JSON.parse(data.toString()) as Frame));
      try {
        await waitFor(() => until(seen), { what: 'the frames' });
      } finally {
        ws.close();
      }
      return seen;
    };
    return { call, messages, frames };
  }

  it('waits queued, then enters the history after the follow-up it waited for: stored order is what the model saw', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const api = await start(async (index) => {
      if (index === 0) {
        await gate;
        return 'the job finished fine';
      }
      return 'here is my answer';
    });
    const session = (await api.call('POST', '/v1/sessions', { title: 'busy' })).body;
    const job = (await api.call('POST', `/v1/sessions/${session.id}/jobs`, { external: true }))
      .body;
    expect(
      (await api.call('POST', `/v1/jobs/${job.id}/complete`, { exitCode: 0, output: 'ok' })).status,
    ).toBe(200);
    await fake!.waitForRequests(1, 15_000);

    const sent = await api.call('POST', `/v1/sessions/${session.id}/messages`, {
      content: 'what happened?',
    });
    expect(sent.status).toBe(202);
    expect(sent.body.message).toMatchObject({ content: 'what happened?', queued: true });
    // Shown as queued, after the history, while the follow-up runs.
    const waiting = await api.messages(session.id);
    expect(waiting.map((m) => [m.role, m.queued ?? false])).toEqual([['user', true]]);
    // A message that asks not to wait is refused while the session is busy, and not stored.
    const refused = await api.call('POST', `/v1/sessions/${session.id}/messages`, {
      content: 'not now',
      onBusy: 'reject',
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('session_busy');
    expect(await api.messages(session.id)).toEqual(waiting);

    release();
    const stored = await waitFor(
      async () => {
        const list = await api.messages(session.id);
        return list.length === 3 ? list : undefined;
      },
      { timeoutMs: 15_000, what: 'the continuation and the answer' },
    );
    expect(stored.map((m) => [m.role, m.content, m.queued ?? false])).toEqual([
      ['assistant', 'the job finished fine', false],
      ['user', 'what happened?', false],
      ['assistant', 'here is my answer', false],
    ]);
    // The follow-up never saw the message; the live turn saw the continuation before it.
    const [followUp, live] = fake!.requests;
    expect(JSON.stringify(followUp!.body.messages)).not.toContain('what happened?');
    const seen = live!.body.messages.map((m) => [m.role, m.content]);
    expect(seen.slice(-2)).toEqual([
      ['assistant', 'the job finished fine'],
      ['user', 'what happened?'],
    ]);

    // The feed said so in the same order: queued, the continuation, then in the history.
    const feed = await api.frames((f) => f.some((x) => x.type === 'turn.finished'));
    expect(JSON.stringify(feed)).not.toContain('not now');
    const of = (type: string, content: string) =>
      feed.find((f) => f.type === type && f.data.message?.content === content)?.seq ?? -1;
    const queuedAt = of('message.queued', 'what happened?');
    const continuationAt = of('message.created', 'the job finished fine');
    const enteredAt = of('message.created', 'what happened?');
    expect(queuedAt).toBeGreaterThan(0);
    expect(continuationAt).toBeGreaterThan(queuedAt);
    expect(enteredAt).toBeGreaterThan(continuationAt);
    const started = feed.find((f) => f.type === 'turn.started' && f.turnId === sent.body.turnId);
    expect(started?.seq).toBe(enteredAt + 1);
  }, 60_000);

  it('goes straight into the history when the session is idle, even one that refuses to wait', async () => {
    const api = await start(() => 'hello back');
    const session = (await api.call('POST', '/v1/sessions', {})).body;
    const sent = await api.call('POST', `/v1/sessions/${session.id}/messages`, {
      content: 'hi',
      onBusy: 'reject',
    });
    expect(sent.status).toBe(202);
    expect(sent.body.message.queued).toBeUndefined();
    const unknown = await api.call('POST', `/v1/sessions/${session.id}/messages`, {
      content: 'hi',
      onBusy: 'whenever',
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('onBusy must be "enqueue" or "reject"');
    const feed = await api.frames((f) => f.some((x) => x.type === 'turn.finished'));
    expect(feed.filter((f) => f.type === 'message.queued')).toEqual([]);
    expect(
      feed.filter((f) => f.type === 'message.created').map((f) => f.data.message?.content),
    ).toEqual(['hi', 'hello back']);
  }, 60_000);
});
