/**
 * Counts, from the PostgreSQL schema, the job folders and what the feed
 * clients received, what the kills could have broken: jobs not final,
 * follow-ups lost or doubled, messages stored twice, follow-ups written into
 * a live turn, acknowledged writes missing, seqs missing from the store or
 * from a client (or seen twice, out of order, or not its owner's), process
 * jobs whose outcome contradicts their exit file, and processes left behind.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { processesUnder } from '../../support/processes.js';
import type { FeedClient } from './cluster-feeds.js';
import { answeredJobs, checkInterleaving, type OrderedMessage } from './interleaving.js';
import { membersOfGroups } from './orphans.js';

const FINAL = new Set(['followedUp', 'failed', 'cancelled', 'skipped']);

export interface StoreCounts {
  sessions: number;
  jobs: number;
  processJobs: number;
  externalJobs: number;
  /** Jobs started by the agent for a `bg` message. */
  agentJobs: number;
  messages: number;
  followedUp: number;
  failed: number;
  unfinished: number;
  /**
   * Final jobs with no continuation or notice. The campaign neither cancels
   * jobs nor deletes sessions, so every job must end followed up or failed
   * with its notice: a `cancelled` or `skipped` one is lost too.
   */
  lost: number;
  /** Jobs with more than one continuation or notice. */
  duplicated: number;
  /** The same user text stored twice, or two answers to one turn. */
  messagesTwice: number;
  /** Follow-ups that took the lock ahead of a waiting live turn, or wrote during one. */
  interleaved: number;
  interleavings: string[];
  /** Follow-ups stored between a user message and its answer because they held the lock first. */
  arrivedDuringFollowUp: number;
  /** User messages with no answer: their live turn was cut by a kill and not run again. */
  turnsCut: number;
  /** Turns started more than once (run again by the process that took their session over). */
  turnsRunAgain: number;
  /** Acknowledged (2xx) sessions, jobs and messages not in the store. */
  ackMissing: number;
  /** Seqs missing from the store's events of an owner, or not matching `owner_seq`. */
  storeGaps: number;
  /** Process jobs whose stored outcome, exit code or output contradicts their exit file. */
  misaccounted: string[];
  /** Process jobs ended `lost`: nothing kills a job's process here, and all run on this machine. */
  lostProcesses: number;
  /** Each owner's last seq. */
  lastSeqs: Map<string, number>;
}

export interface FeedCounts {
  clients: number;
  connections: number;
  frames: number;
  /** Seqs of a client's owner (1..last) the client never received. */
  gaps: number;
  /** Seqs a client received more than once. */
  duplicates: number;
  /** Seqs received after a later one. */
  outOfOrder: number;
  /** Frames that are not the client owner's: another session's owner, or not its stored event. */
  foreign: number;
  /** Error frames sent to the clients (none is expected). */
  errors: string[];
  /** Connections that ended under a live process (not a fault by itself: the client resumes). */
  unexpectedCloses: number;
  /** Where the gaps, duplicates and foreign frames are, a few per client. */
  details: string[];
}

export interface Leaks {
  /** Live processes of a data dir (a job wrapper, a server) or of a job's process group. */
  orphans: number[];
  /** `baton serve` processes of the campaign still alive. */
  serves: number[];
}

interface JobRecord {
  id: string;
  session_id: string;
  command: string | null;
  external: boolean;
  state: string;
  outcome: string | null;
  exit_code: number | null;
  output: string;
  process: Record<string, unknown> | null;
}

interface EventRecord {
  owner: string;
  seq: number;
  type: string;
  session_id: string | null;
  turn_id: string | null;
  data: Record<string, unknown>;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

export interface ClusterStore {
  sessions: { id: string; owner: string }[];
  jobs: JobRecord[];
  messages: OrderedMessage[];
  userTexts: Map<string, number>;
  events: EventRecord[];
  lastSeqs: Map<string, number>;
}

/** Reads what the campaign judges from the schema (`schema` quoted). */
export async function readStore(sql: pg.Pool, schema: string): Promise<ClusterStore> {
  const sessions = await sql.query<{ id: string; owner: string }>(
    `SELECT id, owner FROM ${schema}.sessions`,
  );
  const jobs = await sql.query<JobRecord>(
    `SELECT id, session_id, command, external, state, outcome, exit_code, output, process
       FROM ${schema}.jobs`,
  );
  const messages = await sql.query<{
    id: string;
    session_id: string;
    role: string;
    content: string;
    metadata: unknown;
  }>(`SELECT id, session_id, role, content, metadata FROM ${schema}.messages ORDER BY ordinal`);
  const events = await sql.query<EventRecord>(
    `SELECT owner, seq::int AS seq, type, session_id, turn_id, data
       FROM ${schema}.events ORDER BY owner, seq`,
  );
  const lastSeqs = await sql.query<{ owner: string; last_seq: number }>(
    `SELECT owner, last_seq::int AS last_seq FROM ${schema}.owner_seq`,
  );
  const userTexts = new Map<string, number>();
  for (const m of messages.rows) {
    if (m.role === 'user') userTexts.set(m.content, (userTexts.get(m.content) ?? 0) + 1);
  }
  return {
    sessions: sessions.rows,
    jobs: jobs.rows,
    messages: messages.rows.map((m) => ({
      id: m.id,
      sessionId: m.session_id,
      role: m.role,
      meta: record(m.metadata),
    })),
    userTexts,
    events: events.rows.map((e) => ({ ...e, data: record(e.data) })),
    lastSeqs: new Map(lastSeqs.rows.map((r) => [r.owner, r.last_seq])),
  };
}

export function countStore(
  store: ClusterStore,
  acked: { sessions: Set<string>; jobs: Set<string>; messages: Set<string> },
): StoreCounts {
  const answers = new Map<string, number>();
  const turnAnswers = new Map<string, number>();
  for (const m of store.messages) {
    for (const id of answeredJobs(m.meta)) answers.set(id, (answers.get(id) ?? 0) + 1);
    const turnId = m.meta['turnId'];
    if (m.role === 'assistant' && typeof turnId === 'string') {
      turnAnswers.set(turnId, (turnAnswers.get(turnId) ?? 0) + 1);
    }
  }
  const sessionEvents = store.events
    .filter((e) =>
      ['message.created', 'session.lock', 'turn.started', 'turn.finished'].includes(e.type),
    )
    .map((e) => ({
      seq: e.seq,
      sessionId: e.session_id,
      type: e.type,
      turnId: e.turn_id,
      data: e.data,
    }));
  const interleaving = checkInterleaving(store.messages, sessionEvents);
  const starts = new Map<string, number>();
  for (const e of sessionEvents) {
    if (e.type === 'turn.started' && e.turnId)
      starts.set(e.turnId, (starts.get(e.turnId) ?? 0) + 1);
  }

  let lost = 0;
  let duplicated = 0;
  let unfinished = 0;
  for (const job of store.jobs) {
    const n = answers.get(job.id) ?? 0;
    if (!FINAL.has(job.state)) unfinished++;
    else if (n === 0) lost++;
    if (n > 1) duplicated++;
  }

  const sessionIds = new Set(store.sessions.map((s) => s.id));
  const jobIds = new Set(store.jobs.map((j) => j.id));
  let ackMissing = 0;
  for (const id of acked.sessions) if (!sessionIds.has(id)) ackMissing++;
  for (const id of acked.jobs) if (!jobIds.has(id)) ackMissing++;
  for (const text of acked.messages) if (!store.userTexts.has(text)) ackMissing++;

  let storeGaps = 0;
  const expected = new Map<string, number>();
  for (const { owner, seq } of store.events) {
    if (seq !== (expected.get(owner) ?? 0) + 1) storeGaps++;
    expected.set(owner, seq);
  }
  for (const [owner, last] of store.lastSeqs) if ((expected.get(owner) ?? 0) !== last) storeGaps++;

  const processJobs = store.jobs.filter((j) => !j.external && j.command !== null);
  const twice =
    [...store.userTexts.values()].filter((n) => n > 1).length +
    [...turnAnswers.values()].filter((n) => n > 1).length;
  return {
    sessions: store.sessions.length,
    jobs: store.jobs.length,
    processJobs: processJobs.length,
    externalJobs: store.jobs.filter((j) => j.external).length,
    agentJobs: processJobs.filter((j) => /echo bg-\d+$/.test(j.command ?? '')).length,
    messages: store.messages.length,
    followedUp: store.jobs.filter((j) => j.state === 'followedUp').length,
    failed: store.jobs.filter((j) => j.state === 'failed').length,
    unfinished,
    lost,
    duplicated,
    messagesTwice: twice,
    interleaved: interleaving.interleavings.length,
    interleavings: interleaving.interleavings.map((entry) => explain(entry, store, starts)),
    arrivedDuringFollowUp: interleaving.arrivedDuringFollowUp,
    turnsCut: interleaving.turnsCut,
    turnsRunAgain: [...starts.values()].filter((n) => n > 1).length,
    ackMissing,
    storeGaps,
    misaccounted: misaccounted(processJobs),
    lostProcesses: processJobs.filter((j) => j.outcome === 'lost').length,
    lastSeqs: store.lastSeqs,
  };
}

/**
 * An interleaving with what led to it: whether its turn was started more
 * than once (run again by the process that took the session over), and the
 * session's events from the user's message to the answer.
 */
function explain(entry: string, store: ClusterStore, starts: Map<string, number>): string {
  const ids = entry.split(' < ');
  const user = store.messages.find((m) => m.id === ids[0]);
  const answer = store.messages.find((m) => m.id === ids[2]);
  if (!user || !answer) return entry;
  const turnId = String(user.meta['turnId']);
  const seqOf = (id: string) =>
    store.events.find((e) => e.type === 'message.created' && record(e.data['message'])['id'] === id)
      ?.seq;
  const from = seqOf(user.id) ?? 0;
  const to = seqOf(answer.id) ?? from;
  const trace = store.events
    .filter((e) => e.session_id === user.sessionId && e.seq >= from && e.seq <= to)
    .map((e) => {
      const holder = record(e.data['holder']);
      const what =
        e.type === 'session.lock'
          ? `${holder['kind'] ?? 'free'}:${holder['id'] ?? ''}`
          : e.type === 'message.created'
            ? String(record(e.data['message'])['id'])
            : (e.turn_id ?? '');
      return `${e.seq} ${e.type} ${what}`;
    });
  const more = trace.length > 24 ? ` … ${trace.length - 24} more` : '';
  return (
    `${entry} (turn ${turnId} started ${starts.get(turnId) ?? 0} times; ` +
    `events: ${trace.slice(0, 24).join(', ')}${more})`
  );
}

/** Compares every process job's stored result with what its wrapper left in its folder. */
function misaccounted(jobs: JobRecord[]): string[] {
  const out: string[] = [];
  for (const job of jobs) {
    const problem = (what: string) => out.push(`${job.id} (${job.command}): ${what}`);
    const dir = job.process?.['dir'];
    if (typeof dir !== 'string') {
      if (job.outcome !== 'lost') problem(`no process recorded but outcome ${job.outcome}`);
      continue;
    }
    const exitFile = join(dir, 'exit');
    if (!existsSync(exitFile)) {
      if (job.outcome !== 'lost') problem(`no exit file but outcome ${job.outcome}`);
      continue;
    }
    const code = Number(readFileSync(exitFile, 'utf8').trim());
    const outcome = code === 0 ? 'succeeded' : 'failed';
    if (job.outcome !== outcome || job.exit_code !== code) {
      problem(`exit file says ${code} but stored ${job.outcome}/${job.exit_code} (${job.state})`);
      continue;
    }
    const marker = /echo (\S+)$/.exec(job.command ?? '')?.[1];
    if (code === 0 && marker && !job.output.includes(marker)) problem('output is missing');
  }
  return out;
}

/**
 * Judges what each feed client received against its owner's stored events:
 * it must have every seq from 1 to `lastSeqs` (the owner's last seq when the
 * clients were closed) once, in order, and nothing that is not its owner's.
 */
export function countFeeds(
  store: ClusterStore,
  lastSeqs: ReadonlyMap<string, number>,
  clients: readonly FeedClient[],
): FeedCounts {
  const sessionOwner = new Map(store.sessions.map((s) => [s.id, s.owner]));
  const byOwner = new Map<string, Map<number, EventRecord>>();
  for (const e of store.events) {
    let events = byOwner.get(e.owner);
    if (!events) byOwner.set(e.owner, (events = new Map()));
    events.set(e.seq, e);
  }
  const counts: FeedCounts = {
    clients: clients.length,
    connections: 0,
    frames: 0,
    gaps: 0,
    duplicates: 0,
    outOfOrder: 0,
    foreign: 0,
    errors: [],
    unexpectedCloses: 0,
    details: [],
  };
  for (const client of clients) {
    const name = `${client.owner}@slot${client.slot}`;
    const stored = byOwner.get(client.owner) ?? new Map<number, EventRecord>();
    const last = lastSeqs.get(client.owner) ?? 0;
    counts.connections += client.connections;
    counts.frames += client.frames.length;
    counts.unexpectedCloses += client.unexpectedCloses;
    counts.errors.push(...client.errors.map((e) => `${name}: ${e}`));
    const seen = new Set<number>();
    let highest = 0;
    const notes: string[] = [];
    for (const frame of client.frames) {
      if (frame.seq === null) {
        // Live-only frames have no seq; their session still says whose they are.
        const owner = frame.sessionId === null ? null : sessionOwner.get(frame.sessionId);
        if (frame.sessionId !== null && owner !== client.owner) {
          counts.foreign++;
          notes.push(`${frame.type} of session ${frame.sessionId} (owner ${owner ?? 'unknown'})`);
        }
        continue;
      }
      const event = stored.get(frame.seq);
      if (!event || event.type !== frame.type || event.session_id !== frame.sessionId) {
        counts.foreign++;
        notes.push(`seq ${frame.seq} ${frame.type} is not ${client.owner}'s ${event?.type ?? '-'}`);
      }
      if (seen.has(frame.seq)) {
        counts.duplicates++;
        notes.push(`seq ${frame.seq} twice`);
      } else if (frame.seq < highest) {
        counts.outOfOrder++;
        notes.push(`seq ${frame.seq} after ${highest}`);
      }
      seen.add(frame.seq);
      highest = Math.max(highest, frame.seq);
    }
    const missing: number[] = [];
    for (let seq = 1; seq <= last; seq++) if (!seen.has(seq)) missing.push(seq);
    counts.gaps += missing.length;
    if (missing.length > 0) notes.push(`missing ${ranges(missing)} of 1..${last}`);
    if (notes.length > 0) counts.details.push(`${name}: ${notes.slice(0, 4).join('; ')}`);
  }
  return counts;
}

/** `1357-1358, 1400` */
function ranges(seqs: number[]): string {
  const out: string[] = [];
  let start = seqs[0] ?? 0;
  let prev = start;
  for (const seq of [...seqs.slice(1), Number.NaN]) {
    if (seq === prev + 1) {
      prev = seq;
      continue;
    }
    out.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = seq;
    prev = seq;
  }
  return out.slice(0, 6).join(', ') + (out.length > 6 ? ', …' : '');
}

/** Processes left behind: under a data dir, or in the group of any job's wrapper. */
export function countLeaks(
  dirs: readonly string[],
  jobs: readonly { process: Record<string, unknown> | null }[],
  serves: number[],
): Leaks {
  const groups = new Set<number>();
  for (const job of jobs) {
    const pid = job.process?.['pid'];
    if (typeof pid === 'number') groups.add(pid);
  }
  // A wrapper whose pid never reached the store still wrote its pid file.
  for (const dir of dirs) {
    const jobsDir = join(dir, 'jobs');
    if (!existsSync(jobsDir)) continue;
    for (const id of readdirSync(jobsDir)) {
      try {
        const pid = Number(readFileSync(join(jobsDir, id, 'pid'), 'utf8').trim());
        if (Number.isSafeInteger(pid) && pid > 0) groups.add(pid);
      } catch {
        // No pid file: the wrapper never ran.
      }
    }
  }
  const orphans = new Set([...dirs.flatMap((d) => processesUnder(d)), ...membersOfGroups(groups)]);
  return { orphans: [...orphans], serves };
}
