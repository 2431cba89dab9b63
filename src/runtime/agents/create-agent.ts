/**
 * Picks and builds the agent a Baton process runs with (SPEC §4, `--agent`).
 */

import type { Agent } from './agent.js';
import { OfflineAgent } from './offline.js';
import { OpenAIAgent } from './openai.js';
import { SseAgent } from './sse.js';

/** The model the `openai` agent asks for when none is given. */
export const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini';

/** The agent kinds `--agent` accepts. */
export type AgentKind = 'openai' | 'sse' | 'offline';

/** Options of {@link createAgent}, as read from the CLI and the environment. */
export interface CreateAgentOptions {
  kind?: AgentKind;
  /** `openai`: the API base URL (e.g. `http://127.0.0.1:1234/v1`); `sse`: the endpoint. */
  url?: string;
  model?: string;
  /** `openai`: falls back to `OPENAI_API_KEY`; `sse`: sent as a bearer token when given. */
  apiKey?: string;
}

/**
 * Builds the agent:
 * - no kind and no url: `offline` (the caller should say so at start);
 * - no kind but a url: `openai`;
 * - `openai` / `sse` need a url and throw a clear Error without one.
 */
export function createAgent(opts: CreateAgentOptions): Agent {
  const url = opts.url?.trim() ? opts.url.trim() : undefined;
  const kind: AgentKind = opts.kind ?? (url !== undefined ? 'openai' : 'offline');
  switch (kind) {
    case 'offline':
      return new OfflineAgent();
    case 'openai': {
      if (url === undefined) {
        throw new Error(
          'the openai agent needs --agent-url (BATON_AGENT_URL): the base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:1234/v1',
        );
      }
      const apiKey = opts.apiKey ?? process.env['OPENAI_API_KEY'];
      return new OpenAIAgent({
        baseURL: url,
        model: opts.model ?? DEFAULT_OPENAI_MODEL,
        ...(apiKey !== undefined ? { apiKey } : {}),
      });
    }
    case 'sse': {
      if (url === undefined) {
        throw new Error(
          'the sse agent needs --agent-url (BATON_AGENT_URL): the URL Baton POSTs each run to',
        );
      }
      // An explicit key is sent as a bearer token; OPENAI_API_KEY is not
      // handed to a backend that is not an OpenAI API.
      return new SseAgent({
        url,
        ...(opts.model !== undefined ? { model: opts.model } : {}),
        ...(opts.apiKey !== undefined
          ? { headers: { authorization: `Bearer ${opts.apiKey}` } }
          : {}),
      });
    }
    default: {
      const unknownKind: never = kind;
      throw new Error(`unknown agent kind: ${String(unknownKind)} (use openai, sse or offline)`);
    }
  }
}
