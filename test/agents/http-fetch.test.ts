import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpFetch, type HttpFetch } from '../../src/runtime/agents/http-fetch.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let server: Server | null = null;
let client: HttpFetch | null = null;

async function serve(handler: Handler): Promise<string> {
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => handler(req, res, Buffer.concat(parts).toString('utf8')));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function fetcher(): typeof fetch {
  client = createHttpFetch();
  return client.fetch;
}

afterEach(async () => {
  client?.close();
  client = null;
  const s = server;
  server = null;
  if (s) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('createHttpFetch', () => {
  it('sends method, headers and body, and answers status, headers and a streamed body', async () => {
    const url = await serve((req, res, body) => {
      res.writeHead(201, 'Made', { 'content-type': 'text/plain', 'x-echo': req.headers['x-test'] });
      res.end(`${req.method} ${req.url} ${body}`);
    });
    const response = await fetcher()(`${url}/v1/x?y=1`, {
      method: 'POST',
      headers: { 'x-test': 'yes', 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(response.status).toBe(201);
    expect(response.statusText).toBe('Made');
    expect(response.ok).toBe(true);
    expect(response.headers.get('x-echo')).toBe('yes');
    expect(await response.text()).toBe('POST /v1/x?y=1 {"a":1}');
  });

  it('reuses one connection for requests one after another', async () => {
    const sockets = new Set<Socket>();
    const url = await serve((req, res) => {
      sockets.add(req.socket);
      res.end('ok');
    });
    const f = fetcher();
    for (let i = 0; i < 5; i++)
      expect(await (await f(url, { method: 'POST', body: 'x' })).text()).toBe('ok');
    expect(sockets.size).toBe(1);
  });

  it('never sends a request twice when its connection is reset', async () => {
    let served = 0;
    const url = await serve((req, res) => {
      served += 1;
      // The second request arrives on the first one's kept-alive connection.
      if (served === 2) {
        req.socket.destroy();
        return;
      }
      res.end(`answer ${served}`);
    });
    const f = fetcher();
    expect(await (await f(url, { method: 'POST', body: 'a' })).text()).toBe('answer 1');
    await expect(f(url, { method: 'POST', body: 'b' })).rejects.toBeInstanceOf(TypeError);
    expect(served).toBe(2);
  });

  it("lets go of an idle connection before the server's announced keep-alive timeout", async () => {
    const sockets = new Set<Socket>();
    const url = await serve((req, res) => {
      sockets.add(req.socket);
      // Announces 2 s but keeps it a minute: only the client can close it in time.
      res.setHeader('keep-alive', 'timeout=2');
      res.end('ok');
    });
    server!.keepAliveTimeout = 60_000;
    const f = fetcher();
    await (await f(url, { method: 'POST', body: 'a' })).text();
    const first = [...sockets][0]!;
    await new Promise<void>((resolve) => first.once('close', () => resolve()));
    await (await f(url, { method: 'POST', body: 'b' })).text();
    expect(sockets.size).toBe(2);
  });

  it('fails like fetch (TypeError with the cause) when nothing listens', async () => {
    const url = await serve((_req, res) => res.end());
    const s = server!;
    server = null;
    await new Promise((resolve) => s.close(resolve));
    const error = await fetcher()(url, { method: 'POST', body: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError & { cause: NodeJS.ErrnoException }).cause.code).toBe('ECONNREFUSED');
  });

  it('rejects with an AbortError when aborted before or while waiting for the answer', async () => {
    const url = await serve(() => undefined); // never answers
    const f = fetcher();
    const before = new AbortController();
    before.abort();
    await expect(
      f(url, { method: 'POST', body: 'x', signal: before.signal }),
    ).rejects.toMatchObject({
      name: 'AbortError',
    });
    const during = new AbortController();
    const pending = f(url, { method: 'POST', body: 'x', signal: during.signal });
    setTimeout(() => during.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('errors the body when aborted while it streams', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
    });
    const controller = new AbortController();
    const response = await fetcher()(url, { method: 'POST', body: 'x', signal: controller.signal });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: first\n\n');
    controller.abort();
    await expect(reader.read()).rejects.toBeDefined();
  });

  it('errors the body when the server dies in the middle of it', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n', () => setTimeout(() => res.socket?.destroy(), 10));
    });
    const response = await fetcher()(url, { method: 'POST', body: 'x' });
    await expect(response.text()).rejects.toBeDefined();
  });

  it('decodes a gzip body and gives no body for 204', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/empty') {
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-encoding': 'gzip' });
      res.end(gzipSync('unzipped text'));
    });
    const f = fetcher();
    const zipped = await f(`${url}/zip`, { method: 'POST', body: 'x' });
    expect(zipped.headers.get('content-encoding')).toBeNull();
    expect(await zipped.text()).toBe('unzipped text');
    const empty = await f(`${url}/empty`, { method: 'POST', body: 'x' });
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it('hands a redirect to the global fetch, which follows it', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/old') {
        res.writeHead(307, { location: '/new' });
        res.end();
        return;
      }
      res.end(`at ${req.url}`);
    });
    const response = await fetcher()(`${url}/old`, { method: 'POST', body: 'x' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('at /new');
  });
});
