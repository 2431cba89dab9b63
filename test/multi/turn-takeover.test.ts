import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { OWNER, runtimes, StuckAgent } from './runtimes.js';

/**
 * Caught by the cluster campaign under load: a session's owner died while a
 * live turn held the lock (its message already in the history) and a
 * finished job waited for a follow-up. The process that took the session
 * over rebuilt the job first, whose follow-up took the lock and stored its
 * continuation between the message and its answer. Open turns now go first.
 */
describe('a session taken over with a live turn and a waiting follow-up', () => {
  let cluster: Awaited<ReturnType<typeof runtimes>>;
  afterEach(async () => {
    await cluster?.close();
  });

  it('answers the message before the follow-up writes anything', async () => {
    cluster = await runtimes();
    const owner = await cluster.start('A', { agent: new StuckAgent() });
    const session = await owner.baton.createSession(OWNER, { title: 'takeover' });
    const { turnId } = await owner.baton.sendMessage(OWNER, session.id, 'are you there?');
    await waitFor(() => (owner.baton.agent as StuckAgent).runs > 0, { what: 'the live turn' });
    const job = await owner.baton.startJob(OWNER, session.id, { external: true });
    await owner.baton.completeJob(OWNER, job.id, { exitCode: 0, output: 'done' });
    await owner.kill();

    const next = await cluster.start('B');
    // Any call on the session makes B its owner.
    await next.baton.getSession(OWNER, session.id);
    const messages = await waitFor(
      async () => {
        const list = await next.baton.listMessages(OWNER, session.id);
        return list.length === 3 ? list : undefined;
      },
      { timeoutMs: 20_000, what: 'the answer and the continuation' },
    );
    expect(messages.map((m) => [m.role, m.metadata['turnId'] ?? m.metadata['bgJobId']])).toEqual([
      ['user', turnId],
      ['assistant', turnId],
      ['assistant', job.id],
    ]);
  }, 40_000);
});
