/**
 * The Agent contract: one run of an agent in a session, either a live turn
 * (answering a user message) or a follow-up (continuing after a job).
 *
 * A run either resolves with a non-empty result or rejects with an
 * {@link AgentError}. Retrying is never the agent's business: the job machine
 * owns attempts and backoff.
 */

export interface AgentMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ToolEvent {
  round: number;
  tool: string;
  command: string;
  output: string;
  exitCode: number | null;
}

/** Tools the runtime lends to agents that call tools themselves (the `openai` agent). */
export interface AgentTools {
  /** Runs a short command to completion and returns its (capped) output. */
  runCommand(
    command: string,
    signal: AbortSignal,
  ): Promise<{ output: string; exitCode: number | null }>;
  /** Starts a background job in the run's session; the agent is re-invoked when it ends. */
  startBackgroundJob(command: string): Promise<{ jobId: string }>;
}

export interface AgentRunInput {
  sessionId: string;
  messages: AgentMessage[];
  /** At most this many model rounds (tool loops) in one run. */
  maxRounds: number;
  /** Aborted on the attempt's deadline, on cancel and on shutdown. */
  signal: AbortSignal;
  tools: AgentTools;
  /** Visible text as it streams (reasoning deltas are not passed here). */
  onDelta?: (delta: string) => void;
  onStep?: (round: number) => void;
  onTool?: (event: ToolEvent) => void;
}

export interface AgentResult {
  /** The assistant's visible text. */
  content: string;
  toolEvents: ToolEvent[];
  model: string;
}

export interface Agent {
  /** `openai`, `sse` or `offline`. */
  readonly kind: string;
  readonly model: string;
  run(input: AgentRunInput): Promise<AgentResult>;
  /** Lets go of what the agent holds open (kept-alive connections), at shutdown. */
  close?(): void;
}

export type AgentErrorCode =
  | 'agent_http'
  | 'agent_rate_limited'
  | 'agent_stream'
  | 'agent_error_frame'
  | 'agent_empty'
  | 'agent_aborted'
  | 'agent_rounds';

/** A failed attempt. `retryAfterMs` carries a server's `Retry-After`, when it gave one. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly retryAfterMs: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
