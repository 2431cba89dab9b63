import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Caught by the agent-faults campaign: at scale, a live turn whose model
 * hung was not cut at its one-second deadline but held the session's lock
 * until the lease, a minute later. On Node 20 the garbage collector may
 * reclaim `AbortSignal.timeout()` inside `AbortSignal.any()` while the fetch
 * waits, and the deadline never fires. Collected often here, it must fire.
 */
describe('the deadline of an agent call while the garbage collector runs', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  let collector: NodeJS.Timeout | undefined;
  afterEach(async () => {
    clearInterval(collector);
    await t?.close();
    await fake?.close();
    t = fake = undefined;
  });

  async function start(): Promise<TestBaton> {
    fake = await startFakeOpenAI([{ fault: 'hang', text: 'thinking' }, 'Answered after the hang.']);
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      // A lease far past the wait below: only the deadline can end the hung call in time.
      policy: { agentTimeoutS: 1, leaseMs: 120_000, maxAttempts: 3 },
    });
    collector = setInterval(gc, 20);
    return t;
  }

  it('cuts a hung live turn at its deadline and retries it', async () => {
    const baton = (await start()).baton;
    const session = await baton.createSession('alice', {});
    const { turnId } = await baton.sendMessage('alice', session.id, 'hello');
    const finished = await waitFor(
      async () => {
        const events = await t!.store.readEvents('alice', 0, 1000);
        return events.find((e) => e.type === 'turn.finished' && e.turnId === turnId);
      },
      { timeoutMs: 15_000, what: 'the hung turn to be cut' },
    );
    expect(finished.data['ok']).toBe(true);
    expect(fake!.requests[0]!.clientClosedAt).not.toBeNull();
    const answer = (await baton.listMessages('alice', session.id)).at(-1);
    expect(answer).toMatchObject({ role: 'assistant', content: 'Answered after the hang.' });
  });

  it('cuts a hung follow-up at its deadline and retries it', async () => {
    const baton = (await start()).baton;
    const session = await baton.createSession('alice', {});
    const job = await baton.startJob('alice', session.id, { external: true });
    await baton.completeJob('alice', job.id, { exitCode: 0 });
    const final = await waitFor(
      async () => {
        const j = await baton.getJob('alice', job.id);
        return j.state === 'followedUp' ? j : undefined;
      },
      { timeoutMs: 15_000, what: 'the follow-up to be retried after the hang' },
    );
    expect(final.attempts).toBe(2);
  });
});
