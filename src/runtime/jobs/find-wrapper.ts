/**
 * Finds a job's wrapper that the service started but never recorded.
 *
 * The service learns a job's pid when it spawns the wrapper and stores it
 * a moment later; a crash in between leaves a job row without a pid while
 * the wrapper runs on (or has already finished). The job's directory is
 * known from its id, so the wrapper can still be found: running, by its
 * command line (`/bin/sh <dir>/run.sh <dir> <cwd>`); finished, by its exit
 * file and the pid file it wrote first thing. No pid file, no exit file and
 * no such process: the wrapper never ran, and neither did the command.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { identityOf, isRunningState, readProcStat } from './proc-identity.js';
import { JOB_FILES, hasExitRecord } from './wrapper.js';

/** What a found wrapper is adopted with (the shape of a stored process handle). */
export interface FoundWrapper {
  pid: number;
  startTime: string;
  dir: string;
  /** ISO time the wrapper started, from its files. */
  startedAt: string;
}

/**
 * Identity given to a wrapper found only by its exit file: it has exited, so
 * it must never match a live process (a pid reused since is left alone).
 */
export const EXITED_IDENTITY = 'exited';

/** The live process whose argv[1] is `script`, with its identity; null if none. */
function findRunning(script: string): { pid: number; startTime: string } | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // Gone while we looked.
    }
    if (argv[1] !== script) continue;
    const stat = readProcStat(Number(entry));
    if (stat !== null && isRunningState(stat.state)) {
      return { pid: stat.pid, startTime: identityOf(stat) };
    }
  }
  return null;
}

function mtime(path: string): number | null {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

function pidFromFile(dir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dir, JOB_FILES.pid), 'utf8').trim());
    // 0 and 1 would name our own group or init: never a job's group.
    return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * What is left of the wrapper of the job whose (absolute) directory is
 * `dir`: the wrapper itself, still running or finished with an exit file;
 * `vanished` when it started (it wrote its pid first thing) but is gone with
 * no exit file; `neverStarted` when there is no trace of it at all, so the
 * command never ran.
 */
export function findJobWrapper(
  dir: string,
  now: number,
): FoundWrapper | 'vanished' | 'neverStarted' {
  const startedAt = mtime(join(dir, JOB_FILES.pid)) ?? mtime(join(dir, JOB_FILES.wrapper)) ?? now;
  const at = new Date(Math.round(startedAt)).toISOString();
  const running = findRunning(join(dir, JOB_FILES.wrapper));
  if (running) return { ...running, dir, startedAt: at };
  const pid = pidFromFile(dir);
  if (hasExitRecord(dir) && pid !== null) {
    return { pid, startTime: EXITED_IDENTITY, dir, startedAt: at };
  }
  return pid !== null || hasExitRecord(dir) ? 'vanished' : 'neverStarted';
}
