/**
 * The `openai` agent: any OpenAI-compatible `/v1/chat/completions` endpoint,
 * streamed, with two tools (`run_command`, `start_background_job`) and at
 * most 12 rounds a run.
 *
 * Retries are not ours: the client is made with `maxRetries: 0` and every
 * failure becomes an {@link AgentError} for the job machine to back off on.
 */

import OpenAI from 'openai';
import type {
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { AgentError } from './agent.js';
import type {
  Agent,
  AgentMessage,
  AgentResult,
  AgentRunInput,
  AgentTools,
  JournalEntry,
  ToolEvent,
} from './agent.js';
import { createHttpFetch, type HttpFetch } from './http-fetch.js';
import { toAgentError } from './openai-errors.js';
import { sseEvents } from './sse-events.js';
import { clip, describe } from './sse.js';

/** The hard cap on model rounds in one run (SPEC §4). */
export const MAX_ROUNDS = 12;

/**
 * The client-side timeout we give the SDK: the largest a Node timer takes.
 * The SDK insists on one (10 minutes by default, before headers only); the
 * run's deadline belongs to the caller's signal, so this one must never fire.
 */
const NO_TIMEOUT_MS = 2_147_483_647;

/** The tools offered to the model. */
export const OPENAI_TOOLS: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'run_command',
      description:
        'Runs a short shell command to completion and returns its output and exit code. ' +
        'For anything that takes long (installs, test suites, transcriptions), use start_background_job.',
      parameters: {
        type: 'object',
        properties: { command: { type: 'string', description: 'The shell command to run.' } },
        required: ['command'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'start_background_job',
      description:
        'Starts a long-running shell command as a background job and returns at once with its id. ' +
        'When the job finishes you are re-invoked automatically with its result, so do not wait, ' +
        'sleep or poll for it: end your turn after starting it.',
      parameters: {
        type: 'object',
        properties: {
          command: { type: 'string', description: 'The shell command to run in the background.' },
        },
        required: ['command'],
        additionalProperties: false,
      },
    },
  },
];

/** The tool result the model gets after `start_background_job`. */
export function backgroundJobStartedText(jobId: string, command: string): string {
  return (
    `Background job ${jobId} started for \`${command}\`. ` +
    'You will be re-invoked automatically with its result when it finishes. ' +
    'Do not wait, sleep or poll for it: tell the user what you started and end your turn now.'
  );
}

/** The tool result the model gets after `run_command`. */
export function commandResultText(exitCode: number | null, output: string): string {
  const status = exitCode === null ? 'no exit code (killed or timed out)' : `exit code ${exitCode}`;
  const body = output.trim().length === 0 ? '(no output)' : output;
  return `Command finished with ${status}.\nOutput:\n${body}`;
}

/** Options of {@link OpenAIAgent}. */
export interface OpenAIAgentOptions {
  /** The API base URL, ending in `/v1` (e.g. `http://127.0.0.1:1234/v1`). */
  baseURL: string;
  /** Bearer key; local servers often need none (a placeholder is sent then). */
  apiKey?: string;
  model: string;
  /** A fetch implementation (defaults to a node:http one with kept-alive connections). */
  fetch?: typeof fetch;
}

/** A tool call being assembled from streamed pieces. */
interface PendingToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What one streamed round produced. */
interface RoundResult {
  text: string;
  toolCalls: PendingToolCall[];
  model: string | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toParam(message: AgentMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'system':
      return { role: 'system', content: message.content };
    case 'user':
      return { role: 'user', content: message.content };
    case 'assistant':
      return { role: 'assistant', content: message.content };
  }
}

/**
 * An agent on an OpenAI-compatible chat completions endpoint. One client per
 * agent; runs may overlap (each keeps its own state).
 */
export class OpenAIAgent implements Agent {
  readonly kind = 'openai';
  readonly model: string;
  readonly #client: OpenAI;
  readonly #http: HttpFetch | null;

  constructor(opts: OpenAIAgentOptions) {
    this.model = opts.model;
    this.#http = opts.fetch ? null : createHttpFetch();
    this.#client = new OpenAI({
      baseURL: opts.baseURL,
      // The SDK refuses to start without a key; local servers need none.
      apiKey: opts.apiKey ?? process.env['OPENAI_API_KEY'] ?? 'baton-no-key',
      maxRetries: 0,
      timeout: NO_TIMEOUT_MS,
      fetch: opts.fetch ?? this.#http?.fetch,
      // Failures are reported as AgentErrors; OPENAI_LOG still turns the
      // SDK's own logging on.
      logLevel: process.env['OPENAI_LOG'] ? undefined : 'off',
    });
  }

  /** Closes the kept-alive connections to the model server. */
  close(): void {
    this.#http?.close();
  }

  async run(input: AgentRunInput): Promise<AgentResult> {
    const { signal } = input;
    if (signal.aborted)
      throw new AgentError('agent_aborted', 'the agent run was aborted', null, {
        cause: signal.reason,
      });
    const requested = Number.isFinite(input.maxRounds) ? Math.floor(input.maxRounds) : MAX_ROUNDS;
    const maxRounds = Math.min(MAX_ROUNDS, Math.max(1, requested));
    const messages: ChatCompletionMessageParam[] = input.messages.map(toParam);
    const toolEvents: ToolEvent[] = [];
    let content = '';
    let model = this.model;

    // Visible text of every round goes out through onDelta; the rounds are
    // joined by a blank line, sent as a delta too, so that the stored text is
    // exactly what was streamed.
    const emit = (delta: string): void => {
      content += delta;
      input.onDelta?.(delta);
    };
    const onEvent = (event: ToolEvent): void => {
      toolEvents.push(event);
      input.onTool?.(event);
    };
    const answerTool = async (
      call: PendingToolCall,
      round: number,
      reply: Promise<{ reply: string; event: ToolEvent | null }>,
    ) => {
      const done = await reply;
      if (done.event) onEvent(done.event);
      await input.record?.({ kind: 'tool', round, callId: call.id, ...done });
      messages.push({ role: 'tool', tool_call_id: call.id, content: done.reply });
    };

    // What an earlier attempt of this turn stored is given to the model as it
    // was, not asked for or run again.
    const resumed = replayJournal(input.journal ?? [], messages, emit, onEvent);
    if (resumed.model) model = resumed.model;
    const first = resumed.nextRound;

    try {
      // Calls of the last stored round whose results were not stored: a
      // background job is asked for again under the same call id (so it is
      // started at most once); a command is not run twice without the model knowing.
      for (const call of resumed.unanswered) {
        await answerTool(call, first - 1, resumeTool(call, first - 1, input.tools, signal));
      }
      for (let round = first; round <= maxRounds; round += 1) {
        input.onStep?.(round);
        const separator = content.length > 0 ? '\n\n' : '';
        let started = false;
        const result = await this.#streamRound(messages, signal, (delta) => {
          if (!started) {
            started = true;
            if (separator) emit(separator);
          }
          emit(delta);
        });
        if (result.model) model = result.model;
        if (result.toolCalls.length === 0) return finish(content, toolEvents, model);

        await input.record?.({
          kind: 'round',
          round,
          text: result.text,
          toolCalls: result.toolCalls,
          model: result.model,
        });
        messages.push(assistantWithTools(result.text, result.toolCalls));
        for (const call of result.toolCalls) {
          await answerTool(call, round, runTool(call, round, input.tools, signal));
        }
      }
    } catch (error) {
      throw toAgentError(error, signal);
    }

    // The model still wanted tools after the last round: keep what it did.
    if (content.trim().length > 0 || toolEvents.length > 0) return { content, toolEvents, model };
    throw new AgentError(
      'agent_rounds',
      `the model used all ${maxRounds} rounds without an answer`,
    );
  }

  /** Streams one completion; returns its text, its assembled tool calls and the reported model. */
  async #streamRound(
    messages: ChatCompletionMessageParam[],
    signal: AbortSignal,
    onText: (delta: string) => void,
  ): Promise<RoundResult> {
    // The SDK adds an abort listener to the signal it is given and never
    // removes it; a per-round child signal keeps the run's signal from
    // collecting one listener per round.
    const round = new AbortController();
    const forward = (): void => round.abort(signal.reason);
    signal.addEventListener('abort', forward, { once: true });
    try {
      return await this.#streamRoundWith(messages, signal, round.signal, onText);
    } finally {
      signal.removeEventListener('abort', forward);
    }
  }

  async #streamRoundWith(
    messages: ChatCompletionMessageParam[],
    signal: AbortSignal,
    roundSignal: AbortSignal,
    onText: (delta: string) => void,
  ): Promise<RoundResult> {
    // The SDK builds and sends the request and turns HTTP errors into its
    // errors; the stream is read here. Its own reader costs several times
    // more per request, and ends quietly when a body stops short of [DONE].
    const response = await this.#client.chat.completions
      .create(
        { model: this.model, messages, tools: OPENAI_TOOLS, stream: true },
        { signal: roundSignal },
      )
      .asResponse();
    if (response.body === null) throw new AgentError('agent_stream', 'the model sent no body');
    let text = '';
    let model: string | null = null;
    let finished = false;
    let sawDone = false;
    const calls: PendingToolCall[] = [];
    const byIndex = new Map<number, PendingToolCall>();

    // Read to the end even after [DONE], so the connection can be reused.
    for await (const event of sseEvents(response.body)) {
      if (sawDone) continue;
      if (event.data.startsWith('[DONE]')) {
        sawDone = true;
        continue;
      }
      // A frame that is not JSON throws a SyntaxError: a broken stream.
      // The chunk comes from a server we do not control: read it as unknown.
      const raw: unknown = JSON.parse(event.data);
      if (!isRecord(raw)) continue;
      if (event.event === 'error' || raw['error'] !== undefined) {
        throw new AgentError(
          'agent_error_frame',
          `the model stream carried an error: ${clip(errorText(raw['error'] ?? raw))}`,
        );
      }
      if (typeof raw['model'] === 'string' && raw['model'].length > 0) model = raw['model'];
      const choices = raw['choices'];
      if (!Array.isArray(choices)) continue;
      const choice: unknown = choices[0];
      if (!isRecord(choice)) continue;
      if (typeof choice['finish_reason'] === 'string') finished = true;
      const delta = choice['delta'];
      if (!isRecord(delta)) continue;
      // `reasoning_content` / `reasoning` deltas are the model's thinking:
      // never shown, never stored, so they are simply not read.
      const piece = delta['content'];
      if (typeof piece === 'string' && piece.length > 0) {
        text += piece;
        onText(piece);
      }
      const toolCalls = delta['tool_calls'];
      if (Array.isArray(toolCalls)) {
        for (const part of toolCalls) mergeToolCall(part, calls, byIndex);
      }
    }

    if (signal.aborted)
      throw new AgentError('agent_aborted', 'the agent run was aborted', null, {
        cause: signal.reason,
      });
    if (!finished && !sawDone) {
      throw new AgentError(
        'agent_stream',
        'the model stream ended before its end ([DONE] or a finish_reason)',
      );
    }
    calls.forEach((call, i) => {
      if (call.id.length === 0) call.id = `call_${i}`;
    });
    return { text, toolCalls: calls, model };
  }
}

/** The message of an error object a stream carried (`{ message }`, a string, or its JSON). */
function errorText(error: unknown): string {
  if (typeof error === 'string') return error;
  if (isRecord(error) && typeof error['message'] === 'string') return error['message'];
  return JSON.stringify(error) ?? String(error);
}

/**
 * Adds one streamed tool-call piece. Real servers send the id and name in
 * the first piece of a call and its arguments in later pieces, all under the
 * same `index`; some send whole calls without an index, in order.
 */
function mergeToolCall(
  part: unknown,
  calls: PendingToolCall[],
  byIndex: Map<number, PendingToolCall>,
): void {
  if (!isRecord(part)) return;
  const index = typeof part['index'] === 'number' ? part['index'] : null;
  const id = typeof part['id'] === 'string' ? part['id'] : '';
  const fn = isRecord(part['function']) ? part['function'] : {};
  const name = typeof fn['name'] === 'string' ? fn['name'] : '';
  const args = typeof fn['arguments'] === 'string' ? fn['arguments'] : '';

  let call = index !== null ? byIndex.get(index) : undefined;
  if (call === undefined && index === null && id.length === 0) call = calls[calls.length - 1];
  if (call === undefined) {
    call = { id, name, arguments: '' };
    calls.push(call);
    if (index !== null) byIndex.set(index, call);
  } else {
    if (id.length > 0 && call.id.length === 0) call.id = id;
    if (name.length > 0 && call.name.length === 0) call.name = name;
  }
  call.arguments += args;
}

/** Reads the `command` argument of a tool call, or says what is wrong with it. */
function commandArgument(call: PendingToolCall): { command: string } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(call.arguments.trim().length > 0 ? call.arguments : '{}');
  } catch {
    return {
      problem: `the arguments of ${call.name} are not valid JSON: ${clip(call.arguments, 200)}`,
    };
  }
  if (
    !isRecord(parsed) ||
    typeof parsed['command'] !== 'string' ||
    parsed['command'].trim().length === 0
  ) {
    return { problem: `${call.name} needs a non-empty string argument "command"` };
  }
  return { command: parsed['command'] };
}

/**
 * Runs one tool call and returns the text told to the model. A real tool
 * run (even one that fails) is recorded as a ToolEvent; a call the model got
 * wrong (unknown tool, bad arguments) is only answered, so the model can fix it.
 */
async function runTool(
  call: PendingToolCall,
  round: number,
  tools: AgentTools,
  signal: AbortSignal,
): Promise<{ reply: string; event: ToolEvent | null }> {
  if (call.name !== 'run_command' && call.name !== 'start_background_job') {
    return {
      reply: `Error: unknown tool "${call.name}". The tools are run_command and start_background_job.`,
      event: null,
    };
  }
  const argument = commandArgument(call);
  if ('problem' in argument) return { reply: `Error: ${argument.problem}.`, event: null };
  const { command } = argument;

  if (call.name === 'run_command') {
    let output: string;
    let exitCode: number | null;
    try {
      ({ output, exitCode } = await tools.runCommand(command, signal));
    } catch (error) {
      if (signal.aborted) throw error;
      output = `Error: the command could not be run: ${describe(error)}`;
      exitCode = null;
    }
    if (signal.aborted) throw new AgentError('agent_aborted', 'the agent run was aborted');
    return {
      reply: commandResultText(exitCode, output),
      event: { round, tool: call.name, command, output, exitCode },
    };
  }

  let reply: string;
  try {
    const { jobId } = await tools.startBackgroundJob(command, `${round}/${call.id}`);
    reply = backgroundJobStartedText(jobId, command);
  } catch (error) {
    reply = `Error: the background job could not be started: ${describe(error)}`;
  }
  if (signal.aborted) throw new AgentError('agent_aborted', 'the agent run was aborted');
  return { reply, event: { round, tool: call.name, command, output: reply, exitCode: null } };
}

/** What the model is told of a command whose attempt ended before its result was stored. */
export const INTERRUPTED_COMMAND =
  'Error: this command was interrupted before its result was stored (the attempt failed or the ' +
  'service restarted). It was not run again: check its effect before running it again.';

/**
 * A tool call of a stored round whose result was not stored. A background job
 * is asked for again (under the same call id it is the job already started,
 * if it was); a command may have run, so it is reported as interrupted.
 */
async function resumeTool(
  call: PendingToolCall,
  round: number,
  tools: AgentTools,
  signal: AbortSignal,
): Promise<{ reply: string; event: ToolEvent | null }> {
  if (call.name !== 'run_command') return runTool(call, round, tools, signal);
  const argument = commandArgument(call);
  const command = 'problem' in argument ? call.arguments : argument.command;
  return {
    reply: INTERRUPTED_COMMAND,
    event: { round, tool: call.name, command, output: INTERRUPTED_COMMAND, exitCode: null },
  };
}

function assistantWithTools(text: string, calls: PendingToolCall[]): ChatCompletionMessageParam {
  return {
    role: 'assistant',
    content: text.length > 0 ? text : null,
    tool_calls: calls.map((call) => ({
      id: call.id,
      type: 'function' as const,
      function: { name: call.name, arguments: call.arguments },
    })),
  };
}

/**
 * Puts an earlier attempt's stored steps into the conversation: each round's
 * text (shown again, as it is part of the answer), its tool calls and the
 * results stored for them. Returns the round to go on with and the calls of
 * the last round that have no stored result.
 */
function replayJournal(
  journal: JournalEntry[],
  messages: ChatCompletionMessageParam[],
  emit: (delta: string) => void,
  onEvent: (event: ToolEvent) => void,
): { nextRound: number; unanswered: PendingToolCall[]; model: string | null } {
  let nextRound = 1;
  let model: string | null = null;
  let unanswered: PendingToolCall[] = [];
  let shown = false;
  for (const entry of journal) {
    if (entry.kind === 'round') {
      if (entry.text.length > 0) {
        emit(shown ? `\n\n${entry.text}` : entry.text);
        shown = true;
      }
      messages.push(assistantWithTools(entry.text, entry.toolCalls));
      unanswered = [...entry.toolCalls];
      nextRound = entry.round + 1;
      if (entry.model) model = entry.model;
    } else {
      messages.push({ role: 'tool', tool_call_id: entry.callId, content: entry.reply });
      unanswered = unanswered.filter((call) => call.id !== entry.callId);
      if (entry.event) onEvent(entry.event);
    }
  }
  return { nextRound, unanswered, model };
}

function finish(content: string, toolEvents: ToolEvent[], model: string): AgentResult {
  if (content.trim().length === 0 && toolEvents.length === 0) {
    throw new AgentError('agent_empty', 'the model answered with no text and no tool calls');
  }
  return { content, toolEvents, model };
}

export { toAgentError } from './openai-errors.js';
