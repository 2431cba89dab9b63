import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import {
  errorCode,
  FeedClient,
  field,
  startServer,
  TOKENS,
  type Frame,
  type TestServer,
} from './helpers.js';

describe("HTTP API and feed: a job's live output", () => {
  let s: TestServer;
  let sessionId: string;
  let work: string;

  beforeAll(async () => {
    s = await startServer({}, { policy: { outputFrameMs: 50 } });
    sessionId = String(field((await s.call('POST', '/v1/sessions', { body: {} })).body, 'id'));
    work = await s.t.baton.workDirs.ensure('alice');
  });
  afterAll(async () => s.close());

  const start = async (command: string) =>
    String(
      field(
        (await s.call('POST', `/v1/sessions/${sessionId}/jobs`, { body: { command } })).body,
        'id',
      ),
    );
  const output = async (id: string, since?: number) =>
    (await s.call('GET', `/v1/jobs/${id}/output${since === undefined ? '' : `?since=${since}`}`))
      .body as Record<string, unknown>;

  it('reads the output while the job runs, from any byte, and to its end', async () => {
    const feed = new FeedClient(`${s.wsUrl}/v1/events?token=${TOKENS.alice}`);
    await feed.opened;
    const id = await start('echo first; while [ ! -f go-1 ]; do sleep 0.02; done; echo second');
    const first = await waitFor(async () => {
      const page = await output(id);
      return page['output'] === 'first\n' ? page : undefined;
    });
    expect(first).toMatchObject({
      jobId: id,
      state: 'running',
      since: 0,
      next: 6,
      size: 6,
      source: 'log',
      done: false,
    });
    expect(await output(id, 6)).toMatchObject({ output: '', since: 6, next: 6, done: false });
    expect(await output(id, 2)).toMatchObject({ output: 'rst\n', since: 2, next: 6 });

    writeFileSync(join(work, 'go-1'), '');
    // How the output is cut into frames depends on when the tail looks; together
    // they are the output, in order, once each.
    const ofJob = (all: Frame[]) =>
      all.filter((f) => f['type'] === 'job.output' && f['jobId'] === id);
    const text = (all: Frame[]) =>
      ofJob(all)
        .map((f) => field(f['data'], 'output'))
        .join('');
    const frames = await feed.until((all) => text(all) === 'first\nsecond\n');
    const frame = ofJob(frames).at(-1);
    expect(frame).toMatchObject({ sessionId, data: { next: 13, size: 13 } });
    expect(String(field(frame?.['data'], 'output'))).toMatch(/second\n$/);
    expect(frame?.['seq']).toBeUndefined();

    const last = await waitFor(async () => {
      const page = await output(id, 6);
      return page['done'] === true ? page : undefined;
    });
    expect(last).toMatchObject({ output: 'second\n', since: 6, next: 13, size: 13 });
    feed.ws.close();
  });

  it('sends at most one frame per job per interval, each a bounded tail', async () => {
    const feed = new FeedClient(`${s.wsUrl}/v1/events?token=${TOKENS.alice}`);
    await feed.opened;
    // About 2 MB over half a second, then it waits to be told to stop.
    const id = await start(
      'i=0; while [ $i -lt 50 ]; do head -c 40000 /dev/zero | tr "\\0" x; i=$((i+1)); sleep 0.01; done; ' +
        'while [ ! -f go-2 ]; do sleep 0.02; done',
    );
    await waitFor(async () => (await output(id, 1_999_999))['size'] === 2_000_000, {
      what: 'the output to be written',
    });
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(join(work, 'go-2'), '');
    await waitFor(async () => (await output(id))['state'] !== 'running');
    const ofJob = feed.frames.filter((f) => f['type'] === 'job.output' && f['jobId'] === id);
    feed.ws.close();
    expect(ofJob.length).toBeGreaterThan(0);
    for (const f of ofJob)
      expect(String(field(f['data'], 'output')).length).toBeLessThanOrEqual(4096);
    // At 50 ms a frame, a second of output cannot take more than a few dozen frames.
    expect(ofJob.length).toBeLessThan(60);
    // The last frame reached the end: a client that missed bytes reads the gap over HTTP.
    expect(field(ofJob.at(-1)?.['data'], 'next')).toBe(2_000_000);
  });

  it('pages a long output in pieces of at most 64 KiB', async () => {
    const id = await start('head -c 100000 /dev/zero | tr "\\0" y');
    await waitFor(async () => (await output(id))['state'] !== 'running', {
      what: 'the job to end',
    });
    const one = await output(id);
    expect(one).toMatchObject({ since: 0, next: 65536, size: 100000, done: false });
    const two = await output(id, 65536);
    expect(two).toMatchObject({ since: 65536, next: 100000, done: true });
    expect(String(one['output']).length + String(two['output']).length).toBe(100000);
  });

  it('gives an external job its stored output', async () => {
    const created = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { external: true },
    });
    const id = String(field(created.body, 'id'));
    expect(await output(id)).toMatchObject({ output: '', size: 0, source: 'stored', done: false });
    await s.call('POST', `/v1/jobs/${id}/complete`, {
      body: { exitCode: 0, output: 'näive\n' },
    });
    await waitFor(async () => (await output(id))['done'] === true || undefined);
    expect(await output(id, 3)).toMatchObject({ output: 'ive\n', since: 3, next: 7, size: 7 });
  });

  it.each(['-1', 'abc', '1.5', '1e3', '9999999999999999'])('refuses since=%s', async (since) => {
    const id = await start('true');
    const res = await s.call('GET', `/v1/jobs/${id}/output?since=${since}`);
    expect(res.status).toBe(400);
    expect(errorCode(res.body)).toBe('invalid_request');
  });

  it("answers 404 for another owner's job and unknown parameters with 400", async () => {
    const id = await start('true');
    const other = await s.call('GET', `/v1/jobs/${id}/output`, { token: TOKENS.bob });
    expect(other.status).toBe(404);
    const unknown = await s.call('GET', `/v1/jobs/${id}/output?from=3`);
    expect(unknown.status).toBe(400);
    expect(errorCode(unknown.body)).toBe('invalid_request');
  });
});
