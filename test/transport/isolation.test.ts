import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { errorCode, field, openFeed, startServer, TOKENS, type TestServer } from './helpers.js';

describe('owners', () => {
  let s: TestServer;
  let sessionId: string;
  let jobId: string;
  let externalId: string;

  beforeAll(async () => {
    s = await startServer();
    const session = await s.call('POST', '/v1/sessions', { body: { title: 'alice only' } });
    sessionId = String(field(session.body, 'id'));
    await s.call('POST', `/v1/sessions/${sessionId}/messages`, { body: { content: 'secret' } });
    const job = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'sleep 30' },
    });
    jobId = String(field(job.body, 'id'));
    const external = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true },
    });
    externalId = String(field(external.body, 'id'));
  });
  afterAll(async () => {
    // Job processes are detached (they outlive a restart); end this one here.
    await s.call('POST', `/v1/jobs/${jobId}/cancel`);
    await s.close();
  });

  it('never show one owner’s session, messages or jobs to another (404 on every route)', async () => {
    const asBob = { token: TOKENS.bob };
    const calls: [string, string, unknown?][] = [
      ['GET', `/v1/sessions/${sessionId}`],
      ['DELETE', `/v1/sessions/${sessionId}`],
      ['GET', `/v1/sessions/${sessionId}/messages`],
      ['POST', `/v1/sessions/${sessionId}/messages`, { content: 'hi' }],
      ['POST', `/v1/sessions/${sessionId}/jobs`, { command: 'echo pwned' }],
      ['POST', `/v1/sessions/${sessionId}/jobs`, { external: true }],
      ['GET', `/v1/jobs/${jobId}`],
      ['POST', `/v1/jobs/${jobId}/cancel`],
      ['POST', `/v1/jobs/${jobId}/retry`],
      ['POST', `/v1/jobs/${externalId}/complete`, { exitCode: 0 }],
      ['GET', `/v1/jobs?sessionId=${sessionId}`],
    ];
    for (const [method, path, body] of calls) {
      const res = await s.call(method, path, { ...asBob, ...(body === undefined ? {} : { body }) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(errorCode(res.body)).toBe('not_found');
    }
    const sessions = await s.call('GET', '/v1/sessions', asBob);
    expect(field(sessions.body, 'sessions')).toEqual([]);
    const jobs = await s.call('GET', '/v1/jobs', asBob);
    expect(field(jobs.body, 'jobs')).toEqual([]);
    // Nothing bob did reached alice's session.
    expect(await s.call('GET', `/v1/jobs/${jobId}`)).toMatchObject({
      status: 200,
      body: { state: 'running' },
    });
    const messages = await s.call('GET', `/v1/sessions/${sessionId}/messages`);
    expect(
      (field(messages.body, 'messages') as unknown[]).map((m) => field(m, 'content')),
    ).not.toContain('hi');
  });

  it('never send one owner’s events to another owner’s feed', async () => {
    const bob = await openFeed(s, `token=${TOKENS.bob}&since=0`);
    const bobBySession = await openFeed(s, `token=${TOKENS.bob}&since=0&sessionId=${sessionId}`);
    const alice = await openFeed(s, `token=${TOKENS.alice}&since=0`);
    // Live events of alice while bob listens, then one event of bob's own.
    await s.call('POST', `/v1/sessions/${sessionId}/messages`, { body: { content: 'more' } });
    await s.call('POST', `/v1/jobs/${externalId}/complete`, { body: { exitCode: 0 } });
    const bobSession = await s.call('POST', '/v1/sessions', {
      token: TOKENS.bob,
      body: { title: 'bob' },
    });
    const bobSessionId = field(bobSession.body, 'id');
    await bob.until((frames) => frames.some((f) => f['sessionId'] === bobSessionId));
    await alice.until((frames) =>
      frames.some((f) => f['jobId'] === externalId && field(f['data'], 'state') === 'followedUp'),
    );
    expect(bob.frames.every((f) => f['sessionId'] === bobSessionId)).toBe(true);
    expect(bob.frames.map((f) => f['seq'])).toEqual([1]);
    // Bob's filtered feed stays empty; a ping proves it is open and has been served.
    bobBySession.send({ type: 'ping' });
    await bobBySession.until((frames) => frames.length > 0);
    expect(bobBySession.frames).toEqual([{ type: 'pong' }]);
    await waitFor(() => alice.frames.length > 5);
    for (const client of [bob, bobBySession, alice]) client.close();
  });
});
