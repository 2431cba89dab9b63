/**
 * Campaign 2, second part: the agent is down for good (every call HTTP 500,
 * or nothing listening at all). Every job must end `failed` with exactly one
 * notice in its session, after exactly the configured attempts, each retry
 * waiting at least the lower bound of its backoff; none may end silent.
 */

import { createServer } from 'node:net';
import { OpenAIAgent } from '../../../src/runtime/agents/openai.js';
import { retryDelayMs } from '../../../src/machines/retry-delay.js';
import { lastUserContent, startFakeOpenAI } from '../../support/fake-openai.js';
import { startTestBaton } from '../../support/baton.js';
import { allFinal, answersPerJob, type FaultRunSummary } from './agent-faults.js';
import { triggerJobIds } from './crash-agent.js';

export const DOWN_POLICY = { maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 400, agentTimeoutS: 1 };

export interface DownRunSummary {
  how: 'http500' | 'refused';
  jobs: number;
  failed: number;
  /** Failed jobs with exactly one `followUpFailed` notice. */
  noticed: number;
  /** Jobs whose attempts differ from the configured maximum. */
  wrongAttempts: number;
  /** Retries that came sooner than the lower bound of their backoff. */
  earlyRetries: number;
  /** Agent calls per job (http500 only: the fake counts them), most seen. */
  maxCallsPerJob: number;
  durationMs: number;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

export async function runAgentDown(
  how: 'http500' | 'refused',
  jobs: number,
): Promise<DownRunSummary> {
  const started = Date.now();
  const fake = how === 'http500' ? await startFakeOpenAI([{ fault: 'status', status: 500 }]) : null;
  const url = fake ? fake.url : `http://127.0.0.1:${await closedPort()}/v1`;
  const t = await startTestBaton({
    agent: new OpenAIAgent({ baseURL: url, model: 'fake-model' }),
    policy: DOWN_POLICY,
  });
  try {
    const sessions = [
      await t.baton.createSession('alice', {}),
      await t.baton.createSession('alice', {}),
    ];
    await Promise.all(
      Array.from({ length: jobs }, async (_, j) => {
        const session = sessions[j % 2];
        if (!session) throw new Error('no session');
        if (j % 2 === 0) {
          await t.baton.startJob('alice', session.id, { command: `echo down-${j}` });
          return;
        }
        const job = await t.baton.startJob('alice', session.id, { external: true });
        await t.baton.completeJob('alice', job.id, { exitCode: 0, output: `done ${j}` });
      }),
    );
    await allFinal(t, 'alice', 120_000);
    const rows = await t.store.listJobs({ owner: 'alice' });
    const answers = await answersPerJob(t, 'alice');
    let earlyRetries = 0;
    for (const row of rows) {
      const starts = row.history
        .filter((h) => h.state === 'continuing')
        .map((h) => Date.parse(h.at));
      for (let k = 1; k < starts.length; k++) {
        const nominal = retryDelayMs(k, DOWN_POLICY.retryBaseMs, DOWN_POLICY.retryMaxMs, 0);
        // Each history time is taken when its write is built: allow a few ms of slack.
        if ((starts[k] ?? 0) - (starts[k - 1] ?? 0) < nominal - 5) earlyRetries++;
      }
    }
    const calls = new Map<string, number>();
    for (const request of fake?.requests ?? []) {
      const leader = triggerJobIds(lastUserContent(request))[0];
      if (leader !== undefined) calls.set(leader, (calls.get(leader) ?? 0) + 1);
    }
    return {
      how,
      jobs: rows.length,
      failed: rows.filter((j) => j.state === 'failed').length,
      noticed: rows.filter((j) => j.state === 'failed' && answers.get(j.id) === 1).length,
      wrongAttempts: rows.filter((j) => j.attempts !== DOWN_POLICY.maxAttempts).length,
      earlyRetries,
      maxCallsPerJob: Math.max(0, ...calls.values()),
      durationMs: Date.now() - started,
    };
  } finally {
    await t.close();
    await fake?.close();
  }
}

/** The one-line summary of the whole agent-faults campaign (printed last). */
export function agentFaultsSummaryLine(flaky: FaultRunSummary, down: DownRunSummary[]): string {
  const faults = Object.entries(flaky.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  const total = Object.values(flaky.faults).reduce((a, b) => a + b, 0);
  const downJobs = down.reduce((a, d) => a + d.jobs, 0);
  const noticed = down.reduce((a, d) => a + d.noticed, 0);
  const silent = down.reduce((a, d) => a + (d.jobs - d.noticed), 0);
  return (
    `agent-faults: ${flaky.jobs} jobs, ${flaky.calls} agent calls, ${total} faults (${faults}), ` +
    `${flaky.followedUp} followed up, ${flaky.failed} failed, ${flaky.lost} lost, ${flaky.duplicated} duplicated, ` +
    `${flaky.unfinished} unfinished, hung calls cut after at most ${flaky.hangMaxMs} ms (deadline 1000 ms); Retry-After: ${flaky.retryAfter.dealt} 429s with Retry-After: 1, ${flaky.retryAfter.retries} retried, shortest wait ` +
    `${flaky.retryAfter.minGapMs} ms for ${flaky.retryAfter.askedMs} ms asked; agent down: ${downJobs} jobs ` +
    `(${down.map((d) => `${d.how} ${d.jobs}`).join(', ')}), ${noticed} failed with one notice after ` +
    `${DOWN_POLICY.maxAttempts} attempts, ${silent} silent`
  );
}
