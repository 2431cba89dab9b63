import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { TokenAuth } from '../../src/transport/auth.js';
import { buildApp, type AppDeps } from '../../src/transport/http.js';
import type { BatonOptions } from '../../src/runtime/system.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';

/** Tokens of the owners every transport test has. */
export const TOKENS = { alice: 'tok-alice-0123456789', bob: 'tok-bob-0123456789' } as const;

export interface TestServer {
  t: TestBaton;
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  /** A JSON call with a token (or none with `token: null`). */
  call(
    method: string,
    path: string,
    options?: {
      token?: string | null;
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: unknown; headers: Headers }>;
  close(): Promise<void>;
}

/** A real runtime on a temp SQLite file behind a real app listening on port 0. */
export async function startServer(
  extra: Partial<Omit<AppDeps, 'baton' | 'auth'>> = {},
  batonOptions: Partial<BatonOptions> = {},
): Promise<TestServer> {
  const t = await startTestBaton(batonOptions);
  const auth = new TokenAuth([
    { owner: 'alice', token: TOKENS.alice },
    { owner: 'bob', token: TOKENS.bob },
  ]);
  const app = await buildApp({ baton: t.baton, auth, logger: false, ...extra });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    t,
    app,
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    async call(method, path, options = {}) {
      const token = options.token === undefined ? TOKENS.alice : options.token;
      const headers: Record<string, string> = { ...options.headers };
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      let payload: string | undefined = options.raw;
      if (options.body !== undefined) payload = JSON.stringify(options.body);
      if (payload !== undefined && !('content-type' in headers)) {
        headers['content-type'] = 'application/json';
      }
      const response = await fetch(url + path, { method, headers, body: payload ?? null });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = text === '' ? null : JSON.parse(text);
      } catch {
        // Not JSON (metrics, static files): keep the text.
      }
      return { status: response.status, body, headers: response.headers };
    },
    async close() {
      await app.close();
      await t.close();
    },
  };
}

/** Reads a JSON object's field, for assertions on `unknown` bodies. */
export function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined;
}

/** The `error.code` of an error body. */
export function errorCode(body: unknown): unknown {
  return field(field(body, 'error'), 'code');
}

/** A parsed frame received by a {@link FeedClient}. */
export type Frame = Record<string, unknown>;

/** A WebSocket client that keeps every frame and lets a test await the next ones. */
export class FeedClient {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  private waiters: (() => void)[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`unexpected response ${res.statusCode}`)),
      );
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        resolve({ code, reason: String(reason) });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    // Errors surface through `opened` / `closed`.
    this.ws.on('error', () => undefined);
  }

  /** Resolves with the frames once `check` holds for them; fails after `timeoutMs`. */
  async until(check: (frames: Frame[]) => boolean, timeoutMs = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.frames)) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('socket closed while waiting');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames;
  }

  /** Durable frames' seqs, in arrival order. */
  seqs(): number[] {
    return this.frames.flatMap((f) => (typeof f['seq'] === 'number' ? [f['seq']] : []));
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  close(): void {
    this.ws.close();
  }
}

/** Opens a feed client and waits for the handshake. */
export async function openFeed(server: TestServer, query: string): Promise<FeedClient> {
  const client = new FeedClient(`${server.wsUrl}/v1/events?${query}`);
  await client.opened;
  return client;
}
