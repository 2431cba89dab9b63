import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

/** A live turn whose agent fails is retried with backoff, and ends answered or with one notice. */
describe('a live turn whose agent fails', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await t?.close();
    await fake?.close();
    t = fake = undefined;
  });

  async function start(script: FakeReply[]) {
    fake = await startFakeOpenAI(script);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { maxAttempts: 3, retryBaseMs: 20, retryMaxMs: 50 },
    });
    const session = await t.baton.createSession('alice', {});
    return { baton: t.baton, sessionId: session.id };
  }

  async function finished(turnId: string) {
    return waitFor(
      async () =>
        (await t!.store.readEvents('alice', 0, 1000)).find(
          (e) => e.type === 'turn.finished' && e.turnId === turnId,
        ),
      { what: 'the turn to finish' },
    );
  }

  it('is retried and answered once', async () => {
    const { baton, sessionId } = await start([
      { fault: 'status', status: 500 },
      { fault: 'reset' },
      'Here you go.',
    ]);
    const { turnId } = await baton.sendMessage('alice', sessionId, 'hello');
    expect((await finished(turnId)).data).toEqual({ ok: true });
    const messages = await baton.listMessages('alice', sessionId);
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hello'],
      ['assistant', 'Here you go.'],
    ]);
    expect(fake!.requests).toHaveLength(3);
    expect(await t!.store.listOpenTurns()).toEqual([]);
  });

  it('ends with one notice for the person when every attempt fails, which the model never sees', async () => {
    const { baton, sessionId } = await start([
      { fault: 'status', status: 500 },
      { fault: 'status', status: 500 },
      { fault: 'status', status: 503, message: 'overloaded' },
      'Fine now.',
    ]);
    const { turnId } = await baton.sendMessage('alice', sessionId, 'hello');
    const end = await finished(turnId);
    expect(end.data['ok']).toBe(false);
    const messages = await baton.listMessages('alice', sessionId);
    expect(messages).toHaveLength(2);
    expect(messages[1]).toMatchObject({
      role: 'system',
      metadata: { kind: 'turnFailed', turnId, attempts: 3 },
    });
    expect(messages[1]!.content).toContain('I could not answer this message');
    expect(await t!.store.listOpenTurns()).toEqual([]);

    const next = await baton.sendMessage('alice', sessionId, 'again?');
    expect((await finished(next.turnId)).data).toEqual({ ok: true });
    const sent = fake!.requests.at(-1)!.body.messages;
    expect(sent.map((m) => m.role)).toEqual(['user', 'user']);
  });
});
