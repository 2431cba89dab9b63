import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { field, startServer, TOKENS, type TestServer } from './helpers.js';

/** A body that no route accepts: not JSON, not an object, or an object with an unknown field. */
const malformedBody = fc.oneof(
  fc.string({ maxLength: 200 }).filter((text) => {
    if (text.trim() === '') return false;
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  }),
  fc
    .oneof(
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.jsonValue(), { maxLength: 5 }),
      fc.string(),
    )
    .map((v) => JSON.stringify(v)),
  fc
    .record({
      base: fc.dictionary(
        fc.constantFrom(
          'title',
          'content',
          'command',
          'timeoutS',
          'cwd',
          'external',
          'exitCode',
          'outcome',
        ),
        fc.jsonValue(),
        { maxKeys: 4 },
      ),
      extra: fc.string({ minLength: 1, maxLength: 12 }).map((k) => `zz_${k}`),
      value: fc.jsonValue(),
    })
    .map(({ base, extra, value }) => JSON.stringify({ ...base, [extra]: value })),
  fc.constant(`{"content":"${'x'.repeat(1024 * 1024)}"}`),
);

describe('a flood of malformed bodies', () => {
  let s: TestServer;
  let sessionId: string;
  let externalId: string;

  beforeAll(async () => {
    s = await startServer();
    const session = await s.call('POST', '/v1/sessions', { body: { title: 'target' } });
    sessionId = String(field(session.body, 'id'));
    const job = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true },
    });
    externalId = String(field(job.body, 'id'));
  });
  afterAll(async () => s.close());

  it('gets 4xx answers, leaves the server answering and the store unchanged', async () => {
    const eventsBefore = await s.t.store.readEvents('alice', 0, 100_000);
    const sessionsBefore = await s.t.baton.listSessions('alice');
    const jobBefore = await s.t.store.getJob(externalId);
    const paths = [
      '/v1/sessions',
      `/v1/sessions/${sessionId}/messages`,
      `/v1/sessions/${sessionId}/jobs`,
      `/v1/jobs/${externalId}/complete`,
    ];
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        malformedBody,
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/xml',
          '',
        ),
        async (path, raw, contentType) => {
          const res = await fetch(s.url + path, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${TOKENS.alice}`,
              ...(contentType ? { 'content-type': contentType } : {}),
            },
            body: raw,
          });
          const body: unknown = await res.json();
          statuses.add(res.status);
          expect(res.status, `${path} ${contentType} ${raw.slice(0, 80)}`).toBeGreaterThanOrEqual(
            400,
          );
          expect(res.status).toBeLessThan(500);
          expect(typeof field(field(body, 'error'), 'code')).toBe('string');
        },
      ),
      { numRuns: 400 },
    );
    expect(statuses.has(400)).toBe(true);
    expect((await s.call('GET', '/healthz', { token: null })).status).toBe(200);
    expect(await s.t.store.readEvents('alice', 0, 100_000)).toEqual(eventsBefore);
    expect(await s.t.baton.listSessions('alice')).toEqual(sessionsBefore);
    expect(await s.t.store.getJob(externalId)).toEqual(jobBefore);
  });
});
