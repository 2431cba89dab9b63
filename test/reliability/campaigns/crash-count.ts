/**
 * Counts, from the SQLite file (opened read-only) and the job directories,
 * what the kills could have broken: jobs not final, follow-ups lost or
 * doubled, messages stored twice, live turns interleaved with a follow-up,
 * acknowledged writes missing, feed seqs with gaps, processes whose outcome
 * does not match what they recorded, and processes left running.
 */

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { processesUnder } from '../../support/processes.js';
import { answeredJobs, checkInterleaving, type OrderedMessage } from './interleaving.js';
import { membersOfGroups } from './orphans.js';

const FINAL = new Set(['followedUp', 'failed', 'cancelled', 'skipped']);

export interface CrashCounts {
  sessions: number;
  jobs: number;
  processJobs: number;
  messages: number;
  followedUp: number;
  failed: number;
  unfinished: number;
  /** followedUp/failed jobs with no continuation or notice. */
  lost: number;
  /** Jobs with more than one continuation or notice. */
  duplicated: number;
  /** Messages stored twice (the same user text, or two answers to one turn). */
  messagesTwice: number;
  /** Follow-ups that took the lock ahead of a waiting live turn, or wrote during one. */
  interleaved: number;
  /** The message ids of each interleaving (see interleaving.ts). */
  interleavings: string[];
  /** Follow-ups stored between a user message and its answer because they held the lock when it came. */
  arrivedDuringFollowUp: number;
  /** Acknowledged (2xx) sessions, jobs and messages not in the store. */
  ackMissing: number;
  /** Feed seqs missing or out of order. */
  eventGaps: number;
  /** Process jobs whose process was running at a kill (re-adopted, or collected from its exit file). */
  readopted: number;
  /** Process jobs whose stored outcome, exit code or output contradicts their exit file. */
  misaccounted: string[];
  /** Live processes of the data dir or of a job's group. */
  orphans: number[];
  /** Live turns whose user message is stored but which a kill cut before the answer. */
  turnsCut: number;
  /** Process jobs ended `lost` (nothing kills a job's process here: each must have run). */
  lostProcesses: number;
}

interface JobRecord {
  id: string;
  session_id: string;
  command: string | null;
  state: string;
  outcome: string | null;
  exit_code: number | null;
  output: string;
  process: string | null;
}

interface EventRecord {
  seq: number;
  session_id: string | null;
  type: string;
  turn_id: string | null;
  data: string;
}

interface MessageRecord {
  id: string;
  session_id: string;
  role: string;
  content: string;
  metadata: string;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

export function countCrash(
  dir: string,
  acked: { sessions: Set<string>; jobs: Set<string>; messages: Set<string> },
  killTimes: readonly number[],
): CrashCounts {
  const db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
  try {
    const sessions = db.prepare<[], { id: string }>('SELECT id FROM sessions').all();
    const jobs = db
      .prepare<[], JobRecord>(
        'SELECT id, session_id, command, state, outcome, exit_code, output, process FROM jobs',
      )
      .all();
    const messages = db
      .prepare<[], MessageRecord>(
        'SELECT id, session_id, role, content, metadata FROM messages ORDER BY ordinal',
      )
      .all();
    const seqs = db
      .prepare<[], { owner: string; seq: number }>(
        'SELECT owner, seq FROM events ORDER BY owner, seq',
      )
      .all();
    const sessionEvents = db
      .prepare<[], EventRecord>(
        `SELECT seq, session_id, type, turn_id, data FROM events
         WHERE type IN ('message.created', 'session.lock', 'turn.started', 'turn.finished')`,
      )
      .all()
      .map((e) => ({
        seq: e.seq,
        sessionId: e.session_id,
        type: e.type,
        turnId: e.turn_id,
        data: record(JSON.parse(e.data)),
      }));
    const lastSeqs = db
      .prepare<[], { owner: string; last_seq: number }>('SELECT owner, last_seq FROM owner_seq')
      .all();

    const answers = new Map<string, number>();
    const userTexts = new Map<string, number>();
    const turnAnswers = new Map<string, number>();
    const ordered: OrderedMessage[] = [];
    for (const m of messages) {
      const meta = record(JSON.parse(m.metadata));
      for (const id of answeredJobs(meta)) answers.set(id, (answers.get(id) ?? 0) + 1);
      if (m.role === 'user') userTexts.set(m.content, (userTexts.get(m.content) ?? 0) + 1);
      const turnId = meta['turnId'];
      if (m.role === 'assistant' && typeof turnId === 'string') {
        turnAnswers.set(turnId, (turnAnswers.get(turnId) ?? 0) + 1);
      }
      ordered.push({ id: m.id, sessionId: m.session_id, role: m.role, meta });
    }

    const interleaving = checkInterleaving(ordered, sessionEvents);
    let lost = 0;
    let duplicated = 0;
    let unfinished = 0;
    for (const job of jobs) {
      const n = answers.get(job.id) ?? 0;
      if (!FINAL.has(job.state)) unfinished++;
      if ((job.state === 'followedUp' || job.state === 'failed') && n === 0) lost++;
      if (n > 1) duplicated++;
    }

    const sessionIds = new Set(sessions.map((s) => s.id));
    const jobIds = new Set(jobs.map((j) => j.id));
    let ackMissing = 0;
    for (const id of acked.sessions) if (!sessionIds.has(id)) ackMissing++;
    for (const id of acked.jobs) if (!jobIds.has(id)) ackMissing++;
    for (const text of acked.messages) if (!userTexts.has(text)) ackMissing++;

    let eventGaps = 0;
    const expected = new Map<string, number>();
    for (const { owner, seq } of seqs) {
      const next = (expected.get(owner) ?? 0) + 1;
      if (seq !== next) eventGaps++;
      expected.set(owner, seq);
    }
    for (const { owner, last_seq } of lastSeqs)
      if ((expected.get(owner) ?? 0) !== last_seq) eventGaps++;

    const processes = accountProcesses(dir, jobs, killTimes);
    const twice =
      [...userTexts.values()].filter((n) => n > 1).length +
      [...turnAnswers.values()].filter((n) => n > 1).length;
    return {
      sessions: sessions.length,
      jobs: jobs.length,
      processJobs: jobs.filter((j) => j.command !== null).length,
      messages: messages.length,
      followedUp: jobs.filter((j) => j.state === 'followedUp').length,
      failed: jobs.filter((j) => j.state === 'failed').length,
      unfinished,
      lost,
      duplicated,
      messagesTwice: twice,
      interleaved: interleaving.interleavings.length,
      interleavings: interleaving.interleavings,
      arrivedDuringFollowUp: interleaving.arrivedDuringFollowUp,
      ackMissing,
      eventGaps,
      ...processes,
      turnsCut: interleaving.turnsCut,
      lostProcesses: jobs.filter((j) => j.command !== null && j.outcome === 'lost').length,
    };
  } finally {
    db.close();
  }
}

/** Compares every process job's stored result with what its wrapper left on disk. */
function accountProcesses(
  dir: string,
  jobs: JobRecord[],
  killTimes: readonly number[],
): Pick<CrashCounts, 'readopted' | 'misaccounted' | 'orphans'> {
  const misaccounted: string[] = [];
  const groups = new Set<number>();
  let readopted = 0;
  for (const job of jobs) {
    if (job.command === null) continue;
    const jobDir = join(dir, 'jobs', job.id);
    const info = record(job.process === null ? null : JSON.parse(job.process));
    if (typeof info['pid'] === 'number') groups.add(info['pid']);
    const pidFile = join(jobDir, 'pid');
    if (existsSync(pidFile)) groups.add(Number(readFileSync(pidFile, 'utf8').trim()));
    const exitFile = join(jobDir, 'exit');
    const exited = existsSync(exitFile);
    const startedAt = typeof info['startedAt'] === 'string' ? Date.parse(info['startedAt']) : NaN;
    if (exited && Number.isFinite(startedAt)) {
      const end = statSync(exitFile).mtimeMs;
      if (killTimes.some((t) => t > startedAt && t < end + 50)) readopted++;
    }
    const problem = (what: string) => misaccounted.push(`${job.id} (${job.command}): ${what}`);
    if (!exited) {
      if (job.outcome !== 'lost') problem(`no exit file but outcome ${job.outcome}`);
      continue;
    }
    const code = Number(readFileSync(exitFile, 'utf8').trim());
    const outcome = code === 0 ? 'succeeded' : 'failed';
    if (job.outcome !== outcome || job.exit_code !== code) {
      problem(`exit file says ${code} but stored ${job.outcome}/${job.exit_code} (${job.state})`);
      continue;
    }
    const marker = /echo (\S+)$/.exec(job.command)?.[1];
    if (code === 0 && marker && !job.output.includes(marker)) problem('output is missing');
  }
  const orphans = [...new Set([...processesUnder(dir), ...membersOfGroups(groups)])];
  return { readopted, misaccounted, orphans };
}
