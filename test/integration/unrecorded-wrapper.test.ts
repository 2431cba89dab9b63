import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { processesUnder } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/**
 * Caught by the crash campaign: a SIGKILL between storing a new job and
 * storing its process's pid left the job without a process record. After the
 * restart it was ended `lost` ("stopped before the process was started"):
 * a wrapper already spawned ran on unwatched and finished later with exit
 * code 0, and a command not yet spawned was never run at all.
 */
describe('a job whose wrapper was spawned but not recorded before a crash', () => {
  let t: TestBaton | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** Starts a job, "crashes" (closes, keeping the processes), and forgets the stored pid. */
  async function crashInTheStartWindow(command: string) {
    t = await startTestBaton();
    const dir = t.dir;
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { command, timeoutS: 30 });
    await waitFor(async () => (await t!.store.getJob(job.id))?.process ?? undefined);
    await t.close({ keep: true });
    const db = new Database(join(dir, 'baton.db'));
    db.prepare('UPDATE jobs SET process = NULL WHERE id = ?').run(job.id);
    db.close();
    return { dir, sessionId: session.id, jobId: job.id };
  }

  it('adopts the wrapper that is still running and reports its real outcome', async () => {
    const { dir, sessionId, jobId } = await crashInTheStartWindow('sleep 0.6; echo late-result');
    t = await startTestBaton({ dir });
    const running = await t.baton.getJob('alice', jobId);
    expect(running.state).toBe('running');
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', jobId);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(final).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(final.output).toContain('late-result');
    expect((await t.store.getJob(jobId))?.process?.pid).toBeGreaterThan(1);
    const answers = (await t.baton.listMessages('alice', sessionId)).filter(
      (m) => m.metadata['bgJobId'] === jobId,
    );
    expect(answers).toHaveLength(1);
  });

  it('collects the result of a wrapper that finished while the service was down', async () => {
    const { dir, jobId } = await crashInTheStartWindow('echo quick-result');
    await waitFor(() => existsSync(join(dir, 'jobs', jobId, 'exit')));
    t = await startTestBaton({ dir });
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', jobId);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(final).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(final.output).toContain('quick-result');
  });

  it('runs a job whose wrapper never ran (no pid, no files) instead of ending it lost', async () => {
    // Runs for long the first time; once `go` exists, prints and exits.
    const { dir, jobId } = await crashInTheStartWindow(
      'cat go 2>/dev/null && echo second-run || sleep 30',
    );
    const db = new Database(join(dir, 'baton.db'));
    const row = db
      .prepare<[string], { process: string | null }>('SELECT process FROM jobs WHERE id = ?')
      .get(jobId);
    db.close();
    expect(row?.process).toBeNull();
    // Undo the first run entirely, as if it had never been spawned.
    const group = Number(readFileSync(join(dir, 'jobs', jobId, 'pid'), 'utf8'));
    process.kill(-group, 'SIGKILL');
    await waitFor(() => processesUnder(dir).length === 0);
    rmSync(join(dir, 'jobs', jobId), { recursive: true, force: true });
    // Before the restart: the run starts during it, and must find the file.
    const workDir = join(dir, 'work', 'alice');
    expect(existsSync(workDir)).toBe(true);
    writeFileSync(join(workDir, 'go'), 'go\n');
    t = await startTestBaton({ dir });
    const final = await waitFor(async () => {
      const j = await t!.baton.getJob('alice', jobId);
      return j.state === 'followedUp' ? j : undefined;
    });
    expect(final).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(final.output).toContain('second-run');
  });

  it('can cancel the adopted wrapper, which leaves no process behind', async () => {
    const { dir, jobId } = await crashInTheStartWindow('sleep 30');
    t = await startTestBaton({ dir });
    expect((await t.baton.getJob('alice', jobId)).state).toBe('running');
    await t.baton.cancelJob('alice', jobId);
    await waitFor(() => processesUnder(dir).length === 0, { what: 'the job group to be gone' });
    expect((await t.baton.getJob('alice', jobId)).state).toBe('cancelled');
  });
});
