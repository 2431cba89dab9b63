/**
 * The cluster campaign: three real `baton serve --store postgres` processes
 * on one fresh schema, two owners, load sent through random processes
 * (sessions, process and external jobs, completions, live turns), SIGKILLs
 * and SIGTERMs at random instants (some two at once, some right after a
 * restart), each killed process restarted on its own data dir, and one feed
 * client per owner per process that resumes with `since` after every
 * restart. Then everything is run to the end and counted (cluster-count.ts).
 */

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DATABASE_URL } from '../../multi/cluster.js';
import {
  countFeeds,
  countLeaks,
  countStore,
  readStore,
  type FeedCounts,
  type Leaks,
  type StoreCounts,
} from './cluster-count.js';
import { ClusterDriver, type DriverStats } from './cluster-driver.js';
import { FeedClients } from './cluster-feeds.js';
import {
  chooseKind,
  killEvent,
  type Aim,
  type KillPace,
  type KillRecord,
} from './cluster-kills.js';
import { OWNERS, planCluster, type ClusterSize } from './cluster-plan.js';
import { ServeSlots } from './cluster-procs.js';
import { startCrashAgent } from './crash-agent.js';
import { rng } from './rng.js';

const PROCESSES = 3;

export interface ClusterCampaignSize extends ClusterSize, KillPace {
  /** Kill events (one or two processes each). */
  kills: number;
  /**
   * The campaign gives up (and stops every process) after this, ms: set it
   * below the test's timeout, so that the cleanup runs before vitest ends
   * the worker and nothing is left running.
   */
  deadlineMs: number;
}

/** Requests on the wire at once, at most. */
const CONCURRENCY = 6;

export interface ClusterSummary {
  seed: number;
  kills: KillRecord[];
  events: number;
  driver: DriverStats;
  /** Work the driver could not get through by the end (empty when it did). */
  remaining: string[];
  /** Forwarded commands never done, and whether jobs and commands settled in time. */
  pendingCommands: number;
  settled: boolean;
  store: StoreCounts;
  feed: FeedCounts;
  leaks: Leaks;
  /** Exits nobody asked for, SIGTERMs that did not end with 0. */
  unexpectedExits: string[];
  finalExitCodes: (number | null)[];
  durationMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function serveArgs(agentUrl: string, appName: string): string[] {
  // The URL's application_name names every connection of the process (store and coordinator).
  const databaseUrl = new URL(DATABASE_URL);
  databaseUrl.searchParams.set('application_name', appName);
  return [
    '--store',
    'postgres',
    '--database-url',
    databaseUrl.toString(),
    // Two owners need a sandbox or `none`; the campaign is about kills, and
    // bubblewrap per job would only slow it down on two cores.
    '--sandbox',
    'none',
    '--agent',
    'openai',
    '--agent-url',
    agentUrl,
    '--agent-model',
    'fake-model',
    '--agent-timeout-s',
    '30',
    // Kills cut follow-ups: they are retried soon and often enough never to fail.
    '--max-attempts',
    '25',
    '--retry-base-ms',
    '20',
    '--retry-max-ms',
    '400',
  ];
}

export async function runClusterCampaign(
  opts: ClusterCampaignSize & { seed: number },
): Promise<ClusterSummary> {
  const started = Date.now();
  const schemaName = `baton_cluster_${process.pid}_${opts.seed}`;
  const schema = `"${schemaName}"`;
  const root = mkdtempSync(join(tmpdir(), 'baton-cluster-'));
  const dirs = Array.from({ length: PROCESSES }, (_, i) => join(root, `p${i}`));
  for (const dir of dirs) mkdirSync(dir);
  const sql = new pg.Pool({ connectionString: DATABASE_URL, max: 3 });
  const agent = await startCrashAgent();
  const slots = new ServeSlots({
    dirs,
    args: (appName) => serveArgs(agent.fake.url, appName),
    env: {
      BATON_TOKENS: OWNERS.map((o) => `${o.name}:${o.token}`).join(','),
      BATON_PG_SCHEMA: schemaName,
    },
    // Kept after the campaign: only a process that ended badly leaves its log there.
    logDir: join(tmpdir(), `baton-cluster-logs-${opts.seed}`),
  });
  const feeds = new FeedClients(slots, OWNERS);
  // One stream per concern, so that a replay with the same seed plans the same work and kills.
  const plan = planCluster(rng(opts.seed), opts);
  const killDice = rng(opts.seed + 1);
  const driver = new ClusterDriver(plan, slots, sql, schema, rng(opts.seed + 2));
  const kills: KillRecord[] = [];
  const aim: Aim = {
    inflight: () => driver.inflight,
    onSent: (listener) => (driver.onSent = listener),
    ownerSlot: async (sessionId) => {
      const { rows } = await sql.query<{ host: string | null }>(
        `SELECT owner_host AS host FROM ${schema}.sessions WHERE id = $1`,
        [sessionId],
      );
      const host = rows[0]?.host;
      return host ? slots.slotOfHost(host) : null;
    },
  };
  const run = async (): Promise<ClusterSummary> => {
    await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    // The first process creates the schema; the others start together.
    slots.start(0);
    await slots.current[0]?.proc.listening;
    for (let slot = 1; slot < PROCESSES; slot++) slots.start(slot);
    await slots.allListening(60_000);
    driver.start(CONCURRENCY);
    let restarted: number[] = [];
    // How long an event takes (gap, kill, restart), learnt as it goes: the load is spread over it.
    let eventMs = (opts.minGapMs + opts.maxGapMs) / 2 + slots.typicalStartupMs;
    for (let event = 0; event < opts.kills; event++) {
      const began = Date.now();
      driver.epoch = event;
      const quota = Math.ceil((driver.remaining() * 1.3) / (opts.kills - event)) + 2;
      driver.allow(quota);
      driver.pace(Math.min(3000, (2 * eventMs * CONCURRENCY) / quota));
      const kind = chooseKind(killDice, event);
      const done = await killEvent(slots, killDice, kind, event, restarted, opts, aim);
      kills.push(...done.records);
      restarted = done.restarted;
      eventMs = eventMs * 0.7 + (Date.now() - began) * 0.3;
    }
    await slots.allListening(60_000);
    const finished = await driver.finish(120_000);
    const remaining = finished ? [] : driver.describeRemaining();
    await driver.stop();
    const settled = await settle(sql, schema, 120_000);
    // The clients are judged up to the seqs stored once everything settled.
    const before = await readStore(sql, schema);
    await feeds.caughtUp(before.lastSeqs, 30_000);
    feeds.close();
    const finalExitCodes = await slots.stopAll();
    const store = await readStore(sql, schema);
    const pending = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema}.commands WHERE done_at IS NULL`,
    );
    return {
      seed: opts.seed,
      kills,
      events: opts.kills,
      driver: driver.stats,
      remaining,
      pendingCommands: pending.rows[0]?.n ?? 0,
      settled,
      store: countStore(store, driver.acked),
      feed: countFeeds(store, before.lastSeqs, feeds.clients),
      leaks: countLeaks(dirs, store.jobs, slots.alive()),
      unexpectedExits: slots.unexpected,
      finalExitCodes,
      durationMs: Date.now() - started,
    };
  };
  const running = run();
  // Past the deadline it goes on in the background against stopped processes; its end is moot.
  running.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the campaign took over ${opts.deadlineMs} ms (seed ${opts.seed})`)),
      opts.deadlineMs,
    );
  });
  try {
    return await Promise.race([running, overdue]);
  } finally {
    clearTimeout(timer);
    feeds.close();
    // Processes first: a request to a process that is gone ends at once, so the driver stops soon.
    await slots.killAll();
    await driver.stop();
    await agent.close();
    await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await sql.end();
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Waits until every job is final, every forwarded command done, and no
 * event has been stored for a while (a follow-up or turn still running
 * stores some); false after `timeoutMs` (what is left is then counted).
 */
async function settle(sql: pg.Pool, schema: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let head = -1;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    const { rows } = await sql.query<{ open: number; pending: number; head: number }>(
      `SELECT (SELECT count(*) FROM ${schema}.jobs
                WHERE state NOT IN ('followedUp', 'failed', 'cancelled', 'skipped'))::int AS open,
              (SELECT count(*) FROM ${schema}.commands WHERE done_at IS NULL)::int AS pending,
              (SELECT coalesce(sum(last_seq), 0) FROM ${schema}.owner_seq)::int AS head`,
    );
    const row = rows[0];
    if (row && row.head !== head) {
      head = row.head;
      quietSince = Date.now();
    }
    if (row && row.open === 0 && row.pending === 0 && Date.now() - quietSince > 1500) return true;
    await sleep(200);
  }
  return false;
}

/** The campaign's one-line summary. */
export function clusterSummaryLine(s: ClusterSummary): string {
  const k = s.kills;
  const count = (f: (r: KillRecord) => boolean) => k.filter(f).length;
  const doubles = new Set(k.filter((r) => r.kind === 'double').map((r) => r.event)).size;
  const st = s.store;
  const f = s.feed;
  const d = s.driver;
  const unavailable = Object.values(d.unavailable).reduce((a, b) => a + b, 0);
  const leaks = s.leaks.orphans.length + s.leaks.serves.length;
  return (
    `cluster: ${k.length} kills of ${PROCESSES} processes in ${s.events} events ` +
    `(${count((r) => r.signal === 'SIGKILL')} SIGKILL, ${count((r) => r.signal === 'SIGTERM')} SIGTERM; ` +
    `${doubles} two at once, ${count((r) => r.kind === 'afterRestart')} right after a restart, ` +
    `${count((r) => r.beforeListening)} before listening, ${count((r) => r.aimed === 'caller')} ` +
    `at a request's caller, ${count((r) => r.aimed === 'owner')} at its session's owner), ` +
    `${st.jobs} jobs (${st.processJobs} process, ${st.agentJobs} of them started by turns, ` +
    `${st.externalJobs} external), ${st.sessions} sessions of ${OWNERS.length} owners, ` +
    `${st.messages} messages, ${d.requests} requests through random processes ` +
    `(${d.answeredAcrossKill} answered across a kill, ${d.unanswered} unanswered and ` +
    `${unavailable} 503: ${d.foundStored} found stored, ` +
    `${d.foundMissing} sent again), ${f.clients} feed clients over ${f.connections} connections ` +
    `saw ${f.frames} frames; ${st.lost} lost, ${st.duplicated} duplicated, ` +
    `${st.interleaved} interleaved, ${st.unfinished} unfinished, ${f.gaps} feed gaps, ${leaks} leaks; ` +
    `${st.messagesTwice} stored twice, ${st.ackMissing} acknowledged-missing, ` +
    `${f.duplicates} frames twice, ${f.outOfOrder} out of order, ${f.foreign} of another owner, ` +
    `${st.storeGaps} store seq gaps, ${s.pendingCommands} commands never done, ` +
    `${st.misaccounted.length} misaccounted, ${st.lostProcesses} process jobs lost, ` +
    `${d.unexpected.length} unexpected answers, ${s.unexpectedExits.length} unexpected exits; ` +
    `${st.arrivedDuringFollowUp} user messages arrived during a follow-up, ` +
    `${st.turnsCut} live turns cut, ${st.turnsRunAgain} turns run again, ` +
    `${st.followedUp} followed up, ${st.failed} failed; ${Math.round(s.durationMs / 1000)} s ` +
    `(seed ${s.seed})`
  );
}
