/**
 * Follow-up benchmarks on the embedded SQLite store (synchronous=FULL, so
 * every commit is fsynced) against a loopback OpenAI-compatible server:
 *
 * 1. latency: 100 jobs finish at once; time from each job's finish (the
 *    completion call) to its agent request arriving at the endpoint.
 * 2. throughput: many jobs across many sessions finish; follow-ups stored per
 *    second, end to end.
 *
 * Run: npm run bench (or node --import tsx bench/followups.ts [jobs])
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { OpenAIAgent } from '../src/runtime/agents/openai.js';
import { SqliteStore } from '../src/runtime/store/sqlite.js';
import { Baton } from '../src/runtime/system.js';
import { fork } from 'node:child_process';
import { machineInfo, percentile } from './machine-info.js';

/** Starts the fake endpoint in its own process; arrivals are [jobId, epoch ms] pairs. */
async function startEndpoint() {
  const child = fork(join(import.meta.dirname, 'fake-openai-server.ts'), {
    execArgv: ['--import', 'tsx'],
  });
  const arrivals = new Map<string, number>();
  const url = await new Promise<string>((resolve) => {
    child.on('message', (m: unknown) => {
      if (Array.isArray(m)) arrivals.set(String(m[0]), Number(m[1]));
      else if (m && typeof m === 'object' && 'url' in m) resolve(String(m.url));
    });
  });
  return { url, arrivals, close: () => child.disconnect() };
}

async function withBaton<T>(fn: (baton: Baton, store: SqliteStore) => Promise<T>, agentUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const store = new SqliteStore({ path: join(dir, 'baton.db') });
  await store.init();
  const baton = new Baton({
    store,
    agent: new OpenAIAgent({ baseURL: agentUrl, model: 'bench' }),
    dataDir: dir,
    workDir: dir,
  });
  await baton.recover();
  try {
    return await fn(baton, store);
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves once `total` jobs of the owner reached followedUp (counted on the feed, not polled). */
function waitAll(baton: Baton, owner: string, total: number): Promise<void> {
  return new Promise((resolve) => {
    let done = 0;
    const check = () => {
      if (done >= total) {
        stop();
        resolve();
      }
    };
    const stop = baton.feed.subscribe(owner, (frame) => {
      if (frame.type === 'job.state' && frame.data['state'] === 'followedUp') done++;
      check();
    });
    void baton.listJobs(owner, { state: 'followedUp' }).then((jobs) => {
      done += jobs.length;
      check();
    });
  });
}

/**
 * @param spreadMs - 0 finishes every job at the same instant (a burst); more
 *   spreads the finishes evenly over that many ms, as running jobs do.
 */
async function latency(jobs: number, spreadMs: number): Promise<void> {
  const endpoint = await startEndpoint();
  await withBaton(async (baton) => {
    await warmUp(baton);
    const ids: string[] = [];
    for (let i = 0; i < jobs; i++) {
      const session = await baton.createSession('bench', {});
      ids.push((await baton.startJob('bench', session.id, { external: true })).id);
    }
    const finishedAt = new Map<string, number>();
    const all = waitAll(baton, 'bench', jobs + WARM_UP);
    await Promise.all(
      ids.map(async (id, i) => {
        if (spreadMs > 0) await new Promise((r) => setTimeout(r, (i * spreadMs) / jobs));
        finishedAt.set(id, performance.timeOrigin + performance.now());
        return baton.completeJob('bench', id, { exitCode: 0, output: 'x' });
      }),
    );
    await all;
    await new Promise((r) => setTimeout(r, 50));
    const samples = ids
      .map((id) => endpoint.arrivals.get(id)! - finishedAt.get(id)!)
      .sort((a, b) => a - b);
    console.log(
      `latency: ${jobs} concurrent jobs finishing ${spreadMs ? `over ${spreadMs} ms` : 'at once'}, ` +
        `finish -> agent request p50 ${percentile(samples, 50).toFixed(2)} ms, ` +
        `p99 ${percentile(samples, 99).toFixed(2)} ms, max ${samples[samples.length - 1]!.toFixed(2)} ms`,
    );
  }, endpoint.url);
  endpoint.close();
}

const WARM_UP = 200;

/** Follow-ups before measuring, so the figures are not those of cold code. */
async function warmUp(baton: Baton): Promise<void> {
  const session = await baton.createSession('bench', {});
  const all = waitAll(baton, 'bench', WARM_UP);
  for (let i = 0; i < WARM_UP; i++) {
    const job = await baton.startJob('bench', session.id, { external: true });
    await baton.completeJob('bench', job.id, { exitCode: 0 });
  }
  await all;
}

async function throughput(jobs: number, sessions: number): Promise<void> {
  const endpoint = await startEndpoint();
  await withBaton(async (baton) => {
    await warmUp(baton);
    const ids: string[] = [];
    const sessionIds: string[] = [];
    for (let s = 0; s < sessions; s++) sessionIds.push((await baton.createSession('bench', {})).id);
    for (let i = 0; i < jobs; i++) {
      ids.push((await baton.startJob('bench', sessionIds[i % sessions]!, { external: true })).id);
    }
    const all = waitAll(baton, 'bench', jobs + WARM_UP);
    const t0 = performance.now();
    await Promise.all(ids.map((id) => baton.completeJob('bench', id, { exitCode: 0, output: 'x' })));
    await all;
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `throughput: ${jobs} jobs in ${sessions} sessions, ${(jobs / seconds).toFixed(0)} follow-ups/s ` +
        `(${seconds.toFixed(2)} s, fsync on every commit)`,
    );
  }, endpoint.url);
  endpoint.close();
}

const jobs = Number(process.argv[2] ?? 2000);
console.log(`bench followups on ${machineInfo()}`);
await latency(100, 2000);
await latency(100, 0);
await throughput(jobs, Math.max(1, Math.floor(jobs / 4)));
