import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';
import { field, startServer, type TestServer } from '../transport/helpers.js';

/**
 * Caught by the hostile-input campaign: a lone surrogate (which JSON carries
 * as an escape, `"\ud800"`) was written to SQLite as invalid UTF-8 bytes and
 * read back as three replacement characters, unlike what the API had
 * answered. It is now stored as one U+FFFD, as UTF-8 can hold it.
 */
describe('text with lone surrogates', () => {
  let s: TestServer | undefined;
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await s?.close();
    await t?.close();
    await fake?.close();
    s = t = fake = undefined;
  });

  it('is answered, stored and read back with U+FFFD in its place, as valid UTF-8', async () => {
    s = await startServer();
    const created = await s.call('POST', '/v1/sessions', { raw: '{"title":"a\\ud800b\\udfffc"}' });
    expect(created.status).toBe(201);
    expect(field(created.body, 'title')).toBe('a\ufffdb\ufffdc');
    const id = String(field(created.body, 'id'));
    const sent = await s.call('POST', `/v1/sessions/${id}/messages`, {
      raw: '{"content":"x\\udc00y"}',
    });
    expect(sent.status).toBe(202);
    expect((await s.t.store.getSession(id))?.title).toBe('a\ufffdb\ufffdc');
    const messages = await s.t.store.listMessages(id);
    expect(messages[0]?.content).toBe('x\ufffdy');
    const db = new Database(join(s.t.dir, 'baton.db'), { readonly: true });
    const hex = db
      .prepare<[string], { h: string }>('SELECT hex(title) AS h FROM sessions WHERE id = ?')
      .get(id);
    db.close();
    expect(hex?.h).toBe(Buffer.from('a\ufffdb\ufffdc').toString('hex').toUpperCase());
  });

  it('in an agent answer is stored as valid UTF-8 too', async () => {
    fake = await startFakeOpenAI([{ text: 'ok \ud800 done' }]);
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 0 });
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    const answer = (await t.store.listMessages(session.id)).find((m) => m.role === 'assistant');
    expect(answer?.content).toBe('ok \ufffd done');
  });
});
