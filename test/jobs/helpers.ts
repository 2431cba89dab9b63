/**
 * Shared pieces of the job runner tests: temporary directories, a recorder of
 * exits, and the orphan check that every test ends with.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveGroupMembers } from '../../src/runtime/jobs/proc-identity.js';
import type { ProcessExit, ProcessRunner } from '../../src/runtime/jobs/process-runner.js';

/** Creates a temporary directory and remembers it for {@link cleanup}. */
export async function tempDir(created: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-jobs-'));
  created.push(dir);
  return dir;
}

/** Collects `onExit` calls and lets a test await the one for a job. */
export class ExitRecorder {
  readonly calls: Array<{ jobId: string; exit: ProcessExit; at: number }> = [];
  private readonly waiters = new Map<string, (exit: ProcessExit) => void>();

  readonly onExit = (jobId: string, exit: ProcessExit): void => {
    this.calls.push({ jobId, exit, at: Date.now() });
    this.waiters.get(jobId)?.(exit);
  };

  /** Resolves with the job's exit; rejects after `timeoutMs`. */
  next(jobId: string, timeoutMs = 5000): Promise<ProcessExit> {
    const seen = this.calls.find((c) => c.jobId === jobId);
    if (seen !== undefined) return Promise.resolve(seen.exit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no exit for ${jobId} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.set(jobId, (exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }
}

/** Polls `predicate` (tests may wait; the runner may not) until true or the time is up. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 2000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Ends a test: closes runners, then fails if any tracked process group still
 * has a running member (after killing it, so that a failure leaves no orphan).
 * Zombies do not count: this host's init does not reap them.
 */
export async function cleanup(
  runners: ProcessRunner[],
  groups: number[],
  dirs: string[],
): Promise<void> {
  for (const runner of runners.splice(0)) await runner.close();
  const orphans: number[] = [];
  for (const pgid of groups.splice(0)) {
    try {
      // Signals sent a moment ago may still be landing.
      await waitFor(() => liveGroupMembers(pgid).length === 0, 1000);
    } catch {
      orphans.push(...liveGroupMembers(pgid));
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  if (orphans.length > 0) throw new Error(`orphan processes left running: ${orphans.join(', ')}`);
}
