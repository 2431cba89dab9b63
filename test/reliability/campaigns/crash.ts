/**
 * Campaign 1, crashes: the real `baton serve` on SQLite, driven over HTTP
 * with sessions, process and external jobs and live turns, SIGKILLed at
 * aimed and random instants and restarted on the same data dir each time;
 * then run to the end and counted (see crash-count.ts).
 */

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { callApi, get, list, NetworkError, str } from './api.js';
import { spawnServe, type ServeProcess } from './cli.js';
import { startCrashAgent, triggerJobIds, type CrashAgent } from './crash-agent.js';
import { countCrash, type CrashCounts } from './crash-count.js';
import { CrashDriver, type DriverStats } from './crash-driver.js';
import { chooseMode, killMoment, type KillMode } from './crash-kills.js';
import { FeedTap } from './feed-tap.js';
import { planCrash } from './crash-plan.js';
import { rng } from './rng.js';

const TOKEN = 'crash-campaign-token-0123456789';
const FINAL = new Set(['followedUp', 'failed', 'cancelled', 'skipped']);

export interface CrashSize {
  sessions: number;
  jobs: number;
  kills: number;
  /** Longest wait for a random kill after the listening line, ms. @defaultValue 800 */
  maxRandomMs?: number;
}

export interface KillRecord {
  mode: KillMode;
  /** ms after the spawn. */
  afterMs: number;
  beforeListening: boolean;
  /** Landed before the `recovered unfinished jobs` line of a start that had jobs to recover. */
  beforeRecovered: boolean;
  jobStartsInFlight: number;
  /** Agent calls whose stream the kill cut. */
  streamsCut: number;
  openai: boolean;
  /** A commit kill: the job whose last answer chunk had just reached the feed. */
  targetJobId: string | null;
  /** `performance.now()` and `Date.now()` at the kill. */
  perf: number;
  epochMs: number;
}

export interface CrashSummary extends CrashCounts {
  seed: number;
  kills: KillRecord[];
  driver: DriverStats;
  /** Agent replies streamed to the end whose commit a kill prevented (answered again later). */
  repliesNotCommitted: number;
  /** Commit kills (at the last chunk of a follow-up) that landed before / after its commit. */
  commitKills: { before: number; after: number };
  /** Times `baton serve` exited without being killed, with the tail of its log. */
  unexpectedExits: string[];
  finalExitCode: number | null;
  durationMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function serveArgs(agent: CrashAgent, openai: boolean): string[] {
  const policy = ['--max-attempts', '25', '--retry-base-ms', '20', '--retry-max-ms', '400'];
  const model = openai
    ? ['--agent', 'openai', '--agent-url', agent.fake.url, '--agent-model', 'fake-model']
    : ['--agent', 'offline'];
  return ['--token', TOKEN, '--agent-timeout-s', '30', ...policy, ...model];
}

export async function runCrashCampaign(
  opts: CrashSize & { dir: string; seed: number },
): Promise<CrashSummary> {
  const started = Date.now();
  const r = rng(opts.seed);
  const plan = planCrash(r, opts);
  const driver = new CrashDriver(plan, TOKEN, r);
  const agent = await startCrashAgent();
  const kills: KillRecord[] = [];
  const tap = new FeedTap();
  const unexpectedExits: string[] = [];
  let startupMs = 700;
  let hadUnfinished = false;
  let proc: ServeProcess | null = null;
  try {
    for (let k = 0; k < opts.kills; k++) {
      driver.epoch = k;
      const openai = k % 2 === 1;
      const current = spawnServe(opts.dir, serveArgs(agent, openai));
      proc = current;
      // The first two kills land one very early and one under load, whatever the dice say.
      const mode = k === 0 ? 'startup' : k === 1 ? 'random' : chooseMode(r, openai);
      const quota = Math.ceil(driver.remaining() / Math.max(1, (opts.kills - k) * 0.6)) + 2;
      const driving = (async () => {
        let url: string;
        try {
          url = await current.listening;
        } catch {
          return;
        }
        tap.open(url, TOKEN);
        try {
          await driver.reconcile(url);
          await driver.work(url, quota);
        } catch (error) {
          if (!(error instanceof NetworkError)) throw error;
        }
      })();
      let exitedEarly = false;
      void current.exited.then(() => (exitedEarly = true));
      const target = await killMoment(mode, {
        proc: current,
        driver,
        agent,
        openai,
        // The first start is killed well before it could listen (node alone takes longer).
        startupMs: k === 0 ? 250 : startupMs,
        r,
        tap,
        maxRandomMs: opts.maxRandomMs ?? 800,
      });
      if (exitedEarly) unexpectedExits.push(current.log.slice(-5).join('\n'));
      kills.push({
        mode,
        afterMs: Date.now() - current.spawnedAt,
        beforeListening: current.url === null,
        beforeRecovered: current.recoveredAt === null,
        jobStartsInFlight: driver.inflightStarts,
        streamsCut: 0,
        openai,
        targetJobId: target.jobId,
        perf: performance.now(),
        epochMs: Date.now(),
      });
      await current.kill();
      tap.close();
      await driving;
      // Only a start with unfinished jobs prints the recovery line; without one, nothing was recovered.
      const record = kills[kills.length - 1];
      if (record && record.beforeRecovered) record.beforeRecovered = hadUnfinished;
      hadUnfinished = await unfinishedIn(opts.dir);
      if (current.listeningAt !== null) {
        startupMs = startupMs * 0.8 + (current.listeningAt - current.spawnedAt) * 0.2;
      }
    }
    driver.final = true;
    proc = spawnServe(opts.dir, serveArgs(agent, false));
    const url = await proc.listening;
    await finish(driver, url);
    const finalExitCode = await proc.stop();
    proc = null;
    const streams = agent.fake.requests;
    for (const kill of kills) {
      kill.streamsCut = streams.filter(
        (q) => q.at < kill.perf && q.clientClosedAt !== null && q.clientClosedAt >= kill.perf - 1,
      ).length;
    }
    const counts = countCrash(
      opts.dir,
      driver.acked,
      kills.map((k) => k.epochMs),
    );
    return {
      ...counts,
      seed: opts.seed,
      kills,
      driver: driver.stats,
      repliesNotCommitted: repliesNotCommitted(agent),
      commitKills: commitKills(opts.dir, kills),
      unexpectedExits,
      finalExitCode,
      durationMs: Date.now() - started,
    };
  } finally {
    tap.close();
    await proc?.kill();
    await agent.close();
  }
}

/** Whether the store holds unfinished jobs (so that the next start has something to recover). */
async function unfinishedIn(dir: string): Promise<boolean> {
  let db: Database.Database | null = null;
  try {
    db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
    const row = db
      .prepare<[], { n: number }>(
        `SELECT count(*) AS n FROM jobs WHERE state NOT IN ('followedUp', 'failed', 'cancelled', 'skipped')`,
      )
      .get();
    return (row?.n ?? 0) > 0;
  } catch {
    // No database yet, or not readable between two runs: nothing to recover that we know of.
    return false;
  } finally {
    db?.close();
  }
}

/**
 * Sends whatever work is left, then waits until every job is final and every
 * session idle (a live turn run again after the last kill holds its lock
 * until it is answered).
 */
async function finish(driver: CrashDriver, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (driver.remaining() > 0) {
    if (Date.now() > deadline) {
      throw new Error(
        `${driver.remaining()} requests never went through: ${driver.describeRemaining()}`,
      );
    }
    await driver.reconcile(url);
    await driver.work(url, Number.POSITIVE_INFINITY);
    if (driver.remaining() > 0) await sleep(100);
  }
  for (;;) {
    const { body } = await callApi(url, TOKEN, 'GET', '/v1/jobs');
    const open = list(body, 'jobs').filter((j) => !FINAL.has(str(j, 'state')));
    if (open.length === 0 && (await allIdle(url))) return;
    if (Date.now() > deadline) {
      const sample = open
        .slice(0, 3)
        .map((j) => `${str(j, 'id')} ${str(j, 'state')}: ${str(j, 'why')}`);
      throw new Error(`${open.length} jobs never became final, e.g. ${sample.join('; ')}`);
    }
    await sleep(250);
  }
}

async function allIdle(url: string): Promise<boolean> {
  const { body } = await callApi(url, TOKEN, 'GET', '/v1/sessions');
  return list(body, 'sessions').every((s) => {
    const lock = get(s, 'lock') as { lock?: string; queue?: unknown[] } | undefined;
    return lock?.lock === 'idle' && (lock.queue?.length ?? 0) === 0;
  });
}

/** Follow-up replies streamed to the end whose jobs the agent was asked about again later. */
function repliesNotCommitted(agent: CrashAgent): number {
  const complete = agent.fake.requests
    .filter((q) => q.clientClosedAt === null)
    .map((q) => {
      const user = [...q.body.messages].reverse().find((m) => m.role === 'user');
      return triggerJobIds(typeof user?.content === 'string' ? user.content : '');
    })
    .filter((ids) => ids.length > 0);
  return complete.filter((ids, i) =>
    complete.slice(i + 1).some((later) => later.some((id) => ids.includes(id))),
  ).length;
}

/** Whether each commit kill's job had its `followedUp` stored before the kill. */
function commitKills(dir: string, kills: KillRecord[]): { before: number; after: number } {
  const db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
  try {
    const history = db.prepare<[string], { history: string }>(
      'SELECT history FROM jobs WHERE id = ?',
    );
    let before = 0;
    let after = 0;
    for (const kill of kills) {
      if (kill.targetJobId === null) continue;
      const entries: unknown = JSON.parse(history.get(kill.targetJobId)?.history ?? '[]');
      const done = (Array.isArray(entries) ? entries : []).find(
        (e) => get(e, 'state') === 'followedUp',
      );
      const at = Date.parse(str(done, 'at'));
      if (Number.isFinite(at) && at <= kill.epochMs) before++;
      else after++;
    }
    return { before, after };
  } finally {
    db.close();
  }
}

/** The campaign's one-line summary (printed last). */
export function crashSummaryLine(s: CrashSummary): string {
  const by = (mode: KillMode) => s.kills.filter((k) => k.mode === mode).length;
  const early = s.kills.filter((k) => k.beforeListening).length;
  const inRecovery = s.kills.filter((k) => k.beforeListening && k.beforeRecovered).length;
  const duringStart = s.kills.filter((k) => k.jobStartsInFlight > 0).length;
  const duringStream = s.kills.filter((k) => k.streamsCut > 0).length;
  return (
    `crash: ${s.kills.length} kills (${early} before listening, ${inRecovery} of them before recovery ` +
    `had finished, ${by('recovery')} aimed at recovery, ` +
    `${duringStart} during job start, ${duringStream} during agent streaming, ` +
    `${s.commitKills.before + s.commitKills.after} at a follow-up's last chunk: ${s.commitKills.after} ` +
    `before its commit, ${s.commitKills.before} after), ${s.jobs} jobs, ${s.sessions} sessions, ` +
    `${s.messages} messages, ${s.lost} lost, ${s.duplicated} duplicated, ${s.interleaved} interleaved, ` +
    `${s.messagesTwice} stored twice, ${s.unfinished} unfinished, ${s.ackMissing} acknowledged-missing, ` +
    `${s.eventGaps} seq gaps, ${s.readopted} re-adopted, ${s.misaccounted.length} misaccounted, ` +
    `${s.orphans.length} orphans; ${s.arrivedDuringFollowUp} user messages arrived during a follow-up, ` +
    `${s.turnsCut} live turns cut by a kill, ${s.lostProcesses} process jobs lost (seed ${s.seed})`
  );
}
