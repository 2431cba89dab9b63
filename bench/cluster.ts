/**
 * Follow-ups per second with 1, 2 and 3 `baton serve` processes sharing one
 * PostgreSQL database, next to one process on the embedded SQLite store. The
 * whole path is real: HTTP calls complete external jobs, each process runs
 * its sessions' follow-ups against a loopback OpenAI-compatible endpoint (in
 * its own process), and the continuation is committed.
 *
 * Run: node --import tsx bench/cluster.ts [jobs]   (PostgreSQL on 127.0.0.1:5432)
 */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { DATABASE_URL, startCluster, TOKEN, type Node } from '../test/multi/cluster.js';
import { machineInfo } from './machine-info.js';

const JOBS = Number(process.argv[2] ?? 1200);
const SESSIONS = 120;

async function endpoint(): Promise<{ url: string; close(): void }> {
  const child = fork(join(import.meta.dirname, 'fake-openai-server.ts'), {
    execArgv: ['--import', 'tsx'],
  });
  const url = await new Promise<string>((resolve) =>
    child.on('message', (m: unknown) => {
      if (m && typeof m === 'object' && 'url' in m) resolve(String(m.url));
    }),
  );
  return { url, close: () => child.disconnect() };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Creates sessions round-robin over the nodes (each owns what it created), then the jobs. */
async function workload(nodes: Node[]): Promise<{ node: Node; jobId: string }[]> {
  const jobs: { node: Node; jobId: string }[] = [];
  const sessions: { node: Node; id: string }[] = [];
  for (let s = 0; s < SESSIONS; s++) {
    const node = nodes[s % nodes.length]!;
    sessions.push({
      node,
      id: (await node.call('POST', '/v1/sessions', { title: `b${s}` })).body.id,
    });
  }
  await pool(
    Array.from({ length: JOBS }, (_, i) => i),
    32,
    async (i) => {
      const { node, id } = sessions[i % SESSIONS]!;
      const job = await node.call('POST', `/v1/sessions/${id}/jobs`, { external: true });
      jobs.push({ node, jobId: job.body.id });
    },
  );
  return jobs;
}

async function measure(label: string, nodes: Node[], followedUp: () => Promise<number>) {
  const jobs = await workload(nodes);
  const t0 = performance.now();
  await pool(jobs, 64, async ({ node, jobId }) => {
    await node.call('POST', `/v1/jobs/${jobId}/complete`, { exitCode: 0, output: 'x' });
  });
  while ((await followedUp()) < JOBS) await new Promise((r) => setTimeout(r, 50));
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `${label}: ${JOBS} jobs in ${SESSIONS} sessions, ${(JOBS / seconds).toFixed(0)} follow-ups/s (${seconds.toFixed(2)} s)`,
  );
}

async function postgres(processes: number, agentUrl: string): Promise<void> {
  const cluster = await startCluster(processes, ['--agent', 'openai', '--agent-url', agentUrl]);
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await measure(`postgres x${processes}`, cluster.nodes, async () => {
      const r = await client.query(
        `SELECT count(*)::int AS n FROM "${cluster.schema}".jobs WHERE state = 'followedUp'`,
      );
      return r.rows[0].n as number;
    });
  } finally {
    await client.end();
    await cluster.close();
  }
}

async function sqlite(agentUrl: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-sqlite-'));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'serve',
      '--port',
      '0',
      '--data',
      dir,
      '--agent',
      'openai',
      '--agent-url',
      agentUrl,
    ],
    {
      env: { ...process.env, BATON_TOKENS: `alice:${TOKEN}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"(http:[^"]+)".*baton listening/.exec(buffered);
      if (match) resolve(match[1]!);
    });
  });
  const node: Node = {
    name: 'sqlite',
    url,
    hostId: 'local',
    child,
    exited: new Promise((r) => child.once('exit', r)),
    log: [],
    call: async (method, path, body) => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
  };
  try {
    await measure(
      'sqlite x1',
      [node],
      async () => (await node.call('GET', '/v1/jobs?state=followedUp')).body.jobs.length,
    );
  } finally {
    child.kill('SIGTERM');
    await node.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`bench cluster on ${machineInfo()}`);
const agent = await endpoint();
try {
  await sqlite(agent.url);
  for (const n of [1, 2, 3]) await postgres(n, agent.url);
} finally {
  agent.close();
}
