/**
 * Campaign 5, full disk: `baton serve` with its data dir on an 8 MiB tmpfs,
 * filled up while it runs. (Once freed, the room left must hold the WAL of
 * what the flow sends then: a message that waits for its turn is written
 * twice, 200 KiB messages and their echoed answers do not fit in 4 MiB.) Writes must answer 503 `store_unavailable` (and
 * store nothing), the service must keep running and reading, and once space
 * is freed the refused writes go through, every job completes, and the
 * SQLite file passes `PRAGMA integrity_check`.
 */

import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { processesUnder } from '../../support/processes.js';
import { callApi, errorCode, get, list, str, type ApiReply } from './api.js';
import { answeredJobs } from './interleaving.js';
import { spawnServe } from './cli.js';

const TOKEN = 'disk-token-0123456789';

export interface DiskSummary {
  /** Writes tried while the disk was full, and how they were answered. */
  tried: number;
  unavailable: number;
  otherErrors: string[];
  /** Refused messages found stored before they were sent again (must be 0). */
  refusedButStored: number;
  aliveWhileFull: boolean;
  readsWhileFull: boolean;
  /** After freeing space: resent writes accepted, jobs final, answered once each. */
  resent: number;
  resentAccepted: number;
  jobs: number;
  answeredOnce: number;
  exitCode: number | null;
  integrity: string;
  orphans: number;
}

/** Mounts a tmpfs of `size` on a new directory; null when mounting is not allowed here. */
export function mountTmpfs(size: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'baton-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Writes zeros to `path` until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where the flow runs: a server, and how to fill and free its disk. */
export interface DiskEnv {
  url: string;
  token: string;
  dir: string;
  fill(): void;
  free(): void;
  alive(): boolean;
  /** Stops the service gracefully; resolves with its exit code (0 for a clean stop). */
  stop(): Promise<number | null>;
}

/** `baton serve` on a real tmpfs that the flow fills with a file. */
export async function runFullDisk(dir: string): Promise<DiskSummary> {
  const proc = spawnServe(dir, ['--token', TOKEN, '--agent', 'offline']);
  try {
    const url = await proc.listening;
    return await diskFlow({
      url,
      token: TOKEN,
      dir,
      fill: () => fill(join(dir, 'filler')),
      free: () => unlinkSync(join(dir, 'filler')),
      alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
      stop: () => proc.stop(),
    });
  } finally {
    await proc.kill();
  }
}

export async function diskFlow(env: DiskEnv): Promise<DiskSummary> {
  const { url, dir } = env;
  const api = (method: string, path: string, body?: unknown): Promise<ApiReply> =>
    callApi(url, env.token, method, path, body);
  const session = str((await api('POST', '/v1/sessions', { title: 'full disk' })).body, 'id');
  const external = str(
    (await api('POST', `/v1/sessions/${session}/jobs`, { external: true })).body,
    'id',
  );
  await api('POST', `/v1/sessions/${session}/jobs`, {
    command: 'sleep 1; echo finished-while-full',
  });

  env.fill();
  const summary: DiskSummary = {
    tried: 0,
    unavailable: 0,
    otherErrors: [],
    refusedButStored: 0,
    aliveWhileFull: false,
    readsWhileFull: false,
    resent: 0,
    resentAccepted: 0,
    jobs: 0,
    answeredOnce: 0,
    exitCode: null,
    integrity: '',
    orphans: 0,
  };
  // Large messages, until the WAL's spare room is used up and writes fail; then a few more.
  const refused: string[] = [];
  for (let i = 0; i < 60 && refused.length < 5; i++) {
    const content = `m${i} ${'x'.repeat(200 * 1024)}`;
    const reply = await api('POST', `/v1/sessions/${session}/messages`, { content });
    summary.tried++;
    if (reply.status === 503 && errorCode(reply.body) === 'store_unavailable') {
      summary.unavailable++;
      refused.push(content);
    } else if (reply.status !== 202) {
      summary.otherErrors.push(`${reply.status} ${errorCode(reply.body)}`);
    }
  }
  const completion = await api('POST', `/v1/jobs/${external}/complete`, {
    exitCode: 0,
    output: 'x',
  });
  summary.tried++;
  if (completion.status === 503) summary.unavailable++;
  else summary.otherErrors.push(`complete: ${completion.status} ${errorCode(completion.body)}`);
  const created = await api('POST', '/v1/sessions', { title: 'while full' });
  summary.tried++;
  if (created.status === 503) summary.unavailable++;
  else summary.otherErrors.push(`create session: ${created.status} ${errorCode(created.body)}`);

  await sleep(1500); // The process job ends meanwhile; its writes fail too.
  summary.aliveWhileFull = env.alive() && (await fetch(`${url}/healthz`)).status === 200;
  const stored = list((await api('GET', `/v1/sessions/${session}/messages`)).body, 'messages');
  summary.readsWhileFull = stored.length >= 0 && (await api('GET', '/v1/jobs')).status === 200;
  const contents = new Set(stored.map((m) => str(m, 'content')));
  summary.refusedButStored = refused.filter((c) => contents.has(c)).length;

  env.free();
  for (const content of refused) {
    summary.resent++;
    if ((await api('POST', `/v1/sessions/${session}/messages`, { content })).status === 202)
      summary.resentAccepted++;
  }
  const again = await api('POST', `/v1/jobs/${external}/complete`, { exitCode: 0, output: 'x' });
  if (again.status !== 200)
    summary.otherErrors.push(`complete after: ${again.status} ${errorCode(again.body)}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const jobs = list((await api('GET', '/v1/jobs')).body, 'jobs');
    if (jobs.every((j) => ['followedUp', 'failed'].includes(str(j, 'state')))) {
      summary.jobs = jobs.length;
      break;
    }
    if (Date.now() > deadline)
      throw new Error(
        `jobs never became final: ${JSON.stringify(jobs.map((j) => [str(j, 'id'), str(j, 'state'), get(j, 'why')]))}`,
      );
    await sleep(50);
  }
  const messages = list((await api('GET', `/v1/sessions/${session}/messages`)).body, 'messages');
  const jobIds = list((await api('GET', '/v1/jobs')).body, 'jobs').map((j) => str(j, 'id'));
  const answers = messages.flatMap((m) => {
    const meta = get(m, 'metadata');
    return answeredJobs(
      typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {},
    );
  });
  summary.answeredOnce = jobIds.filter((id) => answers.filter((a) => a === id).length === 1).length;
  summary.exitCode = await env.stop();
  const db = new Database(join(dir, 'baton.db'), { readonly: true });
  summary.integrity = String(db.pragma('integrity_check', { simple: true }));
  db.close();
  summary.orphans = processesUnder(dir).length;
  return summary;
}

export function diskLine(d: DiskSummary, how: string): string {
  return (
    `disk (${how}): ${d.tried} writes on a full disk, ${d.unavailable} answered 503 store_unavailable, ` +
    `${d.otherErrors.length} other errors, ${d.refusedButStored} refused writes found stored, service ` +
    `${d.aliveWhileFull ? 'kept running' : 'DIED'} and ${d.readsWhileFull ? 'kept reading' : 'could not read'}; ` +
    `after freeing space ${d.resentAccepted}/${d.resent} resent writes accepted, ${d.answeredOnce}/${d.jobs} ` +
    `jobs answered once, exit ${d.exitCode}, integrity_check ${d.integrity}, ${d.orphans} orphans`
  );
}
