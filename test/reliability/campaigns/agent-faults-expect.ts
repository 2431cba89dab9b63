import { expect } from 'vitest';
import { FAULTS, runAgentFaults } from './agent-faults.js';
import { agentFaultsSummaryLine, runAgentDown, DOWN_POLICY } from './agent-down.js';
import { campaignSeed } from './rng.js';

/** Runs both parts of the agent-faults campaign, asserts their counts, prints the summary last. */
export async function agentFaultsCampaign(size: {
  sessions: number;
  jobs: number;
  downJobs: number;
}) {
  const seed = campaignSeed();
  const flaky = await runAgentFaults({ sessions: size.sessions, jobs: size.jobs, seed });
  const context = `seed ${seed}`;
  expect(flaky.jobs, context).toBe(size.jobs);
  expect(
    { lost: flaky.lost, duplicated: flaky.duplicated, unfinished: flaky.unfinished },
    context,
  ).toEqual({ lost: 0, duplicated: 0, unfinished: 0 });
  expect(flaky.followedUp + flaky.failed, context).toBe(size.jobs);
  // Every kind of fault was dealt, and about 30 % of the calls failed.
  expect(Object.keys(flaky.faults).sort(), context).toEqual(FAULTS.map((f) => f.kind).sort());
  const total = Object.values(flaky.faults).reduce((a, b) => a + b, 0);
  expect(total / flaky.calls, context).toBeGreaterThan(0.15);
  expect(total / flaky.calls, context).toBeLessThan(0.45);
  expect(flaky.maxAttempts, context).toBeLessThanOrEqual(10);
  // A hung call is cut at its 1 s deadline (the lease, a minute, must never be what ends it).
  expect(flaky.hangMaxMs, context).toBeLessThan(5000);
  // Retry-After: 1 is a floor on the wait before the same job's next call.
  expect(flaky.retryAfter.retries, context).toBe(flaky.retryAfter.dealt);
  expect(flaky.retryAfter.retries, context).toBeGreaterThan(0);
  expect(flaky.retryAfter.minGapMs, context).toBeGreaterThanOrEqual(flaky.retryAfter.askedMs - 20);

  const down = [
    await runAgentDown('http500', size.downJobs),
    await runAgentDown('refused', size.downJobs),
  ];
  for (const run of down) {
    expect(run, `${run.how}, ${context}`).toMatchObject({
      jobs: size.downJobs,
      failed: size.downJobs,
      noticed: size.downJobs,
      wrongAttempts: 0,
      earlyRetries: 0,
    });
  }
  expect(down[0]?.maxCallsPerJob).toBe(DOWN_POLICY.maxAttempts);
  console.log(agentFaultsSummaryLine(flaky, down));
}
