import { it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton } from '../support/baton.js';
import { FAULTS } from '../reliability/campaigns/agent-faults.js';
import { rng } from '../reliability/campaigns/rng.js';
it('t', async () => {
  for (let round = 0; round < 6; round++) {
    const r = rng(100 + round);
    const kinds = new Map<number, string>();
    const fake = await startFakeOpenAI((request) => {
      if (!r.chance(0.3)) return { text: `ok ${request.index}` };
      const f = FAULTS[kinds.size % FAULTS.length]!;
      kinds.set(request.index, f.kind);
      return f.reply;
    });
    const t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }), policy: { agentTimeoutS: 1, maxAttempts: 10, retryBaseMs: 20, retryMaxMs: 200 } });
    const sessions = await Promise.all(Array.from({ length: 30 }, () => t.baton.createSession('alice', {})));
    const t0 = Date.now();
    await Promise.all(sessions.map(async (s) => { for (let j = 0; j < 15; j++) { const job = await t.baton.startJob('alice', s.id, { external: true }); void t.baton.completeJob('alice', job.id, { exitCode: 0 }); } }));
    for (;;) { const open = await t.store.listJobs({ owner: 'alice', unfinished: true }); if (open.length === 0 || Date.now() - t0 > 70000) break; await new Promise((r2) => setTimeout(r2, 100)); }
    const now = performance.now();
    const slow = fake.requests.filter((q) => (q.clientClosedAt ?? now) - q.at > 1500 && kinds.has(q.index)).map((q) => `${q.index}:${kinds.get(q.index)}:${Math.round((q.clientClosedAt ?? now) - q.at)}ms${q.clientClosedAt === null ? '(open)' : ''}`);
    process.stdout.write(`XX round ${round}: ${Date.now() - t0} ms, ${fake.requests.length} calls, slow: ${slow.join(' ')}\n`);
    await t.close(); await fake.close();
  }
}, 600000);
