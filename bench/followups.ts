/**
 * Follow-up benchmarks on the embedded SQLite store (synchronous=FULL, so
 * every commit is fsynced) against a loopback OpenAI-compatible server:
 *
 * 1. latency: 100 concurrent jobs finish, spread over 2 s and then all at the
 *    same instant; time from each job's finish (the completion call) to its
 *    agent request arriving at the endpoint, with the stages on the way.
 * 2. throughput: many jobs across many sessions finish at once; follow-ups
 *    stored per second, end to end.
 *
 * Run: npm run bench (or node --import tsx bench/followups.ts [jobs])
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createHttpFetch } from '../src/runtime/agents/http-fetch.js';
import { OpenAIAgent } from '../src/runtime/agents/openai.js';
import { SqliteStore } from '../src/runtime/store/sqlite.js';
import { Baton } from '../src/runtime/system.js';
import { fork } from 'node:child_process';
import { machineInfo, percentile } from './machine-info.js';

/** Starts the fake endpoint in its own process; it reports arrivals as lists of [jobId, epoch ms]. */
async function startEndpoint() {
  const child = fork(join(import.meta.dirname, 'fake-openai-server.ts'), {
    execArgv: ['--import', 'tsx'],
  });
  const arrivals = new Map<string, number>();
  const url = await new Promise<string>((resolve) => {
    child.on('message', (m: unknown) => {
      if (Array.isArray(m)) for (const [id, at] of m as [string, number][]) arrivals.set(id, at);
      else if (m && typeof m === 'object' && 'url' in m) resolve(String(m.url));
    });
  });
  return { url, arrivals, close: () => child.disconnect() };
}

const epochNow = () => performance.timeOrigin + performance.now();

/** When each job's follow-up request was handed to HTTP (the agent's own fetch, timed). */
const sentAt = new Map<string, number>();

async function withBaton<T>(
  fn: (baton: Baton, store: SqliteStore) => Promise<T>,
  agentUrl: string,
) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const store = new SqliteStore({ path: join(dir, 'baton.db') });
  await store.init();
  const http = createHttpFetch();
  const timedFetch = (url: string | URL | Request, init?: RequestInit) => {
    const match = /\[Background job (j_[0-9a-z]+) finished\]/.exec(String(init?.body));
    if (match) sentAt.set(match[1]!, epochNow());
    return http.fetch(url, init);
  };
  const baton = new Baton({
    store,
    agent: new OpenAIAgent({ baseURL: agentUrl, model: 'bench', fetch: timedFetch }),
    dataDir: dir,
  });
  await baton.recover();
  try {
    return await fn(baton, store);
  } finally {
    await baton.close();
    http.close();
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

function line(label: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  return `${label} p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms`;
}

/**
 * `rounds` times, `jobs` jobs (one per session) finish and the time from each
 * finish to its agent request arriving at the endpoint is taken; the
 * percentiles are over every round's samples. The stages on the way are
 * printed too: `continuing` stored (the write that precedes the request),
 * and the request handed to HTTP.
 *
 * @param spreadMs - 0 finishes every job of a round at the same instant (a
 *   burst); more spreads the finishes evenly over that many ms, as running
 *   jobs do.
 */
async function latency(jobs: number, spreadMs: number, rounds = 3): Promise<void> {
  const endpoint = await startEndpoint();
  await withBaton(async (baton) => {
    await warmUp(baton);
    const stored = new Map<string, number>();
    baton.feed.subscribe('bench', (frame) => {
      if (frame.type === 'job.state' && frame.data['state'] === 'continuing' && frame.jobId) {
        stored.set(frame.jobId, epochNow());
      }
    });
    const samples = { stored: [] as number[], sent: [] as number[], arrived: [] as number[] };
    let followedUp = WARM_UP;
    for (let round = 0; round < rounds; round++) {
      const ids: string[] = [];
      for (let i = 0; i < jobs; i++) {
        const session = await baton.createSession('bench', {});
        ids.push((await baton.startJob('bench', session.id, { external: true })).id);
      }
      const finishedAt = new Map<string, number>();
      followedUp += jobs;
      const all = waitAll(baton, 'bench', followedUp);
      await Promise.all(
        ids.map(async (id, i) => {
          if (spreadMs > 0) await new Promise((r) => setTimeout(r, (i * spreadMs) / jobs));
          finishedAt.set(id, epochNow());
          return baton.completeJob('bench', id, { exitCode: 0, output: 'x' });
        }),
      );
      await all;
      await new Promise((r) => setTimeout(r, 50));
      for (const id of ids) {
        const finished = finishedAt.get(id)!;
        samples.stored.push(stored.get(id)! - finished);
        samples.sent.push(sentAt.get(id)! - finished);
        samples.arrived.push(endpoint.arrivals.get(id)! - finished);
      }
    }
    console.log(
      `latency: ${jobs} concurrent jobs finishing ${spreadMs ? `over ${spreadMs} ms` : 'at once'} ` +
        `(${rounds} rounds), ${line('finish -> agent request', samples.arrived)}; ` +
        `stages: ${line('continuing stored', samples.stored)}, ${line('request sent', samples.sent)}`,
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

/**
 * `rounds` runs of `jobs` jobs in `sessions` sessions all finishing at once;
 * prints each and the median. One more round of the same shape runs first,
 * unmeasured (its rate is printed apart): the first burst of a process also
 * pays for compiling its code paths and growing its heap, which is not the
 * rate a running server keeps.
 */
async function throughput(jobs: number, sessions: number, rounds = 5): Promise<void> {
  const endpoint = await startEndpoint();
  await withBaton(async (baton) => {
    await warmUp(baton);
    const rates: number[] = [];
    // Where the time goes: a loop busy near 100% means the process's own CPU
    // per follow-up is the limit, not the disk or the endpoint.
    const cpuPerJob: number[] = [];
    const busy: number[] = [];
    let followedUp = WARM_UP;
    let warmUpRate = 0;
    for (let round = -1; round < rounds; round++) {
      const ids: string[] = [];
      const sessionIds: string[] = [];
      for (let s = 0; s < sessions; s++)
        sessionIds.push((await baton.createSession('bench', {})).id);
      for (let i = 0; i < jobs; i++) {
        ids.push((await baton.startJob('bench', sessionIds[i % sessions]!, { external: true })).id);
      }
      followedUp += jobs;
      const all = waitAll(baton, 'bench', followedUp);
      const cpu0 = process.cpuUsage();
      const loop0 = performance.eventLoopUtilization();
      const t0 = performance.now();
      await Promise.all(
        ids.map((id) => baton.completeJob('bench', id, { exitCode: 0, output: 'x' })),
      );
      await all;
      const rate = jobs / ((performance.now() - t0) / 1000);
      if (round < 0) {
        warmUpRate = rate;
        continue;
      }
      rates.push(rate);
      const cpu = process.cpuUsage(cpu0);
      cpuPerJob.push((cpu.user + cpu.system) / jobs);
      busy.push(performance.eventLoopUtilization(loop0).utilization);
    }
    const median = (xs: number[]) =>
      percentile(
        [...xs].sort((a, b) => a - b),
        50,
      );
    console.log(
      `throughput: ${jobs} jobs in ${sessions} sessions, median ${median(rates).toFixed(0)} ` +
        `follow-ups/s over ${rounds} rounds (${rates.map((r) => r.toFixed(0)).join(', ')}; ` +
        `first, unmeasured round ${warmUpRate.toFixed(0)}; fsync on every commit); ` +
        `Baton's process: ${median(cpuPerJob).toFixed(0)} µs of CPU per follow-up, ` +
        `event loop busy ${(100 * median(busy)).toFixed(0)}% of the time`,
    );
  }, endpoint.url);
  endpoint.close();
}

const jobs = Number(process.argv[2] ?? 2000);
console.log(`bench followups on ${machineInfo()}`);
await latency(100, 2000);
await latency(100, 0);
await throughput(jobs, Math.max(1, Math.floor(jobs / 4)));
