import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { FINAL_JOB_STATES } from '../../src/runtime/store/store.js';
import { processesUnder } from './processes.js';

const child = join(import.meta.dirname, 'crash-child.ts');

export interface CrashSummary {
  kills: number;
  /** Kills that landed after the runtime had recovered (the rest hit start-up or recovery). */
  killsAfterReady: number;
  jobs: number;
  lost: number;
  duplicated: number;
  interleaved: number;
  orphans: number;
  unfinished: number;
}

function start(dir: string, sessions: number, perSession: number): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', child, dir, String(sessions), String(perSession)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
}

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
}

/**
 * Kills the runtime with SIGKILL at random instants `kills` times, restarting
 * it on the same data dir each time, then lets it finish and counts what a
 * crash could have broken.
 */
export async function crashCampaign(opts: {
  dir: string;
  kills: number;
  sessions: number;
  perSession: number;
  maxDelayMs: number;
  random?: () => number;
}): Promise<CrashSummary> {
  const random = opts.random ?? Math.random;
  let killsAfterReady = 0;
  for (let k = 0; k < opts.kills; k++) {
    const proc = start(opts.dir, opts.sessions, opts.perSession);
    let ready = false;
    const readied = new Promise<void>((resolve) => {
      proc.stdout?.on('data', (chunk: Buffer) => {
        if (!chunk.toString().includes('ready')) return;
        ready = true;
        resolve();
      });
    });
    // Every third kill waits for recovery to be over first: on a busy machine
    // start-up can outlast every random delay, and a campaign whose kills all
    // land before recovery would test recovery of recovery only.
    if (k % 3 === 2) {
      await Promise.race([readied, exited(proc), new Promise((r) => setTimeout(r, 30_000))]);
      await new Promise((r) => setTimeout(r, random() * 300));
    } else {
      await new Promise((r) => setTimeout(r, 150 + random() * opts.maxDelayMs));
    }
    proc.kill('SIGKILL');
    await exited(proc);
    if (ready) killsAfterReady++;
  }
  const last = start(opts.dir, opts.sessions, opts.perSession);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('jobs did not all become final')), 60_000);
    last.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('final')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  last.kill('SIGTERM');
  await exited(last);
  return { ...(await count(opts.dir, opts.kills)), killsAfterReady };
}

async function count(dir: string, kills: number): Promise<Omit<CrashSummary, 'killsAfterReady'>> {
  const store = new SqliteStore({ path: join(dir, 'baton.db') });
  await store.init();
  try {
    const jobs = await store.listJobs({ owner: 'crash' });
    let lost = 0;
    let duplicated = 0;
    let interleaved = 0;
    let unfinished = 0;
    for (const session of await store.listSessions('crash')) {
      const messages = await store.listMessages(session.id);
      const answers = new Map<string, number>();
      for (const m of messages) {
        const ids = (m.metadata['bgJobIds'] as string[] | undefined) ?? [m.metadata['bgJobId']];
        for (const id of ids)
          if (typeof id === 'string') answers.set(id, (answers.get(id) ?? 0) + 1);
      }
      for (const job of jobs.filter((j) => j.sessionId === session.id)) {
        const n = answers.get(job.id) ?? 0;
        if (!FINAL_JOB_STATES.includes(job.state)) unfinished++;
        if ((job.state === 'followedUp' || job.state === 'failed') && n === 0) lost++;
        if (n > 1) duplicated++;
      }
      // A live turn's answer follows its user message with no follow-up in between.
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        if (m.role !== 'user') continue;
        const answer = messages.findIndex(
          (a, k) =>
            k > i && a.role === 'assistant' && a.metadata['turnId'] === m.metadata['turnId'],
        );
        if (answer === -1) continue;
        if (messages.slice(i + 1, answer).some((b) => b.metadata['bgJobId'] !== undefined))
          interleaved++;
      }
    }
    return {
      kills,
      jobs: jobs.length,
      lost,
      duplicated,
      interleaved,
      orphans: orphans(dir),
      unfinished,
    };
  } finally {
    await store.close();
  }
}

function orphans(dir: string): number {
  return processesUnder(dir).length;
}
