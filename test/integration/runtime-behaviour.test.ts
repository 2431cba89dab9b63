import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import type { FeedFrame } from '../../src/runtime/feed.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

describe('the runtime', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await t?.close();
    await fake?.close();
    t = undefined;
    fake = undefined;
  });

  it('stores the job in continuing before the agent is asked (write-ahead)', async () => {
    let stateWhenAsked: string | undefined;
    let jobId = '';
    fake = await startFakeOpenAI(async () => {
      stateWhenAsked = (await t!.store.getJob(jobId))?.state;
      return 'ok';
    });
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const session = await t.baton.createSession('alice', {});
    jobId = (await t.baton.startJob('alice', session.id, { external: true })).id;
    await t.baton.completeJob('alice', jobId, { exitCode: 0 });
    await waitFor(async () => (await t!.baton.getJob('alice', jobId)).state === 'followedUp');
    expect(stateWhenAsked).toBe('continuing');
  });

  it('queues jobs over the per-session limit and starts them as slots free up', async () => {
    t = await startTestBaton({ policy: { limits: { server: 10, owner: 10, session: 1 } } });
    const session = await t.baton.createSession('alice', {});
    const first = await t.baton.startJob('alice', session.id, { command: 'sleep 0.3' });
    const second = await t.baton.startJob('alice', session.id, { command: 'echo second' });
    expect(first.state).toBe('running');
    expect(second.state).toBe('running');
    expect(second.why).toBe("queued: waiting for this session's limit of 1 running jobs");
    expect((await t.store.getJob(second.id))?.snapshot).toMatchObject({
      value: { running: 'queued' },
    });
    const done = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', second.id);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(done.output).toContain('second');
    const firstDone = await t.baton.getJob('alice', first.id);
    expect(Date.parse(firstDone.finishedAt!)).toBeLessThanOrEqual(Date.parse(done.finishedAt!));
  });

  it('says why a job waits while it backs off', async () => {
    fake = await startFakeOpenAI([{ fault: 'status', status: 500 }]);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { retryBaseMs: 60_000, retryMaxMs: 60_000 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 0 });
    const retrying = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', job.id);
      return j.state === 'retrying' ? j : undefined;
    });
    expect(retrying.why).toMatch(/^retry 2 of 5 at \d{4}-\d\d-\d\dT.* after agent_http: /);
    expect(retrying.attempts).toBe(1);
  });

  it('streams a live turn on the feed and stores the answer after the user message', async () => {
    fake = await startFakeOpenAI([{ text: 'Hello there, friend.', chunkSize: 5 }]);
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const frames: FeedFrame[] = [];
    t.baton.feed.subscribe('alice', (f) => frames.push(f));
    const session = await t.baton.createSession('alice', {});
    const { turnId, message } = await t.baton.sendMessage('alice', session.id, 'hi');
    expect(message).toMatchObject({ role: 'user', content: 'hi', sessionId: session.id });
    await waitFor(() => frames.some((f) => f.type === 'turn.finished'));
    const deltas = frames.filter((f) => f.type === 'turn.delta' && f.turnId === turnId);
    expect(deltas.map((f) => f.data['delta']).join('')).toBe('Hello there, friend.');
    expect(deltas.every((f) => f.seq === undefined)).toBe(true);
    const durable = frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
    expect(durable).toEqual([...durable].sort((a, b) => a - b));
    expect(frames.find((f) => f.type === 'turn.finished')?.data).toEqual({ ok: true });
    const messages = await t.baton.listMessages('alice', session.id);
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hi'],
      ['assistant', 'Hello there, friend.'],
    ]);
  });

  it('hides another owner’s sessions and jobs as not found', async () => {
    t = await startTestBaton();
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await expect(t.baton.getSession('bob', session.id)).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(t.baton.getJob('bob', job.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(t.baton.completeJob('bob', job.id, { exitCode: 0 })).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await t.baton.listSessions('bob')).toEqual([]);
    expect(await t.baton.listJobs('bob', {})).toEqual([]);
  });

  it('refuses a second completion of an external job with job_finished', async () => {
    t = await startTestBaton();
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 0 });
    await expect(t.baton.completeJob('alice', job.id, { exitCode: 0 })).rejects.toMatchObject({
      code: 'job_finished',
    });
  });

  it('shuts down gracefully: drains a follow-up, refuses new work, and closes twice safely', async () => {
    fake = await startFakeOpenAI([{ text: 'slow but sure', chunkSize: 2, delayMs: 20 }]);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { drainMs: 5000 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 0 });
    await fake.waitForRequests(1);
    const closing = t.baton.close();
    await expect(t.baton.createSession('alice', {})).rejects.toMatchObject({
      code: 'shutting_down',
    });
    await Promise.all([closing, t.baton.close()]);
    const { SqliteStore } = await import('../../src/runtime/store/sqlite.js');
    const { join } = await import('node:path');
    const reopened = new SqliteStore({ path: join(t.dir, 'baton.db') });
    await reopened.init();
    expect((await reopened.getJob(job.id))?.state).toBe('followedUp');
    await reopened.close();
  });

  it('never shows a job followedUp before its continuation can be read', async () => {
    t = await startTestBaton();
    const session = await t.baton.createSession('alice', {});
    for (let i = 0; i < 20; i++) {
      const job = await t.baton.startJob('alice', session.id, { external: true });
      await t.baton.completeJob('alice', job.id, { exitCode: 0 });
      // Read as often as possible: the first read that says followedUp must find the answer.
      await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp', {
        intervalMs: 0,
      });
      const messages = await t.baton.listMessages('alice', session.id);
      expect(messages.some((m) => m.metadata['bgJobId'] === job.id)).toBe(true);
    }
  });
});
