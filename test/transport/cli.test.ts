import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
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
  const scratchDirs: string[] = [];
  afterAll(() => {
    for (const path of scratchDirs) rmSync(path, { recursive: true, force: true });
  });
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

  it('refuses a second server on the same data dir, naming the first one', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    const first = await serve(['--data', dir, '--sandbox', 'none']);
    running = first.child;
    const second = spawnCli(['serve', '--port', '0', '--data', dir, '--sandbox', 'none']);
    expect(await second.exited).toBe(2);
    expect(second.stderr()).toBe(
      `baton: data dir ${dir} is in use by pid ${String(first.child.pid)}\n`,
    );
    // The lock goes with the process, however it ends: SIGKILL leaves nothing stale.
    first.child.kill('SIGKILL');
    await first.exited;
    const third = await serve(['--data', dir, '--sandbox', 'none']);
    running = third.child;
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });

  it('stops on SIGTERM although nobody reads its stdout any more', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    const started = await serve(['--data', dir, '--sandbox', 'none']);
    running = started.child;
    // Like `baton serve | head -2`: the reader goes away, then the server logs.
    started.child.stdout?.destroy();
    const [a] = await Promise.all([
      fetch(`${String(started.startup['url'])}/healthz`).then((r) => r.status),
    ]);
    expect(a).toBe(200);
    started.child.kill('SIGTERM');
    const code = await Promise.race([
      started.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000)),
    ]);
    expect(code).toBe(0);
  });

  it('exits 2 with a clear message on a bad option value or an unreachable store', async () => {
    // A data dir per case that gets as far as taking one: they run at once.
    const scratch = () => {
      const path = mkdtempSync(join(tmpdir(), 'baton-cli-bad-'));
      scratchDirs.push(path);
      return path;
    };
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
      [['serve', '--agent', 'openai', '--data', scratch()], {}, /needs --agent-url/],
      [
        ['serve', '--host', '999.1.1.1', '--port', '0', '--sandbox', 'none', '--data', scratch()],
        {},
        /^baton: cannot listen on 999\.1\.1\.1:0: no such host or address \(ENOTFOUND\)\n$/,
      ],
      [['serve', '--sandbox', 'none', '--job-network', 'off'], {}, /needs --sandbox bwrap/],
      [['serve', '--sandbox', 'jail'], {}, /jail/],
      [
        ['serve', '--job-env', 'BATON_TOKENS', '--data', scratch()],
        { BATON_TOKENS: 'a:tokA1234,b:tokB1234' },
        /^baton: --job-env BATON_TOKENS: the server's own secrets never reach a job\n$/,
      ],
      [
        ['serve', '--job-env', 'LEAK', '--data', scratch()],
        { BATON_TOKEN: 'tok-cli-1234567', LEAK: 'x-tok-cli-1234567' },
        /^baton: --job-env LEAK: its value holds a token or the agent key\n$/,
      ],
      [['serve', '--job-ro-path', 'relative/dir'], {}, /--job-ro-path takes absolute paths/],
      [['serve', '--port', '-1'], {}, /--port must be between 0 and 65535, got -1/],
      [
        ['serve'],
        { BATON_LOG_LEVEL: 'verbose' },
        /'verbose' from env 'BATON_LOG_LEVEL' is invalid/,
      ],
      [['serve', '--pg-schema', ' '], {}, /--pg-schema must not be empty/],
      [['serve', '--work-dir', 'alice'], {}, /--work-dir takes OWNER=DIR/],
    ];
    // Four at a time: each is a Node process loading TypeScript, on two cores.
    const queue = [...cases];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const [args, env, message] = next;
          const { exited, stderr } = spawnCli(args, env);
          expect(await exited, args.join(' ')).toBe(2);
          expect(stderr(), args.join(' ')).toMatch(message);
        }
      }),
    );
  }, 120_000);
});
