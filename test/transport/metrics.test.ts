import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsAccess, TokenAuth } from '../../src/transport/auth.js';
import { waitFor } from '../support/wait.js';
import { field, startServer, TOKENS, type TestServer } from './helpers.js';

const METRICS_TOKEN = 'metrics-token-abcdefghij';

describe('GET /metrics', () => {
  let s: TestServer;
  beforeAll(async () => {
    const auth = new TokenAuth([
      { owner: 'alice', token: TOKENS.alice },
      { owner: 'bob', token: TOKENS.bob },
    ]);
    s = await startServer({ metricsAccess: metricsAccess(auth, METRICS_TOKEN) });
  });
  afterAll(async () => s.close());

  const scrape = async () => {
    const res = await s.call('GET', '/metrics', { token: METRICS_TOKEN });
    expect(res.status).toBe(200);
    return String(res.body);
  };
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  it('is read with the metrics token only', async () => {
    expect((await s.call('GET', '/metrics', { token: TOKENS.alice })).status).toBe(401);
    expect((await s.call('GET', '/metrics', { token: 'metrics-token-wrong' })).status).toBe(401);
    expect(await scrape()).toContain('baton_build_info{version=');
  });

  it('carries the process metrics, and HTTP latency by route', async () => {
    const text = await scrape();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_heap_size_used_bytes');
    expect(text).toMatch(
      /baton_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/metrics",status="200"\}/,
    );
  });

  it('counts unfinished jobs by state from events, and finished ones by outcome', async () => {
    const before = await scrape();
    const sessionId = String(
      field((await s.call('POST', '/v1/sessions', { body: {} })).body, 'id'),
    );
    const start = async (body: unknown) =>
      String(field((await s.call('POST', `/v1/sessions/${sessionId}/jobs`, { body })).body, 'id'));
    const waiting = await start({ external: true });
    const done = await start({ external: true });
    await s.call('POST', `/v1/jobs/${done}/complete`, { body: { exitCode: 3 } });
    await waitFor(
      async () => field((await s.call('GET', `/v1/jobs/${done}`)).body, 'state') === 'followedUp',
    );
    const after = await waitFor(async () => {
      const text = await scrape();
      return value(text, 'baton_jobs_ended_total{state="followedUp"}') ===
        (value(before, 'baton_jobs_ended_total{state="followedUp"}') ?? 0) + 1
        ? text
        : undefined;
    });
    expect(value(after, 'baton_jobs{state="running"}')).toBe(
      (value(before, 'baton_jobs{state="running"}') ?? 0) + 1,
    );
    expect(value(after, 'baton_jobs_finished_total{outcome="failed"}')).toBe(
      (value(before, 'baton_jobs_finished_total{outcome="failed"}') ?? 0) + 1,
    );
    // Final states are counted as they happen, not kept as gauges that grow for ever.
    expect(after).not.toMatch(/^baton_jobs\{state="followedUp"\}/m);
    await s.call('POST', `/v1/jobs/${waiting}/cancel`);
  });
});
