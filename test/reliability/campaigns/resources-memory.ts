/**
 * Campaign 5, memory: `baton serve` runs jobs that print a gigabyte each
 * while its resident memory (VmRSS) is sampled every few milliseconds; the
 * output is read as a capped head and tail, so memory must stay flat.
 */

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesUnder } from '../../support/processes.js';
import { waitFor } from '../../support/wait.js';
import { callApi, get, list, str } from './api.js';
import { rssBytes, spawnServe } from './cli.js';
import { answeredJobs } from './interleaving.js';

const TOKEN = 'resources-token-0123456789';
const MiB = 1024 * 1024;

export interface MemorySummary {
  bytesPerJob: number;
  jobs: number;
  baselineRss: number;
  peakRss: number;
  afterRss: number;
  samples: number;
  /** Longest stored output and follow-up result, in characters. */
  longestOutput: number;
  longestResult: number;
  followedUp: number;
  dbBytes: number;
  orphans: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runMemory(bytesPerJob: number): Promise<MemorySummary> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-memory-'));
  const proc = spawnServe(dir, ['--token', TOKEN, '--agent', 'offline']);
  try {
    const url = await proc.listening;
    const api = (method: string, path: string, body?: unknown) =>
      callApi(url, TOKEN, method, path, body);
    const session = str((await api('POST', '/v1/sessions', { title: 'big output' })).body, 'id');
    const waitFollowedUp = async (ids: string[]) => {
      for (;;) {
        const states = await Promise.all(
          ids.map(async (id) => str((await api('GET', `/v1/jobs/${id}`)).body, 'state')),
        );
        if (states.every((s) => s === 'followedUp' || s === 'failed')) return;
        await sleep(20);
      }
    };
    // Warm up (first job, first follow-up), then take the baseline.
    const warm = str(
      (await api('POST', `/v1/sessions/${session}/jobs`, { command: 'echo warm' })).body,
      'id',
    );
    await waitFollowedUp([warm]);
    await sleep(300);
    const baselineRss = rssBytes(proc.pid) ?? 0;
    const commands = [
      `head -c ${bytesPerJob} /dev/zero`,
      `yes 'a line of output' | head -c ${bytesPerJob}`,
    ];
    const ids: string[] = [];
    for (const command of commands) {
      ids.push(
        str(
          (await api('POST', `/v1/sessions/${session}/jobs`, { command, timeoutS: 600 })).body,
          'id',
        ),
      );
    }
    let peakRss = baselineRss;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakRss = Math.max(peakRss, rssBytes(proc.pid) ?? 0);
        samples++;
        await sleep(10);
      }
    })();
    await waitFollowedUp(ids);
    await sleep(200);
    sampling = false;
    await sampler;
    const afterRss = rssBytes(proc.pid) ?? 0;
    const jobs = await Promise.all(
      ids.map(async (id) => (await api('GET', `/v1/jobs/${id}`)).body),
    );
    // A job may read followedUp a moment before its continuation is readable.
    const messages = await waitFor(
      async () => {
        const all = list((await api('GET', `/v1/sessions/${session}/messages`)).body, 'messages');
        const answered = all.flatMap((m) => {
          const meta = get(m, 'metadata');
          return typeof meta === 'object' && meta !== null
            ? answeredJobs(meta as Record<string, unknown>)
            : [];
        });
        return ids.every((id) => answered.includes(id)) ? all : undefined;
      },
      { what: 'the continuations to be readable' },
    );
    const results = messages
      .map((m) => get(get(m, 'metadata'), 'bgResult'))
      .filter((x): x is string => typeof x === 'string');
    const code = await proc.stop();
    if (code !== 0) throw new Error(`baton serve exited ${code}`);
    return {
      bytesPerJob,
      jobs: ids.length,
      baselineRss,
      peakRss,
      afterRss,
      samples,
      longestOutput: Math.max(...jobs.map((j) => str(j, 'output').length)),
      longestResult: Math.max(...results.map((r) => r.length)),
      followedUp: jobs.filter((j) => str(j, 'state') === 'followedUp').length,
      dbBytes: statSync(join(dir, 'baton.db')).size,
      orphans: processesUnder(dir).length,
    };
  } finally {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function memoryLine(m: MemorySummary): string {
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  return (
    `memory: ${m.jobs} jobs printing ${mib(m.bytesPerJob)} each, RSS ${mib(m.baselineRss)} before, ` +
    `peak ${mib(m.peakRss)} (+${mib(m.peakRss - m.baselineRss)}, ${m.samples} samples), ${mib(m.afterRss)} after; ` +
    `stored output at most ${m.longestOutput} chars, follow-up result at most ${m.longestResult} chars, ` +
    `database ${mib(m.dbBytes)}, ${m.followedUp} followed up, ${m.orphans} orphans`
  );
}
