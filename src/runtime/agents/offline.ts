/**
 * A small deterministic agent that needs no model: for demos, first runs and
 * tests of everything around the agent. It answers a follow-up trigger from
 * the job result in it, starts a background job for `bg <command>`, and
 * echoes anything else.
 */

import { AgentError } from './agent.js';
import type { Agent, AgentResult, AgentRunInput, ToolEvent } from './agent.js';
import {
  COMMAND_PREFIX,
  EXTERNAL_PREFIX,
  OUTPUT_CLOSE,
  OUTPUT_OPEN,
  STATUS_PREFIX,
  TRIGGER_PREFIX,
} from './trigger.js';

/** One job block read back from a follow-up trigger. */
export interface ParsedTriggerJob {
  jobId: string;
  /** The status phrase, e.g. `finished with exit code 0`; `null` if absent. */
  status: string | null;
  command: string | null;
  /** The output lines between the frame markers. */
  outputLines: string[];
}

const HEADER = /^\[Background job (.+) finished\]$/;
const QUOTE_MAX = 200;
const ECHO_MAX = 500;

/**
 * Reads the job blocks of a trigger built by `buildFollowUpTrigger`. Lines
 * inside an output frame are never taken as headers, so job output cannot
 * forge a job block. Unknown lines are ignored, which keeps this tolerant of
 * small changes in the trigger's wording.
 */
export function parseFollowUpTrigger(text: string): ParsedTriggerJob[] {
  const jobs: ParsedTriggerJob[] = [];
  let current: ParsedTriggerJob | null = null;
  let inFrame = false;
  for (const rawLine of text.split(/\r?\n/)) {
    if (inFrame) {
      if (rawLine === OUTPUT_CLOSE) inFrame = false;
      else current?.outputLines.push(rawLine);
      continue;
    }
    const line = rawLine.trim();
    const header = HEADER.exec(line);
    if (header !== null) {
      current = { jobId: header[1] ?? '?', status: null, command: null, outputLines: [] };
      jobs.push(current);
    } else if (current === null) {
      continue;
    } else if (line === OUTPUT_OPEN) {
      inFrame = true;
    } else if (line.startsWith(STATUS_PREFIX)) {
      current.status = line.slice(STATUS_PREFIX.length).trim();
    } else if (line.startsWith(COMMAND_PREFIX)) {
      current.command = line.slice(COMMAND_PREFIX.length).trim();
    } else if (line.startsWith(EXTERNAL_PREFIX)) {
      current.command = line.slice(EXTERNAL_PREFIX.length).trim();
    }
  }
  return jobs;
}

function lastOutputLine(lines: string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const line = (lines[i] ?? '').trim();
    // The cap marker of capResult is ours, not the job's last line.
    if (line.length > 0 && !/^\[… \d+ characters omitted …\]$/.test(line)) return line;
  }
  return null;
}

function quote(line: string): string {
  const short = line.length > QUOTE_MAX ? `${line.slice(0, QUOTE_MAX - 1)}…` : line;
  return `"${short}"`;
}

function isSuccess(status: string | null): boolean {
  return status === 'finished with exit code 0' || status === 'finished successfully';
}

function describeJob(job: ParsedTriggerJob): string {
  const status = job.status ?? 'finished';
  const last = lastOutputLine(job.outputLines);
  const tail = last === null ? 'It printed no output.' : `Last output line: ${quote(last)}.`;
  return `Background job ${job.jobId} ${status}. ${tail}`;
}

/** The offline answer to a follow-up trigger. */
export function answerFollowUp(trigger: string): string {
  const jobs = parseFollowUpTrigger(trigger);
  if (jobs.length === 0) return 'A background job finished, but I could not read its result.';
  const allOk = jobs.every((job) => isSuccess(job.status));
  const closing = allOk ? 'Nothing else to do.' : 'It did not succeed; have a look at its output.';
  const body = jobs.map(describeJob).join(' ');
  if (jobs.length === 1) return `${body} ${closing}`;
  const pluralClosing = allOk
    ? 'Nothing else to do.'
    : 'Not all of them succeeded; have a look at their output.';
  return `${jobs.length} background jobs finished. ${body} ${pluralClosing}`;
}

/** Splits an answer into a few chunks at word boundaries, so it streams like a model's. */
function chunks(text: string, count = 3): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const out: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + size);
    const space = text.indexOf(' ', end);
    if (end < text.length && space !== -1 && space - end < 20) end = space + 1;
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new AgentError('agent_aborted', 'the offline agent run was aborted');
}

/** Yields to the event loop so that an abort can land between chunks. */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The `offline` agent: kind `offline`, model `baton-offline`. Deterministic:
 * the same messages give the same answer.
 */
export class OfflineAgent implements Agent {
  readonly kind = 'offline';
  readonly model = 'baton-offline';

  async run(input: AgentRunInput): Promise<AgentResult> {
    const { signal } = input;
    checkAborted(signal);
    input.onStep?.(1);
    const lastUser = [...input.messages].reverse().find((m) => m.role === 'user');
    const text = lastUser?.content ?? '';
    const toolEvents: ToolEvent[] = [];
    let answer: string;

    if (text.startsWith(TRIGGER_PREFIX)) {
      answer = answerFollowUp(text);
    } else if (text.startsWith('bg ') && text.slice(3).trim().length > 0) {
      const command = text.slice(3).trim();
      const { jobId } = await input.tools.startBackgroundJob(command, 'offline_1');
      checkAborted(signal);
      answer = `Started background job ${jobId} for \`${command}\`. I will continue when it finishes.`;
      const event: ToolEvent = {
        round: 1,
        tool: 'start_background_job',
        command,
        output: answer,
        exitCode: null,
      };
      toolEvents.push(event);
      input.onTool?.(event);
    } else if (text.trim().length === 0) {
      answer = 'You said nothing. Send `bg <command>` to start a background job.';
    } else {
      const said = text.trim();
      answer = `You said: ${said.length > ECHO_MAX ? `${said.slice(0, ECHO_MAX - 1)}…` : said}`;
    }

    let content = '';
    for (const piece of chunks(answer)) {
      await tick();
      checkAborted(signal);
      content += piece;
      input.onDelta?.(piece);
    }
    return { content, toolEvents, model: this.model };
  }
}
