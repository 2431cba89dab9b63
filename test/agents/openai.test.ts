import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getEventListeners } from 'node:events';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, toolCall, toolResults } from '../support/fake-openai.js';
import type { FakeOpenAI } from '../support/fake-openai.js';
import { agentError, recordingTools, runInput } from './helpers.js';

let fake: FakeOpenAI;
let agent: OpenAIAgent;

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.setScript([]);
  agent = new OpenAIAgent({ baseURL: fake.url, model: 'test-model', apiKey: 'sk-test' });
});

describe('OpenAIAgent: streaming text', () => {
  it('streams visible text through onDelta and returns it with the reported model', async () => {
    fake.setScript([
      { text: 'Hello there, this is streamed.', chunkSize: 5, model: 'served-model-1' },
    ]);
    const { input, seen } = runInput('hi');
    const result = await agent.run(input);
    expect(result.content).toBe('Hello there, this is streamed.');
    expect(seen.deltas.length).toBeGreaterThan(3);
    expect(seen.deltas.join('')).toBe(result.content);
    expect(result.model).toBe('served-model-1');
    expect(result.toolEvents).toEqual([]);
    expect(seen.steps).toEqual([1]);
  });

  it('sends a streamed request with the configured model, the messages, both tools and the key', async () => {
    fake.setScript(['ok']);
    const { input } = runInput('what is up');
    await agent.run(input);
    const [request] = fake.requests;
    expect(request?.stream).toBe(true);
    expect(request?.body.model).toBe('test-model');
    expect(request?.body.messages.map((m) => [m.role, m.content])).toEqual([
      ['system', 'You are a test agent.'],
      ['user', 'what is up'],
    ]);
    expect(request?.body.tools?.map((t) => t.function.name)).toEqual([
      'run_command',
      'start_background_job',
    ]);
    expect(request?.headers['authorization']).toBe('Bearer sk-test');
  });

  it('passes neither reasoning_content nor reasoning deltas to onDelta, nor stores them', async () => {
    for (const field of ['reasoning_content', 'reasoning'] as const) {
      fake.setScript([
        { reasoning: 'SECRET chain of thought', reasoningField: field, text: 'Visible answer.' },
      ]);
      const { input, seen } = runInput('think');
      const result = await agent.run(input);
      expect(result.content).toBe('Visible answer.');
      expect(seen.deltas.join('')).toBe('Visible answer.');
      expect(JSON.stringify(result)).not.toContain('SECRET');
    }
  });

  it('falls back to the configured model when the server reports none', async () => {
    fake.setScript([{ text: 'x', model: '' }]);
    const { input } = runInput('hi');
    expect((await agent.run(input)).model).toBe('test-model');
  });
});

describe('OpenAIAgent: tool loop', () => {
  it('runs run_command, records the event and feeds the result back to the model', async () => {
    fake.setScript([
      {
        text: 'Let me look.',
        toolCalls: [toolCall('run_command', { command: 'ls -la /tmp' }, 'call_ls')],
      },
      { text: 'There are two files.' },
    ]);
    const { input, seen, tools } = runInput('what is in /tmp?');
    const result = await agent.run(input);

    expect(tools.commands).toEqual(['ls -la /tmp']);
    const event = {
      round: 1,
      tool: 'run_command',
      command: 'ls -la /tmp',
      output: 'output of ls -la /tmp\nlast line',
      exitCode: 0,
    };
    expect(result.toolEvents).toEqual([event]);
    expect(seen.tools).toEqual([event]);
    expect(seen.steps).toEqual([1, 2]);
    expect(result.content).toBe('Let me look.\n\nThere are two files.');
    expect(seen.deltas.join('')).toBe(result.content);

    const second = fake.requests[1];
    expect(second).toBeDefined();
    if (second === undefined) return;
    const assistant = second.body.messages.find((m) => m.role === 'assistant');
    expect(assistant?.tool_calls?.[0]).toMatchObject({
      id: 'call_ls',
      type: 'function',
      function: { name: 'run_command', arguments: '{"command":"ls -la /tmp"}' },
    });
    const [reply] = toolResults(second);
    expect(reply?.toolCallId).toBe('call_ls');
    expect(reply?.content).toContain('exit code 0');
    expect(reply?.content).toContain('output of ls -la /tmp\nlast line');
  });

  it('starts a background job and tells the model it will be re-invoked and must not wait or poll', async () => {
    fake.setScript([
      { toolCalls: [toolCall('start_background_job', { command: 'sleep 600 && make' })] },
      { text: 'Started the build; I will report when it finishes.' },
    ]);
    const { input, seen, tools } = runInput('build it');
    const result = await agent.run(input);

    expect(tools.backgroundCommands).toEqual(['sleep 600 && make']);
    const told = toolResults(fake.requests[1] ?? fake.requests[0]!)[0]?.content ?? '';
    expect(told).toContain('j_test1');
    expect(told).toMatch(/started/i);
    expect(told).toMatch(/re-invoked automatically/);
    expect(told).toMatch(/do not wait, sleep or poll/i);
    expect(result.toolEvents).toEqual([
      {
        round: 1,
        tool: 'start_background_job',
        command: 'sleep 600 && make',
        output: told,
        exitCode: null,
      },
    ]);
    expect(seen.tools).toHaveLength(1);
    expect(result.content).toBe('Started the build; I will report when it finishes.');
  });

  it('assembles several tool calls streamed in pieces in one round and runs them in order', async () => {
    fake.setScript([
      {
        toolCalls: [
          toolCall('run_command', { command: 'echo one two three four five six' }),
          toolCall('start_background_job', { command: 'npm test -- --long-running-suite' }),
          toolCall('run_command', { command: 'pwd' }),
        ],
      },
      'All three done.',
    ]);
    const { input, tools } = runInput('go');
    const result = await agent.run(input);
    expect(tools.commands).toEqual(['echo one two three four five six', 'pwd']);
    expect(tools.backgroundCommands).toEqual(['npm test -- --long-running-suite']);
    expect(result.toolEvents.map((e) => [e.round, e.tool])).toEqual([
      [1, 'run_command'],
      [1, 'start_background_job'],
      [1, 'run_command'],
    ]);
    const replies = toolResults(fake.requests[1]!);
    expect(replies.map((r) => r.toolCallId)).toEqual(['call_0_0', 'call_0_1', 'call_0_2']);
  });

  it('answers a bad tool call with an error the model can fix, without recording a tool event', async () => {
    fake.setScript([
      { toolCalls: [toolCall('rm_rf', { command: 'x' }), toolCall('run_command', '{"command": ')] },
      'Sorry.',
    ]);
    const { input, tools } = runInput('go');
    const result = await agent.run(input);
    expect(tools.commands).toEqual([]);
    expect(result.toolEvents).toEqual([]);
    const replies = toolResults(fake.requests[1]!).map((r) => r.content);
    expect(replies[0]).toMatch(/unknown tool "rm_rf"/);
    expect(replies[1]).toMatch(/not valid JSON/);
  });

  it('records a failing command as a tool event with its error and no exit code', async () => {
    fake.setScript([{ toolCalls: [toolCall('run_command', { command: 'boom' })] }, 'It failed.']);
    const { input } = runInput('go', { tools: recordingTools({ failRun: true }).tools });
    const result = await agent.run(input);
    expect(result.toolEvents[0]).toMatchObject({
      tool: 'run_command',
      command: 'boom',
      exitCode: null,
    });
    expect(result.toolEvents[0]?.output).toContain('spawn failed');
  });

  it('stops after maxRounds and returns the tool events it has', async () => {
    fake.setScript([{ toolCalls: [toolCall('run_command', { command: 'again' })] }]);
    const { input, seen } = runInput('loop', { maxRounds: 3 });
    const result = await agent.run(input);
    expect(fake.requests).toHaveLength(3);
    expect(seen.steps).toEqual([1, 2, 3]);
    expect(result.toolEvents.map((e) => e.round)).toEqual([1, 2, 3]);
  });

  it('never runs more than 12 rounds, whatever maxRounds asks', async () => {
    fake.setScript([{ toolCalls: [toolCall('run_command', { command: 'again' })] }]);
    const { input } = runInput('loop', { maxRounds: 50 });
    const result = await agent.run(input);
    expect(fake.requests).toHaveLength(12);
    expect(result.toolEvents).toHaveLength(12);
  });

  it('leaves no abort listener behind on the run signal after many rounds', async () => {
    fake.setScript([{ toolCalls: [toolCall('run_command', { command: 'again' })] }]);
    const controller = new AbortController();
    await agent.run(runInput('loop', { maxRounds: 12, signal: controller.signal }).input);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('fails with agent_rounds when the rounds run out with neither text nor tool events', async () => {
    fake.setScript([{ toolCalls: [toolCall('no_such_tool', {})] }]);
    const { input } = runInput('loop', { maxRounds: 2 });
    const error = await agentError(agent.run(input));
    expect(error.code).toBe('agent_rounds');
    expect(fake.requests).toHaveLength(2);
  });
});

describe('OpenAIAgent: failures', () => {
  it('maps HTTP 500 to agent_http and does not retry', async () => {
    fake.setScript([{ fault: 'status', status: 500, message: 'kaputt' }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_http');
    expect(error.message).toContain('500');
    expect(error.retryAfterMs).toBeNull();
    expect(fake.requests).toHaveLength(1);
  });

  it('maps HTTP 400 to agent_http', async () => {
    fake.setScript([{ fault: 'status', status: 400 }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_http');
  });

  it('maps HTTP 429 to agent_rate_limited with Retry-After in seconds', async () => {
    fake.setScript([{ fault: 'status', status: 429, retryAfter: 7 }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_rate_limited');
    expect(error.retryAfterMs).toBe(7_000);
    expect(fake.requests).toHaveLength(1);
  });

  it('reads a Retry-After given as an HTTP date', async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    fake.setScript([{ fault: 'status', status: 429, retryAfter: at }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_rate_limited');
    expect(error.retryAfterMs).toBeGreaterThan(25_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('gives a 429 without Retry-After a null retryAfterMs', async () => {
    fake.setScript([{ fault: 'status', status: 429 }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_rate_limited');
    expect(error.retryAfterMs).toBeNull();
  });

  it('maps a reset connection to agent_stream', async () => {
    fake.setScript([{ fault: 'reset' }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps a stream cut by a reset in the middle to agent_stream', async () => {
    fake.setScript([
      { fault: 'cut', text: 'a long answer that will be cut somewhere', afterChunks: 3 },
    ]);
    const { input, seen } = runInput('x');
    const error = await agentError(agent.run(input));
    expect(error.code).toBe('agent_stream');
    expect(seen.deltas.length).toBeGreaterThan(0);
  });

  it('maps a stream that ends cleanly before its end to agent_stream', async () => {
    fake.setScript([
      { fault: 'cut', text: 'a long answer that will be cut somewhere', mode: 'end' },
    ]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps malformed SSE data to agent_stream', async () => {
    fake.setScript([{ fault: 'malformed' }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_stream');
  });

  it('maps an error object inside the stream to agent_error_frame', async () => {
    fake.setScript([{ fault: 'errorFrame', message: 'model overloaded' }]);
    const error = await agentError(agent.run(runInput('x').input));
    expect(error.code).toBe('agent_error_frame');
    expect(error.message).toContain('model overloaded');
  });

  it('maps an `event: error` frame to agent_error_frame', async () => {
    fake.setScript([{ fault: 'errorFrame', eventName: true }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_error_frame');
  });

  it('treats an empty reply as agent_empty, not as success', async () => {
    fake.setScript([{ fault: 'empty' }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_empty');
  });

  it('treats a whitespace-only reply as agent_empty', async () => {
    fake.setScript([{ text: '  \n ' }]);
    expect((await agentError(agent.run(runInput('x').input))).code).toBe('agent_empty');
  });

  it('ends promptly with agent_aborted when aborted mid-stream', async () => {
    fake.setScript([{ fault: 'hang', text: 'I am starting to answer' }]);
    const controller = new AbortController();
    const { input, seen } = runInput('x', { signal: controller.signal });
    input.onDelta = (delta) => {
      seen.deltas.push(delta);
      if (seen.deltas.length === 2) setTimeout(() => controller.abort(), 10);
    };
    // The stream hangs for ever: only the abort can end this run.
    const error = await agentError(agent.run(input));
    expect(error.code).toBe('agent_aborted');
    expect(seen.deltas.length).toBeGreaterThanOrEqual(2);
    // The server sees the connection go.
    await expect.poll(() => fake.requests[0]?.clientClosedAt ?? null).not.toBeNull();
  });

  it('ends promptly with agent_aborted when aborted before the headers', async () => {
    fake.setScript([{ fault: 'hang', beforeHeaders: true }]);
    const signal = AbortSignal.timeout(100);
    // The server never answers: only the abort can end this run.
    const error = await agentError(agent.run(runInput('x', { signal }).input));
    expect(error.code).toBe('agent_aborted');
  });

  it('fails with agent_aborted without a request when the signal is already aborted', async () => {
    const error = await agentError(agent.run(runInput('x', { signal: AbortSignal.abort() }).input));
    expect(error.code).toBe('agent_aborted');
    expect(fake.requests).toHaveLength(0);
  });

  it('maps a refused connection to agent_stream', async () => {
    const closed = await startFakeOpenAI();
    await closed.close();
    const offline = new OpenAIAgent({ baseURL: closed.url, model: 'm' });
    expect((await agentError(offline.run(runInput('x').input))).code).toBe('agent_stream');
  });
});
