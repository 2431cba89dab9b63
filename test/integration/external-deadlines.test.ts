import { afterEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../src/runtime/errors.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

/**
 * An external job that is given `heartbeatS` or `timeoutS` cannot hang
 * forever: without a heartbeat in time it ends `lost`, past its timeout it
 * ends `timedOut`, and either way it is followed up like a process job.
 */
describe('external jobs with a heartbeat or a timeout', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const settled = (id: string) =>
    waitFor(async () => {
      const job = await t!.baton.getJob('alice', id);
      return job.state === 'followedUp' ? job : undefined;
    });

  it('ends a job whose heartbeats stop lost, and follows it up', async () => {
    const clock = new ManualClock();
    t = await startTestBaton({ clock });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true, heartbeatS: 30 });
    expect(job.why).toContain('next heartbeat due by 2026-12-01T10:00:30.000Z');
    clock.advance(20_000);
    const beat = await t.baton.heartbeatJob('alice', job.id);
    expect(beat.state).toBe('running');
    expect(beat.why).toContain('next heartbeat due by 2026-12-01T10:00:50.000Z');
    clock.advance(25_000); // 45 s after the start, 25 s after the heartbeat
    expect((await t.baton.getJob('alice', job.id)).state).toBe('running');
    clock.advance(6_000);
    const final = await settled(job.id);
    expect(final).toMatchObject({ outcome: 'lost', exitCode: null });
    expect(final.output).toBe('no heartbeat for 30 s: the job is taken for lost');
    const answers = (await t.baton.listMessages('alice', session.id)).filter(
      (m) => m.metadata['bgJobId'] === job.id,
    );
    expect(answers).toHaveLength(1);
  });

  it('ends a job not completed by its timeout timedOut, heartbeats or not', async () => {
    const clock = new ManualClock();
    t = await startTestBaton({ clock });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, {
      external: true,
      timeoutS: 60,
      heartbeatS: 30,
    });
    for (let i = 0; i < 2; i++) {
      clock.advance(25_000);
      await t.baton.heartbeatJob('alice', job.id);
    }
    expect((await t.baton.getJob('alice', job.id)).why).toContain(
      'must be completed by 2026-12-01T10:01:00.000Z',
    );
    clock.advance(10_001);
    const final = await settled(job.id);
    expect(final).toMatchObject({ outcome: 'timedOut' });
    expect(final.output).toBe('not completed before its timeout of 60 s');
  });

  it('keeps the deadline across a restart, from the stored job', async () => {
    const clock = new ManualClock();
    t = await startTestBaton({ clock });
    const dir = t.dir;
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true, heartbeatS: 30 });
    await t.close({ keep: true });
    clock.advance(60_000); // Nobody was watching when the heartbeat was due.
    t = await startTestBaton({ clock, dir });
    clock.advance(0);
    const final = await settled(job.id);
    expect(final.outcome).toBe('lost');
  });

  it('lets a job without a heartbeat or timeout wait as long as it takes', async () => {
    const clock = new ManualClock();
    t = await startTestBaton({ clock });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    clock.advance(30 * 86_400_000);
    expect((await t.baton.getJob('alice', job.id)).state).toBe('running');
    await t.baton.completeJob('alice', job.id, { exitCode: 0, output: 'done' });
    expect((await settled(job.id)).outcome).toBe('succeeded');
  });

  it('refuses a heartbeat for a process job or a job that has ended', async () => {
    t = await startTestBaton();
    const session = await t.baton.createSession('alice', {});
    const proc = await t.baton.startJob('alice', session.id, { command: 'sleep 5' });
    await expect(t.baton.heartbeatJob('alice', proc.id)).rejects.toMatchObject({
      code: 'job_not_external',
    });
    const ext = await t.baton.startJob('alice', session.id, { external: true, heartbeatS: 5 });
    await t.baton.completeJob('alice', ext.id, { exitCode: 1 });
    const late = t.baton.heartbeatJob('alice', ext.id);
    await expect(late).rejects.toBeInstanceOf(BatonError);
    await expect(late).rejects.toMatchObject({ code: 'job_finished' });
    await expect(t.baton.heartbeatJob('bob', ext.id)).rejects.toMatchObject({
      code: 'not_found',
    });
    await t.baton.cancelJob('alice', proc.id);
  });
});
