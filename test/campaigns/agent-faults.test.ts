import { it } from 'vitest';
import { agentFaultsCampaign } from '../reliability/campaigns/agent-faults-expect.js';

// The short form of test/reliability/agent-faults.test.ts.
it('stores every follow-up exactly once while 30 % of agent calls fail, and fails loudly when the agent is down', async () => {
  await agentFaultsCampaign({ sessions: 8, jobs: 96, downJobs: 8 });
}, 60_000);
