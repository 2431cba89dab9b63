/**
 * The invariants of the races campaign, checked after a run has settled:
 * at most one lock holder per session at every instant (from the runtime's
 * lock records, in the order they happened), every lock released, every job
 * final, the stored seqs 1..n without a gap, the feed client's seqs exactly
 * 1..n across restarts (no gap, no duplicate, in order), no follow-up
 * interleaved with a live turn, and one continuation per followed-up job.
 */

import { answeredJobs, checkInterleaving, type OrderedMessage } from './interleaving.js';
import { feedSeqs, OWNER, type RaceRun } from './races.js';

export interface RaceVerdict {
  problems: string[];
  /** Jobs that ended `failed` (attempts exhausted), and how many of each action landed. */
  failed: number;
  landed: Record<string, number>;
  grants: number;
  restarts: number;
  jobs: number;
  events: number;
}

/**
 * Replays the lock records in the order they happened: a grant while another
 * holder has not released is an overlap; a holder of the last instance that
 * never released is a leak (earlier instances' holders died with a restart).
 */
export function lockProblems(
  locks: RaceRun['locks'],
  lastInstance: number,
): { problems: string[]; grants: number } {
  const problems: string[] = [];
  const holders = new Map<string, string | null>();
  let grants = 0;
  for (const rec of locks) {
    const key = `${rec.instance}/${rec.sessionId}`;
    const holder = holders.get(key) ?? null;
    if (rec.event === 'granted') {
      grants++;
      if (holder !== null && holder !== rec.id) {
        problems.push(`session ${rec.sessionId}: ${rec.id} granted while ${holder} holds it`);
      }
      holders.set(key, rec.id);
    } else if (holder === rec.id) {
      holders.set(key, null);
    }
  }
  for (const [key, holder] of holders) {
    if (holder !== null && key.startsWith(`${lastInstance}/`))
      problems.push(`${key}: ${holder} never released`);
  }
  return { problems, grants };
}

function seqProblems(name: string, seqs: readonly number[], last: number): string[] {
  const problems: string[] = [];
  seqs.forEach((seq, i) => {
    if (seq !== i + 1 && problems.length < 3)
      problems.push(`${name}: seq ${seq} at position ${i + 1}`);
  });
  if (seqs.length !== last) problems.push(`${name}: ${seqs.length} seqs, the store has ${last}`);
  return problems;
}

export async function checkRace(run: RaceRun): Promise<RaceVerdict> {
  const store = run.current.t.store;
  const locks = lockProblems(run.locks, run.current.n);
  const problems = [...run.errors, ...locks.problems];
  const last = await store.lastSeq(OWNER);
  const events = await store.readEvents(OWNER, 0, 1_000_000);
  problems.push(
    ...seqProblems(
      'store',
      events.map((e) => e.seq),
      last,
    ),
  );
  const fed = feedSeqs(run);
  const feedProblems = seqProblems('feed', fed, last);
  if (feedProblems.length > 0) {
    // Name what the feed lacks, so a failure says which write came late.
    const seen = new Set(fed);
    const missing = events.filter((e) => !seen.has(e.seq)).slice(0, 5);
    feedProblems.push(
      `not on the feed: ${missing.map((e) => `${e.seq} ${e.type} ${JSON.stringify(e.data).slice(0, 120)}`).join('; ')}`,
    );
  }
  problems.push(...feedProblems);

  const messages: OrderedMessage[] = [];
  const continuations = new Map<string, number>();
  const notices = new Map<string, number>();
  for (const sessionId of run.sessions) {
    for (const m of await store.listMessages(sessionId)) {
      messages.push({ id: m.id, sessionId, role: m.role, meta: m.metadata });
      const tally = m.role === 'assistant' ? continuations : notices;
      for (const id of answeredJobs(m.metadata)) tally.set(id, (tally.get(id) ?? 0) + 1);
    }
  }
  const interleaving = checkInterleaving(messages, events);
  problems.push(...interleaving.interleavings.map((i) => `interleaved: ${i}`));

  const jobs = await store.listJobs({ owner: OWNER });
  for (const job of jobs) {
    const answers = continuations.get(job.id) ?? 0;
    const expected = job.state === 'followedUp' ? 1 : 0;
    if (answers !== expected) problems.push(`job ${job.id} ${job.state}: ${answers} continuations`);
    if (job.state === 'failed' && (notices.get(job.id) ?? 0) === 0) {
      problems.push(`job ${job.id} failed without a notice`);
    }
    if (!['followedUp', 'failed', 'cancelled', 'skipped'].includes(job.state)) {
      problems.push(`job ${job.id} is still ${job.state}`);
    }
  }
  return {
    problems,
    failed: jobs.filter((j) => j.state === 'failed').length,
    landed: run.landed,
    grants: locks.grants,
    restarts: run.instances.length - 1,
    jobs: jobs.length,
    events: last,
  };
}
