import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { OWNER, runtimes } from './runtimes.js';

/**
 * Every forwarded command's result is stored in the transaction of its
 * effect: a caller is answered as soon as the effect is stored, and an owner
 * that dies before it can say the command is done leaves nothing for the next
 * owner to do again (done twice, a completion or a deletion answers 409 or 404
 * to a caller whose call went through).
 */
describe('a forwarded command is done in the transaction of its effect', () => {
  let cluster: Awaited<ReturnType<typeof runtimes>>;
  afterEach(async () => {
    await cluster?.close();
  });

  async function ownerAndCaller() {
    cluster = await runtimes();
    const owner = await cluster.start('A', { silent: true });
    const caller = await cluster.start('B');
    const session = await owner.baton.createSession(OWNER, { title: 'effects' });
    return { owner, caller, session };
  }

  it('completes an external job once, and answers the caller 200', async () => {
    const { owner, caller, session } = await ownerAndCaller();
    const job = await owner.baton.startJob(OWNER, session.id, { external: true });
    const completing = caller.baton.completeJob(OWNER, job.id, { exitCode: 0, output: 'ok' });
    await waitFor(async () => (await caller.store.getJob(job.id))?.state !== 'running');
    await owner.kill();

    const done = await completing;
    expect(done.state).not.toBe('running');
    expect(await cluster.commands()).toMatchObject([
      { kind: 'completeJob', done: true, result: { ok: true, value: { id: job.id } } },
    ]);
    await waitFor(async () => (await caller.baton.getJob(OWNER, job.id)).state === 'followedUp', {
      timeoutMs: 15_000,
      what: 'the follow-up',
    });
    const answers = (await caller.baton.listMessages(OWNER, session.id)).filter(
      (m) => m.metadata['bgJobId'] === job.id,
    );
    expect(answers).toHaveLength(1);
  }, 30_000);

  it('cancels a job once, and answers the caller 200', async () => {
    const { owner, caller, session } = await ownerAndCaller();
    const job = await owner.baton.startJob(OWNER, session.id, { external: true });
    const cancelling = caller.baton.cancelJob(OWNER, job.id);
    await waitFor(async () => (await caller.store.getJob(job.id))?.state === 'cancelled');
    await owner.kill();

    expect((await cancelling).state).toBe('cancelled');
    expect(await cluster.commands()).toMatchObject([{ kind: 'cancelJob', done: true }]);
  }, 30_000);

  it('deletes a session once, and answers the caller 204', async () => {
    const { owner, caller, session } = await ownerAndCaller();
    const deleting = caller.baton.deleteSession(OWNER, session.id);
    await waitFor(async () => (await caller.store.getSession(session.id)) === null);
    await owner.kill();

    await expect(deleting).resolves.toBeUndefined();
    expect(await cluster.commands()).toEqual([
      { kind: 'deleteSession', done: true, result: { ok: true, value: null } },
    ]);
  }, 30_000);
});
