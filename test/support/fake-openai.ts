/**
 * A scripted, OpenAI-compatible chat completions server on loopback, for
 * tests and benchmarks. It is a real HTTP server (node:http on port 0): the
 * client under test goes through its real fetch, sockets and SSE parsing.
 *
 * ```ts
 * const fake = await startFakeOpenAI([
 *   { toolCalls: [toolCall('run_command', { command: 'ls' })] },
 *   { text: 'Done.' },
 * ]);
 * const agent = new OpenAIAgent({ baseURL: fake.url, model: 'm' });
 * // … fake.requests[1].body.messages holds the tool result …
 * await fake.close();
 * ```
 *
 * Routes: `POST /v1/chat/completions` (streamed when the body has
 * `"stream": true`, else one JSON `chat.completion`), `GET /v1/models`.
 * Anything else is a 404 JSON error and is not recorded.
 *
 * The script says what each chat request gets, in arrival order: an array
 * (request n gets entry n; past its end the last entry repeats) or a
 * function of the recorded request. See {@link FakeReply}.
 */

import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** A tool call the fake model makes; its arguments are streamed in several pieces. */
export interface FakeToolCall {
  /** Defaults to `call_<request index>_<position>`. */
  id?: string;
  name: string;
  /** JSON text (sent as is, so it may be invalid on purpose) or an object (stringified). */
  arguments: string | Record<string, unknown>;
}

/** A normal answer. Every field is optional: `{}` is a well-formed empty reply. */
export interface FakeCompletion {
  /** Visible text. A string is cut into `chunkSize` pieces; an array is sent one element per chunk. */
  text?: string | string[];
  /** Reasoning, streamed before the text in the `reasoningField` of the delta. */
  reasoning?: string | string[];
  /** Where reasoning goes: `reasoning_content` (DeepSeek, vLLM; the default) or `reasoning` (OpenRouter, Ollama). */
  reasoningField?: 'reasoning_content' | 'reasoning';
  /** Tool calls, streamed after the text as real servers do (id and name first, arguments in pieces). */
  toolCalls?: FakeToolCall[];
  /** The model reported in every chunk; defaults to the request's `model`, else `fake-model`. */
  model?: string;
  /** Defaults to `tool_calls` when there are tool calls, else `stop`. */
  finishReason?: string;
  /** Characters per text chunk when `text` is a string (default 8). */
  chunkSize?: number;
  /** Pause between chunks, ms (default 0: everything is written at once). */
  delayMs?: number;
  /** Pause before the response headers, ms (time to first byte; default 0). */
  firstByteDelayMs?: number;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** A failure of the server or of the stream. */
export type FakeFault =
  /** An HTTP error: `{ "error": { message, type, code } }` (or `body`) with `status`; `retryAfter` sets `Retry-After` (seconds, or an HTTP date string). */
  | {
      fault: 'status';
      status: number;
      retryAfter?: number | string;
      message?: string;
      body?: unknown;
      headers?: Record<string, string>;
    }
  /** The socket is destroyed as soon as the request is read: no status line at all. */
  | { fault: 'reset' }
  /**
   * Streams the first `afterChunks` chunks of `text` (default: half of them),
   * then `destroy`s the socket (the default: a reset mid-body) or `end`s the
   * body cleanly without a finish_reason or `[DONE]`.
   */
  | { fault: 'cut'; text?: string; afterChunks?: number; mode?: 'destroy' | 'end' }
  /** Streams `text`, then a `data:` frame that is not JSON, then `[DONE]`. */
  | { fault: 'malformed'; text?: string }
  /**
   * Streams `text`, then `data: {"error": {...}}` (with `event: error` when
   * `eventName` is set) and ends the body, as servers do when a model fails mid-answer.
   */
  | { fault: 'errorFrame'; text?: string; message?: string; eventName?: boolean }
  /** A well-formed stream with no content: role chunk, finish chunk, `[DONE]`. */
  | { fault: 'empty' }
  /**
   * Never finishes: sends the headers and the chunks of `text` (unless
   * `beforeHeaders`, then nothing at all), then waits until the client goes
   * away (its `clientClosedAt` is then set) or the server closes.
   */
  | { fault: 'hang'; text?: string; beforeHeaders?: boolean };

/** What one request gets. A bare string is short for `{ text }`. */
export type FakeReply = string | FakeCompletion | FakeFault;

/** An array (entry n for request n, the last one repeating) or a function of the request. */
export type FakeOpenAIScript =
  FakeReply[] | ((request: RecordedRequest) => FakeReply | Promise<FakeReply>);

/** A chat message as the client sent it. */
export interface FakeChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
  [key: string]: unknown;
}

/** The parsed request body (fields the client did not send are absent). */
export interface FakeChatRequest {
  model?: string;
  messages: FakeChatMessage[];
  stream?: boolean;
  tools?: Array<{
    type: string;
    function: { name: string; description?: string; parameters?: unknown };
  }>;
  [key: string]: unknown;
}

/** One chat request as the server received it. */
export interface RecordedRequest {
  /** 0-based arrival order among chat requests. */
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (`messages` is `[]` when missing or not JSON). */
  body: FakeChatRequest;
  rawBody: string;
  stream: boolean;
  /** `performance.now()` when the request (headers and body) had arrived. */
  at: number;
  /** `Date.now()` at the same moment. */
  atEpochMs: number;
  /** `performance.now()` when the client closed the connection before the reply ended, else null. */
  clientClosedAt: number | null;
}

/** A running fake server. */
export interface FakeOpenAI {
  /** The base URL, ending in `/v1` (give it to the OpenAI client as `baseURL`). */
  url: string;
  /** Every chat request so far, in arrival order (a live array). */
  requests: RecordedRequest[];
  /** Replaces the script; an array script starts again at its first entry. */
  setScript(script: FakeOpenAIScript): void;
  /** Resolves once `count` chat requests have arrived (rejects after `timeoutMs`, default 5 s). */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Closes the server, cutting any open (e.g. hanging) connection. */
  close(): Promise<void>;
}

/** Shorthand for a {@link FakeToolCall}. */
export function toolCall(
  name: string,
  args: string | Record<string, unknown>,
  id?: string,
): FakeToolCall {
  return id === undefined ? { name, arguments: args } : { id, name, arguments: args };
}

/** The `tool` messages a request carried (the tool results fed back to the model), in order. */
export function toolResults(
  request: RecordedRequest,
): Array<{ toolCallId: string; content: string }> {
  return request.body.messages
    .filter((m) => m.role === 'tool')
    .map((m) => ({
      toolCallId: m.tool_call_id ?? '',
      content: typeof m.content === 'string' ? m.content : '',
    }));
}

/** The content of the last `user` message of a request ('' if none). */
export function lastUserContent(request: RecordedRequest): string {
  const user = [...request.body.messages].reverse().find((m) => m.role === 'user');
  return typeof user?.content === 'string' ? user.content : '';
}

/** Without a script, every request gets this: a short text that names what it answers. */
function defaultReply(request: RecordedRequest): FakeReply {
  const said = lastUserContent(request).split('\n')[0] ?? '';
  return { text: `Fake reply to: ${said.slice(0, 80)}` };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseBody(raw: string): FakeChatRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { messages: [] };
  }
  if (!isRecord(parsed)) return { messages: [] };
  const messages = Array.isArray(parsed['messages']) ? parsed['messages'].filter(isRecord) : [];
  // A test fake trusts the client's message shape; the tests read it as such.
  return { ...parsed, messages: messages as FakeChatMessage[] };
}

function splitText(text: string | string[] | undefined, size: number): string[] {
  if (text === undefined) return [];
  if (Array.isArray(text)) return text;
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

/** Cuts a string into `count` roughly equal pieces (at least one, possibly empty). */
function pieces(text: string, count: number): string[] {
  if (text.length === 0) return [''];
  const size = Math.ceil(text.length / count);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
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

function normalise(reply: FakeReply): FakeCompletion | FakeFault {
  return typeof reply === 'string' ? { text: reply } : reply;
}

function isFault(reply: FakeCompletion | FakeFault): reply is FakeFault {
  return 'fault' in reply;
}

/** Builds the `data:` frames of a completion, as an OpenAI server streams them. */
function completionChunks(reply: FakeCompletion, request: RecordedRequest): string[] {
  const model = reply.model ?? request.body.model ?? 'fake-model';
  const id = `chatcmpl-fake-${request.index}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): string =>
    JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    });
  const size = Math.max(1, reply.chunkSize ?? 8);
  const frames: string[] = [chunk({ role: 'assistant', content: '' })];
  const field = reply.reasoningField ?? 'reasoning_content';
  for (const piece of splitText(reply.reasoning, size)) frames.push(chunk({ [field]: piece }));
  for (const piece of splitText(reply.text, size)) frames.push(chunk({ content: piece }));
  const calls = reply.toolCalls ?? [];
  calls.forEach((call, index) => {
    const args =
      typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
    const callId = call.id ?? `call_${request.index}_${index}`;
    frames.push(
      chunk({
        tool_calls: [
          { index, id: callId, type: 'function', function: { name: call.name, arguments: '' } },
        ],
      }),
    );
    for (const part of pieces(args, 3))
      frames.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }));
  });
  frames.push(chunk({}, reply.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop')));
  if (
    isRecord(request.body['stream_options']) &&
    request.body['stream_options']['include_usage'] === true
  ) {
    frames.push(
      JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }),
    );
  }
  return frames;
}

/** The non-streamed `chat.completion` for a reply. */
function completionJson(reply: FakeCompletion, request: RecordedRequest): string {
  const text = Array.isArray(reply.text) ? reply.text.join('') : (reply.text ?? '');
  const reasoning = Array.isArray(reply.reasoning) ? reply.reasoning.join('') : reply.reasoning;
  const calls = (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${request.index}_${index}`,
    type: 'function',
    function: {
      name: call.name,
      arguments:
        typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
    },
  }));
  const message: Record<string, unknown> = {
    role: 'assistant',
    content: text.length > 0 ? text : null,
  };
  if (reasoning !== undefined) message[reply.reasoningField ?? 'reasoning_content'] = reasoning;
  if (calls.length > 0) message['tool_calls'] = calls;
  return JSON.stringify({
    id: `chatcmpl-fake-${request.index}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: reply.model ?? request.body.model ?? 'fake-model',
    choices: [
      {
        index: 0,
        message,
        logprobs: null,
        finish_reason: reply.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop'),
      },
    ],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
};

/** Writes a frame unless the client has gone; says whether it could. */
function write(res: ServerResponse, frame: string): boolean {
  if (res.destroyed || res.writableEnded) return false;
  res.write(frame);
  return true;
}

async function sendFrames(
  res: ServerResponse,
  frames: string[],
  delayMs: number,
): Promise<boolean> {
  for (const frame of frames) {
    if (delayMs > 0) await sleep(delayMs);
    if (!write(res, `data: ${frame}\n\n`)) return false;
  }
  return true;
}

/** Waits until the response is closed (by the client, or by `close()`). */
function untilClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}

async function answer(
  res: ServerResponse,
  reply: FakeCompletion | FakeFault,
  request: RecordedRequest,
): Promise<void> {
  const textReply = (text: string | undefined): FakeCompletion =>
    text === undefined ? {} : { text };

  if (!isFault(reply)) {
    if ((reply.firstByteDelayMs ?? 0) > 0) await sleep(reply.firstByteDelayMs ?? 0);
    if (!request.stream) {
      res.writeHead(200, { 'content-type': 'application/json', ...reply.headers });
      res.end(completionJson(reply, request));
      return;
    }
    res.writeHead(200, { ...SSE_HEADERS, ...reply.headers });
    if (await sendFrames(res, completionChunks(reply, request), reply.delayMs ?? 0))
      write(res, 'data: [DONE]\n\n');
    res.end();
    return;
  }

  switch (reply.fault) {
    case 'status': {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        ...reply.headers,
      };
      if (reply.retryAfter !== undefined) headers['retry-after'] = String(reply.retryAfter);
      const body =
        reply.body !== undefined
          ? reply.body
          : {
              error: {
                message: reply.message ?? `fake error ${reply.status}`,
                type: reply.status === 429 ? 'rate_limit_exceeded' : 'server_error',
                code: null,
              },
            };
      res.writeHead(reply.status, headers);
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
      return;
    }
    case 'reset':
      res.socket?.destroy();
      return;
    case 'cut': {
      const frames = completionChunks(textReply(reply.text ?? 'this answer is cut short'), request);
      // Never the finish chunk: the cut comes before the end of the answer.
      const body = frames.slice(0, frames.length - 1);
      const count = Math.min(body.length, reply.afterChunks ?? Math.ceil(body.length / 2));
      res.writeHead(200, SSE_HEADERS);
      await sendFrames(res, body.slice(0, count), 0);
      if (reply.mode === 'end') {
        res.end();
      } else {
        // Let the chunks leave before the reset, so the client sees a body cut mid-way.
        await sleep(20);
        res.socket?.destroy();
      }
      return;
    }
    case 'malformed': {
      const frames = completionChunks(textReply(reply.text ?? 'before the garbage'), request);
      res.writeHead(200, SSE_HEADERS);
      await sendFrames(res, frames.slice(0, 2), 0);
      write(res, 'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "x"\n\n');
      write(res, 'data: [DONE]\n\n');
      res.end();
      return;
    }
    case 'errorFrame': {
      const frames = completionChunks(textReply(reply.text ?? 'partial answer'), request);
      res.writeHead(200, SSE_HEADERS);
      await sendFrames(res, frames.slice(0, frames.length - 1), 0);
      const error = JSON.stringify({
        error: {
          message: reply.message ?? 'the model crashed',
          type: 'server_error',
          code: 'internal_error',
        },
      });
      write(res, `${reply.eventName === true ? 'event: error\n' : ''}data: ${error}\n\n`);
      res.end();
      return;
    }
    case 'empty': {
      res.writeHead(200, SSE_HEADERS);
      await sendFrames(res, completionChunks({}, request), 0);
      write(res, 'data: [DONE]\n\n');
      res.end();
      return;
    }
    case 'hang': {
      if (reply.beforeHeaders !== true) {
        res.writeHead(200, SSE_HEADERS);
        const frames = completionChunks(textReply(reply.text), request);
        await sendFrames(res, frames.slice(0, frames.length - 1), 0);
      }
      await untilClosed(res);
      return;
    }
  }
}

/**
 * Starts a fake OpenAI-compatible server on `127.0.0.1`, port 0.
 *
 * @param script - what each chat request gets (see {@link FakeOpenAIScript});
 *   without one, every request gets `Fake reply to: <last user line>`.
 */
export async function startFakeOpenAI(script?: FakeOpenAIScript): Promise<FakeOpenAI> {
  let current: FakeOpenAIScript | undefined = script;
  let scriptStart = 0;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();

  const pick = async (request: RecordedRequest): Promise<FakeReply> => {
    if (current === undefined) return defaultReply(request);
    if (typeof current === 'function') return current(request);
    if (current.length === 0) return defaultReply(request);
    const position = Math.min(request.index - scriptStart, current.length - 1);
    return current[position] ?? defaultReply(request);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const rawBody = await readBody(req);
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (req.method === 'GET' && path === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            object: 'list',
            data: [{ id: 'fake-model', object: 'model', owned_by: 'baton' }],
          }),
        );
        return;
      }
      if (req.method !== 'POST' || path !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { message: `no route ${req.method} ${path}`, type: 'not_found' },
          }),
        );
        return;
      }
      const body = parseBody(rawBody);
      const request: RecordedRequest = {
        index: requests.length,
        method: req.method,
        path,
        headers: req.headers,
        body,
        rawBody,
        stream: body.stream === true,
        at: performance.now(),
        atEpochMs: Date.now(),
        clientClosedAt: null,
      };
      requests.push(request);
      for (const wake of [...waiters]) wake();
      res.once('close', () => {
        if (!res.writableFinished) request.clientClosedAt = performance.now();
      });
      await answer(res, normalise(await pick(request)), request);
    })().catch((error: unknown) => {
      // A broken script must show up in the test, not hang it.
      if (!res.headersSent) {
        res.writeHead(599, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `fake server failure: ${String(error)}` } }));
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
    url: `http://127.0.0.1:${port}/v1`,
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
            new Error(`fake OpenAI: ${requests.length} of ${count} requests after ${timeoutMs} ms`),
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
