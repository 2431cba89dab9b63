import { it } from 'vitest';
import { agentFaultsCampaign } from './campaigns/agent-faults-expect.js';

it('stores each of 1,200 follow-ups exactly once while 30 % of agent calls fail, and fails loudly when the agent is down', async () => {
  await agentFaultsCampaign({ sessions: 60, jobs: 1200, downJobs: 60 });
}, 300_000);
