/**
 * The model behind the crash campaign's `--agent openai` epochs: the scripted
 * loopback server of test/support/fake-openai.ts, answering slowly (a chunk
 * every few ms) so that kills land while it streams. It plays the offline
 * agent's part: `bg <cmd>` becomes a `start_background_job` tool call, a
 * follow-up trigger gets a continuation, anything else an echo. It lives in
 * the test process and so outlives every kill of `baton serve`.
 */

import { TRIGGER_PREFIX } from '../../../src/runtime/agents/trigger.js';
import {
  lastUserContent,
  startFakeOpenAI,
  toolCall,
  type FakeCompletion,
  type FakeOpenAI,
  type RecordedRequest,
} from '../../support/fake-openai.js';

export type AgentCallKind = 'followUp' | 'live';

export interface CrashAgent {
  fake: FakeOpenAI;
  /** Called as each request arrives, with how long its reply will stream (ms). */
  onRequest: ((request: RecordedRequest, kind: AgentCallKind, streamMs: number) => void) | null;
  close(): Promise<void>;
}

const CHUNK = 6;
const DELAY_MS = 10;

/** Job ids a follow-up trigger names. */
export function triggerJobIds(text: string): string[] {
  return [...text.matchAll(/\[Background job (\S+) finished\]/g)].map((m) => m[1] ?? '');
}

function slow(text: string): { reply: FakeCompletion; streamMs: number } {
  const frames = Math.ceil(text.length / CHUNK) + 2;
  return { reply: { text, chunkSize: CHUNK, delayMs: DELAY_MS }, streamMs: frames * DELAY_MS };
}

export async function startCrashAgent(): Promise<CrashAgent> {
  const agent: CrashAgent = {
    fake: undefined as unknown as FakeOpenAI,
    onRequest: null,
    close: () => agent.fake.close(),
  };
  agent.fake = await startFakeOpenAI((request) => {
    const messages = request.body.messages;
    const last = messages[messages.length - 1];
    const said = lastUserContent(request);
    let kind: AgentCallKind = 'live';
    let answer: { reply: FakeCompletion; streamMs: number };
    if (last?.role === 'tool') {
      answer = slow('Started it; I will continue when it finishes.');
    } else if (said.startsWith(TRIGGER_PREFIX)) {
      kind = 'followUp';
      answer = slow(`Continuing after ${triggerJobIds(said).join(', ')}: all looks fine.`);
    } else if (said.startsWith('bg ')) {
      const command = said.slice(3).trim();
      answer = {
        reply: { toolCalls: [toolCall('start_background_job', { command })] },
        streamMs: 0,
      };
    } else {
      answer = slow(`Echo: ${said.slice(0, 60)}`);
    }
    agent.onRequest?.(request, kind, answer.streamMs);
    return answer.reply;
  });
  return agent;
}
