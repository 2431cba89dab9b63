/**
 * Campaign 2, agent faults: Baton (in process, SQLite) with the `openai`
 * agent against the loopback fake model, which fails 30 % of the calls with
 * every kind of fault in turn: HTTP 500, 429 with `Retry-After`, a reset
 * connection, a stream cut mid-way (reset, or a clean end without `[DONE]`),
 * malformed SSE, an error frame, an empty reply and a hang past the
 * one-second deadline. Every follow-up must end stored exactly once, and the
 * retry after a 429 must wait at least what the server asked for.
 */

import { performance } from 'node:perf_hooks';
import { OpenAIAgent } from '../../../src/runtime/agents/openai.js';
import { TRIGGER_PREFIX } from '../../../src/runtime/agents/trigger.js';
import {
  lastUserContent,
  startFakeOpenAI,
  type FakeReply,
  type RecordedRequest,
} from '../../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../../support/baton.js';
import { triggerJobIds } from './crash-agent.js';
import { answeredJobs } from './interleaving.js';
import { rng, type Rng } from './rng.js';

/** The faults, dealt in turn so that every kind shows up. */
export const FAULTS: { kind: string; reply: FakeReply }[] = [
  { kind: 'http500', reply: { fault: 'status', status: 500 } },
  { kind: 'http429', reply: { fault: 'status', status: 429, retryAfter: 1 } },
  { kind: 'reset', reply: { fault: 'reset' } },
  { kind: 'cut', reply: { fault: 'cut', text: 'an answer cut off in the middle of it' } },
  { kind: 'cutEnd', reply: { fault: 'cut', text: 'an answer that simply stops', mode: 'end' } },
  { kind: 'malformed', reply: { fault: 'malformed', text: 'before the garbage' } },
  { kind: 'errorFrame', reply: { fault: 'errorFrame', text: 'partial', eventName: true } },
  { kind: 'errorData', reply: { fault: 'errorFrame', text: 'partial' } },
  { kind: 'empty', reply: { fault: 'empty' } },
  { kind: 'hang', reply: { fault: 'hang', text: 'thinking' } },
];

export interface FaultRunSummary {
  jobs: number;
  calls: number;
  faults: Record<string, number>;
  followedUp: number;
  failed: number;
  unfinished: number;
  /** followedUp/failed jobs with no continuation or notice; jobs answered more than once. */
  lost: number;
  duplicated: number;
  maxAttempts: number;
  /** The longest a hung call stayed open before the client gave up (the deadline is 1 s), ms. */
  hangMaxMs: number;
  /** 429s dealt (all to follow-ups), the retries that followed, and the shortest wait between the two (ms). */
  retryAfter: { dealt: number; retries: number; minGapMs: number; askedMs: number };
  durationMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits until every job of `owner` is final; throws with a sample after `timeoutMs`. */
export async function allFinal(t: TestBaton, owner: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = (await t.store.listJobs({ owner, unfinished: true })).filter(
      (j) => j.state !== 'failed',
    );
    if (open.length === 0) return;
    if (Date.now() > deadline) {
      const sample = open.slice(0, 3).map((j) => `${j.id} ${j.state}: ${j.why}`);
      throw new Error(`${open.length} jobs never became final, e.g. ${sample.join('; ')}`);
    }
    await sleep(50);
  }
}

/** How many continuations or notices answer each job of `owner`. */
export async function answersPerJob(t: TestBaton, owner: string): Promise<Map<string, number>> {
  const answers = new Map<string, number>();
  for (const session of await t.store.listSessions(owner)) {
    for (const m of await t.store.listMessages(session.id)) {
      for (const id of answeredJobs(m.metadata)) answers.set(id, (answers.get(id) ?? 0) + 1);
    }
  }
  return answers;
}

/** Starts the jobs: external ones completed a little later, and short commands. */
async function drive(
  t: TestBaton,
  r: Rng,
  size: { sessions: number; jobs: number },
): Promise<void> {
  const sessions = [];
  for (let s = 0; s < size.sessions; s++) sessions.push(await t.baton.createSession('alice', {}));
  const work: Promise<unknown>[] = [];
  for (let j = 0; j < size.jobs; j++) {
    const session = sessions[j % sessions.length];
    if (!session) throw new Error('no session');
    if (j % 7 === 3) work.push(t.baton.sendMessage('alice', session.id, `hello ${j}`));
    if (r.chance(0.3)) {
      work.push(t.baton.startJob('alice', session.id, { command: `echo out-${j}` }));
    } else {
      const job = await t.baton.startJob('alice', session.id, { external: true, name: `e${j}` });
      const output = `done ${j}`;
      work.push(
        sleep(r.int(0, 200)).then(() =>
          t.baton.completeJob('alice', job.id, { exitCode: 0, output }),
        ),
      );
    }
    if (j % 10 === 9) await sleep(r.int(0, 40));
  }
  await Promise.all(work);
}

/** Gaps between each 429 on a follow-up and the next call for the same (leading) job. */
function retryAfterGaps(requests: RecordedRequest[], faultOf: Map<number, string>): number[] {
  const gaps: number[] = [];
  requests.forEach((request, i) => {
    if (faultOf.get(request.index) !== 'http429') return;
    const leader = triggerJobIds(lastUserContent(request))[0];
    if (leader === undefined) return;
    const next = requests
      .slice(i + 1)
      .find((later) => triggerJobIds(lastUserContent(later)).includes(leader));
    if (next) gaps.push(next.atEpochMs - request.atEpochMs);
  });
  return gaps;
}

export async function runAgentFaults(size: {
  sessions: number;
  jobs: number;
  seed: number;
}): Promise<FaultRunSummary> {
  const started = Date.now();
  const r = rng(size.seed);
  const faultOf = new Map<number, string>();
  let dealt = 0;
  const fake = await startFakeOpenAI((request) => {
    if (!r.chance(0.3)) return { text: `Carrying on (${request.index}).`, chunkSize: 5 };
    let fault = FAULTS[dealt++ % FAULTS.length];
    // A 429 goes to a follow-up, whose retry shows whether Retry-After was honoured.
    const followUp = lastUserContent(request).startsWith(TRIGGER_PREFIX);
    if (fault?.kind === 'http429' && !followUp) fault = FAULTS[dealt++ % FAULTS.length];
    if (!fault) throw new Error('no fault');
    faultOf.set(request.index, fault.kind);
    return fault.reply;
  });
  const maxAttempts = 10;
  const t = await startTestBaton({
    agent: new OpenAIAgent({ baseURL: fake.url, model: 'fake-model' }),
    policy: { agentTimeoutS: 1, maxAttempts, retryBaseMs: 20, retryMaxMs: 200 },
  });
  try {
    await drive(t, r, size);
    await allFinal(t, 'alice', 120_000);
    const jobs = await t.store.listJobs({ owner: 'alice' });
    const answers = await answersPerJob(t, 'alice');
    const faults: Record<string, number> = {};
    for (const kind of faultOf.values()) faults[kind] = (faults[kind] ?? 0) + 1;
    const gaps = retryAfterGaps(fake.requests, faultOf);
    const now = performance.now();
    const hangs = fake.requests.filter((q) => faultOf.get(q.index) === 'hang');
    return {
      jobs: jobs.length,
      calls: fake.requests.length,
      faults,
      followedUp: jobs.filter((j) => j.state === 'followedUp').length,
      failed: jobs.filter((j) => j.state === 'failed').length,
      unfinished: jobs.filter((j) => !['followedUp', 'failed'].includes(j.state)).length,
      lost: jobs.filter((j) => (answers.get(j.id) ?? 0) === 0).length,
      duplicated: jobs.filter((j) => (answers.get(j.id) ?? 0) > 1).length,
      maxAttempts: Math.max(0, ...jobs.map((j) => j.attempts)),
      hangMaxMs: Math.round(Math.max(0, ...hangs.map((q) => (q.clientClosedAt ?? now) - q.at))),
      retryAfter: {
        dealt: faults['http429'] ?? 0,
        retries: gaps.length,
        minGapMs: Math.min(...gaps),
        askedMs: 1000,
      },
      durationMs: Date.now() - started,
    };
  } finally {
    await t.close();
    await fake.close();
  }
}
