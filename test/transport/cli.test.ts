import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The environment without any BATON_* setting of the machine running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('BATON_') && key !== 'OPENAI_API_KEY') env[key] = value;
  }
  return { ...env, ...extra };
}

interface Started {
  child: ChildProcess;
  startup: Record<string, unknown>;
  exited: Promise<number | null>;
}

function spawnCli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, exited, stderr: () => stderr };
}

/** Starts `baton serve` and resolves with its `baton listening` line. */
async function serve(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const { child, exited, stderr } = spawnCli(['serve', '--port', '0', ...args], env);
  const lines = createInterface({ input: child.stdout! });
  const startup = await new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (typeof entry['msg'] === 'string' && entry['msg'].startsWith('baton listening'))
          resolve(entry);
      } catch {
        // Not a log line.
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening: ${stderr()}`)));
  });
  return { child, startup, exited };
}

describe('baton serve', () => {
  let dir: string | undefined;
  let running: ChildProcess | undefined;
  afterEach(() => {
    if (running && running.exitCode === null) running.kill('SIGKILL');
    running = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('starts, runs a job to its follow-up, and exits 0 on SIGTERM; the token is kept', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    const first = await serve(['--data', dir]);
    running = first.child;
    const { port, token, url, dashboard, agent, agentFallback, tokenSource } = first.startup;
    expect(typeof port).toBe('number');
    expect(port).toBeGreaterThan(0);
    expect(url).toBe(`http://127.0.0.1:${String(port)}`);
    expect(token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(tokenSource).toBe('generated');
    expect(agent).toBe('offline');
    expect(agentFallback).toBe(true);
    expect(String(first.startup['msg'])).toContain('no --agent-url given');
    // bubblewrap is installed where the tests run: one owner gets it, with the network.
    expect(first.startup['sandbox']).toMatchObject({ kind: 'bwrap', network: true });
    expect(String(first.startup['msg'])).toContain('jobs sandboxed by bubblewrap, network on');
    if (dashboard !== null) expect(dashboard).toBe(`${String(url)}/?token=${String(token)}`);

    const headers = {
      authorization: `Bearer ${String(token)}`,
      'content-type': 'application/json',
    };
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${String(url)}${path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const session = await post('/v1/sessions', { title: 'cli' });
    expect(session.status).toBe(201);
    const job = await post(`/v1/sessions/${String(session.body['id'])}/jobs`, {
      command: 'sleep 1; echo done',
    });
    expect(job.status).toBe(201);
    const final = await waitFor(
      async () => {
        const res = await fetch(`${String(url)}/v1/jobs/${String(job.body['id'])}`, { headers });
        const body = (await res.json()) as Record<string, unknown>;
        return body['state'] === 'followedUp' ? body : undefined;
      },
      { timeoutMs: 15_000, what: 'the job to be followed up' },
    );
    expect(final).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    const messages = await fetch(
      `${String(url)}/v1/sessions/${String(session.body['id'])}/messages`,
      { headers },
    );
    const list = ((await messages.json()) as { messages: Record<string, unknown>[] }).messages;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ role: 'assistant', metadata: { bgJobId: job.body['id'] } });
    expect(String(list[0]!['content'])).toContain('done');

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await serve(['--data', dir]);
    running = second.child;
    expect(second.startup['token']).toBe(token);
    expect(second.startup['tokenSource']).toBe('file');
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('exits 2 with a clear message on a bad option value or an unreachable store', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['serve', '--port', 'abc'], {}, /--port must be a whole number/],
      [['serve'], { BATON_PORT: '70000' }, /--port must be between 0 and 65535/],
      [['serve', '--agent', 'magic'], {}, /magic/],
      [['serve', '--store', 'postgres'], {}, /--store postgres needs --database-url/],
      [
        ['serve', '--store', 'postgres', '--database-url', 'postgres://127.0.0.1:1/none'],
        {},
        /cannot open PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/none/,
      ],
      [
        ['serve', '--agent', 'openai', '--data', join(tmpdir(), 'baton-never')],
        {},
        /needs --agent-url/,
      ],
      [['serve', '--sandbox', 'none', '--job-network', 'off'], {}, /needs --sandbox bwrap/],
      [['serve', '--sandbox', 'jail'], {}, /jail/],
      [
        ['serve', '--job-env', 'BATON_TOKENS', '--data', join(tmpdir(), 'baton-never')],
        { BATON_TOKENS: 'a:tokA1234,b:tokB1234' },
        /^baton: --job-env BATON_TOKENS: the server's own secrets never reach a job\n$/,
      ],
      [
        ['serve', '--job-env', 'LEAK', '--data', join(tmpdir(), 'baton-never')],
        { BATON_TOKEN: 'tok-cli-1234567', LEAK: 'x-tok-cli-1234567' },
        /^baton: --job-env LEAK: its value holds a token or the agent key\n$/,
      ],
      [['serve', '--job-ro-path', 'relative/dir'], {}, /--job-ro-path takes absolute paths/],
      [['serve', '--work-dir', 'alice'], {}, /--work-dir takes OWNER=DIR/],
    ];
    await Promise.all(
      cases.map(async ([args, env, message]) => {
        const { exited, stderr } = spawnCli(args, env);
        expect(await exited, args.join(' ')).toBe(2);
        expect(stderr()).toMatch(message);
      }),
    );
  });
});
