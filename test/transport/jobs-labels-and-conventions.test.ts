import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, field, startServer, TOKENS, type TestServer } from './helpers.js';

describe('HTTP API: job names and labels', () => {
  let s: TestServer;
  let sessionId: string;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    s = await startServer();
    sessionId = String(field((await s.call('POST', '/v1/sessions', { body: {} })).body, 'id'));
    const make = async (key: string, body: Record<string, unknown>) => {
      const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, { body });
      expect(res.status).toBe(201);
      ids[key] = String(field(res.body, 'id'));
      return res.body;
    };
    const first = await make('build', {
      command: 'true',
      name: 'build the site',
      labels: { team: 'web', kind: 'build' },
    });
    expect(first).toMatchObject({
      name: 'build the site',
      labels: { team: 'web', kind: 'build' },
    });
    await make('render', { external: true, name: 'render', labels: { team: 'video' } });
    await make('plain', { command: 'true' });
  });
  afterAll(async () => s.close());

  const listed = async (query: string) => {
    const res = await s.call('GET', `/v1/jobs?${query}`);
    expect(res.status).toBe(200);
    return (field(res.body, 'jobs') as { id: string }[]).map((j) => j.id).sort();
  };

  it('shows a job with its name and labels, and no labels as {}', async () => {
    const job = await s.call('GET', `/v1/jobs/${ids['render']}`);
    expect(job.body).toMatchObject({ name: 'render', labels: { team: 'video' } });
    expect(field((await s.call('GET', `/v1/jobs/${ids['plain']}`)).body, 'labels')).toEqual({});
  });

  it('filters by a label, by its value, and by several at once', async () => {
    expect(await listed('label=team')).toEqual([ids['build'], ids['render']].sort());
    expect(await listed('label=team=web')).toEqual([ids['build']]);
    expect(await listed('label=team=web&label=kind=build')).toEqual([ids['build']]);
    expect(await listed('label=team=web&label=kind=deploy')).toEqual([]);
    expect(await listed(`label=team&sessionId=${sessionId}`)).toHaveLength(2);
    expect(await listed('label=nobody')).toEqual([]);
  });

  it("never lists another owner's labelled jobs", async () => {
    const res = await s.call('GET', '/v1/jobs?label=team', { token: TOKENS.bob });
    expect(field(res.body, 'jobs')).toEqual([]);
  });

  it.each([
    { command: 'true', labels: { '': 'x' } },
    { command: 'true', labels: { 'bad key': 'x' } },
    { command: 'true', labels: { k: 5 } },
    { command: 'true', labels: ['a'] },
    {
      command: 'true',
      labels: Object.fromEntries([...Array(17).keys()].map((i) => [`k${i}`, 'v'])),
    },
    { command: 'true', labels: { k: 'v'.repeat(201) } },
    { command: 'true', name: 7 },
  ])('refuses bad labels or names with 400, storing nothing: %j', async (body) => {
    const before = (await s.t.store.listJobs({ sessionId })).length;
    const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, { body });
    expect(res.status).toBe(400);
    expect(errorCode(res.body)).toBe('invalid_request');
    expect((await s.t.store.listJobs({ sessionId })).length).toBe(before);
  });

  it.each(['label==x', 'label=bad%20key', 'label=k%0A'])('refuses the filter %s', async (query) => {
    const res = await s.call('GET', `/v1/jobs?${query}&sessionId=${sessionId}`);
    expect(res.status).toBe(400);
    expect(errorCode(res.body)).toBe('invalid_request');
  });
});

describe('HTTP API conventions', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => s.close());

  it('says where a created session or job lives (Location)', async () => {
    const session = await s.call('POST', '/v1/sessions', { body: {} });
    const id = String(field(session.body, 'id'));
    expect(session.headers.get('location')).toBe(`/v1/sessions/${id}`);
    const job = await s.call('POST', `/v1/sessions/${id}/jobs`, { body: { external: true } });
    expect(job.headers.get('location')).toBe(`/v1/jobs/${String(field(job.body, 'id'))}`);
  });

  it('refuses query parameters a route does not take', async () => {
    const id = String(field((await s.call('POST', '/v1/sessions', { body: {} })).body, 'id'));
    for (const path of [
      '/v1/sessions?limit=5',
      `/v1/sessions/${id}?verbose=1`,
      `/v1/sessions/${id}/messages?after=3`,
      `/v1/jobs?sessionId=${id}&status=running`,
    ]) {
      const res = await s.call('GET', path);
      expect(res.status, path).toBe(400);
      expect(errorCode(res.body), path).toBe('invalid_request');
    }
  });

  it('gives a cancelled job the time it ended', async () => {
    const id = String(field((await s.call('POST', '/v1/sessions', { body: {} })).body, 'id'));
    const job = await s.call('POST', `/v1/sessions/${id}/jobs`, { body: { command: 'sleep 30' } });
    const cancelled = await s.call('POST', `/v1/jobs/${String(field(job.body, 'id'))}/cancel`);
    expect(field(cancelled.body, 'state')).toBe('cancelled');
    expect(field(cancelled.body, 'finishedAt')).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});
