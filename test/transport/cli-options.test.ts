import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  crossCheck,
  inspectSetting,
  wholeNumber,
  type ServeOptions,
} from '../../src/cli-options.js';
import { program } from '../../src/cli.js';

const defaults = async (
  argv: string[],
  env: Record<string, string> = {},
): Promise<ServeOptions> => {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    let parsed: ServeOptions | undefined;
    await program(async (options) => {
      parsed = options;
    }).parseAsync(['serve', ...argv], { from: 'user' });
    if (!parsed) throw new Error('serve did not run');
    return parsed;
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
};

describe('serve options', () => {
  it('have the documented defaults', async () => {
    const options = await defaults([]);
    expect(options).toMatchObject({
      port: 8787,
      host: '127.0.0.1',
      data: './.baton',
      store: 'sqlite',
      maxAttempts: 5,
      retryBaseMs: 2000,
      retryMaxMs: 300_000,
      agentTimeoutS: 600,
    });
    expect(options.agent).toBeUndefined();
  });

  it('read environment variables, and flags win over them', async () => {
    const env = {
      BATON_PORT: '9000',
      BATON_MAX_ATTEMPTS: '2',
      BATON_AGENT_URL: 'http://127.0.0.1:1/v1',
    };
    const fromEnv = await defaults([], env);
    expect(fromEnv).toMatchObject({
      port: 9000,
      maxAttempts: 2,
      agentUrl: 'http://127.0.0.1:1/v1',
    });
    const flagged = await defaults(['--port', '0'], env);
    expect(flagged.port).toBe(0);
  });

  it('refuse values out of range or of the wrong kind', () => {
    const port = wholeNumber('--port', 0, 65535);
    expect(port('8080')).toBe(8080);
    for (const bad of ['-1', '65536', '1.5', 'abc', '', '0x10']) {
      expect(() => port(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('check options against each other', () => {
    const base = { retryBaseMs: 2000, retryMaxMs: 300_000 } as ServeOptions;
    expect(crossCheck(base)).toBeNull();
    expect(crossCheck({ ...base, retryMaxMs: 10 })).toMatch(/--retry-max-ms/);
    expect(crossCheck({ ...base, agent: 'sse' })).toMatch(/needs --agent-url/);
    expect(crossCheck({ ...base, inspect: 'http://nope' })).toMatch(
      /--inspect takes a ws:\/\/ URL/,
    );
  });

  it('read --inspect as a switch or an inspector address', () => {
    expect(inspectSetting(undefined)).toEqual({ enabled: false, url: 'ws://localhost:8080' });
    expect(inspectSetting(true)).toEqual({ enabled: true, url: 'ws://localhost:8080' });
    expect(inspectSetting('1')?.enabled).toBe(true);
    expect(inspectSetting('false')?.enabled).toBe(false);
    expect(inspectSetting('ws://10.0.0.2:9000')).toEqual({
      enabled: true,
      url: 'ws://10.0.0.2:9000',
    });
    expect(inspectSetting('nonsense')).toBeNull();
  });
});
