import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startBaton, type BatonProcess } from '../support/baton-process.js';
import { waitFor } from '../support/wait.js';

/**
 * Two owners on one real `baton serve`, over HTTP. Bob's jobs go looking for
 * what belongs to alice or to the server, the way a curious user would: the
 * environment, other processes under /proc, the data dir (SQLite file and
 * token file), alice's work dir and the server's own files. Under bwrap every
 * probe comes back empty; the same probes under `--sandbox none` find the
 * secrets, which shows that the probes can find them at all.
 */
const ALICE = 'alice-tok-4b1d9c0e7f';
const BOB = 'bob-tok-91ac55e2d3';
const MODEL_KEY = 'sk-model-key-0d6f3a9e';
const CHAT_SECRET = 'alice-chat-secret-7731';
const FILE_SECRET = 'alice-file-secret-5402';
const SECRETS = [ALICE, BOB, MODEL_KEY, CHAT_SECRET, FILE_SECRET];
/** The names of every variable a job has (`sh` adds PWD). */
const CLEAN_ENV = 'HOME LANG PATH PWD TERM ';

interface Server {
  baton: BatonProcess;
  dataDir: string;
  call(token: string, method: string, path: string, body?: unknown): Promise<unknown>;
  /** Runs a job of `token`'s owner to its end and returns its output. */
  run(token: string, command: string): Promise<{ output: string; exitCode: unknown }>;
}

async function serve(sandbox: 'bwrap' | 'none'): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), `baton-iso-${sandbox}-`));
  const baton = await startBaton({
    dataDir,
    port: 0,
    extraArgs: ['--agent', 'offline', '--sandbox', sandbox],
    env: { BATON_TOKENS: `alice:${ALICE},bob:${BOB}`, OPENAI_API_KEY: MODEL_KEY },
  });
  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${baton.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text === '' ? null : (JSON.parse(text) as unknown);
  };
  const sessions = new Map<string, string>();
  const run = async (token: string, command: string) => {
    let sessionId = sessions.get(token);
    if (sessionId === undefined) {
      sessionId = ((await call(token, 'POST', '/v1/sessions', {})) as { id: string }).id;
      sessions.set(token, sessionId);
    }
    const job = (await call(token, 'POST', `/v1/sessions/${sessionId}/jobs`, {
      command,
      timeoutS: 60,
    })) as { id: string };
    return waitFor(
      async () => {
        const view = (await call(token, 'GET', `/v1/jobs/${job.id}`)) as {
          state: string;
          output: string;
          exitCode: unknown;
        };
        return view.state === 'running' ? undefined : view;
      },
      { timeoutMs: 20_000, what: `job ${command}` },
    );
  };
  return { baton, dataDir, call, run };
}

/** What bob's jobs try, each printing whatever it finds. */
function probes(s: Server, port: number): Record<string, string> {
  const data = s.dataDir;
  return {
    environment: `env | cut -d= -f1 | sort | tr '\\n' ' '`,
    // Other processes' environments and command lines (the server's environment holds the tokens).
    proc: `cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -E '[B]ATON|[O]PENAI|[t]ok-' | sort -u`,
    dataDir: [
      `cat '${join(data, 'token')}' 2>/dev/null`,
      `grep -r -a -o -h -F '${CHAT_SECRET}' '${data}' 2>/dev/null | head -1`,
      `grep -r -a -o -h -E 'alice:[a-z0-9-]+' '${data}' 2>/dev/null | head -1`,
    ].join('; '),
    aliceWork: [
      `cat '${join(data, 'work', 'alice', 'secret.txt')}' 2>/dev/null`,
      `cat ../alice/secret.txt 2>/dev/null`,
      `find /tmp /work /home /srv -maxdepth 6 -name secret.txt -path '*alice*' 2>/dev/null | head -3 | xargs cat 2>/dev/null`,
    ].join('; '),
    serverFiles: [
      `grep -h -o '"name": "baton"' '${join(REPO_ROOT, 'package.json')}' 2>/dev/null`,
      `ls '${join(REPO_ROOT, 'src')}' 2>/dev/null | grep '\\.ts$' | head -3`,
    ].join('; '),
    network: `node -e "require('http').get('http://127.0.0.1:${port}/healthz', (r) => { console.log('reached the server', r.statusCode); process.exit(0); }).on('error', (e) => console.log('no network', e.code))"`,
  };
}

async function setUpAlice(s: Server): Promise<void> {
  // A chat message of alice's lands in the SQLite file; her job leaves a file in her work dir.
  const session = (await s.call(ALICE, 'POST', '/v1/sessions', { title: 'private' })) as {
    id: string;
  };
  await s.call(ALICE, 'POST', `/v1/sessions/${session.id}/messages`, {
    content: `remember ${CHAT_SECRET}`,
  });
  const job = await s.run(ALICE, `echo ${FILE_SECRET} > secret.txt && cat secret.txt && pwd`);
  expect(job.output).toContain(FILE_SECRET);
  expect(readFileSync(join(s.dataDir, 'work', 'alice', 'secret.txt'), 'utf8')).toContain(
    FILE_SECRET,
  );
}

function leaked(output: string): string[] {
  return SECRETS.filter((secret) => output.includes(secret));
}

describe('job isolation between owners, under bubblewrap', () => {
  let s: Server;
  beforeAll(async () => {
    s = await serve('bwrap');
    await setUpAlice(s);
  }, 60_000);
  afterAll(async () => {
    await s?.baton.stop();
    if (s) rmSync(s.dataDir, { recursive: true, force: true });
  });

  it('says which sandbox is in force', async () => {
    const info = (await s.call(BOB, 'GET', '/v1/info')) as { sandbox: unknown };
    expect(info.sandbox).toMatchObject({ kind: 'bwrap', network: false });
  });

  it("lets alice's job read and write her own work dir, at /work", async () => {
    const job = await s.run(ALICE, 'cat secret.txt; echo more >> secret.txt; pwd; echo "$HOME"');
    expect(job.output).toContain(FILE_SECRET);
    expect(job.output).toContain('/work\n/work');
    expect(readFileSync(join(s.dataDir, 'work', 'alice', 'secret.txt'), 'utf8')).toContain('more');
  });

  it.each(['environment', 'proc', 'dataDir', 'aliceWork', 'serverFiles', 'network'])(
    "gives bob's %s probe nothing of alice's or the server's",
    async (name) => {
      const command = probes(s, s.baton.port)[name] as string;
      const job = await s.run(BOB, command);
      expect(leaked(job.output)).toEqual([]);
      // Each probe prints only what it finds; the network probe says why it found nothing.
      if (name === 'environment') expect(job.output).toBe(CLEAN_ENV);
      else if (name === 'network') expect(job.output).toMatch(/^no network E[A-Z]+\n$/);
      else expect(job.output).toBe('');
    },
  );

  it('shows a job only its own processes', async () => {
    const job = await s.run(BOB, `ls /proc | grep -c '^[0-9]'`);
    expect(Number(job.output.trim())).toBeLessThan(8);
  });

  it('keeps every owner in their own work dir', () => {
    expect(existsSync(join(s.dataDir, 'work', 'bob'))).toBe(true);
    expect(existsSync(join(s.dataDir, 'work', 'bob', 'secret.txt'))).toBe(false);
  });
});

describe('the same probes with --sandbox none', () => {
  let s: Server;
  beforeAll(async () => {
    s = await serve('none');
    await setUpAlice(s);
  }, 60_000);
  afterAll(async () => {
    await s?.baton.stop();
    if (s) rmSync(s.dataDir, { recursive: true, force: true });
  });

  it('keeps the environment clean even without a sandbox', async () => {
    const job = await s.run(BOB, probes(s, s.baton.port)['environment'] as string);
    // The wrapper's `cd` into the work dir leaves OLDPWD (the job dir) behind on the host.
    expect(job.output).toBe('HOME LANG OLDPWD PATH PWD TERM ');
  });

  it.each([
    ['proc', [ALICE, BOB, MODEL_KEY]],
    ['dataDir', [ALICE, CHAT_SECRET]],
    ['aliceWork', [FILE_SECRET]],
  ])("lets bob's %s probe find the secrets", async (name, expected) => {
    const job = await s.run(BOB, probes(s, s.baton.port)[name] as string);
    expect(leaked(job.output)).toEqual(expect.arrayContaining(expected));
  });

  it("lets bob's jobs read the server's files and reach the network", async () => {
    const files = await s.run(BOB, probes(s, s.baton.port)['serverFiles'] as string);
    expect(files.output).toContain('"name": "baton"');
    const net = await s.run(BOB, probes(s, s.baton.port)['network'] as string);
    expect(net.output).toContain('reached the server 200');
  });
});
