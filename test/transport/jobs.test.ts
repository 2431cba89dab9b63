import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError, type Agent, type AgentRunInput } from '../../src/runtime/agents/agent.js';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import { waitFor } from '../support/wait.js';
import { errorCode, field, startServer, TOKENS, type TestServer } from './helpers.js';

/** The offline agent, or an agent that is down while `down` is set. */
class SwitchableAgent implements Agent {
  readonly kind = 'offline';
  readonly model = 'switchable';
  down = false;
  private readonly inner = new OfflineAgent();
  async run(input: AgentRunInput) {
    if (this.down) throw new AgentError('agent_http', 'the agent is down');
    return this.inner.run(input);
  }
}

describe('HTTP API: jobs', () => {
  let s: TestServer;
  const agent = new SwitchableAgent();
  let sessionId: string;

  beforeAll(async () => {
    s = await startServer(
      {},
      { agent, policy: { maxAttempts: 1, retryBaseMs: 10, retryMaxMs: 20 } },
    );
    const res = await s.call('POST', '/v1/sessions', { body: { title: 'jobs' } });
    sessionId = String(field(res.body, 'id'));
  });
  afterAll(async () => s.close());

  const jobState = async (id: string) =>
    field((await s.call('GET', `/v1/jobs/${id}`)).body, 'state');

  it('starts a command job (201) that is followed up', async () => {
    const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'echo hi', timeoutS: 60, cwd: '.' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      sessionId,
      command: 'echo hi',
      state: 'running',
      attempts: 0,
    });
    const id = String(field(res.body, 'id'));
    await waitFor(async () => (await jobState(id)) === 'followedUp', { what: 'followedUp' });
    const job = await s.call('GET', `/v1/jobs/${id}`);
    expect(job.body).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
  });

  it('refuses bad job bodies with 400 invalid_request', async () => {
    const bad: unknown[] = [
      {},
      { command: '' },
      { command: '   ' },
      { command: 'x'.repeat(16 * 1024 + 1) },
      { command: 'ls', timeoutS: 0 },
      { command: 'ls', timeoutS: 1.5 },
      { command: 'ls', timeoutS: 7 * 24 * 3600 + 1 },
      { command: 'ls', timeoutS: '10' },
      { command: 'ls', cwd: 5 },
      { command: 'ls', shell: 'bash' },
      { command: 'ls', external: true },
      { external: false },
      { external: true, name: 3 },
      { external: true, heartbeatS: 0 },
      { external: true, heartbeatS: 2.5 },
      { external: true, heartbeatS: 86_401 },
      { external: true, timeoutS: '60' },
      { command: 'ls', heartbeatS: 10 },
      { external: 'yes' },
      'ls',
      null,
    ];
    for (const body of bad) {
      const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(errorCode(res.body), JSON.stringify(body)).toBe('invalid_request');
    }
  });

  it('refuses a cwd that is not a directory', async () => {
    const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'ls', cwd: 'no/such/dir' },
    });
    expect(res.status).toBe(400);
    expect(errorCode(res.body)).toBe('invalid_request');
  });

  it('answers 404 for a job in an unknown session', async () => {
    const res = await s.call('POST', '/v1/sessions/s_unknown/jobs', { body: { command: 'ls' } });
    expect(res.status).toBe(404);
  });

  it('completes an external job once (200), a second time is 409 job_finished', async () => {
    const created = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true, name: 'transcription' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ command: null, state: 'running' });
    const id = String(field(created.body, 'id'));
    for (const body of [
      {},
      { exitCode: 1.5 },
      { exitCode: '0' },
      { exitCode: 0, outcome: 'great' },
      { exitCode: 0, extra: 1 },
    ]) {
      const res = await s.call('POST', `/v1/jobs/${id}/complete`, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const done = await s.call('POST', `/v1/jobs/${id}/complete`, {
      body: { exitCode: 0, output: 'transcribed 3 files' },
    });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id, exitCode: 0, outcome: 'succeeded' });
    const again = await s.call('POST', `/v1/jobs/${id}/complete`, { body: { exitCode: 0 } });
    expect(again.status).toBe(409);
    expect(errorCode(again.body)).toBe('job_finished');
  });

  it('takes heartbeats of a running external job, and shows when the next is due', async () => {
    const created = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true, name: 'render', heartbeatS: 600, timeoutS: 3600 },
    });
    expect(created.status).toBe(201);
    expect(String(field(created.body, 'why'))).toMatch(/next heartbeat due by \S+Z$/);
    const id = String(field(created.body, 'id'));
    const beat = await s.call('POST', `/v1/jobs/${id}/heartbeat`, { raw: '' });
    expect(beat.status).toBe(200);
    expect(field(beat.body, 'state')).toBe('running');
    expect((await s.call('POST', `/v1/jobs/${id}/heartbeat`, { token: TOKENS.bob })).status).toBe(
      404,
    );
    await s.call('POST', `/v1/jobs/${id}/complete`, { body: { exitCode: 0 } });
    const late = await s.call('POST', `/v1/jobs/${id}/heartbeat`);
    expect(late.status).toBe(409);
    expect(errorCode(late.body)).toBe('job_finished');
    const proc = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'true' },
    });
    const notExternal = await s.call(
      'POST',
      `/v1/jobs/${String(field(proc.body, 'id'))}/heartbeat`,
    );
    expect(notExternal.status).toBe(409);
    expect(errorCode(notExternal.body)).toBe('job_not_external');
  });

  it('refuses to complete a job that runs here (409 job_not_external) or is unknown (404)', async () => {
    const created = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'sleep 30' },
    });
    const id = String(field(created.body, 'id'));
    const res = await s.call('POST', `/v1/jobs/${id}/complete`, { body: { exitCode: 0 } });
    expect(res.status).toBe(409);
    expect(errorCode(res.body)).toBe('job_not_external');
    const cancel = await s.call('POST', `/v1/jobs/${id}/cancel`);
    expect(cancel.status).toBe(200);
    expect(field(cancel.body, 'state')).toBe('cancelled');
    const twice = await s.call('POST', `/v1/jobs/${id}/cancel`, { raw: '' });
    expect(twice.status).toBe(409);
    expect(errorCode(twice.body)).toBe('job_finished');
    const unknown = await s.call('POST', '/v1/jobs/j_unknown/complete', { body: { exitCode: 0 } });
    expect(unknown.status).toBe(404);
    expect((await s.call('POST', '/v1/jobs/j_unknown/cancel')).status).toBe(404);
    expect((await s.call('POST', '/v1/jobs/j_unknown/retry')).status).toBe(404);
    expect((await s.call('GET', '/v1/jobs/j_unknown')).status).toBe(404);
  });

  it('retries only a failed job: 409 job_not_failed, then 200 and a follow-up', async () => {
    const created = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true },
    });
    const id = String(field(created.body, 'id'));
    const early = await s.call('POST', `/v1/jobs/${id}/retry`);
    expect(early.status).toBe(409);
    expect(errorCode(early.body)).toBe('job_not_failed');
    agent.down = true;
    await s.call('POST', `/v1/jobs/${id}/complete`, { body: { exitCode: 3 } });
    await waitFor(async () => (await jobState(id)) === 'failed', { what: 'failed' });
    agent.down = false;
    const retried = await s.call('POST', `/v1/jobs/${id}/retry`);
    expect(retried.status).toBe(200);
    await waitFor(async () => (await jobState(id)) === 'followedUp', {
      what: 'followedUp after retry',
    });
  });

  it('lists jobs filtered by session and state', async () => {
    const other = await s.call('POST', '/v1/sessions', { body: {} });
    const otherId = String(field(other.body, 'id'));
    const created = await s.call('POST', `/v1/sessions/${otherId}/jobs`, {
      body: { external: true },
    });
    const all = await s.call('GET', '/v1/jobs');
    expect(all.status).toBe(200);
    expect((field(all.body, 'jobs') as unknown[]).length).toBeGreaterThan(1);
    const bySession = await s.call('GET', `/v1/jobs?sessionId=${otherId}&state=`);
    expect((field(bySession.body, 'jobs') as unknown[]).map((j) => field(j, 'id'))).toEqual([
      field(created.body, 'id'),
    ]);
    const byState = await s.call('GET', `/v1/jobs?sessionId=${otherId}&state=followedUp`);
    expect(field(byState.body, 'jobs')).toEqual([]);
    const badState = await s.call('GET', '/v1/jobs?state=sleeping');
    expect(badState.status).toBe(400);
    expect((await s.call('GET', '/v1/jobs?sessionId=s_unknown')).status).toBe(404);
  });
});
