import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, field, startServer, type TestServer } from './helpers.js';

/**
 * Caught by the hostile-input campaign: `cwd` was resolved against the work
 * dir but never kept inside it, so `../../etc`, `/` or a symlink ran a job
 * anywhere, and the answer told whether a directory existed outside.
 */
describe('HTTP API: a job cwd outside the work dir', () => {
  let s: TestServer;
  let outside: string;
  let sessionId: string;

  beforeAll(async () => {
    s = await startServer();
    outside = mkdtempSync(join(tmpdir(), 'baton-outside-'));
    const work = await s.t.baton.workDirs.ensure('alice');
    mkdirSync(join(work, 'sub'));
    symlinkSync(outside, join(work, 'escape'));
    const res = await s.call('POST', '/v1/sessions', { body: {} });
    sessionId = String(field(res.body, 'id'));
  });
  afterAll(async () => {
    await s.close();
    rmSync(outside, { recursive: true, force: true });
  });

  it.each(['../../etc', '..', '/', '/etc', 'sub/../..', './sub/../../tmp', 'escape', 'escape/.'])(
    'refuses %s with invalid_request and stores nothing',
    async (cwd) => {
      const before = await s.t.store.lastSeq('alice');
      const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
        body: { command: 'pwd', cwd },
      });
      expect(res.status).toBe(400);
      expect(errorCode(res.body)).toBe('invalid_request');
      expect(String(field(field(res.body, 'error'), 'message'))).toContain('outside the work dir');
      expect(await s.t.store.lastSeq('alice')).toBe(before);
      expect(await s.t.store.listJobs({ sessionId })).toEqual([]);
    },
  );

  it('answers a missing directory outside the same as an existing one', async () => {
    const missing = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'pwd', cwd: '../no-such-dir-anywhere' },
    });
    expect(missing.status).toBe(400);
    expect(String(field(field(missing.body, 'error'), 'message'))).toContain(
      'outside the work dir',
    );
  });

  it.each(['.', 'sub', 'sub/..', `${'./'}sub`])('accepts %s inside the work dir', async (cwd) => {
    const res = await s.call('POST', `/v1/sessions/${sessionId}/jobs`, {
      body: { command: 'pwd', cwd },
    });
    expect(res.status).toBe(201);
    expect(String(field(res.body, 'id'))).toMatch(/^j_/);
  });
});
