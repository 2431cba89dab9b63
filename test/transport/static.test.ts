import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startServer, type TestServer } from './helpers.js';

/** A GET with the path sent exactly as written (fetch would normalise `..`). */
function rawGet(url: string, path: string, method = 'GET') {
  return new Promise<{ status: number; type: string | undefined; body: string }>(
    (resolve, reject) => {
      const req = request(`${url}${path}`, { method, path }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }),
        );
      });
      req.on('error', reject);
      req.end();
    },
  );
}

describe('dashboard files', () => {
  let s: TestServer;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'baton-public-'));
    const pub = join(root, 'public');
    mkdirSync(join(pub, 'docs'), { recursive: true });
    writeFileSync(join(pub, 'index.html'), '<!doctype html><title>Baton</title>');
    writeFileSync(join(pub, 'app.js'), 'console.log(1)');
    writeFileSync(join(pub, 'style.css'), 'body{}');
    writeFileSync(join(pub, 'docs', 'index.html'), 'docs');
    writeFileSync(join(root, 'secret.txt'), 'SECRET');
    symlinkSync(join(root, 'secret.txt'), join(pub, 'link.txt'));
    s = await startServer({ publicDir: pub });
  });
  afterAll(async () => {
    await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves index.html at / and files with their content types, without a token', async () => {
    const index = await rawGet(s.url, '/?token=abc');
    expect(index).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
    expect(index.body).toContain('<title>Baton</title>');
    expect(await rawGet(s.url, '/app.js')).toMatchObject({
      status: 200,
      type: 'text/javascript; charset=utf-8',
      body: 'console.log(1)',
    });
    expect(await rawGet(s.url, '/style.css')).toMatchObject({
      status: 200,
      type: 'text/css; charset=utf-8',
    });
    expect(await rawGet(s.url, '/docs/')).toMatchObject({ status: 200, body: 'docs' });
    expect(await rawGet(s.url, '/app.js', 'HEAD')).toMatchObject({ status: 200, body: '' });
  });

  it('never serves a file outside the directory', async () => {
    for (const path of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/%2e%2e%2fsecret.txt',
      '/docs/../../secret.txt',
      '/..%5csecret.txt',
      '/link.txt',
      '/%00',
    ]) {
      const res = await rawGet(s.url, path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).not.toContain('SECRET');
      expect(errorCode(JSON.parse(res.body))).toBe('not_found');
    }
  });

  it('answers a malformed URL with 400 invalid_request', async () => {
    const res = await rawGet(s.url, '/%E0%A4%A');
    expect(res.status).toBe(400);
    expect(errorCode(JSON.parse(res.body))).toBe('invalid_request');
  });

  it('keeps API paths out of the file handler', async () => {
    const res = await s.call('GET', '/v1/index.html');
    expect(res.status).toBe(404);
    expect(errorCode(res.body)).toBe('not_found');
    expect((await s.call('POST', '/app.js', { token: null })).status).toBe(404);
  });
});
