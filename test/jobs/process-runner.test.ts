import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { liveGroupMembers } from '../../src/runtime/jobs/proc-identity.js';
import { ProcessRunner } from '../../src/runtime/jobs/process-runner.js';
import type {
  ProcessHandle,
  ProcessRunnerOptions,
  ProcessSpec,
} from '../../src/runtime/jobs/process-runner.js';
import { ExitRecorder, cleanup, tempDir, waitFor } from './helpers.js';

const run = promisify(execFile);
const runners: ProcessRunner[] = [];
const groups: number[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await cleanup(runners, groups, dirs);
});

function makeRunner(rec: ExitRecorder, opts: Partial<ProcessRunnerOptions> = {}): ProcessRunner {
  const runner = new ProcessRunner({ onExit: rec.onExit, killGraceMs: 200, ...opts });
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

async function startTracked(runner: ProcessRunner, s: ProcessSpec): Promise<ProcessHandle> {
  const handle = await runner.start(s);
  groups.push(handle.pid);
  return handle;
}

describe('ProcessRunner', () => {
  it('reports succeeded with exit code 0 and both output streams', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const s = await spec('ok', 'echo hello; echo oops >&2');
    const handle = await startTracked(runner, s);
    expect(handle.startTime).toMatch(/^[0-9a-f-]+:\d+$/);
    expect(runner.running()).toEqual(['ok']);
    const exit = await rec.next('ok');
    expect(exit).toMatchObject({
      outcome: 'succeeded',
      exitCode: 0,
      output: 'hello\noops\n',
      truncated: false,
    });
    expect(exit.durationMs).toBeGreaterThanOrEqual(0);
    expect(runner.running()).toEqual([]);
    expect(readFileSync(join(handle.dir, 'exit'), 'utf8')).toBe('0\n');
    expect(readFileSync(join(handle.dir, 'pid'), 'utf8')).toBe(`${handle.pid}\n`);
  });

  it('takes start and finish times from the injected clock', async () => {
    const rec = new ExitRecorder();
    let clock = 1_000;
    const runner = makeRunner(rec, { now: () => clock });
    const handle = await startTracked(runner, await spec('clock', 'sleep 0.1'));
    expect(handle.startedAt).toBe(1_000);
    clock = 4_500;
    expect(await rec.next('clock')).toMatchObject({ finishedAt: 4_500, durationMs: 3_500 });
  });

  it('reports failed with the non-zero exit code', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    await startTracked(runner, await spec('bad', 'echo partial; exit 3'));
    expect(await rec.next('bad')).toMatchObject({
      outcome: 'failed',
      exitCode: 3,
      output: 'partial\n',
    });
  });

  it('records 128+n when the command dies of signal n', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    await startTracked(runner, await spec('sig', 'kill -TERM $$'));
    expect(await rec.next('sig')).toMatchObject({ outcome: 'failed', exitCode: 143 });
  });

  it('runs a command with quotes, $, backslashes and newlines exactly', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const text = `it's "quoted" \`tick\` $HOME \${x} \\n \\ back\\slash\n  second line é 😀 $(true)`;
    const command = `cat <<'BATON_EOF'\n${text}\nBATON_EOF\nx='a b'; echo "$x" '$x' "$((1+2))"`;
    await startTracked(runner, await spec('exact', command));
    const exit = await rec.next('exact');
    expect(exit.output).toBe(`${text}\na b $x 3\n`);
    expect(exit.outcome).toBe('succeeded');
  });

  it('runs the command in its working directory', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const s = await spec('cwd', 'pwd');
    await startTracked(runner, s);
    expect((await rec.next('cwd')).output).toBe(`${realpathSync(s.cwd)}\n`);
  });

  it('fails with 126 when the working directory does not exist', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const s = await spec('nocwd', 'echo never');
    await startTracked(runner, { ...s, cwd: join(s.cwd, 'missing') });
    const exit = await rec.next('nocwd');
    expect(exit).toMatchObject({ outcome: 'failed', exitCode: 126 });
    expect(exit.output).not.toContain('never');
  });

  it('kills the whole group of a forking job at its deadline', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const s = await spec('slow', 'sleep 100 & sleep 100 & wait', { timeoutS: 0.4 });
    const handle = await startTracked(runner, s);
    await waitFor(() => liveGroupMembers(handle.pid).length >= 4, 2000, 'the forks');
    const exit = await rec.next('slow');
    expect(exit).toMatchObject({ outcome: 'timedOut', exitCode: null, timeoutS: 0.4 });
    expect(exit.durationMs).toBeGreaterThanOrEqual(390);
    expect(existsSync(join(handle.dir, 'timedout'))).toBe(true);
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('sends SIGKILL after the grace to members that ignore SIGTERM', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec, { killGraceMs: 300 });
    const s = await spec('stubborn', "trap '' TERM; sleep 100 & wait", { timeoutS: 0.3 });
    const handle = await startTracked(runner, s);
    const exit = await rec.next('stubborn');
    expect(exit.outcome).toBe('timedOut');
    // Deadline plus grace: the exit waits for the SIGKILL.
    expect(exit.durationMs).toBeGreaterThanOrEqual(580);
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('cancels a job: kills its group, reports cancelled, then resolves', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const handle = await startTracked(runner, await spec('c', 'sleep 100 & sleep 100; echo never'));
    await waitFor(() => liveGroupMembers(handle.pid).length >= 3, 2000, 'the forks');
    await runner.cancel('c');
    // cancel() resolves after onExit.
    expect(rec.calls.map((c) => c.jobId)).toEqual(['c']);
    expect(rec.calls[0]?.exit).toMatchObject({ outcome: 'cancelled', exitCode: null });
    expect(rec.calls[0]?.exit.output).not.toContain('never');
    expect(existsSync(join(handle.dir, 'cancelled'))).toBe(true);
    expect(runner.running()).toEqual([]);
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
  });

  it('cancels a job whose start is still under way', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const starting = runner.start(await spec('early', 'sleep 100'));
    const cancelling = runner.cancel('early');
    groups.push((await starting).pid);
    await cancelling;
    expect(rec.calls.map((c) => [c.jobId, c.exit.outcome])).toEqual([['early', 'cancelled']]);
  });

  it('ignores a cancel of a job that is not running', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    await startTracked(runner, await spec('done', 'true'));
    await rec.next('done');
    await runner.cancel('done');
    await runner.cancel('unknown');
    expect(rec.calls).toHaveLength(1);
    expect(rec.calls[0]?.exit.outcome).toBe('succeeded');
  });

  it('caps 5 MB of output to its head and tail', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const command =
      "printf 'HEAD-START'; head -c 5000000 /dev/zero | tr '\\0' x; printf 'TAIL-END'";
    const handle = await startTracked(runner, await spec('big', command));
    const exit = await rec.next('big');
    expect(await runner.readOutput(handle.dir, { headBytes: 4, tailBytes: 3 })).toEqual({
      output: `HEAD${'\n'}…[truncated ${5_000_018 - 7} bytes]…${'\n'}END`,
      truncated: true,
    });
    expect(exit.outcome).toBe('succeeded');
    expect(exit.truncated).toBe(true);
    const total = 5_000_000 + 'HEAD-START'.length + 'TAIL-END'.length;
    const marker = `\n…[truncated ${total - 8000} bytes]…\n`;
    expect(exit.output).toBe(`HEAD-START${'x'.repeat(1990)}${marker}${'x'.repeat(5992)}TAIL-END`);
  });

  it('decodes non-UTF-8 output with replacement characters', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    await startTracked(runner, await spec('bytes', "printf 'ok \\377\\376 \\303 end\\n'"));
    const exit = await rec.next('bytes');
    expect(exit.output).toBe('ok \uFFFD\uFFFD \uFFFD end\n');
  });

  it('stops processes that a finished command left in its group', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const handle = await startTracked(runner, await spec('stray', 'sleep 100 & echo started'));
    const exit = await rec.next('stray');
    expect(exit).toMatchObject({ outcome: 'succeeded', output: 'started\n' });
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the stray to be stopped');
  });

  it('rejects a second start of a job id that is running', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const s = await spec('twice', 'sleep 100');
    await startTracked(runner, s);
    await expect(runner.start(s)).rejects.toThrow(/already/);
    await runner.cancel('twice');
  });

  it('closes with kill: every watched group dies and no onExit is called', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec);
    const a = await startTracked(runner, await spec('a', 'sleep 100 & wait'));
    const b = await startTracked(runner, await spec('b', 'sleep 100'));
    await runner.close({ kill: true });
    await runner.close({ kill: true });
    expect(runner.running()).toEqual([]);
    await waitFor(
      () => liveGroupMembers(a.pid).length + liveGroupMembers(b.pid).length === 0,
      1000,
      'groups',
    );
    expect(rec.calls).toEqual([]);
    await expect(runner.start(await spec('late', 'true'))).rejects.toThrow(/closed/);
  });

  it('closes without kill but finishes a kill already under way', async () => {
    const rec = new ExitRecorder();
    const runner = makeRunner(rec, { killGraceMs: 5000 });
    const s = await spec('mid', "trap '' TERM; sleep 100 & wait");
    const handle = await startTracked(runner, s);
    await waitFor(() => liveGroupMembers(handle.pid).length >= 3, 2000, 'the fork');
    const cancelling = runner.cancel('mid');
    await waitFor(() => existsSync(join(handle.dir, 'cancelled')), 1000, 'the marker');
    await runner.close();
    await cancelling;
    // SIGTERM is ignored; without the SIGKILL at close the group would live on.
    await waitFor(() => liveGroupMembers(handle.pid).length === 0, 1000, 'the group to die');
    expect(rec.calls).toEqual([]);
  });

  it('closes without kill: the job keeps running and the Node process can exit', async () => {
    const root = await tempDir(dirs);
    const fixture = fileURLToPath(new URL('./fixtures/close-and-exit.ts', import.meta.url));
    // A runner that left a handle or timer alive after close() would hold this
    // process open until the job's 60 s deadline.
    let stdout: string;
    try {
      ({ stdout } = await run(process.execPath, ['--import', 'tsx', fixture, root], {
        timeout: 10_000,
      }));
    } catch (err) {
      // Killed for hanging: still account for the job it started.
      stdout = String((err as { stdout?: string }).stdout ?? '');
      if (stdout !== '') groups.push((JSON.parse(stdout) as { pid: number }).pid);
      throw err;
    }
    const { pid, adopted } = JSON.parse(stdout) as { pid: number; adopted: string };
    groups.push(pid);
    expect(adopted).toBe('watching');
    expect(liveGroupMembers(pid)).toContain(pid);
    process.kill(-pid, 'SIGKILL');
  });
});
