import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SseAgent, parseRetryAfter } from '../../src/runtime/agents/sse.js';
import { sseFrame, startFakeSseAgent } from '../support/fake-sse-agent.js';
import type { FakeSseAgent } from '../support/fake-sse-agent.js';
import { agentError, runInput } from './helpers.js';

let fake: FakeSseAgent;
let agent: SseAgent;

beforeAll(async () => {
  fake = await startFakeSseAgent();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.setScript([]);
  agent = new SseAgent({
    url: fake.url,
    model: 'backend-model',
    headers: { authorization: 'Bearer b-token' },
  });
});

describe('SseAgent: frames', () => {
  it('POSTs sessionId, messages and maxRounds with the configured headers', async () => {
    fake.setScript(['hello']);
    const { input } = runInput('please do it', { maxRounds: 7 });
    await agent.run(input);
    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.headers['content-type']).toContain('application/json');
    expect(request?.headers['authorization']).toBe('Bearer b-token');
    expect(request?.body).toEqual({
      sessionId: 's_test',
      messages: [
        { role: 'system', content: 'You are a test agent.' },
        { role: 'user', content: 'please do it' },
      ],
      maxRounds: 7,
    });
  });

  it('streams deltas, hides thinking deltas, and records steps and tool outputs', async () => {
    fake.setScript([
      {
        frames: [
          sseFrame.step(1),
          sseFrame.thinking('SECRET plan'),
          sseFrame.delta('Running '),
          sseFrame.tool({ tool: 'run_command', command: 'ls', output: 'a\nb', exitCode: 0 }),
          sseFrame.step(2),
          sseFrame.tool({
            tool: 'start_background_job',
            command: 'make',
            output: 'started j_9',
            exitCode: null,
          }),
          sseFrame.thinking('SECRET more'),
          sseFrame.delta('the build.'),
        ],
      },
    ]);
    const { input, seen } = runInput('build');
    const result = await agent.run(input);
    expect(result.content).toBe('Running the build.');
    expect(seen.deltas).toEqual(['Running ', 'the build.']);
    expect(seen.steps).toEqual([1, 2]);
    expect(result.toolEvents).toEqual([
      { round: 1, tool: 'run_command', command: 'ls', output: 'a\nb', exitCode: 0 },
      {
        round: 2,
        tool: 'start_background_job',
        command: 'make',
        output: 'started j_9',
        exitCode: null,
      },
    ]);
    expect(seen.tools).toEqual(result.toolEvents);
    expect(JSON.stringify(result)).not.toContain('SECRET');
    expect(result.model).toBe('backend-model');
  });

  it('gives a tool output before any agent_step round 1', async () => {
    fake.setScript([
      { frames: [sseFrame.tool({ tool: 'run_command', command: 'x', output: '', exitCode: 3 })] },
    ]);
    const result = await agent.run(runInput('x').input);
    expect(result.toolEvents).toEqual([
      { round: 1, tool: 'run_command', command: 'x', output: '', exitCode: 3 },
    ]);
  });

  it('reports the model a frame names', async () => {
    fake.setScript([
      { frames: [sseFrame.raw(JSON.stringify({ delta: 'hi', model: 'claude-x' }))] },
    ]);
    expect((await agent.run(runInput('x').input)).model).toBe('claude-x');
  });

  it('reads frames sent with pauses and a data field split over several lines', async () => {
    fake.setScript([
      {
        frames: [
          sseFrame.delta('one '),
          sseFrame.raw('{"delta":\n"two"}'),
          sseFrame.delta(' three'),
        ],
        delayMs: 5,
      },
    ]);
    const result = await agent.run(runInput('x').input);
    // A multi-line data field is joined with \n, which JSON accepts as whitespace.
    expect(result.content).toBe('one two three');
  });
});

describe('SseAgent: failures', () => {
  it('maps an `event: error` frame to agent_error_frame with its message', async () => {
    fake.setScript([{ frames: [sseFrame.delta('partial'), sseFrame.error('backend exploded')] }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_error_frame');
    expect(error.message).toContain('backend exploded');
  });

  it('maps a data frame of type error to agent_error_frame', async () => {
    fake.setScript([
      { frames: [sseFrame.raw(JSON.stringify({ type: 'error', message: 'quota' }))] },
    ]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_error_frame');
    expect(error.message).toContain('quota');
  });

  it('maps a body that ends without [DONE] to agent_stream', async () => {
    fake.setScript([{ frames: [sseFrame.delta('almost done')], done: false }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_stream');
    expect(error.message).toContain('[DONE]');
  });

  it('maps a body cut by a reset to agent_stream', async () => {
    fake.setScript([{ fault: 'cut', frames: [sseFrame.delta('almost')] }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps a reset connection to agent_stream', async () => {
    fake.setScript([{ fault: 'reset' }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps malformed JSON in a data frame to agent_stream', async () => {
    fake.setScript([{ frames: [sseFrame.delta('ok'), sseFrame.raw('{"delta": "unterminated')] }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps HTTP 500 to agent_http', async () => {
    fake.setScript([{ fault: 'status', status: 500, body: 'internal trouble' }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_http');
    expect(error.message).toContain('internal trouble');
  });

  it('maps HTTP 429 to agent_rate_limited with Retry-After', async () => {
    fake.setScript([{ fault: 'status', status: 429, retryAfter: 12 }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_rate_limited');
    expect(error.retryAfterMs).toBe(12_000);
  });

  it('treats a stream of only [DONE] as agent_empty', async () => {
    fake.setScript([{ frames: [] }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_empty');
  });

  it('treats a stream of only thinking and steps as agent_empty', async () => {
    fake.setScript([{ frames: [sseFrame.step(1), sseFrame.thinking('hmm')] }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_empty');
  });

  it('ends promptly with agent_aborted when aborted mid-stream', async () => {
    fake.setScript([{ fault: 'hang', frames: [sseFrame.delta('working on it')] }]);
    const controller = new AbortController();
    const { input, seen } = runInput('x', { signal: controller.signal });
    input.onDelta = (delta) => {
      seen.deltas.push(delta);
      setTimeout(() => controller.abort(), 10);
    };
    // The stream hangs for ever: only the abort can end this run.
    const error = await agentError(agent.run(input));
    expect(error.code).toBe('agent_aborted');
    expect(seen.deltas).toEqual(['working on it']);
    await expect.poll(() => fake.requests[0]?.clientClosedAt ?? null).not.toBeNull();
  });

  it('ends promptly with agent_aborted when aborted before the headers', async () => {
    fake.setScript([{ fault: 'hang', beforeHeaders: true }]);
    const error = await agentError(
      agent.run(runInput('x', { signal: AbortSignal.timeout(100) }).input),
    );
    expect(error.code).toBe('agent_aborted');
  });

  it('fails with agent_aborted without a request when the signal is already aborted', async () => {
    const error = await agentError(agent.run(runInput('x', { signal: AbortSignal.abort() }).input));
    expect(error.code).toBe('agent_aborted');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('reads delay-seconds, whole or decimal', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 1.5 ', now)).toBe(1_500);
    expect(parseRetryAfter('0', now)).toBe(0);
  });

  it('reads an HTTP date relative to now, never negative', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
  });

  it('gives null for a missing or unreadable header', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter('', now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
  });
});
