/**
 * The `sse` agent: an existing agent backend reached over HTTP. Baton POSTs
 * `{ sessionId, messages, maxRounds }` and reads a Server-Sent Events stream
 * of `data: <json>` frames (see SPEC §4). The backend runs its own tools, so
 * `input.tools` is not used here; tool events only come back as frames.
 */

import type { EventSourceMessage } from 'eventsource-parser';
import { AgentError } from './agent.js';
import type { Agent, AgentResult, AgentRunInput, ToolEvent } from './agent.js';
import { sseEvents } from './sse-events.js';

/** How much of an error body or error frame goes into an AgentError message. */
const MESSAGE_MAX = 500;

/**
 * Parses a `Retry-After` header: delay-seconds (decimals tolerated) or an
 * HTTP date. Returns milliseconds from `now` (never negative), or `null` when
 * absent or unreadable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text.length === 0) return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // All three HTTP date formats start with a day name; Date.parse alone
  // would read things like "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/**
 * Reads the retry delay a response asks for: `retry-after-ms` (a non-standard
 * header some OpenAI-compatible servers send) wins over `Retry-After`.
 */
export function retryAfterFromHeaders(
  headers: Headers | null | undefined,
  now: number = Date.now(),
): number | null {
  if (!headers) return null;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms.trim()));
  return parseRetryAfter(headers.get('retry-after'), now);
}

/** Shortens a text for an error message. */
export function clip(text: string, max = MESSAGE_MAX): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The text of an `event: error` frame: its `message`/`error` if JSON, else the raw data. */
function errorFrameMessage(data: string): string {
  try {
    const parsed: unknown = JSON.parse(data);
    if (isRecord(parsed)) {
      if (typeof parsed['message'] === 'string') return parsed['message'];
      const inner = parsed['error'];
      if (typeof inner === 'string') return inner;
      if (isRecord(inner) && typeof inner['message'] === 'string') return inner['message'];
    }
  } catch {
    // Not JSON: the raw data is the message.
  }
  return data;
}

/** Options of {@link SseAgent}. */
export interface SseAgentOptions {
  /** The backend's endpoint; Baton POSTs each run to it. */
  url: string;
  /** The model name to report (the backend may report its own with a `model` field). */
  model?: string;
  /** Extra request headers, e.g. `Authorization`. */
  headers?: Record<string, string>;
  /** A fetch implementation (defaults to the global one). */
  fetch?: typeof fetch;
}

/**
 * An agent behind an SSE endpoint. A run succeeds only when the stream ends
 * with `data: [DONE]` and carries visible text or tool events; every other
 * ending is an {@link AgentError}.
 */
export class SseAgent implements Agent {
  readonly kind = 'sse';
  readonly model: string;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;

  constructor(opts: SseAgentOptions) {
    this.#url = opts.url;
    this.model = opts.model ?? 'sse-agent';
    this.#headers = opts.headers ?? {};
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  async run(input: AgentRunInput): Promise<AgentResult> {
    const { signal } = input;
    const aborted = (cause?: unknown): AgentError =>
      new AgentError('agent_aborted', 'the agent run was aborted', null, { cause });
    if (signal.aborted) throw aborted(signal.reason);

    let response: Response;
    try {
      response = await this.#fetch(this.#url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...this.#headers,
        },
        body: JSON.stringify({
          sessionId: input.sessionId,
          messages: input.messages,
          maxRounds: input.maxRounds,
        }),
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw aborted(error);
      throw new AgentError(
        'agent_stream',
        `connection to the agent failed: ${describe(error)}`,
        null,
        {
          cause: error,
        },
      );
    }

    if (!response.ok) {
      const body = await response.text().catch(() => '');
      const detail = clip(body.trim()) || response.statusText;
      if (response.status === 429) {
        throw new AgentError(
          'agent_rate_limited',
          `agent rate limited (HTTP 429): ${detail}`,
          retryAfterFromHeaders(response.headers),
        );
      }
      throw new AgentError('agent_http', `agent answered HTTP ${response.status}: ${detail}`);
    }
    if (response.body === null) throw new AgentError('agent_stream', 'agent response has no body');

    let content = '';
    let model = this.model;
    let round = 1;
    let done = false;
    const toolEvents: ToolEvent[] = [];
    const handle = (event: EventSourceMessage): void => {
      if (event.event === 'error') {
        throw new AgentError(
          'agent_error_frame',
          `agent sent an error frame: ${clip(errorFrameMessage(event.data))}`,
        );
      }
      if (event.data.trim() === '[DONE]') {
        done = true;
        return;
      }
      let frame: unknown;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        throw new AgentError(
          'agent_stream',
          `malformed JSON in an SSE frame: ${clip(event.data, 200)}`,
          null,
          {
            cause: error,
          },
        );
      }
      if (!isRecord(frame)) {
        throw new AgentError(
          'agent_stream',
          `SSE frame is not a JSON object: ${clip(event.data, 200)}`,
        );
      }
      if (typeof frame['model'] === 'string' && frame['model'].length > 0) model = frame['model'];
      if (frame['type'] === 'error' || frame['error'] !== undefined) {
        throw new AgentError(
          'agent_error_frame',
          `agent sent an error: ${clip(errorFrameMessage(event.data))}`,
        );
      }
      if (frame['type'] === 'agent_step') {
        const n = Number(frame['round']);
        if (Number.isFinite(n)) round = n;
        input.onStep?.(round);
        return;
      }
      if (frame['type'] === 'tool_output') {
        const code = frame['exit_code'] ?? frame['exitCode'];
        const toolEvent: ToolEvent = {
          round,
          tool: typeof frame['tool'] === 'string' ? frame['tool'] : 'unknown',
          command: typeof frame['command'] === 'string' ? frame['command'] : '',
          output: typeof frame['output'] === 'string' ? frame['output'] : '',
          exitCode: typeof code === 'number' ? code : null,
        };
        toolEvents.push(toolEvent);
        input.onTool?.(toolEvent);
        return;
      }
      const delta = frame['delta'];
      if (typeof delta === 'string') {
        // Thinking is the backend's reasoning: neither shown nor stored.
        if (frame['thinking'] === true) return;
        content += delta;
        if (delta.length > 0) input.onDelta?.(delta);
      }
      // Other frame types are the backend's business and are ignored.
    };

    try {
      // Leaving the loop (at [DONE] or on a throw) stops reading the body.
      for await (const event of sseEvents(response.body)) {
        handle(event);
        if (done) break;
      }
    } catch (error) {
      if (signal.aborted) throw aborted(error);
      if (error instanceof AgentError) throw error;
      throw new AgentError('agent_stream', `agent stream failed: ${describe(error)}`, null, {
        cause: error,
      });
    }

    if (signal.aborted) throw aborted(signal.reason);
    if (!done) throw new AgentError('agent_stream', 'agent stream ended without [DONE]');
    if (content.trim().length === 0 && toolEvents.length === 0) {
      throw new AgentError('agent_empty', 'agent finished without any text or tool events');
    }
    return { content, toolEvents, model };
  }
}

/** A short description of a thrown value, including a fetch error's cause. */
export function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
