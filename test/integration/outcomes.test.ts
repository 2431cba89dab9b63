import { execSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, lastUserContent, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

describe('job outcomes', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await t?.close();
    await fake?.close();
    t = undefined;
    fake = undefined;
  });

  async function start() {
    fake = await startFakeOpenAI();
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const session = await t.baton.createSession('alice', {});
    return session.id;
  }

  async function followedUp(jobId: string) {
    return waitFor(
      async () => {
        const j = await t!.baton.getJob('alice', jobId);
        return j.state === 'followedUp' ? j : undefined;
      },
      { what: `job ${jobId} followed up` },
    );
  }

  it('follows up a failed job and tells the agent its exit code', async () => {
    const sessionId = await start();
    const job = await t!.baton.startJob('alice', sessionId, { command: 'echo oops >&2; exit 3' });
    const final = await followedUp(job.id);
    expect(final.outcome).toBe('failed');
    expect(final.exitCode).toBe(3);
    const trigger = lastUserContent(fake!.requests[0]!);
    expect(trigger).toContain(`[Background job ${job.id} finished]`);
    expect(trigger).toContain('finished with exit code 3');
    expect(trigger).toContain('oops');
  });

  it('follows up a timed-out job, killed at its deadline', async () => {
    const sessionId = await start();
    const job = await t!.baton.startJob('alice', sessionId, { command: 'sleep 30', timeoutS: 1 });
    const final = await followedUp(job.id);
    expect(final.outcome).toBe('timedOut');
    expect(lastUserContent(fake!.requests[0]!)).toContain('timed out after 1 s');
  });

  it('ends a job lost while the service was down as lost, and follows it up', async () => {
    const sessionId = await start();
    const job = await t!.baton.startJob('alice', sessionId, { command: 'sleep 30' });
    const running = await waitFor(async () => {
      const row = await t!.store.getJob(job.id);
      return row?.process ? row : undefined;
    });
    await t!.close({ keep: true });
    // The host "dies": the process vanishes without an exit code.
    process.kill(-running.process!.pid, 'SIGKILL');
    await waitFor(() => {
      try {
        process.kill(running.process!.pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    t = await startTestBaton({
      dir: t!.dir,
      agent: new OpenAIAgent({ baseURL: fake!.url, model: 'm' }),
    });
    const final = await followedUp(job.id);
    expect(final.outcome).toBe('lost');
    expect(lastUserContent(fake!.requests[0]!)).toContain('died unexpectedly');
  });

  it('re-adopts a job still running after a restart and follows it up once', async () => {
    const sessionId = await start();
    const job = await t!.baton.startJob('alice', sessionId, { command: 'sleep 0.8; echo adopted' });
    await waitFor(async () => (await t!.store.getJob(job.id))?.process ?? undefined);
    await t!.close({ keep: true });
    t = await startTestBaton({
      dir: t!.dir,
      agent: new OpenAIAgent({ baseURL: fake!.url, model: 'm' }),
    });
    const final = await followedUp(job.id);
    expect(final.outcome).toBe('succeeded');
    expect(final.output).toContain('adopted');
    const messages = await t!.baton.listMessages('alice', sessionId);
    expect(messages.filter((m) => m.metadata['bgJobId'] === job.id)).toHaveLength(1);
  });

  it('cancels a running job: its process group dies and no follow-up is stored', async () => {
    const sessionId = await start();
    const job = await t!.baton.startJob('alice', sessionId, {
      command: 'sleep 30 & sleep 30; wait',
    });
    const row = await waitFor(async () => {
      const r = await t!.store.getJob(job.id);
      return r?.process ? r : undefined;
    });
    const cancelled = await t!.baton.cancelJob('alice', job.id);
    expect(cancelled.state).toBe('cancelled');
    await waitFor(
      () => {
        const out = execSync(`ps -o pid= -g ${row.process!.pid} || true`).toString().trim();
        return out === '';
      },
      { what: 'process group gone' },
    );
    await expect(t!.baton.cancelJob('alice', job.id)).rejects.toMatchObject({
      code: 'job_finished',
    });
    expect(fake!.requests).toHaveLength(0);
  });
});
