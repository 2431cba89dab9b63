import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const DAY = 86_400_000;

describe('retention in the runtime', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("removes a finished job's folder once it is older than the retention, and keeps the job", async () => {
    const clock = new ManualClock();
    t = await startTestBaton({ clock, retainMs: DAY });
    const session = await t.baton.createSession('alice', {});
    const done = await t.baton.startJob('alice', session.id, { command: 'echo kept-in-the-row' });
    const running = await t.baton.startJob('alice', session.id, { command: 'sleep 30' });
    await waitFor(async () => (await t!.baton.getJob('alice', done.id)).state === 'followedUp');
    const folder = join(t.dir, 'jobs', done.id);
    expect(existsSync(folder)).toBe(true);

    await t.baton.retention.runOnce();
    expect(existsSync(folder)).toBe(true);

    clock.advance(2 * DAY);
    // The first automatic pass falls due on the way (a minute after the start)
    // and may still be running: the pass after it sees the time now.
    const first = await t.baton.retention.runOnce();
    const second = await t.baton.retention.runOnce();
    expect(first.jobDirs + second.jobDirs).toBe(1);
    expect(existsSync(folder)).toBe(false);
    expect(existsSync(join(t.dir, 'jobs', running.id))).toBe(true);
    // The job, its output and its continuation stay.
    const job = await t.baton.getJob('alice', done.id);
    expect(job).toMatchObject({ state: 'followedUp', output: 'kept-in-the-row\n' });
    expect(await t.baton.jobOutput('alice', done.id, 0)).toMatchObject({
      output: 'kept-in-the-row\n',
      source: 'stored',
      done: true,
    });
    const messages = await t.baton.listMessages('alice', session.id);
    expect(messages.filter((m) => m.metadata['bgJobId'] === done.id)).toHaveLength(1);
    await t.baton.cancelJob('alice', running.id);
  });
});
