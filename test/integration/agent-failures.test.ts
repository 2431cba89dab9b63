import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

describe('agent failures', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await t?.close();
    await fake?.close();
    t = undefined;
    fake = undefined;
  });

  const faults: FakeReply[] = [
    { fault: 'status', status: 500 },
    { fault: 'status', status: 429, retryAfter: 0 },
    { fault: 'reset' },
    { fault: 'cut', text: 'half an answer that is cut' },
    { fault: 'malformed', text: 'x' },
    { fault: 'errorFrame', text: 'x' },
    { fault: 'empty' },
    { fault: 'hang' },
  ];

  it('retries every kind of failed attempt and stores one continuation at the end', async () => {
    fake = await startFakeOpenAI([...faults, 'All done after the storm.']);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { maxAttempts: faults.length + 1, agentTimeoutS: 1 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true, name: 'build' });
    await t.baton.completeJob('alice', job.id, { exitCode: 0, output: 'built' });
    const final = await waitFor(
      async () => {
        const j = await t!.baton.getJob('alice', job.id);
        return j.state === 'followedUp' ? j : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(final.attempts).toBe(faults.length + 1);
    expect(final.history.filter((h) => h.state === 'retrying')).toHaveLength(faults.length);
    const messages = await t.baton.listMessages('alice', session.id);
    const answers = messages.filter((m) => m.metadata['bgJobId'] === job.id);
    expect(answers).toHaveLength(1);
    expect(answers[0]!.content).toBe('All done after the storm.');
    // Backoff: each retry waited at least half its nominal delay.
    const retryAt = final.history
      .filter((h) => h.state === 'retrying')
      .map((h) => Date.parse(h.at));
    const askedAt = fake.requests.map((r) => r.atEpochMs);
    for (let i = 0; i < retryAt.length; i++) {
      expect(askedAt[i + 1]! - retryAt[i]!).toBeGreaterThanOrEqual(
        Math.min(200, 20 * 2 ** i) / 2 - 5,
      );
    }
  });

  it('gives up after the configured attempts with one failure notice', async () => {
    fake = await startFakeOpenAI([{ fault: 'status', status: 503 }]);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { maxAttempts: 3 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 1 });
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', job.id);
      return j.state === 'failed' ? j : undefined;
    });
    expect(final.attempts).toBe(3);
    expect(fake.requests).toHaveLength(3);
    const notices = (await t.baton.listMessages('alice', session.id)).filter(
      (m) => m.metadata['kind'] === 'followUpFailed',
    );
    expect(notices).toHaveLength(1);
    expect(notices[0]!.role).toBe('system');
    expect(notices[0]!.metadata['bgJobId']).toBe(job.id);

    // An operator re-drive after the agent recovers ends it followed up.
    fake.setScript(['Recovered.']);
    const redriven = await t.baton.retryJob('alice', job.id);
    expect(['awaitingIdleSession', 'continuing', 'followedUp']).toContain(redriven.state);
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    await expect(t.baton.retryJob('alice', job.id)).rejects.toMatchObject({
      code: 'job_not_failed',
    });
  });

  it('honours Retry-After from a 429', async () => {
    fake = await startFakeOpenAI([{ fault: 'status', status: 429, retryAfter: 1 }, 'ok']);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      policy: { maxAttempts: 3 },
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', job.id, { exitCode: 0 });
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    const [first, second] = fake.requests;
    expect(second!.atEpochMs - first!.atEpochMs).toBeGreaterThanOrEqual(950);
  });
});
