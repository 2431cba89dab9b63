import { afterEach, describe, expect, it } from 'vitest';
import type { JournalEntry } from '../../src/runtime/agents/agent.js';
import { INTERRUPTED_COMMAND, OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, toolCall, toolResults, type FakeOpenAI } from '../support/fake-openai.js';
import { runInput } from './helpers.js';

/**
 * The openai agent stores each round that asks for tools before it runs
 * them, and each tool's result before the next round; given those steps
 * back, it goes on after them instead of asking or running them again.
 */
describe('OpenAIAgent turn journal', () => {
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('records a tool round before its tools run and each result before the next round', async () => {
    fake = await startFakeOpenAI([
      {
        text: 'Starting it.',
        toolCalls: [toolCall('start_background_job', { command: 'make' }, 'c1')],
      },
      'Started.',
    ]);
    const agent = new OpenAIAgent({ baseURL: fake.url, model: 'm' });
    const journal: JournalEntry[] = [];
    const order: string[] = [];
    const { input, tools } = runInput('build it', {
      record: async (entry) => {
        order.push(`record ${entry.kind}`);
        journal.push(entry);
      },
    });
    const start = tools.tools.startBackgroundJob;
    tools.tools.startBackgroundJob = (command, key) => {
      order.push('tool');
      return start(command, key);
    };
    const result = await agent.run(input);
    expect(order).toEqual(['record round', 'tool', 'record tool']);
    expect(journal).toMatchObject([
      {
        kind: 'round',
        round: 1,
        text: 'Starting it.',
        toolCalls: [{ id: 'c1', name: 'start_background_job' }],
      },
      { kind: 'tool', round: 1, callId: 'c1', event: { tool: 'start_background_job' } },
    ]);
    expect(tools.backgroundKeys).toEqual(['1/c1']);
    // The answer round is not journaled: it is stored with the turn's end.
    expect(result.content).toBe('Starting it.\n\nStarted.');
  });

  it('goes on after the stored steps: no round asked again, no tool run again', async () => {
    fake = await startFakeOpenAI(['All done.']);
    const agent = new OpenAIAgent({ baseURL: fake.url, model: 'm' });
    const event = {
      round: 1,
      tool: 'start_background_job',
      command: 'make',
      output: 'Background job j_1 started',
      exitCode: null,
    };
    const journal: JournalEntry[] = [
      {
        kind: 'round',
        round: 1,
        text: 'Starting it.',
        toolCalls: [{ id: 'c1', name: 'start_background_job', arguments: '{"command":"make"}' }],
        model: 'm',
      },
      { kind: 'tool', round: 1, callId: 'c1', reply: 'Background job j_1 started', event },
    ];
    const recorded: JournalEntry[] = [];
    const { input, tools, seen } = runInput('build it', {
      journal,
      record: async (entry) => {
        recorded.push(entry);
      },
    });
    const result = await agent.run(input);
    expect(tools.backgroundCommands).toEqual([]);
    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0]!.body.messages;
    expect(sent.at(-2)).toMatchObject({
      role: 'assistant',
      tool_calls: [{ id: 'c1', function: { name: 'start_background_job' } }],
    });
    expect(toolResults(fake.requests[0]!)).toEqual([
      { toolCallId: 'c1', content: 'Background job j_1 started' },
    ]);
    expect(result.content).toBe('Starting it.\n\nAll done.');
    expect(result.toolEvents).toEqual([event]);
    expect(seen.steps).toEqual([2]);
    expect(recorded).toEqual([]);
  });

  it('asks again for a background job whose result was not stored, and does not run a command twice', async () => {
    fake = await startFakeOpenAI(['Done.']);
    const agent = new OpenAIAgent({ baseURL: fake.url, model: 'm' });
    const journal: JournalEntry[] = [
      {
        kind: 'round',
        round: 1,
        text: '',
        toolCalls: [
          { id: 'c1', name: 'run_command', arguments: '{"command":"rm -rf build"}' },
          { id: 'c2', name: 'start_background_job', arguments: '{"command":"make"}' },
        ],
        model: null,
      },
    ];
    const recorded: JournalEntry[] = [];
    const { input, tools } = runInput('clean and build', {
      journal,
      record: async (entry) => {
        recorded.push(entry);
      },
    });
    await agent.run(input);
    expect(tools.commands).toEqual([]);
    // Under the key of the first ask: the runtime answers with the job it started then.
    expect(tools.backgroundKeys).toEqual(['1/c2']);
    expect(toolResults(fake.requests[0]!)).toEqual([
      { toolCallId: 'c1', content: INTERRUPTED_COMMAND },
      { toolCallId: 'c2', content: expect.stringContaining('j_test1') },
    ]);
    expect(recorded.map((e) => e.kind === 'tool' && e.callId)).toEqual(['c1', 'c2']);
  });
});
