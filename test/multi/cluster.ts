/**
 * Several real `baton serve` processes on one PostgreSQL schema, for the
 * multi-process tests and the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const DATABASE_URL =
  process.env['BATON_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TOKEN = 'tok-alice-cluster-0123456789';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Node {
  name: string;
  url: string;
  hostId: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  log: string[];
  /** Calls the node's HTTP API as alice; returns status and parsed body. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

export interface Cluster {
  schema: string;
  nodes: Node[];
  start(name: string): Promise<Node>;
  /** Runs SQL against the cluster's database (to look at what the processes stored). */
  query(text: string): Promise<pg.QueryResult>;
  /** Stops every node (SIGTERM), drops the schema, removes the data dirs. */
  close(): Promise<void>;
}

export async function startCluster(count: number, extraArgs: string[] = []): Promise<Cluster> {
  const schema = `baton_mp_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const dirs: string[] = [];
  const nodes: Node[] = [];
  const start = async (name: string): Promise<Node> => {
    const dir = mkdtempSync(join(tmpdir(), `baton-${name}-`));
    dirs.push(dir);
    const node = await startNode(name, schema, dir, extraArgs);
    nodes.push(node);
    return node;
  };
  // One at a time: the first one creates the schema.
  for (let i = 0; i < count; i++) await start(String.fromCharCode(65 + i));
  return {
    schema,
    nodes,
    start,
    query: async (text: string) => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        return await client.query(text);
      } finally {
        await client.end();
      }
    },
    close: async () => {
      await Promise.all(
        nodes.map(async (n) => {
          if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGTERM');
          await n.exited;
        }),
      );
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startNode(name: string, schema: string, dir: string, extraArgs: string[]) {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('BATON_') && key !== 'OPENAI_API_KEY') env[key] = value;
  }
  Object.assign(env, { BATON_TOKENS: `alice:${TOKEN}`, BATON_PG_SCHEMA: schema });
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'serve',
      '--store',
      'postgres',
      '--database-url',
      DATABASE_URL,
      '--port',
      '0',
      '--data',
      dir,
      ...extraArgs,
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const listening = await new Promise<{ url: string; hostId: string }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start:\n${log.join('\n')}`)),
      30_000,
    );
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        log.push(line);
        try {
          const parsed = JSON.parse(line) as { url?: string; hostId?: string; msg?: string };
          if (parsed.url && parsed.msg?.startsWith('baton listening')) {
            clearTimeout(timer);
            resolve({ url: parsed.url, hostId: parsed.hostId ?? '' });
          }
        } catch {
          // Not JSON: keep it in the log.
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${log.join('\n')}`));
    });
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${listening.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  return { name, url: listening.url, hostId: listening.hostId, child, exited, log, call };
}
