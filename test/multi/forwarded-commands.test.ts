import { afterEach, describe, expect, it } from 'vitest';
import type { JobView, MessageView } from '../../src/runtime/views.js';
import { waitFor } from '../support/wait.js';
import { OWNER, runtimes, StuckAgent } from './runtimes.js';

/**
 * A command forwarded to a session's owner, whose owner did what the command
 * asked and died before it could store that the command was done: the
 * process that takes the session over must not do it again, nor break what
 * was done (issue 13, items 2 and 3).
 */
describe.each([
  ['that recorded its result with it', false],
  ['that stored it without its result (an older build)', true],
])('a forwarded command whose owner died after its effect, %s', (_, resultless) => {
  let cluster: Awaited<ReturnType<typeof runtimes>>;
  afterEach(async () => {
    await cluster?.close();
  });

  async function ownerAndCaller(options: { stuck?: boolean } = {}) {
    cluster = await runtimes();
    const owner = await cluster.start('A', {
      silent: true,
      resultless,
      ...(options.stuck ? { agent: new StuckAgent() } : {}),
    });
    const caller = await cluster.start('B');
    const session = await owner.baton.createSession(OWNER, { title: 'forwarded' });
    return { owner, caller, session };
  }

  const followUps = (messages: MessageView[], jobId: string) =>
    messages.filter(
      (m) =>
        m.metadata['bgJobId'] === jobId ||
        (m.metadata['bgJobIds'] as string[] | undefined)?.includes(jobId),
    );

  it('leaves an external job that can be completed, and is followed up once', async () => {
    const { owner, caller, session } = await ownerAndCaller();
    const started = caller.baton.startJob(OWNER, session.id, { external: true });
    const stored = await waitFor(
      async () => (await caller.store.listJobs({ sessionId: session.id }))[0],
      { what: 'the owner to store the job' },
    );
    // Recorded in the transaction that stored the job: done before its owner could say so.
    expect(await cluster.commands()).toMatchObject([
      { kind: 'startJob', done: !resultless, result: resultless ? null : { ok: true } },
    ]);
    await owner.kill();

    const job: JobView = await started;
    expect(job.id).toBe(stored.id);
    const done = await caller.baton.completeJob(OWNER, job.id, { exitCode: 0, output: 'ok' });
    expect(done.state).not.toBe('running');
    await waitFor(async () => (await caller.baton.getJob(OWNER, job.id)).state === 'followedUp', {
      timeoutMs: 15_000,
      what: 'the follow-up',
    });
    const messages = await caller.baton.listMessages(OWNER, session.id);
    expect(followUps(messages, job.id)).toHaveLength(1);
    expect(await cluster.commands()).toEqual([
      {
        kind: 'startJob',
        done: true,
        result: { ok: true, value: expect.objectContaining({ id: job.id }) },
      },
    ]);
  }, 30_000);

  it('leaves a process job whose exit is heard, and is followed up once', async () => {
    const { owner, caller, session } = await ownerAndCaller();
    const started = caller.baton.startJob(OWNER, session.id, {
      command: 'sleep 1; echo survived',
    });
    const stored = await waitFor(
      async () =>
        (await caller.store.listJobs({ sessionId: session.id })).find((j) => j.process !== null),
      { what: 'the owner to start the process' },
    );
    // Recorded in the transaction that stored the job: done before its owner could say so.
    expect(await cluster.commands()).toMatchObject([
      { kind: 'startJob', done: !resultless, result: resultless ? null : { ok: true } },
    ]);
    await owner.kill();

    const job = await started;
    expect(job.id).toBe(stored.id);
    const final = await waitFor(
      async () => {
        const view = await caller.baton.getJob(OWNER, job.id);
        return view.state === 'followedUp' ? view : undefined;
      },
      { timeoutMs: 15_000, what: 'the follow-up' },
    );
    expect(final.output).toContain('survived');
    const messages = await caller.baton.listMessages(OWNER, session.id);
    expect(followUps(messages, job.id)).toHaveLength(1);
  }, 30_000);

  it('answers a message with the message as stored, once, and its live turn runs', async () => {
    const { owner, caller, session } = await ownerAndCaller({ stuck: true });
    const sent = caller.baton.sendMessage(OWNER, session.id, 'hello there');
    // The owner stored the message and its turn holds the session when it dies.
    await waitFor(() => (owner.baton.agent as StuckAgent).runs > 0, {
      what: 'the live turn to run on the owner',
    });
    // Answered in the transaction that stored the message, open until its turn is over.
    await waitFor(async () => (await caller.store.listMessages(session.id)).length === 1);
    expect(await cluster.commands()).toMatchObject([
      { kind: 'sendMessage', done: false, result: resultless ? null : { ok: true } },
    ]);
    await owner.kill();

    const reply = await sent;
    expect(reply.message.content).toBe('hello there');
    const answer = await waitFor(
      async () =>
        (await caller.baton.listMessages(OWNER, session.id)).find(
          (m) => m.role === 'assistant' && m.metadata['turnId'] === reply.turnId,
        ),
      { timeoutMs: 15_000, what: 'the answer of the live turn' },
    );
    expect(answer.content).not.toBe('');
    await caller.baton.settled();
    const messages = await caller.baton.listMessages(OWNER, session.id);
    expect(messages.filter((m) => m.role === 'user')).toEqual([reply.message]);
    expect(messages.filter((m) => m.metadata['turnId'] === reply.turnId)).toHaveLength(2);
    // Done once its turn was over, with the answer its caller got.
    await waitFor(async () => (await cluster.commands())[0]?.done, { what: 'the command done' });
    expect(await cluster.commands()).toEqual([
      { kind: 'sendMessage', done: true, result: { ok: true, value: reply } },
    ]);
  }, 30_000);
});

describe('a forwarded call whose owner does not answer', () => {
  let cluster: Awaited<ReturnType<typeof runtimes>>;
  afterEach(async () => {
    await cluster?.close();
  });

  it('says which process holds the session, since when, and how long it waited', async () => {
    cluster = await runtimes();
    const owner = await cluster.start('A', { silent: true });
    const caller = await cluster.start('B', { forwardTimeoutMs: 1500 });
    const session = await owner.baton.createSession(OWNER, {});
    const error = await caller.baton.getSession(OWNER, session.id).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'store_unavailable' });
    const message = (error as Error).message;
    expect(message).toContain(session.id);
    expect(message).toContain(owner.hostId);
    expect(message).toMatch(/held it since \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ s\)/);
    expect(message).toMatch(/within 1\.5 s/);
  }, 30_000);
});
