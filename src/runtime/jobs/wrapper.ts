/**
 * The wrapper script that runs a job's command detached from the service.
 *
 * The service may restart while a job runs, so the facts about the job must be
 * written by something that outlives it: the wrapper records its pid, runs the
 * command with its output appended to a log, and records the exit status in a
 * file that appears atomically (written to `exit.tmp`, then renamed), so a
 * reader never sees a half-written status.
 *
 * The command itself is never interpolated into shell text: it is written
 * verbatim to `command.sh` and run as `sh command.sh` (in the sandbox, where
 * that file is bound read-only), and the job directory, working directory and
 * launcher arrive as positional arguments through `execve`, so quotes, `$`,
 * backslashes and newlines reach the shell exactly as given.
 *
 * This module also owns the rest of that on-disk protocol: preparing the
 * directory, and reading the exit file and the kill markers.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** File names inside a job's directory. */
export const JOB_FILES = {
  /** The wrapper script itself. */
  wrapper: 'run.sh',
  /** The command, verbatim. */
  command: 'command.sh',
  /** The wrapper's pid, written when it starts (for people and tools). */
  pid: 'pid',
  /** Standard output and standard error of the command, appended. */
  output: 'output.log',
  /** The command's exit status as decimal text; appears atomically when the command exits. */
  exit: 'exit',
  /** Where the exit status is written before the rename. */
  exitTmp: 'exit.tmp',
  /** Marker written before the service kills the job for its deadline. */
  timedOut: 'timedout',
  /** Marker written before the service kills the job on a cancel. */
  cancelled: 'cancelled',
} as const;

/**
 * Exit status recorded when the working directory cannot be entered, the same
 * code a shell uses for "found but cannot run".
 */
export const CWD_FAILED_EXIT_CODE = 126;

/**
 * The text of the wrapper, run as `/bin/sh run.sh <job dir> <cwd> <program...>`.
 * The program (the sandbox's launcher ending in `sh <command file>`) comes
 * as separate arguments through `execve`, so nothing of it is shell text.
 *
 * `sh` reports a command killed by signal n as status 128+n, which is what
 * ends up in the exit file. The wrapper does not trap signals: when the
 * service kills the process group the wrapper dies with it and writes no exit
 * file, so the marker files decide the outcome.
 */
export function wrapperScript(): string {
  return `# Baton job wrapper: runs the job's program and records its exit status.
# Usage: /bin/sh run.sh <job dir> <working dir> <program> [args...]
d=$1
echo $$ >"$d/${JOB_FILES.pid}.tmp" && mv -f "$d/${JOB_FILES.pid}.tmp" "$d/${JOB_FILES.pid}"
if cd "$2" 2>>"$d/${JOB_FILES.output}"; then
  shift 2
  "$@" </dev/null >>"$d/${JOB_FILES.output}" 2>&1
  code=$?
else
  code=${CWD_FAILED_EXIT_CODE}
fi
echo "$code" >"$d/${JOB_FILES.exitTmp}" && mv -f "$d/${JOB_FILES.exitTmp}" "$d/${JOB_FILES.exit}"
exit "$code"
`;
}

/** Why the service killed a job; each has a marker file. */
export type KillReason = 'timedOut' | 'cancelled';

const STALE_FILES = [
  JOB_FILES.exit,
  JOB_FILES.exitTmp,
  JOB_FILES.pid,
  JOB_FILES.output,
  JOB_FILES.timedOut,
  JOB_FILES.cancelled,
];

/**
 * Creates the job directory with the command and the wrapper in it. A reused
 * directory must not hand this run an old exit file, marker or log, so those
 * are removed first.
 */
export async function prepareJobDir(dir: string, command: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all(STALE_FILES.map((f) => rm(join(dir, f), { force: true })));
  await writeFile(join(dir, JOB_FILES.command), command);
  await writeFile(join(dir, JOB_FILES.wrapper), wrapperScript());
}

/** What the exit file says. */
export interface ExitRecord {
  /** The recorded status; null when there is no exit file or it holds no status. */
  exitCode: number | null;
  /** When the exit file was written; null when there is none. */
  mtimeMs: number | null;
  /** The file's text when it exists but is not a status (worth a warning). */
  invalid?: string;
}

/** Reads the exit file that the wrapper renamed into place. */
export async function readExitRecord(dir: string): Promise<ExitRecord> {
  const path = join(dir, JOB_FILES.exit);
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    const trimmed = text.trim();
    if (!/^\d{1,3}$/.test(trimmed)) {
      return { exitCode: null, mtimeMs: info.mtimeMs, invalid: trimmed.slice(0, 40) };
    }
    return { exitCode: Number(trimmed), mtimeMs: info.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return { exitCode: null, mtimeMs: null };
  }
}

/** Whether the command has ended and its status is on disk. */
export function hasExitRecord(dir: string): boolean {
  return existsSync(join(dir, JOB_FILES.exit));
}

/** Records, before the kill, why the service is killing the job. */
export async function writeKillMarker(dir: string, reason: KillReason, at: number): Promise<void> {
  const file = reason === 'timedOut' ? JOB_FILES.timedOut : JOB_FILES.cancelled;
  await writeFile(join(dir, file), `${new Date(at).toISOString()}\n`);
}

/** The kill marker in the directory, if any. */
export function readKillMarker(dir: string): KillReason | null {
  // Only one marker is ever written; if both exist, the user's cancel wins.
  if (existsSync(join(dir, JOB_FILES.cancelled))) return 'cancelled';
  if (existsSync(join(dir, JOB_FILES.timedOut))) return 'timedOut';
  return null;
}
