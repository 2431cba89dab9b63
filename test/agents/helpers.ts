/**
 * Shared helpers of the agent tests: recording tools and a run-input builder.
 */

import { AgentError } from '../../src/runtime/agents/agent.js';
import type { AgentRunInput, AgentTools, ToolEvent } from '../../src/runtime/agents/agent.js';

/** Tools that record their calls and answer from fixed values. */
export interface RecordingTools {
  tools: AgentTools;
  commands: string[];
  backgroundCommands: string[];
  /** The call key of each background job asked for, in order. */
  backgroundKeys: string[];
}

export function recordingTools(
  opts: { output?: string; exitCode?: number | null; jobId?: string; failRun?: boolean } = {},
): RecordingTools {
  const commands: string[] = [];
  const backgroundCommands: string[] = [];
  const backgroundKeys: string[] = [];
  let jobs = 0;
  return {
    commands,
    backgroundCommands,
    backgroundKeys,
    tools: {
      async runCommand(command) {
        commands.push(command);
        if (opts.failRun === true) throw new Error('spawn failed');
        return {
          output: opts.output ?? `output of ${command}\nlast line`,
          exitCode: opts.exitCode ?? 0,
        };
      },
      async startBackgroundJob(command, callKey) {
        backgroundCommands.push(command);
        backgroundKeys.push(callKey);
        jobs += 1;
        return { jobId: opts.jobId ?? `j_test${jobs}` };
      },
    },
  };
}

/** What the callbacks of a run saw. */
export interface Seen {
  deltas: string[];
  steps: number[];
  tools: ToolEvent[];
}

/** A run input with recording callbacks. */
export function runInput(
  content: string,
  extra: Partial<AgentRunInput> = {},
): { input: AgentRunInput; seen: Seen; tools: RecordingTools } {
  const seen: Seen = { deltas: [], steps: [], tools: [] };
  const tools = recordingTools();
  const input: AgentRunInput = {
    sessionId: 's_test',
    messages: [
      { role: 'system', content: 'You are a test agent.' },
      { role: 'user', content },
    ],
    maxRounds: 12,
    signal: new AbortController().signal,
    tools: tools.tools,
    onDelta: (delta) => seen.deltas.push(delta),
    onStep: (round) => seen.steps.push(round),
    onTool: (event) => seen.tools.push(event),
    ...extra,
  };
  return { input, seen, tools };
}

/** Awaits a rejection and returns it as an AgentError (fails the test if it is anything else). */
export async function agentError(promise: Promise<unknown>): Promise<AgentError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AgentError) return error;
    throw new Error(`expected an AgentError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected the run to fail, it succeeded');
}
