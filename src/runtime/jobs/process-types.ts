/** The process runner's public shapes, and how an outcome is decided from what was recorded. */
import type { KillReason } from './wrapper.js';

/** How a job's process ended. */
export type ProcessOutcome = 'succeeded' | 'failed' | 'timedOut' | 'lost' | 'cancelled';

/** What to run. */
export interface ProcessSpec {
  jobId: string;
  /** Shell command, run by `sh` exactly as given. */
  command: string;
  /** Working directory of the command. */
  cwd: string;
  /** Deadline in seconds after `startedAt`; 0, negative or infinite means none. */
  timeoutS: number;
  /** The job's own directory (wrapper, log, exit file); created by the runner. */
  dir: string;
  /** Epoch ms the deadline counts from, for `adopt`; defaults to the handle's `startedAt`. */
  startedAt?: number;
  /**
   * The program that runs the command file (given its path) and the whole
   * environment it gets: the sandbox's launcher. By default `sh <file>` with
   * a clean environment (never the server's).
   */
  launch?: (commandFile: string) => { argv: string[]; env: Record<string, string> };
}

/** What the runtime stores to find a running job again after a restart. */
export interface ProcessHandle {
  /** Pid of the wrapper, which is also the id of the job's process group. */
  pid: number;
  /** Proves identity: `<boot id>:<start ticks>` from `/proc/<pid>/stat` field 22. */
  startTime: string;
  /** Absolute job directory. */
  dir: string;
  /** Epoch ms the job started. */
  startedAt: number;
}

/** How a job ended. */
export interface ProcessExit {
  outcome: ProcessOutcome;
  /** The command's exit status (128+n for signal n) as the wrapper recorded it; null when none was. */
  exitCode: number | null;
  /** Head and tail of the output (see `readOutput`). */
  output: string;
  truncated: boolean;
  /** Epoch ms. For a job that ended while the service was down, the time the exit file was written. */
  finishedAt: number;
  durationMs: number;
  timeoutS: number;
}

/** Called once per watched job when it ends. Exceptions are logged, not thrown. */
export type ExitListener = (jobId: string, exit: ProcessExit) => void;

/** Options of {@link ProcessRunner}. */
export interface ProcessRunnerOptions {
  onExit: ExitListener;
  /** @defaultValue Date.now */
  now?: () => number;
  /** @defaultValue 2000 */
  outputHeadBytes?: number;
  /** @defaultValue 6000 */
  outputTailBytes?: number;
  /** Time between SIGTERM and SIGKILL. @defaultValue 5000 */
  killGraceMs?: number;
  /** Period of the safety sweep over adopted processes. @defaultValue 2000 */
  sweepIntervalMs?: number;
  logger?: { warn(obj: object, msg?: string): void };
}

/** The outcome from what was recorded. A marker wins: it was written before the kill. */
export function decideOutcome(exitCode: number | null, marker: KillReason | null): ProcessOutcome {
  if (marker !== null) return marker;
  if (exitCode === null) return 'lost';
  return exitCode === 0 ? 'succeeded' : 'failed';
}
