import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { errorCode, field, startServer, TOKENS, type TestServer } from './helpers.js';

const METRICS_TOKEN = 'metrics-token-0123456789';

describe('HTTP API: sessions, messages and framing', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({
      machines: () => ({ job: { id: 'job' } }),
      metricsAccess: (header) => header === `Bearer ${METRICS_TOKEN}`,
    });
  });
  afterAll(async () => s.close());

  const newSession = async (title = 'demo') => {
    const res = await s.call('POST', '/v1/sessions', { body: { title } });
    expect(res.status).toBe(201);
    return String(field(res.body, 'id'));
  };

  it('answers /healthz without a token', async () => {
    const res = await s.call('GET', '/healthz', { token: null });
    expect(res).toMatchObject({ status: 200, body: { ok: true } });
  });

  it('creates a session (201) with its owner and title', async () => {
    const res = await s.call('POST', '/v1/sessions', {
      body: { title: 'hello', systemPrompt: 'be brief' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ owner: 'alice', title: 'hello' });
    expect(field(res.body, 'id')).toMatch(/^s_/);
    expect(typeof field(res.body, 'createdAt')).toBe('string');
  });

  it('creates an untitled session from a bodyless POST', async () => {
    const bare = await s.call('POST', '/v1/sessions');
    expect(bare.status).toBe(201);
    const emptyJson = await s.call('POST', '/v1/sessions', { raw: '' });
    expect(emptyJson.status).toBe(201);
  });

  it('lists the owner’s sessions and shows one with its lock', async () => {
    const id = await newSession('listed');
    const list = await s.call('GET', '/v1/sessions');
    expect(list.status).toBe(200);
    const sessions = field(list.body, 'sessions') as unknown[];
    expect(sessions.map((x) => field(x, 'id'))).toContain(id);
    const one = await s.call('GET', `/v1/sessions/${id}`);
    expect(one.status).toBe(200);
    expect(field(one.body, 'lock')).toEqual({ lock: 'idle', holder: null, queue: [] });
  });

  it('deletes a session (204), after which it is 404 everywhere', async () => {
    const id = await newSession('doomed');
    const del = await s.call('DELETE', `/v1/sessions/${id}`);
    expect(del.status).toBe(204);
    expect(del.body).toBeNull();
    for (const [method, path] of [
      ['GET', `/v1/sessions/${id}`],
      ['DELETE', `/v1/sessions/${id}`],
      ['GET', `/v1/sessions/${id}/messages`],
    ] as const) {
      const res = await s.call(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(errorCode(res.body)).toBe('not_found');
    }
  });

  it('stores a message at once (202 turnId + message) and the live turn answers', async () => {
    const id = await newSession();
    const res = await s.call('POST', `/v1/sessions/${id}/messages`, {
      body: { content: 'hi there' },
    });
    expect(res.status).toBe(202);
    expect(field(res.body, 'turnId')).toMatch(/^t_/);
    expect(field(res.body, 'message')).toMatchObject({
      role: 'user',
      content: 'hi there',
      sessionId: id,
    });
    const messages = await waitFor(async () => {
      const list = await s.call('GET', `/v1/sessions/${id}/messages`);
      const all = field(list.body, 'messages') as unknown[];
      return all.length === 2 ? all : undefined;
    });
    expect(messages.map((m) => field(m, 'role'))).toEqual(['user', 'assistant']);
    expect(field(messages[1], 'content')).toBe('You said: hi there');
  });

  it('refuses bad message bodies with 400 invalid_request', async () => {
    const id = await newSession();
    for (const body of [
      {},
      { content: '' },
      { content: '   ' },
      { content: 7 },
      { content: 'x', extra: 1 },
      [],
      'text',
    ]) {
      const res = await s.call('POST', `/v1/sessions/${id}/messages`, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(errorCode(res.body)).toBe('invalid_request');
    }
    const big = await s.call('POST', `/v1/sessions/${id}/messages`, {
      body: { content: 'x'.repeat(256 * 1024 + 1) },
    });
    expect(big.status).toBe(400);
    expect(String(field(field(big.body, 'error'), 'message'))).toContain('at most');
  });

  it('answers 404 for messages of an unknown session', async () => {
    const res = await s.call('POST', '/v1/sessions/s_nope/messages', { body: { content: 'hi' } });
    expect(res.status).toBe(404);
    expect(errorCode(res.body)).toBe('not_found');
  });

  it('refuses unknown and misspelt session fields', async () => {
    const res = await s.call('POST', '/v1/sessions', { body: { titel: 'x' } });
    expect(res.status).toBe(400);
    expect(field(field(res.body, 'error'), 'message')).toBe('unknown field "titel"');
    const wrongType = await s.call('POST', '/v1/sessions', { body: { title: 5 } });
    expect(wrongType.status).toBe(400);
  });

  it('answers 401 unauthorized without a valid token, in the error shape', async () => {
    for (const token of [null, 'wrong-token']) {
      const res = await s.call('GET', '/v1/sessions', { token });
      expect(res.status).toBe(401);
      expect(errorCode(res.body)).toBe('unauthorized');
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('asks for a token however the path is spelt (absolute-form request line)', async () => {
    const { port } = new URL(s.url);
    const target = `${s.url}/v1/sessions`;
    const head = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 401 Unauthorized');
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    const res = await s.call('POST', '/v1/sessions', { raw: '{"title": ' });
    expect(res.status).toBe(400);
    expect(errorCode(res.body)).toBe('invalid_json');
  });

  it('answers a body over 1 MiB with 413 payload_too_large', async () => {
    const res = await s.call('POST', '/v1/sessions', {
      raw: JSON.stringify({ title: 'x'.repeat(1024 * 1024) }),
    });
    expect(res.status).toBe(413);
    expect(errorCode(res.body)).toBe('payload_too_large');
  });

  it('answers a non-JSON content type with 415 unsupported_media_type', async () => {
    const res = await s.call('POST', '/v1/sessions', {
      raw: 'title=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(415);
    expect(errorCode(res.body)).toBe('unsupported_media_type');
  });

  it('answers an unknown route with 404 not_found in the error shape', async () => {
    const res = await s.call('GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(errorCode(res.body)).toBe('not_found');
    const unauthenticated = await s.call('GET', '/v1/nothing-here', { token: null });
    expect(unauthenticated.status).toBe(401);
    const longId = await s.call('GET', `/v1/sessions/s_${'x'.repeat(300)}`);
    expect(longId.status).toBe(404);
    expect(errorCode(longId.body)).toBe('not_found');
    const wrongMethod = await s.call('PUT', '/v1/sessions');
    expect(wrongMethod.status).toBe(404);
    expect(errorCode(wrongMethod.body)).toBe('not_found');
  });

  it('answers a plain GET of the feed with 426 upgrade_required', async () => {
    const res = await s.call('GET', '/v1/events');
    expect(res.status).toBe(426);
    expect(errorCode(res.body)).toBe('upgrade_required');
  });

  it('serves the machine definitions, the OpenAPI document and the metrics', async () => {
    const machines = await s.call('GET', '/v1/machines');
    expect(machines).toMatchObject({ status: 200, body: { job: { id: 'job' } } });
    const openapi = await s.call('GET', '/v1/openapi.json', { token: null });
    expect(openapi.status).toBe(200);
    expect(field(openapi.body, 'openapi')).toBe('3.1.0');
    expect(Object.keys(field(openapi.body, 'paths') as object)).toEqual(
      expect.arrayContaining(['/v1/sessions', '/v1/sessions/{id}/jobs', '/v1/jobs/{id}/complete']),
    );
    // Server-wide numbers are not one owner's: on a server of two, no owner reads them.
    expect((await s.call('GET', '/metrics', { token: TOKENS.bob })).status).toBe(401);
    expect((await s.call('GET', '/metrics', { token: null })).status).toBe(401);
    const metrics = await s.call('GET', '/metrics', { token: METRICS_TOKEN });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(String(metrics.body)).toMatch(/^baton_jobs\{state="running"\} \d+$/m);
    expect(String(metrics.body)).toContain('baton_feed_clients');
  });
});
