import { afterEach, describe, expect, it } from 'vitest';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

describe('follow-ups', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('stores exactly one continuation when a job exits', async () => {
    t = await startTestBaton();
    const session = await t.baton.createSession('alice', { title: 'demo' });
    const job = await t.baton.startJob('alice', session.id, { command: 'sleep 0.1; echo done' });
    expect(job.state).toBe('running');
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', job.id);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(final.outcome).toBe('succeeded');
    expect(final.exitCode).toBe(0);
    expect(final.history.map((h) => h.state)).toEqual([
      'running',
      'completed',
      'awaitingIdleSession',
      'continuing',
      'followedUp',
    ]);
    const messages = await t.baton.listMessages('alice', session.id);
    const followUps = messages.filter((m) => m.metadata['bgJobId'] === job.id);
    expect(followUps).toHaveLength(1);
    expect(followUps[0]!.role).toBe('assistant');
    expect(followUps[0]!.content).toContain('done');
    expect(followUps[0]!.metadata['bgResult']).toContain('done');
  });
});
