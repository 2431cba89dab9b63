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
  /**
   * Starts a background job in the run's session; the agent is re-invoked
   * when it ends. `callKey` names the tool call within the turn (its round
   * and id: some servers number calls afresh each round): the same call asked
   * again (a retried or recovered turn) answers with the job it started the
   * first time instead of starting another.
   */
  startBackgroundJob(command: string, callKey: string): Promise<{ jobId: string }>;
}

/** A tool call as the model asked for it. */
export interface JournalToolCall {
  id: string;
  name: string;
  arguments: string;
}

/**
 * The steps of a turn that a retried or recovered attempt must not do again:
 * a model round that asked for tools (stored before they run), and each tool
 * call's result (stored before the next step). A round without tool calls is
 * the answer, stored with the turn's end instead.
 */
export type JournalEntry =
  | {
      kind: 'round';
      round: number;
      text: string;
      toolCalls: JournalToolCall[];
      model: string | null;
    }
  | { kind: 'tool'; round: number; callId: string; reply: string; event: ToolEvent | null };

/** Entries as read back from the store, checked for the fields the agent relies on. */
export function journalEntries(stored: unknown[]): JournalEntry[] {
  return stored.map((value, step) => {
    const entry = value as Partial<JournalEntry> | null;
    const ok =
      entry !== null &&
      typeof entry === 'object' &&
      typeof entry.round === 'number' &&
      ((entry.kind === 'round' && Array.isArray(entry.toolCalls)) ||
        (entry.kind === 'tool' && typeof entry.callId === 'string'));
    if (!ok) throw new Error(`turn journal step ${step} is not a round or a tool result`);
    return entry as JournalEntry;
  });
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
  /** Steps an earlier attempt of this turn stored: the run goes on after them. */
  journal?: JournalEntry[];
  /**
   * Stores a step before the next one runs; a step that cannot be stored
   * fails the attempt. Agents that call no tools never call it.
   */
  record?: (entry: JournalEntry) => Promise<void>;
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
