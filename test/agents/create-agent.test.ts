import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAgent } from '../../src/runtime/agents/create-agent.js';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { SseAgent } from '../../src/runtime/agents/sse.js';
import { startFakeOpenAI } from '../support/fake-openai.js';
import { startFakeSseAgent } from '../support/fake-sse-agent.js';
import { runInput } from './helpers.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('createAgent', () => {
  it('picks the offline agent when neither kind nor url is given', () => {
    const agent = createAgent({});
    expect(agent).toBeInstanceOf(OfflineAgent);
    expect(agent.kind).toBe('offline');
    expect(agent.model).toBe('baton-offline');
  });

  it('picks the openai agent when only a url is given, with the default model', () => {
    const agent = createAgent({ url: 'http://127.0.0.1:1/v1' });
    expect(agent).toBeInstanceOf(OpenAIAgent);
    expect(agent.kind).toBe('openai');
    expect(agent.model).toBe('gpt-4o-mini');
  });

  it('builds an sse agent for kind sse', () => {
    const agent = createAgent({ kind: 'sse', url: 'http://127.0.0.1:1/agent', model: 'mine' });
    expect(agent).toBeInstanceOf(SseAgent);
    expect(agent.model).toBe('mine');
  });

  it('builds the offline agent for kind offline even with a url', () => {
    expect(createAgent({ kind: 'offline', url: 'http://127.0.0.1:1/v1' })).toBeInstanceOf(
      OfflineAgent,
    );
  });

  it('throws a clear error for openai or sse without a url', () => {
    expect(() => createAgent({ kind: 'openai' })).toThrow(/openai agent needs --agent-url/);
    expect(() => createAgent({ kind: 'sse', url: '  ' })).toThrow(/sse agent needs --agent-url/);
  });

  it('sends OPENAI_API_KEY when no key is given, and the given key before it', async () => {
    const fake = await startFakeOpenAI(['ok']);
    try {
      vi.stubEnv('OPENAI_API_KEY', 'sk-from-env');
      await createAgent({ kind: 'openai', url: fake.url, model: 'm1' }).run(runInput('x').input);
      await createAgent({ kind: 'openai', url: fake.url, apiKey: 'sk-given' }).run(
        runInput('x').input,
      );
      expect(fake.requests.map((r) => r.headers['authorization'])).toEqual([
        'Bearer sk-from-env',
        'Bearer sk-given',
      ]);
      expect(fake.requests.map((r) => r.body.model)).toEqual(['m1', 'gpt-4o-mini']);
    } finally {
      await fake.close();
    }
  });

  it('runs the openai agent without any key against a local server', async () => {
    const fake = await startFakeOpenAI(['ok']);
    try {
      vi.stubEnv('OPENAI_API_KEY', undefined);
      const result = await createAgent({ url: fake.url }).run(runInput('x').input);
      expect(result.content).toBe('ok');
    } finally {
      await fake.close();
    }
  });

  it('sends an explicit key to an sse backend as a bearer token', async () => {
    const fake = await startFakeSseAgent(['ok']);
    try {
      await createAgent({ kind: 'sse', url: fake.url, apiKey: 'k-sse' }).run(runInput('x').input);
      expect(fake.requests[0]?.headers['authorization']).toBe('Bearer k-sse');
    } finally {
      await fake.close();
    }
  });
});
