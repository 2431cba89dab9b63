/**
 * A scripted agent backend speaking Baton's `sse` agent protocol (SPEC §4),
 * on loopback, for tests and benchmarks: Baton POSTs
 * `{ sessionId, messages, maxRounds }` and reads `data: <json>` frames.
 *
 * ```ts
 * const fake = await startFakeSseAgent([
 *   { frames: [sseFrame.step(1), sseFrame.thinking('hmm'), sseFrame.delta('Hello')] },
 * ]);
 * const agent = new SseAgent({ url: fake.url });
 * ```
 *
 * Every POST (any path) is recorded and answered from the script: an array
 * (request n gets entry n; past its end the last entry repeats) or a
 * function of the recorded request. See {@link FakeSseReply}.
 */

import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** One SSE frame: `event: <event>` (when set) and `data: <data>`. */
export interface FakeSseFrame {
  event?: string;
  /** Sent as is (one `data:` line per line of it). */
  data: string;
}

/** Builders for the frames of the protocol. */
export const sseFrame = {
  /** `{"delta": text}`: visible text. */
  delta(text: string): FakeSseFrame {
    return { data: JSON.stringify({ delta: text }) };
  },
  /** `{"delta": text, "thinking": true}`: reasoning, neither shown nor stored. */
  thinking(text: string): FakeSseFrame {
    return { data: JSON.stringify({ delta: text, thinking: true }) };
  },
  /** `{"type": "agent_step", "round": n}`. */
  step(round: number): FakeSseFrame {
    return { data: JSON.stringify({ type: 'agent_step', round }) };
  },
  /** `{"type": "tool_output", "tool", "command", "output", "exit_code"}`. */
  tool(event: {
    tool: string;
    command: string;
    output: string;
    exitCode: number | null;
  }): FakeSseFrame {
    return {
      data: JSON.stringify({
        type: 'tool_output',
        tool: event.tool,
        command: event.command,
        output: event.output,
        exit_code: event.exitCode,
      }),
    };
  },
  /** `event: error` with `{"message": message}`. */
  error(message: string): FakeSseFrame {
    return { event: 'error', data: JSON.stringify({ message }) };
  },
  /** `data: [DONE]` (added after `frames` unless `done: false`). */
  done(): FakeSseFrame {
    return { data: '[DONE]' };
  },
  /** Any data, e.g. malformed JSON. */
  raw(data: string, event?: string): FakeSseFrame {
    return event === undefined ? { data } : { event, data };
  },
} as const;

/** What one request gets. A bare string is short for its text as a few delta frames, then `[DONE]`. */
export type FakeSseReply =
  | string
  /** 200 with these frames, then `[DONE]` unless `done` is false; `delayMs` between frames. */
  | { frames: FakeSseFrame[]; done?: boolean; delayMs?: number; firstByteDelayMs?: number }
  /** An HTTP error with a JSON (or the given) body; `retryAfter` sets `Retry-After`. */
  | { fault: 'status'; status: number; retryAfter?: number | string; body?: string }
  /** The socket is destroyed as soon as the request is read. */
  | { fault: 'reset' }
  /** Sends `frames`, then destroys the socket (no `[DONE]`). */
  | { fault: 'cut'; frames?: FakeSseFrame[] }
  /** Sends the headers and `frames` (unless `beforeHeaders`), then waits until the client goes away. */
  | { fault: 'hang'; frames?: FakeSseFrame[]; beforeHeaders?: boolean };

/** An array (entry n for request n, the last one repeating) or a function of the request. */
export type FakeSseScript =
  FakeSseReply[] | ((request: RecordedSseRequest) => FakeSseReply | Promise<FakeSseReply>);

/** The body Baton sends. */
export interface FakeSseRequestBody {
  sessionId?: string;
  messages: Array<{ role: string; content: string }>;
  maxRounds?: number;
  [key: string]: unknown;
}

/** One request as the server received it. */
export interface RecordedSseRequest {
  /** 0-based arrival order. */
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: FakeSseRequestBody;
  rawBody: string;
  /** `performance.now()` when the request had arrived. */
  at: number;
  /** `Date.now()` at the same moment. */
  atEpochMs: number;
  /** `performance.now()` when the client closed the connection before the reply ended, else null. */
  clientClosedAt: number | null;
}

/** A running fake SSE agent. */
export interface FakeSseAgent {
  /** The endpoint to POST to (`http://127.0.0.1:<port>/agent`). */
  url: string;
  /** Every request so far, in arrival order (a live array). */
  requests: RecordedSseRequest[];
  /** Replaces the script; an array script starts again at its first entry. */
  setScript(script: FakeSseScript): void;
  /** Resolves once `count` requests have arrived (rejects after `timeoutMs`, default 5 s). */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedSseRequest[]>;
  /** Closes the server, cutting any open connection. */
  close(): Promise<void>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseBody(raw: string): FakeSseRequestBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { messages: [] };
  }
  if (!isRecord(parsed)) return { messages: [] };
  const messages = Array.isArray(parsed['messages'])
    ? parsed['messages'].filter(isRecord).map((m) => ({
        role: String(m['role']),
        content: typeof m['content'] === 'string' ? m['content'] : '',
      }))
    : [];
  return { ...parsed, messages };
}

/** Without a script, every request gets a short text naming the last user message. */
function defaultReply(request: RecordedSseRequest): FakeSseReply {
  const user = [...request.body.messages].reverse().find((m) => m.role === 'user');
  return `Fake agent reply to: ${(user?.content.split('\n')[0] ?? '').slice(0, 80)}`;
}

function encode(frame: FakeSseFrame): string {
  const event = frame.event === undefined ? '' : `event: ${frame.event}\n`;
  const data = frame.data
    .split('\n')
    .map((line) => `data: ${line}`)
    .join('\n');
  return `${event}${data}\n\n`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
};

async function sendFrames(
  res: ServerResponse,
  frames: FakeSseFrame[],
  delayMs: number,
): Promise<boolean> {
  for (const frame of frames) {
    if (delayMs > 0) await sleep(delayMs);
    if (res.destroyed || res.writableEnded) return false;
    res.write(encode(frame));
  }
  return true;
}

function textFrames(text: string): FakeSseFrame[] {
  const size = Math.max(1, Math.ceil(text.length / 3));
  const frames: FakeSseFrame[] = [];
  for (let i = 0; i < text.length; i += size) frames.push(sseFrame.delta(text.slice(i, i + size)));
  return frames;
}

async function answer(res: ServerResponse, reply: FakeSseReply): Promise<void> {
  if (typeof reply === 'string') {
    reply = { frames: textFrames(reply) };
  }
  if ('frames' in reply && !('fault' in reply)) {
    if ((reply.firstByteDelayMs ?? 0) > 0) await sleep(reply.firstByteDelayMs ?? 0);
    res.writeHead(200, SSE_HEADERS);
    const sent = await sendFrames(res, reply.frames, reply.delayMs ?? 0);
    if (sent && reply.done !== false) res.write(encode(sseFrame.done()));
    res.end();
    return;
  }
  switch (reply.fault) {
    case 'status': {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (reply.retryAfter !== undefined) headers['retry-after'] = String(reply.retryAfter);
      res.writeHead(reply.status, headers);
      res.end(
        reply.body ?? JSON.stringify({ error: { message: `fake agent error ${reply.status}` } }),
      );
      return;
    }
    case 'reset':
      res.socket?.destroy();
      return;
    case 'cut':
      res.writeHead(200, SSE_HEADERS);
      await sendFrames(res, reply.frames ?? [], 0);
      await sleep(20);
      res.socket?.destroy();
      return;
    case 'hang':
      if (reply.beforeHeaders !== true) {
        res.writeHead(200, SSE_HEADERS);
        await sendFrames(res, reply.frames ?? [], 0);
      }
      await new Promise<void>((resolve) => {
        if (res.destroyed) resolve();
        else res.once('close', () => resolve());
      });
      return;
  }
}

/**
 * Starts a fake SSE agent backend on `127.0.0.1`, port 0.
 *
 * @param script - what each request gets (see {@link FakeSseScript});
 *   without one, every request gets `Fake agent reply to: <last user line>`.
 */
export async function startFakeSseAgent(script?: FakeSseScript): Promise<FakeSseAgent> {
  let current: FakeSseScript | undefined = script;
  let scriptStart = 0;
  const requests: RecordedSseRequest[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();

  const pick = async (request: RecordedSseRequest): Promise<FakeSseReply> => {
    if (current === undefined) return defaultReply(request);
    if (typeof current === 'function') return current(request);
    if (current.length === 0) return defaultReply(request);
    return (
      current[Math.min(request.index - scriptStart, current.length - 1)] ?? defaultReply(request)
    );
  };

  const server = createServer((req, res) => {
    void (async () => {
      const rawBody = await readBody(req);
      if (req.method !== 'POST') {
        res.writeHead(405, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'POST only' } }));
        return;
      }
      const request: RecordedSseRequest = {
        index: requests.length,
        method: req.method,
        path: (req.url ?? '/').split('?')[0] ?? '/',
        headers: req.headers,
        body: parseBody(rawBody),
        rawBody,
        at: performance.now(),
        atEpochMs: Date.now(),
        clientClosedAt: null,
      };
      requests.push(request);
      for (const wake of [...waiters]) wake();
      res.once('close', () => {
        if (!res.writableFinished) request.clientClosedAt = performance.now();
      });
      await answer(res, await pick(request));
    })().catch((error: unknown) => {
      // A broken script must show up in the test, not hang it.
      if (!res.headersSent) {
        res.writeHead(599, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `fake agent failure: ${String(error)}` } }));
      } else {
        res.destroy();
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/agent`,
    requests,
    setScript(next) {
      current = next;
      scriptStart = requests.length;
    },
    waitForRequests(count, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        if (requests.length >= count) {
          resolve(requests.slice(0, count));
          return;
        }
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `fake SSE agent: ${requests.length} of ${count} requests after ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        const check = (): void => {
          if (requests.length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests.slice(0, count));
        };
        waiters.add(check);
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
