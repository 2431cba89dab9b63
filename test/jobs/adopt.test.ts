import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isSameProcessAlive,
  liveGroupMembers,
  processStartTime,
} from '../../src/runtime/jobs/proc-identity.js';
import { ProcessRunner } from '../../src/runtime/jobs/process-runner.js';
import type {
  ProcessHandle,
  ProcessRunnerOptions,
  ProcessSpec,
} from '../../src/runtime/jobs/process-runner.js';
import { ExitRecorder, cleanup, tempDir, waitFor } from './helpers.js';

const runners: ProcessRunner[] = [];
const groups: number[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await cleanup(runners, groups, dirs);
});

function makeRunner(rec: ExitRecorder, opts: Partial<ProcessRunnerOptions> = {}): ProcessRunner {
  // A sweep far slower than any test proves that exits arrive by the event path.
  const runner = new ProcessRunner({
    onExit: rec.onExit,
    killGraceMs: 200,
    sweepIntervalMs: 60_000,
    ...opts,
  });
  runners.push(runner);
  return runner;
}

async function spec(
  jobId: string,
  command: string,
  extra: Partial<ProcessSpec> = {},
): Promise<ProcessSpec> {
  const root = await tempDir(dirs);
  return { jobId, command, cwd: root, timeoutS: 10, dir: join(root, 'job'), ...extra };
}

/** Starts a job with runner A and closes A without killing: the service "restarts". */
async function startThenRestart(
  s: ProcessSpec,
): Promise<{ handle: ProcessHandle; first: ExitRecorder }> {
  const first = new ExitRecorder();
  const a = makeRunner(first);
  const handle = await a.start(s);
  groups.push(handle.pid);
  await a.close();
  return { handle, first };
}

function killGroupNow(pgid: number): void {
  process.kill(-pgid, 'SIGKILL');
}

describe('ProcessRunner.adopt', () => {
  it('watches a job that is still running and sees its exit through the directory watch', async () => {
    const s = await spec('r', 'sleep 0.3; echo done; exit 3');
    const { handle, first } = await startThenRestart(s);
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    expect(await b.adopt(s, handle)).toBe('watching');
    expect(b.running()).toEqual(['r']);
    const exit = await rec.next('r', 3000);
    expect(exit).toMatchObject({ outcome: 'failed', exitCode: 3, output: 'done\n' });
    // Seen through the directory watch: the sweep (60 s here) would come long after rec.next gives up.
    expect(first.calls).toEqual([]);
    expect(b.running()).toEqual([]);
  });

  it('returns the exit of a job that ended while nobody watched', async () => {
    const s = await spec('e', 'echo hi');
    const { handle } = await startThenRestart(s);
    await waitFor(() => existsSync(join(handle.dir, 'exit')), 2000, 'the exit file');
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    const result = await b.adopt(s, handle);
    expect(result).toMatchObject({
      outcome: 'succeeded',
      exitCode: 0,
      output: 'hi\n',
      truncated: false,
    });
    expect(result).not.toBe('watching');
    if (result !== 'watching') {
      expect(result.finishedAt).toBe(Math.round(statSync(join(handle.dir, 'exit')).mtimeMs));
    }
    expect(b.running()).toEqual([]);
    expect(rec.calls).toEqual([]);
  });

  it('reports lost for a dead pid with no exit file', async () => {
    const s = await spec('l', 'sleep 100');
    const { handle } = await startThenRestart(s);
    killGroupNow(handle.pid);
    await waitFor(
      () => !isSameProcessAlive(handle.pid, handle.startTime),
      2000,
      'the wrapper to die',
    );
    const b = makeRunner(new ExitRecorder());
    expect(await b.adopt(s, handle)).toMatchObject({ outcome: 'lost', exitCode: null });
    expect(b.running()).toEqual([]);
  });

  it('reports timed out for a dead job whose deadline marker was written', async () => {
    const s = await spec('m', 'sleep 100');
    const { handle } = await startThenRestart(s);
    await writeFile(join(handle.dir, 'timedout'), 'x');
    killGroupNow(handle.pid);
    await waitFor(
      () => !isSameProcessAlive(handle.pid, handle.startTime),
      2000,
      'the wrapper to die',
    );
    const b = makeRunner(new ExitRecorder());
    expect(await b.adopt(s, handle)).toMatchObject({ outcome: 'timedOut', exitCode: null });
  });

  it('reports lost for a reused pid and leaves that process alone', async () => {
    const stranger = spawn('sleep', ['100'], { detached: true, stdio: 'ignore' });
    const pid = stranger.pid!;
    groups.push(pid);
    const real = processStartTime(pid)!;
    const s = await spec('p', 'true');
    const handle: ProcessHandle = { pid, startTime: `${real}0`, dir: s.dir, startedAt: Date.now() };
    const b = makeRunner(new ExitRecorder());
    expect(await b.adopt(s, handle)).toMatchObject({ outcome: 'lost', exitCode: null });
    await b.close({ kill: true });
    expect(isSameProcessAlive(pid, real)).toBe(true);
    killGroupNow(pid);
  });

  it('finishes a cancel that a previous instance began', async () => {
    const s = await spec('c', 'sleep 100 & wait');
    const { handle } = await startThenRestart(s);
    await writeFile(join(handle.dir, 'cancelled'), 'x');
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    expect(await b.adopt(s, handle)).toBe('watching');
    expect(await rec.next('c', 2000)).toMatchObject({ outcome: 'cancelled', exitCode: null });
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('times out an adopted job at the deadline counted from its start', async () => {
    const s = await spec('t', 'sleep 100 & wait', { timeoutS: 0.6 });
    const { handle } = await startThenRestart(s);
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    expect(await b.adopt(s, handle)).toBe('watching');
    const exit = await rec.next('t', 3000);
    expect(exit.outcome).toBe('timedOut');
    expect(exit.durationMs).toBeGreaterThanOrEqual(590);
    // The deadline is the job's, not re-counted from the adoption.
    expect(rec.calls[0]!.at - handle.startedAt).toBeLessThan(1000);
    expect(existsSync(join(handle.dir, 'timedout'))).toBe(true);
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('kills at once an adopted job whose deadline passed while nobody watched', async () => {
    const s = await spec('late', 'sleep 100', { timeoutS: 30 });
    const { handle } = await startThenRestart(s);
    const rec = new ExitRecorder();
    // The injected clock says the service was down for a minute.
    const b = makeRunner(rec, { now: () => handle.startedAt + 60_000 });
    expect(await b.adopt(s, handle)).toBe('watching');
    expect(await rec.next('late', 1000)).toMatchObject({ outcome: 'timedOut', durationMs: 60_000 });
  });

  it('cancels an adopted job', async () => {
    const s = await spec('ac', 'sleep 100');
    const { handle } = await startThenRestart(s);
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    await b.adopt(s, handle);
    await b.cancel('ac');
    expect(rec.calls.map((c) => c.exit.outcome)).toEqual(['cancelled']);
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('notices through the safety sweep a process that vanishes without an exit file', async () => {
    const s = await spec('v', 'sleep 100');
    const { handle } = await startThenRestart(s);
    const rec = new ExitRecorder();
    const b = makeRunner(rec, { sweepIntervalMs: 50 });
    expect(await b.adopt(s, handle)).toBe('watching');
    killGroupNow(handle.pid);
    expect(await rec.next('v', 2000)).toMatchObject({ outcome: 'lost', exitCode: null });
  });

  it('closes without kill: the adopted job keeps running and nothing holds the event loop', async () => {
    const s = await spec('n', 'sleep 100', { timeoutS: 50 });
    const { handle } = await startThenRestart(s);
    const keepers = (): string[] =>
      process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap' || r === 'ProcessWrap');
    const before = keepers().length;
    const b = makeRunner(new ExitRecorder());
    await b.adopt(s, handle);
    expect(keepers().length).toBeGreaterThan(before);
    await b.close();
    // A watcher's handle is released in the loop's close phase, a turn later.
    await new Promise((r) => setTimeout(r, 10));
    expect(keepers().length).toBe(before);
    expect(isSameProcessAlive(handle.pid, handle.startTime)).toBe(true);
    killGroupNow(handle.pid);
  });

  it('closes with kill: adopted groups die too', async () => {
    const s = await spec('k', 'sleep 100 & wait');
    const { handle } = await startThenRestart(s);
    const rec = new ExitRecorder();
    const b = makeRunner(rec);
    await b.adopt(s, handle);
    await b.close({ kill: true });
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
    expect(rec.calls).toEqual([]);
  });
});
